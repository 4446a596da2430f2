//! Key exchange helpers for master/session key management: a key enciphered under a key
//! encryption key (KEK, e.g. the terminal master key) with the KCV of the clear key, and
//! key components combined by XOR.
//!
//! This is the legacy ECB scheme (ANSI X9.17 style) that terminals still use on sign-on
//! ("9A master key / 9B session key" downloads); TR-31 key blocks are not covered here.

use std::fmt;

use crate::error::{CryptoError, Result};
use crate::key::{ecb_decrypt, ecb_encrypt, parse_hex, Kcv, KcvMethod, Key, KeyAlgorithm};

/// A key enciphered (ECB) under a KEK, with the algorithm and KCV of the clear key.
/// Shown without the cryptogram.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyUnderKey {
    algorithm: KeyAlgorithm,
    cryptogram: Vec<u8>,
    kcv: Kcv,
}

impl KeyUnderKey {
    /// A received key: its algorithm, the cryptogram, and the KCV the sender stated.
    pub fn new(algorithm: KeyAlgorithm, cryptogram: &[u8], kcv: Kcv) -> Result<KeyUnderKey> {
        if cryptogram.len() != algorithm.key_len() {
            return Err(CryptoError::WrongLength {
                what: "key cryptogram",
                len: cryptogram.len(),
                expected: "the key length of the algorithm",
            });
        }
        Ok(KeyUnderKey {
            algorithm,
            cryptogram: cryptogram.to_vec(),
            kcv,
        })
    }
    /// As [`KeyUnderKey::new`] from hex cryptogram and hex legacy (ECB) KCV.
    pub fn from_hex(algorithm: KeyAlgorithm, cryptogram: &str, kcv: &str) -> Result<KeyUnderKey> {
        KeyUnderKey::new(
            algorithm,
            &parse_hex("key cryptogram", cryptogram)?,
            Kcv::parse(KcvMethod::Ecb, kcv)?,
        )
    }
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
    /// The enciphered key bytes (safe to put on a wire).
    pub fn cryptogram(&self) -> &[u8] {
        &self.cryptogram
    }
    pub fn cryptogram_hex(&self) -> String {
        self.cryptogram.iter().map(|b| format!("{b:02X}")).collect()
    }
    pub fn kcv(&self) -> Kcv {
        self.kcv
    }
}

impl fmt::Debug for KeyUnderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyUnderKey({}, kcv {}, {} bytes)",
            self.algorithm,
            self.kcv,
            self.cryptogram.len()
        )
    }
}

/// Enciphers `key` under `kek` (ECB) and records its legacy KCV.
pub fn wrap_key(kek: &Key, key: &Key) -> Result<KeyUnderKey> {
    if kek.algorithm() == KeyAlgorithm::Des {
        return Err(CryptoError::WrongKeyAlgorithm {
            operation: "key wrapping",
            expected: "tdes or aes kek",
            got: "des",
        });
    }
    Ok(KeyUnderKey {
        algorithm: key.algorithm(),
        cryptogram: ecb_encrypt(kek, key.expose())?,
        kcv: key.kcv(),
    })
}

/// Deciphers a received key under `kek` and checks its KCV; a mismatch is
/// [`CryptoError::KcvMismatch`] (wrong KEK, or the key was corrupted in transit).
pub fn unwrap_key(kek: &Key, wrapped: &KeyUnderKey) -> Result<Key> {
    let clear = zeroize::Zeroizing::new(ecb_decrypt(kek, &wrapped.cryptogram)?);
    let key = Key::new(wrapped.algorithm, &clear)?;
    key.check_kcv(&wrapped.kcv)?;
    Ok(key)
}

/// Combines key components by XOR (a key ceremony: each custodian enters one component
/// and checks its KCV). Needs at least two components of the same algorithm.
pub fn combine_components(components: &[Key]) -> Result<Key> {
    let (first, rest) = components.split_first().ok_or(CryptoError::BadParameter {
        what: "key components",
        reason: "need at least two",
    })?;
    if rest.is_empty() {
        return Err(CryptoError::BadParameter {
            what: "key components",
            reason: "need at least two",
        });
    }
    rest.iter().try_fold(first.clone(), |acc, c| acc.xor(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        parse_hex("test", s).unwrap()
    }

    #[test]
    fn wrap_unwrap_round_trip_and_kcv_check() {
        let tmk = Key::tdes(&h("0123456789ABCDEFFEDCBA9876543210")).unwrap();
        let pek = Key::tdes(&h("042666B49184CF5C68DE9628D0397B36")).unwrap();
        let w = wrap_key(&tmk, &pek).unwrap();
        assert_eq!(
            w.cryptogram(),
            &crate::ecb_encrypt(&tmk, pek.expose()).unwrap()[..]
        );
        assert_eq!(w.kcv(), pek.kcv());
        assert!(!format!("{w:?}").contains(&w.cryptogram_hex()[..6]));
        assert_eq!(unwrap_key(&tmk, &w).unwrap(), pek);
        // a different KEK fails the KCV check instead of yielding a wrong key
        let other = Key::tdes(&[0x11; 16]).unwrap();
        assert!(matches!(
            unwrap_key(&other, &w),
            Err(CryptoError::KcvMismatch { .. })
        ));
        // received form
        let r = KeyUnderKey::from_hex(
            KeyAlgorithm::Tdes2,
            &w.cryptogram_hex(),
            &pek.kcv().to_string(),
        )
        .unwrap();
        assert_eq!(unwrap_key(&tmk, &r).unwrap(), pek);
        assert!(KeyUnderKey::from_hex(KeyAlgorithm::Tdes2, "0011", "000000").is_err());
    }

    #[test]
    fn aes_key_under_aes_kek() {
        let kek = Key::aes(&[0x42; 32]).unwrap();
        let k = Key::aes(&[0x24; 16]).unwrap();
        let w = wrap_key(&kek, &k).unwrap();
        assert_eq!(unwrap_key(&kek, &w).unwrap(), k);
    }

    #[test]
    fn components_combine_by_xor() {
        let a = Key::tdes(&h("11111111111111112222222222222222")).unwrap();
        let b = Key::tdes(&h("10325476981ABCDEDCFE98BA54761032")).unwrap();
        let k = combine_components(&[a.clone(), b]).unwrap();
        assert_eq!(k.expose(), &h("01234567890BADCFFEDCBA9876543210")[..]);
        assert!(combine_components(&[a]).is_err());
        assert!(combine_components(&[]).is_err());
    }
}
