//! Dialects as data: the YAML spec format, compiled once into a field table.
//!
//! # The spec format
//!
//! ```yaml
//! name: my-acquirer                # how the dialect is called in logs and --spec
//! description: "what it is"
//! framing:                         # the default framing on TCP (see `Framing`)
//!   length: binary2                # binary2 | ascii4 | bcd2 | none
//!   header_len: 5                  # bytes before the MTI (0 = none)
//!   header: tpdu                   # optional: the header is a TPDU (answers swap addresses)
//!   trailer_len: 0                 # bytes after the message
//!   max_len: 65536                 # largest frame accepted
//! mti: bcd                         # ascii (4 bytes) | bcd (2 bytes) | ebcdic (4 bytes)
//! bitmap: binary                   # binary (8 bytes each) | hex (16 hex-ASCII characters)
//! tertiary_bitmap: false           # true: bit 65 announces a third bitmap (fields 129-192)
//! fields:
//!   2:  {name: PAN, encoding: bcd, length: LL, prefix: bcd, max: 19, pad: right, pad_char: F, sensitivity: pan}
//!   3:  {name: Processing Code, encoding: bcd, max: 6, type: n}
//!   41: {name: Terminal ID, encoding: ascii, max: 8, pad: right, pad_char: " "}
//!   48:                            # a composite of positional subfields
//!     name: Additional Data
//!     length: LLL
//!     max: 999
//!     subfields:
//!       1: {name: Kind, encoding: ascii, max: 2}
//!       2: {name: Text, encoding: ascii, length: LL, max: 40}
//!   55: {name: ICC Data, encoding: binary, length: LLL, prefix: bcd, max: 999, tlv: true, sensitivity: emv}
//! ```
//!
//! Field keys:
//! - `encoding`: `ascii` (default; bytes 00-7F), `latin1`, `ebcdic` (code page 500),
//!   `bcd` (packed digits, two per byte; nibbles A-F read as letters), `binary`, `hex`
//!   (binary value written as upper-case hex-ASCII; lower case is accepted on input).
//! - `length`: `fixed` (default; the value is exactly `max` long), `L`, `LL`, `LLL`, `LLLL`.
//! - `prefix`: how a variable length is written: `ascii` (default; one digit per L),
//!   `ebcdic`, `bcd` (two digits per byte: LL = 1 byte, LLL/LLLL = 2 bytes), `binary`
//!   (big-endian: L/LL = 1 byte, LLL/LLLL = 2 bytes).
//! - `max`: the fixed length, or the largest variable length, in the field's unit.
//! - `count`: the unit of `max` and of the prefix: `digits` (BCD digits; the default for
//!   `bcd`) or `bytes` (bytes on the wire; the default otherwise. For `hex` fields a byte
//!   on the wire is one hex character).
//! - `pad` (`left`/`right`) and `pad_char`: BCD fields with an odd number of digits get a
//!   pad nibble (default `left`, `0`); the pad must match on input. Fixed text fields are
//!   padded to `max` on pack when a pad is given (input is kept as is).
//! - `type`: `n` makes the codec check digits; `a`, `an`, `ans`, `anp`, `ns`, `z`, `b` are
//!   documentation.
//! - `sensitivity`: `none` (default), `pan`, `track1`, `track2`, `track3`, `pin_block`,
//!   `key`, `mac`, `cvv`, `emv`: how the value is masked in logs, journals and JSON.
//! - `tlv: true`: the (binary or hex) value is BER-TLV; unknown tags are kept.
//! - `subfields`: positional subfields numbered 1..n, each a field of its own; the outer
//!   length counts bytes on the wire. Trailing subfields may be absent.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::SpecError;
use crate::framing::{Framing, LengthPrefix};
use crate::message::Sensitivity;

/// How a field's value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    Ascii,
    Latin1,
    Ebcdic,
    Bcd,
    Binary,
    Hex,
}

/// How a variable length is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixEncoding {
    Ascii,
    Ebcdic,
    Bcd,
    Binary,
}

/// The unit lengths count in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Count {
    Bytes,
    #[serde(alias = "nibbles")]
    Digits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Left,
    Right,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum LengthName {
    #[serde(rename = "fixed")]
    Fixed,
    #[serde(rename = "L", alias = "l")]
    L,
    #[serde(rename = "LL", alias = "ll")]
    LL,
    #[serde(rename = "LLL", alias = "lll")]
    LLL,
    #[serde(rename = "LLLL", alias = "llll")]
    LLLL,
}

/// MTI on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MtiEncoding {
    #[default]
    Ascii,
    Bcd,
    Ebcdic,
}

/// Bitmaps on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BitmapEncoding {
    #[default]
    Binary,
    Hex,
}

/// What the bytes before the MTI are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderKind {
    /// Opaque bytes, echoed as they are.
    #[default]
    Opaque,
    /// A 5-byte TPDU `60 DDDD SSSS`: answers swap destination and source.
    Tpdu,
}

/// What a field's value is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Plain,
    Tlv,
    Composite(Vec<FieldSpec>),
}

/// A pad: side and character (a nibble 0-15 for BCD, a byte for text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pad {
    pub side: Side,
    pub ch: u8,
}

/// One field of a dialect, compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: String,
    pub encoding: Encoding,
    /// 0 = fixed, else the number of L's.
    pub length_digits: u8,
    pub prefix: PrefixEncoding,
    pub max: usize,
    pub count: Count,
    pub pad: Option<Pad>,
    pub numeric: bool,
    pub sensitivity: Sensitivity,
    pub format: Format,
}

impl FieldSpec {
    pub fn is_fixed(&self) -> bool {
        self.length_digits == 0
    }

    /// Bytes of the length prefix on the wire.
    pub fn prefix_len(&self) -> usize {
        let d = self.length_digits as usize;
        if d == 0 {
            return 0;
        }
        match self.prefix {
            PrefixEncoding::Ascii | PrefixEncoding::Ebcdic => d,
            PrefixEncoding::Bcd => d.div_ceil(2),
            PrefixEncoding::Binary => {
                if d <= 2 {
                    1
                } else {
                    2
                }
            }
        }
    }

    /// Largest length the prefix can hold.
    pub fn prefix_capacity(&self) -> usize {
        let d = self.length_digits as u32;
        match self.prefix {
            _ if d == 0 => usize::MAX,
            PrefixEncoding::Binary if d <= 2 => 255,
            PrefixEncoding::Binary => 65535,
            _ => 10usize.pow(d) - 1,
        }
    }

    /// A one-line description of the layout, for docs and `--format table`.
    pub fn layout(&self) -> String {
        let len = match self.length_digits {
            0 => "fixed".to_string(),
            n => format!("{} ({:?} prefix)", "L".repeat(n as usize), self.prefix).to_lowercase(),
        };
        format!("{:?} {len} max {}", self.encoding, self.max).to_lowercase()
    }
}

/// A dialect: framing defaults, MTI and bitmap encodings and the field table.
#[derive(Clone, Debug)]
pub struct Spec {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) framing: Framing,
    pub(crate) header: HeaderKind,
    pub(crate) mti: MtiEncoding,
    pub(crate) bitmap: BitmapEncoding,
    pub(crate) tertiary: bool,
    /// Index = field number (0..=192); 0, 1 and (with a tertiary bitmap) 65 stay empty.
    pub(crate) fields: Vec<Option<FieldSpec>>,
}

const BUILTINS: &[(&str, &str)] = &[
    (
        "iso87ascii",
        include_str!("../../../fixtures/specs/iso87ascii.yaml"),
    ),
    (
        "iso87binary",
        include_str!("../../../fixtures/specs/iso87binary.yaml"),
    ),
    (
        "iso93ascii",
        include_str!("../../../fixtures/specs/iso93ascii.yaml"),
    ),
    (
        "iso87binary-tpdu",
        include_str!("../../../fixtures/specs/iso87binary-tpdu.yaml"),
    ),
];

const BUILTIN_NAMES: &[&str] = &[
    "iso87ascii",
    "iso87binary",
    "iso93ascii",
    "iso87binary-tpdu",
];

impl Spec {
    /// A dialect shipped with poslab (see [`Spec::builtin_names`]).
    /// Compiled once per process, then cloned.
    pub fn builtin(name: &str) -> Option<Spec> {
        static COMPILED: std::sync::OnceLock<Vec<Spec>> = std::sync::OnceLock::new();
        COMPILED
            .get_or_init(|| {
                BUILTINS
                    .iter()
                    .filter_map(|(n, text)| Spec::from_yaml(text, &format!("builtin:{n}")).ok())
                    .collect()
            })
            .iter()
            .find(|s| s.name == name)
            .cloned()
    }

    pub fn builtin_names() -> &'static [&'static str] {
        BUILTIN_NAMES
    }

    /// The YAML text of a built-in dialect (a starting point for your own).
    pub fn builtin_yaml(name: &str) -> Option<&'static str> {
        BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// A built-in name, else a path to a YAML spec file.
    pub fn load(name_or_path: &str) -> Result<Spec, SpecError> {
        if let Some(spec) = Spec::builtin(name_or_path) {
            return Ok(spec);
        }
        let text = std::fs::read_to_string(name_or_path).map_err(|e| SpecError {
            origin: name_or_path.to_string(),
            location: None,
            message: format!(
                "not a built-in spec ({}) and not a readable file: {e}",
                BUILTIN_NAMES.join(", ")
            ),
        })?;
        Spec::from_yaml(&text, name_or_path)
    }

    /// Parses and compiles a YAML spec; `origin` names the file in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Spec, SpecError> {
        let raw: RawSpec = serde_saphyr::from_str(text).map_err(|e| SpecError {
            origin: origin.to_string(),
            location: e.location().and_then(|l| {
                if l.line() == 0 {
                    None
                } else {
                    Some((l.line(), l.column()))
                }
            }),
            message: yaml_message(&e),
        })?;
        compile(raw, origin)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// The dialect's default framing (length prefix, header and trailer lengths).
    pub fn framing(&self) -> &Framing {
        &self.framing
    }

    /// What the header bytes are (a TPDU is swapped in answers).
    pub fn header_kind(&self) -> HeaderKind {
        self.header
    }

    pub fn mti_encoding(&self) -> MtiEncoding {
        self.mti
    }

    pub fn bitmap_encoding(&self) -> BitmapEncoding {
        self.bitmap
    }

    pub fn has_tertiary_bitmap(&self) -> bool {
        self.tertiary
    }

    pub fn field(&self, de: u16) -> Option<&FieldSpec> {
        self.fields.get(de as usize).and_then(Option::as_ref)
    }

    /// Defined field numbers, ascending.
    pub fn field_numbers(&self) -> impl Iterator<Item = u16> + '_ {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_some())
            .map(|(i, _)| i as u16)
    }

    /// How the field is masked; fields the spec does not define use the standard classes.
    pub fn field_sensitivity(&self, de: u16) -> Sensitivity {
        match self.field(de) {
            Some(f) => f.sensitivity,
            None => Sensitivity::standard(de),
        }
    }

    pub fn field_name(&self, de: u16) -> Option<&str> {
        self.field(de).map(|f| f.name.as_str())
    }

    /// The answer's header for a request's header: a TPDU gets its addresses swapped,
    /// other headers are echoed.
    pub fn answer_header(&self, request_header: &[u8]) -> Vec<u8> {
        match self.header {
            HeaderKind::Tpdu => crate::framing::tpdu_swap(request_header),
            HeaderKind::Opaque => request_header.to_vec(),
        }
    }
}

/// serde-saphyr's message without its rendered snippet (we add origin:line:col ourselves).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let first = full.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // drop a leading "line X column Y: " or a trailing " at line X column Y" that repeat
    // the location
    let first = match first.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map_or(first, |(_, m)| m),
        None => first,
    };
    match first.find(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    framing: RawFraming,
    #[serde(default)]
    mti: MtiEncoding,
    #[serde(default)]
    bitmap: BitmapEncoding,
    #[serde(default)]
    tertiary_bitmap: bool,
    fields: BTreeMap<u16, Spanned<RawField>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFraming {
    #[serde(default)]
    length: Option<LengthPrefix>,
    #[serde(default)]
    header_len: usize,
    #[serde(default)]
    header: Option<HeaderKind>,
    #[serde(default)]
    trailer_len: usize,
    #[serde(default)]
    max_len: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    encoding: Option<Encoding>,
    #[serde(default)]
    length: Option<LengthName>,
    #[serde(default)]
    prefix: Option<PrefixEncoding>,
    max: usize,
    #[serde(default)]
    count: Option<Count>,
    #[serde(default)]
    pad: Option<Side>,
    #[serde(default)]
    pad_char: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    sensitivity: Option<Sensitivity>,
    #[serde(default)]
    tlv: bool,
    #[serde(default)]
    subfields: Option<BTreeMap<u16, Spanned<RawField>>>,
}

const TYPES: &[&str] = &[
    "n", "a", "an", "ans", "anp", "as", "ns", "s", "z", "b", "x+n", "ans-b",
];

fn compile(raw: RawSpec, origin: &str) -> Result<Spec, SpecError> {
    let at = |loc: &serde_saphyr::Location, message: String| SpecError {
        origin: origin.to_string(),
        location: Some((loc.line(), loc.column())),
        message,
    };
    let mut fields: Vec<Option<FieldSpec>> = vec![None; 193];
    let max_de = if raw.tertiary_bitmap { 192 } else { 128 };
    for (de, spanned) in raw.fields {
        let loc = &spanned.referenced;
        if de < 2 || de > max_de {
            return Err(at(
                loc,
                format!(
                    "field {de}: expected a field number in 2..={max_de} (bitmaps are not fields{})",
                    if raw.tertiary_bitmap { "" } else { "; 129-192 need tertiary_bitmap: true" }
                ),
            ));
        }
        if de == 65 && raw.tertiary_bitmap {
            return Err(at(
                loc,
                "field 65: with tertiary_bitmap: true, bit 65 announces the third bitmap and is not a field".into(),
            ));
        }
        let f = compile_field(&spanned.value, &format!("field {de}")).map_err(|m| at(loc, m))?;
        if let Some(slot) = fields.get_mut(de as usize) {
            *slot = Some(f);
        }
    }
    let mut framing = Framing::new(raw.framing.length.unwrap_or(LengthPrefix::Binary2));
    framing.header_len = raw.framing.header_len;
    framing.trailer_len = raw.framing.trailer_len;
    if let Some(max) = raw.framing.max_len {
        framing.max_len = max;
    }
    let header = raw.framing.header.unwrap_or_default();
    if header == HeaderKind::Tpdu && framing.header_len != 5 {
        return Err(SpecError {
            origin: origin.to_string(),
            location: None,
            message: format!(
                "framing: header: tpdu needs header_len: 5, found {}",
                framing.header_len
            ),
        });
    }
    Ok(Spec {
        name: raw.name,
        description: raw.description,
        framing,
        header,
        mti: raw.mti,
        bitmap: raw.bitmap,
        tertiary: raw.tertiary_bitmap,
        fields,
    })
}

fn compile_field(raw: &RawField, what: &str) -> Result<FieldSpec, String> {
    let length_digits = match raw.length.unwrap_or(LengthName::Fixed) {
        LengthName::Fixed => 0,
        LengthName::L => 1,
        LengthName::LL => 2,
        LengthName::LLL => 3,
        LengthName::LLLL => 4,
    };
    let format = match (&raw.subfields, raw.tlv) {
        (Some(_), true) => {
            return Err(format!(
                "{what}: expected either subfields or tlv: true, found both"
            ))
        }
        (Some(subs), false) => {
            let mut out = Vec::with_capacity(subs.len());
            for (i, (n, sub)) in subs.iter().enumerate() {
                if *n as usize != i + 1 {
                    return Err(format!(
                        "{what}: expected subfields numbered 1, 2, 3... in order, found {n} where {} belongs",
                        i + 1
                    ));
                }
                let f =
                    compile_field(&sub.value, &format!("{what} subfield {n}")).map_err(|m| {
                        format!(
                            "{m} (line {}, column {})",
                            sub.referenced.line(),
                            sub.referenced.column()
                        )
                    })?;
                if matches!(f.format, Format::Composite(_)) {
                    return Err(format!(
                        "{what} subfield {n}: subfields cannot have subfields of their own"
                    ));
                }
                out.push(f);
            }
            if out.is_empty() {
                return Err(format!("{what}: expected at least one subfield"));
            }
            Format::Composite(out)
        }
        (None, true) => Format::Tlv,
        (None, false) => Format::Plain,
    };
    let encoding = match (&format, raw.encoding) {
        (Format::Composite(_), None | Some(Encoding::Binary)) => Encoding::Binary,
        (Format::Composite(_), Some(e)) => {
            return Err(format!(
                "{what}: a composite's length counts bytes on the wire; leave out encoding (found {e:?})"
            ))
        }
        (Format::Tlv, Some(e @ (Encoding::Binary | Encoding::Hex))) => e,
        (Format::Tlv, None) => Encoding::Binary,
        (Format::Tlv, Some(e)) => {
            return Err(format!(
                "{what}: expected encoding binary or hex for a tlv field, found {e:?}"
            ))
        }
        (Format::Plain, e) => e.unwrap_or(Encoding::Ascii),
    };
    let count = match (raw.count, encoding) {
        (Some(c), Encoding::Bcd) => c,
        (None, Encoding::Bcd) => Count::Digits,
        (Some(Count::Digits), Encoding::Hex) => Count::Bytes,
        (Some(Count::Digits), e) => {
            return Err(format!(
                "{what}: count: digits is for bcd (and hex) fields, found encoding {e:?}"
            ))
        }
        _ => Count::Bytes,
    };
    let numeric = match raw.kind.as_deref() {
        None => false,
        Some(t) if TYPES.contains(&t) => t == "n",
        Some(t) => {
            return Err(format!(
                "{what}: expected type one of {}, found {t:?}",
                TYPES.join(", ")
            ))
        }
    };
    let pad = match (raw.pad, raw.pad_char.as_deref(), encoding) {
        (side, ch, Encoding::Bcd) => {
            let nibble = match ch {
                None => 0,
                Some(c) if c.len() == 1 && c.chars().all(|c| c.is_ascii_hexdigit()) => {
                    u8::from_str_radix(c, 16).unwrap_or(0)
                }
                Some(c) => {
                    return Err(format!(
                        "{what}: expected pad_char to be one hex digit (0-F) for a bcd field, found {c:?}"
                    ))
                }
            };
            Some(Pad {
                side: side.unwrap_or(Side::Left),
                ch: nibble,
            })
        }
        (None, None, _) => None,
        (side, ch, Encoding::Ascii | Encoding::Latin1 | Encoding::Ebcdic) => {
            let ch = match ch {
                Some(c) if c.chars().count() == 1 && c.is_ascii() => c.as_bytes()[0],
                Some(c) => {
                    return Err(format!(
                        "{what}: expected pad_char to be one ASCII character, found {c:?}"
                    ))
                }
                None => {
                    if numeric {
                        b'0'
                    } else {
                        b' '
                    }
                }
            };
            if length_digits != 0 {
                return Err(format!(
                    "{what}: pad applies to fixed-length text fields (variable fields are never padded)"
                ));
            }
            Some(Pad {
                side: side.unwrap_or(if numeric { Side::Left } else { Side::Right }),
                ch,
            })
        }
        (_, _, e) => {
            return Err(format!(
                "{what}: pad applies to bcd and text fields, found encoding {e:?}"
            ))
        }
    };
    let f = FieldSpec {
        name: raw.name.clone().unwrap_or_default(),
        encoding,
        length_digits,
        prefix: raw.prefix.unwrap_or(PrefixEncoding::Ascii),
        max: raw.max,
        count,
        pad,
        numeric,
        sensitivity: raw.sensitivity.unwrap_or_default(),
        format,
    };
    if f.max == 0 {
        return Err(format!("{what}: expected max of at least 1, found 0"));
    }
    if !f.is_fixed() && f.max > f.prefix_capacity() {
        return Err(format!(
            "{what}: max {} does not fit a {} {:?} length prefix (at most {})",
            f.max,
            "L".repeat(length_digits as usize),
            f.prefix,
            f.prefix_capacity()
        )
        .replace("Binary", "binary")
        .replace("Bcd", "bcd")
        .replace("Ascii", "ascii")
        .replace("Ebcdic", "ebcdic"));
    }
    if f.encoding == Encoding::Hex && f.is_fixed() && !f.max.is_multiple_of(2) {
        return Err(format!(
            "{what}: a fixed hex field counts characters on the wire and needs an even max, found {}",
            f.max
        ));
    }
    if f.encoding == Encoding::Bcd
        && f.count == Count::Bytes
        && f.pad.is_some()
        && raw.pad.is_some()
    {
        return Err(format!(
            "{what}: a bcd field counted in bytes has no pad nibble"
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_compiles() {
        for name in Spec::builtin_names() {
            let text = Spec::builtin_yaml(name).unwrap();
            let spec = Spec::from_yaml(text, name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(spec.name(), *name);
            assert!(spec.field(2).is_some(), "{name}");
            assert_eq!(spec.field_sensitivity(2), Sensitivity::Pan);
            assert_eq!(spec.field_sensitivity(55), Sensitivity::Emv);
        }
        let tpdu = Spec::builtin("iso87binary-tpdu").unwrap();
        assert_eq!(tpdu.framing().header_len, 5);
        assert_eq!(tpdu.header_kind(), HeaderKind::Tpdu);
        assert_eq!(tpdu.mti_encoding(), MtiEncoding::Bcd);
        assert!(Spec::builtin("nope").is_none());
    }

    #[test]
    fn yaml_errors_name_the_file_line_and_what_was_expected() {
        let e = Spec::from_yaml(
            "name: x\nfields:\n  2: {encoding: ascii, length: LL, max: 19}\n  3: {encoding: asci, max: 6}\n",
            "my.yaml",
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("my.yaml:4:"), "{s}");
        assert!(s.contains("asci"), "{s}");

        let e = Spec::from_yaml(
            "name: x\nfields:\n  2: {encoding: ascii, length: LL, max: 190}\n",
            "my.yaml",
        )
        .unwrap_err();
        assert_eq!(e.location.map(|l| l.0), Some(3));
        assert!(
            e.to_string()
                .contains("field 2: max 190 does not fit a LL ascii length prefix (at most 99)"),
            "{e}"
        );

        let e = Spec::from_yaml("name: x\nfields:\n  1: {max: 8}\n", "f.yaml").unwrap_err();
        assert!(
            e.to_string().contains("expected a field number in 2..=128"),
            "{e}"
        );

        let e = Spec::from_yaml("name: x\nfieldz: {}\n", "f.yaml").unwrap_err();
        assert!(e.to_string().starts_with("f.yaml:"), "{e}");
    }

    #[test]
    fn composite_and_pad_rules() {
        let spec = Spec::from_yaml(
            "name: x\nfields:\n  48:\n    length: LLL\n    max: 999\n    subfields:\n      1: {encoding: ascii, max: 2}\n      2: {encoding: ascii, length: LL, max: 40}\n  41: {max: 8, pad: right}\n",
            "c.yaml",
        )
        .unwrap();
        match &spec.field(48).unwrap().format {
            Format::Composite(s) => assert_eq!(s.len(), 2),
            f => panic!("{f:?}"),
        }
        assert_eq!(
            spec.field(41).unwrap().pad,
            Some(Pad {
                side: Side::Right,
                ch: b' '
            })
        );
        let e = Spec::from_yaml(
            "name: x\nfields:\n  48:\n    max: 9\n    subfields:\n      2: {max: 2}\n",
            "c.yaml",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("expected subfields numbered 1, 2, 3"),
            "{e}"
        );
    }
}
