//! The crate's one error type.

use thiserror::Error;

/// What went wrong, and where. Never carries key material or image bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TmsError {
    /// A DE 62 sub-element is malformed: `tag` is `??` when the tag itself is unreadable;
    /// `offset` is the byte offset inside DE 62 where the problem starts.
    #[error("DE 62 sub-element {tag} at byte {offset}: {reason}")]
    SubElement {
        tag: String,
        offset: usize,
        reason: String,
    },
    /// A sub-element value cannot be encoded (longer than 999 bytes, bad tag).
    #[error("DE 62 sub-element {tag}: {reason}")]
    Encode { tag: String, reason: String },
    /// A message lacks a field or sub-element the exchange needs, or has a bad one.
    #[error("{exchange}: {field}: {reason}")]
    Field {
        exchange: String,
        field: String,
        reason: String,
    },
    /// The ISO 8583 layer refused a message or a frame.
    #[error("iso 8583: {0}")]
    Iso(String),
    /// A key could not be unwrapped or its check value does not match.
    #[error("key {usage}: {reason}")]
    Key { usage: String, reason: String },
    /// A package failed verification (digest, signature, size).
    #[error("package {id}: {reason}")]
    Package { id: String, reason: String },
    /// The TMS configuration is invalid: `path` names the file and key.
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
}

impl TmsError {
    pub(crate) fn field(
        exchange: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> TmsError {
        TmsError::Field {
            exchange: exchange.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}
