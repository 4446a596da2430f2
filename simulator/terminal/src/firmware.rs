//! The terminal's firmware: two image slots and an update that never bricks it.
//!
//! An image is data: a text header (`POSLAB-IMAGE`, id, version, `health=ok|fail` so a
//! test package can be made to fail its health check; `poslab_tms::package::image_header`)
//! then filler bytes. A package is downloaded in chunks into
//! [`Download`] (package id, version, size, SHA-256, signature and the bytes so far), which
//! lives in the terminal's state file, so a broken link or a power loss resumes from the
//! bytes already received. A complete download is verified (length, SHA-256, the Ed25519
//! signature of its manifest under the TMS's test public key, the image header) and
//! installed into the slot that
//! is not the confirmed one; the next boot runs it on *trial*; its health check then
//! commits it, or the terminal rolls back to the confirmed image and boots that again.
//!
//! Every method changes the model in one step, and the terminal saves the whole model
//! atomically after each, so a power loss between any two steps leaves a model that
//! [`Firmware::boot`] turns into a bootable image: the confirmed slot is never written
//! while it is the rollback target, and a trial that was interrupted rolls back.
//!
//! Sans-IO: no files, no clock; the terminal's `src/terminal` does the saving and the
//! restarting.

use poslab_tms::package;
use serde::{Deserialize, Serialize};

/// The largest image the terminal accepts (its inactive slot's size).
pub const MAX_IMAGE: u64 = 1 << 20;

/// What the TMS says about a package before its bytes come.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    /// The TMS's id of the package.
    pub id: String,
    pub version: String,
    /// Length of the image in bytes.
    pub size: u64,
    /// SHA-256 of the image, hex.
    pub sha256: String,
    /// Ed25519 signature of the manifest (`poslab_tms::package::Manifest::signed_bytes`),
    /// hex (64 bytes).
    pub signature: String,
}

impl From<&package::Manifest> for PackageInfo {
    fn from(m: &package::Manifest) -> PackageInfo {
        PackageInfo {
            id: m.id.clone(),
            version: m.version.clone(),
            size: m.size,
            sha256: hex::encode(m.sha256),
            signature: hex::encode(&m.signature),
        }
    }
}

impl PackageInfo {
    /// The TMS's manifest again (for its signature check); `None` when a digest is not hex
    /// of the right length.
    pub fn manifest(&self) -> Option<package::Manifest> {
        Some(package::Manifest {
            id: self.id.clone(),
            version: self.version.clone(),
            size: self.size,
            sha256: hex::decode(self.sha256.trim()).ok()?.try_into().ok()?,
            signature: hex::decode(self.signature.trim()).ok()?,
        })
    }
}

/// An image installed in a slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub version: String,
    /// Its health check passes after its first boot.
    pub healthy: bool,
    /// SHA-256 of the image, hex (empty for the factory image).
    #[serde(default)]
    pub sha256: String,
    /// The package it came from (empty for the factory image).
    #[serde(default)]
    pub package: String,
}

/// A download in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Download {
    pub package: PackageInfo,
    /// The bytes received so far, hex in the state file.
    #[serde(with = "hex::serde")]
    pub data: Vec<u8>,
}

impl Download {
    pub fn received(&self) -> u64 {
        self.data.len() as u64
    }
    pub fn percent(&self) -> u64 {
        (self.received() * 100)
            .checked_div(self.package.size)
            .unwrap_or(100)
    }
}

/// Where the update stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    #[default]
    Idle,
    /// Installed in `slot`; the next boot runs it on trial.
    Staged { slot: u8 },
    /// Running from `slot` on trial: the health check decides.
    Trial { slot: u8 },
}

/// The outcome of the last update, for the next report to the TMS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum UpdateResult {
    /// The new image passed its health check and runs.
    Updated { package: String, version: String },
    /// The package was refused before install (digest, signature, length, header).
    Rejected {
        package: String,
        version: String,
        why: String,
        /// What failed: [`FirmwareError::reason`].
        #[serde(default)]
        reason: String,
    },
    /// The new image failed its health check (or its trial was interrupted); the old one
    /// runs again.
    RolledBack {
        package: String,
        version: String,
        why: String,
    },
}

impl UpdateResult {
    pub fn package(&self) -> &str {
        match self {
            UpdateResult::Updated { package, .. }
            | UpdateResult::Rejected { package, .. }
            | UpdateResult::RolledBack { package, .. } => package,
        }
    }
    /// The install report the TMS gets at the next call-home (9I).
    pub fn report(&self) -> poslab_tms::client::InstallReport {
        use poslab_tms::client::{InstallOutcome, InstallReport};
        match self {
            UpdateResult::Updated { package, version } => InstallReport {
                package: package.clone(),
                version: version.clone(),
                outcome: InstallOutcome::Installed,
                detail: String::new(),
            },
            UpdateResult::Rejected {
                package,
                version,
                why,
                reason,
            } => InstallReport {
                package: package.clone(),
                version: version.clone(),
                outcome: match reason.as_str() {
                    "digest" => InstallOutcome::RejectedDigest,
                    "signature" => InstallOutcome::RejectedSignature,
                    "version" => InstallOutcome::RejectedVersion,
                    _ => InstallOutcome::Failed,
                },
                detail: why.clone(),
            },
            UpdateResult::RolledBack {
                package,
                version,
                why,
            } => InstallReport {
                package: package.clone(),
                version: version.clone(),
                outcome: InstallOutcome::RolledBack,
                detail: why.clone(),
            },
        }
    }

    /// `updated`, `rejected` or `rolled-back`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpdateResult::Updated { .. } => "updated",
            UpdateResult::Rejected { .. } => "rejected",
            UpdateResult::RolledBack { .. } => "rolled-back",
        }
    }
}

/// What a boot started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    pub slot: u8,
    pub image: Image,
    /// The image runs on trial: run its health check, then [`Firmware::health`].
    pub trial: bool,
    /// A trial was interrupted (power loss before the health check): rolled back.
    pub rolled_back: Option<UpdateResult>,
}

/// Why a package or a chunk is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareError {
    #[error("package {id}: size {size} is over the slot's {max} bytes")]
    TooLarge { id: String, size: u64, max: u64 },
    #[error("no download in progress")]
    NoDownload,
    #[error("chunk at offset {offset}: the terminal has {have} bytes")]
    Gap { offset: u64, have: u64 },
    #[error("chunk at offset {offset}, {len} bytes: past the image's {size} bytes")]
    Overrun { offset: u64, len: u64, size: u64 },
    #[error("image is {have} bytes, the package says {size}")]
    Truncated { have: u64, size: u64 },
    #[error("sha-256 mismatch: package says {want}, image has {have}")]
    Digest { want: String, have: String },
    #[error("bad signature: {0}")]
    Signature(String),
    #[error("image header: {0}")]
    Header(String),
    #[error("the image is version {image}, its package says {package}")]
    Version { image: String, package: String },
    #[error("an update is being installed (phase {0})")]
    Busy(String),
}

impl FirmwareError {
    /// What failed, in the words of the install report: `digest` (the bytes are not the
    /// signed ones: wrong SHA-256 or length), `signature`, `version` (the image is not
    /// the version its manifest names), `header` or `other`.
    pub fn reason(&self) -> &'static str {
        match self {
            FirmwareError::Truncated { .. } | FirmwareError::Digest { .. } => "digest",
            FirmwareError::Signature(_) => "signature",
            FirmwareError::Version { .. } => "version",
            FirmwareError::Header(_) => "header",
            _ => "other",
        }
    }
}

/// The two slots and the update in progress: the part of the terminal's state file that
/// is about firmware.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Firmware {
    /// Slot A and slot B.
    pub slots: [Option<Image>; 2],
    /// The slot the terminal runs now.
    pub active: u8,
    /// The last image that passed its health check: what a rollback returns to.
    pub confirmed: u8,
    #[serde(default)]
    pub phase: Phase,
    #[serde(default)]
    pub download: Option<Download>,
    /// The last update's outcome, until the TMS has been told.
    #[serde(default)]
    pub result: Option<UpdateResult>,
}

fn slot_name(slot: u8) -> &'static str {
    if slot == 0 {
        "A"
    } else {
        "B"
    }
}

impl Firmware {
    /// A terminal from the factory: `version` in slot A, slot B empty.
    pub fn factory(version: &str) -> Firmware {
        Firmware {
            slots: [
                Some(Image {
                    version: version.into(),
                    healthy: true,
                    sha256: String::new(),
                    package: String::new(),
                }),
                None,
            ],
            active: 0,
            confirmed: 0,
            phase: Phase::Idle,
            download: None,
            result: None,
        }
    }

    fn slot(&self, slot: u8) -> Option<&Image> {
        self.slots.get(usize::from(slot)).and_then(Option::as_ref)
    }

    /// The image running now.
    pub fn running(&self) -> Option<&Image> {
        self.slot(self.active)
    }

    /// "A" or "B".
    pub fn running_slot(&self) -> &'static str {
        slot_name(self.active)
    }

    /// The version the terminal reports.
    pub fn version(&self) -> String {
        self.running()
            .map(|i| i.version.clone())
            .unwrap_or_else(|| "unknown".into())
    }

    /// Power-up: decides which slot runs. A staged image starts its trial; a trial that
    /// was interrupted (no health check result before the power went) rolls back; a slot
    /// without an image (a damaged state) falls back to the confirmed one.
    pub fn boot(&mut self) -> Boot {
        let mut rolled_back = None;
        match self.phase.clone() {
            Phase::Staged { slot } if self.slot(slot).is_some() && slot != self.confirmed => {
                self.active = slot;
                self.phase = Phase::Trial { slot };
            }
            Phase::Trial { slot } => {
                let image = self.slot(slot).cloned();
                let r = UpdateResult::RolledBack {
                    package: image
                        .as_ref()
                        .map(|i| i.package.clone())
                        .unwrap_or_default(),
                    version: image.map(|i| i.version).unwrap_or_default(),
                    why: "the trial boot was interrupted before its health check".into(),
                };
                self.result = Some(r.clone());
                rolled_back = Some(r);
                self.active = self.confirmed;
                self.phase = Phase::Idle;
            }
            Phase::Staged { .. } | Phase::Idle => {
                self.phase = Phase::Idle;
                if self.running().is_none() {
                    self.active = self.confirmed;
                }
            }
        }
        if self.slot(self.confirmed).is_none() {
            // only a hand-damaged state gets here: run whatever slot has an image
            if let Some(i) = self.slots.iter().position(Option::is_some) {
                self.confirmed = i as u8;
                self.active = i as u8;
            }
        }
        let trial = matches!(self.phase, Phase::Trial { .. });
        Boot {
            slot: self.active,
            image: self.running().cloned().unwrap_or(Image {
                version: "unknown".into(),
                healthy: false,
                sha256: String::new(),
                package: String::new(),
            }),
            trial,
            rolled_back,
        }
    }

    /// The TMS offers `package`: returns the offset to ask for (the bytes already held
    /// when it is the download in progress, else 0 and a new download).
    pub fn offer(&mut self, package: PackageInfo) -> Result<u64, FirmwareError> {
        if self.phase != Phase::Idle {
            return Err(FirmwareError::Busy(format!("{:?}", self.phase)));
        }
        if package.size > MAX_IMAGE {
            return Err(FirmwareError::TooLarge {
                id: package.id,
                size: package.size,
                max: MAX_IMAGE,
            });
        }
        if let Some(d) = &self.download {
            if d.package == package {
                return Ok(d.received());
            }
        }
        self.download = Some(Download {
            package,
            data: Vec::new(),
        });
        Ok(0)
    }

    /// A chunk at `offset`. A chunk the terminal already has (a repeat after a resume) is
    /// ignored; one that leaves a gap or runs past the image is refused. Returns the bytes
    /// held now.
    pub fn chunk(&mut self, offset: u64, bytes: &[u8]) -> Result<u64, FirmwareError> {
        let d = self.download.as_mut().ok_or(FirmwareError::NoDownload)?;
        let have = d.received();
        let len = bytes.len() as u64;
        if offset > have {
            return Err(FirmwareError::Gap { offset, have });
        }
        if offset.saturating_add(len) > d.package.size {
            return Err(FirmwareError::Overrun {
                offset,
                len,
                size: d.package.size,
            });
        }
        let skip = usize::try_from(have - offset).unwrap_or(usize::MAX);
        if let Some(new) = bytes.get(skip..) {
            d.data.extend_from_slice(new);
        }
        Ok(d.received())
    }

    /// Whether every byte of the download is here.
    pub fn complete(&self) -> bool {
        self.download
            .as_ref()
            .is_some_and(|d| d.received() == d.package.size)
    }

    /// Verifies the complete download and installs it into the inactive slot (the next
    /// boot runs it on trial). A refused package is dropped and becomes the result to
    /// report.
    pub fn install(&mut self, public_key_hex: &str) -> Result<Image, FirmwareError> {
        let d = self.download.take().ok_or(FirmwareError::NoDownload)?;
        match verify(&d, public_key_hex) {
            Ok((version, healthy)) => {
                let slot = 1 - self.confirmed.min(1);
                let image = Image {
                    version,
                    healthy,
                    sha256: d.package.sha256.to_ascii_lowercase(),
                    package: d.package.id.clone(),
                };
                if let Some(s) = self.slots.get_mut(usize::from(slot)) {
                    *s = Some(image.clone());
                }
                self.phase = Phase::Staged { slot };
                Ok(image)
            }
            Err(e) => {
                self.result = Some(UpdateResult::Rejected {
                    package: d.package.id.clone(),
                    version: d.package.version.clone(),
                    why: e.to_string(),
                    reason: e.reason().to_string(),
                });
                Err(e)
            }
        }
    }

    /// The health check of an image on trial: commit it, or roll back (the caller then
    /// reboots into the confirmed image). `None` when nothing is on trial.
    pub fn health(&mut self, passed: bool) -> Option<UpdateResult> {
        let Phase::Trial { slot } = self.phase else {
            return None;
        };
        let image = self.slot(slot).cloned()?;
        let r = if passed {
            self.confirmed = slot;
            UpdateResult::Updated {
                package: image.package,
                version: image.version,
            }
        } else {
            self.active = self.confirmed;
            UpdateResult::RolledBack {
                package: image.package,
                version: image.version,
                why: "the new image failed its health check".into(),
            }
        };
        self.phase = Phase::Idle;
        self.result = Some(r.clone());
        Some(r)
    }
}

/// Checks a complete download: its length, its SHA-256, the signature of its manifest,
/// its header. Gives the image's version and whether its health check will pass.
pub fn verify(d: &Download, public_key_hex: &str) -> Result<(String, bool), FirmwareError> {
    if d.received() != d.package.size {
        return Err(FirmwareError::Truncated {
            have: d.received(),
            size: d.package.size,
        });
    }
    let have = hex::encode(package::sha256(&d.data));
    if !have.eq_ignore_ascii_case(d.package.sha256.trim()) {
        return Err(FirmwareError::Digest {
            want: d.package.sha256.clone(),
            have,
        });
    }
    let key = package::verifying_key_from_hex(public_key_hex)
        .map_err(|e| FirmwareError::Signature(format!("public key: {e}")))?;
    let manifest = d.package.manifest().ok_or_else(|| {
        FirmwareError::Signature("manifest digest or signature is not hex".into())
    })?;
    manifest
        .verify_signature(&key)
        .map_err(|_| FirmwareError::Signature("does not verify under the TMS key".into()))?;
    let (_, version, healthy) = package::image_header(&d.data)
        .ok_or_else(|| FirmwareError::Header("no POSLAB-IMAGE header".into()))?;
    if version != d.package.version {
        return Err(FirmwareError::Version {
            image: version,
            package: d.package.version.clone(),
        });
    }
    Ok((version, healthy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(version: &str, health: &str, corrupt: bool) -> (PackageInfo, Vec<u8>) {
        let id = format!("fw-{version}");
        let image = package::generate_image(&id, version, 3000, 5, health == "pass");
        let mut m = package::Manifest::sign(&id, version, &image, &package::test_signing_key());
        if corrupt {
            m.signature[3] ^= 1;
        }
        (PackageInfo::from(&m), image)
    }

    fn key() -> String {
        hex::encode(package::test_verifying_key().to_bytes())
    }

    /// Survives a power loss: the state file round trip, then a boot.
    fn power_loss(fw: &Firmware) -> (Firmware, Boot) {
        let text = serde_json::to_string(fw).unwrap();
        let mut again: Firmware = serde_json::from_str(&text).unwrap();
        let boot = again.boot();
        (again, boot)
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Offer,
        Chunk(usize),
        Install,
        Boot,
        Health(bool),
    }

    /// The whole update as steps: offer, chunks of 1000 bytes, install, reboot, health.
    fn script(size: usize, health: bool) -> Vec<Op> {
        let mut ops = vec![Op::Offer];
        ops.extend((0..size.div_ceil(1000)).map(Op::Chunk));
        ops.extend([Op::Install, Op::Boot, Op::Health(health)]);
        ops
    }

    fn apply(fw: &mut Firmware, op: Op, pkg: &PackageInfo, image: &[u8]) {
        match op {
            Op::Offer => {
                let at = fw.offer(pkg.clone()).unwrap();
                assert!(at <= pkg.size);
            }
            Op::Chunk(i) => {
                let from = i * 1000;
                let to = (from + 1000).min(image.len());
                fw.chunk(from as u64, &image[from..to]).unwrap();
            }
            Op::Install => {
                let _ = fw.install(&key());
            }
            Op::Boot => {
                fw.boot();
            }
            Op::Health(ok) => {
                fw.health(ok);
            }
        }
    }

    #[test]
    fn an_update_that_passes_its_health_check_is_committed() {
        let (pkg, image) = package("2.0.0", "pass", false);
        let mut fw = Firmware::factory("1.0.0");
        for op in script(image.len(), true) {
            apply(&mut fw, op, &pkg, &image);
        }
        assert_eq!(fw.version(), "2.0.0");
        assert_eq!(fw.running_slot(), "B");
        assert_eq!(fw.confirmed, 1);
        assert_eq!(fw.result.as_ref().map(|r| r.kind()), Some("updated"));
        // and survives the next power loss
        let (_, boot) = power_loss(&fw);
        assert_eq!(boot.image.version, "2.0.0");
        assert!(!boot.trial);
        // the next update goes to slot A, leaving B as the rollback target
        let (pkg3, image3) = package("3.0.0", "fail", false);
        for op in script(image3.len(), false) {
            apply(&mut fw, op, &pkg3, &image3);
        }
        assert_eq!(fw.version(), "2.0.0");
        assert_eq!(fw.running_slot(), "B");
        assert_eq!(fw.result.as_ref().map(|r| r.kind()), Some("rolled-back"));
    }

    #[test]
    fn a_failing_health_check_rolls_back_to_the_old_image() {
        let (pkg, image) = package("2.0.0", "fail", false);
        let mut fw = Firmware::factory("1.0.0");
        let ops = script(image.len(), false);
        for op in &ops[..ops.len() - 1] {
            apply(&mut fw, *op, &pkg, &image);
        }
        assert_eq!(fw.version(), "2.0.0", "trial runs the new image");
        let r = fw.health(false).unwrap();
        assert_eq!(r.kind(), "rolled-back");
        let (_, boot) = power_loss(&fw);
        assert_eq!(boot.image.version, "1.0.0");
        assert_eq!(boot.slot, 0);
    }

    #[test]
    fn a_bad_signature_or_digest_is_rejected_and_the_old_image_runs() {
        for (corrupt_sig, corrupt_byte) in [(true, false), (false, true)] {
            let (pkg, mut image) = package("2.0.0", "pass", corrupt_sig);
            if corrupt_byte {
                image[10] ^= 0x20;
            }
            let mut fw = Firmware::factory("1.0.0");
            fw.offer(pkg.clone()).unwrap();
            fw.chunk(0, &image).unwrap();
            assert!(fw.complete());
            let err = fw.install(&key()).unwrap_err();
            if corrupt_sig {
                assert!(matches!(err, FirmwareError::Signature(_)), "{err}");
            } else {
                assert!(matches!(err, FirmwareError::Digest { .. }), "{err}");
            }
            assert_eq!(fw.result.as_ref().map(|r| r.kind()), Some("rejected"));
            assert_eq!(fw.phase, Phase::Idle);
            assert!(fw.download.is_none());
            let (_, boot) = power_loss(&fw);
            assert_eq!(boot.image.version, "1.0.0");
        }
    }

    #[test]
    fn a_download_resumes_from_the_bytes_it_holds() {
        let (pkg, image) = package("2.0.0", "pass", false);
        let mut fw = Firmware::factory("1.0.0");
        assert_eq!(fw.offer(pkg.clone()).unwrap(), 0);
        let half = image.len() / 2;
        fw.chunk(0, &image[..half]).unwrap();
        let (mut fw, boot) = power_loss(&fw);
        assert_eq!(boot.image.version, "1.0.0");
        assert_eq!(fw.download.as_ref().unwrap().percent(), 50);
        // the same package is offered again: resume where it stopped
        assert_eq!(fw.offer(pkg.clone()).unwrap(), half as u64);
        // a repeated chunk overlapping what it holds is taken from where it stops
        fw.chunk(half as u64 - 10, &image[half - 10..]).unwrap();
        assert!(fw.complete());
        assert!(fw.install(&key()).is_ok());
        // a gap or an overrun is refused
        let mut g = Firmware::factory("1");
        g.offer(pkg.clone()).unwrap();
        assert!(matches!(
            g.chunk(5, b"x"),
            Err(FirmwareError::Gap { offset: 5, have: 0 })
        ));
        assert!(matches!(
            g.chunk(0, &vec![0; image.len() + 1]),
            Err(FirmwareError::Overrun { .. })
        ));
        // another package starts afresh
        let (other, _) = package("2.0.1", "pass", false);
        assert_eq!(g.offer(other).unwrap(), 0);
    }

    #[test]
    fn a_truncated_image_or_an_oversized_package_is_refused() {
        let (pkg, image) = package("2.0.0", "pass", false);
        let mut fw = Firmware::factory("1.0.0");
        fw.offer(pkg.clone()).unwrap();
        fw.chunk(0, &image[..100]).unwrap();
        assert!(matches!(
            fw.install(&key()),
            Err(FirmwareError::Truncated { .. })
        ));
        let mut big = pkg;
        big.size = MAX_IMAGE + 1;
        assert!(matches!(fw.offer(big), Err(FirmwareError::TooLarge { .. })));
    }

    /// Power loss after every step of every path (success, failed health check, bad
    /// signature): the terminal always boots an image it has, it is the old or the new
    /// one, and a finished update is never undone by the power loss.
    #[test]
    fn a_power_loss_at_any_step_leaves_a_bootable_image() {
        for (health, corrupt) in [(true, false), (false, false), (true, true)] {
            let (pkg, image) = package("2.0.0", if health { "pass" } else { "fail" }, corrupt);
            let ops = script(image.len(), health);
            for cut in 0..=ops.len() {
                let mut fw = Firmware::factory("1.0.0");
                fw.boot();
                for op in &ops[..cut] {
                    apply(&mut fw, *op, &pkg, &image);
                }
                let (mut after, boot) = power_loss(&fw);
                assert!(
                    boot.image.version == "1.0.0" || boot.image.version == "2.0.0",
                    "cut {cut}: {boot:?}"
                );
                assert!(after.slot(after.confirmed).is_some(), "cut {cut}");
                assert_eq!(
                    after.running().map(|i| &i.version),
                    Some(&boot.image.version)
                );
                if boot.image.version == "2.0.0" && !boot.trial {
                    assert!(
                        health && !corrupt,
                        "cut {cut}: only a healthy image commits"
                    );
                }
                if corrupt || !health {
                    // whatever happens next, it ends on the old image
                    if boot.trial {
                        after.health(health);
                        let (_, b) = power_loss(&after);
                        assert_eq!(b.image.version, "1.0.0", "cut {cut}");
                    }
                }
                // finishing the update after the power loss (offered again: it resumes)
                // ends where the uninterrupted run ends
                if after.phase == Phase::Idle && after.result.is_none() {
                    let mut resumed = after.clone();
                    for op in &ops {
                        apply(&mut resumed, *op, &pkg, &image);
                    }
                    let want = if health && !corrupt { "2.0.0" } else { "1.0.0" };
                    assert_eq!(resumed.version(), want, "cut {cut} resumed");
                }
            }
        }
    }

    #[test]
    fn an_interrupted_trial_rolls_back() {
        let (pkg, image) = package("2.0.0", "pass", false);
        let mut fw = Firmware::factory("1.0.0");
        fw.offer(pkg).unwrap();
        fw.chunk(0, &image).unwrap();
        fw.install(&key()).unwrap();
        let b = fw.boot();
        assert!(b.trial);
        assert_eq!(b.image.version, "2.0.0");
        let (fw, b) = power_loss(&fw);
        assert!(!b.trial);
        assert_eq!(b.image.version, "1.0.0");
        assert_eq!(
            b.rolled_back.as_ref().map(|r| r.kind()),
            Some("rolled-back")
        );
        assert_eq!(fw.result.as_ref().map(|r| r.kind()), Some("rolled-back"));
    }

    #[test]
    fn a_package_whose_header_lies_about_its_version_is_refused() {
        let image = package::generate_image("fw", "9.9.9", 500, 1, true);
        let m = package::Manifest::sign("fw", "2.0.0", &image, &package::test_signing_key());
        let mut fw = Firmware::factory("1.0.0");
        fw.offer(PackageInfo::from(&m)).unwrap();
        fw.chunk(0, &image).unwrap();
        let e = fw.install(&key()).unwrap_err();
        assert!(matches!(e, FirmwareError::Version { .. }), "{e}");
        assert_eq!(e.reason(), "version");
        assert!(
            matches!(&fw.result, Some(UpdateResult::Rejected { reason, .. }) if reason == "version"),
            "{:?}",
            fw.result
        );
        let info: PackageInfo =
            serde_json::from_str(&serde_json::to_string(&PackageInfo::from(&m)).unwrap()).unwrap();
        assert_eq!(info.manifest(), Some(m));
    }

    proptest::proptest! {
        #[test]
        fn any_chunk_sequence_keeps_a_bootable_image(chunks in proptest::collection::vec((0u64..5000, 0usize..2000), 0..20)) {
            let (pkg, image) = package("2.0.0", "pass", false);
            let mut fw = Firmware::factory("1.0.0");
            fw.offer(pkg).unwrap();
            for (offset, len) in chunks {
                let from = (offset as usize).min(image.len());
                let to = (from + len).min(image.len());
                let _ = fw.chunk(offset, &image[from..to]);
                let held = fw.download.as_ref().unwrap().data.clone();
                proptest::prop_assert_eq!(&held[..], &image[..held.len()]);
            }
            let (_, boot) = power_loss(&fw);
            proptest::prop_assert_eq!(boot.image.version, "1.0.0");
        }
    }
}
