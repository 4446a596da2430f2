//! The bench's `tms` node: poslab's TMS (`poslab_tms::device::TmsDevice` behind
//! [`crate::tms::TmsServer`]) set up so that the terminal under test is provisioned by it
//! with exactly what the bench file says.
//!
//! The TMS's configuration is `nodes.tms.emulated.config` (a `poslab tms --config` file),
//! or the built-in default without its packages (a bench offers firmware only when a step
//! releases a package). On top of it the bench binds the terminal: its TID and MID and
//! serial number (`PT-0001`), and a parameter set `bench` whose values are the bench's
//! `provisioning.parameters` (with the scenario's overrides) — so a terminal provisioned
//! by the TMS sells exactly as one provisioned from the bench file did. The master key the
//! TMS delivers is the bench's key file's master key (the host's).

use poslab_bench::Bench;
use poslab_terminal::params::Params;

use poslab_tms::config::{Config, Merchant, PackageConfig, ParameterSetConfig, TerminalEntry};
use poslab_tms::device::TmsDevice;

use crate::journal::Journal;
use crate::tms::TmsServer;

/// The serial number of the bench's terminal.
pub const BENCH_SERIAL: &str = "PT-0001";

/// The bench's TMS.
#[derive(Clone)]
pub struct TmsNode {
    pub server: TmsServer,
}

fn loader(f: &str) -> Result<Vec<u8>, String> {
    std::fs::read(f).map_err(|e| format!("cannot read: {e}"))
}

impl TmsNode {
    /// Releases a package (or replaces the one with its id, whose rollout starts over);
    /// what the TMS recorded so far and its armed faults stay.
    pub fn publish_package(&self, package: PackageConfig) -> anyhow::Result<()> {
        let device = self.server.device();
        let mut device = device.lock().unwrap_or_else(|p| p.into_inner());
        match package.image.file.clone() {
            Some(f) => {
                let image = loader(&f).map_err(|e| anyhow::anyhow!("{f}: {e}"))?;
                device.publish_image(package, image)
            }
            None => device.publish_package(package),
        }
        .map_err(|e| anyhow::anyhow!("tms: {e}"))
    }
}

/// The TMS of `bench` (none when the bench has no `tms` node).
pub fn server(
    bench: &Bench,
    params: &Params,
    seed: u64,
    journal: &Journal,
) -> anyhow::Result<Option<TmsNode>> {
    let Some(node) = bench.node("tms") else {
        return Ok(None);
    };
    if !node.is_emulated() {
        return Ok(None);
    }
    let file = node.emulated.as_ref().and_then(|e| e.config.clone());
    let mut config = match &file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("nodes.tms.emulated.config {path}: {e}"))?;
            Config::from_yaml(&text, path)?
        }
        None => {
            let mut c = Config::from_yaml(
                poslab_tms::config::DEFAULT_YAML,
                "builtin:scenarios/tms/default.yaml",
            )?;
            c.packages.clear();
            c
        }
    };
    let key_file = bench
        .file()
        .provisioning
        .as_ref()
        .and_then(|p| p.keys.clone());
    if key_file.is_some() {
        config.keys.file = key_file;
    }
    if let Some(name) = bench
        .file()
        .provisioning
        .as_ref()
        .and_then(|p| p.master_key.clone())
    {
        config.keys.master_key = name;
    }
    bind_terminal(&mut config, params, BENCH_SERIAL)?;
    let device = TmsDevice::with_loader(config.clone(), seed, &loader)
        .map_err(|e| anyhow::anyhow!("bench {}: tms: {e}", bench.source()))?;
    Ok(Some(TmsNode {
        server: TmsServer::new(device, journal.clone()),
    }))
}

/// Binds the terminal `serial` to `params.tid` of merchant `params.mid`, with a parameter
/// set `bench` holding `params`.
pub fn bind_terminal(config: &mut Config, params: &Params, serial: &str) -> anyhow::Result<()> {
    let mut terminal = match serde_json::to_value(params)? {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    terminal.remove("version");
    config.parameter_sets.retain(|s| s.name != "bench");
    config.parameter_sets.push(ParameterSetConfig {
        name: "bench".into(),
        version: params.version.clone(),
        terminal,
        ..ParameterSetConfig::default()
    });
    if !config.merchants.iter().any(|m| m.mid == params.mid) {
        config.merchants.push(Merchant {
            mid: params.mid.clone(),
            name: params.merchant_name.clone(),
            address: params.merchant_address.clone(),
            mcc: params.mcc.clone(),
            parameters: Some("bench".into()),
        });
    }
    config
        .terminals
        .retain(|t| t.tid != params.tid && t.serial.as_deref() != Some(serial));
    config.terminals.insert(
        0,
        TerminalEntry {
            tid: params.tid.clone(),
            mid: params.mid.clone(),
            serial: Some(serial.into()),
            model: Some("poslab-ref".into()),
            parameters: Some("bench".into()),
            ..TerminalEntry::default()
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_terminal_is_bound_with_the_bench_parameters() {
        let mut c = Config::from_yaml(poslab_tms::config::DEFAULT_YAML, "default").unwrap();
        let p = Params {
            tid: "00000007".into(),
            mid: "999999999999999".into(),
            merchant_name: "CORNER BAKERY".into(),
            ..Params::default()
        };
        bind_terminal(&mut c, &p, "PT-9").unwrap();
        let t = &c.terminals[0];
        assert_eq!(
            (t.tid.as_str(), t.serial.as_deref()),
            ("00000007", Some("PT-9"))
        );
        let set = c.parameter_sets.iter().find(|s| s.name == "bench").unwrap();
        assert_eq!(set.terminal["merchant_name"], "CORNER BAKERY");
        assert!(c.merchants.iter().any(|m| m.mid == "999999999999999"));
        assert!(TmsDevice::new(c, 1).is_ok());
    }
}
