//! Key material, key check values and the block-cipher helpers everything else is built on.
//!
//! A [`Key`] never shows its bytes: `Debug` and `Display` print the algorithm and the
//! legacy KCV only (`Key(tdes2, kcv 08D7B4)`), and the bytes are zeroized on drop. The
//! clear bytes are reachable through [`Key::expose`] alone, a greppable call.

use std::fmt;

use aes::{Aes128, Aes192, Aes256};
use cipher::generic_array::GenericArray;
use cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use des::{Des, TdesEde2, TdesEde3};
use zeroize::Zeroizing;

use crate::error::{CryptoError, Result};

/// The algorithm (and length) of a [`Key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// Single DES, 8 bytes: only as half of a retail-MAC or DUKPT key, never on its own.
    Des,
    /// Two-key triple DES (K1 K2 K1), 16 bytes.
    Tdes2,
    /// Three-key triple DES, 24 bytes.
    Tdes3,
    Aes128,
    Aes192,
    Aes256,
}

impl KeyAlgorithm {
    /// Short lower-case name, as shown in `Debug` and errors.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Des => "des",
            KeyAlgorithm::Tdes2 => "tdes2",
            KeyAlgorithm::Tdes3 => "tdes3",
            KeyAlgorithm::Aes128 => "aes128",
            KeyAlgorithm::Aes192 => "aes192",
            KeyAlgorithm::Aes256 => "aes256",
        }
    }
    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            KeyAlgorithm::Des => 8,
            KeyAlgorithm::Tdes2 | KeyAlgorithm::Aes128 => 16,
            KeyAlgorithm::Tdes3 | KeyAlgorithm::Aes192 => 24,
            KeyAlgorithm::Aes256 => 32,
        }
    }
    /// Cipher block length in bytes (8 for DES family, 16 for AES).
    pub fn block_len(self) -> usize {
        if self.is_aes() {
            16
        } else {
            8
        }
    }
    pub fn is_aes(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Aes128 | KeyAlgorithm::Aes192 | KeyAlgorithm::Aes256
        )
    }
    pub fn is_tdes(self) -> bool {
        matches!(self, KeyAlgorithm::Tdes2 | KeyAlgorithm::Tdes3)
    }
    /// The TDES algorithm for a key of `len` bytes (16 or 24).
    pub fn tdes_for_len(len: usize) -> Result<Self> {
        match len {
            16 => Ok(KeyAlgorithm::Tdes2),
            24 => Ok(KeyAlgorithm::Tdes3),
            _ => Err(CryptoError::WrongKeyLength {
                algorithm: "tdes",
                len,
                expected: "16 or 24",
            }),
        }
    }
    /// The AES algorithm for a key of `len` bytes (16, 24 or 32).
    pub fn aes_for_len(len: usize) -> Result<Self> {
        match len {
            16 => Ok(KeyAlgorithm::Aes128),
            24 => Ok(KeyAlgorithm::Aes192),
            32 => Ok(KeyAlgorithm::Aes256),
            _ => Err(CryptoError::WrongKeyLength {
                algorithm: "aes",
                len,
                expected: "16, 24 or 32",
            }),
        }
    }
    /// Parses the names printed by [`KeyAlgorithm::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "des" => KeyAlgorithm::Des,
            "tdes2" => KeyAlgorithm::Tdes2,
            "tdes3" => KeyAlgorithm::Tdes3,
            "aes128" => KeyAlgorithm::Aes128,
            "aes192" => KeyAlgorithm::Aes192,
            "aes256" => KeyAlgorithm::Aes256,
            _ => return None,
        })
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A symmetric key. Shown as its algorithm and KCV only; zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    alg: KeyAlgorithm,
    bytes: Zeroizing<Vec<u8>>,
}

impl Key {
    /// A key of `alg` from its clear bytes; the length must match the algorithm.
    pub fn new(alg: KeyAlgorithm, bytes: &[u8]) -> Result<Key> {
        if bytes.len() != alg.key_len() {
            return Err(CryptoError::WrongKeyLength {
                algorithm: alg.name(),
                len: bytes.len(),
                expected: match alg {
                    KeyAlgorithm::Des => "8",
                    KeyAlgorithm::Tdes2 | KeyAlgorithm::Aes128 => "16",
                    KeyAlgorithm::Tdes3 | KeyAlgorithm::Aes192 => "24",
                    KeyAlgorithm::Aes256 => "32",
                },
            });
        }
        Ok(Key {
            alg,
            bytes: Zeroizing::new(bytes.to_vec()),
        })
    }
    /// A TDES key: 16 bytes (two-key) or 24 bytes (three-key).
    pub fn tdes(bytes: &[u8]) -> Result<Key> {
        Key::new(KeyAlgorithm::tdes_for_len(bytes.len())?, bytes)
    }
    /// An AES key: 16, 24 or 32 bytes.
    pub fn aes(bytes: &[u8]) -> Result<Key> {
        Key::new(KeyAlgorithm::aes_for_len(bytes.len())?, bytes)
    }
    /// A key of `alg` from hex (spaces allowed); errors never echo the text.
    pub fn from_hex(alg: KeyAlgorithm, text: &str) -> Result<Key> {
        let bytes = Zeroizing::new(parse_hex("key", text)?);
        Key::new(alg, &bytes)
    }
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    /// The clear key bytes. Call this only to hand them to a cryptographic function.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }
    /// Legacy KCV: the leftmost 3 bytes of the key enciphering a zero block
    /// (`E(K, 00×8)` for DES/TDES, `E(K, 00×16)` for AES).
    pub fn kcv(&self) -> Kcv {
        let mut block = [0u8; 16];
        let n = self.alg.block_len();
        Cipher::new(self).encrypt_block(&mut block[..n]);
        Kcv::from_bytes(KcvMethod::Ecb, &block[..3])
    }
    /// CMAC-based KCV (X9.24-3, TR-31, AWS Payment Cryptography): the leftmost 3 bytes of
    /// `CMAC(K, 00×block)`. Differs from [`Key::kcv`]; record the method with the value.
    pub fn kcv_cmac(&self) -> Kcv {
        let zero = [0u8; 16];
        let n = self.alg.block_len();
        let mac = crate::mac::cmac_any(self, &zero[..n]);
        Kcv::from_bytes(KcvMethod::Cmac, &mac[..3])
    }
    /// Computes the KCV by `expected`'s method and length and compares.
    pub fn check_kcv(&self, expected: &Kcv) -> Result<()> {
        let full = match expected.method {
            KcvMethod::Ecb => {
                let mut block = [0u8; 16];
                let n = self.alg.block_len();
                Cipher::new(self).encrypt_block(&mut block[..n]);
                block.to_vec()
            }
            KcvMethod::Cmac => {
                let zero = [0u8; 16];
                crate::mac::cmac_any(self, &zero[..self.alg.block_len()])
            }
        };
        let computed =
            Kcv::from_bytes(expected.method, full.get(..expected.len()).unwrap_or(&full));
        if crate::ct_eq(computed.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(CryptoError::KcvMismatch {
                expected: expected.to_string(),
                computed: computed.to_string(),
            })
        }
    }
    /// XOR of two keys of the same algorithm (key components, key variants).
    pub fn xor(&self, other: &Key) -> Result<Key> {
        if self.alg != other.alg {
            return Err(CryptoError::WrongKeyAlgorithm {
                operation: "key xor",
                expected: self.alg.name(),
                got: other.alg.name(),
            });
        }
        let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(
            self.bytes
                .iter()
                .zip(other.bytes.iter())
                .map(|(a, b)| a ^ b)
                .collect(),
        );
        Key::new(self.alg, &bytes)
    }
    /// XOR with a public mask of the key's length (DUKPT variants); `mask` is cycled.
    pub(crate) fn xor_mask(&self, mask: &[u8]) -> Key {
        let bytes: Zeroizing<Vec<u8>> = Zeroizing::new(
            self.bytes
                .iter()
                .zip(mask.iter().cycle())
                .map(|(a, b)| a ^ b)
                .collect(),
        );
        Key {
            alg: self.alg,
            bytes,
        }
    }
    /// The same key with every byte set to odd parity (DES keys; a no-op on AES keys).
    pub fn with_odd_parity(&self) -> Key {
        if self.alg.is_aes() {
            return self.clone();
        }
        let bytes: Zeroizing<Vec<u8>> =
            Zeroizing::new(self.bytes.iter().map(|b| odd_parity(*b)).collect());
        Key {
            alg: self.alg,
            bytes,
        }
    }
    /// The two single-DES halves (K, K') of a two-key TDES key, for retail MAC.
    pub(crate) fn des_halves(&self, operation: &'static str) -> Result<(Key, Key)> {
        if self.alg != KeyAlgorithm::Tdes2 {
            return Err(CryptoError::WrongKeyAlgorithm {
                operation,
                expected: "tdes2",
                got: self.alg.name(),
            });
        }
        let left = Key::new(KeyAlgorithm::Des, self.bytes.get(..8).unwrap_or_default())?;
        let right = Key::new(KeyAlgorithm::Des, self.bytes.get(8..).unwrap_or_default())?;
        Ok((left, right))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}, kcv {})", self.alg, self.kcv())
    }
}
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} key kcv {}", self.alg, self.kcv())
    }
}

/// Sets the low bit of `b` so that `b` has an odd number of one bits.
pub fn odd_parity(b: u8) -> u8 {
    if (b >> 1).count_ones().is_multiple_of(2) {
        (b & 0xFE) | 1
    } else {
        b & 0xFE
    }
}

/// How a [`Kcv`] was computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KcvMethod {
    /// Encipher a zero block, keep the leftmost bytes (TDES legacy, older AES practice).
    Ecb,
    /// CMAC of a zero block, keep the leftmost bytes (X9.24-3 / TR-31 for AES).
    Cmac,
}

impl KcvMethod {
    pub fn name(self) -> &'static str {
        match self {
            KcvMethod::Ecb => "ecb",
            KcvMethod::Cmac => "cmac",
        }
    }
}

/// A key check value (2 to 5 bytes; 3 by default). Public: printed in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kcv {
    method: KcvMethod,
    bytes: [u8; 5],
    len: u8,
}

impl Kcv {
    fn from_bytes(method: KcvMethod, bytes: &[u8]) -> Kcv {
        let mut b = [0u8; 5];
        let n = bytes.len().min(5);
        b[..n].copy_from_slice(&bytes[..n]);
        Kcv {
            method,
            bytes: b,
            len: n as u8,
        }
    }
    /// Parses a KCV given in hex (2 to 5 bytes, i.e. 4 to 10 hex digits).
    pub fn parse(method: KcvMethod, text: &str) -> Result<Kcv> {
        let bytes = parse_hex("kcv", text)?;
        if !(2..=5).contains(&bytes.len()) {
            return Err(CryptoError::WrongLength {
                what: "kcv",
                len: bytes.len(),
                expected: "2 to 5",
            });
        }
        Ok(Kcv::from_bytes(method, &bytes))
    }
    pub fn method(&self) -> KcvMethod {
        self.method
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Display for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}
impl fmt::Debug for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kcv({}:{})", self.method.name(), self)
    }
}

/// Parses hex (upper or lower case, ASCII spaces ignored). Errors name the character
/// offset, never the text.
pub fn parse_hex(what: &'static str, text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for (offset, c) in text.char_indices() {
        if c == ' ' {
            continue;
        }
        let v = c.to_digit(16).ok_or(CryptoError::BadHex { what, offset })? as u8;
        match high.take() {
            None => high = Some(v),
            Some(h) => out.push((h << 4) | v),
        }
    }
    if high.is_some() {
        return Err(CryptoError::BadHex {
            what,
            offset: text.len(),
        });
    }
    Ok(out)
}

/// A keyed block cipher of any supported algorithm.
pub(crate) enum Cipher {
    Des(Des),
    Tdes2(TdesEde2),
    Tdes3(TdesEde3),
    Aes128(Aes128),
    Aes192(Aes192),
    Aes256(Aes256),
}

impl Cipher {
    pub(crate) fn new(key: &Key) -> Cipher {
        // The length was checked when the Key was built, so new_from_slice cannot fail.
        let k = key.expose();
        match key.alg {
            KeyAlgorithm::Des => Cipher::Des(Des::new(GenericArray::from_slice(k))),
            KeyAlgorithm::Tdes2 => Cipher::Tdes2(TdesEde2::new(GenericArray::from_slice(k))),
            KeyAlgorithm::Tdes3 => Cipher::Tdes3(TdesEde3::new(GenericArray::from_slice(k))),
            KeyAlgorithm::Aes128 => Cipher::Aes128(Aes128::new(GenericArray::from_slice(k))),
            KeyAlgorithm::Aes192 => Cipher::Aes192(Aes192::new(GenericArray::from_slice(k))),
            KeyAlgorithm::Aes256 => Cipher::Aes256(Aes256::new(GenericArray::from_slice(k))),
        }
    }
    /// Enciphers one block in place; `block` must be exactly one block long (callers
    /// iterate with `chunks_exact_mut(block_len)`).
    pub(crate) fn encrypt_block(&self, block: &mut [u8]) {
        match self {
            Cipher::Des(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Cipher::Tdes2(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Cipher::Tdes3(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Cipher::Aes128(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Cipher::Aes192(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
            Cipher::Aes256(c) => c.encrypt_block(GenericArray::from_mut_slice(block)),
        }
    }
    pub(crate) fn decrypt_block(&self, block: &mut [u8]) {
        match self {
            Cipher::Des(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            Cipher::Tdes2(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            Cipher::Tdes3(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            Cipher::Aes128(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            Cipher::Aes192(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
            Cipher::Aes256(c) => c.decrypt_block(GenericArray::from_mut_slice(block)),
        }
    }
}

fn check_aligned(key: &Key, data: &[u8]) -> Result<usize> {
    let n = key.alg.block_len();
    if !data.len().is_multiple_of(n) {
        return Err(CryptoError::NotBlockAligned {
            len: data.len(),
            block: n,
        });
    }
    Ok(n)
}

/// ECB-enciphers `data` (a whole number of blocks) under `key`.
pub fn ecb_encrypt(key: &Key, data: &[u8]) -> Result<Vec<u8>> {
    let n = check_aligned(key, data)?;
    let c = Cipher::new(key);
    let mut out = data.to_vec();
    out.chunks_exact_mut(n).for_each(|b| c.encrypt_block(b));
    Ok(out)
}

/// ECB-deciphers `data` (a whole number of blocks) under `key`.
pub fn ecb_decrypt(key: &Key, data: &[u8]) -> Result<Vec<u8>> {
    let n = check_aligned(key, data)?;
    let c = Cipher::new(key);
    let mut out = data.to_vec();
    out.chunks_exact_mut(n).for_each(|b| c.decrypt_block(b));
    Ok(out)
}

fn check_iv(key: &Key, iv: &[u8]) -> Result<()> {
    if iv.len() != key.alg.block_len() {
        return Err(CryptoError::WrongLength {
            what: "iv",
            len: iv.len(),
            expected: if key.alg.is_aes() { "16" } else { "8" },
        });
    }
    Ok(())
}

/// CBC-enciphers `data` (a whole number of blocks) under `key` with `iv`.
pub fn cbc_encrypt(key: &Key, iv: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let n = check_aligned(key, data)?;
    check_iv(key, iv)?;
    let c = Cipher::new(key);
    let mut out = data.to_vec();
    let mut chain = iv.to_vec();
    for block in out.chunks_exact_mut(n) {
        block.iter_mut().zip(&chain).for_each(|(b, v)| *b ^= v);
        c.encrypt_block(block);
        chain.copy_from_slice(block);
    }
    Ok(out)
}

/// CBC-deciphers `data` (a whole number of blocks) under `key` with `iv`.
pub fn cbc_decrypt(key: &Key, iv: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let n = check_aligned(key, data)?;
    check_iv(key, iv)?;
    let c = Cipher::new(key);
    let mut out = data.to_vec();
    let mut chain = iv.to_vec();
    for block in out.chunks_exact_mut(n) {
        let saved = block.to_vec();
        c.decrypt_block(block);
        block.iter_mut().zip(&chain).for_each(|(b, v)| *b ^= v);
        chain = saved;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        parse_hex("test", s).unwrap()
    }

    #[test]
    fn tdes_kcv_matches_the_published_value() {
        // peripherals.md §4.7 (recomputed there); the same key's KCV is printed by every
        // HSM console as 08D7B4.
        let k = Key::from_hex(KeyAlgorithm::Tdes2, "0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert_eq!(k.kcv().to_string(), "08D7B4");
        assert_eq!(format!("{k:?}"), "Key(tdes2, kcv 08D7B4)");
        assert!(!format!("{k:?}{k}").contains("0123"));
    }

    #[test]
    fn aes_kcv_both_methods() {
        // peripherals.md §4.7: CMAC method FF0BD7(C455), ECB-zero method ED6429.
        let k = Key::from_hex(KeyAlgorithm::Aes128, "FEDCBA9876543210F1F1F1F1F1F1F1F1").unwrap();
        assert_eq!(k.kcv().to_string(), "ED6429");
        assert_eq!(k.kcv_cmac().to_string(), "FF0BD7");
        k.check_kcv(&Kcv::parse(KcvMethod::Cmac, "FF0BD7C455").unwrap())
            .unwrap();
        k.check_kcv(&Kcv::parse(KcvMethod::Ecb, "ED6429").unwrap())
            .unwrap();
        let err = k
            .check_kcv(&Kcv::parse(KcvMethod::Ecb, "FF0BD7").unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "kcv mismatch: expected FF0BD7, computed ED6429"
        );
    }

    #[test]
    fn wrong_lengths_are_typed_errors() {
        assert!(matches!(
            Key::tdes(&[0; 15]),
            Err(CryptoError::WrongKeyLength { len: 15, .. })
        ));
        assert!(matches!(
            Key::aes(&[0; 20]),
            Err(CryptoError::WrongKeyLength { len: 20, .. })
        ));
        let k = Key::tdes(&[1; 16]).unwrap();
        assert!(matches!(
            ecb_encrypt(&k, &[0; 7]),
            Err(CryptoError::NotBlockAligned { len: 7, block: 8 })
        ));
        let e = Key::from_hex(KeyAlgorithm::Tdes2, "0123456789ABCDEFFEDCBA987654321G").unwrap_err();
        assert_eq!(e.to_string(), "bad hex in key at character 31");
    }

    #[test]
    fn cbc_round_trips_and_matches_ecb_for_one_block() {
        let k = Key::aes(&h("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap();
        // NIST SP 800-38A F.1.1 ECB-AES128.Encrypt block #1.
        let ct = ecb_encrypt(&k, &h("6BC1BEE22E409F96E93D7E117393172A")).unwrap();
        assert_eq!(ct, h("3AD77BB40D7A3660A89ECAF32466EF97"));
        // NIST SP 800-38A F.2.1 CBC-AES128.Encrypt blocks #1-#2.
        let iv = h("000102030405060708090A0B0C0D0E0F");
        let pt = h("6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E51");
        let ct = cbc_encrypt(&k, &iv, &pt).unwrap();
        assert_eq!(
            ct,
            h("7649ABAC8119B246CEE98E9B12E9197D5086CB9B507219EE95DB113A917678B2")
        );
        assert_eq!(cbc_decrypt(&k, &iv, &ct).unwrap(), pt);
    }

    #[test]
    fn parity_and_xor() {
        assert_eq!(odd_parity(0x00), 0x01);
        assert_eq!(odd_parity(0x01), 0x01);
        assert_eq!(odd_parity(0xFE), 0xFE);
        assert_eq!(odd_parity(0x03), 0x02);
        let a = Key::tdes(&[0x11; 16]).unwrap();
        let b = Key::tdes(&[0x22; 16]).unwrap();
        assert_eq!(a.xor(&b).unwrap().expose(), &[0x33; 16]);
        assert!(a.xor(&Key::aes(&[0; 16]).unwrap()).is_err());
    }
}
