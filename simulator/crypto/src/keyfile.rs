//! The test key file (`fixtures/keys/*.yaml`): named keys with their algorithm, value or
//! components, KCV, and for DUKPT BDKs the initial KSN. Parsing is sans-IO (`&str` in);
//! every KCV is checked, so a typo in a key is caught at load time, and errors name the
//! entry (`keys[2] (zpk).kcv`) but never echo key material.
//!
//! The file must say `test_only: true`: poslab is a test bench and refuses to load a key
//! file that does not declare itself test material.

use serde::Deserialize;

use crate::dukpt::Ksn;
use crate::error::{CryptoError, Result};
use crate::key::{Kcv, KcvMethod, Key, KeyAlgorithm};
use crate::keyx::combine_components;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    test_only: bool,
    keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    #[serde(default)]
    label: String,
    algorithm: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    components: Vec<RawComponent>,
    kcv: String,
    #[serde(default)]
    kcv_cmac: Option<String>,
    #[serde(default)]
    initial_ksn: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    value: String,
    kcv: String,
}

/// One named key of a key file.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub name: String,
    pub label: String,
    pub key: Key,
    /// For a DUKPT BDK: the initial KSN of the device family (counter zero).
    pub initial_ksn: Option<Ksn>,
}

/// A parsed, KCV-checked key file.
#[derive(Debug, Clone)]
pub struct KeyFile {
    entries: Vec<KeyEntry>,
}

fn err(path: String, reason: impl Into<String>) -> CryptoError {
    CryptoError::KeyFile {
        path,
        reason: reason.into(),
    }
}

/// Replaces every run of 6 or more hex digits by `…`, so a parser message can never carry
/// a key value.
fn redact_hex_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        if run.len() >= 6 {
            out.push('…');
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

impl KeyFile {
    /// Parses and checks a key file's text.
    pub fn parse(text: &str) -> Result<KeyFile> {
        let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_else(|| "document".into());
            let options = serde_saphyr::render_options! {
                snippets: serde_saphyr::SnippetMode::Off,
            };
            let mut message = e.without_snippet().render_with_options(options);
            if let Some(cut) = message.find(" at line ") {
                message.truncate(cut);
            }
            err(at, redact_hex_runs(&message))
        })?;
        if !raw.test_only {
            return Err(err(
                "test_only".into(),
                "key files must declare `test_only: true` (poslab loads test keys only)",
            ));
        }
        let mut entries: Vec<KeyEntry> = Vec::with_capacity(raw.keys.len());
        for (i, k) in raw.keys.into_iter().enumerate() {
            let path = format!("keys[{i}] ({})", redact_hex_runs(&k.name));
            if entries.iter().any(|e| e.name == k.name) {
                return Err(err(path, "duplicate key name"));
            }
            entries.push(parse_entry(&path, k)?);
        }
        Ok(KeyFile { entries })
    }

    pub fn entries(&self) -> &[KeyEntry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&KeyEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The key named `name`, or an error naming it.
    pub fn key(&self, name: &str) -> Result<&Key> {
        self.get(name)
            .map(|e| &e.key)
            .ok_or_else(|| err(format!("keys.{name}"), "no such key"))
    }
}

fn parse_entry(path: &str, k: RawKey) -> Result<KeyEntry> {
    let alg = KeyAlgorithm::from_name(&k.algorithm).ok_or_else(|| {
        err(
            format!("{path}.algorithm"),
            "unknown algorithm (tdes2, tdes3, aes128, aes192, aes256)",
        )
    })?;
    let key_at = |p: String, value: &str, kcv: &str| -> Result<Key> {
        let key =
            Key::from_hex(alg, value).map_err(|e| err(format!("{p}.value"), e.to_string()))?;
        let kcv =
            Kcv::parse(KcvMethod::Ecb, kcv).map_err(|e| err(format!("{p}.kcv"), e.to_string()))?;
        key.check_kcv(&kcv)
            .map_err(|e| err(format!("{p}.kcv"), e.to_string()))?;
        Ok(key)
    };
    let key = match (&k.value, k.components.is_empty()) {
        (Some(v), true) => key_at(path.to_string(), v, &k.kcv)?,
        (None, false) => {
            let parts = k
                .components
                .iter()
                .enumerate()
                .map(|(j, c)| key_at(format!("{path}.components[{j}]"), &c.value, &c.kcv))
                .collect::<Result<Vec<_>>>()?;
            let key = combine_components(&parts)
                .map_err(|e| err(format!("{path}.components"), e.to_string()))?;
            let kcv = Kcv::parse(KcvMethod::Ecb, &k.kcv)
                .map_err(|e| err(format!("{path}.kcv"), e.to_string()))?;
            key.check_kcv(&kcv)
                .map_err(|e| err(format!("{path}.kcv"), e.to_string()))?;
            key
        }
        _ => {
            return Err(err(
                path.to_string(),
                "give exactly one of `value` or `components`",
            ))
        }
    };
    if let Some(c) = &k.kcv_cmac {
        let kcv = Kcv::parse(KcvMethod::Cmac, c)
            .map_err(|e| err(format!("{path}.kcv_cmac"), e.to_string()))?;
        key.check_kcv(&kcv)
            .map_err(|e| err(format!("{path}.kcv_cmac"), e.to_string()))?;
    }
    let initial_ksn = match &k.initial_ksn {
        None => None,
        Some(s) => {
            let ksn =
                Ksn::parse_hex(s).map_err(|e| err(format!("{path}.initial_ksn"), e.to_string()))?;
            if ksn.counter() != 0 {
                return Err(err(
                    format!("{path}.initial_ksn"),
                    "the initial ksn must have a zero counter",
                ));
            }
            Some(ksn)
        }
    };
    Ok(KeyEntry {
        name: k.name,
        label: k.label,
        key,
        initial_ksn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../../fixtures/keys/test-keys.yaml");

    #[test]
    fn the_fixture_loads_and_every_kcv_checks() {
        let f = KeyFile::parse(FIXTURE).unwrap();
        for name in [
            "tmk",
            "zpk",
            "zak",
            "bdk-tdes",
            "bdk-aes",
            "imk-ac-visa",
            "imk-ac-mastercard",
        ] {
            let e = f.get(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(e.label.contains("TEST ONLY"), "{name} is not labelled");
        }
        assert_eq!(f.key("bdk-tdes").unwrap().kcv().to_string(), "08D7B4");
        assert!(f.get("bdk-aes").unwrap().initial_ksn.is_some());
        // Debug never shows key material
        let dump = format!("{f:?}");
        assert!(!dump.contains("0123456789ABCDEF"));
        assert!(f.key("nope").is_err());
    }

    #[test]
    fn errors_name_the_entry_and_hide_the_value() {
        let bad_kcv = "test_only: true\nkeys:\n  - name: zpk\n    algorithm: tdes2\n    value: 0123456789ABCDEFFEDCBA9876543210\n    kcv: 08D7B5\n";
        let e = KeyFile::parse(bad_kcv).unwrap_err().to_string();
        assert_eq!(
            e,
            "key file: keys[0] (zpk).kcv: kcv mismatch: expected 08D7B5, computed 08D7B4"
        );
        let not_test = "test_only: false\nkeys: []\n";
        assert!(KeyFile::parse(not_test)
            .unwrap_err()
            .to_string()
            .contains("test_only"));
        let bad_hex = "test_only: true\nkeys:\n  - name: k\n    algorithm: tdes2\n    value: 0123456789ABCDEFFEDCBA987654321X\n    kcv: 08D7B4\n";
        let e = KeyFile::parse(bad_hex).unwrap_err().to_string();
        assert!(
            e.contains("keys[0] (k).value") && !e.contains("0123456789"),
            "{e}"
        );
        let typed = "test_only: true\nkeys:\n  - name: k\n    algorithm: tdes2\n    value: [0123456789, 1]\n    kcv: 08D7B4\n";
        let e = KeyFile::parse(typed).unwrap_err().to_string();
        assert!(!e.contains("0123456789"), "{e}");
        assert!(KeyFile::parse("keys: [").is_err());
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_hex_runs("value 0123456789ab at 12"), "value … at 12");
        assert_eq!(redact_hex_runs("keys[10] bad"), "keys[10] bad");
    }
}
