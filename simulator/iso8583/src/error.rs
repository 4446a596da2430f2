//! The crate's errors: where (field path and byte offset) and what was expected.
//! Values of sensitive fields are never part of an error.

use std::fmt;

use poslab_tlv::{Tag, TlvErrorKind};

/// A path to a data element, a subfield or a TLV tag inside one: `DE 55 → 9F26`,
/// `DE 3 → subfield 2`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldPath {
    pub de: u16,
    pub sub: Option<SubPath>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubPath {
    Subfield(u16),
    Tag(Tag),
}

impl FieldPath {
    pub fn de(de: u16) -> FieldPath {
        FieldPath { de, sub: None }
    }
    pub fn subfield(de: u16, sub: u16) -> FieldPath {
        FieldPath {
            de,
            sub: Some(SubPath::Subfield(sub)),
        }
    }
    pub fn tag(de: u16, tag: Tag) -> FieldPath {
        FieldPath {
            de,
            sub: Some(SubPath::Tag(tag)),
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DE {}", self.de)?;
        match &self.sub {
            None => Ok(()),
            Some(SubPath::Subfield(n)) => write!(f, " → subfield {n}"),
            Some(SubPath::Tag(t)) => write!(f, " → {t}"),
        }
    }
}

/// Which part of a message an error is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Mti,
    /// 1 = primary, 2 = secondary, 3 = tertiary.
    Bitmap(u8),
    Field(FieldPath),
    /// The message as a whole (bytes after the last field, an empty message).
    Message,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Mti => f.write_str("MTI"),
            Location::Bitmap(1) => f.write_str("primary bitmap"),
            Location::Bitmap(2) => f.write_str("secondary bitmap"),
            Location::Bitmap(_) => f.write_str("tertiary bitmap"),
            Location::Field(p) => p.fmt(f),
            Location::Message => f.write_str("message"),
        }
    }
}

impl From<FieldPath> for Location {
    fn from(p: FieldPath) -> Location {
        Location::Field(p)
    }
}

/// What was wrong. Any `found` text is already safe to show: values of sensitive fields
/// are replaced by their length and class.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("expected {needed} bytes, found {left}: runs past the end of the message")]
    Truncated { needed: usize, left: usize },
    #[error("length {len} exceeds the maximum {max}")]
    TooLong { len: usize, max: usize },
    #[error("expected {expected}, found {found}")]
    Invalid { expected: String, found: String },
    #[error("{0}")]
    Tlv(TlvErrorKind),
    #[error("bit {0} is set but the spec does not define DE {0}")]
    Undefined(u16),
    #[error("{0} bytes after the last field")]
    TrailingBytes(usize),
    #[error("subfield {0} is missing but a later subfield is set (subfields are positional)")]
    SubfieldGap(u16),
    #[error("{0} bytes after the last subfield")]
    SubfieldTrailing(usize),
    #[error("DE {0} is not defined in spec {1}")]
    NotInSpec(u16, String),
    #[error("field number {0} is outside 2..=192 (bitmaps are derived, not set)")]
    OutOfRange(u16),
}

/// An ISO 8583 error. Displayed as "DE 55 → 9F26 at byte 143: length 8 runs past the end
/// (4 bytes left)" or "DE 3 → subfield 2 at byte 10: expected 2 digits, found \"4X\"".
/// Never contains clear card data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Iso8583Error {
    /// A message that could not be read.
    #[error("{location} at byte {offset}: {reason}")]
    Unpack {
        location: Location,
        offset: usize,
        reason: Reason,
    },
    /// A message that could not be written (a value that does not fit its field).
    #[error("{location}: {reason}")]
    Pack { location: Location, reason: Reason },
    #[error(transparent)]
    Frame(#[from] FrameError),
}

impl Iso8583Error {
    /// The byte offset an unpack or frame error points at.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Iso8583Error::Unpack { offset, .. } => Some(*offset),
            Iso8583Error::Pack { .. } => None,
            Iso8583Error::Frame(e) => Some(e.offset),
        }
    }
    /// The field path, when the error is about a field.
    pub fn field(&self) -> Option<&FieldPath> {
        match self {
            Iso8583Error::Unpack {
                location: Location::Field(p),
                ..
            }
            | Iso8583Error::Pack {
                location: Location::Field(p),
                ..
            } => Some(p),
            _ => None,
        }
    }
}

/// What is wrong with a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameErrorKind {
    #[error("frame length is 0")]
    ZeroLength,
    #[error("frame length {len} exceeds the maximum {max}")]
    TooLong { len: usize, max: usize },
    #[error("expected a length prefix of {expected}, found {found}")]
    BadLength {
        expected: &'static str,
        found: String,
    },
    #[error("frame of {len} bytes is shorter than its header and trailer ({need} bytes)")]
    ShorterThanHeader { len: usize, need: usize },
    #[error("header is {found} bytes, the framing expects {expected}")]
    HeaderLength { expected: usize, found: usize },
    #[error("trailer is {found} bytes, the framing expects {expected}")]
    TrailerLength { expected: usize, found: usize },
    #[error("frame of {len} bytes does not fit a {prefix} length prefix (at most {max})")]
    DoesNotFit {
        len: usize,
        prefix: &'static str,
        max: usize,
    },
}

/// A framing error; `offset` is where the frame starts in the buffer given to
/// [`crate::Framing::decode`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("frame at byte {offset}: {kind}")]
pub struct FrameError {
    pub offset: usize,
    pub kind: FrameErrorKind,
}

/// A spec file that could not be loaded: which file, where in it, what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {message}", location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct SpecError {
    pub origin: String,
    /// 1-based line and column, when known.
    pub location: Option<(u64, u64)>,
    pub message: String,
}
