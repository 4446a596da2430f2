//! EMV offline data authentication (EMV Book 2 §5 SDA, §6 DDA, §6.6 CDA): the
//! certificates and signatures both sides handle, on raw RSA from `poslab-crypto` and
//! SHA-1.
//!
//! Recovered data is checked field by field as Book 2 says, and every failure names the
//! object and the check ([`EmvError::Oda`]), never key material or a PAN in clear:
//! - issuer public key certificate (tag `90`, N_CA bytes) under the CA key: header `6A`,
//!   format `02`, trailer `BC`, hash algorithm `01`, SHA-1 over format..key part ‖
//!   remainder `92` ‖ exponent `9F32`, issuer identifier matching the PAN's leftmost
//!   digits, expiry (MMYY) not before today;
//! - ICC public key certificate (`9F46`, N_I bytes) under the issuer key: format `04`,
//!   PAN (padded with `F`) equal to the card's, expiry, SHA-1 also over the ICC remainder
//!   `9F48`, exponent `9F47` and the static data to be authenticated;
//! - signed static application data (`93`, N_I bytes, SDA): format `03`, SHA-1 over its
//!   fields ‖ static data;
//! - signed dynamic application data (`9F4B`, N_IC bytes): format `05`; for DDA the hash
//!   also covers the DDOL data the terminal sent (INTERNAL AUTHENTICATE), for CDA the
//!   ICC dynamic data carries the CID, the cryptogram and the transaction data hash code,
//!   and the hash covers the unpredictable number.
//!
//! Both sides live here: the `sign_*` functions for the card and for the personalisation
//! tool (`examples/oda_personalise.rs`), `recover_*`/`verify_*` for the terminal kernel.

use poslab_crypto::{RsaPrivate, RsaPublic};
use sha1::{Digest, Sha1};

use crate::EmvError;

const HEADER: u8 = 0x6A;
const TRAILER: u8 = 0xBC;
const SHA1: u8 = 0x01;
const RSA: u8 = 0x01;

fn fail(what: &'static str, reason: impl Into<String>) -> EmvError {
    EmvError::Oda {
        what,
        reason: reason.into(),
    }
}

/// SHA-1 over the concatenation of `parts`.
pub fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Recovers a signed object (`6A` … `BC`) and returns it whole: header to trailer.
pub fn recover(key: &RsaPublic, what: &'static str, signed: &[u8]) -> Result<Vec<u8>, EmvError> {
    if signed.len() != key.len() {
        return Err(fail(
            what,
            format!(
                "{} bytes, the key's modulus has {}",
                signed.len(),
                key.len()
            ),
        ));
    }
    let data = key
        .public_op(signed)
        .map_err(|e| fail(what, e.to_string()))?;
    match (data.first(), data.last()) {
        (Some(&HEADER), Some(&TRAILER)) if data.len() >= 22 => Ok(data),
        (Some(&HEADER), Some(_)) => Err(fail(what, "recovered data trailer is not BC")),
        _ => Err(fail(what, "recovered data header is not 6A")),
    }
}

/// Signs `body` (format byte onwards, without hash): `6A ‖ body ‖ SHA-1(body ‖ extra) ‖ BC`.
fn sign(key: &RsaPrivate, body: &[u8], extra: &[&[u8]]) -> Result<Vec<u8>, EmvError> {
    let mut parts: Vec<&[u8]> = vec![body];
    parts.extend_from_slice(extra);
    let hash = sha1(&parts);
    let mut m = Vec::with_capacity(key.public().len());
    m.push(HEADER);
    m.extend_from_slice(body);
    m.extend_from_slice(&hash);
    m.push(TRAILER);
    if m.len() != key.public().len() {
        return Err(fail(
            "signature",
            format!(
                "message of {} bytes for a {}-byte key",
                m.len(),
                key.public().len()
            ),
        ));
    }
    key.private_op(&m)
        .map_err(|e| fail("signature", e.to_string()))
}

/// Checks the hash of a recovered object: `data` = `6A ‖ body ‖ hash ‖ BC`.
fn check_hash(data: &[u8], what: &'static str, extra: &[&[u8]]) -> Result<(), EmvError> {
    let n = data.len();
    let body = data.get(1..n - 21).ok_or_else(|| fail(what, "too short"))?;
    let hash = data
        .get(n - 21..n - 1)
        .ok_or_else(|| fail(what, "too short"))?;
    let mut parts: Vec<&[u8]> = vec![body];
    parts.extend_from_slice(extra);
    if sha1(&parts).as_slice() != hash {
        return Err(fail(what, "hash result does not match"));
    }
    Ok(())
}

/// PAN digits as nibbles padded with `F` to `len` bytes.
fn pan_padded(pan: &str, len: usize) -> Vec<u8> {
    let mut nibbles: Vec<u8> = pan.bytes().map(|c| c.wrapping_sub(b'0') & 0x0F).collect();
    nibbles.resize(len * 2, 0xF);
    nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect() // ok: resized to an even count
}

/// Whether `id` (PAN digits padded with `F`) is a prefix of `pan` (at least `min` digits).
fn id_matches(id: &[u8], pan: &str, min: usize, exact: bool) -> bool {
    let digits: Vec<u8> = id
        .iter()
        .flat_map(|b| [b >> 4, b & 0x0F])
        .take_while(|n| *n != 0xF)
        .collect();
    let pan: Vec<u8> = pan.bytes().map(|c| c.wrapping_sub(b'0')).collect();
    digits.len() >= min
        && (if exact {
            digits == pan
        } else {
            pan.starts_with(&digits)
        })
}

/// Whether a certificate expiry `MMYY` (BCD) is before today (`yymm`, e.g. 2611).
fn expired(mmyy: &[u8], today_yymm: u16) -> bool {
    let bcd = |b: u8| u16::from(b >> 4) * 10 + u16::from(b & 0x0F);
    match mmyy {
        [mm, yy] => bcd(*yy) * 100 + bcd(*mm) < today_yymm,
        _ => true,
    }
}

/// What a certificate says about its subject: used by the personalisation tool.
#[derive(Clone, Copy, Debug)]
pub struct CertInfo<'a> {
    /// Issuer identifier (leftmost PAN digits) for an issuer certificate, the PAN for an
    /// ICC certificate.
    pub subject: &'a str,
    /// MMYY as 2 BCD bytes.
    pub expiry: [u8; 2],
    pub serial: [u8; 3],
}

/// Makes a public key certificate (format `02` issuer, `04` ICC) of `subject` under
/// `signer`; returns the certificate and the remainder of the subject's modulus.
/// `extra` is hashed after the exponent (the static data, for an ICC certificate).
pub fn sign_certificate(
    signer: &RsaPrivate,
    format: u8,
    info: CertInfo<'_>,
    subject: &RsaPublic,
    extra: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), EmvError> {
    let (id_len, fixed) = if format == 0x02 { (4, 36) } else { (10, 42) };
    let room = signer
        .public()
        .len()
        .checked_sub(fixed)
        .ok_or_else(|| fail("certificate", "signer key too short"))?;
    let modulus = subject.modulus();
    let exponent = subject.exponent();
    let (part, remainder) = if modulus.len() > room {
        (modulus[..room].to_vec(), modulus[room..].to_vec())
    } else {
        let mut p = modulus.clone();
        p.resize(room, 0xBB);
        (p, Vec::new())
    };
    let mut body = vec![format];
    body.extend_from_slice(&pan_padded(info.subject, id_len));
    body.extend_from_slice(&info.expiry);
    body.extend_from_slice(&info.serial);
    body.extend_from_slice(&[SHA1, RSA, modulus.len() as u8, exponent.len() as u8]);
    body.extend_from_slice(&part);
    let cert = sign(signer, &body, &[&remainder, &exponent, extra])?;
    Ok((cert, remainder))
}

/// Recovers and checks a public key certificate (see the module docs); `format` is `02`
/// (issuer, `subject_digits` = the PAN whose leftmost digits must match) or `04` (ICC,
/// the PAN must match exactly). Returns the certified public key.
#[allow(clippy::too_many_arguments)]
pub fn recover_certificate(
    signer: &RsaPublic,
    format: u8,
    cert: &[u8],
    remainder: &[u8],
    exponent: &[u8],
    extra: &[u8],
    pan: &str,
    today_yymm: u16,
) -> Result<RsaPublic, EmvError> {
    let what = if format == 0x02 {
        "issuer public key certificate"
    } else {
        "icc public key certificate"
    };
    let data = recover(signer, what, cert)?;
    let (id_len, fixed) = if format == 0x02 { (4, 36) } else { (10, 42) };
    if data.get(1) != Some(&format) {
        return Err(fail(what, format!("format is not {format:02X}")));
    }
    check_hash(&data, what, &[remainder, exponent, extra])?;
    let id = data
        .get(2..2 + id_len)
        .ok_or_else(|| fail(what, "too short"))?;
    let ok_id = if format == 0x02 {
        id_matches(id, pan, 3, false)
    } else {
        id_matches(id, pan, 12, true)
    };
    if !ok_id {
        return Err(fail(
            what,
            if format == 0x02 {
                "issuer identifier does not match the PAN"
            } else {
                "PAN does not match the card's"
            },
        ));
    }
    let at = 2 + id_len;
    let expiry = data
        .get(at..at + 2)
        .ok_or_else(|| fail(what, "too short"))?;
    if expired(expiry, today_yymm) {
        return Err(fail(what, "certificate expired"));
    }
    let algos = data
        .get(at + 5..at + 9)
        .ok_or_else(|| fail(what, "too short"))?;
    let (hash_alg, key_alg, key_len, exp_len) = (algos[0], algos[1], algos[2], algos[3]); // ok: get(..4)
    if hash_alg != SHA1 || key_alg != RSA {
        return Err(fail(what, "unknown hash or public key algorithm"));
    }
    if usize::from(exp_len) != exponent.len() {
        return Err(fail(what, "exponent length does not match"));
    }
    let room = signer
        .len()
        .checked_sub(fixed)
        .ok_or_else(|| fail(what, "signer key too short for a certificate"))?;
    let part = data
        .get(at + 9..at + 9 + room)
        .ok_or_else(|| fail(what, "too short"))?;
    let key_len = usize::from(key_len);
    let mut modulus = part.get(..key_len.min(room)).unwrap_or(part).to_vec();
    if key_len > room {
        if remainder.len() != key_len - room {
            return Err(fail(
                what,
                "public key remainder missing or of the wrong length",
            ));
        }
        modulus.extend_from_slice(remainder);
    }
    RsaPublic::from_parts(&modulus, exponent).map_err(|e| fail(what, e.to_string()))
}

/// Signed static application data (tag `93`, SDA) under the issuer key.
pub fn sign_static_data(
    issuer: &RsaPrivate,
    dac: [u8; 2],
    static_data: &[u8],
) -> Result<Vec<u8>, EmvError> {
    let pad = issuer.public().len().saturating_sub(26);
    let mut body = vec![0x03, SHA1, dac[0], dac[1]];
    body.resize(4 + pad, 0xBB);
    sign(issuer, &body, &[static_data])
}

/// Recovers and checks tag `93` (SDA); returns the data authentication code.
pub fn verify_static_data(
    issuer: &RsaPublic,
    ssad: &[u8],
    static_data: &[u8],
) -> Result<[u8; 2], EmvError> {
    let what = "signed static application data";
    let data = recover(issuer, what, ssad)?;
    if data.get(1..3) != Some(&[0x03, SHA1][..]) {
        return Err(fail(what, "format is not 03 or hash algorithm not SHA-1"));
    }
    check_hash(&data, what, &[static_data])?;
    let dac = data.get(3..5).ok_or_else(|| fail(what, "too short"))?;
    Ok([dac[0], dac[1]]) // ok: get(3..5)
}

/// Signed dynamic application data (`9F4B`) under the ICC key: `icc_dynamic_data` (for
/// DDA the ICC dynamic number with its length byte; for CDA followed by CID, AC and the
/// transaction data hash code) and `terminal_data` (DDA: the DDOL data; CDA: the
/// unpredictable number) hashed after it.
pub fn sign_dynamic_data(
    icc: &RsaPrivate,
    icc_dynamic_data: &[u8],
    terminal_data: &[u8],
) -> Result<Vec<u8>, EmvError> {
    let n = icc.public().len();
    let ldd = icc_dynamic_data.len();
    if ldd + 25 > n || ldd > 255 {
        return Err(fail(
            "signed dynamic application data",
            "dynamic data too long",
        ));
    }
    let mut body = vec![0x05, SHA1, ldd as u8];
    body.extend_from_slice(icc_dynamic_data);
    body.resize(n - 22, 0xBB);
    sign(icc, &body, &[terminal_data])
}

/// Recovers and checks `9F4B`; returns the ICC dynamic data.
pub fn verify_dynamic_data(
    icc: &RsaPublic,
    sdad: &[u8],
    terminal_data: &[u8],
) -> Result<Vec<u8>, EmvError> {
    let what = "signed dynamic application data";
    let data = recover(icc, what, sdad)?;
    if data.get(1..3) != Some(&[0x05, SHA1][..]) {
        return Err(fail(what, "format is not 05 or hash algorithm not SHA-1"));
    }
    check_hash(&data, what, &[terminal_data])?;
    let ldd = usize::from(*data.get(3).ok_or_else(|| fail(what, "too short"))?);
    data.get(4..4 + ldd)
        .filter(|_| 4 + ldd <= data.len() - 21)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| fail(what, "dynamic data length runs past the hash"))
}

/// CDA: the ICC dynamic data of a GENERATE AC answer: ICC dynamic number (with its length
/// byte), CID, AC and the transaction data hash code.
pub fn cda_dynamic_data(dynamic_number: &[u8], cid: u8, ac: &[u8; 8], tdhc: &[u8; 20]) -> Vec<u8> {
    let mut d = vec![dynamic_number.len() as u8];
    d.extend_from_slice(dynamic_number);
    d.push(cid);
    d.extend_from_slice(ac);
    d.extend_from_slice(tdhc);
    d
}

/// What a CDA signature gave the terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CdaResult {
    pub cid: u8,
    pub ac: [u8; 8],
}

/// Terminal side of CDA: recovers `9F4B`, checks its hash over the unpredictable number,
/// that the CID matches the one in clear and that the transaction data hash code is
/// SHA-1(PDOL values ‖ CDOL values ‖ answer's objects but 9F4B). Returns the cryptogram.
pub fn verify_cda(
    icc: &RsaPublic,
    sdad: &[u8],
    un: &[u8],
    cid: u8,
    tdhc: &[u8; 20],
) -> Result<CdaResult, EmvError> {
    let what = "cda signature";
    let dd = verify_dynamic_data(icc, sdad, un)?;
    let n = usize::from(*dd.first().ok_or_else(|| fail(what, "no dynamic number"))?);
    let rest = dd
        .get(1 + n..)
        .ok_or_else(|| fail(what, "dynamic number too long"))?;
    if rest.len() != 29 {
        return Err(fail(what, "dynamic data is not CID, AC and hash code"));
    }
    if rest[0] != cid {
        return Err(fail(what, "cryptogram information data does not match"));
    }
    if &rest[9..29] != tdhc {
        return Err(fail(what, "transaction data hash code does not match"));
    }
    let mut ac = [0u8; 8];
    ac.copy_from_slice(&rest[1..9]); // ok: rest.len() == 29
    Ok(CdaResult { cid, ac })
}

/// The static data to be authenticated: the records the AFL marks for ODA (for SFI 1 to
/// 10 the value of their `70` template, for SFI 11 to 30 the whole record), then the AIP
/// when the SDA tag list (`9F4A`) names `82`.
pub fn static_data(records: &[(u8, Vec<u8>)], aip: Option<[u8; 2]>) -> Vec<u8> {
    let mut out = Vec::new();
    for (sfi, rec) in records {
        if *sfi <= 10 {
            match poslab_tlv::parse(rec) {
                Ok(items) => match items.first().and_then(|t| t.bytes().map(<[u8]>::to_vec)) {
                    Some(v) => out.extend_from_slice(&v),
                    None => {
                        // a constructed 70: its encoded children
                        if let Some(t) = items.first() {
                            for c in t.children() {
                                out.extend_from_slice(&c.to_bytes());
                            }
                        }
                    }
                },
                Err(_) => out.extend_from_slice(rec),
            }
        } else {
            out.extend_from_slice(rec);
        }
    }
    if let Some(aip) = aip {
        out.extend_from_slice(&aip);
    }
    out
}

/// A terminal's CA public key, by RID and index.
#[derive(Clone, Debug)]
pub struct CaKey {
    pub rid: [u8; 5],
    pub index: u8,
    pub key: RsaPublic,
}

/// The CA and issuer private keys and ICC keys of `fixtures/keys/oda-test-keys.yaml`.
pub mod keyfile {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        #[serde(default)]
        #[allow(dead_code)]
        test_only: bool,
        #[serde(default)]
        ca: Vec<RawKey>,
        #[serde(default)]
        issuers: Vec<RawKey>,
        #[serde(default)]
        icc: Vec<RawKey>,
    }

    /// One RSA key of the file, as written (hex).
    #[derive(Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct RawKey {
        pub name: String,
        #[serde(default)]
        pub label: String,
        pub rid: Option<String>,
        pub index: Option<String>,
        pub expiry: Option<String>,
        pub ca: Option<String>,
        pub issuer: Option<String>,
        pub exponent: String,
        pub modulus: String,
        pub private_exponent: Option<String>,
        pub prime1: Option<String>,
        pub prime2: Option<String>,
    }

    impl std::fmt::Debug for RawKey {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "RawKey({})", self.name)
        }
    }

    fn hex_of(name: &str, field: &str, v: &str) -> Result<Vec<u8>, EmvError> {
        hex::decode(v.trim()).map_err(|_| {
            fail(
                "oda key file",
                format!("{name}.{field}: expected hex bytes"),
            )
        })
    }

    impl RawKey {
        pub fn public(&self) -> Result<RsaPublic, EmvError> {
            RsaPublic::from_parts(
                &hex_of(&self.name, "modulus", &self.modulus)?,
                &hex_of(&self.name, "exponent", &self.exponent)?,
            )
            .map_err(|e| fail("oda key file", format!("{}: {e}", self.name)))
        }

        pub fn private(&self) -> Result<RsaPrivate, EmvError> {
            let need = |v: &Option<String>, field: &str| {
                v.as_deref()
                    .ok_or_else(|| fail("oda key file", format!("{}: no {field}", self.name)))
                    .and_then(|s| hex_of(&self.name, field, s))
            };
            RsaPrivate::from_parts(
                &hex_of(&self.name, "modulus", &self.modulus)?,
                &hex_of(&self.name, "exponent", &self.exponent)?,
                &need(&self.private_exponent, "private_exponent")?,
                [
                    &need(&self.prime1, "prime1")?,
                    &need(&self.prime2, "prime2")?,
                ],
            )
            .map_err(|e| fail("oda key file", format!("{}: {e}", self.name)))
        }

        /// As a terminal's CA key (needs `rid` and `index`).
        pub fn ca_key(&self) -> Result<CaKey, EmvError> {
            let rid = hex_of(&self.name, "rid", self.rid.as_deref().unwrap_or(""))?;
            let index = hex_of(&self.name, "index", self.index.as_deref().unwrap_or(""))?;
            match (<[u8; 5]>::try_from(rid.as_slice()), index.as_slice()) {
                (Ok(rid), [index]) => Ok(CaKey {
                    rid,
                    index: *index,
                    key: self.public()?,
                }),
                _ => Err(fail(
                    "oda key file",
                    format!("{}: rid must be 5 bytes and index 1", self.name),
                )),
            }
        }
    }

    /// The parsed file: keys by name.
    #[derive(Debug)]
    pub struct OdaKeyFile {
        pub ca: Vec<RawKey>,
        pub keys: BTreeMap<String, RawKey>,
    }

    impl OdaKeyFile {
        pub fn parse(text: &str) -> Result<OdaKeyFile, EmvError> {
            let raw: Raw = serde_saphyr::from_str(text)
                .map_err(|e| fail("oda key file", first_line(&e.to_string())))?;
            let mut keys = BTreeMap::new();
            for k in raw.ca.iter().chain(&raw.issuers).chain(&raw.icc) {
                keys.insert(k.name.clone(), k.clone());
            }
            Ok(OdaKeyFile { ca: raw.ca, keys })
        }

        pub fn key(&self, name: &str) -> Result<&RawKey, EmvError> {
            self.keys
                .get(name)
                .ok_or_else(|| fail("oda key file", format!("no key named {name}")))
        }

        /// Every CA public key (what a terminal holds).
        pub fn ca_keys(&self) -> Result<Vec<CaKey>, EmvError> {
            self.ca.iter().map(RawKey::ca_key).collect()
        }
    }

    fn first_line(s: &str) -> String {
        s.lines().next().unwrap_or("").to_string()
    }
}

/// A CA public key's check sum (EMV Book 2, 11.2.2): SHA-1 over its RID, index, modulus
/// and exponent. Terminals keep it with the key and check it when the key is loaded.
pub fn ca_key_checksum(rid: &[u8], index: u8, modulus: &[u8], exponent: &[u8]) -> [u8; 20] {
    sha1(&[rid, &[index], modulus, exponent])
}

/// The test keys file, embedded (the terminal's default CA keys come from it).
pub const TEST_KEYS: &str = include_str!("../../../fixtures/keys/oda-test-keys.yaml");

/// The CA public keys of the test key file.
pub fn test_ca_keys() -> Vec<CaKey> {
    keyfile::OdaKeyFile::parse(TEST_KEYS)
        .and_then(|f| f.ca_keys())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::keyfile::OdaKeyFile;
    use super::*;
    use proptest::prelude::*;

    struct Pki {
        ca: RsaPrivate,
        issuer: RsaPrivate,
        icc: RsaPrivate,
    }

    fn pki() -> &'static Pki {
        static PKI: std::sync::OnceLock<Pki> = std::sync::OnceLock::new();
        PKI.get_or_init(|| {
            let f = OdaKeyFile::parse(TEST_KEYS).unwrap();
            Pki {
                ca: f.key("ca-visa-test").unwrap().private().unwrap(),
                issuer: f.key("issuer-visa-test").unwrap().private().unwrap(),
                icc: f.key("icc-visa-test").unwrap().private().unwrap(),
            }
        })
    }

    fn pan() -> &'static str {
        poslab_sensitive::test_cards::visa()
    }

    #[test]
    fn the_test_key_file_loads_and_holds_two_cas() {
        let f = OdaKeyFile::parse(TEST_KEYS).unwrap();
        let cas = f.ca_keys().unwrap();
        assert_eq!(cas.len(), 2);
        assert_eq!(cas[0].rid, [0xA0, 0, 0, 0, 3]);
        assert_eq!(cas[0].key.len(), 128);
        assert!(f.key("nope").is_err());
        assert!(OdaKeyFile::parse("ca: [{name: x}]").is_err());
    }

    #[test]
    fn certificate_chain_round_trips_and_every_check_bites() {
        let p = pki();
        let static_data = b"\x5A\x08\x47\x61\x73\x90\x01\x01\x00\x10\x82\x02\x1C\x00".to_vec();
        let info = CertInfo {
            subject: "476173",
            expiry: [0x12, 0x29],
            serial: [0, 0, 1],
        };
        let (icert, irem) = sign_certificate(&p.ca, 0x02, info, p.issuer.public(), &[]).unwrap();
        assert_eq!(icert.len(), 128);
        assert_eq!(irem.len(), 112 - (128 - 36));
        let exp = p.issuer.public().exponent();
        let issuer =
            recover_certificate(p.ca.public(), 0x02, &icert, &irem, &exp, &[], pan(), 2611)
                .unwrap();
        assert_eq!(&issuer, p.issuer.public());
        // expired, wrong pan(), flipped byte, wrong remainder
        let expired =
            recover_certificate(p.ca.public(), 0x02, &icert, &irem, &exp, &[], pan(), 3001);
        assert!(expired.unwrap_err().to_string().contains("expired"));
        let other = recover_certificate(
            p.ca.public(),
            0x02,
            &icert,
            &irem,
            &exp,
            &[],
            poslab_sensitive::test_cards::mastercard(),
            2611,
        );
        assert!(other.unwrap_err().to_string().contains("identifier"));
        let mut bad = icert.clone();
        bad[40] ^= 1;
        assert!(
            recover_certificate(p.ca.public(), 0x02, &bad, &irem, &exp, &[], pan(), 2611).is_err()
        );
        let mut rem = irem.clone();
        rem[0] ^= 1;
        let e = recover_certificate(p.ca.public(), 0x02, &icert, &rem, &exp, &[], pan(), 2611);
        assert!(e.unwrap_err().to_string().contains("hash"));

        // ICC certificate, hash over the static data
        let info = CertInfo {
            subject: pan(),
            expiry: [0x12, 0x28],
            serial: [0, 0, 2],
        };
        let (ccert, crem) =
            sign_certificate(&p.issuer, 0x04, info, p.icc.public(), &static_data).unwrap();
        let cexp = p.icc.public().exponent();
        let recover = |data: &[u8], pan: &str| {
            recover_certificate(&issuer, 0x04, &ccert, &crem, &cexp, data, pan, 2611)
        };
        let icc = recover(&static_data, pan()).unwrap();
        assert_eq!(&icc, p.icc.public());
        let mut changed = static_data.clone();
        changed[3] ^= 1;
        assert!(recover(&changed, pan()).is_err());
        let other_pan = format!("{}1", &pan()[..pan().len() - 1]);
        assert!(recover(&static_data, &other_pan).is_err());

        // SDA
        let ssad = sign_static_data(&p.issuer, [0xDA, 0xC1], &static_data).unwrap();
        assert_eq!(
            verify_static_data(&issuer, &ssad, &static_data).unwrap(),
            [0xDA, 0xC1]
        );
        assert!(verify_static_data(&issuer, &ssad, &changed).is_err());

        // DDA
        let dyn_data = [4u8, 0x12, 0x34, 0x56, 0x78];
        let un = [9u8, 8, 7, 6];
        let sdad = sign_dynamic_data(&p.icc, &dyn_data, &un).unwrap();
        assert_eq!(verify_dynamic_data(&icc, &sdad, &un).unwrap(), dyn_data);
        assert!(verify_dynamic_data(&icc, &sdad, &[9, 8, 7, 5]).is_err());
        assert!(verify_dynamic_data(&issuer, &ssad, &un).is_err());

        // CDA
        let tdhc = sha1(&[b"pdol", b"cdol", b"answer"]);
        let ac = [0xAC; 8];
        let cda =
            sign_dynamic_data(&p.icc, &cda_dynamic_data(&[1, 2], 0x80, &ac, &tdhc), &un).unwrap();
        assert_eq!(
            verify_cda(&icc, &cda, &un, 0x80, &tdhc).unwrap(),
            CdaResult { cid: 0x80, ac }
        );
        assert!(verify_cda(&icc, &cda, &un, 0x40, &tdhc).is_err());
        assert!(verify_cda(&icc, &cda, &un, 0x80, &[0; 20]).is_err());
    }

    #[test]
    fn static_data_takes_template_values_for_low_sfis() {
        let rec = [0x70, 0x04, 0x5A, 0x02, 0x12, 0x34];
        assert_eq!(
            static_data(&[(2, rec.to_vec()), (11, rec.to_vec())], Some([0x1C, 0])),
            [&rec[2..], &rec[..], &[0x1C, 0][..]].concat()
        );
    }

    proptest! {
        #[test]
        fn recovering_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..140)) {
            let p = pki();
            let ca = p.ca.public();
            let _ = recover_certificate(ca, 0x02, &bytes, &[], &[3], &[], pan(), 2611);
            let _ = verify_static_data(ca, &bytes, &[]);
            let _ = verify_dynamic_data(ca, &bytes, &[]);
            let _ = verify_cda(ca, &bytes, &[], 0x80, &[0; 20]);
        }

        #[test]
        fn signed_dynamic_data_round_trips(dd in proptest::collection::vec(any::<u8>(), 1..60), un in proptest::collection::vec(any::<u8>(), 0..16)) {
            let p = pki();
            let s = sign_dynamic_data(&p.icc, &dd, &un).unwrap();
            prop_assert_eq!(verify_dynamic_data(p.icc.public(), &s, &un).unwrap(), dd);
        }
    }
}
