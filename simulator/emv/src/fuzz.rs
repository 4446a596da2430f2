//! Fuzz entry points: the bodies of the cargo-fuzz targets `emv_apdu`, `emv_vpcd` and
//! `emv_profile` (fuzz/fuzz_targets/), also replayed over their seed corpus by
//! `cargo test`. Each checks an oracle (round trip, or "never panics and answers").

use crate::apdu::{Command, Response};
use crate::card::{Card, VpcdCard};
use crate::magstripe::Track2;
use crate::profile::{CardProfile, Interface};
use crate::vpcd::{self, FrameBuffer, ReaderMessage};

const VISA: &str = include_str!("../../../fixtures/cards/visa-credit.yaml");

/// The Visa card, its profile parsed once per process (parsing dominates a run otherwise).
fn visa() -> Option<Card> {
    static PROFILE: std::sync::OnceLock<Option<CardProfile>> = std::sync::OnceLock::new();
    PROFILE
        .get_or_init(|| CardProfile::from_yaml(VISA, "visa-credit.yaml").ok())
        .clone()
        .map(|p| Card::new(p, Interface::Contact))
}

/// Command and response APDU parsing round-trips; the card answers any command.
pub fn apdu(data: &[u8]) {
    if let Ok(cmd) = Command::parse(data) {
        assert_eq!(
            cmd.encode().ok().as_deref(),
            Some(data),
            "command round trip"
        );
    }
    if let Ok(r) = Response::parse(data) {
        assert_eq!(r.encode(), data, "response round trip");
    }
    if let Some(mut card) = visa() {
        card.power_on();
        let r = card.handle_apdu(data);
        assert!(r.data.len() < 1024);
    }
}

/// vpcd frames decode whole or not at all, across any split; a card fed any frames
/// (after power-on) answers each with a well-formed frame.
pub fn vpcd(data: &[u8]) {
    let mut whole = FrameBuffer::new();
    whole.feed(data);
    let mut frames = Vec::new();
    while let Some(p) = whole.next_frame() {
        frames.push(p);
    }
    let reencoded: Vec<u8> = frames
        .iter()
        .flat_map(|p| vpcd::encode_frame(p).unwrap_or_default())
        .collect();
    assert_eq!(
        &data[..reencoded.len()],
        reencoded.as_slice(),
        "frame round trip"
    );
    assert_eq!(reencoded.len() + whole.buffered(), data.len());

    if let Some(card) = visa() {
        let mut card = VpcdCard::new(card);
        let _ = card.handle_bytes(&ReaderMessage::PowerOn.encode().unwrap_or_default());
        let out = card.handle_bytes(data);
        let mut answers = FrameBuffer::new();
        answers.feed(&out);
        while answers.next_frame().is_some() {}
        assert_eq!(answers.buffered(), 0, "the card's answers are whole frames");
    }
}

/// Loading any text as a profile never panics; a profile that loads gives a working card.
pub fn profile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Track2::parse(text);
    if let Ok(p) = CardProfile::from_yaml(text, "fuzz.yaml") {
        let mut card = Card::new(p, Interface::Contact);
        card.power_on();
        for cmd in [
            Command::select(crate::card::PSE),
            Command::read_record(1, 1),
            Command::get_processing_options(&[]),
            Command::read_record(1, 1),
            Command::generate_ac(0x80, &[0; 29]),
        ] {
            let _ = card.handle_command(&cmd);
        }
    }
}

/// Offline data authentication parsers: byte 0 selects what the rest is (an issuer or
/// ICC certificate, signed static or dynamic data, a CDA signature, recovered under the
/// test CA / issuer / ICC keys, or an ODA key file when it is text); the rest is cut or
/// padded to the key's length so most inputs reach the checks after recovery. Never
/// panics; whatever verifies must have been signed (it cannot: the oracle is that no
/// arbitrary input passes the hash check).
pub fn oda(data: &[u8]) {
    use crate::oda::{self, keyfile::OdaKeyFile};
    static KEYS: std::sync::OnceLock<Option<(poslab_crypto::RsaPublic, poslab_crypto::RsaPublic)>> =
        std::sync::OnceLock::new();
    let Some((ca, issuer)) = KEYS
        .get_or_init(|| {
            let f = OdaKeyFile::parse(oda::TEST_KEYS).ok()?;
            Some((
                f.key("ca-visa-test").ok()?.public().ok()?,
                f.key("issuer-visa-test").ok()?.public().ok()?,
            ))
        })
        .clone()
    else {
        return;
    };
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel == b'-' {
        if let Ok(text) = std::str::from_utf8(rest) {
            if let Ok(f) = OdaKeyFile::parse(text) {
                let _ = f.ca_keys();
                for k in f.keys.values() {
                    let _ = k.public();
                }
            }
        }
        return;
    }
    let key = if sel & 1 == 0 { &ca } else { &issuer };
    let mut block = rest.to_vec();
    block.resize(key.len(), 0);
    let pan = "4761739001010010";
    let passed = match sel % 5 {
        0 => oda::recover_certificate(key, 0x02, &block, &[], &[3], &[], pan, 2611).is_ok(),
        1 => oda::recover_certificate(key, 0x04, &block, &[], &[3], &[], pan, 2611).is_ok(),
        2 => oda::verify_static_data(key, &block, rest).is_ok(),
        3 => oda::verify_dynamic_data(key, &block, &[1, 2, 3, 4]).is_ok(),
        _ => oda::verify_cda(key, &block, &[1, 2, 3, 4], 0x80, &[0; 20]).is_ok(),
    };
    assert!(
        !passed,
        "an unsigned input passed offline data authentication"
    );
    let _ = oda::recover(key, "fuzz", rest);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    fn replay(target: &str, f: fn(&[u8])) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(target);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            f(&std::fs::read(&path).unwrap());
            n += 1;
        }
        assert!(n > 0, "no seeds in {}", dir.display());
    }

    #[test]
    fn emv_apdu_corpus_replays() {
        replay("emv_apdu", super::apdu);
    }

    #[test]
    fn emv_vpcd_corpus_replays() {
        replay("emv_vpcd", super::vpcd);
    }

    #[test]
    fn emv_profile_corpus_replays() {
        replay("emv_profile", super::profile);
    }

    #[test]
    fn emv_oda_corpus_replays() {
        replay("emv_oda", super::oda);
    }
}
