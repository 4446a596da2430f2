//! HSM-style PIN translation between key zones (ISO 9564-1 §9, "translate PIN block").
//!
//! An acquirer receives the PIN block enciphered under the terminal's session PIN key
//! (usually ISO format 0) and forwards it to the issuer under the zone PIN key (ZPK) the
//! two share, in the zone's format: format 0 under another TDES key, or format 4 under an
//! AES key. [`translate`] deciphers and re-enciphers in one call; the clear PIN and the
//! clear PIN blocks live only inside it, in zeroizing buffers ([`crate::Pin`],
//! `Zeroizing`), and never leave it. What comes out is the new enciphered block and the
//! key check values of both keys (public: fit for a journal).
//!
//! Refused, as an HSM refuses them: translating into format 2 (offline ICC PIN only,
//! never on a network), and translating a PAN-bound block (formats 0, 3, 4) into format 1
//! (no PAN binding: the translation would strip the binding). A block that does not
//! decode under the source key (wrong key, wrong PAN, garbled) is
//! [`CryptoError::PinBlockRejected`], which names the source key by KCV and says nothing
//! of the clear block.

use std::fmt;

use poslab_sensitive::Secret;

use crate::error::{CryptoError, Result};
use crate::key::{Kcv, Key};
use crate::pin::{decipher_pin_block, encipher_pin_block, key_fits_format, PinBlockFormat};

/// One side of a translation: a PIN key and the PIN block format used under it.
#[derive(Clone, Copy)]
pub struct PinZone<'a> {
    pub key: &'a Key,
    pub format: PinBlockFormat,
}

impl<'a> PinZone<'a> {
    pub fn new(key: &'a Key, format: PinBlockFormat) -> Self {
        PinZone { key, format }
    }
}

impl fmt::Debug for PinZone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PinZone({} under {})",
            self.format.name(),
            self.key.kcv()
        )
    }
}

/// The result of a translation: the block under the destination key and what a journal
/// may say about it (formats and KCVs; never the block in clear).
pub struct Translation {
    /// The PIN block enciphered under the destination key (`Secret`: prints masked).
    pub block: Secret,
    pub from_format: PinBlockFormat,
    pub from_kcv: Kcv,
    pub to_format: PinBlockFormat,
    pub to_kcv: Kcv,
}

impl Translation {
    /// One line for a journal: `pin translated iso-0 (kcv 7B0898) -> iso-4 (kcv …)`.
    pub fn describe(&self) -> String {
        format!(
            "pin translated {} (kcv {}) -> {} (kcv {})",
            self.from_format.name(),
            self.from_kcv,
            self.to_format.name(),
            self.to_kcv
        )
    }
}

impl fmt::Debug for Translation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Translation")
            .field("block", &self.block)
            .field(
                "from",
                &format_args!("{} {}", self.from_format.name(), self.from_kcv),
            )
            .field(
                "to",
                &format_args!("{} {}", self.to_format.name(), self.to_kcv),
            )
            .finish()
    }
}

/// Whether an HSM allows translating `from` into `to` (see the module docs).
pub fn translation_allowed(from: PinBlockFormat, to: PinBlockFormat) -> Result<()> {
    use PinBlockFormat::*;
    let refuse = |reason: &'static str| {
        Err(CryptoError::TranslationRefused {
            from: from.name(),
            to: to.name(),
            reason,
        })
    };
    match (from, to) {
        (_, Iso2) | (Iso2, _) => refuse("format 2 is for offline ICC PINs only"),
        (Iso0 | Iso3 | Iso4, Iso1) => refuse("format 1 would strip the PAN binding"),
        _ => Ok(()),
    }
}

/// Translates `block` (enciphered under `from.key` in `from.format`, bound to `pan`) into
/// `to.format` under `to.key`. `random` is the fill for formats 1, 3 and 4.
pub fn translate(
    from: PinZone<'_>,
    block: &[u8],
    pan: &str,
    to: PinZone<'_>,
    random: &[u8; 8],
) -> Result<Translation> {
    translation_allowed(from.format, to.format)?;
    for zone in [from, to] {
        if !key_fits_format(zone.key.algorithm(), zone.format) {
            return Err(CryptoError::WrongKeyAlgorithm {
                operation: "pin translation",
                expected: if zone.format == PinBlockFormat::Iso4 {
                    "aes (format 4)"
                } else {
                    "tdes (formats 0 to 3)"
                },
                got: zone.key.algorithm().name(),
            });
        }
    }
    if block.len() != from.format.block_len() {
        return Err(CryptoError::WrongLength {
            what: "enciphered pin block",
            len: block.len(),
            expected: if from.format == PinBlockFormat::Iso4 {
                "16"
            } else {
                "8"
            },
        });
    }
    // the clear PIN lives in this scope only (zeroized on drop)
    let pin = decipher_pin_block(from.key, from.format, block, pan).map_err(|e| match e {
        CryptoError::BadPan { .. } => e,
        _ => CryptoError::PinBlockRejected {
            kcv: from.key.kcv().to_string(),
        },
    })?;
    let out = encipher_pin_block(to.key, to.format, &pin, pan, random)?;
    drop(pin);
    Ok(Translation {
        block: out,
        from_format: from.format,
        from_kcv: from.key.kcv(),
        to_format: to.format,
        to_kcv: to.key.kcv(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{parse_hex, KeyAlgorithm};
    use crate::pin::{decipher_pin_block, encipher_pin_block, Pin};
    use proptest::prelude::*;

    fn tdes(hex: &str) -> Key {
        Key::from_hex(KeyAlgorithm::Tdes2, hex).unwrap()
    }
    fn aes(hex: &str) -> Key {
        Key::from_hex(KeyAlgorithm::Aes128, hex).unwrap()
    }

    // ANSI X9.24-1 Annex A: PIN 1234, PAN 4012345678909, format 0 block 041274EDCBA9876F,
    // enciphered under DUKPT PIN key #1 042666B49184CF5C68DE9628D0397B36 → 1B9C1845EB993A7A.
    const X924_PIN_KEY: &str = "042666B49184CF5C68DE9628D0397B36";
    const X924_BLOCK: &str = "1B9C1845EB993A7A";
    const X924_PAN: &str = "4012345678909";

    #[test]
    fn translates_the_x9_24_block_to_another_tdes_zone_in_format_0() {
        let from = tdes(X924_PIN_KEY);
        let zpk = tdes("4CA2161637D0133E5E151AEA45DA2A12");
        let block = parse_hex("t", X924_BLOCK).unwrap();
        let t = translate(
            PinZone::new(&from, PinBlockFormat::Iso0),
            &block,
            X924_PAN,
            PinZone::new(&zpk, PinBlockFormat::Iso0),
            &[0; 8],
        )
        .unwrap();
        // format 0 is deterministic: the result is E_zpk(041274EDCBA9876F)
        let clear = crate::key::ecb_decrypt(&zpk, t.block.expose()).unwrap();
        assert_eq!(hex::encode_upper(clear), "041274EDCBA9876F");
        let pin = decipher_pin_block(&zpk, PinBlockFormat::Iso0, t.block.expose(), X924_PAN);
        assert_eq!(pin.unwrap(), Pin::new("1234").unwrap());
        assert_eq!(t.from_kcv.to_string(), from.kcv().to_string());
        assert_eq!(t.to_kcv.to_string(), "7B0898");
    }

    #[test]
    fn translates_format_0_to_format_4_under_aes() {
        let from = tdes(X924_PIN_KEY);
        let zpk = aes("FEDCBA9876543210F1F1F1F1F1F1F1F1");
        let block = parse_hex("t", X924_BLOCK).unwrap();
        let t = translate(
            PinZone::new(&from, PinBlockFormat::Iso0),
            &block,
            X924_PAN,
            PinZone::new(&zpk, PinBlockFormat::Iso4),
            &[0x11; 8],
        )
        .unwrap();
        assert_eq!(t.block.expose().len(), 16);
        let pin = decipher_pin_block(&zpk, PinBlockFormat::Iso4, t.block.expose(), X924_PAN);
        assert_eq!(pin.unwrap(), Pin::new("1234").unwrap());
        assert!(t.describe().contains("iso-4"), "{}", t.describe());
        // nothing of the block or the PIN in Debug
        let shown = format!("{t:?}");
        assert!(
            !shown.contains(&hex::encode_upper(t.block.expose())),
            "{shown}"
        );
        assert!(!shown.contains("1234"), "{shown}");
    }

    #[test]
    fn a_wrong_source_key_is_rejected_or_gives_another_pin() {
        let right = tdes(X924_PIN_KEY);
        let zpk = tdes("4CA2161637D0133E5E151AEA45DA2A12");
        let block = parse_hex("t", X924_BLOCK).unwrap();
        let wrong = tdes("0123456789ABCDEFFEDCBA9876543210");
        match translate(
            PinZone::new(&wrong, PinBlockFormat::Iso0),
            &block,
            X924_PAN,
            PinZone::new(&zpk, PinBlockFormat::Iso0),
            &[0; 8],
        ) {
            Err(CryptoError::PinBlockRejected { kcv }) => assert_eq!(kcv, "08D7B4"),
            Err(e) => panic!("unexpected error {e}"),
            Ok(t) => {
                let pin =
                    decipher_pin_block(&zpk, PinBlockFormat::Iso0, t.block.expose(), X924_PAN)
                        .unwrap();
                assert_ne!(pin, Pin::new("1234").unwrap());
            }
        }
        let _ = right;
    }

    #[test]
    fn refusals_and_mismatched_keys() {
        let k = tdes(X924_PIN_KEY);
        let a = aes("FEDCBA9876543210F1F1F1F1F1F1F1F1");
        let block = parse_hex("t", X924_BLOCK).unwrap();
        let go = |from: PinZone<'_>, to: PinZone<'_>, b: &[u8]| {
            translate(from, b, X924_PAN, to, &[0; 8]).map(|_| ())
        };
        let z0 = PinZone::new(&k, PinBlockFormat::Iso0);
        assert!(matches!(
            go(z0, PinZone::new(&k, PinBlockFormat::Iso1), &block),
            Err(CryptoError::TranslationRefused { .. })
        ));
        assert!(matches!(
            go(z0, PinZone::new(&k, PinBlockFormat::Iso2), &block),
            Err(CryptoError::TranslationRefused { .. })
        ));
        assert!(matches!(
            go(z0, PinZone::new(&a, PinBlockFormat::Iso0), &block),
            Err(CryptoError::WrongKeyAlgorithm { .. })
        ));
        assert!(matches!(
            go(z0, PinZone::new(&k, PinBlockFormat::Iso0), &block[..7]),
            Err(CryptoError::WrongLength { .. })
        ));
        let msg = go(z0, PinZone::new(&k, PinBlockFormat::Iso1), &block)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "pin translation refused (iso-0 -> iso-1): format 1 would strip the PAN binding"
        );
    }

    proptest! {
        #[test]
        fn translate_then_decipher_gives_the_same_pin(
            digits in "[0-9]{4,12}",
            pan in "[0-9]{13,19}",
            from_fmt in prop_oneof![Just(PinBlockFormat::Iso0), Just(PinBlockFormat::Iso3), Just(PinBlockFormat::Iso1)],
            to_fmt in prop_oneof![Just(PinBlockFormat::Iso0), Just(PinBlockFormat::Iso3), Just(PinBlockFormat::Iso4)],
            k1 in proptest::array::uniform16(any::<u8>()),
            k2 in proptest::array::uniform16(any::<u8>()),
            r1 in proptest::array::uniform8(any::<u8>()),
            r2 in proptest::array::uniform8(any::<u8>()),
        ) {
            let from = Key::tdes(&k1).unwrap();
            let to = if to_fmt == PinBlockFormat::Iso4 { Key::aes(&k2).unwrap() } else { Key::tdes(&k2).unwrap() };
            let pin = Pin::new(&digits).unwrap();
            let block = encipher_pin_block(&from, from_fmt, &pin, &pan, &r1).unwrap();
            let t = translate(PinZone::new(&from, from_fmt), block.expose(), &pan, PinZone::new(&to, to_fmt), &r2).unwrap();
            prop_assert_eq!(decipher_pin_block(&to, to_fmt, t.block.expose(), &pan).unwrap(), pin);
        }
    }
}
