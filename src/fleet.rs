//! A fleet of terminals at the TMS, beside the terminal under test: each one a TMS client
//! with real firmware slots (`poslab_terminal::firmware::Firmware`, the reference
//! terminal's own), so a rollout to many terminals can be rehearsed — targeting by TID,
//! model and running version, waves that open after the pilots' successes or at a time,
//! a halt when a wave fails too often.
//!
//! A fleet terminal does maintenance only. At each call it reports the outcome of its last
//! update (9I), calls home with its status (9D), takes its identity, keys and parameters,
//! and downloads what it is offered, chunk by chunk (resuming from the bytes it holds).
//! With the whole image it verifies it (length, SHA-256, the manifest's signature under
//! the TMS's TEST key, the image header), installs it into the other slot, reboots into it
//! on trial, runs the health check the image's header decides, and commits it or rolls
//! back — the same state machine the reference terminal runs, without the payment side.

use std::time::Duration;

use poslab_crypto::Key;
use poslab_terminal::firmware::{Firmware, PackageInfo, UpdateResult};
use poslab_tms::client::{ClientConfig, ClientSession, Event, TerminalStatus};
use poslab_tms::{KeyUsage, Order};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::tms::drive;

/// One terminal of the fleet.
#[derive(Debug)]
pub struct FleetTerminal {
    pub serial: String,
    pub model: String,
    /// The TID it calls with (the TMS's answer confirms or assigns it).
    pub tid: Option<String>,
    tmk: Option<Key>,
    params_version: String,
    firmware: Firmware,
    firmware_key: String,
    transport_key: Key,
    /// `normal`, or `rolled-back` after a failed trial.
    boot: String,
}

/// What one call to the TMS did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Call {
    pub orders: Vec<Order>,
    /// `package version` offered, if one was.
    pub offered: Option<(String, String)>,
    /// The update that ended after this call (installed, rejected or rolled back).
    pub update: Option<UpdateResult>,
    /// Why the session failed, if it did.
    pub failed: Option<String>,
}

impl FleetTerminal {
    /// A terminal from the factory: `version` in slot A, no keys, no parameters.
    pub fn new(serial: &str, model: &str, tid: Option<&str>, version: &str) -> FleetTerminal {
        FleetTerminal {
            serial: serial.to_string(),
            model: model.to_string(),
            tid: tid.map(str::to_string),
            tmk: None,
            params_version: String::new(),
            firmware: Firmware::factory(version),
            firmware_key: hex::encode(poslab_tms::package::test_verifying_key().to_bytes()),
            transport_key: poslab_tms::package::test_transport_key(),
            boot: "normal".into(),
        }
    }

    /// The firmware version it runs.
    pub fn version(&self) -> String {
        self.firmware.version()
    }

    /// One maintenance session over `stream`, then the install of a complete download.
    pub async fn call_home<S>(&mut self, stream: &mut S) -> Call
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let epoch = tokio::time::Instant::now();
        let mut cfg = ClientConfig::new(&self.serial, &self.model, self.transport_key.clone());
        cfg.tid = self.tid.clone();
        cfg.master_key = self.tmk.clone();
        cfg.timeout = Duration::from_secs(30);
        let status = TerminalStatus {
            firmware_version: self.firmware.version(),
            params_version: self.params_version.clone(),
            boot: self.boot.clone(),
            ..TerminalStatus::default()
        };
        let report = self.firmware.result.as_ref().map(UpdateResult::report);
        let mut session = ClientSession::new(cfg, status, report, epoch.elapsed());
        let mut call = Call::default();
        let events = drive(stream, &mut session, epoch, |e, s, now| match e {
            Event::Assigned { tid, .. } => {
                // the report went first and was taken
                self.firmware.result = None;
                self.tid = Some(tid.clone());
            }
            Event::Orders(o) => call.orders = o.clone(),
            Event::KeysLoaded { keys, .. } => {
                if let Some(k) = keys.iter().find(|k| k.usage == KeyUsage::Tmk) {
                    self.tmk = k.to_key().ok();
                }
            }
            Event::Parameters { version, .. } => self.params_version = version.clone(),
            Event::PackageOffered(m) => {
                call.offered = Some((m.id.clone(), m.version.clone()));
                match self.firmware.offer(PackageInfo::from(m)) {
                    Ok(offset) => s.accept_package(offset, now),
                    Err(e) => s.decline_package(&e.to_string(), now),
                }
            }
            Event::Chunk { offset, bytes, .. } => {
                if let Err(e) = self.firmware.chunk(*offset, bytes) {
                    s.abort(&format!("chunk at {offset}: {e}"));
                }
            }
            Event::LogsRequested => {
                let logs = format!("fleet terminal {} runs {}\n", self.serial, self.version());
                s.provide_logs(logs.as_bytes(), now);
            }
            Event::DecommissionOrdered => {
                let kcvs = self
                    .tmk
                    .take()
                    .map(|k| vec![hex::encode_upper(k.kcv().as_bytes())])
                    .unwrap_or_default();
                s.keys_destroyed(kcvs, now);
            }
            _ => {}
        })
        .await;
        call.failed = events.iter().find_map(|e| match e {
            Event::Failed { why } => Some(why.clone()),
            _ => None,
        });
        if self.firmware.complete() {
            call.update = Some(self.install());
        }
        call
    }

    /// Verifies and installs the download, reboots into it on trial and runs its health
    /// check: commit, or roll back and reboot into the old image.
    fn install(&mut self) -> UpdateResult {
        if self.firmware.install(&self.firmware_key).is_ok() {
            let boot = self.firmware.boot();
            if boot.trial {
                let passed = boot.image.healthy;
                self.firmware.health(passed);
                self.boot = if passed { "normal" } else { "rolled-back" }.into();
                if !passed {
                    self.firmware.boot();
                }
            }
        }
        self.firmware
            .result
            .clone()
            .unwrap_or(UpdateResult::Rejected {
                package: String::new(),
                version: String::new(),
                why: "the install left no result".into(),
                reason: "other".into(),
            })
    }
}

/// One call of `terminal` to `server` over an in-memory pipe (the TMS serves it as it
/// serves any connection; `n` numbers the connection in its journal).
pub async fn call_over_pipe(
    server: &crate::tms::TmsServer,
    terminal: &mut FleetTerminal,
    n: u64,
) -> Call {
    use crate::net::{Handler, Peer};
    let (mut near, far) = tokio::io::duplex(64 * 1024);
    let s = server.clone();
    let peer = Peer {
        id: n,
        addr: format!("fleet:{}", terminal.serial),
    };
    let task = tokio::spawn(async move {
        s.handle(far, peer, tokio_util::sync::CancellationToken::new())
            .await
    });
    let call = terminal.call_home(&mut near).await;
    drop(near);
    let _ = task.await;
    call
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;
    use crate::tms::TmsServer;
    use poslab_tms::config::{Config, PackageConfig, TerminalEntry, Wave, DEFAULT_YAML};
    use poslab_tms::device::TmsDevice;

    async fn call(server: &TmsServer, t: &mut FleetTerminal, n: u64) -> Call {
        call_over_pipe(server, t, n).await
    }

    fn server(health: &str) -> TmsServer {
        let mut config = Config::from_yaml(DEFAULT_YAML, "default.yaml").unwrap();
        config.packages.clear();
        let mut dev = TmsDevice::new(config, 1).unwrap();
        for tid in ["00000011", "00000012", "00000013"] {
            dev.add_terminal(&TerminalEntry {
                tid: tid.into(),
                mid: "000000000000001".into(),
                model: Some("poslab-ref".into()),
                ..TerminalEntry::default()
            })
            .unwrap();
        }
        let pkg: PackageConfig = serde_json::from_value(serde_json::json!({
            "id": "fw-2", "version": "2.0.0",
            "image": {"generate": {"size": 20000, "seed": 3, "health": health}},
            "target": {"models": ["poslab-ref"], "versions": ["1.0.0"]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut pkg = pkg;
        pkg.waves = vec![
            Wave {
                size: Some(1),
                max_failures: Some(0),
                ..Wave::default()
            },
            Wave {
                after_successes: Some(1),
                ..Wave::default()
            },
        ];
        dev.publish_package(pkg).unwrap();
        TmsServer::new(dev, Journal::in_memory())
    }

    fn fleet() -> Vec<FleetTerminal> {
        (1..=3)
            .map(|i| {
                FleetTerminal::new(
                    &format!("FL-{i}"),
                    "poslab-ref",
                    Some(&format!("0000001{i}")),
                    "1.0.0",
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_pilot_installs_first_and_the_fleet_follows() {
        let server = server("ok");
        let mut fleet = fleet();
        let mut n = 0;
        let mut offered = Vec::new();
        for t in fleet.iter_mut() {
            n += 1;
            let c = call(&server, t, n).await;
            assert_eq!(c.failed, None, "{c:?}");
            offered.push(c.offered.is_some());
        }
        assert_eq!(offered, [true, false, false], "one pilot in wave 1");
        assert_eq!(fleet[0].version(), "2.0.0");
        assert_eq!(fleet[1].version(), "1.0.0");
        for t in fleet.iter_mut() {
            n += 1;
            call(&server, t, n).await;
        }
        let versions: Vec<String> = fleet.iter().map(FleetTerminal::version).collect();
        assert_eq!(versions, ["2.0.0", "2.0.0", "2.0.0"]);
        let dev = server.device();
        let dev = dev.lock().unwrap();
        let r = dev.terminal("00000011").unwrap();
        assert_eq!(r.installs.last().unwrap().outcome, "installed");
    }

    #[tokio::test]
    async fn a_failing_pilot_halts_the_rollout() {
        let server = server("fail");
        let mut fleet = fleet();
        let mut n = 0;
        for _ in 0..2 {
            for t in fleet.iter_mut() {
                n += 1;
                call(&server, t, n).await;
            }
        }
        let versions: Vec<String> = fleet.iter().map(FleetTerminal::version).collect();
        assert_eq!(
            versions,
            ["1.0.0", "1.0.0", "1.0.0"],
            "rolled back, never offered"
        );
        let dev = server.device();
        let dev = dev.lock().unwrap();
        assert!(dev.rollout("fw-2").unwrap().halted);
        assert_eq!(
            dev.terminal("00000011")
                .unwrap()
                .installs
                .last()
                .unwrap()
                .outcome,
            "rolled-back"
        );
        assert!(dev.terminal("00000012").unwrap().installs.is_empty());
    }
}
