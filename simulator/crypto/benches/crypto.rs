//! Throughput of the operations a host does per transaction (ARQC check, DUKPT PIN key,
//! PIN translation, retail MAC) and a terminal does (DUKPT next key, format 4 encipher).
//! Run: `cargo bench -p poslab-crypto --bench crypto`.

use criterion::{criterion_group, criterion_main, Criterion};
use poslab_crypto::dukpt::{self, Ksn};
use poslab_crypto::{
    derive_ac_session_key, derive_icc_master_key_a, encipher_pin_block, generate_ac, mac_alg3,
    verify_arqc, AesDukptTerminal, Key, Padding, Pin, PinBlockFormat, SessionKeyMethod,
    TdesDukptTerminal, TdesKsn,
};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let imk = Key::tdes(&[
        0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32,
        0x10,
    ])
    .unwrap();
    let pan = "4761739001010010";
    let data = [0x5Au8; 43];
    let mk = derive_icc_master_key_a(&imk, pan, 0x01).unwrap();
    let sk = derive_ac_session_key(&mk, SessionKeyMethod::Common, 0x1C, [0; 4]).unwrap();
    let arqc = generate_ac(&sk, &data, Padding::Method2).unwrap();
    c.bench_function("emv verify_arqc (imk -> mk -> sk -> mac)", |b| {
        b.iter(|| {
            verify_arqc(
                &imk,
                pan,
                0x01,
                SessionKeyMethod::Common,
                0x1C,
                [0; 4],
                black_box(&data),
                Padding::Method2,
                &arqc,
            )
            .unwrap()
        })
    });
    let msg = [0x33u8; 256];
    c.bench_function("retail mac (iso 9797-1 alg 3), 256 bytes", |b| {
        b.iter(|| mac_alg3(&imk, black_box(&msg), Padding::Method1).unwrap())
    });
    let bdk = imk.clone();
    let ksn = Ksn::parse_hex("FFFF9876543210E00401").unwrap();
    c.bench_function("tdes dukpt host pin key (bdk + ksn)", |b| {
        b.iter(|| dukpt::pin_key(&bdk, black_box(&ksn)).unwrap())
    });
    let aes_bdk = Key::aes(&[0xF1; 16]).unwrap();
    let aksn = Ksn::parse_hex("123456789012345600000401").unwrap();
    c.bench_function("aes dukpt host pin key (bdk + ksn)", |b| {
        b.iter(|| dukpt::pin_key(&aes_bdk, black_box(&aksn)).unwrap())
    });
    let zpk = Key::tdes(&[0x4C; 16]).unwrap();
    let pin = Pin::new("1234").unwrap();
    let pkey = dukpt::pin_key(&bdk, &ksn).unwrap();
    let block = encipher_pin_block(&pkey, PinBlockFormat::Iso0, &pin, pan, &[0; 8]).unwrap();
    c.bench_function("pin translate dukpt -> zpk (format 0)", |b| {
        b.iter(|| {
            dukpt::translate_pin_to_zone(
                &bdk,
                &ksn,
                PinBlockFormat::Iso0,
                black_box(block.expose()),
                pan,
                &zpk,
                PinBlockFormat::Iso0,
                &[0; 8],
            )
            .unwrap()
        })
    });
    let ipek = dukpt::tdes::derive_ipek(&bdk, &TdesKsn::parse_hex("FFFF9876543210E00000").unwrap())
        .unwrap();
    let terminal = TdesDukptTerminal::load_initial_key(
        &ipek,
        &TdesKsn::parse_hex("FFFF9876543210E00000").unwrap(),
    )
    .unwrap();
    c.bench_function(
        "tdes dukpt terminal next_transaction (1000 in a row)",
        |b| {
            b.iter(|| {
                let mut t = terminal.clone();
                for _ in 0..1000 {
                    black_box(t.next_transaction().unwrap());
                }
            })
        },
    );
    let ik =
        dukpt::aes::derive_initial_key(&aes_bdk, &[0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56])
            .unwrap();
    let aterm =
        AesDukptTerminal::load_initial_key(&ik, [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56])
            .unwrap();
    c.bench_function("aes dukpt terminal next_transaction (1000 in a row)", |b| {
        b.iter(|| {
            let mut t = aterm.clone();
            for _ in 0..1000 {
                black_box(t.next_transaction().unwrap());
            }
        })
    });
    let aes_pek = Key::aes(&[0x24; 16]).unwrap();
    c.bench_function("pin block format 4 encipher (aes)", |b| {
        b.iter(|| {
            encipher_pin_block(
                &aes_pek,
                PinBlockFormat::Iso4,
                &pin,
                black_box(pan),
                &[7; 8],
            )
            .unwrap()
        })
    });
}

criterion_group!(crypto, benches);
criterion_main!(crypto);
