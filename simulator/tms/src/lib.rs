//! The terminal management system (TMS), sans-IO: the wire protocol, the client session a
//! terminal drives, and the TMS device a server drives. No sockets, no clock, no RNG:
//! bytes and `now` (a `Duration` since any epoch) in, bytes, events and journal entries out.
//!
//! - [`protocol`]: the `tms` ISO 8583 dialect (fixtures/specs/tms.yaml), the exchanges
//!   (`9D` call-home, `9A` master key, `9B` session keys, `9G` PIN key, `9E` DUKPT, `9C`
//!   parameters, `9F` firmware chunk, `9I` install report, `9L` log upload, `9K` keys
//!   destroyed) with typed builders and parsers both ways.
//! - [`subel`]: the DE 62 sub-element codec (`TT LLL value`).
//! - [`client`]: [`client::ClientSession`], one maintenance session as a state machine.
//! - [`package`]: firmware manifests, SHA-256 + Ed25519 (TEST key) signing and verifying,
//!   generated test images.
//! - [`params`]: the parameter set a terminal downloads.
//! - [`config`] and [`device`]: the TMS itself ([`device::TmsDevice`]).
//!
//! The protocol and the client API are described for terminal authors in the crate docs
//! of each module and in README.md ("The terminal management system").

pub mod client;
mod error;
pub mod package;
pub mod params;
pub mod protocol;
pub mod subel;

pub use error::TmsError;
pub use protocol::{spec, Exchange, KeyUsage, Order};

/// Entry points for the cargo-fuzz targets (fuzz/fuzz_targets/tms_*.rs) and the tests that
/// replay their corpora. Each panics only when an invariant breaks.
pub mod fuzz {
    /// DE 62 sub-elements: decode never panics; what decodes re-encodes byte for byte.
    pub fn subelements(data: &[u8]) {
        if let Ok(s) = crate::subel::decode(data) {
            assert_eq!(s.encode(), data, "decode/encode is not the identity");
            let _ = format!("{s:?}");
        }
    }
}
