//! The one error type of the fault crate.

/// What was wrong with a toxic, a config file or a framed stream, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    /// The JSON (or YAML) could not be read at all.
    #[error("bad request body: {0}")]
    BadRequestBody(String),
    /// A required field is missing or empty.
    #[error("missing required field: {0}")]
    MissingField(&'static str),
    /// `stream` is neither `upstream` nor `downstream`.
    #[error("stream was invalid, can be either upstream or downstream")]
    InvalidStream(String),
    /// `type` names no toxic this proxy knows.
    #[error("invalid toxic type")]
    InvalidToxicType(String),
    /// An attribute has a value the toxic cannot use.
    #[error("bad request body: toxic {toxic}: attribute {field}: {reason}")]
    InvalidAttribute {
        toxic: String,
        field: &'static str,
        reason: String,
    },
    /// Two toxics of one proxy share a name.
    #[error("toxic already exists")]
    ToxicExists(String),
    /// Two proxies of one config share a name.
    #[error("proxy already exists")]
    ProxyExists(String),
    /// A config file entry is wrong; `path` says which (e.g. `proxies[1].toxics[0]`).
    #[error("{path}: {reason}")]
    Config { path: String, reason: String },
    /// A message framer rejected the bytes at `offset` of the buffered stream.
    #[error("framing error at byte {offset}: {reason}")]
    Framing { offset: usize, reason: String },
}
