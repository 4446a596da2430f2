//! Personalises a test card profile for offline data authentication: computes the static
//! data to be authenticated from the card's own records (as a terminal reads them), then
//! signs the issuer certificate (CA key), the ICC certificate and the signed static data
//! (issuer key) with the test keys of `fixtures/keys/oda-test-keys.yaml`, and prints the
//! data objects to paste into the profile's `data:` section. Run it again whenever the
//! records counted for ODA change (a test then fails until you do):
//!
//! ```text
//! cargo run -p poslab-emv --example oda_personalise -- fixtures/cards/visa-credit.yaml \
//!     ca-visa-test issuer-visa-test [icc-visa-test]
//! ```

use poslab_emv::apdu::Command;
use poslab_emv::oda::{self, keyfile::OdaKeyFile, CertInfo};
use poslab_emv::{Card, CardProfile, Interface};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [profile_path, ca, issuer, rest @ ..] = args.as_slice() else {
        eprintln!("usage: oda_personalise PROFILE.yaml CA-KEY ISSUER-KEY [ICC-KEY]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(profile_path).expect("profile readable");
    let profile = CardProfile::from_yaml(&text, profile_path).expect("profile loads");
    let keys = OdaKeyFile::parse(oda::TEST_KEYS).expect("key file");
    let ca_raw = keys.key(ca).expect("ca key");
    let ca_key = ca_raw.private().expect("ca private key");
    let issuer_key = keys
        .key(issuer)
        .expect("issuer key")
        .private()
        .expect("issuer private");
    let static_data = static_data_of(&profile);
    let pan = profile.pan.expose().to_string();
    let out = |tag: &str, v: &[u8], what: &str| {
        println!("      \"{tag}\": \"{}\"   # {what}", hex::encode_upper(v));
    };
    out(
        "8F",
        &hex::decode(ca_raw.index.as_deref().unwrap_or("00")).unwrap(),
        "CA public key index",
    );
    let (cert, rem) = oda::sign_certificate(
        &ca_key,
        0x02,
        CertInfo {
            subject: &pan[..6],
            expiry: [0x12, 0x29],
            serial: [0, 0, 1],
        },
        issuer_key.public(),
        &[],
    )
    .expect("issuer certificate");
    out("90", &cert, "issuer public key certificate");
    out("92", &rem, "issuer public key remainder");
    out(
        "9F32",
        &issuer_key.public().exponent(),
        "issuer public key exponent",
    );
    out("9F4A", &[0x82], "static data authentication tag list (AIP)");
    let ssad = oda::sign_static_data(&issuer_key, [0xDA, 0xC1], &static_data).expect("ssad");
    out("93", &ssad, "signed static application data");
    if let Some(icc) = rest.first() {
        let icc_key = keys
            .key(icc)
            .expect("icc key")
            .private()
            .expect("icc private");
        let (cert, rem) = oda::sign_certificate(
            &issuer_key,
            0x04,
            CertInfo {
                subject: &pan,
                expiry: [0x12, 0x28],
                serial: [0, 0, 2],
            },
            icc_key.public(),
            &static_data,
        )
        .expect("icc certificate");
        out("9F46", &cert, "ICC public key certificate");
        out(
            "9F47",
            &icc_key.public().exponent(),
            "ICC public key exponent",
        );
        out("9F48", &rem, "ICC public key remainder");
    }
    eprintln!(
        "static data to be authenticated: {} bytes",
        static_data.len()
    );
}

/// What a terminal reads: the ODA records of the AFL (as the card answers them) and the AIP.
fn static_data_of(profile: &CardProfile) -> Vec<u8> {
    let app = profile.applications.first().expect("an application");
    let mut card = Card::new(profile.clone(), Interface::Contact);
    card.power_on();
    let r = card.handle_command(&Command::select(&app.aid));
    assert!(r.sw.is_success(), "select: {}", r.sw);
    let mut records = Vec::new();
    for e in &app.afl {
        for rec in e.first..e.first.saturating_add(e.oda) {
            let r = card.handle_command(&Command::read_record(e.sfi, rec));
            assert!(r.sw.is_success(), "read record {}/{rec}: {}", e.sfi, r.sw);
            records.push((e.sfi, r.data));
        }
    }
    oda::static_data(&records, Some(app.aip))
}
