//! How fast the emulated card answers: APDU parsing, and one whole contact transaction
//! through the reader over the in-memory vpcd link (SELECT, GPO, READ RECORD x4, VERIFY,
//! GENERATE AC with a real ARQC, EXTERNAL AUTHENTICATE, second GENERATE AC).
//!
//! cargo bench -p poslab-emv --bench card

use criterion::{criterion_group, criterion_main, Criterion};
use poslab_emv::card::{cid, format2_pin_block};
use poslab_emv::reader::Slot;
use poslab_emv::{Card, CardProfile, Command, Interface};

const VISA: &str = include_str!("../../../fixtures/cards/visa-credit.yaml");

fn transaction(slot: &mut Slot, pin: &[u8; 8]) -> u8 {
    let aid = [0xA0, 0, 0, 0, 0x03, 0x10, 0x10];
    let ok = |r: Result<poslab_emv::Response, _>| r.map(|r| r.data).unwrap_or_default();
    ok(slot.exchange(&Command::select(&aid)));
    ok(slot.exchange(&Command::get_processing_options(&[0; 12])));
    for (sfi, rec) in [(1, 1), (2, 1), (2, 2), (2, 3)] {
        ok(slot.exchange(&Command::read_record(sfi, rec)));
    }
    ok(slot.exchange(&Command::verify_plaintext(pin)));
    let first = ok(slot.exchange(&Command::generate_ac(cid::ARQC, &[0; 29])));
    ok(slot.exchange(&Command::external_authenticate(&[0; 10])));
    let mut cdol2 = vec![0x30, 0x30];
    cdol2.extend([0; 29]);
    let second = ok(slot.exchange(&Command::generate_ac(cid::TC, &cdol2)));
    first.get(2).copied().unwrap_or(0) ^ second.get(2).copied().unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let profile = CardProfile::from_yaml(VISA, "visa-credit.yaml").expect("fixture loads");
    let gen_ac = Command::generate_ac(cid::ARQC, &[0; 29])
        .encode()
        .expect("encodes");
    c.bench_function("apdu parse + encode (GENERATE AC)", |b| {
        b.iter(|| Command::parse(std::hint::black_box(&gen_ac)).map(|c| c.encode()))
    });
    let pin = format2_pin_block("1234").expect("pin block");
    c.bench_function("contact transaction over the in-memory vpcd link", |b| {
        let mut slot = Slot::new();
        slot.present(
            Card::new(profile.clone(), Interface::Contact),
            Interface::Contact,
        );
        b.iter(|| {
            // a fresh card every 60000 transactions, before the ATC runs out
            if slot.card().is_some_and(|c| c.state().atc > 60_000) {
                slot.remove();
                slot.present(
                    Card::new(profile.clone(), Interface::Contact),
                    Interface::Contact,
                );
            }
            transaction(&mut slot, &pin)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
