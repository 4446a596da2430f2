//! The wire protocol: the `tms` ISO 8583 dialect, the exchanges (processing codes), and
//! typed builders/parsers for every request and answer, both directions.
//!
//! Transport: 2-byte big-endian length, then the ISO 8583 message (MTI `0800` requests,
//! `0810` answers). DE 3 names the exchange (`9D0000` call-home, ...), DE 11 is the STAN
//! (echoed), DE 39 the response code, DE 41 the TID, DE 62 the sub-elements
//! ([`crate::subel`]), DE 63 a data block (chunk, parameter JSON, log part).

use std::fmt;
use std::sync::OnceLock;

use poslab_iso8583::{Field, Framing, Message, Mti, Spec};

use crate::error::TmsError;
use crate::package::Manifest;
use crate::subel::{self, SubElements};

/// The dialect's YAML (fixtures/specs/tms.yaml).
pub const SPEC_YAML: &str = include_str!("../../../fixtures/specs/tms.yaml");

/// The `tms` dialect, compiled once.
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        Spec::from_yaml(SPEC_YAML, "builtin:tms").expect("the built-in tms spec compiles")
        // ok: fixed text, unit-tested
    })
}

/// The framing on TCP: 2-byte big-endian length, no header.
pub fn framing() -> Framing {
    spec().framing().clone()
}

/// The TID a terminal sends before the TMS has assigned it one.
pub const NO_TID: &str = "00000000";

/// Largest chunk a terminal may ask for.
pub const MAX_CHUNK: usize = 8192;

/// Response codes (DE 39).
pub mod rc {
    pub const OK: &str = "00";
    /// Invalid request: unknown processing code, a missing or bad sub-element.
    pub const INVALID: &str = "12";
    /// Unknown terminal: serial or TID not provisioned.
    pub const UNKNOWN_TERMINAL: &str = "25";
    /// Format error: the message did not decode.
    pub const FORMAT_ERROR: &str = "30";
    /// Not permitted: package not offered to this terminal, offset beyond the image.
    pub const NOT_PERMITTED: &str = "57";
    /// Terminal retired (decommissioned).
    pub const RETIRED: &str = "RT";
    /// TMS error.
    pub const TMS_ERROR: &str = "96";

    /// A short description of a code, for journals and failure messages.
    pub fn describe(code: &str) -> &'static str {
        match code {
            OK => "ok",
            INVALID => "invalid request",
            UNKNOWN_TERMINAL => "unknown terminal",
            FORMAT_ERROR => "format error",
            NOT_PERMITTED => "not permitted",
            RETIRED => "terminal retired",
            TMS_ERROR => "tms error",
            _ => "unknown response code",
        }
    }
}

/// The exchange a message belongs to (DE 3). Open: unknown codes round-trip.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Exchange {
    /// `9I0000`: the result of installing a package.
    InstallReport,
    /// `9D0000`: call-home with the terminal's status; the answer carries the orders.
    CallHome,
    /// `9A0000`: terminal master key under the transport key.
    MasterKey,
    /// `9B0000`: session keys (MAC, data) under the master key.
    SessionKeys,
    /// `9G0000`: PIN key under the master key.
    PinKey,
    /// `9E0000`: DUKPT initial key (IPEK) under the master key, and its KSN.
    DukptKey,
    /// `9C0000`: parameter download.
    Parameters,
    /// `9F0000`: one firmware chunk.
    Chunk,
    /// `9L0000`: one part of the terminal's logs.
    LogUpload,
    /// `9K0000`: the terminal confirms its keys are destroyed.
    KeysDestroyed,
    /// Any other DE 3 value.
    Other(String),
}

impl Exchange {
    const TABLE: &'static [(&'static str, Exchange)] = &[
        ("9I0000", Exchange::InstallReport),
        ("9D0000", Exchange::CallHome),
        ("9A0000", Exchange::MasterKey),
        ("9B0000", Exchange::SessionKeys),
        ("9G0000", Exchange::PinKey),
        ("9E0000", Exchange::DukptKey),
        ("9C0000", Exchange::Parameters),
        ("9F0000", Exchange::Chunk),
        ("9L0000", Exchange::LogUpload),
        ("9K0000", Exchange::KeysDestroyed),
    ];

    /// DE 3 of this exchange.
    pub fn code(&self) -> &str {
        if let Exchange::Other(c) = self {
            return c;
        }
        Exchange::TABLE
            .iter()
            .find(|(_, e)| e == self)
            .map_or("", |(c, _)| c)
    }

    pub fn from_code(code: &str) -> Exchange {
        Exchange::TABLE
            .iter()
            .find(|(c, _)| *c == code)
            .map_or_else(|| Exchange::Other(code.to_string()), |(_, e)| e.clone())
    }

    /// A short name for journals.
    pub fn name(&self) -> &str {
        match self {
            Exchange::InstallReport => "install-report",
            Exchange::CallHome => "call-home",
            Exchange::MasterKey => "master-key",
            Exchange::SessionKeys => "session-keys",
            Exchange::PinKey => "pin-key",
            Exchange::DukptKey => "dukpt-key",
            Exchange::Parameters => "parameters",
            Exchange::Chunk => "chunk",
            Exchange::LogUpload => "log-upload",
            Exchange::KeysDestroyed => "keys-destroyed",
            Exchange::Other(_) => "unknown",
        }
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exchange::Other(c) => write!(f, "unknown exchange {}", hex::encode_upper(c)),
            e => write!(f, "{} ({})", e.name(), e.code()),
        }
    }
}

/// An order the TMS gives in its call-home answer (sub-element 20). Open.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    /// Load a master key then session keys (9A, 9B, 9G).
    KeysLoad,
    /// New session keys under the current master key (9B, 9G).
    KeysRotate,
    /// Load a master key then a DUKPT initial key (9A, 9E).
    KeysDukpt,
    /// Download the parameter set (9C).
    Params,
    /// A firmware package is offered (manifest in the same answer; 9F chunks).
    Firmware,
    /// Upload the logs (9L).
    Logs,
    /// Destroy the keys and confirm (9K); the TID is retired.
    Decommission,
    /// An order this version does not know.
    #[serde(untagged)]
    Other(String),
}

impl Order {
    pub fn as_str(&self) -> &str {
        match self {
            Order::KeysLoad => "keys-load",
            Order::KeysRotate => "keys-rotate",
            Order::KeysDukpt => "keys-dukpt",
            Order::Params => "params",
            Order::Firmware => "firmware",
            Order::Logs => "logs",
            Order::Decommission => "decommission",
            Order::Other(s) => s,
        }
    }

    pub fn parse(text: &str) -> Order {
        match text {
            "keys-load" => Order::KeysLoad,
            "keys-rotate" => Order::KeysRotate,
            "keys-dukpt" => Order::KeysDukpt,
            "params" => Order::Params,
            "firmware" => Order::Firmware,
            "logs" => Order::Logs,
            "decommission" => Order::Decommission,
            other => Order::Other(other.to_string()),
        }
    }

    /// Orders from sub-element 20 (comma-separated; blanks ignored).
    pub fn parse_list(text: &str) -> Vec<Order> {
        text.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Order::parse)
            .collect()
    }

    pub fn format_list(orders: &[Order]) -> String {
        orders
            .iter()
            .map(Order::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What a key is for (the usage of a key record, TR-31 style). Open.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyUsage {
    /// `K0`: terminal master key (key-encrypting key).
    Tmk,
    /// `P0`: PIN encryption key.
    Pin,
    /// `M3`: MAC key (ISO 9797-1 algorithm 3).
    Mac,
    /// `D0`: data encryption key.
    Data,
    /// `B1`: DUKPT initial key (IPEK).
    Ipek,
    Other(String),
}

impl KeyUsage {
    pub fn code(&self) -> &str {
        match self {
            KeyUsage::Tmk => "K0",
            KeyUsage::Pin => "P0",
            KeyUsage::Mac => "M3",
            KeyUsage::Data => "D0",
            KeyUsage::Ipek => "B1",
            KeyUsage::Other(s) => s,
        }
    }

    pub fn parse(code: &str) -> KeyUsage {
        match code {
            "K0" => KeyUsage::Tmk,
            "P0" => KeyUsage::Pin,
            "M3" => KeyUsage::Mac,
            "D0" => KeyUsage::Data,
            "B1" => KeyUsage::Ipek,
            o => KeyUsage::Other(o.to_string()),
        }
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            KeyUsage::Tmk => "tmk",
            KeyUsage::Pin => "pin",
            KeyUsage::Mac => "mac",
            KeyUsage::Data => "data",
            KeyUsage::Ipek => "ipek",
            KeyUsage::Other(s) => return write!(f, "usage {}", s.escape_debug()),
        };
        f.write_str(name)
    }
}

/// A key under a key-encrypting key, as sub-element 70 carries it:
/// `USAGE:ALG:CRYPTOGRAM_HEX:KCV_HEX`. Debug shows usage, algorithm and KCV only.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub usage: KeyUsage,
    /// `tdes2`, `tdes3`, `aes128`, ... (poslab_crypto::KeyAlgorithm names).
    pub algorithm: String,
    pub cryptogram: Vec<u8>,
    /// The legacy KCV of the clear key (3 bytes).
    pub kcv: Vec<u8>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyRecord({} {} kcv {})",
            self.usage.code(),
            self.algorithm,
            hex::encode_upper(&self.kcv)
        )
    }
}

impl KeyRecord {
    pub fn format(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.usage.code(),
            self.algorithm,
            hex::encode_upper(&self.cryptogram),
            hex::encode_upper(&self.kcv)
        )
    }

    /// The masked form for journals: the cryptogram is replaced by its length.
    pub fn masked(&self) -> String {
        format!(
            "{}:{}:<{} bytes>:{}",
            self.usage.code(),
            self.algorithm,
            self.cryptogram.len(),
            hex::encode_upper(&self.kcv)
        )
    }

    /// Parses a sub-element 70 value; `offset` is where the value starts in DE 62 (for
    /// errors, which never echo the cryptogram).
    pub fn parse(value: &[u8]) -> Result<KeyRecord, TmsError> {
        let err = |reason: String| TmsError::field("key record", "DE 62 → 70", reason);
        let text = std::str::from_utf8(value).map_err(|_| err("not UTF-8 text".into()))?;
        let parts: Vec<&str> = text.split(':').collect();
        let [usage, alg, crypt, kcv] = parts.as_slice() else {
            return Err(err(format!(
                "expected USAGE:ALG:CRYPTOGRAM:KCV, found {} parts",
                parts.len()
            )));
        };
        let cryptogram = hex::decode(crypt).map_err(|_| err("cryptogram is not hex".into()))?;
        let kcv = hex::decode(kcv).map_err(|_| err("kcv is not hex".into()))?;
        if !(2..=5).contains(&kcv.len()) {
            return Err(err(format!("kcv of {} bytes (2 to 5 expected)", kcv.len())));
        }
        if usage.len() != 2 {
            return Err(err(format!("usage {:?} is not 2 characters", usage)));
        }
        Ok(KeyRecord {
            usage: KeyUsage::parse(usage),
            algorithm: alg.to_string(),
            cryptogram,
            kcv,
        })
    }
}

/// A request (terminal → TMS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub exchange: Exchange,
    pub stan: u32,
    pub tid: String,
    pub sub: SubElements,
    pub data: Option<Vec<u8>>,
}

/// An answer (TMS → terminal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub exchange: Exchange,
    pub stan: u32,
    pub tid: String,
    /// DE 39.
    pub code: String,
    /// DE 42 (call-home answers).
    pub mid: Option<String>,
    pub sub: SubElements,
    pub data: Option<Vec<u8>>,
}

fn iso_err(e: impl fmt::Display) -> TmsError {
    TmsError::Iso(e.to_string())
}

fn build(
    mti: &str,
    exchange: &Exchange,
    stan: u32,
    tid: &str,
    sub: &SubElements,
    data: Option<&[u8]>,
) -> Result<Message, TmsError> {
    let mut m = Message::new(Mti::new(mti).map_err(iso_err)?);
    m.set(3, exchange.code());
    m.set(11, format!("{:06}", stan % 1_000_000));
    m.set(41, format!("{tid:<8.8}"));
    if !sub.is_empty() {
        m.set(62, Field::Binary(sub.encode()));
    }
    if let Some(d) = data {
        m.set(63, Field::Binary(d.to_vec()));
    }
    Ok(m)
}

struct Common {
    exchange: Exchange,
    stan: u32,
    tid: String,
    sub: SubElements,
    data: Option<Vec<u8>>,
}

fn common(m: &Message, want_mti: &str) -> Result<Common, TmsError> {
    let mti = m.mti.as_str().to_string();
    let exchange = Exchange::from_code(m.text(3).unwrap_or(""));
    let err = |f: &str, r: String| TmsError::field(exchange.name(), f, r);
    if mti != want_mti {
        return Err(err("MTI", format!("expected {want_mti}, found {mti}")));
    }
    if !m.has(3) {
        return Err(err("DE 3", "missing".into()));
    }
    let stan = m
        .text(11)
        .ok_or_else(|| err("DE 11", "missing".into()))?
        .parse::<u32>()
        .map_err(|_| err("DE 11", "not digits".into()))?;
    let tid = m
        .text(41)
        .ok_or_else(|| err("DE 41", "missing".into()))?
        .trim_end()
        .to_string();
    let sub = match m.binary(62) {
        Some(b) => subel::decode(b)?,
        None => SubElements::new(),
    };
    Ok(Common {
        exchange: exchange.clone(),
        stan,
        tid,
        sub,
        data: m.binary(63).map(<[u8]>::to_vec),
    })
}

impl Request {
    pub fn new(exchange: Exchange, stan: u32, tid: &str, sub: SubElements) -> Request {
        Request {
            exchange,
            stan,
            tid: tid.to_string(),
            sub,
            data: None,
        }
    }

    pub fn to_message(&self) -> Result<Message, TmsError> {
        build(
            "0800",
            &self.exchange,
            self.stan,
            &self.tid,
            &self.sub,
            self.data.as_deref(),
        )
    }

    pub fn from_message(m: &Message) -> Result<Request, TmsError> {
        let c = common(m, "0800")?;
        Ok(Request {
            exchange: c.exchange,
            stan: c.stan,
            tid: c.tid,
            sub: c.sub,
            data: c.data,
        })
    }

    /// The framed bytes (length prefix + message).
    pub fn encode(&self) -> Result<Vec<u8>, TmsError> {
        frame(&self.to_message()?)
    }

    /// The answer skeleton: same exchange, STAN and TID, the given code.
    pub fn answer(&self, code: &str) -> Answer {
        Answer {
            exchange: self.exchange.clone(),
            stan: self.stan,
            tid: self.tid.clone(),
            code: code.to_string(),
            mid: None,
            sub: SubElements::new(),
            data: None,
        }
    }

    /// Sub-element 01, the terminal's serial number.
    pub fn serial(&self) -> Option<&str> {
        self.sub.text("01")
    }

    fn need(&self, tag: &str) -> Result<&str, TmsError> {
        self.sub.text(tag).ok_or_else(|| {
            TmsError::field(
                self.exchange.name(),
                format!("DE 62 → {tag}"),
                "missing or not UTF-8",
            )
        })
    }

    fn need_u64(&self, tag: &str) -> Result<u64, TmsError> {
        let t = self.need(tag)?;
        t.parse().map_err(|_| {
            TmsError::field(
                self.exchange.name(),
                format!("DE 62 → {tag}"),
                format!("{:?} is not a decimal number", t.escape_debug().to_string()),
            )
        })
    }
}

impl Answer {
    pub fn to_message(&self) -> Result<Message, TmsError> {
        let mut m = build(
            "0810",
            &self.exchange,
            self.stan,
            &self.tid,
            &self.sub,
            self.data.as_deref(),
        )?;
        m.set(39, format!("{:<2.2}", self.code));
        if let Some(mid) = &self.mid {
            m.set(42, format!("{mid:<15.15}"));
        }
        Ok(m)
    }

    pub fn from_message(m: &Message) -> Result<Answer, TmsError> {
        let c = common(m, "0810")?;
        let code = m
            .text(39)
            .ok_or_else(|| TmsError::field(c.exchange.name(), "DE 39", "missing"))?
            .to_string();
        Ok(Answer {
            exchange: c.exchange,
            stan: c.stan,
            tid: c.tid,
            code,
            mid: m.text(42).map(|s| s.trim_end().to_string()),
            sub: c.sub,
            data: c.data,
        })
    }

    pub fn encode(&self) -> Result<Vec<u8>, TmsError> {
        frame(&self.to_message()?)
    }

    pub fn is_ok(&self) -> bool {
        self.code == rc::OK
    }

    fn need(&self, tag: &str) -> Result<&str, TmsError> {
        self.sub.text(tag).ok_or_else(|| {
            TmsError::field(
                self.exchange.name(),
                format!("DE 62 → {tag}"),
                "missing or not UTF-8",
            )
        })
    }

    fn need_u64(&self, tag: &str) -> Result<u64, TmsError> {
        let t = self.need(tag)?;
        t.parse().map_err(|_| {
            TmsError::field(
                self.exchange.name(),
                format!("DE 62 → {tag}"),
                format!("{:?} is not a decimal number", t.escape_debug().to_string()),
            )
        })
    }
}

/// Packs a message with the `tms` dialect and frames it.
pub fn frame(m: &Message) -> Result<Vec<u8>, TmsError> {
    let payload = spec().pack(m).map_err(iso_err)?;
    framing().encode(&[], &payload, &[]).map_err(iso_err)
}

/// Unpacks a frame's payload (MTI onwards) with the `tms` dialect.
pub fn unpack(payload: &[u8]) -> Result<Message, TmsError> {
    spec().unpack(payload).map_err(iso_err)
}

// ---- typed exchanges -------------------------------------------------------------------

/// The terminal's status, reported by call-home (sub-elements 02..10).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusReport {
    pub serial: String,
    pub model: String,
    pub firmware_version: String,
    pub params_version: String,
    /// KCV of the master key held (6 hex), or `none`.
    pub tmk_kcv: String,
    pub counters: std::collections::BTreeMap<String, u64>,
    pub errors: Vec<String>,
    pub printer: String,
    pub reader: String,
    pub boot: String,
}

fn clip(s: &str) -> String {
    // values are at most 999 bytes; cut on a char boundary
    let mut end = s.len().min(subel::MAX_VALUE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("").to_string()
}

impl StatusReport {
    pub fn to_sub(&self) -> Result<SubElements, TmsError> {
        let counters = self
            .counters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        SubElements::new()
            .with("01", clip(&self.serial))?
            .with("02", clip(&self.model))?
            .with("03", clip(&self.firmware_version))?
            .with("04", clip(&self.params_version))?
            .with("05", clip(&self.tmk_kcv))?
            .with("06", clip(&counters))?
            .with("07", clip(&self.errors.join(";")))?
            .with("08", clip(&self.printer))?
            .with("09", clip(&self.reader))?
            .with("10", clip(&self.boot))
    }

    pub fn from_request(r: &Request) -> Result<StatusReport, TmsError> {
        let t = |tag: &str| r.sub.text(tag).unwrap_or("").to_string();
        let mut counters = std::collections::BTreeMap::new();
        for pair in t("06").split(',').filter(|s| !s.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                TmsError::field(
                    "call-home",
                    "DE 62 → 06",
                    format!("{pair:?} is not name=value"),
                )
            })?;
            let v = v.parse::<u64>().map_err(|_| {
                TmsError::field(
                    "call-home",
                    "DE 62 → 06",
                    format!("{k}: {v:?} is not a number"),
                )
            })?;
            counters.insert(k.to_string(), v);
        }
        Ok(StatusReport {
            serial: r.need("01")?.to_string(),
            model: t("02"),
            firmware_version: t("03"),
            params_version: t("04"),
            tmk_kcv: t("05"),
            counters,
            errors: t("07")
                .split(';')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            printer: t("08"),
            reader: t("09"),
            boot: t("10"),
        })
    }
}

/// What the TMS answers to a call-home (besides the response code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallHomeAnswer {
    pub tid: String,
    pub mid: String,
    pub orders: Vec<Order>,
    /// Present when [`Order::Firmware`] is given.
    pub manifest: Option<Manifest>,
    /// Present when [`Order::Params`] is given: the version offered.
    pub params_version: Option<String>,
}

impl CallHomeAnswer {
    pub fn to_sub(&self) -> Result<SubElements, TmsError> {
        let mut s = SubElements::new()
            .with("11", self.tid.as_str())?
            .with("12", self.mid.as_str())?
            .with("20", Order::format_list(&self.orders))?;
        if let Some(m) = &self.manifest {
            s.push("30", m.id.as_str())?;
            s.push("31", m.version.as_str())?;
            s.push("32", m.size.to_string())?;
            s.push("33", hex::encode(m.sha256))?;
            s.push("34", hex::encode(&m.signature))?;
        }
        if let Some(v) = &self.params_version {
            s.push("40", v.as_str())?;
        }
        Ok(s)
    }

    pub fn from_answer(a: &Answer) -> Result<CallHomeAnswer, TmsError> {
        let orders = Order::parse_list(a.sub.text("20").unwrap_or(""));
        let manifest = if orders.contains(&Order::Firmware) {
            Some(manifest_from(a)?)
        } else {
            None
        };
        Ok(CallHomeAnswer {
            tid: a.need("11")?.to_string(),
            mid: a.sub.text("12").unwrap_or("").to_string(),
            orders,
            manifest,
            params_version: a.sub.text("40").map(str::to_string),
        })
    }
}

fn manifest_from(a: &Answer) -> Result<Manifest, TmsError> {
    let bad = |tag: &str, r: &str| TmsError::field("call-home", format!("DE 62 → {tag}"), r);
    let sha = hex::decode(a.need("33")?).map_err(|_| bad("33", "sha-256 is not hex"))?;
    let sha256: [u8; 32] = sha
        .try_into()
        .map_err(|_| bad("33", "sha-256 is not 32 bytes"))?;
    let signature = hex::decode(a.need("34")?).map_err(|_| bad("34", "signature is not hex"))?;
    Ok(Manifest {
        id: a.need("30")?.to_string(),
        version: a.need("31")?.to_string(),
        size: a.need_u64("32")?,
        sha256,
        signature,
    })
}

/// 9F request: a chunk of a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRequest {
    pub package: String,
    pub offset: u64,
    pub length: u64,
}

impl ChunkRequest {
    pub fn to_sub(&self, serial: &str) -> Result<SubElements, TmsError> {
        SubElements::new()
            .with("01", clip(serial))?
            .with("30", self.package.as_str())?
            .with("36", self.offset.to_string())?
            .with("37", self.length.to_string())
    }

    pub fn from_request(r: &Request) -> Result<ChunkRequest, TmsError> {
        Ok(ChunkRequest {
            package: r.need("30")?.to_string(),
            offset: r.need_u64("36")?,
            length: r.need_u64("37")?,
        })
    }
}

/// 9F answer: the chunk itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkAnswer {
    pub package: String,
    pub offset: u64,
    pub total: u64,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for ChunkAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ChunkAnswer({} @{} +{} of {})",
            self.package,
            self.offset,
            self.bytes.len(),
            self.total
        )
    }
}

impl ChunkAnswer {
    pub fn fill(&self, a: &mut Answer) -> Result<(), TmsError> {
        a.sub = SubElements::new()
            .with("30", self.package.as_str())?
            .with("36", self.offset.to_string())?
            .with("37", self.bytes.len().to_string())?
            .with("38", self.total.to_string())?;
        a.data = Some(self.bytes.clone());
        Ok(())
    }

    pub fn from_answer(a: &Answer) -> Result<ChunkAnswer, TmsError> {
        let bytes = a.data.clone().unwrap_or_default();
        let len = a.need_u64("37")?;
        if len != bytes.len() as u64 {
            return Err(TmsError::field(
                "chunk",
                "DE 62 → 37",
                format!("says {len} bytes, DE 63 has {}", bytes.len()),
            ));
        }
        Ok(ChunkAnswer {
            package: a.need("30")?.to_string(),
            offset: a.need_u64("36")?,
            total: a.need_u64("38")?,
            bytes,
        })
    }
}

/// Key records of a key exchange answer (sub-elements 70, 71, 72).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeysAnswer {
    pub keys: Vec<KeyRecord>,
    /// DUKPT initial KSN (hex).
    pub ksn: Option<String>,
    /// KCV of the transport key (hex) the master key is wrapped under.
    pub transport_kcv: Option<String>,
}

impl KeysAnswer {
    pub fn to_sub(&self) -> Result<SubElements, TmsError> {
        let mut s = SubElements::new();
        for k in &self.keys {
            s.push("70", k.format())?;
        }
        if let Some(k) = &self.ksn {
            s.push("71", k.as_str())?;
        }
        if let Some(k) = &self.transport_kcv {
            s.push("72", k.as_str())?;
        }
        Ok(s)
    }

    pub fn from_answer(a: &Answer) -> Result<KeysAnswer, TmsError> {
        let keys = a
            .sub
            .all("70")
            .map(KeyRecord::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeysAnswer {
            keys,
            ksn: a.sub.text("71").map(str::to_string),
            transport_kcv: a.sub.text("72").map(str::to_string),
        })
    }
}

/// 9I request: the result of installing a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallReportMsg {
    pub package: String,
    pub version: String,
    pub outcome: String,
    pub detail: String,
}

impl InstallReportMsg {
    pub fn to_sub(&self, serial: &str) -> Result<SubElements, TmsError> {
        SubElements::new()
            .with("01", clip(serial))?
            .with("30", clip(&self.package))?
            .with("31", clip(&self.version))?
            .with("39", clip(&self.outcome))?
            .with("07", clip(&self.detail))
    }

    pub fn from_request(r: &Request) -> Result<InstallReportMsg, TmsError> {
        Ok(InstallReportMsg {
            package: r.need("30")?.to_string(),
            version: r.sub.text("31").unwrap_or("").to_string(),
            outcome: r.need("39")?.to_string(),
            detail: r.sub.text("07").unwrap_or("").to_string(),
        })
    }
}

/// 9L request: one part of the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPart {
    pub offset: u64,
    pub total: u64,
    pub bytes: Vec<u8>,
}

impl LogPart {
    pub fn to_request(&self, stan: u32, tid: &str, serial: &str) -> Result<Request, TmsError> {
        let mut r = Request::new(
            Exchange::LogUpload,
            stan,
            tid,
            SubElements::new()
                .with("01", clip(serial))?
                .with("36", self.offset.to_string())?
                .with("38", self.total.to_string())?,
        );
        r.data = Some(self.bytes.clone());
        Ok(r)
    }

    pub fn from_request(r: &Request) -> Result<LogPart, TmsError> {
        Ok(LogPart {
            offset: r.need_u64("36")?,
            total: r.need_u64("38")?,
            bytes: r.data.clone().unwrap_or_default(),
        })
    }
}

/// Parameter download answer: version, digest, the JSON.
pub fn params_digest(json: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(json))
}

pub(crate) fn answer_text<'a>(a: &'a Answer, tag: &str) -> Result<&'a str, TmsError> {
    a.need(tag)
}

/// A journal view of a request or answer: every field, DE 62 decoded with key
/// cryptograms masked (KCV only), DE 63 as its length and SHA-256 prefix (JSON
/// parameter sets shown in full: they hold no secrets).
pub fn journal_view(m: &Message) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut out = Map::new();
    out.insert("mti".into(), json!(m.mti.as_str()));
    for (de, f) in m.fields() {
        let v = match (de, f) {
            (62, Field::Binary(b)) => match subel::decode(b) {
                Ok(s) => {
                    let mut items = Vec::new();
                    for (tag, val) in s.iter() {
                        let text = if tag == "70" {
                            KeyRecord::parse(val)
                                .map(|k| k.masked())
                                .unwrap_or_else(|_| format!("<{} bytes, unreadable>", val.len()))
                        } else {
                            String::from_utf8_lossy(val).into_owned()
                        };
                        items.push(json!([tag, text]));
                    }
                    Value::Array(items)
                }
                Err(e) => json!({"error": e.to_string(), "len": b.len()}),
            },
            (63, Field::Binary(b)) => {
                let exchange = m.text(3).unwrap_or("");
                if exchange == "9C0000" {
                    serde_json::from_slice::<Value>(b).unwrap_or_else(|_| json!({"len": b.len()}))
                } else {
                    let d = params_digest(b);
                    json!({"len": b.len(), "sha256": d.get(..16).unwrap_or("")})
                }
            }
            (_, Field::Text(t)) => json!(t.as_str()),
            (_, f) => json!(format!("{f:?}")),
        };
        out.insert(format!("{de}"), v);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_compiles_and_frames() {
        let r = Request::new(
            Exchange::CallHome,
            1,
            NO_TID,
            SubElements::new().with("01", "PL-1").unwrap(),
        );
        let bytes = r.encode().unwrap();
        let (frame, used) = framing().decode(&bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(&bytes[..2], &((bytes.len() - 2) as u16).to_be_bytes());
        let m = unpack(&frame.payload).unwrap();
        assert_eq!(m.text(3), Some("9D0000"));
        assert_eq!(Request::from_message(&m).unwrap(), r);
    }

    #[test]
    fn exchanges_are_open() {
        for (code, e) in Exchange::TABLE {
            assert_eq!(Exchange::from_code(code), *e);
            assert_eq!(e.code(), *code);
        }
        let other = Exchange::from_code("9X0001");
        assert_eq!(other.code(), "9X0001");
        assert_eq!(other.to_string(), "unknown exchange 395830303031");
        assert_eq!(
            Order::parse_list("params,,fly"),
            vec![Order::Params, Order::Other("fly".into())]
        );
    }

    #[test]
    fn answer_round_trip_and_key_records_masked() {
        let rec = KeyRecord {
            usage: KeyUsage::Tmk,
            algorithm: "tdes2".into(),
            cryptogram: vec![0xAB; 16],
            kcv: vec![0x57, 0x71, 0xF3],
        };
        let mut a =
            Request::new(Exchange::MasterKey, 7, "00000001", SubElements::new()).answer(rc::OK);
        a.sub = KeysAnswer {
            keys: vec![rec.clone()],
            ksn: None,
            transport_kcv: Some("ABCDEF".into()),
        }
        .to_sub()
        .unwrap();
        let m = a.to_message().unwrap();
        let back = Answer::from_message(&unpack(&spec().pack(&m).unwrap()).unwrap()).unwrap();
        assert_eq!(back, a);
        let keys = KeysAnswer::from_answer(&back).unwrap();
        assert_eq!(keys.keys, vec![rec.clone()]);
        let view = journal_view(&m).to_string();
        assert!(!view.contains("ABABAB"), "{view}");
        assert!(view.contains("K0:tdes2:<16 bytes>:5771F3"), "{view}");
        assert_eq!(format!("{rec:?}"), "KeyRecord(K0 tdes2 kcv 5771F3)");
    }

    #[test]
    fn key_record_errors() {
        assert!(KeyRecord::parse(b"K0:tdes2:AB").is_err());
        assert!(KeyRecord::parse(b"K0:tdes2:ZZ:123456").is_err());
        assert!(KeyRecord::parse(b"K0:tdes2:AB:12").is_err());
        assert!(KeyRecord::parse(b"K0:tdes2:AB:123456").is_ok());
    }

    #[test]
    fn status_round_trip() {
        let s = StatusReport {
            serial: "PL-1".into(),
            model: "poslab-ref".into(),
            firmware_version: "1.0.0".into(),
            params_version: "1".into(),
            tmk_kcv: "none".into(),
            counters: [("sales".to_string(), 3u64)].into_iter().collect(),
            errors: vec!["printer: paper out".into()],
            printer: "paper-out".into(),
            reader: "ok".into(),
            boot: "normal".into(),
        };
        let r = Request::new(Exchange::CallHome, 1, NO_TID, s.to_sub().unwrap());
        assert_eq!(StatusReport::from_request(&r).unwrap(), s);
    }
}
