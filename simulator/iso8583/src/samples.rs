//! Realistic sample messages (test card data only), shared by tests, benches and fixtures.

use poslab_tlv::Tlv;

use crate::{Encoding, Message, Mti, Spec};

/// The EMV data of a chip purchase (ARQC, CID, IAD, TVR, ...), as a terminal sends in DE 55.
pub fn icc_data() -> Vec<Tlv> {
    let h = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .filter_map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
            .collect()
    };
    vec![
        Tlv::primitive(0x9F26, h("8B9E2C3A4D5E6F70")),
        Tlv::primitive(0x9F27, h("80")),
        Tlv::primitive(0x9F10, h("06010A03A0B800")),
        Tlv::primitive(0x9F37, h("1A2B3C4D")),
        Tlv::primitive(0x9F36, h("0042")),
        Tlv::primitive(0x95, h("0000008000")),
        Tlv::primitive(0x9A, h("261123")),
        Tlv::primitive(0x9C, h("00")),
        Tlv::primitive(0x9F02, h("000000012500")),
        Tlv::primitive(0x5F2A, h("0978")),
        Tlv::primitive(0x82, h("3900")),
        Tlv::primitive(0x9F1A, h("0250")),
        Tlv::primitive(0x9F03, h("000000000000")),
        Tlv::primitive(0x9F33, h("E0F8C8")),
        Tlv::primitive(0x9F34, h("420300")),
        Tlv::primitive(0x84, h("A0000000031010")),
    ]
}

/// [`purchase_0200`] shaped for `spec`: track 2 separator "D" where DE 35 is BCD, "="
/// where it is text. Valid in iso87ascii, iso87binary and iso87binary-tpdu.
pub fn purchase_0200_for(spec: &Spec) -> Message {
    let mut m = purchase_0200();
    if spec.field(35).map(|f| f.encoding) == Some(Encoding::Bcd) {
        m.set(35, "4761739001010010D27122011143804400000");
    }
    m
}

/// A 23-field 0200 chip purchase with PIN, track 2, ICC data, original data elements and a
/// secondary MAC: the benchmark message (text track 2, for iso87ascii and iso87binary).
pub fn purchase_0200() -> Message {
    let mut m = Message::new(Mti::new("0200").unwrap_or_else(|_| unreachable!()));
    m.set(2, "4761739001010010")
        .set(3, "000000")
        .set(4, "000000012500")
        .set(7, "1123104512")
        .set(11, "004211")
        .set(12, "104512")
        .set(13, "1123")
        .set(14, "2712")
        .set(18, "5411")
        .set(22, "051")
        .set(23, "001")
        .set(25, "00")
        .set(32, "12345678")
        .set(35, "4761739001010010=27122011143804400000")
        .set(37, "632710004211")
        .set(41, "TERM0001")
        .set(42, "MERCHANT0000001")
        .set(49, "978")
        .set(52, vec![0x3F, 0x1A, 0x9C, 0x55, 0x0E, 0x7D, 0x21, 0xB4])
        .set(55, icc_data())
        .set(62, "INV000042")
        .set(90, "020000421111231045120000123456780000000000")
        .set(128, vec![0xA1, 0xB2, 0xC3, 0xD4, 0x00, 0x00, 0x00, 0x00]);
    m
}
