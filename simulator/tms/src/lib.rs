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
pub mod config;
pub mod device;
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

    /// TMS configuration text: loading never panics; a config that loads builds a device.
    pub fn config(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(cfg) = crate::config::Config::from_yaml(text, "fuzz.yaml") {
            let _ = crate::device::TmsDevice::new(cfg, 1);
        }
    }

    /// Arbitrary bytes as a session's input, on both sides: the device answers or refuses
    /// every frame without panicking, and a client session reading them as answers ends
    /// cleanly (an event per problem, never a panic).
    pub fn session(data: &[u8]) {
        use std::time::Duration;
        let now = Duration::from_secs(1);
        let mut device = crate::device::TmsDevice::new(crate::config::Config::default(), 1)
            .expect("the default config builds"); // ok: tested
        let mut conn = device.connect("fuzz");
        for chunk in data.chunks(61) {
            let out = device.handle_bytes(&mut conn, chunk, now);
            if out.close {
                break;
            }
        }
        let mut client = crate::client::ClientSession::new(
            crate::client::ClientConfig::new(
                "FUZZ-1",
                "poslab-ref",
                crate::package::test_transport_key(),
            ),
            crate::client::TerminalStatus::default(),
            None,
            now,
        );
        while client.poll_transmit().is_some() {}
        for chunk in data.chunks(97) {
            client.handle_bytes(chunk, now);
            while client.poll_transmit().is_some() {}
            while client.poll_event().is_some() {}
        }
        client.handle_closed(now);
        while client.poll_event().is_some() {}
        assert!(client.is_finished());
    }
}
