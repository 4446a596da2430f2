//! Card profiles: a test card described in YAML (see `fixtures/cards/`).
//!
//! A profile names the card's account data (PAN, expiry, service code, track 2
//! discretionary data), its interfaces, its PIN and counters, the test issuer's master key
//! and, per EMV application, the AID, PDOL, AIP, AFL, CDOLs, CVM list, the records (which
//! data objects each record holds) and any further data objects. Data the card derives
//! (tag `5A` PAN, `57` track 2 equivalent, `5F24` expiry, `5F25` effective date, `5F34` PAN
//! sequence number, `5F20` cardholder name, `5F28` issuer country, `8C`/`8D`/`8E`) need
//! not be written out again: a record lists them by tag.
//!
//! Loading checks everything a card needs (hex, lengths, digits, that every AFL entry
//! points at records that exist and every record tag has a value) and every error names
//! the file, the line and column, and what was expected. No error shows a PIN, a key or
//! a full PAN.

use std::collections::BTreeMap;
use std::fmt;

use poslab_sensitive::{mask_digit_runs, Pan, Secret, SecretKind};
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::magstripe::{ServiceCode, Track2, Yymm};
use crate::EmvError;

/// Which ways the card can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interface {
    Contact,
    Contactless,
    Magstripe,
}

/// A chip that does not work, so the terminal must fall back to the magnetic stripe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChipFault {
    /// No answer to reset and no answer to any command.
    Mute,
    /// An ATR, then this status word to every command.
    Answer(crate::apdu::StatusWord),
}

/// The test issuer's keys for one card.
#[derive(Clone, Debug)]
pub struct IssuerKeys {
    /// Issuer master key for application cryptograms (double-length TDES).
    pub imk_ac: Secret,
    /// Cryptogram version number written in the issuer application data.
    pub cvn: u8,
    /// Derivation key index written in the issuer application data.
    pub dki: u8,
    /// The ICC's RSA private key (DDA, CDA, enciphered offline PIN); its public key is
    /// certified in the profile's `9F46` (see `fixtures/keys/oda-test-keys.yaml`).
    pub icc_rsa: Option<poslab_crypto::RsaPrivate>,
}

/// One AFL entry: records `first..=last` of `sfi`, the first `oda` of them used for
/// offline data authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AflEntry {
    pub sfi: u8,
    pub first: u8,
    pub last: u8,
    pub oda: u8,
}

impl AflEntry {
    pub fn encode(&self) -> [u8; 4] {
        [self.sfi << 3, self.first, self.last, self.oda]
    }
}

/// One EMV application on the card.
#[derive(Clone)]
pub struct Application {
    pub aid: Vec<u8>,
    pub label: String,
    pub priority: Option<u8>,
    /// Kernel identifier (`9F2A`) announced in the PPSE directory.
    pub kernel_id: Option<u8>,
    /// A blocked application answers SELECT with `6283` and declines every cryptogram.
    pub blocked: bool,
    pub pdol: Vec<u8>,
    pub aip: [u8; 2],
    pub afl: Vec<AflEntry>,
    pub cdol1: Vec<u8>,
    pub cdol2: Vec<u8>,
    /// Data objects by tag (what records hold, what GET DATA may return).
    pub data: BTreeMap<u32, Vec<u8>>,
    /// Records by (SFI, record number): the tags they hold, in order.
    pub records: BTreeMap<(u8, u8), Vec<u32>>,
}

impl fmt::Debug for Application {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Application")
            .field("aid", &hex::encode_upper(&self.aid))
            .field("label", &self.label)
            .field("blocked", &self.blocked)
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

/// A whole card.
#[derive(Clone, Debug)]
pub struct CardProfile {
    pub name: String,
    pub description: String,
    pub atr: Vec<u8>,
    pub pan: Pan,
    pub pan_sequence: u8,
    pub expiry: Yymm,
    pub effective: Option<Yymm>,
    pub service_code: ServiceCode,
    pub cardholder_name: String,
    pub issuer_country: Option<u16>,
    pub track2: Track2,
    pub interfaces: Vec<Interface>,
    pub chip_fault: Option<ChipFault>,
    pub pin: Option<Secret>,
    pub pin_try_limit: u8,
    pub pin_tries_left: u8,
    pub atc: u16,
    pub last_online_atc: u16,
    /// Consecutive offline approvals the card allows before it insists on going online
    /// (0: every transaction goes online).
    pub offline_limit: u16,
    pub keys: Option<IssuerKeys>,
    /// The card answers SELECT 1PAY.SYS.DDF01 (contact directory).
    pub pse: bool,
    pub applications: Vec<Application>,
}

/// An ATR for T=1 with no historical bytes (TS 3B, T0 80, TD1 81, TD2 01, TCK 00).
pub const DEFAULT_ATR: [u8; 5] = [0x3B, 0x80, 0x81, 0x01, 0x00];

impl CardProfile {
    /// Loads a profile from YAML text; `source` (the file name) is named in errors.
    pub fn from_yaml(text: &str, source: &str) -> Result<CardProfile, EmvError> {
        let raw: raw::Profile = serde_saphyr::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let opts = serde_saphyr::render_options! {
                snippets: serde_saphyr::SnippetMode::Off,
            };
            let message = e.without_snippet().render_with_options(opts);
            EmvError::Profile {
                source_name: source.to_string(),
                line,
                column,
                message: mask_digit_runs(&strip_location(&message)),
            }
        })?;
        raw.build().map_err(|issue| EmvError::Profile {
            source_name: source.to_string(),
            line: issue.line,
            column: issue.column,
            message: issue.message,
        })
    }

    pub fn has_chip(&self) -> bool {
        self.interfaces
            .iter()
            .any(|i| matches!(i, Interface::Contact | Interface::Contactless))
    }

    pub fn supports(&self, interface: Interface) -> bool {
        self.interfaces.contains(&interface)
    }

    /// True when the card's expiry month is before (`year`, `month`).
    pub fn is_expired(&self, year: u16, month: u8) -> bool {
        (2000 + u16::from(self.expiry.year), self.expiry.month) < (year, month)
    }

    /// The value of a data object the card derives from its account data.
    pub fn card_data(&self, tag: u32) -> Option<Vec<u8>> {
        Some(match tag {
            0x5A => pan_bcd(self.pan.expose()),
            0x57 => self.track2.to_tag57(),
            0x5F24 => self.expiry.to_yymmdd_last_day().to_vec(),
            0x5F25 => self.effective?.to_yymmdd_first_day().to_vec(),
            0x5F34 => vec![bcd_byte(self.pan_sequence)],
            0x5F20 => self.cardholder_name.as_bytes().to_vec(),
            0x5F28 => {
                let c = self.issuer_country?;
                vec![bcd_byte((c / 100) as u8), bcd_byte((c % 100) as u8)] // ok: < 1000
            }
            _ => return None,
        })
    }

    /// The value of a data object for an application: its own data, then card data.
    pub fn app_data(&self, app: &Application, tag: u32) -> Option<Vec<u8>> {
        match tag {
            0x8C => Some(app.cdol1.clone()),
            0x8D => Some(app.cdol2.clone()),
            _ => app.data.get(&tag).cloned().or_else(|| self.card_data(tag)),
        }
    }
}

/// PAN digits as BCD, padded with `F` to whole bytes.
pub fn pan_bcd(digits: &str) -> Vec<u8> {
    nibbles_to_bytes(digits.bytes().map(|c| c.wrapping_sub(b'0') & 0x0F))
}

pub(crate) fn nibbles_to_bytes(nibbles: impl Iterator<Item = u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut half: Option<u8> = None;
    for n in nibbles {
        match half.take() {
            None => half = Some(n),
            Some(h) => out.push((h << 4) | n),
        }
    }
    if let Some(h) = half {
        out.push((h << 4) | 0x0F);
    }
    out
}

pub(crate) fn bcd_byte(v: u8) -> u8 {
    ((v / 10 % 10) << 4) | (v % 10)
}

/// serde-saphyr's plain rendering ends with " at line L, column C"; we print the position
/// first, in the `file:line:column:` form editors jump to.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// What was wrong and where, before the file name is added.
#[derive(Debug)]
struct Issue {
    line: u64,
    column: u64,
    message: String,
}

mod raw {
    //! The YAML as written, with positions; `build` checks it and makes a `CardProfile`.

    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Profile {
        name: String,
        #[serde(default)]
        description: String,
        atr: Option<Spanned<String>>,
        pan: Spanned<String>,
        #[serde(default)]
        pan_sequence: u8,
        expiry: Spanned<String>,
        effective: Option<Spanned<String>>,
        service_code: Spanned<String>,
        #[serde(default)]
        cardholder_name: String,
        issuer_country: Option<u16>,
        #[serde(default)]
        discretionary: Option<Spanned<String>>,
        interfaces: Spanned<Vec<Interface>>,
        chip_fault: Option<Spanned<ChipFaultRaw>>,
        pin: Option<Spanned<String>>,
        #[serde(default = "three")]
        pin_try_limit: u8,
        pin_tries_left: Option<Spanned<u8>>,
        #[serde(default)]
        atc: u16,
        #[serde(default)]
        last_online_atc: u16,
        #[serde(default)]
        offline_limit: u16,
        keys: Option<Keys>,
        #[serde(default = "yes")]
        pse: bool,
        #[serde(default)]
        applications: Vec<Spanned<App>>,
    }

    fn three() -> u8 {
        3
    }
    fn yes() -> bool {
        true
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case", deny_unknown_fields)]
    pub enum ChipFaultRaw {
        Mute,
        Answer(String),
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Keys {
        imk_ac: Spanned<String>,
        /// The ICC RSA key: modulus, exponent, private_exponent, prime1, prime2 (hex).
        #[serde(default)]
        icc_rsa: Option<Spanned<BTreeMap<String, String>>>,
        #[serde(default = "cvn18")]
        cvn: u8,
        #[serde(default = "one")]
        dki: u8,
    }
    fn cvn18() -> u8 {
        18
    }
    fn one() -> u8 {
        1
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct App {
        aid: Spanned<String>,
        label: String,
        priority: Option<u8>,
        kernel_id: Option<u8>,
        #[serde(default)]
        blocked: bool,
        #[serde(default)]
        pdol: Option<Spanned<String>>,
        aip: Spanned<String>,
        afl: Spanned<String>,
        cdol1: Spanned<String>,
        cdol2: Spanned<String>,
        cvm_list: Option<Spanned<String>>,
        #[serde(default)]
        data: BTreeMap<String, Spanned<String>>,
        #[serde(default)]
        records: Vec<Record>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Record {
        sfi: Spanned<u8>,
        record: u8,
        tags: Vec<Spanned<String>>,
    }

    fn at<T>(s: &Spanned<T>, message: impl Into<String>) -> Issue {
        Issue {
            line: s.referenced.line(),
            column: s.referenced.column(),
            message: message.into(),
        }
    }

    fn hex_of(s: &Spanned<String>, what: &str) -> Result<Vec<u8>, Issue> {
        let clean: String = s.value.chars().filter(|c| !c.is_whitespace()).collect();
        hex::decode(&clean).map_err(|_| {
            at(
                s,
                format!("{what}: expected hex bytes (pairs of 0-9 A-F, spaces allowed)"),
            )
        })
    }

    fn hex_len(s: &Spanned<String>, what: &str, len: usize) -> Result<Vec<u8>, Issue> {
        let b = hex_of(s, what)?;
        if b.len() != len {
            return Err(at(
                s,
                format!("{what}: expected {len} bytes, found {}", b.len()),
            ));
        }
        Ok(b)
    }

    fn digits(s: &Spanned<String>, what: &str, min: usize, max: usize) -> Result<String, Issue> {
        let v = s.value.trim();
        if !v.bytes().all(|c| c.is_ascii_digit()) || !(min..=max).contains(&v.len()) {
            let want = if min == max {
                format!("{min} digits")
            } else {
                format!("{min} to {max} digits")
            };
            return Err(at(s, format!("{what}: expected {want}")));
        }
        Ok(v.to_string())
    }

    fn tag_of(s: &Spanned<String>) -> Result<u32, Issue> {
        let b = hex_of(s, "tag")?;
        match b.as_slice() {
            [a] => Ok(u32::from(*a)),
            [a, c] => Ok(u32::from_be_bytes([0, 0, *a, *c])),
            _ => Err(at(
                s,
                "tag: expected 1 or 2 bytes of hex (\"5A\", \"9F36\")",
            )),
        }
    }

    fn dol(s: &Spanned<String>, what: &str) -> Result<Vec<u8>, Issue> {
        let b = hex_of(s, what)?;
        poslab_tlv::parse_dol(&b)
            .map_err(|e| at(s, format!("{what}: expected a data object list ({e})")))?;
        Ok(b)
    }

    fn yymm(s: &Spanned<String>, what: &str) -> Result<Yymm, Issue> {
        let d = digits(s, what, 4, 4)?;
        Yymm::parse(&d).ok_or_else(|| at(s, format!("{what}: expected YYMM with a month 01-12")))
    }

    impl Profile {
        pub(super) fn build(self) -> Result<CardProfile, Issue> {
            let pan_digits = digits(&self.pan, "pan", 12, 19)?;
            if !luhn_ok(&pan_digits) {
                return Err(at(
                    &self.pan,
                    "pan: expected a PAN whose Luhn check digit is right",
                ));
            }
            let pan = Pan::new(pan_digits);
            let expiry = yymm(&self.expiry, "expiry")?;
            let effective = self
                .effective
                .as_ref()
                .map(|e| yymm(e, "effective"))
                .transpose()?;
            let sc = digits(&self.service_code, "service_code", 3, 3)?;
            let service_code = ServiceCode::parse(&sc)
                .ok_or_else(|| at(&self.service_code, "service_code: expected 3 digits"))?;
            let discretionary = match &self.discretionary {
                Some(d) => digits(d, "discretionary", 0, 19)?,
                None => String::new(),
            };
            let track2 = Track2::new(pan.clone(), expiry, service_code, &discretionary)
                .map_err(|e| at(&self.pan, format!("track 2: {e}")))?;
            let atr = match &self.atr {
                Some(a) => {
                    let b = hex_of(a, "atr")?;
                    if !(2..=33).contains(&b.len()) || !matches!(b.first(), Some(0x3B | 0x3F)) {
                        return Err(at(a, "atr: expected 2 to 33 bytes starting with 3B or 3F"));
                    }
                    b
                }
                None => DEFAULT_ATR.to_vec(),
            };
            let chip_fault = match &self.chip_fault {
                None => None,
                Some(s) => Some(match &s.value {
                    ChipFaultRaw::Mute => ChipFault::Mute,
                    ChipFaultRaw::Answer(sw) => {
                        let b = hex::decode(sw.replace(' ', ""))
                            .ok()
                            .filter(|b| b.len() == 2);
                        match b.as_deref() {
                            Some([a, c]) => ChipFault::Answer(crate::apdu::StatusWord::from_bytes(*a, *c)),
                            _ => return Err(at(s, "chip_fault: answer: expected a status word as 4 hex digits (\"6F00\")")),
                        }
                    }
                }),
            };
            let pin = match &self.pin {
                Some(p) => Some(Secret::new(
                    SecretKind::Pin,
                    digits(p, "pin", 4, 12)?.into_bytes(),
                )),
                None => None,
            };
            if self.pin_try_limit > 15 {
                return Err(Issue {
                    line: 0,
                    column: 0,
                    message: "pin_try_limit: expected 0 to 15".into(),
                });
            }
            let pin_tries_left = match &self.pin_tries_left {
                Some(t) if t.value > self.pin_try_limit => {
                    return Err(at(
                        t,
                        format!(
                            "pin_tries_left: expected at most pin_try_limit ({})",
                            self.pin_try_limit
                        ),
                    ))
                }
                Some(t) => t.value,
                None => self.pin_try_limit,
            };
            let keys = match &self.keys {
                Some(k) => {
                    let b = hex_len(&k.imk_ac, "keys.imk_ac", 16)?;
                    let icc_rsa = match &k.icc_rsa {
                        None => None,
                        Some(r) => {
                            let part = |name: &str| {
                                r.value
                                    .get(name)
                                    .and_then(|v| hex::decode(v.trim()).ok())
                                    .ok_or_else(|| {
                                        at(r, format!("keys.icc_rsa.{name}: expected hex bytes"))
                                    })
                            };
                            let key = poslab_crypto::RsaPrivate::from_parts(
                                &part("modulus")?,
                                &part("exponent")?,
                                &part("private_exponent")?,
                                [&part("prime1")?, &part("prime2")?],
                            )
                            .map_err(|e| at(r, format!("keys.icc_rsa: {e}")))?;
                            Some(key)
                        }
                    };
                    Some(IssuerKeys {
                        imk_ac: Secret::new(SecretKind::Key, b),
                        cvn: k.cvn,
                        dki: k.dki,
                        icc_rsa,
                    })
                }
                None => None,
            };
            let interfaces = self.interfaces.value.clone();
            if interfaces.is_empty() {
                return Err(at(
                    &self.interfaces,
                    "interfaces: expected at least one of contact, contactless, magstripe",
                ));
            }
            let chip = interfaces
                .iter()
                .any(|i| matches!(i, Interface::Contact | Interface::Contactless));
            if chip && self.applications.is_empty() && chip_fault.is_none() {
                return Err(at(&self.interfaces, "applications: a card with a chip interface needs at least one application (or a chip_fault)"));
            }
            let mut applications = Vec::new();
            for app in &self.applications {
                if keys.is_none() {
                    return Err(at(app, "keys: an application needs the issuer keys (keys.imk_ac) to compute cryptograms"));
                }
                applications.push(app.value.build()?);
            }
            let profile = CardProfile {
                name: self.name,
                description: self.description,
                atr,
                pan,
                pan_sequence: self.pan_sequence.min(99),
                expiry,
                effective,
                service_code,
                cardholder_name: self.cardholder_name,
                issuer_country: self.issuer_country,
                track2,
                interfaces,
                chip_fault,
                pin,
                pin_try_limit: self.pin_try_limit,
                pin_tries_left,
                atc: self.atc,
                last_online_atc: self.last_online_atc,
                offline_limit: self.offline_limit,
                keys,
                pse: self.pse,
                applications,
            };
            // every record's tags must have a value
            for (raw_app, app) in self.applications.iter().zip(&profile.applications) {
                for rec in &raw_app.value.records {
                    for t in &rec.tags {
                        let tag = tag_of(t)?;
                        if profile.app_data(app, tag).is_none() {
                            return Err(at(t, format!("records: tag {tag:02X} has no value (put it under data, or give the card field it comes from)")));
                        }
                    }
                }
            }
            Ok(profile)
        }
    }

    impl App {
        fn build(&self) -> Result<Application, Issue> {
            let aid = hex_of(&self.aid, "aid")?;
            if !(5..=16).contains(&aid.len()) {
                return Err(at(&self.aid, "aid: expected 5 to 16 bytes"));
            }
            let aip = hex_len(&self.aip, "aip", 2)?;
            let pdol = match &self.pdol {
                Some(p) => dol(p, "pdol")?,
                None => Vec::new(),
            };
            let cdol1 = dol(&self.cdol1, "cdol1")?;
            let cdol2 = dol(&self.cdol2, "cdol2")?;
            let mut data = BTreeMap::new();
            for (k, v) in &self.data {
                let tag = tag_of(&Spanned {
                    value: k.clone(),
                    referenced: v.referenced,
                    defined: v.defined,
                })?;
                data.insert(tag, hex_of(v, &format!("data.{k}"))?);
            }
            if let Some(cvm) = &self.cvm_list {
                let b = hex_of(cvm, "cvm_list")?;
                if b.len() < 8 || b.len() % 2 != 0 {
                    return Err(at(cvm, "cvm_list: expected amount X (4 bytes), amount Y (4 bytes) and 2-byte rules"));
                }
                data.insert(0x8E, b);
            }
            let mut records = BTreeMap::new();
            for r in &self.records {
                if !(1..=30).contains(&r.sfi.value) {
                    return Err(at(&r.sfi, "sfi: expected 1 to 30"));
                }
                let mut tags = Vec::new();
                for t in &r.tags {
                    tags.push(tag_of(t)?);
                }
                if records.insert((r.sfi.value, r.record), tags).is_some() {
                    return Err(at(
                        &r.sfi,
                        format!(
                            "records: sfi {} record {} is listed twice",
                            r.sfi.value, r.record
                        ),
                    ));
                }
            }
            let afl_bytes = hex_of(&self.afl, "afl")?;
            if afl_bytes.len() % 4 != 0 {
                return Err(at(
                    &self.afl,
                    "afl: expected 4 bytes per entry (SFI<<3, first, last, records for ODA)",
                ));
            }
            let mut afl = Vec::new();
            for e in afl_bytes.chunks_exact(4) {
                let [s, first, last, oda] = [e[0], e[1], e[2], e[3]]; // ok: chunks of 4
                let entry = AflEntry {
                    sfi: s >> 3,
                    first,
                    last,
                    oda,
                };
                if first == 0 || last < first || usize::from(oda) > usize::from(last - first) + 1 {
                    return Err(at(&self.afl, format!("afl: entry {} has records {first} to {last} ({oda} for ODA): expected 1 <= first <= last", hex::encode_upper(e))));
                }
                for rec in first..=last {
                    if !records.contains_key(&(entry.sfi, rec)) {
                        return Err(at(
                            &self.afl,
                            format!("afl: sfi {} record {rec} is not under records", entry.sfi),
                        ));
                    }
                }
                afl.push(entry);
            }
            Ok(Application {
                aid,
                label: self.label.clone(),
                priority: self.priority,
                kernel_id: self.kernel_id,
                blocked: self.blocked,
                pdol,
                aip: [aip[0], aip[1]], // ok: length checked
                afl,
                cdol1,
                cdol2,
                data,
                records,
            })
        }
    }

    fn luhn_ok(digits: &str) -> bool {
        poslab_sensitive::luhn_valid(digits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VISA: &str = include_str!("../../../fixtures/cards/visa-credit.yaml");

    #[test]
    fn the_visa_fixture_loads() {
        let p = CardProfile::from_yaml(VISA, "visa-credit.yaml").unwrap();
        assert_eq!(p.pan.masked(), "476173******0010");
        assert!(p.has_chip());
        assert_eq!(p.applications.len(), 1);
        let app = &p.applications[0];
        assert_eq!(app.aid, hex::decode("A0000000031010").unwrap());
        assert_eq!(
            p.app_data(app, 0x5A).unwrap(),
            hex::decode("4761739001010010").unwrap()
        );
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("4761739001010010"), "{dbg}");
        assert!(!dbg.contains("1234\""), "{dbg}");
    }

    #[test]
    fn errors_name_file_line_and_what_was_expected() {
        let bad = VISA.replace("aip: \"3C00\"", "aip: \"3C0\"");
        let err = CardProfile::from_yaml(&bad, "cards/bad.yaml").unwrap_err();
        let text = err.to_string();
        let line = VISA
            .lines()
            .position(|l| l.contains("aip: \"3C00\""))
            .unwrap()
            + 1;
        assert!(
            text.starts_with(&format!("cards/bad.yaml:{line}:")),
            "{text}"
        );
        assert!(text.contains("aip: expected hex bytes"), "{text}");

        let bad = VISA.replace("service_code: \"201\"", "service_code: \"2O1\"");
        let err = CardProfile::from_yaml(&bad, "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("service_code: expected 3 digits"), "{err}");

        let bad = format!("{VISA}\nsurprise: 1\n");
        let err = CardProfile::from_yaml(&bad, "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.yaml:"), "{err}");
        assert!(err.contains("surprise"), "{err}");

        let bad = VISA.replace("pan: \"4761739001010010\"", "pan: \"4761739001010011\"");
        let err = CardProfile::from_yaml(&bad, "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("Luhn"), "{err}");
        assert!(!err.contains("4761739001010011"), "{err}");

        let bad = VISA.replace("pin: \"1234\"", "pin: \"12x4\"");
        let err = CardProfile::from_yaml(&bad, "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pin: expected 4 to 12 digits"), "{err}");
        assert!(!err.contains("12x4"), "{err}");
    }

    #[test]
    fn afl_must_point_at_records() {
        let bad = VISA.replace(
            "afl: \"08010100 10010301 18010100\"",
            "afl: \"08010100 10010401 18010100\"",
        );
        assert_ne!(bad, VISA, "the fixture's afl changed; update this test");
        let err = CardProfile::from_yaml(&bad, "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("afl: sfi 2 record 4 is not under records"),
            "{err}"
        );
    }

    proptest::proptest! {
        #[test]
        fn a_damaged_profile_never_panics_and_errors_point_into_the_file(
            line in 0usize..60,
            junk in "[ -~]{0,12}",
        ) {
            let mut lines: Vec<String> = VISA.lines().map(str::to_string).collect();
            let n = line % lines.len();
            let keep = lines[n].chars().count() / 2;
            let head: String = lines[n].chars().take(keep).collect();
            lines[n] = format!("{head}{junk}");
            let text = lines.join("\n");
            match CardProfile::from_yaml(&text, "p.yaml") {
                Ok(p) => proptest::prop_assert!(!p.applications.is_empty()),
                Err(EmvError::Profile { source_name, line, .. }) => {
                    proptest::prop_assert_eq!(source_name, "p.yaml");
                    proptest::prop_assert!(line as usize <= lines.len() + 1);
                }
                Err(other) => proptest::prop_assert!(false, "unexpected error kind {other}"),
            }
        }
    }
}
