//! The hook for message security: MAC, PIN and ARQC verification, key exchange.
//!
//! The host calls a [`Security`] for every request it accepts (after provisioning checks)
//! and for every answer it sends. [`NoSecurity`] accepts everything and sends no keys; a
//! module built on poslab-crypto plugs in with [`crate::Host::set_security`].

use poslab_iso8583::{Message, Spec};

use crate::config::{ResponseCode, SecurityConfig};

pub trait Security: Send {
    /// Checks a request (MAC in DE 64/128, PIN block in DE 52, ARQC in DE 55). `Err(code)`
    /// refuses it with that response code (e.g. `A0` MAC failure, `55` wrong PIN).
    fn verify(&mut self, _tid: &str, _request: &Message) -> Result<(), ResponseCode> {
        Ok(())
    }

    /// Answers a key-exchange request (0800 with DE 70 = 101 or 161): the fields to put
    /// in the 0810 (new session keys under the terminal's master key, with their check
    /// values). Empty: acknowledged without keys.
    fn key_exchange(
        &mut self,
        _tid: &str,
        _request: &Message,
    ) -> Result<Vec<(u16, String)>, ResponseCode> {
        Ok(Vec::new())
    }

    /// Signs an answer before it is sent (sets its MAC).
    fn sign(&mut self, _tid: &str, _response: &mut Message) {}

    /// Checks a request with the bytes it came in (`wire`: MTI onwards, framing removed),
    /// so that its MAC is checked over those very bytes. Default: [`Security::verify`].
    fn verify_wire(
        &mut self,
        tid: &str,
        request: &Message,
        _wire: Option<&[u8]>,
    ) -> Result<(), ResponseCode> {
        self.verify(tid, request)
    }

    /// The dialect messages are packed in (MACs cover the packed bytes).
    fn set_spec(&mut self, _spec: &Spec) {}

    /// Applies the host configuration's `security` section.
    fn configure(&mut self, _config: &SecurityConfig) {}

    /// What the last checks did, for the journal (KCVs, translations; never keys or PINs).
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Accepts every request, sends no keys, signs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSecurity;

impl Security for NoSecurity {}
