//! The bench file as data: what the YAML says, before semantic checks.
//!
//! Every struct denies unknown fields, so a misspelt key is an error with its line and
//! column rather than a silently ignored setting. Optional fields are skipped when
//! serialising, so a model written back out reads like a hand-written file.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A bench: the nodes of a payment bench, where each real one is, and the links between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "poslab bench file")]
pub struct BenchFile {
    /// Name of the bench, shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What this bench is for, in a sentence or two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The nodes, by name. A node named after a kind (`terminal`, `host`, `tms`, `printer`,
    /// `reader`, `card`, `ecr`, `keypad`) is of that kind; any other name needs `kind:`. The
    /// value `emulated` (or an empty value) means poslab plays the node.
    #[serde(default, deserialize_with = "de_nodes")]
    #[schemars(schema_with = "nodes_schema")]
    pub nodes: BTreeMap<String, Node>,
    /// The links, keyed `FROM->TO` (e.g. `terminal->host`); `FROM` is the side that speaks
    /// first (the client). Upstream is FROM to TO, downstream TO to FROM.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, Link>,
    /// What the terminal is given before it goes live: its master key and its parameters
    /// (the TMS takes both over later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<Provisioning>,
}

/// Keys and parameters of the terminal under test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Provisioning {
    /// TEST key file (default: poslab's fixtures/keys/test-keys.yaml, built in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<String>,
    /// Name of the terminal master key in the key file (default `tmk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,
    /// Terminal parameters by name (tid, mid, merchant_name, currency, host_timeout_ms,
    /// contactless_cvm_limit, training, fees, receipt_header, ...); the rest keep their
    /// defaults. `poslab terminal --help` lists them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Host configuration file (default: the built-in scenarios/host/default.yaml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_config: Option<String>,
}

/// The kinds of node a bench knows.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// The payment terminal (the device under test, or poslab's reference terminal).
    Terminal,
    /// The acquirer host (ISO 8583).
    Host,
    /// The terminal management system (parameters, keys, firmware).
    Tms,
    /// The receipt printer (ESC/POS).
    Printer,
    /// The card reader (vpcd, APDUs).
    Reader,
    /// The card in the reader.
    Card,
    /// The electronic cash register (ZVT or another ECR protocol).
    Ecr,
    /// The PIN pad / keypad.
    Keypad,
}

impl NodeKind {
    pub const ALL: [NodeKind; 8] = [
        NodeKind::Terminal,
        NodeKind::Host,
        NodeKind::Tms,
        NodeKind::Printer,
        NodeKind::Reader,
        NodeKind::Card,
        NodeKind::Ecr,
        NodeKind::Keypad,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Terminal => "terminal",
            NodeKind::Host => "host",
            NodeKind::Tms => "tms",
            NodeKind::Printer => "printer",
            NodeKind::Reader => "reader",
            NodeKind::Card => "card",
            NodeKind::Ecr => "ecr",
            NodeKind::Keypad => "keypad",
        }
    }

    pub fn from_name(name: &str) -> Option<NodeKind> {
        NodeKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One node: emulated by poslab (the default), or where the real one is.
///
/// A real node may have several attachments (a terminal with its ECR port on a serial line
/// and its network port at a TCP address); a link says which one it uses with `via` when
/// that is not clear.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// The kind of node, when the name is not one of the kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<NodeKind>,
    /// poslab plays this node, with these options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emulated: Option<Emulated>,
    /// The real node listens at `HOST:PORT`; poslab connects to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<String>,
    /// The real node connects to poslab, which listens at `ADDR:PORT` (port 0: any free port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The real node is on a serial line.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_serial"
    )]
    #[schemars(schema_with = "serial_schema")]
    pub serial: Option<Serial>,
    /// The node is a program poslab starts, wires through ptys and loopback ports, watches
    /// and restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// Shell commands that switch a real node's power (a relay, a PDU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<Power>,
}

impl Node {
    /// True when no real attachment is given: poslab plays the node.
    pub fn is_emulated(&self) -> bool {
        self.tcp.is_none()
            && self.listen.is_none()
            && self.serial.is_none()
            && self.process.is_none()
    }

    /// The real attachments this node declares, in a fixed order.
    pub fn attachments(&self) -> Vec<Via> {
        let mut out = Vec::new();
        if self.tcp.is_some() {
            out.push(Via::Tcp);
        }
        if self.listen.is_some() {
            out.push(Via::Listen);
        }
        if self.serial.is_some() {
            out.push(Via::Serial);
        }
        if self.process.is_some() {
            out.push(Via::Process);
        }
        out
    }
}

/// Options for a node poslab plays.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Emulated {
    /// Where the emulated node listens for a real peer (`ADDR:PORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The device's own configuration file (e.g. the host's merchant registry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The wire protocol or dialect the node speaks (e.g. `zvt`, `iso87binary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Where an emulated card reader's vpcd peer is (`HOST:PORT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpcd: Option<String>,
    /// Device faults standing from power-on, in the device's own words; the printer's:
    /// `paper-near-end`, `paper-out`, `paper-out-after=N`, `cover-open`, `jam`, `offline`,
    /// `slow=N` (lines per second), `garbage`, `drawer-open`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
}

/// A serial line: `{path, baud, ...}` or the shorthand `"/dev/ttyUSB0 @ 115200 8N1"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Serial {
    /// The device path (`/dev/ttyUSB0`, `/dev/serial/by-id/...`).
    pub path: String,
    /// Bits per second.
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default)]
    pub parity: Parity,
    /// 5 to 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    #[serde(default)]
    pub flow_control: FlowControl,
}

fn default_baud() -> u32 {
    9600
}
fn default_data_bits() -> u8 {
    8
}
fn default_stop_bits() -> u8 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    #[default]
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    #[default]
    None,
    /// XON/XOFF.
    Software,
    /// RTS/CTS.
    Hardware,
}

impl Serial {
    /// Parses `PATH @ BAUD [DPS]`, e.g. `/dev/ttyUSB0 @ 115200 8N1` (D data bits, P parity
    /// N/E/O, S stop bits).
    pub fn parse_shorthand(text: &str) -> Result<Serial, String> {
        let (path, rest) = match text.split_once('@') {
            Some((p, r)) => (p.trim(), r.trim()),
            None => (text.trim(), ""),
        };
        if path.is_empty() {
            return Err("expected `PATH @ BAUD [8N1]`, found no path".into());
        }
        let mut serial = Serial {
            path: path.to_owned(),
            baud: default_baud(),
            parity: Parity::None,
            data_bits: 8,
            stop_bits: 1,
            flow_control: FlowControl::None,
        };
        let mut words = rest.split_whitespace();
        if let Some(baud) = words.next() {
            serial.baud = baud
                .parse()
                .map_err(|_| format!("expected a baud rate after `@`, found `{baud}`"))?;
        }
        if let Some(frame) = words.next() {
            let chars: Vec<char> = frame.chars().collect();
            let [d, p, s] = chars.as_slice() else {
                return Err(format!(
                    "expected a frame like `8N1` after the baud rate, found `{frame}`"
                ));
            };
            serial.data_bits = d
                .to_digit(10)
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| format!("expected data bits (5-8) in `{frame}`"))?;
            serial.parity = match p.to_ascii_uppercase() {
                'N' => Parity::None,
                'E' => Parity::Even,
                'O' => Parity::Odd,
                _ => return Err(format!("expected parity N, E or O in `{frame}`")),
            };
            serial.stop_bits = s
                .to_digit(10)
                .and_then(|d| u8::try_from(d).ok())
                .ok_or_else(|| format!("expected stop bits (1 or 2) in `{frame}`"))?;
        }
        if let Some(extra) = words.next() {
            return Err(format!("unexpected `{extra}` after the frame format"));
        }
        Ok(serial)
    }
}

/// A program poslab starts as a node (a firmware build for the host, poslab's own terminal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// The program (a path, or a name looked up on PATH; `{poslab}` is the running poslab).
    pub command: String,
    /// Arguments. `{NODE}` is the loopback address poslab gives the link to NODE
    /// (`127.0.0.1:PORT`), `{NODE_port}` its port alone, `{NODE_pty}` the path of a pty whose
    /// other end poslab holds, `{workdir}` a directory that survives restarts, `{poslab}` the
    /// running poslab binary. `{{` and `}}`
    /// are literal braces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables (values take the same placeholders).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: `{workdir}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// When the program counts as started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<Ready>,
    /// Hang detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<Watchdog>,
    /// What to do when the program exits, crashes or hangs.
    #[serde(default, skip_serializing_if = "Restart::is_default")]
    pub restart: Restart,
    /// Device exchange: how a replacement device is started (absent: a step that swaps
    /// the device fails, and a person swaps it by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<Exchange>,
}

/// The replacement of a process node is the same program started with `args` instead of
/// the node's own; they take the same placeholders, and `{serial}`, the replacement's
/// serial number (e.g. `[terminal, --serial, "{serial}", --state,
/// "{workdir}/terminal-{serial}", ...]`: a new device has an empty memory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    pub args: Vec<String>,
}

/// The program is ready when a line of its stdout or stderr matches `pattern`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    /// A regular expression (Rust `regex` syntax) matched against each output line.
    pub pattern: String,
    /// How long to wait for it.
    #[serde(default = "default_ready_timeout")]
    pub timeout: HumanDuration,
}

fn default_ready_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// The program hangs when it prints nothing (or no line matching `heartbeat`) for `hang_timeout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Watchdog {
    pub hang_timeout: HumanDuration,
    /// Only lines matching this regular expression count as signs of life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    #[serde(default)]
    pub policy: RestartPolicy,
    /// At most this many automatic restarts in a run.
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    /// Pause before an automatic restart.
    #[serde(default = "default_restart_delay")]
    pub delay: HumanDuration,
}

fn default_max_restarts() -> u32 {
    3
}
fn default_restart_delay() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}

impl Default for Restart {
    fn default() -> Self {
        Restart {
            policy: RestartPolicy::Never,
            max_restarts: default_max_restarts(),
            delay: default_restart_delay(),
        }
    }
}

impl Restart {
    fn is_default(&self) -> bool {
        *self == Restart::default()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Leave it down (a test step may still power-cycle it).
    #[default]
    Never,
    /// Restart after a crash (non-zero exit or a signal) or a hang.
    OnFailure,
    /// Restart whenever it stops.
    Always,
}

/// Power hooks for a real node: shell commands run with a time limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Power {
    /// Switches the node off (e.g. `usbrelay R1_1=0`).
    pub off: String,
    /// Switches the node on.
    pub on: String,
    /// Time limit for each command.
    #[serde(default = "default_power_timeout")]
    pub timeout: HumanDuration,
    /// Time to stay off in a power cycle.
    #[serde(default = "default_power_settle")]
    pub settle: HumanDuration,
}

fn default_power_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_power_settle() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}

/// A link between two nodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Which attachment of the real end carries this link, when the real end has several.
    /// `peer`: the real end dials the emulated end's `emulated.listen` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<Via>,
    /// Standing faults for the whole run (toxiproxy's toxic shape, with poslab's extra types).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    Tcp,
    Listen,
    Serial,
    Process,
    Peer,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Tcp => "tcp",
            Via::Listen => "listen",
            Via::Serial => "serial",
            Via::Process => "process",
            Via::Peer => "peer",
        }
    }
}

/// One standing fault on a link, in toxiproxy's toxic shape: `type`, `stream` (or
/// `direction`), `toxicity`, `attributes`, optional `name`. The fault engine
/// (`poslab-faults`) gives the types their meaning; [`FaultSpec::to_toxics`] is the mapping
/// point to toxiproxy's JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// The fault type: toxiproxy's (`latency`, `bandwidth`, `slow_close`, `timeout`,
    /// `reset_peer`, `slicer`, `limit_data`) or poslab's (e.g. `packet_loss`, `corrupt`,
    /// `byte_drop`, `drop_message`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Name (default `TYPE_STREAM`, as toxiproxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Which direction it applies to.
    #[serde(default, alias = "direction")]
    pub stream: Stream,
    /// Probability that the fault applies, 0 to 1.
    #[serde(default = "default_toxicity")]
    pub toxicity: f64,
    /// The type's parameters (numbers with the units toxiproxy uses, e.g. `latency` in ms).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

fn default_toxicity() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// FROM to TO (client to server).
    Upstream,
    /// TO to FROM (server to client); toxiproxy's default.
    #[default]
    Downstream,
    /// Both directions (two toxics).
    Both,
}

impl FaultSpec {
    /// The fault engine's view of this fault (`poslab-faults`), one toxic per direction;
    /// an unknown type or a bad attribute is the engine's error.
    pub fn to_toxic_specs(
        &self,
    ) -> Result<Vec<poslab_faults::ToxicSpec>, poslab_faults::FaultError> {
        self.to_toxics()
            .iter()
            .map(poslab_faults::ToxicSpec::from_value)
            .collect()
    }

    /// The fault as toxiproxy toxic JSON objects (two for `both`).
    pub fn to_toxics(&self) -> Vec<serde_json::Value> {
        let streams: &[&str] = match self.stream {
            Stream::Upstream => &["upstream"],
            Stream::Downstream => &["downstream"],
            Stream::Both => &["upstream", "downstream"],
        };
        streams
            .iter()
            .map(|stream| {
                let name = match &self.name {
                    Some(name) if self.stream == Stream::Both => format!("{name}_{stream}"),
                    Some(name) => name.clone(),
                    None => format!("{}_{stream}", self.kind),
                };
                serde_json::json!({
                    "name": name,
                    "type": self.kind,
                    "stream": stream,
                    "toxicity": self.toxicity,
                    "attributes": self.attributes,
                })
            })
            .collect()
    }
}

/// A duration written the human way (`250ms`, `10s`, `2m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration with its unit, like `500ms`, `10s` or `2m`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(v)
                    .map(HumanDuration)
                    .map_err(|err| {
                        E::custom(format!(
                            "bad duration `{v}` ({err}); write e.g. `500ms`, `10s`, `2m`"
                        ))
                    })
            }
        }
        d.deserialize_str(V)
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration with its unit: `500ms`, `10s`, `2m`, `1h 30m`.",
            "pattern": "^\\s*[0-9]+\\s*[a-zµ]+(\\s*[0-9]+\\s*[a-zµ]+)*\\s*$"
        })
    }
}

/// `terminal: emulated`, `terminal:` (empty) or a mapping.
struct NodeEntry(Node);

impl<'de> Deserialize<'de> for NodeEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "`emulated` or a mapping (emulated, tcp, listen, serial, process, power)",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeEntry, E> {
                if v == "emulated" {
                    Ok(NodeEntry(Node::default()))
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<NodeEntry, E> {
                Ok(NodeEntry(Node::default()))
            }
            fn visit_none<E: de::Error>(self) -> Result<NodeEntry, E> {
                Ok(NodeEntry(Node::default()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NodeEntry, A::Error> {
                Node::deserialize(de::value::MapAccessDeserializer::new(map)).map(NodeEntry)
            }
        }
        d.deserialize_any(V)
    }
}

fn de_nodes<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Node>, D::Error> {
    let raw: Option<BTreeMap<String, NodeEntry>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

fn nodes_schema(generator: &mut SchemaGenerator) -> Schema {
    let node = generator.subschema_for::<Node>();
    schemars::json_schema!({
        "type": "object",
        "additionalProperties": {
            "anyOf": [
                { "const": "emulated" },
                { "type": "null" },
                node
            ]
        }
    })
}

fn de_serial<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Serial>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Serial>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("`PATH @ BAUD 8N1` or a mapping {path, baud, parity, data_bits, stop_bits, flow_control}")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Serial>, E> {
            Serial::parse_shorthand(v).map(Some).map_err(E::custom)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<Serial>, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Option<Serial>, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Serial>, A::Error> {
            Serial::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(V)
}

fn serial_schema(generator: &mut SchemaGenerator) -> Schema {
    let serial = generator.subschema_for::<Serial>();
    schemars::json_schema!({
        "anyOf": [
            {
                "type": "string",
                "description": "Shorthand: `PATH @ BAUD [8N1]`, e.g. `/dev/ttyUSB0 @ 115200 8N1`."
            },
            serial
        ]
    })
}
