//! The streaming ESC/POS parser: bytes in, commands out, never an error.
//!
//! [`Parser::push`] takes bytes as they arrive (split anywhere) and yields every command that
//! is complete, each with its byte offset in the stream. A command cut short waits for more
//! bytes; [`Parser::finish`] turns what is left at the end of a stream into a
//! [`Command::Truncated`]. Unknown or malformed sequences become [`Command::Unknown`] or
//! [`Command::Malformed`] items, never a stopped parser. Payloads larger than
//! [`MAX_PAYLOAD`] are skipped as they stream past instead of being buffered.

/// The largest payload (raster data, graphics, 2D symbol data) the parser buffers; a command
/// announcing more is reported and its payload skipped.
pub const MAX_PAYLOAD: u64 = 4 * 1024 * 1024;

/// The longest NUL-terminated argument (GS k function A data, ESC D tab stops).
const MAX_NUL_TERMINATED: usize = 255;

const ESC: u8 = 0x1B;
const GS: u8 = 0x1D;
const FS: u8 = 0x1C;
const DLE: u8 = 0x10;

/// One ESC/POS command. The enum is open: everything the parser does not act on is kept as
/// [`Command::Other`] (known, skipped with its exact length) or [`Command::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Printable bytes (0x20..=0xFF), still in the printer's code page.
    Text(Vec<u8>),
    /// LF: print the line buffer and feed one line.
    LineFeed,
    /// CR (ignored by printers with auto line feed off).
    CarriageReturn,
    /// HT: move to the next tab stop.
    Tab,
    /// ESC @
    Initialize,
    /// ESC ! n
    PrintMode(u8),
    /// ESC E n
    Emphasized(u8),
    /// ESC - n
    Underline(u8),
    /// ESC G n
    DoubleStrike(u8),
    /// GS B n
    Reverse(u8),
    /// GS ! n
    CharacterSize(u8),
    /// ESC M n
    Font(u8),
    /// ESC a n
    Justify(u8),
    /// ESC t n
    CodeTable(u8),
    /// FS ( C fn 48 m: 1 = one-byte code pages, 2 = UTF-8.
    Encoding(u8),
    /// ESC 2
    DefaultLineSpacing,
    /// ESC 3 n
    LineSpacing(u8),
    /// ESC d n
    FeedLines(u8),
    /// ESC J n
    FeedDots(u8),
    /// GS V m [n]; `feed` is the n of the feed-and-cut forms.
    Cut { partial: bool, feed: Option<u8> },
    /// ESC i (full) / ESC m (partial), legacy cuts.
    LegacyCut { partial: bool },
    /// ESC p m t1 t2
    DrawerKick { pin: u8, on: u8, off: u8 },
    /// GS h n
    BarcodeHeight(u8),
    /// GS w n
    BarcodeWidth(u8),
    /// GS H n
    HriPosition(u8),
    /// GS f n
    HriFont(u8),
    /// GS k m ...
    Barcode { system: u8, data: Vec<u8> },
    /// GS ( k: a 2D symbol function (QR is cn 49).
    Symbol2d {
        cn: u8,
        function: u8,
        params: Vec<u8>,
    },
    /// GS v 0 m xL xH yL yH d...: raster image, `width_bytes` bytes per row.
    Raster {
        mode: u8,
        width_bytes: u16,
        height: u16,
        data: Vec<u8>,
    },
    /// ESC * m nL nH d...: column bit image.
    BitImage {
        mode: u8,
        columns: u16,
        data: Vec<u8>,
    },
    /// GS ( L / GS 8 L: graphics functions.
    Graphics { function: u8, params: Vec<u8> },
    /// DLE EOT n [a]: real-time status.
    RealTimeStatus(u8),
    /// DLE ENQ n: real-time request (recover).
    RealTimeRequest(u8),
    /// DLE DC4 fn ...
    RealTimeDc4 { function: u8, params: Vec<u8> },
    /// GS r n: transmit status (buffered).
    TransmitStatus(u8),
    /// GS I n: transmit printer ID (buffered).
    PrinterId(u8),
    /// GS a n: enable/disable Automatic Status Back.
    AutoStatusBack(u8),
    /// GS ( H: response or status request (fn 48 = process ID response).
    Response { function: u8, params: Vec<u8> },
    /// NUL, silently ignored.
    Nul,
    /// A known command the printer accepts but does not model; its name and bytes.
    Other { name: &'static str, bytes: Vec<u8> },
    /// An unknown control sequence (skipped by its introducer and one byte).
    Unknown(Vec<u8>),
    /// A sequence whose arguments are impossible; `why` says what was wrong.
    Malformed { why: String, bytes: Vec<u8> },
    /// A payload larger than [`MAX_PAYLOAD`], skipped without buffering.
    Oversized {
        name: &'static str,
        header: Vec<u8>,
        announced: u64,
        skipped: u64,
    },
    /// The stream ended in the middle of a command.
    Truncated(Vec<u8>),
}

impl Command {
    /// Real-time commands are executed on receipt, even when the printer is offline.
    pub fn is_real_time(&self) -> bool {
        matches!(
            self,
            Command::RealTimeStatus(_) | Command::RealTimeRequest(_) | Command::RealTimeDc4 { .. }
        )
    }
}

/// A command and where it started in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// Byte offset of the command's first byte, counted from the start of the stream.
    pub offset: u64,
    /// Length in bytes (for skipped oversized payloads, including what was skipped).
    pub len: u64,
    pub command: Command,
}

/// The result of looking at the start of the buffer.
enum Step {
    /// The command is not complete yet.
    Need,
    /// A complete command of `usize` bytes.
    Done(Command, usize),
    /// A header of `usize` bytes announcing a payload of `u64` bytes too large to buffer.
    Skip {
        name: &'static str,
        header: usize,
        payload: u64,
    },
}

/// The streaming parser. Holds at most one incomplete command.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// An oversized payload being skipped: the command to emit and bytes still to drop.
    skipping: Option<(Parsed, u64)>,
}

impl Parser {
    pub fn new() -> Self {
        Parser::default()
    }

    /// Total bytes taken so far (the offset the next byte will have).
    pub fn position(&self) -> u64 {
        self.offset + self.buf.len() as u64
    }

    /// Bytes of an incomplete command waiting for more input.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Takes `bytes` and appends every command now complete to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Parsed>) {
        if let Some((_, remaining)) = self.skipping.as_mut() {
            let take = (*remaining).min(bytes.len() as u64);
            *remaining -= take;
            self.offset += take;
            bytes = bytes.get(take as usize..).unwrap_or(&[]);
            if *remaining > 0 {
                return;
            }
            if let Some((parsed, _)) = self.skipping.take() {
                out.push(parsed);
            }
        }
        self.buf.extend_from_slice(bytes);
        let mut start = 0usize;
        while start < self.buf.len() {
            let rest = self.buf.get(start..).unwrap_or(&[]);
            match decode(rest) {
                Step::Need => break,
                Step::Done(command, len) => {
                    let len = len.max(1).min(rest.len());
                    out.push(Parsed {
                        offset: self.offset + start as u64,
                        len: len as u64,
                        command,
                    });
                    start += len;
                }
                Step::Skip {
                    name,
                    header,
                    payload,
                } => {
                    let header = header.min(rest.len());
                    let available = (rest.len() - header) as u64;
                    let parsed = Parsed {
                        offset: self.offset + start as u64,
                        len: header as u64 + payload,
                        command: Command::Oversized {
                            name,
                            header: rest.get(..header).unwrap_or(&[]).to_vec(),
                            announced: payload,
                            skipped: payload,
                        },
                    };
                    if available >= payload {
                        out.push(parsed);
                        start += header + payload as usize;
                    } else {
                        self.skipping = Some((parsed, payload - available));
                        start = self.buf.len();
                        break;
                    }
                }
            }
        }
        let consumed = start.min(self.buf.len());
        self.buf.drain(..consumed);
        self.offset += consumed as u64;
        if self.skipping.is_some() {
            // Everything still buffered belonged to the skipped payload.
            self.offset += self.buf.len() as u64;
            self.buf.clear();
        }
    }

    /// The end of the stream: an incomplete command becomes [`Command::Truncated`] (an
    /// oversized payload cut short is reported as what it is). The parser is reset.
    pub fn finish(&mut self) -> Option<Parsed> {
        if let Some((mut parsed, remaining)) = self.skipping.take() {
            self.buf.clear();
            parsed.len -= remaining;
            if let Command::Oversized { skipped, .. } = &mut parsed.command {
                *skipped -= remaining;
            }
            return Some(parsed);
        }
        if self.buf.is_empty() {
            return None;
        }
        let bytes = std::mem::take(&mut self.buf);
        let parsed = Parsed {
            offset: self.offset,
            len: bytes.len() as u64,
            command: Command::Truncated(bytes),
        };
        self.offset = parsed.offset + parsed.len;
        Some(parsed)
    }
}

/// Parses a whole buffer in one go (a file, a fuzz input).
pub fn parse_all(bytes: &[u8]) -> Vec<Parsed> {
    let mut parser = Parser::new();
    let mut out = Vec::new();
    parser.push(bytes, &mut out);
    out.extend(parser.finish());
    out
}

fn at(buf: &[u8], i: usize) -> Option<u8> {
    buf.get(i).copied()
}

fn u16le(buf: &[u8], i: usize) -> Option<u16> {
    Some(u16::from(at(buf, i)?) | (u16::from(at(buf, i + 1)?) << 8))
}

/// A fixed-length command of `len` bytes: done when all are here.
fn fixed(buf: &[u8], len: usize, make: impl FnOnce(&[u8]) -> Command) -> Step {
    match buf.get(..len) {
        Some(bytes) => Step::Done(make(bytes), len),
        None => Step::Need,
    }
}

fn other(buf: &[u8], len: usize, name: &'static str) -> Step {
    fixed(buf, len, |b| Command::Other {
        name,
        bytes: b.to_vec(),
    })
}

/// A command of `header` bytes followed by `payload` bytes.
fn with_payload(
    buf: &[u8],
    header: usize,
    payload: u64,
    name: &'static str,
    make: impl FnOnce(&[u8], &[u8]) -> Command,
) -> Step {
    if payload > MAX_PAYLOAD {
        return Step::Skip {
            name,
            header,
            payload,
        };
    }
    let total = header + payload as usize;
    match (buf.get(..header), buf.get(header..total)) {
        (Some(h), Some(p)) => Step::Done(make(h, p), total),
        _ => Step::Need,
    }
}

/// A one-byte argument command: `intro x n`.
fn arg1(buf: &[u8], make: impl FnOnce(u8) -> Command) -> Step {
    match at(buf, 2) {
        Some(n) => Step::Done(make(n), 3),
        None => Step::Need,
    }
}

fn decode(buf: &[u8]) -> Step {
    let Some(first) = at(buf, 0) else {
        return Step::Need;
    };
    match first {
        0x0A => Step::Done(Command::LineFeed, 1),
        0x0D => Step::Done(Command::CarriageReturn, 1),
        0x09 => Step::Done(Command::Tab, 1),
        0x00 => Step::Done(Command::Nul, 1),
        0x0C => Step::Done(
            Command::Other {
                name: "FF",
                bytes: vec![0x0C],
            },
            1,
        ),
        0x18 => Step::Done(
            Command::Other {
                name: "CAN",
                bytes: vec![0x18],
            },
            1,
        ),
        ESC => decode_esc(buf),
        GS => decode_gs(buf),
        FS => decode_fs(buf),
        DLE => decode_dle(buf),
        b if b < 0x20 => Step::Done(Command::Unknown(vec![b]), 1),
        _ => {
            let len = buf.iter().take_while(|&&b| b >= 0x20).count();
            Step::Done(Command::Text(buf.get(..len).unwrap_or(&[]).to_vec()), len)
        }
    }
}

fn decode_esc(buf: &[u8]) -> Step {
    let Some(x) = at(buf, 1) else {
        return Step::Need;
    };
    match x {
        b'@' => Step::Done(Command::Initialize, 2),
        b'!' => arg1(buf, Command::PrintMode),
        b'E' => arg1(buf, Command::Emphasized),
        b'-' => arg1(buf, Command::Underline),
        b'G' => arg1(buf, Command::DoubleStrike),
        b'M' => arg1(buf, Command::Font),
        b'a' => arg1(buf, Command::Justify),
        b't' => arg1(buf, Command::CodeTable),
        b'2' => Step::Done(Command::DefaultLineSpacing, 2),
        b'3' => arg1(buf, Command::LineSpacing),
        b'd' => arg1(buf, Command::FeedLines),
        b'J' => arg1(buf, Command::FeedDots),
        b'i' => Step::Done(Command::LegacyCut { partial: false }, 2),
        b'm' => Step::Done(Command::LegacyCut { partial: true }, 2),
        b'p' => fixed(buf, 5, |b| Command::DrawerKick {
            pin: at(b, 2).unwrap_or(0),
            on: at(b, 3).unwrap_or(0),
            off: at(b, 4).unwrap_or(0),
        }),
        b' ' => other(buf, 3, "ESC SP"),
        b'R' => other(buf, 3, "ESC R"),
        b'V' => other(buf, 3, "ESC V"),
        b'{' => other(buf, 3, "ESC {"),
        b'r' => other(buf, 3, "ESC r"),
        b'U' => other(buf, 3, "ESC U"),
        b'e' => other(buf, 3, "ESC e"),
        b'K' => other(buf, 3, "ESC K"),
        b'T' => other(buf, 3, "ESC T"),
        b'=' => other(buf, 3, "ESC ="),
        b'%' => other(buf, 3, "ESC %"),
        b'?' => other(buf, 3, "ESC ?"),
        b'u' => other(buf, 3, "ESC u"),
        b'L' => other(buf, 2, "ESC L"),
        b'S' => other(buf, 2, "ESC S"),
        b'<' => other(buf, 2, "ESC <"),
        b'v' => other(buf, 2, "ESC v"),
        b'c' => other(buf, 4, "ESC c"),
        b'$' => other(buf, 4, "ESC $"),
        b'\\' => other(buf, 4, "ESC \\"),
        b'W' => other(buf, 10, "ESC W"),
        b'D' => nul_terminated(buf, 2, 32, "ESC D", |b| Command::Other {
            name: "ESC D",
            bytes: b.to_vec(),
        }),
        b'*' => {
            let (Some(m), Some(n)) = (at(buf, 2), u16le(buf, 3)) else {
                return Step::Need;
            };
            let per_column: u64 = match m {
                0 | 1 => 1,
                32 | 33 => 3,
                _ => {
                    return Step::Done(
                        Command::Malformed {
                            why: format!("ESC * bit-image mode 0x{m:02x} is not 0, 1, 32 or 33"),
                            bytes: buf.get(..5).unwrap_or(&[]).to_vec(),
                        },
                        5,
                    )
                }
            };
            with_payload(buf, 5, u64::from(n) * per_column, "ESC *", |_, d| {
                Command::BitImage {
                    mode: m,
                    columns: n,
                    data: d.to_vec(),
                }
            })
        }
        b'&' => decode_user_chars(buf),
        b'(' => {
            let Some(len) = u16le(buf, 3) else {
                return Step::Need;
            };
            with_payload(buf, 5, u64::from(len), "ESC (", |h, p| {
                let mut bytes = h.to_vec();
                bytes.extend_from_slice(p);
                Command::Other {
                    name: "ESC (",
                    bytes,
                }
            })
        }
        _ => Step::Done(Command::Unknown(vec![ESC, x]), 2),
    }
}

/// ESC & y c1 c2 [x d1...d(y*x)]...: define user-defined characters.
fn decode_user_chars(buf: &[u8]) -> Step {
    let (Some(y), Some(c1), Some(c2)) = (at(buf, 2), at(buf, 3), at(buf, 4)) else {
        return Step::Need;
    };
    if c2 < c1 {
        return Step::Done(
            Command::Malformed {
                why: format!("ESC & character range 0x{c1:02x}..0x{c2:02x} is reversed"),
                bytes: vec![ESC, b'&', y, c1, c2],
            },
            5,
        );
    }
    let mut i = 5usize;
    for _ in c1..=c2 {
        let Some(x) = at(buf, i) else {
            return Step::Need;
        };
        i += 1 + usize::from(y) * usize::from(x);
        if i > buf.len() {
            return Step::Need;
        }
    }
    other(buf, i, "ESC &")
}

/// `intro..start` then bytes up to and including a NUL, at most `max` before it.
fn nul_terminated(
    buf: &[u8],
    start: usize,
    max: usize,
    name: &'static str,
    make: impl FnOnce(&[u8]) -> Command,
) -> Step {
    let body = buf.get(start..).unwrap_or(&[]);
    match body.iter().take(max + 1).position(|&b| b == 0) {
        Some(p) => {
            let len = start + p + 1;
            Step::Done(make(buf.get(..len).unwrap_or(&[])), len)
        }
        None if body.len() > max => Step::Done(
            Command::Malformed {
                why: format!("{name} has no NUL terminator within {max} bytes"),
                bytes: buf.get(..start).unwrap_or(&[]).to_vec(),
            },
            start,
        ),
        None => Step::Need,
    }
}

fn decode_gs(buf: &[u8]) -> Step {
    let Some(x) = at(buf, 1) else {
        return Step::Need;
    };
    match x {
        b'!' => arg1(buf, Command::CharacterSize),
        b'B' => arg1(buf, Command::Reverse),
        b'H' => arg1(buf, Command::HriPosition),
        b'f' => arg1(buf, Command::HriFont),
        b'h' => arg1(buf, Command::BarcodeHeight),
        b'w' => arg1(buf, Command::BarcodeWidth),
        b'a' => arg1(buf, Command::AutoStatusBack),
        b'r' => arg1(buf, Command::TransmitStatus),
        b'I' => arg1(buf, Command::PrinterId),
        b'V' => {
            let Some(m) = at(buf, 2) else {
                return Step::Need;
            };
            match m {
                0 | 48 => Step::Done(
                    Command::Cut {
                        partial: false,
                        feed: None,
                    },
                    3,
                ),
                1 | 49 => Step::Done(
                    Command::Cut {
                        partial: true,
                        feed: None,
                    },
                    3,
                ),
                65 | 66 | 97 | 98 | 103 | 104 => fixed(buf, 4, |b| Command::Cut {
                    partial: matches!(m, 66 | 98 | 104),
                    feed: at(b, 3),
                }),
                _ => Step::Done(
                    Command::Malformed {
                        why: format!("GS V cut mode 0x{m:02x} is unknown"),
                        bytes: vec![GS, b'V', m],
                    },
                    3,
                ),
            }
        }
        b'k' => {
            let Some(m) = at(buf, 2) else {
                return Step::Need;
            };
            if m <= 6 {
                nul_terminated(buf, 3, MAX_NUL_TERMINATED, "GS k", |b| Command::Barcode {
                    system: m,
                    data: b.get(3..b.len().saturating_sub(1)).unwrap_or(&[]).to_vec(),
                })
            } else {
                let Some(n) = at(buf, 3) else {
                    return Step::Need;
                };
                fixed(buf, 4 + usize::from(n), |b| Command::Barcode {
                    system: m,
                    data: b.get(4..).unwrap_or(&[]).to_vec(),
                })
            }
        }
        b'v' => {
            let Some(sub) = at(buf, 2) else {
                return Step::Need;
            };
            if sub != b'0' {
                return Step::Done(Command::Unknown(vec![GS, b'v', sub]), 3);
            }
            let (Some(m), Some(x), Some(y)) = (at(buf, 3), u16le(buf, 4), u16le(buf, 6)) else {
                return Step::Need;
            };
            with_payload(buf, 8, u64::from(x) * u64::from(y), "GS v 0", |_, d| {
                Command::Raster {
                    mode: m,
                    width_bytes: x,
                    height: y,
                    data: d.to_vec(),
                }
            })
        }
        b'(' => {
            let (Some(kind), Some(len)) = (at(buf, 2), u16le(buf, 3)) else {
                return Step::Need;
            };
            let name = match kind {
                b'k' => "GS ( k",
                b'H' => "GS ( H",
                b'L' => "GS ( L",
                _ => "GS (",
            };
            with_payload(buf, 5, u64::from(len), name, |h, p| match kind {
                b'k' => Command::Symbol2d {
                    cn: at(p, 0).unwrap_or(0),
                    function: at(p, 1).unwrap_or(0),
                    params: p.get(2..).unwrap_or(&[]).to_vec(),
                },
                b'H' => Command::Response {
                    function: at(p, 0).unwrap_or(0),
                    params: p.get(1..).unwrap_or(&[]).to_vec(),
                },
                b'L' => Command::Graphics {
                    function: at(p, 1).unwrap_or(0),
                    params: p.to_vec(),
                },
                _ => {
                    let mut bytes = h.to_vec();
                    bytes.extend_from_slice(p);
                    Command::Other {
                        name: "GS (",
                        bytes,
                    }
                }
            })
        }
        b'8' => {
            let Some(kind) = at(buf, 2) else {
                return Step::Need;
            };
            let (Some(lo), Some(hi)) = (u16le(buf, 3), u16le(buf, 5)) else {
                return Step::Need;
            };
            let len = u64::from(lo) | (u64::from(hi) << 16);
            with_payload(buf, 7, len, "GS 8", |h, p| {
                if kind == b'L' {
                    Command::Graphics {
                        function: at(p, 1).unwrap_or(0),
                        params: p.to_vec(),
                    }
                } else {
                    let mut bytes = h.to_vec();
                    bytes.extend_from_slice(p);
                    Command::Other {
                        name: "GS 8",
                        bytes,
                    }
                }
            })
        }
        b'*' => {
            let (Some(x), Some(y)) = (at(buf, 2), at(buf, 3)) else {
                return Step::Need;
            };
            with_payload(buf, 4, u64::from(x) * u64::from(y) * 8, "GS *", |h, p| {
                let mut bytes = h.to_vec();
                bytes.extend_from_slice(p);
                Command::Other {
                    name: "GS *",
                    bytes,
                }
            })
        }
        b'Q' => {
            let Some(sub) = at(buf, 2) else {
                return Step::Need;
            };
            if sub != b'0' {
                return Step::Done(Command::Unknown(vec![GS, b'Q', sub]), 3);
            }
            let (Some(x), Some(y)) = (u16le(buf, 4), u16le(buf, 6)) else {
                return Step::Need;
            };
            with_payload(buf, 8, u64::from(x) * u64::from(y), "GS Q 0", |h, p| {
                let mut bytes = h.to_vec();
                bytes.extend_from_slice(p);
                Command::Other {
                    name: "GS Q 0",
                    bytes,
                }
            })
        }
        b'/' => other(buf, 3, "GS /"),
        b'b' => other(buf, 3, "GS b"),
        b'T' => other(buf, 3, "GS T"),
        b'E' => other(buf, 3, "GS E"),
        b'j' => other(buf, 3, "GS j"),
        b'|' => other(buf, 3, "GS |"),
        b'L' => other(buf, 4, "GS L"),
        b'W' => other(buf, 4, "GS W"),
        b'P' => other(buf, 4, "GS P"),
        b'$' => other(buf, 4, "GS $"),
        b'\\' => other(buf, 4, "GS \\"),
        b'^' => other(buf, 5, "GS ^"),
        b':' => other(buf, 2, "GS :"),
        b'c' => other(buf, 2, "GS c"),
        b'z' => other(buf, 4, "GS z"),
        b'g' => other(buf, 5, "GS g"),
        b'C' => {
            let Some(sub) = at(buf, 2) else {
                return Step::Need;
            };
            match sub {
                b'0' => other(buf, 5, "GS C 0"),
                b'1' => other(buf, 9, "GS C 1"),
                b'2' => other(buf, 5, "GS C 2"),
                _ => Step::Done(Command::Unknown(vec![GS, b'C', sub]), 3),
            }
        }
        _ => Step::Done(Command::Unknown(vec![GS, x]), 2),
    }
}

fn decode_fs(buf: &[u8]) -> Step {
    let Some(x) = at(buf, 1) else {
        return Step::Need;
    };
    match x {
        b'(' => {
            let (Some(kind), Some(len)) = (at(buf, 2), u16le(buf, 3)) else {
                return Step::Need;
            };
            with_payload(buf, 5, u64::from(len), "FS (", |h, p| {
                if kind == b'C' && at(p, 0) == Some(0x30) && p.len() == 2 {
                    Command::Encoding(at(p, 1).unwrap_or(0))
                } else {
                    let mut bytes = h.to_vec();
                    bytes.extend_from_slice(p);
                    Command::Other {
                        name: "FS (",
                        bytes,
                    }
                }
            })
        }
        b'.' => other(buf, 2, "FS ."),
        b'&' => other(buf, 2, "FS &"),
        b'!' => other(buf, 3, "FS !"),
        b'-' => other(buf, 3, "FS -"),
        b'C' => other(buf, 3, "FS C"),
        b'W' => other(buf, 3, "FS W"),
        b'S' => other(buf, 4, "FS S"),
        b'p' => other(buf, 4, "FS p"),
        b'2' => other(buf, 4 + 72, "FS 2"),
        b'q' => {
            // FS q n [xL xH yL yH d1...dk]1..n: define NV bit images.
            let Some(n) = at(buf, 2) else {
                return Step::Need;
            };
            let mut i = 3u64;
            for _ in 0..n {
                let ix = i as usize;
                let (Some(x), Some(y)) = (u16le(buf, ix), u16le(buf, ix + 2)) else {
                    return Step::Need;
                };
                i += 4 + u64::from(x) * u64::from(y) * 8;
                if i > MAX_PAYLOAD {
                    return Step::Skip {
                        name: "FS q",
                        header: ix + 4,
                        payload: i - (ix as u64 + 4),
                    };
                }
                if i > buf.len() as u64 {
                    return Step::Need;
                }
            }
            other(buf, i as usize, "FS q")
        }
        _ => Step::Done(Command::Unknown(vec![FS, x]), 2),
    }
}

fn decode_dle(buf: &[u8]) -> Step {
    let Some(x) = at(buf, 1) else {
        return Step::Need;
    };
    match x {
        0x04 => {
            let Some(n) = at(buf, 2) else {
                return Step::Need;
            };
            if matches!(n, 7 | 8 | 18) {
                fixed(buf, 4, |_| Command::RealTimeStatus(n))
            } else {
                Step::Done(Command::RealTimeStatus(n), 3)
            }
        }
        0x05 => arg1(buf, Command::RealTimeRequest),
        0x14 => {
            let Some(function) = at(buf, 2) else {
                return Step::Need;
            };
            let len = match function {
                1 | 2 => 5,
                3 => 8,
                7 => 4,
                8 => 10,
                _ => 3,
            };
            fixed(buf, len, |b| Command::RealTimeDc4 {
                function,
                params: b.get(3..).unwrap_or(&[]).to_vec(),
            })
        }
        // A lone DLE is not a command: report it and go on with the next byte.
        _ => Step::Done(Command::Unknown(vec![DLE]), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(bytes: &[u8]) -> Vec<Command> {
        parse_all(bytes).into_iter().map(|p| p.command).collect()
    }

    #[test]
    fn text_and_controls() {
        assert_eq!(
            commands(b"\x1b@Hello\n\x1bE\x01X\x1d\x56\x00"),
            vec![
                Command::Initialize,
                Command::Text(b"Hello".to_vec()),
                Command::LineFeed,
                Command::Emphasized(1),
                Command::Text(b"X".to_vec()),
                Command::Cut {
                    partial: false,
                    feed: None
                },
            ]
        );
    }

    #[test]
    fn offsets_count_from_the_stream_start() {
        let parsed = parse_all(b"AB\x1b\x45\x01C");
        let offsets: Vec<u64> = parsed.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, vec![0, 2, 5]);
    }

    #[test]
    fn split_commands_wait_for_their_bytes() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        p.push(b"\x1d\x76\x30\x00\x01\x00", &mut out);
        assert!(out.is_empty());
        p.push(b"\x02\x00\xff", &mut out);
        assert!(out.is_empty());
        p.push(b"\x0f\n", &mut out);
        assert_eq!(
            out[0].command,
            Command::Raster {
                mode: 0,
                width_bytes: 1,
                height: 2,
                data: vec![0xff, 0x0f]
            }
        );
        assert_eq!(out[1].command, Command::LineFeed);
        assert_eq!(out[1].offset, 10);
    }

    #[test]
    fn barcodes_in_both_forms() {
        assert_eq!(
            commands(b"\x1dk\x04ABC\x00\x1dkI\x04{B12"),
            vec![
                Command::Barcode {
                    system: 4,
                    data: b"ABC".to_vec()
                },
                Command::Barcode {
                    system: 73,
                    data: b"{B12".to_vec()
                },
            ]
        );
    }

    #[test]
    fn feed_and_cut_forms_take_four_bytes() {
        assert_eq!(
            commands(b"\x1dVB\x00\x1dVA\x03"),
            vec![
                Command::Cut {
                    partial: true,
                    feed: Some(0)
                },
                Command::Cut {
                    partial: false,
                    feed: Some(3)
                },
            ]
        );
    }

    #[test]
    fn qr_functions() {
        assert_eq!(
            commands(b"\x1d(k\x03\x001C\x05\x1d(k\x06\x001P0abc"),
            vec![
                Command::Symbol2d {
                    cn: 0x31,
                    function: 0x43,
                    params: vec![5]
                },
                Command::Symbol2d {
                    cn: 0x31,
                    function: 0x50,
                    params: b"0abc".to_vec()
                },
            ]
        );
    }

    #[test]
    fn real_time_commands() {
        assert_eq!(
            commands(
                b"\x10\x04\x01\x10\x04\x07\x01\x10\x05\x02\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08"
            ),
            vec![
                Command::RealTimeStatus(1),
                Command::RealTimeStatus(7),
                Command::RealTimeRequest(2),
                Command::RealTimeDc4 {
                    function: 8,
                    params: vec![1, 3, 0x14, 1, 6, 2, 8]
                },
            ]
        );
    }

    #[test]
    fn unknown_and_truncated() {
        let out = commands(b"\x1b\xfeA\x1d(k\x10");
        assert_eq!(out[0], Command::Unknown(vec![0x1b, 0xfe]));
        assert_eq!(out[1], Command::Text(b"A".to_vec()));
        assert_eq!(out[2], Command::Truncated(b"\x1d(k\x10".to_vec()));
    }

    #[test]
    fn oversized_raster_is_skipped_without_buffering() {
        let mut p = Parser::new();
        let mut out = Vec::new();
        // 0xffff bytes per row, 0xffff rows: 4 GB announced.
        p.push(b"\x1dv0\x00\xff\xff\xff\xff", &mut out);
        p.push(&[0u8; 1000], &mut out);
        assert!(out.is_empty());
        assert_eq!(p.pending(), 0);
        let last = p.finish().unwrap();
        assert!(matches!(last.command,
            Command::Oversized { announced, skipped: 1000, .. } if announced == 0xffff * 0xffff));
        assert_eq!(last.len, 1008);
    }

    #[test]
    fn unterminated_function_a_barcode_is_malformed_not_stuck() {
        let mut bytes = b"\x1dk\x04".to_vec();
        bytes.extend(std::iter::repeat_n(b'A', 300));
        let out = commands(&bytes);
        assert!(matches!(out[0], Command::Malformed { .. }));
        assert_eq!(out[1], Command::Text(vec![b'A'; 300]));
    }
}
