//! The payment-terminal role: speaks the ZVT protocol to an ECR and hands the payment
//! commands to a [`PaymentApplication`] (a scripted one in tests, the reference terminal
//! later). The application answers with a [`Reply`]: the steps the terminal then plays to
//! the ECR (intermediate status, status information, receipt lines, completion or abort,
//! and pauses between them). The terminal acknowledges every command (`80 00 00`), waits
//! for the ECR's acknowledgement of every message it sends, answers an abort request while
//! a payment runs, and keeps the last result for a repeat-receipt request, so an ECR that
//! lost an answer can recover it instead of paying twice.

use std::collections::VecDeque;
use std::time::Duration;

use poslab_sensitive::Pan;
use serde::Serialize;

use crate::apdu::Apdu;
use crate::bmp::{Bmp, Fields};
use crate::codes::{IntermediateStatus, ResultCode};
use crate::link::{Link, LinkConfig, LinkEvent};
use crate::message::Message;
use crate::{Time, WallTime};

/// What the application is told with every command.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    pub now: Time,
    pub wall: Option<WallTime>,
}

/// A payment request (authorisation, refund, pre-authorisation, book total, partial
/// reversal).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PaymentRequest {
    /// Minor units (cents).
    pub amount: Option<u64>,
    pub currency: Option<u16>,
    pub payment_type: Option<u8>,
    /// Every BMP the ECR sent (masked when shown).
    pub fields: Fields,
}

impl PaymentRequest {
    pub fn from_fields(fields: &Fields) -> PaymentRequest {
        PaymentRequest {
            amount: fields.amount(),
            currency: fields.currency(),
            payment_type: fields.get(0x19).and_then(|b| b.value.first().copied()),
            fields: fields.clone(),
        }
    }
}

/// What kind of transaction a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    Purchase,
    Refund,
    Reversal,
    EndOfDay,
    /// A reservation (`06 22`): funds held on the card, nothing charged yet.
    PreAuthorisation,
    /// The completion of a reservation (`06 24`): the final amount is charged.
    BookTotal,
    /// Part (or the rest) of a reservation released (`06 23`).
    PartialReversal,
}

/// One finished transaction, as the terminal reports it in a status information.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransactionRecord {
    pub kind: TransactionKind,
    pub result: ResultCode,
    pub amount: Option<u64>,
    pub currency: Option<u16>,
    pub trace: u32,
    pub receipt: Option<u32>,
    pub turnover: Option<u32>,
    pub wall: Option<WallTime>,
    pub pan: Option<Pan>,
    /// YYMM.
    pub expiry: Option<u16>,
    pub card_sequence: Option<u16>,
    pub card_type: Option<u8>,
    pub card_name: Option<String>,
    pub payment_type: Option<u8>,
    /// Authorisation attribute (BMP `3B`, the approval code).
    pub auth_code: Option<String>,
    pub terminal_id: Option<u32>,
    pub vu_number: Option<String>,
    pub additional_text: Option<String>,
    /// The receipt lines (already masked).
    pub receipt_lines: Vec<String>,
}

impl TransactionRecord {
    /// The status information (`04 0F`) BMPs for this record. The PAN goes out masked.
    pub fn to_fields(&self) -> Fields {
        let mut f = Fields::new();
        f.push(Bmp::new(0x27, vec![self.result.0]));
        if let Some(a) = self.amount {
            f.push(Bmp::bcd(0x04, a, 6));
        }
        f.push(Bmp::bcd(0x0B, self.trace as u64, 3));
        if let Some(w) = self.wall {
            let time = w.hour as u64 * 10_000 + w.minute as u64 * 100 + w.second as u64;
            f.push(Bmp::bcd(0x0C, time, 3));
            f.push(Bmp::bcd(0x0D, w.month as u64 * 100 + w.day as u64, 2));
        }
        if let Some(e) = self.expiry {
            f.push(Bmp::bcd(0x0E, e as u64, 2));
        }
        if let Some(s) = self.card_sequence {
            f.push(Bmp::bcd(0x17, s as u64, 2));
        }
        if let Some(p) = self.payment_type {
            f.push(Bmp::new(0x19, vec![p]));
        }
        if let Some(pan) = &self.pan {
            f.push(Bmp::masked_pan(pan));
        }
        if let Some(t) = self.terminal_id {
            f.push(Bmp::bcd(0x29, t as u64, 4));
        }
        if let Some(vu) = &self.vu_number {
            f.push(Bmp::ascii_fixed(0x2A, vu));
        }
        if let Some(code) = &self.auth_code {
            f.push(Bmp::ascii_fixed(0x3B, code));
        }
        if let Some(text) = &self.additional_text {
            f.push(Bmp::new(0x3C, text.as_bytes().to_vec()));
        }
        if let Some(c) = self.currency {
            f.push(Bmp::bcd(0x49, c as u64, 2));
        }
        if let Some(r) = self.receipt {
            f.push(Bmp::bcd(0x87, r as u64, 2));
        }
        if let Some(t) = self.card_type {
            f.push(Bmp::new(0x8A, vec![t]));
        }
        if let Some(n) = &self.card_name {
            f.push(Bmp::new(0x8B, n.as_bytes().to_vec()));
        }
        // last: ECR libraries that stop at the first BMP they do not know (the zvt crate
        // 0.1 does not know 88) still read everything before it
        if let Some(t) = self.turnover {
            f.push(Bmp::bcd(0x88, t as u64, 3));
        }
        f
    }
}

/// One thing the terminal plays to the ECR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Pause (the card is being read, the host is thinking).
    Wait(Duration),
    Intermediate(IntermediateStatus),
    StatusInformation(Fields),
    /// Receipt lines, one `06 D1` each.
    Print(Vec<String>),
    /// One `06 D1` print line.
    PrintLine {
        attribute: u8,
        text: String,
    },
    /// One `06 D3` print text block with all the lines of a receipt
    /// ([`crate::message::text_block`]).
    PrintTextBlock {
        receipt_type: u8,
        lines: Vec<String>,
    },
    /// `06 0F` with these data bytes; ends the command.
    Complete(Vec<u8>),
    /// `06 1E` with this result code; ends the command.
    Abort(ResultCode),
    /// The application is still working (reading the card, asking the host): the terminal
    /// plays nothing more until [`Terminal::resume`] gives it the rest of the steps.
    Hold,
}

/// The application's answer to one command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    pub steps: Vec<Step>,
}

impl Reply {
    pub fn complete() -> Reply {
        Reply {
            steps: vec![Step::Complete(Vec::new())],
        }
    }
    pub fn abort(code: ResultCode) -> Reply {
        Reply {
            steps: vec![Step::Abort(code)],
        }
    }
    /// The usual shape of a finished transaction: status information, receipt, completion
    /// (or abort with the result code when it failed).
    pub fn for_record(record: &TransactionRecord, before: Vec<Step>) -> Reply {
        let mut steps = before;
        steps.push(Step::StatusInformation(record.to_fields()));
        if !record.receipt_lines.is_empty() {
            steps.push(Step::Print(record.receipt_lines.clone()));
        }
        if record.result.is_success() {
            steps.push(Step::Complete(Vec::new()));
        } else {
            steps.push(Step::Abort(record.result));
        }
        Reply { steps }
    }
}

/// Where payment commands go. Implemented by [`crate::scripted::ScriptedApplication`] and,
/// later, the reference terminal.
pub trait PaymentApplication {
    /// `06 00` registration (config byte, currency). Usually `Reply::complete()`.
    fn register(&mut self, config: u8, currency: Option<u16>, ctx: &Context) -> Reply;
    /// `06 01`.
    fn authorise(&mut self, request: &PaymentRequest, ctx: &Context) -> Reply;
    /// `06 30`, for the transaction with this receipt number.
    fn reverse(&mut self, receipt: Option<u32>, ctx: &Context) -> Reply;
    /// `06 31`.
    fn refund(&mut self, request: &PaymentRequest, ctx: &Context) -> Reply;
    /// `06 50`.
    fn end_of_day(&mut self, ctx: &Context) -> Reply;
    /// `06 22` pre-authorisation (reservation). Answered like an authorisation; the status
    /// information's receipt number (BMP `87`) names the reservation. The default says the
    /// function is not possible.
    fn pre_authorise(&mut self, _request: &PaymentRequest, _ctx: &Context) -> Reply {
        Reply::abort(ResultCode::FUNCTION_NOT_POSSIBLE)
    }
    /// `06 24` book total: completes the reservation with this receipt number, charging
    /// `request.amount` (at most the reserved amount). The default says the function is
    /// not possible.
    fn book_total(
        &mut self,
        _receipt: Option<u32>,
        _request: &PaymentRequest,
        _ctx: &Context,
    ) -> Reply {
        Reply::abort(ResultCode::FUNCTION_NOT_POSSIBLE)
    }
    /// `06 23` partial reversal of a pre-authorisation: releases `request.amount` of the
    /// reservation with this receipt number. The default says the function is not possible.
    fn partial_reversal(
        &mut self,
        _receipt: Option<u32>,
        _request: &PaymentRequest,
        _ctx: &Context,
    ) -> Reply {
        Reply::abort(ResultCode::FUNCTION_NOT_POSSIBLE)
    }
    /// `06 B0` arrived while a command runs: may it be aborted? (The terminal then ends
    /// it with `06 1E 6C`.) An application that already committed says no.
    fn abort(&mut self, ctx: &Context) -> bool;
    /// The last finished transaction, for a repeat-receipt request (`06 20`).
    fn last_result(&self) -> Option<TransactionRecord>;
    /// `06 02`.
    fn log_off(&mut self, _ctx: &Context) {}
}

#[derive(Clone, Debug)]
pub struct TerminalConfig {
    pub link: LinkConfig,
    /// How long to wait for the ECR's `80 00 00` after each message (T3-like); on a
    /// serial link at least the ECR's retry span ([`LinkConfig::answer_wait`]).
    pub ecr_ack_timeout: Duration,
    /// Software version reported in the status-enquiry completion.
    pub software_version: String,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        TerminalConfig {
            link: LinkConfig::tcp(),
            ecr_ack_timeout: Duration::from_secs(5),
            software_version: format!("poslab-zvt {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Which way an APDU went, for the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// What happened, for logs and the journal.
#[derive(Clone, Debug)]
pub enum TerminalEvent {
    /// An APDU went in or out (decoded when it could be).
    Apdu {
        dir: Direction,
        apdu: Apdu,
        message: Option<Message>,
        error: Option<String>,
    },
    /// A command finished (all its messages acknowledged).
    Finished(Message),
    /// The ECR did not acknowledge a message in time; the rest of the command was dropped.
    EcrSilent(Message),
    Link(LinkEvent),
}

enum Waiting {
    Nothing,
    Until(Time),
    EcrAck {
        deadline: Time,
        sent: Message,
    },
    /// A [`Step::Hold`]: waiting for the application.
    App,
}

pub struct Terminal<A> {
    app: A,
    config: TerminalConfig,
    link: Link,
    wall: Option<WallTime>,
    /// The command being worked on, and what remains to play.
    running: Option<Message>,
    steps: VecDeque<Step>,
    waiting: Waiting,
    /// A status information of the running command went out: it can no longer be aborted.
    committed: bool,
    events: VecDeque<TerminalEvent>,
}

impl<A: PaymentApplication> Terminal<A> {
    pub fn new(app: A, config: TerminalConfig) -> Terminal<A> {
        Terminal {
            app,
            link: Link::new(config.link),
            config,
            wall: None,
            running: None,
            steps: VecDeque::new(),
            waiting: Waiting::Nothing,
            committed: false,
            events: VecDeque::new(),
        }
    }

    pub fn app(&self) -> &A {
        &self.app
    }
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }
    pub fn into_app(self) -> A {
        self.app
    }

    /// Wall-clock time for receipts and BMPs `0C`/`0D` (call before `handle_input`).
    pub fn set_wall_clock(&mut self, wall: WallTime) {
        self.wall = Some(wall);
    }

    /// True when no command is running.
    pub fn is_idle(&self) -> bool {
        self.running.is_none()
    }

    /// Forgets the connection state (a new ECR connected); the application keeps its data.
    pub fn reset_link(&mut self) {
        self.link.reset();
        self.running = None;
        self.steps.clear();
        self.waiting = Waiting::Nothing;
    }

    fn ctx(&self, now: Time) -> Context {
        Context {
            now,
            wall: self.wall,
        }
    }

    fn send(&mut self, message: Message, now: Time) {
        let apdu = message.to_apdu();
        self.events.push_back(TerminalEvent::Apdu {
            dir: Direction::Out,
            apdu: apdu.clone(),
            message: Some(message),
            error: None,
        });
        self.link.send(apdu, now);
    }

    pub fn handle_input(&mut self, bytes: &[u8], now: Time) {
        self.link.handle_input(bytes, now);
        self.drain_link(now);
    }

    pub fn handle_timeout(&mut self, now: Time) {
        self.link.handle_timeout(now);
        self.drain_link(now);
        match &self.waiting {
            Waiting::Until(t) if *t <= now => {
                self.waiting = Waiting::Nothing;
                self.advance(now);
            }
            Waiting::EcrAck { deadline, sent } if *deadline <= now => {
                let sent = sent.clone();
                self.events.push_back(TerminalEvent::EcrSilent(sent));
                self.finish();
            }
            _ => {}
        }
    }

    fn drain_link(&mut self, now: Time) {
        while let Some(ev) = self.link.poll_event() {
            match ev {
                LinkEvent::Received(apdu) => self.on_apdu(apdu, now),
                LinkEvent::Lost(apdu) => {
                    self.events
                        .push_back(TerminalEvent::Link(LinkEvent::Lost(apdu)));
                    if matches!(self.waiting, Waiting::EcrAck { .. }) {
                        if let Waiting::EcrAck { sent, .. } =
                            std::mem::replace(&mut self.waiting, Waiting::Nothing)
                        {
                            self.events.push_back(TerminalEvent::EcrSilent(sent));
                        }
                        self.finish();
                    }
                }
                other => self.events.push_back(TerminalEvent::Link(other)),
            }
        }
    }

    fn on_apdu(&mut self, apdu: Apdu, now: Time) {
        let decoded = Message::from_apdu(&apdu);
        self.events.push_back(TerminalEvent::Apdu {
            dir: Direction::In,
            apdu: apdu.clone(),
            message: decoded.as_ref().ok().cloned(),
            error: decoded.as_ref().err().map(|e| e.to_string()),
        });
        let message = match decoded {
            Ok(m) => m,
            Err(_) => {
                // a malformed command is answered, never fatal
                self.send(Message::Nak(ResultCode::PROTOCOL_ERROR), now);
                return;
            }
        };
        match (&message, &self.waiting) {
            (Message::Ack, Waiting::EcrAck { .. }) => {
                self.waiting = Waiting::Nothing;
                self.advance(now);
            }
            // the ECR refused a message (84 xx): carry on, as terminals do
            (Message::Nak(_), Waiting::EcrAck { .. }) => {
                self.waiting = Waiting::Nothing;
                self.advance(now);
            }
            (Message::Ack | Message::Nak(_), _) => {} // stray acknowledgement
            (Message::AbortRequest, _) if self.running.is_some() => {
                self.send(Message::Ack, now);
                let ctx = self.ctx(now);
                if !self.committed && self.app.abort(&ctx) {
                    self.steps = VecDeque::from([Step::Abort(ResultCode::ABORTED)]);
                    if matches!(self.waiting, Waiting::Until(_) | Waiting::App) {
                        self.waiting = Waiting::Nothing;
                        self.advance(now);
                    }
                }
            }
            (_, _) if self.running.is_some() && matches!(self.waiting, Waiting::EcrAck { .. }) => {
                // the register sends a new command instead of acknowledging ours: it gave
                // up on the running one (the ECR is the master), so that one ends
                // unacknowledged and the new one starts
                if let Waiting::EcrAck { sent, .. } =
                    std::mem::replace(&mut self.waiting, Waiting::Nothing)
                {
                    self.events.push_back(TerminalEvent::EcrSilent(sent));
                }
                self.finish();
                self.start(message, now);
            }
            (_, _) if self.running.is_some() => {
                // one command at a time
                self.send(Message::Nak(ResultCode::FUNCTION_NOT_POSSIBLE), now);
            }
            _ => self.start(message, now),
        }
    }

    fn start(&mut self, message: Message, now: Time) {
        let ctx = self.ctx(now);
        let reply = match &message {
            Message::Registration {
                config, currency, ..
            } => Some(self.app.register(*config, *currency, &ctx)),
            Message::Authorisation(fields) => Some(
                self.app
                    .authorise(&PaymentRequest::from_fields(fields), &ctx),
            ),
            Message::Refund { fields, .. } => {
                Some(self.app.refund(&PaymentRequest::from_fields(fields), &ctx))
            }
            Message::Reversal { fields, .. } => Some(self.app.reverse(fields.receipt(), &ctx)),
            Message::PreAuthorisation(fields) => Some(
                self.app
                    .pre_authorise(&PaymentRequest::from_fields(fields), &ctx),
            ),
            Message::BookTotal(fields) => Some(self.app.book_total(
                fields.receipt(),
                &PaymentRequest::from_fields(fields),
                &ctx,
            )),
            Message::PartialReversal(fields) => Some(self.app.partial_reversal(
                fields.receipt(),
                &PaymentRequest::from_fields(fields),
                &ctx,
            )),
            Message::EndOfDay { .. } => Some(self.app.end_of_day(&ctx)),
            Message::RepeatReceipt { .. } => Some(match self.app.last_result() {
                Some(record) => {
                    let mut reply = Reply::for_record(&record, Vec::new());
                    // a repeat receipt completes even when the repeated result was a failure
                    if let Some(last) = reply.steps.last_mut() {
                        *last = Step::Complete(Vec::new());
                    }
                    reply
                }
                None => Reply::abort(ResultCode::FUNCTION_NOT_POSSIBLE),
            }),
            Message::StatusEnquiry { .. } => {
                // completion: software version (LLLVAR), terminal status code 00 (ready)
                let v = self.config.software_version.as_bytes();
                let v = v.get(..999).unwrap_or(v);
                let n = v.len();
                let mut data = vec![
                    0xF0 | (n / 100) as u8,
                    0xF0 | (n / 10 % 10) as u8,
                    0xF0 | (n % 10) as u8,
                ];
                data.extend_from_slice(v);
                data.push(0x00);
                Some(Reply {
                    steps: vec![Step::Complete(data)],
                })
            }
            Message::LogOff => {
                self.app.log_off(&ctx);
                None
            }
            Message::AbortRequest => None, // nothing running: acknowledged, nothing to abort
            Message::Other(_) => {
                self.send(Message::Nak(ResultCode::FUNCTION_NOT_POSSIBLE), now);
                return;
            }
            // messages only a terminal sends
            _ => {
                self.send(Message::Nak(ResultCode::FUNCTION_NOT_POSSIBLE), now);
                return;
            }
        };
        self.send(Message::Ack, now);
        match reply {
            Some(reply) => {
                self.running = Some(message);
                self.committed = false;
                self.steps = reply.steps.into();
                self.advance(now);
            }
            None => self.events.push_back(TerminalEvent::Finished(message)),
        }
    }

    fn advance(&mut self, now: Time) {
        while let Some(step) = self.steps.pop_front() {
            let message = match step {
                Step::Hold => {
                    self.waiting = Waiting::App;
                    return;
                }
                Step::Wait(d) => {
                    self.waiting = Waiting::Until(now + d);
                    return;
                }
                Step::Intermediate(status) => Message::IntermediateStatus {
                    status,
                    rest: Vec::new(),
                },
                Step::StatusInformation(fields) => {
                    self.committed = true;
                    Message::StatusInformation(fields)
                }
                Step::Print(lines) => {
                    // one print line per receipt line; the last one is flagged (attribute FF)
                    let n = lines.len();
                    for (i, text) in lines.into_iter().enumerate().rev() {
                        let attribute = if i + 1 == n { 0xFF } else { 0x00 };
                        self.steps.push_front(Step::PrintLine { attribute, text });
                    }
                    continue;
                }
                Step::PrintLine { attribute, text } => Message::PrintLine {
                    attribute,
                    text: text.into_bytes(),
                },
                Step::PrintTextBlock {
                    receipt_type,
                    lines,
                } => Message::PrintTextBlock(crate::message::text_block(receipt_type, &lines)),
                Step::Complete(data) => {
                    self.steps.clear();
                    Message::Completion(data)
                }
                Step::Abort(code) => {
                    self.steps.clear();
                    Message::Abort {
                        code,
                        rest: Vec::new(),
                    }
                }
            };
            self.send(message.clone(), now);
            self.waiting = Waiting::EcrAck {
                deadline: now + self.config.link.answer_wait(self.config.ecr_ack_timeout),
                sent: message,
            };
            return;
        }
        self.finish();
    }

    fn finish(&mut self) {
        self.waiting = Waiting::Nothing;
        self.steps.clear();
        if let Some(m) = self.running.take() {
            self.events.push_back(TerminalEvent::Finished(m));
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.link.poll_transmit()
    }

    /// Whether the running command waits for the application ([`Step::Hold`]).
    pub fn is_held(&self) -> bool {
        matches!(self.waiting, Waiting::App)
    }

    /// The application's next steps for the held command (they may end with another
    /// [`Step::Hold`]). Ignored when no command is held (it ended, or the ECR aborted it).
    pub fn resume(&mut self, steps: Vec<Step>, now: Time) {
        if !self.is_held() || self.running.is_none() {
            return;
        }
        self.waiting = Waiting::Nothing;
        let rest = std::mem::take(&mut self.steps);
        self.steps = steps.into();
        self.steps.extend(rest);
        self.advance(now);
    }

    pub fn poll_event(&mut self) -> Option<TerminalEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        let own = match &self.waiting {
            Waiting::Nothing => None,
            Waiting::Until(t) => Some(*t),
            Waiting::EcrAck { deadline, .. } => Some(*deadline),
            Waiting::App => None,
        };
        match (own, self.link.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
