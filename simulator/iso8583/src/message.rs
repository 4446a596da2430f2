//! Messages and field values, masked by construction in Debug, Display and JSON.

use std::collections::BTreeMap;
use std::fmt;

use compact_str::CompactString;
use poslab_sensitive::{mask_pan, mask_track2, Secret, SecretKind};
use poslab_tlv::{Tag, Tlv, TlvList, Value as TlvValue};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::mti::Mti;
use crate::spec::Spec;

/// How sensitive a field is; decides how it is shown (never how it is packed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    /// Shown in clear.
    #[default]
    None,
    /// First 6 and last 4 digits shown.
    Pan,
    Track1,
    /// PAN part masked as a PAN, everything after the separator starred.
    Track2,
    Track3,
    PinBlock,
    Key,
    Mac,
    Cvv,
    /// BER-TLV chip data: tags and lengths shown, values of cryptograms, keys, track
    /// equivalents and issuer data masked (PAN tag 5A masked as a PAN).
    Emv,
}

impl Sensitivity {
    /// The classes used where no spec is at hand (Debug, Display, Serialize of a
    /// [`Message`]): DE 2/34 pan, 35 track2, 36 track3, 45 track1, 52 PIN block,
    /// 53/96 key, 55 EMV, 64/128 MAC.
    pub fn standard(de: u16) -> Sensitivity {
        match de {
            2 | 34 => Sensitivity::Pan,
            35 => Sensitivity::Track2,
            36 => Sensitivity::Track3,
            45 => Sensitivity::Track1,
            52 => Sensitivity::PinBlock,
            53 | 96 => Sensitivity::Key,
            55 => Sensitivity::Emv,
            64 | 128 => Sensitivity::Mac,
            _ => Sensitivity::None,
        }
    }

    pub fn is_sensitive(self) -> bool {
        self != Sensitivity::None
    }

    fn secret_kind(self) -> SecretKind {
        match self {
            Sensitivity::Track1 => SecretKind::Track1,
            Sensitivity::Track2 => SecretKind::Track2,
            Sensitivity::Track3 => SecretKind::Track3,
            Sensitivity::PinBlock => SecretKind::PinBlock,
            Sensitivity::Key => SecretKind::Key,
            Sensitivity::Mac => SecretKind::Mac,
            Sensitivity::Cvv => SecretKind::Cvv,
            _ => SecretKind::Other,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sensitivity::None => "none",
            Sensitivity::Pan => "pan",
            Sensitivity::Emv => "emv",
            other => other.secret_kind().label(),
        }
    }
}

/// EMV tags whose values are never shown (cryptograms, issuer data, track equivalents,
/// names, dynamic data, CVC3). 5A (PAN) and 57 (track 2 equivalent) are masked like DE 2
/// and DE 35 instead.
pub const EMV_MASKED_TAGS: &[(u32, SecretKind)] = &[
    (0x9F26, SecretKind::Cryptogram), // application cryptogram
    (0x9F10, SecretKind::Cryptogram), // issuer application data
    (0x9F4B, SecretKind::Cryptogram), // signed dynamic application data
    (0x9F45, SecretKind::Cryptogram), // data authentication code
    (0x9F4C, SecretKind::Cryptogram), // ICC dynamic number
    (0x91, SecretKind::Cryptogram),   // issuer authentication data (ARPC)
    (0x71, SecretKind::Key),          // issuer script template 1
    (0x72, SecretKind::Key),          // issuer script template 2
    (0x86, SecretKind::Key),          // issuer script command
    (0x56, SecretKind::Track1),       // track 1 equivalent
    (0x9F1F, SecretKind::Track1),     // track 1 discretionary data
    (0x9F20, SecretKind::Track2),     // track 2 discretionary data
    (0x9F6B, SecretKind::Track2),     // track 2 data (contactless)
    (0x5F20, SecretKind::Other),      // cardholder name
    (0x9F0B, SecretKind::Other),      // cardholder name extended
    (0x9F60, SecretKind::Cvv),        // CVC3 track 1
    (0x9F61, SecretKind::Cvv),        // CVC3 track 2
    (0x99, SecretKind::PinBlock),     // transaction PIN data
];

fn emv_tag_kind(tag: Tag) -> Option<SecretKind> {
    EMV_MASKED_TAGS
        .iter()
        .find(|(t, _)| *t == tag.0)
        .map(|(_, k)| *k)
}

/// A field value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Field {
    /// ASCII, EBCDIC and BCD fields (BCD digits as text; nibbles A-F as letters, so a
    /// track 2 separator reads "D").
    Text(CompactString),
    /// Binary and hex-ASCII fields.
    Binary(Vec<u8>),
    /// Positional subfields, numbered from 1.
    Composite(BTreeMap<u16, Field>),
    /// BER-TLV fields (DE 55), unknown tags kept: held as their bytes, checked to parse
    /// ([`TlvList::items`] gives the objects, [`TlvList::value`] one tag's value).
    Tlv(TlvList),
}

impl Field {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Field::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_binary(&self) -> Option<&[u8]> {
        match self {
            Field::Binary(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_tlv(&self) -> Option<&TlvList> {
        match self {
            Field::Tlv(t) => Some(t),
            _ => None,
        }
    }
    pub fn as_composite(&self) -> Option<&BTreeMap<u16, Field>> {
        match self {
            Field::Composite(c) => Some(c),
            _ => None,
        }
    }
    /// A subfield of a composite field.
    pub fn subfield(&self, n: u16) -> Option<&Field> {
        self.as_composite().and_then(|c| c.get(&n))
    }

    /// The value as JSON, masked for `sensitivity` (strings, hex strings, objects).
    pub fn to_json(&self, sensitivity: Sensitivity) -> serde_json::Value {
        serde_json::to_value(FieldView {
            field: self,
            sens: sensitivity,
            masked: true,
        })
        .unwrap_or(serde_json::Value::Null)
    }

    /// The value as JSON in clear. For `--unmasked` only.
    pub fn to_json_unmasked(&self) -> serde_json::Value {
        serde_json::to_value(FieldView {
            field: self,
            sens: Sensitivity::None,
            masked: false,
        })
        .unwrap_or(serde_json::Value::Null)
    }

    /// The value as one line of text, masked for `sensitivity`.
    pub fn display(&self, sensitivity: Sensitivity) -> String {
        let mut s = String::new();
        write_field(&mut s, self, sensitivity, true);
        s
    }
}

impl From<&str> for Field {
    fn from(s: &str) -> Field {
        Field::Text(s.into())
    }
}
impl From<String> for Field {
    fn from(s: String) -> Field {
        Field::Text(s.into())
    }
}
impl From<&String> for Field {
    fn from(s: &String) -> Field {
        Field::Text(s.as_str().into())
    }
}
impl From<CompactString> for Field {
    fn from(s: CompactString) -> Field {
        Field::Text(s)
    }
}
impl From<Vec<u8>> for Field {
    fn from(b: Vec<u8>) -> Field {
        Field::Binary(b)
    }
}
impl From<&[u8]> for Field {
    fn from(b: &[u8]) -> Field {
        Field::Binary(b.to_vec())
    }
}
impl<const N: usize> From<[u8; N]> for Field {
    fn from(b: [u8; N]) -> Field {
        Field::Binary(b.to_vec())
    }
}
impl From<Vec<Tlv>> for Field {
    fn from(t: Vec<Tlv>) -> Field {
        Field::Tlv(TlvList::from_items(&t))
    }
}
impl From<TlvList> for Field {
    fn from(t: TlvList) -> Field {
        Field::Tlv(t)
    }
}
impl From<BTreeMap<u16, Field>> for Field {
    fn from(c: BTreeMap<u16, Field>) -> Field {
        Field::Composite(c)
    }
}

/// Debug without a field number: text with long digit runs masked, binary as its length,
/// TLV as tags with masked values. Safe for logs.
impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        match self {
            Field::Text(t) => {
                s.push('"');
                s.push_str(&mask_free_text(t));
                s.push('"');
            }
            Field::Binary(b) => s.push_str(&format!("<{} bytes>", b.len())),
            other => write_field(&mut s, other, Sensitivity::Emv, true),
        }
        f.write_str(&s)
    }
}

/// Masks text of unknown sensitivity: runs of 13 to 19 digits as a PAN, longer runs fully.
pub(crate) fn mask_free_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        match run.len() {
            13..=19 => out.push_str(&mask_pan(run)),
            n if n > 19 => out.extend(std::iter::repeat_n('*', n)),
            _ => out.push_str(run),
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

fn masked_text(text: &str, sens: Sensitivity) -> String {
    match sens {
        Sensitivity::None => text.to_owned(),
        Sensitivity::Pan => mask_pan(text),
        Sensitivity::Track2 => mask_track2(text),
        Sensitivity::Emv => mask_free_text(text),
        other => Secret::new(other.secret_kind(), text.as_bytes()).masked(),
    }
}

fn masked_binary(bytes: &[u8], sens: Sensitivity) -> String {
    match sens {
        Sensitivity::None => hex_upper(bytes),
        Sensitivity::Pan => format!("<pan: {} bytes>", bytes.len()),
        Sensitivity::Emv => format!("<emv: {} bytes>", bytes.len()),
        other => Secret::new(other.secret_kind(), bytes).masked(),
    }
}

fn masked_tlv_value(tlv: &Tlv, bytes: &[u8]) -> String {
    match tlv.tag.0 {
        0x5A => mask_pan(&hex_upper(bytes)),
        0x57 => mask_track2(&hex_upper(bytes)),
        _ => match emv_tag_kind(tlv.tag) {
            Some(kind) => Secret::new(kind, bytes).masked(),
            None => hex_upper(bytes),
        },
    }
}

fn write_field(out: &mut String, field: &Field, sens: Sensitivity, masked: bool) {
    let sens = if masked { sens } else { Sensitivity::None };
    match field {
        Field::Text(t) => out.push_str(&masked_text(t, sens)),
        Field::Binary(b) => out.push_str(&masked_binary(b, sens)),
        Field::Composite(c) => {
            out.push('{');
            for (i, (n, sub)) in c.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&format!("{n}: "));
                write_field(out, sub, sens, masked);
            }
            out.push('}');
        }
        Field::Tlv(list) => write_tlvs(out, &list.items(), masked),
    }
}

fn write_tlvs(out: &mut String, items: &[Tlv], masked: bool) {
    out.push('[');
    for (i, t) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&t.tag.to_string());
        out.push(' ');
        let secret = masked && emv_tag_kind(t.tag).is_some();
        match &t.value {
            TlvValue::Primitive(b) if masked => out.push_str(&masked_tlv_value(t, b)),
            TlvValue::Primitive(b) => out.push_str(&hex_upper(b)),
            TlvValue::Constructed(c) if secret => {
                out.push_str(&masked_tlv_value(t, &poslab_tlv::encode(c)));
            }
            TlvValue::Constructed(c) => write_tlvs(out, c, masked),
        }
    }
    out.push(']');
}

/// Serializes a field value (masked or not) without building intermediate JSON.
struct FieldView<'a> {
    field: &'a Field,
    sens: Sensitivity,
    masked: bool,
}

impl Serialize for FieldView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sens = if self.masked {
            self.sens
        } else {
            Sensitivity::None
        };
        match self.field {
            Field::Text(t) => s.serialize_str(&masked_text(t, sens)),
            Field::Binary(b) => s.serialize_str(&masked_binary(b, sens)),
            Field::Composite(c) => {
                let mut map = s.serialize_map(Some(c.len()))?;
                for (n, sub) in c {
                    map.serialize_entry(
                        &n.to_string(),
                        &FieldView {
                            field: sub,
                            sens,
                            masked: self.masked,
                        },
                    )?;
                }
                map.end()
            }
            Field::Tlv(list) => TlvView {
                items: &list.items(),
                masked: self.masked,
            }
            .serialize(s),
        }
    }
}

/// TLV objects as a JSON object: tag → hex value, constructed tags → nested objects. A tag
/// that repeats in one list gets a "#2", "#3"... suffix.
struct TlvView<'a> {
    items: &'a [Tlv],
    masked: bool,
}

impl Serialize for TlvView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.items.len()))?;
        let mut seen: Vec<Tag> = Vec::new();
        for t in self.items {
            let n = seen.iter().filter(|x| **x == t.tag).count();
            seen.push(t.tag);
            let key = if n == 0 {
                t.tag.to_string()
            } else {
                format!("{}#{}", t.tag, n + 1)
            };
            let secret = self.masked && emv_tag_kind(t.tag).is_some();
            match &t.value {
                TlvValue::Primitive(b) => {
                    let v = if self.masked {
                        masked_tlv_value(t, b)
                    } else {
                        hex_upper(b)
                    };
                    map.serialize_entry(&key, &v)?;
                }
                TlvValue::Constructed(c) if secret => {
                    map.serialize_entry(&key, &masked_tlv_value(t, &poslab_tlv::encode(c)))?;
                }
                TlvValue::Constructed(c) => map.serialize_entry(
                    &key,
                    &TlvView {
                        items: c,
                        masked: self.masked,
                    },
                )?,
            }
        }
        map.end()
    }
}

/// An ISO 8583 message: an MTI and data elements 2..=192. Bitmaps are derived when the
/// message is packed, never stored. Debug, Display and Serialize are masked.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Message {
    pub mti: Mti,
    /// Sorted by field number, unique.
    fields: Vec<(u16, Field)>,
}

impl Message {
    pub fn new(mti: Mti) -> Message {
        Message {
            mti,
            fields: Vec::new(),
        }
    }

    pub(crate) fn with_capacity(mti: Mti, n: usize) -> Message {
        Message {
            mti,
            fields: Vec::with_capacity(n),
        }
    }

    /// Appends a field known to be greater than every field present (unpack's fast path).
    pub(crate) fn push_sorted(&mut self, de: u16, field: Field) {
        debug_assert!(self.fields.last().is_none_or(|(d, _)| *d < de));
        self.fields.push((de, field));
    }

    fn index(&self, de: u16) -> Result<usize, usize> {
        self.fields.binary_search_by_key(&de, |(d, _)| *d)
    }

    pub fn get(&self, de: u16) -> Option<&Field> {
        self.index(de).ok().map(|i| &self.fields[i].1)
    }

    pub fn get_mut(&mut self, de: u16) -> Option<&mut Field> {
        match self.index(de) {
            Ok(i) => Some(&mut self.fields[i].1),
            Err(_) => None,
        }
    }

    /// A text field (ASCII, EBCDIC, BCD).
    pub fn text(&self, de: u16) -> Option<&str> {
        self.get(de).and_then(Field::as_text)
    }

    /// A binary field.
    pub fn binary(&self, de: u16) -> Option<&[u8]> {
        self.get(de).and_then(Field::as_binary)
    }

    /// A BER-TLV field's objects.
    pub fn tlv(&self, de: u16) -> Option<&TlvList> {
        self.get(de).and_then(Field::as_tlv)
    }

    pub fn has(&self, de: u16) -> bool {
        self.index(de).is_ok()
    }

    /// Sets (or replaces) a field. Field numbers outside 2..=192 are refused when packing.
    pub fn set(&mut self, de: u16, value: impl Into<Field>) -> &mut Self {
        let value = value.into();
        match self.index(de) {
            Ok(i) => self.fields[i].1 = value,
            Err(i) => self.fields.insert(i, (de, value)),
        }
        self
    }

    pub fn remove(&mut self, de: u16) -> Option<Field> {
        match self.index(de) {
            Ok(i) => Some(self.fields.remove(i).1),
            Err(_) => None,
        }
    }

    /// Fields in ascending order.
    pub fn fields(&self) -> impl Iterator<Item = (u16, &Field)> + '_ {
        self.fields.iter().map(|(d, f)| (*d, f))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// JSON object `{"mti": "0200", "2": "411111******1111", ...}`, masked per the
    /// spec's sensitivity classes.
    pub fn to_json(&self, spec: &Spec) -> serde_json::Value {
        serde_json::to_value(self.json_view(spec)).unwrap_or(serde_json::Value::Null)
    }

    /// JSON object in clear. For an explicit `--unmasked` only.
    pub fn to_json_unmasked(&self) -> serde_json::Value {
        serde_json::to_value(JsonView {
            msg: self,
            spec: None,
            masked: false,
        })
        .unwrap_or(serde_json::Value::Null)
    }

    /// A serializable view, masked per `spec`, that writes fields in numeric order
    /// (serde_json's `Value` sorts keys as strings; writing this view does not).
    pub fn json_view<'a>(&'a self, spec: &'a Spec) -> JsonView<'a> {
        JsonView {
            msg: self,
            spec: Some(spec),
            masked: true,
        }
    }

    /// Like [`Message::json_view`], in clear.
    pub fn json_view_unmasked(&self) -> JsonView<'_> {
        JsonView {
            msg: self,
            spec: None,
            masked: false,
        }
    }
}

/// See [`Message::json_view`].
pub struct JsonView<'a> {
    msg: &'a Message,
    spec: Option<&'a Spec>,
    masked: bool,
}

impl JsonView<'_> {
    /// The entries this view writes after "mti" (field number, masked value), for callers
    /// that embed them in a larger object.
    pub fn serialize_fields<M: SerializeMap>(&self, map: &mut M) -> Result<(), M::Error> {
        let mut key = String::new();
        for (de, field) in self.msg.fields() {
            let sens = match self.spec {
                Some(spec) => spec.field_sensitivity(de),
                None => Sensitivity::standard(de),
            };
            key.clear();
            key.push_str(&de.to_string());
            map.serialize_entry(
                &key,
                &FieldView {
                    field,
                    sens,
                    masked: self.masked,
                },
            )?;
        }
        Ok(())
    }
}

impl Serialize for JsonView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.msg.len() + 1))?;
        map.serialize_entry("mti", &self.msg.mti)?;
        self.serialize_fields(&mut map)?;
        map.end()
    }
}

/// Masked with the standard classes ([`Sensitivity::standard`]).
impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        JsonView {
            msg: self,
            spec: None,
            masked: true,
        }
        .serialize(s)
    }
}

/// `Message { mti: 0200, 2: 411111******1111, 3: 000000, 55: [9F26 <cryptogram: 8 bytes>] }`,
/// masked with the standard classes.
impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message {{ mti: {}", self.mti)?;
        for (de, field) in self.fields() {
            let mut s = String::new();
            write_field(&mut s, field, Sensitivity::standard(de), true);
            if matches!(field, Field::Text(_)) && Sensitivity::standard(de) == Sensitivity::None {
                s = mask_free_text(&s);
            }
            write!(f, ", {de}: {s}")?;
        }
        f.write_str(" }")
    }
}

/// One line: `0200 2=411111******1111 3=000000 ...`, masked with the standard classes.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mti.as_str())?;
        for (de, field) in self.fields() {
            let mut s = String::new();
            write_field(&mut s, field, Sensitivity::standard(de), true);
            if matches!(field, Field::Text(_)) && Sensitivity::standard(de) == Sensitivity::None {
                s = mask_free_text(&s);
            }
            write!(f, " {de}={s}")?;
        }
        Ok(())
    }
}

/// The canonical bytes a message MAC covers, the same for every dialect: the MTI, then
/// for every field in number order except 64 and 128, its number as 3 ASCII digits then
/// its bytes (text as ASCII, binary as is, TLV encoded, composites as their subfields the
/// same way). Terminal and host sign and check this form.
pub fn mac_input(message: &Message) -> Vec<u8> {
    let mut out = message.mti.as_str().as_bytes().to_vec();
    for (de, field) in message.fields() {
        if de == 64 || de == 128 {
            continue;
        }
        out.extend_from_slice(format!("{de:03}").as_bytes());
        field_data(field, &mut out);
    }
    out
}

fn field_data(field: &Field, out: &mut Vec<u8>) {
    match field {
        Field::Text(t) => out.extend_from_slice(t.as_bytes()),
        Field::Binary(b) => out.extend_from_slice(b),
        Field::Tlv(list) => out.extend_from_slice(list.as_bytes()),
        Field::Composite(subs) => {
            for (n, f) in subs {
                out.extend_from_slice(format!("{n:03}").as_bytes());
                field_data(f, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card() -> &'static str {
        poslab_sensitive::test_cards::visa()
    }

    fn sample() -> Message {
        // the card number as tag 5A carries it: BCD, two digits a byte
        let bcd: Vec<u8> = card()
            .as_bytes()
            .chunks(2)
            .map(|p| (p[0] - b'0') << 4 | (p[1] - b'0'))
            .collect();
        let mut m = Message::new(Mti::new("0200").unwrap());
        m.set(2, card())
            .set(3, "000000")
            .set(35, format!("{}=25121011234567890", card()))
            .set(52, vec![0x12u8, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0])
            .set(
                55,
                vec![
                    Tlv::primitive(0x9F26, vec![0xAA; 8]),
                    Tlv::primitive(0x9F27, vec![0x80]),
                    Tlv::primitive(0x5A, bcd),
                ],
            );
        m
    }

    #[test]
    fn fields_are_kept_sorted_and_replaceable() {
        let mut m = sample();
        m.set(4, "000000001000").set(3, "200000");
        let order: Vec<u16> = m.fields().map(|(d, _)| d).collect();
        assert_eq!(order, vec![2, 3, 4, 35, 52, 55]);
        assert_eq!(m.text(3), Some("200000"));
        assert_eq!(m.remove(4), Some(Field::Text("000000001000".into())));
        assert!(!m.has(4));
        assert_eq!(m.binary(52).map(<[u8]>::len), Some(8));
        assert_eq!(m.tlv(55).map(|l| l.items().len()), Some(3));
    }

    #[test]
    fn debug_display_and_serialize_never_show_card_data() {
        let m = sample();
        for shown in [
            format!("{m:?}"),
            m.to_string(),
            serde_json::to_string(&m).unwrap(),
        ] {
            assert!(!shown.contains(card()), "{shown}");
            assert!(!shown.contains("25121011234567890"), "{shown}");
            assert!(!shown.contains("123456789ABCDEF0"), "{shown}");
            assert!(!shown.contains("AAAAAAAA"), "{shown}");
            assert!(shown.contains("476173******0010"), "{shown}");
        }
        assert_eq!(
            m.to_string(),
            "0200 2=476173******0010 3=000000 35=476173******0010=***************** \
             52=<pin-block: 8 bytes> 55=[9F26 <cryptogram: 8 bytes>, 9F27 80, 5A 476173******0010]"
        );
    }

    #[test]
    fn unmasked_json_shows_everything() {
        let j = sample().to_json_unmasked();
        assert_eq!(j["2"], card());
        assert_eq!(j["52"], "123456789ABCDEF0");
        assert_eq!(j["55"]["9F26"], "AAAAAAAAAAAAAAAA");
        assert_eq!(j["mti"], "0200");
    }

    #[test]
    fn field_debug_masks_long_digit_runs() {
        assert_eq!(
            format!(
                "{:?}",
                Field::from(format!("{}=25121011234567890123", card()))
            ),
            "\"476173******0010=********************\""
        );
        assert_eq!(format!("{:?}", Field::from(vec![1u8, 2])), "<2 bytes>");
    }
}
