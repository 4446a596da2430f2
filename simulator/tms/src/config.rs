//! The TMS configuration (`poslab tms --config FILE`; the built-in default is
//! scenarios/tms/default.yaml). Parsing is sans-IO (`&str` in); files the config names
//! (key files, package images) are read by the caller's loader in
//! [`crate::device::TmsDevice::with_loader`]. Every section has defaults, so an empty file
//! is a working TMS for the default bench terminal.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::TmsError;
use crate::params::TmsParams;

/// The built-in default configuration.
pub const DEFAULT_YAML: &str = include_str!("../../../scenarios/tms/default.yaml");

/// Sections absent from a file are empty (no merchants, ...), not the default's.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default = "Config::empty", deny_unknown_fields)]
pub struct Config {
    pub keys: KeysConfig,
    pub merchants: Vec<Merchant>,
    pub terminals: Vec<TerminalEntry>,
    pub parameter_sets: Vec<ParameterSetConfig>,
    pub packages: Vec<PackageConfig>,
    pub faults: Vec<Fault>,
}

impl Default for Config {
    /// The built-in default (scenarios/tms/default.yaml).
    fn default() -> Self {
        Config::from_yaml(DEFAULT_YAML, "builtin:scenarios/tms/default.yaml")
            .unwrap_or_else(|_| Config::empty())
    }
}

impl Config {
    /// No merchants, terminals, sets or packages; built-in keys.
    pub fn empty() -> Config {
        Config {
            keys: KeysConfig::default(),
            merchants: Vec::new(),
            terminals: Vec::new(),
            parameter_sets: Vec::new(),
            packages: Vec::new(),
            faults: Vec::new(),
        }
    }

    /// Parses and checks a configuration; `origin` names the file in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Config, TmsError> {
        let cfg: Config = serde_saphyr::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            let options = serde_saphyr::render_options! {
                snippets: serde_saphyr::SnippetMode::Off,
            };
            let mut message = e.without_snippet().render_with_options(options);
            if let Some(cut) = message.find(" at line ") {
                message.truncate(cut);
            }
            TmsError::Config {
                path: format!("{origin}{at}"),
                reason: message,
            }
        })?;
        cfg.check(origin)?;
        Ok(cfg)
    }

    fn check(&self, origin: &str) -> Result<(), TmsError> {
        let err = |path: String, reason: String| TmsError::Config {
            path: format!("{origin}: {path}"),
            reason,
        };
        for (i, t) in self.terminals.iter().enumerate() {
            if t.tid.len() != 8 || !t.tid.is_ascii() {
                return Err(err(
                    format!("terminals[{i}].tid"),
                    "8 ASCII characters expected".into(),
                ));
            }
            if self.terminals.iter().filter(|o| o.tid == t.tid).count() > 1 {
                return Err(err(
                    format!("terminals[{i}].tid"),
                    format!("duplicate TID {}", t.tid),
                ));
            }
            if let Some(s) = &t.serial {
                if self
                    .terminals
                    .iter()
                    .filter(|o| o.serial.as_ref() == Some(s))
                    .count()
                    > 1
                {
                    return Err(err(
                        format!("terminals[{i}].serial"),
                        format!("serial {s} bound twice"),
                    ));
                }
            }
            if !self.merchants.iter().any(|m| m.mid == t.mid) {
                return Err(err(
                    format!("terminals[{i}].mid"),
                    format!("no merchant {}", t.mid),
                ));
            }
            if let Some(p) = &t.parameters {
                if !self.parameter_sets.iter().any(|s| &s.name == p) {
                    return Err(err(
                        format!("terminals[{i}].parameters"),
                        format!("no parameter set {p}"),
                    ));
                }
            }
        }
        for (i, m) in self.merchants.iter().enumerate() {
            if m.mid.len() != 15 || !m.mid.is_ascii() {
                return Err(err(
                    format!("merchants[{i}].mid"),
                    "15 ASCII characters expected".into(),
                ));
            }
            if let Some(p) = &m.parameters {
                if !self.parameter_sets.iter().any(|s| &s.name == p) {
                    return Err(err(
                        format!("merchants[{i}].parameters"),
                        format!("no parameter set {p}"),
                    ));
                }
            }
        }
        for (i, p) in self.packages.iter().enumerate() {
            let path = format!("packages[{i}] ({})", p.id);
            if p.id.is_empty() || p.id.len() > 64 || !p.id.is_ascii() || p.id.contains(',') {
                return Err(err(path, "id: 1 to 64 ASCII characters, no comma".into()));
            }
            match (&p.image.file, &p.image.generate) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(err(
                        format!("{path}.image"),
                        "exactly one of file, generate".into(),
                    ))
                }
            }
            if let Some(g) = &p.image.generate {
                if g.size == 0 || g.size > 64 << 20 {
                    return Err(err(
                        format!("{path}.image.generate.size"),
                        "1 byte to 64 MiB".into(),
                    ));
                }
            }
            for (w, wave) in p.waves.iter().enumerate() {
                if let Some(at) = &wave.at {
                    humantime::parse_duration(at).map_err(|e| {
                        err(
                            format!("{path}.waves[{w}].at"),
                            format!("{e} (e.g. \"90s\")"),
                        )
                    })?;
                }
            }
            if self.packages.iter().filter(|o| o.id == p.id).count() > 1 {
                return Err(err(path, "duplicate package id".into()));
            }
        }
        for (i, s) in self.parameter_sets.iter().enumerate() {
            if self
                .parameter_sets
                .iter()
                .filter(|o| o.name == s.name)
                .count()
                > 1
            {
                return Err(err(
                    format!("parameter_sets[{i}].name"),
                    format!("duplicate {}", s.name),
                ));
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            f.check().map_err(|r| err(format!("faults[{i}]"), r))?;
        }
        Ok(())
    }
}

/// Where the keys come from.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// The key file shared with the acquirer host (absent: the built-in
    /// fixtures/keys/test-keys.yaml, as `poslab host` and the bench use).
    pub file: Option<String>,
    /// The terminal master key's name in it.
    pub master_key: String,
    /// The DUKPT BDK's name in it (for terminals with `key_mode: dukpt`).
    pub bdk: String,
    /// The transport key file (absent: built-in fixtures/tms/test-transport-key.yaml).
    pub transport_file: Option<String>,
    pub transport_key: String,
    /// The package signing key pair (absent: built-in fixtures/tms/test-signing-key.yaml).
    pub signing_file: Option<String>,
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            file: None,
            master_key: "tmk".into(),
            bdk: "bdk-tdes".into(),
            transport_file: None,
            transport_key: "ttk".into(),
            signing_file: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Merchant {
    /// DE 42, 15 characters.
    pub mid: String,
    pub name: String,
    pub address: Vec<String>,
    pub mcc: String,
    /// The parameter set its terminals run (by name; absent: the first set).
    pub parameters: Option<String>,
}

/// How a terminal gets its working keys.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyMode {
    /// Master key, then PIN, MAC and data keys under it.
    #[default]
    MasterSession,
    /// Master key, then a DUKPT initial key and KSN.
    Dukpt,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TerminalEntry {
    /// DE 41, 8 characters.
    pub tid: String,
    pub mid: String,
    /// The serial number bound to the TID (absent: the first terminal calling home with
    /// this TID in DE 41 is bound).
    pub serial: Option<String>,
    pub model: Option<String>,
    pub key_mode: KeyMode,
    /// A key file whose master key this terminal gets instead (e.g.
    /// fixtures/keys/wrong-master-key.yaml to rehearse a terminal the host cannot serve).
    pub keys_file: Option<String>,
    /// Parameter set name (absent: the merchant's).
    pub parameters: Option<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ParameterSetConfig {
    pub name: String,
    pub version: String,
    /// Values by the terminal's `Params` field names.
    pub terminal: Map<String, Value>,
    pub tms: TmsParams,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PackageConfig {
    pub id: String,
    pub version: String,
    pub image: ImageSource,
    pub target: Target,
    /// Rollout waves in order (none: everyone targeted at once).
    pub waves: Vec<Wave>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ImageSource {
    /// A file (read by the loader).
    pub file: Option<String>,
    /// A generated test image (poslab_tms::package::generate_image).
    pub generate: Option<Generate>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Generate {
    pub size: usize,
    pub seed: u64,
    /// `ok` or `fail`: what the image's health check will say after the reboot.
    pub health: String,
}

impl Default for Generate {
    fn default() -> Self {
        Generate {
            size: 65_536,
            seed: 1,
            health: "ok".into(),
        }
    }
}

/// Who a package is for; empty lists match everyone.
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Target {
    pub tids: Vec<String>,
    pub models: Vec<String>,
    /// Firmware versions the terminal must run now.
    pub versions: Vec<String>,
}

/// One rollout wave: how many terminals, and when it opens (all conditions absent: at
/// once; otherwise when any given condition holds).
#[derive(Clone, Debug, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Wave {
    /// Terminals in this wave (absent: no limit).
    pub size: Option<usize>,
    /// Opens after this many successful installs of the package.
    pub after_successes: Option<u32>,
    /// Opens at this time after the TMS started ("90s", "10m").
    pub at: Option<String>,
    /// More failed installs than this in the wave halt the rollout.
    pub max_failures: Option<u32>,
}

/// A fault, standing (config) or set at run time ([`crate::device::TmsDevice::set_fault`]).
#[derive(Clone, Debug, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub fault: FaultKind,
    /// Only for this TID (absent: every terminal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// How many times it fires (absent: always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl Fault {
    pub fn new(fault: FaultKind) -> Fault {
        Fault {
            fault,
            tid: None,
            times: None,
        }
    }

    pub fn for_tid(mut self, tid: &str) -> Fault {
        self.tid = Some(tid.to_string());
        self
    }

    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }

    fn check(&self) -> Result<(), String> {
        match &self.fault {
            FaultKind::DownAtPercent(p) if *p > 100 => {
                Err(format!("down_at_percent {p}: 0 to 100"))
            }
            FaultKind::WrongKcv(u)
                if !["tmk", "pin", "mac", "data", "ipek"].contains(&u.as_str()) =>
            {
                Err(format!("wrong_kcv {u:?}: one of tmk, pin, mac, data, ipek"))
            }
            _ => Ok(()),
        }
    }
}

/// What goes wrong.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// The chunk holding this image offset is served with that byte flipped.
    CorruptChunk(u64),
    /// Packages are offered with a signature that does not verify.
    WrongSignature,
    /// Packages are offered and served cut to this many bytes (digest of the whole).
    TruncatedImage(u64),
    /// The connection is closed instead of answering a chunk request, after this many
    /// chunks were served on it.
    DownAfterChunks(u32),
    /// The connection is closed at the first chunk request at or past this percentage
    /// of the image.
    DownAtPercent(u8),
    /// Packages are offered (and signed) as this version whatever the image is.
    WrongVersion(String),
    /// The key of this usage (`tmk`, `pin`, `mac`, `data`, `ipek`) is sent with a wrong
    /// check value.
    WrongKcv(String),
    /// Every connection is closed at its first frame (the TMS is down).
    Down,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_loads() {
        let c = Config::from_yaml(DEFAULT_YAML, "default.yaml").unwrap();
        assert!(!c.terminals.is_empty());
        assert!(!c.parameter_sets.is_empty());
        assert_eq!(Config::default(), c);
    }

    #[test]
    fn errors_name_the_place() {
        let e = Config::from_yaml("terminals: [{tid: \"1\", mid: x}]", "t.yaml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yaml: terminals[0].tid: 8 ASCII characters expected"
        );
        let e = Config::from_yaml("bogus: 1", "t.yaml").unwrap_err();
        assert!(e.to_string().starts_with("t.yaml line 1"), "{e}");
        let e =
            Config::from_yaml("faults: [{fault: {down_at_percent: 120}}]", "t.yaml").unwrap_err();
        assert!(e.to_string().contains("0 to 100"), "{e}");
        let e = Config::from_yaml("packages: [{id: a, version: '1', image: {}}]", "t.yaml")
            .unwrap_err();
        assert!(
            e.to_string().contains("exactly one of file, generate"),
            "{e}"
        );
    }

    #[test]
    fn faults_parse() {
        let c = Config::from_yaml(
            "faults:\n  - {fault: {corrupt_chunk: 4096}, tid: \"00000001\", times: 1}\n  - {fault: wrong_signature}\n  - {fault: {wrong_kcv: pin}}\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(c.faults[0].fault, FaultKind::CorruptChunk(4096));
        assert_eq!(c.faults[0].times, Some(1));
        assert_eq!(c.faults[1].fault, FaultKind::WrongSignature);
    }
}
