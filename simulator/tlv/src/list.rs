//! [`TlvList`]: BER-TLV data kept as its wire bytes, checked once, read in place.
//!
//! A message field such as ISO 8583 DE 55 is read far more often than it is taken apart:
//! a host or a terminal looks up a handful of tags (9F26, 9F36, 91) and passes the rest
//! on. Holding the objects as one buffer makes reading such a field one allocation and
//! a structural check, instead of one allocation per object; [`TlvList::items`] builds
//! the object tree when a caller needs all of it.

use std::fmt;

use crate::{encode_into, is_padding, parse, read_length, read_tag, Tag, Tlv, TlvError, MAX_DEPTH};

/// A list of BER-TLV objects held as its bytes, which [`parse`] accepts (so reading it
/// cannot fail). Equality and hashing are on the bytes: two lists are equal when they
/// encode the same objects with the same length forms and padding.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct TlvList {
    bytes: Vec<u8>,
}

impl TlvList {
    /// Takes `bytes` after checking that they parse; the error names the offset and tag.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<TlvList, TlvError> {
        if !quick_check(&bytes) {
            parse(&bytes)?;
        }
        Ok(TlvList { bytes })
    }

    /// The list of `items`, encoded.
    pub fn from_items(items: &[Tlv]) -> TlvList {
        let mut bytes = Vec::with_capacity(items.iter().map(Tlv::encoded_len).sum());
        encode_into(items, &mut bytes);
        TlvList { bytes }
    }

    /// The objects' bytes as they go on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Bytes on the wire (not the number of objects: see [`TlvList::items`]).
    pub fn wire_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The objects, parsed (padding kept as [`parse`] keeps it).
    pub fn items(&self) -> Vec<Tlv> {
        // checked when the list was made; an empty list is the only other answer
        parse(&self.bytes).unwrap_or_default()
    }

    /// The value of the first object with `tag`, searching constructed values depth first
    /// (as [`crate::find`]), when that object is primitive.
    pub fn value(&self, tag: impl Into<Tag>) -> Option<&[u8]> {
        match find_in(&self.bytes, tag.into(), 0)? {
            Found::Primitive(v) => Some(v),
            Found::Constructed => None,
        }
    }

    /// Whether an object with `tag` is present (at any depth).
    pub fn contains(&self, tag: impl Into<Tag>) -> bool {
        find_in(&self.bytes, tag.into(), 0).is_some()
    }

    /// Appends `item` after the objects already held.
    pub fn push(&mut self, item: &Tlv) {
        item.encode_into(&mut self.bytes);
    }
}

impl FromIterator<Tlv> for TlvList {
    fn from_iter<I: IntoIterator<Item = Tlv>>(items: I) -> TlvList {
        let mut list = TlvList::default();
        for item in items {
            list.push(&item);
        }
        list
    }
}

/// Shows the parsed objects (values in clear: this crate masks nothing; the ISO 8583
/// layer masks DE 55 when it shows a message).
impl fmt::Debug for TlvList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.items()).finish()
    }
}

enum Found<'a> {
    Primitive(&'a [u8]),
    Constructed,
}

/// The first object with `tag` in checked `bytes`, depth first.
fn find_in(bytes: &[u8], tag: Tag, depth: usize) -> Option<Found<'_>> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let mut pos = 0;
    while let Some(&b) = bytes.get(pos) {
        if is_padding(b) {
            pos += 1;
            continue;
        }
        let here = bytes.get(pos..)?;
        let (t, tag_len) = read_tag(here, 0).ok()?;
        let (len, _, len_len) = read_length(here.get(tag_len..)?, 0, t).ok()?;
        let start = tag_len + len_len;
        let value = here.get(start..start + len)?;
        if t == tag {
            return Some(if t.is_constructed() {
                Found::Constructed
            } else {
                Found::Primitive(value)
            });
        }
        if t.is_constructed() {
            if let Some(found) = find_in(value, tag, depth + 1) {
                return Some(found);
            }
        }
        pos += start + len;
    }
    None
}

/// A quick structural check of BER-TLV data in its common form (primitive objects, tags
/// of up to 3 bytes, lengths of up to 2 bytes, no padding). `true` only when [`parse`]
/// accepts the data too; `false` says nothing (ask [`parse`], which names what is wrong).
pub fn quick_check(b: &[u8]) -> bool {
    quick_check_with(b.len(), |i| b.get(i).copied())
}

/// [`quick_check`] over `len` bytes read through `byte` (so hex-encoded TLV can be
/// checked without decoding it into a buffer first).
pub fn quick_check_with(len: usize, byte: impl Fn(usize) -> Option<u8>) -> bool {
    let mut i = 0usize;
    while i < len {
        let Some(first) = byte(i) else { return false };
        if is_padding(first) || first & 0x20 != 0 {
            return false;
        }
        i += 1;
        if first & 0x1F == 0x1F {
            let Some(second) = byte(i) else { return false };
            i += 1;
            if second & 0x80 != 0 {
                let Some(third) = byte(i) else { return false };
                i += 1;
                if third & 0x80 != 0 {
                    return false;
                }
            }
        }
        let Some(l) = byte(i) else { return false };
        i += 1;
        let value_len = match l {
            0x00..=0x7F => l as usize,
            0x81 => match byte(i) {
                Some(x) => {
                    i += 1;
                    x as usize
                }
                None => return false,
            },
            0x82 => match (byte(i), byte(i + 1)) {
                (Some(x), Some(y)) => {
                    i += 2;
                    (x as usize) << 8 | y as usize
                }
                _ => return false,
            },
            _ => return false,
        };
        if len.saturating_sub(i) < value_len {
            return false;
        }
        i += value_len;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::find;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn a_list_is_checked_once_and_read_in_place() {
        let bytes = h("9F26 08 0102030405060708 9F36 02 0042 70 05 91 03 AABBCC");
        let list = TlvList::from_bytes(bytes.clone()).unwrap();
        assert_eq!(list.as_bytes(), &bytes[..]);
        assert_eq!(list.value(0x9F26u32), Some(&h("0102030405060708")[..]));
        assert_eq!(list.value(0x9F36u32), Some(&h("0042")[..]));
        // nested in a constructed object, found depth first
        assert_eq!(list.value(0x91u32), Some(&h("AABBCC")[..]));
        // a constructed object has no primitive value but is present
        assert_eq!(list.value(0x70u32), None);
        assert!(list.contains(0x70u32));
        assert!(!list.contains(0x9F27u32));
        assert_eq!(list.items(), parse(&bytes).unwrap());
    }

    #[test]
    fn a_bad_list_is_refused_with_the_parse_error() {
        let e = TlvList::from_bytes(h("9F26 08 0102")).unwrap_err();
        assert_eq!(e, parse(&h("9F26 08 0102")).unwrap_err());
        assert_eq!(e.offset, 0);
        assert_eq!(e.tag, Some(Tag(0x9F26)));
    }

    #[test]
    fn padding_and_long_lengths_are_kept_byte_for_byte() {
        for s in [
            "00 9F27 01 80 FF",
            "9F10 81 03 010203",
            "0000",
            "BF0C 03 9F4D 00",
        ] {
            let bytes = h(s);
            let list = TlvList::from_bytes(bytes.clone()).unwrap();
            assert_eq!(list.as_bytes(), &bytes[..], "{s}");
        }
    }

    #[test]
    fn push_appends_an_object() {
        let mut list = TlvList::from_items(&[Tlv::primitive(0x9F27u32, vec![0x80])]);
        list.push(&Tlv::primitive(
            0x91u32,
            vec![1, 2, 3, 4, 5, 6, 7, 8, 0x30, 0x30],
        ));
        assert_eq!(list.items().len(), 2);
        assert_eq!(list.value(0x91u32).map(<[u8]>::len), Some(10));
    }

    proptest! {
        /// Whatever bytes the list accepts, it accepts exactly what `parse` accepts, and
        /// its lookups agree with `find` on the parsed tree.
        #[test]
        fn agrees_with_parse(data in proptest::collection::vec(any::<u8>(), 0..64), tag in any::<u16>()) {
            let parsed = parse(&data);
            let list = TlvList::from_bytes(data.clone());
            prop_assert_eq!(parsed.is_ok(), list.is_ok());
            if let (Ok(items), Ok(list)) = (parsed, list) {
                let tag = Tag(if tag >> 8 == 0 { tag as u32 & 0xFF } else { tag as u32 });
                prop_assert_eq!(list.value(tag), find(&items, tag).and_then(Tlv::bytes));
                prop_assert_eq!(list.contains(tag), find(&items, tag).is_some());
            }
        }

        /// The quick check never accepts what `parse` refuses: EMV-like objects as
        /// encoded, with one byte changed, or cut short.
        #[test]
        fn quick_check_is_never_wrong(
            objects in proptest::collection::vec(
                (0..6usize, proptest::collection::vec(any::<u8>(), 0..300)), 0..6),
            (at, byte) in any::<(u16, u8)>(),
            how in 0..3u8,
        ) {
            let tags = [0x9F26u32, 0x82, 0x5F2A, 0x9F8101, 0x70, 0xDF8F0101];
            let items: Vec<Tlv> = objects
                .into_iter()
                .map(|(t, v)| Tlv::primitive(tags[t], v))
                .collect();
            let mut b = crate::encode(&items);
            if !b.is_empty() {
                let i = at as usize % b.len();
                match how {
                    1 => b[i] = byte,
                    2 => b.truncate(i),
                    _ => {}
                }
            }
            if quick_check(&b) {
                prop_assert!(parse(&b).is_ok(), "{:02X?}", b);
            }
        }
    }
}
