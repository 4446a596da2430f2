//! The APDU: `CLASS INSTR LEN DATA`. LEN is one byte, or `FF` and two bytes little-endian
//! when the data is 255 bytes or more. On TCP, APDUs go raw, one after another.

use std::fmt;

use crate::ZvtError;

/// A command (class and instruction). Open: every pair is representable; the known ones
/// have names, the others print as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Command(pub u8, pub u8);

impl Command {
    /// Positive acknowledgement `80 00` (the whole APDU is `80 00 00`).
    pub const ACK: Command = Command(0x80, 0x00);
    pub const STATUS_INFORMATION: Command = Command(0x04, 0x0F);
    pub const INTERMEDIATE_STATUS: Command = Command(0x04, 0xFF);
    pub const STATUS_ENQUIRY: Command = Command(0x05, 0x01);
    pub const REGISTRATION: Command = Command(0x06, 0x00);
    pub const AUTHORISATION: Command = Command(0x06, 0x01);
    pub const LOG_OFF: Command = Command(0x06, 0x02);
    pub const COMPLETION: Command = Command(0x06, 0x0F);
    pub const ABORT: Command = Command(0x06, 0x1E);
    pub const REPEAT_RECEIPT: Command = Command(0x06, 0x20);
    pub const PRE_AUTHORISATION: Command = Command(0x06, 0x22);
    pub const PARTIAL_REVERSAL: Command = Command(0x06, 0x23);
    pub const BOOK_TOTAL: Command = Command(0x06, 0x24);
    pub const REVERSAL: Command = Command(0x06, 0x30);
    pub const REFUND: Command = Command(0x06, 0x31);
    pub const END_OF_DAY: Command = Command(0x06, 0x50);
    pub const ABORT_REQUEST: Command = Command(0x06, 0xB0);
    pub const PRINT_LINE: Command = Command(0x06, 0xD1);
    pub const PRINT_TEXT_BLOCK: Command = Command(0x06, 0xD3);

    /// A negative acknowledgement is class `84`, the instruction carries the error code.
    pub fn is_nak(self) -> bool {
        self.0 == 0x84
    }

    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Command::ACK => "ack",
            Command::STATUS_INFORMATION => "status information",
            Command::INTERMEDIATE_STATUS => "intermediate status",
            Command::STATUS_ENQUIRY => "status enquiry",
            Command::REGISTRATION => "registration",
            Command::AUTHORISATION => "authorisation",
            Command::LOG_OFF => "log-off",
            Command::COMPLETION => "completion",
            Command::ABORT => "abort",
            Command::REPEAT_RECEIPT => "repeat receipt",
            Command::PRE_AUTHORISATION => "pre-authorisation",
            Command::PARTIAL_REVERSAL => "partial reversal",
            Command::BOOK_TOTAL => "book total",
            Command::REVERSAL => "reversal",
            Command::REFUND => "refund",
            Command::END_OF_DAY => "end of day",
            Command::ABORT_REQUEST => "abort request",
            Command::PRINT_LINE => "print line",
            Command::PRINT_TEXT_BLOCK => "print text block",
            Command(0x84, _) => "negative ack",
            _ => return None,
        })
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{:02X} {:02X} {name}", self.0, self.1),
            None => write!(f, "{:02X} {:02X}", self.0, self.1),
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Command({self})")
    }
}

/// Largest data field an APDU can carry (`FF` + two length bytes).
pub const MAX_DATA: usize = 0xFFFF;

/// One APDU. `long_length` keeps whether the sender used the `FF LL HH` form even for a
/// short data field, so that re-encoding is byte-exact.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Apdu {
    pub command: Command,
    pub data: Vec<u8>,
    pub long_length: bool,
}

impl fmt::Debug for Apdu {
    /// Shows the command and the data length only: the data may hold card data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Apdu({}, {} data bytes)", self.command, self.data.len())
    }
}

impl Apdu {
    pub fn new(command: Command, data: impl Into<Vec<u8>>) -> Apdu {
        Apdu {
            command,
            data: data.into(),
            long_length: false,
        }
    }

    pub fn ack() -> Apdu {
        Apdu::new(Command::ACK, Vec::new())
    }

    pub fn nak(code: u8) -> Apdu {
        Apdu::new(Command(0x84, code), Vec::new())
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.command.0);
        out.push(self.command.1);
        let len = self.data.len().min(MAX_DATA);
        if len >= 0xFF || self.long_length {
            out.push(0xFF);
            out.extend_from_slice(&(len as u16).to_le_bytes());
        } else {
            out.push(len as u8);
        }
        out.extend_from_slice(self.data.get(..len).unwrap_or(&self.data));
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 5);
        self.encode_into(&mut out);
        out
    }
}

/// Decodes the APDU at the start of `buf`: `Ok(None)` when more bytes are needed, else the
/// APDU and the number of bytes it took. Every byte string starts a valid APDU, so this
/// never fails; the `Result` matches the other decoders.
pub fn decode(buf: &[u8]) -> Result<Option<(Apdu, usize)>, ZvtError> {
    let (Some(&class), Some(&instr), Some(&len0)) = (buf.first(), buf.get(1), buf.get(2)) else {
        return Ok(None);
    };
    let (len, header, long_length) = if len0 == 0xFF {
        let (Some(&lo), Some(&hi)) = (buf.get(3), buf.get(4)) else {
            return Ok(None);
        };
        (u16::from_le_bytes([lo, hi]) as usize, 5, true)
    } else {
        (len0 as usize, 3, false)
    };
    let Some(data) = buf.get(header..header + len) else {
        return Ok(None);
    };
    Ok(Some((
        Apdu {
            command: Command(class, instr),
            data: data.to_vec(),
            long_length,
        },
        header + len,
    )))
}

/// Decodes bytes that must be exactly one APDU (the content of a serial frame).
pub fn decode_exact(buf: &[u8]) -> Result<Apdu, ZvtError> {
    match decode(buf)? {
        Some((apdu, used)) if used == buf.len() => Ok(apdu),
        Some((apdu, _)) => Err(ZvtError::FrameLength {
            declared: apdu.data.len(),
            actual: buf
                .len()
                .saturating_sub(if apdu.long_length { 5 } else { 3 }),
        }),
        None => Err(ZvtError::Truncated {
            what: "apdu".into(),
            offset: 0,
            needed: match buf.get(2) {
                Some(0xFF) => match (buf.get(3), buf.get(4)) {
                    (Some(&lo), Some(&hi)) => 5 + u16::from_le_bytes([lo, hi]) as usize,
                    _ => 5,
                },
                Some(&n) => 3 + n as usize,
                None => 3,
            },
            left: buf.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths() {
        let a = Apdu::new(Command::AUTHORISATION, vec![0x04, 0, 0, 0, 0, 0x42, 0x50]);
        assert_eq!(
            hex::encode(a.to_bytes()),
            "060107040000000042".to_string() + "50"
        );
        let long = Apdu::new(Command::PRINT_TEXT_BLOCK, vec![0xAA; 300]);
        let bytes = long.to_bytes();
        assert_eq!(&bytes[..5], &[0x06, 0xD3, 0xFF, 0x2C, 0x01]);
        let (back, used) = decode(&bytes).unwrap().unwrap();
        assert_eq!(used, 305);
        assert_eq!(
            back,
            Apdu {
                long_length: true,
                ..long
            }
        );
    }

    #[test]
    fn need_more_bytes_is_none() {
        assert_eq!(decode(&[0x06]).unwrap(), None);
        assert_eq!(decode(&[0x06, 0x01, 0x03, 0x04]).unwrap(), None);
        assert_eq!(decode(&[0x06, 0x01, 0xFF, 0x01]).unwrap(), None);
        assert!(matches!(
            decode_exact(&[0x80, 0x00, 0x00, 0x01]),
            Err(ZvtError::FrameLength { .. })
        ));
    }

    #[test]
    fn unknown_commands_print_in_hex() {
        assert_eq!(Command(0xA5, 0x17).to_string(), "A5 17");
        assert_eq!(Command::AUTHORISATION.to_string(), "06 01 authorisation");
    }
}
