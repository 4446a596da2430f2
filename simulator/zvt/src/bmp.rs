//! BMPs ("bitmaps"): the fields of a ZVT data block. Each is a one-byte number followed by
//! a value whose size the number fixes: fixed length, LLVAR/LLLVAR (two or three length
//! digits `F0`..`F9`), or the TLV container `06` (BER length). A field whose number the
//! table does not know cannot be measured, so it and everything after it is kept raw
//! ([`Field::Unparsed`]): the data still round-trips byte for byte.

use std::fmt;

use poslab_sensitive::{mask_digit_runs, mask_pan, Pan};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::codes::ResultCode;
use crate::ZvtError;

/// How a BMP's value is sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Fixed(usize),
    /// Two length digits (`F0`..`F9` each), up to 99 bytes.
    Llvar,
    /// Three length digits, up to 999 bytes.
    Lllvar,
    /// BER length: `00`..`7F`, `81 xx` or `82 xx xx` (the TLV container `06`).
    Tlv,
}

/// How a value is shown (and whether it is card data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bcd,
    Ascii,
    Binary,
    Pan,
    Secret(&'static str),
    Tlv,
}

/// The BMPs this crate knows: number, name, format, kind.
fn spec(number: u8) -> Option<(&'static str, Format, Kind)> {
    use Format::*;
    use Kind::*;
    Some(match number {
        0x01 => ("timeout", Fixed(1), Binary),
        0x02 => ("max status infos", Fixed(1), Binary),
        0x03 => ("service byte", Fixed(1), Binary),
        0x04 => ("amount", Fixed(6), Bcd),
        0x05 => ("pump number", Fixed(1), Binary),
        0x06 => ("tlv container", Format::Tlv, Kind::Tlv),
        0x0B => ("trace number", Fixed(3), Bcd),
        0x0C => ("time", Fixed(3), Bcd),
        0x0D => ("date", Fixed(2), Bcd),
        0x0E => ("expiry date", Fixed(2), Bcd),
        0x17 => ("card sequence number", Fixed(2), Bcd),
        0x19 => ("payment type", Fixed(1), Binary),
        0x22 => ("pan", Llvar, Pan),
        0x23 => ("track 2", Llvar, Secret("track2")),
        0x24 => ("track 3", Lllvar, Secret("track3")),
        0x27 => ("result code", Fixed(1), Binary),
        0x29 => ("terminal id", Fixed(4), Bcd),
        0x2A => ("vu number", Fixed(15), Ascii),
        0x2D => ("track 1", Llvar, Secret("track1")),
        0x2E => ("sync chip data", Lllvar, Secret("chip data")),
        0x37 => ("original trace number", Fixed(3), Bcd),
        0x3A => ("cvv", Fixed(2), Secret("cvv")),
        0x3B => ("authorisation attribute", Fixed(8), Ascii),
        0x3C => ("additional text", Lllvar, Ascii),
        0x3D => ("password", Fixed(3), Secret("password")),
        0x49 => ("currency code", Fixed(2), Bcd),
        0x60 => ("single amounts", Lllvar, Binary),
        0x87 => ("receipt number", Fixed(2), Bcd),
        0x88 => ("turnover number", Fixed(3), Bcd),
        0x8A => ("card type", Fixed(1), Binary),
        0x8B => ("card name", Llvar, Ascii),
        0x8C => ("card type id", Fixed(1), Binary),
        0x92 => ("additional ec-cash data", Lllvar, Binary),
        0x9A => ("geldkarte data", Lllvar, Binary),
        0xA0 => ("result code as", Fixed(1), Binary),
        0xA7 => ("chip data", Llvar, Secret("chip data")),
        0xAA => ("date yymmdd", Fixed(3), Bcd),
        0xAF => ("ef info", Lllvar, Binary),
        0xBA => ("aid parameter", Fixed(5), Binary),
        0xD0 => ("algorithm key", Fixed(1), Binary),
        0xD1 => ("card offset", Llvar, Secret("pin data")),
        0xD2 => ("direction", Fixed(1), Binary),
        0xD3 => ("key position", Fixed(1), Binary),
        0xE0 => ("min input length", Fixed(1), Binary),
        0xE1..=0xE8 => ("text line", Llvar, Ascii),
        0xF0 => ("display duration", Fixed(1), Binary),
        0xF1..=0xF8 => ("text line", Llvar, Ascii),
        0xF9 => ("beeper", Fixed(1), Binary),
        0xFB => ("confirmation", Fixed(1), Binary),
        0xFC => ("dialog control", Fixed(1), Binary),
        _ => return None,
    })
}

/// The format of a BMP number, when known.
pub fn format_of(number: u8) -> Option<Format> {
    spec(number).map(|(_, f, _)| f)
}

/// The name of a BMP number, when known.
pub fn name_of(number: u8) -> Option<&'static str> {
    spec(number).map(|(n, _, _)| n)
}

/// How the length prefix was written, kept for byte-exact re-encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Prefix {
    /// Fixed-length field: no prefix.
    #[default]
    None,
    /// LLVAR/LLLVAR digits `Fx` (the specification) or `0x` (what some ECR libraries send).
    Digits { f_nibble: bool },
    /// TLV container length: 1, 2 (`81 xx`) or 3 (`82 xx xx`) bytes.
    Ber { bytes: u8 },
}

/// One BMP: its number and value (without the length prefix).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bmp {
    pub number: u8,
    pub value: Vec<u8>,
    pub prefix: Prefix,
}

impl Bmp {
    /// A BMP with the canonical prefix for its number (unknown numbers get none).
    pub fn new(number: u8, value: impl Into<Vec<u8>>) -> Bmp {
        let prefix = match format_of(number) {
            Some(Format::Llvar | Format::Lllvar) => Prefix::Digits { f_nibble: true },
            Some(Format::Tlv) => Prefix::Ber { bytes: 0 },
            _ => Prefix::None,
        };
        Bmp {
            number,
            value: value.into(),
            prefix,
        }
    }

    /// A BCD number of `bytes` bytes (the number is cut to fit).
    pub fn bcd(number: u8, value: u64, bytes: usize) -> Bmp {
        Bmp::new(number, bcd_encode(value, bytes))
    }

    /// Fixed-length ASCII, right-padded with spaces (or cut) to the field's length.
    pub fn ascii_fixed(number: u8, text: &str) -> Bmp {
        let len = match format_of(number) {
            Some(Format::Fixed(n)) => n,
            _ => text.len(),
        };
        let mut v: Vec<u8> = text.bytes().take(len).collect();
        v.resize(len, b' ');
        Bmp::new(number, v)
    }

    /// The PAN BMP `22`, masked on the wire: the hidden digits are sent as `E` nibbles.
    pub fn masked_pan(pan: &Pan) -> Bmp {
        let masked = pan.masked();
        let mut nibbles: Vec<u8> = masked
            .chars()
            .map(|c| c.to_digit(10).map_or(0x0E, |d| d as u8))
            .collect();
        if nibbles.len() % 2 == 1 {
            nibbles.push(0x0F);
        }
        let bytes = nibbles
            .chunks(2)
            .map(|p| (p[0] << 4) | p.get(1).copied().unwrap_or(0x0F))
            .collect::<Vec<u8>>();
        Bmp::new(0x22, bytes)
    }

    pub fn name(&self) -> Option<&'static str> {
        name_of(self.number)
    }

    /// The value as a BCD number (`None` when a nibble is not a digit).
    pub fn as_bcd(&self) -> Option<u64> {
        bcd_decode(&self.value)
    }

    fn kind(&self) -> Kind {
        spec(self.number).map_or(Kind::Binary, |(_, _, k)| k)
    }

    /// The value as people should see it: numbers as digits, text as text, card data
    /// masked, everything else in hex.
    pub fn render(&self) -> String {
        match self.kind() {
            Kind::Bcd => bcd_digits(&self.value),
            Kind::Ascii => mask_digit_runs(&String::from_utf8_lossy(&self.value)),
            Kind::Binary => mask_digit_runs(&hex(&self.value)),
            Kind::Pan => render_pan(&self.value),
            Kind::Secret(what) => format!("<{what}: {} bytes>", self.value.len()),
            Kind::Tlv => mask_digit_runs(&hex(&self.value)),
        }
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.number);
        let (value, prefix) = match (format_of(self.number), self.prefix) {
            (Some(Format::Fixed(n)), _) => {
                let mut v = self.value.clone();
                v.resize(n, 0);
                (v, Vec::new())
            }
            (Some(Format::Llvar), p) => digits_prefix(&self.value, 2, p),
            (Some(Format::Lllvar), p) => digits_prefix(&self.value, 3, p),
            (Some(Format::Tlv), p) => {
                let v = self.value.get(..0xFFFF).unwrap_or(&self.value).to_vec();
                let want = match p {
                    Prefix::Ber { bytes } => bytes,
                    _ => 0,
                };
                (v.clone(), ber_len(v.len(), want))
            }
            (None, _) => (self.value.clone(), Vec::new()),
        };
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&value);
    }
}

fn digits_prefix(value: &[u8], digits: u32, prefix: Prefix) -> (Vec<u8>, Vec<u8>) {
    let max = 10usize.pow(digits) - 1;
    let v = value.get(..max).unwrap_or(value).to_vec();
    let high = match prefix {
        Prefix::Digits { f_nibble: false } => 0x00,
        _ => 0xF0,
    };
    let mut p = Vec::new();
    let mut n = v.len();
    for _ in 0..digits {
        p.push(high | (n % 10) as u8);
        n /= 10;
    }
    p.reverse();
    (v, p)
}

fn ber_len(len: usize, want: u8) -> Vec<u8> {
    let minimal = match len {
        0..=0x7F => 1,
        0x80..=0xFF => 2,
        _ => 3,
    };
    match want.max(minimal) {
        1 => vec![len as u8],
        2 => vec![0x81, len as u8],
        _ => vec![0x82, (len >> 8) as u8, len as u8],
    }
}

impl fmt::Debug for Bmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{:02X} {n}: {}", self.number, self.render()),
            None => write!(f, "{:02X}: {}", self.number, self.render()),
        }
    }
}

/// A field of a data block.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Bmp(Bmp),
    /// From a BMP whose number is unknown (so whose length is unknown) to the end.
    Unparsed(Vec<u8>),
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Bmp(b) => fmt::Debug::fmt(b, f),
            Field::Unparsed(raw) => write!(f, "unparsed: {}", mask_digit_runs(&hex(raw))),
        }
    }
}

/// The BMPs of a data block, in wire order.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Fields(pub Vec<Field>);

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl Fields {
    pub fn new() -> Fields {
        Fields(Vec::new())
    }

    /// Parses a data block made of BMPs. `base` is the absolute offset of `data[0]` (for
    /// error messages).
    pub fn parse(data: &[u8], base: usize) -> Result<Fields, ZvtError> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(&number) = data.get(pos) {
            let Some((name, format, _)) = spec(number) else {
                out.push(Field::Unparsed(data.get(pos..).unwrap_or(&[]).to_vec()));
                break;
            };
            let what = format!("bmp {number:02X} ({name})");
            let at = base + pos;
            let rest = data.get(pos + 1..).unwrap_or(&[]);
            let (len, prefix, plen) = match format {
                Format::Fixed(n) => (n, Prefix::None, 0),
                Format::Llvar => read_digits(rest, 2, &what, at + 1)?,
                Format::Lllvar => read_digits(rest, 3, &what, at + 1)?,
                Format::Tlv => read_ber(rest, &what, at + 1)?,
            };
            let value = rest
                .get(plen..plen + len)
                .ok_or_else(|| ZvtError::Truncated {
                    what: what.clone(),
                    offset: at,
                    needed: 1 + plen + len,
                    left: data.len() - pos,
                })?;
            if format == Format::Tlv {
                poslab_tlv::parse(value).map_err(|source| ZvtError::Tlv {
                    offset: at + 1 + plen,
                    source,
                })?;
            }
            out.push(Field::Bmp(Bmp {
                number,
                value: value.to_vec(),
                prefix,
            }));
            pos += 1 + plen + len;
        }
        Ok(Fields(out))
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for field in &self.0 {
            match field {
                Field::Bmp(b) => b.encode_into(out),
                Field::Unparsed(raw) => out.extend_from_slice(raw),
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn push(&mut self, bmp: Bmp) -> &mut Self {
        self.0.push(Field::Bmp(bmp));
        self
    }

    pub fn with(mut self, bmp: Bmp) -> Self {
        self.push(bmp);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn bmps(&self) -> impl Iterator<Item = &Bmp> {
        self.0.iter().filter_map(|f| match f {
            Field::Bmp(b) => Some(b),
            Field::Unparsed(_) => None,
        })
    }

    pub fn get(&self, number: u8) -> Option<&Bmp> {
        self.bmps().find(|b| b.number == number)
    }

    fn bcd(&self, number: u8) -> Option<u64> {
        self.get(number).and_then(Bmp::as_bcd)
    }

    /// BMP `04`, in minor units.
    pub fn amount(&self) -> Option<u64> {
        self.bcd(0x04)
    }
    pub fn trace(&self) -> Option<u32> {
        self.bcd(0x0B).map(|v| v as u32)
    }
    pub fn receipt(&self) -> Option<u32> {
        self.bcd(0x87).map(|v| v as u32)
    }
    pub fn turnover(&self) -> Option<u32> {
        self.bcd(0x88).map(|v| v as u32)
    }
    pub fn terminal_id(&self) -> Option<u32> {
        self.bcd(0x29).map(|v| v as u32)
    }
    pub fn currency(&self) -> Option<u16> {
        self.bcd(0x49).map(|v| v as u16)
    }
    pub fn result_code(&self) -> Option<ResultCode> {
        self.get(0x27)
            .and_then(|b| b.value.first())
            .map(|&c| ResultCode(c))
    }
    /// BMP `0C` as (hour, minute, second).
    pub fn time(&self) -> Option<(u8, u8, u8)> {
        let v = self.bcd(0x0C)?;
        Some(((v / 10_000) as u8, (v / 100 % 100) as u8, (v % 100) as u8))
    }
    /// BMP `0D` as (month, day).
    pub fn date(&self) -> Option<(u8, u8)> {
        let v = self.bcd(0x0D)?;
        Some(((v / 100) as u8, (v % 100) as u8))
    }
    /// BMP `22`, masked (first 6, last 4) whatever the terminal sent.
    pub fn pan_masked(&self) -> Option<String> {
        self.get(0x22).map(|b| render_pan(&b.value))
    }
    pub fn text(&self, number: u8) -> Option<String> {
        self.get(number)
            .map(|b| mask_digit_runs(String::from_utf8_lossy(&b.value).trim_end()))
    }
    pub fn card_name(&self) -> Option<String> {
        self.text(0x8B)
    }
    pub fn additional_text(&self) -> Option<String> {
        self.text(0x3C)
    }
}

impl Serialize for Bmp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("bmp", &format!("{:02X}", self.number))?;
        if let Some(n) = self.name() {
            m.serialize_entry("name", n)?;
        }
        m.serialize_entry("value", &self.render())?;
        m.end()
    }
}

impl Serialize for Field {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Bmp(b) => b.serialize(s),
            Field::Unparsed(raw) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("bmp", &format!("{:02X}", raw.first().copied().unwrap_or(0)))?;
                m.serialize_entry("unparsed", &mask_digit_runs(&hex(raw)))?;
                m.end()
            }
        }
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

fn read_digits(
    bytes: &[u8],
    digits: usize,
    what: &str,
    offset: usize,
) -> Result<(usize, Prefix, usize), ZvtError> {
    let p = bytes.get(..digits).ok_or_else(|| ZvtError::Truncated {
        what: format!("{what} length"),
        offset,
        needed: digits,
        left: bytes.len(),
    })?;
    let f_nibble = p.first().is_some_and(|b| b & 0xF0 == 0xF0);
    let mut len = 0usize;
    for (i, &b) in p.iter().enumerate() {
        let high_ok = if f_nibble {
            b & 0xF0 == 0xF0
        } else {
            b & 0xF0 == 0
        };
        if !high_ok || b & 0x0F > 9 {
            return Err(ZvtError::BadLengthDigit {
                what: what.to_string(),
                offset: offset + i,
                byte: b,
            });
        }
        len = len * 10 + (b & 0x0F) as usize;
    }
    Ok((len, Prefix::Digits { f_nibble }, digits))
}

fn read_ber(bytes: &[u8], what: &str, offset: usize) -> Result<(usize, Prefix, usize), ZvtError> {
    let trunc = |needed| ZvtError::Truncated {
        what: format!("{what} length"),
        offset,
        needed,
        left: bytes.len(),
    };
    match bytes.first() {
        None => Err(trunc(1)),
        Some(&b) if b < 0x80 => Ok((b as usize, Prefix::Ber { bytes: 1 }, 1)),
        Some(0x81) => {
            let n = *bytes.get(1).ok_or_else(|| trunc(2))?;
            Ok((n as usize, Prefix::Ber { bytes: 2 }, 2))
        }
        Some(0x82) => {
            let hi = *bytes.get(1).ok_or_else(|| trunc(3))?;
            let lo = *bytes.get(2).ok_or_else(|| trunc(3))?;
            Ok((
                (hi as usize) << 8 | lo as usize,
                Prefix::Ber { bytes: 3 },
                3,
            ))
        }
        Some(&b) => Err(ZvtError::Invalid {
            what: format!("{what} length"),
            offset,
            reason: format!("length form {b:02X} not supported (expected 00..7F, 81 or 82)"),
        }),
    }
}

/// Packs `value` as `bytes` bytes of BCD (higher digits that do not fit are cut).
pub fn bcd_encode(value: u64, bytes: usize) -> Vec<u8> {
    let mut out = vec![0u8; bytes];
    let mut v = value;
    for b in out.iter_mut().rev() {
        let lo = (v % 10) as u8;
        v /= 10;
        let hi = (v % 10) as u8;
        v /= 10;
        *b = (hi << 4) | lo;
    }
    out
}

/// Reads packed BCD; `None` if a nibble is not a digit or the number is too large.
pub fn bcd_decode(bytes: &[u8]) -> Option<u64> {
    if bytes.len() > 9 {
        return None;
    }
    let mut v: u64 = 0;
    for b in bytes {
        let (hi, lo) = (b >> 4, b & 0x0F);
        if hi > 9 || lo > 9 {
            return None;
        }
        v = v * 100 + (hi * 10 + lo) as u64;
    }
    Some(v)
}

fn bcd_digits(bytes: &[u8]) -> String {
    match bcd_decode(bytes) {
        Some(_) => bytes.iter().map(|b| format!("{b:02X}")).collect(),
        None => hex(bytes),
    }
}

fn render_pan(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes {
        for nib in [b >> 4, b & 0x0F] {
            match nib {
                0..=9 => s.push(char::from(b'0' + nib)),
                0x0F => {}
                _ => s.push('*'),
            }
        }
    }
    mask_pan(&s)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_information_fields_parse_and_round_trip() {
        // 27 00 | 04 amount 42.50 | 0B trace 17 | 22 masked PAN | 8B "Visa" | 06 TLV
        let data = hex::decode(
            "2700040000000042500B00001722F0F8476173EEEEEE00108BF0F4566973610605 1F1002 0978"
                .replace(' ', ""),
        )
        .unwrap();
        let fields = Fields::parse(&data, 3).unwrap();
        assert_eq!(fields.result_code(), Some(ResultCode::SUCCESS));
        assert_eq!(fields.amount(), Some(4250));
        assert_eq!(fields.trace(), Some(17));
        assert_eq!(fields.pan_masked().as_deref(), Some("476173******0010"));
        assert_eq!(fields.card_name().as_deref(), Some("Visa"));
        assert_eq!(fields.to_bytes(), data);
    }

    #[test]
    fn a_clear_pan_from_a_leaky_terminal_is_still_masked() {
        let data = hex::decode("22F0F84761739001010010").unwrap();
        let fields = Fields::parse(&data, 0).unwrap();
        assert_eq!(fields.pan_masked().as_deref(), Some("476173******0010"));
        let shown = format!("{fields:?}");
        assert!(!shown.contains("4761739001010010"), "{shown}");
    }

    #[test]
    fn masked_pan_goes_on_the_wire_with_e_nibbles() {
        let b = Bmp::masked_pan(&Pan::new("4761739001010010"));
        assert_eq!(hex(&b.to_wire()), "22F0F8476173EEEEEE0010");
        let odd = Bmp::masked_pan(&Pan::new("476173900101001"));
        assert_eq!(hex(&odd.to_wire()), "22F0F8476173EEEEE1001F");
    }

    #[test]
    fn zero_nibble_lengths_are_accepted_and_kept() {
        let data = hex::decode("8B000456697361").unwrap();
        let fields = Fields::parse(&data, 0).unwrap();
        assert_eq!(fields.card_name().as_deref(), Some("Visa"));
        assert_eq!(fields.to_bytes(), data);
    }

    #[test]
    fn unknown_bmps_keep_the_rest_raw() {
        let data = hex::decode("270055AABBCC").unwrap();
        let fields = Fields::parse(&data, 0).unwrap();
        assert_eq!(fields.0.len(), 2);
        assert_eq!(fields.to_bytes(), data);
    }

    #[test]
    fn errors_say_where() {
        let err = Fields::parse(&hex::decode("2700040000").unwrap(), 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "at byte 5, bmp 04 (amount): needs 7 bytes, 3 left"
        );
        let err = Fields::parse(&hex::decode("22F1A1").unwrap(), 0).unwrap_err();
        assert!(err.to_string().contains("bad length digit A1"), "{err}");
        let err = Fields::parse(hex::decode("06039F0201").unwrap().as_slice(), 0);
        assert!(err.is_err());
    }

    #[test]
    fn bcd() {
        assert_eq!(bcd_encode(4250, 6), vec![0, 0, 0, 0, 0x42, 0x50]);
        assert_eq!(bcd_decode(&[0x12, 0x34]), Some(1234));
        assert_eq!(bcd_decode(&[0x1A]), None);
    }

    impl Bmp {
        fn to_wire(&self) -> Vec<u8> {
            let mut v = Vec::new();
            self.encode_into(&mut v);
            v
        }
    }
}
