//! Message authentication: ISO/IEC 9797-1 MAC algorithms 1 and 3 (padding methods 1, 2,
//! 3) and CMAC (NIST SP 800-38B) for AES and TDES.
//!
//! Algorithm 3 with a two-key TDES key is the ANSI X9.19 "retail MAC" used by EMV
//! cryptograms and most ISO 8583 MAC fields; algorithm 1 with a single-DES key is X9.9,
//! with a TDES key it is a full TDES CBC-MAC.

use aes::{Aes128, Aes192, Aes256};
use cmac::{Cmac, Mac};
use des::{Des, TdesEde2, TdesEde3};

use crate::error::{CryptoError, Result};
use crate::key::{Cipher, Key, KeyAlgorithm};

/// ISO/IEC 9797-1 padding methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// Zero bytes up to a whole block (none if already aligned; one zero block if empty).
    Method1,
    /// `80` then zero bytes up to a whole block (always adds at least one byte).
    Method2,
    /// A block holding the data length in bits (big-endian), then method 1.
    Method3,
}

/// Pads `data` to a multiple of `block` bytes by `padding`.
pub fn pad(data: &[u8], block: usize, padding: Padding) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2 * block);
    match padding {
        Padding::Method1 => {
            out.extend_from_slice(data);
            if data.is_empty() {
                out.resize(block, 0);
            }
        }
        Padding::Method2 => {
            out.extend_from_slice(data);
            out.push(0x80);
        }
        Padding::Method3 => {
            let bits = (data.len() as u128).wrapping_mul(8).to_be_bytes();
            out.extend_from_slice(&bits[bits.len() - block..]);
            out.extend_from_slice(data);
        }
    }
    let rem = out.len() % block;
    if rem != 0 {
        out.resize(out.len() + block - rem, 0);
    }
    out
}

fn cbc_mac(cipher: &Cipher, padded: &[u8], block: usize) -> Vec<u8> {
    let mut h = vec![0u8; block];
    for chunk in padded.chunks_exact(block) {
        h.iter_mut().zip(chunk).for_each(|(a, b)| *a ^= b);
        cipher.encrypt_block(&mut h);
    }
    h
}

/// ISO/IEC 9797-1 MAC algorithm 1 (CBC-MAC) with any block cipher key; returns the full
/// last block (8 or 16 bytes) — truncate as the protocol says.
pub fn mac_alg1(key: &Key, data: &[u8], padding: Padding) -> Vec<u8> {
    let block = key.algorithm().block_len();
    cbc_mac(&Cipher::new(key), &pad(data, block, padding), block)
}

/// ISO/IEC 9797-1 MAC algorithm 3 (retail MAC, ANSI X9.19): single-DES CBC-MAC under K,
/// then `E_K(D_K'(H))`, with K‖K' a two-key TDES key.
pub fn mac_alg3(key: &Key, data: &[u8], padding: Padding) -> Result<[u8; 8]> {
    let (k, k2) = key.des_halves("iso 9797-1 mac algorithm 3")?;
    let c1 = Cipher::new(&k);
    let mut h = cbc_mac(&c1, &pad(data, 8, padding), 8);
    Cipher::new(&k2).decrypt_block(&mut h);
    c1.encrypt_block(&mut h);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h);
    Ok(out)
}

macro_rules! cmac_with {
    ($c:ty, $key:expr, $data:expr) => {{
        let mut m = <Cmac<$c> as cipher::KeyInit>::new_from_slice($key)
            .expect("key length checked when the Key was built"); // ok: Key::new checks the length
        m.update($data);
        m.finalize().into_bytes().to_vec()
    }};
}

/// CMAC of `data` under any key (full block: 8 bytes for DES/TDES, 16 for AES).
pub(crate) fn cmac_any(key: &Key, data: &[u8]) -> Vec<u8> {
    let k = key.expose();
    match key.algorithm() {
        KeyAlgorithm::Des => cmac_with!(Des, k, data),
        KeyAlgorithm::Tdes2 => cmac_with!(TdesEde2, k, data),
        KeyAlgorithm::Tdes3 => cmac_with!(TdesEde3, k, data),
        KeyAlgorithm::Aes128 => cmac_with!(Aes128, k, data),
        KeyAlgorithm::Aes192 => cmac_with!(Aes192, k, data),
        KeyAlgorithm::Aes256 => cmac_with!(Aes256, k, data),
    }
}

/// CMAC (NIST SP 800-38B; ISO/IEC 9797-1:2011 MAC algorithm 5) under an AES or TDES key;
/// returns the full tag (16 bytes for AES, 8 for TDES).
pub fn cmac(key: &Key, data: &[u8]) -> Result<Vec<u8>> {
    if key.algorithm() == KeyAlgorithm::Des {
        return Err(CryptoError::WrongKeyAlgorithm {
            operation: "cmac",
            expected: "tdes or aes",
            got: "des",
        });
    }
    Ok(cmac_any(key, data))
}

/// A MAC algorithm as a value, for hosts and dialect files that name one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MacAlgorithm {
    /// ISO 9797-1 algorithm 1 (CBC-MAC) with the key's own cipher.
    Alg1(Padding),
    /// ISO 9797-1 algorithm 3 (retail MAC), two-key TDES.
    Alg3(Padding),
    /// CMAC with the key's own cipher.
    Cmac,
}

/// Computes a MAC of `len` bytes (4 up to the block length) by `alg`.
pub fn generate_mac(alg: MacAlgorithm, key: &Key, data: &[u8], len: usize) -> Result<Vec<u8>> {
    let full = match alg {
        MacAlgorithm::Alg1(p) => mac_alg1(key, data, p),
        MacAlgorithm::Alg3(p) => mac_alg3(key, data, p)?.to_vec(),
        MacAlgorithm::Cmac => cmac(key, data)?,
    };
    if !(4..=full.len()).contains(&len) {
        return Err(CryptoError::BadParameter {
            what: "mac length",
            reason: "must be 4 bytes up to the cipher block length",
        });
    }
    Ok(full[..len].to_vec())
}

/// Checks `mac` (its length selects the truncation) in constant time.
pub fn verify_mac(alg: MacAlgorithm, key: &Key, data: &[u8], mac: &[u8]) -> Result<bool> {
    let expected = generate_mac(alg, key, data, mac.len())?;
    Ok(crate::ct_eq(&expected, mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::parse_hex;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        parse_hex("test", s).unwrap()
    }

    #[test]
    fn retail_mac_iso9797_1_annex_b4_vectors() {
        // ISO/IEC 9797-1:2011 Annex B.4 (MAC algorithm 3, padding method 1), as quoted in
        // the RustCrypto `retail-mac` documentation.
        let k = Key::tdes(&h("0123456789ABCDEFFEDCBA9876543210")).unwrap();
        assert_eq!(
            mac_alg3(&k, b"Now is the time for all ", Padding::Method1).unwrap(),
            h("A1C72E74EA3FA9B6")[..]
        );
        assert_eq!(
            mac_alg3(&k, b"Now is the time for it", Padding::Method1).unwrap(),
            h("2E2B1428CC78254F")[..]
        );
    }

    #[test]
    fn cbc_mac_algorithm_1_published_examples() {
        // FIPS PUB 113 / ANSI X9.9 (DES CBC-MAC, zero padding): key 0123456789ABCDEF,
        // "7654321 Now is the time for " → MAC F1D30F68 (the standard quotes the
        // leftmost 32 bits; the whole last block is F1D30F6849312CA4, as pyemv's
        // mac_iso9797_3 with K = K' also gives).
        let k = Key::tdes(&h("0123456789ABCDEF0123456789ABCDEF")).unwrap();
        let m = mac_alg1(&k, b"7654321 Now is the time for ", Padding::Method1);
        assert_eq!(m, h("F1D30F6849312CA4"));
        // neapay's worked example of a 3DES CBC-MAC (https://neapay.com/online-tools/
        // mac-calculator.html): data and double-length key 0123456789012345 0123456789012345
        // → first block D5D16164F4B82E0F, MAC 04D62E1385AAF220
        let k = Key::tdes(&h("01234567890123450123456789012345")).unwrap();
        let one = h("0123456789012345");
        assert_eq!(mac_alg1(&k, &one, Padding::Method1), h("D5D16164F4B82E0F"));
        let two = h("01234567890123450123456789012345");
        assert_eq!(mac_alg1(&k, &two, Padding::Method1), h("04D62E1385AAF220"));
    }

    #[test]
    fn aes_cmac_sp800_38b_examples() {
        // NIST SP 800-38B Appendix D.1 (= RFC 4493 §4), AES-128 key 2B7E1516...
        let k = Key::aes(&h("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap();
        assert_eq!(
            cmac(&k, b"").unwrap(),
            h("BB1D6929E95937287FA37D129B756746")
        );
        assert_eq!(
            cmac(&k, &h("6BC1BEE22E409F96E93D7E117393172A")).unwrap(),
            h("070A16B46B4D4144F79BDD9DD04A287C")
        );
        let m40 =
            h("6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E5130C81C46A35CE411");
        assert_eq!(
            cmac(&k, &m40).unwrap(),
            h("DFA66747DE9AE63030CA32611497C827")
        );
        // SP 800-38B D.3 AES-256, example 10 (empty message).
        let k256 = Key::aes(&h(
            "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4",
        ))
        .unwrap();
        assert_eq!(
            cmac(&k256, b"").unwrap(),
            h("028962F61B7BF89EFC6B551F4667D983")
        );
    }

    #[test]
    fn tdes_cmac_sp800_38b_example() {
        // NIST SP 800-38B Appendix D.4 (three-key TDEA), example 13 (empty message) and 14.
        let k = Key::tdes(&h("8AA83BF8CBDA10620BC1BF19FBB6CD58BC313D4A371CA8B5")).unwrap();
        assert_eq!(cmac(&k, b"").unwrap(), h("B7A688E122FFAF95"));
        assert_eq!(
            cmac(&k, &h("6BC1BEE22E409F96")).unwrap(),
            h("8E8F293136283797")
        );
    }

    #[test]
    fn padding_methods() {
        assert_eq!(pad(&[1, 2], 8, Padding::Method1), h("0102000000000000"));
        assert_eq!(pad(&[], 8, Padding::Method1), h("0000000000000000"));
        assert_eq!(pad(&[1; 8], 8, Padding::Method1).len(), 8);
        assert_eq!(pad(&[1, 2], 8, Padding::Method2), h("0102800000000000"));
        assert_eq!(pad(&[1; 8], 8, Padding::Method2).len(), 16);
        assert_eq!(
            pad(&[1, 2], 8, Padding::Method3),
            h("00000000000000100102000000000000")
        );
    }

    #[test]
    fn mac_length_is_checked() {
        let k = Key::tdes(&[7; 16]).unwrap();
        assert!(generate_mac(MacAlgorithm::Alg3(Padding::Method1), &k, b"x", 3).is_err());
        assert!(generate_mac(MacAlgorithm::Alg3(Padding::Method1), &k, b"x", 9).is_err());
        assert!(mac_alg3(&Key::aes(&[7; 16]).unwrap(), b"x", Padding::Method1).is_err());
    }

    proptest! {
        #[test]
        fn verify_accepts_generate_and_rejects_a_flipped_bit(
            key in proptest::collection::vec(any::<u8>(), 16),
            data in proptest::collection::vec(any::<u8>(), 0..64),
            which in 0usize..5,
            len in 4usize..=8,
            flip in 0usize..64,
        ) {
            let (alg, k) = match which {
                0 => (MacAlgorithm::Alg1(Padding::Method1), Key::tdes(&key).unwrap()),
                1 => (MacAlgorithm::Alg3(Padding::Method1), Key::tdes(&key).unwrap()),
                2 => (MacAlgorithm::Alg3(Padding::Method2), Key::tdes(&key).unwrap()),
                3 => (MacAlgorithm::Cmac, Key::aes(&key).unwrap()),
                _ => (MacAlgorithm::Alg1(Padding::Method3), Key::aes(&key).unwrap()),
            };
            let mac = generate_mac(alg, &k, &data, len).unwrap();
            prop_assert!(verify_mac(alg, &k, &data, &mac).unwrap());
            let mut bad = mac.clone();
            bad[flip % len] ^= 1 << (flip % 8);
            prop_assert!(!verify_mac(alg, &k, &data, &bad).unwrap());
        }
    }
}
