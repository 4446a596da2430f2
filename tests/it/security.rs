//! Payment security across crates, cross-checked against independent peers: the
//! terminal's wire MAC recomputed by pyemv over the exact packed bytes (ISO 9797-1
//! algorithm 3), and the host's PIN translation (ISO format 0 → format 4 under AES)
//! deciphered by psec.

use std::io::Write;
use std::process::{Command, Stdio};

use poslab_crypto::{Key, Pin, PinBlockFormat, PinZone};
use poslab_iso8583::{Message, Mti, Spec};
use serde_json::{json, Value};

use crate::peers;

/// Runs a peer script over `cases` (one JSON line each) and returns its `out` values.
fn ask(script: &str, cases: &[Value]) -> Vec<Value> {
    let mut child = Command::new(peers::python())
        .arg(peers::script(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for c in cases {
            writeln!(stdin, "{c}").expect("write case");
        }
    }
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line")["out"].clone())
        .collect()
}

fn purchase(stan: u32) -> Message {
    let mut m = Message::new(Mti::new("0200").unwrap());
    m.set(2, "4761739001010010")
        .set(3, "000000")
        .set(4, format!("{:012}", 1000 + stan))
        .set(11, format!("{stan:06}"))
        .set(22, "051")
        .set(41, "00000001")
        .set(42, "000000000000001")
        .set(49, "978")
        .set(52, vec![0x1Bu8, 0x9C, 0x18, 0x45, 0xEB, 0x99, 0x3A, 0x7A]);
    m
}

/// The terminal signs a purchase (DE 64) and a reversal (DE 128: it has DE 90); pyemv's
/// retail MAC over the packed bytes before the MAC field gives the same MAC, and the
/// bytes pyemv got are exactly the wire bytes less the MAC field.
#[test]
fn the_terminal_wire_mac_matches_pyemv_over_the_exact_bytes() {
    if !peers::python_module(
        "pyemv",
        "the_terminal_wire_mac_matches_pyemv_over_the_exact_bytes",
    ) {
        return;
    }
    let key_hex = "7D3C0B5A6E1F2A9B8C4D5E6F70819A2B";
    let key = Key::tdes(&hex::decode(key_hex).unwrap()).unwrap();
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for spec_name in ["iso87ascii", "iso87binary"] {
        let spec = Spec::builtin(spec_name).unwrap();
        for stan in 1..=5u32 {
            let mut m = purchase(stan);
            if stan % 2 == 0 {
                m.mti = Mti::new("0400").unwrap();
                m.set(90, format!("0200{stan:06}{:032}", 0));
            }
            poslab_terminal::iso::sign(&mut m, &key, &spec).unwrap();
            let de = if stan % 2 == 0 { 128 } else { 64 };
            let mac = m
                .binary(de)
                .unwrap_or_else(|| panic!("MAC in DE {de}"))
                .to_vec();
            let wire = spec.pack(&m).unwrap();
            let (_, _, covered) = spec.mac_bytes_of_wire(&wire, &m).unwrap();
            assert_eq!(
                covered.len() + if spec_name == "iso87ascii" { 16 } else { 8 },
                wire.len()
            );
            cases.push(json!({"op": "mac3", "key": key_hex, "data": hex::encode_upper(covered), "padding": 1}));
            ours.push(hex::encode_upper(&mac));
            // and the terminal's own check accepts it, a changed field fails
            assert!(poslab_terminal::iso::verify(&m, &key, &spec).unwrap());
            let mut changed = m.clone();
            changed.set(4, "000000099999");
            assert!(poslab_terminal::iso::verify(&changed, &key, &spec).is_err());
        }
    }
    let theirs = ask("crypto_pyemv.py", &cases);
    assert_eq!(theirs.len(), cases.len());
    for ((case, mine), peer) in cases.iter().zip(&ours).zip(&theirs) {
        assert_eq!(Some(mine.as_str()), peer.as_str(), "case {case}");
    }
}

/// The host's translation of a format 0 block into format 4 under the AES issuer zone key
/// deciphers, with psec, to the PIN the terminal enciphered.
#[test]
fn pin_translation_to_format_4_deciphers_with_psec() {
    if !peers::python_module("psec", "pin_translation_to_format_4_deciphers_with_psec") {
        return;
    }
    let from = Key::tdes(&hex::decode("4CA2161637D0133E5E151AEA45DA2A12").unwrap()).unwrap();
    let zone_hex = "2B7E151628AED2A6ABF7158809CF4F3C";
    let zone = Key::aes(&hex::decode(zone_hex).unwrap()).unwrap();
    let mut cases = Vec::new();
    let mut pins = Vec::new();
    for (i, (pin, pan)) in [
        ("1234", "4761739001010010"),
        ("4315", "5413330089010434"),
        ("987654321012", "4012345678909"),
        ("0000", "6799998900000000019"),
    ]
    .into_iter()
    .enumerate()
    {
        let block = poslab_crypto::encipher_pin_block(
            &from,
            PinBlockFormat::Iso0,
            &Pin::new(pin).unwrap(),
            pan,
            &[0; 8],
        )
        .unwrap();
        let t = poslab_crypto::translate(
            PinZone::new(&from, PinBlockFormat::Iso0),
            block.expose(),
            pan,
            PinZone::new(&zone, PinBlockFormat::Iso4),
            &[i as u8; 8],
        )
        .unwrap();
        cases.push(json!({"op": "pin4_decipher", "key": zone_hex, "block": hex::encode_upper(t.block.expose()), "pan": pan}));
        pins.push(pin);
    }
    let theirs = ask("crypto_psec.py", &cases);
    for ((case, pin), peer) in cases.iter().zip(&pins).zip(&theirs) {
        assert_eq!(Some(*pin), peer.as_str(), "case {case}");
    }
}
