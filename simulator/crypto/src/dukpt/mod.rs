//! DUKPT: ANSI X9.24-1 TDES DUKPT ([`tdes`]) and ANSI X9.24-3 AES DUKPT ([`aes`]), host
//! (receiving) side and terminal (originating) side.
//!
//! Host side: from the BDK and the KSN a message carries, derive the initial key, the
//! transaction key and its working keys (PIN, MAC, data).
//!
//! Terminal side: the future-key-register state machine. The terminal holds only the keys
//! for counters it has not used yet (one register per counter bit), never the initial
//! key after loading and never a used key: after a transaction its key is erased. The
//! counter skips values with more than 10 one-bits (TDES; 16 for AES) and the device is
//! exhausted when the counter overflows its 21 (32) bits.
//!
//! [`Ksn`] parses either KSN length and [`pin_key`] / [`translate_pin_to_zone`] give the
//! host one entry point for both flavours.

pub mod aes;
pub mod tdes;

use std::fmt;

use poslab_sensitive::Secret;

use crate::error::{CryptoError, Result};
use crate::key::{Key, KeyAlgorithm};
use crate::pin::{decipher_pin_block, encipher_pin_block, PinBlockFormat};

/// A key serial number of either flavour, told apart by length (10 or 12 bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ksn {
    Tdes(tdes::TdesKsn),
    Aes(aes::AesKsn),
}

impl Ksn {
    /// Parses a KSN from its bytes: 10 bytes TDES, 12 bytes AES.
    pub fn from_bytes(bytes: &[u8]) -> Result<Ksn> {
        match bytes.len() {
            10 => Ok(Ksn::Tdes(tdes::TdesKsn::from_bytes(bytes)?)),
            12 => Ok(Ksn::Aes(aes::AesKsn::from_bytes(bytes)?)),
            _ => Err(CryptoError::BadKsn {
                reason: "must be 10 bytes (tdes) or 12 bytes (aes)",
            }),
        }
    }
    /// Parses a KSN from hex (20 or 24 hex digits).
    pub fn parse_hex(text: &str) -> Result<Ksn> {
        let bytes = crate::key::parse_hex("ksn", text)?;
        Ksn::from_bytes(&bytes)
    }
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Ksn::Tdes(k) => k.as_bytes(),
            Ksn::Aes(k) => k.as_bytes(),
        }
    }
    /// The transaction counter.
    pub fn counter(&self) -> u32 {
        match self {
            Ksn::Tdes(k) => k.counter(),
            Ksn::Aes(k) => k.counter(),
        }
    }
}

impl fmt::Display for Ksn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ksn::Tdes(k) => k.fmt(f),
            Ksn::Aes(k) => k.fmt(f),
        }
    }
}
impl fmt::Debug for Ksn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ksn::Tdes(k) => k.fmt(f),
            Ksn::Aes(k) => k.fmt(f),
        }
    }
}

/// Host side: the PIN encryption key for `ksn` under `bdk`. TDES: the transaction key
/// with the PIN variant; AES: the AES-128 PIN encryption working key.
pub fn pin_key(bdk: &Key, ksn: &Ksn) -> Result<Key> {
    match ksn {
        Ksn::Tdes(k) => Ok(tdes::working_key(
            &tdes::host_transaction_key(bdk, k)?,
            tdes::Variant::Pin,
        )),
        Ksn::Aes(k) => aes::working_key(
            &aes::host_derivation_key(bdk, k)?,
            k,
            aes::KeyUsage::PinEncryption,
            KeyAlgorithm::Aes128,
        ),
    }
}

/// Host side: the MAC key for `ksn` under `bdk`, for the terminal's request (`true`) or
/// the host's response (`false`). TDES: MAC request/response variants (use with ISO
/// 9797-1 algorithm 3); AES: AES-128 MAC generation/verification working keys (CMAC).
pub fn mac_key(bdk: &Key, ksn: &Ksn, request: bool) -> Result<Key> {
    match ksn {
        Ksn::Tdes(k) => Ok(tdes::working_key(
            &tdes::host_transaction_key(bdk, k)?,
            if request {
                tdes::Variant::MacRequest
            } else {
                tdes::Variant::MacResponse
            },
        )),
        Ksn::Aes(k) => aes::working_key(
            &aes::host_derivation_key(bdk, k)?,
            k,
            if request {
                aes::KeyUsage::MacGeneration
            } else {
                aes::KeyUsage::MacVerification
            },
            KeyAlgorithm::Aes128,
        ),
    }
}

/// Host side PIN translation from DUKPT to a zone PIN key: deciphers `block` under the
/// DUKPT PIN key for `ksn` (format 0 for TDES DUKPT unless `from_format` says otherwise;
/// format 4 for AES DUKPT) and re-enciphers it under `zpk` in `to_format`.
#[allow(clippy::too_many_arguments)]
pub fn translate_pin_to_zone(
    bdk: &Key,
    ksn: &Ksn,
    from_format: PinBlockFormat,
    block: &[u8],
    pan: &str,
    zpk: &Key,
    to_format: PinBlockFormat,
    random: &[u8; 8],
) -> Result<Secret> {
    let key = pin_key(bdk, ksn)?;
    let pin = decipher_pin_block(&key, from_format, block, pan)?;
    encipher_pin_block(zpk, to_format, &pin, pan, random)
}

/// The future key registers of a DUKPT terminal, shared by both flavours.
///
/// Register `j` holds the key for the counter whose lowest set bit is `j` and whose
/// higher bits are those of the current counter. Invariant: before each transaction the
/// register of the counter's lowest set bit holds that counter's key.
#[derive(Clone)]
pub(crate) struct Registers {
    bits: u32,
    max_ones: u32,
    /// The counter of the next transaction; `>= 1 << bits` means exhausted.
    next: u64,
    regs: Vec<Option<Key>>,
}

impl Registers {
    /// Load: derive the key of every single-bit counter from the initial key.
    pub(crate) fn load(
        ik: &Key,
        bits: u32,
        max_ones: u32,
        derive: impl Fn(&Key, u64) -> Result<Key>,
    ) -> Result<Registers> {
        let mut regs = Vec::with_capacity(bits as usize);
        for j in 0..bits {
            regs.push(Some(derive(ik, 1u64 << j)?));
        }
        Ok(Registers {
            bits,
            max_ones,
            next: 1,
            regs,
        })
    }

    /// Resume at counter `c` (the next to use), rebuilding the registers from the initial
    /// key as the state machine would have left them. For restoring a simulated device.
    pub(crate) fn resume(
        ik: &Key,
        bits: u32,
        max_ones: u32,
        c: u64,
        derive_full: impl Fn(&Key, u64) -> Result<Key>,
    ) -> Result<Registers> {
        if c == 0 || c >= 1u64 << bits || c.count_ones() > max_ones {
            return Err(CryptoError::BadKsn {
                reason: "counter is not a usable transaction counter",
            });
        }
        let tz = c.trailing_zeros();
        let mut regs: Vec<Option<Key>> = vec![None; bits as usize];
        regs[tz as usize] = Some(derive_full(ik, c)?);
        for j in tz + 1..bits {
            if c & (1 << j) != 0 {
                continue;
            }
            let n = ((c >> (j + 1)) << (j + 1)) | (1 << j);
            if n.count_ones() <= max_ones {
                regs[j as usize] = Some(derive_full(ik, n)?);
            }
        }
        Ok(Registers {
            bits,
            max_ones,
            next: c,
            regs,
        })
    }

    pub(crate) fn peek(&self) -> Result<u64> {
        if self.next >= 1u64 << self.bits {
            Err(CryptoError::CounterExhausted)
        } else {
            Ok(self.next)
        }
    }

    /// Takes the key of the current counter (erasing it), derives the future keys below
    /// its lowest set bit, and advances the counter (skipping counters with too many
    /// one-bits). Returns the counter used and its key.
    pub(crate) fn advance(
        &mut self,
        derive: impl Fn(&Key, u64) -> Result<Key>,
    ) -> Result<(u64, Key)> {
        let c = self.peek()?;
        let b = c.trailing_zeros();
        let key =
            self.regs
                .get_mut(b as usize)
                .and_then(Option::take)
                .ok_or(CryptoError::BadKsn {
                    reason: "future key register is empty",
                })?;
        if c.count_ones() < self.max_ones {
            for j in 0..b {
                self.regs[j as usize] = Some(derive(&key, c | (1 << j))?);
            }
            self.next = c + 1;
        } else {
            self.next = c + (1 << b);
        }
        Ok((c, key))
    }

    pub(crate) fn next_counter(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::parse_hex;
    use crate::pin::Pin;

    #[test]
    fn ksn_parses_by_length() {
        assert!(matches!(
            Ksn::parse_hex("FFFF9876543210E00001").unwrap(),
            Ksn::Tdes(_)
        ));
        assert!(matches!(
            Ksn::parse_hex("123456789012345600000001").unwrap(),
            Ksn::Aes(_)
        ));
        assert_eq!(
            Ksn::parse_hex("FFFF9876543210E0").unwrap_err().to_string(),
            "bad ksn: must be 10 bytes (tdes) or 12 bytes (aes)"
        );
        assert_eq!(
            Ksn::parse_hex("FFFF9876543210E00001").unwrap().to_string(),
            "FFFF9876543210E00001"
        );
    }

    #[test]
    fn translate_dukpt_pin_to_zone_key() {
        // X9.24-1:2009 A.4: PIN 1234, PAN 4012345678909, KSN …E00001 → 1B9C1845EB993A7A.
        let bdk = Key::tdes(&parse_hex("t", "0123456789ABCDEFFEDCBA9876543210").unwrap()).unwrap();
        let ksn = Ksn::parse_hex("FFFF9876543210E00001").unwrap();
        let zpk = Key::tdes(&[0x5A; 16]).unwrap();
        let out = translate_pin_to_zone(
            &bdk,
            &ksn,
            PinBlockFormat::Iso0,
            &parse_hex("t", "1B9C1845EB993A7A").unwrap(),
            "4012345678909",
            &zpk,
            PinBlockFormat::Iso0,
            &[0; 8],
        )
        .unwrap();
        let pin =
            decipher_pin_block(&zpk, PinBlockFormat::Iso0, out.expose(), "4012345678909").unwrap();
        assert_eq!(pin, Pin::new("1234").unwrap());
    }
}
