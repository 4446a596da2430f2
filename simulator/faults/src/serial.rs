//! Serial-line faults: what a UART link between a cash register (or a printer) and a
//! terminal does wrong, as sans-IO stages over the same [`Item`]s as the network toxics.
//!
//! | type            | what the receiving port sees                                            |
//! |-----------------|-------------------------------------------------------------------------|
//! | `byte_drop`     | each byte lost with `probability` (an overrun)                           |
//! | `bit_errors`    | each byte with one bit flipped with `probability` (line noise)           |
//! | `wrong_baud`    | the bytes a UART at `line_baud` reads from a sender at `baud`: garbled,  |
//! |                 | more or fewer bytes, framing errors (a bit-level model of the line)      |
//! | `break`         | before a chunk, with `probability`: the line held low for `duration` ms, |
//! |                 | read as `nuls` NUL bytes with a framing error                            |
//! | `parity_error`  | each byte with `probability` fails its parity check; `mode` says what    |
//! |                 | the port delivers (termios: `nul`, `mark` = FF 00 c, `ignore`, `pass`)  |
//! | `framing_error` | the same for a missing stop bit                                          |
//! | `flow_stall`    | with `probability` per chunk, flow control (RTS/CTS or XOFF) stops the   |
//! |                 | line for `duration` ms: nothing passes, nothing is lost or reordered     |
//! | `disconnect`    | the cable is pulled for `down` ms (at random with `probability` per      |
//! |                 | chunk, or once `after` ms from when it joined): bytes sent meanwhile are |
//! |                 | lost (`mode: drop`), or the port closes (`mode: close`)                  |
//!
//! Every fault that fires is a [`crate::FaultEvent`] naming the stage's RNG stream; byte
//! values are never journaled (a serial line carries card data), only offsets and bits.
//!
//! [`SerialSpec`] is the short text form the command lines take
//! (`noise=0.01,drop=0.001,baud=4800,break=0.05/250ms,stall=0.1/300ms,rx:disconnect=0.02/2s`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::spec::{StageKind, StreamDir, ToxicSpec};
use crate::stages::Base;
use crate::{ms, Action, Chunk, FaultError, Item, Out, Stage};

/// Offsets journaled per event at most (the count is always complete).
const MAX_LISTED: usize = 32;

// ---- attributes ---------------------------------------------------------------------------

/// `byte_drop`, `bit_errors`: a probability per byte.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerByte {
    #[serde(default)]
    pub probability: f64,
    /// Bytes passed untouched (and undrawn) before the fault may fire.
    #[serde(default)]
    pub skip: u64,
    /// At most this many bytes hit (0: no limit).
    #[serde(default)]
    pub count: u64,
}

impl PerByte {
    /// `probability` on every byte, no skip, no limit.
    pub fn rate(probability: f64) -> PerByte {
        PerByte {
            probability,
            skip: 0,
            count: 0,
        }
    }
}

/// The per-byte decision of `byte_drop` and `bit_errors`: skipped bytes are not drawn.
struct ByteGate {
    attrs: PerByte,
    seen: u64,
    hit: u64,
}

impl ByteGate {
    fn new(attrs: PerByte) -> ByteGate {
        ByteGate {
            attrs,
            seen: 0,
            hit: 0,
        }
    }

    fn fires(&mut self, rng: &mut crate::RngStream) -> bool {
        self.seen += 1;
        if self.seen <= self.attrs.skip || (self.attrs.count > 0 && self.hit >= self.attrs.count) {
            return false;
        }
        let fire = rng.chance(self.attrs.probability);
        self.hit += u64::from(fire);
        fire
    }
}

/// What the receiving port delivers for a byte with a parity or framing error (termios).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorMode {
    /// `INPCK`: the byte is read as NUL.
    Nul,
    /// `INPCK` + `PARMRK`: `FF 00` then the byte.
    Mark,
    /// `IGNPAR`: the byte is dropped.
    Ignore,
    /// Raw mode (no `INPCK`): the byte as received (a parity error flips one of its bits).
    Pass,
}

/// `parity_error`, `framing_error`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineErrorAttrs {
    #[serde(default)]
    pub probability: f64,
    #[serde(default = "nul_mode")]
    pub mode: ErrorMode,
}

fn nul_mode() -> ErrorMode {
    ErrorMode::Nul
}

/// Parity of a UART frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// `wrong_baud`: the sender runs at `baud`, the receiver at `line_baud`, both with the same
/// frame (`data_bits`, `parity`, `stop_bits`; ZVT's default 8N2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrongBaudAttrs {
    /// The probability that a chunk is garbled (1: the line is always wrong).
    #[serde(default = "one_f64")]
    pub probability: f64,
    #[serde(default = "b9600")]
    pub baud: u32,
    #[serde(default = "b4800")]
    pub line_baud: u32,
    #[serde(default = "eight")]
    pub data_bits: u8,
    #[serde(default = "no_parity")]
    pub parity: Parity,
    #[serde(default = "two")]
    pub stop_bits: u8,
}

fn one_f64() -> f64 {
    1.0
}
fn b9600() -> u32 {
    9600
}
fn b4800() -> u32 {
    4800
}
fn eight() -> u8 {
    8
}
fn two() -> u8 {
    2
}
fn no_parity() -> Parity {
    Parity::None
}

/// `break`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakAttrs {
    /// Per chunk.
    #[serde(default)]
    pub probability: f64,
    /// How long the line is held low, ms (the chunk after it waits that long).
    #[serde(default = "d250")]
    pub duration: u64,
    /// NUL bytes the receiving port reads for the break.
    #[serde(default = "one_u32")]
    pub nuls: u32,
    /// At most this many breaks (0: no limit).
    #[serde(default)]
    pub count: u64,
}

fn d250() -> u64 {
    250
}
fn one_u32() -> u32 {
    1
}

/// How flow control stopped the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowControl {
    /// The receiver dropped RTS (the sender sees CTS low).
    RtsCts,
    /// The receiver sent XOFF (and XON when it was ready again).
    Xoff,
}

/// `flow_stall`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StallAttrs {
    /// Per chunk.
    #[serde(default)]
    pub probability: f64,
    /// How long nothing passes, ms.
    #[serde(default = "d500")]
    pub duration: u64,
    #[serde(default = "rts_cts")]
    pub via: FlowControl,
    /// At most this many stalls (0: no limit).
    #[serde(default)]
    pub count: u64,
}

fn d500() -> u64 {
    500
}
fn rts_cts() -> FlowControl {
    FlowControl::RtsCts
}

/// What a pulled cable does to the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectMode {
    /// The port stays open; bytes sent while the cable is out are lost.
    Drop,
    /// The port goes away (a USB adapter unplugged): the link closes.
    Close,
}

/// `disconnect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DisconnectAttrs {
    /// Per chunk, while the cable is in.
    #[serde(default)]
    pub probability: f64,
    /// How long the cable stays out, ms.
    #[serde(default = "d1000")]
    pub down: u64,
    /// Pull the cable once, this many ms after the stage joined (0: at once).
    #[serde(default)]
    pub after: Option<u64>,
    #[serde(default = "drop_mode")]
    pub mode: DisconnectMode,
    /// At most this many random pulls (0: no limit).
    #[serde(default)]
    pub count: u64,
}

fn d1000() -> u64 {
    1000
}
fn drop_mode() -> DisconnectMode {
    DisconnectMode::Drop
}

/// Checks the attributes of a serial kind: `Err((field, reason))`.
pub(crate) fn check(kind: &StageKind) -> Result<(), (&'static str, String)> {
    let p = |p: f64| {
        if (0.0..=1.0).contains(&p) {
            Ok(())
        } else {
            Err(("probability", format!("{p} is not between 0 and 1")))
        }
    };
    match kind {
        StageKind::ByteDrop(a) | StageKind::BitErrors(a) => p(a.probability),
        StageKind::ParityError(a) | StageKind::FramingError(a) => p(a.probability),
        StageKind::WrongBaud(a) => {
            p(a.probability)?;
            for (field, baud) in [("baud", a.baud), ("line_baud", a.line_baud)] {
                if !(50..=4_000_000).contains(&baud) {
                    return Err((field, format!("{baud} is not between 50 and 4000000")));
                }
            }
            if !(5..=8).contains(&a.data_bits) {
                return Err(("data_bits", format!("{} is not 5 to 8", a.data_bits)));
            }
            if !(1..=2).contains(&a.stop_bits) {
                return Err(("stop_bits", format!("{} is not 1 or 2", a.stop_bits)));
            }
            Ok(())
        }
        StageKind::Break(a) => {
            p(a.probability)?;
            if a.nuls > 4096 {
                return Err(("nuls", format!("{} is more than 4096", a.nuls)));
            }
            Ok(())
        }
        StageKind::FlowStall(a) => p(a.probability),
        StageKind::Disconnect(a) => p(a.probability),
        _ => Ok(()),
    }
}

/// The stage of a serial kind (a pass-through for any other kind).
pub(crate) fn build(kind: &StageKind, base: Base) -> Box<dyn Stage> {
    match kind.clone() {
        StageKind::ByteDrop(a) => Box::new(ByteDrop {
            base,
            gate: ByteGate::new(a),
        }),
        StageKind::BitErrors(a) => Box::new(BitErrors {
            base,
            gate: ByteGate::new(a),
        }),
        StageKind::WrongBaud(a) => Box::new(WrongBaud { base, attrs: a }),
        StageKind::Break(a) => Box::new(LineBreak {
            base,
            attrs: a,
            fired: 0,
            last: Duration::ZERO,
        }),
        StageKind::ParityError(a) => Box::new(LineErrors {
            base,
            attrs: a,
            framing: false,
        }),
        StageKind::FramingError(a) => Box::new(LineErrors {
            base,
            attrs: a,
            framing: true,
        }),
        StageKind::FlowStall(a) => Box::new(FlowStall {
            base,
            attrs: a,
            fired: 0,
            until: Duration::ZERO,
        }),
        StageKind::Disconnect(a) => Box::new(Disconnect::new(base, a)),
        _ => Box::new(PassThrough { base }),
    }
}

macro_rules! base_methods {
    () => {
        fn name(&self) -> &str {
            &self.base.name
        }
        fn kind(&self) -> &'static str {
            self.base.kind
        }
    };
}

struct PassThrough {
    base: Base,
}

impl Stage for PassThrough {
    base_methods!();
    fn handle(&mut self, item: Item, _now: Duration, out: &mut Out) {
        out.push(item);
    }
}

fn listed<T: Clone>(v: &[T]) -> &[T] {
    v.get(..MAX_LISTED.min(v.len())).unwrap_or(v)
}

// ---- byte_drop, bit_errors ----------------------------------------------------------------

/// `byte_drop`: each byte lost with `probability`.
pub struct ByteDrop {
    pub base: Base,
    gate: ByteGate,
}

impl Stage for ByteDrop {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let Item::Data(mut c) = item else {
            out.push(item);
            return;
        };
        let mut dropped = Vec::new();
        let mut kept = Vec::with_capacity(c.data.len());
        for (i, b) in c.data.iter().enumerate() {
            if self.gate.fires(&mut self.base.rng) {
                dropped.push(i);
            } else {
                kept.push(*b);
            }
        }
        if !dropped.is_empty() {
            self.base.event(
                now,
                out,
                json!({"dropped": dropped.len(), "of": c.data.len(), "offsets": listed(&dropped)}),
            );
        }
        c.data = kept;
        if !c.data.is_empty() {
            out.push(Item::Data(c));
        }
    }
}

/// `bit_errors`: each byte gets one random bit flipped with `probability`.
pub struct BitErrors {
    pub base: Base,
    gate: ByteGate,
}

impl Stage for BitErrors {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let Item::Data(mut c) = item else {
            out.push(item);
            return;
        };
        let mut flipped: Vec<[usize; 2]> = Vec::new();
        for (i, b) in c.data.iter_mut().enumerate() {
            if self.gate.fires(&mut self.base.rng) {
                let bit = self.base.rng.below(8) as usize;
                *b ^= 1 << bit;
                flipped.push([i, bit]);
            }
        }
        if !flipped.is_empty() {
            self.base.event(
                now,
                out,
                json!({"flipped": flipped.len(), "of": c.data.len(), "offset_bit": listed(&flipped)}),
            );
        }
        out.push(Item::Data(c));
    }
}

// ---- parity_error, framing_error ------------------------------------------------------------

/// `parity_error` / `framing_error`: bytes that fail the receiver's check, delivered as
/// `mode` says.
pub struct LineErrors {
    pub base: Base,
    pub attrs: LineErrorAttrs,
    pub framing: bool,
}

impl Stage for LineErrors {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let Item::Data(mut c) = item else {
            out.push(item);
            return;
        };
        let mut errors = Vec::new();
        let mut delivered = Vec::with_capacity(c.data.len());
        for (i, b) in c.data.iter().enumerate() {
            if !self.base.rng.chance(self.attrs.probability) {
                delivered.push(*b);
                continue;
            }
            errors.push(i);
            // a parity error is a bit the line flipped; a framing error a lost stop bit
            let received = if self.framing {
                *b
            } else {
                *b ^ (1 << self.base.rng.below(8))
            };
            match self.attrs.mode {
                ErrorMode::Nul => delivered.push(0),
                ErrorMode::Mark => delivered.extend_from_slice(&[0xFF, 0x00, received]),
                ErrorMode::Ignore => {}
                ErrorMode::Pass => delivered.push(received),
            }
        }
        if !errors.is_empty() {
            self.base.event(
                now,
                out,
                json!({
                    "error": if self.framing { "framing" } else { "parity" },
                    "bytes": errors.len(),
                    "of": c.data.len(),
                    "offsets": listed(&errors),
                    "delivered_as": self.attrs.mode,
                }),
            );
        }
        c.data = delivered;
        if !c.data.is_empty() {
            out.push(Item::Data(c));
        }
    }
}

// ---- wrong_baud -----------------------------------------------------------------------------

/// What a receiving UART made of the line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UartRead {
    pub bytes: Vec<u8>,
    /// Offsets (in `bytes`) read with a framing error (stop bit low).
    pub framing_errors: Vec<usize>,
    /// Offsets read with a parity error.
    pub parity_errors: Vec<usize>,
}

/// The bit-level model of a UART receiving at `line_baud` what a UART sent at `baud`,
/// back to back from an idle line. `phase` draws the receiver's start-bit detection offset
/// (a 16× oversampling UART finds the falling edge up to 1/16 bit late) in [0, n).
///
/// Time runs in units of 1 / (16 · baud · line_baud) s, so a sender bit is
/// `16 · line_baud` units and a receiver bit `16 · baud`: all integer arithmetic.
pub fn uart_receive(
    data: &[u8],
    baud: u32,
    line_baud: u32,
    frame: (u8, Parity, u8),
    mut phase: impl FnMut(u64) -> u64,
) -> UartRead {
    let (data_bits, parity, stop_bits) = frame;
    let data_bits = data_bits.clamp(5, 8);
    let parity_bits = u8::from(parity != Parity::None);
    // the sender's line: start, data LSB first, parity, stop
    let mut line: Vec<bool> = Vec::with_capacity(data.len() * 12);
    for &byte in data {
        line.push(false);
        let mut ones = 0u32;
        for i in 0..data_bits {
            let bit = byte >> i & 1 == 1;
            ones += u32::from(bit);
            line.push(bit);
        }
        match parity {
            Parity::None => {}
            Parity::Even => line.push(!ones.is_multiple_of(2)),
            Parity::Odd => line.push(ones.is_multiple_of(2)),
        }
        line.extend(std::iter::repeat_n(true, usize::from(stop_bits.max(1))));
    }
    let bs = 16 * u128::from(line_baud.max(1));
    let br = 16 * u128::from(baud.max(1));
    let level = |t: u128| -> bool {
        let idx = t / bs;
        usize::try_from(idx)
            .ok()
            .and_then(|i| line.get(i).copied())
            .unwrap_or(true)
    };
    let mut read = UartRead::default();
    let mut ready: u128 = 0;
    let mut k = 0usize;
    loop {
        // the next falling edge at or after `ready`
        let from = usize::try_from(ready.div_ceil(bs)).unwrap_or(usize::MAX);
        k = k.max(from);
        while k < line.len() {
            let prev = if k == 0 {
                true
            } else {
                line.get(k - 1).copied().unwrap_or(true)
            };
            if prev && !line.get(k).copied().unwrap_or(true) {
                break;
            }
            k += 1;
        }
        if k >= line.len() {
            break;
        }
        let edge = k as u128 * bs + u128::from(phase((br / 16).max(1) as u64));
        let sample = |j: u128| level(edge + j * br + br / 2);
        if sample(0) {
            // a glitch, not a start bit
            ready = edge + br / 2 + 1;
            k += 1;
            continue;
        }
        let mut byte = 0u8;
        let mut ones = 0u32;
        for i in 0..data_bits {
            if sample(1 + u128::from(i)) {
                byte |= 1 << i;
                ones += 1;
            }
        }
        let mut parity_ok = true;
        if parity != Parity::None {
            let p = sample(1 + u128::from(data_bits));
            let total = ones + u32::from(p);
            parity_ok = match parity {
                Parity::Even => total.is_multiple_of(2),
                _ => !total.is_multiple_of(2),
            };
        }
        let stop_at = 1 + u128::from(data_bits) + u128::from(parity_bits);
        let stop_ok = sample(stop_at);
        let at = read.bytes.len();
        read.bytes.push(byte);
        if !stop_ok {
            read.framing_errors.push(at);
        }
        if !parity_ok {
            read.parity_errors.push(at);
        }
        ready = edge + stop_at * br + br / 2;
        k += 1;
    }
    read
}

/// `wrong_baud`: the receiving port runs at another speed than the sender.
pub struct WrongBaud {
    pub base: Base,
    pub attrs: WrongBaudAttrs,
}

impl Stage for WrongBaud {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let Item::Data(mut c) = item else {
            out.push(item);
            return;
        };
        if !self.base.rng.chance(self.attrs.probability) {
            out.push(Item::Data(c));
            return;
        }
        let a = &self.attrs;
        let rng = &mut self.base.rng;
        let read = uart_receive(
            &c.data,
            a.baud,
            a.line_baud,
            (a.data_bits, a.parity, a.stop_bits),
            |n| rng.below(n),
        );
        self.base.event(
            now,
            out,
            json!({
                "sent": c.data.len(),
                "read": read.bytes.len(),
                "framing_errors": read.framing_errors.len(),
                "parity_errors": read.parity_errors.len(),
                "baud": self.attrs.baud,
                "line_baud": self.attrs.line_baud,
            }),
        );
        c.data = read.bytes;
        if !c.data.is_empty() {
            out.push(Item::Data(c));
        }
    }
}

// ---- break ----------------------------------------------------------------------------------

/// `break`: before a chunk, the line is held low for `duration` ms; the receiving port
/// reads `nuls` NUL bytes (with a framing error), then the chunk.
pub struct LineBreak {
    pub base: Base,
    pub attrs: BreakAttrs,
    fired: u64,
    last: Duration,
}

impl Stage for LineBreak {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let Item::Data(mut c) = item else {
            let at = item.at().max(self.last);
            out.push(item.with_at(at));
            return;
        };
        let mut at = c.at.max(self.last);
        let left = self.attrs.count == 0 || self.fired < self.attrs.count;
        if self.base.rng.chance(self.attrs.probability) && left {
            self.fired += 1;
            let held = Duration::from_millis(self.attrs.duration);
            self.base.event(
                now,
                out,
                json!({"break_ms": ms(held), "nuls": self.attrs.nuls, "framing_error": true, "at_ms": ms(at)}),
            );
            if self.attrs.nuls > 0 {
                out.push(Item::Data(Chunk {
                    data: vec![0; self.attrs.nuls as usize],
                    at,
                }));
            }
            at += held;
        }
        c.at = at;
        self.last = at;
        out.push(Item::Data(c));
    }
}

// ---- flow_stall -----------------------------------------------------------------------------

/// `flow_stall`: flow control stops the line; what is sent meanwhile waits, in order.
pub struct FlowStall {
    pub base: Base,
    pub attrs: StallAttrs,
    fired: u64,
    /// Nothing passes before this.
    until: Duration,
}

impl Stage for FlowStall {
    base_methods!();
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        let Item::Data(mut c) = item else {
            let at = item.at().max(self.until);
            out.push(item.with_at(at));
            return;
        };
        let left = self.attrs.count == 0 || self.fired < self.attrs.count;
        if self.base.rng.chance(self.attrs.probability) && left {
            self.fired += 1;
            let from = c.at.max(self.until);
            self.until = from + Duration::from_millis(self.attrs.duration);
            self.base.event(
                now,
                out,
                json!({"stalled_ms": self.attrs.duration, "via": self.attrs.via,
                       "from_ms": ms(from), "until_ms": ms(self.until), "held": c.data.len()}),
            );
        }
        c.at = c.at.max(self.until);
        self.until = c.at;
        out.push(Item::Data(c));
    }
}

// ---- disconnect -----------------------------------------------------------------------------

/// `disconnect`: the cable is out for `down` ms, then back.
pub struct Disconnect {
    pub base: Base,
    pub attrs: DisconnectAttrs,
    fired: u64,
    /// The cable is out in [from, until).
    window: Option<(Duration, Duration)>,
    announced_down: bool,
    closed: bool,
}

impl Disconnect {
    pub fn new(base: Base, attrs: DisconnectAttrs) -> Disconnect {
        Disconnect {
            base,
            attrs,
            fired: 0,
            window: None,
            announced_down: false,
            closed: false,
        }
    }

    fn down(&self) -> Duration {
        Duration::from_millis(self.attrs.down)
    }

    /// The cable goes out at `from`: journal it, and close the port in `close` mode.
    fn go_down(&mut self, from: Duration, now: Duration, reason: &str, out: &mut Out) {
        self.announced_down = true;
        let until = from + self.down();
        self.base.event(
            now,
            out,
            json!({"down": true, "reason": reason, "from_ms": ms(from), "until_ms": ms(until), "mode": self.attrs.mode}),
        );
        if self.attrs.mode == DisconnectMode::Close {
            self.closed = true;
            out.push(Item::Action {
                at: from,
                action: Action::Close,
            });
        }
    }
}

impl Stage for Disconnect {
    base_methods!();
    fn handle_start(&mut self, now: Duration, out: &mut Out) {
        if let Some(after) = self.attrs.after {
            let from = now + Duration::from_millis(after);
            self.window = Some((from, from + self.down()));
            if after == 0 {
                self.go_down(from, now, "pulled", out);
            }
        }
    }
    fn handle(&mut self, item: Item, now: Duration, out: &mut Out) {
        if self.closed {
            return;
        }
        let Item::Data(c) = item else {
            out.push(item);
            return;
        };
        if let Some((from, until)) = self.window {
            if c.at >= from && c.at < until {
                if !self.announced_down {
                    self.go_down(from, now, "pulled", out);
                }
                self.base.event(
                    now,
                    out,
                    json!({"dropped": c.data.len(), "cable": "out", "until_ms": ms(until)}),
                );
                return;
            }
        }
        let cable_in = self.window.is_none_or(|(_, until)| c.at >= until);
        let left = self.attrs.count == 0 || self.fired < self.attrs.count;
        if cable_in && self.base.rng.chance(self.attrs.probability) && left {
            self.fired += 1;
            self.window = Some((c.at, c.at + self.down()));
            self.go_down(c.at, now, "random", out);
            if self.attrs.mode == DisconnectMode::Drop {
                self.base.event(
                    now,
                    out,
                    json!({"dropped": c.data.len(), "cable": "out", "until_ms": ms(c.at + self.down())}),
                );
            }
            return;
        }
        out.push(Item::Data(c));
    }
    fn poll(&mut self, now: Duration, out: &mut Out) {
        let Some((from, until)) = self.window else {
            return;
        };
        if !self.announced_down && from <= now {
            self.go_down(from, now, "pulled", out);
        }
        if self.announced_down && until <= now {
            self.window = None;
            self.announced_down = false;
            self.base
                .event(now, out, json!({"up": true, "at_ms": ms(until)}));
        }
    }
    fn poll_timeout(&self) -> Option<Duration> {
        if self.closed {
            return None;
        }
        self.window
            .map(|(from, until)| if self.announced_down { until } else { from })
    }
}

// ---- the text form ------------------------------------------------------------------------

/// Which way of a serial line a fault applies to, from the side of the tool that has it
/// (`tx`: what it sends, `rx`: what it reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    Both,
    Tx,
    Rx,
}

/// One serial fault of a [`SerialSpec`].
#[derive(Clone, Debug, PartialEq)]
pub enum LineFault {
    /// `drop=P`: bytes lost.
    Drop(f64),
    /// `noise=P`: bit errors.
    Noise(f64),
    /// `baud=N`: the other end runs at N baud.
    Baud(u32),
    /// `break=P[/DUR]`.
    Break(f64, Duration),
    /// `parity=P`.
    Parity(f64),
    /// `framing=P`.
    Framing(f64),
    /// `stall=P[/DUR]`.
    Stall(f64, Duration),
    /// `disconnect=P[/DUR]`.
    Disconnect(f64, Duration),
}

/// A serial fault list as the command lines take it: comma-separated `[tx:|rx:]word=value`,
/// e.g. `noise=0.01,rx:drop=0.001,baud=4800,break=0.05/250ms,stall=0.1/300ms,disconnect=0.02/2s`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SerialSpec {
    pub faults: Vec<(Way, LineFault)>,
}

/// The fault words [`SerialSpec`] knows.
pub const SERIAL_WORDS: &[&str] = &[
    "drop",
    "noise",
    "baud",
    "break",
    "parity",
    "framing",
    "stall",
    "disconnect",
];

fn spec_err(word: &str, reason: impl Into<String>) -> FaultError {
    FaultError::Config {
        path: format!("serial fault {word:?}"),
        reason: reason.into(),
    }
}

fn parse_duration(text: &str, word: &str) -> Result<Duration, FaultError> {
    let (n, unit) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else {
        (text, 1)
    };
    let n: u64 = n
        .parse()
        .map_err(|_| spec_err(word, format!("{text:?} is not a duration (e.g. 250ms, 2s)")))?;
    n.checked_mul(unit)
        .filter(|ms| *ms <= 86_400_000)
        .map(Duration::from_millis)
        .ok_or_else(|| spec_err(word, format!("{text} is more than a day")))
}

fn parse_probability(text: &str, word: &str) -> Result<f64, FaultError> {
    let p: f64 = text
        .parse()
        .map_err(|_| spec_err(word, format!("{text:?} is not a probability")))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(spec_err(word, format!("{p} is not between 0 and 1")))
    }
}

impl FromStr for LineFault {
    type Err = FaultError;
    fn from_str(word: &str) -> Result<LineFault, FaultError> {
        let (name, value) = word
            .split_once('=')
            .ok_or_else(|| spec_err(word, "needs a value, e.g. noise=0.01"))?;
        let (first, dur) = match value.split_once('/') {
            Some((a, d)) => (a, Some(parse_duration(d, word)?)),
            None => (value, None),
        };
        let timed = matches!(name, "break" | "stall" | "disconnect");
        if dur.is_some() && !timed {
            return Err(spec_err(word, "takes no duration"));
        }
        Ok(match name {
            "drop" => LineFault::Drop(parse_probability(first, word)?),
            "noise" => LineFault::Noise(parse_probability(first, word)?),
            "parity" => LineFault::Parity(parse_probability(first, word)?),
            "framing" => LineFault::Framing(parse_probability(first, word)?),
            "baud" => {
                let b: u32 = first
                    .parse()
                    .map_err(|_| spec_err(word, format!("{first:?} is not a baud rate")))?;
                if !(50..=4_000_000).contains(&b) {
                    return Err(spec_err(word, format!("{b} is not between 50 and 4000000")));
                }
                LineFault::Baud(b)
            }
            "break" => LineFault::Break(
                parse_probability(first, word)?,
                dur.unwrap_or(Duration::from_millis(250)),
            ),
            "stall" => LineFault::Stall(
                parse_probability(first, word)?,
                dur.unwrap_or(Duration::from_millis(500)),
            ),
            "disconnect" => LineFault::Disconnect(
                parse_probability(first, word)?,
                dur.unwrap_or(Duration::from_secs(1)),
            ),
            other => {
                return Err(spec_err(
                    word,
                    format!(
                        "unknown serial fault {other:?} (known: {})",
                        SERIAL_WORDS.join(", ")
                    ),
                ))
            }
        })
    }
}

impl fmt::Display for LineFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: &Duration| format!("{}ms", d.as_millis());
        match self {
            LineFault::Drop(p) => write!(f, "drop={p}"),
            LineFault::Noise(p) => write!(f, "noise={p}"),
            LineFault::Baud(b) => write!(f, "baud={b}"),
            LineFault::Break(p, t) => write!(f, "break={p}/{}", d(t)),
            LineFault::Parity(p) => write!(f, "parity={p}"),
            LineFault::Framing(p) => write!(f, "framing={p}"),
            LineFault::Stall(p, t) => write!(f, "stall={p}/{}", d(t)),
            LineFault::Disconnect(p, t) => write!(f, "disconnect={p}/{}", d(t)),
        }
    }
}

impl FromStr for SerialSpec {
    type Err = FaultError;
    fn from_str(text: &str) -> Result<SerialSpec, FaultError> {
        let mut faults = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let (way, rest) = if let Some(r) = word.strip_prefix("tx:") {
                (Way::Tx, r)
            } else if let Some(r) = word.strip_prefix("rx:") {
                (Way::Rx, r)
            } else {
                (Way::Both, word)
            };
            faults.push((way, rest.parse::<LineFault>()?));
        }
        Ok(SerialSpec { faults })
    }
}

impl fmt::Display for SerialSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (way, fault)) in self.faults.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match way {
                Way::Both => {}
                Way::Tx => f.write_str("tx:")?,
                Way::Rx => f.write_str("rx:")?,
            }
            write!(f, "{fault}")?;
        }
        Ok(())
    }
}

/// True when `word` (one item of a comma-separated list, maybe `tx:`/`rx:`-prefixed) is a
/// serial fault word, so a command line can mix them with its device's own fault words.
pub fn is_serial_word(word: &str) -> bool {
    let w = word.trim();
    let w = w
        .strip_prefix("tx:")
        .or_else(|| w.strip_prefix("rx:"))
        .unwrap_or(w);
    let name = w.split('=').next().unwrap_or("");
    SERIAL_WORDS.contains(&name)
}

impl SerialSpec {
    /// The toxics of the line, for a tool whose port runs at `local_baud`: what it sends is
    /// `upstream`, what it reads `downstream`. Names are `serial_<word>_<tx|rx>`.
    pub fn toxics(&self, local_baud: u32) -> Vec<ToxicSpec> {
        let mut out: Vec<ToxicSpec> = Vec::new();
        for (way, fault) in &self.faults {
            let ways: &[StreamDir] = match way {
                Way::Both => &[StreamDir::Upstream, StreamDir::Downstream],
                Way::Tx => &[StreamDir::Upstream],
                Way::Rx => &[StreamDir::Downstream],
            };
            for &dir in ways {
                let tx = dir == StreamDir::Upstream;
                let kind = match fault {
                    LineFault::Drop(p) => StageKind::ByteDrop(PerByte::rate(*p)),
                    LineFault::Noise(p) => StageKind::BitErrors(PerByte::rate(*p)),
                    LineFault::Parity(p) => StageKind::ParityError(LineErrorAttrs {
                        probability: *p,
                        mode: ErrorMode::Nul,
                    }),
                    LineFault::Framing(p) => StageKind::FramingError(LineErrorAttrs {
                        probability: *p,
                        mode: ErrorMode::Nul,
                    }),
                    LineFault::Baud(b) => {
                        // we send at local_baud, they read at b; they send at b, we read at ours
                        let (baud, line_baud) = if tx {
                            (local_baud, *b)
                        } else {
                            (*b, local_baud)
                        };
                        StageKind::WrongBaud(WrongBaudAttrs {
                            probability: 1.0,
                            baud,
                            line_baud,
                            data_bits: 8,
                            parity: Parity::None,
                            stop_bits: 2,
                        })
                    }
                    LineFault::Break(p, d) => StageKind::Break(BreakAttrs {
                        probability: *p,
                        duration: d.as_millis() as u64,
                        nuls: 1,
                        count: 0,
                    }),
                    LineFault::Stall(p, d) => StageKind::FlowStall(StallAttrs {
                        probability: *p,
                        duration: d.as_millis() as u64,
                        via: FlowControl::RtsCts,
                        count: 0,
                    }),
                    LineFault::Disconnect(p, d) => StageKind::Disconnect(DisconnectAttrs {
                        probability: *p,
                        down: d.as_millis() as u64,
                        after: None,
                        mode: DisconnectMode::Drop,
                        count: 0,
                    }),
                };
                let word = fault.to_string();
                let word = word.split('=').next().unwrap_or("fault");
                let base = format!("serial_{word}_{}", if tx { "tx" } else { "rx" });
                let mut name = base.clone();
                let mut n = 1;
                while out.iter().any(|t| t.name == name) {
                    n += 1;
                    name = format!("{base}_{n}");
                }
                out.push(ToxicSpec {
                    name,
                    stream: dir,
                    toxicity: 1.0,
                    kind,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Pipeline, RngStream};
    use proptest::prelude::*;

    fn stage(kind: StageKind, key: &str) -> Box<dyn Stage> {
        ToxicSpec {
            name: kind.type_name().into(),
            stream: StreamDir::Upstream,
            toxicity: 1.0,
            kind,
        }
        .build(7, key)
    }

    /// Feeds chunks (bytes, at ms) through one stage; returns what came out, in order, with
    /// deadlines, and the events.
    fn run(
        kind: StageKind,
        chunks: &[(Vec<u8>, u64)],
    ) -> (Vec<(Vec<u8>, u64)>, Vec<serde_json::Value>) {
        let mut p = Pipeline::new();
        p.push(stage(kind, "test"), Duration::ZERO);
        let mut got = Vec::new();
        for (data, at) in chunks {
            let now = Duration::from_millis(*at);
            p.poll(now);
            p.handle_data(data.clone(), now);
        }
        let end = Duration::from_secs(100_000);
        p.poll(end);
        while let Some(item) = p.poll_item(end) {
            if let Item::Data(c) = item {
                got.push((c.data, c.at.as_millis() as u64));
            }
        }
        let events = p.poll_events().into_iter().map(|e| e.decision).collect();
        (got, events)
    }

    fn bytes(out: &[(Vec<u8>, u64)]) -> Vec<u8> {
        out.iter().flat_map(|(d, _)| d.clone()).collect()
    }

    #[test]
    fn uart_at_the_same_speed_reads_what_was_sent() {
        let data: Vec<u8> = (0..=255u8).collect();
        for frame in [
            (8, Parity::None, 2),
            (8, Parity::Even, 1),
            (7, Parity::Odd, 1),
        ] {
            let mut r = RngStream::derive(1, "phase");
            let read = uart_receive(&data, 9600, 9600, frame, |n| r.below(n));
            let mask = if frame.0 == 7 { 0x7F } else { 0xFF };
            let want: Vec<u8> = data.iter().map(|b| b & mask).collect();
            assert_eq!(read.bytes, want, "{frame:?}");
            assert!(read.framing_errors.is_empty() && read.parity_errors.is_empty());
        }
    }

    #[test]
    fn uart_at_the_wrong_speed_garbles_with_framing_errors() {
        let data = b"\x10\x02\x06\x01\x0a\x04\x00\x00\x00\x00\x12\x00\x49\x09\x78\x10\x03";
        let mut r = RngStream::derive(1, "phase");
        // a receiver at half the speed reads about half the bytes, wrong
        let slow = uart_receive(data, 9600, 4800, (8, Parity::None, 2), |n| r.below(n));
        assert_ne!(slow.bytes, data.to_vec());
        assert!(slow.bytes.len() < data.len(), "{}", slow.bytes.len());
        assert!(!slow.framing_errors.is_empty());
        // a receiver at twice the speed reads more bytes than were sent
        let fast = uart_receive(data, 9600, 19200, (8, Parity::None, 2), |n| r.below(n));
        assert_ne!(fast.bytes, data.to_vec());
        // 0x00 at 9600 read at 19200: the start bit and the low data bits fill a frame
        let nul = uart_receive(&[0x00], 9600, 19200, (8, Parity::None, 2), |_| 0);
        assert_eq!(nul.bytes.first(), Some(&0x00));
        assert_eq!(nul.framing_errors, vec![0]);
    }

    #[test]
    fn wrong_baud_is_deterministic_for_a_seed() {
        let kind = StageKind::WrongBaud(WrongBaudAttrs {
            probability: 1.0,
            baud: 9600,
            line_baud: 4800,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 2,
        });
        let chunks = vec![
            (b"0200 purchase of 12.00".to_vec(), 0),
            (b"more".to_vec(), 5),
        ];
        let a = run(kind.clone(), &chunks);
        let b = run(kind, &chunks);
        assert_eq!(a, b);
        assert_ne!(bytes(&a.0), b"0200 purchase of 12.00more".to_vec());
        assert_eq!(a.1.len(), 2, "one event per garbled chunk");
        assert_eq!(a.1[0]["sent"], 22);
    }

    #[test]
    fn break_reads_as_nuls_and_holds_the_line() {
        let kind = StageKind::Break(BreakAttrs {
            probability: 1.0,
            duration: 250,
            nuls: 3,
            count: 1,
        });
        let (out, events) = run(kind, &[(b"ab".to_vec(), 10), (b"cd".to_vec(), 20)]);
        assert_eq!(
            out,
            vec![
                (vec![0, 0, 0], 10),
                (b"ab".to_vec(), 260),
                (b"cd".to_vec(), 260)
            ]
        );
        assert_eq!(events.len(), 1, "count 1: one break");
        assert_eq!(events[0]["framing_error"], true);
        assert_eq!(events[0]["break_ms"], 250.0);
    }

    #[test]
    fn parity_errors_are_replaced_and_flagged() {
        for (mode, want_len) in [
            (ErrorMode::Nul, 4),
            (ErrorMode::Mark, 12),
            (ErrorMode::Ignore, 0),
            (ErrorMode::Pass, 4),
        ] {
            let kind = StageKind::ParityError(LineErrorAttrs {
                probability: 1.0,
                mode,
            });
            let (out, events) = run(kind, &[(b"\x10\x02AB".to_vec(), 0)]);
            let got = bytes(&out);
            assert_eq!(got.len(), want_len, "{mode:?}");
            match mode {
                ErrorMode::Nul => assert_eq!(got, vec![0; 4]),
                ErrorMode::Mark => assert_eq!(got.get(..2), Some(&[0xFF, 0x00][..])),
                ErrorMode::Pass => {
                    for (a, b) in got.iter().zip(b"\x10\x02AB") {
                        assert_eq!((a ^ b).count_ones(), 1);
                    }
                }
                ErrorMode::Ignore => {}
            }
            assert_eq!(events[0]["error"], "parity");
            assert_eq!(events[0]["bytes"], 4);
        }
        let kind = StageKind::FramingError(LineErrorAttrs {
            probability: 1.0,
            mode: ErrorMode::Pass,
        });
        let (out, events) = run(kind, &[(b"AB".to_vec(), 0)]);
        assert_eq!(bytes(&out), b"AB".to_vec());
        assert_eq!(events[0]["error"], "framing");
    }

    #[test]
    fn stall_holds_everything_after_it_in_order() {
        let kind = StageKind::FlowStall(StallAttrs {
            probability: 1.0,
            duration: 300,
            via: FlowControl::Xoff,
            count: 1,
        });
        let (out, events) = run(
            kind,
            &[
                (b"a".to_vec(), 0),
                (b"b".to_vec(), 100),
                (b"c".to_vec(), 400),
            ],
        );
        assert_eq!(
            out,
            vec![
                (b"a".to_vec(), 300),
                (b"b".to_vec(), 300),
                (b"c".to_vec(), 400)
            ]
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["via"], "xoff");
    }

    #[test]
    fn a_pulled_cable_loses_what_is_sent_while_it_is_out_then_works_again() {
        let kind = StageKind::Disconnect(DisconnectAttrs {
            probability: 0.0,
            down: 1000,
            after: Some(100),
            mode: DisconnectMode::Drop,
            count: 0,
        });
        let mut p = Pipeline::new();
        p.push(stage(kind, "cable"), Duration::ZERO);
        let at = Duration::from_millis;
        p.handle_data(b"before".to_vec(), at(50));
        assert_eq!(
            p.poll_timeout(),
            Some(at(50)),
            "the head of the queue is due"
        );
        let _ = p.poll_item(at(50));
        assert_eq!(
            p.poll_timeout(),
            Some(at(100)),
            "the cable goes out at 100 ms"
        );
        p.poll(at(100));
        p.handle_data(b"lost".to_vec(), at(500));
        assert_eq!(
            p.poll_timeout(),
            Some(at(1100)),
            "and comes back at 1100 ms"
        );
        p.poll(at(1100));
        p.handle_data(b"after".to_vec(), at(1200));
        let item = p.poll_item(at(1200));
        assert!(
            matches!(item, Some(Item::Data(ref c)) if c.data == b"after"),
            "{item:?}"
        );
        let events: Vec<_> = p.poll_events().into_iter().map(|e| e.decision).collect();
        assert_eq!(events[0]["down"], true);
        assert_eq!(events[1]["dropped"], 4);
        assert_eq!(events[2]["up"], true);
    }

    #[test]
    fn a_pulled_usb_adapter_closes_the_port() {
        let kind = StageKind::Disconnect(DisconnectAttrs {
            probability: 0.0,
            down: 1000,
            after: Some(0),
            mode: DisconnectMode::Close,
            count: 0,
        });
        let mut p = Pipeline::new();
        p.push(stage(kind, "usb"), Duration::from_millis(5));
        let item = p.poll_item(Duration::from_millis(5));
        assert!(
            matches!(
                item,
                Some(Item::Action {
                    action: Action::Close,
                    ..
                })
            ),
            "{item:?}"
        );
    }

    #[test]
    fn skip_and_count_aim_a_bit_error_at_one_byte() {
        let kind = StageKind::BitErrors(PerByte {
            probability: 1.0,
            skip: 5,
            count: 1,
        });
        let (out, events) = run(kind, &[(vec![0u8; 4], 0), (vec![0u8; 4], 1)]);
        let got = bytes(&out);
        let hit: Vec<usize> = (0..got.len()).filter(|i| got[*i] != 0).collect();
        assert_eq!(hit, vec![5], "{got:?}");
        assert_eq!(events.len(), 1);
        assert_eq!(
            events[0]["offset_bit"][0][0], 1,
            "offset within the second chunk"
        );
    }

    #[test]
    fn drops_and_noise_fire_at_their_rate() {
        let data = vec![0x55u8; 10_000];
        let (out, events) = run(
            StageKind::ByteDrop(PerByte::rate(0.1)),
            &[(data.clone(), 0)],
        );
        let lost = 10_000 - bytes(&out).len();
        assert!((800..1200).contains(&lost), "{lost}");
        assert_eq!(events[0]["dropped"], lost);
        let (out, _) = run(StageKind::BitErrors(PerByte::rate(0.1)), &[(data, 0)]);
        let flipped = bytes(&out).iter().filter(|b| **b != 0x55).count();
        assert!((800..1200).contains(&flipped), "{flipped}");
    }

    #[test]
    fn the_text_form_parses_and_prints_back() {
        let spec: SerialSpec =
            "noise=0.01, rx:drop=0.001,baud=4800,break=0.05/250ms,tx:stall=0.1/2s,disconnect=1"
                .parse()
                .unwrap();
        assert_eq!(spec.faults.len(), 6);
        assert_eq!(spec.faults[1], (Way::Rx, LineFault::Drop(0.001)));
        assert_eq!(
            spec.to_string(),
            "noise=0.01,rx:drop=0.001,baud=4800,break=0.05/250ms,tx:stall=0.1/2000ms,disconnect=1/1000ms"
        );
        let toxics = spec.toxics(9600);
        assert_eq!(toxics.len(), 10);
        let baud_rx = toxics.iter().find(|t| t.name == "serial_baud_rx").unwrap();
        assert!(
            matches!(&baud_rx.kind, StageKind::WrongBaud(a) if a.baud == 4800 && a.line_baud == 9600)
        );
        for bad in [
            "noise",
            "noise=2",
            "hum=0.1",
            "drop=0.1/2s",
            "stall=0.1/soon",
            "baud=3",
        ] {
            let e = bad.parse::<SerialSpec>().unwrap_err().to_string();
            assert!(e.starts_with("serial fault"), "{bad}: {e}");
        }
        assert!(is_serial_word("rx:noise=0.1") && !is_serial_word("paper-out"));
    }

    #[test]
    fn serial_toxics_round_trip_through_json() {
        for t in "noise=0.5,drop=0.1,baud=1200,break=1/10ms,parity=0.2,framing=0.3,stall=0.4/20ms,disconnect=0.5/3s"
            .parse::<SerialSpec>()
            .unwrap()
            .toxics(9600)
        {
            let again = ToxicSpec::from_json(t.to_json().to_string().as_bytes()).unwrap();
            assert_eq!(again, t);
        }
        let t = ToxicSpec::from_json(br#"{"type":"wrong_baud","attributes":{"line_baud":1}}"#)
            .unwrap_err();
        assert!(t.to_string().contains("line_baud"), "{t}");
        let d = ToxicSpec::from_json(br#"{"type":"disconnect"}"#).unwrap();
        assert!(
            matches!(d.kind, StageKind::Disconnect(ref a) if a.down == 1000 && a.after.is_none())
        );
    }

    #[test]
    fn fuzz_corpus_faults_serial_spec_replays() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus/faults_serial_spec");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("corpus entry").path();
            crate::fuzz::serial_spec(&std::fs::read(&path).expect("corpus file"));
            n += 1;
        }
        assert!(n >= 3, "the corpus has seeds");
    }

    fn zero_kinds() -> Vec<StageKind> {
        vec![
            StageKind::ByteDrop(PerByte::rate(0.0)),
            StageKind::BitErrors(PerByte::rate(0.0)),
            StageKind::ParityError(LineErrorAttrs {
                probability: 0.0,
                mode: ErrorMode::Mark,
            }),
            StageKind::FramingError(LineErrorAttrs {
                probability: 0.0,
                mode: ErrorMode::Nul,
            }),
            StageKind::WrongBaud(WrongBaudAttrs {
                probability: 0.0,
                baud: 9600,
                line_baud: 2400,
                data_bits: 8,
                parity: Parity::None,
                stop_bits: 2,
            }),
            StageKind::Break(BreakAttrs {
                probability: 0.0,
                duration: 100,
                nuls: 1,
                count: 0,
            }),
            StageKind::FlowStall(StallAttrs {
                probability: 0.0,
                duration: 100,
                via: FlowControl::RtsCts,
                count: 0,
            }),
            StageKind::Disconnect(DisconnectAttrs {
                probability: 0.0,
                down: 100,
                after: None,
                mode: DisconnectMode::Drop,
                count: 0,
            }),
        ]
    }

    fn chunks() -> impl Strategy<Value = Vec<(Vec<u8>, u64)>> {
        prop::collection::vec((prop::collection::vec(any::<u8>(), 1..64), 0u64..50), 0..20)
            .prop_map(|v| {
                let mut t = 0;
                v.into_iter()
                    .map(|(d, gap)| {
                        t += gap;
                        (d, t)
                    })
                    .collect()
            })
    }

    proptest! {
        /// Every serial stage with probability 0 passes the bytes unchanged, in order, on time.
        #[test]
        fn probability_zero_changes_nothing(chunks in chunks()) {
            let sent: Vec<u8> = chunks.iter().flat_map(|(d, _)| d.clone()).collect();
            for kind in zero_kinds() {
                let (out, events) = run(kind.clone(), &chunks);
                prop_assert_eq!(bytes(&out), sent.clone(), "{:?}", kind);
                let times: Vec<u64> = chunks.iter().map(|c| c.1).collect();
                let got: Vec<u64> = out.iter().map(|c| c.1).collect();
                prop_assert_eq!(got, times, "{:?}", kind);
                prop_assert!(events.is_empty(), "{:?}: {:?}", kind, events);
            }
        }

        /// A stall never loses or reorders bytes, and never delivers early.
        #[test]
        fn stall_keeps_every_byte_in_order(chunks in chunks(), p in 0.0f64..=1.0, d in 0u64..1000) {
            let kind = StageKind::FlowStall(StallAttrs { probability: p, duration: d, via: FlowControl::RtsCts, count: 0 });
            let (out, _) = run(kind, &chunks);
            let sent: Vec<u8> = chunks.iter().flat_map(|(d, _)| d.clone()).collect();
            prop_assert_eq!(bytes(&out), sent);
            for w in out.windows(2) {
                prop_assert!(w[0].1 <= w[1].1);
            }
            for (o, i) in out.iter().zip(&chunks) {
                prop_assert!(o.1 >= i.1);
            }
        }

        /// Noise and parity errors in pass mode keep the length; a drop only removes bytes
        /// (what is left is a subsequence of what was sent).
        #[test]
        fn byte_faults_keep_length_or_subsequence(chunks in chunks(), p in 0.0f64..=1.0) {
            let sent: Vec<u8> = chunks.iter().flat_map(|(d, _)| d.clone()).collect();
            let (noisy, _) = run(StageKind::BitErrors(PerByte::rate(p)), &chunks);
            prop_assert_eq!(bytes(&noisy).len(), sent.len());
            let (dropped, _) = run(StageKind::ByteDrop(PerByte::rate(p)), &chunks);
            let mut it = sent.iter();
            for b in bytes(&dropped) {
                prop_assert!(it.any(|s| *s == b));
            }
        }

        /// The UART model reads what was sent when both ends agree, whatever the phase.
        #[test]
        fn uart_same_speed_identity(data in prop::collection::vec(any::<u8>(), 0..100), baud in 300u32..200_000, phase in any::<u64>()) {
            let read = uart_receive(&data, baud, baud, (8, Parity::None, 2), |n| phase % n.max(1));
            prop_assert_eq!(read.bytes, data);
        }

        /// The text form prints back to itself.
        #[test]
        fn spec_round_trip(words in prop::collection::vec((0usize..8, 0u32..=1000, 1u64..100_000, 0usize..3), 0..6)) {
            let faults: Vec<(Way, LineFault)> = words.into_iter().map(|(k, p, d, w)| {
                let p = f64::from(p) / 1000.0;
                let d = Duration::from_millis(d);
                let f = match k {
                    0 => LineFault::Drop(p),
                    1 => LineFault::Noise(p),
                    2 => LineFault::Baud(50 + (d.as_millis() as u32)),
                    3 => LineFault::Break(p, d),
                    4 => LineFault::Parity(p),
                    5 => LineFault::Framing(p),
                    6 => LineFault::Stall(p, d),
                    _ => LineFault::Disconnect(p, d),
                };
                ([Way::Both, Way::Tx, Way::Rx][w], f)
            }).collect();
            let spec = SerialSpec { faults };
            let again: SerialSpec = spec.to_string().parse().unwrap();
            prop_assert_eq!(again, spec);
        }
    }
}
