//! The terminal's memory that survives power loss: counters, the open batch, the
//! store-and-forward queue, receipts waiting for paper, the transaction in flight, and the
//! session keys (wrapped under the terminal master key, never in clear).
//!
//! One JSON file, rewritten whole on every change: written to a temporary file, synced,
//! then renamed over the old one, so a kill at any instant leaves either the old or the
//! new state, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

use poslab_terminal::txn::{SafEntry, TxnRecord};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Last STAN used (DE 11).
    pub stan: u32,
    /// Last receipt number used in the open batch.
    pub receipt: u32,
    pub batch: Vec<TxnRecord>,
    /// Messages to deliver until the host acknowledges them (reversals, advices).
    pub saf: Vec<SafEntry>,
    /// A request sent (or about to be) whose answer has not been handled: after a power
    /// loss it becomes a reversal.
    pub in_flight: Option<SafEntry>,
    /// The reversal of the last approved payment, kept until the register has its result:
    /// a result the register never acknowledged reverses the payment.
    #[serde(default)]
    pub unconfirmed: Option<SafEntry>,
    /// Receipts (ESC/POS bytes, hex) the printer could not take yet.
    pub held_receipts: Vec<HeldReceipt>,
    pub signed_on: bool,
    /// DE 48 of the last key exchange: the session keys under the TMK.
    pub wrapped_keys: Option<String>,
    pub batches_closed: u32,
    /// Training mode switched on by the operator (the parameters may also say so).
    pub training: bool,
    pub power_ups: u32,
    /// What the TMS gave: identity, master key (under the transport key), parameters.
    pub tms: super::tms_link::TmsState,
    /// The firmware slots and the update in progress (`None`: the factory image).
    pub firmware: Option<poslab_terminal::firmware::Firmware>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeldReceipt {
    pub receipt: u32,
    pub copy: String,
    pub escpos_hex: String,
}

pub struct Store {
    path: PathBuf,
    pub state: State,
}

impl Store {
    /// Opens the state in `dir` (created when missing; a new terminal starts empty).
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("terminal-state.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("terminal state {} is damaged: {e}", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        Ok(Store { path, state })
    }

    /// Writes the state durably (temporary file, fsync, rename).
    pub fn save(&self) -> anyhow::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(&self.state)?;
        {
            let mut f = std::fs::File::create(&tmp)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| anyhow::anyhow!("cannot replace {}: {e}", self.path.display()))?;
        Ok(())
    }

    pub fn next_stan(&mut self) -> u32 {
        self.state.stan = self.state.stan % 999_999 + 1;
        self.state.stan
    }

    pub fn next_receipt(&mut self) -> u32 {
        self.state.receipt = self.state.receipt % 9_999 + 1;
        self.state.receipt
    }

    pub fn record(&self, receipt: u32) -> Option<&TxnRecord> {
        self.state.batch.iter().find(|r| r.receipt == receipt)
    }

    pub fn record_mut(&mut self, receipt: u32) -> Option<&mut TxnRecord> {
        self.state.batch.iter_mut().find(|r| r.receipt == receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopening_and_counters_wrap() {
        let dir = std::env::temp_dir().join(format!("poslab-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Store::open(&dir).unwrap();
        assert_eq!(s.next_stan(), 1);
        s.state.stan = 999_999;
        assert_eq!(s.next_stan(), 1);
        s.state.signed_on = true;
        s.save().unwrap();
        let again = Store::open(&dir).unwrap();
        assert!(again.state.signed_on);
        assert_eq!(again.state.stan, 1);
        std::fs::write(dir.join("terminal-state.json"), b"{not json").unwrap();
        let err = Store::open(&dir).err().unwrap().to_string();
        assert!(err.contains("damaged"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
