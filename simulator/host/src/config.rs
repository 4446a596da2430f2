//! The host's configuration file (YAML): merchants and terminals, card profiles, rules and
//! the knobs of each flow. `scenarios/host/default.yaml` is the commented default.
//!
//! Values are checked while they are read, so a mistake is reported by serde-saphyr with
//! the file, line and column of the offending value and what was expected there.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::HostError;

/// The default configuration, embedded: `scenarios/host/default.yaml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../scenarios/host/default.yaml");

/// A whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Merchants and their terminals; a message from any other MID/TID is answered `03`.
    #[serde(default)]
    pub merchants: Vec<MerchantConfig>,
    /// Card profiles by PAN prefix (first match wins): name and kind (debit, credit,
    /// foreign), for rules and fee plans.
    #[serde(default)]
    pub cards: Vec<CardProfileConfig>,
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default)]
    pub reversals: ReversalConfig,
    #[serde(default)]
    pub duplicates: DuplicateConfig,
    #[serde(default)]
    pub bad_frames: BadFrames,
    #[serde(default)]
    pub sign_on: SignOnConfig,
    #[serde(default)]
    pub stand_in: StandInConfig,
    /// Abnormal transaction monitoring (velocity, unusual amounts); off when absent.
    #[serde(default)]
    pub risk: RiskConfig,
    /// PIN translation and other settings of the security module (used when one is set).
    #[serde(default)]
    pub security: SecurityConfig,
}

/// Settings of the security module ([`crate::CryptoSecurity`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Online PIN: translate the terminal's PIN block into the issuer's zone, then verify
    /// it there (as the issuer would). Absent: verified under the terminal's PIN key.
    #[serde(default)]
    pub pin_translation: Option<PinTranslationConfig>,
    /// The response code for a request whose MAC is missing or wrong (`A0` unless told).
    #[serde(default = "code_a0")]
    pub mac_failure: ResponseCode,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            pin_translation: None,
            mac_failure: code_a0(),
        }
    }
}

fn code_a0() -> ResponseCode {
    ResponseCode(*b"A0")
}

/// The issuer zone online PIN blocks are translated to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinTranslationConfig {
    /// The zone PIN key's name in the key file (e.g. `zpk-issuer-aes`).
    pub zone_key: String,
    /// The zone's PIN block format: `iso-0`, `iso-3` (TDES keys) or `iso-4` (AES keys).
    pub format: String,
}

impl Config {
    /// Parses a configuration; `origin` (a file name) prefixes every error.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Config, HostError> {
        serde_saphyr::from_str::<Config>(text).map_err(|err| {
            let line = err
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()));
            HostError::Config {
                origin: format!("{origin}{}", line.unwrap_or_default()),
                message: first_line(&err.to_string()),
            }
        })
    }

    /// The embedded default configuration.
    pub fn default_config() -> Config {
        // ok: the embedded file is parsed by a unit test
        Config::from_yaml(DEFAULT_CONFIG, "scenarios/host/default.yaml").expect("default config")
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").trim().to_string()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    /// DE 42, 15 characters.
    pub mid: Mid,
    #[serde(default)]
    pub name: String,
    /// Merchant category code (ISO 18245), four digits.
    #[serde(default)]
    pub mcc: Option<Digits<4>>,
    /// Merchant discount rate in percent per card kind (debit, credit, foreign).
    #[serde(default)]
    pub fees: BTreeMap<CardKind, f64>,
    /// TIDs (DE 41, 8 characters) or ranges `"00000001..00000010"`.
    #[serde(default)]
    pub terminals: Vec<TidRange>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CardKind {
    Debit,
    Credit,
    Foreign,
}

impl CardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CardKind::Debit => "debit",
            CardKind::Credit => "credit",
            CardKind::Foreign => "foreign",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardProfileConfig {
    pub name: String,
    /// PAN prefixes (BIN ranges written as prefixes).
    pub prefixes: Vec<DigitString>,
    pub kind: CardKind,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    #[serde(default)]
    pub when: MatchConfig,
    #[serde(default)]
    pub then: ActionConfig,
    /// How many times the rule may fire (absent: always).
    #[serde(default)]
    pub times: Option<u32>,
}

/// What a rule matches; every condition given must hold (an empty `when` matches all).
/// Lists match when any element matches.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// MTIs, `x` matching any digit (`"0x00"`).
    #[serde(default)]
    pub mti: Vec<MtiPattern>,
    /// Processing code (DE 3) prefixes: `"00"` purchase, `"20"` refund, `"02"` void.
    #[serde(default)]
    pub processing_code: Vec<DigitString>,
    /// DE 4 range; written in major units with up to two decimals (`"900.00"`) and
    /// compared with DE 4 as an amount in minor units (cents).
    #[serde(default)]
    pub amount: Option<AmountRange>,
    /// DE 49 currency codes (`"978"`).
    #[serde(default)]
    pub currency: Vec<DigitString>,
    /// PAN prefixes (DE 2, or the PAN in DE 35).
    #[serde(default)]
    pub pan_prefix: Vec<DigitString>,
    /// Card profile names (see `cards`).
    #[serde(default)]
    pub card_profile: Vec<String>,
    /// POS entry mode (DE 22) prefixes: `"05"` chip, `"07"` contactless, `"90"` swipe.
    #[serde(default)]
    pub entry_mode: Vec<DigitString>,
    #[serde(default)]
    pub tid: Vec<String>,
    #[serde(default)]
    pub mid: Vec<String>,
    /// Exact text values of other fields, e.g. `{70: "301"}` for echo tests.
    #[serde(default)]
    pub fields: BTreeMap<u16, String>,
}

/// An inclusive (`min`, `max`) or exclusive (`above`, `below`) amount range.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountRange {
    #[serde(default)]
    pub min: Option<Amount>,
    #[serde(default)]
    pub max: Option<Amount>,
    #[serde(default)]
    pub above: Option<Amount>,
    #[serde(default)]
    pub below: Option<Amount>,
}

impl AmountRange {
    pub fn contains(&self, minor: u64) -> bool {
        self.min.is_none_or(|m| minor >= m.0)
            && self.max.is_none_or(|m| minor <= m.0)
            && self.above.is_none_or(|m| minor > m.0)
            && self.below.is_none_or(|m| minor < m.0)
    }
}

/// What a rule does.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// Response code (DE 39), or `from-amount`: the last two digits of DE 4.
    #[serde(default)]
    pub code: Option<CodeSpec>,
    /// How the answer is delivered.
    #[serde(default)]
    pub answer: Delivery,
    /// Hold the answer this long (`"1500ms"`, `"35s"`): a delay longer than the
    /// terminal's timeout is a late answer.
    #[serde(default, deserialize_with = "opt_duration")]
    pub delay: Option<Duration>,
    /// A message sent after the answer (or instead of it, with `answer: none`).
    #[serde(default)]
    pub unsolicited: Option<UnsolicitedConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnsolicitedConfig {
    pub mti: MtiPattern,
    /// Text values by data element; DE 41/42 are copied from the request when absent.
    #[serde(default)]
    pub fields: BTreeMap<u16, String>,
}

/// How an answer is delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Send it.
    #[default]
    Normal,
    /// Send nothing (the host still records what it decided).
    None,
    /// Close the connection without answering.
    Close,
    /// Answer, then close the connection.
    AnswerAndClose,
    /// Send the answer twice.
    Twice,
    /// Send the first half of the answer's frame only.
    Truncated,
    /// Send a frame whose message does not decode (a corrupted bitmap).
    Malformed,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Normal => "normal",
            Delivery::None => "none",
            Delivery::Close => "close",
            Delivery::AnswerAndClose => "answer-and-close",
            Delivery::Twice => "twice",
            Delivery::Truncated => "truncated",
            Delivery::Malformed => "malformed",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReversalConfig {
    /// The answer to a reversal whose original the host cannot find.
    #[serde(default = "code_25")]
    pub unknown_original: ResponseCode,
}

impl Default for ReversalConfig {
    fn default() -> Self {
        ReversalConfig {
            unknown_original: code_25(),
        }
    }
}

fn code_25() -> ResponseCode {
    ResponseCode(*b"25")
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicateConfig {
    /// `decline` (answer `code`), `repeat` (answer the first result again) or `off`.
    #[serde(default)]
    pub mode: DuplicateMode,
    #[serde(default = "code_94")]
    pub code: ResponseCode,
}

impl Default for DuplicateConfig {
    fn default() -> Self {
        DuplicateConfig {
            mode: DuplicateMode::default(),
            code: code_94(),
        }
    }
}

fn code_94() -> ResponseCode {
    ResponseCode(*b"94")
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DuplicateMode {
    #[default]
    Decline,
    Repeat,
    Off,
}

/// What the host does with a frame it cannot decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadFrames {
    /// Journal it and answer nothing; the connection stays open.
    #[default]
    Ignore,
    /// Journal it and close that connection.
    Close,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignOnConfig {
    /// Refuse financial messages from a terminal that has not signed on (0800, 001).
    #[serde(default)]
    pub required: bool,
    /// The code for such a refusal.
    #[serde(default)]
    pub code: Option<ResponseCode>,
}

/// Stand-in: the acquirer answers for an unavailable issuer. When on, a request the rules
/// decline with `91` (issuer unavailable) is approved up to `limit` instead.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandInConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub limit: Option<Amount>,
}

/// Abnormal transaction monitoring. Each check is off when absent. The checks apply to
/// purchases (0100/0200 with a debit processing code: 00, 01, 09...) that the host would
/// otherwise approve, and turn the approval into a decline with their `code`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskConfig {
    #[serde(default)]
    pub velocity: Option<VelocityConfig>,
    #[serde(default)]
    pub unusual_amount: Option<UnusualAmountConfig>,
}

/// The same card (PAN) approved more than `max` times within `window` is declined with
/// `code`: the purchase that would be approval `max + 1` in the window is refused.
/// Declined purchases do not count; reversed or voided ones still do (velocity counts the
/// approvals the host gave). The window is measured on the request times the host is
/// given, across all terminals, and is not reset by settlement.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VelocityConfig {
    #[serde(deserialize_with = "approval_count")]
    pub max: u32,
    /// `"10m"`, `"1h"`, `"90s"`.
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    #[serde(default = "code_59")]
    pub code: ResponseCode,
}

/// A purchase above `above` from a card the host has never approved before is declined
/// with `code`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnusualAmountConfig {
    pub above: Amount,
    #[serde(default = "code_59")]
    pub code: ResponseCode,
}

fn approval_count<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let text = d.deserialize_any(ScalarText)?;
    text.parse().map_err(|_| {
        de::Error::custom(format!(
            "max is a number of approvals (a whole number), not {text:?}"
        ))
    })
}

fn code_59() -> ResponseCode {
    ResponseCode(*b"59")
}

// ---------------------------------------------------------------------------------------
// Checked value types.

/// A two-character response code (DE 39).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseCode(pub [u8; 2]);

impl ResponseCode {
    pub const APPROVED: ResponseCode = ResponseCode(*b"00");

    pub fn new(text: &str) -> Result<ResponseCode, String> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() => {
                Ok(ResponseCode([*a, *b]))
            }
            _ => Err(format!(
                "a response code is two letters or digits, not {text:?}"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        // ok: only ASCII alphanumerics are ever stored
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    pub fn is_approved(&self) -> bool {
        matches!(&self.0, b"00" | b"08" | b"10" | b"11" | b"16")
    }
}

impl fmt::Debug for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str())
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResponseCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(ScalarText)?;
        ResponseCode::new(&text).map_err(de::Error::custom)
    }
}

/// `code:` of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeSpec {
    Fixed(ResponseCode),
    /// The last two digits of DE 4.
    FromAmount,
}

impl<'de> Deserialize<'de> for CodeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(ScalarText)?;
        if text == "from-amount" {
            return Ok(CodeSpec::FromAmount);
        }
        ResponseCode::new(&text)
            .map(CodeSpec::Fixed)
            .map_err(|e| de::Error::custom(format!("{e} (or from-amount)")))
    }
}

/// An amount in minor units, written `"900.00"`, `900` or `"10000.5"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(pub u64);

impl Amount {
    pub fn parse(text: &str) -> Result<Amount, String> {
        let bad =
            || format!("an amount is digits with up to two decimals (\"900.00\"), not {text:?}");
        let (units, cents) = match text.split_once('.') {
            Some((u, c)) => (u, c),
            None => (text, ""),
        };
        if units.is_empty()
            || !units.bytes().all(|b| b.is_ascii_digit())
            || cents.len() > 2
            || !cents.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let units: u64 = units.parse().map_err(|_| bad())?;
        let cents: u64 = format!("{cents:0<2}").parse().map_err(|_| bad())?;
        units
            .checked_mul(100)
            .and_then(|u| u.checked_add(cents))
            .map(Amount)
            .ok_or_else(bad)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(ScalarText)?;
        Amount::parse(&text).map_err(de::Error::custom)
    }
}

/// An MTI pattern: four characters, digits or `x`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MtiPattern(pub String);

impl MtiPattern {
    pub fn matches(&self, mti: &str) -> bool {
        mti.len() == 4
            && self
                .0
                .bytes()
                .zip(mti.bytes())
                .all(|(p, m)| p == b'x' || p == m)
    }
}

impl<'de> Deserialize<'de> for MtiPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(ScalarText)?.to_ascii_lowercase();
        if text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit() || b == b'x') {
            Ok(MtiPattern(text))
        } else {
            Err(de::Error::custom(format!(
                "an MTI is four digits, `x` matching any (\"0200\", \"04x0\"), not {text:?}"
            )))
        }
    }
}

/// A string of digits (prefixes, codes). Quote it in YAML when it has leading zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigitString(pub String);

impl<'de> Deserialize<'de> for DigitString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(ScalarText)?;
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(DigitString(text))
        } else {
            Err(de::Error::custom(format!("expected digits, not {text:?}")))
        }
    }
}

/// Exactly `N` digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digits<const N: usize>(pub String);

impl<'de, const N: usize> Deserialize<'de> for Digits<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(ScalarText)?;
        if text.len() == N && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Digits(text))
        } else {
            Err(de::Error::custom(format!(
                "expected {N} digits (quoted), not {text:?}"
            )))
        }
    }
}

/// A merchant id (DE 42): 15 printable characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mid(pub String);

impl<'de> Deserialize<'de> for Mid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(ScalarText)?;
        if text.len() == 15 && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            Ok(Mid(text))
        } else {
            Err(de::Error::custom(format!(
                "a MID (DE 42) is 15 characters, quoted, not {text:?}"
            )))
        }
    }
}

/// One TID or an inclusive range of numeric TIDs `"00000001..00000010"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TidRange {
    One(String),
    Range { from: u64, to: u64 },
}

impl TidRange {
    /// The TIDs listed, at most `limit` of them.
    pub fn expand(&self) -> Vec<String> {
        match self {
            TidRange::One(t) => vec![t.clone()],
            TidRange::Range { from, to } => (*from..=*to).map(|n| format!("{n:08}")).collect(),
        }
    }
}

impl<'de> Deserialize<'de> for TidRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = d.deserialize_any(ScalarText)?;
        let tid_ok = |t: &str| t.len() == 8 && t.bytes().all(|b| b.is_ascii_graphic());
        if let Some((a, b)) = text.split_once("..") {
            let num = |t: &str| {
                (t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| t.parse::<u64>().ok())
                    .flatten()
            };
            match (num(a), num(b)) {
                (Some(from), Some(to)) if from <= to && to - from < 1_000_000 => {
                    Ok(TidRange::Range { from, to })
                }
                _ => Err(de::Error::custom(format!(
                    "a TID range is two 8-digit TIDs, low..high (at most a million), not {text:?}"
                ))),
            }
        } else if tid_ok(&text) {
            Ok(TidRange::One(text))
        } else {
            Err(de::Error::custom(format!(
                "a TID (DE 41) is 8 characters, quoted, or a range \"00000001..00000010\", not {text:?}"
            )))
        }
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = d.deserialize_any(ScalarText)?;
    humantime::parse_duration(&text)
        .map_err(|e| de::Error::custom(format!("a duration like \"1500ms\" or \"35s\": {e}")))
}

/// Any YAML scalar read as text, so `code: 51` and `code: "51"` both work.
struct ScalarText;

impl Visitor<'_> for ScalarText {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(format!("{v:.2}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_configuration_parses_and_provisions_ten_terminals() {
        let config = Config::default_config();
        assert_eq!(config.merchants.len(), 1);
        assert_eq!(config.merchants[0].mid.0, "000000000000001");
        let tids: Vec<String> = config.merchants[0]
            .terminals
            .iter()
            .flat_map(TidRange::expand)
            .collect();
        assert_eq!(tids.first().map(String::as_str), Some("00000001"));
        assert_eq!(tids.last().map(String::as_str), Some("00000010"));
        assert_eq!(tids.len(), 10);
        assert!(config.rules.len() >= 3);
    }

    #[test]
    fn amounts_are_minor_units() {
        assert_eq!(Amount::parse("900.00"), Ok(Amount(90000)));
        assert_eq!(Amount::parse("905.5"), Ok(Amount(90550)));
        assert_eq!(Amount::parse("12"), Ok(Amount(1200)));
        assert!(Amount::parse("1.234").is_err());
        assert!(Amount::parse("-1").is_err());
        assert!(Amount::parse("").is_err());
        assert!(Amount::parse("99999999999999999999").is_err());
    }

    #[test]
    fn ranges_are_inclusive_or_exclusive_as_written() {
        let r = AmountRange {
            min: Some(Amount(90000)),
            max: Some(Amount(99999)),
            ..Default::default()
        };
        assert!(r.contains(90000) && r.contains(99999) && !r.contains(100000));
        let above = AmountRange {
            above: Some(Amount(1_000_000)),
            ..Default::default()
        };
        assert!(!above.contains(1_000_000) && above.contains(1_000_001));
    }

    #[test]
    fn mti_patterns_use_x_as_a_wildcard() {
        let p = MtiPattern("04x0".into());
        assert!(p.matches("0400") && p.matches("0420") && !p.matches("0401"));
    }

    #[test]
    fn errors_name_the_file_line_and_what_was_expected() {
        let yaml = "merchants:\n  - mid: \"000000000000001\"\n    terminals: [\"0001\"]\n";
        let err = Config::from_yaml(yaml, "shop.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("shop.yaml:3"), "{err}");
        assert!(err.contains("TID"), "{err}");

        let yaml = "rules:\n  - name: x\n    then: {code: \"5\"}\n";
        let err = Config::from_yaml(yaml, "r.yaml").unwrap_err().to_string();
        assert!(err.contains("r.yaml:3"), "{err}");
        assert!(err.contains("response code"), "{err}");

        let yaml = "rules:\n  - name: x\n    when: {amount: {min: \"abc\"}}\n";
        let err = Config::from_yaml(yaml, "a.yaml").unwrap_err().to_string();
        assert!(err.contains("a.yaml:3") && err.contains("amount"), "{err}");

        let yaml = "rulez: []\n";
        let err = Config::from_yaml(yaml, "u.yaml").unwrap_err().to_string();
        assert!(err.contains("u.yaml:1") && err.contains("rulez"), "{err}");
    }

    #[test]
    fn tid_ranges_expand() {
        let r = TidRange::Range { from: 9, to: 11 };
        assert_eq!(r.expand(), vec!["00000009", "00000010", "00000011"]);
    }
}
