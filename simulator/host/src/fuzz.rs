//! Fuzz entry points (cargo-fuzz targets under `fuzz/` are one-liners over these; `cargo
//! test` replays their seed corpora).

use std::time::{Duration, UNIX_EPOCH};

use poslab_iso8583::Spec;

use crate::{Config, Host, RequestContext};

/// A terminal's session as bytes: frames of a 2-byte big-endian length and an
/// `iso87ascii` message. Every message that decodes goes through one [`Host`]; nothing
/// may panic, every answer carries the request's response MTI and re-encodes, and
/// [`crate::redact::masked_hex`] of the input keeps two characters per byte.
pub fn handle(data: &[u8]) {
    assert_eq!(crate::redact::masked_hex(data).len(), data.len() * 2);
    let Some(spec) = Spec::builtin("iso87ascii") else {
        return;
    };
    let mut host = Host::new(Config::default_config());
    let mut rest = data;
    let mut t = 0;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let Some(payload) = tail.get(..len) else {
            break;
        };
        rest = tail.get(len..).unwrap_or_default();
        t += 1;
        let Ok(msg) = spec.unpack(payload) else {
            continue;
        };
        let ctx = RequestContext {
            conn: 1,
            now: UNIX_EPOCH + Duration::from_secs(1_795_000_000 + t),
            tid: None,
        };
        let decision = host.handle(&msg, &ctx);
        if let Some(answer) = &decision.response {
            assert_eq!(answer.mti.as_str(), msg.mti.response().as_str());
            // an answer the host cannot pack is journaled by the adapter, never a panic
            let _ = spec.pack(answer);
        }
    }
}

/// A host configuration file: parses or fails with a located error, never panics.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(config) = Config::from_yaml(text, "fuzz.yaml") {
            let _ = Host::new(config);
        }
    }
}
