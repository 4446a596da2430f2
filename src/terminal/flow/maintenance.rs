//! Maintenance: the terminal as the TMS's client, and its firmware slots.
//!
//! - At every power-up the firmware model boots a slot ([`Firmware::boot`]): a staged
//!   image starts its trial, an interrupted trial rolls back; the terminal journals which
//!   image runs (`boot`), reports it at call-home, and shows it when it changed.
//! - A trial image runs its health check at once: passed → committed; failed → the
//!   terminal rolls back and reboots into the confirmed image.
//! - The terminal calls the TMS home on its first start (no master key from the TMS yet),
//!   when the operator presses F5, on the `tms_interval_ms` timer of its parameters, and
//!   right after an update ended (to report it). A session applies what the TMS gives:
//!   identity, master key (kept under the transport key), parameters (merged over the
//!   terminal's own, effective at once: the next receipt shows them), firmware chunks
//!   (persisted one by one: a broken link or a power loss resumes at the offset held),
//!   the logs it asks for, decommissioning (keys destroyed, confirmed, no sale after).
//! - "Reboot" (after an install, after a failed health check) restarts the core as a power
//!   loss does: memory dropped, the state file read again, power-up run again; the links
//!   stay up. A real power loss mid-update is the bench's power-loss step.

use std::collections::BTreeMap;
use std::time::Duration;

use poslab_crypto::Key;
use poslab_terminal::firmware::{Firmware, PackageInfo, UpdateResult};
use poslab_terminal::params::Params;
use poslab_tms::client::{ClientConfig, ClientSession, Event, TerminalStatus};
use poslab_tms::KeyUsage;
use poslab_zvt::codes::ResultCode;
use poslab_zvt::terminal::Step;
use serde_json::json;
use tokio::time::Instant;

use super::Core;
use crate::link::Dialer;
use crate::terminal::tms_link::{StoredKey, TmsLink};
use crate::terminal::EcrRequest;

/// The maintenance side of the core.
pub(crate) struct Maint {
    link: Option<TmsLink>,
    /// The terminal has a TMS (its link is taken out while a session runs).
    has_tms: bool,
    /// The parameters and master key the terminal was started with (the TMS's are merged
    /// over them).
    base_params: Params,
    base_tmk: Key,
    next_call: Option<Instant>,
    /// An install is done: restart into it after the session.
    reboot: bool,
    /// How this boot went, for the status report (`normal`, `trial`, `rolled-back`).
    boot: String,
    /// What went wrong since the last call-home (a refused parameter set), reported
    /// in the next one.
    errors: Vec<String>,
}

impl Maint {
    pub(crate) fn new(params: &Params, tmk: &Key) -> Maint {
        Maint {
            link: None,
            has_tms: false,
            base_params: params.clone(),
            base_tmk: tmk.clone(),
            next_call: None,
            reboot: false,
            boot: "normal".into(),
            errors: Vec::new(),
        }
    }
}

/// The parameters: the terminal's own with the TMS's set merged over them.
fn merged(
    base: &Params,
    set: &serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<Params> {
    let mut map = match serde_json::to_value(base)? {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    for (k, v) in set {
        map.insert(k.clone(), v.clone());
    }
    let params: Params = serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| anyhow::anyhow!("parameter set: {e}"))?;
    params
        .check()
        .map_err(|e| anyhow::anyhow!("parameter set: {e}"))?;
    Ok(params)
}

impl Core {
    /// Gives the terminal its TMS link.
    pub(crate) fn attach_tms(&mut self, dialer: Dialer) {
        self.mnt.link = Some(TmsLink::new(dialer, self.journal.clone()));
        self.mnt.has_tms = true;
    }

    fn firmware(&mut self) -> &mut Firmware {
        let factory = self.cfg.tms.factory_version.clone();
        self.store
            .state
            .firmware
            .get_or_insert_with(|| Firmware::factory(&factory))
    }

    /// Whether the terminal waits for its first provisioning by the TMS.
    pub(super) fn unprovisioned(&self) -> bool {
        self.mnt.has_tms
            && !self.cfg.tms.master_key_injected
            && self.store.state.tms.master_key.is_none()
    }

    /// Power-up, first part: the firmware slot to run, then what the TMS gave.
    pub(super) fn maintenance_boot(&mut self) {
        let boot = self.firmware().boot();
        self.mnt.boot = if boot.trial {
            "trial".into()
        } else if boot.rolled_back.is_some() {
            "rolled-back".into()
        } else {
            "normal".into()
        };
        self.cfg.software_version = boot.image.version.clone();
        let slot = self.firmware().running_slot();
        self.journal.record(
            "terminal",
            "boot",
            json!({"slot": slot, "version": boot.image.version, "trial": boot.trial,
                   "rolled_back": boot.rolled_back.as_ref().map(|r| r.kind())}),
        );
        if boot.rolled_back.is_some() {
            self.show(&format!("UPDATE FAILED - RUNNING {}", boot.image.version));
        }
        let tms = self.store.state.tms.clone();
        if !self.cfg.tms.master_key_injected {
            if let Some(k) = &tms.master_key {
                match k.unwrap(&self.cfg.tms.transport_key) {
                    Ok(tmk) => self.cfg.tmk = tmk,
                    Err(e) => {
                        self.journal.record(
                            "terminal",
                            "error",
                            json!({"error": format!("stored master key: {e:#}")}),
                        );
                    }
                }
            }
        }
        let mut params = self.mnt.base_params.clone();
        if let Some(set) = &tms.params {
            match merged(&params, set) {
                Ok(p) => params = p,
                Err(e) => {
                    self.journal
                        .record("terminal", "error", json!({"error": format!("{e:#}")}));
                }
            }
        }
        if let Some(tid) = &tms.tid {
            params.tid = tid.clone();
        }
        if let Some(mid) = &tms.mid {
            params.mid = mid.clone();
        }
        self.cfg.params = params;
        self.schedule_call();
    }

    fn schedule_call(&mut self) {
        let every = self.cfg.params.tms_interval_ms;
        self.mnt.next_call =
            (every > 0 && self.mnt.has_tms).then(|| Instant::now() + Duration::from_millis(every));
    }

    /// When the call-home timer fires.
    pub(super) fn maintenance_wake(&self) -> Option<Instant> {
        self.mnt.next_call
    }

    pub(super) async fn maintenance_background(&mut self) {
        if self.mnt.next_call.is_some_and(|t| t <= Instant::now()) {
            self.call_home("timer").await;
            self.show_ready();
        }
    }

    pub(super) fn show_ready(&mut self) {
        if self.store.state.tms.decommissioned {
            self.show("TERMINAL DECOMMISSIONED");
        } else if self.unprovisioned() {
            self.show("NOT PROVISIONED - CALL HELPDESK");
        } else {
            self.show(if self.training() {
                "TRAINING MODE - READY"
            } else {
                "READY"
            });
        }
    }

    /// Power-up, second part: a trial image's health check, the first call to the TMS, a
    /// report of an update that ended.
    pub(super) async fn maintenance_start(&mut self) {
        if self.mnt.boot == "trial" {
            let image = self.firmware().running().cloned();
            let passed = image.as_ref().is_some_and(|i| i.healthy);
            let result = self.firmware().health(passed);
            self.save();
            let version = image.map(|i| i.version).unwrap_or_default();
            self.journal.record(
                "terminal",
                "health-check",
                json!({"version": version, "passed": passed,
                       "result": result.as_ref().map(|r| r.kind())}),
            );
            if passed {
                self.mnt.boot = "normal".into();
                self.show(&format!("SOFTWARE UPDATED TO {version}"));
            } else {
                self.show("UPDATE FAILED - ROLLING BACK");
                Box::pin(self.reboot("the new image failed its health check")).await;
                return;
            }
        }
        if !self.mnt.has_tms || self.store.state.tms.decommissioned {
            return;
        }
        if self.unprovisioned() {
            self.call_home("first start").await;
        } else if self
            .store
            .state
            .firmware
            .as_ref()
            .is_some_and(|f| f.result.is_some())
        {
            self.call_home("update report").await;
        }
        self.show_ready();
    }

    /// The terminal refuses a command while it is decommissioned or not provisioned yet.
    pub(super) async fn out_of_service(&mut self, req: &EcrRequest) -> Option<Vec<Step>> {
        if matches!(req, EcrRequest::EndOfDay) || !self.mnt.has_tms {
            return None;
        }
        if self.store.state.tms.decommissioned {
            self.shown.clear(); // said again: a refusal is news on the display
            self.show("TERMINAL DECOMMISSIONED");
            return Some(self.refusal_steps(ResultCode::NOT_REGISTERED, "TERMINAL DECOMMISSIONED"));
        }
        if self.unprovisioned() {
            self.call_home("not provisioned").await;
            if self.unprovisioned() {
                self.shown.clear();
                self.show("NOT PROVISIONED - CALL HELPDESK");
                return Some(self.refusal_steps(ResultCode::NOT_REGISTERED, "NOT PROVISIONED"));
            }
        }
        None
    }

    fn status(&mut self) -> TerminalStatus {
        let s = &self.store.state;
        let mut counters = BTreeMap::new();
        counters.insert("power_ups".to_string(), u64::from(s.power_ups));
        counters.insert("batch".to_string(), s.batch.len() as u64);
        counters.insert("saf".to_string(), s.saf.len() as u64);
        counters.insert("held_receipts".to_string(), s.held_receipts.len() as u64);
        counters.insert("batches_closed".to_string(), u64::from(s.batches_closed));
        let printer = if s.held_receipts.is_empty() {
            "ok"
        } else {
            "receipts-held"
        };
        TerminalStatus {
            firmware_version: self.cfg.software_version.clone(),
            // none until the TMS gave a set: the TMS then sends its own
            params_version: self
                .store
                .state
                .tms
                .params_version
                .clone()
                .unwrap_or_default(),
            counters,
            errors: std::mem::take(&mut self.mnt.errors),
            printer: printer.into(),
            reader: "ok".into(),
            boot: self.mnt.boot.clone(),
        }
    }

    /// The terminal's logs for the TMS: the tail of its own journal file.
    fn logs(&self) -> Vec<u8> {
        const MAX: usize = 64 * 1024;
        let text = self
            .journal
            .path()
            .and_then(|p| std::fs::read(p).ok())
            .unwrap_or_default();
        let from = text.len().saturating_sub(MAX);
        let mut out = text.get(from..).unwrap_or_default().to_vec();
        if out.is_empty() {
            out = serde_json::to_vec(&json!({"software": self.cfg.software_version,
                "parameters": self.cfg.params.version, "power_ups": self.store.state.power_ups}))
            .unwrap_or_default();
        }
        out
    }

    /// One maintenance session with the TMS.
    pub(super) async fn call_home(&mut self, why: &str) {
        let Some(mut link) = self.mnt.link.take() else {
            return;
        };
        self.show("CALLING TMS");
        let pending = self.firmware().result.clone();
        let report = pending.as_ref().map(UpdateResult::report);
        let held_tmk = (!self.unprovisioned()).then(|| self.cfg.tmk.clone());
        let config = ClientConfig {
            tid: self.store.state.tms.tid.clone(),
            master_key: held_tmk,
            chunk_size: self.cfg.tms.chunk_size,
            timeout: self.host_timeout(),
            ..ClientConfig::new(
                &self.cfg.tms.serial,
                &self.cfg.tms.model,
                self.cfg.tms.transport_key.clone(),
            )
        };
        let status = self.status();
        self.journal.record(
            "terminal",
            "tms-session",
            json!({"why": why, "tms": link.describe(), "serial": self.cfg.tms.serial,
                   "software": status.firmware_version, "parameters": status.params_version,
                   "report": report.as_ref().map(|r| r.outcome.as_str().to_string())}),
        );
        let epoch = Instant::now();
        let mut session = ClientSession::new(config, status, report, Duration::ZERO);
        let mut ended = "ended".to_string();
        let mut last_pct = None;
        while let Some(event) = link.next_event(&mut session, epoch).await {
            let now = epoch.elapsed();
            match event {
                Event::Assigned { tid, mid } => {
                    // the call-home answer: the report (sent first) has been taken
                    if let Some(f) = self.store.state.firmware.as_mut() {
                        f.result = None;
                    }
                    self.store.state.tms.tid = Some(tid.clone());
                    self.store.state.tms.mid = Some(mid.clone());
                    self.cfg.params.tid = tid.clone();
                    self.cfg.params.mid = mid.clone();
                    self.save();
                    self.journal.record(
                        "terminal",
                        "tms-assigned",
                        json!({"tid": tid, "mid": mid}),
                    );
                }
                Event::Orders(orders) => {
                    let names: Vec<String> =
                        orders.iter().map(|o| o.as_str().to_string()).collect();
                    self.journal
                        .record("terminal", "tms-orders", json!({"orders": names}));
                }
                Event::KeysLoaded { keys, ksn } => self.keys_loaded(&keys, ksn.as_deref()),
                Event::Parameters { version, set } => {
                    match merged(&self.mnt.base_params, &set.terminal) {
                        Ok(mut p) => {
                            if let Some(tid) = &self.store.state.tms.tid {
                                p.tid = tid.clone();
                            }
                            if let Some(mid) = &self.store.state.tms.mid {
                                p.mid = mid.clone();
                            }
                            p.version = version.clone();
                            let mut stored = set.terminal.clone();
                            stored.insert("version".into(), json!(version));
                            self.store.state.tms.params = Some(stored);
                            self.store.state.tms.params_version = Some(version.clone());
                            self.cfg.params = p;
                            self.save();
                            self.schedule_call();
                            self.journal.record(
                                "terminal",
                                "parameters",
                                json!({"version": version, "merchant_name": self.cfg.params.merchant_name}),
                            );
                        }
                        Err(e) => {
                            // all or nothing: the old set stays, and the TMS hears why
                            self.mnt
                                .errors
                                .push(format!("parameters {version} refused: {e:#}"));
                            self.show("PARAMETERS REJECTED");
                            self.journal.record(
                                "terminal",
                                "parameters-refused",
                                json!({"version": version, "error": format!("{e:#}")}),
                            );
                        }
                    }
                }
                Event::PackageOffered(m) => {
                    let info = PackageInfo::from(&m);
                    match self.firmware().offer(info.clone()) {
                        Ok(offset) => {
                            self.save();
                            self.journal.record(
                                "terminal",
                                "firmware-download",
                                json!({"package": info.id, "version": info.version, "size": info.size,
                                       "from": offset, "resumed": offset > 0}),
                            );
                            session.accept_package(offset, now);
                        }
                        Err(e) => {
                            self.journal.record(
                                "terminal",
                                "firmware-declined",
                                json!({"package": info.id, "why": e.to_string()}),
                            );
                            session.decline_package(&e.to_string(), now);
                        }
                    }
                }
                Event::Chunk {
                    package,
                    offset,
                    bytes,
                } => {
                    let r = self.firmware().chunk(offset, &bytes);
                    match r {
                        Ok(held) => {
                            self.save();
                            let pct = self
                                .firmware()
                                .download
                                .as_ref()
                                .map(|d| d.percent())
                                .unwrap_or(100);
                            self.journal.record(
                                "terminal",
                                "firmware-chunk",
                                json!({"package": package, "offset": offset, "len": bytes.len(), "held": held, "percent": pct}),
                            );
                            if last_pct != Some(pct / 10) {
                                last_pct = Some(pct / 10);
                                self.show(&format!("DOWNLOADING {}%", pct / 10 * 10));
                            }
                        }
                        Err(e) => {
                            self.journal.record(
                                "terminal",
                                "firmware-chunk-refused",
                                json!({"package": package, "offset": offset, "error": e.to_string()}),
                            );
                        }
                    }
                }
                Event::DownloadComplete { package, size } => {
                    let key = self.cfg.tms.firmware_key.clone();
                    let installed = self.firmware().install(&key);
                    self.save();
                    match installed {
                        Ok(image) => {
                            let slot = if self.firmware().running_slot() == "A" {
                                "B"
                            } else {
                                "A"
                            };
                            self.journal.record(
                                "terminal",
                                "firmware-installed",
                                json!({"package": package, "size": size, "version": image.version,
                                       "slot": slot}),
                            );
                            self.mnt.reboot = true;
                        }
                        Err(e) => {
                            self.journal.record(
                                "terminal",
                                "firmware-rejected",
                                json!({"package": package, "why": e.to_string(),
                                       "running": self.cfg.software_version}),
                            );
                            self.show("UPDATE REJECTED");
                        }
                    }
                }
                Event::LogsRequested => {
                    let logs = self.logs();
                    self.journal
                        .record("terminal", "logs-sent", json!({"bytes": logs.len()}));
                    session.provide_logs(&logs, now);
                }
                Event::DecommissionOrdered => {
                    let mut kcvs = vec![hex::encode_upper(self.cfg.tmk.kcv().as_bytes())];
                    if let Some((pin, mac)) = &self.keys {
                        kcvs.push(hex::encode_upper(pin.kcv().as_bytes()));
                        kcvs.push(hex::encode_upper(mac.kcv().as_bytes()));
                    }
                    self.keys = None;
                    self.store.state.wrapped_keys = None;
                    self.store.state.signed_on = false;
                    self.store.state.tms.master_key = None;
                    self.store.state.tms.decommissioned = true;
                    self.cfg.tmk = self.mnt.base_tmk.clone();
                    self.save();
                    self.journal
                        .record("terminal", "keys-destroyed", json!({"kcvs": kcvs}));
                    self.show("TERMINAL DECOMMISSIONED");
                    session.keys_destroyed(kcvs, now);
                }
                Event::Done { decommissioned } => {
                    ended = if decommissioned {
                        "decommissioned".into()
                    } else {
                        "done".into()
                    };
                }
                Event::Failed { why } => {
                    // a key with a wrong check value is refused whole: the old keys stay
                    self.show(if why.contains("check value") {
                        "KEY LOAD FAILED - CALL HELPDESK"
                    } else {
                        "TMS CALL FAILED"
                    });
                    ended = format!("failed: {why}");
                }
            }
        }
        self.mnt.link = Some(link);
        self.store.state.tms.sessions += 1;
        self.store.state.tms.last_session = Some(ended.clone());
        self.save();
        self.journal.record(
            "terminal",
            "tms-session-end",
            json!({"result": ended, "software": self.cfg.software_version,
                   "parameters": self.cfg.params.version}),
        );
        self.schedule_call();
        if self.mnt.reboot {
            self.mnt.reboot = false;
            Box::pin(self.reboot("a new image is installed")).await;
        } else if ended.starts_with("done")
            && self
                .store
                .state
                .firmware
                .as_ref()
                .is_some_and(|f| f.result.is_some())
            && why != "update report"
        {
            // a refused package: tell the TMS at once
            Box::pin(self.call_home("update report")).await;
        }
    }

    fn keys_loaded(&mut self, keys: &[poslab_tms::client::LoadedKey], ksn: Option<&str>) {
        let mut kcvs = serde_json::Map::new();
        for k in keys {
            kcvs.insert(k.usage.to_string(), json!(k.kcv));
            if k.usage != KeyUsage::Tmk || self.cfg.tms.master_key_injected {
                continue;
            }
            match k.to_key() {
                Ok(tmk) => match StoredKey::wrap(&self.cfg.tms.transport_key, &tmk) {
                    Ok(stored) => {
                        self.store.state.tms.master_key = Some(stored);
                        self.cfg.tmk = tmk;
                    }
                    Err(e) => {
                        self.journal.record(
                            "terminal",
                            "error",
                            json!({"error": format!("{e:#}")}),
                        );
                    }
                },
                Err(e) => {
                    self.journal
                        .record("terminal", "error", json!({"error": e.to_string()}));
                }
            }
        }
        // new keys: the working keys come fresh from the host at the next sale
        self.keys = None;
        self.store.state.wrapped_keys = None;
        self.store.state.signed_on = false;
        self.save();
        self.journal.record(
            "terminal",
            "keys-loaded",
            json!({"kcvs": kcvs, "ksn": ksn, "master_key_kcv": hex::encode_upper(self.cfg.tmk.kcv().as_bytes())}),
        );
        self.show("KEYS LOADED");
    }

    /// Restarts the core as after a power loss (the links stay up).
    async fn reboot(&mut self, why: &str) {
        self.journal
            .record("terminal", "reboot", json!({"why": why}));
        self.show("RESTARTING");
        match super::Store::open(&self.cfg.state_dir) {
            Ok(store) => self.store = store,
            Err(e) => {
                self.journal
                    .record("terminal", "error", json!({"error": format!("{e:#}")}));
            }
        }
        self.keys = None;
        self.next_saf = None;
        self.next_print = None;
        self.cfg.params = self.mnt.base_params.clone();
        self.cfg.tmk = self.mnt.base_tmk.clone();
        self.host.drop_connection();
        self.power_up();
        Box::pin(self.maintenance_start()).await;
    }
}
