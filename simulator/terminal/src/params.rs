//! What a terminal is told before it sells: its identity, its merchant, its limits.
//!
//! On the default bench these come from the bench file (`provisioning:`); the TMS
//! takes them over later. Every field has a default so a bench file names only what it
//! changes.

use serde::{Deserialize, Serialize};

/// A terminal's parameters (merchant, identity, currency, limits, timers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Version of this parameter set (reported by the terminal, printed on reports).
    pub version: String,
    /// Terminal id (DE 41, 8 characters).
    pub tid: String,
    /// Merchant id (DE 42, 15 characters).
    pub mid: String,
    pub merchant_name: String,
    pub merchant_address: Vec<String>,
    /// Merchant category code (DE 18).
    pub mcc: String,
    /// ISO 4217 numeric (DE 49) and alphabetic code, and minor-unit exponent.
    pub currency: u16,
    pub currency_alpha: String,
    pub currency_exponent: u8,
    /// ISO 3166 numeric country code of the terminal (9F1A).
    pub country: u16,
    /// How long to wait for the host's answer before the sale is given up and reversed.
    pub host_timeout_ms: u64,
    /// Time between two attempts to deliver a queued reversal or advice.
    pub retry_interval_ms: u64,
    /// How long to wait for a card after the amount is shown.
    pub card_timeout_ms: u64,
    /// How long to wait for the PIN.
    pub pin_timeout_ms: u64,
    /// Contactless: above this amount (minor units) the cardholder must enter a PIN.
    pub contactless_cvm_limit: u64,
    /// Contactless: above this amount the terminal asks for the chip instead.
    pub contactless_limit: u64,
    /// Training mode: nothing goes to the host, receipts say TRAINING.
    pub training: bool,
    /// Merchant discount rate in percent per card kind, for the X/Z reports.
    pub fees: Fees,
    pub receipt_header: Vec<String>,
    pub receipt_footer: Vec<String>,
    /// Sign MAC (DE 64) on financial messages once session keys are loaded.
    pub mac: bool,
    /// Call the TMS home every this many milliseconds (0: only at first start, on F5 and
    /// after an update).
    pub tms_interval_ms: u64,
    /// MUTATION TESTING ONLY (`poslab chaos --unsafe-no-reversal`): a request whose answer
    /// never came is not reversed, so the host may keep a charge the cash register was
    /// told did not happen. Money-unsafe by design; never set it on a real terminal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unsafe_no_reversal: bool,
    /// The CA public keys offline data authentication uses (by RID and index). Absent:
    /// the test CAs of `fixtures/keys/oda-test-keys.yaml`; the TMS sends them with its
    /// parameters, and a list without a key withdraws it.
    pub ca_keys: Option<Vec<CaPublicKey>>,
    /// EMV application parameters by AID (terminal action codes, limits). Absent, or no
    /// entry for the card's AID: the terminal's built-in denial code (CVM failed).
    pub applications: Option<Vec<Application>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fees {
    pub debit: f64,
    pub credit: f64,
    pub foreign: f64,
}

impl Default for Fees {
    fn default() -> Self {
        Fees {
            debit: 0.3,
            credit: 0.9,
            foreign: 1.9,
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            version: "1".into(),
            tid: "00000001".into(),
            mid: "000000000000001".into(),
            merchant_name: "POSLAB DEMO SHOP".into(),
            merchant_address: vec!["1 TEST STREET".into(), "10115 BERLIN".into()],
            mcc: "5411".into(),
            currency: 978,
            currency_alpha: "EUR".into(),
            currency_exponent: 2,
            country: 276,
            host_timeout_ms: 30_000,
            retry_interval_ms: 30_000,
            card_timeout_ms: 60_000,
            pin_timeout_ms: 30_000,
            contactless_cvm_limit: 5_000,
            contactless_limit: 25_000,
            training: false,
            fees: Fees::default(),
            receipt_header: Vec::new(),
            receipt_footer: vec!["THANK YOU".into()],
            mac: true,
            tms_interval_ms: 0,
            unsafe_no_reversal: false,
            ca_keys: None,
            applications: None,
        }
    }
}

impl Params {
    /// The CA public keys in force: the parameters' or the built-in test CAs.
    pub fn ca_public_keys(&self) -> Vec<CaPublicKey> {
        self.ca_keys.clone().unwrap_or_else(CaPublicKey::test_keys)
    }

    /// Whether the set can be taken as a whole: every CA key parses and its check sum
    /// (when given) is right. A terminal refuses a set that fails, and keeps the old one.
    pub fn check(&self) -> Result<(), String> {
        for (i, k) in self.ca_keys.iter().flatten().enumerate() {
            k.key().map_err(|e| format!("ca_keys[{i}]: {e}"))?;
        }
        for (i, a) in self.applications.iter().flatten().enumerate() {
            a.check().map_err(|e| format!("applications[{i}]: {e}"))?;
        }
        Ok(())
    }

    /// The parameters of the application `aid` the card selected: the entry whose AID is
    /// the longest prefix of it (partial selection).
    pub fn application(&self, aid: &[u8]) -> Option<&Application> {
        let aid = hex::encode_upper(aid);
        self.applications
            .iter()
            .flatten()
            .filter(|a| aid.starts_with(&a.aid.trim().to_ascii_uppercase()))
            .max_by_key(|a| a.aid.trim().len())
    }

    /// `minor` units as text with the currency's exponent: 4250 → "42.50".
    pub fn format_amount(&self, minor: u64) -> String {
        format_amount(minor, self.currency_exponent)
    }
}

/// `minor` units as text: 4250 with exponent 2 → "42.50".
pub fn format_amount(minor: u64, exponent: u8) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let scale = 10u64.pow(u32::from(exponent.min(9)));
    format!(
        "{}.{:0width$}",
        minor / scale,
        minor % scale,
        width = usize::from(exponent.min(9))
    )
}

/// "42.50" (or "42,50", "42") → 4250 minor units with exponent 2; `None` when it is
/// not an amount or has more decimals than the currency.
pub fn parse_amount(text: &str, exponent: u8) -> Option<u64> {
    let text = text.trim().replace(',', ".");
    let (units, frac) = match text.split_once('.') {
        Some((u, f)) => (u, f),
        None => (text.as_str(), ""),
    };
    if units.is_empty()
        || !units.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || frac.len() > usize::from(exponent)
    {
        return None;
    }
    let scale = 10u64.checked_pow(u32::from(exponent))?;
    let units: u64 = units.parse().ok()?;
    let mut f: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..usize::from(exponent) {
        f *= 10;
    }
    units.checked_mul(scale)?.checked_add(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn amounts_format_and_parse() {
        assert_eq!(format_amount(4250, 2), "42.50");
        assert_eq!(format_amount(5, 2), "0.05");
        assert_eq!(format_amount(7, 0), "7");
        assert_eq!(parse_amount("42.50", 2), Some(4250));
        assert_eq!(parse_amount("42,5", 2), Some(4250));
        assert_eq!(parse_amount("42", 2), Some(4200));
        assert_eq!(parse_amount("4.255", 2), None);
        assert_eq!(parse_amount("-1", 2), None);
        assert_eq!(parse_amount("", 2), None);
    }

    proptest! {
        #[test]
        fn amount_text_round_trips(minor in 0u64..1_000_000_000_000, exp in 0u8..4) {
            prop_assert_eq!(parse_amount(&format_amount(minor, exp), exp), Some(minor));
        }
    }
}

/// EMV application parameters for one AID (EMV Book 4, terminal action analysis): the
/// terminal action codes (hex, 5 bytes each, like the TVR) and limits in minor units.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// The AID, hex (5 to 16 bytes); a card's AID that starts with it matches.
    pub aid: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub app_version: String,
    pub tac_default: String,
    pub tac_denial: String,
    pub tac_online: String,
    #[serde(default)]
    pub floor_limit: u64,
    #[serde(default)]
    pub cvm_limit: u64,
}

impl Application {
    fn code(field: &str, v: &str) -> Result<[u8; 5], String> {
        hex::decode(v.trim())
            .ok()
            .and_then(|b| <[u8; 5]>::try_from(b.as_slice()).ok())
            .ok_or_else(|| format!("{field}: 5 bytes of hex expected, got {v:?}"))
    }

    pub fn tac_denial(&self) -> Result<[u8; 5], String> {
        Application::code("tac_denial", &self.tac_denial)
    }

    pub fn tac_online(&self) -> Result<[u8; 5], String> {
        Application::code("tac_online", &self.tac_online)
    }

    pub fn tac_default(&self) -> Result<[u8; 5], String> {
        Application::code("tac_default", &self.tac_default)
    }

    fn check(&self) -> Result<(), String> {
        let aid = hex::decode(self.aid.trim())
            .map_err(|_| format!("aid: hex expected, got {:?}", self.aid))?;
        if !(5..=16).contains(&aid.len()) {
            return Err(format!("aid: 5 to 16 bytes expected, got {}", aid.len()));
        }
        self.tac_denial()?;
        self.tac_online()?;
        self.tac_default()?;
        Ok(())
    }
}

/// A CA public key as a terminal's parameters carry it (EMV Book 2, 11.2.2): RID, index,
/// expiry, modulus, exponent and the SHA-1 check sum over RID, index, modulus and
/// exponent, all hex. Public material: it is printed as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaPublicKey {
    pub rid: String,
    pub index: String,
    /// YYMMDD (or YYYYMMDD): the key is used through the end of that month.
    pub expiry: String,
    pub exponent: String,
    pub modulus: String,
    /// Empty: not checked.
    #[serde(default)]
    pub checksum: String,
}

impl CaPublicKey {
    /// The key, once its fields and its check sum are right.
    pub fn key(&self) -> Result<poslab_emv::oda::CaKey, String> {
        let bytes = |field: &str, v: &str| {
            hex::decode(v.trim()).map_err(|_| format!("{field}: expected hex bytes, got {v:?}"))
        };
        let rid = bytes("rid", &self.rid)?;
        let rid: [u8; 5] = rid
            .as_slice()
            .try_into()
            .map_err(|_| format!("rid: 5 bytes expected, got {}", rid.len()))?;
        let index = match bytes("index", &self.index)?.as_slice() {
            [i] => *i,
            other => return Err(format!("index: 1 byte expected, got {}", other.len())),
        };
        self.expiry_yymm()?;
        let modulus = bytes("modulus", &self.modulus)?;
        let exponent = bytes("exponent", &self.exponent)?;
        if !self.checksum.trim().is_empty() {
            let want = bytes("checksum", &self.checksum)?;
            let have = poslab_emv::oda::ca_key_checksum(&rid, index, &modulus, &exponent);
            if want != have {
                return Err(format!(
                    "key {} {:02X}: check sum {} does not match the key (SHA-1 {})",
                    self.rid.to_ascii_uppercase(),
                    index,
                    self.checksum.trim().to_ascii_uppercase(),
                    hex::encode_upper(have)
                ));
            }
        }
        let key = poslab_crypto::RsaPublic::from_parts(&modulus, &exponent)
            .map_err(|e| format!("key {} {index:02X}: {e}", self.rid))?;
        Ok(poslab_emv::oda::CaKey { rid, index, key })
    }

    /// The expiry as YYMM.
    pub fn expiry_yymm(&self) -> Result<u16, String> {
        let e = self.expiry.trim();
        let yymmdd = match e.len() {
            6 => e,
            8 => e.get(2..).unwrap_or(""),
            _ => "",
        };
        let ok = yymmdd.len() == 6 && yymmdd.bytes().all(|b| b.is_ascii_digit());
        let yymm: u16 = yymmdd
            .get(..4)
            .filter(|_| ok)
            .and_then(|v| v.parse().ok())
            .filter(|v| (1..=12).contains(&(v % 100)))
            .ok_or_else(|| format!("expiry: YYMMDD or YYYYMMDD expected, got {e:?}"))?;
        Ok(yymm)
    }

    /// Whether the key is past its expiry on `today_yymm`.
    pub fn expired(&self, today_yymm: u16) -> bool {
        self.expiry_yymm().is_ok_and(|e| e < today_yymm)
    }

    /// The test CAs of `fixtures/keys/oda-test-keys.yaml`, with their check sums.
    pub fn test_keys() -> Vec<CaPublicKey> {
        let Ok(file) = poslab_emv::oda::keyfile::OdaKeyFile::parse(poslab_emv::oda::TEST_KEYS)
        else {
            return Vec::new();
        };
        file.ca
            .iter()
            .filter_map(|k| {
                let rid = k.rid.clone()?;
                let index = k.index.clone()?;
                let mut c = CaPublicKey {
                    rid,
                    index,
                    expiry: k.expiry.clone().unwrap_or_else(|| "491231".into()),
                    exponent: k.exponent.trim().to_ascii_uppercase(),
                    modulus: k.modulus.trim().to_ascii_uppercase(),
                    checksum: String::new(),
                };
                let parsed = c.key().ok()?;
                c.checksum = hex::encode_upper(poslab_emv::oda::ca_key_checksum(
                    &parsed.rid,
                    parsed.index,
                    &hex::decode(&c.modulus).ok()?,
                    &hex::decode(&c.exponent).ok()?,
                ));
                Some(c)
            })
            .collect()
    }
}

#[cfg(test)]
mod ca_key_tests {
    use super::*;

    fn visa(tac_denial: &str) -> Application {
        Application {
            aid: "A000000003".into(),
            label: "VISA".into(),
            app_version: "0096".into(),
            tac_default: "DC4000A800".into(),
            tac_denial: tac_denial.into(),
            tac_online: "DC4004F800".into(),
            floor_limit: 0,
            cvm_limit: 5000,
        }
    }

    #[test]
    fn applications_match_by_the_longest_aid_prefix_and_are_checked() {
        let mut credit = visa("0800000000");
        credit.aid = "A0000000031010".into();
        let p = Params {
            applications: Some(vec![visa("0010000000"), credit]),
            ..Params::default()
        };
        assert_eq!(p.check(), Ok(()));
        let a = p.application(&[0xA0, 0, 0, 0, 3, 0x10, 0x10]).unwrap();
        assert_eq!(a.tac_denial(), Ok([8, 0, 0, 0, 0]));
        let a = p.application(&[0xA0, 0, 0, 0, 3, 0x20, 0x10]).unwrap();
        assert_eq!(a.tac_denial(), Ok([0, 0x10, 0, 0, 0]));
        assert!(p.application(&[0xA0, 0, 0, 0, 4, 0x10, 0x10]).is_none());
        let bad = Params {
            applications: Some(vec![visa("08000000")]),
            ..Params::default()
        };
        assert_eq!(
            bad.check(),
            Err("applications[0]: tac_denial: 5 bytes of hex expected, got \"08000000\"".into())
        );
    }

    #[test]
    fn the_test_cas_load_with_their_check_sums() {
        let keys = CaPublicKey::test_keys();
        assert!(keys.len() >= 2, "{keys:?}");
        for k in &keys {
            let ca = k.key().unwrap();
            assert_eq!(hex::encode_upper(ca.rid), k.rid.to_ascii_uppercase());
            assert_eq!(k.checksum.len(), 40);
        }
        let p = Params {
            ca_keys: Some(keys.clone()),
            ..Params::default()
        };
        assert_eq!(p.check(), Ok(()));
        assert_eq!(Params::default().ca_public_keys(), keys);
    }

    #[test]
    fn a_wrong_check_sum_or_field_is_refused_with_its_place() {
        let mut k = CaPublicKey::test_keys().remove(0);
        k.checksum.replace_range(
            0..2,
            if k.checksum.starts_with("00") {
                "01"
            } else {
                "00"
            },
        );
        let e = k.key().unwrap_err();
        assert!(e.contains("check sum"), "{e}");
        let p = Params {
            ca_keys: Some(vec![k.clone()]),
            ..Params::default()
        };
        assert!(p.check().unwrap_err().starts_with("ca_keys[0]: "));
        let mut bad = k.clone();
        bad.checksum.clear();
        bad.rid = "A0000000".into();
        assert!(bad.key().unwrap_err().starts_with("rid: 5 bytes"));
        bad = k.clone();
        bad.checksum.clear();
        bad.expiry = "2913".into();
        assert!(bad.key().unwrap_err().starts_with("expiry"));
        bad.expiry = "20291231".into();
        assert_eq!(bad.expiry_yymm(), Ok(2912));
        assert!(!bad.expired(2912));
        assert!(bad.expired(3001));
    }
}
