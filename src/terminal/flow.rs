//! The terminal's core: one thing at a time, in the order a correct terminal does them
//! (design.md §5). Sign on and exchange keys before the first sale; read the card (chip,
//! contactless, swipe, fallback); take the PIN on the pad and encipher it; ask the host
//! with the request written ahead to the store; on no answer reverse, and retry the
//! reversal until the host acknowledges it, across restarts; print both copies or hold
//! them for paper; settle and upload the batch on a mismatch.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use poslab_crypto::{Key, Pin, PinBlockFormat};
use poslab_emv::apdu::{Command, StatusWord};
use poslab_emv::magstripe::Track2;
use poslab_emv::profile::Interface;
use poslab_emv::reader::ReaderError;
use poslab_iso8583::Message;
use poslab_sensitive::Pan;
use poslab_terminal::emv::{self as kernel, Cvm, TagValues};
use poslab_terminal::iso::{self, CardRead, Financial};
use poslab_terminal::keypad::{Key as PadKey, PadLine};
use poslab_terminal::receipt::{self, Copy};
use poslab_terminal::txn::{
    CardKind, Entry, Outcome, SafEntry, Stamp, TxnKind, TxnRecord, TxnState,
};
use poslab_zvt::bmp::Fields;
use poslab_zvt::codes::{IntermediateStatus, ResultCode};
use poslab_zvt::terminal::{Step, TransactionKind, TransactionRecord};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::host_link::{ExchangeError, HostLink};
use super::pad::Pad;
use super::printer_link::{PrinterLink, PrinterProblem};
use super::store::{HeldReceipt, Store};
use super::{AbortGate, Config, EcrRequest};
use crate::card::ReaderLink;
use crate::journal::Journal;
use crate::link::{BoxIo, Incoming};

mod maintenance;
#[path = "oda.rs"]
mod oda;

/// How often held receipts are tried again.
const PRINTER_RETRY: Duration = Duration::from_secs(2);

/// How long the register may take to ask for a payment result it never acknowledged
/// before the terminal reverses the payment: a line that comes back within it (a cable
/// plugged in again) gets the approval; after it, or as soon as the register starts
/// another command, the payment is reversed, and the last result says so. Either way the
/// register and the host agree: approved and charged, or not approved and not charged.
pub(crate) const RESULT_GRACE: Duration = Duration::from_secs(5 * 60);
/// How long the reader waits for one card answer.
const CARD_ANSWER: Duration = Duration::from_secs(5);

pub(crate) struct Core {
    cfg: Config,
    store: Store,
    journal: Journal,
    host: HostLink,
    printer: PrinterLink,
    cards: Incoming,
    pad: Pad,
    ecr: mpsc::UnboundedSender<Vec<Step>>,
    gate: Arc<AbortGate>,
    last: Arc<Mutex<Option<TransactionRecord>>>,
    keys: Option<(Key, Key)>,
    rng: u64,
    started: Instant,
    next_saf: Option<Instant>,
    next_print: Option<Instant>,
    /// When the last approved payment is reversed unless the register asks for its result
    /// (which it never acknowledged) before.
    reverse_unconfirmed_at: Option<Instant>,
    /// What the display shows now.
    shown: String,
    /// The TMS client and the firmware slots.
    mnt: maintenance::Maint,
}

/// How a card was presented.
enum Presented {
    Chip(ReaderLink<BoxIo>),
    Swipe(Track2),
    Cancelled,
    TimedOut,
}

/// What reading the card gave.
struct CardTxn {
    card: CardRead,
    values: TagValues,
    cdol1: Vec<u8>,
    cdol2: Vec<u8>,
    cvm: Cvm,
    link: Option<ReaderLink<BoxIo>>,
    /// Offline data authentication (chip): the method and what it found.
    oda: Option<poslab_emv::oda_terminal::OdaPlan>,
    /// The PDOL values sent in GET PROCESSING OPTIONS (CDA hashes them).
    pdol_data: Vec<u8>,
}

enum Refusal {
    /// Outcome shown and recorded.
    Outcome(Outcome, String),
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: Config,
        store: Store,
        journal: Journal,
        host: HostLink,
        printer: PrinterLink,
        cards: Incoming,
        pad: Pad,
        ecr: mpsc::UnboundedSender<Vec<Step>>,
        gate: Arc<AbortGate>,
        last: Arc<Mutex<Option<TransactionRecord>>>,
    ) -> Core {
        let rng = cfg.seed ^ 0x9E37_79B9_7F4A_7C15 ^ u64::from(store.state.power_ups) << 32;
        let mnt = maintenance::Maint::new(&cfg.params, &cfg.tmk);
        Core {
            cfg,
            store,
            journal,
            host,
            printer,
            cards,
            pad,
            ecr,
            gate,
            last,
            keys: None,
            rng: rng.max(1),
            started: Instant::now(),
            next_saf: None,
            next_print: None,
            reverse_unconfirmed_at: None,
            shown: String::new(),
            mnt,
        }
    }

    fn training(&self) -> bool {
        self.cfg.params.training || self.store.state.training
    }

    fn now(&self) -> Stamp {
        Stamp::from_unix(self.cfg.wall_start + self.started.elapsed().as_secs())
    }

    fn random_u32(&mut self) -> u32 {
        // xorshift64*: seeded, so a run with the same seed asks the same questions
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    fn save(&self) {
        if let Err(e) = self.store.save() {
            tracing::error!("cannot save the terminal state: {e:#}");
            self.journal
                .record("terminal", "error", json!({"error": format!("{e:#}")}));
        }
    }

    /// Shows `text` on the terminal's display (and says it on the pad link).
    fn show(&mut self, text: &str) {
        if self.shown == text {
            return;
        }
        self.shown = text.to_string();
        self.journal
            .record("terminal", "display", json!({"text": text}));
        self.pad.send(PadLine::Display(text.to_string()));
    }

    /// Tells the cash register what the terminal is doing (ZVT intermediate status).
    fn tell_ecr(&self, status: IntermediateStatus) {
        let _ = self.ecr.send(vec![Step::Intermediate(status), Step::Hold]);
    }

    fn finish_ecr(&self, steps: Vec<Step>) {
        let _ = self.ecr.send(steps);
    }

    pub(crate) async fn run(
        &mut self,
        mut requests: mpsc::UnboundedReceiver<EcrRequest>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        self.power_up();
        self.maintenance_start().await;
        loop {
            let wake = [self.next_saf, self.next_print, self.reverse_unconfirmed_at]
                .into_iter()
                .flatten()
                .min();
            let wake = match (wake, self.maintenance_wake()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                req = requests.recv() => match req {
                    Some(EcrRequest::ResultUndelivered { trace }) => self.result_undelivered(trace),
                    Some(EcrRequest::ResultDelivered { trace }) => self.result_delivered(trace),
                    Some(req) => self.handle(req).await,
                    None => return Ok(()),
                },
                line = self.pad.rx.recv() => match line {
                    Some(line) => self.operator(line).await,
                    None => return Ok(()),
                },
                card = self.cards.next() => {
                    // a card with no sale running: tell the cardholder, let it go
                    if card.is_some() {
                        self.show("START THE SALE ON THE CASH REGISTER");
                    }
                }
                _ = sleep_until(wake) => self.background().await,
            }
        }
    }

    /// After a restart: a request that was in flight when the power went is reversed.
    fn power_up(&mut self) {
        self.store.state.power_ups += 1;
        self.maintenance_boot();
        if let Some(pending) = self.store.state.in_flight.take() {
            self.journal.record(
                "terminal",
                "recovered",
                json!({"what": "a request was in flight at power loss; it will be reversed",
                       "stan": pending.original_stan, "receipt": pending.receipt}),
            );
            if let Some(r) = self.store.record_mut(pending.receipt) {
                r.state = TxnState::Reversed;
                r.outcome = Outcome::NoAnswer;
            } else {
                self.store.state.batch.push(TxnRecord {
                    receipt: pending.receipt,
                    stan: pending.original_stan,
                    kind: if pending.processing_code.starts_with("20") {
                        TxnKind::Refund
                    } else {
                        TxnKind::Purchase
                    },
                    amount: pending.amount,
                    currency: self.cfg.params.currency,
                    pan_masked: None,
                    card_label: None,
                    card_kind: None,
                    entry: Entry::Reference,
                    outcome: Outcome::NoAnswer,
                    auth_code: None,
                    rrn: None,
                    at: pending.original_at,
                    training: false,
                    state: TxnState::Reversed,
                    cvm: None,
                    original: None,
                });
            }
            self.store.state.saf.push(pending);
        }
        if self.store.state.unconfirmed.is_some() {
            // the register may not have the last result: it may ask for it
            self.reverse_unconfirmed_at = Some(Instant::now() + RESULT_GRACE);
        }
        // the last result survives the restart: a register that lost the answer asks
        // for it (repeat receipt) once the terminal is back
        let last = self
            .store
            .state
            .batch
            .iter()
            .max_by_key(|r| r.receipt)
            .map(|r| {
                let text = match (&r.outcome, r.training) {
                    (Outcome::Approved { .. }, true) => "APPROVED - TRAINING",
                    (o, _) => receipt::result_text(o),
                };
                self.zvt_record(r, None, text)
            });
        if let Ok(mut l) = self.last.lock() {
            *l = last;
        }
        if let Some(de48) = self.store.state.wrapped_keys.clone() {
            match iso::session_keys(&de48, &self.cfg.tmk) {
                Ok(keys) => self.keys = Some(keys),
                Err(e) => {
                    self.journal.record(
                        "terminal",
                        "error",
                        json!({"error": format!("stored session keys: {e}")}),
                    );
                    self.store.state.signed_on = false;
                }
            }
        }
        self.save();
        let now = Instant::now();
        if !self.store.state.saf.is_empty() {
            self.next_saf = Some(now);
        }
        if !self.store.state.held_receipts.is_empty() {
            self.next_print = Some(now);
        }
        self.journal.record(
            "terminal",
            "power-up",
            json!({"count": self.store.state.power_ups, "saf": self.store.state.saf.len(),
                   "held_receipts": self.store.state.held_receipts.len(),
                   "software": self.cfg.software_version, "parameters": self.cfg.params.version}),
        );
        self.show(if self.training() {
            "TRAINING MODE - READY"
        } else {
            "READY"
        });
    }

    async fn background(&mut self) {
        let now = Instant::now();
        if self.next_saf.is_some_and(|t| t <= now) {
            self.next_saf = None;
            self.flush_saf().await;
        }
        if self.next_print.is_some_and(|t| t <= now) {
            self.next_print = None;
            self.print_held().await;
        }
        if self.reverse_unconfirmed_at.is_some_and(|t| t <= now) {
            self.reverse_unconfirmed_at = None;
            self.reverse_unconfirmed().await;
        }
        self.maintenance_background().await;
    }

    async fn handle(&mut self, req: EcrRequest) {
        self.journal.record(
            "terminal",
            "command",
            json!({"command": format!("{req:?}")}),
        );
        let refused = self.out_of_service(&req).await;
        let steps = match req {
            _ if refused.is_some() => refused.unwrap_or_default(),
            EcrRequest::Sale { kind, amount } => {
                if self.reverse_unconfirmed_at.take().is_some() {
                    // the register moved on without the last result: it will not ask
                    self.reverse_unconfirmed().await;
                }
                self.sale(kind, amount).await
            }
            EcrRequest::Void { receipt } => self.void(receipt).await,
            EcrRequest::Completion { receipt, amount } => self.completion(receipt, amount).await,
            EcrRequest::EndOfDay => self.end_of_day().await,
            EcrRequest::SignOn => self.register().await,
            EcrRequest::ResultUndelivered { .. } | EcrRequest::ResultDelivered { .. } => Vec::new(),
        };
        self.finish_ecr(steps);
        self.show_ready();
    }

    // ---- operator keys -------------------------------------------------------------

    async fn operator(&mut self, line: PadLine) {
        match line {
            PadLine::Key(PadKey::Function(1)) => {
                let lines = receipt::report(
                    &self.store.state.batch,
                    false,
                    &self.cfg.params,
                    &self.now(),
                );
                self.show("X REPORT");
                self.print_lines(0, "x-report", lines).await;
            }
            PadLine::Key(PadKey::Function(2)) => {
                let steps = self.end_of_day().await;
                drop(steps);
            }
            PadLine::Key(PadKey::Function(3)) => self.self_test().await,
            PadLine::Key(PadKey::Function(5)) => {
                self.call_home("operator").await;
                self.show_ready();
            }
            PadLine::Key(PadKey::Function(4)) => {
                self.store.state.training = !self.store.state.training;
                self.save();
                self.journal
                    .record("terminal", "training", json!({"on": self.training()}));
                self.show(if self.training() {
                    "TRAINING MODE ON"
                } else {
                    "TRAINING MODE OFF"
                });
            }
            PadLine::Swipe(_) => self.show("START THE SALE ON THE CASH REGISTER"),
            _ => {}
        }
    }

    /// Commissioning self test: printer, pad, reader, host link (echo), then a test page.
    async fn self_test(&mut self) {
        self.show("SELF TEST");
        let mut checks = Vec::new();
        let printer = self.printer.check().await;
        checks.push(("PRINTER".to_string(), printer.is_ok()));
        self.pad.drain();
        self.pad.send(PadLine::Test);
        let pad_ok = matches!(
            tokio::time::timeout(Duration::from_secs(5), self.pad.rx.recv()).await,
            Ok(Some(PadLine::TestOk))
        );
        checks.push(("KEYPAD".to_string(), pad_ok));
        checks.push(("CARD READER".to_string(), true));
        let stan = self.store.next_stan();
        let echo = iso::network("301", stan, &self.now(), &self.cfg.params);
        let timeout = self.host_timeout();
        let link_ok = matches!(self.host.exchange(&echo, timeout).await, Ok(a) if iso::response_code(&a) == Some("00"));
        checks.push(("HOST LINK".to_string(), link_ok));
        self.save();
        let all = checks.iter().all(|(_, ok)| *ok);
        self.journal.record(
            "terminal",
            "self-test",
            json!({"checks": checks, "passed": all}),
        );
        let page = receipt::test_page(&self.cfg.params, &checks, &self.cfg.software_version);
        self.print_lines(0, "test-page", page).await;
        let failed: Vec<&str> = checks
            .iter()
            .filter(|c| !c.1)
            .map(|c| c.0.as_str())
            .collect();
        if all {
            self.show("SELF TEST PASSED");
        } else {
            self.show(&format!("SELF TEST FAILED: {}", failed.join(", ")));
        }
    }

    fn host_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.params.host_timeout_ms.max(1))
    }

    /// Registration by the cash register: go on line with the host now.
    async fn register(&mut self) -> Vec<Step> {
        if self.training() {
            return vec![Step::Complete(Vec::new())];
        }
        match self.ensure_signed_on().await {
            Ok(()) => {
                self.flush_saf().await;
                vec![Step::Complete(Vec::new())]
            }
            Err(why) => {
                self.journal
                    .record("terminal", "sign-on-failed", json!({"why": why}));
                self.show(sign_on_failure_text(&why).unwrap_or("HOST UNAVAILABLE"));
                self.refusal_steps(ResultCode::COMMUNICATION_ERROR, &why)
            }
        }
    }

    // ---- going live -----------------------------------------------------------------

    /// Sign-on and key exchange, when not done yet.
    async fn ensure_signed_on(&mut self) -> Result<(), String> {
        if self.store.state.signed_on && self.keys.is_some() {
            return Ok(());
        }
        self.show("CONNECTING");
        let timeout = self.host_timeout();
        let stan = self.store.next_stan();
        let sign_on = iso::network("001", stan, &self.now(), &self.cfg.params);
        self.save();
        let answer = self
            .host
            .exchange(&sign_on, timeout)
            .await
            .map_err(|e| e.to_string())?;
        match iso::response_code(&answer) {
            Some("00") => {}
            Some(code) => {
                return Err(format!(
                    "sign-on refused: {code} {}",
                    receipt::decline_text(code)
                ))
            }
            None => return Err("sign-on answer without a response code".into()),
        }
        let stan = self.store.next_stan();
        let keyx = iso::network("101", stan, &self.now(), &self.cfg.params);
        let answer = self
            .host
            .exchange(&keyx, timeout)
            .await
            .map_err(|e| e.to_string())?;
        if iso::response_code(&answer) != Some("00") {
            return Err(format!(
                "key exchange refused: {}",
                iso::response_code(&answer).unwrap_or("-")
            ));
        }
        let de48 = answer
            .text(48)
            .ok_or("key exchange answer without keys (DE 48)")?;
        let keys = iso::session_keys(de48, &self.cfg.tmk).map_err(|e| e.to_string())?;
        self.journal.record(
            "terminal",
            "keys",
            json!({"pin_key_kcv": keys.0.kcv().to_string(), "mac_key_kcv": keys.1.kcv().to_string()}),
        );
        self.store.state.wrapped_keys = Some(de48.to_string());
        self.store.state.signed_on = true;
        self.keys = Some(keys);
        self.save();
        Ok(())
    }

    /// Sends a financial request; the matching reversal is written ahead to the store.
    async fn online(
        &mut self,
        mut request: Message,
        reversal: SafEntry,
    ) -> Result<Message, ExchangeError> {
        if self.cfg.params.mac {
            if let Some((_, mac_key)) = &self.keys {
                if let Err(e) = iso::sign(&mut request, mac_key, &self.cfg.spec) {
                    tracing::error!("cannot sign: {e}");
                }
            }
        }
        self.store.state.in_flight = Some(reversal);
        self.save();
        let timeout = self.host_timeout();
        let result = self.host.exchange(&request, timeout).await;
        match &result {
            Ok(answer) => {
                if let Some((_, mac_key)) = &self.keys {
                    if let Err(e) = iso::verify(answer, mac_key, &self.cfg.spec) {
                        self.journal
                            .record("terminal", "bad-mac", json!({"error": e.to_string()}));
                        // an answer we cannot trust is no answer: reverse
                        self.host.drop_connection();
                        return Err(ExchangeError::Link("host", e.to_string()));
                    }
                }
            }
            Err(e) if e.maybe_delivered() => {}
            Err(_) => {
                // never left the terminal: nothing to reverse
                self.store.state.in_flight = None;
                self.save();
            }
        }
        result
    }

    /// The register did not acknowledge the result of the last approved payment. It may
    /// still ask for it (repeat receipt) when its line is back; if it does not within
    /// [`RESULT_GRACE`], the payment is reversed (a terminal that cannot deliver a
    /// payment's result must not keep the money).
    fn result_undelivered(&mut self, trace: Option<u32>) {
        let Some(entry) = &self.store.state.unconfirmed else {
            return;
        };
        if trace.is_some_and(|t| t != entry.original_stan) {
            // another transaction's result
            return;
        }
        self.journal.record(
            "terminal",
            "result-undelivered",
            json!({"stan": entry.original_stan, "receipt": entry.receipt,
                   "reversed_in_s": RESULT_GRACE.as_secs()}),
        );
        self.reverse_unconfirmed_at = Some(Instant::now() + RESULT_GRACE);
    }

    /// The register acknowledged the result with this trace: nothing to reverse.
    fn result_delivered(&mut self, trace: u32) {
        if self
            .store
            .state
            .unconfirmed
            .as_ref()
            .is_some_and(|e| e.original_stan == trace)
        {
            self.store.state.unconfirmed = None;
            self.reverse_unconfirmed_at = None;
            self.save();
        }
    }

    /// The grace ran out: the payment the register never heard of is reversed, and the
    /// last result the register may ask for says so.
    async fn reverse_unconfirmed(&mut self) {
        let Some(entry) = self.store.state.unconfirmed.take() else {
            return;
        };
        self.journal.record(
            "terminal",
            "result-never-delivered",
            json!({"stan": entry.original_stan, "receipt": entry.receipt,
                   "what": "the register never had the result: the payment is reversed"}),
        );
        let receipt = entry.receipt;
        if let Some(r) = self.store.record_mut(receipt) {
            r.state = TxnState::Reversed;
            r.outcome = Outcome::Refused {
                reason: "result not delivered to the cash register".into(),
            };
        }
        let last = self
            .store
            .record_mut(receipt)
            .map(|r| r.clone())
            .map(|r| self.zvt_record(&r, None, "NOT DELIVERED - REVERSED"));
        if let (Some(last), Ok(mut l)) = (last, self.last.lock()) {
            *l = Some(last);
        }
        self.store.state.in_flight = Some(entry);
        self.save();
        self.reverse_in_flight().await;
        self.show("PAYMENT REVERSED - REGISTER NOT REACHED");
    }

    /// The request in flight failed: queue its reversal and try it at once.
    async fn reverse_in_flight(&mut self) {
        if self.cfg.params.unsafe_no_reversal {
            // mutation testing of the money checks (poslab chaos --unsafe-no-reversal)
            if let Some(entry) = self.store.state.in_flight.take() {
                self.journal.record(
                    "terminal",
                    "reversal-skipped",
                    json!({"original_stan": entry.original_stan, "why": "unsafe_no_reversal"}),
                );
                self.save();
            }
            return;
        }
        if let Some(entry) = self.store.state.in_flight.take() {
            self.journal.record(
                "terminal",
                "reversal-queued",
                json!({"original_stan": entry.original_stan, "stan": entry.stan, "amount": entry.amount}),
            );
            self.store.state.saf.push(entry);
            self.save();
            self.tell_ecr(IntermediateStatus(0x05)); // sending auto-reversal
            self.flush_saf().await;
        }
    }

    /// Delivers queued reversals and advices in order until one fails.
    async fn flush_saf(&mut self) {
        if self.training() {
            return;
        }
        let timeout = self.host_timeout();
        while let Some(entry) = self.store.state.saf.first().cloned() {
            let mut msg = iso::saf_message(&entry, &self.now(), &self.cfg.params);
            if self.cfg.params.mac {
                if let Some((_, mac_key)) = &self.keys {
                    let _ = iso::sign(&mut msg, mac_key, &self.cfg.spec);
                }
            }
            if let Some(first) = self.store.state.saf.first_mut() {
                first.attempts += 1;
            }
            self.save();
            match self.host.exchange(&msg, timeout).await {
                Ok(answer) if matches!(iso::response_code(&answer), Some("00" | "25" | "12")) => {
                    self.journal.record(
                        "terminal",
                        "saf-delivered",
                        json!({"mti": msg.mti.as_str(), "original_stan": entry.original_stan, "code": iso::response_code(&answer)}),
                    );
                    self.store.state.saf.remove(0);
                    self.save();
                }
                other => {
                    let why = match other {
                        Ok(a) => format!("answered {}", iso::response_code(&a).unwrap_or("-")),
                        Err(e) => e.to_string(),
                    };
                    self.journal.record(
                        "terminal",
                        "saf-retry",
                        json!({"mti": msg.mti.as_str(), "original_stan": entry.original_stan, "why": why}),
                    );
                    self.next_saf = Some(
                        Instant::now()
                            + Duration::from_millis(self.cfg.params.retry_interval_ms.max(100)),
                    );
                    return;
                }
            }
        }
    }

    // ---- selling --------------------------------------------------------------------

    async fn sale(&mut self, kind: TxnKind, amount: u64) -> Vec<Step> {
        let p = self.cfg.params.clone();
        self.show(&format!(
            "{} {} {}",
            kind.label(),
            p.currency_alpha,
            p.format_amount(amount)
        ));
        if !self.training() {
            if let Err(why) = self.ensure_signed_on().await {
                self.journal
                    .record("terminal", "sign-on-failed", json!({"why": why}));
                if let Some(text) = sign_on_failure_text(&why) {
                    self.show(text);
                    return self.refusal_steps(ResultCode::COMMUNICATION_ERROR, text);
                }
                self.show("HOST UNAVAILABLE - NOT CHARGED");
                return self.refusal_steps(ResultCode::COMMUNICATION_ERROR, "HOST UNAVAILABLE");
            }
        }
        let mut card = match self.acquire_card(kind, amount).await {
            Ok(c) => c,
            Err(Refusal::Outcome(outcome, text)) => {
                self.show(&text);
                let code = match outcome {
                    Outcome::Cancelled => ResultCode::ABORTED,
                    _ => ResultCode::CARD_NOT_READABLE,
                };
                return self.refusal_steps(code, &text);
            }
        };
        let receipt = self.store.next_receipt();
        let stan = self.store.next_stan();
        let at = self.now();
        let mut record = TxnRecord {
            receipt,
            stan,
            kind,
            amount,
            currency: p.currency,
            pan_masked: Some(card.card.pan.masked()),
            card_label: Some(card.card.label.clone()),
            // the fee plan is the acquirer's: its card ranges decide debit, credit or
            // foreign (as the host counts fees), not the issuer's country (5F28)
            card_kind: Some(CardKind::of(card.card.pan.expose(), false)),
            entry: card.card.entry,
            outcome: Outcome::Cancelled,
            auth_code: None,
            rrn: None,
            at,
            training: self.training(),
            state: TxnState::Standing,
            cvm: Some(card.cvm.label().to_string()),
            original: None,
        };
        // PIN
        let mut pin_block = None;
        if card.cvm == Cvm::OnlinePin && kind != TxnKind::Refund {
            self.tell_ecr(IntermediateStatus::WATCH_PIN_PAD);
            match self.enter_pin().await {
                Some(pin) => {
                    pin_block = self.encipher_pin(&pin, card.card.pan.expose());
                    if pin_block.is_none() && !self.training() {
                        self.show("PIN ERROR - NOT CHARGED");
                        return self.refusal_steps(ResultCode::PROCESSING_ERROR, "PIN ERROR");
                    }
                }
                None => {
                    self.show("CANCELLED");
                    self.release_card(&mut card).await;
                    return self.refusal_steps(ResultCode::ABORTED, "CANCELLED");
                }
            }
        }
        if card.cvm == Cvm::OfflineEncipheredPin && kind != TxnKind::Refund {
            self.tell_ecr(IntermediateStatus::WATCH_PIN_PAD);
            if self.offline_pin(&mut card).await.is_err() {
                self.show("CANCELLED");
                self.release_card(&mut card).await;
                return self.refusal_steps(ResultCode::ABORTED, "CANCELLED");
            }
        }
        // first cryptogram (chip): ask for an ARQC (an AAC when a denial code says so;
        // with CDA when it was chosen)
        let mut icc = Vec::new();
        let mut first = None;
        let aid = card
            .values
            .get(0x84)
            .or_else(|| card.values.get(0x4F))
            .unwrap_or(&[]);
        let tac_denial = self
            .cfg
            .params
            .application(aid)
            .and_then(|a| a.tac_denial().ok())
            .unwrap_or(oda::TAC_DENIAL);
        let p1 = oda::first_ac_p1(&card, tac_denial);
        if let Some(link) = card.link.as_mut() {
            if kind != TxnKind::Refund {
                let un = self.random_u32().to_be_bytes();
                card.values.set(0x9F37, un.to_vec());
                let data = card.values.dol(&card.cdol1).unwrap_or_default();
                let answer = link.exchange(&Command::generate_ac(p1, &data)).await;
                let answer = match answer {
                    Ok(r) if r.sw.is_success() && p1 & 0x10 != 0 => {
                        match self.cda_cryptogram(&mut card, &r.data, &data) {
                            Ok(c) => Ok((r, Some(c))),
                            Err(why) => {
                                record.outcome = Outcome::Refused {
                                    reason: format!("CDA failed: {why}"),
                                };
                                return self.conclude(record, &mut card, None).await;
                            }
                        }
                    }
                    other => other.map(|r| (r, None)),
                };
                match answer {
                    Ok((_, Some(c))) => {
                        icc = kernel::icc_data(&card.values, &c);
                        first = Some(c);
                    }
                    Ok((r, None)) if r.sw.is_success() => match kernel::cryptogram(&r.data) {
                        Ok(c) if c.is_arqc() || c.is_tc() => {
                            icc = kernel::icc_data(&card.values, &c);
                            first = Some(c);
                        }
                        Ok(_) => {
                            record.outcome = Outcome::Refused {
                                reason: "card declined (AAC)".into(),
                            };
                        }
                        Err(e) => {
                            record.outcome = Outcome::Refused {
                                reason: e.to_string(),
                            }
                        }
                    },
                    Ok((r, None)) => {
                        record.outcome = Outcome::Refused {
                            reason: format!("GENERATE AC: {}", r.sw),
                        }
                    }
                    Err(e) => {
                        record.outcome = Outcome::Refused {
                            reason: format!("GENERATE AC: {e}"),
                        }
                    }
                }
                if first.is_none() {
                    return self.conclude(record, &mut card, None).await;
                }
            }
        }
        self.gate.commit();
        if self.training() {
            record.outcome = Outcome::Approved { code: "00".into() };
            record.auth_code = Some("TRAIN".into());
            return self.conclude(record, &mut card, None).await;
        }
        let request = iso::financial(
            &Financial {
                kind,
                amount,
                stan,
                at,
                card: Some(&card.card),
                pin_block,
                icc,
                original: None,
            },
            &p,
        );
        let reversal = SafEntry {
            mti: "0400".into(),
            stan: self.store.next_stan(),
            original_mti: kind.mti().into(),
            original_stan: stan,
            amount,
            processing_code: kind.processing_code().into(),
            attempts: 0,
            receipt,
            original_at: at,
        };
        self.store.state.batch.push(record.clone());
        self.tell_ecr(IntermediateStatus::WAITING_FOR_HOST);
        self.show("PLEASE WAIT");
        let answer = self.online(request, reversal).await;
        match answer {
            Ok(answer) => {
                let code = iso::response_code(&answer).unwrap_or("96").to_string();
                record.rrn = answer.text(37).map(str::to_owned);
                record.auth_code = answer.text(38).map(str::to_owned);
                let approved = code == "00";
                record.outcome = if approved {
                    Outcome::Approved { code: code.clone() }
                } else {
                    Outcome::Declined { code: code.clone() }
                };
                // second cryptogram: the card has the last word on a chip sale
                if let (Some(link), Some(_)) = (card.link.as_mut(), first.as_ref()) {
                    let arpc = answer.tlv(55).and_then(kernel::issuer_authentication);
                    if let Some(arpc) = &arpc {
                        let _ = link.exchange(&Command::external_authenticate(arpc)).await;
                    }
                    card.values.set(0x8A, code.as_bytes().to_vec());
                    let data = card.values.dol(&card.cdol2).unwrap_or_default();
                    let p1 = if approved { 0x40 } else { 0x00 };
                    let second = link.exchange(&Command::generate_ac(p1, &data)).await;
                    let card_ok = matches!(&second, Ok(r) if r.sw.is_success()
                        && kernel::cryptogram(&r.data).is_ok_and(|c| c.is_tc()));
                    if approved && !card_ok {
                        // approved by the host, declined by the card: take it back
                        record.outcome = Outcome::Refused {
                            reason: "card declined after approval".into(),
                        };
                        record.state = TxnState::Reversed;
                        self.replace_record(&record);
                        self.reverse_in_flight().await;
                        return self.conclude(record, &mut card, Some(())).await;
                    }
                }
                // kept until the register has the result (see result_undelivered)
                self.store.state.unconfirmed = if approved {
                    self.store.state.in_flight.take()
                } else {
                    None
                };
                self.store.state.in_flight = None;
                self.replace_record(&record);
                self.save();
            }
            Err(e) => {
                self.journal.record(
                    "terminal",
                    "no-answer",
                    json!({"stan": stan, "why": e.to_string()}),
                );
                if e.maybe_delivered() {
                    record.outcome = Outcome::NoAnswer;
                    record.state = TxnState::Reversed;
                    self.replace_record(&record);
                    self.save();
                    if let Some(link) = card.link.as_mut() {
                        card.values.set(0x8A, b"Z3".to_vec()); // unable to go online
                        let data = card.values.dol(&card.cdol2).unwrap_or_default();
                        let _ = link.exchange(&Command::generate_ac(0x00, &data)).await;
                    }
                    self.reverse_in_flight().await;
                } else {
                    record.outcome = Outcome::Refused {
                        reason: "host unavailable".into(),
                    };
                    self.store.state.batch.retain(|r| r.receipt != receipt);
                    self.save();
                }
            }
        }
        self.conclude(record, &mut card, Some(())).await
    }

    fn replace_record(&mut self, record: &TxnRecord) {
        match self.store.record_mut(record.receipt) {
            Some(r) => *r = record.clone(),
            None => self.store.state.batch.push(record.clone()),
        }
    }

    /// Shows the result, lets the card go, prints, and answers the cash register.
    async fn conclude(
        &mut self,
        record: TxnRecord,
        card: &mut CardTxn,
        _online: Option<()>,
    ) -> Vec<Step> {
        if !self
            .store
            .state
            .batch
            .iter()
            .any(|r| r.receipt == record.receipt)
        {
            self.store.state.batch.push(record.clone());
        }
        self.save();
        let text = match (&record.outcome, &record.training) {
            (Outcome::Approved { .. }, true) => "APPROVED - TRAINING".to_string(),
            (o, _) => receipt::result_text(o).to_string(),
        };
        self.journal.record(
            "terminal",
            "transaction",
            json!({"receipt": record.receipt, "stan": record.stan, "kind": record.kind, "amount": record.amount,
                   "outcome": record.outcome, "pan": record.pan_masked, "entry": record.entry, "training": record.training}),
        );
        self.show(&text);
        self.release_card(card).await;
        self.print_record(&record).await;
        let zvt = self.zvt_record(&record, Some(&card.card.pan), &text);
        if let Ok(mut last) = self.last.lock() {
            *last = Some(zvt.clone());
        }
        let mut steps = vec![Step::StatusInformation(zvt.to_fields())];
        if record.outcome.approved() {
            steps.push(Step::Complete(Vec::new()));
        } else {
            steps.push(Step::Abort(zvt.result));
        }
        steps
    }

    async fn release_card(&mut self, card: &mut CardTxn) {
        if let Some(link) = card.link.take() {
            self.tell_ecr(IntermediateStatus::REMOVE_CARD);
            self.show_keep("REMOVE CARD");
            drop(link); // the reader powers the card off; the cardholder takes it
        }
    }

    /// Shows a transient message without forgetting the result shown before it.
    fn show_keep(&mut self, text: &str) {
        let before = self.shown.clone();
        self.show(text);
        if !before.is_empty() {
            self.show(&before);
        }
    }

    fn zvt_record(&self, record: &TxnRecord, pan: Option<&Pan>, text: &str) -> TransactionRecord {
        let result = match &record.outcome {
            Outcome::Approved { .. } => ResultCode::SUCCESS,
            Outcome::Declined { code } => code
                .parse::<u8>()
                .ok()
                .filter(|c| (1..=63).contains(c))
                .map_or(ResultCode::PROCESSING_ERROR, ResultCode),
            Outcome::NoAnswer => ResultCode::COMMUNICATION_ERROR,
            Outcome::Refused { .. } => ResultCode::PROCESSING_ERROR,
            Outcome::Cancelled => ResultCode::ABORTED,
        };
        TransactionRecord {
            kind: match record.kind {
                TxnKind::Refund => TransactionKind::Refund,
                TxnKind::Void => TransactionKind::Reversal,
                TxnKind::PreAuth => TransactionKind::PreAuthorisation,
                TxnKind::Completion => TransactionKind::BookTotal,
                TxnKind::Purchase => TransactionKind::Purchase,
            },
            result,
            amount: Some(record.amount),
            currency: Some(record.currency),
            trace: record.stan,
            receipt: Some(record.receipt),
            turnover: Some(record.receipt),
            wall: Some(poslab_zvt::WallTime {
                year: record.at.year,
                month: record.at.month,
                day: record.at.day,
                hour: record.at.hour,
                minute: record.at.minute,
                second: record.at.second,
            }),
            pan: pan.cloned(),
            expiry: None,
            card_sequence: None,
            card_type: None,
            card_name: record.card_label.clone(),
            payment_type: None,
            auth_code: record.auth_code.clone(),
            terminal_id: self.cfg.params.tid.parse().ok(),
            vu_number: None,
            additional_text: Some(text.to_string()),
            receipt_lines: Vec::new(),
        }
    }

    fn refusal_steps(&self, code: ResultCode, text: &str) -> Vec<Step> {
        let mut f = Fields::new();
        f.push(poslab_zvt::bmp::Bmp::new(0x27, vec![code.0]));
        f.push(poslab_zvt::bmp::Bmp::new(0x3C, text.as_bytes().to_vec()));
        vec![Step::StatusInformation(f), Step::Abort(code)]
    }

    fn encipher_pin(&self, pin: &str, pan: &str) -> Option<[u8; 8]> {
        let key = &self.keys.as_ref()?.0;
        let pin = Pin::new(pin).ok()?;
        let block =
            poslab_crypto::encipher_pin_block(key, PinBlockFormat::Iso0, &pin, pan, &[0; 8])
                .ok()?;
        block.expose().try_into().ok()
    }

    /// PIN entry on the pad: digits, CLEAR, ENTER (4 to 12 digits), CANCEL.
    async fn enter_pin(&mut self) -> Option<String> {
        self.pad.drain();
        self.show("ENTER PIN");
        self.pad.send(PadLine::PinOn);
        let mut pin = String::new();
        let deadline = Instant::now() + Duration::from_millis(self.cfg.params.pin_timeout_ms);
        let result = loop {
            let line = tokio::select! {
                biased;
                l = tokio::time::timeout_at(deadline, self.pad.rx.recv()) => l,
                _ = self.gate.wait() => break None,
            };
            match line {
                Ok(Some(PadLine::Key(PadKey::Digit(d)))) if pin.len() < 12 => {
                    pin.push(char::from(b'0' + d))
                }
                Ok(Some(PadLine::Key(PadKey::Clear))) => pin.clear(),
                Ok(Some(PadLine::Key(PadKey::Enter))) if pin.len() >= 4 => break Some(pin),
                Ok(Some(PadLine::Key(PadKey::Cancel))) => break None,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break None,
            }
        };
        self.pad.send(PadLine::PinOff);
        result
    }

    /// Waits for a card and reads it.
    async fn acquire_card(&mut self, kind: TxnKind, amount: u64) -> Result<CardTxn, Refusal> {
        let cancelled = || Refusal::Outcome(Outcome::Cancelled, "CANCELLED".into());
        let mut fallback = false;
        let deadline = Instant::now() + Duration::from_millis(self.cfg.params.card_timeout_ms);
        self.tell_ecr(IntermediateStatus::INSERT_CARD);
        self.show("INSERT, TAP OR SWIPE CARD");
        loop {
            match self.wait_card(deadline).await {
                Presented::Cancelled => return Err(cancelled()),
                Presented::TimedOut => {
                    return Err(Refusal::Outcome(
                        Outcome::Cancelled,
                        "NO CARD - CANCELLED".into(),
                    ))
                }
                Presented::Swipe(track) => {
                    if track.service_code().chip_present() && !fallback {
                        self.show("USE CHIP");
                        continue;
                    }
                    if track.expiry().year as u16 * 100 + track.expiry().month as u16
                        <= self.now().yymm().saturating_sub(1)
                        && track.expiry() < this_month(&self.now())
                    {
                        return Err(Refusal::Outcome(
                            Outcome::Refused {
                                reason: "expired".into(),
                            },
                            "EXPIRED CARD".into(),
                        ));
                    }
                    let card = CardRead {
                        pan: track.pan().clone(),
                        expiry: format!("{:02}{:02}", track.expiry().year, track.expiry().month),
                        psn: None,
                        track2: Some(track.expose()),
                        entry: if fallback {
                            Entry::Fallback
                        } else {
                            Entry::Swipe
                        },
                        label: "MAGSTRIPE".into(),
                        service_code: Some(track.service_code().to_string()),
                    };
                    let pin_required =
                        matches!(track.service_code().digits()[2], 0 | 3 | 5 | 6 | 7);
                    return Ok(CardTxn {
                        card,
                        values: TagValues::new(),
                        cdol1: Vec::new(),
                        cdol2: Vec::new(),
                        cvm: if pin_required {
                            Cvm::OnlinePin
                        } else {
                            Cvm::Signature
                        },
                        link: None,
                        oda: None,
                        pdol_data: Vec::new(),
                    });
                }
                Presented::Chip(link) => match self.read_chip(link, kind, amount).await {
                    Ok(card) => return Ok(card),
                    Err(ChipFailure::Fallback(why)) => {
                        self.journal
                            .record("terminal", "chip-failure", json!({"why": why}));
                        fallback = true;
                        self.tell_ecr(IntermediateStatus(0x0C)); // card not readable
                        self.show("CHIP ERROR - SWIPE CARD");
                    }
                    Err(ChipFailure::Refuse(text)) => {
                        return Err(Refusal::Outcome(
                            Outcome::Refused {
                                reason: text.clone(),
                            },
                            text,
                        ))
                    }
                    Err(ChipFailure::Retry(text)) => self.show(&text),
                },
            }
        }
    }

    async fn wait_card(&mut self, deadline: Instant) -> Presented {
        // a card that connected before the sale started counts
        if let Some(s) = self.cards.try_next() {
            return Presented::Chip(ReaderLink::new(s, CARD_ANSWER));
        }
        loop {
            tokio::select! {
                biased;
                s = self.cards.next() => match s {
                    Some(s) => return Presented::Chip(ReaderLink::new(s, CARD_ANSWER)),
                    None => return Presented::Cancelled,
                },
                l = self.pad.rx.recv() => match l {
                    Some(PadLine::Swipe(t)) => match Track2::parse(t.expose()) {
                        Ok(track) => return Presented::Swipe(track),
                        Err(_) => self.show("CARD READ ERROR - SWIPE AGAIN"),
                    },
                    Some(PadLine::Key(PadKey::Cancel)) => return Presented::Cancelled,
                    Some(_) => {}
                    None => return Presented::Cancelled,
                },
                _ = self.gate.wait() => return Presented::Cancelled,
                _ = tokio::time::sleep_until(deadline) => return Presented::TimedOut,
            }
        }
    }

    async fn read_chip(
        &mut self,
        mut link: ReaderLink<BoxIo>,
        kind: TxnKind,
        amount: u64,
    ) -> Result<CardTxn, ChipFailure> {
        let fb =
            |what: &str, e: &dyn std::fmt::Display| ChipFailure::Fallback(format!("{what}: {e}"));
        let atr = link
            .activate(Interface::Contact)
            .await
            .map_err(|e| fb("power on", &e))?;
        if atr.is_empty() {
            return Err(ChipFailure::Fallback("no answer to reset".into()));
        }
        // contactless first (the PPSE answers only in the field), then the contact PSE
        let mut contactless = false;
        let mut candidates = Vec::new();
        let ppse = link
            .exchange(&Command::select(poslab_emv::card::PPSE))
            .await
            .map_err(|e| fb("select PPSE", &e))?;
        if ppse.sw.is_success() {
            contactless = true;
            candidates = kernel::candidates(&ppse.data).map_err(|e| fb("PPSE", &e))?;
        } else {
            let pse = link
                .exchange(&Command::select(poslab_emv::card::PSE))
                .await
                .map_err(|e| fb("select PSE", &e))?;
            if pse.sw.is_success() {
                let sfi = kernel::pse_sfi(&pse.data).map_err(|e| fb("PSE", &e))?;
                for rec in 1..=16u8 {
                    let r = link
                        .exchange(&Command::read_record(sfi, rec))
                        .await
                        .map_err(|e| fb("PSE record", &e))?;
                    if !r.sw.is_success() {
                        break;
                    }
                    candidates
                        .extend(kernel::candidates(&r.data).map_err(|e| fb("PSE record", &e))?);
                }
            } else if pse.sw.sw1() == 0x6F || pse.sw == StatusWord::FUNCTION_NOT_SUPPORTED {
                return Err(ChipFailure::Fallback(format!("select PSE: {}", pse.sw)));
            }
        }
        if candidates.is_empty() {
            return Err(ChipFailure::Fallback(
                "no payment application on the chip".into(),
            ));
        }
        if contactless && amount > self.cfg.params.contactless_limit {
            return Err(ChipFailure::Retry(
                "AMOUNT TOO HIGH FOR CONTACTLESS - INSERT CARD".into(),
            ));
        }
        let app = candidates[0].clone();
        let fci = link
            .exchange(&Command::select(&app.aid))
            .await
            .map_err(|e| fb("select AID", &e))?;
        if fci.sw == StatusWord::SELECTED_FILE_INVALIDATED {
            return Err(ChipFailure::Refuse("CARD BLOCKED".into()));
        }
        if !fci.sw.is_success() {
            return Err(ChipFailure::Fallback(format!("select AID: {}", fci.sw)));
        }
        let p = self.cfg.params.clone();
        let now = self.now();
        let mut values = TagValues::new();
        values.set(0x9F02, kernel::amount_bcd(amount));
        values.set(0x9F03, vec![0; 6]);
        values.set(0x9F1A, kernel::code_bcd(p.country));
        values.set(0x5F2A, kernel::code_bcd(p.currency));
        values.set(0x9A, now.emv_date().to_vec());
        values.set(
            0x9C,
            vec![if kind == TxnKind::Refund { 0x20 } else { 0x00 }],
        );
        values.set(0x95, vec![0; 5]);
        values.set(0x9F35, vec![0x22]);
        values.set(0x9F33, vec![0xE0, 0x48, 0xC8]);
        values.set(0x84, app.aid.clone());
        values.set(0x9F37, self.random_u32().to_be_bytes().to_vec());
        let pdol = kernel::pdol(&fci.data).map_err(|e| fb("FCI", &e))?;
        let pdol_data = values.dol(&pdol).map_err(|e| fb("PDOL", &e))?;
        let gpo = link
            .exchange(&Command::get_processing_options(&pdol_data))
            .await
            .map_err(|e| fb("GPO", &e))?;
        if gpo.sw == StatusWord::CONDITIONS_NOT_SATISFIED {
            return Err(ChipFailure::Refuse("CARD BLOCKED".into()));
        }
        if !gpo.sw.is_success() {
            return Err(ChipFailure::Fallback(format!("GPO: {}", gpo.sw)));
        }
        let (aip, afl) = kernel::processing_options(&gpo.data).map_err(|e| fb("GPO", &e))?;
        values.set(0x82, aip.to_vec());
        let for_oda = poslab_emv::oda_terminal::oda_records(&afl);
        let mut oda_records = Vec::new();
        for (sfi, rec) in kernel::afl_records(&afl).map_err(|e| fb("AFL", &e))? {
            let r = link
                .exchange(&Command::read_record(sfi, rec))
                .await
                .map_err(|e| fb("READ RECORD", &e))?;
            if !r.sw.is_success() {
                return Err(ChipFailure::Fallback(format!(
                    "READ RECORD {sfi}/{rec}: {}",
                    r.sw
                )));
            }
            let items = poslab_tlv::parse(&r.data).map_err(|e| fb("record", &e))?;
            values.absorb(&items);
            if for_oda.contains(&(sfi, rec)) {
                oda_records.push((sfi, r.data));
            }
        }
        let pan_digits = values
            .get(0x5A)
            .map(|b| hex::encode_upper(b).trim_end_matches('F').to_string())
            .ok_or_else(|| ChipFailure::Fallback("the card gave no PAN (5A)".into()))?;
        let expiry_full = values.get(0x5F24).map(hex::encode).unwrap_or_default();
        let expiry = expiry_full.get(..4).unwrap_or("0000").to_string();
        if expiry.as_str() < format!("{:04}", now.yymm()).as_str() {
            return Err(ChipFailure::Refuse("EXPIRED CARD".into()));
        }
        let psn = values
            .get(0x5F34)
            .and_then(|b| b.first().copied())
            .map(|b| (b >> 4) * 10 + (b & 0x0F));
        let cvm = if contactless {
            if amount > p.contactless_cvm_limit {
                Cvm::OnlinePin
            } else {
                Cvm::NoCvm
            }
        } else {
            kernel::select_cvm(values.get(0x8E).unwrap_or(&[]), amount)
        };
        let cdol1 = values.get(0x8C).unwrap_or(&[]).to_vec();
        let cdol2 = values.get(0x8D).unwrap_or(&[]).to_vec();
        let today = now.yymm();
        let plan = self
            .authenticate_card(
                &mut link,
                &mut values,
                &app.aid,
                aip,
                &oda_records,
                &pan_digits,
                today,
            )
            .await;
        Ok(CardTxn {
            card: CardRead {
                pan: Pan::new(pan_digits),
                expiry,
                psn,
                track2: None,
                entry: if contactless {
                    Entry::Contactless
                } else {
                    Entry::Chip
                },
                label: app.label,
                service_code: None,
            },
            values,
            cdol1,
            cdol2,
            cvm,
            link: Some(link),
            oda: Some(plan),
            pdol_data,
        })
    }

    // ---- void, completion, settlement -----------------------------------------------

    async fn void(&mut self, receipt: Option<u32>) -> Vec<Step> {
        let original = receipt.and_then(|r| self.store.record(r).cloned());
        let Some(original) = original.filter(|o| o.outcome.approved() && o.kind != TxnKind::Void)
        else {
            self.show("VOID NOT POSSIBLE");
            return self.refusal_steps(ResultCode::REVERSAL_NOT_POSSIBLE, "VOID NOT POSSIBLE");
        };
        if original.state != TxnState::Standing {
            self.show("ALREADY VOIDED");
            return self.refusal_steps(ResultCode::ALREADY_REVERSED, "ALREADY VOIDED");
        }
        self.show(&format!("VOID RECEIPT {:04}", original.receipt));
        let mut record = TxnRecord {
            receipt: self.store.next_receipt(),
            stan: self.store.next_stan(),
            kind: TxnKind::Void,
            amount: original.amount,
            entry: Entry::Reference,
            outcome: Outcome::Cancelled,
            auth_code: None,
            rrn: None,
            at: self.now(),
            state: TxnState::Standing,
            cvm: None,
            original: Some(original.receipt),
            training: self.training(),
            ..original.clone()
        };
        if self.training() || original.training {
            record.outcome = Outcome::Approved { code: "00".into() };
        } else {
            if let Err(why) = self.ensure_signed_on().await {
                self.journal
                    .record("terminal", "sign-on-failed", json!({"why": why}));
                self.show("HOST UNAVAILABLE");
                return self.refusal_steps(ResultCode::COMMUNICATION_ERROR, "HOST UNAVAILABLE");
            }
            let request = iso::financial(
                &Financial {
                    kind: TxnKind::Void,
                    amount: original.amount,
                    stan: record.stan,
                    at: record.at,
                    card: None,
                    pin_block: None,
                    icc: Vec::new(),
                    original: Some(&original),
                },
                &self.cfg.params,
            );
            let reversal = SafEntry {
                mti: "0400".into(),
                stan: self.store.next_stan(),
                original_mti: "0200".into(),
                original_stan: record.stan,
                amount: record.amount,
                processing_code: TxnKind::Void.processing_code().into(),
                attempts: 0,
                receipt: record.receipt,
                original_at: record.at,
            };
            self.gate.commit();
            match self.online(request, reversal).await {
                Ok(a) => {
                    self.store.state.in_flight = None;
                    let code = iso::response_code(&a).unwrap_or("96").to_string();
                    record.rrn = a.text(37).map(str::to_owned);
                    record.outcome = if code == "00" {
                        Outcome::Approved { code }
                    } else {
                        Outcome::Declined { code }
                    };
                }
                Err(e) if e.maybe_delivered() => {
                    record.outcome = Outcome::NoAnswer;
                    record.state = TxnState::Reversed;
                    self.store.state.batch.push(record.clone());
                    self.reverse_in_flight().await;
                }
                Err(_) => {
                    record.outcome = Outcome::Refused {
                        reason: "host unavailable".into(),
                    }
                }
            }
        }
        if record.outcome.approved() {
            if let Some(o) = self.store.record_mut(original.receipt) {
                o.state = TxnState::Voided;
            }
        }
        let mut none = CardTxn::none();
        self.conclude(record, &mut none, Some(())).await
    }

    async fn completion(&mut self, receipt: Option<u32>, amount: u64) -> Vec<Step> {
        let original = receipt.and_then(|r| self.store.record(r).cloned());
        let Some(original) = original.filter(|o| {
            o.kind == TxnKind::PreAuth && o.outcome.approved() && o.state == TxnState::Standing
        }) else {
            self.show("NO SUCH PRE-AUTHORISATION");
            return self.refusal_steps(
                ResultCode::FUNCTION_NOT_POSSIBLE,
                "NO SUCH PRE-AUTHORISATION",
            );
        };
        let amount = if amount == 0 { original.amount } else { amount };
        if amount > original.amount {
            self.show("AMOUNT ABOVE PRE-AUTHORISATION");
            return self.refusal_steps(
                ResultCode::FUNCTION_NOT_POSSIBLE,
                "AMOUNT ABOVE PRE-AUTHORISATION",
            );
        }
        let mut record = TxnRecord {
            receipt: self.store.next_receipt(),
            stan: self.store.next_stan(),
            kind: TxnKind::Completion,
            amount,
            entry: Entry::Reference,
            at: self.now(),
            state: TxnState::Standing,
            original: Some(original.receipt),
            outcome: Outcome::Approved { code: "00".into() },
            ..original.clone()
        };
        // the completion is an advice: approved at once, delivered through the SAF queue
        if !record.training {
            self.store.state.saf.push(SafEntry {
                mti: "0220".into(),
                stan: record.stan,
                original_mti: "0100".into(),
                original_stan: original.stan,
                amount,
                processing_code: TxnKind::Completion.processing_code().into(),
                attempts: 0,
                receipt: record.receipt,
                original_at: original.at,
            });
        }
        if let Some(o) = self.store.record_mut(original.receipt) {
            o.state = TxnState::Completed;
        }
        self.store.state.batch.push(record.clone());
        self.save();
        self.flush_saf().await;
        let mut none = CardTxn::none();
        record.auth_code = original.auth_code.clone();
        self.conclude(record, &mut none, Some(())).await
    }

    /// Close of day: deliver the queue, settle, upload the batch on a mismatch, print the
    /// Z report, open a new batch.
    async fn end_of_day(&mut self) -> Vec<Step> {
        self.show("CLOSE OF DAY");
        let totals = poslab_terminal::txn::Totals::of(&self.store.state.batch);
        let p = self.cfg.params.clone();
        if !self.training() {
            if let Err(why) = self.ensure_signed_on().await {
                self.journal
                    .record("terminal", "sign-on-failed", json!({"why": why}));
                self.show("HOST UNAVAILABLE - BATCH STILL OPEN");
                return self.refusal_steps(ResultCode::COMMUNICATION_ERROR, "HOST UNAVAILABLE");
            }
            self.flush_saf().await;
            if !self.store.state.saf.is_empty() {
                self.show("HOST UNAVAILABLE - BATCH STILL OPEN");
                return self.refusal_steps(ResultCode::COMMUNICATION_ERROR, "REVERSALS PENDING");
            }
            let timeout = self.host_timeout();
            let stan = self.store.next_stan();
            let mut msg = iso::settlement(&totals, false, stan, &self.now(), &p);
            self.sign(&mut msg);
            self.save();
            let answer = self.host.exchange(&msg, timeout).await;
            let code = answer
                .as_ref()
                .ok()
                .and_then(|a| iso::response_code(a))
                .map(str::to_owned);
            self.journal.record(
                "terminal",
                "settlement",
                json!({"code": code, "totals": totals}),
            );
            match code.as_deref() {
                Some("00") => {}
                Some("95") => {
                    self.show("TOTALS MISMATCH - UPLOADING BATCH");
                    let records: Vec<TxnRecord> = self
                        .store
                        .state
                        .batch
                        .iter()
                        .filter(|r| r.settles())
                        .cloned()
                        .collect();
                    for r in &records {
                        let stan = self.store.next_stan();
                        let mut up = iso::batch_upload(r, stan, &self.now(), &p);
                        self.sign(&mut up);
                        if self.host.exchange(&up, timeout).await.is_err() {
                            self.show("HOST UNAVAILABLE - BATCH STILL OPEN");
                            return self.refusal_steps(
                                ResultCode::COMMUNICATION_ERROR,
                                "BATCH UPLOAD FAILED",
                            );
                        }
                    }
                    let stan = self.store.next_stan();
                    let mut again = iso::settlement(&totals, true, stan, &self.now(), &p);
                    self.sign(&mut again);
                    self.save();
                    let code = match self.host.exchange(&again, timeout).await {
                        Ok(a) => iso::response_code(&a).map(str::to_owned),
                        Err(_) => None,
                    };
                    self.journal.record(
                        "terminal",
                        "settlement",
                        json!({"code": code, "after_upload": true}),
                    );
                    if code.as_deref() != Some("00") {
                        self.show("SETTLEMENT FAILED - BATCH STILL OPEN");
                        return self.refusal_steps(ResultCode(0x77), "SETTLEMENT FAILED");
                    }
                }
                _ => {
                    self.show("SETTLEMENT FAILED - BATCH STILL OPEN");
                    return self.refusal_steps(ResultCode(0x77), "SETTLEMENT FAILED");
                }
            }
        }
        let z = receipt::report(&self.store.state.batch, true, &p, &self.now());
        self.print_lines(0, "z-report", z).await;
        self.store.state.batch.clear();
        self.store.state.receipt = 0;
        self.store.state.batches_closed += 1;
        self.save();
        self.show("BATCH CLOSED");
        let mut f = Fields::new();
        f.push(poslab_zvt::bmp::Bmp::new(0x27, vec![0]));
        f.push(poslab_zvt::bmp::Bmp::bcd(
            0x04,
            totals.debits_amount.saturating_sub(totals.credits_amount),
            6,
        ));
        vec![Step::StatusInformation(f), Step::Complete(Vec::new())]
    }

    fn sign(&self, msg: &mut Message) {
        if self.cfg.params.mac {
            if let Some((_, k)) = &self.keys {
                let _ = iso::sign(msg, k, &self.cfg.spec);
            }
        }
    }

    // ---- printing -------------------------------------------------------------------

    async fn print_record(&mut self, record: &TxnRecord) {
        let copies: &[Copy] = if record.outcome.approved() {
            &[Copy::Merchant, Copy::Customer]
        } else {
            &[Copy::Customer]
        };
        for copy in copies {
            let lines = receipt::transaction(record, *copy, &self.cfg.params);
            let what = match copy {
                Copy::Merchant => "merchant",
                Copy::Customer => "customer",
            };
            self.print_lines(record.receipt, what, lines).await;
        }
    }

    async fn print_lines(&mut self, receipt: u32, copy: &str, lines: Vec<receipt::Line>) {
        let bytes = receipt::escpos(&lines);
        let held = !self.store.state.held_receipts.is_empty();
        let result = if held {
            Err(PrinterProblem::PaperOut) // keep the order: behind the held ones
        } else {
            self.printer
                .print(&format!("{receipt:04} {copy}"), &bytes)
                .await
        };
        if result.is_ok() && self.printer.near_end_news() {
            self.journal
                .record("terminal", "operator", json!({"text": "PRINTER PAPER LOW"}));
            self.show_keep("PRINTER PAPER LOW");
        }
        if let Err(problem) = result {
            self.store.state.held_receipts.push(HeldReceipt {
                receipt,
                copy: copy.to_string(),
                escpos_hex: hex::encode(&bytes),
            });
            self.save();
            self.tell_operator(problem);
            self.next_print = Some(Instant::now() + PRINTER_RETRY);
        }
    }

    fn tell_operator(&mut self, problem: PrinterProblem) {
        let text = problem.operator_text();
        self.journal
            .record("terminal", "operator", json!({"text": text}));
        self.show_keep(text);
    }

    async fn print_held(&mut self) {
        while let Some(h) = self.store.state.held_receipts.first().cloned() {
            let bytes = hex::decode(&h.escpos_hex).unwrap_or_default();
            match self
                .printer
                .print(&format!("{:04} {} (held)", h.receipt, h.copy), &bytes)
                .await
            {
                Ok(()) => {
                    self.store.state.held_receipts.remove(0);
                    self.save();
                }
                Err(_) => {
                    self.next_print = Some(Instant::now() + PRINTER_RETRY);
                    return;
                }
            }
        }
        self.journal
            .record("terminal", "operator", json!({"text": "PRINTER OK"}));
    }
}

/// What the display says when going on line failed for a reason the operator must act on
/// (not provisioned at the host, keys that do not fit); `None` for an unreachable host.
fn sign_on_failure_text(why: &str) -> Option<&'static str> {
    if why.starts_with("sign-on refused: 03") {
        Some("TERMINAL NOT PROVISIONED - CALL HELPDESK")
    } else if why.starts_with("key exchange: ") || why.starts_with("key exchange answer") {
        Some("KEY EXCHANGE FAILED - CALL HELPDESK")
    } else {
        None
    }
}

fn this_month(now: &Stamp) -> poslab_emv::magstripe::Yymm {
    poslab_emv::magstripe::Yymm {
        year: (now.year % 100) as u8,
        month: now.month,
    }
}

impl CardTxn {
    fn none() -> CardTxn {
        CardTxn {
            card: CardRead {
                pan: Pan::new(""),
                expiry: String::new(),
                psn: None,
                track2: None,
                entry: Entry::Reference,
                label: String::new(),
                service_code: None,
            },
            values: TagValues::new(),
            cdol1: Vec::new(),
            cdol2: Vec::new(),
            cvm: Cvm::NoCvm,
            link: None,
            oda: None,
            pdol_data: Vec::new(),
        }
    }
}

enum ChipFailure {
    /// The chip cannot be used: swipe instead.
    Fallback(String),
    /// The card is refused.
    Refuse(String),
    /// Ask for the card again (shown to the cardholder).
    Retry(String),
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending::<()>().await,
    }
}

#[allow(dead_code)]
fn _reader_error_is_used(e: ReaderError) -> String {
    e.to_string()
}

#[cfg(test)]
mod sign_on_failure_tests {
    use super::sign_on_failure_text;

    #[test]
    fn the_operator_is_told_why_going_on_line_failed() {
        assert_eq!(
            sign_on_failure_text("sign-on refused: 03 INVALID MERCHANT"),
            Some("TERMINAL NOT PROVISIONED - CALL HELPDESK")
        );
        assert_eq!(
            sign_on_failure_text("key exchange: PIN key: kcv mismatch"),
            Some("KEY EXCHANGE FAILED - CALL HELPDESK")
        );
        assert_eq!(
            sign_on_failure_text("key exchange answer without keys (DE 48)"),
            Some("KEY EXCHANGE FAILED - CALL HELPDESK")
        );
        // an unreachable or busy host is not the operator's to fix
        assert_eq!(sign_on_failure_text("host: no answer within 30s"), None);
        assert_eq!(
            sign_on_failure_text("sign-on refused: 91 ISSUER UNAVAILABLE"),
            None
        );
        assert_eq!(sign_on_failure_text("key exchange refused: 96"), None);
    }
}
