//! [`CryptoSecurity`]: the [`Security`] module on poslab-crypto, for the test keys of a
//! key file (`fixtures/keys/test-keys.yaml`).
//!
//! - Key exchange (0800 DE 70 = 101/161/811): two new session keys, a PIN key and a MAC
//!   key, each wrapped under the terminal master key `tmk` (ECB) and sent in the 0810
//!   DE 48 as text: `PK` ‖ hex(PIN key under TMK, 32) ‖ KCV (6 hex) ‖ `MK` ‖ hex(MAC key
//!   under TMK, 32) ‖ KCV (6 hex). The keys come from the constructor's seed and a
//!   counter (the TMK enciphering `seed ‖ counter`): deterministic, no global RNG.
//! - MAC (DE 64 or DE 128, 8 bytes, binary or 16 hex digits): ISO 9797-1 algorithm 3,
//!   padding method 1, under the terminal's session MAC key (or `zak` before any key
//!   exchange), over the message's bytes as packed on the wire in the host's dialect
//!   (MTI, bitmaps with the MAC field's bit set, every field up to the MAC field; no
//!   framing: [`poslab_iso8583::Spec::mac_bytes`]). A request is checked over the very
//!   bytes it came in ([`Security::verify_wire`]), else over its re-packed form. A wrong
//!   MAC is refused with [`CryptoSecurity::mac_failure`] (`A0`). Answers to a MACed
//!   request (or to a terminal holding a session MAC key) carry a MAC (DE 64, or DE 128
//!   when the answer has secondary-bitmap fields), under the key that checked the request.
//! - PIN (DE 52, ISO format 0, binary or 16 hex), under the session PIN key (or `zpk`):
//!   with `security.pin_translation` in the host configuration, translated HSM-style
//!   ([`poslab_crypto::translate`]: the clear PIN never leaves it) into the issuer's zone
//!   (its zone PIN key and format, e.g. ISO format 4 under an AES key) and verified there,
//!   as the issuer would; the journal notes name the keys by KCV. Without it, deciphered
//!   under the terminal's key. Compared with the card's PIN from the table (longest PAN
//!   prefix, default `1234`): wrong → `55`, the third wrong in a row for a PAN → `75`
//!   (and `75` until the PIN tries are reset by [`CryptoSecurity::reset_pin_tries`]).
//! - ARQC (DE 55 with 9F26, 9F36, 9F37, DE 2 PAN, 5F34 PSN (or DE 23, or 0)): ICC master
//!   key by option A from `imk-ac-visa` (PAN 4…) or `imk-ac-mastercard` (others; the
//!   other key is tried next, as the fixture cards share one test IMK), EMV
//!   common session key, AC over the usual CDOL1 values 9F02 9F03 9F1A 95 5F2A 9A 9C
//!   9F37 ‖ AIP 82 ‖ ATC 9F36 ‖ IAD 9F10 with padding method 2 (as poslab-emv's card,
//!   `poslab_emv::card::ac_input`). Mismatch → [`CryptoSecurity::arqc_failure`] (`05`).
//!   A verified ARQC gets an ARPC (method 1, ARC = the answer's DE 39) in the answer's
//!   DE 55 as tag 91 = ARPC ‖ ARC.

use std::collections::HashMap;

use poslab_crypto::{
    CryptoError, Key, KeyFile, MacAlgorithm, Padding, Pin, PinBlockFormat, PinZone,
    SessionKeyMethod,
};
use poslab_iso8583::{Field, Message, Spec};
use poslab_tlv::Tlv;

use crate::config::{ResponseCode, SecurityConfig};
use crate::security::Security;

/// The CDOL1 tags whose values open the AC input, in order.
const CDOL1: [u32; 8] = [0x9F02, 0x9F03, 0x9F1A, 0x95, 0x5F2A, 0x9A, 0x9C, 0x9F37];

#[derive(Default)]
struct Session {
    pin_key: Option<Key>,
    mac_key: Option<Key>,
    /// The key and field (64/128) to sign the next answer with.
    sign_with: Option<(Key, u16)>,
    /// Session key and ARQC of the request being answered.
    arpc: Option<(Key, [u8; 8])>,
}

/// MAC, PIN and ARQC checks and key exchange on poslab-crypto (see the module docs).
pub struct CryptoSecurity {
    tmk: Key,
    zpk: Option<Key>,
    zak: Option<Key>,
    imk_visa: Option<Key>,
    imk_mastercard: Option<Key>,
    seed: u64,
    counter: u64,
    /// (PAN or PAN prefix, PIN digits), longest prefix wins.
    pins: Vec<(String, String)>,
    default_pin: String,
    tries: HashMap<String, u8>,
    sessions: HashMap<String, Session>,
    /// The dialect MACs are computed in (default `iso87ascii`; the host sets its own).
    spec: Spec,
    /// Every key of the key file, for the configuration to name zone keys.
    keys: KeyFile,
    /// The issuer zone online PINs are translated to, when configured.
    issuer_zone: Option<(Key, PinBlockFormat)>,
    /// A configuration that could not be applied (every PIN is then refused with `96`).
    config_error: Option<String>,
    notes: Vec<String>,
    /// The code for a wrong MAC (default `A0`).
    pub mac_failure: ResponseCode,
    /// The code for an ARQC that does not verify (default `05`).
    pub arqc_failure: ResponseCode,
    /// Wrong PINs in a row before `75` (default 3).
    pub max_pin_tries: u8,
}

impl std::fmt::Debug for CryptoSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CryptoSecurity")
            .field("tmk", &self.tmk)
            .field("terminals", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl CryptoSecurity {
    /// From a key file: `tmk` is required; `zpk`, `zak`, `imk-ac-visa` and
    /// `imk-ac-mastercard` are used when present. `seed` makes the session keys.
    pub fn from_key_file(keys: &KeyFile, seed: u64) -> Result<CryptoSecurity, CryptoError> {
        let opt = |name: &str| keys.key(name).ok().cloned();
        Ok(CryptoSecurity {
            tmk: keys.key("tmk")?.clone(),
            zpk: opt("zpk"),
            zak: opt("zak"),
            imk_visa: opt("imk-ac-visa"),
            imk_mastercard: opt("imk-ac-mastercard"),
            seed,
            counter: 0,
            pins: Vec::new(),
            default_pin: "1234".into(),
            tries: HashMap::new(),
            sessions: HashMap::new(),
            spec: Spec::builtin("iso87ascii").ok_or_else(|| CryptoError::KeyFile {
                path: "spec".into(),
                reason: "built-in spec iso87ascii missing".into(),
            })?,
            keys: keys.clone(),
            issuer_zone: None,
            config_error: None,
            notes: Vec::new(),
            mac_failure: ResponseCode(*b"A0"),
            arqc_failure: ResponseCode(*b"05"),
            max_pin_tries: 3,
        })
    }

    /// The card PINs: (PAN or PAN prefix, PIN); cards matching none have PIN `1234`.
    pub fn with_pins(mut self, pins: impl IntoIterator<Item = (String, String)>) -> Self {
        self.pins = pins.into_iter().collect();
        self
    }

    /// Forgets a PAN's wrong PIN count.
    pub fn reset_pin_tries(&mut self, pan: &str) {
        self.tries.remove(pan);
    }

    fn pin_of(&self, pan: &str) -> &str {
        self.pins
            .iter()
            .filter(|(prefix, _)| pan.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.default_pin.as_str(), |(_, pin)| pin.as_str())
    }

    fn new_key(&mut self) -> Result<Key, CryptoError> {
        self.counter += 1;
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&self.seed.to_be_bytes());
        block[8..].copy_from_slice(&self.counter.to_be_bytes());
        Key::tdes(&poslab_crypto::ecb_encrypt(&self.tmk, &block)?)
    }

    /// The issuer zone of the configuration (see the module docs).
    pub fn configure_zone(&mut self, config: &SecurityConfig) -> Result<(), String> {
        self.mac_failure = config.mac_failure;
        self.issuer_zone = None;
        let Some(t) = &config.pin_translation else {
            return Ok(());
        };
        let format = PinBlockFormat::from_name(&t.format).ok_or_else(|| {
            format!(
                "security.pin_translation.format: {:?} is not iso-0, iso-3 or iso-4",
                t.format
            )
        })?;
        let key = self
            .keys
            .key(&t.zone_key)
            .map_err(|e| format!("security.pin_translation.zone_key: {e}"))?
            .clone();
        poslab_crypto::translation_allowed(PinBlockFormat::Iso0, format)
            .map_err(|e| format!("security.pin_translation: {e}"))?;
        if !poslab_crypto::pin::key_fits_format(key.algorithm(), format) {
            return Err(format!(
                "security.pin_translation: key {} ({}) cannot hold {} PIN blocks",
                t.zone_key,
                key.algorithm().name(),
                format.name()
            ));
        }
        self.issuer_zone = Some((key, format));
        Ok(())
    }

    fn check_mac(
        &mut self,
        tid: &str,
        req: &Message,
        wire: Option<&[u8]>,
    ) -> Result<(), ResponseCode> {
        let session = self.sessions.entry(tid.to_string()).or_default();
        let key = session.mac_key.clone().or_else(|| self.zak.clone());
        let field = [64u16, 128].into_iter().find(|de| req.has(*de));
        match (field, key) {
            (Some(de), Some(key)) => {
                let mac = field_bytes(req.get(de)).ok_or(self.mac_failure)?;
                let covered = match wire {
                    Some(w) => self
                        .spec
                        .mac_bytes_of_wire(w, req)
                        .map(|(_, _, c)| c.to_vec()),
                    None => self.spec.mac_bytes(req).map(|(_, c)| c),
                };
                let covered = match covered {
                    Ok(c) => c,
                    Err(e) => {
                        self.notes.push(format!("mac not checked: {e}"));
                        return Err(self.mac_failure);
                    }
                };
                let ok = poslab_crypto::verify_mac(
                    MacAlgorithm::Alg3(Padding::Method1),
                    &key,
                    &covered,
                    &mac,
                )
                .unwrap_or(false);
                self.notes.push(format!(
                    "mac {} over {} wire bytes (de {de}, key kcv {})",
                    if ok { "verified" } else { "wrong" },
                    covered.len(),
                    key.kcv()
                ));
                if !ok {
                    return Err(self.mac_failure);
                }
                session.sign_with = Some((key, de));
            }
            (Some(_), None) => return Err(self.mac_failure),
            (None, Some(key)) if session.mac_key.is_some() => {
                session.sign_with = Some((key, 64));
            }
            (None, _) => {}
        }
        Ok(())
    }

    fn check_pin(&mut self, tid: &str, req: &Message) -> Result<(), ResponseCode> {
        let Some(block) = field_bytes(req.get(52)) else {
            return Ok(());
        };
        let pan = req.text(2).unwrap_or("").to_string();
        let key = self
            .sessions
            .get(tid)
            .and_then(|s| s.pin_key.clone())
            .or_else(|| self.zpk.clone())
            .ok_or(ResponseCode(*b"96"))?;
        let tries = self.tries.get(&pan).copied().unwrap_or(0);
        if tries >= self.max_pin_tries {
            return Err(ResponseCode(*b"75"));
        }
        let expected = Pin::new(self.pin_of(&pan)).map_err(|_| ResponseCode(*b"96"))?;
        if let Some(problem) = &self.config_error {
            self.notes.push(format!("pin not verified: {problem}"));
            return Err(ResponseCode(*b"96"));
        }
        let verified = match &self.issuer_zone {
            None => {
                self.notes.push(format!(
                    "pin verified under the terminal key (kcv {})",
                    key.kcv()
                ));
                poslab_crypto::verify_pin(&key, PinBlockFormat::Iso0, &block, &pan, &expected)
            }
            Some((zpk, format)) => {
                // the translated block's fill: from the session's counter, no global RNG
                self.counter += 1;
                let random = (self.seed ^ self.counter.rotate_left(17)).to_be_bytes();
                match poslab_crypto::translate(
                    PinZone::new(&key, PinBlockFormat::Iso0),
                    &block,
                    &pan,
                    PinZone::new(zpk, *format),
                    &random,
                ) {
                    Ok(t) => {
                        self.notes.push(t.describe());
                        poslab_crypto::verify_pin(zpk, *format, t.block.expose(), &pan, &expected)
                    }
                    Err(e) => {
                        self.notes.push(format!("pin translation failed: {e}"));
                        Err(e)
                    }
                }
            }
        };
        match verified {
            Ok(true) => {
                self.tries.remove(&pan);
                Ok(())
            }
            // a block that does not decode (wrong key, garbled) is a wrong PIN, as an HSM
            // reports it
            Ok(false) | Err(_) => {
                let n = tries + 1;
                self.tries.insert(pan, n);
                Err(ResponseCode(if n >= self.max_pin_tries {
                    *b"75"
                } else {
                    *b"55"
                }))
            }
        }
    }

    fn check_arqc(&mut self, tid: &str, req: &Message) -> Result<(), ResponseCode> {
        let Some(items) = req.tlv(55) else {
            return Ok(());
        };
        let tag = |t: u32| items.value(t);
        let Some(arqc) = tag(0x9F26) else {
            return Ok(());
        };
        let fail = self.arqc_failure;
        let arqc: [u8; 8] = arqc.try_into().map_err(|_| fail)?;
        let pan = req.text(2).ok_or(fail)?;
        let atc = tag(0x9F36)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_be_bytes)
            .ok_or(fail)?;
        let psn = match tag(0x5F34) {
            Some([b]) => *b,
            Some(_) => return Err(fail),
            None => req
                .text(23)
                .and_then(|t| t.parse::<u8>().ok())
                .map_or(0, |n| ((n / 10 % 10) << 4) | (n % 10)),
        };
        let mut data = Vec::new();
        for t in CDOL1 {
            data.extend_from_slice(tag(t).ok_or(fail)?);
        }
        data.extend_from_slice(tag(0x82).ok_or(fail)?);
        data.extend_from_slice(&atc.to_be_bytes());
        data.extend_from_slice(tag(0x9F10).unwrap_or(&[]));
        // the scheme's key first, then the other (the fixture cards share one test IMK)
        let imks = if pan.starts_with('4') {
            [&self.imk_visa, &self.imk_mastercard]
        } else {
            [&self.imk_mastercard, &self.imk_visa]
        };
        for imk in imks.into_iter().flatten() {
            let Ok(sk) = poslab_crypto::derive_icc_master_key_a(imk, pan, psn).and_then(|mk| {
                poslab_crypto::derive_ac_session_key(&mk, SessionKeyMethod::Common, atc, [0; 4])
            }) else {
                continue;
            };
            if poslab_crypto::verify_ac(&sk, &data, Padding::Method2, &arqc).unwrap_or(false) {
                self.sessions.entry(tid.to_string()).or_default().arpc = Some((sk, arqc));
                return Ok(());
            }
        }
        Err(fail)
    }
}

impl Security for CryptoSecurity {
    fn verify(&mut self, tid: &str, request: &Message) -> Result<(), ResponseCode> {
        self.verify_wire(tid, request, None)
    }

    fn verify_wire(
        &mut self,
        tid: &str,
        request: &Message,
        wire: Option<&[u8]>,
    ) -> Result<(), ResponseCode> {
        let session = self.sessions.entry(tid.to_string()).or_default();
        session.sign_with = None;
        session.arpc = None;
        self.check_mac(tid, request, wire)?;
        self.check_pin(tid, request)?;
        self.check_arqc(tid, request)
    }

    fn set_spec(&mut self, spec: &Spec) {
        self.spec = spec.clone();
    }

    fn configure(&mut self, config: &SecurityConfig) {
        self.config_error = self.configure_zone(config).err();
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn key_exchange(
        &mut self,
        tid: &str,
        _request: &Message,
    ) -> Result<Vec<(u16, String)>, ResponseCode> {
        let err = |_| ResponseCode(*b"96");
        let pin_key = self.new_key().map_err(err)?;
        let mac_key = self.new_key().map_err(err)?;
        let pk = poslab_crypto::wrap_key(&self.tmk, &pin_key).map_err(err)?;
        let mk = poslab_crypto::wrap_key(&self.tmk, &mac_key).map_err(err)?;
        let de48 = format!(
            "PK{}{}MK{}{}",
            pk.cryptogram_hex(),
            pk.kcv(),
            mk.cryptogram_hex(),
            mk.kcv()
        );
        let session = self.sessions.entry(tid.to_string()).or_default();
        session.pin_key = Some(pin_key);
        session.mac_key = Some(mac_key);
        Ok(vec![(48, de48)])
    }

    fn sign(&mut self, tid: &str, response: &mut Message) {
        let Some(session) = self.sessions.get_mut(tid) else {
            return;
        };
        if let Some((sk, arqc)) = session.arpc.take() {
            let arc: [u8; 2] = response
                .text(39)
                .and_then(|c| c.as_bytes().try_into().ok())
                .unwrap_or(*b"00");
            if let Ok(arpc) = poslab_crypto::generate_arpc_method1(&sk, &arqc, &arc) {
                let mut tag91 = arpc.to_vec();
                tag91.extend_from_slice(&arc);
                let mut list = response.tlv(55).cloned().unwrap_or_default();
                list.push(&Tlv::primitive(0x91u32, tag91));
                response.set(55, Field::Tlv(list));
            }
        }
        if let Some((key, _)) = session.sign_with.take() {
            response.remove(64);
            response.remove(128);
            if let Ok((de, covered)) = self.spec.mac_bytes(response) {
                if let Ok(mac) = poslab_crypto::generate_mac(
                    MacAlgorithm::Alg3(Padding::Method1),
                    &key,
                    &covered,
                    8,
                ) {
                    response.set(de, Field::Binary(mac));
                }
            }
        }
    }
}

/// The bytes of a MAC or PIN block field: binary, or text of hex digits.
fn field_bytes(field: Option<&Field>) -> Option<Vec<u8>> {
    match field? {
        Field::Binary(b) => Some(b.clone()),
        Field::Text(t) => from_hex(t),
        _ => None,
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

/// The bytes a MAC covers in `spec` (see the module docs).
pub fn mac_data(spec: &Spec, message: &Message) -> Vec<u8> {
    spec.mac_bytes(message).map(|(_, b)| b).unwrap_or_default()
}

#[cfg(test)]
#[path = "crypto_security_tests.rs"]
mod tests;
