//! CryptoSecurity through `Host::handle`, with a fake clock and the test key file.

use std::time::{Duration, UNIX_EPOCH};

use poslab_crypto::{
    KeyAlgorithm, KeyFile, KeyUnderKey, MacAlgorithm, Padding, Pin, PinBlockFormat,
    SessionKeyMethod,
};
use poslab_iso8583::{Field, Message, Mti, Spec};
use poslab_tlv::Tlv;

use super::*;
use crate::config::Config;
use crate::{Decision, Host, RequestContext};

const KEYS: &str = include_str!("../../../fixtures/keys/test-keys.yaml");
const MID: &str = "000000000000001";
const TID: &str = "00000001";
fn pan() -> &'static str {
    poslab_sensitive::test_cards::visa()
}

fn keys() -> KeyFile {
    KeyFile::parse(KEYS).unwrap()
}

fn host() -> Host {
    let mut h = Host::new(Config::default_config());
    h.set_security(Box::new(CryptoSecurity::from_key_file(&keys(), 7).unwrap()));
    h
}

fn ctx(t: u64) -> RequestContext {
    RequestContext {
        conn: 1,
        now: UNIX_EPOCH + Duration::from_secs(1_795_000_000 + t),
        tid: None,
    }
}

fn msg(mti: &str, fields: &[(u16, &str)]) -> Message {
    let mut m = Message::new(Mti::new(mti).unwrap());
    for (de, v) in fields {
        m.set(*de, Field::Text((*v).to_string().into()));
    }
    m
}

fn sale(stan: u32) -> Message {
    let stan = format!("{stan:06}");
    msg(
        "0200",
        &[
            (2, pan()),
            (3, "000000"),
            (4, "000000002500"),
            (7, "1123101010"),
            (11, &stan),
            (12, "101010"),
            (13, "1123"),
            (22, "051"),
            (25, "00"),
            (41, TID),
            (42, MID),
            (49, "978"),
        ],
    )
}

fn code(d: &Decision) -> &str {
    d.response
        .as_ref()
        .and_then(|r| r.text(39))
        .unwrap_or("(no answer)")
}

/// Key exchange; returns the clear (PIN key, MAC key) after checking their KCVs.
fn exchange(h: &mut Host) -> (Key, Key) {
    let req = msg(
        "0800",
        &[(7, "1123101010"), (11, "000001"), (41, TID), (70, "101")],
    );
    let d = h.handle(&req, &ctx(0));
    assert_eq!(code(&d), "00");
    let de48 = d
        .response
        .as_ref()
        .unwrap()
        .text(48)
        .expect("DE 48")
        .to_string();
    assert_eq!(de48.len(), 2 * (2 + 32 + 6));
    assert_eq!(&de48[..2], "PK");
    assert_eq!(&de48[40..42], "MK");
    let tmk = keys().key("tmk").unwrap().clone();
    let unwrap = |part: &str| {
        let (crypt, kcv) = (&part[..32], &part[32..38]);
        let k = poslab_crypto::unwrap_key(
            &tmk,
            &KeyUnderKey::from_hex(KeyAlgorithm::Tdes2, crypt, kcv).unwrap(),
        )
        .unwrap();
        assert_eq!(k.kcv().to_string(), kcv);
        k
    };
    (unwrap(&de48[2..40]), unwrap(&de48[42..80]))
}

fn spec() -> Spec {
    Spec::builtin("iso87ascii").unwrap()
}

fn mac(key: &Key, m: &Message) -> Vec<u8> {
    poslab_crypto::generate_mac(
        MacAlgorithm::Alg3(Padding::Method1),
        key,
        &mac_data(&spec(), m),
        8,
    )
    .unwrap()
}

#[test]
fn key_exchange_sends_session_keys_under_the_tmk_with_their_kcvs() {
    let mut h = host();
    let (pk, mk) = exchange(&mut h);
    assert_ne!(pk.expose(), mk.expose());
    // a second exchange gives new keys
    let (pk2, _) = exchange(&mut h);
    assert_ne!(pk.expose(), pk2.expose());
}

#[test]
fn a_correct_mac_is_accepted_and_the_answer_is_maced_a_wrong_one_gets_a0() {
    let mut h = host();
    let (_, mk) = exchange(&mut h);
    let mut req = sale(2);
    let m = mac(&mk, &req);
    req.set(64, Field::Binary(m));
    let d = h.handle(&req, &ctx(1));
    assert_eq!(code(&d), "00");
    let resp = d.response.as_ref().unwrap();
    assert_eq!(resp.binary(64).unwrap(), mac(&mk, resp).as_slice());

    let mut bad = sale(3);
    let mut m = mac(&mk, &bad);
    m[0] ^= 1;
    bad.set(64, Field::Binary(m));
    let d = h.handle(&bad, &ctx(2));
    assert_eq!(code(&d), "A0");
    assert!(
        d.notes.iter().any(|n| n == "security check failed: A0"),
        "journaled: {:?}",
        d.notes
    );

    // the MAC covers the fields: changing the amount after MACing is caught
    let mut changed = sale(4);
    let m = mac(&mk, &changed);
    changed.set(64, Field::Binary(m));
    changed.set(4, Field::Text("000000009999".into()));
    assert_eq!(code(&h.handle(&changed, &ctx(3))), "A0");
}

/// The code for a bad MAC is the configuration's (`security.mac_failure`), here `63`
/// (security violation) instead of the default `A0`.
#[test]
fn the_code_for_a_wrong_mac_comes_from_the_configuration() {
    let default = include_str!("../../../scenarios/host/default.yaml");
    assert!(default.contains("mac_failure: \"A0\""));
    let text = default.replace("mac_failure: \"A0\"", "mac_failure: \"63\"");
    let config = Config::from_yaml(&text, "default.yaml").unwrap();
    let mut h = Host::new(config);
    h.set_security(Box::new(CryptoSecurity::from_key_file(&keys(), 7).unwrap()));
    let (_, mk) = exchange(&mut h);
    let mut bad = sale(3);
    let mut m = mac(&mk, &bad);
    m[0] ^= 1;
    bad.set(64, Field::Binary(m));
    let d = h.handle(&bad, &ctx(2));
    assert_eq!(code(&d), "63");
    assert!(
        d.notes.iter().any(|n| n == "security check failed: 63"),
        "{:?}",
        d.notes
    );
}

#[test]
fn a_mac_before_key_exchange_is_checked_with_the_zak() {
    let mut h = host();
    let zak = keys().key("zak").unwrap().clone();
    let mut req = sale(2);
    let m = mac(&zak, &req);
    req.set(64, Field::Text(hex::encode_upper(m).into()));
    assert_eq!(code(&h.handle(&req, &ctx(1))), "00");
}

fn with_pin(stan: u32, key: &Key, pin: &str) -> Message {
    let mut req = sale(stan);
    let block = poslab_crypto::encipher_pin_block(
        key,
        PinBlockFormat::Iso0,
        &Pin::new(pin).unwrap(),
        pan(),
        &[0x5A; 8],
    )
    .unwrap();
    req.set(52, Field::Binary(block.expose().to_vec()));
    req
}

#[test]
fn pins_are_checked_wrong_is_55_and_the_third_wrong_in_a_row_75() {
    let mut h = host();
    let zpk = keys().key("zpk").unwrap().clone();
    assert_eq!(code(&h.handle(&with_pin(1, &zpk, "1234"), &ctx(1))), "00");
    assert_eq!(code(&h.handle(&with_pin(2, &zpk, "4321"), &ctx(2))), "55");
    assert_eq!(code(&h.handle(&with_pin(3, &zpk, "1234"), &ctx(3))), "00");
    assert_eq!(code(&h.handle(&with_pin(4, &zpk, "0000"), &ctx(4))), "55");
    assert_eq!(code(&h.handle(&with_pin(5, &zpk, "0000"), &ctx(5))), "55");
    assert_eq!(code(&h.handle(&with_pin(6, &zpk, "0000"), &ctx(6))), "75");
    // blocked: even the right PIN
    assert_eq!(code(&h.handle(&with_pin(7, &zpk, "1234"), &ctx(7))), "75");
}

#[test]
fn after_key_exchange_pins_are_under_the_session_pin_key_and_the_table_is_used() {
    let mut h = Host::new(Config::default_config());
    h.set_security(Box::new(
        CryptoSecurity::from_key_file(&keys(), 7)
            .unwrap()
            .with_pins([("476173".to_string(), "5678".to_string())]),
    ));
    let (pk, _) = exchange(&mut h);
    let zpk = keys().key("zpk").unwrap().clone();
    assert_eq!(code(&h.handle(&with_pin(2, &pk, "5678"), &ctx(1))), "00");
    assert_eq!(code(&h.handle(&with_pin(3, &pk, "1234"), &ctx(2))), "55");
    assert_eq!(code(&h.handle(&with_pin(4, &zpk, "5678"), &ctx(3))), "55");
}

/// DE 55 with an ARQC computed as poslab-emv's card does (`ac_input`: CDOL1 data ‖ AIP ‖
/// ATC ‖ IAD, padding method 2, common session key from the option A ICC master key).
fn emv_sale(stan: u32, tamper: bool) -> (Message, Key, [u8; 8]) {
    let atc: u16 = 0x0017;
    let cdol: Vec<(u32, Vec<u8>)> = vec![
        (0x9F02, vec![0, 0, 0, 0, 0x25, 0]),
        (0x9F03, vec![0; 6]),
        (0x9F1A, vec![0x02, 0x50]),
        (0x95, vec![0; 5]),
        (0x5F2A, vec![0x09, 0x78]),
        (0x9A, vec![0x26, 0x11, 0x23]),
        (0x9C, vec![0]),
        (0x9F37, vec![1, 2, 3, 4]),
    ];
    let aip = [0x39, 0x00];
    let iad = vec![0x06, 0x01, 0x12, 0x03, 0xA0, 0x00, 0x00];
    let mut data: Vec<u8> = cdol.iter().flat_map(|(_, v)| v.clone()).collect();
    data.extend_from_slice(&aip);
    data.extend_from_slice(&atc.to_be_bytes());
    data.extend_from_slice(&iad);
    let imk = keys().key("imk-ac-visa").unwrap().clone();
    let mk = poslab_crypto::derive_icc_master_key_a(&imk, pan(), 0x01).unwrap();
    let sk =
        poslab_crypto::derive_ac_session_key(&mk, SessionKeyMethod::Common, atc, [0; 4]).unwrap();
    let mut arqc = poslab_crypto::generate_ac(&sk, &data, Padding::Method2).unwrap();
    if tamper {
        arqc[7] ^= 0x80;
    }
    let mut items: Vec<Tlv> = cdol
        .into_iter()
        .map(|(t, v)| Tlv::primitive(t, v))
        .collect();
    items.push(Tlv::primitive(0x82u32, aip.to_vec()));
    items.push(Tlv::primitive(0x9F36u32, atc.to_be_bytes().to_vec()));
    items.push(Tlv::primitive(0x9F10u32, iad));
    items.push(Tlv::primitive(0x5F34u32, vec![0x01]));
    items.push(Tlv::primitive(0x9F26u32, arqc.to_vec()));
    let mut req = sale(stan);
    req.set(55, Field::from(items));
    (req, sk, arqc)
}

#[test]
fn an_arqc_verifies_and_the_answer_carries_an_arpc_a_tampered_one_is_refused() {
    let mut h = host();
    let (req, sk, arqc) = emv_sale(1, false);
    let d = h.handle(&req, &ctx(1));
    assert_eq!(code(&d), "00");
    let resp = d.response.as_ref().unwrap();
    let tag91 = resp
        .tlv(55)
        .and_then(|t| t.value(0x91u32))
        .expect("tag 91")
        .to_vec();
    assert_eq!(tag91.len(), 10);
    assert_eq!(&tag91[8..], b"00");
    assert!(poslab_crypto::verify_arpc_method1(&sk, &arqc, b"00", &tag91[..8]).unwrap());

    let (bad, _, _) = emv_sale(2, true);
    let d = h.handle(&bad, &ctx(2));
    assert_eq!(code(&d), "05");
    let no91 = d
        .response
        .as_ref()
        .and_then(|r| r.tlv(55))
        .and_then(|t| t.value(0x91u32));
    assert!(no91.is_none());
}

#[test]
fn mac_data_is_the_packed_message_up_to_the_mac_field() {
    let mut m = msg("0200", &[(3, "000000"), (41, TID)]);
    let plain = mac_data(&spec(), &m);
    // MTI, hex bitmap with bits 3, 41 and 64 set, then the fields as packed
    let mut want = b"0200".to_vec();
    want.extend_from_slice(b"2000000000800001"); // ok: the hex bitmap, not a card number
    want.extend_from_slice(b"000000");
    want.extend_from_slice(TID.as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&plain),
        String::from_utf8_lossy(&want)
    );
    m.set(64, Field::Binary(vec![1; 8]));
    assert_eq!(mac_data(&spec(), &m), plain);
}

/// The MAC is checked over the bytes as they came in: one flipped bit anywhere in what
/// it covers (MTI, bitmap, any field) is refused with A0; the untouched bytes pass.
#[test]
fn a_flipped_bit_anywhere_in_the_wire_bytes_fails_the_mac() {
    let mut h = host();
    let (_, mk) = exchange(&mut h);
    let mut req = sale(2);
    req.set(64, Field::Binary(mac(&mk, &req)));
    let wire = spec().pack(&req).unwrap();
    let covered = wire.len() - 16; // DE 64 is 16 hex digits in iso87ascii
    let d = h.handle_wire(&req, Some(&wire), &ctx(1));
    assert_eq!(code(&d), "00", "{:?}", d.notes);
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with(&format!("mac verified over {covered} wire bytes"))),
        "{:?}",
        d.notes
    );
    for i in (0..covered).step_by(7) {
        let mut bad = wire.clone();
        bad[i] ^= 0x01;
        let d = h.handle_wire(&req, Some(&bad), &ctx(2 + i as u64));
        assert_eq!(code(&d), "A0", "byte {i} flipped: {:?}", d.notes);
    }
}

#[test]
fn online_pins_are_translated_to_the_issuer_zone_and_journaled_by_kcv() {
    let mut h = host();
    let zpk = keys().key("zpk").unwrap().clone();
    let d = h.handle(&with_pin(1, &zpk, "1234"), &ctx(1));
    assert_eq!(code(&d), "00");
    assert!(
        d.notes
            .iter()
            .any(|n| n == "pin translated iso-0 (kcv 7B0898) -> iso-4 (kcv 7DF76B)"),
        "{:?}",
        d.notes
    );
    // nothing of the PIN or the block in the notes
    assert!(!d.notes.iter().any(|n| n.contains("1234")), "{:?}", d.notes);
    let d = h.handle(&with_pin(2, &zpk, "9999"), &ctx(2));
    assert_eq!(code(&d), "55");

    // a TDES zone in format 0 works as well; a bad configuration refuses PINs with 96
    let mut config = Config::default_config();
    config.security.pin_translation = Some(crate::config::PinTranslationConfig {
        zone_key: "zpk-issuer-tdes".into(),
        format: "iso-0".into(),
    });
    let mut h = Host::new(config.clone());
    h.set_security(Box::new(CryptoSecurity::from_key_file(&keys(), 7).unwrap()));
    let d = h.handle(&with_pin(1, &zpk, "1234"), &ctx(1));
    assert_eq!(code(&d), "00");
    assert!(
        d.notes.iter().any(|n| n.ends_with("-> iso-0 (kcv 2AC425)")),
        "{:?}",
        d.notes
    );
    config.security.pin_translation = Some(crate::config::PinTranslationConfig {
        zone_key: "zpk-issuer-tdes".into(),
        format: "iso-4".into(),
    });
    let mut h = Host::new(config);
    h.set_security(Box::new(CryptoSecurity::from_key_file(&keys(), 7).unwrap()));
    let d = h.handle(&with_pin(1, &zpk, "1234"), &ctx(1));
    assert_eq!(code(&d), "96", "{:?}", d.notes);
}

/// Real poslab-emv cards (fixtures/cards/visa-credit.yaml, mastercard-debit.yaml) answer
/// SELECT, GET PROCESSING OPTIONS and GENERATE AC (ARQC); their cryptogram in DE 55
/// verifies at the host, and the card accepts the host's ARPC (tag 91) in EXTERNAL
/// AUTHENTICATE.
#[test]
fn an_arqc_from_a_poslab_emv_card_verifies_and_the_card_accepts_the_arpc() {
    card_flow(include_str!("../../../fixtures/cards/visa-credit.yaml"));
    card_flow(include_str!(
        "../../../fixtures/cards/mastercard-debit.yaml"
    ));
}

fn card_flow(text: &str) {
    use poslab_emv::{Card, CardProfile, Command, Interface, StatusWord};

    let profile = CardProfile::from_yaml(text, "card.yaml").unwrap();
    let pan = profile.pan.expose().to_string();
    let psn = ((profile.pan_sequence / 10) << 4) | (profile.pan_sequence % 10);
    let app = profile.applications[0].clone();
    let mut card = Card::new(profile, Interface::Contactless);
    card.power_on();
    let select = card.handle_command(&Command::select(&app.aid));
    assert_eq!(select.sw, StatusWord::SUCCESS);
    let amount = [0, 0, 0, 0, 0x25, 0];
    let un = [9, 8, 7, 6];
    let mut pdol = Vec::new();
    for (tag, len) in poslab_tlv::parse_dol(&app.pdol).unwrap() {
        match tag.0 {
            0x9F02 => pdol.extend_from_slice(&amount),
            0x9F37 => pdol.extend_from_slice(&un),
            0x5F2A => pdol.extend_from_slice(&[0x09, 0x78]),
            0x9F66 => pdol.extend_from_slice(&[0x36, 0x00, 0x40, 0x00]),
            _ => pdol.extend(std::iter::repeat_n(0, len)),
        }
    }
    let mut gpo_data = vec![0x83, u8::try_from(pdol.len()).unwrap()];
    gpo_data.extend_from_slice(&pdol);
    let gpo = card.handle_command(&Command::new(0x80, 0xA8, 0, 0, gpo_data, Some(0)));
    assert_eq!(gpo.sw, StatusWord::SUCCESS);
    let aip = poslab_tlv::parse(&gpo.data).unwrap()[0]
        .find(0x82u32)
        .and_then(Tlv::bytes)
        .expect("AIP")
        .to_vec();
    let cdol: Vec<(u32, Vec<u8>)> = vec![
        (0x9F02, amount.to_vec()),
        (0x9F03, vec![0; 6]),
        (0x9F1A, vec![0x08, 0x40]),
        (0x95, vec![0; 5]),
        (0x5F2A, vec![0x09, 0x78]),
        (0x9A, vec![0x26, 0x11, 0x23]),
        (0x9C, vec![0]),
        (0x9F37, un.to_vec()),
    ];
    let data: Vec<u8> = cdol.iter().flat_map(|(_, v)| v.clone()).collect();
    let ac = card.handle_command(&Command::new(0x80, 0xAE, 0x80, 0, data, Some(0)));
    assert_eq!(ac.sw, StatusWord::SUCCESS);
    let answer = poslab_tlv::parse(&ac.data).unwrap();
    let tag = |t: u32| {
        answer[0]
            .find(t)
            .and_then(Tlv::bytes)
            .unwrap_or_else(|| panic!("tag {t:X}"))
            .to_vec()
    };
    assert_eq!(tag(0x9F27), vec![0x80], "an ARQC");
    let mut items: Vec<Tlv> = cdol
        .into_iter()
        .map(|(t, v)| Tlv::primitive(t, v))
        .collect();
    items.push(Tlv::primitive(0x82u32, aip));
    for t in [0x9F36u32, 0x9F10, 0x9F26] {
        items.push(Tlv::primitive(t, tag(t)));
    }
    items.push(Tlv::primitive(0x5F34u32, vec![psn]));
    let mut req = sale(1);
    req.set(2, Field::Text(pan.clone().into()));
    req.set(55, Field::from(items.clone()));
    let mut h = host();
    let d = h.handle(&req, &ctx(1));
    assert_eq!(code(&d), "00");
    let resp = d.response.as_ref().unwrap();
    let tag91 = resp
        .tlv(55)
        .and_then(|t| t.value(0x91u32))
        .expect("tag 91")
        .to_vec();
    // the card accepts the host's ARPC (EXTERNAL AUTHENTICATE, issuer authentication)
    let ext = card.handle_command(&Command::new(0x00, 0x82, 0, 0, tag91, None));
    assert_eq!(ext.sw, StatusWord::SUCCESS);

    // the same cryptogram over another amount does not verify
    items[0] = Tlv::primitive(0x9F02u32, vec![0, 0, 0, 0, 0x26, 0]);
    let mut req = sale(2);
    req.set(2, Field::Text(pan.into()));
    req.set(55, Field::from(items));
    assert_eq!(code(&h.handle(&req, &ctx(2))), "05");
}
