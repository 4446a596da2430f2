//! Property tests and the replay of the `tlv_parse` fuzz corpus.

use poslab_tlv::{encode, parse, Tag, Tlv};
use proptest::prelude::*;

/// Any tag whose first byte is not a padding byte (00 or FF: a tag starting FF, private
/// class + constructed + multi-byte, reads as padding under EMV's rules).
fn tag_strategy(constructed: bool) -> impl Strategy<Value = Tag> {
    let c = if constructed { 0x20u8 } else { 0 };
    let any_tag = prop_oneof![
        // one-byte tags: never 00/FF (padding) and never xx11111 (multi-byte marker)
        (0u8..=0xFF)
            .prop_filter("single byte", |b| b & 0x1F != 0x1F)
            .prop_map(move |b| (b & !0x20) | c)
            .prop_filter("not padding", |b| *b != 0 && *b != 0xFF)
            .prop_map(|b| Tag(b as u32)),
        // two-byte tags like 9F26 / 5F2A / BF0C
        (0u8..4, 0u8..0x80)
            .prop_map(move |(class, b2)| Tag((((class << 6) | 0x1F | c) as u32) << 8 | b2 as u32)),
        // three-byte tags like DF8101
        (0u8..4, 0x81u8..=0xFF, 0u8..0x80).prop_map(move |(class, b2, b3)| Tag((((class << 6)
            | 0x1F
            | c)
            as u32)
            << 16
            | (b2 as u32) << 8
            | b3 as u32)),
    ];
    any_tag.prop_filter("first byte is not padding", |t| t.to_bytes()[0] != 0xFF)
}

fn tlv_strategy() -> impl Strategy<Value = Tlv> {
    let leaf = (
        tag_strategy(false),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(t, v)| Tlv::primitive(t, v));
    leaf.prop_recursive(3, 24, 5, |inner| {
        (tag_strategy(true), proptest::collection::vec(inner, 0..5))
            .prop_map(|(t, c)| Tlv::constructed(t, c))
    })
}

proptest! {
    #[test]
    fn encode_then_parse_gives_the_objects_back(items in proptest::collection::vec(tlv_strategy(), 0..6)) {
        let bytes = encode(&items);
        let back = parse(&bytes).unwrap();
        prop_assert_eq!(&back, &items);
        prop_assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_round_trip_when_they_parse(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        poslab_tlv::fuzz::parse(&data);
    }
}

#[test]
fn fuzz_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/tlv_parse");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/tlv_parse exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        poslab_tlv::fuzz::parse(&data);
        n += 1;
    }
    assert!(n >= 3, "corpus has seeds");
}
