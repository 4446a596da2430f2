//! EMV card side: APDUs, the vpcd wire protocol, card profiles and the card as a state machine. Sans-IO.
//!
//! Layers, bottom up:
//! - [`vpcd`]: framing of vsmartcard's virtual reader protocol (2-byte length + payload).
//! - [`apdu`]: ISO 7816-4 command and response APDUs; [`apdu::StatusWord`] is open.
//! - [`profile`]: a test card described in YAML ([`profile::CardProfile`]).
//! - [`card`]: the card ([`card::Card`]): answers APDUs as an EMV card does, with real
//!   application cryptograms from the profile's test issuer key (via `poslab-crypto`);
//!   [`card::VpcdCard`] puts it on the vpcd wire.
//! - [`reader`]: the reader side ([`reader::Reader`]): card insertion, removal, tap and
//!   swipe, power on and ATR, and APDU exchange over the vpcd wire.
//! - [`magstripe`]: track 2 and its EMV equivalent.
//! - [`oda`]: offline data authentication (SDA, DDA, CDA): certificates and signatures,
//!   card and terminal sides, and the test PKI of `fixtures/keys/oda-test-keys.yaml`.
//!
//! Nothing here does I/O: bytes in, bytes out. The tokio adapters are in `poslab::card`.

pub mod apdu;
pub mod card;
pub mod fuzz;
pub mod magstripe;
pub mod oda;
pub mod oda_terminal;
pub mod profile;
pub mod reader;
pub mod vpcd;

pub use apdu::{Command, Response, StatusWord};
pub use card::{Card, CardState, VpcdCard};
pub use profile::{CardProfile, Interface};
pub use reader::{Reader, ReaderError, ReaderEvent, ReaderOutput};

/// Everything that can go wrong in this crate. Messages never show card data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmvError {
    #[error("bad apdu length at byte {offset}: {detail}")]
    ApduLength { offset: usize, detail: String },
    #[error("cannot encode apdu: {0}")]
    ApduEncode(String),
    #[error("vpcd payload of {0} bytes does not fit a 2-byte length")]
    VpcdTooLong(usize),
    #[error("{source_name}:{line}:{column}: {message}")]
    Profile {
        source_name: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("bad track 2: {0}")]
    Track2(String),
    #[error("bad tlv in {context}: {detail}")]
    Tlv { context: String, detail: String },
    #[error("cryptography failed: {0}")]
    Crypto(String),
    /// Offline data authentication: `what` names the object (certificate, signature),
    /// `reason` the check that failed.
    #[error("{what}: {reason}")]
    Oda { what: &'static str, reason: String },
}
