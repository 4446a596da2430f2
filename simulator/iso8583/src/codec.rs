//! Pack and unpack: the compiled field table applied to bytes. No YAML, no serde here.

use std::collections::BTreeMap;

use compact_str::CompactString;

use crate::ebcdic::{EBCDIC_TO_LATIN1, LATIN1_TO_EBCDIC};
use crate::error::{FieldPath, Iso8583Error, Location, Reason};
use crate::message::{Field, Message, Sensitivity};
use crate::mti::Mti;
use crate::spec::{BitmapEncoding, Count, Encoding, FieldSpec, Format, MtiEncoding, Side, Spec};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Bit for field `n` (1..=64) of one bitmap word: field 1 is the most significant bit.
#[inline]
fn bit(n: u16) -> u64 {
    1u64 << (64 - n as u32)
}

fn unpack_err(location: impl Into<Location>, offset: usize, reason: Reason) -> Iso8583Error {
    Iso8583Error::Unpack {
        location: location.into(),
        offset,
        reason,
    }
}

fn pack_err(location: impl Into<Location>, reason: Reason) -> Iso8583Error {
    Iso8583Error::Pack {
        location: location.into(),
        reason,
    }
}

/// What an error may show of a value: the text itself for non-sensitive fields, else only
/// its length and class.
fn shown(bytes: &[u8], sens: Sensitivity) -> String {
    if sens.is_sensitive() {
        return format!("{} bytes (not shown: {})", bytes.len(), sens.label());
    }
    let text: String = bytes
        .iter()
        .take(40)
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            }
        })
        .collect();
    if bytes.len() > 40 {
        format!("{text:?}... ({} bytes)", bytes.len())
    } else {
        format!("{text:?}")
    }
}

fn invalid(expected: impl Into<String>, found: String) -> Reason {
    Reason::Invalid {
        expected: expected.into(),
        found,
    }
}

/// A cursor over the message; offsets are absolute.
pub(crate) struct Reader<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
    /// Where it starts and the longest run of `data` from there that is UTF-8, found at the
    /// first ASCII field a build reads: the ASCII fields inside it are sliced from it rather
    /// than validated one by one.
    pub(crate) text_run: Option<(usize, &'a str)>,
}

/// The longest prefix of `bytes` that is valid UTF-8.
fn utf8_prefix(bytes: &[u8]) -> &str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => bytes
            .get(..e.valid_up_to())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or(""),
    }
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn take(
        &mut self,
        n: usize,
        location: &dyn Fn() -> Location,
    ) -> Result<&'a [u8], Iso8583Error> {
        match self.data.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(unpack_err(
                location(),
                self.pos,
                Reason::Truncated {
                    needed: n,
                    left: self.left(),
                },
            )),
        }
    }
}

/// Each byte's value as a hex digit, 0xFF where it is not one.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'A' as usize + i] = 10 + i as u8;
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

fn hex_val(c: u8) -> Option<u8> {
    let v = HEX_VALUE[c as usize];
    (v < 16).then_some(v)
}

/// Decodes hex characters; the index of the first bad character on failure.
fn decode_hex(chars: &[u8]) -> Result<Vec<u8>, usize> {
    if !chars.len().is_multiple_of(2) {
        return Err(chars.len());
    }
    let (pairs, _) = chars.as_chunks::<2>();
    let mut out = vec![0u8; pairs.len()];
    // no branch per byte: a bad digit's 0xFF shows in `bad`, then its place is looked up
    let mut bad = 0u8;
    for (slot, [hi, lo]) in out.iter_mut().zip(pairs) {
        let (hi, lo) = (HEX_VALUE[*hi as usize], HEX_VALUE[*lo as usize]);
        bad |= hi | lo;
        *slot = hi << 4 | lo;
    }
    if bad > 15 {
        return Err(chars
            .iter()
            .position(|c| hex_val(*c).is_none())
            .unwrap_or(0));
    }
    Ok(out)
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

impl Spec {
    /// Reads a message: `bytes` is the MTI onwards (no length prefix, no header). Every
    /// byte must belong to a field.
    pub fn unpack(&self, bytes: &[u8]) -> Result<Message, Iso8583Error> {
        self.walk::<true, _>(bytes, Message::with_capacity, |m, de, _, field| {
            if let Some(f) = field {
                m.push_sorted(de, f);
            }
        })
    }

    /// Reads the MTI, the bitmaps and every field in order (checking each completely);
    /// `begin` makes the result from the MTI and the number of fields, then `on_field`
    /// gets each field's number, the offset where it starts (its length prefix) and, when
    /// `BUILD`, its value.
    pub(crate) fn walk<const BUILD: bool, T>(
        &self,
        bytes: &[u8],
        begin: impl FnOnce(Mti, usize) -> T,
        mut on_field: impl FnMut(&mut T, u16, usize, Option<Field>),
    ) -> Result<T, Iso8583Error> {
        let mut r = Reader {
            data: bytes,
            pos: 0,
            text_run: None,
        };
        let mti = self.read_mti(&mut r)?;
        let mut words = [0u64; 3];
        words[0] = self.read_bitmap(&mut r, 1)?;
        if words[0] & bit(1) != 0 {
            words[1] = self.read_bitmap(&mut r, 2)?;
            if self.tertiary && words[1] & bit(1) != 0 {
                words[2] = self.read_bitmap(&mut r, 3)?;
            }
        }
        let count = words.iter().map(|w| w.count_ones()).sum::<u32>() as usize;
        let mut out = begin(mti, count);
        for (i, word) in words.iter().enumerate() {
            let mut w = *word;
            if i == 0 || (i == 1 && self.tertiary) {
                w &= !bit(1);
            }
            while w != 0 {
                let lz = w.leading_zeros() as u16;
                w &= !(1u64 << (63 - lz));
                let de = i as u16 * 64 + lz + 1;
                let Some(spec) = self.field(de) else {
                    return Err(unpack_err(FieldPath::de(de), r.pos, Reason::Undefined(de)));
                };
                let start = r.pos;
                let field = read_field::<BUILD>(spec, &mut r, &|| FieldPath::de(de))?;
                on_field(&mut out, de, start, field);
            }
        }
        if r.left() > 0 {
            return Err(unpack_err(
                Location::Message,
                r.pos,
                Reason::TrailingBytes(r.left()),
            ));
        }
        Ok(out)
    }

    fn read_mti(&self, r: &mut Reader<'_>) -> Result<Mti, Iso8583Error> {
        let at = r.pos;
        let loc = || Location::Mti;
        let digits: [u8; 4] = match self.mti {
            MtiEncoding::Ascii => {
                let b = r.take(4, &loc)?;
                [b[0], b[1], b[2], b[3]]
            }
            MtiEncoding::Ebcdic => {
                let b = r.take(4, &loc)?;
                let t = |x: u8| EBCDIC_TO_LATIN1[x as usize];
                [t(b[0]), t(b[1]), t(b[2]), t(b[3])]
            }
            MtiEncoding::Bcd => {
                let b = r.take(2, &loc)?;
                let n = [b[0] >> 4, b[0] & 15, b[1] >> 4, b[1] & 15];
                if n.iter().any(|d| *d > 9) {
                    return Err(unpack_err(
                        Location::Mti,
                        at,
                        invalid("4 BCD digits", format!("{:02X}{:02X}", b[0], b[1])),
                    ));
                }
                n.map(|d| b'0' + d)
            }
        };
        Mti::from_digits(digits).map_err(|_| {
            unpack_err(
                Location::Mti,
                at,
                invalid("4 digits", shown(&digits, Sensitivity::None)),
            )
        })
    }

    fn read_bitmap(&self, r: &mut Reader<'_>, which: u8) -> Result<u64, Iso8583Error> {
        let at = r.pos;
        let loc = || Location::Bitmap(which);
        match self.bitmap {
            BitmapEncoding::Binary => {
                let b = r.take(8, &loc)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(u64::from_be_bytes(a))
            }
            BitmapEncoding::Hex => {
                let b = r.take(16, &loc)?;
                let mut v = 0u64;
                for (i, c) in b.iter().enumerate() {
                    let d = hex_val(*c).ok_or_else(|| {
                        unpack_err(
                            Location::Bitmap(which),
                            at + i,
                            invalid("16 hex digits", shown(b, Sensitivity::None)),
                        )
                    })?;
                    v = v << 4 | d as u64;
                }
                Ok(v)
            }
        }
    }

    /// Writes a message (MTI onwards).
    pub fn pack(&self, msg: &Message) -> Result<Vec<u8>, Iso8583Error> {
        let mut out = Vec::with_capacity(256);
        self.pack_into(msg, &mut out)?;
        Ok(out)
    }

    /// Appends a message (MTI onwards) to `out`. On error `out` may hold a partial message.
    pub fn pack_into(&self, msg: &Message, out: &mut Vec<u8>) -> Result<(), Iso8583Error> {
        self.pack_upto(msg, None, out)
    }

    /// Packs `msg`; with `mac = Some(de)` the bitmap also carries `de` and packing stops
    /// where that field would begin (the bytes a wire MAC covers, see [`Spec::mac_bytes`]).
    pub(crate) fn pack_upto(
        &self,
        msg: &Message,
        mac: Option<u16>,
        out: &mut Vec<u8>,
    ) -> Result<(), Iso8583Error> {
        let mut words = [0u64; 3];
        for de in msg.fields().map(|(de, _)| de).chain(mac) {
            match de {
                2..=64 => words[0] |= bit(de),
                65..=128 if !(self.tertiary && de == 65) => words[1] |= bit(de - 64),
                129..=192 if self.tertiary => words[2] |= bit(de - 128),
                _ => {
                    return Err(pack_err(
                        FieldPath::de(de),
                        if (2..=192).contains(&de) {
                            Reason::NotInSpec(de, self.name.clone())
                        } else {
                            Reason::OutOfRange(de)
                        },
                    ))
                }
            }
        }
        if words[2] != 0 {
            words[1] |= bit(1);
        }
        if words[1] != 0 {
            words[0] |= bit(1);
        }
        // MTI
        let d = msg.mti.digits();
        match self.mti {
            MtiEncoding::Ascii => out.extend_from_slice(&d),
            MtiEncoding::Ebcdic => out.extend(d.iter().map(|c| LATIN1_TO_EBCDIC[*c as usize])),
            MtiEncoding::Bcd => {
                out.push((d[0] - b'0') << 4 | (d[1] - b'0'));
                out.push((d[2] - b'0') << 4 | (d[3] - b'0'));
            }
        }
        for (i, w) in words.iter().enumerate() {
            if i > 0 && *w == 0 {
                break;
            }
            match self.bitmap {
                BitmapEncoding::Binary => out.extend_from_slice(&w.to_be_bytes()),
                BitmapEncoding::Hex => push_hex(out, &w.to_be_bytes()),
            }
        }
        for (de, field) in msg.fields() {
            if mac.is_some_and(|m| de >= m) {
                break;
            }
            let Some(spec) = self.field(de) else {
                return Err(pack_err(
                    FieldPath::de(de),
                    Reason::NotInSpec(de, self.name.clone()),
                ));
            };
            write_field(spec, field, out, &|| FieldPath::de(de))?;
        }
        Ok(())
    }

    /// The bytes of one field as packed (length prefix and value).
    pub(crate) fn pack_field(&self, de: u16, field: &Field) -> Result<Vec<u8>, Iso8583Error> {
        let Some(spec) = self.field(de) else {
            return Err(pack_err(
                FieldPath::de(de),
                Reason::NotInSpec(de, self.name.clone()),
            ));
        };
        let mut out = Vec::new();
        write_field(spec, field, &mut out, &|| FieldPath::de(de))?;
        Ok(out)
    }
}

pub(crate) fn read_length(
    f: &FieldSpec,
    r: &mut Reader<'_>,
    path: &dyn Fn() -> FieldPath,
) -> Result<usize, Iso8583Error> {
    if f.is_fixed() {
        return Ok(f.max);
    }
    let at = r.pos;
    let loc = || Location::Field(path());
    let p = r.take(f.prefix_len(), &loc)?;
    let digits = f.length_digits as usize;
    let bad = |expected: String| {
        unpack_err(
            path(),
            at,
            invalid(expected, format!("{:?}", crate::message::hex_upper(p))),
        )
    };
    let len = match f.prefix {
        crate::spec::PrefixEncoding::Ascii | crate::spec::PrefixEncoding::Ebcdic => {
            let mut v = 0usize;
            for b in p {
                let c = if f.prefix == crate::spec::PrefixEncoding::Ebcdic {
                    EBCDIC_TO_LATIN1[*b as usize]
                } else {
                    *b
                };
                if !c.is_ascii_digit() {
                    return Err(unpack_err(
                        path(),
                        at,
                        invalid(
                            format!("{digits} length digits"),
                            shown(p, Sensitivity::None),
                        ),
                    ));
                }
                v = v * 10 + (c - b'0') as usize;
            }
            v
        }
        crate::spec::PrefixEncoding::Bcd => {
            let mut v = 0usize;
            for b in p {
                let (hi, lo) = (b >> 4, b & 15);
                if hi > 9 || lo > 9 {
                    return Err(bad(format!("a BCD length of {} bytes", p.len())));
                }
                v = v * 100 + hi as usize * 10 + lo as usize;
            }
            v
        }
        crate::spec::PrefixEncoding::Binary => p.iter().fold(0usize, |a, b| a << 8 | *b as usize),
    };
    if len > f.max {
        return Err(unpack_err(path(), at, Reason::TooLong { len, max: f.max }));
    }
    Ok(len)
}

/// Wire bytes of a value of `units` length units.
pub(crate) fn wire_len(f: &FieldSpec, units: usize) -> usize {
    match (f.encoding, f.count) {
        (Encoding::Bcd, Count::Digits) => units.div_ceil(2),
        _ => units,
    }
}

/// Reads one field at the cursor: checks it completely (length, encoding, digits, pad
/// nibbles, TLV structure, subfields) and, when `BUILD`, returns its value. Without
/// `BUILD` (a [`MessageRef`](crate::MessageRef) scan) nothing is allocated in the common
/// case and the errors are the same.
#[inline]
pub(crate) fn read_field<const BUILD: bool>(
    f: &FieldSpec,
    r: &mut Reader<'_>,
    path: &dyn Fn() -> FieldPath,
) -> Result<Option<Field>, Iso8583Error> {
    let units = read_length(f, r, path)?;
    let at = r.pos;
    let loc = || Location::Field(path());
    let data = r.take(wire_len(f, units), &loc)?;
    match &f.format {
        Format::Plain if BUILD && f.encoding == Encoding::Hex => {
            // checked while decoding, with the errors check_plain gives
            let bytes = decode_hex(data).map_err(|i| hex_error(f, data, at, i, path))?;
            Ok(Some(Field::Binary(bytes)))
        }
        Format::Plain if BUILD && f.encoding == Encoding::Ascii => {
            // one pass where the field is as expected; check_plain names what is wrong
            let (run_at, run) = *r
                .text_run
                .get_or_insert_with(|| (at, utf8_prefix(r.data.get(at..).unwrap_or(&[]))));
            let own = at
                .checked_sub(run_at)
                .and_then(|i| run.get(i..i + data.len()));
            let text = own.or_else(|| std::str::from_utf8(data).ok()).filter(|t| {
                if f.numeric {
                    t.bytes().all(|b| b.is_ascii_digit())
                } else {
                    t.is_ascii()
                }
            });
            match text {
                Some(t) => Ok(Some(Field::Text(CompactString::from(t)))),
                None => {
                    check_plain(f, data, units, at, path)?;
                    Ok(Some(build_plain(f, data, units)))
                }
            }
        }
        Format::Plain => {
            check_plain(f, data, units, at, path)?;
            Ok(BUILD.then(|| build_plain(f, data, units)))
        }
        Format::Tlv => {
            if !BUILD {
                let quick = if f.encoding == Encoding::Hex {
                    data.len().is_multiple_of(2)
                        && data.iter().all(|c| hex_val(*c).is_some())
                        && poslab_tlv::quick_check_with(data.len() / 2, |i| {
                            let hi = hex_val(*data.get(2 * i)?)?;
                            Some(hi << 4 | hex_val(*data.get(2 * i + 1)?)?)
                        })
                } else {
                    poslab_tlv::quick_check(data)
                };
                if quick {
                    return Ok(None);
                }
            }
            let bytes: std::borrow::Cow<'_, [u8]> = match f.encoding {
                Encoding::Hex => std::borrow::Cow::Owned(decode_hex(data).map_err(|i| {
                    unpack_err(
                        path(),
                        at + i,
                        invalid(
                            "hex digits",
                            format!("{} hex characters (not shown)", data.len()),
                        ),
                    )
                })?),
                _ => std::borrow::Cow::Borrowed(data),
            };
            let scale = if f.encoding == Encoding::Hex { 2 } else { 1 };
            let tlv_err = |e: poslab_tlv::TlvError| {
                let p = path();
                unpack_err(
                    match e.tag {
                        Some(t) => FieldPath::tag(p.de, t),
                        None => p,
                    },
                    at + e.offset * scale,
                    Reason::Tlv(e.kind),
                )
            };
            if !BUILD {
                // only checked: the bytes stay where they are
                poslab_tlv::parse(&bytes).map_err(tlv_err)?;
                return Ok(None);
            }
            let list = poslab_tlv::TlvList::from_bytes(bytes.into_owned()).map_err(tlv_err)?;
            Ok(Some(Field::Tlv(list)))
        }
        Format::Composite(subs) => {
            let end = r.pos;
            let mut sub_r = Reader {
                data: r.data.get(..end).unwrap_or(&[]),
                pos: at,
                text_run: r.text_run,
            };
            let de = path().de;
            let mut out = BTreeMap::new();
            for (i, sub) in subs.iter().enumerate() {
                if sub_r.left() == 0 {
                    break;
                }
                let n = i as u16 + 1;
                let v = read_field::<BUILD>(sub, &mut sub_r, &|| FieldPath::subfield(de, n))?;
                if let Some(v) = v {
                    out.insert(n, v);
                }
            }
            if sub_r.left() > 0 {
                return Err(unpack_err(
                    path(),
                    sub_r.pos,
                    Reason::SubfieldTrailing(sub_r.left()),
                ));
            }
            Ok(BUILD.then_some(Field::Composite(out)))
        }
    }
}

/// Checks a plain field's wire bytes: the characters its encoding and `numeric` allow,
/// hex digits, BCD pad nibbles. [`build_plain`] then cannot fail.
fn check_plain(
    f: &FieldSpec,
    data: &[u8],
    units: usize,
    at: usize,
    path: &dyn Fn() -> FieldPath,
) -> Result<(), Iso8583Error> {
    let sens = f.sensitivity;
    let bad_digits = |chars: &[u8]| {
        unpack_err(
            path(),
            at,
            invalid(format!("{} digits", chars.len()), shown(chars, sens)),
        )
    };
    let check_digits = |chars: &[u8]| -> Result<(), Iso8583Error> {
        if f.numeric && !chars.iter().all(u8::is_ascii_digit) {
            return Err(bad_digits(chars));
        }
        Ok(())
    };
    match f.encoding {
        Encoding::Ascii => {
            if !data.is_ascii() {
                let i = data.iter().position(|b| !b.is_ascii()).unwrap_or(0);
                return Err(unpack_err(
                    path(),
                    at + i,
                    invalid(
                        "ASCII characters",
                        format!("byte {:02X}", data.get(i).copied().unwrap_or(0)),
                    ),
                ));
            }
            check_digits(data)
        }
        Encoding::Latin1 => check_digits(data),
        Encoding::Ebcdic => {
            if f.numeric
                && !data
                    .iter()
                    .all(|b| EBCDIC_TO_LATIN1[*b as usize].is_ascii_digit())
            {
                let latin: Vec<u8> = data.iter().map(|b| EBCDIC_TO_LATIN1[*b as usize]).collect();
                return Err(bad_digits(&latin));
            }
            Ok(())
        }
        Encoding::Binary => Ok(()),
        Encoding::Hex => {
            if !data.len().is_multiple_of(2) {
                return Err(hex_error(f, data, at, data.len(), path));
            }
            match data.iter().position(|c| hex_val(*c).is_none()) {
                Some(i) => Err(hex_error(f, data, at, i, path)),
                None => Ok(()),
            }
        }
        Encoding::Bcd => {
            let (digits, skip_first) = bcd_layout(f, data, units);
            let nibbles = data.len() * 2;
            if digits < nibbles {
                let pad = bcd_pad(f);
                let pad_at = if skip_first { 0 } else { nibbles - 1 };
                let found = nibble(data, pad_at);
                if found != pad.ch {
                    return Err(unpack_err(
                        path(),
                        at + pad_at / 2,
                        invalid(format!("pad nibble {:X}", pad.ch), format!("{found:X}")),
                    ));
                }
            }
            if f.numeric {
                let start = usize::from(skip_first);
                // byte by byte where every nibble is a digit or a pad that is one
                let all_digits = |b: &u8| b >> 4 <= 9 && b & 15 <= 9;
                let quick =
                    (digits == nibbles || bcd_pad(f).ch <= 9) && data.iter().all(all_digits);
                if !quick && (start..start + digits).any(|i| nibble(data, i) > 9) {
                    let mut s = Vec::with_capacity(digits);
                    for i in start..start + digits {
                        s.push(HEX[nibble(data, i) as usize]);
                    }
                    return Err(bad_digits(&s));
                }
            }
            Ok(())
        }
    }
}

/// The error for hex field `data` (at offset `at`) whose character `i` is not a hex
/// digit; `i == data.len()` for an odd number of digits ([`decode_hex`]'s answers).
fn hex_error(
    f: &FieldSpec,
    data: &[u8],
    at: usize,
    i: usize,
    path: &dyn Fn() -> FieldPath,
) -> Iso8583Error {
    if i >= data.len() {
        return unpack_err(
            path(),
            at + data.len(),
            invalid("an even number of hex digits", format!("{}", data.len())),
        );
    }
    unpack_err(
        path(),
        at + i,
        invalid(
            "hex digits",
            shown(data.get(i..i + 1).unwrap_or(&[]), f.sensitivity),
        ),
    )
}

fn bcd_pad(f: &FieldSpec) -> crate::spec::Pad {
    f.pad.unwrap_or(crate::spec::Pad {
        side: Side::Left,
        ch: 0,
    })
}

/// Digits in a BCD value and whether the first nibble is padding.
fn bcd_layout(f: &FieldSpec, data: &[u8], units: usize) -> (usize, bool) {
    let digits = match f.count {
        Count::Digits => units,
        Count::Bytes => units * 2,
    };
    let skip_first = digits < data.len() * 2 && bcd_pad(f).side == Side::Left;
    (digits, skip_first)
}

/// Nibble `i` of `data` (high nibble first), 0 past the end.
#[inline]
fn nibble(data: &[u8], i: usize) -> u8 {
    let b = data.get(i / 2).copied().unwrap_or(0);
    if i.is_multiple_of(2) {
        b >> 4
    } else {
        b & 15
    }
}

/// A plain field's value from wire bytes that [`check_plain`] accepted.
pub(crate) fn build_plain(f: &FieldSpec, data: &[u8], units: usize) -> Field {
    match f.encoding {
        // checked to be ASCII, so this is valid UTF-8
        Encoding::Ascii => Field::Text(
            std::str::from_utf8(data)
                .map(CompactString::from)
                .unwrap_or_default(),
        ),
        Encoding::Latin1 => Field::Text(latin1_text(data.iter().copied())),
        Encoding::Ebcdic => Field::Text(latin1_text(
            data.iter().map(|b| EBCDIC_TO_LATIN1[*b as usize]),
        )),
        Encoding::Binary => Field::Binary(data.to_vec()),
        // checked to be an even number of hex digits
        Encoding::Hex => Field::Binary(decode_hex(data).unwrap_or_default()),
        Encoding::Bcd => {
            let (digits, skip_first) = bcd_layout(f, data, units);
            let start = usize::from(skip_first);
            let mut buf = [0u8; 128];
            if let Some(head) = buf.get_mut(..data.len() * 2) {
                for (pair, b) in head.chunks_exact_mut(2).zip(data) {
                    pair[0] = HEX[(b >> 4) as usize];
                    pair[1] = HEX[(b & 15) as usize];
                }
                if let Some(text) = head.get(start..start + digits) {
                    // hex digits are ASCII
                    return Field::Text(CompactString::from_utf8(text).unwrap_or_default());
                }
            }
            Field::Text(latin1_text(
                (start..start + digits).map(|i| HEX[nibble(data, i) as usize]),
            ))
        }
    }
}

/// Text of Latin-1 characters: built in a stack buffer when it is short and all ASCII, as
/// nearly every ISO 8583 field is (so a field of up to 24 characters costs no allocation).
fn latin1_text(chars: impl ExactSizeIterator<Item = u8> + Clone) -> CompactString {
    let mut buf = [0u8; 64];
    if let Some(head) = buf.get_mut(..chars.len()) {
        for (slot, c) in head.iter_mut().zip(chars.clone()) {
            *slot = c;
        }
        if head.is_ascii() {
            // ASCII is UTF-8
            return CompactString::from_utf8(head).unwrap_or_default();
        }
    }
    chars.map(char::from).collect()
}

fn write_prefix(f: &FieldSpec, units: usize, out: &mut [u8]) {
    match f.prefix {
        crate::spec::PrefixEncoding::Ascii | crate::spec::PrefixEncoding::Ebcdic => {
            let mut v = units;
            for slot in out.iter_mut().rev() {
                let c = b'0' + (v % 10) as u8;
                *slot = if f.prefix == crate::spec::PrefixEncoding::Ebcdic {
                    LATIN1_TO_EBCDIC[c as usize]
                } else {
                    c
                };
                v /= 10;
            }
        }
        crate::spec::PrefixEncoding::Bcd => {
            let mut v = units;
            for slot in out.iter_mut().rev() {
                let lo = (v % 10) as u8;
                let hi = (v / 10 % 10) as u8;
                *slot = hi << 4 | lo;
                v /= 100;
            }
        }
        crate::spec::PrefixEncoding::Binary => {
            let mut v = units;
            for slot in out.iter_mut().rev() {
                *slot = (v & 0xFF) as u8;
                v >>= 8;
            }
        }
    }
}

fn write_field(
    f: &FieldSpec,
    value: &Field,
    out: &mut Vec<u8>,
    path: &dyn Fn() -> FieldPath,
) -> Result<(), Iso8583Error> {
    let prefix_at = out.len();
    let plen = f.prefix_len();
    out.resize(prefix_at + plen, 0);
    let units = match &f.format {
        Format::Plain => write_plain(f, value, out, path)?,
        Format::Tlv => {
            let raw: std::borrow::Cow<'_, [u8]> = match value {
                Field::Tlv(list) => std::borrow::Cow::Borrowed(list.as_bytes()),
                Field::Binary(b) => std::borrow::Cow::Borrowed(b),
                Field::Text(t) => std::borrow::Cow::Owned(text_as_hex(t, f, path)?),
                Field::Composite(_) => {
                    return Err(pack_err(
                        path(),
                        invalid("TLV objects or bytes", "subfields".into()),
                    ))
                }
            };
            write_bytes(f, &raw, out)
        }
        Format::Composite(subs) => {
            let Field::Composite(values) = value else {
                return Err(pack_err(
                    path(),
                    invalid("subfields", "a plain value".into()),
                ));
            };
            let de = path().de;
            if let Some((n, _)) = values.iter().next_back() {
                if *n as usize > subs.len() || *n == 0 {
                    return Err(pack_err(
                        FieldPath::subfield(de, *n),
                        invalid(
                            format!("a subfield number in 1..={}", subs.len()),
                            n.to_string(),
                        ),
                    ));
                }
            }
            let start = out.len();
            let last = values.keys().next_back().copied().unwrap_or(0);
            for (i, sub) in subs.iter().enumerate() {
                let n = i as u16 + 1;
                if n > last {
                    break;
                }
                match values.get(&n) {
                    Some(v) => write_field(sub, v, out, &|| FieldPath::subfield(de, n))?,
                    None => return Err(pack_err(path(), Reason::SubfieldGap(n))),
                }
            }
            out.len() - start
        }
    };
    if f.is_fixed() {
        if units != f.max {
            return Err(pack_err(
                path(),
                invalid(format!("{} {}", f.max, unit_name(f)), format!("{units}")),
            ));
        }
    } else {
        if units > f.max {
            return Err(pack_err(
                path(),
                Reason::TooLong {
                    len: units,
                    max: f.max,
                },
            ));
        }
        if let Some(slot) = out.get_mut(prefix_at..prefix_at + plen) {
            write_prefix(f, units, slot);
        }
    }
    Ok(())
}

fn unit_name(f: &FieldSpec) -> &'static str {
    match (f.encoding, f.count, &f.format) {
        (_, _, Format::Composite(_)) => "bytes",
        (Encoding::Bcd, Count::Digits, _) => "digits",
        (Encoding::Hex, _, _) => "hex characters",
        (Encoding::Binary, _, _) => "bytes",
        (Encoding::Bcd, Count::Bytes, _) => "bytes",
        _ => "characters",
    }
}

fn text_as_hex(
    t: &str,
    f: &FieldSpec,
    path: &dyn Fn() -> FieldPath,
) -> Result<Vec<u8>, Iso8583Error> {
    decode_hex(t.as_bytes()).map_err(|_| {
        pack_err(
            path(),
            invalid(
                "bytes, or text of hex digits",
                shown(t.as_bytes(), f.sensitivity),
            ),
        )
    })
}

/// Writes binary data as the field's encoding wants; returns length units.
fn write_bytes(f: &FieldSpec, bytes: &[u8], out: &mut Vec<u8>) -> usize {
    if f.encoding == Encoding::Hex {
        push_hex(out, bytes);
        bytes.len() * 2
    } else {
        out.extend_from_slice(bytes);
        bytes.len()
    }
}

fn write_plain(
    f: &FieldSpec,
    value: &Field,
    out: &mut Vec<u8>,
    path: &dyn Fn() -> FieldPath,
) -> Result<usize, Iso8583Error> {
    match (f.encoding, value) {
        (Encoding::Binary | Encoding::Hex, Field::Binary(b)) => Ok(write_bytes(f, b, out)),
        (Encoding::Binary | Encoding::Hex, Field::Text(t)) => {
            let b = text_as_hex(t, f, path)?;
            Ok(write_bytes(f, &b, out))
        }
        (Encoding::Binary | Encoding::Hex, Field::Tlv(list)) => {
            Ok(write_bytes(f, list.as_bytes(), out))
        }
        (Encoding::Ascii | Encoding::Latin1 | Encoding::Ebcdic, Field::Text(t)) => {
            let len = if t.is_ascii() {
                t.len()
            } else {
                t.chars().count()
            };
            let pad = match f.pad {
                Some(p) if f.is_fixed() && len < f.max => Some((p, f.max - len)),
                _ => None,
            };
            if let Some((p, n)) = pad {
                if p.side == Side::Left {
                    push_text_pad(f, p.ch, n, out);
                }
            }
            let fast = f.encoding == Encoding::Ascii
                && if f.numeric {
                    t.bytes().all(|b| b.is_ascii_digit())
                } else {
                    t.is_ascii()
                };
            if fast {
                out.extend_from_slice(t.as_bytes());
            } else {
                write_text_chars(f, t, out, path)?;
            }
            if let Some((p, n)) = pad {
                if p.side == Side::Right {
                    push_text_pad(f, p.ch, n, out);
                }
            }
            Ok(len + pad.map_or(0, |(_, n)| n))
        }
        (Encoding::Bcd, Field::Text(t)) => write_bcd(f, t, out, path),
        (_, other) => Err(pack_err(
            path(),
            invalid(
                match f.encoding {
                    Encoding::Binary | Encoding::Hex => "bytes",
                    _ => "text",
                },
                match other {
                    Field::Text(_) => "text".into(),
                    Field::Binary(_) => "bytes".into(),
                    Field::Composite(_) => "subfields".into(),
                    Field::Tlv(_) => "TLV objects".into(),
                },
            ),
        )),
    }
}

fn write_text_chars(
    f: &FieldSpec,
    t: &str,
    out: &mut Vec<u8>,
    path: &dyn Fn() -> FieldPath,
) -> Result<(), Iso8583Error> {
    for (i, c) in t.chars().enumerate() {
        let code = c as u32;
        let ok = match f.encoding {
            Encoding::Ascii => code < 0x80,
            _ => code < 0x100,
        };
        if !ok {
            return Err(pack_err(
                path(),
                invalid(
                    format!("{:?} characters", f.encoding).to_lowercase(),
                    format!("a character outside it at position {i}"),
                ),
            ));
        }
        if f.numeric && !c.is_ascii_digit() {
            return Err(pack_err(
                path(),
                invalid(
                    format!("{} digits", t.chars().count()),
                    shown(t.as_bytes(), f.sensitivity),
                ),
            ));
        }
        out.push(if f.encoding == Encoding::Ebcdic {
            LATIN1_TO_EBCDIC[code as usize]
        } else {
            code as u8
        });
    }
    Ok(())
}

/// Packs BCD digits (two per byte, a pad nibble for an odd count); returns length units.
fn write_bcd(
    f: &FieldSpec,
    t: &str,
    out: &mut Vec<u8>,
    path: &dyn Fn() -> FieldPath,
) -> Result<usize, Iso8583Error> {
    let digits = t.as_bytes();
    let bad = || {
        pack_err(
            path(),
            invalid(
                if f.numeric {
                    "digits"
                } else {
                    "BCD digits (0-9, A-F)"
                },
                shown(digits, f.sensitivity),
            ),
        )
    };
    let nib = |c: u8| -> Option<u8> {
        if f.numeric && !c.is_ascii_digit() {
            return None;
        }
        hex_val(c)
    };
    let n = digits.len();
    let odd = n % 2 == 1;
    if odd && f.count == Count::Bytes {
        return Err(pack_err(
            path(),
            invalid("an even number of digits", format!("{n}")),
        ));
    }
    let pad = f.pad.unwrap_or(crate::spec::Pad {
        side: Side::Left,
        ch: 0,
    });
    out.reserve(n.div_ceil(2));
    let mut i = 0;
    if odd && pad.side == Side::Left {
        let d = nib(digits[0]).ok_or_else(bad)?;
        out.push(pad.ch << 4 | d);
        i = 1;
    }
    while i + 1 < n {
        let hi = nib(digits[i]).ok_or_else(bad)?;
        let lo = nib(digits[i + 1]).ok_or_else(bad)?;
        out.push(hi << 4 | lo);
        i += 2;
    }
    if i < n {
        let d = nib(digits[i]).ok_or_else(bad)?;
        out.push(d << 4 | pad.ch);
    }
    Ok(match f.count {
        Count::Digits => n,
        Count::Bytes => n / 2,
    })
}

fn push_text_pad(f: &FieldSpec, ch: u8, n: usize, out: &mut Vec<u8>) {
    let b = if f.encoding == Encoding::Ebcdic {
        LATIN1_TO_EBCDIC[ch as usize]
    } else {
        ch
    };
    out.extend(std::iter::repeat_n(b, n));
}
