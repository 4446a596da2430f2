//! Integration tests: the EMV card and the card reader.
//!
//! - The reader and the card over an in-memory link (real vpcd framing, no sockets):
//!   the whole contact flow with the ARQC checked by the issuer side of poslab-crypto,
//!   contactless, removal mid-transaction, a dead chip falling back to the stripe.
//! - `poslab card` over TCP against poslab's own reader (the vpcd side), with reconnection.
//! - `poslab card` through pcscd + vsmartcard-vpcd, driven by pyscard (an independent
//!   PC/SC program); the Rust side verifies the ARQC it got.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::time::Duration;

use poslab_crypto::{Key, Padding, SessionKeyMethod};
use poslab_emv::card::{cid, dol_value, format2_pin_block, issuer_script_command, PPSE, PSE};
use poslab_emv::reader::Slot;
use poslab_emv::{
    Card, CardProfile, Command, Interface, ReaderError, ReaderOutput, Response, StatusWord,
};
use poslab_tlv::{parse, parse_dol, Tag, Tlv};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/cards")
        .join(name)
}

fn profile(name: &str) -> CardProfile {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path).unwrap();
    CardProfile::from_yaml(&text, &path.display().to_string()).unwrap()
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// The issuer's view of the card: keys from the profile's test IMK.
struct Issuer {
    imk: Key,
    pan: String,
    psn: u8,
}

impl Issuer {
    fn of(p: &CardProfile) -> Issuer {
        let k = p.keys.as_ref().expect("keys");
        Issuer {
            imk: Key::tdes(k.imk_ac.expose()).unwrap(),
            pan: p.pan.expose().to_string(),
            psn: p.pan_sequence, // < 10 in the fixtures, so decimal == BCD
        }
    }
    fn session_key(&self, atc: u16) -> Key {
        let mk = poslab_crypto::derive_icc_master_key_a(&self.imk, &self.pan, self.psn).unwrap();
        poslab_crypto::derive_ac_session_key(&mk, SessionKeyMethod::Common, atc, [0; 4]).unwrap()
    }
    /// Checks a cryptogram over CDOL data ‖ AIP ‖ ATC ‖ IAD, as the issuer does.
    fn verify(&self, cdol_data: &[u8], aip: &[u8], ac: &GenAc) -> bool {
        let mut data = cdol_data.to_vec();
        data.extend_from_slice(aip);
        data.extend_from_slice(&ac.atc.to_be_bytes());
        data.extend_from_slice(&ac.iad);
        poslab_crypto::verify_arqc(
            &self.imk,
            &self.pan,
            self.psn,
            SessionKeyMethod::Common,
            ac.atc,
            [0; 4],
            &data,
            Padding::Method2,
            &ac.ac,
        )
        .unwrap()
    }
}

#[derive(Debug)]
struct GenAc {
    cid: u8,
    atc: u16,
    ac: Vec<u8>,
    iad: Vec<u8>,
}

/// Reads a GENERATE AC answer in format 1 (`80`) or format 2 (`77`).
fn gen_ac(data: &[u8]) -> GenAc {
    let tlvs = parse(data).unwrap();
    let top = tlvs.first().unwrap();
    if top.tag == Tag(0x80) {
        let b = top.bytes().unwrap();
        GenAc {
            cid: b[0],
            atc: u16::from_be_bytes([b[1], b[2]]),
            ac: b[3..11].to_vec(),
            iad: b[11..].to_vec(),
        }
    } else {
        let get = |t: u32| top.find(t).unwrap().bytes().unwrap().to_vec();
        let atc = get(0x9F36);
        GenAc {
            cid: get(0x9F27)[0],
            atc: u16::from_be_bytes([atc[0], atc[1]]),
            ac: get(0x9F26),
            iad: get(0x9F10),
        }
    }
}

/// Values for a DOL: the tags a terminal knows, zeros for the rest.
fn dol_data(dol: &[u8], known: &[(u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, len) in parse_dol(dol).unwrap() {
        match known.iter().find(|(t, _)| Tag(*t) == tag) {
            Some((_, v)) => {
                assert_eq!(v.len(), len, "value length for {tag}");
                out.extend_from_slice(v);
            }
            None => out.extend(std::iter::repeat_n(0u8, len)),
        }
    }
    out
}

const TERMINAL: &[(u32, &[u8])] = &[
    (0x9F02, &[0, 0, 0, 0, 0x12, 0x50]),
    (0x9F03, &[0; 6]),
    (0x9F1A, &[0x02, 0x76]),
    (0x95, &[0; 5]),
    (0x5F2A, &[0x09, 0x78]),
    (0x9A, &[0x26, 0x11, 0x23]),
    (0x9C, &[0x00]),
    (0x9F37, &[0xCA, 0xFE, 0xBA, 0xBE]),
    (0x9F66, &[0x36, 0x00, 0x40, 0x00]),
];

fn ok(r: Result<Response, ReaderError>) -> Vec<u8> {
    let r = r.unwrap();
    assert_eq!(r.sw, StatusWord::SUCCESS, "{r:?}");
    r.data
}

/// What the terminal learnt from application selection, GPO and the records.
struct Read {
    aip: Vec<u8>,
    cdol1: Vec<u8>,
    cdol2: Vec<u8>,
    track2: Vec<u8>,
    pan: Vec<u8>,
    expiry: Vec<u8>,
}

/// SELECT the AID, GPO with PDOL values, READ RECORD over the AFL.
fn select_gpo_read(slot: &mut Slot, aid: &[u8]) -> Read {
    let fci = ok(slot.exchange(&Command::select(aid)));
    let fci = parse(&fci).unwrap();
    let pdol = poslab_tlv::find(&fci, 0x9F38u32)
        .and_then(Tlv::bytes)
        .unwrap_or(&[])
        .to_vec();
    let gpo = ok(slot.exchange(&Command::get_processing_options(&dol_data(&pdol, TERMINAL))));
    let gpo = parse(&gpo).unwrap();
    let (aip, afl) = match gpo[0].tag {
        Tag(0x80) => {
            let b = gpo[0].bytes().unwrap();
            (b[..2].to_vec(), b[2..].to_vec())
        }
        _ => (
            gpo[0].find(0x82u32).unwrap().bytes().unwrap().to_vec(),
            gpo[0].find(0x94u32).unwrap().bytes().unwrap().to_vec(),
        ),
    };
    let mut found = Vec::new();
    for e in afl.chunks(4) {
        for rec in e[1]..=e[2] {
            let data = ok(slot.exchange(&Command::read_record(e[0] >> 3, rec)));
            let t = parse(&data).unwrap();
            assert_eq!(t[0].tag, Tag(0x70));
            found.extend(t[0].children().to_vec());
        }
    }
    let get = |t: u32| {
        poslab_tlv::find(&found, t)
            .and_then(Tlv::bytes)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    };
    Read {
        aip,
        cdol1: get(0x8C),
        cdol2: get(0x8D),
        track2: get(0x57),
        pan: get(0x5A),
        expiry: get(0x5F24),
    }
}

#[test]
fn full_contact_flow_over_an_in_memory_link_ends_in_a_tc() {
    let p = profile("visa-credit.yaml");
    let issuer = Issuer::of(&p);
    let mut slot = Slot::new();
    let atr = slot.present(Card::new(p.clone(), Interface::Contact), Interface::Contact);
    assert_eq!(
        atr,
        ReaderOutput::Atr {
            interface: Interface::Contact,
            atr: poslab_emv::profile::DEFAULT_ATR.to_vec()
        }
    );

    // PSE and its directory
    let fci = ok(slot.exchange(&Command::select(PSE)));
    let sfi = poslab_tlv::find(&parse(&fci).unwrap(), 0x88u32)
        .unwrap()
        .bytes()
        .unwrap()[0];
    let dir = ok(slot.exchange(&Command::read_record(sfi, 1)));
    let aid = poslab_tlv::find(&parse(&dir).unwrap(), 0x4Fu32)
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    assert_eq!(aid, h("A0000000031010"));
    let end = slot.exchange(&Command::read_record(sfi, 2)).unwrap();
    assert_eq!(end.sw, StatusWord::RECORD_NOT_FOUND);
    // no PPSE on the contact interface
    assert_eq!(
        slot.exchange(&Command::select(PPSE)).unwrap().sw,
        StatusWord::FILE_NOT_FOUND
    );

    let read = select_gpo_read(&mut slot, &aid);
    assert_eq!(read.pan, h("4761739001010010"));
    assert_eq!(read.expiry, h("281231"));
    assert_eq!(read.track2, p.track2.to_tag57());

    // GET DATA and offline PIN
    assert_eq!(
        ok(slot.exchange(&Command::get_data(0x9F36))),
        h("9F36020011")
    );
    assert_eq!(ok(slot.exchange(&Command::get_data(0x9F17))), h("9F170103"));
    let wrong = slot
        .exchange(&Command::verify_plaintext(
            &format2_pin_block("0000").unwrap(),
        ))
        .unwrap();
    assert_eq!(wrong.sw, StatusWord(0x63C2));
    ok(slot.exchange(&Command::verify_plaintext(
        &format2_pin_block("1234").unwrap(),
    )));

    // first GENERATE AC: ARQC, verified by the issuer
    let cdol1 = dol_data(&read.cdol1, TERMINAL);
    let first = gen_ac(&ok(slot.exchange(&Command::generate_ac(cid::ARQC, &cdol1))));
    assert_eq!(first.cid, cid::ARQC);
    assert_eq!(first.atc, 0x11);
    assert_eq!(&first.iad[..4], &[0x06, 0x01, 0x12, 0x03]);
    assert!(
        issuer.verify(&cdol1, &read.aip, &first),
        "ARQC verifies with the issuer key"
    );
    let mut tampered = cdol1.clone();
    tampered[5] ^= 1; // another amount
    assert!(!issuer.verify(&tampered, &read.aip, &first));

    // the issuer approves: ARPC (method 1) with ARC "00"
    let sk = issuer.session_key(first.atc);
    let arpc = poslab_crypto::generate_arpc_method1(&sk, &first.ac, b"00").unwrap();
    let bad = slot
        .exchange(&Command::external_authenticate(
            &[&[0u8; 8][..], b"00"].concat(),
        ))
        .unwrap();
    assert_eq!(bad.sw, StatusWord::AUTHENTICATION_FAILED);
    // one EXTERNAL AUTHENTICATE per transaction: start again and do it right
    let read = select_gpo_read(&mut slot, &aid);
    let first = gen_ac(&ok(slot.exchange(&Command::generate_ac(cid::ARQC, &cdol1))));
    assert!(issuer.verify(&cdol1, &read.aip, &first));
    let sk = issuer.session_key(first.atc);
    let arpc2 = poslab_crypto::generate_arpc_method1(&sk, &first.ac, b"00").unwrap();
    assert_ne!(arpc, arpc2);
    ok(slot.exchange(&Command::external_authenticate(
        &[&arpc2[..], b"00"].concat(),
    )));

    // second GENERATE AC with the ARC: TC
    let mut known = TERMINAL.to_vec();
    known.push((0x8A, b"00"));
    let cdol2 = dol_data(&read.cdol2, &known);
    assert_eq!(dol_value(&read.cdol2, &cdol2, 0x8A).unwrap(), b"00");
    let second = gen_ac(&ok(slot.exchange(&Command::generate_ac(cid::TC, &cdol2))));
    assert_eq!(second.cid, cid::TC);
    assert!(issuer.verify(&cdol2, &read.aip, &second), "TC verifies");
    let state = slot.card().unwrap().state();
    assert_eq!(state.last_online_atc, second.atc);
    assert_eq!(state.consecutive_offline, 0);
    // and nothing more in this transaction
    let again = slot
        .exchange(&Command::generate_ac(cid::TC, &cdol2))
        .unwrap();
    assert_eq!(again.sw, StatusWord::CONDITIONS_NOT_SATISFIED);
}

#[test]
fn a_declined_online_authorisation_gives_an_aac() {
    let p = profile("visa-credit.yaml");
    let issuer = Issuer::of(&p);
    let mut slot = Slot::new();
    slot.present(Card::new(p, Interface::Contact), Interface::Contact);
    let read = select_gpo_read(&mut slot, &h("A0000000031010"));
    let cdol1 = dol_data(&read.cdol1, TERMINAL);
    let first = gen_ac(&ok(slot.exchange(&Command::generate_ac(cid::ARQC, &cdol1))));
    let sk = issuer.session_key(first.atc);
    let arpc = poslab_crypto::generate_arpc_method1(&sk, &first.ac, b"05").unwrap();
    ok(slot.exchange(&Command::external_authenticate(
        &[&arpc[..], b"05"].concat(),
    )));
    let mut known = TERMINAL.to_vec();
    known.push((0x8A, b"05"));
    let second = gen_ac(&ok(slot.exchange(&Command::generate_ac(
        cid::TC,
        &dol_data(&read.cdol2, &known),
    ))));
    assert_eq!(second.cid, cid::AAC, "do not honour: the card declines");
}

#[test]
fn issuer_script_blocks_the_application_and_is_counted() {
    let p = profile("visa-credit.yaml");
    let issuer = Issuer::of(&p);
    let mut slot = Slot::new();
    slot.present(Card::new(p, Interface::Contact), Interface::Contact);
    let aid = h("A0000000031010");
    let read = select_gpo_read(&mut slot, &aid);
    let cdol1 = dol_data(&read.cdol1, TERMINAL);
    let first = gen_ac(&ok(slot.exchange(&Command::generate_ac(cid::ARQC, &cdol1))));
    let sk = issuer.session_key(first.atc);
    // a script command with a wrong MAC fails, one with the right MAC is applied
    let mut forged =
        issuer_script_command(&sk, [0x84, 0x1E, 0, 0], &[], first.atc, &first.ac).unwrap();
    forged.data[0] ^= 0xFF;
    assert_eq!(
        slot.exchange(&forged).unwrap().sw,
        StatusWord::SM_DATA_INCORRECT
    );
    let block = issuer_script_command(&sk, [0x84, 0x1E, 0, 0], &[], first.atc, &first.ac).unwrap();
    ok(slot.exchange(&block));
    let state = slot.card().unwrap().state().clone();
    assert_eq!(state.script_commands, 2);
    assert!(state.script_failed);
    assert_eq!(state.last_script_status, Some(StatusWord::SUCCESS));
    assert_eq!(state.app_blocked, vec![true]);
    // the CVR of the next cryptogram reports the script count and the failure
    let mut known = TERMINAL.to_vec();
    known.push((0x8A, b"00"));
    let second = gen_ac(&ok(slot.exchange(&Command::generate_ac(
        cid::TC,
        &dol_data(&read.cdol2, &known),
    ))));
    assert_eq!(second.cid, cid::AAC, "a blocked application declines");
    assert_eq!(
        second.iad[6], 0x28,
        "CVR byte 4: 2 script commands, one failed"
    );
    // next transaction: SELECT answers 6283 with the FCI
    let r = slot.exchange(&Command::select(&aid)).unwrap();
    assert_eq!(r.sw, StatusWord::SELECTED_FILE_INVALIDATED);
    assert!(!r.data.is_empty());
}

#[test]
fn contactless_tap_goes_through_the_ppse_and_format_2_answers() {
    let p = profile("mastercard-debit.yaml");
    let issuer = Issuer::of(&p);
    let mut slot = Slot::new();
    match slot.present(Card::new(p, Interface::Contactless), Interface::Contactless) {
        ReaderOutput::Atr { interface, .. } => assert_eq!(interface, Interface::Contactless),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        slot.exchange(&Command::select(PSE)).unwrap().sw,
        StatusWord::FILE_NOT_FOUND
    );
    let ppse = ok(slot.exchange(&Command::select(PPSE)));
    let ppse = parse(&ppse).unwrap();
    let aid = poslab_tlv::find(&ppse, 0x4Fu32)
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    assert_eq!(
        poslab_tlv::find(&ppse, 0x9F2Au32).unwrap().bytes().unwrap(),
        &[0x02]
    );
    let read = select_gpo_read(&mut slot, &aid);
    // CDA and DDA supported (byte 1: 0x20 | 0x01), cardholder verification, terminal risk
    // management, issuer authentication; EMV mode on contactless (byte 2: 0x80)
    assert_eq!(read.aip, h("3D80"));
    let cdol1 = dol_data(&read.cdol1, TERMINAL);
    // debit: asks for TC, gets ARQC (offline limit 0)
    let ac = gen_ac(&ok(slot.exchange(&Command::generate_ac(cid::TC, &cdol1))));
    assert_eq!(ac.cid, cid::ARQC);
    assert!(issuer.verify(&cdol1, &read.aip, &ac));
}

#[test]
fn removal_mid_transaction_is_an_error_on_the_reader_side() {
    let p = profile("visa-credit.yaml");
    let mut slot = Slot::new();
    slot.present(Card::new(p, Interface::Contact), Interface::Contact);
    let read = select_gpo_read(&mut slot, &h("A0000000031010"));
    // the command is on its way when the card leaves
    slot.reader_mut()
        .transmit(&Command::generate_ac(
            cid::ARQC,
            &dol_data(&read.cdol1, TERMINAL),
        ))
        .unwrap();
    let card = slot.remove().expect("the card was there");
    match slot.reader_mut().poll_output() {
        Some(ReaderOutput::Error(e)) => {
            assert_eq!(e, ReaderError::CardRemoved);
            assert_eq!(e.status_word(), StatusWord(0x6F00));
        }
        other => panic!("expected card removed, got {other:?}"),
    }
    assert_eq!(
        slot.exchange(&Command::select(PSE)),
        Err(ReaderError::NoCard)
    );
    // the card counted the transaction it started (GPO), and never gave a cryptogram
    assert_eq!(card.state().atc, 0x11);
    // inserted again, it works
    slot.present(card, Interface::Contact);
    ok(slot.exchange(&Command::select(PSE)));
}

#[test]
fn a_dead_chip_falls_back_to_the_stripe() {
    let p = profile("fallback.yaml");
    let mut slot = Slot::new();
    assert_eq!(
        slot.present(Card::new(p.clone(), Interface::Contact), Interface::Contact),
        ReaderOutput::Error(ReaderError::Mute)
    );
    assert_eq!(slot.exchange(&Command::select(PSE)), Err(ReaderError::Mute));
    slot.remove();
    match slot.swipe(&p) {
        ReaderOutput::Swiped(t) => {
            assert_eq!(t.expose(), "4761739001010119=28102010000000000000");
            assert!(t.service_code().chip_present(), "201: a fallback swipe");
            assert_eq!(
                t.to_string(),
                format!("476173******0119={}", "*".repeat(20))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn magstripe_only_expired_and_blocked_cards() {
    let stripe = profile("magstripe-only.yaml");
    assert!(!stripe.has_chip());
    let mut slot = Slot::new();
    assert_eq!(
        slot.present(
            Card::new(stripe.clone(), Interface::Contact),
            Interface::Contact
        ),
        ReaderOutput::Error(ReaderError::Mute)
    );
    match slot.swipe(&stripe) {
        ReaderOutput::Swiped(t) => {
            assert!(!t.service_code().chip_present());
            assert_eq!(t.expose(), "4111111111111111=2706101123456789");
        }
        other => panic!("{other:?}"),
    }

    let expired = profile("expired.yaml");
    assert!(expired.is_expired(2026, 11));
    assert!(!profile("visa-credit.yaml").is_expired(2026, 11));
    let mut slot = Slot::new();
    slot.present(Card::new(expired, Interface::Contact), Interface::Contact);
    let read = select_gpo_read(&mut slot, &h("A0000000031010"));
    assert_eq!(read.expiry, h("200131"));

    let blocked = profile("blocked-app.yaml");
    let mut slot = Slot::new();
    slot.present(Card::new(blocked, Interface::Contact), Interface::Contact);
    let r = slot
        .exchange(&Command::select(&h("A0000000041010")))
        .unwrap();
    assert_eq!(r.sw, StatusWord::SELECTED_FILE_INVALIDATED);
    let gpo = slot
        .exchange(&Command::get_processing_options(&[]))
        .unwrap();
    assert_eq!(gpo.sw, StatusWord::CONDITIONS_NOT_SATISFIED);
}

#[test]
fn every_fixture_loads_and_shows_no_card_data() {
    for entry in std::fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue; // ODA.md says how the profiles were personalised
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let p = CardProfile::from_yaml(&text, &path.display().to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{p:?}\n{}", poslab::cmd::card::summary(&p));
        assert!(!shown.contains(p.pan.expose()), "{shown}");
        assert!(!shown.contains(&p.track2.expose()), "{shown}");
        if let Some(k) = &p.keys {
            assert!(!shown
                .to_uppercase()
                .contains(&hex::encode_upper(k.imk_ac.expose())));
        }
    }
}

// ---- over TCP: the `poslab card` binary ----------------------------------------------------

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn poslab_card(args: &[&str]) -> Kill {
    let child = Process::new(env!("CARGO_BIN_EXE_poslab"))
        .arg("card")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start poslab card");
    Kill(child)
}

#[test]
fn poslab_card_meets_poslab_reader_over_tcp_and_reconnects() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let profile_path = fixture("visa-credit.yaml");
        let _card = poslab_card(&[
            "--vpcd",
            &addr,
            "--profile",
            profile_path.to_str().unwrap(),
            "--retry-ms",
            "50",
        ]);
        let p = profile("visa-credit.yaml");
        let issuer = Issuer::of(&p);
        let timeout = Duration::from_secs(10);
        let mut atcs = Vec::new();
        for _ in 0..2 {
            let mut link = poslab::card::accept_card(&listener, timeout).await.unwrap();
            let atr = link.activate(Interface::Contact).await.unwrap();
            assert_eq!(atr, poslab_emv::profile::DEFAULT_ATR.to_vec());
            let fci = link
                .exchange(&Command::select(&h("A0000000031010")))
                .await
                .unwrap();
            assert_eq!(fci.sw, StatusWord::SUCCESS);
            let pdol = dol_data(&h("9F0206 9F3704 5F2A02"), TERMINAL);
            let gpo = link
                .exchange(&Command::get_processing_options(&pdol))
                .await
                .unwrap();
            let aip = gpo.data[2..4].to_vec();
            let cdol1 = dol_data(&p.applications[0].cdol1, TERMINAL);
            let r = link
                .exchange(&Command::generate_ac(cid::ARQC, &cdol1))
                .await
                .unwrap();
            let ac = gen_ac(&r.data);
            assert!(issuer.verify(&cdol1, &aip, &ac), "ARQC over TCP verifies");
            atcs.push(ac.atc);
            // the reader goes away; the card connects again and keeps its counters
            drop(link);
        }
        assert_eq!(atcs, vec![0x11, 0x12]);
    });
}

#[test]
fn a_bad_profile_is_reported_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("poslab-card-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    let text = std::fs::read_to_string(fixture("visa-credit.yaml")).unwrap();
    std::fs::write(&bad, text.replace("cdol1: \"9F02 06", "cdol1: \"9F02 0")).unwrap();
    let out = Process::new(env!("CARGO_BIN_EXE_poslab"))
        .args(["card", "--check", "--profile", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let line = text
        .lines()
        .position(|l| l.starts_with("    cdol1:"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!("bad.yaml:{line}:")), "{err}");
    assert!(err.contains("cdol1: expected hex bytes"), "{err}");

    let good = Process::new(env!("CARGO_BIN_EXE_poslab"))
        .args([
            "card",
            "--check",
            "--profile",
            fixture("visa-credit.yaml").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success());
    assert!(shown.contains("476173******0010"), "{shown}");
    assert!(!shown.contains("4761739001010010"), "{shown}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- through pcscd + vsmartcard-vpcd, with pyscard ------------------------------------

fn pcscd_path() -> Option<PathBuf> {
    ["/usr/sbin/pcscd", "/usr/bin/pcscd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[test]
fn pyscard_sees_the_card_through_pcscd_and_the_arqc_verifies() {
    const TEST: &str = "card::pyscard_sees_the_card_through_pcscd_and_the_arqc_verifies";
    if !crate::peers::python_module("smartcard", TEST) {
        return;
    }
    let Some(pcscd) = pcscd_path() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "{TEST}: pcscd is missing in CI; .ci/run must install pcscd and vsmartcard-vpcd"
            );
        }
        eprintln!(
            "!!! SKIPPED {TEST}: pcscd is not installed (apt-get install pcscd vsmartcard-vpcd)"
        );
        return;
    };
    let vpcd_conf = std::fs::read_to_string("/etc/reader.conf.d/vpcd").unwrap_or_default();
    if !vpcd_conf.contains("0x8C7B") {
        if std::env::var_os("CI").is_some() {
            panic!("{TEST}: vsmartcard-vpcd is not configured on port 35963 in CI");
        }
        eprintln!("!!! SKIPPED {TEST}: vsmartcard-vpcd is not installed");
        return;
    }
    // our own pcscd when none runs; an already running one (with vpcd) serves as well
    let _pcscd = match Process::new(&pcscd)
        .args(["--foreground", "--auto-exit"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            std::thread::sleep(Duration::from_millis(500));
            match child.try_wait() {
                Ok(Some(_)) => None, // exited: another pcscd owns the socket
                _ => Some(Kill(child)),
            }
        }
        Err(e) => panic!("{TEST}: cannot start pcscd: {e}"),
    };
    let card = poslab_card(&[
        "--vpcd",
        "127.0.0.1:35963",
        "--profile",
        fixture("visa-credit.yaml").to_str().unwrap(),
        "--retry-ms",
        "100",
        "--log",
        "debug",
    ]);
    let out = Process::new(crate::peers::python())
        .arg(crate::peers::script("card_emv.py"))
        .args(["--timeout", "30"])
        .output()
        .expect("run card_emv.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut card = card;
    let _ = card.0.kill();
    let card_log = card
        .0
        .stderr
        .take()
        .map(|e| {
            BufReader::new(e)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    assert!(
        out.status.success(),
        "card_emv.py failed: {stdout}\n{}\ncard log:\n{card_log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        v["reader"].as_str().unwrap().starts_with("Virtual PCD"),
        "{v}"
    );
    assert_eq!(v["atr"], "3B80810100");
    assert_eq!(v["select_sw"], "9000");
    assert_eq!(v["gpo_sw"], "9000");
    // the AFL's five records: SFI 1, SFI 2 records 1-3, SFI 3 (the ODA certificates)
    assert_eq!(v["records"], 5);
    assert_eq!(v["pan_last4"], "0010");
    assert_eq!(v["generate_ac_sw"], "9000");
    assert!(
        !card_log.contains("4761739001010010"),
        "the card's log shows no PAN"
    );
    let gpo = h(v["gpo"].as_str().unwrap());
    let ac = gen_ac(&h(v["generate_ac"].as_str().unwrap()));
    assert_eq!(ac.cid, cid::ARQC);
    let cdol1 = h(v["cdol1"].as_str().unwrap());
    let issuer = Issuer::of(&profile("visa-credit.yaml"));
    assert!(
        issuer.verify(&cdol1, &gpo[2..4], &ac),
        "the ARQC pyscard got verifies"
    );
    assert_eq!(
        v["get_data_atc"].as_str().unwrap(),
        format!("9F3602{:04X}", ac.atc)
    );
}

#[test]
fn a_card_pulled_out_over_the_wire_is_card_removed_and_a_new_one_works() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let profile_path = fixture("visa-credit.yaml");
        let args = [
            "--vpcd",
            addr.as_str(),
            "--profile",
            profile_path.to_str().unwrap(),
            "--retry-ms",
            "50",
        ];
        let timeout = Duration::from_secs(10);
        let mut card = poslab_card(&args);
        let mut link = poslab::card::accept_card(&listener, timeout).await.unwrap();
        link.activate(Interface::Contact).await.unwrap();
        let fci = link
            .exchange(&Command::select(&h("A0000000031010")))
            .await
            .unwrap();
        assert_eq!(fci.sw, StatusWord::SUCCESS);
        // the card leaves between two commands: the next one is "card removed", at once
        card.0.kill().unwrap();
        card.0.wait().unwrap();
        let pdol = dol_data(&h("9F0206 9F3704 5F2A02"), TERMINAL);
        // (a reader left waiting would say Mute after its timeout instead)
        let r = link.exchange(&Command::get_processing_options(&pdol)).await;
        assert_eq!(r, Err(ReaderError::CardRemoved));
        assert_eq!(ReaderError::CardRemoved.status_word(), StatusWord(0x6F00));
        // another card is inserted: a new link, a new transaction
        let _card = poslab_card(&args);
        let mut link = poslab::card::accept_card(&listener, timeout).await.unwrap();
        link.activate(Interface::Contact).await.unwrap();
        let fci = link
            .exchange(&Command::select(&h("A0000000031010")))
            .await
            .unwrap();
        assert_eq!(fci.sw, StatusWord::SUCCESS);
    });
}
