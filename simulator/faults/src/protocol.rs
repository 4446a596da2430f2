//! Protocol-aware faults: rules that frame a link's stream with a codec and act on the
//! messages they select.
//!
//! - ISO 8583 (the host link): select by MTI; drop, delay (a late answer is a delay past
//!   the terminal's timeout), duplicate, corrupt a field's bytes (a frame the terminal
//!   cannot parse), spoil the MAC (a well-formed message whose MAC is wrong), or slip an
//!   unsolicited message in before it.
//! - ZVT (the cash-register link, TCP APDUs or serial DLE/STX frames): select by command
//!   (class and instruction, e.g. `06 01`, `04 0F`); drop, delay, duplicate, corrupt.
//! - APDUs over vpcd (the card reader link): select by INS; answer the command with a
//!   status word of the rule's choosing (the card never runs it), remove the card before
//!   it answers, drop, delay, duplicate.
//!
//! The framer is pluggable ([`Framer`]): each protocol brings its own, and a stream the
//! framer rejects is passed through unchanged from there on. A rule that selects nothing
//! passes every byte through unchanged and in order (property-tested below).
//!
//! Selection: the `nth` matching message is the first acted on, then `count` messages in
//! all (0: every matching message from the `nth` on, until the toxic is removed).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poslab_iso8583::{Field, Framing, Message, Spec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::message::Framer;
use crate::stages::Base;
use crate::{ms, Action, Chunk, FaultError, Item, Out, Stage};

/// What a protocol rule does to a message it selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolAction {
    /// The message never arrives.
    Drop,
    /// The message (and so everything after it) arrives `delay` ms later.
    Delay,
    /// The message arrives twice.
    Duplicate,
    /// ISO 8583: the bytes of field `field` are garbled (XOR FF); ZVT: a data byte is
    /// flipped (a serial frame then fails its CRC).
    Corrupt,
    /// ISO 8583: the MAC field (DE 64, else DE 128) carries another, well-formed value.
    WrongMac,
    /// ISO 8583: an unsolicited message (MTI `unsolicited_mti`, a network management
    /// echo) arrives just before the selected one.
    Unsolicited,
    /// APDU: the command is answered with status word `sw` alone; the card never sees it.
    StatusWord,
    /// APDU: the card is removed before it answers the command (the link closes).
    RemoveCard,
}

impl ProtocolAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolAction::Drop => "drop",
            ProtocolAction::Delay => "delay",
            ProtocolAction::Duplicate => "duplicate",
            ProtocolAction::Corrupt => "corrupt",
            ProtocolAction::WrongMac => "wrong_mac",
            ProtocolAction::Unsolicited => "unsolicited",
            ProtocolAction::StatusWord => "status_word",
            ProtocolAction::RemoveCard => "remove_card",
        }
    }
}

/// Which matching messages a rule acts on: from the `nth` on, `count` of them (0: all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selector {
    pub nth: u64,
    pub count: u64,
}

/// How many messages a rule matched and acted on so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub matched: u64,
    pub acted: u64,
}

impl Selector {
    pub fn new(nth: u64, count: u64) -> Selector {
        Selector {
            nth: nth.max(1),
            count,
        }
    }

    /// Whether to act on a message that does (or does not) match, given the counts so far.
    pub fn hit(&self, counts: &mut Counts, matches: bool) -> bool {
        if !matches {
            return false;
        }
        counts.matched += 1;
        if counts.matched < self.nth || (self.count != 0 && counts.acted >= self.count) {
            return false;
        }
        counts.acted += 1;
        true
    }
}

/// The counts of a link's rules, by toxic name, shared by every connection over the link
/// (so "the next 0210" means the next one on the link, whichever connection carries it).
/// Cloning shares it; [`Tally::reset`] starts a rule afresh (a toxic added again).
#[derive(Clone, Debug, Default)]
pub struct Tally(Arc<Mutex<HashMap<String, Counts>>>);

impl Tally {
    pub fn new() -> Tally {
        Tally::default()
    }

    pub fn reset(&self, rule: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(rule);
        }
    }

    fn hit(&self, rule: &str, selector: &Selector, matches: bool) -> bool {
        match self.0.lock() {
            Ok(mut m) => selector.hit(m.entry(rule.to_owned()).or_default(), matches),
            Err(_) => false,
        }
    }
}

// ---- the framers --------------------------------------------------------------------------

/// ISO 8583 frames as the spec's framing has them (length prefix, header, trailer).
pub struct Iso8583Framer(pub Framing);

impl Framer for Iso8583Framer {
    fn frame_len(&mut self, buf: &[u8]) -> Result<Option<usize>, FaultError> {
        match self.0.decode(buf) {
            Ok(Some((_, n))) => Ok(Some(n)),
            Ok(None) => Ok(None),
            Err(e) => Err(FaultError::Framing {
                offset: e.offset,
                reason: e.to_string(),
            }),
        }
    }
}

/// How a ZVT stream is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZvtTransport {
    /// Decide from the first bytes: `DLE STX` or a lone ACK/NAK is serial, else TCP.
    Auto,
    /// APDUs back to back (class, instruction, length, data).
    Tcp,
    /// DLE STX ... DLE ETX CRC frames, ACK (06) and NAK (15) bytes.
    Serial,
}

/// ZVT framing: TCP APDUs, or serial items (a frame, an ACK, a NAK, line noise).
pub struct ZvtFramer {
    pub transport: ZvtTransport,
}

impl ZvtFramer {
    fn decide(&mut self, buf: &[u8]) -> Option<ZvtTransport> {
        if self.transport != ZvtTransport::Auto {
            return Some(self.transport);
        }
        let decided = match buf {
            [] => return None,
            [0x10, ..] => ZvtTransport::Serial,
            [0x06 | 0x15] => ZvtTransport::Serial,
            [0x06 | 0x15, 0x10 | 0x06 | 0x15, ..] => ZvtTransport::Serial,
            _ => ZvtTransport::Tcp,
        };
        self.transport = decided;
        Some(decided)
    }
}

impl Framer for ZvtFramer {
    fn frame_len(&mut self, buf: &[u8]) -> Result<Option<usize>, FaultError> {
        let bad = |e: poslab_zvt::ZvtError| FaultError::Framing {
            offset: 0,
            reason: e.to_string(),
        };
        match self.decide(buf) {
            None => Ok(None),
            Some(ZvtTransport::Serial) => {
                Ok(poslab_zvt::frame::decode(buf).map_err(bad)?.map(|(_, n)| n))
            }
            Some(_) => Ok(poslab_zvt::apdu::decode(buf).map_err(bad)?.map(|(_, n)| n)),
        }
    }
}

/// Whether a whole ZVT message (as the framer cut it) is a serial frame (`DLE STX`).
fn is_serial_frame(frame: &[u8]) -> bool {
    frame.starts_with(&[0x10, 0x02])
}

/// The command (class, instruction) of a whole ZVT message: a TCP APDU's first two bytes,
/// or those of a serial frame's APDU; `None` for ACK, NAK and noise.
fn zvt_command(frame: &[u8]) -> Option<[u8; 2]> {
    if is_serial_frame(frame) {
        return match poslab_zvt::frame::decode(frame) {
            Ok(Some((poslab_zvt::frame::Item::Frame(apdu), _))) => {
                Some([*apdu.first()?, *apdu.get(1)?])
            }
            _ => None,
        };
    }
    match frame {
        [class, instr, _, ..] => Some([*class, *instr]),
        _ => None,
    }
}

/// A vpcd frame: a 2-byte big-endian length, then a control byte or an APDU.
pub use crate::message::LengthPrefix2 as VpcdFramer;

// ---- what both directions of one connection share -----------------------------------------

/// Commands an observer saw and the rule on the answers has not yet matched: the rule's
/// name and the command's INS (`None`: a control message that is answered).
type Commands = VecDeque<(String, Option<u8>)>;

/// What the two directions of one connection share: a rule on the answers that selects by
/// the command (an APDU's INS) learns the commands from its observer on the other
/// direction; and the rules' [`Tally`] (the connection's own, or its link's). One per
/// connection; cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct Conversation {
    commands: Arc<Mutex<Commands>>,
    tally: Tally,
}

impl Conversation {
    /// A connection whose rules count on their own.
    pub fn new() -> Conversation {
        Conversation::default()
    }

    /// A connection whose rules count with every other connection sharing `tally`.
    pub fn sharing(tally: &Tally) -> Conversation {
        Conversation {
            commands: Arc::default(),
            tally: tally.clone(),
        }
    }

    fn push(&self, rule: &str, ins: Option<u8>) {
        if let Ok(mut q) = self.commands.lock() {
            q.push_back((rule.to_owned(), ins));
        }
    }

    /// The INS of the oldest unanswered command `rule` observed (`Some(None)`: a control
    /// message that is answered, such as the ATR request).
    fn pop(&self, rule: &str) -> Option<Option<u8>> {
        let mut q = self.commands.lock().ok()?;
        let i = q.iter().position(|(r, _)| r == rule)?;
        q.remove(i).map(|(_, ins)| ins)
    }
}

// ---- the rules ----------------------------------------------------------------------------

/// The protocol and what selects a message.
pub enum Matcher {
    /// MTI (4 digits; empty: any).
    Iso8583 { spec: Box<Spec>, mti: String },
    /// Command class and instruction (`None`: any).
    Zvt {
        command: Option<[u8; 2]>,
        framer_transport: ZvtTransport,
    },
    /// INS of the command (`None`: any). On the answers, the INS comes from the observer.
    Apdu { ins: Option<u8> },
}

/// The parameters of a protocol rule.
pub struct RuleParams {
    pub action: ProtocolAction,
    pub selector: Selector,
    pub delay: Duration,
    /// ISO 8583: the field to corrupt.
    pub field: u16,
    /// ISO 8583: the MTI of the unsolicited message.
    pub unsolicited_mti: String,
    /// APDU: the status word to answer with.
    pub sw: [u8; 2],
}

/// Which role the stage has on its direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Acts on the messages of its own direction.
    Act,
    /// APDU answers: acts on the answer to the command the observer saw.
    ActOnAnswers,
    /// Records the commands of this direction for the rule on the other one.
    Observe,
}

/// A stage that frames its direction with a protocol's framer and applies one rule.
pub struct ProtocolStage {
    base: Base,
    /// The toxic's name: the key both directions' stages share in the conversation.
    rule: String,
    framer: Box<dyn Framer>,
    matcher: Matcher,
    params: RuleParams,
    role: Role,
    conv: Conversation,
    buf: Vec<u8>,
    buf_at: Duration,
    index: u64,
    unframed: bool,
    closed: bool,
    last: Duration,
}

impl ProtocolStage {
    pub fn new(
        base: Base,
        matcher: Matcher,
        params: RuleParams,
        role: Role,
        conv: Conversation,
    ) -> ProtocolStage {
        let framer: Box<dyn Framer> = match &matcher {
            Matcher::Iso8583 { spec, .. } => Box::new(Iso8583Framer(spec.framing().clone())),
            Matcher::Zvt {
                framer_transport, ..
            } => Box::new(ZvtFramer {
                transport: *framer_transport,
            }),
            Matcher::Apdu { .. } => Box::new(VpcdFramer),
        };
        ProtocolStage::with_framer(base, framer, matcher, params, role, conv)
    }

    /// With another framer (a dialect's own framing).
    pub fn with_framer(
        base: Base,
        framer: Box<dyn Framer>,
        matcher: Matcher,
        params: RuleParams,
        role: Role,
        conv: Conversation,
    ) -> ProtocolStage {
        let rule = base.name.clone();
        let mut base = base;
        if role == Role::Observe {
            base.name = format!("{rule}:observe");
        }
        ProtocolStage {
            base,
            rule,
            framer,
            matcher,
            params,
            role,
            conv,
            buf: Vec::new(),
            buf_at: Duration::ZERO,
            index: 0,
            unframed: false,
            closed: false,
            last: Duration::ZERO,
        }
    }

    fn emit(&mut self, data: Vec<u8>, at: Duration, out: &mut Out) {
        let at = at.max(self.last);
        self.last = at;
        out.push(Item::Data(Chunk { data, at }));
    }

    fn flush(&mut self, at: Duration, out: &mut Out) {
        if !self.buf.is_empty() {
            let data = std::mem::take(&mut self.buf);
            self.emit(data, at.max(self.buf_at), out);
        }
    }

    fn frames(&mut self, now: Duration, out: &mut Out) {
        while !self.unframed && !self.closed && !self.buf.is_empty() {
            let len = match self.framer.frame_len(&self.buf) {
                Ok(Some(len)) if len > 0 && len <= self.buf.len() => len,
                Ok(Some(len)) => {
                    self.unframed = true;
                    let reason =
                        format!("framer returned length {len} for {} bytes", self.buf.len());
                    self.base.event(now, out, json!({"unframed": reason}));
                    break;
                }
                Ok(None) => return,
                Err(err) => {
                    self.unframed = true;
                    self.base
                        .event(now, out, json!({"unframed": err.to_string()}));
                    break;
                }
            };
            let rest = self.buf.split_off(len);
            let frame = std::mem::replace(&mut self.buf, rest);
            self.index += 1;
            let at = self.buf_at;
            self.message(frame, at, now, out);
        }
        if self.unframed {
            self.flush(now, out);
        }
    }

    /// One whole message.
    fn message(&mut self, frame: Vec<u8>, at: Duration, now: Duration, out: &mut Out) {
        if self.role == Role::Observe {
            if let Some(ins) = apdu_command(&frame) {
                self.conv.push(&self.rule, ins);
            }
            self.emit(frame, at, out);
            return;
        }
        let (matches, mut about) = self.select(&frame);
        if !self
            .conv
            .tally
            .hit(&self.rule, &self.params.selector, matches)
        {
            self.emit(frame, at, out);
            return;
        }
        let action = self.params.action;
        about.insert("message".into(), json!(self.index));
        about.insert("bytes".into(), json!(frame.len()));
        about.insert("decision".into(), json!(action.as_str()));
        match action {
            ProtocolAction::Drop => {}
            ProtocolAction::Delay => {
                about.insert("delay_ms".into(), json!(ms(self.params.delay)));
                let d = self.params.delay;
                self.emit(frame, at + d, out);
            }
            ProtocolAction::Duplicate => {
                self.emit(frame.clone(), at, out);
                self.emit(frame, at, out);
            }
            ProtocolAction::Corrupt | ProtocolAction::WrongMac | ProtocolAction::Unsolicited => {
                match self.rewrite(&frame, action) {
                    Ok(new) => self.emit(new, at, out),
                    Err(why) => {
                        about.insert("decision".into(), json!("pass"));
                        about.insert("because".into(), json!(why));
                        self.emit(frame, at, out);
                    }
                }
            }
            ProtocolAction::StatusWord => {
                let [sw1, sw2] = self.params.sw;
                about.insert("sw".into(), json!(format!("{sw1:02X}{sw2:02X}")));
                let mut answer = vec![0, 2];
                answer.extend_from_slice(&self.params.sw);
                self.emit(answer, at, out);
            }
            ProtocolAction::RemoveCard => {
                self.closed = true;
                self.buf.clear();
                self.base.event(now, out, Value::Object(about));
                let at = at.max(self.last);
                out.push(Item::Action {
                    at,
                    action: Action::Close,
                });
                return;
            }
        }
        self.base.event(now, out, Value::Object(about));
    }

    /// Whether the rule's selector matches `frame`, and what the journal says about it.
    fn select(&mut self, frame: &[u8]) -> (bool, serde_json::Map<String, Value>) {
        let mut about = serde_json::Map::new();
        match &self.matcher {
            Matcher::Iso8583 { spec, mti } => {
                about.insert("protocol".into(), json!("iso8583"));
                match iso_message(spec, frame) {
                    Some((_, m)) => {
                        about.insert("mti".into(), json!(m.mti.as_str()));
                        if let Some(stan) = m.text(11) {
                            about.insert("stan".into(), json!(stan));
                        }
                        (mti.is_empty() || m.mti.as_str() == mti, about)
                    }
                    None => (false, about),
                }
            }
            Matcher::Zvt { command, .. } => {
                about.insert("protocol".into(), json!("zvt"));
                match zvt_command(frame) {
                    Some(c) => {
                        about.insert(
                            "command".into(),
                            json!(format!("{:02X} {:02X}", c[0], c[1])),
                        );
                        (command.is_none_or(|want| want == c), about)
                    }
                    None => (false, about),
                }
            }
            Matcher::Apdu { ins } => {
                about.insert("protocol".into(), json!("apdu"));
                let seen = match self.role {
                    Role::ActOnAnswers => match self.conv.pop(&self.rule) {
                        Some(Some(i)) => Some(i),
                        _ => None,
                    },
                    _ => apdu_command(frame).flatten(),
                };
                match seen {
                    Some(i) => {
                        about.insert("ins".into(), json!(format!("{i:02X}")));
                        (ins.is_none_or(|want| want == i), about)
                    }
                    None => (false, about),
                }
            }
        }
    }

    /// The message with the action applied, or why it cannot be.
    fn rewrite(&self, frame: &[u8], action: ProtocolAction) -> Result<Vec<u8>, String> {
        match &self.matcher {
            Matcher::Iso8583 { spec, .. } => {
                let (parts, msg) = iso_message(spec, frame).ok_or("not an ISO 8583 message")?;
                let framing = spec.framing();
                let encode = |payload: &[u8]| {
                    framing
                        .encode(&parts.header, payload, &parts.trailer)
                        .map_err(|e| e.to_string())
                };
                match action {
                    ProtocolAction::Corrupt => {
                        let de = self.params.field;
                        let field = msg.get(de).ok_or(format!("no DE {de} in the message"))?;
                        let mut other = msg.clone();
                        other.set(de, spoil(field)?);
                        let repacked = spec.pack(&other).map_err(|e| e.to_string())?;
                        if repacked.len() != parts.payload.len() {
                            return Err(format!("DE {de} changes the message's length"));
                        }
                        let garbled: Vec<u8> = parts
                            .payload
                            .iter()
                            .zip(&repacked)
                            .map(|(a, b)| if a == b { *a } else { a ^ 0xFF })
                            .collect();
                        encode(&garbled)
                    }
                    ProtocolAction::WrongMac => {
                        let de = [64u16, 128]
                            .into_iter()
                            .find(|de| msg.has(*de))
                            .ok_or("the message carries no MAC (DE 64 or 128)")?;
                        let mut other = msg.clone();
                        other.set(de, spoil(msg.get(de).ok_or("no MAC")?)?);
                        encode(&spec.pack(&other).map_err(|e| e.to_string())?)
                    }
                    ProtocolAction::Unsolicited => {
                        let mti = poslab_iso8583::Mti::new(&self.params.unsolicited_mti)
                            .map_err(|e| e.to_string())?;
                        let mut extra = Message::new(mti);
                        if let Some(v) = msg.text(7) {
                            extra.set(7, v);
                        }
                        extra.set(11, "999999");
                        if let Some(v) = msg.text(41) {
                            extra.set(41, v);
                        }
                        extra.set(70, "301");
                        let mut out = encode(&spec.pack(&extra).map_err(|e| e.to_string())?)?;
                        out.extend_from_slice(frame);
                        Ok(out)
                    }
                    _ => Err(format!("{} is not an ISO 8583 rewrite", action.as_str())),
                }
            }
            Matcher::Zvt { .. } => {
                // flip one data byte: past the header of a TCP APDU, or inside a serial
                // frame's body (its CRC then fails)
                let at = if is_serial_frame(frame) { 4 } else { 3 };
                let mut out = frame.to_vec();
                let i = at.min(out.len().saturating_sub(1));
                let b = out.get_mut(i).ok_or("an empty message")?;
                *b ^= 0x5A;
                Ok(out)
            }
            Matcher::Apdu { .. } => Err("APDU rules do not rewrite".into()),
        }
    }
}

/// A vpcd frame's command: `Some(Some(ins))` for an APDU, `Some(None)` for a control
/// message that is answered (the ATR request), `None` for one that is not (power on/off,
/// reset) or a frame too short.
fn apdu_command(frame: &[u8]) -> Option<Option<u8>> {
    match frame.get(2..)? {
        [0x04] => Some(None),
        [_] => None,
        [_, ins, _, _, ..] => Some(Some(*ins)),
        _ => None,
    }
}

/// An ISO 8583 frame and its message.
fn iso_message(spec: &Spec, frame: &[u8]) -> Option<(poslab_iso8583::Frame, Message)> {
    let (parts, _) = spec.framing().decode(frame).ok()??;
    let msg = spec.unpack(&parts.payload).ok()?;
    Some((parts, msg))
}

/// Another value of the same shape: every character of a text field changed ('0' ↔ '1'),
/// every byte of a binary field inverted.
fn spoil(field: &Field) -> Result<Field, String> {
    match field {
        Field::Text(s) => Ok(Field::Text(
            s.chars()
                .map(|c| if c == '0' { '1' } else { '0' })
                .collect(),
        )),
        Field::Binary(b) => Ok(Field::Binary(b.iter().map(|x| !x).collect())),
        _ => Err("only text and binary fields can be spoiled".into()),
    }
}

impl Stage for ProtocolStage {
    fn name(&self) -> &str {
        &self.base.name
    }
    fn kind(&self) -> &'static str {
        self.base.kind
    }
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        if self.closed {
            return;
        }
        match item {
            Item::Data(c) => {
                if self.unframed {
                    self.emit(c.data, c.at, out);
                    return;
                }
                self.buf.extend_from_slice(&c.data);
                self.buf_at = self.buf_at.max(c.at);
                self.frames(now, out);
            }
            other => {
                self.flush(other.at(), out);
                let at = other.at().max(self.last);
                out.push(other.with_at(at));
            }
        }
    }
    fn handle_remove(&mut self, now: Duration, out: &mut Out) {
        if !self.closed {
            self.flush(now, out);
        }
    }
    fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// `iso8583` toxic attributes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsoAttrs {
    /// The MTI selected (4 digits; empty: any).
    #[serde(default)]
    pub mti: String,
    #[serde(default = "drop_action")]
    pub action: ProtocolAction,
    /// ms, for `delay`.
    #[serde(default)]
    pub delay: u64,
    /// The field `corrupt` garbles.
    #[serde(default = "de39")]
    pub field: u16,
    #[serde(default = "one")]
    pub nth: u64,
    /// How many matching messages to act on (0: every one).
    #[serde(default = "one")]
    pub count: u64,
    /// The built-in dialect (`iso87ascii`, ...).
    #[serde(default = "iso87ascii")]
    pub spec: String,
    #[serde(default = "echo_mti")]
    pub unsolicited_mti: String,
}

/// `zvt` toxic attributes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ZvtAttrs {
    /// Class and instruction in hex (`06 0F`; empty: any).
    #[serde(default)]
    pub command: String,
    #[serde(default = "drop_action")]
    pub action: ProtocolAction,
    #[serde(default)]
    pub delay: u64,
    #[serde(default = "one")]
    pub nth: u64,
    #[serde(default = "one")]
    pub count: u64,
    #[serde(default = "auto")]
    pub transport: ZvtTransport,
}

/// `apdu` toxic attributes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApduAttrs {
    /// The command's INS in hex (`AE`: GENERATE AC; empty: any).
    #[serde(default)]
    pub ins: String,
    #[serde(default = "status_word")]
    pub action: ProtocolAction,
    /// The status word `status_word` answers with.
    #[serde(default = "sw_6a82")]
    pub sw: String,
    #[serde(default)]
    pub delay: u64,
    #[serde(default = "one")]
    pub nth: u64,
    #[serde(default = "one")]
    pub count: u64,
}

fn drop_action() -> ProtocolAction {
    ProtocolAction::Drop
}
fn status_word() -> ProtocolAction {
    ProtocolAction::StatusWord
}
fn de39() -> u16 {
    39
}
fn one() -> u64 {
    1
}
fn iso87ascii() -> String {
    "iso87ascii".into()
}
fn echo_mti() -> String {
    "0800".into()
}
fn auto() -> ZvtTransport {
    ZvtTransport::Auto
}
fn sw_6a82() -> String {
    "6A82".into()
}

type Bad = (&'static str, String);

fn allowed(action: ProtocolAction, allowed: &[ProtocolAction], what: &str) -> Result<(), Bad> {
    if allowed.contains(&action) {
        Ok(())
    } else {
        Err((
            "action",
            format!(
                "{} is not a {what} action (known: {})",
                action.as_str(),
                allowed
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }
}

fn bytes_of(text: &str, n: usize, field: &'static str) -> Result<Option<Vec<u8>>, Bad> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let b = parse_hex(text).map_err(|e| (field, e))?;
    if b.len() != n {
        return Err((field, format!("{text:?} is not {n} byte(s) of hex")));
    }
    Ok(Some(b))
}

impl IsoAttrs {
    /// Checks the attributes: `(field, reason)` on the first problem.
    pub fn check(&self) -> Result<(), Bad> {
        use ProtocolAction::*;
        allowed(
            self.action,
            &[Drop, Delay, Duplicate, Corrupt, WrongMac, Unsolicited],
            "iso8583",
        )?;
        if Spec::builtin(&self.spec).is_none() {
            return Err((
                "spec",
                format!(
                    "unknown dialect {:?} (known: {})",
                    self.spec,
                    Spec::builtin_names().join(", ")
                ),
            ));
        }
        for (field, mti, may_be_empty) in [
            ("mti", &self.mti, true),
            ("unsolicited_mti", &self.unsolicited_mti, false),
        ] {
            if !(may_be_empty && mti.is_empty()) && poslab_iso8583::Mti::new(mti).is_err() {
                return Err((field, format!("{mti:?} is not an MTI (4 digits)")));
            }
        }
        if self.action == Corrupt && self.field == 0 {
            return Err(("field", "corrupt needs a field number".into()));
        }
        Ok(())
    }
}

impl ZvtAttrs {
    pub fn check(&self) -> Result<(), Bad> {
        use ProtocolAction::*;
        allowed(self.action, &[Drop, Delay, Duplicate, Corrupt], "zvt")?;
        bytes_of(&self.command, 2, "command").map(|_| ())
    }
}

impl ApduAttrs {
    pub fn check(&self) -> Result<(), Bad> {
        use ProtocolAction::*;
        allowed(
            self.action,
            &[StatusWord, RemoveCard, Drop, Delay, Duplicate],
            "apdu",
        )?;
        bytes_of(&self.ins, 1, "ins")?;
        bytes_of(&self.sw, 2, "sw").map(|_| ())
    }
}

/// An `iso8583` toxic's stage.
pub fn build_iso(a: &IsoAttrs, base: Base, conv: Conversation) -> Box<dyn Stage> {
    // ok: check() made sure the dialect exists; the fallback never runs
    let spec = Spec::builtin(&a.spec)
        .or_else(|| Spec::builtin("iso87ascii"))
        .unwrap_or_else(|| unreachable!("iso87ascii is built in"));
    Box::new(ProtocolStage::new(
        base,
        Matcher::Iso8583 {
            spec: Box::new(spec),
            mti: a.mti.clone(),
        },
        RuleParams {
            action: a.action,
            selector: Selector::new(a.nth, a.count),
            delay: Duration::from_millis(a.delay),
            field: a.field,
            unsolicited_mti: a.unsolicited_mti.clone(),
            sw: [0x90, 0x00],
        },
        Role::Act,
        conv,
    ))
}

/// A `zvt` toxic's stage.
pub fn build_zvt(a: &ZvtAttrs, base: Base, conv: Conversation) -> Box<dyn Stage> {
    let command = bytes_of(&a.command, 2, "command")
        .ok()
        .flatten()
        .and_then(|b| <[u8; 2]>::try_from(b).ok());
    Box::new(ProtocolStage::new(
        base,
        Matcher::Zvt {
            command,
            framer_transport: a.transport,
        },
        RuleParams {
            action: a.action,
            selector: Selector::new(a.nth, a.count),
            delay: Duration::from_millis(a.delay),
            field: 0,
            unsolicited_mti: String::new(),
            sw: [0x90, 0x00],
        },
        Role::Act,
        conv,
    ))
}

/// An `apdu` toxic's stage in `role` (see [`Role`]), sharing `conv` with its partner.
pub fn build_apdu(a: &ApduAttrs, base: Base, role: Role, conv: Conversation) -> Box<dyn Stage> {
    let ins = bytes_of(&a.ins, 1, "ins")
        .ok()
        .flatten()
        .and_then(|b| b.first().copied());
    let sw = bytes_of(&a.sw, 2, "sw")
        .ok()
        .flatten()
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .unwrap_or([0x6A, 0x82]);
    Box::new(ProtocolStage::new(
        base,
        Matcher::Apdu { ins },
        RuleParams {
            action: a.action,
            selector: Selector::new(a.nth, a.count),
            delay: Duration::from_millis(a.delay),
            field: 0,
            unsolicited_mti: String::new(),
            sw,
        },
        role,
        conv,
    ))
}

/// Parses a hex byte string such as `06 01`, `060F` or `AE` (spaces ignored).
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(&compact).map_err(|e| format!("{text:?} is not hex: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RngStream;
    use proptest::prelude::*;

    fn spec() -> Spec {
        Spec::builtin("iso87ascii").unwrap()
    }

    fn iso_frame(mti: &str, fields: &[(u16, &str)]) -> Vec<u8> {
        let spec = spec();
        let mut m = Message::new(poslab_iso8583::Mti::new(mti).unwrap());
        for (de, v) in fields {
            m.set(*de, *v);
        }
        let payload = spec.pack(&m).unwrap();
        spec.framing().encode(&[], &payload, &[]).unwrap()
    }

    fn params(action: ProtocolAction, nth: u64, count: u64) -> RuleParams {
        RuleParams {
            action,
            selector: Selector::new(nth, count),
            delay: Duration::from_secs(70),
            field: 39,
            unsolicited_mti: "0800".into(),
            sw: [0x6A, 0x82],
        }
    }

    fn stage(matcher: Matcher, p: RuleParams, role: Role, conv: Conversation) -> ProtocolStage {
        ProtocolStage::new(
            Base::new("p", "protocol", RngStream::derive(0, "p")),
            matcher,
            p,
            role,
            conv,
        )
    }

    fn iso(mti: &str, action: ProtocolAction, nth: u64, count: u64) -> ProtocolStage {
        stage(
            Matcher::Iso8583 {
                spec: Box::new(spec()),
                mti: mti.into(),
            },
            params(action, nth, count),
            Role::Act,
            Conversation::new(),
        )
    }

    fn feed(s: &mut ProtocolStage, pieces: &[Vec<u8>]) -> (Vec<Item>, Vec<crate::FaultEvent>) {
        let mut out = Out::default();
        for (i, p) in pieces.iter().enumerate() {
            let at = Duration::from_millis(i as u64);
            s.handle(
                Item::Data(Chunk {
                    data: p.clone(),
                    at,
                }),
                at,
                &mut out,
            );
        }
        (out.items, out.events)
    }

    fn bytes(items: &[Item]) -> Vec<u8> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Data(c) => Some(c.data.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn answer(stan: &str, code: &str) -> Vec<u8> {
        iso_frame(
            "0210",
            &[
                (3, "000000"),
                (4, "000000001000"),
                (11, stan),
                (39, code),
                (41, "TERM0001"),
            ],
        )
    }

    #[test]
    fn drops_the_answer_to_a_given_mti_and_journals_it() {
        let mut s = iso("0210", ProtocolAction::Drop, 1, 1);
        let echo = iso_frame("0810", &[(11, "000001"), (39, "00"), (70, "301")]);
        let (items, events) = feed(
            &mut s,
            &[echo.clone(), answer("000002", "00"), answer("000003", "00")],
        );
        let mut want = echo;
        want.extend(answer("000003", "00"));
        assert_eq!(bytes(&items), want);
        assert_eq!(events.len(), 1);
        let d = &events[0].decision;
        assert_eq!(d["mti"], "0210");
        assert_eq!(d["stan"], "000002");
        assert_eq!(d["decision"], "drop");
        assert_eq!(events[0].rng, "p");
    }

    #[test]
    fn a_late_answer_is_a_delay_and_later_messages_keep_their_order() {
        let mut s = iso("0210", ProtocolAction::Delay, 1, 1);
        let (items, _) = feed(&mut s, &[answer("000002", "00"), answer("000003", "00")]);
        assert_eq!(items[0].at(), Duration::from_secs(70));
        assert_eq!(items[1].at(), Duration::from_secs(70));
    }

    #[test]
    fn corrupting_de39_garbles_only_its_bytes() {
        let mut s = iso("0210", ProtocolAction::Corrupt, 1, 1);
        let original = answer("000002", "00");
        let (items, _) = feed(&mut s, std::slice::from_ref(&original));
        let got = bytes(&items);
        assert_eq!(got.len(), original.len());
        let diff: Vec<usize> = (0..got.len()).filter(|i| got[*i] != original[*i]).collect();
        assert_eq!(diff.len(), 2, "two bytes of DE 39: {diff:?}");
        assert!(diff.iter().all(|i| got[*i] == original[*i] ^ 0xFF));
        let payload = &got[2..];
        let parsed = spec().unpack(payload);
        assert!(parsed.map(|m| m.text(39) != Some("00")).unwrap_or(true));
    }

    #[test]
    fn a_wrong_mac_is_well_formed_but_different() {
        let mut s = iso("0210", ProtocolAction::WrongMac, 1, 1);
        let with_mac = iso_frame(
            "0210",
            &[(11, "000002"), (39, "00"), (64, "0123456789ABCDEF")],
        );
        let (items, events) = feed(&mut s, std::slice::from_ref(&with_mac));
        let got = bytes(&items);
        let m = spec().unpack(&got[2..]).unwrap();
        let orig = spec().unpack(&with_mac[2..]).unwrap();
        assert_ne!(m.get(64), orig.get(64));
        assert_eq!(m.text(39), Some("00"));
        assert_eq!(events[0].decision["decision"], "wrong_mac");
        // without a MAC the message passes, and the journal says why
        let mut s = iso("0210", ProtocolAction::WrongMac, 1, 1);
        let (items, events) = feed(&mut s, &[answer("000003", "00")]);
        assert_eq!(bytes(&items), answer("000003", "00"));
        assert_eq!(events[0].decision["decision"], "pass");
    }

    #[test]
    fn an_unsolicited_message_comes_first() {
        let mut s = iso("0210", ProtocolAction::Unsolicited, 1, 1);
        let (items, _) = feed(&mut s, &[answer("000002", "00")]);
        let got = bytes(&items);
        let (first, n) = spec().framing().decode(&got).unwrap().unwrap();
        let m = spec().unpack(&first.payload).unwrap();
        assert_eq!(m.mti.as_str(), "0800");
        assert_eq!(m.text(70), Some("301"));
        assert_eq!(&got[n..], &answer("000002", "00")[..]);
    }

    #[test]
    fn count_zero_acts_on_every_match_from_the_nth() {
        let mut s = iso("0210", ProtocolAction::Drop, 2, 0);
        let all: Vec<Vec<u8>> = (1..=4)
            .map(|i| answer(&format!("00000{i}"), "00"))
            .collect();
        let (items, events) = feed(&mut s, &all);
        assert_eq!(bytes(&items), all[0]);
        assert_eq!(events.len(), 3);
    }

    fn zvt_tcp(class: u8, instr: u8, data: &[u8]) -> Vec<u8> {
        let mut v = vec![class, instr, data.len() as u8];
        v.extend_from_slice(data);
        v
    }

    fn zvt(
        command: Option<[u8; 2]>,
        action: ProtocolAction,
        transport: ZvtTransport,
    ) -> ProtocolStage {
        stage(
            Matcher::Zvt {
                command,
                framer_transport: transport,
            },
            params(action, 1, 1),
            Role::Act,
            Conversation::new(),
        )
    }

    #[test]
    fn zvt_drops_the_completion_over_tcp() {
        let mut s = zvt(Some([0x06, 0x0F]), ProtocolAction::Drop, ZvtTransport::Auto);
        let ack = zvt_tcp(0x80, 0x00, &[]);
        let status = zvt_tcp(0x04, 0x0F, &[0x27, 0x00]);
        let done = zvt_tcp(0x06, 0x0F, &[]);
        let mut stream = ack.clone();
        stream.extend(&status);
        stream.extend(&done);
        let (items, events) = feed(&mut s, &[stream]);
        let mut want = ack;
        want.extend(status);
        assert_eq!(bytes(&items), want);
        assert_eq!(events[0].decision["command"], "06 0F");
    }

    #[test]
    fn zvt_corrupts_a_serial_frame_so_its_crc_fails() {
        let mut s = zvt(
            Some([0x06, 0x01]),
            ProtocolAction::Corrupt,
            ZvtTransport::Auto,
        );
        let frame = poslab_zvt::frame::encode(&zvt_tcp(0x06, 0x01, &[0x04, 0, 0, 0, 0, 0x10, 0]));
        let (items, _) = feed(&mut s, &[vec![0x06], frame.clone()]);
        let got = bytes(&items);
        assert_eq!(got[0], 0x06, "the ACK passes");
        let item = poslab_zvt::frame::decode(&got[1..]).unwrap().unwrap().0;
        assert!(matches!(item, poslab_zvt::frame::Item::Bad(_)), "{item:?}");
    }

    fn vpcd(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn apdu_status_word_answers_the_selected_command() {
        let conv = Conversation::new();
        let p = || params(ProtocolAction::StatusWord, 1, 1);
        let mut observer = stage(
            Matcher::Apdu { ins: Some(0xAE) },
            p(),
            Role::Observe,
            conv.clone(),
        );
        let mut answers = stage(
            Matcher::Apdu { ins: Some(0xAE) },
            p(),
            Role::ActOnAnswers,
            conv,
        );
        // ATR request, SELECT, GENERATE AC go up; ATR, 9000, a cryptogram come down
        let up = [
            vpcd(&[0x04]),
            vpcd(&[0, 0xA4, 4, 0, 0]),
            vpcd(&[0x80, 0xAE, 0x80, 0, 0]),
        ];
        let (items, _) = feed(&mut observer, &up);
        assert_eq!(bytes(&items), up.concat(), "the observer passes everything");
        let down = [
            vpcd(&[0x3B, 0x00]),
            vpcd(&[0x90, 0x00]),
            vpcd(&[0x77, 0x01, 0x00, 0x90, 0x00]),
        ];
        let (items, events) = feed(&mut answers, &down);
        let mut want = down[0].clone();
        want.extend(&down[1]);
        want.extend(vpcd(&[0x6A, 0x82]));
        assert_eq!(bytes(&items), want);
        assert_eq!(events[0].decision["ins"], "AE");
        assert_eq!(events[0].decision["sw"], "6A82");
    }

    #[test]
    fn apdu_remove_card_closes_before_the_command() {
        let mut s = stage(
            Matcher::Apdu { ins: Some(0xAE) },
            params(ProtocolAction::RemoveCard, 1, 1),
            Role::Act,
            Conversation::new(),
        );
        let select = vpcd(&[0, 0xA4, 4, 0, 0]);
        let (items, _) = feed(
            &mut s,
            &[
                select.clone(),
                vpcd(&[0x80, 0xAE, 0x80, 0, 0]),
                select.clone(),
            ],
        );
        assert_eq!(bytes(&items), select);
        assert!(matches!(
            items.last(),
            Some(Item::Action {
                action: Action::Close,
                ..
            })
        ));
    }

    fn every_action() -> impl Strategy<Value = ProtocolAction> {
        prop_oneof![
            Just(ProtocolAction::Drop),
            Just(ProtocolAction::Delay),
            Just(ProtocolAction::Duplicate),
            Just(ProtocolAction::Corrupt),
            Just(ProtocolAction::WrongMac),
            Just(ProtocolAction::Unsolicited),
            Just(ProtocolAction::StatusWord),
            Just(ProtocolAction::RemoveCard),
        ]
    }

    proptest! {
        /// A rule that matches nothing passes every byte through unchanged and in order,
        /// however the stream is cut into reads, whatever the protocol and the action.
        #[test]
        fn a_rule_that_matches_nothing_changes_nothing(
            action in every_action(),
            which in 0u8..3,
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
            cuts in proptest::collection::vec(1usize..17, 1..10),
        ) {
            let (matcher, stream) = match which {
                0 => {
                    // ISO 8583 answers, selecting an MTI none of them has
                    let stream: Vec<u8> = bodies.iter().enumerate()
                        .flat_map(|(i, _)| answer(&format!("{:06}", i), "00")).collect();
                    (Matcher::Iso8583 { spec: Box::new(spec()), mti: "0430".into() }, stream)
                }
                1 => {
                    // ZVT TCP APDUs, selecting a command none of them is
                    let stream: Vec<u8> = bodies.iter().flat_map(|b| zvt_tcp(0x04, 0x0F, b)).collect();
                    (Matcher::Zvt { command: Some([0x06, 0x0F]), framer_transport: ZvtTransport::Tcp }, stream)
                }
                _ => {
                    // arbitrary bytes through a vpcd framer, selecting an INS never sent
                    let stream: Vec<u8> = bodies.iter().flat_map(|b| {
                        let mut b = b.clone();
                        if let Some(ins) = b.get_mut(1) { if *ins == 0xAE { *ins = 0xAF; } }
                        vpcd(&b)
                    }).collect();
                    (Matcher::Apdu { ins: Some(0xAE) }, stream)
                }
            };
            let mut s = stage(matcher, params(action, 1, 0), Role::Act, Conversation::new());
            let mut pieces = Vec::new();
            let mut rest = stream.as_slice();
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                let (a, b) = rest.split_at(n);
                pieces.push(a.to_vec());
                rest = b;
                i += 1;
            }
            let (items, events) = feed(&mut s, &pieces);
            let mut out = Out::default();
            s.handle_remove(Duration::from_secs(1), &mut out);
            let mut all = items;
            all.extend(out.items);
            prop_assert_eq!(bytes(&all), stream);
            prop_assert!(all.iter().all(|i| matches!(i, Item::Data(_))));
            prop_assert!(events.iter().all(|e| e.decision.get("unframed").is_none()));
        }
    }
}
