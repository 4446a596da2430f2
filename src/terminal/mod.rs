//! The reference terminal: poslab's own payment terminal, the device under test of the
//! default bench and of `poslab terminal`.
//!
//! It talks to every other node only over its links ([`Links`]): ISO 8583 to the host,
//! ZVT to the cash register (it is the payment terminal, PT), the vpcd reader side to the
//! card (a card "is inserted" when it connects), ESC/POS to the printer, and the keypad
//! line protocol to its PIN pad and display. Its memory ([`store`]) is a file rewritten
//! atomically on every change, so a power loss (the process killed) loses nothing: a
//! request in flight becomes a reversal, queued reversals are retried until the host
//! acknowledges them, receipts that did not print are printed when paper is back.
//!
//! The business rules (requests, EMV steps, receipts, totals) are sans-IO in
//! `poslab-terminal`; this module holds the links, the clock and the order of things.

mod ecr;
mod flow;
pub mod host_link;
mod pad;
pub mod printer_link;
pub mod store;
pub mod tms_link;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poslab_crypto::Key;
use poslab_iso8583::Spec;
use poslab_terminal::params::Params;
use poslab_zvt::link::LinkConfig;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::link::{Dialer, Incoming};

/// What the terminal is and knows before it starts.
#[derive(Clone)]
pub struct Config {
    pub params: Params,
    /// Terminal master key (from the bench file's key file; later from the TMS).
    pub tmk: Key,
    /// Where its memory lives (survives restarts).
    pub state_dir: PathBuf,
    /// Seeds its unpredictable numbers.
    pub seed: u64,
    /// ISO 8583 dialect of the host link.
    pub spec: Spec,
    pub software_version: String,
    /// Unix time of the terminal's clock at start (its clock then runs with tokio's).
    pub wall_start: u64,
    /// Its factory identity and keys for the terminal management system.
    pub tms: tms_link::TmsConfig,
}

/// The terminal's links.
pub struct Links {
    pub host: Dialer,
    pub printer: Dialer,
    /// Cash registers connecting (TCP), or the one stream of a serial line / pty.
    pub ecr: Incoming,
    pub ecr_link: LinkConfig,
    /// Cards connecting to the reader (vpcd).
    pub reader: Incoming,
    /// The PIN pad / display link.
    pub keypad: Incoming,
    /// The terminal management system (none: keys and parameters come from the bench).
    pub tms: Option<Dialer>,
}

/// A cash-register command handed to the terminal's core.
#[derive(Debug)]
pub(crate) enum EcrRequest {
    Sale {
        kind: poslab_terminal::txn::TxnKind,
        amount: u64,
    },
    Void {
        receipt: Option<u32>,
    },
    Completion {
        receipt: Option<u32>,
        amount: u64,
    },
    EndOfDay,
    /// Registration: the terminal goes on line (sign-on and key exchange).
    SignOn,
    /// The register did not acknowledge a payment's result (its status information, with
    /// this trace when it was that, or its completion) through the link's retries. Unless
    /// it asks for it (repeat receipt) within `flow::RESULT_GRACE`, the payment is
    /// reversed. Not a command: nothing is answered.
    ResultUndelivered {
        trace: Option<u32>,
    },
    /// The register acknowledged the status information with this trace (in the payment
    /// or in an answer to a repeat receipt): that payment's result is delivered.
    ResultDelivered {
        trace: u32,
    },
}

/// Shared between the ECR link and the core: may a running command still be aborted?
#[derive(Default)]
pub(crate) struct AbortGate {
    requested: AtomicBool,
    committed: AtomicBool,
    notify: Notify,
}

impl AbortGate {
    /// The ECR asks to abort; true when the terminal can still give up.
    pub(crate) fn request(&self) -> bool {
        if self.committed.load(Ordering::SeqCst) {
            return false;
        }
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        true
    }
    pub(crate) fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
    pub(crate) async fn wait(&self) {
        loop {
            let n = self.notify.notified();
            if self.requested() {
                return;
            }
            n.await;
        }
    }
    pub(crate) fn commit(&self) {
        self.committed.store(true, Ordering::SeqCst);
    }
    pub(crate) fn reset(&self) {
        self.requested.store(false, Ordering::SeqCst);
        self.committed.store(false, Ordering::SeqCst);
    }
}

/// Runs the terminal until `shutdown`. `journal` is the terminal's own log (on its disk).
pub async fn run(
    config: Config,
    links: Links,
    journal: Journal,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = store::Store::open(&config.state_dir)?;
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (steps_tx, steps_rx) = mpsc::unbounded_channel();
    let gate = Arc::new(AbortGate::default());
    let last = Arc::new(std::sync::Mutex::new(None));
    let (pad_in_tx, pad_in_rx) = mpsc::unbounded_channel();
    let (pad_out_tx, pad_out_rx) = mpsc::unbounded_channel();

    let tasks = tokio_util::task::TaskTracker::new();
    tasks.spawn(ecr::serve(
        links.ecr,
        links.ecr_link,
        ecr::EcrApp::new(req_tx, gate.clone(), last.clone()),
        steps_rx,
        journal.clone(),
        config.software_version.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(pad::serve(
        links.keypad,
        pad_in_tx,
        pad_out_rx,
        journal.clone(),
        shutdown.clone(),
    ));
    let spec = config.spec.clone();
    let mut core = flow::Core::new(
        config,
        store,
        journal.clone(),
        host_link::HostLink::new("host", links.host, spec, journal.clone()),
        printer_link::PrinterLink::new(links.printer, journal.clone()),
        links.reader,
        pad::Pad::new(pad_in_rx, pad_out_tx),
        steps_tx,
        gate,
        last,
    );
    if let Some(tms) = links.tms {
        core.attach_tms(tms);
    }
    let result = core.run(req_rx, shutdown.clone()).await;
    shutdown.cancel();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tasks.wait()).await;
    result
}
