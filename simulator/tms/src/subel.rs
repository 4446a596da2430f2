//! DE 62 sub-elements, NIBSS style: repeated `TT LLL value` where `TT` is a 2-character
//! alphanumeric tag, `LLL` the value's length in bytes as 3 ASCII digits (0..=999) and the
//! value the bytes themselves. Tags may repeat; order is kept; unknown tags round-trip.
//!
//! Hand-written on purpose: this codec is the product. Decoding never panics and names the
//! tag and byte offset of the first problem ([`TmsError::SubElement`]).

use crate::error::TmsError;

/// Largest value a sub-element can carry (3 length digits).
pub const MAX_VALUE: usize = 999;

/// A list of sub-elements in wire order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SubElements {
    items: Vec<([u8; 2], Vec<u8>)>,
}

impl std::fmt::Debug for SubElements {
    /// Tags and lengths only: values may hold key cryptograms.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for (t, v) in &self.items {
            l.entry(&format_args!("{}:{}", tag_text(t), v.len()));
        }
        l.finish()
    }
}

fn tag_text(tag: &[u8; 2]) -> String {
    if tag.iter().all(u8::is_ascii_alphanumeric) {
        String::from_utf8_lossy(tag).into_owned()
    } else {
        format!("0x{}", hex::encode_upper(tag))
    }
}

fn valid_tag(tag: &str) -> Option<[u8; 2]> {
    let b = tag.as_bytes();
    match b {
        [a, c] if a.is_ascii_alphanumeric() && c.is_ascii_alphanumeric() => Some([*a, *c]),
        _ => None,
    }
}

impl SubElements {
    pub fn new() -> SubElements {
        SubElements::default()
    }

    /// Appends a sub-element. The tag must be 2 ASCII alphanumerics and the value at most
    /// [`MAX_VALUE`] bytes.
    pub fn push(&mut self, tag: &str, value: impl Into<Vec<u8>>) -> Result<&mut Self, TmsError> {
        let value = value.into();
        let Some(t) = valid_tag(tag) else {
            return Err(TmsError::Encode {
                tag: tag.escape_debug().to_string(),
                reason: "a tag is 2 ASCII letters or digits".into(),
            });
        };
        if value.len() > MAX_VALUE {
            return Err(TmsError::Encode {
                tag: tag.into(),
                reason: format!("value of {} bytes exceeds {MAX_VALUE}", value.len()),
            });
        }
        self.items.push((t, value));
        Ok(self)
    }

    /// Builder form of [`SubElements::push`] for values known to fit (text this crate
    /// writes); a value that does not fit is an error at [`SubElements::encode`] time.
    pub fn with(mut self, tag: &str, value: impl Into<Vec<u8>>) -> Result<Self, TmsError> {
        self.push(tag, value)?;
        Ok(self)
    }

    /// The first value of a tag.
    pub fn get(&self, tag: &str) -> Option<&[u8]> {
        let t = valid_tag(tag)?;
        self.items
            .iter()
            .find(|(k, _)| *k == t)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of a tag as UTF-8 text.
    pub fn text(&self, tag: &str) -> Option<&str> {
        self.get(tag).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every value of a tag, in order.
    pub fn all<'a>(&'a self, tag: &str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let t = valid_tag(tag);
        self.items
            .iter()
            .filter(move |(k, _)| Some(*k) == t)
            .map(|(_, v)| v.as_slice())
    }

    /// Every (tag, value), in wire order; a tag that is not alphanumeric (only possible
    /// after decoding foreign bytes) prints as `0x....`.
    pub fn iter(&self) -> impl Iterator<Item = (String, &[u8])> + '_ {
        self.items.iter().map(|(t, v)| (tag_text(t), v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

/// The wire form of a list of sub-elements.
pub fn encode(items: &SubElements) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.items.iter().map(|(_, v)| 5 + v.len()).sum());
    for (t, v) in &items.items {
        out.extend_from_slice(t);
        // push() keeps every value at most 999 bytes
        out.extend_from_slice(format!("{:03}", v.len().min(MAX_VALUE)).as_bytes());
        out.extend_from_slice(v.get(..MAX_VALUE.min(v.len())).unwrap_or(&[]));
    }
    out
}

/// Reads the whole of DE 62. Tags must be ASCII alphanumerics, lengths 3 ASCII digits, and
/// every value complete.
pub fn decode(bytes: &[u8]) -> Result<SubElements, TmsError> {
    let mut items = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let err = |tag: String, offset: usize, reason: String| TmsError::SubElement {
            tag,
            offset,
            reason,
        };
        let Some(&[t0, t1]) = bytes.get(pos..pos + 2) else {
            return Err(err("??".into(), pos, "truncated tag (1 byte left)".into()));
        };
        let tag = [t0, t1];
        if !tag.iter().all(u8::is_ascii_alphanumeric) {
            return Err(err(
                "??".into(),
                pos,
                format!(
                    "tag must be 2 ASCII letters or digits, found {}",
                    hex::encode_upper(tag)
                ),
            ));
        }
        let name = tag_text(&tag);
        let Some(len) = bytes.get(pos + 2..pos + 5) else {
            return Err(err(
                name,
                pos + 2,
                format!(
                    "truncated length ({} of 3 digits)",
                    bytes.len().saturating_sub(pos + 2)
                ),
            ));
        };
        if !len.iter().all(u8::is_ascii_digit) {
            return Err(err(
                name,
                pos + 2,
                format!(
                    "length must be 3 ASCII digits, found {}",
                    hex::encode_upper(len)
                ),
            ));
        }
        let n = len
            .iter()
            .fold(0usize, |a, d| a * 10 + usize::from(d - b'0'));
        let start = pos + 5;
        let Some(value) = bytes.get(start..start + n) else {
            return Err(err(
                name,
                start,
                format!(
                    "value needs {n} bytes, {} left",
                    bytes.len().saturating_sub(start)
                ),
            ));
        };
        items.push((tag, value.to_vec()));
        pos = start + n;
    }
    Ok(SubElements { items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_nibss_style() {
        let s = SubElements::new()
            .with("01", "PL-0001")
            .unwrap()
            .with("20", "")
            .unwrap();
        assert_eq!(s.encode(), b"01007PL-000120000");
        let back = decode(b"01007PL-000120000").unwrap();
        assert_eq!(back, s);
        assert_eq!(back.text("01"), Some("PL-0001"));
        assert_eq!(back.text("20"), Some(""));
        assert_eq!(back.get("99"), None);
    }

    #[test]
    fn repeated_tags_keep_order() {
        let d = decode(b"70002ab70001c01001x").unwrap();
        let all: Vec<&[u8]> = d.all("70").collect();
        assert_eq!(all, vec![&b"ab"[..], &b"c"[..]]);
        assert_eq!(d.encode(), b"70002ab70001c01001x");
    }

    #[test]
    fn errors_name_tag_and_offset() {
        let e = decode(b"01003abc0").unwrap_err();
        assert_eq!(
            e,
            TmsError::SubElement {
                tag: "??".into(),
                offset: 8,
                reason: "truncated tag (1 byte left)".into()
            }
        );
        let e = decode(b"01003abc02x12").unwrap_err();
        assert!(matches!(e, TmsError::SubElement { ref tag, offset: 10, .. } if tag == "02"));
        assert!(
            e.to_string().contains("length must be 3 ASCII digits"),
            "{e}"
        );
        let e = decode(b"01010abc").unwrap_err();
        assert_eq!(
            e.to_string(),
            "DE 62 sub-element 01 at byte 5: value needs 10 bytes, 3 left"
        );
        let e = decode(b"\x00\x01003abc").unwrap_err();
        assert!(e.to_string().contains("found 0001"), "{e}");
        let e = decode(b"0100").unwrap_err();
        assert!(
            e.to_string().contains("truncated length (2 of 3 digits)"),
            "{e}"
        );
    }

    #[test]
    fn push_refuses_what_cannot_be_encoded() {
        let mut s = SubElements::new();
        assert!(s.push("1", "x").is_err());
        assert!(s.push("0-", "x").is_err());
        assert!(s.push("01", vec![0u8; 1000]).is_err());
        assert!(s.push("01", vec![0u8; 999]).is_ok());
        assert_eq!(s.encode().len(), 1004);
    }

    #[test]
    fn debug_shows_no_values() {
        let s = SubElements::new().with("70", "SECRETVALUE").unwrap();
        assert_eq!(format!("{s:?}"), "[70:11]");
    }

    fn arb_items() -> impl Strategy<Value = SubElements> {
        proptest::collection::vec(
            (
                "[0-9A-Za-z]{2}",
                proptest::collection::vec(any::<u8>(), 0..40),
            ),
            0..8,
        )
        .prop_map(|v| {
            let mut s = SubElements::new();
            for (t, val) in v {
                s.push(&t, val).unwrap();
            }
            s
        })
    }

    proptest! {
        #[test]
        fn round_trip(s in arb_items()) {
            let bytes = s.encode();
            prop_assert_eq!(decode(&bytes).unwrap(), s);
        }

        #[test]
        fn any_bytes_never_panic_and_reencode(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(s) = decode(&data) {
                prop_assert_eq!(s.encode(), data);
            }
        }
    }
}
