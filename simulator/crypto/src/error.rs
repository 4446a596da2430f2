//! The one error type of this crate. Messages are lower-case, carry no trailing period,
//! and never include key, PIN, PIN block or cryptogram material: only lengths, formats,
//! algorithm names, KCVs (which are public) and byte/nibble offsets.

use thiserror::Error;

/// Everything that can go wrong in `poslab-crypto`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// A key had a length the algorithm does not take.
    #[error("wrong key length for {algorithm}: {len} bytes (expected {expected})")]
    WrongKeyLength {
        algorithm: &'static str,
        len: usize,
        expected: &'static str,
    },
    /// The operation needs another kind of key (e.g. a TDES key for retail MAC).
    #[error("wrong key algorithm: {operation} needs {expected}, got {got}")]
    WrongKeyAlgorithm {
        operation: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    /// Data for a block operation was not a whole number of blocks.
    #[error("data length {len} is not a multiple of the {block}-byte block")]
    NotBlockAligned { len: usize, block: usize },
    /// An input had the wrong length (ARQC, CSU, IV, PIN block, ...).
    #[error("wrong length for {what}: {len} bytes (expected {expected})")]
    WrongLength {
        what: &'static str,
        len: usize,
        expected: &'static str,
    },
    /// A hexadecimal string did not parse.
    #[error("bad hex in {what} at character {offset}")]
    BadHex { what: &'static str, offset: usize },
    /// A PIN was not 4 to 12 decimal digits.
    #[error("bad pin: {reason}")]
    BadPin { reason: &'static str },
    /// A PAN was not usable for a PIN block or key derivation.
    #[error("bad pan: {reason}")]
    BadPan { reason: &'static str },
    /// A PIN block did not decode; `nibble` is the offset (in nibbles) of the clear block.
    #[error("bad pin block (format {format}) at nibble {nibble}: {reason}")]
    BadPinBlock {
        format: &'static str,
        nibble: usize,
        reason: &'static str,
    },
    /// A key serial number was malformed or unusable.
    #[error("bad ksn: {reason}")]
    BadKsn { reason: &'static str },
    /// The DUKPT transaction counter is used up: the device must be re-keyed.
    #[error("dukpt counter exhausted: the device must be re-keyed")]
    CounterExhausted,
    /// A key check value did not match.
    #[error("kcv mismatch: expected {expected}, computed {computed}")]
    KcvMismatch { expected: String, computed: String },
    /// A parameter was out of range (MAC length, PSN, ...).
    #[error("bad parameter {what}: {reason}")]
    BadParameter {
        what: &'static str,
        reason: &'static str,
    },
    /// A PIN block did not decode under the source key of a translation (wrong key,
    /// wrong PAN or a garbled block); the key is named by its KCV only.
    #[error("pin block rejected under the source key (kcv {kcv})")]
    PinBlockRejected { kcv: String },
    /// An HSM refuses this translation (e.g. into format 2, or a PAN-bound block into 1).
    #[error("pin translation refused ({from} -> {to}): {reason}")]
    TranslationRefused {
        from: &'static str,
        to: &'static str,
        reason: &'static str,
    },
    /// An RSA public-key operation or certificate failed (EMV offline data authentication,
    /// enciphered offline PIN); `what` names the object, `reason` what was wrong.
    #[error("{what}: {reason}")]
    Rsa { what: &'static str, reason: String },
    /// The key file did not parse or a key in it is unusable; `path` names the entry.
    #[error("key file: {path}: {reason}")]
    KeyFile { path: String, reason: String },
}

/// Shorthand used throughout the crate.
pub type Result<T, E = CryptoError> = std::result::Result<T, E>;
