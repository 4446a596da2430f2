//! The receipt printer as a sans-IO state machine.
//!
//! Inputs: [`Printer::handle_bytes`] (what the host sent), [`Printer::handle_timeout`]
//! (time passed), [`Printer::handle_end_of_stream`] (the host hung up),
//! [`Printer::set_fault`] / [`Printer::clear_fault`]. Outputs: [`Printer::poll_transmit`]
//! (bytes to send back), [`Printer::poll_event`] (finished receipts, status answers, fault
//! changes) and [`Printer::poll_timeout`] (when to call `handle_timeout` next, while slow
//! printing is working through its buffer). `now` is the time since the printer was
//! switched on, supplied by the caller; nothing here reads a clock.
//!
//! Real-time commands (`DLE EOT`, `DLE ENQ`, `DLE DC4`) are answered on receipt, whatever
//! the printer's state. Everything else goes through the print buffer, in order: status
//! commands there (`GS r`, `GS I`, `GS ( H`) answer only once what came before them has
//! printed. While the paper is out, received data is discarded; while the cover is open,
//! the printer is offline or jammed, it waits in the buffer.

use std::collections::VecDeque;
use std::str::FromStr;
use std::time::Duration;

use crate::barcode;
use crate::codec::{Command, Parsed, Parser};
use crate::codepage::{self, Utf8Decoder};
use crate::model::{fnv1a, has_long_digit_run, Align, Cut, Diagnostic, Element, Hri, Receipt};
use crate::model::{Span, Style};
use crate::Error;

/// Receive buffer size: data beyond this while the printer cannot print is discarded.
pub const BUFFER_LIMIT: usize = 1024 * 1024;

/// Default line spacing in dots (ESC 2).
pub const DEFAULT_LINE_SPACING: u32 = 30;

/// What kind of printer this is.
#[derive(Clone, Debug)]
pub struct Config {
    /// Printable width in dots (576 for 80 mm at 203 dpi, 384 for 58 mm).
    pub width_dots: u32,
    /// Answered to `GS I 67`.
    pub model_name: String,
    /// Encoding after power-on and `ESC @` (UTF-8 when the printer is set up for it).
    pub utf8: bool,
    /// Seeds the junk bytes of the `garbage` fault.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            width_dots: 576,
            model_name: "poslab TM".into(),
            utf8: false,
            seed: 1,
        }
    }
}

/// A fault to switch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    PaperNearEnd,
    /// The paper is out now.
    PaperOut,
    /// The paper runs out after this many more printed lines.
    PaperOutAfter(u64),
    CoverOpen,
    /// Paper jam at the autocutter.
    Jam,
    /// The paper jams after this many more printed lines: the receipt in progress stops,
    /// what is not printed stays in the buffer.
    JamAfter(u64),
    Offline,
    /// Printing at this many lines per second.
    Slow(u32),
    /// The printer sends junk bytes before its answers.
    Garbage,
    DrawerOpen,
}

/// A fault to switch off (the names of [`Fault`] without their arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    PaperNearEnd,
    PaperOut,
    CoverOpen,
    Jam,
    Offline,
    Slow,
    Garbage,
    DrawerOpen,
}

impl Fault {
    pub fn kind(self) -> FaultKind {
        match self {
            Fault::PaperNearEnd => FaultKind::PaperNearEnd,
            Fault::PaperOut | Fault::PaperOutAfter(_) => FaultKind::PaperOut,
            Fault::CoverOpen => FaultKind::CoverOpen,
            Fault::Jam | Fault::JamAfter(_) => FaultKind::Jam,
            Fault::Offline => FaultKind::Offline,
            Fault::Slow(_) => FaultKind::Slow,
            Fault::Garbage => FaultKind::Garbage,
            Fault::DrawerOpen => FaultKind::DrawerOpen,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::PaperOutAfter(n) => write!(f, "paper-out-after={n}"),
            Fault::JamAfter(n) => write!(f, "jam-after={n}"),
            Fault::Slow(n) => write!(f, "slow={n}lps"),
            other => write!(f, "{}", other.kind()),
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FaultKind::PaperNearEnd => "paper-near-end",
            FaultKind::PaperOut => "paper-out",
            FaultKind::CoverOpen => "cover-open",
            FaultKind::Jam => "jam",
            FaultKind::Offline => "offline",
            FaultKind::Slow => "slow",
            FaultKind::Garbage => "garbage",
            FaultKind::DrawerOpen => "drawer-open",
        })
    }
}

impl FromStr for FaultKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let name = s.trim().split('=').next().unwrap_or("");
        Ok(match name {
            "paper-near-end" | "near-end" => FaultKind::PaperNearEnd,
            "paper-out" | "paper-out-after" => FaultKind::PaperOut,
            "cover-open" => FaultKind::CoverOpen,
            "jam" | "jam-after" => FaultKind::Jam,
            "offline" => FaultKind::Offline,
            "slow" => FaultKind::Slow,
            "garbage" => FaultKind::Garbage,
            "drawer-open" => FaultKind::DrawerOpen,
            _ => {
                return Err(Error::Fault {
                    spec: s.into(),
                    why: "unknown fault (known: paper-near-end, paper-out, paper-out-after=N, cover-open, jam, jam-after=N, offline, slow=Nlps, garbage, drawer-open)".into(),
                })
            }
        })
    }
}

impl FromStr for Fault {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        let (name, arg) = match s.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim())),
            None => (s, None),
        };
        let number = |a: Option<&str>, unit: &str| -> Result<u64, Error> {
            let a = a.ok_or_else(|| Error::Fault {
                spec: s.into(),
                why: "needs a value, e.g. =20".into(),
            })?;
            a.strip_suffix(unit)
                .unwrap_or(a)
                .parse::<u64>()
                .map_err(|_| Error::Fault {
                    spec: s.into(),
                    why: format!("'{a}' is not a whole number"),
                })
        };
        let no_arg = |fault: Fault| -> Result<Fault, Error> {
            match arg {
                None => Ok(fault),
                Some(_) => Err(Error::Fault {
                    spec: s.into(),
                    why: "takes no value".into(),
                }),
            }
        };
        match name {
            "paper-out-after" => Ok(Fault::PaperOutAfter(number(arg, "")?)),
            "jam-after" => Ok(Fault::JamAfter(number(arg, "")?)),
            "paper-out" if arg.is_some() => Ok(Fault::PaperOutAfter(number(arg, "")?)),
            "slow" => {
                let lps = number(arg, "lps")?;
                if lps == 0 || lps > 10_000 {
                    return Err(Error::Fault {
                        spec: s.into(),
                        why: "lines per second must be 1..=10000".into(),
                    });
                }
                Ok(Fault::Slow(lps as u32))
            }
            _ => no_arg(match FaultKind::from_str(name)? {
                FaultKind::PaperNearEnd => Fault::PaperNearEnd,
                FaultKind::PaperOut => Fault::PaperOut,
                FaultKind::CoverOpen => Fault::CoverOpen,
                FaultKind::Jam => Fault::Jam,
                FaultKind::Offline => Fault::Offline,
                FaultKind::Garbage => Fault::Garbage,
                FaultKind::DrawerOpen => Fault::DrawerOpen,
                FaultKind::Slow => {
                    return Err(Error::Fault {
                        spec: s.into(),
                        why: "needs a speed, e.g. slow=10lps".into(),
                    })
                }
            }),
        }
    }
}

/// Parses a comma-separated fault list (`paper-near-end,slow=10lps`).
pub fn parse_faults(list: &str) -> Result<Vec<Fault>, Error> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Fault::from_str)
        .collect()
}

/// Something the printer did that the outside world may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A receipt was finished (cut, or ended by the paper running out).
    Receipt(Receipt),
    /// The printer answered a status command (`command` names it).
    Status { command: String, reply: Vec<u8> },
    /// A fault was switched on or off (`reason` says by whom or why).
    Fault {
        fault: String,
        active: bool,
        reason: String,
    },
}

/// The printer's condition at a glance.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Status {
    pub online: bool,
    pub paper: &'static str,
    pub cover_open: bool,
    pub jam: bool,
    pub drawer_open: bool,
    pub slow_lps: Option<u32>,
    pub garbage: bool,
    /// `DLE EOT 1..=4` answers right now.
    pub dle_eot: [u8; 4],
    pub lines_printed: u64,
    pub paper_used_dots: u64,
    pub receipts: u64,
    pub buffered_bytes: usize,
    pub discarded_bytes: u64,
}

#[derive(Clone, Debug, Default)]
struct Faults {
    near_end: bool,
    paper_out: bool,
    paper_out_at_line: Option<u64>,
    jam_at_line: Option<u64>,
    cover_open: bool,
    jam: bool,
    offline: bool,
    slow_lps: Option<u32>,
    garbage: bool,
    drawer_open: bool,
}

/// Print modes reset by `ESC @`.
#[derive(Clone, Debug)]
struct Modes {
    style: Style,
    align: Align,
    line_spacing: u32,
    code_table: u8,
    utf8: bool,
    barcode_height: u32,
    barcode_width: u32,
    hri: Hri,
    qr_size: u8,
    qr_ec: char,
    qr_data: Vec<u8>,
    graphics: Option<(u32, u32, u8, u8, Vec<u8>)>,
}

impl Modes {
    fn new(utf8: bool) -> Self {
        Modes {
            style: Style::default(),
            align: Align::Left,
            line_spacing: DEFAULT_LINE_SPACING,
            code_table: 0,
            utf8,
            barcode_height: 162,
            barcode_width: 3,
            hri: Hri::None,
            qr_size: 3,
            qr_ec: 'L',
            qr_data: Vec::new(),
            graphics: None,
        }
    }
}

/// The receipt being printed.
#[derive(Clone, Debug, Default)]
struct Current {
    elements: Vec<Element>,
    diagnostics: Vec<Diagnostic>,
    incomplete: bool,
    drawer_kicks: u32,
    first_offset: Option<u64>,
    last_offset: u64,
    /// The line buffer: spans not yet printed, their width in dots, its alignment.
    line: Vec<Span>,
    line_dots: u32,
    line_align: Align,
    /// An ESC * bit image sits on the current line (the next LF only ends it).
    inline_image: bool,
}

/// The receipt printer.
pub struct Printer {
    config: Config,
    parser: Parser,
    faults: Faults,
    modes: Modes,
    utf8: Utf8Decoder,
    current: Current,
    queue: VecDeque<Parsed>,
    queued_bytes: usize,
    busy_until: Duration,
    outbox: Vec<u8>,
    events: VecDeque<Event>,
    asb: u8,
    last_asb: Option<[u8; 4]>,
    lines_printed: u64,
    paper_used_dots: u64,
    receipts: u64,
    discarded_bytes: u64,
    discarding: bool,
    rng: u64,
}

impl Printer {
    pub fn new(config: Config) -> Self {
        let modes = Modes::new(config.utf8);
        let rng = config.seed.max(1);
        Printer {
            config,
            parser: Parser::new(),
            faults: Faults::default(),
            modes,
            utf8: Utf8Decoder::default(),
            current: Current::default(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            busy_until: Duration::ZERO,
            outbox: Vec::new(),
            events: VecDeque::new(),
            asb: 0,
            last_asb: None,
            lines_printed: 0,
            paper_used_dots: 0,
            receipts: 0,
            discarded_bytes: 0,
            discarding: false,
            rng,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    // ---------------------------------------------------------------- inputs

    /// Bytes from the host, in the order they arrived.
    pub fn handle_bytes(&mut self, now: Duration, bytes: &[u8]) {
        let mut parsed = Vec::new();
        self.parser.push(bytes, &mut parsed);
        // Each command is executed as soon as it is accepted (when the printer can print),
        // so what a real-time command finds in the buffer never depends on how the bytes
        // were split.
        for p in parsed {
            self.accept(now, p);
            self.pump(now);
        }
    }

    /// The host closed the link: a command cut short is reported. The receipt in progress
    /// stays open (the next connection continues the same paper).
    pub fn handle_end_of_stream(&mut self, now: Duration) {
        if let Some(p) = self.parser.finish() {
            self.accept(now, p);
        }
        self.pump(now);
    }

    /// Time has passed (call at [`Printer::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Duration) {
        self.pump(now);
    }

    pub fn set_fault(&mut self, now: Duration, fault: Fault) {
        let f = &mut self.faults;
        match fault {
            Fault::PaperNearEnd => f.near_end = true,
            Fault::PaperOut => f.paper_out = true,
            Fault::PaperOutAfter(n) => {
                f.paper_out_at_line = Some(self.lines_printed.saturating_add(n));
            }
            Fault::CoverOpen => f.cover_open = true,
            Fault::Jam => f.jam = true,
            Fault::JamAfter(n) => f.jam_at_line = Some(self.lines_printed.saturating_add(n)),
            Fault::Offline => f.offline = true,
            Fault::Slow(lps) => f.slow_lps = Some(lps.max(1)),
            Fault::Garbage => f.garbage = true,
            Fault::DrawerOpen => f.drawer_open = true,
        }
        self.events.push_back(Event::Fault {
            fault: fault.to_string(),
            active: true,
            reason: "set".into(),
        });
        if fault == Fault::PaperOut || fault == Fault::PaperOutAfter(0) {
            self.run_out_of_paper("paper out");
        }
        self.status_changed();
        self.pump(now);
    }

    pub fn clear_fault(&mut self, now: Duration, kind: FaultKind) {
        let f = &mut self.faults;
        match kind {
            FaultKind::PaperNearEnd => f.near_end = false,
            FaultKind::PaperOut => {
                f.paper_out = false;
                f.paper_out_at_line = None;
                self.discarding = false;
            }
            FaultKind::CoverOpen => f.cover_open = false,
            FaultKind::Jam => {
                f.jam = false;
                f.jam_at_line = None;
            }
            FaultKind::Offline => f.offline = false,
            FaultKind::Slow => f.slow_lps = None,
            FaultKind::Garbage => f.garbage = false,
            FaultKind::DrawerOpen => f.drawer_open = false,
        }
        self.events.push_back(Event::Fault {
            fault: kind.to_string(),
            active: false,
            reason: "cleared".into(),
        });
        self.status_changed();
        self.pump(now);
    }

    // --------------------------------------------------------------- outputs

    /// Bytes to send to the host, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.outbox.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.outbox))
        }
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When buffered data will next be printable (slow printing), if anything waits.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.queue.is_empty() || !self.ready() {
            None
        } else {
            Some(self.busy_until)
        }
    }

    /// Ends the receipt in progress without a cut (shutdown): `None` when nothing is on it.
    pub fn finish_receipt(&mut self) -> Option<Receipt> {
        self.flush_line();
        let receipt = self.take_receipt(None);
        if receipt.is_blank() {
            None
        } else {
            self.receipts += 1;
            Some(Receipt {
                number: self.receipts,
                ..receipt
            })
        }
    }

    pub fn status(&self) -> Status {
        let f = &self.faults;
        Status {
            online: !self.offline(),
            paper: if f.paper_out {
                "out"
            } else if f.near_end {
                "near-end"
            } else {
                "ok"
            },
            cover_open: f.cover_open,
            jam: f.jam,
            drawer_open: f.drawer_open,
            slow_lps: f.slow_lps,
            garbage: f.garbage,
            dle_eot: [
                self.dle_eot(1).unwrap_or(0),
                self.dle_eot(2).unwrap_or(0),
                self.dle_eot(3).unwrap_or(0),
                self.dle_eot(4).unwrap_or(0),
            ],
            lines_printed: self.lines_printed,
            paper_used_dots: self.paper_used_dots,
            receipts: self.receipts,
            buffered_bytes: self.queued_bytes,
            discarded_bytes: self.discarded_bytes,
        }
    }

    // ---------------------------------------------------------------- status

    fn offline(&self) -> bool {
        let f = &self.faults;
        f.offline || f.paper_out || f.cover_open || f.jam
    }

    fn ready(&self) -> bool {
        !self.offline()
    }

    /// The `DLE EOT n` answer (Epson layout: bits 1 and 4 always set, 0 and 7 clear).
    pub fn dle_eot(&self, n: u8) -> Option<u8> {
        let f = &self.faults;
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        Some(match n {
            1 => 0x12 | bit(f.drawer_open, 0x04) | bit(self.offline(), 0x08),
            2 => 0x12 | bit(f.cover_open, 0x04) | bit(f.paper_out, 0x20) | bit(f.jam, 0x40),
            3 => 0x12 | bit(f.jam, 0x08),
            4 => 0x12 | bit(f.near_end, 0x0C) | bit(f.paper_out, 0x60),
            _ => return None,
        })
    }

    /// The 4-byte Automatic Status Back message.
    pub fn asb_message(&self) -> [u8; 4] {
        let f = &self.faults;
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        [
            0x10 | bit(f.drawer_open, 0x04) | bit(self.offline(), 0x08) | bit(f.cover_open, 0x20),
            bit(f.jam, 0x08),
            bit(f.near_end, 0x03) | bit(f.paper_out, 0x0C),
            0x00,
        ]
    }

    fn status_changed(&mut self) {
        if self.asb == 0 {
            return;
        }
        let msg = self.asb_message();
        if self.last_asb != Some(msg) {
            self.last_asb = Some(msg);
            self.reply("ASB", &msg);
        }
    }

    fn reply(&mut self, command: &str, bytes: &[u8]) {
        if self.faults.garbage {
            let n = 1 + (self.next_random() % 3) as usize;
            for _ in 0..n {
                let junk = (self.next_random() & 0xFF) as u8;
                self.outbox.push(junk);
            }
        }
        self.outbox.extend_from_slice(bytes);
        self.events.push_back(Event::Status {
            command: command.into(),
            reply: bytes.to_vec(),
        });
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: deterministic junk from the configured seed.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    // ------------------------------------------------------------- buffering

    fn accept(&mut self, now: Duration, p: Parsed) {
        if p.command.is_real_time() {
            self.real_time(now, &p);
            if self.faults.paper_out {
                return;
            }
            // Kept in the buffer only so that what it has to say lands in order.
        }
        if self.faults.paper_out {
            self.discarded_bytes += p.len;
            if !self.discarding {
                self.discarding = true;
                self.note(
                    p.offset,
                    "paper out: data received from here on is discarded".into(),
                );
                self.current.incomplete = true;
            }
            return;
        }
        let len = usize::try_from(p.len).unwrap_or(usize::MAX);
        if !self.queue.is_empty() && self.queued_bytes.saturating_add(len) > BUFFER_LIMIT {
            self.discarded_bytes += p.len;
            self.current.incomplete = true;
            self.note(
                p.offset,
                format!("receive buffer full ({BUFFER_LIMIT} bytes): command discarded"),
            );
            return;
        }
        self.queued_bytes += len;
        self.queue.push_back(p);
    }

    fn pump(&mut self, now: Duration) {
        while self.ready() {
            let slow = self.faults.slow_lps;
            if slow.is_some() && now < self.busy_until {
                break;
            }
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes = self
                .queued_bytes
                .saturating_sub(usize::try_from(p.len).unwrap_or(0));
            let before = self.paper_used_dots;
            self.execute(p);
            if let Some(lps) = slow {
                let dots = self.paper_used_dots - before;
                let nanos = u128::from(dots) * 1_000_000_000
                    / (u128::from(DEFAULT_LINE_SPACING) * u128::from(lps));
                let start = self.busy_until.max(now);
                self.busy_until = start + Duration::from_nanos(nanos as u64);
            }
            self.check_paper_end();
        }
    }

    fn check_paper_end(&mut self) {
        if let Some(at) = self.faults.jam_at_line {
            if !self.faults.jam && self.lines_printed >= at {
                self.faults.jam = true;
                self.faults.jam_at_line = None;
                self.events.push_back(Event::Fault {
                    fault: "jam".into(),
                    active: true,
                    reason: format!("paper jammed after line {}", self.lines_printed),
                });
                // the jammed receipt is torn off incomplete; the rest waits in the buffer
                let started = self.current.first_offset.is_some() || !self.current.line.is_empty();
                if started {
                    let at = self.parser.position();
                    self.flush_line();
                    self.note(at, "paper jammed: receipt incomplete".into());
                    self.current.incomplete = true;
                    self.finish(None);
                }
                self.status_changed();
            }
        }
        if let Some(at) = self.faults.paper_out_at_line {
            if !self.faults.paper_out && self.lines_printed >= at {
                self.faults.paper_out = true;
                self.faults.paper_out_at_line = None;
                self.events.push_back(Event::Fault {
                    fault: "paper-out".into(),
                    active: true,
                    reason: format!("paper ran out after line {}", self.lines_printed),
                });
                self.run_out_of_paper("paper ran out");
                self.status_changed();
            }
        }
    }

    /// The paper is gone: what is buffered is lost, the receipt in progress ends incomplete.
    fn run_out_of_paper(&mut self, why: &str) {
        self.faults.paper_out = true;
        let lost: u64 = self.queue.iter().map(|p| p.len).sum();
        let at = self
            .queue
            .front()
            .map(|p| p.offset)
            .unwrap_or(self.parser.position());
        self.queue.clear();
        self.queued_bytes = 0;
        self.discarded_bytes += lost;
        self.discarding = true;
        let started = self.current.first_offset.is_some() || !self.current.line.is_empty();
        if started {
            self.flush_line();
            self.note(at, format!("{why}: receipt incomplete"));
            self.current.incomplete = true;
            self.finish(None);
        }
    }

    fn real_time(&mut self, _now: Duration, p: &Parsed) {
        match &p.command {
            Command::RealTimeStatus(n) => {
                if let Some(b) = self.dle_eot(*n) {
                    self.reply(&format!("DLE EOT {n}"), &[b]);
                }
            }
            Command::RealTimeRequest(2) => {
                self.queue.clear();
                self.queued_bytes = 0;
            }
            Command::RealTimeDc4 { function, params } => match function {
                2 => self.reply("DLE DC4 2", &[0x3B, 0x30, 0x00]),
                7 if params.first() == Some(&1) => {
                    let msg = self.asb_message();
                    self.reply("DLE DC4 7", &msg);
                }
                8 => {
                    self.queue.clear();
                    self.queued_bytes = 0;
                    self.reply("DLE DC4 8", &[0x37, 0x25, 0x00]);
                }
                _ => {}
            },
            _ => {}
        }
    }

    // ------------------------------------------------------------- printing

    fn note(&mut self, offset: u64, message: String) {
        self.current
            .diagnostics
            .push(Diagnostic { offset, message });
    }

    fn touch(&mut self, offset: u64, len: u64) {
        if self.current.first_offset.is_none() {
            self.current.first_offset = Some(offset);
        }
        self.current.last_offset = offset + len.saturating_sub(1);
    }

    fn execute(&mut self, p: Parsed) {
        let offset = p.offset;
        let paper_command = !matches!(
            p.command,
            Command::Nul
                | Command::TransmitStatus(_)
                | Command::PrinterId(_)
                | Command::AutoStatusBack(_)
                | Command::Response { .. }
                | Command::RealTimeStatus(_)
                | Command::RealTimeRequest(_)
                | Command::RealTimeDc4 { .. }
        );
        if paper_command {
            self.touch(offset, p.len);
        }
        let m = &mut self.modes;
        match p.command {
            Command::Text(bytes) => self.text(&bytes),
            Command::LineFeed => {
                if self.current.inline_image && self.current.line.is_empty() {
                    self.current.inline_image = false;
                } else {
                    self.print_line();
                }
            }
            Command::CarriageReturn | Command::Nul => {}
            Command::Tab => {
                let col = self.current.line_dots / 12;
                let spaces = 8 - (col % 8);
                self.push_text(&" ".repeat(spaces as usize));
            }
            Command::Initialize => {
                if !self.current.line.is_empty() {
                    self.note(
                        offset,
                        "ESC @ cleared unprinted text in the line buffer".into(),
                    );
                    self.current.line.clear();
                    self.current.line_dots = 0;
                }
                self.modes = Modes::new(self.config.utf8);
                self.utf8 = Utf8Decoder::default();
            }
            Command::PrintMode(n) => {
                m.style.font = n & 1;
                m.style.bold = n & 0x08 != 0;
                m.style.height = if n & 0x10 != 0 { 2 } else { 1 };
                m.style.width = if n & 0x20 != 0 { 2 } else { 1 };
                m.style.underline = if n & 0x80 != 0 { 1 } else { 0 };
            }
            Command::Emphasized(n) => m.style.bold = n & 1 == 1,
            Command::Underline(n) => m.style.underline = (n & 0x0F).min(2),
            Command::DoubleStrike(n) => m.style.double_strike = n & 1 == 1,
            Command::Reverse(n) => m.style.reverse = n & 1 == 1,
            Command::CharacterSize(n) => {
                m.style.width = ((n >> 4) & 0x07) + 1;
                m.style.height = (n & 0x07) + 1;
            }
            Command::Font(n) => m.style.font = if n == 1 || n == 49 { 1 } else { 0 },
            Command::Justify(n) => {
                m.align = match n {
                    0 | 48 => Align::Left,
                    1 | 49 => Align::Center,
                    2 | 50 => Align::Right,
                    _ => {
                        self.note(offset, format!("ESC a {n}: unknown justification"));
                        return;
                    }
                };
                if self.current.line.is_empty() {
                    self.current.line_align = self.modes.align;
                }
            }
            Command::CodeTable(n) => {
                if codepage::table(n).is_none() {
                    self.note(
                        offset,
                        format!("ESC t {n}: code page not supported by poslab, PC437 used"),
                    );
                }
                self.modes.code_table = n;
            }
            Command::Encoding(n) => match n {
                1 | 0x31 => m.utf8 = false,
                2 | 0x32 => m.utf8 = true,
                _ => self.note(offset, format!("FS ( C: unknown encoding system {n}")),
            },
            Command::DefaultLineSpacing => m.line_spacing = DEFAULT_LINE_SPACING,
            Command::LineSpacing(n) => m.line_spacing = u32::from(n),
            Command::FeedLines(n) => {
                self.flush_line();
                let dots = u32::from(n) * self.modes.line_spacing;
                self.lines_printed += u64::from(n);
                self.feed(dots);
            }
            Command::FeedDots(n) => {
                self.flush_line();
                self.feed(u32::from(n));
            }
            Command::Cut { partial, feed } => {
                self.flush_line();
                if let Some(n) = feed {
                    self.feed(u32::from(n));
                }
                self.finish(Some(if partial { Cut::Partial } else { Cut::Full }));
            }
            Command::LegacyCut { partial } => {
                self.flush_line();
                self.finish(Some(if partial { Cut::Partial } else { Cut::Full }));
            }
            Command::DrawerKick { .. } => self.current.drawer_kicks += 1,
            Command::BarcodeHeight(n) => m.barcode_height = u32::from(n.max(1)),
            Command::BarcodeWidth(n) => m.barcode_width = u32::from(n.clamp(1, 6)),
            Command::HriPosition(n) => {
                m.hri = match n {
                    1 | 49 => Hri::Above,
                    2 | 50 => Hri::Below,
                    3 | 51 => Hri::Both,
                    _ => Hri::None,
                }
            }
            Command::HriFont(_) => {}
            Command::Barcode { system, data } => self.barcode(offset, system, &data),
            Command::Symbol2d {
                cn,
                function,
                params,
            } => self.symbol(offset, cn, function, params),
            Command::Raster {
                mode,
                width_bytes,
                height,
                data,
            } => {
                let mode = mode & 0x03;
                self.image(
                    u32::from(width_bytes) * 8,
                    u32::from(height),
                    1 + (mode & 1),
                    1 + ((mode >> 1) & 1),
                    data,
                );
            }
            Command::BitImage {
                mode,
                columns,
                data,
            } => self.bit_image(mode, columns, &data),
            Command::Graphics { function, params } => self.graphics(offset, function, &params),
            Command::TransmitStatus(n) => {
                let f = &self.faults;
                let reply = match n {
                    1 | 49 => {
                        (if f.near_end { 0x03 } else { 0 }) | (if f.paper_out { 0x0C } else { 0 })
                    }
                    2 | 50 => u8::from(f.drawer_open),
                    4 | 52 => 0,
                    _ => {
                        self.note(offset, format!("GS r {n}: status type not supported"));
                        return;
                    }
                };
                self.reply(&format!("GS r {n}"), &[reply]);
            }
            Command::PrinterId(n) => {
                let reply: Vec<u8> = match n {
                    1 | 49 => vec![0x20],
                    2 | 50 => vec![0x02],
                    3 | 51 => vec![0x10],
                    0x41..=0x45 => {
                        let text = match n {
                            0x41 => "1.00".to_string(),
                            0x42 => "poslab".to_string(),
                            0x43 => self.config.model_name.clone(),
                            0x44 => "PL00000001".to_string(),
                            _ => "PC437".to_string(),
                        };
                        let mut v = vec![0x5F];
                        v.extend_from_slice(text.as_bytes());
                        v.push(0);
                        v
                    }
                    _ => {
                        self.note(offset, format!("GS I {n}: information type not supported"));
                        return;
                    }
                };
                self.reply(&format!("GS I {n}"), &reply);
            }
            Command::AutoStatusBack(n) => {
                self.asb = n;
                self.last_asb = None;
                self.status_changed();
            }
            Command::Response { function, params } => {
                if function == 0x30 && params.first() == Some(&0x30) && params.len() == 5 {
                    let mut reply = vec![0x37, 0x22];
                    reply.extend_from_slice(params.get(1..5).unwrap_or(&[]));
                    reply.push(0);
                    self.reply("GS ( H", &reply);
                } else {
                    self.note(
                        offset,
                        format!("GS ( H function 0x{function:02x}: not supported"),
                    );
                }
            }
            Command::Other { .. } => {}
            Command::Unknown(bytes) => {
                self.note(offset, format!("unknown command {}", hex(&bytes)));
            }
            Command::Malformed { why, bytes } => {
                self.note(offset, format!("malformed command {}: {why}", hex(&bytes)));
            }
            Command::Oversized {
                name,
                header,
                announced,
                skipped,
            } => self.note(
                offset,
                format!(
                    "{name} ({}) announces {announced} bytes, more than poslab buffers; {skipped} skipped",
                    hex(&header)
                ),
            ),
            Command::Truncated(bytes) => self.note(
                offset,
                format!(
                    "stream ended inside a command ({} bytes: {})",
                    bytes.len(),
                    hex(bytes.get(..bytes.len().min(8)).unwrap_or(&[]))
                ),
            ),
            Command::RealTimeStatus(n) => {
                if self.dle_eot(n).is_none() {
                    self.note(
                        offset,
                        format!("DLE EOT {n}: status type not supported, no answer"),
                    );
                }
            }
            Command::RealTimeRequest(_) | Command::RealTimeDc4 { .. } => {}
        }
    }

    fn text(&mut self, bytes: &[u8]) {
        if self.modes.utf8 {
            let (s, invalid) = self.utf8.push(bytes);
            if invalid > 0 {
                let at = self.current.last_offset;
                self.note(
                    at,
                    format!("{invalid} invalid UTF-8 sequence(s) printed as U+FFFD"),
                );
            }
            self.push_text(&s);
        } else {
            let s: String = bytes
                .iter()
                .map(|&b| codepage::decode_byte(self.modes.code_table, b))
                .collect();
            self.push_text(&s);
        }
    }

    /// Adds text to the line buffer, printing full lines as the printer wraps them.
    fn push_text(&mut self, s: &str) {
        let style = self.modes.style;
        let (w, _) = style.cell();
        for c in s.chars() {
            if c == '\u{7F}' {
                continue;
            }
            if self.current.line_dots + w > self.config.width_dots && self.current.line_dots > 0 {
                self.print_line();
            }
            if self.current.line.is_empty() {
                self.current.line_align = self.modes.align;
            }
            self.current.line_dots += w;
            match self.current.line.last_mut() {
                Some(span) if span.style == style => span.text.push(c),
                _ => self.current.line.push(Span {
                    text: c.to_string(),
                    style,
                }),
            }
        }
    }

    /// LF: prints the line buffer (an empty one is a blank line).
    fn print_line(&mut self) {
        let spans = std::mem::take(&mut self.current.line);
        self.current.line_dots = 0;
        let tallest = spans.iter().map(|s| s.style.cell().1).max().unwrap_or(0);
        let height = tallest.max(self.modes.line_spacing);
        let align = if spans.is_empty() {
            self.modes.align
        } else {
            self.current.line_align
        };
        self.lines_printed += 1;
        self.paper_used_dots += u64::from(height);
        self.current.elements.push(Element::Line {
            align,
            spans,
            height,
        });
    }

    /// Prints what is in the line buffer, if anything (before a feed, a cut, a barcode).
    fn flush_line(&mut self) {
        if !self.current.line.is_empty() {
            self.print_line();
        }
        self.current.inline_image = false;
    }

    fn feed(&mut self, dots: u32) {
        if dots == 0 {
            return;
        }
        self.paper_used_dots += u64::from(dots);
        if let Some(Element::Feed { dots: d }) = self.current.elements.last_mut() {
            *d += dots;
        } else {
            self.current.elements.push(Element::Feed { dots });
        }
    }

    fn push_element(&mut self, e: Element, extra: u32) {
        self.paper_used_dots += u64::from(e.height() + extra);
        self.lines_printed += u64::from((e.height() + extra).div_ceil(DEFAULT_LINE_SPACING));
        self.current.elements.push(e);
    }

    fn barcode(&mut self, offset: u64, system: u8, data: &[u8]) {
        self.flush_line();
        match barcode::encode(system, data) {
            Ok(enc) => {
                if enc.modules.is_empty() {
                    self.note(
                        offset,
                        format!(
                            "barcode {} is recorded but not drawn by poslab",
                            enc.symbology
                        ),
                    );
                }
                let e = Element::Barcode {
                    align: self.modes.align,
                    symbology: enc.symbology.into(),
                    data: enc.text,
                    hri: self.modes.hri,
                    height: self.modes.barcode_height,
                    module_width: self.modes.barcode_width,
                    modules: enc.modules,
                };
                self.push_element(e, 0);
            }
            Err(why) => self.note(offset, format!("barcode not printed: {why}")),
        }
    }

    fn symbol(&mut self, offset: u64, cn: u8, function: u8, params: Vec<u8>) {
        if cn != 0x31 {
            if function == 0x51 {
                self.note(
                    offset,
                    format!("2D symbol type 0x{cn:02x} (not QR) is not drawn by poslab"),
                );
            }
            return;
        }
        let m = &mut self.modes;
        match function {
            0x41 => {}
            0x43 => m.qr_size = params.first().copied().unwrap_or(3).clamp(1, 16),
            0x45 => {
                m.qr_ec = match params.first() {
                    Some(48) => 'L',
                    Some(49) => 'M',
                    Some(50) => 'Q',
                    Some(51) => 'H',
                    _ => m.qr_ec,
                }
            }
            0x50 => m.qr_data = params.get(1..).unwrap_or(&[]).to_vec(),
            0x51 => {
                self.flush_line();
                if self.modes.qr_data.is_empty() {
                    self.note(
                        offset,
                        "QR print without stored data: nothing printed".into(),
                    );
                    return;
                }
                let data = String::from_utf8_lossy(&self.modes.qr_data).into_owned();
                match crate::render::qr_modules(&data, self.modes.qr_ec) {
                    Ok((width, _)) => {
                        let size = self.modes.qr_size;
                        let e = Element::QrCode {
                            align: self.modes.align,
                            data,
                            module_size: size,
                            error_correction: self.modes.qr_ec,
                        };
                        let extra = (width as u32 + 8) * u32::from(size);
                        self.push_element(e, extra);
                    }
                    Err(why) => self.note(offset, format!("QR code not printed: {why}")),
                }
            }
            _ => {}
        }
    }

    fn image(&mut self, width: u32, height: u32, scale_x: u8, scale_y: u8, bits: Vec<u8>) {
        self.flush_line();
        if width == 0 || height == 0 {
            return;
        }
        let e = Element::Image {
            align: self.modes.align,
            width,
            height,
            scale_x,
            scale_y,
            hash: fnv1a(&bits),
            bits,
        };
        self.push_element(e, 0);
    }

    /// ESC *: column data turned into raster rows.
    fn bit_image(&mut self, mode: u8, columns: u16, data: &[u8]) {
        let (rows, scale_x, scale_y) = match mode {
            0 => (8u32, 2u8, 3u8),
            1 => (8, 1, 3),
            32 => (24, 2, 1),
            _ => (24, 1, 1),
        };
        let width = u32::from(columns);
        let row_bytes = width.div_ceil(8) as usize;
        let mut bits = vec![0u8; row_bytes * rows as usize];
        let per_col = (rows / 8) as usize;
        for c in 0..width as usize {
            for r in 0..rows as usize {
                let byte = data.get(c * per_col + r / 8).copied().unwrap_or(0);
                if byte & (0x80 >> (r % 8)) != 0 {
                    if let Some(b) = bits.get_mut(r * row_bytes + c / 8) {
                        *b |= 0x80 >> (c % 8);
                    }
                }
            }
        }
        let line_pending = !self.current.line.is_empty();
        if line_pending {
            self.print_line();
        }
        let e = Element::Image {
            align: self.modes.align,
            width: row_bytes as u32 * 8,
            height: rows,
            scale_x,
            scale_y,
            hash: fnv1a(&bits),
            bits,
        };
        self.push_element(e, 0);
        self.current.inline_image = true;
    }

    /// GS ( L / GS 8 L: store a raster graphic (fn 112) and print it (fn 50).
    fn graphics(&mut self, offset: u64, function: u8, params: &[u8]) {
        match function {
            0x70 | 0x71 => {
                // m fn a bx by c xL xH yL yH d...
                let get = |i: usize| params.get(i).copied().unwrap_or(0);
                let bx = get(3).clamp(1, 2);
                let by = get(4).clamp(1, 2);
                let x = u32::from(get(6)) | (u32::from(get(7)) << 8);
                let y = u32::from(get(8)) | (u32::from(get(9)) << 8);
                let data = params.get(10..).unwrap_or(&[]);
                let row = x.div_ceil(8) as usize;
                if data.len() < row * y as usize {
                    self.note(
                        offset,
                        format!(
                            "graphics data is {} bytes, {}x{} dots need {}",
                            data.len(),
                            x,
                            y,
                            row * y as usize
                        ),
                    );
                    return;
                }
                let bits = data.get(..row * y as usize).unwrap_or(&[]).to_vec();
                self.modes.graphics = Some((row as u32 * 8, y, bx, by, bits));
            }
            0x32 | 0x02 => match self.modes.graphics.take() {
                Some((w, h, bx, by, bits)) => self.image(w, h, bx, by, bits),
                None => self.note(offset, "graphics print with nothing stored".into()),
            },
            _ => {}
        }
    }

    /// Ends the receipt in progress with `cut`.
    fn finish(&mut self, cut: Option<Cut>) {
        let receipt = self.take_receipt(cut);
        if receipt.is_blank() && cut.is_some() {
            return;
        }
        self.receipts += 1;
        self.events.push_back(Event::Receipt(Receipt {
            number: self.receipts,
            ..receipt
        }));
    }

    fn take_receipt(&mut self, cut: Option<Cut>) -> Receipt {
        let c = std::mem::take(&mut self.current);
        let mut diagnostics = c.diagnostics;
        for (i, line) in c
            .elements
            .iter()
            .filter_map(|e| match e {
                Element::Line { spans, .. } => Some(spans),
                _ => None,
            })
            .enumerate()
        {
            let text: String = line.iter().map(|s| s.text.as_str()).collect();
            if has_long_digit_run(&text) {
                diagnostics.push(Diagnostic {
                    offset: c.first_offset.unwrap_or(0),
                    message: format!("clear PAN printed (line {})", i + 1),
                });
            }
        }
        Receipt {
            number: 0,
            width: self.config.width_dots,
            elements: c.elements,
            cut,
            incomplete: c.incomplete,
            drawer_kicks: c.drawer_kicks,
            first_offset: c.first_offset.unwrap_or(c.last_offset),
            last_offset: c.last_offset,
            diagnostics,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}
