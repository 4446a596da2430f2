//! ISO 8583 engine: dialects as data (YAML specs), field codecs, bitmaps, framing. Sans-IO.
//!
//! - [`Spec`]: a dialect, loaded from YAML (built-ins: `iso87ascii`, `iso87binary`,
//!   `iso93ascii`, `iso87binary-tpdu`; or a file) and compiled once into a field table.
//!   [`Spec::unpack`] and [`Spec::pack`] work on the message from the MTI onwards.
//! - [`Message`]: an [`Mti`] and fields 2..=192 ([`Field`]: text, bytes, positional
//!   subfields or BER-TLV). Bitmaps are derived when packing. Debug, Display and
//!   Serialize are masked; [`Message::to_json_unmasked`] is the explicit way out.
//! - [`MessageRef`] ([`Spec::unpack_ref`]): the same checks as `unpack`, values left in
//!   the input and decoded per field when asked (no allocation per field).
//! - [`Framing`]: the layer under the codec (length prefix, header such as a TPDU,
//!   trailer); [`tpdu_swap`] builds the answer's TPDU.
//!
//! Unpacking never panics: a bad message is an [`Iso8583Error`] naming the field path
//! (`DE 55 → 9F26`, `DE 48 → subfield 2`), the byte offset and what was expected, and
//! never showing clear card data.
//!
//! Round trip: `pack(unpack(x)) == x` for every message whose hex digits (hex bitmaps,
//! hex fields) are upper case and whose secondary bitmap is not empty; other inputs are
//! re-emitted in that canonical form (and then round-trip exactly).

mod codec;
mod ebcdic;
mod error;
mod framing;
mod mac;
mod message;
mod mti;
mod spec;
mod view;

pub mod samples;

/// The string type of text fields ([`Field::Text`]): up to 24 bytes held inline.
pub use compact_str::{CompactString, ToCompactString};
pub use error::{
    FieldPath, FrameError, FrameErrorKind, Iso8583Error, Location, Reason, SpecError, SubPath,
};
pub use framing::{tpdu_swap, Frame, Framing, LengthPrefix, DEFAULT_MAX_FRAME};
pub use message::{mac_input, Field, JsonView, Message, Sensitivity, EMV_MASKED_TAGS};
pub use mti::{Mti, MtiClass, MtiError};
pub use poslab_tlv as tlv;
pub use spec::{
    BitmapEncoding, Count, Encoding, FieldSpec, Format, HeaderKind, MtiEncoding, Pad,
    PrefixEncoding, Side, Spec,
};
pub use view::MessageRef;

/// Entry points for the cargo-fuzz targets (fuzz/fuzz_targets/iso8583_*.rs) and for the
/// tests that replay their corpora. Each panics only when an invariant breaks.
pub mod fuzz {
    use crate::{Framing, LengthPrefix, Spec};

    fn specs() -> &'static [Spec] {
        static SPECS: std::sync::OnceLock<Vec<Spec>> = std::sync::OnceLock::new();
        SPECS.get_or_init(|| {
            Spec::builtin_names()
                .iter()
                .filter_map(|n| Spec::builtin(n))
                .collect()
        })
    }

    /// Unpacks arbitrary bytes with every built-in spec and reads them as frames with
    /// every length prefix: never panics. The borrowed view ([`crate::MessageRef`])
    /// accepts and refuses exactly what `unpack` does, with the same errors and values.
    pub fn unpack(data: &[u8]) {
        for spec in specs() {
            let owned = spec.unpack(data);
            let view = spec.unpack_ref(data);
            if let Ok(v) = &view {
                for de in v.field_numbers() {
                    let _ = (v.raw(de), v.text(de));
                }
            }
            assert_eq!(
                view.map(|v| v.to_message()),
                owned,
                "{}: unpack_ref and unpack disagree",
                spec.name()
            );
        }
        for length in [
            LengthPrefix::Binary2,
            LengthPrefix::Ascii4,
            LengthPrefix::Bcd2,
            LengthPrefix::None,
        ] {
            let f = Framing::new(length).with_header_len(5);
            let mut rest = data;
            while let Ok(Some((_, used))) = f.decode(rest) {
                rest = rest.get(used..).unwrap_or(&[]);
            }
        }
    }

    /// For every built-in spec: what unpacks packs again, the packed form unpacks to the
    /// same message and packs to the same bytes; canonical input comes back byte for byte.
    pub fn round_trip(data: &[u8]) {
        for spec in specs() {
            let Ok(msg) = spec.unpack(data) else { continue };
            let packed = match spec.pack(&msg) {
                Ok(p) => p,
                Err(e) => panic!("{}: unpacked but does not pack: {e}", spec.name()),
            };
            let again = match spec.unpack(&packed) {
                Ok(m) => m,
                Err(e) => panic!("{}: packed form does not unpack: {e}", spec.name()),
            };
            assert_eq!(again, msg, "{}: unpack(pack(m)) != m", spec.name());
            assert_eq!(
                spec.pack(&again).ok().as_deref(),
                Some(&packed[..]),
                "{}: pack is not stable",
                spec.name()
            );
            if packed != data {
                // only canonical-form differences are allowed: lower-case hex, an empty
                // secondary bitmap
                let lower = data.iter().any(u8::is_ascii_lowercase);
                assert!(
                    lower || packed.len() < data.len(),
                    "{}: pack(unpack(x)) != x for canonical input",
                    spec.name()
                );
            }
            let _ = msg.to_json(spec);
            let _ = format!("{msg:?} {msg}");
            // the MAC input cut from the wire bytes is the message re-packed up to its MAC
            if let Ok((de, _, cut)) = spec.mac_bytes_of_wire(&packed, &msg) {
                if spec.mac_field(&msg) == de {
                    let (de2, again) = spec.mac_bytes(&msg).expect("a packed message packs"); // ok: fuzz oracle
                    assert_eq!(
                        (de2, &again[..]),
                        (de, cut),
                        "{}: wire MAC input",
                        spec.name()
                    );
                }
            }
        }
    }

    /// Loads arbitrary text as a YAML spec: never panics; a spec that loads can unpack.
    pub fn spec_load(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(spec) = Spec::from_yaml(text, "fuzz.yaml") {
            let _ = spec.unpack(b"0200\x00\x00\x00\x00\x00\x00\x00\x00");
            let _ = spec.unpack(b"02000000000000000000");
        }
    }
}
