//! The parameter set a terminal downloads (exchange 9C, DE 63 as JSON).
//!
//! `terminal` holds values by the field names of the reference terminal's own model
//! (`poslab_terminal::params::Params`: merchant_name, merchant_address, mcc, currency,
//! host_timeout_ms, contactless_cvm_limit, training, receipt_header, receipt_footer, ...),
//! exactly like a bench file's `provisioning.parameters`, so the terminal merges them over
//! its `Params` and there is one parameter model, not two: the CA public keys travel as
//! its `ca_keys` (RID, index, expiry, modulus, exponent, SHA-1 check sum), the EMV
//! application parameters as its `applications` (AID, terminal action codes, limits).
//! `tms` holds what that model has no field for yet (host address, retries, floor limit).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A versioned parameter set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterSet {
    pub version: String,
    /// Values for the terminal's `Params`, by field name (`version` is set from above).
    #[serde(default)]
    pub terminal: Map<String, Value>,
    #[serde(default)]
    pub tms: TmsParams,
}

/// Parameters outside the terminal's `Params` model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TmsParams {
    /// The acquirer host the terminal connects to (`host:port`).
    pub host: String,
    /// Attempts before a message to the host is given up.
    pub retries: u32,
    /// Terminal floor limit in minor units (0: every card transaction online).
    pub floor_limit: u64,
}

impl Default for TmsParams {
    fn default() -> Self {
        TmsParams {
            host: "127.0.0.1:8583".into(),
            retries: 3,
            floor_limit: 0,
        }
    }
}

impl ParameterSet {
    /// The JSON the wire carries; `terminal.version` is the set's version.
    pub fn to_json(&self) -> Vec<u8> {
        let mut s = self.clone();
        s.terminal
            .insert("version".into(), Value::String(self.version.clone()));
        serde_json::to_vec(&s).unwrap_or_default()
    }

    pub fn from_json(bytes: &[u8]) -> Result<ParameterSet, crate::TmsError> {
        serde_json::from_slice(bytes).map_err(|e| {
            crate::TmsError::field("parameters", "DE 63", format!("parameter set: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_carries_version_into_terminal_values() {
        let mut p = ParameterSet {
            version: "7".into(),
            ..Default::default()
        };
        p.terminal.insert("merchant_name".into(), "SHOP".into());
        let back = ParameterSet::from_json(&p.to_json()).unwrap();
        assert_eq!(back.terminal["version"], "7");
        assert_eq!(back.terminal["merchant_name"], "SHOP");
        assert_eq!(back.tms.retries, 3);
        assert!(ParameterSet::from_json(b"{\"version\":1}").is_err());
    }
}
