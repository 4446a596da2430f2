//! BER-TLV (ISO/IEC 8825-1 as EMV uses it): tags, lengths, constructed values, unknown tags kept.
//!
//! - Tags are 1 to 4 bytes (a first byte whose low five bits are all set continues; a
//!   following byte with bit 8 set continues). Any tag is accepted and kept ([`Tag`] is open).
//! - Lengths: short form (`00`..`7F`) and long forms `81`, `82`, `83`, `84`. The length
//!   form is kept, so a non-minimal encoding such as `81 05` re-encodes identically.
//! - Constructed values (bit 6 of the first tag byte) are parsed recursively (depth is
//!   bounded by [`MAX_DEPTH`]).
//! - Padding bytes `00` and `FF` where a tag is expected (before, between and after
//!   objects, as EMV Book 3 Annex B and ISO 7816-4 allow) are tolerated and kept, so
//!   [`encode`]`(`[`parse`]`(x))` gives `x` back byte for byte. (A buffer made only of
//!   padding parses to no objects, so that padding is the one thing not kept.)
//! - Values are bytes; this crate masks nothing (the ISO 8583 layer masks DE 55).
//!
//! Parsing never panics: every failure is a [`TlvError`] naming the byte offset, the tag
//! being read and what was wrong.

use std::fmt;
use std::str::FromStr;

mod list;

pub use list::{quick_check, quick_check_with, TlvList};

/// Deepest nesting of constructed objects [`parse`] follows.
pub const MAX_DEPTH: usize = 16;

/// A BER-TLV tag, 1 to 4 bytes, held big-endian in a `u32` (`9F26` is `Tag(0x9F26)`).
/// Displayed as upper-case hex ("9F26").
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u32);

/// The class bits (8 and 7) of a tag's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TagClass {
    Universal,
    Application,
    ContextSpecific,
    Private,
}

impl Tag {
    /// A tag from its big-endian value (`Tag::new(0x9F26)`).
    pub const fn new(value: u32) -> Tag {
        Tag(value)
    }

    /// Reads one tag from the start of `bytes`: the tag and how many bytes it took.
    pub fn from_bytes(bytes: &[u8]) -> Result<(Tag, usize), TlvError> {
        read_tag(bytes, 0)
    }

    /// The tag's bytes as they go on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4);
        self.write(&mut out);
        out
    }

    /// Number of bytes of the tag on the wire (1 to 4).
    pub fn len(&self) -> usize {
        match self.0 {
            0..=0xFF => 1,
            0x100..=0xFFFF => 2,
            0x1_0000..=0xFF_FFFF => 3,
            _ => 4,
        }
    }

    /// Always false: a tag has at least one byte (here for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        false
    }

    fn write(&self, out: &mut Vec<u8>) {
        let n = self.len();
        let be = self.0.to_be_bytes();
        out.extend_from_slice(&be[4 - n..]);
    }

    fn first_byte(&self) -> u8 {
        let n = self.len();
        self.0.to_be_bytes()[4 - n]
    }

    /// Bit 6 of the first byte: the value is a sequence of TLV objects.
    pub fn is_constructed(&self) -> bool {
        self.first_byte() & 0x20 != 0
    }

    pub fn class(&self) -> TagClass {
        match self.first_byte() >> 6 {
            0 => TagClass::Universal,
            1 => TagClass::Application,
            2 => TagClass::ContextSpecific,
            _ => TagClass::Private,
        }
    }
}

impl From<u32> for Tag {
    fn from(v: u32) -> Tag {
        Tag(v)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.len() * 2;
        write!(f, "{:0width$X}", self.0, width = width)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

/// Parses a tag written in hex ("9F26", "5f2a"); the bytes must form exactly one tag.
impl FromStr for Tag {
    type Err = String;
    fn from_str(s: &str) -> Result<Tag, String> {
        let s = s.trim();
        if s.is_empty() || !s.len().is_multiple_of(2) || s.len() > 8 {
            return Err(format!(
                "expected a tag of 1 to 4 bytes in hex (like 9F26), found {s:?}"
            ));
        }
        let mut bytes = Vec::with_capacity(4);
        for i in (0..s.len()).step_by(2) {
            let pair = s.get(i..i + 2).unwrap_or("");
            let b = u8::from_str_radix(pair, 16)
                .map_err(|_| format!("expected hex digits in tag {s:?}"))?;
            bytes.push(b);
        }
        let (tag, used) = Tag::from_bytes(&bytes).map_err(|e| format!("tag {s:?}: {}", e.kind))?;
        if used != bytes.len() {
            return Err(format!(
                "{s:?} is not one tag: the tag ends after {used} byte(s)"
            ));
        }
        Ok(tag)
    }
}

/// The value of a TLV object.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Primitive(Vec<u8>),
    Constructed(Vec<Tlv>),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Primitive(b) => {
                f.write_str("Primitive(")?;
                for x in b {
                    write!(f, "{x:02X}")?;
                }
                f.write_str(")")
            }
            Value::Constructed(c) => f.debug_tuple("Constructed").field(c).finish(),
        }
    }
}

/// How a length was written, kept so that re-encoding is byte-exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum LengthForm {
    /// The shortest form (what [`Tlv::primitive`] and [`Tlv::constructed`] use).
    #[default]
    Minimal,
    /// Long form with this many length bytes after the `8n` byte, even where a shorter
    /// form would do (`81 05`). Falls back to minimal if the value outgrows it.
    Long(u8),
}

/// Padding kept around an object (rare: boxed so the common case costs one pointer).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
struct Padding {
    /// `00`/`FF` bytes right before this object's tag.
    before: Vec<u8>,
    /// `00`/`FF` bytes after this object (only on the last object of a list).
    after: Vec<u8>,
    /// For a constructed object whose value is only padding.
    inner: Vec<u8>,
}

/// One BER-TLV object.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Tlv {
    pub tag: Tag,
    pub value: Value,
    length_form: LengthForm,
    padding: Option<Box<Padding>>,
}

impl fmt::Debug for Tlv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.tag)?;
        fmt::Debug::fmt(&self.value, f)
    }
}

impl Tlv {
    /// A primitive object (minimal length form).
    pub fn primitive(tag: impl Into<Tag>, bytes: impl Into<Vec<u8>>) -> Tlv {
        Tlv {
            tag: tag.into(),
            value: Value::Primitive(bytes.into()),
            length_form: LengthForm::Minimal,
            padding: None,
        }
    }

    /// A constructed object holding `children` (minimal length form).
    pub fn constructed(tag: impl Into<Tag>, children: Vec<Tlv>) -> Tlv {
        Tlv {
            tag: tag.into(),
            value: Value::Constructed(children),
            length_form: LengthForm::Minimal,
            padding: None,
        }
    }

    /// The length form this object was read with (or will be written with).
    pub fn length_form(&self) -> LengthForm {
        self.length_form
    }

    pub fn with_length_form(mut self, form: LengthForm) -> Tlv {
        self.length_form = form;
        self
    }

    /// The bytes of a primitive value (`None` for a constructed one).
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.value {
            Value::Primitive(b) => Some(b),
            Value::Constructed(_) => None,
        }
    }

    /// The children of a constructed value (empty for a primitive one).
    pub fn children(&self) -> &[Tlv] {
        match &self.value {
            Value::Primitive(_) => &[],
            Value::Constructed(c) => c,
        }
    }

    /// This object or the first descendant (depth first) with `tag`.
    pub fn find(&self, tag: impl Into<Tag>) -> Option<&Tlv> {
        let tag = tag.into();
        if self.tag == tag {
            return Some(self);
        }
        find(self.children(), tag)
    }

    /// Length of the value as encoded (children with their padding).
    pub fn value_len(&self) -> usize {
        match &self.value {
            Value::Primitive(b) => b.len(),
            Value::Constructed(c) => {
                c.iter().map(Tlv::encoded_len).sum::<usize>()
                    + self.padding.as_ref().map_or(0, |p| p.inner.len())
            }
        }
    }

    /// Bytes of this object on the wire (including kept padding).
    pub fn encoded_len(&self) -> usize {
        let vlen = self.value_len();
        let pad = self
            .padding
            .as_ref()
            .map_or(0, |p| p.before.len() + p.after.len());
        pad + self.tag.len() + length_bytes(vlen, self.length_form) + vlen
    }

    /// Appends this object's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        if let Some(p) = &self.padding {
            out.extend_from_slice(&p.before);
        }
        self.tag.write(out);
        let vlen = self.value_len();
        write_length(vlen, self.length_form, out);
        match &self.value {
            Value::Primitive(b) => out.extend_from_slice(b),
            Value::Constructed(c) => {
                for child in c {
                    child.encode_into(out);
                }
                if let Some(p) = &self.padding {
                    out.extend_from_slice(&p.inner);
                }
            }
        }
        if let Some(p) = &self.padding {
            out.extend_from_slice(&p.after);
        }
    }

    /// This object's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }
}

fn minimal_length_bytes(len: usize) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0xFF => 2,
        0x100..=0xFFFF => 3,
        0x1_0000..=0xFF_FFFF => 4,
        _ => 5,
    }
}

fn length_bytes(len: usize, form: LengthForm) -> usize {
    match form {
        LengthForm::Long(n) if (n as usize) <= 4 && fits(len, n) => 1 + n as usize,
        _ => minimal_length_bytes(len),
    }
}

fn fits(len: usize, n: u8) -> bool {
    n >= 1 && (n >= 4 || len < 1usize << (8 * n as u32))
}

fn write_length(len: usize, form: LengthForm, out: &mut Vec<u8>) {
    let n = match form {
        LengthForm::Long(n) if n <= 4 && fits(len, n) => n as usize,
        _ => minimal_length_bytes(len) - 1,
    };
    if n == 0 {
        out.push(len as u8);
    } else {
        out.push(0x80 | n as u8);
        let be = (len as u64).to_be_bytes();
        out.extend_from_slice(&be[8 - n..]);
    }
}

/// The bytes of `items`, in order.
pub fn encode(items: &[Tlv]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(Tlv::encoded_len).sum());
    encode_into(items, &mut out);
    out
}

/// Appends the bytes of `items` to `out`.
pub fn encode_into(items: &[Tlv], out: &mut Vec<u8>) {
    for item in items {
        item.encode_into(out);
    }
}

/// The first object with `tag` in `items`, searching constructed values depth first.
pub fn find(items: &[Tlv], tag: impl Into<Tag>) -> Option<&Tlv> {
    let tag = tag.into();
    for item in items {
        if let Some(found) = item.find(tag) {
            return Some(found);
        }
    }
    None
}

/// What went wrong reading TLV data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlvErrorKind {
    #[error("tag runs past the end")]
    TagTruncated,
    #[error("tag longer than 4 bytes")]
    TagTooLong,
    #[error("length missing (the data ends after the tag)")]
    LengthMissing,
    #[error("length of {needed} bytes runs past the end ({left} bytes left)")]
    LengthTruncated { needed: usize, left: usize },
    #[error("indefinite length (80) is not allowed")]
    IndefiniteLength,
    #[error("length form {0:02X} not supported (expected 00..7F or 81..84)")]
    LengthFormUnsupported(u8),
    #[error("length {len} runs past the end ({left} bytes left)")]
    ValueTruncated { len: usize, left: usize },
    #[error("constructed objects nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// A TLV parse error: where (byte offset from the start of the buffer given to [`parse`]),
/// which tag was being read (when known) and what was wrong.
/// Displayed as "at byte 12, tag 9F26: length 8 runs past the end (4 bytes left)".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlvError {
    pub offset: usize,
    pub tag: Option<Tag>,
    pub kind: TlvErrorKind,
}

impl fmt::Display for TlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tag {
            Some(tag) => write!(f, "at byte {}, tag {}: {}", self.offset, tag, self.kind),
            None => write!(f, "at byte {}: {}", self.offset, self.kind),
        }
    }
}

impl std::error::Error for TlvError {}

fn err(offset: usize, tag: Option<Tag>, kind: TlvErrorKind) -> TlvError {
    TlvError { offset, tag, kind }
}

/// Reads a tag at `bytes[0..]`, whose first byte is at absolute offset `base`.
fn read_tag(bytes: &[u8], base: usize) -> Result<(Tag, usize), TlvError> {
    let first = *bytes
        .first()
        .ok_or_else(|| err(base, None, TlvErrorKind::TagTruncated))?;
    let mut value = first as u32;
    if first & 0x1F != 0x1F {
        return Ok((Tag(value), 1));
    }
    let mut i = 1;
    loop {
        let b = *bytes
            .get(i)
            .ok_or_else(|| err(base, None, TlvErrorKind::TagTruncated))?;
        if i >= 4 {
            return Err(err(base, None, TlvErrorKind::TagTooLong));
        }
        value = (value << 8) | b as u32;
        i += 1;
        if b & 0x80 == 0 {
            return Ok((Tag(value), i));
        }
    }
}

/// Reads a BER length at `bytes[0..]` (absolute offset `base`): (length, form, bytes used).
fn read_length(
    bytes: &[u8],
    base: usize,
    tag: Tag,
) -> Result<(usize, LengthForm, usize), TlvError> {
    let first = *bytes
        .first()
        .ok_or_else(|| err(base, Some(tag), TlvErrorKind::LengthMissing))?;
    if first < 0x80 {
        return Ok((first as usize, LengthForm::Minimal, 1));
    }
    let n = (first & 0x7F) as usize;
    if n == 0 {
        return Err(err(base, Some(tag), TlvErrorKind::IndefiniteLength));
    }
    if n > 4 {
        return Err(err(
            base,
            Some(tag),
            TlvErrorKind::LengthFormUnsupported(first),
        ));
    }
    let rest = bytes.get(1..1 + n).ok_or_else(|| {
        err(
            base,
            Some(tag),
            TlvErrorKind::LengthTruncated {
                needed: n,
                left: bytes.len().saturating_sub(1),
            },
        )
    })?;
    let len = rest.iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
    let form = if minimal_length_bytes(len) == 1 + n {
        LengthForm::Minimal
    } else {
        LengthForm::Long(n as u8)
    };
    Ok((len, form, 1 + n))
}

fn is_padding(b: u8) -> bool {
    b == 0x00 || b == 0xFF
}

/// Parses every object in `bytes` (padding `00`/`FF` between objects tolerated and kept).
pub fn parse(bytes: &[u8]) -> Result<Vec<Tlv>, TlvError> {
    let (items, _trailing) = parse_list(bytes, 0, 0)?;
    Ok(items)
}

/// Parses a list; returns the objects and the padding left over when there is no object
/// to attach it to (a list made only of padding).
fn parse_list(bytes: &[u8], base: usize, depth: usize) -> Result<(Vec<Tlv>, Vec<u8>), TlvError> {
    // EMV objects are rarely under 4 bytes: a capacity that avoids regrowth in practice
    let mut items: Vec<Tlv> = Vec::with_capacity((bytes.len() / 4).min(32));
    let mut pos = 0;
    let mut pad_start = 0;
    while pos < bytes.len() {
        let b = bytes.get(pos).copied().unwrap_or(0);
        if is_padding(b) {
            pos += 1;
            continue;
        }
        let here = bytes.get(pos..).unwrap_or(&[]);
        let (tag, tag_len) = read_tag(here, base + pos)?;
        let after_tag = here.get(tag_len..).unwrap_or(&[]);
        let (len, form, len_len) = read_length(after_tag, base + pos + tag_len, tag)?;
        let value_start = tag_len + len_len;
        let left = here.len().saturating_sub(value_start);
        if len > left {
            return Err(err(
                base + pos,
                Some(tag),
                TlvErrorKind::ValueTruncated { len, left },
            ));
        }
        let value_bytes = here.get(value_start..value_start + len).unwrap_or(&[]);
        let mut padding = Padding::default();
        let mut padded = false;
        if pad_start < pos {
            padding.before = bytes.get(pad_start..pos).unwrap_or(&[]).to_vec();
            padded = true;
        }
        let value = if tag.is_constructed() {
            if depth + 1 >= MAX_DEPTH {
                return Err(err(base + pos, Some(tag), TlvErrorKind::TooDeep));
            }
            let (children, inner) = parse_list(value_bytes, base + pos + value_start, depth + 1)
                .map_err(|mut e| {
                    if e.tag.is_none() {
                        e.tag = Some(tag);
                    }
                    e
                })?;
            padded |= !inner.is_empty();
            padding.inner = inner;
            Value::Constructed(children)
        } else {
            Value::Primitive(value_bytes.to_vec())
        };
        let padding = if padded {
            Some(Box::new(padding))
        } else {
            None
        };
        items.push(Tlv {
            tag,
            value,
            length_form: form,
            padding,
        });
        pos += value_start + len;
        pad_start = pos;
    }
    let trailing = bytes.get(pad_start..).unwrap_or(&[]).to_vec();
    if !trailing.is_empty() {
        if let Some(last) = items.last_mut() {
            last.padding.get_or_insert_with(Default::default).after = trailing;
            return Ok((items, Vec::new()));
        }
    }
    Ok((items, trailing))
}

/// Parses a data object list (PDOL, CDOL1, DDOL, ...): tags each followed by a length,
/// no values. Padding is not allowed in a DOL.
pub fn parse_dol(bytes: &[u8]) -> Result<Vec<(Tag, usize)>, TlvError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let here = bytes.get(pos..).unwrap_or(&[]);
        let (tag, tag_len) = read_tag(here, pos)?;
        let (len, _form, len_len) =
            read_length(here.get(tag_len..).unwrap_or(&[]), pos + tag_len, tag)?;
        out.push((tag, len));
        pos += tag_len + len_len;
    }
    Ok(out)
}

/// Encodes a data object list (minimal length forms).
pub fn encode_dol(items: &[(Tag, usize)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, len) in items {
        tag.write(&mut out);
        write_length(*len, LengthForm::Minimal, &mut out);
    }
    out
}

/// Entry points for the cargo-fuzz targets (fuzz/fuzz_targets/tlv_*.rs) and the tests that
/// replay their corpora.
pub mod fuzz {
    /// Parses arbitrary bytes; when that succeeds, checks the byte-exact round trip.
    /// [`super::TlvList`] accepts exactly what `parse` accepts, with the same error, and
    /// its in-place lookups agree with [`super::find`] on the parsed tree.
    pub fn parse(data: &[u8]) {
        match (
            super::parse(data),
            super::TlvList::from_bytes(data.to_vec()),
        ) {
            (Ok(items), Ok(list)) => {
                assert_eq!(list.items(), items, "TlvList::items differs from parse");
                let mut tags = Vec::new();
                collect_tags(&items, &mut tags);
                for tag in tags {
                    assert_eq!(
                        list.value(tag),
                        super::find(&items, tag).and_then(super::Tlv::bytes),
                        "TlvList::value({tag}) differs from find"
                    );
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "TlvList and parse give different errors"),
            (a, b) => panic!("parse {:?} but TlvList {:?}", a.is_ok(), b.is_ok()), // ok: fuzz invariant
        }
        if let Ok(items) = super::parse(data) {
            let again = super::encode(&items);
            if items.is_empty() {
                assert!(
                    data.iter().all(|b| *b == 0 || *b == 0xFF),
                    "no objects but not only padding"
                );
            } else {
                assert_eq!(again, data, "encode(parse(x)) != x");
            }
            assert_eq!(super::parse(&again).as_ref(), Ok(&items));
        }
        if let Ok(dol) = super::parse_dol(data) {
            let again = super::encode_dol(&dol);
            assert_eq!(super::parse_dol(&again).as_ref(), Ok(&dol));
        }
    }

    fn collect_tags(items: &[super::Tlv], out: &mut Vec<super::Tag>) {
        for item in items {
            out.push(item.tag);
            collect_tags(item.children(), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn tags_display_as_upper_hex_and_know_their_class() {
        assert_eq!(Tag(0x9F26).to_string(), "9F26");
        assert_eq!(Tag(0x5A).to_string(), "5A");
        assert_eq!(Tag(0x0A).to_string(), "0A");
        assert_eq!(Tag(0xDF8101).to_string(), "DF8101");
        assert!(Tag(0x6F).is_constructed());
        assert!(Tag(0x77).is_constructed());
        assert!(Tag(0xBF0C).is_constructed());
        assert!(!Tag(0x9F26).is_constructed());
        assert_eq!(Tag(0x9F26).class(), TagClass::ContextSpecific);
        assert_eq!(Tag(0x5F2A).class(), TagClass::Application);
        assert_eq!(Tag(0xDF8101).class(), TagClass::Private);
        assert_eq!(Tag(0x04).class(), TagClass::Universal);
        assert_eq!("9f26".parse::<Tag>(), Ok(Tag(0x9F26)));
        assert!("9F".parse::<Tag>().is_err());
        assert!("9F2601".parse::<Tag>().is_err());
        assert_eq!(
            Tag::from_bytes(&[0xDF, 0x81, 0x01, 0x99]).unwrap(),
            (Tag(0xDF8101), 3)
        );
        assert_eq!(Tag(0xDF8101).to_bytes(), vec![0xDF, 0x81, 0x01]);
    }

    #[test]
    fn parses_a_gpo_response_template_77() {
        // Visa-style GPO answer: AIP, AFL, ATC, IAD, cryptogram, CID
        let bytes = h(
            "77 28 82 02 20 00 94 04 08 01 01 00 9F 36 02 00 01 9F 26 08 12 34 56 78 9A BC DE F0 \
                       9F 27 01 80 9F 10 07 06 01 0A 03 A0 00 00",
        );
        let items = parse(&bytes).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].tag, Tag(0x77));
        assert_eq!(items[0].children().len(), 6);
        assert_eq!(
            find(&items, Tag(0x9F26)).unwrap().bytes().unwrap(),
            &h("123456789ABCDEF0")[..]
        );
        assert_eq!(
            find(&items, 0x94).unwrap().bytes().unwrap(),
            &h("08010100")[..]
        );
        assert!(find(&items, 0x9F37).is_none());
        assert_eq!(encode(&items), bytes);
    }

    #[test]
    fn parses_an_fci_6f_with_nested_templates() {
        // SELECT PPSE / application FCI: 6F { 84, A5 { 50, 87, 9F38, BF0C { 9F4D } } }
        let bytes = h(
            "6F 2C 84 07 A0 00 00 00 03 10 10 A5 21 50 0B 56 49 53 41 20 43 52 45 44 49 54 \
                       87 01 01 9F 38 06 9F 66 04 9F 02 06 BF 0C 05 9F 4D 02 0B 0A",
        );
        let items = parse(&bytes).unwrap();
        let fci = &items[0];
        assert_eq!(fci.tag, Tag(0x6F));
        let a5 = fci.find(0xA5).unwrap();
        assert_eq!(a5.children().len(), 4);
        assert_eq!(fci.find(0x50).unwrap().bytes().unwrap(), b"VISA CREDIT");
        assert_eq!(fci.find(0x9F4D).unwrap().bytes().unwrap(), &[0x0B, 0x0A]);
        let pdol = parse_dol(fci.find(0x9F38).unwrap().bytes().unwrap()).unwrap();
        assert_eq!(pdol, vec![(Tag(0x9F66), 4), (Tag(0x9F02), 6)]);
        assert_eq!(encode(&items), bytes);
    }

    #[test]
    fn non_minimal_lengths_and_padding_round_trip_exactly() {
        let bytes = h("00 00 9F 26 81 08 11 22 33 44 55 66 77 88 FF 5A 82 00 02 41 11 00");
        let items = parse(&bytes).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].length_form(), LengthForm::Long(1));
        assert_eq!(items[1].length_form(), LengthForm::Long(2));
        assert_eq!(items[1].bytes().unwrap(), &[0x41, 0x11]);
        assert_eq!(encode(&items), bytes);
        // a constructed value made only of padding keeps it
        let only_pad = h("70 02 00 00");
        assert_eq!(encode(&parse(&only_pad).unwrap()), only_pad);
    }

    #[test]
    fn long_lengths_are_written_in_the_shortest_form_by_default() {
        let t = Tlv::primitive(0x9F10, vec![0u8; 200]);
        let b = t.to_bytes();
        assert_eq!(&b[..4], &[0x9F, 0x10, 0x81, 0xC8]);
        assert_eq!(b.len(), t.encoded_len());
        let t = Tlv::primitive(0x71, vec![0u8; 300]);
        assert_eq!(&t.to_bytes()[..4], &[0x71, 0x82, 0x01, 0x2C]);
        // a kept long form that the value outgrew falls back to minimal
        let t = Tlv::primitive(0x5A, vec![0u8; 300]).with_length_form(LengthForm::Long(1));
        assert_eq!(&t.to_bytes()[..4], &[0x5A, 0x82, 0x01, 0x2C]);
        assert_eq!(t.to_bytes().len(), t.encoded_len());
    }

    #[test]
    fn builds_nested_objects() {
        let t = Tlv::constructed(
            0x77,
            vec![
                Tlv::primitive(0x9F27, vec![0x80]),
                Tlv::constructed(0xBF0C, vec![Tlv::primitive(0x5F2D, b"en".to_vec())]),
            ],
        );
        let b = t.to_bytes();
        assert_eq!(b, h("77 0C 9F 27 01 80 BF 0C 05 5F 2D 02 65 6E"));
        assert_eq!(parse(&b).unwrap(), vec![t]);
    }

    #[test]
    fn errors_name_offset_tag_and_what_was_wrong() {
        let e = parse(&h("5A 02 41 11 9F 26 08 11 22 33 44")).unwrap_err();
        assert_eq!(e.offset, 4);
        assert_eq!(e.tag, Some(Tag(0x9F26)));
        assert_eq!(
            e.to_string(),
            "at byte 4, tag 9F26: length 8 runs past the end (4 bytes left)"
        );
        let e = parse(&h("9F")).unwrap_err();
        assert_eq!(e.to_string(), "at byte 0: tag runs past the end");
        let e = parse(&h("9F 26")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "at byte 2, tag 9F26: length missing (the data ends after the tag)"
        );
        let e = parse(&h("5A 80 00")).unwrap_err();
        assert_eq!(e.kind, TlvErrorKind::IndefiniteLength);
        let e = parse(&h("5A 82 01")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "at byte 1, tag 5A: length of 2 bytes runs past the end (1 bytes left)"
        );
        let e = parse(&h("9F FF FF FF 01 00")).unwrap_err();
        assert_eq!(e.kind, TlvErrorKind::TagTooLong);
        // nested: the offset is absolute
        let e = parse(&h("77 05 9F 26 08 11 22")).unwrap_err();
        assert_eq!(e.offset, 2);
        assert_eq!(e.tag, Some(Tag(0x9F26)));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut bytes = Vec::new();
        for _ in 0..40 {
            bytes.insert(0, 0x02);
            bytes.insert(0, 0x70);
        }
        // lengths are wrong but depth is hit first
        let e = parse(&bytes).unwrap_err();
        assert!(matches!(
            e.kind,
            TlvErrorKind::TooDeep | TlvErrorKind::ValueTruncated { .. }
        ));
    }

    #[test]
    fn dol_round_trips() {
        let dol = h("9F 02 06 9F 03 06 9F 1A 02 95 05 5F 2A 02 9A 03 9C 01 9F 37 04");
        let items = parse_dol(&dol).unwrap();
        assert_eq!(items.len(), 8);
        assert_eq!(items[0], (Tag(0x9F02), 6));
        assert_eq!(encode_dol(&items), dol);
        let e = parse_dol(&h("9F 02")).unwrap_err();
        assert_eq!(e.offset, 2);
    }

    #[test]
    fn debug_shows_tags_and_hex() {
        let t = Tlv::primitive(0x9F27, vec![0x80]);
        assert_eq!(format!("{t:?}"), "9F27 Primitive(80)");
    }
}
