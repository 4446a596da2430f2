//! The codec against hand-checked bytes, its errors, and its properties.

use std::collections::BTreeMap;

use poslab_iso8583::samples::{purchase_0200, purchase_0200_for};
use poslab_iso8583::tlv::{Tag, Tlv};
use poslab_iso8583::{
    Count, Encoding, Field, FieldSpec, Format, Iso8583Error, Location, Message, Mti, Reason, Spec,
};
use proptest::prelude::*;

fn spec(name: &str) -> Spec {
    Spec::builtin(name).unwrap()
}

fn h(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn mti(s: &str) -> Mti {
    Mti::new(s).unwrap()
}

#[test]
fn iso87ascii_matches_the_pyiso8583_documentation_example() {
    let s = spec("iso87ascii");
    let mut m = Message::new(mti("0210"));
    m.set(3, "111111").set(39, "05");
    assert_eq!(s.pack(&m).unwrap(), b"0210200000000200000011111105");
    let m2 = s
        .unpack(b"02004010100000000000161234567890123456123456111")
        .unwrap();
    assert_eq!(m2.text(2), Some("1234567890123456"));
    assert_eq!(m2.text(12), Some("123456"));
    assert_eq!(m2.text(20), Some("111"));
}

#[test]
fn iso87binary_writes_binary_bitmaps_and_binary_pin_block() {
    let s = spec("iso87binary");
    let mut m = Message::new(mti("0200"));
    m.set(3, "000000").set(52, vec![0x11u8; 8]);
    let b = s.pack(&m).unwrap();
    let mut want = b"0200".to_vec();
    want.extend_from_slice(&h("20 00 00 00 00 00 10 00"));
    want.extend_from_slice(b"000000");
    want.extend_from_slice(&[0x11; 8]);
    assert_eq!(b, want);
    assert_eq!(s.unpack(&b).unwrap(), m);
}

#[test]
fn tpdu_dialect_packs_bcd_fields_by_hand() {
    let s = spec("iso87binary-tpdu");
    let mut m = Message::new(mti("0200"));
    m.set(2, "4761739001010010123") // 19 digits: right-padded with F
        .set(3, "000000")
        .set(4, "000000012500")
        .set(11, "004211")
        .set(22, "051") // n3: left-padded with 0
        .set(24, "003")
        .set(35, "4761739001010010D2712201")
        .set(41, "TERM1")
        .set(55, vec![Tlv::primitive(0x9F27, vec![0x80])]);
    let b = s.pack(&m).unwrap();
    let want = h("02 00  70 20 05 00 20 80 02 00 \
                  19 47 61 73 90 01 01 00 10 12 3F \
                  00 00 00  00 00 00 01 25 00  00 42 11  00 51  00 03 \
                  24 47 61 73 90 01 01 00 10 D2 71 22 01 \
                  54 45 52 4D 31 20 20 20 \
                  00 04 9F 27 01 80");
    assert_eq!(b, want, "{}", poslab_iso8583_hex(&b));
    let back = s.unpack(&b).unwrap();
    assert_eq!(
        back.text(41),
        Some("TERM1   "),
        "text pads are kept on unpack"
    );
    assert_eq!(back.text(2), Some("4761739001010010123"));
    assert_eq!(back.text(22), Some("051"));
    assert_eq!(s.pack(&back).unwrap(), b);
}

fn poslab_iso8583_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

#[test]
fn the_benchmark_message_round_trips_in_every_1987_spec() {
    for name in ["iso87ascii", "iso87binary", "iso87binary-tpdu"] {
        let s = spec(name);
        let m = purchase_0200_for(&s);
        assert_eq!(m.len(), 23);
        let b = s.pack(&m).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = s.unpack(&b).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(back, m, "{name}");
        assert_eq!(s.pack(&back).unwrap(), b, "{name}");
    }
}

#[test]
fn iso93_uses_the_third_bitmap() {
    let s = spec("iso93ascii");
    let mut m = Message::new(mti("1200"));
    m.set(3, "000000").set(100, "123").set(150, "hello");
    let b = s.pack(&m).unwrap();
    // primary (bit 1, 3), secondary (bit 65 → tertiary, bit 100), tertiary (bit 150)
    assert_eq!(&b[..4], b"1200");
    assert_eq!(&b[4..20], b"A000000000000000");
    assert_eq!(&b[20..36], b"8000000010000000");
    assert_eq!(&b[36..52], b"0000040000000000");
    assert_eq!(s.unpack(&b).unwrap(), m);
    // 1987 ASCII has no fields past 128
    let e = spec("iso87ascii").pack(&m).unwrap_err();
    assert_eq!(
        e.to_string(),
        "DE 150: DE 150 is not defined in spec iso87ascii"
    );
}

#[test]
fn errors_name_the_path_the_offset_and_what_was_expected() {
    let s = spec("iso87binary");
    // DE 55 whose 9F26 claims 8 bytes but has 4
    let mut m = Message::new(mti("0200"));
    m.set(55, vec![0x9F, 0x26, 0x08, 1, 2, 3, 4]);
    let b = s.pack(&m).unwrap();
    let e = s.unpack(&b).unwrap_err();
    assert_eq!(
        e.to_string(),
        "DE 55 → 9F26 at byte 15: length 8 runs past the end (4 bytes left)"
    );
    assert_eq!(e.field().map(|p| p.de), Some(55));

    // a bad length prefix
    let e = spec("iso87ascii")
        .unpack(b"02004000000000000000X6")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "DE 2 at byte 20: expected 2 length digits, found \"X6\""
    );

    // runs past the end
    let e = spec("iso87ascii")
        .unpack(b"0200200000000000000000")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "DE 3 at byte 20: expected 6 bytes, found 2: runs past the end of the message"
    );

    // not digits in a numeric field
    let e = spec("iso87ascii")
        .unpack(b"020020000000000000001234X6")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "DE 3 at byte 20: expected 6 digits, found \"1234X6\""
    );

    // a bit for a field the spec does not have
    let e = spec("iso87binary-tpdu")
        .unpack(&h("0200 0000000000004000"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "DE 50 at byte 10: bit 50 is set but the spec does not define DE 50"
    );

    // bytes after the last field
    let e = spec("iso87ascii")
        .unpack(b"0210000000000200000005xx")
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "message at byte 22: 2 bytes after the last field"
    );

    // the MTI
    let e = spec("iso87ascii").unpack(b"02").unwrap_err();
    assert!(matches!(
        e,
        Iso8583Error::Unpack {
            location: Location::Mti,
            offset: 0,
            ..
        }
    ));
    let e = spec("iso87binary-tpdu").unpack(&h("0A00")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "MTI at byte 0: expected 4 BCD digits, found 0A00"
    );

    // a pad nibble that is not the spec's
    let e = spec("iso87binary-tpdu")
        .unpack(&h("0200 0000040000000000 F051"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "DE 22 at byte 10: expected pad nibble 0, found F"
    );
}

#[test]
fn errors_never_show_card_data() {
    let s = spec("iso87ascii");
    // a PAN with a letter in it, in a field typed n
    let mut bad = b"0200".to_vec();
    bad.extend_from_slice(b"4000000000000000");
    bad.extend_from_slice(b"164761739001010010");
    // now break DE 2's content check by using a numeric-typed spec
    let strict = Spec::from_yaml(
        "name: strict\nmti: ascii\nbitmap: hex\nfields:\n  2: {encoding: ascii, length: LL, max: 19, type: n, sensitivity: pan}\n",
        "strict.yaml",
    )
    .unwrap();
    let mut bad2 = b"0200400000000000000016".to_vec();
    bad2.extend_from_slice(b"47617390010100X0");
    let e = strict.unpack(&bad2).unwrap_err();
    let shown = e.to_string();
    assert_eq!(
        shown,
        "DE 2 at byte 22: expected 16 digits, found 16 bytes (not shown: pan)"
    );
    assert!(s.unpack(&bad).is_ok());
    // pack errors too
    let mut m = Message::new(mti("0200"));
    m.set(2, "47617390010100X0");
    let e = strict.pack(&m).unwrap_err().to_string();
    assert!(!e.contains("4761739"), "{e}");
}

#[test]
fn pack_errors_say_what_does_not_fit() {
    let s = spec("iso87ascii");
    let mut m = Message::new(mti("0200"));
    m.set(3, "12345");
    assert_eq!(
        s.pack(&m).unwrap_err().to_string(),
        "DE 3: expected 6 characters, found 5"
    );
    m.set(3, "123456").set(2, "1".repeat(20));
    assert_eq!(
        s.pack(&m).unwrap_err().to_string(),
        "DE 2: length 20 exceeds the maximum 19"
    );
    let mut m = Message::new(mti("0200"));
    m.set(1, "x");
    assert_eq!(
        s.pack(&m).unwrap_err().to_string(),
        "DE 1: field number 1 is outside 2..=192 (bitmaps are derived, not set)"
    );
    // hex text is accepted for binary fields
    let mut m = Message::new(mti("0200"));
    m.set(52, "0123456789ABCDEF");
    let b = spec("iso87binary").pack(&m).unwrap();
    assert_eq!(&b[b.len() - 8..], &h("0123456789ABCDEF"));
}

#[test]
fn composite_fields_read_positional_subfields_with_paths_in_errors() {
    let s = Spec::from_yaml(
        "name: comp\nmti: ascii\nbitmap: hex\nfields:\n  3:\n    max: 6\n    subfields:\n      1: {encoding: ascii, max: 2, type: n}\n      2: {encoding: ascii, max: 2, type: n}\n      3: {encoding: ascii, max: 2, type: n}\n  48:\n    length: LLL\n    max: 999\n    subfields:\n      1: {encoding: ascii, max: 2}\n      2: {encoding: ascii, length: LL, max: 40}\n      3: {encoding: ascii, max: 3}\n",
        "comp.yaml",
    )
    .unwrap();
    let mut m = Message::new(mti("0200"));
    let mut sub = BTreeMap::new();
    sub.insert(1, Field::from("00"));
    sub.insert(2, Field::from("10"));
    sub.insert(3, Field::from("00"));
    m.set(3, sub);
    let mut p48 = BTreeMap::new();
    p48.insert(1, Field::from("AB"));
    p48.insert(2, Field::from("hello"));
    m.set(48, p48);
    let b = s.pack(&m).unwrap();
    assert_eq!(&b[20..], b"001000009AB05hello");
    assert_eq!(s.unpack(&b).unwrap(), m);
    assert_eq!(
        s.unpack(&b).unwrap().get(48).unwrap().subfield(2),
        Some(&Field::from("hello"))
    );
    let e = s.unpack(b"02002000000000000000004X00").unwrap_err();
    assert_eq!(
        e.to_string(),
        "DE 3 → subfield 2 at byte 22: expected 2 digits, found \"4X\""
    );
    // a gap in positional subfields
    let mut gap = BTreeMap::new();
    gap.insert(1, Field::from("AB"));
    gap.insert(3, Field::from("xyz"));
    let mut m = Message::new(mti("0200"));
    m.set(48, gap);
    assert_eq!(
        s.pack(&m).unwrap_err().to_string(),
        "DE 48: subfield 2 is missing but a later subfield is set (subfields are positional)"
    );
}

#[test]
fn ebcdic_and_hex_fields() {
    let s = Spec::from_yaml(
        "name: eb\nmti: ebcdic\nbitmap: binary\nfields:\n  2: {encoding: ebcdic, length: LL, prefix: ebcdic, max: 19}\n  3: {encoding: hex, max: 4}\n  4: {encoding: bcd, length: LLL, prefix: binary, max: 20, count: bytes}\n",
        "eb.yaml",
    )
    .unwrap();
    let mut m = Message::new(mti("0200"));
    m.set(2, "AB12").set(3, vec![0xAB, 0xCD]).set(4, "1234");
    let b = s.pack(&m).unwrap();
    assert_eq!(
        b,
        h("F0F2F0F0 7000000000000000 F0F4 C1C2F1F2 41424344 0002 1234")
    );
    assert_eq!(s.unpack(&b).unwrap(), m);
    // lower-case hex is read, written back upper case
    let mut lower = b.clone();
    lower[18..22].copy_from_slice(b"abcd");
    assert_eq!(s.unpack(&lower).unwrap(), m);
}

#[test]
fn tlv_fields_keep_unknown_tags_and_nested_templates() {
    let s = spec("iso87binary");
    let de55 = h("DF8101 02 AABB 71 08 86 06 84 24 00 00 02 00 9F27 01 80");
    let mut m = Message::new(mti("0210"));
    m.set(55, de55.clone());
    let b = s.pack(&m).unwrap();
    let back = s.unpack(&b).unwrap();
    let tlv = back.tlv(55).unwrap();
    assert_eq!(tlv.items().len(), 3);
    assert_eq!(tlv.items()[0].tag, Tag(0xDF8101));
    assert!(poslab_iso8583::tlv::find(&tlv.items(), Tag(0x86)).is_some());
    assert!(tlv.contains(Tag(0x86)));
    assert_eq!(s.pack(&back).unwrap(), b);
    let json = back.to_json(&s).to_string();
    assert!(json.contains("\"DF8101\":\"AABB\""), "{json}");
    assert!(json.contains("\"71\":\"<key: 8 bytes>\""), "{json}");
}

#[test]
fn json_is_masked_per_spec_and_ordered_by_field_number() {
    let s = spec("iso87ascii");
    let m = purchase_0200();
    let line = serde_json::to_string(&m.json_view(&s)).unwrap();
    assert!(
        line.starts_with("{\"mti\":\"0200\",\"2\":\"476173******0010\",\"3\":\"000000\",\"4\":"),
        "{line}"
    );
    assert!(!line.contains("4761739001010010"), "{line}");
    assert!(!line.contains("8B9E2C3A4D5E6F70"), "{line}");
    assert!(line.contains("\"52\":\"<pin-block: 8 bytes>\""), "{line}");
    assert!(line.contains("\"128\":\"<mac: 8 bytes>\""), "{line}");
    assert!(line.contains("\"9F27\":\"80\""), "{line}");
    let clear = m.to_json_unmasked();
    assert_eq!(clear["2"], "4761739001010010");
    assert_eq!(clear["55"]["9F26"], "8B9E2C3A4D5E6F70");
}

/// Every sample message under fixtures/iso8583/ (`<spec>.<name>.hex`, hex of the message
/// from the MTI on) unpacks and packs back byte for byte.
#[test]
fn every_fixture_round_trips_byte_exact() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/iso8583");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".hex") {
            continue;
        }
        let spec_name = name.split('.').next().unwrap();
        let s = spec(spec_name);
        let text = std::fs::read_to_string(&path).unwrap();
        let bytes = h(&text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<String>());
        let m = s.unpack(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.pack(&m).unwrap(), bytes, "{name}");
        n += 1;
    }
    assert!(n >= 6, "found {n} fixtures");
}

#[test]
fn fuzz_corpora_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    type Target = (&'static str, fn(&[u8]));
    let targets: [Target; 3] = [
        ("iso8583_unpack", poslab_iso8583::fuzz::unpack),
        ("iso8583_round_trip", poslab_iso8583::fuzz::round_trip),
        ("iso8583_spec_load", poslab_iso8583::fuzz::spec_load),
    ];
    for (target, run) in targets {
        let mut n = 0;
        for entry in std::fs::read_dir(root.join(target)).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            run(&data);
            n += 1;
        }
        assert!(n >= 3, "{target}: {n} seeds");
    }
}

// ---------- properties ----------

fn text_strategy(f: &FieldSpec, len: std::ops::RangeInclusive<usize>) -> BoxedStrategy<Field> {
    let charset = match (f.encoding, f.numeric) {
        (Encoding::Bcd, true) | (_, true) => "[0-9]",
        (Encoding::Bcd, false) => "[0-9A-F]",
        (Encoding::Ascii, false) => "[ -~]",
        _ => "[\\x00-\\xFF]",
    };
    let (lo, hi) = (*len.start(), *len.end());
    proptest::string::string_regex(&format!("{charset}{{{lo},{hi}}}"))
        .unwrap()
        .prop_map(Field::from)
        .boxed()
}

fn field_strategy(f: &FieldSpec) -> BoxedStrategy<Field> {
    let cap = if f.is_fixed() { f.max } else { f.max.min(48) };
    let range = if f.is_fixed() { cap..=cap } else { 0..=cap };
    match (&f.format, f.encoding) {
        (Format::Tlv, enc) => {
            let budget = if enc == Encoding::Hex {
                f.max / 2
            } else {
                f.max
            };
            proptest::collection::vec(
                (
                    (0x9F01u32..0x9F7F),
                    proptest::collection::vec(any::<u8>(), 0..12),
                ),
                0..6,
            )
            .prop_map(|v| Field::Tlv(v.into_iter().map(|(t, b)| Tlv::primitive(t, b)).collect()))
            .prop_filter("fits", move |f| {
                f.as_tlv().map_or(0, |t| t.wire_len()) <= budget
            })
            .boxed()
        }
        (Format::Composite(_), _) => unreachable!("no composites in the built-ins"),
        (Format::Plain, Encoding::Binary) => proptest::collection::vec(any::<u8>(), range)
            .prop_map(Field::Binary)
            .boxed(),
        (Format::Plain, Encoding::Hex) => {
            let r = if f.is_fixed() {
                cap / 2..=cap / 2
            } else {
                0..=cap / 2
            };
            proptest::collection::vec(any::<u8>(), r)
                .prop_map(Field::Binary)
                .boxed()
        }
        (Format::Plain, Encoding::Bcd) if f.count == Count::Bytes => {
            let (lo, hi) = (*range.start(), *range.end());
            text_strategy(f, lo * 2..=hi * 2)
                .prop_filter("even digits", |v| v.as_text().unwrap_or("").len() % 2 == 0)
                .boxed()
        }
        (Format::Plain, _) => text_strategy(f, range),
    }
}

fn message_strategy(spec: &Spec) -> BoxedStrategy<Message> {
    let fields: Vec<BoxedStrategy<Option<(u16, Field)>>> = spec
        .field_numbers()
        .map(|de| {
            let f = spec.field(de).unwrap();
            proptest::option::weighted(0.15, field_strategy(f).prop_map(move |v| (de, v))).boxed()
        })
        .collect();
    ("[0-9]{4}", fields)
        .prop_map(|(mti, fields)| {
            let mut m = Message::new(Mti::new(&mti).unwrap());
            for (de, v) in fields.into_iter().flatten() {
                m.set(de, v);
            }
            m
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_valid_messages_round_trip_in_every_builtin(
        (name, m) in proptest::sample::select(Spec::builtin_names().to_vec())
            .prop_flat_map(|n| (Just(n), message_strategy(&Spec::builtin(n).unwrap())))
    ) {
        let s = Spec::builtin(name).unwrap();
        let b = s.pack(&m).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        let back = s.unpack(&b).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(s.pack(&back).unwrap(), b.clone());
        let view = s.unpack_ref(&b).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
        prop_assert_eq!(view.to_message(), m);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        poslab_iso8583::fuzz::unpack(&data);
        poslab_iso8583::fuzz::round_trip(&data);
    }

    #[test]
    fn corrupted_valid_messages_never_panic_and_round_trip_if_they_unpack(
        pos in any::<prop::sample::Index>(), byte in any::<u8>(), name in proptest::sample::select(Spec::builtin_names().to_vec())
    ) {
        let s = Spec::builtin(name).unwrap();
        let m = purchase_0200_for(&s);
        if let Ok(mut b) = s.pack(&m) {
            let i = pos.index(b.len());
            b[i] = byte;
            poslab_iso8583::fuzz::round_trip(&b);
            poslab_iso8583::fuzz::unpack(&b);
            let _ = s.unpack(&b);
        }
    }
}

#[test]
fn reason_is_typed() {
    let e = spec("iso87ascii").unpack(b"0200").unwrap_err();
    match e {
        Iso8583Error::Unpack {
            reason:
                Reason::Truncated {
                    needed: 16,
                    left: 0,
                },
            offset: 4,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}
