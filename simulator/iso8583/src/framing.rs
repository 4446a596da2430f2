//! Framing, the layer under the message codec: a length prefix, optional header bytes
//! (e.g. a TPDU) before the MTI, optional trailer bytes after the message.
//!
//! ```text
//! frame = length prefix | header (header_len bytes) | payload (MTI onwards) | trailer
//! ```
//! The length prefix counts header + payload + trailer. With [`LengthPrefix::None`] there
//! is no length on the wire: one frame is whatever is available (a datagram, a hex line, a
//! stream where each read is one message), so [`Framing::decode`] takes the whole buffer.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{FrameError, FrameErrorKind};

/// Largest frame accepted by default (64 KiB).
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// The length prefix in front of each frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LengthPrefix {
    /// 2 bytes, binary big-endian (the default).
    #[default]
    Binary2,
    /// 4 ASCII digits.
    Ascii4,
    /// 2 bytes of packed BCD (0000-9999).
    Bcd2,
    /// No length: a frame is everything available.
    None,
}

impl LengthPrefix {
    pub fn name(self) -> &'static str {
        match self {
            LengthPrefix::Binary2 => "binary2",
            LengthPrefix::Ascii4 => "ascii4",
            LengthPrefix::Bcd2 => "bcd2",
            LengthPrefix::None => "none",
        }
    }

    /// Bytes of the prefix on the wire.
    pub fn len(self) -> usize {
        match self {
            LengthPrefix::Binary2 | LengthPrefix::Bcd2 => 2,
            LengthPrefix::Ascii4 => 4,
            LengthPrefix::None => 0,
        }
    }

    pub fn is_empty(self) -> bool {
        self == LengthPrefix::None
    }

    /// Largest length the prefix can write.
    pub fn capacity(self) -> usize {
        match self {
            LengthPrefix::Binary2 => 0xFFFF,
            LengthPrefix::Ascii4 | LengthPrefix::Bcd2 => 9999,
            LengthPrefix::None => usize::MAX,
        }
    }
}

impl fmt::Display for LengthPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LengthPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<LengthPrefix, String> {
        match s {
            "binary2" => Ok(LengthPrefix::Binary2),
            "ascii4" => Ok(LengthPrefix::Ascii4),
            "bcd2" => Ok(LengthPrefix::Bcd2),
            "none" => Ok(LengthPrefix::None),
            other => Err(format!(
                "expected a length prefix binary2, ascii4, bcd2 or none, found {other:?}"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for LengthPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How messages are framed on a stream.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Framing {
    pub length: LengthPrefix,
    /// Bytes before the MTI (5 for a TPDU).
    pub header_len: usize,
    /// Bytes after the message.
    pub trailer_len: usize,
    /// Largest frame accepted or written (header + payload + trailer).
    pub max_len: usize,
}

impl Default for Framing {
    fn default() -> Framing {
        Framing::new(LengthPrefix::Binary2)
    }
}

/// One frame, split into its parts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub header: Vec<u8>,
    /// The message, MTI onwards.
    pub payload: Vec<u8>,
    pub trailer: Vec<u8>,
}

/// Lengths only: a payload carries card data.
impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Frame {{ header: {}, payload: <{} bytes>, trailer: <{} bytes> }}",
            crate::message::hex_upper(&self.header),
            self.payload.len(),
            self.trailer.len()
        )
    }
}

impl Framing {
    /// A framing with this length prefix, no header, no trailer, 64 KiB maximum.
    pub fn new(length: LengthPrefix) -> Framing {
        Framing {
            length,
            header_len: 0,
            trailer_len: 0,
            max_len: DEFAULT_MAX_FRAME,
        }
    }

    pub fn with_header_len(mut self, n: usize) -> Framing {
        self.header_len = n;
        self
    }

    pub fn with_trailer_len(mut self, n: usize) -> Framing {
        self.trailer_len = n;
        self
    }

    pub fn with_max_len(mut self, n: usize) -> Framing {
        self.max_len = n;
        self
    }

    /// Reads one frame from the start of `buf`. `Ok(None)`: more bytes are needed.
    /// `Ok(Some((frame, consumed)))`: a frame and how many bytes of `buf` it took.
    /// An error (zero or oversized length, non-digit length) means the stream cannot be
    /// resynchronised; its offset is 0, the start of `buf`.
    pub fn decode(&self, buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        let err = |kind| FrameError { offset: 0, kind };
        let (len, start) = match self.length {
            LengthPrefix::None => {
                if buf.is_empty() {
                    return Ok(None);
                }
                (buf.len(), 0)
            }
            LengthPrefix::Binary2 => match buf.get(..2) {
                None => return Ok(None),
                Some(p) => (u16::from_be_bytes([p[0], p[1]]) as usize, 2),
            },
            LengthPrefix::Ascii4 => match buf.get(..4) {
                None => return Ok(None),
                Some(p) => {
                    if !p.iter().all(u8::is_ascii_digit) {
                        return Err(err(FrameErrorKind::BadLength {
                            expected: "4 ASCII digits",
                            found: crate::message::hex_upper(p),
                        }));
                    }
                    (
                        p.iter().fold(0usize, |a, d| a * 10 + (d - b'0') as usize),
                        4,
                    )
                }
            },
            LengthPrefix::Bcd2 => match buf.get(..2) {
                None => return Ok(None),
                Some(p) => {
                    if p.iter().any(|b| b >> 4 > 9 || b & 15 > 9) {
                        return Err(err(FrameErrorKind::BadLength {
                            expected: "2 bytes of BCD digits",
                            found: crate::message::hex_upper(p),
                        }));
                    }
                    let d = |b: u8| (b >> 4) as usize * 10 + (b & 15) as usize;
                    (d(p[0]) * 100 + d(p[1]), 2)
                }
            },
        };
        if len == 0 {
            return Err(err(FrameErrorKind::ZeroLength));
        }
        if len > self.max_len {
            return Err(err(FrameErrorKind::TooLong {
                len,
                max: self.max_len,
            }));
        }
        let need = self.header_len + self.trailer_len;
        if len < need {
            return Err(err(FrameErrorKind::ShorterThanHeader { len, need }));
        }
        let Some(body) = buf.get(start..start + len) else {
            return Ok(None);
        };
        let (header, rest) = body.split_at(self.header_len);
        let (payload, trailer) = rest.split_at(rest.len() - self.trailer_len);
        Ok(Some((
            Frame {
                header: header.to_vec(),
                payload: payload.to_vec(),
                trailer: trailer.to_vec(),
            },
            start + len,
        )))
    }

    /// A frame's bytes.
    pub fn encode(
        &self,
        header: &[u8],
        payload: &[u8],
        trailer: &[u8],
    ) -> Result<Vec<u8>, FrameError> {
        let mut out =
            Vec::with_capacity(self.length.len() + header.len() + payload.len() + trailer.len());
        self.encode_into(header, payload, trailer, &mut out)?;
        Ok(out)
    }

    /// Appends a frame's bytes to `out`.
    pub fn encode_into(
        &self,
        header: &[u8],
        payload: &[u8],
        trailer: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), FrameError> {
        let err = |kind| FrameError {
            offset: out.len(),
            kind,
        };
        if header.len() != self.header_len {
            return Err(err(FrameErrorKind::HeaderLength {
                expected: self.header_len,
                found: header.len(),
            }));
        }
        if trailer.len() != self.trailer_len {
            return Err(err(FrameErrorKind::TrailerLength {
                expected: self.trailer_len,
                found: trailer.len(),
            }));
        }
        let len = header.len() + payload.len() + trailer.len();
        if len == 0 {
            return Err(err(FrameErrorKind::ZeroLength));
        }
        if len > self.max_len {
            return Err(err(FrameErrorKind::TooLong {
                len,
                max: self.max_len,
            }));
        }
        if len > self.length.capacity() {
            return Err(err(FrameErrorKind::DoesNotFit {
                len,
                prefix: self.length.name(),
                max: self.length.capacity(),
            }));
        }
        match self.length {
            LengthPrefix::None => {}
            LengthPrefix::Binary2 => out.extend_from_slice(&(len as u16).to_be_bytes()),
            LengthPrefix::Ascii4 => out.extend_from_slice(format!("{len:04}").as_bytes()),
            LengthPrefix::Bcd2 => {
                let d = [len / 1000, len / 100 % 10, len / 10 % 10, len % 10];
                out.push((d[0] as u8) << 4 | d[1] as u8);
                out.push((d[2] as u8) << 4 | d[3] as u8);
            }
        }
        out.extend_from_slice(header);
        out.extend_from_slice(payload);
        out.extend_from_slice(trailer);
        Ok(())
    }
}

/// The answer's TPDU for a request's: `60 DDDD SSSS` → `60 SSSS DDDD`. Bytes after the
/// fifth are kept; a header shorter than 5 bytes is returned unchanged.
pub fn tpdu_swap(header: &[u8]) -> Vec<u8> {
    let mut out = header.to_vec();
    if let (Some(dst), Some(src)) = (header.get(1..3), header.get(3..5)) {
        out[1..3].copy_from_slice(src);
        out[3..5].copy_from_slice(dst);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary2_frames_round_trip_and_wait_for_more_bytes() {
        let f = Framing::new(LengthPrefix::Binary2).with_header_len(5);
        let tpdu = [0x60, 0x00, 0x01, 0x00, 0x00];
        let bytes = f.encode(&tpdu, b"0800xyz", &[]).unwrap();
        assert_eq!(&bytes[..2], &[0x00, 12]);
        for cut in 0..bytes.len() {
            assert_eq!(f.decode(&bytes[..cut]).unwrap(), None, "cut at {cut}");
        }
        let mut two = bytes.clone();
        two.extend_from_slice(&bytes);
        let (frame, used) = f.decode(&two).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(frame.header, tpdu);
        assert_eq!(frame.payload, b"0800xyz");
    }

    #[test]
    fn ascii4_bcd2_and_none() {
        let a = Framing::new(LengthPrefix::Ascii4);
        assert_eq!(a.encode(&[], b"0800", &[]).unwrap(), b"00040800");
        assert_eq!(
            a.decode(b"00040800").unwrap().unwrap().0.payload,
            b"0800".to_vec()
        );
        let e = a.decode(b"00X40800").unwrap_err();
        assert_eq!(
            e.to_string(),
            "frame at byte 0: expected a length prefix of 4 ASCII digits, found 30305834"
        );
        let b = Framing::new(LengthPrefix::Bcd2);
        let bytes = b.encode(&[], &[7u8; 1234], &[]).unwrap();
        assert_eq!(&bytes[..2], &[0x12, 0x34]);
        assert_eq!(b.decode(&bytes).unwrap().unwrap().1, 1236);
        assert!(b.encode(&[], &[0u8; 10000], &[]).is_err());
        let n = Framing::new(LengthPrefix::None);
        assert_eq!(n.decode(&[]).unwrap(), None);
        assert_eq!(n.decode(b"0800").unwrap().unwrap().1, 4);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let f = Framing::new(LengthPrefix::Binary2).with_max_len(100);
        assert_eq!(
            f.decode(&[0, 0, 1]).unwrap_err().kind,
            FrameErrorKind::ZeroLength
        );
        assert_eq!(
            f.decode(&[0x01, 0x00]).unwrap_err().to_string(),
            "frame at byte 0: frame length 256 exceeds the maximum 100"
        );
        let t = Framing::new(LengthPrefix::Binary2).with_header_len(5);
        assert!(matches!(
            t.decode(&[0, 3, 1, 2, 3]).unwrap_err().kind,
            FrameErrorKind::ShorterThanHeader { len: 3, need: 5 }
        ));
        assert!(t.encode(&[1, 2], b"0800", &[]).is_err());
    }

    #[test]
    fn tpdu_swaps_destination_and_source() {
        assert_eq!(
            tpdu_swap(&[0x60, 0x00, 0x01, 0x80, 0x02]),
            vec![0x60, 0x80, 0x02, 0x00, 0x01]
        );
        assert_eq!(tpdu_swap(&[0x60]), vec![0x60]);
    }

    #[test]
    fn names_parse_and_display() {
        for p in [
            LengthPrefix::Binary2,
            LengthPrefix::Ascii4,
            LengthPrefix::Bcd2,
            LengthPrefix::None,
        ] {
            assert_eq!(p.to_string().parse::<LengthPrefix>(), Ok(p));
        }
        assert!("x".parse::<LengthPrefix>().is_err());
    }
}
