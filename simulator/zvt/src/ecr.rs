//! The cash-register (ECR) role.
//!
//! Sends one command, acknowledges every message the terminal sends (`80 00 00`), collects
//! intermediate statuses, status information and receipt lines, and ends on the
//! terminal's completion (`06 0F`) or abort (`06 1E`).
//!
//! Money safety: when the answer to a payment (authorisation, refund, reversal,
//! pre-authorisation, book total, partial reversal) is lost —
//! no acknowledgement, no completion within T4, the serial line gave up, the connection
//! dropped — the ECR never sends the payment again blindly. It first asks the terminal for
//! its last result (repeat receipt, `06 20`) and decides:
//! - the last result is ours (same amount, and the trace number of this command's own
//!   status information when that arrived and only the completion was lost, or a trace
//!   number other than the last one this ECR knew when it sent the command, or a
//!   timestamp within the match window of when the command was sent): that is the
//!   outcome, marked `recovered`;
//! - the terminal has no last result, or it is another transaction (the trace number this
//!   ECR knew when it sent the command, another amount, an older time): the payment did
//!   not happen, so it is sent again, once (`resent`);
//! - anything else (no answer to the question, asked up to `recovery_attempts` times, or
//!   no way to tell): the outcome is
//!   `unknown` and the payment is not sent again; a person must look at the terminal.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use crate::apdu::Apdu;
use crate::bmp::{Bmp, Fields};
use crate::codes::ResultCode;
use crate::link::{Link, LinkConfig, LinkEvent};
use crate::message::{Message, Password};
use crate::terminal::Direction;
use crate::{Time, WallTime};

/// What the ECR asks the terminal to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum EcrCommand {
    Register {
        config: u8,
        currency: Option<u16>,
    },
    Purchase {
        amount: u64,
        currency: Option<u16>,
    },
    Refund {
        amount: u64,
        currency: Option<u16>,
    },
    Reverse {
        receipt: u32,
    },
    /// Reserve an amount on the card (pre-authorisation, `06 22`).
    PreAuthorise {
        amount: u64,
        currency: Option<u16>,
    },
    /// Complete the reservation with this receipt number, charging `amount` (at most the
    /// reserved amount) (book total, `06 24`).
    BookTotal {
        receipt: u32,
        amount: u64,
    },
    /// Release `amount` of the reservation with this receipt number (partial reversal of a
    /// pre-authorisation, `06 23`).
    PartialReversal {
        receipt: u32,
        amount: u64,
    },
    EndOfDay,
    Status,
    RepeatReceipt,
    Abort,
    LogOff,
}

impl EcrCommand {
    pub fn name(&self) -> &'static str {
        match self {
            EcrCommand::Register { .. } => "register",
            EcrCommand::Purchase { .. } => "purchase",
            EcrCommand::Refund { .. } => "refund",
            EcrCommand::Reverse { .. } => "reverse",
            EcrCommand::PreAuthorise { .. } => "pre-authorise",
            EcrCommand::BookTotal { .. } => "book-total",
            EcrCommand::PartialReversal { .. } => "partial-reversal",
            EcrCommand::EndOfDay => "end-of-day",
            EcrCommand::Status => "status",
            EcrCommand::RepeatReceipt => "repeat-receipt",
            EcrCommand::Abort => "abort",
            EcrCommand::LogOff => "log-off",
        }
    }

    pub fn to_message(&self, password: Password) -> Message {
        let money = |amount: u64, currency: Option<u16>| {
            let mut f = Fields::new().with(Bmp::bcd(0x04, amount, 6));
            if let Some(c) = currency {
                f.push(Bmp::bcd(0x49, c as u64, 2));
            }
            f
        };
        match self {
            EcrCommand::Register { config, currency } => Message::Registration {
                password,
                config: *config,
                currency: *currency,
                fields: Fields::new().with(Bmp::new(0x03, vec![0x00])),
            },
            EcrCommand::Purchase { amount, currency } => {
                Message::Authorisation(money(*amount, *currency))
            }
            EcrCommand::Refund { amount, currency } => Message::Refund {
                password,
                fields: money(*amount, *currency),
            },
            EcrCommand::Reverse { receipt } => Message::Reversal {
                password,
                fields: Fields::new().with(Bmp::bcd(0x87, *receipt as u64, 2)),
            },
            EcrCommand::PreAuthorise { amount, currency } => {
                Message::PreAuthorisation(money(*amount, *currency))
            }
            EcrCommand::BookTotal { receipt, amount } => Message::BookTotal(
                Fields::new()
                    .with(Bmp::bcd(0x87, *receipt as u64, 2))
                    .with(Bmp::bcd(0x04, *amount, 6)),
            ),
            EcrCommand::PartialReversal { receipt, amount } => Message::PartialReversal(
                Fields::new()
                    .with(Bmp::bcd(0x87, *receipt as u64, 2))
                    .with(Bmp::bcd(0x04, *amount, 6)),
            ),
            EcrCommand::EndOfDay => Message::EndOfDay {
                password,
                fields: Fields::new(),
            },
            EcrCommand::Status => Message::StatusEnquiry {
                password: Some(password),
                fields: Fields::new(),
            },
            EcrCommand::RepeatReceipt => Message::RepeatReceipt {
                password,
                fields: Fields::new(),
            },
            EcrCommand::Abort => Message::AbortRequest,
            EcrCommand::LogOff => Message::LogOff,
        }
    }

    /// The amount the terminal's status information should show for this command.
    fn amount(&self) -> Option<u64> {
        match self {
            EcrCommand::Purchase { amount, .. }
            | EcrCommand::Refund { amount, .. }
            | EcrCommand::PreAuthorise { amount, .. }
            | EcrCommand::BookTotal { amount, .. }
            | EcrCommand::PartialReversal { amount, .. } => Some(*amount),
            _ => None,
        }
    }

    /// Whether a lost answer must be recovered before anything is sent again. A
    /// reservation counts: sent twice, it holds the cardholder's funds twice.
    pub fn moves_money(&self) -> bool {
        matches!(
            self,
            EcrCommand::Purchase { .. }
                | EcrCommand::Refund { .. }
                | EcrCommand::Reverse { .. }
                | EcrCommand::PreAuthorise { .. }
                | EcrCommand::BookTotal { .. }
                | EcrCommand::PartialReversal { .. }
        )
    }

    /// Commands that end with the terminal's acknowledgement alone.
    fn ack_only(&self) -> bool {
        matches!(self, EcrCommand::Abort | EcrCommand::LogOff)
    }
}

#[derive(Clone, Debug)]
pub struct EcrConfig {
    pub link: LinkConfig,
    pub password: u32,
    /// How long to wait for the terminal's `80 00 00` after a command (T3-like). On a
    /// serial link the wait is at least the terminal's own retry span (its link's attempts
    /// at that `80 00 00`, each after the ACK timeout): giving up sooner would cross the
    /// terminal's last retransmission with a repeat-receipt request.
    pub ack_timeout: Duration,
    /// How long to wait for the end of a command; restarted by every message (T4).
    pub completion_timeout: Duration,
    /// How many times the ECR asks for the last result (repeat receipt) before it calls a
    /// payment's outcome unknown; each request waits for its answer as a command does.
    pub recovery_attempts: u8,
    /// How long a repeat-receipt request waits for its end (the terminal answers from
    /// memory at once; a lost answer is asked for again sooner than T4 would allow).
    pub recovery_timeout: Duration,
    /// A recovered result counts as ours when its time is within this window of when the
    /// command was sent (used when the trace number alone cannot tell).
    pub match_window: Duration,
}

impl Default for EcrConfig {
    fn default() -> Self {
        EcrConfig {
            link: LinkConfig::tcp(),
            password: 0,
            ack_timeout: Duration::from_secs(5),
            completion_timeout: Duration::from_secs(180),
            recovery_attempts: 3,
            recovery_timeout: Duration::from_secs(30),
            match_window: Duration::from_secs(600),
        }
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Completed; for a payment, approved.
    Success,
    /// The terminal ended it with an error (declined, aborted, not possible).
    Failed,
    /// The terminal refused the command (`84 xx`).
    Refused,
    /// Nobody can tell what happened; a payment was NOT sent again.
    Unknown,
}

/// Everything the terminal reported for one command (card data masked).
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub command: EcrCommand,
    pub status: Status,
    pub result_code: Option<ResultCode>,
    /// The result code's meaning, or why the outcome is unknown.
    pub result_text: Option<String>,
    pub amount: Option<u64>,
    pub currency: Option<u16>,
    pub pan: Option<String>,
    pub card_name: Option<String>,
    pub trace: Option<u32>,
    pub receipt: Option<u32>,
    pub terminal_id: Option<u32>,
    pub auth_code: Option<String>,
    pub additional_text: Option<String>,
    /// Intermediate status texts, in order.
    pub intermediate: Vec<String>,
    pub receipt_lines: Vec<String>,
    pub status_information: Vec<Fields>,
    /// The completion's data: its BMPs, or (after a status enquiry) the software version.
    pub completion: Option<String>,
    /// The result was recovered with a repeat-receipt request after the answer was lost.
    pub recovered: bool,
    /// The payment was sent a second time after the terminal showed it had not run.
    pub resent: bool,
    pub notes: Vec<String>,
}

impl Outcome {
    fn new(command: EcrCommand) -> Outcome {
        Outcome {
            command,
            status: Status::Unknown,
            result_code: None,
            result_text: None,
            amount: None,
            currency: None,
            pan: None,
            card_name: None,
            trace: None,
            receipt: None,
            terminal_id: None,
            auth_code: None,
            additional_text: None,
            intermediate: Vec::new(),
            receipt_lines: Vec::new(),
            status_information: Vec::new(),
            completion: None,
            recovered: false,
            resent: false,
            notes: Vec::new(),
        }
    }

    fn absorb(&mut self, f: &Fields) {
        self.result_code = f.result_code().or(self.result_code);
        self.amount = f.amount().or(self.amount);
        self.currency = f.currency().or(self.currency);
        self.pan = f.pan_masked().or(self.pan.take());
        self.card_name = f.card_name().or(self.card_name.take());
        self.trace = f.trace().or(self.trace);
        self.receipt = f.receipt().or(self.receipt);
        self.terminal_id = f.terminal_id().or(self.terminal_id);
        self.auth_code = f.text(0x3B).or(self.auth_code.take());
        self.additional_text = f.additional_text().or(self.additional_text.take());
        self.status_information.push(f.clone());
    }
}

/// What happened, for logs and the journal.
#[derive(Clone, Debug)]
pub enum EcrEvent {
    Apdu {
        dir: Direction,
        apdu: Apdu,
        message: Option<Message>,
        error: Option<String>,
    },
    /// The connection must be made again (TCP dropped while a payment was open); call
    /// [`Ecr::handle_link_up`] once it is, or [`Ecr::handle_link_failed`].
    NeedReconnect,
    /// A money-safety decision, in words.
    Decision(String),
    Link(LinkEvent),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    AwaitAck(Time),
    AwaitEnd(Time),
    Reconnecting,
}

struct Run {
    command: EcrCommand,
    message: Message,
    started: Option<WallTime>,
    /// The last trace number this ECR knew when the command was sent: a last result
    /// with this trace is an older transaction.
    known_before: Option<u32>,
    recovering: bool,
    /// Repeat-receipt requests sent for this command so far.
    asked: u8,
    outcome: Outcome,
    /// What the recovery request brought back.
    recovered: Outcome,
}

pub struct Ecr {
    config: EcrConfig,
    link: Link,
    phase: Phase,
    run: Option<Run>,
    last_trace: Option<u32>,
    events: VecDeque<EcrEvent>,
    outcomes: VecDeque<Outcome>,
}

impl Ecr {
    pub fn new(config: EcrConfig) -> Ecr {
        Ecr {
            link: Link::new(config.link),
            config,
            phase: Phase::Idle,
            run: None,
            last_trace: None,
            events: VecDeque::new(),
            outcomes: VecDeque::new(),
        }
    }

    /// The trace number of the last transaction this ECR knows the terminal made (learned
    /// from every status information; may be seeded from the ECR's own journal).
    pub fn known_trace(&self) -> Option<u32> {
        self.last_trace
    }
    pub fn set_known_trace(&mut self, trace: Option<u32>) {
        self.last_trace = trace;
    }

    pub fn is_idle(&self) -> bool {
        self.run.is_none()
    }

    /// How long the terminal's `80 00 00` may take (see [`EcrConfig::ack_timeout`]).
    fn ack_wait(&self) -> Duration {
        self.config.link.answer_wait(self.config.ack_timeout)
    }

    /// Sends a command. `wall` is the ECR's clock at that moment (for matching a recovered
    /// result). A command while another runs is refused with an `Unknown` outcome note.
    pub fn start(&mut self, command: EcrCommand, now: Time, wall: Option<WallTime>) {
        if self.run.is_some() {
            let mut o = Outcome::new(command);
            o.notes
                .push("another command is still running; not sent".into());
            o.result_text = Some("not sent: busy".into());
            self.outcomes.push_back(o);
            return;
        }
        let message = command.to_message(Password::from_number(self.config.password));
        self.run = Some(Run {
            outcome: Outcome::new(command.clone()),
            recovered: Outcome::new(EcrCommand::RepeatReceipt),
            command,
            message: message.clone(),
            started: wall,
            known_before: self.last_trace,
            recovering: false,
            asked: 0,
        });
        self.send(message, now);
        self.phase = Phase::AwaitAck(now + self.ack_wait());
    }

    /// Asks the terminal to abort the running command (`06 B0`), on the same connection.
    /// The command then ends with whatever the terminal answers (usually `06 1E 6C`).
    pub fn request_abort(&mut self, now: Time) {
        if matches!(self.phase, Phase::AwaitEnd(_))
            && self.run.as_ref().is_some_and(|r| !r.recovering)
        {
            self.send(Message::AbortRequest, now);
        }
    }

    fn send(&mut self, message: Message, now: Time) {
        let apdu = message.to_apdu();
        self.events.push_back(EcrEvent::Apdu {
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
        match self.phase {
            Phase::AwaitAck(t) if t <= now && self.link.is_delivering() => {
                // the serial link still retransmits the command: it may yet arrive, and a
                // repeat-receipt request sent now would cross it (the terminal's `80 00`
                // could then be taken for the wrong command); wait for the link to
                // deliver it or give it up (bounded by its retries)
                self.phase = Phase::AwaitAck(now + self.ack_wait());
            }
            Phase::AwaitAck(t) if t <= now => self.lost("no acknowledgement", now),
            Phase::AwaitEnd(t) if t <= now => self.lost("no completion within T4", now),
            _ => {}
        }
    }

    /// The connection closed (TCP) or the port went away.
    pub fn handle_link_down(&mut self, now: Time) {
        if self.run.is_none() || self.phase == Phase::Reconnecting {
            return;
        }
        self.lost("connection closed", now);
    }

    /// A new connection is up (after [`EcrEvent::NeedReconnect`]).
    pub fn handle_link_up(&mut self, now: Time) {
        self.link.reset();
        if self.phase == Phase::Reconnecting {
            self.ask_last_result(now);
        }
    }

    /// The terminal restarted under the running command (a power loss, a watchdog reset):
    /// whatever the link had in flight is gone. A payment's outcome is asked for (repeat
    /// receipt) as for any lost answer; anything else ends unknown.
    pub fn handle_restart(&mut self, now: Time) {
        self.link.reset();
        if self.run.is_none() {
            return;
        }
        self.lost("the terminal restarted", now);
    }

    /// The connection could not be made again.
    pub fn handle_link_failed(&mut self, reason: &str) {
        if self.run.is_some() {
            self.finish_unknown(format!("cannot reconnect: {reason}"));
        }
    }

    fn drain_link(&mut self, now: Time) {
        while let Some(ev) = self.link.poll_event() {
            match ev {
                LinkEvent::Received(apdu) => self.on_apdu(apdu, now),
                LinkEvent::Lost(apdu) => {
                    self.events.push_back(EcrEvent::Link(LinkEvent::Lost(apdu)));
                    if self.run.is_some() {
                        self.lost("the serial line gave up after the retries", now);
                    }
                }
                other => self.events.push_back(EcrEvent::Link(other)),
            }
        }
    }

    fn on_apdu(&mut self, apdu: Apdu, now: Time) {
        let decoded = Message::from_apdu(&apdu);
        self.events.push_back(EcrEvent::Apdu {
            dir: Direction::In,
            apdu: apdu.clone(),
            message: decoded.as_ref().ok().cloned(),
            error: decoded.as_ref().err().map(|e| e.to_string()),
        });
        let Some(run) = self.run.as_mut() else {
            // unsolicited: acknowledge anything but acknowledgements
            if !matches!(decoded, Ok(Message::Ack | Message::Nak(_))) {
                self.send(Message::Ack, now);
            }
            return;
        };
        let message = match decoded {
            Ok(m) => m,
            Err(err) => {
                run.outcome
                    .notes
                    .push(format!("malformed message from the terminal: {err}"));
                self.send(Message::Nak(ResultCode::PROTOCOL_ERROR), now);
                return;
            }
        };
        let t4 = now
            + if run.recovering {
                self.config
                    .recovery_timeout
                    .min(self.config.completion_timeout)
            } else {
                self.config.completion_timeout
            };
        match (&message, self.phase) {
            (Message::Ack, Phase::AwaitAck(_)) => {
                if run.command.ack_only() && !run.recovering {
                    let mut o =
                        std::mem::replace(&mut run.outcome, Outcome::new(EcrCommand::Abort));
                    o.status = Status::Success;
                    self.finish(o);
                } else {
                    self.phase = Phase::AwaitEnd(t4);
                }
            }
            (Message::Nak(code), Phase::AwaitAck(_)) => {
                let code = *code;
                if run.recovering {
                    // the terminal cannot repeat a receipt: it has no last result
                    self.decide(now);
                } else {
                    let mut o =
                        std::mem::replace(&mut run.outcome, Outcome::new(EcrCommand::Abort));
                    o.status = Status::Refused;
                    o.result_code = Some(code);
                    o.result_text = Some(code.to_string());
                    self.finish(o);
                }
            }
            (Message::Ack | Message::Nak(_), _) => {}
            (_, Phase::AwaitAck(_) | Phase::AwaitEnd(_)) => {
                // the terminal may skip the acknowledgement and answer at once
                self.send(Message::Ack, now);
                self.phase = Phase::AwaitEnd(t4);
                let Some(run) = self.run.as_mut() else { return };
                let target = if run.recovering {
                    &mut run.recovered
                } else {
                    &mut run.outcome
                };
                match message {
                    Message::IntermediateStatus { status, .. } => target.intermediate.push(
                        status
                            .text()
                            .map_or_else(|| status.to_string(), str::to_string),
                    ),
                    Message::StatusInformation(fields) => {
                        target.absorb(&fields);
                        if !run.recovering {
                            if let Some(t) = fields.trace() {
                                self.last_trace = Some(t);
                            }
                        }
                    }
                    Message::PrintLine { text, .. } => target.receipt_lines.push(
                        poslab_sensitive::mask_digit_runs(&String::from_utf8_lossy(&text)),
                    ),
                    Message::PrintTextBlock(fields) => {
                        match crate::message::text_block_lines(&fields) {
                            Some((_, lines)) => target
                                .receipt_lines
                                .extend(lines.iter().map(|l| poslab_sensitive::mask_digit_runs(l))),
                            None => {
                                for b in fields.bmps() {
                                    target.receipt_lines.push(b.render());
                                }
                            }
                        }
                    }
                    Message::Completion(data) => {
                        target.completion = Some(render_completion(&data));
                        if let Ok(f) = Fields::parse(&data, 3) {
                            target.result_code = f.result_code().or(target.result_code);
                            target.terminal_id = f.terminal_id().or(target.terminal_id);
                        }
                        if run.recovering {
                            self.decide(now);
                        } else {
                            let mut o = std::mem::replace(
                                &mut run.outcome,
                                Outcome::new(EcrCommand::Abort),
                            );
                            let ok = o.result_code.is_none_or(ResultCode::is_success);
                            o.status = if ok { Status::Success } else { Status::Failed };
                            self.finish(o);
                        }
                    }
                    Message::Abort { code, .. } => {
                        if run.recovering {
                            run.recovered
                                .notes
                                .push(format!("repeat receipt aborted: {code}"));
                            self.decide(now);
                        } else {
                            let mut o = std::mem::replace(
                                &mut run.outcome,
                                Outcome::new(EcrCommand::Abort),
                            );
                            o.status = Status::Failed;
                            o.result_code = Some(code);
                            self.finish(o);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// The answer to the running command is lost.
    fn lost(&mut self, why: &str, now: Time) {
        let Some(run) = self.run.as_mut() else { return };
        run.outcome
            .notes
            .push(format!("{why} ({})", run.message.command()));
        if run.recovering {
            if run
                .recovered
                .status_information
                .iter()
                .any(|f| f.trace().is_some())
            {
                // the last result itself arrived, only its completion did not: it says
                // whether the payment was ours
                self.decide(now);
                return;
            }
            if run.asked < self.config.recovery_attempts {
                // ask again: on a noisy line the next answer may get through
                let asked = run.asked;
                self.events.push_back(EcrEvent::Decision(format!(
                    "{why} while asking for the last result (request {asked}); asking again"
                )));
                self.ask_last_result(now);
                return;
            }
            let asked = run.asked;
            self.finish_unknown(format!(
                "{why} while asking for the last result ({asked} requests); the result is unknown"
            ));
            return;
        }
        if !run.command.moves_money() {
            self.finish_unknown(why.to_string());
            return;
        }
        self.events.push_back(EcrEvent::Decision(format!(
            "{why}: the payment may have run; asking the terminal for its last result before anything else"
        )));
        if why == "connection closed" && self.config.link.transport == crate::link::Transport::Tcp {
            self.phase = Phase::Reconnecting;
            self.events.push_back(EcrEvent::NeedReconnect);
        } else {
            self.ask_last_result(now);
        }
    }

    fn ask_last_result(&mut self, now: Time) {
        let Some(run) = self.run.as_mut() else { return };
        run.recovering = true;
        run.asked = run.asked.saturating_add(1);
        run.recovered = Outcome::new(EcrCommand::RepeatReceipt);
        let m = EcrCommand::RepeatReceipt.to_message(Password::from_number(self.config.password));
        self.send(m, now);
        self.phase = Phase::AwaitAck(now + self.ack_wait());
    }

    /// The terminal answered the repeat-receipt request: was the last result ours?
    fn decide(&mut self, now: Time) {
        let Some(mut run) = self.run.take() else {
            return;
        };
        let last = run
            .recovered
            .status_information
            .iter()
            .rev()
            .find(|f| f.trace().is_some())
            .cloned();
        let verdict = match &last {
            None => Verdict::NotOurs("the terminal has no last result".into()),
            Some(f) => {
                let trace = f.trace();
                let amount_ok = run.command.amount().is_none_or(|a| f.amount() == Some(a));
                let time_ok = match (run.started, f.date(), f.time()) {
                    (Some(w), Some((month, day)), Some((hour, minute, second))) => {
                        let theirs = WallTime {
                            year: w.year,
                            month,
                            day,
                            hour,
                            minute,
                            second,
                        };
                        let diff = (theirs.seconds_in_year() - w.seconds_in_year()).abs();
                        Some(diff <= self.config.match_window.as_secs() as i64)
                    }
                    _ => None,
                };
                // this command's own status information already reached us (only its
                // completion was lost): the same trace is this payment
                let seen_now = run.outcome.trace;
                if trace.is_some() && trace == seen_now && amount_ok {
                    Verdict::Ours
                } else if trace.is_some() && trace == run.known_before {
                    Verdict::NotOurs(format!(
                        "the terminal's last result is trace {} which this ECR already knew",
                        trace.unwrap_or(0)
                    ))
                } else if !amount_ok {
                    Verdict::NotOurs(format!(
                        "the terminal's last result is for another amount ({:?})",
                        f.amount()
                    ))
                } else if time_ok == Some(false) {
                    Verdict::NotOurs("the terminal's last result is older than this command".into())
                } else if run.known_before.is_some() || time_ok == Some(true) {
                    Verdict::Ours
                } else {
                    Verdict::Unsure(
                        "the terminal's last result has the same amount but neither a known previous trace nor a time tells whether it is this payment"
                            .into(),
                    )
                }
            }
        };
        match verdict {
            Verdict::Ours => {
                let mut o = run.recovered;
                o.command = run.command.clone();
                o.recovered = true;
                o.resent = run.outcome.resent;
                o.notes.splice(0..0, run.outcome.notes.clone());
                o.intermediate
                    .splice(0..0, run.outcome.intermediate.clone());
                o.completion = None;
                let ok = o.result_code.is_none_or(ResultCode::is_success);
                o.status = if ok { Status::Success } else { Status::Failed };
                if let Some(t) = o.trace {
                    self.last_trace = Some(t);
                }
                self.events.push_back(EcrEvent::Decision(
                    "the terminal's last result is this payment: recovered, not sent again".into(),
                ));
                self.finish(o);
            }
            Verdict::NotOurs(why) if !run.outcome.resent => {
                self.events.push_back(EcrEvent::Decision(format!(
                    "{why}: the payment did not run; sending it again (once)"
                )));
                let notes = run.outcome.notes.clone();
                run.outcome = Outcome::new(run.command.clone());
                run.outcome.resent = true;
                run.outcome.notes = notes;
                run.outcome.notes.push(format!("{why}; sent again"));
                run.recovering = false;
                let m = run.message.clone();
                self.run = Some(run);
                self.send(m, now);
                self.phase = Phase::AwaitAck(now + self.ack_wait());
            }
            Verdict::NotOurs(why) | Verdict::Unsure(why) => {
                self.run = Some(run);
                self.finish_unknown(format!("{why}; NOT sent again, check the terminal"));
            }
        }
    }

    fn finish_unknown(&mut self, why: String) {
        let Some(run) = self.run.take() else { return };
        // frames of this command still queued or retried would reach the terminal in the
        // middle of the next one (a stale 06 01 or 06 20): the command is over, drop them
        self.link.abandon();
        let mut o = run.outcome;
        o.status = Status::Unknown;
        o.result_text = Some(why.clone());
        o.notes.push(why);
        self.phase = Phase::Idle;
        self.outcomes.push_back(o);
    }

    fn finish(&mut self, mut o: Outcome) {
        if let Some(run) = self.run.take() {
            o.command = run.command;
        }
        if o.result_text.is_none() {
            o.result_text = o.result_code.map(|c| c.to_string());
        }
        self.phase = Phase::Idle;
        self.outcomes.push_back(o);
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.link.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<EcrEvent> {
        self.events.pop_front()
    }

    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        self.outcomes.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        let own = match self.phase {
            Phase::AwaitAck(t) | Phase::AwaitEnd(t) => Some(t),
            _ => None,
        };
        match (own, self.link.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when every byte was handed out and nothing waits for a line acknowledgement.
    pub fn link_config(&self) -> LinkConfig {
        self.config.link
    }

    pub fn link_idle(&self) -> bool {
        self.link.is_idle()
    }
}

enum Verdict {
    Ours,
    NotOurs(String),
    Unsure(String),
}

fn render_completion(data: &[u8]) -> String {
    if data.is_empty() {
        return String::new();
    }
    // status-enquiry form: LLLVAR software version, then the terminal status byte
    if let [a, b, c, rest @ ..] = data {
        if [a, b, c]
            .iter()
            .all(|x| *x & 0xF0 == 0xF0 && *x & 0x0F <= 9)
        {
            let n = ((a & 0x0F) as usize) * 100 + ((b & 0x0F) as usize) * 10 + (c & 0x0F) as usize;
            if let Some(version) = rest.get(..n) {
                let status = rest
                    .get(n)
                    .map(|s| format!(", terminal status {s:02X}"))
                    .unwrap_or_default();
                return format!("software {}{status}", String::from_utf8_lossy(version));
            }
        }
    }
    match Fields::parse(data, 3) {
        Ok(f) => f
            .bmps()
            .map(|b| format!("{:02X}={}", b.number, b.render()))
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => poslab_sensitive::mask_digit_runs(&crate::bmp::hex(data)),
    }
}
