//! A borrowed view of a packed message: checked completely up front, each field decoded
//! only when asked. For callers that read a few fields of many messages (a load
//! generator matching answers by STAN, a router looking at the MTI and DE 3) and should
//! not pay for a [`Message`] that owns every value.

use std::borrow::Cow;
use std::fmt;

use crate::codec::{read_field, read_length, wire_len, Reader};
use crate::error::{FieldPath, Iso8583Error};
use crate::message::{Field, Message};
use crate::mti::Mti;
use crate::spec::{Encoding, FieldSpec, Format, Spec};

/// A packed message, checked as completely as [`Spec::unpack`] checks it (the same
/// errors for the same bytes), whose fields stay in the input until asked for. No value
/// is copied when it is made; [`MessageRef::to_message`] builds the owned [`Message`].
///
/// Debug shows the MTI and the field numbers, never a value.
#[derive(Clone)]
pub struct MessageRef<'a> {
    spec: &'a Spec,
    bytes: &'a [u8],
    mti: Mti,
    /// Field number and the offset of its first byte (its length prefix), ascending.
    fields: Vec<(u16, u32)>,
}

impl Spec {
    /// Checks a message (`bytes` from the MTI onwards) like [`Spec::unpack`], with the
    /// same errors, and returns a view that decodes fields on demand. One allocation (the
    /// field offsets) in the common case, however many fields the message has.
    pub fn unpack_ref<'a>(&'a self, bytes: &'a [u8]) -> Result<MessageRef<'a>, Iso8583Error> {
        self.walk::<false, _>(
            bytes,
            |mti, n| MessageRef {
                spec: self,
                bytes,
                mti,
                fields: Vec::with_capacity(n),
            },
            |m, de, start, _| m.fields.push((de, start as u32)),
        )
    }
}

impl<'a> MessageRef<'a> {
    pub fn mti(&self) -> Mti {
        self.mti
    }

    /// The bytes the view reads (the MTI onwards).
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn has(&self, de: u16) -> bool {
        self.index(de).is_some()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Field numbers present, ascending.
    pub fn field_numbers(&self) -> impl Iterator<Item = u16> + '_ {
        self.fields.iter().map(|(de, _)| *de)
    }

    fn index(&self, de: u16) -> Option<usize> {
        self.fields.binary_search_by_key(&de, |(d, _)| *d).ok()
    }

    /// The field's spec and a reader at its first byte.
    fn at(&self, de: u16) -> Option<(&'a FieldSpec, Reader<'a>)> {
        let (_, start) = self.fields.get(self.index(de)?)?;
        let spec = self.spec.field(de)?;
        Some((
            spec,
            Reader {
                data: self.bytes,
                pos: *start as usize,
                text_run: None,
            },
        ))
    }

    /// A field's value bytes as they are on the wire (after its length prefix; BCD still
    /// packed, hex still as characters). Card data in clear: do not log it.
    pub fn raw(&self, de: u16) -> Option<&'a [u8]> {
        let (f, mut r) = self.at(de)?;
        let path = || FieldPath::de(de);
        let units = read_length(f, &mut r, &path).ok()?;
        let start = r.pos;
        self.bytes.get(start..start + wire_len(f, units))
    }

    /// A text field: borrowed from the input where the wire holds it as ASCII (no copy),
    /// decoded (BCD, EBCDIC, Latin-1) otherwise. `None` for absent and non-text fields.
    pub fn text(&self, de: u16) -> Option<Cow<'a, str>> {
        let f = self.spec.field(de)?;
        if f.encoding == Encoding::Ascii && matches!(f.format, Format::Plain) {
            // checked to be ASCII when the view was made
            return std::str::from_utf8(self.raw(de)?).ok().map(Cow::Borrowed);
        }
        match self.get(de)? {
            Field::Text(s) => Some(Cow::Owned(s.into_string())),
            _ => None,
        }
    }

    /// A field's value, decoded (owned).
    pub fn get(&self, de: u16) -> Option<Field> {
        let (f, mut r) = self.at(de)?;
        // checked when the view was made: this read does not fail
        read_field::<true>(f, &mut r, &|| FieldPath::de(de))
            .ok()
            .flatten()
    }

    /// The owned message, equal to what [`Spec::unpack`] returns for the same bytes.
    pub fn to_message(&self) -> Message {
        let mut m = Message::with_capacity(self.mti, self.fields.len());
        for (de, _) in &self.fields {
            if let Some(f) = self.get(*de) {
                m.push_sorted(*de, f);
            }
        }
        m
    }
}

impl From<&MessageRef<'_>> for Message {
    fn from(view: &MessageRef<'_>) -> Message {
        view.to_message()
    }
}

/// `MessageRef { mti: 0200, fields: [2, 3, 4, ...] }`: no values, so nothing to mask.
impl fmt::Debug for MessageRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageRef")
            .field("mti", &self.mti.as_str())
            .field("fields", &self.field_numbers().collect::<Vec<_>>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::purchase_0200_for;

    #[test]
    fn the_view_reads_what_unpack_reads_for_every_builtin_spec() {
        for name in ["iso87ascii", "iso87binary", "iso87binary-tpdu"] {
            let spec = Spec::builtin(name).unwrap();
            let msg = purchase_0200_for(&spec);
            let bytes = spec.pack(&msg).unwrap();
            let view = spec.unpack_ref(&bytes).unwrap();
            assert_eq!(view.mti(), msg.mti, "{name}");
            assert_eq!(view.len(), msg.len(), "{name}");
            assert_eq!(view.to_message(), spec.unpack(&bytes).unwrap(), "{name}");
            assert_eq!(view.to_message(), msg, "{name}");
            for (de, field) in msg.fields() {
                assert_eq!(view.get(de).as_ref(), Some(field), "{name} DE {de}");
                assert_eq!(view.text(de).as_deref(), field.as_text(), "{name} DE {de}");
            }
            assert!(!view.has(5) && view.get(5).is_none() && view.raw(5).is_none());
        }
    }

    #[test]
    fn ascii_text_is_borrowed_and_raw_is_the_wire_value() {
        let spec = Spec::builtin("iso87ascii").unwrap();
        let bytes = spec.pack(&crate::samples::purchase_0200()).unwrap();
        let view = spec.unpack_ref(&bytes).unwrap();
        assert!(matches!(view.text(11), Some(Cow::Borrowed("004211"))));
        assert_eq!(
            view.raw(2),
            Some(poslab_sensitive::test_cards::visa().as_bytes())
        );
        assert_eq!(view.raw(52).map(<[u8]>::len), Some(16));
        assert_eq!(view.text(52), None);
    }

    #[test]
    fn errors_are_those_of_unpack() {
        let spec = Spec::builtin("iso87binary").unwrap();
        let bytes = spec.pack(&crate::samples::purchase_0200()).unwrap();
        for cut in 0..bytes.len() {
            let short = &bytes[..cut];
            assert_eq!(
                spec.unpack_ref(short).map(|v| v.to_message()),
                spec.unpack(short),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn debug_shows_no_values() {
        let spec = Spec::builtin("iso87ascii").unwrap();
        let bytes = spec.pack(&crate::samples::purchase_0200()).unwrap();
        let shown = format!("{:?}", spec.unpack_ref(&bytes).unwrap());
        assert!(
            shown.starts_with("MessageRef { mti: \"0200\", fields: [2, 3, 4,"),
            "{shown}"
        );
        assert!(!shown.contains("476173"), "{shown}");
    }

    #[test]
    fn the_sample_icc_data_takes_the_quick_tlv_path() {
        let icc = poslab_tlv::encode(&crate::samples::icc_data());
        assert!(poslab_tlv::quick_check(&icc));
    }
}
