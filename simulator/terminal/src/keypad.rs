//! The keypad link: the text line protocol between the reference terminal and its PIN pad
//! / display / card swipe unit (the "keypad" node).
//!
//! The link is a byte stream (TCP, a pty or an in-memory pipe) carrying ASCII lines, each
//! ended by `"\n"`; a `"\r"` just before the `"\n"` is accepted and stripped. Blank lines
//! are ignored. A line has a keyword, then optionally one space and an argument:
//!
//! | direction        | line                                  | [`PadLine`]                 |
//! |------------------|---------------------------------------|-----------------------------|
//! | pad → terminal   | `KEY <k>` (0-9, ENTER, CANCEL, CLEAR, F1..F4) | [`PadLine::Key`]    |
//! | pad → terminal   | `SWIPE <track2>`                      | [`PadLine::Swipe`]          |
//! | pad → terminal   | `TEST OK` / `TEST FAIL <reason>`      | [`PadLine::TestOk`] / [`PadLine::TestFail`] |
//! | pad → terminal   | `READY`                               | [`PadLine::Ready`]          |
//! | terminal → pad   | `DISPLAY <text>` (≤ 64 characters)    | [`PadLine::Display`]        |
//! | terminal → pad   | `BEEP`                                | [`PadLine::Beep`]           |
//! | terminal → pad   | `TEST` (self-test request)            | [`PadLine::Test`]           |
//! | terminal → pad   | `PIN ON` / `PIN OFF`                  | [`PadLine::PinOn`] / [`PadLine::PinOff`] |
//!
//! Framing and codec are one small layer here: [`encode`] writes one line, [`Decoder`]
//! takes stream bytes in any chunks and hands back one [`PadLine`] or one [`KeypadError`]
//! per line. A bad line is an item, not a dead link: the decoder carries on with the next
//! line. A line longer than [`MAX_LINE`] bytes is reported once and skipped up to the next
//! `"\n"`, so the decoder never holds more than `MAX_LINE + 1` bytes of an unfinished line.
//!
//! Card data is masked by construction: a track is a [`Track2Text`] whose `Debug` and
//! `Display` mask it, an error in a `SWIPE` line names the problem and the byte offset but
//! never the track, and the [`fmt::Display`] of a [`PadLine`] (the journal's view) shows
//! `KEY *` for digits, since digits typed on a PIN pad are PIN digits.

use std::collections::VecDeque;
use std::fmt;

use poslab_sensitive::{mask_digit_runs, mask_track2};

/// The longest line, in bytes, without its `"\r\n"` / `"\n"` terminator.
pub const MAX_LINE: usize = 256;
/// The longest `DISPLAY` text, in characters.
pub const MAX_DISPLAY: usize = 64;
/// The longest track 2, in characters, sentinels included.
pub const MAX_TRACK2: usize = 40;
/// The longest account number in a track 2.
const MAX_PAN: usize = 19;
/// How much of an unexpected word an error quotes.
const QUOTE_MAX: usize = 16;

/// A key on the pad.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// `0`..`9`. `Debug` shows `Digit(*)`: on a PIN pad a digit is a PIN digit.
    Digit(u8),
    Enter,
    Cancel,
    Clear,
    /// `F1`..`F4`.
    Function(u8),
}

impl Key {
    /// Reads a key as written after `KEY `.
    pub fn parse(text: &str) -> Option<Key> {
        match text {
            "ENTER" => Some(Key::Enter),
            "CANCEL" => Some(Key::Cancel),
            "CLEAR" => Some(Key::Clear),
            "F1" | "F2" | "F3" | "F4" | "F5" => text
                .strip_prefix('F')
                .and_then(|n| n.parse().ok())
                .map(Key::Function),
            _ => match text.as_bytes() {
                [d @ b'0'..=b'9'] => Some(Key::Digit(d - b'0')),
                _ => None,
            },
        }
    }

    /// The key as written on the wire. Values outside the protocol (`Digit(12)`, `F9`) are
    /// written as they are, and the decoder rejects them.
    pub fn wire(&self) -> String {
        match self {
            Key::Digit(d) => d.to_string(),
            Key::Enter => "ENTER".into(),
            Key::Cancel => "CANCEL".into(),
            Key::Clear => "CLEAR".into(),
            Key::Function(n) => format!("F{n}"),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Digit(_) => f.write_str("Digit(*)"),
            Key::Enter => f.write_str("Enter"),
            Key::Cancel => f.write_str("Cancel"),
            Key::Clear => f.write_str("Clear"),
            Key::Function(n) => write!(f, "Function({n})"),
        }
    }
}

/// Track 2 as read by the stripe reader (`;PAN=YYMMSSS...?`). `Debug` and `Display` mask
/// it (first six and last four digits of the PAN, everything after the separator starred);
/// [`Track2Text::expose`] gives the clear text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Track2Text(String);

impl Track2Text {
    /// Wraps a track. No check here: the decoder checks what comes off the wire, the
    /// encoder writes what it is given.
    pub fn new(track: impl Into<String>) -> Self {
        Track2Text(track.into())
    }
    /// The clear track. Call this only to hand it to the card-reading logic.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn masked(&self) -> String {
        mask_track2(&self.0)
    }
}

impl fmt::Debug for Track2Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Track2Text({})", self.masked())
    }
}

impl fmt::Display for Track2Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// One line of the keypad link, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PadLine {
    /// pad → terminal: a key was pressed.
    Key(Key),
    /// pad → terminal: a card was swiped.
    Swipe(Track2Text),
    /// pad → terminal: the self test passed.
    TestOk,
    /// pad → terminal: the self test failed, with the pad's reason (may be empty).
    TestFail(String),
    /// pad → terminal: the pad is up.
    Ready,
    /// terminal → pad: show this text (printable ASCII, at most [`MAX_DISPLAY`] characters).
    Display(String),
    /// terminal → pad: beep.
    Beep,
    /// terminal → pad: run the self test.
    Test,
    /// terminal → pad: enter PIN entry mode.
    PinOn,
    /// terminal → pad: leave PIN entry mode.
    PinOff,
}

impl PadLine {
    /// True for the lines a pad sends, false for those a terminal sends.
    pub fn from_pad(&self) -> bool {
        matches!(
            self,
            PadLine::Key(_)
                | PadLine::Swipe(_)
                | PadLine::TestOk
                | PadLine::TestFail(_)
                | PadLine::Ready
        )
    }
}

/// The journal's view of a line: digits typed on the pad show as `KEY *`, a track is
/// masked, and free text has its PAN-like digit runs masked.
impl fmt::Display for PadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PadLine::Key(Key::Digit(_)) => f.write_str("KEY *"),
            PadLine::Key(k) => write!(f, "KEY {}", k.wire()),
            PadLine::Swipe(t) => write!(f, "SWIPE {t}"),
            PadLine::TestOk => f.write_str("TEST OK"),
            PadLine::TestFail(r) if r.is_empty() => f.write_str("TEST FAIL"),
            PadLine::TestFail(r) => write!(f, "TEST FAIL {}", mask_digit_runs(r)),
            PadLine::Ready => f.write_str("READY"),
            PadLine::Display(t) => write!(f, "DISPLAY {}", mask_digit_runs(t)),
            PadLine::Beep => f.write_str("BEEP"),
            PadLine::Test => f.write_str("TEST"),
            PadLine::PinOn => f.write_str("PIN ON"),
            PadLine::PinOff => f.write_str("PIN OFF"),
        }
    }
}

/// What was wrong with a line, and where: `offset` counts bytes from the first byte ever
/// pushed into the [`Decoder`]. Quoted words are cut to 16 characters and have PAN-like
/// digit runs masked; nothing from a `SWIPE` argument is ever quoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeypadError {
    #[error("line longer than {max} bytes at byte {offset}", max = MAX_LINE)]
    LineTooLong { offset: u64 },
    #[error("non-printable byte 0x{byte:02x} at byte {offset}")]
    NonPrintable { byte: u8, offset: u64 },
    #[error("unknown keyword \"{keyword}\" at byte {offset}")]
    UnknownKeyword { keyword: String, offset: u64 },
    #[error("{keyword} takes no argument at byte {offset}")]
    UnexpectedArgument { keyword: &'static str, offset: u64 },
    #[error("{keyword} needs an argument at byte {offset}")]
    MissingArgument { keyword: &'static str, offset: u64 },
    #[error("bad {keyword} argument \"{argument}\" at byte {offset}")]
    BadArgument {
        keyword: &'static str,
        argument: String,
        offset: u64,
    },
    #[error("bad key \"{key}\" at byte {offset}")]
    BadKey { key: String, offset: u64 },
    #[error("display text longer than {max} characters at byte {offset}", max = MAX_DISPLAY)]
    DisplayTooLong { offset: u64 },
    #[error("track 2 {problem} at byte {offset}")]
    BadTrack2 { problem: Track2Problem, offset: u64 },
}

impl KeypadError {
    /// The byte offset in the stream the error points at.
    pub fn offset(&self) -> u64 {
        match self {
            KeypadError::LineTooLong { offset }
            | KeypadError::NonPrintable { offset, .. }
            | KeypadError::UnknownKeyword { offset, .. }
            | KeypadError::UnexpectedArgument { offset, .. }
            | KeypadError::MissingArgument { offset, .. }
            | KeypadError::BadArgument { offset, .. }
            | KeypadError::BadKey { offset, .. }
            | KeypadError::DisplayTooLong { offset }
            | KeypadError::BadTrack2 { offset, .. } => *offset,
        }
    }
}

/// What is wrong with a swiped track 2 (never its content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track2Problem {
    Empty,
    TooLong,
    NonDigit,
    NoSeparator,
    SecondSeparator,
    NoAccountNumber,
    AccountNumberTooLong,
}

impl fmt::Display for Track2Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Track2Problem::Empty => "is empty",
            Track2Problem::TooLong => "is longer than 40 characters",
            Track2Problem::NonDigit => "has a non-digit",
            Track2Problem::NoSeparator => "has no '=' separator",
            Track2Problem::SecondSeparator => "has a second '=' separator",
            Track2Problem::NoAccountNumber => "has no account number",
            Track2Problem::AccountNumberTooLong => "account number is longer than 19 digits",
        })
    }
}

/// Writes one line with its trailing `"\n"`.
///
/// The encoder keeps the framing whatever it is given: a byte that is not printable ASCII
/// in a text (display, reason, track) is written as `?`, and a display text is cut to
/// [`MAX_DISPLAY`] characters, a failure reason so the line fits [`MAX_LINE`]. Values the
/// protocol has no word for (`Key::Digit(12)`, a malformed track) are written as they are;
/// the decoder on the other side reports them.
pub fn encode(line: &PadLine) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    encode_into(line, &mut out);
    out
}

/// [`encode`], appending to `out`.
pub fn encode_into(line: &PadLine, out: &mut Vec<u8>) {
    match line {
        PadLine::Key(k) => {
            out.extend_from_slice(b"KEY ");
            out.extend_from_slice(k.wire().as_bytes());
        }
        PadLine::Swipe(t) => {
            out.extend_from_slice(b"SWIPE ");
            push_text(out, t.expose(), MAX_LINE - "SWIPE ".len());
        }
        PadLine::TestOk => out.extend_from_slice(b"TEST OK"),
        PadLine::TestFail(r) if r.is_empty() => out.extend_from_slice(b"TEST FAIL"),
        PadLine::TestFail(r) => {
            out.extend_from_slice(b"TEST FAIL ");
            push_text(out, r, MAX_LINE - "TEST FAIL ".len());
        }
        PadLine::Ready => out.extend_from_slice(b"READY"),
        PadLine::Display(t) if t.is_empty() => out.extend_from_slice(b"DISPLAY"),
        PadLine::Display(t) => {
            out.extend_from_slice(b"DISPLAY ");
            push_text(out, t, MAX_DISPLAY);
        }
        PadLine::Beep => out.extend_from_slice(b"BEEP"),
        PadLine::Test => out.extend_from_slice(b"TEST"),
        PadLine::PinOn => out.extend_from_slice(b"PIN ON"),
        PadLine::PinOff => out.extend_from_slice(b"PIN OFF"),
    }
    out.push(b'\n');
}

/// Appends at most `max` characters of `text`, each non-printable one as `?`.
fn push_text(out: &mut Vec<u8>, text: &str, max: usize) {
    out.extend(
        text.chars()
            .take(max)
            .map(|c| if is_printable_char(c) { c as u8 } else { b'?' }),
    );
}

fn is_printable_char(c: char) -> bool {
    (' '..='~').contains(&c)
}

fn is_printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// A streaming decoder: push stream bytes in any chunks, then take lines with
/// [`Decoder::next`] until it returns `None` ("need more bytes").
///
/// Complete lines are decoded as they are pushed and queued (one small item per line);
/// an unfinished line is held, at most `MAX_LINE + 1` bytes of it. Pushing the same bytes
/// in different chunks gives the same items.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The unfinished line.
    partial: Vec<u8>,
    /// Stream offset of `partial[0]` (or of the next byte when it is empty).
    start: u64,
    /// Skipping the rest of an overlong line, up to its `"\n"`.
    skipping: bool,
    ready: VecDeque<Result<PadLine, KeypadError>>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes stream bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let nl = rest.iter().position(|&b| b == b'\n');
            let (chunk, terminated) = match nl {
                Some(i) => (rest.get(..i).unwrap_or_default(), true),
                None => (rest, false),
            };
            rest = match nl {
                Some(i) => rest.get(i + 1..).unwrap_or_default(),
                None => &[],
            };
            if self.skipping {
                self.start += chunk.len() as u64;
            } else {
                self.partial.extend_from_slice(chunk);
                if self.partial.len() > MAX_LINE + 1 {
                    // Even with a "\r" to come off, the line is too long: report it now
                    // and drop what we hold.
                    self.ready
                        .push_back(Err(KeypadError::LineTooLong { offset: self.start }));
                    self.start += self.partial.len() as u64;
                    self.partial.clear();
                    self.skipping = true;
                }
            }
            if terminated {
                if !self.skipping {
                    let line = std::mem::take(&mut self.partial);
                    self.line(&line);
                    self.start += line.len() as u64;
                }
                self.skipping = false;
                self.start += 1; // the "\n"
            }
        }
    }

    /// The next decoded line or line error; `None` when more bytes are needed.
    #[allow(clippy::should_implement_trait)] // a pull interface fed by push, not an Iterator
    pub fn next(&mut self) -> Option<Result<PadLine, KeypadError>> {
        self.ready.pop_front()
    }

    /// Bytes of an unfinished line held (never more than `MAX_LINE + 1`).
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Bytes pushed so far.
    pub fn position(&self) -> u64 {
        self.start + self.partial.len() as u64
    }

    /// Decodes one complete line (without its "\n") starting at `self.start`.
    fn line(&mut self, raw: &[u8]) {
        let text = raw.strip_suffix(b"\r").unwrap_or(raw);
        if text.is_empty() {
            return;
        }
        let item = if text.len() > MAX_LINE {
            Err(KeypadError::LineTooLong { offset: self.start })
        } else {
            decode_line(text, self.start)
        };
        self.ready.push_back(item);
    }
}

/// Decodes the text of one line (no terminator), found at stream offset `at`.
pub fn decode_line(text: &[u8], at: u64) -> Result<PadLine, KeypadError> {
    if let Some(i) = text.iter().position(|&b| !is_printable(b)) {
        return Err(KeypadError::NonPrintable {
            byte: text.get(i).copied().unwrap_or_default(),
            offset: at + i as u64,
        });
    }
    // All printable ASCII from here, so this never fails.
    let text = std::str::from_utf8(text).map_err(|e| KeypadError::NonPrintable {
        byte: text.get(e.valid_up_to()).copied().unwrap_or_default(),
        offset: at + e.valid_up_to() as u64,
    })?;
    let (keyword, arg) = match text.split_once(' ') {
        Some((k, a)) => (k, Some(a)),
        None => (text, None),
    };
    let arg_at = at + keyword.len() as u64 + 1;
    let bare = |line: PadLine, keyword: &'static str| match arg {
        None => Ok(line),
        Some(_) => Err(KeypadError::UnexpectedArgument {
            keyword,
            offset: arg_at,
        }),
    };
    match keyword {
        "KEY" => {
            let k = arg.ok_or(KeypadError::MissingArgument {
                keyword: "KEY",
                offset: at,
            })?;
            Key::parse(k).map(PadLine::Key).ok_or(KeypadError::BadKey {
                key: quote(k),
                offset: arg_at,
            })
        }
        "SWIPE" => {
            let t = arg.ok_or(KeypadError::MissingArgument {
                keyword: "SWIPE",
                offset: at,
            })?;
            check_track2(t, arg_at)?;
            Ok(PadLine::Swipe(Track2Text::new(t)))
        }
        "TEST" => match arg {
            None => Ok(PadLine::Test),
            Some("OK") => Ok(PadLine::TestOk),
            Some("FAIL") => Ok(PadLine::TestFail(String::new())),
            Some(a) => match a.strip_prefix("FAIL ") {
                Some(reason) => Ok(PadLine::TestFail(reason.to_string())),
                None => Err(KeypadError::BadArgument {
                    keyword: "TEST",
                    argument: quote(a),
                    offset: arg_at,
                }),
            },
        },
        "READY" => bare(PadLine::Ready, "READY"),
        "DISPLAY" => {
            let t = arg.unwrap_or_default();
            if t.len() > MAX_DISPLAY {
                return Err(KeypadError::DisplayTooLong { offset: arg_at });
            }
            Ok(PadLine::Display(t.to_string()))
        }
        "BEEP" => bare(PadLine::Beep, "BEEP"),
        "PIN" => match arg {
            Some("ON") => Ok(PadLine::PinOn),
            Some("OFF") => Ok(PadLine::PinOff),
            Some(a) => Err(KeypadError::BadArgument {
                keyword: "PIN",
                argument: quote(a),
                offset: arg_at,
            }),
            None => Err(KeypadError::MissingArgument {
                keyword: "PIN",
                offset: at,
            }),
        },
        other => Err(KeypadError::UnknownKeyword {
            keyword: quote(other),
            offset: at,
        }),
    }
}

/// Checks a swiped track 2 (`;`? digits `=` digits `?`?), found at stream offset `at`.
/// Errors name the problem and its offset, never the content.
fn check_track2(track: &str, at: u64) -> Result<(), KeypadError> {
    let err = |problem, offset| KeypadError::BadTrack2 { problem, offset };
    if track.is_empty() {
        return Err(err(Track2Problem::Empty, at));
    }
    if track.len() > MAX_TRACK2 {
        return Err(err(Track2Problem::TooLong, at));
    }
    let bytes = track.as_bytes();
    let first = usize::from(bytes.first() == Some(&b';'));
    let end = if bytes.len() > first && bytes.last() == Some(&b'?') {
        bytes.len() - 1
    } else {
        bytes.len()
    };
    let body = bytes.get(first..end).unwrap_or_default();
    let mut separator = None;
    for (i, &b) in body.iter().enumerate() {
        let offset = at + (first + i) as u64;
        match b {
            b'0'..=b'9' => {}
            b'=' if separator.is_none() => separator = Some(i),
            b'=' => return Err(err(Track2Problem::SecondSeparator, offset)),
            _ => return Err(err(Track2Problem::NonDigit, offset)),
        }
    }
    match separator {
        None => Err(err(Track2Problem::NoSeparator, at)),
        Some(0) => Err(err(Track2Problem::NoAccountNumber, at)),
        Some(n) if n > MAX_PAN => Err(err(Track2Problem::AccountNumberTooLong, at)),
        Some(_) => Ok(()),
    }
}

/// An unexpected word, safe to put in an error: cut short, PAN-like digit runs masked.
fn quote(word: &str) -> String {
    // Mask first, then cut: a cut through a PAN would leave a run too short to mask.
    let masked = mask_digit_runs(word);
    let mut q: String = masked.chars().take(QUOTE_MAX).collect();
    if masked.len() > QUOTE_MAX {
        q.push_str("...");
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TRACK: &str = ";4761739001010010=22122011143804400000?";

    fn decode_all(bytes: &[u8]) -> Vec<Result<PadLine, KeypadError>> {
        let mut d = Decoder::new();
        d.push(bytes);
        std::iter::from_fn(|| d.next()).collect()
    }

    fn one(bytes: &[u8]) -> Result<PadLine, KeypadError> {
        let mut all = decode_all(bytes);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    fn err(bytes: &[u8]) -> String {
        one(bytes).unwrap_err().to_string()
    }

    #[test]
    fn every_line_decodes() {
        let cases: &[(&[u8], PadLine)] = &[
            (b"KEY 0\n", PadLine::Key(Key::Digit(0))),
            (b"KEY 9\n", PadLine::Key(Key::Digit(9))),
            (b"KEY ENTER\n", PadLine::Key(Key::Enter)),
            (b"KEY CANCEL\n", PadLine::Key(Key::Cancel)),
            (b"KEY CLEAR\n", PadLine::Key(Key::Clear)),
            (b"KEY F1\n", PadLine::Key(Key::Function(1))),
            (b"KEY F4\n", PadLine::Key(Key::Function(4))),
            (b"TEST OK\n", PadLine::TestOk),
            (b"TEST FAIL\n", PadLine::TestFail(String::new())),
            (
                b"TEST FAIL printer head  hot \n",
                PadLine::TestFail("printer head  hot ".into()),
            ),
            (b"READY\r\n", PadLine::Ready),
            (b"DISPLAY\n", PadLine::Display(String::new())),
            (b"DISPLAY \n", PadLine::Display(String::new())),
            (
                b"DISPLAY  AMOUNT 12.50 EUR\n",
                PadLine::Display(" AMOUNT 12.50 EUR".into()),
            ),
            (b"BEEP\n", PadLine::Beep),
            (b"TEST\n", PadLine::Test),
            (b"PIN ON\n", PadLine::PinOn),
            (b"PIN OFF\n", PadLine::PinOff),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                one(bytes).as_ref(),
                Ok(want),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let swipe = one(format!("SWIPE {TRACK}\n").as_bytes()).unwrap();
        assert_eq!(swipe, PadLine::Swipe(Track2Text::new(TRACK)));
        let bare = one(b"SWIPE 4761739001010010=2212201\n").unwrap();
        assert_eq!(
            bare,
            PadLine::Swipe(Track2Text::new("4761739001010010=2212201"))
        );
    }

    #[test]
    fn encode_writes_the_wire_form() {
        assert_eq!(encode(&PadLine::Key(Key::Digit(5))), b"KEY 5\n");
        assert_eq!(encode(&PadLine::Key(Key::Function(2))), b"KEY F2\n");
        assert_eq!(encode(&PadLine::PinOff), b"PIN OFF\n");
        assert_eq!(encode(&PadLine::Display(String::new())), b"DISPLAY\n");
        assert_eq!(
            encode(&PadLine::Display("HELLO".into())),
            b"DISPLAY HELLO\n"
        );
        assert_eq!(
            encode(&PadLine::TestFail("no paper".into())),
            b"TEST FAIL no paper\n"
        );
        assert_eq!(
            encode(&PadLine::Swipe(Track2Text::new(TRACK))),
            format!("SWIPE {TRACK}\n").as_bytes()
        );
    }

    #[test]
    fn encode_keeps_the_framing_and_truncates_display() {
        let long = "X".repeat(100);
        let bytes = encode(&PadLine::Display(long));
        assert_eq!(bytes.len(), "DISPLAY ".len() + MAX_DISPLAY + 1);
        assert_eq!(one(&bytes), Ok(PadLine::Display("X".repeat(MAX_DISPLAY))));
        let bytes = encode(&PadLine::Display("a\nb\u{e9}".into()));
        assert_eq!(bytes, b"DISPLAY a?b?\n");
        let bytes = encode(&PadLine::TestFail("r".repeat(1000)));
        assert_eq!(bytes.len(), MAX_LINE + 1);
        assert_eq!(
            one(&bytes),
            Ok(PadLine::TestFail("r".repeat(MAX_LINE - 10)))
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        assert_eq!(err(b"FOO\n"), "unknown keyword \"FOO\" at byte 0");
        assert_eq!(
            decode_all(b"KEY 1\nREADY\nFOO BAR\n")[2]
                .clone()
                .unwrap_err()
                .to_string(),
            "unknown keyword \"FOO\" at byte 12"
        );
        assert_eq!(err(b"KEY X\n"), "bad key \"X\" at byte 4");
        assert_eq!(err(b"KEY 10\n"), "bad key \"10\" at byte 4");
        assert_eq!(err(b"KEY F6\n"), "bad key \"F6\" at byte 4");
        assert_eq!(err(b"KEY\n"), "KEY needs an argument at byte 0");
        assert_eq!(err(b"BEEP LOUD\n"), "BEEP takes no argument at byte 5");
        assert_eq!(err(b"READY \n"), "READY takes no argument at byte 6");
        assert_eq!(err(b"PIN MAYBE\n"), "bad PIN argument \"MAYBE\" at byte 4");
        assert_eq!(err(b"PIN\n"), "PIN needs an argument at byte 0");
        assert_eq!(err(b"TEST WHAT\n"), "bad TEST argument \"WHAT\" at byte 5");
        assert_eq!(err(b"key 1\n"), "unknown keyword \"key\" at byte 0");
        assert_eq!(err(b"KEY \x801\n"), "non-printable byte 0x80 at byte 4");
        assert_eq!(err(b"READY\r\r\n"), "non-printable byte 0x0d at byte 5");
        assert_eq!(err(b"DISPLAY \tX\n"), "non-printable byte 0x09 at byte 8");
        let long = format!("DISPLAY {}\n", "X".repeat(65));
        assert_eq!(
            err(long.as_bytes()),
            "display text longer than 64 characters at byte 8"
        );
    }

    #[test]
    fn track2_errors_never_show_the_track() {
        let cases: &[(&str, &str)] = &[
            (
                "4761739001010010=2212X01",
                "track 2 has a non-digit at byte 27",
            ),
            (
                "4761739001010010=22=12",
                "track 2 has a second '=' separator at byte 25",
            ),
            (
                "47617390010100102212",
                "track 2 has no '=' separator at byte 6",
            ),
            ("=2212", "track 2 has no account number at byte 6"),
            (";=2212?", "track 2 has no account number at byte 6"),
            (
                "47617390010100109999=2212",
                "track 2 account number is longer than 19 digits at byte 6",
            ),
            (
                ";4761739001010010=2212;?",
                "track 2 has a non-digit at byte 28",
            ),
            (
                "?4761739001010010=2212",
                "track 2 has a non-digit at byte 6",
            ),
            ("", "track 2 is empty at byte 6"),
        ];
        for (track, want) in cases {
            let e = err(format!("SWIPE {track}\n").as_bytes());
            assert_eq!(e, *want, "{track}");
            assert!(!e.contains("4761739001010010"), "{e}");
            assert!(!e.contains("2212"), "{e}");
        }
        let long = format!("SWIPE {}=1\n", "4".repeat(40));
        assert_eq!(
            err(long.as_bytes()),
            "track 2 is longer than 40 characters at byte 6"
        );
        assert_eq!(err(b"SWIPE\n"), "SWIPE needs an argument at byte 0");
    }

    #[test]
    fn quoted_words_mask_pan_like_runs() {
        let e = err(b"4761739001010010=2212201\n");
        assert!(!e.contains("4761739001010010"), "{e}");
        assert!(e.starts_with("unknown keyword \"476173******0010"), "{e}");
    }

    #[test]
    fn offsets_count_from_the_first_byte_ever_pushed() {
        let mut d = Decoder::new();
        d.push(b"READY\r\n\n\r\n");
        assert_eq!(d.next(), Some(Ok(PadLine::Ready)));
        assert_eq!(d.next(), None, "blank lines are ignored");
        d.push(b"KE");
        assert_eq!(d.next(), None, "need more bytes");
        d.push(b"Y Z\nKEY 1");
        let e = d.next().unwrap().unwrap_err();
        assert_eq!(e.offset(), 14);
        assert_eq!(d.next(), None);
        d.push(b"\n");
        assert_eq!(d.next(), Some(Ok(PadLine::Key(Key::Digit(1)))));
        assert_eq!(d.position(), 22);
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_skipped() {
        let mut d = Decoder::new();
        d.push(b"BEEP\n");
        d.push(&[b'A'; 300]);
        assert_eq!(d.next(), Some(Ok(PadLine::Beep)));
        assert_eq!(
            d.next().map(|r| r.map_err(|e| e.to_string())),
            Some(Err("line longer than 256 bytes at byte 5".to_string()))
        );
        assert_eq!(d.buffered(), 0);
        for _ in 0..1000 {
            d.push(&[b'B'; 1000]);
            assert_eq!(d.next(), None);
            assert_eq!(d.buffered(), 0);
        }
        d.push(b"BB\nPIN ON\n");
        assert_eq!(d.next(), Some(Ok(PadLine::PinOn)));
        assert_eq!(d.next(), None);

        // 256 bytes are fine, with or without "\r"; 257 are not.
        let ok = format!("TEST FAIL {}", "r".repeat(MAX_LINE - 10));
        assert!(one(format!("{ok}\n").as_bytes()).is_ok());
        assert!(one(format!("{ok}\r\n").as_bytes()).is_ok());
        assert!(matches!(
            one(format!("{ok}r\n").as_bytes()),
            Err(KeypadError::LineTooLong { offset: 0 })
        ));
        assert!(matches!(
            one(format!("{ok}r\r\n").as_bytes()),
            Err(KeypadError::LineTooLong { offset: 0 })
        ));
    }

    #[test]
    fn display_and_debug_mask_card_data_and_pin_digits() {
        let swipe = PadLine::Swipe(Track2Text::new("4761739001010010=22122011143804400000"));
        assert_eq!(
            swipe.to_string(),
            format!("SWIPE 476173******0010={}", "*".repeat(20))
        );
        let dbg = format!("{swipe:?}");
        assert!(!dbg.contains("4761739001010010"), "{dbg}");
        assert!(!dbg.contains("2212"), "{dbg}");
        assert_eq!(PadLine::Key(Key::Digit(5)).to_string(), "KEY *");
        assert_eq!(
            format!("{:?}", PadLine::Key(Key::Digit(5))),
            "Key(Digit(*))"
        );
        assert_eq!(PadLine::Key(Key::Enter).to_string(), "KEY ENTER");
        assert_eq!(
            PadLine::Display("CARD 4761739001010010".into()).to_string(),
            "DISPLAY CARD 476173******0010"
        );
        assert_eq!(PadLine::TestFail(String::new()).to_string(), "TEST FAIL");
        assert_eq!(PadLine::PinOn.to_string(), "PIN ON");
        assert!(PadLine::Ready.from_pad());
        assert!(!PadLine::Beep.from_pad());
    }

    fn key() -> impl Strategy<Value = Key> {
        prop_oneof![
            (0u8..=9).prop_map(Key::Digit),
            Just(Key::Enter),
            Just(Key::Cancel),
            Just(Key::Clear),
            (1u8..=4).prop_map(Key::Function),
        ]
    }

    fn track2() -> impl Strategy<Value = Track2Text> {
        (any::<bool>(), "[0-9]{1,19}", "[0-9]{0,17}", any::<bool>())
            .prop_map(|(start, pan, rest, end)| {
                let mut t = String::new();
                if start {
                    t.push(';');
                }
                t.push_str(&pan);
                t.push('=');
                t.push_str(&rest);
                if end {
                    t.push('?');
                }
                Track2Text::new(t)
            })
            .prop_filter("fits 40", |t| t.expose().len() <= MAX_TRACK2)
    }

    pub(crate) fn pad_line() -> impl Strategy<Value = PadLine> {
        prop_oneof![
            key().prop_map(PadLine::Key),
            track2().prop_map(PadLine::Swipe),
            Just(PadLine::TestOk),
            "[ -~]{0,246}".prop_map(PadLine::TestFail),
            Just(PadLine::Ready),
            "[ -~]{0,64}".prop_map(PadLine::Display),
            Just(PadLine::Beep),
            Just(PadLine::Test),
            Just(PadLine::PinOn),
            Just(PadLine::PinOff),
        ]
    }

    /// Pushes `bytes` cut at the given points and collects every item.
    fn decode_chunked(bytes: &[u8], cuts: &[usize]) -> Vec<Result<PadLine, KeypadError>> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut from = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            d.push(&bytes[from..c]);
            assert!(d.buffered() <= MAX_LINE + 1);
            out.extend(std::iter::from_fn(|| d.next()));
            from = c;
        }
        out
    }

    proptest! {
        #[test]
        fn round_trip(lines in proptest::collection::vec(pad_line(), 0..20),
                      cuts in proptest::collection::vec(any::<usize>(), 0..10),
                      crlf in any::<bool>()) {
            let mut bytes = Vec::new();
            for l in &lines {
                let mut one = encode(l);
                if crlf {
                    one.pop();
                    one.extend_from_slice(b"\r\n");
                }
                bytes.extend(one);
            }
            let whole: Vec<_> = decode_all(&bytes);
            let want: Vec<_> = lines.iter().cloned().map(Ok).collect();
            prop_assert_eq!(&whole, &want);
            prop_assert_eq!(decode_chunked(&bytes, &cuts), want);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(
            bytes in proptest::collection::vec(
                prop_oneof![any::<u8>(), Just(b'\n'), Just(b' '), Just(b'='), b'0'..=b'9'], 0..2000),
            cuts in proptest::collection::vec(any::<usize>(), 0..20)) {
            let whole = decode_all(&bytes);
            // Chunking never changes what comes out.
            prop_assert_eq!(decode_chunked(&bytes, &cuts), whole.clone());
            for item in whole {
                match item {
                    Ok(line) => {
                        let again = one(&encode(&line));
                        prop_assert_eq!(again, Ok(line));
                    }
                    Err(e) => prop_assert!(e.offset() < bytes.len() as u64),
                }
            }
        }
    }
}
