//! Payment security primitives on RustCrypto (`des`, `aes`, `cmac`): key check values,
//! block helpers, EMV cryptograms, ISO 9564 PIN blocks, ISO 9797-1 MACs, DUKPT. Sans-IO:
//! no clock, no global RNG (random fill is an input), no I/O. Every primitive is pinned
//! by published test vectors in its unit tests (the source is cited beside each).
//!
//! Key material lives in [`Key`]: `Debug`/`Display` show the algorithm and KCV only,
//! bytes are zeroized on drop. Errors ([`CryptoError`]) never carry key or PIN material.
//!
//! # API (stable signatures other crates call)
//!
//! Keys and KCVs ([`key`]):
//! ```text
//! Key::tdes(&[u8]) -> Result<Key>            // 16 or 24 bytes
//! Key::aes(&[u8]) -> Result<Key>             // 16, 24 or 32 bytes
//! Key::from_hex(KeyAlgorithm, &str) -> Result<Key>
//! Key::expose(&self) -> &[u8]                // clear bytes, for crypto only
//! Key::kcv(&self) -> Kcv                     // E(K, 0-block)[..3]
//! Key::kcv_cmac(&self) -> Kcv                // CMAC(K, 0-block)[..3]
//! Key::check_kcv(&self, &Kcv) -> Result<()>
//! Key::xor(&self, &Key) -> Result<Key>       // key components
//! ecb_encrypt / ecb_decrypt(&Key, &[u8]) -> Result<Vec<u8>>
//! cbc_encrypt / cbc_decrypt(&Key, iv: &[u8], &[u8]) -> Result<Vec<u8>>
//! ```
//!
//! Key exchange ([`keyx`]) and the test key file ([`keyfile`]):
//! ```text
//! wrap_key(kek: &Key, key: &Key) -> Result<KeyUnderKey>         // ECB + KCV of the clear key
//! unwrap_key(kek: &Key, &KeyUnderKey) -> Result<Key>            // checks the KCV
//! KeyUnderKey::from_hex(KeyAlgorithm, cryptogram: &str, kcv: &str) -> Result<KeyUnderKey>
//! combine_components(&[Key]) -> Result<Key>
//! KeyFile::parse(&str) -> Result<KeyFile>; KeyFile::key(&self, name) -> Result<&Key>
//! ```
//!
//! EMV ([`emv`]), for the card emulator and the host:
//! ```text
//! derive_icc_master_key_a(imk: &Key, pan: &str, psn: u8 /* 5F34, BCD */) -> Result<Key>
//! derive_common_session_key(icc_mk: &Key, r: &[u8] /* 8 (TDES) or 16 (AES) */) -> Result<Key>
//! derive_ac_session_key(icc_mk: &Key, SessionKeyMethod, atc: u16, un: [u8; 4]) -> Result<Key>
//! generate_ac(sk: &Key, cdol_data: &[u8], Padding) -> Result<[u8; 8]>
//! verify_ac(sk: &Key, cdol_data: &[u8], Padding, ac: &[u8]) -> Result<bool>
//! verify_arqc(imk, pan, psn, SessionKeyMethod, atc, un, data, Padding, arqc) -> Result<bool>
//! generate_arpc_method1(sk: &Key, arqc: &[u8], arc: &[u8] /* 2 */) -> Result<[u8; 8]>
//! verify_arpc_method1(sk, arqc, arc, arpc) -> Result<bool>
//! generate_arpc_method2(sk: &Key, arqc: &[u8], csu: &[u8] /* 4 */, prop: &[u8]) -> Result<[u8; 4]>
//! verify_arpc_method2(sk, arqc, csu, prop, arpc) -> Result<bool>
//! ```
//!
//! PIN blocks ([`pin`]); `random` is caller-supplied fill, blocks come back as `Secret`:
//! ```text
//! Pin::new(&str) -> Result<Pin>                                  // 4-12 digits
//! encode_pin_block(PinBlockFormat /* 0-3 */, &Pin, pan: &str, random: &[u8; 8]) -> Result<Secret>
//! decode_pin_block(PinBlockFormat, block: &[u8], pan: &str) -> Result<Pin>
//! encipher_pin_block(&Key, PinBlockFormat /* 0-3 tdes, 4 aes */, &Pin, pan, random) -> Result<Secret>
//! decipher_pin_block(&Key, PinBlockFormat, block: &[u8], pan: &str) -> Result<Pin>
//! verify_pin(&Key, PinBlockFormat, block, pan, expected: &Pin) -> Result<bool>
//! translate_pin_block(from_key, from_format, block, pan, to_key, to_format, random) -> Result<Secret>
//! ```
//!
//! HSM-style PIN translation between zones ([`pin_translate`]); the clear PIN never leaves it:
//! ```text
//! translate(PinZone { key, format }, block, pan, PinZone { key, format }, random) -> Result<Translation>
//! Translation { block: Secret, from_format, from_kcv, to_format, to_kcv }; .describe() for journals
//! ```
//!
//! DUKPT ([`dukpt`]); host side from the BDK, terminal side as a state machine:
//! ```text
//! Ksn::from_bytes(&[u8]) / Ksn::parse_hex(&str) -> Result<Ksn>   // 10 bytes TDES, 12 AES
//! dukpt::pin_key(bdk: &Key, &Ksn) -> Result<Key>                  // host PIN key
//! dukpt::mac_key(bdk: &Key, &Ksn, request: bool) -> Result<Key>
//! dukpt::translate_pin_to_zone(bdk, &Ksn, from_format, block, pan, zpk, to_format, random)
//! dukpt::tdes::{derive_ipek, derive_transaction_key, host_transaction_key, working_key(&Key, Variant)}
//! TdesDukptTerminal::load_initial_key(ipek: &Key, &TdesKsn) -> Result<Self>
//! TdesDukptTerminal::next_transaction(&mut self) -> Result<TdesTransaction { ksn, key }>
//! dukpt::aes::{derive_initial_key, derive_transaction_key, host_derivation_key,
//!              working_key(&Key, &AesKsn, KeyUsage, KeyAlgorithm)}
//! AesDukptTerminal::load_initial_key(ik: &Key, ikid: [u8; 8]) -> Result<Self>
//! AesDukptTerminal::next_transaction(&mut self) -> Result<AesTransaction { ksn, key }>
//! ```
//!
//! MACs ([`mac`]):
//! ```text
//! mac_alg1(&Key, data, Padding) -> Vec<u8>            // CBC-MAC, full block
//! mac_alg3(&Key /* tdes2 */, data, Padding) -> Result<[u8; 8]>  // retail MAC (X9.19)
//! cmac(&Key, data) -> Result<Vec<u8>>                 // AES or TDES CMAC
//! generate_mac(MacAlgorithm, &Key, data, len) -> Result<Vec<u8>>
//! verify_mac(MacAlgorithm, &Key, data, mac) -> Result<bool>
//! ```

pub mod dukpt;
pub mod emv;
pub mod error;
pub mod key;
pub mod keyfile;
pub mod keyx;
pub mod mac;
pub mod pin;
pub mod pin_translate;
pub mod rsa;

pub use dukpt::aes::{AesDukptTerminal, AesKsn};
pub use dukpt::tdes::{TdesDukptTerminal, TdesKsn};
pub use dukpt::Ksn;
pub use emv::{
    derive_ac_session_key, derive_common_session_key, derive_icc_master_key_a, generate_ac,
    generate_arpc_method1, generate_arpc_method2, verify_ac, verify_arpc_method1,
    verify_arpc_method2, verify_arqc, SessionKeyMethod,
};
pub use error::{CryptoError, Result};
pub use key::{
    cbc_decrypt, cbc_encrypt, ecb_decrypt, ecb_encrypt, Kcv, KcvMethod, Key, KeyAlgorithm,
};
pub use keyfile::{KeyEntry, KeyFile};
pub use keyx::{combine_components, unwrap_key, wrap_key, KeyUnderKey};
pub use mac::{cmac, generate_mac, mac_alg1, mac_alg3, verify_mac, MacAlgorithm, Padding};
pub use pin::{
    decipher_pin_block, decode_pin_block, encipher_pin_block, encode_pin_block,
    translate_pin_block, verify_pin, Pin, PinBlockFormat,
};
pub use pin_translate::{translate, translation_allowed, PinZone, Translation};
pub use rsa::{RsaPrivate, RsaPublic};

/// Constant-time equality of two byte strings (length is not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Fuzz entry points (cargo-fuzz targets `crypto_*` under `fuzz/` call these; the seed
/// corpora are replayed by `tests/fuzz_corpus.rs`). Each checks a round-trip oracle.
pub mod fuzz {
    use crate::dukpt::Ksn;
    use crate::key::Key;
    use crate::keyfile::KeyFile;
    use crate::pin::{
        decipher_pin_block, decode_pin_block, encipher_pin_block, encode_pin_block, PinBlockFormat,
    };

    const FORMATS: [PinBlockFormat; 5] = [
        PinBlockFormat::Iso0,
        PinBlockFormat::Iso1,
        PinBlockFormat::Iso2,
        PinBlockFormat::Iso3,
        PinBlockFormat::Iso4,
    ];

    /// Byte 0 selects the format (`% 5`) and the PAN length (`/ 5 % 20`), the next bytes
    /// are the PAN digits (`% 10`), the rest is the PIN block. Decoding (clear) and
    /// deciphering (under fixed test keys) never panic, and whatever decodes re-encodes
    /// to a block that decodes to the same PIN (byte-exact for formats 0 and 2).
    pub fn pin_block(data: &[u8]) {
        let Some((&sel, rest)) = data.split_first() else {
            return;
        };
        let format = FORMATS[(sel % 5) as usize];
        let pan_len = ((sel / 5) % 20) as usize;
        let (pan_bytes, block) = rest.split_at(pan_len.min(rest.len()));
        let pan: String = pan_bytes.iter().map(|b| (b'0' + b % 10) as char).collect();
        if let Ok(pin) = decode_pin_block(format, block, &pan) {
            let again =
                encode_pin_block(format, &pin, &pan, &[0x5A; 8]).expect("a decoded pin re-encodes"); // ok: fuzz oracle
            let back = decode_pin_block(format, again.expose(), &pan).expect("re-decodes"); // ok: fuzz oracle
            assert_eq!(back, pin);
            if matches!(format, PinBlockFormat::Iso0 | PinBlockFormat::Iso2) {
                assert_eq!(
                    again.expose(),
                    block,
                    "format 0/2 encoding is deterministic"
                );
            }
        }
        let key = if format == PinBlockFormat::Iso4 {
            Key::aes(&[0x42; 16])
        } else {
            Key::tdes(&[0x42; 16])
        }
        .expect("fixed test key"); // ok: constant length
        if let Ok(pin) = decipher_pin_block(&key, format, block, &pan) {
            let again = encipher_pin_block(&key, format, &pin, &pan, &[0xA5; 8])
                .expect("a deciphered pin re-enciphers"); // ok: fuzz oracle
            let back =
                decipher_pin_block(&key, format, again.expose(), &pan).expect("re-deciphers"); // ok: fuzz oracle
            assert_eq!(back, pin);
        }
    }

    /// KSN parsing from bytes and from text; a parsed KSN prints and re-parses to itself.
    pub fn ksn(data: &[u8]) {
        if let Ok(k) = Ksn::from_bytes(data) {
            assert_eq!(k.as_bytes(), data);
            assert_eq!(Ksn::parse_hex(&k.to_string()), Ok(k));
        }
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok(k) = Ksn::parse_hex(text) {
                assert_eq!(Ksn::parse_hex(&k.to_string()), Ok(k));
            }
        }
    }

    /// Key file parsing never panics; a file that loads has KCV-consistent keys and its
    /// `Debug` carries no key bytes.
    pub fn key_file(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(file) = KeyFile::parse(text) {
            for e in file.entries() {
                assert!(e.key.check_kcv(&e.key.kcv()).is_ok());
                let shown = format!("{e:?}");
                let hex: String = e.key.expose().iter().map(|b| format!("{b:02X}")).collect();
                assert!(!shown.contains(&hex));
            }
        }
    }
}
