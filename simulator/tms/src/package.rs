//! Firmware and application packages: the manifest, its Ed25519 signature under a TEST
//! key, verification, and generated test images.
//!
//! The signature covers [`Manifest::signed_bytes`]: `poslab-tms-package-v1`, the id, the
//! version, the size and the lowercase hex SHA-256 of the image, one per line. Binding the
//! version and size stops a valid image from being replayed under another version (TUF's
//! mix-and-match) and a truncated image from passing.
//!
//! The key pair is `fixtures/tms/test-signing-key.yaml` (TEST ONLY, built in); the
//! transport key a terminal holds from the factory is `fixtures/tms/test-transport-key.yaml`.

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use poslab_crypto::{Key, KeyFile};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::TmsError;

/// The TEST signing key pair file.
pub const TEST_SIGNING_KEY_YAML: &str = include_str!("../../../fixtures/tms/test-signing-key.yaml");
/// The TEST transport key file (a poslab key file with `ttk`).
pub const TEST_TRANSPORT_KEY_YAML: &str =
    include_str!("../../../fixtures/tms/test-transport-key.yaml");

/// What a terminal is offered: enough to download, verify and report.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct Manifest {
    pub id: String,
    pub version: String,
    pub size: u64,
    #[serde(serialize_with = "ser_hex")]
    pub sha256: [u8; 32],
    #[serde(serialize_with = "ser_hex")]
    pub signature: Vec<u8>,
}

fn ser_hex<S: serde::Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(v))
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Manifest({} {} {} bytes sha256 {}…)",
            self.id,
            self.version,
            self.size,
            hex::encode(self.sha256.get(..6).unwrap_or(&[]))
        )
    }
}

impl Manifest {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "poslab-tms-package-v1\n{}\n{}\n{}\n{}",
            self.id,
            self.version,
            self.size,
            hex::encode(self.sha256)
        )
        .into_bytes()
    }

    /// A signed manifest for an image.
    pub fn sign(id: &str, version: &str, image: &[u8], key: &SigningKey) -> Manifest {
        let mut m = Manifest {
            id: id.to_string(),
            version: version.to_string(),
            size: image.len() as u64,
            sha256: Sha256::digest(image).into(),
            signature: Vec::new(),
        };
        m.signature = key.sign(&m.signed_bytes()).to_bytes().to_vec();
        m
    }

    /// Checks the manifest's signature only.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), TmsError> {
        let err = |r: &str| TmsError::Package {
            id: self.id.clone(),
            reason: r.into(),
        };
        let sig = ed25519_dalek::Signature::from_slice(&self.signature)
            .map_err(|_| err("signature is not 64 bytes"))?;
        key.verify_strict(&self.signed_bytes(), &sig)
            .map_err(|_| err("bad signature"))
    }
}

/// Verifies a downloaded image against its manifest: size, SHA-256, then the signature.
/// This is what a terminal must call before installing.
pub fn verify(manifest: &Manifest, image: &[u8], key: &VerifyingKey) -> Result<(), TmsError> {
    let err = |r: String| TmsError::Package {
        id: manifest.id.clone(),
        reason: r,
    };
    if image.len() as u64 != manifest.size {
        return Err(err(format!(
            "image is {} bytes, manifest says {}",
            image.len(),
            manifest.size
        )));
    }
    let digest: [u8; 32] = Sha256::digest(image).into();
    if digest != manifest.sha256 {
        return Err(err("sha-256 mismatch".into()));
    }
    manifest.verify_signature(key)
}

/// SHA-256 of bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigningKey {
    test_only: bool,
    #[serde(default)]
    #[allow(dead_code)]
    label: String,
    algorithm: String,
    secret: String,
    public: String,
}

/// An Ed25519 key pair file (`test_only: true`, `algorithm: ed25519`, `secret` and
/// `public` as hex). The public key must match the secret.
pub fn signing_key_from_yaml(text: &str, origin: &str) -> Result<SigningKey, TmsError> {
    let err = |r: String| TmsError::Config {
        path: origin.to_string(),
        reason: r,
    };
    let raw: RawSigningKey = serde_saphyr::from_str(text).map_err(|e| {
        err(e
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid yaml")
            .to_string())
    })?;
    if !raw.test_only {
        return Err(err(
            "signing key files must declare `test_only: true`".into()
        ));
    }
    if raw.algorithm != "ed25519" {
        return Err(err(format!("algorithm {:?}: only ed25519", raw.algorithm)));
    }
    let secret: [u8; 32] = hex::decode(raw.secret.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| err("secret: 64 hex digits expected".into()))?;
    let key = SigningKey::from_bytes(&secret);
    let public = verifying_key_from_hex(&raw.public)
        .map_err(|_| err("public: 64 hex digits of a valid key expected".into()))?;
    if key.verifying_key() != public {
        return Err(err("public does not match secret".into()));
    }
    Ok(key)
}

/// A public key from 64 hex digits.
pub fn verifying_key_from_hex(text: &str) -> Result<VerifyingKey, TmsError> {
    let err = || TmsError::Config {
        path: "public key".into(),
        reason: "64 hex digits of a valid ed25519 key expected".into(),
    };
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(err)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| err())
}

/// The built-in TEST signing key (fixtures/tms/test-signing-key.yaml).
pub fn test_signing_key() -> SigningKey {
    signing_key_from_yaml(TEST_SIGNING_KEY_YAML, "builtin:test-signing-key.yaml")
        .expect("the built-in test signing key loads") // ok: fixed text, unit-tested
}

/// The built-in TEST public key terminals verify packages with.
pub fn test_verifying_key() -> VerifyingKey {
    test_signing_key().verifying_key()
}

/// The built-in TEST transport key (`ttk` of fixtures/tms/test-transport-key.yaml).
pub fn test_transport_key() -> Key {
    KeyFile::parse(TEST_TRANSPORT_KEY_YAML)
        .and_then(|f| f.key("ttk").cloned())
        .expect("the built-in transport key loads") // ok: fixed text, unit-tested
}

/// A generated test image: a text header the reference terminal reads
/// (`POSLAB-IMAGE\nid=..\nversion=..\nhealth=ok|fail\n\n`), then `size` minus the header
/// bytes of deterministic filler (xorshift from `seed`). `health: fail` makes an image whose
/// health check fails after the reboot (the rollback rehearsal).
pub fn generate_image(id: &str, version: &str, size: usize, seed: u64, healthy: bool) -> Vec<u8> {
    let header = format!(
        "POSLAB-IMAGE\nid={id}\nversion={version}\nhealth={}\n\n",
        if healthy { "ok" } else { "fail" }
    );
    let mut out = header.into_bytes();
    let mut x = seed | 1;
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push((x >> 24) as u8);
    }
    out
}

/// The header of a generated image, if it is one: (`id`, `version`, healthy).
pub fn image_header(image: &[u8]) -> Option<(String, String, bool)> {
    let end = image.windows(2).position(|w| w == b"\n\n")?;
    let text = std::str::from_utf8(image.get(..end)?).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "POSLAB-IMAGE" {
        return None;
    }
    let (mut id, mut version, mut health) = (None, None, None);
    for l in lines {
        match l.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("version", v)) => version = Some(v.to_string()),
            Some(("health", v)) => health = Some(v == "ok"),
            _ => {}
        }
    }
    Some((id?, version?, health.unwrap_or(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_keys_load() {
        let k = test_signing_key();
        assert_eq!(k.verifying_key(), test_verifying_key());
        let ttk = test_transport_key();
        assert_eq!(ttk.algorithm().name(), "tdes2");
    }

    #[test]
    fn sign_verify_and_every_tamper_is_caught() {
        let key = test_signing_key();
        let img = generate_image("app", "1.1.0", 10_000, 7, true);
        assert_eq!(img.len(), 10_000);
        assert_eq!(
            image_header(&img),
            Some(("app".into(), "1.1.0".into(), true))
        );
        let m = Manifest::sign("app", "1.1.0", &img, &key);
        let vk = key.verifying_key();
        verify(&m, &img, &vk).unwrap();
        let mut bad = img.clone();
        bad[5000] ^= 1;
        assert!(verify(&m, &bad, &vk)
            .unwrap_err()
            .to_string()
            .contains("sha-256"));
        assert!(verify(&m, &img[..9000], &vk)
            .unwrap_err()
            .to_string()
            .contains("9000 bytes"));
        let mut m2 = m.clone();
        m2.signature[3] ^= 1;
        assert_eq!(
            verify(&m2, &img, &vk).unwrap_err().to_string(),
            "package app: bad signature"
        );
        let mut m3 = m.clone();
        m3.version = "9.9.9".into();
        assert!(verify(&m3, &img, &vk).is_err());
        let other = SigningKey::from_bytes(&[9u8; 32]);
        assert!(verify(&m, &img, &other.verifying_key()).is_err());
    }

    #[test]
    fn key_file_errors() {
        assert!(signing_key_from_yaml(
            "test_only: false\nalgorithm: ed25519\nsecret: 00\npublic: 00\n",
            "x"
        )
        .is_err());
        let e = signing_key_from_yaml(
            &TEST_SIGNING_KEY_YAML
                .replace("public: ", "public: 00")
                .replace("public: 00", "public: 1"),
            "x",
        );
        assert!(e.is_err());
    }
}
