//! The vpcd wire protocol of vsmartcard's virtual smart-card reader.
//!
//! Every message, in both directions, is a 2-byte big-endian length and that many bytes.
//! From the reader (vpcd) to the card, a 1-byte payload is a control code (`00` power off,
//! `01` power on, `02` reset, `04` get ATR); a longer one is a command APDU. The card
//! answers `04` with its ATR and a command APDU with a response APDU; it answers nothing
//! to the other control codes. An empty answer tells the reader the card could not
//! answer (pcscd then reports a communication error).
//!
//! Framing never fails: any two bytes are a valid length. [`decode_frame`] returns
//! `Ok(None)` until a whole frame is there.

use std::fmt;

use crate::EmvError;

/// The TCP port vpcd listens on for its first slot (`0x8C7B`).
pub const DEFAULT_PORT: u16 = 35963;

/// The largest payload one frame can carry.
pub const MAX_PAYLOAD: usize = u16::MAX as usize;

/// A message from the reader to the card.
#[derive(Clone, PartialEq, Eq)]
pub enum ReaderMessage {
    PowerOff,
    PowerOn,
    Reset,
    GetAtr,
    /// A 1-byte control code the protocol does not define (kept, shown in hex).
    Control(u8),
    /// A command APDU (the raw bytes; parse with [`crate::apdu::Command::parse`]).
    Apdu(Vec<u8>),
    /// A frame with no payload (not sent by vpcd; answered with nothing).
    Empty,
}

impl fmt::Debug for ReaderMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReaderMessage::PowerOff => f.write_str("PowerOff"),
            ReaderMessage::PowerOn => f.write_str("PowerOn"),
            ReaderMessage::Reset => f.write_str("Reset"),
            ReaderMessage::GetAtr => f.write_str("GetAtr"),
            ReaderMessage::Control(c) => write!(f, "Control({c:02X})"),
            ReaderMessage::Apdu(b) => write!(f, "Apdu({} bytes)", b.len()),
            ReaderMessage::Empty => f.write_str("Empty"),
        }
    }
}

impl ReaderMessage {
    pub fn from_payload(payload: Vec<u8>) -> Self {
        match payload.as_slice() {
            [] => ReaderMessage::Empty,
            [0x00] => ReaderMessage::PowerOff,
            [0x01] => ReaderMessage::PowerOn,
            [0x02] => ReaderMessage::Reset,
            [0x04] => ReaderMessage::GetAtr,
            [c] => ReaderMessage::Control(*c),
            _ => ReaderMessage::Apdu(payload),
        }
    }

    pub fn payload(&self) -> Vec<u8> {
        match self {
            ReaderMessage::PowerOff => vec![0x00],
            ReaderMessage::PowerOn => vec![0x01],
            ReaderMessage::Reset => vec![0x02],
            ReaderMessage::GetAtr => vec![0x04],
            ReaderMessage::Control(c) => vec![*c],
            ReaderMessage::Apdu(b) => b.clone(),
            ReaderMessage::Empty => Vec::new(),
        }
    }

    /// The whole frame (length prefix and payload).
    pub fn encode(&self) -> Result<Vec<u8>, EmvError> {
        encode_frame(&self.payload())
    }
}

/// One frame's payload from the front of `buf` and the bytes it used; `Ok(None)` when the
/// frame is not complete yet. Never an error (the signature fits `FramedStream::next`).
pub fn decode_frame(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, EmvError> {
    let Some((len, rest)) = buf.split_first_chunk::<2>() else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes(*len));
    Ok(rest.get(..len).map(|p| (p.to_vec(), len + 2)))
}

/// A reader-to-card message from the front of `buf`.
pub fn decode_reader_message(buf: &[u8]) -> Result<Option<(ReaderMessage, usize)>, EmvError> {
    Ok(decode_frame(buf)?.map(|(p, used)| (ReaderMessage::from_payload(p), used)))
}

/// Prefixes `payload` with its length.
pub fn encode_frame(payload: &[u8]) -> Result<Vec<u8>, EmvError> {
    let len = u16::try_from(payload.len()).map_err(|_| EmvError::VpcdTooLong(payload.len()))?;
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// A buffer that takes bytes as they arrive and hands out whole frames' payloads.
#[derive(Default)]
pub struct FrameBuffer {
    buf: Vec<u8>,
}

impl fmt::Debug for FrameBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameBuffer({} bytes)", self.buf.len())
    }
}

impl FrameBuffer {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// The next whole frame's payload, if one is buffered.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        match decode_frame(&self.buf) {
            Ok(Some((payload, used))) => {
                self.buf.drain(..used.min(self.buf.len()));
                Some(payload)
            }
            _ => None,
        }
    }
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_codes_and_apdus() {
        let mut buf = FrameBuffer::new();
        buf.feed(&[0x00, 0x01, 0x01, 0x00, 0x01]);
        assert_eq!(
            ReaderMessage::from_payload(buf.next_frame().unwrap()),
            ReaderMessage::PowerOn
        );
        assert_eq!(buf.next_frame(), None);
        buf.feed(&[0x04, 0x00, 0x05, 0x00, 0xA4]);
        assert_eq!(
            ReaderMessage::from_payload(buf.next_frame().unwrap()),
            ReaderMessage::GetAtr
        );
        assert_eq!(buf.next_frame(), None);
        buf.feed(&[0x04, 0x00, 0x00]);
        let apdu = ReaderMessage::from_payload(buf.next_frame().unwrap());
        assert_eq!(
            apdu,
            ReaderMessage::Apdu(vec![0x00, 0xA4, 0x04, 0x00, 0x00])
        );
        assert_eq!(format!("{apdu:?}"), "Apdu(5 bytes)");
        assert_eq!(
            format!("{:?}", ReaderMessage::from_payload(vec![0x07])),
            "Control(07)"
        );
        assert_eq!(decode_frame(&[0x00]).unwrap(), None);
        assert_eq!(decode_frame(&[0x00, 0x00]).unwrap(), Some((vec![], 2)));
        assert!(encode_frame(&vec![0; 70_000]).is_err());
    }

    proptest! {
        #[test]
        fn frames_round_trip_across_any_split(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..5),
            split in any::<prop::sample::Index>(),
        ) {
            let wire: Vec<u8> = payloads.iter().flat_map(|p| encode_frame(p).unwrap()).collect();
            let cut = split.index(wire.len() + 1);
            let mut buf = FrameBuffer::new();
            let mut got = Vec::new();
            buf.feed(&wire[..cut]);
            while let Some(p) = buf.next_frame() { got.push(p); }
            buf.feed(&wire[cut..]);
            while let Some(p) = buf.next_frame() { got.push(p); }
            prop_assert_eq!(got, payloads);
            prop_assert_eq!(buf.buffered(), 0);
        }

        #[test]
        fn messages_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            let m = ReaderMessage::from_payload(payload.clone());
            prop_assert_eq!(m.payload(), payload);
        }
    }
}
