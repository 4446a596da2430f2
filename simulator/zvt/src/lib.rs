//! ZVT, the German ECR-to-terminal protocol (ZVT-Protokoll, PA00P015), sans-IO.
//!
//! Three layers, each usable on its own:
//! - framing: [`apdu`] (`CLASS INSTR LEN DATA`, what TCP carries raw) and [`frame`] (the
//!   serial line: `DLE STX` stuffed APDU `DLE ETX` CRC, `ACK`/`NAK`);
//! - messages: [`bmp`] (bitmaps and the TLV container) and [`message`] (typed commands and
//!   answers, open: an unknown command round-trips as [`message::Message::Other`]);
//! - behaviour: [`link`] (ACK/NAK, retransmission, line timeouts), [`terminal`] (the
//!   payment-terminal role, handing payments to a [`terminal::PaymentApplication`]),
//!   [`scripted`] (an application that answers from a script) and [`ecr`] (the cash
//!   register role, money-safe: it never resends a payment blindly).
//!
//! Nothing here reads a clock, sleeps or touches a socket: time is an input ([`Time`], the
//! time since the adapter started, plus [`WallTime`] for receipts) and every machine hands
//! back bytes to send, events and its next deadline (`handle_*` in, `poll_*` out).

pub mod apdu;
pub mod bmp;
pub mod codes;
pub mod ecr;
pub mod frame;
pub mod fuzz;
pub mod link;
pub mod message;
pub mod scripted;
pub mod terminal;

pub use apdu::{Apdu, Command};
pub use bmp::{Bmp, Field, Fields};
pub use codes::{IntermediateStatus, ResultCode};
pub use message::Message;

/// Monotonic time since the adapter started (simulated or real). Deadlines use it too.
pub type Time = std::time::Duration;

/// Wall-clock time as receipts and BMPs `0C`/`0D` carry it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct WallTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl WallTime {
    /// Seconds since the start of the year (the year itself is not on the wire: BMP `0D`
    /// is MMDD). Used to match a terminal's last result to a command the ECR sent.
    pub fn seconds_in_year(&self) -> i64 {
        const DAYS_BEFORE: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let m = (self.month.clamp(1, 12) - 1) as usize;
        let days = DAYS_BEFORE.get(m).copied().unwrap_or(0) + self.day.max(1) as i64 - 1;
        days * 86_400 + self.hour as i64 * 3600 + self.minute as i64 * 60 + self.second as i64
    }
}

/// What was wrong with bytes from the other end, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ZvtError {
    #[error("at byte {offset}, {what}: needs {needed} bytes, {left} left")]
    Truncated {
        what: String,
        offset: usize,
        needed: usize,
        left: usize,
    },
    #[error("at byte {offset}, {what}: bad length digit {byte:02X} (expected F0..F9)")]
    BadLengthDigit {
        what: String,
        offset: usize,
        byte: u8,
    },
    #[error("at byte {offset}, {what}: {reason}")]
    Invalid {
        what: String,
        offset: usize,
        reason: String,
    },
    #[error("apdu length {declared} does not match the {actual} data bytes of the frame")]
    FrameLength { declared: usize, actual: usize },
    #[error("tlv container at byte {offset}: {source}")]
    Tlv {
        offset: usize,
        source: poslab_tlv::TlvError,
    },
    #[error("script: {0}")]
    Script(String),
}

pub type Result<T, E = ZvtError> = std::result::Result<T, E>;
