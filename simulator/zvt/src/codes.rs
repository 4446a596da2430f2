//! Result codes (BMP `27`, the abort `06 1E`, the negative ack `84 xx`) and intermediate
//! status codes (`04 FF`). Both open: an unknown value keeps its byte and prints in hex.

use std::fmt;

use serde::{Serialize, Serializer};

/// A ZVT result code. `00` is success; `01`..`63` are the authorisation system's own
/// answer codes passed through; `64`..`FF` are the terminal's error messages.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResultCode(pub u8);

impl ResultCode {
    pub const SUCCESS: ResultCode = ResultCode(0x00);
    pub const CARD_NOT_READABLE: ResultCode = ResultCode(0x64);
    pub const PROCESSING_ERROR: ResultCode = ResultCode(0x66);
    pub const NOT_REGISTERED: ResultCode = ResultCode(0x6B);
    pub const ABORTED: ResultCode = ResultCode(0x6C);
    pub const CARD_EXPIRED: ResultCode = ResultCode(0x78);
    pub const COMMUNICATION_ERROR: ResultCode = ResultCode(0x7D);
    pub const FUNCTION_NOT_POSSIBLE: ResultCode = ResultCode(0x83);
    pub const PROTOCOL_ERROR: ResultCode = ResultCode(0x9A);
    pub const PLEASE_WAIT: ResultCode = ResultCode(0x9C);
    pub const ALREADY_REVERSED: ResultCode = ResultCode(0xB4);
    pub const REVERSAL_NOT_POSSIBLE: ResultCode = ResultCode(0xB5);
    /// The amount does not fit the pre-authorisation (more than is reserved).
    pub const PRE_AUTHORISATION_INCORRECT: ResultCode = ResultCode(0xB7);
    /// No open pre-authorisation with that receipt number.
    pub const PRE_AUTHORISATION_ERROR: ResultCode = ResultCode(0xB8);
    pub const SYSTEM_ERROR: ResultCode = ResultCode(0xFF);

    pub fn is_success(self) -> bool {
        self.0 == 0
    }

    /// What the code means, in English; `None` for codes the table does not know.
    pub fn meaning(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "no error",
            0x01..=0x63 => "declined by the authorisation system",
            0x64 => "card not readable",
            0x65 => "card data not present",
            0x66 => "processing error",
            0x67 => "function not permitted for ec and Maestro cards",
            0x68 => "function not permitted for credit and tank cards",
            0x6A => "turnover file full",
            0x6B => "function deactivated (terminal not registered)",
            0x6C => "abort via timeout or abort key",
            0x6E => "card in blocked list",
            0x6F => "wrong currency",
            0x71 => "credit not sufficient",
            0x72 => "chip error",
            0x73 => "card data incorrect",
            0x77 => "end-of-day batch not possible",
            0x78 => "card expired",
            0x79 => "card not yet valid",
            0x7A => "card unknown",
            0x7D => "communication error",
            0x83 => "function not possible",
            0x85 => "key missing",
            0x89 => "PIN pad defective",
            0x9A => "ZVT protocol error",
            0x9B => "error from dial-up or communication fault",
            0x9C => "please wait",
            0xA0 => "receiver not ready",
            0xA1 => "remote station does not respond",
            0xA3 => "no connection",
            0xB1 => "memory full",
            0xB2 => "merchant journal full",
            0xB4 => "already reversed",
            0xB5 => "reversal not possible",
            0xB7 => "pre-authorisation incorrect (amount too high or wrong)",
            0xB8 => "error pre-authorisation",
            0xBF => "voltage supply too low",
            0xC2 => "diagnosis required",
            0xC3 => "maximum amount exceeded",
            0xC5 => "payment method not supported",
            0xC6 => "currency not applicable",
            0xC8 => "amount too small",
            0xCC => "printer not ready",
            0xDC => "card inserted",
            0xE2 => "card reader does not answer",
            0xE4 => "terminal activation required",
            0xEC => "PIN processing not possible",
            0xF0 => "open end-of-day batch present",
            0xFC => "necessary device not present",
            0xFE => "register unknown",
            0xFF => "system error",
            _ => return None,
        })
    }
}

impl fmt::Display for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.meaning() {
            Some(m) if (0x01..=0x63).contains(&self.0) => {
                write!(f, "{:02X} ({m}, code {:02})", self.0, self.0)
            }
            Some(m) => write!(f, "{:02X} ({m})", self.0),
            None => write!(f, "{:02X}", self.0),
        }
    }
}

impl fmt::Debug for ResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResultCode({self})")
    }
}

impl Serialize for ResultCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:02X}", self.0))
    }
}

/// An intermediate status code (`04 FF`): what the terminal shows the cardholder.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IntermediateStatus(pub u8);

impl IntermediateStatus {
    pub const INSERT_CARD: IntermediateStatus = IntermediateStatus(0x0A);
    pub const WATCH_PIN_PAD: IntermediateStatus = IntermediateStatus(0x01);
    pub const WAITING_FOR_HOST: IntermediateStatus = IntermediateStatus(0x04);
    pub const REMOVE_CARD: IntermediateStatus = IntermediateStatus(0x0B);
    pub const PLEASE_WAIT: IntermediateStatus = IntermediateStatus(0x0E);

    pub fn text(self) -> Option<&'static str> {
        Some(match self.0 {
            0x00 => "waiting for amount confirmation",
            0x01 | 0x02 => "please watch PIN pad",
            0x03 => "not accepted",
            0x04 => "waiting for response from host",
            0x05 => "sending auto-reversal",
            0x06 => "sending post-bookings",
            0x07 => "card not admitted",
            0x08 => "card unknown",
            0x09 => "expired card",
            0x0A => "insert card",
            0x0B => "please remove card",
            0x0C => "card not readable",
            0x0D => "processing error",
            0x0E | 0x17 => "please wait",
            0x0F => "automatic end-of-day batch",
            0x10 => "invalid card",
            0x11 => "balance display",
            0x12 => "system malfunction",
            0x13 => "payment not possible",
            0x14 => "credit not sufficient",
            0x15 => "incorrect PIN",
            0x16 => "limit not sufficient",
            0x18 => "PIN try limit exceeded",
            0x19 => "card data incorrect",
            0x1A => "service mode",
            0x1B => "approved, please fill up",
            0x1C => "approved, please take goods",
            0x1D => "declined",
            0x2C => "application selection, please wait",
            0xD2 => "dialling",
            0xD3 => "connection made",
            0xE0 => "waiting for application selection",
            0xE1 => "waiting for language selection",
            0xF1 => "offline",
            0xF2 => "online",
            0xF3 => "offline transaction",
            0xFF => "no matching status code",
            _ => return None,
        })
    }
}

impl fmt::Display for IntermediateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text() {
            Some(t) => write!(f, "{:02X} ({t})", self.0),
            None => write!(f, "{:02X}", self.0),
        }
    }
}

impl fmt::Debug for IntermediateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntermediateStatus({self})")
    }
}

impl Serialize for IntermediateStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:02X}", self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_open_and_print_meaningfully() {
        assert_eq!(
            ResultCode(0x6C).to_string(),
            "6C (abort via timeout or abort key)"
        );
        assert_eq!(
            ResultCode(0x05).to_string(),
            "05 (declined by the authorisation system, code 05)"
        );
        assert_eq!(ResultCode(0x70).to_string(), "70");
        assert_eq!(IntermediateStatus(0x0A).to_string(), "0A (insert card)");
        assert_eq!(IntermediateStatus(0x99).to_string(), "99");
    }
}
