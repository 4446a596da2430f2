//! Toxics as data: toxiproxy's JSON shape (`{name, type, stream, toxicity, attributes}`),
//! the config file (toxiproxy's populate array, or YAML), and building stages from them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::message::{LengthPrefix2, MessageAction, MessageStage, NthMatching};
use crate::protocol;
use crate::serial;
use crate::stages::{self, Base, FlapMode};
use crate::{FaultError, RngStream, Stage};

/// Which direction of a link a toxic applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamDir {
    /// Client → server.
    Upstream,
    /// Server → client.
    Downstream,
}

impl StreamDir {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamDir::Upstream => "upstream",
            StreamDir::Downstream => "downstream",
        }
    }

    fn parse(s: &str) -> Option<StreamDir> {
        match s.to_ascii_lowercase().as_str() {
            "upstream" => Some(StreamDir::Upstream),
            "downstream" => Some(StreamDir::Downstream),
            _ => None,
        }
    }
}

/// A toxic's type and attributes. Toxiproxy's types keep toxiproxy's attribute names and
/// units; the extra types are poslab's. Every attribute has a default (zero, or as noted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "attributes", rename_all = "snake_case")]
pub enum StageKind {
    /// Delay per chunk: `latency` ms ± uniform `jitter` ms.
    Latency {
        #[serde(default)]
        latency: u64,
        #[serde(default)]
        jitter: u64,
    },
    /// At most `rate` KB/s (1 KB = 1000 bytes); 0 is unlimited.
    Bandwidth {
        #[serde(default)]
        rate: u64,
    },
    /// Delay the end of the stream by `delay` ms.
    SlowClose {
        #[serde(default)]
        delay: u64,
    },
    /// Drop all data; close after `timeout` ms (0: never).
    Timeout {
        #[serde(default)]
        timeout: u64,
    },
    /// On the first data, reset the connection after `timeout` ms.
    ResetPeer {
        #[serde(default)]
        timeout: u64,
    },
    /// Cut chunks into `average_size` ± `size_variation` byte slices, `delay` µs apart.
    Slicer {
        #[serde(default)]
        average_size: u64,
        #[serde(default)]
        size_variation: u64,
        #[serde(default)]
        delay: u64,
    },
    /// Forward `bytes` bytes, then close.
    LimitData {
        #[serde(default)]
        bytes: u64,
    },
    /// The link is down: reset open connections, refuse new ones.
    Down {},
    /// Drop whole chunks with `probability` (also accepted as `loss_rate`).
    Loss {
        #[serde(default, alias = "loss_rate")]
        probability: f64,
    },
    /// Send chunks twice with `probability`.
    Duplication {
        #[serde(default)]
        probability: f64,
    },
    /// Hold a chunk back, with `probability`, until `gap` (default 1) later chunks passed or
    /// `max_hold` ms (default 100) went by.
    Reordering {
        #[serde(default)]
        probability: f64,
        #[serde(default = "one_u32")]
        gap: u32,
        #[serde(default = "hundred")]
        max_hold: u64,
    },
    /// Flip `bits` (default 1) random bits of a chunk with `probability`.
    Corruption {
        #[serde(default)]
        probability: f64,
        #[serde(default = "one_u32")]
        bits: u32,
    },
    /// Up for `up` ms, down for `down` ms, repeatedly; `mode`: stall (default), drop, reset.
    Flapping {
        #[serde(default)]
        up: u64,
        #[serde(default)]
        down: u64,
        #[serde(default = "stall")]
        mode: FlapMode,
    },
    /// Close (or, with `reset`, reset) after `after_chunks` chunks or `after` ms (0: off).
    Cut {
        #[serde(default)]
        after_chunks: u64,
        #[serde(default)]
        after: u64,
        #[serde(default)]
        reset: bool,
    },
    /// Refuse new connections.
    Refuse {},
    /// Fail the name resolution of an upstream given by name.
    DnsFailure {},
    /// Frame the stream (`framing`: `len2`, a 2-byte big-endian length) and apply `action`
    /// (drop, delay by `delay` ms, duplicate) to the `nth` (default 1) message whose bytes at
    /// `match_offset` (from the start of the frame, header included) equal `match_hex`
    /// (empty: every message).
    Message {
        #[serde(default = "len2")]
        framing: String,
        #[serde(default = "one_u64")]
        nth: u64,
        #[serde(default = "drop_action")]
        action: MessageAction,
        #[serde(default)]
        delay: u64,
        #[serde(default)]
        match_offset: u64,
        #[serde(default)]
        match_hex: String,
    },
    /// Serial: each byte lost with `probability` ([`serial`] has the serial types).
    ByteDrop(serial::PerByte),
    /// Serial: each byte with one bit flipped with `probability`.
    BitErrors(serial::PerByte),
    /// Serial: the receiver runs at `line_baud`, the sender at `baud` (garbled).
    WrongBaud(serial::WrongBaudAttrs),
    /// Serial: a BREAK (the line held low, read as NULs with a framing error).
    Break(serial::BreakAttrs),
    /// Serial: bytes failing the parity check, delivered as `mode` says.
    ParityError(serial::LineErrorAttrs),
    /// Serial: bytes without their stop bit, delivered as `mode` says.
    FramingError(serial::LineErrorAttrs),
    /// Serial: flow control (RTS/CTS, XOFF) stops the line for a while.
    FlowStall(serial::StallAttrs),
    /// Serial: the cable is pulled, then plugged back.
    Disconnect(serial::DisconnectAttrs),
    /// ISO 8583 ([`protocol`] has the protocol types): select by `mti`; `action` drop,
    /// delay (`delay` ms), duplicate, corrupt (`field`), wrong_mac, unsolicited.
    Iso8583(protocol::IsoAttrs),
    /// ZVT: select by `command` (`06 0F`); drop, delay, duplicate, corrupt.
    Zvt(protocol::ZvtAttrs),
    /// APDUs over vpcd: select by `ins`; status_word (`sw`), remove_card, drop, delay,
    /// duplicate. On the downstream it acts on the answer to the selected command.
    Apdu(protocol::ApduAttrs),
}

fn one_u32() -> u32 {
    1
}
fn one_u64() -> u64 {
    1
}
fn hundred() -> u64 {
    100
}
fn stall() -> FlapMode {
    FlapMode::Stall
}
fn len2() -> String {
    "len2".into()
}
fn drop_action() -> MessageAction {
    MessageAction::Drop
}

/// Every toxic type name this proxy knows.
pub const TOXIC_TYPES: &[&str] = &[
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "down",
    "loss",
    "duplication",
    "reordering",
    "corruption",
    "flapping",
    "cut",
    "refuse",
    "dns_failure",
    "message",
    "byte_drop",
    "bit_errors",
    "wrong_baud",
    "break",
    "parity_error",
    "framing_error",
    "flow_stall",
    "disconnect",
    "iso8583",
    "zvt",
    "apdu",
];

impl StageKind {
    /// The type name (`latency`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            StageKind::Latency { .. } => "latency",
            StageKind::Bandwidth { .. } => "bandwidth",
            StageKind::SlowClose { .. } => "slow_close",
            StageKind::Timeout { .. } => "timeout",
            StageKind::ResetPeer { .. } => "reset_peer",
            StageKind::Slicer { .. } => "slicer",
            StageKind::LimitData { .. } => "limit_data",
            StageKind::Down {} => "down",
            StageKind::Loss { .. } => "loss",
            StageKind::Duplication { .. } => "duplication",
            StageKind::Reordering { .. } => "reordering",
            StageKind::Corruption { .. } => "corruption",
            StageKind::Flapping { .. } => "flapping",
            StageKind::Cut { .. } => "cut",
            StageKind::Refuse {} => "refuse",
            StageKind::DnsFailure {} => "dns_failure",
            StageKind::Message { .. } => "message",
            StageKind::ByteDrop(_) => "byte_drop",
            StageKind::BitErrors(_) => "bit_errors",
            StageKind::WrongBaud(_) => "wrong_baud",
            StageKind::Break(_) => "break",
            StageKind::ParityError(_) => "parity_error",
            StageKind::FramingError(_) => "framing_error",
            StageKind::FlowStall(_) => "flow_stall",
            StageKind::Disconnect(_) => "disconnect",
            StageKind::Iso8583(_) => "iso8583",
            StageKind::Zvt(_) => "zvt",
            StageKind::Apdu(_) => "apdu",
        }
    }

    /// Parses `attributes` (an object, or null/absent for all defaults) for type `kind`.
    pub fn parse(
        kind: &str,
        attributes: Option<&Value>,
        toxic: &str,
    ) -> Result<StageKind, FaultError> {
        if !TOXIC_TYPES.contains(&kind) {
            return Err(FaultError::InvalidToxicType(kind.to_owned()));
        }
        let attributes = match attributes {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(other) => {
                return Err(FaultError::BadRequestBody(format!(
                    "toxic {toxic}: attributes must be an object, not {}",
                    json_kind(other)
                )))
            }
        };
        let parsed: StageKind =
            serde_json::from_value(json!({"type": kind, "attributes": attributes}))
                .map_err(|err| FaultError::BadRequestBody(format!("toxic {toxic}: {err}")))?;
        parsed.validate(toxic)?;
        Ok(parsed)
    }

    /// The attributes as toxiproxy shows them (every field, defaults included).
    pub fn attributes(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut map)) => map.remove("attributes").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    fn validate(&self, toxic: &str) -> Result<(), FaultError> {
        let bad = |field: &'static str, reason: String| FaultError::InvalidAttribute {
            toxic: toxic.to_owned(),
            field,
            reason,
        };
        let probability = |p: f64| -> Result<(), FaultError> {
            if (0.0..=1.0).contains(&p) {
                Ok(())
            } else {
                Err(bad("probability", format!("{p} is not between 0 and 1")))
            }
        };
        match self {
            StageKind::Loss { probability: p }
            | StageKind::Duplication { probability: p }
            | StageKind::Reordering { probability: p, .. }
            | StageKind::Corruption { probability: p, .. } => probability(*p)?,
            StageKind::Flapping { up, down, .. } if *up == 0 && *down > 0 => {
                return Err(bad("up", "must be more than 0 ms when down is set".into()))
            }
            StageKind::Message {
                framing, match_hex, ..
            } => {
                if framing != "len2" {
                    return Err(bad(
                        "framing",
                        format!("unknown framing {framing:?} (known: len2)"),
                    ));
                }
                hex::decode(match_hex).map_err(|err| bad("match_hex", err.to_string()))?;
            }
            StageKind::Iso8583(a) => a.check().map_err(|(field, reason)| bad(field, reason))?,
            StageKind::Zvt(a) => a.check().map_err(|(field, reason)| bad(field, reason))?,
            StageKind::Apdu(a) => a.check().map_err(|(field, reason)| bad(field, reason))?,
            other => serial::check(other).map_err(|(field, reason)| bad(field, reason))?,
        }
        Ok(())
    }

    /// A stage doing this, drawing from `rng`.
    pub fn build(&self, name: &str, rng: RngStream) -> Box<dyn Stage> {
        let base = Base::new(name, self.type_name(), rng);
        match self.clone() {
            StageKind::Latency { latency, jitter } => {
                Box::new(stages::Latency::new(base, latency, jitter))
            }
            StageKind::Bandwidth { rate } => Box::new(stages::Bandwidth::new(base, rate)),
            StageKind::SlowClose { delay } => Box::new(stages::SlowClose {
                base,
                delay: Duration::from_millis(delay),
            }),
            StageKind::Timeout { timeout } => Box::new(stages::Timeout::new(base, timeout)),
            StageKind::ResetPeer { timeout } => Box::new(stages::ResetPeer::new(base, timeout)),
            StageKind::Slicer {
                average_size,
                size_variation,
                delay,
            } => Box::new(stages::Slicer::new(
                base,
                average_size,
                size_variation,
                delay,
            )),
            StageKind::LimitData { bytes } => Box::new(stages::LimitData::new(base, bytes)),
            StageKind::Down {} => Box::new(stages::Down { base }),
            StageKind::Loss { probability } => Box::new(stages::Loss { base, probability }),
            StageKind::Duplication { probability } => {
                Box::new(stages::Duplication { base, probability })
            }
            StageKind::Reordering {
                probability,
                gap,
                max_hold,
            } => Box::new(stages::Reordering::new(base, probability, gap, max_hold)),
            StageKind::Corruption { probability, bits } => Box::new(stages::Corruption {
                base,
                probability,
                bits,
            }),
            StageKind::Flapping { up, down, mode } => {
                Box::new(stages::Flapping::new(base, up, down, mode))
            }
            StageKind::Cut {
                after_chunks,
                after,
                reset,
            } => Box::new(stages::Cut::new(base, after_chunks, after, reset)),
            StageKind::Refuse {} => Box::new(stages::Refuse { base }),
            StageKind::DnsFailure {} => Box::new(stages::DnsFailure { base }),
            StageKind::Message {
                nth,
                action,
                delay,
                match_offset,
                match_hex,
                ..
            } => {
                // ok: validate() checked the hex; an empty pattern matches every message.
                let pattern = hex::decode(&match_hex).unwrap_or_default();
                let offset = usize::try_from(match_offset).unwrap_or(usize::MAX);
                let predicate = move |frame: &[u8]| {
                    offset
                        .checked_add(pattern.len())
                        .and_then(|end| frame.get(offset..end))
                        .is_some_and(|bytes| bytes == pattern.as_slice())
                };
                let rule = NthMatching::new(predicate, nth, action, Duration::from_millis(delay));
                Box::new(MessageStage::new(
                    base,
                    Box::new(LengthPrefix2),
                    Box::new(rule),
                ))
            }
            serial @ (StageKind::ByteDrop(_)
            | StageKind::BitErrors(_)
            | StageKind::WrongBaud(_)
            | StageKind::Break(_)
            | StageKind::ParityError(_)
            | StageKind::FramingError(_)
            | StageKind::FlowStall(_)
            | StageKind::Disconnect(_)) => serial::build(&serial, base),
            StageKind::Iso8583(a) => protocol::build_iso(&a, base, protocol::Conversation::new()),
            StageKind::Zvt(a) => protocol::build_zvt(&a, base, protocol::Conversation::new()),
            StageKind::Apdu(a) => {
                protocol::build_apdu(&a, base, protocol::Role::Act, protocol::Conversation::new())
            }
        }
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One toxic of a proxy, as toxiproxy's API shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToxicSpec {
    pub name: String,
    pub stream: StreamDir,
    /// The probability (0–1) that the toxic is active on a given connection.
    pub toxicity: f64,
    pub kind: StageKind,
}

#[derive(Deserialize)]
struct RawToxic {
    #[serde(default)]
    name: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    stream: Option<String>,
    #[serde(default)]
    toxicity: Option<f64>,
    #[serde(default)]
    attributes: Option<Value>,
}

impl ToxicSpec {
    /// Parses a toxic as `POST /proxies/{p}/toxics` does: `stream` defaults to downstream,
    /// `toxicity` to 1, `name` to `<type>_<stream>`.
    pub fn from_json(body: &[u8]) -> Result<ToxicSpec, FaultError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| FaultError::BadRequestBody(err.to_string()))?;
        ToxicSpec::from_value(&value)
    }

    /// Same as [`ToxicSpec::from_json`], from a parsed value (a config file entry).
    pub fn from_value(value: &Value) -> Result<ToxicSpec, FaultError> {
        let raw: RawToxic = serde_json::from_value(value.clone())
            .map_err(|err| FaultError::BadRequestBody(err.to_string()))?;
        let stream_text = raw.stream.unwrap_or_else(|| "downstream".into());
        let stream =
            StreamDir::parse(&stream_text).ok_or(FaultError::InvalidStream(stream_text))?;
        let name = if raw.name.is_empty() {
            format!("{}_{}", raw.kind, stream.as_str())
        } else {
            raw.name
        };
        let kind = StageKind::parse(&raw.kind, raw.attributes.as_ref(), &name)?;
        let toxicity = raw.toxicity.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&toxicity) {
            return Err(FaultError::InvalidAttribute {
                toxic: name,
                field: "toxicity",
                reason: format!("{toxicity} is not between 0 and 1"),
            });
        }
        Ok(ToxicSpec {
            name,
            stream,
            toxicity,
            kind,
        })
    }

    /// Applies an update (`POST /proxies/{p}/toxics/{t}`): attributes given replace theirs,
    /// the others are kept; `toxicity` likewise. Name, type and stream do not change.
    pub fn updated(&self, body: &[u8]) -> Result<ToxicSpec, FaultError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|err| FaultError::BadRequestBody(err.to_string()))?;
        let Value::Object(update) = value else {
            return Err(FaultError::BadRequestBody(format!(
                "expected an object, got {}",
                json_kind(&value)
            )));
        };
        let mut attributes = match self.kind.attributes() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        match update.get("attributes") {
            Some(Value::Object(given)) => {
                for (k, v) in given {
                    attributes.insert(k.clone(), v.clone());
                }
            }
            None | Some(Value::Null) => {}
            Some(other) => {
                return Err(FaultError::BadRequestBody(format!(
                    "attributes must be an object, not {}",
                    json_kind(other)
                )))
            }
        }
        let kind = StageKind::parse(
            self.kind.type_name(),
            Some(&Value::Object(attributes)),
            &self.name,
        )?;
        let toxicity = match update.get("toxicity") {
            None | Some(Value::Null) => self.toxicity,
            Some(v) => v.as_f64().ok_or_else(|| {
                FaultError::BadRequestBody(format!(
                    "toxicity must be a number, not {}",
                    json_kind(v)
                ))
            })?,
        };
        if !(0.0..=1.0).contains(&toxicity) {
            return Err(FaultError::InvalidAttribute {
                toxic: self.name.clone(),
                field: "toxicity",
                reason: format!("{toxicity} is not between 0 and 1"),
            });
        }
        Ok(ToxicSpec {
            name: self.name.clone(),
            stream: self.stream,
            toxicity,
            kind,
        })
    }

    /// The toxic as toxiproxy's API shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "attributes": self.kind.attributes(),
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
        })
    }

    /// The stage for one connection. `link` names the link and direction (e.g.
    /// `db#3/upstream`); the RNG stream key is `link/name`. The toxicity roll (once per
    /// connection, as toxiproxy) is the stream's first draw.
    pub fn build(&self, seed: u64, link: &str) -> Box<dyn Stage> {
        self.build_in(seed, link, &protocol::Conversation::new())
    }

    /// [`ToxicSpec::build`] for one direction of a connection whose two directions share
    /// `conv`: an `apdu` toxic on the downstream acts on the answers to the commands its
    /// observer ([`ToxicSpec::build_observer`]) saw on the upstream.
    pub fn build_in(&self, seed: u64, link: &str, conv: &protocol::Conversation) -> Box<dyn Stage> {
        let mut rng = RngStream::derive(seed, &format!("{link}/{}", self.name));
        if self.toxicity < 1.0 && !rng.chance(self.toxicity) {
            return Box::new(stages::Inactive {
                base: Base::new(&self.name, self.kind.type_name(), rng),
                toxicity: self.toxicity,
            });
        }
        let base = Base::new(&self.name, self.kind.type_name(), rng.clone());
        match &self.kind {
            StageKind::Apdu(a) => {
                let role = if self.stream == StreamDir::Downstream {
                    protocol::Role::ActOnAnswers
                } else {
                    protocol::Role::Act
                };
                protocol::build_apdu(a, base, role, conv.clone())
            }
            StageKind::Iso8583(a) => protocol::build_iso(a, base, conv.clone()),
            StageKind::Zvt(a) => protocol::build_zvt(a, base, conv.clone()),
            kind => kind.build(&self.name, rng),
        }
    }

    /// Whether the toxic needs an observer on the other direction of its connection.
    pub fn needs_observer(&self) -> bool {
        matches!(self.kind, StageKind::Apdu(_)) && self.stream == StreamDir::Downstream
    }

    /// The observer of a toxic that [`ToxicSpec::needs_observer`], for the other direction
    /// (it passes everything and notes the commands in `conv`).
    pub fn build_observer(
        &self,
        seed: u64,
        link: &str,
        conv: &protocol::Conversation,
    ) -> Option<Box<dyn Stage>> {
        let StageKind::Apdu(a) = &self.kind else {
            return None;
        };
        let rng = RngStream::derive(seed, &format!("{link}/{}:observe", self.name));
        Some(protocol::build_apdu(
            a,
            Base::new(&self.name, self.kind.type_name(), rng),
            protocol::Role::Observe,
            conv.clone(),
        ))
    }
}

/// One proxy of a config file or a populate request.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxySpec {
    pub name: String,
    pub listen: String,
    pub upstream: String,
    pub enabled: bool,
    pub toxics: Vec<ToxicSpec>,
}

/// A config file: the proxies (with their toxics) and, optionally, the run seed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub seed: Option<u64>,
    pub proxies: Vec<ProxySpec>,
}

/// The listen address a proxy gets when none is given: loopback, an ephemeral port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

impl ProxySpec {
    /// Parses one proxy (`{name, listen, upstream, enabled, toxics}`); `path` locates it in
    /// errors.
    pub fn from_value(value: &Value, path: &str) -> Result<ProxySpec, FaultError> {
        let err = |reason: String| FaultError::Config {
            path: path.to_owned(),
            reason,
        };
        let Value::Object(map) = value else {
            return Err(err(format!(
                "a proxy must be an object, not {}",
                json_kind(value)
            )));
        };
        let text = |key: &'static str| -> Result<Option<String>, FaultError> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(err(format!(
                    "{key} must be a string, not {}",
                    json_kind(other)
                ))),
            }
        };
        let name = text("name")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("missing required field: name".into()))?;
        let upstream = text("upstream")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("missing required field: upstream".into()))?;
        let listen = text("listen")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let enabled = match map.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(err(format!(
                    "enabled must be a boolean, not {}",
                    json_kind(other)
                )))
            }
        };
        let mut toxics: Vec<ToxicSpec> = Vec::new();
        match map.get("toxics") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let toxic = ToxicSpec::from_value(item).map_err(|e| FaultError::Config {
                        path: format!("{path}.toxics[{i}]"),
                        reason: e.to_string(),
                    })?;
                    if toxics.iter().any(|t| t.name == toxic.name) {
                        return Err(FaultError::Config {
                            path: format!("{path}.toxics[{i}]"),
                            reason: format!("toxic already exists: {}", toxic.name),
                        });
                    }
                    toxics.push(toxic);
                }
            }
            Some(other) => {
                return Err(err(format!(
                    "toxics must be a list, not {}",
                    json_kind(other)
                )))
            }
        }
        Ok(ProxySpec {
            name,
            listen,
            upstream,
            enabled,
            toxics,
        })
    }

    /// The proxy in toxiproxy's populate shape (with its toxics).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics.iter().map(ToxicSpec::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Parses a list of proxies (toxiproxy's populate array) from a JSON value.
pub fn parse_proxies(value: &Value) -> Result<Vec<ProxySpec>, FaultError> {
    let Value::Array(items) = value else {
        return Err(FaultError::Config {
            path: "proxies".into(),
            reason: format!("expected a list of proxies, not {}", json_kind(value)),
        });
    };
    let mut out: Vec<ProxySpec> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("proxies[{i}]");
        let proxy = ProxySpec::from_value(item, &path)?;
        if out.iter().any(|p| p.name == proxy.name) {
            return Err(FaultError::Config {
                path,
                reason: format!("proxy already exists: {}", proxy.name),
            });
        }
        out.push(proxy);
    }
    Ok(out)
}

/// Parses a config file: toxiproxy's JSON populate array (`[{name, listen, upstream,
/// toxics}]`), or JSON/YAML `{seed: N, proxies: [...]}`, or a YAML list of proxies. Text
/// starting with `[` or `{` is read as JSON, anything else as YAML.
pub fn parse_config(text: &str) -> Result<Config, FaultError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let value: Value = if trimmed.starts_with('[') || trimmed.starts_with('{') {
        serde_json::from_str(trimmed).map_err(|err| FaultError::Config {
            path: format!("line {}", err.line()),
            reason: format!("not JSON: {err}"),
        })?
    } else {
        serde_saphyr::from_str(trimmed).map_err(|err| FaultError::Config {
            path: "yaml".into(),
            reason: err
                .to_string()
                .lines()
                .next()
                .unwrap_or("not YAML")
                .to_owned(),
        })?
    };
    match &value {
        Value::Array(_) => Ok(Config {
            seed: None,
            proxies: parse_proxies(&value)?,
        }),
        Value::Object(map) => {
            if let Some(key) = map.keys().find(|k| *k != "seed" && *k != "proxies") {
                return Err(FaultError::Config {
                    path: key.clone(),
                    reason: "unknown key (expected seed, proxies)".into(),
                });
            }
            let seed = match map.get("seed") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| FaultError::Config {
                    path: "seed".into(),
                    reason: format!("must be an unsigned integer, not {v}"),
                })?),
            };
            let proxies = match map.get("proxies") {
                None | Some(Value::Null) => Vec::new(),
                Some(v) => parse_proxies(v)?,
            };
            Ok(Config { seed, proxies })
        }
        Value::Null => Ok(Config::default()),
        other => Err(FaultError::Config {
            path: "top level".into(),
            reason: format!(
                "expected a list of proxies or an object, not {}",
                json_kind(other)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toxic_defaults_follow_toxiproxy() {
        let t =
            ToxicSpec::from_json(br#"{"type":"latency","attributes":{"latency":100}}"#).unwrap();
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, StreamDir::Downstream);
        assert_eq!(t.toxicity, 1.0);
        assert_eq!(
            t.to_json(),
            json!({"attributes":{"latency":100,"jitter":0},"name":"latency_downstream",
                   "type":"latency","stream":"downstream","toxicity":1.0})
        );
    }

    #[test]
    fn errors_say_what_toxiproxy_says() {
        let e = ToxicSpec::from_json(br#"{"type":"nope"}"#).unwrap_err();
        assert_eq!(e.to_string(), "invalid toxic type");
        let e = ToxicSpec::from_json(br#"{"type":"latency","stream":"sideways"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "stream was invalid, can be either upstream or downstream"
        );
        let e =
            ToxicSpec::from_json(br#"{"type":"latency","attributes":{"latency":-1}}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("bad request body: toxic latency_downstream"),
            "{e}"
        );
        let e =
            ToxicSpec::from_json(br#"{"type":"loss","attributes":{"probability":2}}"#).unwrap_err();
        assert!(e.to_string().contains("probability"), "{e}");
        assert!(matches!(
            ToxicSpec::from_json(b"{"),
            Err(FaultError::BadRequestBody(_))
        ));
    }

    #[test]
    fn update_keeps_what_is_not_given() {
        let t = ToxicSpec::from_json(
            br#"{"type":"latency","attributes":{"latency":100,"jitter":5},"toxicity":0.5}"#,
        )
        .unwrap();
        let u = t.updated(br#"{"attributes":{"latency":7}}"#).unwrap();
        assert_eq!(
            u.kind,
            StageKind::Latency {
                latency: 7,
                jitter: 5
            }
        );
        assert_eq!(u.toxicity, 0.5);
        let u = t.updated(br#"{"toxicity":1}"#).unwrap();
        assert_eq!(u.kind, t.kind);
        assert_eq!(u.toxicity, 1.0);
    }

    #[test]
    fn config_in_json_populate_format_and_yaml() {
        let json = r#"[{"name":"host","listen":"127.0.0.1:0","upstream":"127.0.0.1:9000",
            "toxics":[{"type":"latency","attributes":{"latency":50}}]}]"#;
        let c = parse_config(json).unwrap();
        assert_eq!(c.proxies.len(), 1);
        assert_eq!(c.proxies[0].toxics[0].name, "latency_downstream");
        let yaml = "seed: 42\nproxies:\n  - name: host\n    upstream: localhost:9000\n    toxics:\n      - {type: loss, stream: upstream, attributes: {probability: 0.5}}\n";
        let c = parse_config(yaml).unwrap();
        assert_eq!(c.seed, Some(42));
        assert_eq!(c.proxies[0].listen, DEFAULT_LISTEN);
        assert_eq!(
            c.proxies[0].toxics[0].kind,
            StageKind::Loss { probability: 0.5 }
        );
        let e = parse_config("[{\"name\":\"a\"}]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "proxies[0]: missing required field: upstream"
        );
        let e =
            parse_config("proxies:\n  - name: a\n    upstream: b\n    toxics: [{type: what}]\n")
                .unwrap_err();
        assert_eq!(e.to_string(), "proxies[0].toxics[0]: invalid toxic type");
    }

    #[test]
    fn host_of_handles_names_ips_and_v6() {
        assert_eq!(stages::host_of("db.local:5432"), "db.local");
        assert_eq!(stages::host_of("[::1]:80"), "::1");
        assert_eq!(stages::host_of("127.0.0.1:1"), "127.0.0.1");
        assert_eq!(stages::host_of("plain"), "plain");
    }
}
