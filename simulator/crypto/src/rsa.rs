//! Raw RSA for EMV (offline data authentication, enciphered offline PIN), on the `rsa`
//! crate's key types and big integers. EMV uses RSA without PKCS#1 padding: a signature
//! is the private operation over a message as long as the modulus (header `6A`, trailer
//! `BC`, see EMV Book 2), recovery is the public operation; enciphered PINs are the
//! public operation over an 8-byte-padded block and the card's private operation back.
//!
//! Keys come from `fixtures/keys/oda-test-keys.yaml` and the card profiles: published
//! test material, never generated at run time. Private keys print as their modulus
//! length only; nothing here prints key material.

use std::fmt;

use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};

use crate::error::{CryptoError, Result};

fn err(what: &'static str, reason: impl Into<String>) -> CryptoError {
    CryptoError::Rsa {
        what,
        reason: reason.into(),
    }
}

/// Big-endian bytes of `v`, left-padded with zeros to `len`.
fn to_len(v: &BigUint, len: usize) -> Vec<u8> {
    let b = v.to_bytes_be();
    let mut out = vec![0u8; len.saturating_sub(b.len())];
    out.extend_from_slice(&b);
    out
}

/// An RSA public key (modulus and exponent, as EMV carries them).
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublic {
    key: RsaPublicKey,
    len: usize,
}

impl fmt::Debug for RsaPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPublic({} bits, e={})", self.len * 8, self.key.e())
    }
}

impl RsaPublic {
    /// From big-endian modulus and exponent bytes. The modulus' first byte must not be
    /// zero (its length is the key's length) and the exponent must be 3 or 65537 (EMV).
    pub fn from_parts(modulus: &[u8], exponent: &[u8]) -> Result<RsaPublic> {
        if modulus.first().is_none_or(|b| *b == 0) {
            return Err(err(
                "rsa public key",
                "modulus empty or with a leading zero byte",
            ));
        }
        let e = BigUint::from_bytes_be(exponent);
        if e != BigUint::from(3u8) && e != BigUint::from(65537u32) {
            return Err(err("rsa public key", "exponent is neither 3 nor 65537"));
        }
        let n = BigUint::from_bytes_be(modulus);
        // the rsa crate refuses small moduli for real keys; EMV test keys start at 512 bits
        let key = RsaPublicKey::new_with_max_size(n, e, 4096)
            .map_err(|e| err("rsa public key", e.to_string()))?;
        Ok(RsaPublic {
            key,
            len: modulus.len(),
        })
    }

    /// The modulus length in bytes (N_CA, N_I, N_IC in EMV Book 2).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn modulus(&self) -> Vec<u8> {
        to_len(self.key.n(), self.len)
    }

    pub fn exponent(&self) -> Vec<u8> {
        self.key.e().to_bytes_be()
    }

    /// The public operation: `data^e mod n`. `data` must be exactly the modulus length
    /// and smaller than the modulus.
    pub fn public_op(&self, data: &[u8]) -> Result<Vec<u8>> {
        if data.len() != self.len {
            return Err(err(
                "rsa public operation",
                format!("{} bytes for a {}-byte modulus", data.len(), self.len),
            ));
        }
        let m = BigUint::from_bytes_be(data);
        if &m >= self.key.n() {
            return Err(err("rsa public operation", "input not below the modulus"));
        }
        Ok(to_len(&m.modpow(self.key.e(), self.key.n()), self.len))
    }
}

/// An RSA private key (a card's ICC key, a test CA's or issuer's signing key).
#[derive(Clone)]
pub struct RsaPrivate {
    key: RsaPrivateKey,
    public: RsaPublic,
}

impl fmt::Debug for RsaPrivate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaPrivate({} bits)", self.public.len * 8)
    }
}

impl RsaPrivate {
    /// From big-endian modulus, public and private exponents and the two primes; the
    /// `rsa` crate checks that they belong together.
    pub fn from_parts(
        modulus: &[u8],
        exponent: &[u8],
        private_exponent: &[u8],
        primes: [&[u8]; 2],
    ) -> Result<RsaPrivate> {
        let public = RsaPublic::from_parts(modulus, exponent)?;
        let mut key = RsaPrivateKey::from_components(
            BigUint::from_bytes_be(modulus),
            BigUint::from_bytes_be(exponent),
            BigUint::from_bytes_be(private_exponent),
            primes.iter().map(|p| BigUint::from_bytes_be(p)).collect(),
        )
        .map_err(|e| err("rsa private key", e.to_string()))?;
        key.validate()
            .map_err(|e| err("rsa private key", e.to_string()))?;
        key.precompute()
            .map_err(|e| err("rsa private key", e.to_string()))?;
        Ok(RsaPrivate { key, public })
    }

    pub fn public(&self) -> &RsaPublic {
        &self.public
    }

    /// The private operation (`data^d mod n`, by the CRT): signs an EMV message, or
    /// deciphers an enciphered PIN. Same length rules as [`RsaPublic::public_op`].
    pub fn private_op(&self, data: &[u8]) -> Result<Vec<u8>> {
        let len = self.public.len;
        if data.len() != len {
            return Err(err(
                "rsa private operation",
                format!("{} bytes for a {len}-byte modulus", data.len()),
            ));
        }
        let c = BigUint::from_bytes_be(data);
        if &c >= self.key.n() {
            return Err(err("rsa private operation", "input not below the modulus"));
        }
        let primes = self.key.primes();
        let (Some(p), Some(q)) = (primes.first(), primes.get(1)) else {
            return Ok(to_len(&c.modpow(self.key.d(), self.key.n()), len));
        };
        // CRT: m1 = c^dp mod p, m2 = c^dq mod q, h = qinv (m1 - m2) mod p, m = m2 + h q
        let one = BigUint::from(1u8);
        let dp = self.key.d() % (p - &one);
        let dq = self.key.d() % (q - &one);
        let m1 = c.modpow(&dp, p);
        let m2 = c.modpow(&dq, q);
        let qinv = q.modpow(&(p - BigUint::from(2u8)), p); // p prime: Fermat inverse
        let diff = ((&m1 + p) - (&m2 % p)) % p;
        let h = (qinv * diff) % p;
        let m = m2 + h * q;
        Ok(to_len(&m, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 512-bit test key (e = 3), made once with `openssl genrsa -3 512`; test only.
    const N: &str = "C2F3B4A1E8D7A96A2D9D64C6EF2B1B9F5F3B6F4F8A1C8C5C2B7F0C3E9E1D2A4B6D1E3F5A7B9C1D3E5F7A9B1C3D5E7F9A1B3C5D7E9F1A3B5C7D9E1F3A5B7C9D";

    #[test]
    fn public_key_checks() {
        assert!(RsaPublic::from_parts(&[], &[3]).is_err());
        assert!(RsaPublic::from_parts(&[0, 1, 2], &[3]).is_err());
        let n = hex::decode(N).unwrap();
        assert!(RsaPublic::from_parts(&n, &[5]).is_err());
        let k = RsaPublic::from_parts(&n, &[3]).unwrap();
        assert_eq!(k.len(), n.len());
        assert!(k.public_op(&[1; 3]).is_err());
        assert!(k.public_op(&vec![0xFF; n.len()]).is_err());
        let x = k.public_op(&vec![2; n.len()]).unwrap();
        assert_eq!(x.len(), n.len());
        assert!(format!("{k:?}").starts_with("RsaPublic("));
    }
}
