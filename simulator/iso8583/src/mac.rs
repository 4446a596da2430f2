//! The bytes a message MAC covers, as real hosts compute them: the message as packed on
//! the wire (MTI, bitmaps with the MAC field's bit set, then every field in order) up to,
//! not including, the MAC field (DE 64, or DE 128 when the message has secondary-bitmap
//! fields). Framing (length prefix, TPDU or other header, trailer) is not covered.
//!
//! The MAC field is always the message's last field: a message with fields after it
//! cannot be MACed this way and is an error.

use crate::error::{FieldPath, Iso8583Error, Location, Reason};
use crate::message::{Field, Message};
use crate::spec::Spec;

fn mac_err(de: u16, expected: &str, found: String) -> Iso8583Error {
    Iso8583Error::Pack {
        location: Location::Field(FieldPath::de(de)),
        reason: Reason::Invalid {
            expected: expected.to_string(),
            found,
        },
    }
}

impl Spec {
    /// The field a message's MAC goes in: DE 128 when the message has any field from 65
    /// to 127 (it has a secondary bitmap) and the dialect defines 128, else DE 64.
    pub fn mac_field(&self, msg: &Message) -> u16 {
        let secondary = msg.fields().any(|(de, _)| (65..128).contains(&de));
        if secondary && self.field(128).is_some() {
            128
        } else {
            64
        }
    }

    /// The bytes the MAC of `msg` covers (see the module docs) and the MAC field. Any MAC
    /// already in `msg` (DE 64 or 128) is ignored.
    pub fn mac_bytes(&self, msg: &Message) -> Result<(u16, Vec<u8>), Iso8583Error> {
        let de = self.mac_field(msg);
        if let Some((last, _)) = msg.fields().filter(|(n, _)| *n != 64 && *n != 128).last() {
            if last > de {
                return Err(mac_err(
                    last,
                    "no field after the MAC field",
                    format!("DE {last} after DE {de}"),
                ));
            }
        }
        let mut out = Vec::with_capacity(256);
        self.pack_upto(msg, Some(de), &mut out)?;
        Ok((de, out))
    }

    /// The bytes a received message's MAC covers, cut from the bytes as they came off the
    /// wire (`wire`: MTI onwards, framing removed; `msg`: what they decoded to). The MAC
    /// field must be the last field. Returns the MAC field, its value and the covered bytes.
    pub fn mac_bytes_of_wire<'w>(
        &self,
        wire: &'w [u8],
        msg: &Message,
    ) -> Result<(u16, Vec<u8>, &'w [u8]), Iso8583Error> {
        let Some((de, field)) = msg.fields().last() else {
            return Err(mac_err(64, "a MAC field", "an empty message".into()));
        };
        if de != 64 && de != 128 {
            return Err(mac_err(
                de,
                "the MAC (DE 64 or 128) as the last field",
                format!("DE {de}"),
            ));
        }
        let value = match field {
            Field::Binary(b) => b.clone(),
            Field::Text(t) => from_hex(t).ok_or_else(|| {
                mac_err(de, "a MAC of hex digits", format!("{} characters", t.len()))
            })?,
            _ => return Err(mac_err(de, "a binary MAC", "a structured field".into())),
        };
        let encoded = self.pack_field(de, field)?;
        let covered = wire
            .len()
            .checked_sub(encoded.len())
            .and_then(|n| wire.get(..n))
            .filter(|_| wire.ends_with(&encoded))
            .ok_or_else(|| {
                mac_err(
                    de,
                    "the wire bytes to end with the MAC field",
                    format!("{} bytes", wire.len()),
                )
            })?;
        Ok((de, value, covered))
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Mti;

    fn sale() -> Message {
        let mut m = Message::new(Mti::new("0200").unwrap());
        m.set(2, "4761739001010010")
            .set(3, "000000")
            .set(4, "000000004250")
            .set(11, "000123")
            .set(41, "TERM0001")
            .set(52, vec![0x12u8, 0x34, 0x56, 0x78, 0x9A, 0xBC, 0xDE, 0xF0]);
        m
    }

    #[test]
    fn covers_the_packed_bytes_with_the_mac_bit_set() {
        for name in ["iso87ascii", "iso87binary"] {
            let spec = Spec::builtin(name).unwrap();
            let m = sale();
            let (de, covered) = spec.mac_bytes(&m).unwrap();
            assert_eq!(de, 64);
            let mut with_mac = m.clone();
            with_mac.set(64, vec![0xA5u8; 8]);
            let wire = spec.pack(&with_mac).unwrap();
            assert!(wire.starts_with(&covered), "{name}");
            let (de2, value, cut) = spec.mac_bytes_of_wire(&wire, &with_mac).unwrap();
            assert_eq!((de2, value, cut), (64, vec![0xA5; 8], covered.as_slice()));
            // without the MAC bit the packed message differs in its bitmap only
            let plain = spec.pack(&m).unwrap();
            assert_ne!(plain.get(..covered.len()), Some(covered.as_slice()));
        }
    }

    #[test]
    fn secondary_fields_move_the_mac_to_128() {
        let spec = Spec::builtin("iso87ascii").unwrap();
        let mut m = Message::new(Mti::new("0800").unwrap());
        m.set(11, "000001").set(41, "TERM0001").set(70, "001");
        assert_eq!(spec.mac_field(&m), 128);
        let (de, covered) = spec.mac_bytes(&m).unwrap();
        assert_eq!(de, 128);
        m.set(128, vec![1u8; 8]);
        let wire = spec.pack(&m).unwrap();
        assert_eq!(
            spec.mac_bytes_of_wire(&wire, &m).unwrap().2,
            covered.as_slice()
        );
    }

    proptest::proptest! {
        #[test]
        fn the_wire_cut_equals_the_repacked_prefix(
            amount in 0u64..1_000_000_000,
            stan in 0u32..1_000_000,
            mac in proptest::array::uniform8(proptest::prelude::any::<u8>()),
            secondary in proptest::prelude::any::<bool>(),
            binary in proptest::prelude::any::<bool>(),
        ) {
            let spec = Spec::builtin(if binary { "iso87binary" } else { "iso87ascii" }).unwrap();
            let mut m = sale();
            m.set(4, format!("{amount:012}")).set(11, format!("{stan:06}"));
            if secondary {
                m.set(70, "301");
            }
            let (de, covered) = spec.mac_bytes(&m).unwrap();
            proptest::prop_assert_eq!(de, if secondary { 128 } else { 64 });
            m.set(de, mac.to_vec());
            let wire = spec.pack(&m).unwrap();
            let (de2, value, cut) = spec.mac_bytes_of_wire(&wire, &m).unwrap();
            proptest::prop_assert_eq!((de2, value.as_slice(), cut), (de, &mac[..], covered.as_slice()));
        }
    }

    #[test]
    fn a_mac_not_last_or_missing_is_an_error() {
        let spec = Spec::builtin("iso87ascii").unwrap();
        let m = sale();
        let wire = spec.pack(&m).unwrap();
        assert!(spec.mac_bytes_of_wire(&wire, &m).is_err());
        let mut with_mac = m.clone();
        with_mac.set(64, vec![0xA5u8; 8]);
        let wire = spec.pack(&with_mac).unwrap();
        assert!(spec
            .mac_bytes_of_wire(&wire[..wire.len() - 1], &with_mac)
            .is_err());
        // a field after the MAC field
        let mut late = with_mac.clone();
        late.remove(64);
        late.set(64, vec![1u8; 8]).set(70, "001");
        let wire = spec.pack(&late).unwrap();
        assert!(spec.mac_bytes_of_wire(&wire, &late).is_err());
    }
}
