//! The terminal's link to the terminal management system (TMS): dials like the host link
//! (one connection per maintenance session, dropped when the session ends), and drives a
//! sans-IO [`ClientSession`] of `poslab-tms` over it: what the session wants sent is
//! written, what arrives is handed to it, its deadline is the read timeout. The core
//! ([`super::flow`]) acts on the session's events (keys, parameters, firmware chunks, log
//! requests, decommissioning) and answers it.
//!
//! [`TmsState`] is what the TMS gave the terminal, kept in its state file: its identity,
//! its master key (under the factory transport key, never in clear), its parameter set,
//! and whether it has been decommissioned.

use std::time::Duration;

use poslab_crypto::{unwrap_key, wrap_key, Key, KeyAlgorithm, KeyUnderKey};
use poslab_tms::client::{ClientSession, Event};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::journal::Journal;
use crate::link::{BoxIo, Dialer};

/// How long the terminal waits for the TMS to accept a connection.
const CONNECT: Duration = Duration::from_secs(10);

/// The terminal's factory identity for the TMS.
#[derive(Clone)]
pub struct TmsConfig {
    /// Serial number (how the TMS knows the device before it has a TID).
    pub serial: String,
    pub model: String,
    /// The firmware version in slot A from the factory.
    pub factory_version: String,
    /// Transport key injected at the factory (the TMS sends the master key under it).
    pub transport_key: Key,
    /// The TMS's package signing public key (Ed25519, hex).
    pub firmware_key: String,
    /// A master key was loaded locally (a key-loading device): it wins over the TMS's.
    pub master_key_injected: bool,
    /// Bytes asked per firmware chunk.
    pub chunk_size: usize,
}

impl Default for TmsConfig {
    /// The bench terminal: serial `PT-0001`, model `poslab-ref`, firmware 1.0.0, the TEST
    /// transport and signing keys.
    fn default() -> Self {
        TmsConfig {
            serial: "PT-0001".into(),
            model: "poslab-ref".into(),
            factory_version: "1.0.0".into(),
            transport_key: poslab_tms::package::test_transport_key(),
            firmware_key: hex::encode(poslab_tms::package::test_verifying_key().to_bytes()),
            master_key_injected: false,
            chunk_size: 4096,
        }
    }
}

/// What the TMS gave the terminal (survives power loss, in the state file).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TmsState {
    /// Identity the TMS assigned at call-home.
    pub tid: Option<String>,
    pub mid: Option<String>,
    /// The terminal master key from the TMS, under the transport key.
    pub master_key: Option<StoredKey>,
    /// The parameter set from the TMS (merged over the terminal's own parameters).
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    pub params_version: Option<String>,
    /// The TMS ordered the keys destroyed: the terminal sells nothing any more.
    pub decommissioned: bool,
    /// Sessions run, and how the last one ended.
    pub sessions: u32,
    pub last_session: Option<String>,
}

/// A key under another key (algorithm, cryptogram, KCV of the clear key; hex).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredKey {
    pub algorithm: String,
    pub cryptogram: String,
    pub kcv: String,
}

impl StoredKey {
    /// `key` under `kek`.
    pub fn wrap(kek: &Key, key: &Key) -> anyhow::Result<StoredKey> {
        let w = wrap_key(kek, key).map_err(|e| anyhow::anyhow!("wrapping a key: {e}"))?;
        Ok(StoredKey {
            algorithm: key.algorithm().name().to_string(),
            cryptogram: w.cryptogram_hex(),
            kcv: hex::encode_upper(key.kcv().as_bytes()),
        })
    }

    /// The clear key again (its KCV checked).
    pub fn unwrap(&self, kek: &Key) -> anyhow::Result<Key> {
        let alg = KeyAlgorithm::from_name(&self.algorithm)
            .ok_or_else(|| anyhow::anyhow!("stored key: unknown algorithm {}", self.algorithm))?;
        let w = KeyUnderKey::from_hex(alg, &self.cryptogram, &self.kcv)
            .map_err(|e| anyhow::anyhow!("stored key: {e}"))?;
        unwrap_key(kek, &w).map_err(|e| anyhow::anyhow!("stored key: {e}"))
    }
}

/// The link: a dialer, and the connection of the session running.
pub struct TmsLink {
    dialer: Dialer,
    conn: Option<BoxIo>,
    journal: Journal,
    buf: Vec<u8>,
}

impl TmsLink {
    pub fn new(dialer: Dialer, journal: Journal) -> TmsLink {
        TmsLink {
            dialer,
            conn: None,
            journal,
            buf: vec![0; 16 * 1024],
        }
    }

    /// Where it dials (for the journal).
    pub fn describe(&self) -> String {
        self.dialer.describe().to_string()
    }

    /// Runs the session until it has an event for the terminal; `None` once it is over
    /// (the connection is then closed). `epoch` is the session's time origin (`now` of
    /// every input is the time since it).
    pub async fn next_event(&mut self, s: &mut ClientSession, epoch: Instant) -> Option<Event> {
        loop {
            if let Some(e) = s.poll_event() {
                return Some(e);
            }
            if s.is_finished() {
                self.conn = None;
                return None;
            }
            let mut sent = false;
            while let Some(frame) = s.poll_transmit() {
                sent = true;
                if self.conn.is_none() {
                    match tokio::time::timeout(CONNECT, self.dialer.dial()).await {
                        Ok(Ok(c)) => self.conn = Some(c),
                        Ok(Err(e)) => {
                            self.closed(s, epoch, &format!("cannot reach the TMS: {e}"));
                            break;
                        }
                        Err(_) => {
                            self.closed(s, epoch, "cannot reach the TMS: connect timed out");
                            break;
                        }
                    }
                }
                let Some(conn) = self.conn.as_mut() else {
                    break;
                };
                let written = async {
                    conn.write_all(&frame).await?;
                    conn.flush().await
                }
                .await;
                if let Err(e) = written {
                    self.closed(s, epoch, &format!("the TMS link failed: {e}"));
                    break;
                }
            }
            if s.poll_timeout().is_none() {
                // the session waits for nothing from the TMS: either an event is due, or
                // it waits for the terminal (which only calls here after answering)
                if let Some(e) = s.poll_event() {
                    return Some(e);
                }
                if s.is_finished() || !sent {
                    if !s.is_finished() {
                        self.closed(s, epoch, "the session waits for the terminal");
                        continue;
                    }
                    self.conn = None;
                    return None;
                }
                continue;
            }
            let deadline = s.poll_timeout().map(|d| epoch + d);
            let Some(conn) = self.conn.as_mut() else {
                self.closed(s, epoch, "no connection to the TMS");
                continue;
            };
            let read = match deadline {
                Some(d) => tokio::time::timeout_at(d, conn.read(&mut self.buf)).await,
                None => Ok(conn.read(&mut self.buf).await),
            };
            match read {
                Err(_) => s.handle_timeout(epoch.elapsed()),
                Ok(Ok(0)) => self.closed(s, epoch, "the TMS closed the connection"),
                Ok(Err(e)) => self.closed(s, epoch, &format!("the TMS link failed: {e}")),
                Ok(Ok(n)) => {
                    let bytes = self.buf.get(..n).unwrap_or_default().to_vec();
                    s.handle_bytes(&bytes, epoch.elapsed());
                }
            }
        }
    }

    fn closed(&mut self, s: &mut ClientSession, epoch: Instant, why: &str) {
        if self.conn.take().is_some() || !s.is_finished() {
            self.journal
                .record("terminal", "tms-link", json!({"closed": why}));
        }
        s.handle_closed(epoch.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_key_unwraps_only_under_its_kek() {
        let kek = Key::tdes(&[0x11; 16]).unwrap();
        let other = Key::tdes(&[0x22; 16]).unwrap();
        let tmk = Key::tdes(&[0x5A; 16]).unwrap();
        let s = StoredKey::wrap(&kek, &tmk).unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains(&hex::encode_upper([0x5A; 16])), "{text}");
        let back: StoredKey = serde_json::from_str(&text).unwrap();
        assert_eq!(back.unwrap(&kek).unwrap().kcv(), tmk.kcv());
        assert!(back.unwrap(&other).is_err());
    }
}
