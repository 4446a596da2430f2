//! A payment application that answers from a script: per command, the result code, the
//! intermediate statuses (with pauses), receipt lines and delays. It keeps a history of
//! every transaction it was asked for, so tests can count authorisations ("exactly one").
//!
//! The script is data (`serde`); `poslab zvt-terminal --script FILE` reads it from YAML:
//!
//! ```yaml
//! terminal: { terminal_id: 52523535, vu_number: "804011926", currency: 978 }
//! card: { pan: "<a test PAN from fixtures/cards>", expiry: 2812, name: Visa, card_type: 10 }
//! authorise:            # answers in order; the last one repeats
//!   - result: 0
//!     intermediate: [{ status: 0x0A }, { status: 0x01, after_ms: 300 }]
//!     delay_ms: 200     # before the status information
//!     auth_code: "123456"
//!   - result: 0x05      # the second purchase is declined
//! pre_authorise: [{ result: 0 }]    # reservations (06 22), answered like authorise
//! book_total: [{ result: 0 }]       # completion of a reservation (06 24)
//! partial_reversal: [{ result: 0 }] # release of part of a reservation (06 23)
//! ```
//!
//! Reservations are kept by receipt number: a book total or partial reversal for a receipt
//! number that names no open reservation is aborted with `B8` (error pre-authorisation), an
//! amount above what is still reserved with `B7` (pre-authorisation incorrect). A book
//! total closes the reservation (the rest is released); a partial reversal lowers it and
//! closes it when nothing is left.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use poslab_sensitive::Pan;
use serde::Deserialize;

use crate::codes::{IntermediateStatus, ResultCode};
use crate::terminal::{
    Context, PaymentApplication, PaymentRequest, Reply, Step, TransactionKind, TransactionRecord,
};
use crate::ZvtError;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerminalIdentity {
    pub terminal_id: u32,
    pub vu_number: String,
    /// ISO 4217 numeric, e.g. 978 for EUR.
    pub currency: u16,
    pub first_trace: u32,
    pub first_receipt: u32,
}

impl Default for TerminalIdentity {
    fn default() -> Self {
        TerminalIdentity {
            terminal_id: 52_523_535,
            vu_number: "804011926".into(),
            currency: 978,
            first_trace: 1,
            first_receipt: 1,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Card {
    /// Clear in the script (a test card); masked on the wire and everywhere it is shown.
    pub pan: String,
    /// YYMM.
    pub expiry: u16,
    pub sequence: u16,
    pub name: String,
    /// ZVT card type (BMP `8A`): 5 girocard, 6 Mastercard, 10 Visa, ...
    pub card_type: u8,
    /// BMP `19` payment type: 0x60 online, 0x70 PIN.
    pub payment_type: u8,
}

impl Default for Card {
    fn default() -> Self {
        Card {
            pan: poslab_sensitive::test_cards::visa().into(),
            expiry: 2812,
            sequence: 1,
            name: "Visa".into(),
            card_type: 10,
            payment_type: 0x60,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusStep {
    pub status: u8,
    /// Pause before this status is sent.
    pub after_ms: u64,
}

/// How the application answers one command.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Answer {
    /// ZVT result code: 0 approves, 0x01..0x63 is a host decline, 0x64.. a terminal error.
    pub result: u8,
    pub intermediate: Vec<StatusStep>,
    /// Pause before the status information.
    pub delay_ms: u64,
    pub auth_code: Option<String>,
    /// BMP `3C` additional text.
    pub text: Option<String>,
    /// Receipt lines instead of the generated ones.
    pub receipt: Option<Vec<String>>,
    /// May `06 B0` abort this command while it runs (default yes).
    pub abortable: Option<bool>,
    /// A different card for this answer.
    pub card: Option<Card>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Script {
    pub terminal: TerminalIdentity,
    pub card: Card,
    pub registration: Vec<Answer>,
    pub authorise: Vec<Answer>,
    pub refund: Vec<Answer>,
    pub reverse: Vec<Answer>,
    pub end_of_day: Vec<Answer>,
    pub pre_authorise: Vec<Answer>,
    pub book_total: Vec<Answer>,
    pub partial_reversal: Vec<Answer>,
}

impl Script {
    /// Checks what serde cannot: PANs are digits, texts fit their fields.
    pub fn validate(&self) -> Result<(), ZvtError> {
        let cards = std::iter::once(&self.card).chain(
            [
                &self.registration,
                &self.authorise,
                &self.refund,
                &self.reverse,
                &self.end_of_day,
                &self.pre_authorise,
                &self.book_total,
                &self.partial_reversal,
            ]
            .into_iter()
            .flatten()
            .filter_map(|a| a.card.as_ref()),
        );
        for card in cards {
            if !(12..=19).contains(&card.pan.len()) || !card.pan.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ZvtError::Script(format!(
                    "card pan must be 12 to 19 digits (got {} characters: {})",
                    card.pan.len(),
                    poslab_sensitive::mask_pan(&card.pan)
                )));
            }
        }
        if self.terminal.vu_number.len() > 15 {
            return Err(ZvtError::Script(
                "terminal vu_number is longer than 15 characters".into(),
            ));
        }
        Ok(())
    }
}

/// The [`PaymentApplication`] that answers from a [`Script`].
#[derive(Clone, Debug)]
pub struct ScriptedApplication {
    script: Script,
    used: [usize; 8],
    next_trace: u32,
    next_receipt: u32,
    next_turnover: u32,
    history: Vec<TransactionRecord>,
    reversed: HashSet<u32>,
    /// Open reservations: receipt number of the pre-authorisation -> amount still reserved.
    reservations: BTreeMap<u32, u64>,
    /// The reservations before the running command changed them, restored when an abort
    /// request ends it.
    reservations_before: Option<BTreeMap<u32, u64>>,
    batch_start: usize,
    abortable: bool,
    /// Every command the application was given, in order ("authorise", "refund", ...).
    pub calls: Vec<&'static str>,
}

impl Default for ScriptedApplication {
    fn default() -> Self {
        ScriptedApplication::new(Script::default())
    }
}

const REGISTRATION: usize = 0;
const AUTHORISE: usize = 1;
const REFUND: usize = 2;
const REVERSE: usize = 3;
const END_OF_DAY: usize = 4;
const PRE_AUTHORISE: usize = 5;
const BOOK_TOTAL: usize = 6;
const PARTIAL_REVERSAL: usize = 7;

impl ScriptedApplication {
    pub fn new(script: Script) -> ScriptedApplication {
        ScriptedApplication {
            next_trace: script.terminal.first_trace,
            next_receipt: script.terminal.first_receipt,
            next_turnover: 1,
            script,
            used: [0; 8],
            history: Vec::new(),
            reversed: HashSet::new(),
            reservations: BTreeMap::new(),
            reservations_before: None,
            batch_start: 0,
            abortable: false,
            calls: Vec::new(),
        }
    }

    pub fn script(&self) -> &Script {
        &self.script
    }

    /// Every transaction so far (including declined and aborted ones).
    pub fn history(&self) -> &[TransactionRecord] {
        &self.history
    }

    /// How many times the application was asked for `command` ("authorise", ...).
    pub fn count(&self, command: &str) -> usize {
        self.calls.iter().filter(|c| **c == command).count()
    }

    fn answer(&mut self, which: usize) -> Answer {
        let list = match which {
            REGISTRATION => &self.script.registration,
            AUTHORISE => &self.script.authorise,
            REFUND => &self.script.refund,
            REVERSE => &self.script.reverse,
            PRE_AUTHORISE => &self.script.pre_authorise,
            BOOK_TOTAL => &self.script.book_total,
            PARTIAL_REVERSAL => &self.script.partial_reversal,
            _ => &self.script.end_of_day,
        };
        // a new command: an abort request can only undo what this one changes
        self.reservations_before = None;
        let i = self.used[which];
        self.used[which] += 1;
        list.get(i).or(list.last()).cloned().unwrap_or_default()
    }

    fn before(answer: &Answer) -> Vec<Step> {
        let mut steps = Vec::new();
        for s in &answer.intermediate {
            if s.after_ms > 0 {
                steps.push(Step::Wait(Duration::from_millis(s.after_ms)));
            }
            steps.push(Step::Intermediate(IntermediateStatus(s.status)));
        }
        if answer.delay_ms > 0 {
            steps.push(Step::Wait(Duration::from_millis(answer.delay_ms)));
        }
        steps
    }

    fn record(
        &mut self,
        kind: TransactionKind,
        answer: &Answer,
        amount: Option<u64>,
        currency: Option<u16>,
        ctx: &Context,
        with_card: bool,
    ) -> TransactionRecord {
        let card = answer
            .card
            .clone()
            .unwrap_or_else(|| self.script.card.clone());
        let result = ResultCode(answer.result);
        let trace = self.next_trace;
        self.next_trace = self.next_trace % 999_999 + 1;
        let receipt = self.next_receipt;
        self.next_receipt = self.next_receipt % 9_999 + 1;
        let turnover = if result.is_success() {
            let t = self.next_turnover;
            self.next_turnover = self.next_turnover % 999_999 + 1;
            Some(t)
        } else {
            None
        };
        let id = &self.script.terminal;
        let mut record = TransactionRecord {
            kind,
            result,
            amount,
            currency: currency.or(Some(id.currency)),
            trace,
            receipt: Some(receipt),
            turnover,
            wall: ctx.wall,
            pan: with_card.then(|| Pan::new(card.pan.clone())),
            expiry: with_card.then_some(card.expiry),
            card_sequence: with_card.then_some(card.sequence),
            card_type: with_card.then_some(card.card_type),
            card_name: with_card.then(|| card.name.clone()),
            payment_type: with_card.then_some(card.payment_type),
            auth_code: if result.is_success() {
                answer
                    .auth_code
                    .clone()
                    .or_else(|| Some(format!("{:06}", 100_000 + trace)))
            } else {
                None
            },
            terminal_id: Some(id.terminal_id),
            vu_number: Some(id.vu_number.clone()),
            additional_text: answer.text.clone(),
            receipt_lines: Vec::new(),
        };
        record.receipt_lines = match &answer.receipt {
            Some(lines) => lines
                .iter()
                .map(|l| poslab_sensitive::mask_digit_runs(l))
                .collect(),
            None => receipt_lines(&record),
        };
        self.history.push(record.clone());
        record
    }

    fn payment(
        &mut self,
        which: usize,
        kind: TransactionKind,
        req: &PaymentRequest,
        ctx: &Context,
    ) -> Reply {
        let answer = self.answer(which);
        self.abortable = answer.abortable.unwrap_or(true);
        if req.amount.is_none() {
            return Reply::abort(ResultCode::FUNCTION_NOT_POSSIBLE);
        }
        let record = self.record(kind, &answer, req.amount, req.currency, ctx, true);
        Reply::for_record(&record, Self::before(&answer))
    }

    /// The reservations still open: receipt number of the pre-authorisation -> amount
    /// still reserved.
    pub fn open_reservations(&self) -> &BTreeMap<u32, u64> {
        &self.reservations
    }

    /// A book total or partial reversal of the reservation `receipt`. `book` closes it;
    /// otherwise the amount is released from it.
    fn settle(
        &mut self,
        which: usize,
        kind: TransactionKind,
        receipt: Option<u32>,
        req: &PaymentRequest,
        ctx: &Context,
    ) -> Reply {
        let mut answer = self.answer(which);
        self.abortable = answer.abortable.unwrap_or(true);
        let reserved = receipt.and_then(|r| self.reservations.get(&r).map(|a| (r, *a)));
        let Some((receipt, reserved)) = reserved else {
            return Reply::abort(ResultCode::PRE_AUTHORISATION_ERROR);
        };
        // no amount: the whole of what is still reserved
        let amount = req.amount.unwrap_or(reserved);
        if amount > reserved {
            return Reply::abort(ResultCode::PRE_AUTHORISATION_INCORRECT);
        }
        let original = self
            .history
            .iter()
            .find(|r| {
                r.receipt == Some(receipt)
                    && r.result.is_success()
                    && r.kind == TransactionKind::PreAuthorisation
            })
            .cloned();
        if answer.card.is_none() {
            answer.card = original
                .as_ref()
                .and_then(|o| o.pan.as_ref())
                .map(|p| Card {
                    pan: p.expose().to_string(),
                    ..self.script.card.clone()
                });
        }
        let currency = req
            .currency
            .or_else(|| original.as_ref().and_then(|o| o.currency));
        let record = self.record(kind, &answer, Some(amount), currency, ctx, true);
        if record.result.is_success() {
            self.reservations_before = Some(self.reservations.clone());
            let left = reserved - amount;
            if kind == TransactionKind::BookTotal || left == 0 {
                self.reservations.remove(&receipt);
            } else {
                self.reservations.insert(receipt, left);
            }
        }
        Reply::for_record(&record, Self::before(&answer))
    }
}

fn money(amount: u64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

/// The receipt a terminal prints for a record (PAN masked).
pub fn receipt_lines(r: &TransactionRecord) -> Vec<String> {
    let mut lines = vec!["POSLAB TERMINAL".to_string()];
    lines.push(format!(
        "TID {}  VU {}",
        r.terminal_id.map(|t| format!("{t:08}")).unwrap_or_default(),
        r.vu_number.clone().unwrap_or_default().trim_end()
    ));
    lines.push(
        match r.kind {
            TransactionKind::Purchase => "PURCHASE",
            TransactionKind::Refund => "REFUND",
            TransactionKind::Reversal => "REVERSAL",
            TransactionKind::EndOfDay => "END OF DAY",
            TransactionKind::PreAuthorisation => "PRE-AUTHORISATION",
            TransactionKind::BookTotal => "BOOK TOTAL",
            TransactionKind::PartialReversal => "PARTIAL REVERSAL",
        }
        .to_string(),
    );
    if let (Some(name), Some(pan)) = (&r.card_name, &r.pan) {
        lines.push(format!("{name}  {}", pan.masked()));
    }
    if let Some(a) = r.amount {
        let cur = match r.currency {
            Some(978) | None => "EUR".to_string(),
            Some(c) => format!("{c:03}"),
        };
        lines.push(format!("AMOUNT {cur} {}", money(a)));
    }
    lines.push(if r.result.is_success() {
        "APPROVED".to_string()
    } else {
        format!("DECLINED {}", r.result)
    });
    lines.push(format!(
        "TRACE {:06}  RECEIPT {:04}",
        r.trace,
        r.receipt.unwrap_or(0)
    ));
    if let Some(code) = &r.auth_code {
        lines.push(format!("AUTH {code}"));
    }
    if let Some(w) = r.wall {
        lines.push(format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            w.year, w.month, w.day, w.hour, w.minute, w.second
        ));
    }
    lines
}

impl PaymentApplication for ScriptedApplication {
    fn register(&mut self, _config: u8, _currency: Option<u16>, _ctx: &Context) -> Reply {
        self.calls.push("register");
        let answer = self.answer(REGISTRATION);
        let mut steps = Self::before(&answer);
        if answer.result == 0 {
            // completion with the terminal's identity: 19 status byte, 29 TID, 49 currency
            let id = &self.script.terminal;
            let fields = crate::bmp::Fields::new()
                .with(crate::bmp::Bmp::new(0x19, vec![0x00]))
                .with(crate::bmp::Bmp::bcd(0x29, id.terminal_id as u64, 4))
                .with(crate::bmp::Bmp::bcd(0x49, id.currency as u64, 2));
            steps.push(Step::Complete(fields.to_bytes()));
        } else {
            steps.push(Step::Abort(ResultCode(answer.result)));
        }
        Reply { steps }
    }

    fn authorise(&mut self, request: &PaymentRequest, ctx: &Context) -> Reply {
        self.calls.push("authorise");
        self.payment(AUTHORISE, TransactionKind::Purchase, request, ctx)
    }

    fn refund(&mut self, request: &PaymentRequest, ctx: &Context) -> Reply {
        self.calls.push("refund");
        self.payment(REFUND, TransactionKind::Refund, request, ctx)
    }

    fn reverse(&mut self, receipt: Option<u32>, ctx: &Context) -> Reply {
        self.calls.push("reverse");
        let mut answer = self.answer(REVERSE);
        self.abortable = answer.abortable.unwrap_or(true);
        let original = self
            .history
            .iter()
            .find(|r| {
                r.receipt == receipt
                    && r.result.is_success()
                    && matches!(r.kind, TransactionKind::Purchase | TransactionKind::Refund)
            })
            .cloned();
        let Some(original) = original else {
            return Reply::abort(ResultCode::REVERSAL_NOT_POSSIBLE);
        };
        let Some(orig_receipt) = original.receipt else {
            return Reply::abort(ResultCode::REVERSAL_NOT_POSSIBLE);
        };
        if answer.result == 0 && self.reversed.contains(&orig_receipt) {
            answer.result = ResultCode::ALREADY_REVERSED.0;
        }
        if answer.card.is_none() {
            answer.card = original.pan.as_ref().map(|p| Card {
                pan: p.expose().to_string(),
                ..self.script.card.clone()
            });
        }
        let record = self.record(
            TransactionKind::Reversal,
            &answer,
            original.amount,
            original.currency,
            ctx,
            true,
        );
        if record.result.is_success() {
            self.reversed.insert(orig_receipt);
        }
        Reply::for_record(&record, Self::before(&answer))
    }

    fn pre_authorise(&mut self, request: &PaymentRequest, ctx: &Context) -> Reply {
        self.calls.push("pre_authorise");
        let before = self.history.len();
        let reply = self.payment(
            PRE_AUTHORISE,
            TransactionKind::PreAuthorisation,
            request,
            ctx,
        );
        let made = self.history.get(before..).unwrap_or(&[]).last();
        if let Some(r) = made.filter(|r| r.result.is_success()) {
            if let (Some(receipt), Some(amount)) = (r.receipt, r.amount) {
                self.reservations_before = Some(self.reservations.clone());
                self.reservations.insert(receipt, amount);
            }
        }
        reply
    }

    fn book_total(
        &mut self,
        receipt: Option<u32>,
        request: &PaymentRequest,
        ctx: &Context,
    ) -> Reply {
        self.calls.push("book_total");
        self.settle(
            BOOK_TOTAL,
            TransactionKind::BookTotal,
            receipt,
            request,
            ctx,
        )
    }

    fn partial_reversal(
        &mut self,
        receipt: Option<u32>,
        request: &PaymentRequest,
        ctx: &Context,
    ) -> Reply {
        self.calls.push("partial_reversal");
        self.settle(
            PARTIAL_REVERSAL,
            TransactionKind::PartialReversal,
            receipt,
            request,
            ctx,
        )
    }

    fn end_of_day(&mut self, ctx: &Context) -> Reply {
        self.calls.push("end_of_day");
        let answer = self.answer(END_OF_DAY);
        self.abortable = false;
        let batch = self.history.get(self.batch_start..).unwrap_or(&[]);
        let total: i64 = batch
            .iter()
            .filter(|r| {
                r.result.is_success() && !r.receipt.is_some_and(|n| self.reversed.contains(&n))
            })
            .map(|r| match r.kind {
                TransactionKind::Purchase | TransactionKind::BookTotal => {
                    r.amount.unwrap_or(0) as i64
                }
                TransactionKind::Refund => -(r.amount.unwrap_or(0) as i64),
                _ => 0,
            })
            .sum();
        let record = self.record(
            TransactionKind::EndOfDay,
            &answer,
            Some(total.unsigned_abs()),
            None,
            ctx,
            false,
        );
        if record.result.is_success() {
            self.batch_start = self.history.len();
        }
        // the day's report comes as one text block (06 D3, an administration receipt),
        // as many terminals print it, not line by line
        let mut reply = Reply::for_record(&record, Self::before(&answer));
        for step in &mut reply.steps {
            if let Step::Print(lines) = step {
                *step = Step::PrintTextBlock {
                    receipt_type: 3,
                    lines: std::mem::take(lines),
                };
            }
        }
        reply
    }

    fn abort(&mut self, _ctx: &Context) -> bool {
        self.calls.push("abort");
        if !self.abortable {
            return false;
        }
        self.abortable = false;
        if let Some(before) = self.reservations_before.take() {
            self.reservations = before;
        }
        if let Some(last) = self.history.last_mut() {
            last.result = ResultCode::ABORTED;
            last.turnover = None;
            last.auth_code = None;
        }
        true
    }

    fn last_result(&self) -> Option<TransactionRecord> {
        self.history
            .iter()
            .rev()
            .find(|r| r.kind != TransactionKind::EndOfDay)
            .cloned()
    }

    fn log_off(&mut self, _ctx: &Context) {
        self.calls.push("log_off");
    }
}
