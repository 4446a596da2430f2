//! ECR and terminal wired back to back in simulated time (no I/O): purchases, faults on the
//! line, and the money-safety rules when an answer is lost.

use std::time::Duration;

use poslab_zvt::apdu::{self, Command};
use poslab_zvt::ecr::{Ecr, EcrCommand, EcrConfig, Outcome, Status};
use poslab_zvt::frame::{self, Item};
use poslab_zvt::link::{LinkConfig, Transport};
use poslab_zvt::scripted::{Answer, Script, ScriptedApplication, StatusStep};
use poslab_zvt::terminal::{Terminal, TerminalConfig};
use poslab_zvt::WallTime;

const WALL: WallTime = WallTime {
    year: 2026,
    month: 11,
    day: 23,
    hour: 10,
    minute: 30,
    second: 0,
};

/// Which APDU a chunk of line bytes carries (None for line ACK/NAK bytes).
fn command_of(bytes: &[u8], transport: Transport) -> Option<Command> {
    match transport {
        Transport::Tcp => apdu::decode(bytes).ok().flatten().map(|(a, _)| a.command),
        Transport::Serial => match frame::decode(bytes).ok().flatten() {
            Some((Item::Frame(b), _)) => apdu::decode(&b).ok().flatten().map(|(a, _)| a.command),
            _ => None,
        },
    }
}

type Filter = Box<dyn FnMut(&[u8]) -> bool>;
type Mangle = Box<dyn FnMut(&mut Vec<u8>)>;

struct Pair {
    ecr: Ecr,
    term: Terminal<ScriptedApplication>,
    now: Duration,
    transport: Transport,
    /// Drops a chunk going ECR -> terminal when it returns true.
    drop_to_terminal: Filter,
    /// Drops a chunk going terminal -> ECR when it returns true.
    drop_to_ecr: Filter,
    /// Changes bytes going ECR -> terminal.
    corrupt: Mangle,
    sent_by_ecr: Vec<Command>,
}

impl Pair {
    fn new(transport: Transport, script: Script) -> Pair {
        let link = match transport {
            Transport::Tcp => LinkConfig::tcp(),
            Transport::Serial => LinkConfig::serial(),
        };
        let ecr = Ecr::new(EcrConfig {
            link,
            completion_timeout: Duration::from_secs(30),
            ..EcrConfig::default()
        });
        let mut term = Terminal::new(
            ScriptedApplication::new(script),
            TerminalConfig {
                link,
                ..TerminalConfig::default()
            },
        );
        term.set_wall_clock(WALL);
        Pair {
            ecr,
            term,
            now: Duration::ZERO,
            transport,
            drop_to_terminal: Box::new(|_| false),
            drop_to_ecr: Box::new(|_| false),
            corrupt: Box::new(|_| {}),
            sent_by_ecr: Vec::new(),
        }
    }

    fn run(&mut self, command: EcrCommand, wall: Option<WallTime>) -> Outcome {
        self.ecr.start(command, self.now, wall);
        for _ in 0..10_000 {
            let mut moved = false;
            while let Some(mut b) = self.ecr.poll_transmit() {
                moved = true;
                if let Some(c) = command_of(&b, self.transport) {
                    self.sent_by_ecr.push(c);
                }
                (self.corrupt)(&mut b);
                if !(self.drop_to_terminal)(&b) {
                    self.term.handle_input(&b, self.now);
                }
            }
            while let Some(b) = self.term.poll_transmit() {
                moved = true;
                if !(self.drop_to_ecr)(&b) {
                    self.ecr.handle_input(&b, self.now);
                }
            }
            while self.term.poll_event().is_some() {}
            while self.ecr.poll_event().is_some() {}
            if let Some(o) = self.ecr.poll_outcome() {
                // let the terminal finish what it was doing
                for _ in 0..100 {
                    while let Some(b) = self.ecr.poll_transmit() {
                        self.term.handle_input(&b, self.now);
                    }
                    while let Some(b) = self.term.poll_transmit() {
                        self.ecr.handle_input(&b, self.now);
                    }
                    if self.term.is_idle() {
                        break;
                    }
                    if let Some(t) = self.term.poll_timeout() {
                        self.now = self.now.max(t);
                        self.term.handle_timeout(self.now);
                    }
                }
                return o;
            }
            if !moved {
                let next = [self.ecr.poll_timeout(), self.term.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
                    .expect("something must be pending");
                self.now = self.now.max(next);
                self.ecr.handle_timeout(self.now);
                self.term.handle_timeout(self.now);
            }
        }
        panic!("no outcome after 10000 rounds");
    }
}

fn purchase(cents: u64) -> EcrCommand {
    EcrCommand::Purchase {
        amount: cents,
        currency: Some(978),
    }
}

fn slow_script() -> Script {
    Script {
        authorise: vec![Answer {
            intermediate: vec![
                StatusStep {
                    status: 0x0A,
                    after_ms: 0,
                },
                StatusStep {
                    status: 0x01,
                    after_ms: 800,
                },
                StatusStep {
                    status: 0x04,
                    after_ms: 500,
                },
            ],
            delay_ms: 300,
            auth_code: Some("123456".into()),
            ..Answer::default()
        }],
        ..Script::default()
    }
}

#[test]
fn a_purchase_runs_over_tcp_and_serial() {
    for transport in [Transport::Tcp, Transport::Serial] {
        let mut pair = Pair::new(transport, slow_script());
        let reg = pair.run(
            EcrCommand::Register {
                config: 0xBA,
                currency: Some(978),
            },
            None,
        );
        assert_eq!(reg.status, Status::Success, "{reg:?}");
        let o = pair.run(purchase(4250), Some(WALL));
        assert_eq!(o.status, Status::Success, "{transport:?}: {o:?}");
        assert_eq!(o.amount, Some(4250));
        assert_eq!(o.pan.as_deref(), Some("476173******0010"));
        assert_eq!(o.auth_code.as_deref(), Some("123456"));
        assert_eq!(
            o.intermediate,
            [
                "insert card",
                "please watch PIN pad",
                "waiting for response from host"
            ]
        );
        assert!(
            o.receipt_lines.iter().any(|l| l == "AMOUNT EUR 42.50"),
            "{:?}",
            o.receipt_lines
        );
        assert!(!o.recovered && !o.resent);
        assert_eq!(pair.term.app().count("authorise"), 1);
        assert!(
            pair.now >= Duration::from_millis(1600),
            "the script's pauses were played"
        );
    }
}

#[test]
fn a_declined_purchase_reports_the_result_code() {
    let script = Script {
        authorise: vec![Answer {
            result: 0x05,
            ..Answer::default()
        }],
        ..Script::default()
    };
    let mut pair = Pair::new(Transport::Tcp, script);
    let o = pair.run(purchase(100), Some(WALL));
    assert_eq!(o.status, Status::Failed);
    assert_eq!(o.result_code.map(|c| c.0), Some(0x05));
    assert!(o
        .result_text
        .unwrap()
        .contains("declined by the authorisation system"));
}

#[test]
fn the_serial_link_survives_a_corrupted_frame() {
    let mut pair = Pair::new(Transport::Serial, Script::default());
    let mut corrupted = false;
    pair.corrupt = Box::new(move |b| {
        if !corrupted && b.len() > 8 {
            corrupted = true;
            let n = b.len();
            b[n - 1] ^= 0x5A; // bad CRC on the first frame: the terminal NAKs it
        }
    });
    let o = pair.run(purchase(4250), Some(WALL));
    assert_eq!(o.status, Status::Success, "{o:?}");
    assert_eq!(pair.term.app().count("authorise"), 1);
}

/// The terminal charged the card, then the link lost its status information and
/// completion (Portalum.Zvt #59). The ECR must recover the result, not pay again.
#[test]
fn a_lost_final_answer_is_recovered_never_resent() {
    for transport in [Transport::Tcp, Transport::Serial] {
        let mut pair = Pair::new(transport, slow_script());
        let dropping = std::rc::Rc::new(std::cell::Cell::new(true));
        let d = dropping.clone();
        pair.drop_to_terminal = Box::new(move |b| {
            if command_of(b, transport) == Some(Command::REPEAT_RECEIPT) {
                d.set(false);
            }
            false
        });
        pair.drop_to_ecr = Box::new(move |b| {
            dropping.get()
                && matches!(
                    command_of(b, transport),
                    Some(Command::STATUS_INFORMATION | Command::COMPLETION | Command::PRINT_LINE)
                )
        });
        let o = pair.run(purchase(4250), Some(WALL));
        assert_eq!(o.status, Status::Success, "{transport:?}: {o:?}");
        assert!(o.recovered, "{o:?}");
        assert!(!o.resent);
        assert_eq!(o.amount, Some(4250));
        assert_eq!(o.trace, Some(1));
        assert_eq!(
            pair.term.app().count("authorise"),
            1,
            "exactly one authorisation"
        );
        assert_eq!(
            pair.sent_by_ecr
                .iter()
                .filter(|c| **c == Command::AUTHORISATION)
                .count(),
            1,
            "{:?}",
            pair.sent_by_ecr
        );
        assert!(pair.sent_by_ecr.contains(&Command::REPEAT_RECEIPT));
    }
}

/// The status information of a payment reached the ECR (it learned the trace number), only
/// the completion was lost: the repeat receipt brings back that same trace, which is this
/// payment, recovered, and never "the one this ECR already knew" (a seed of the noisy
/// serial-line scenario once paid twice that way).
#[test]
fn a_payment_whose_completion_alone_was_lost_is_recovered_not_resent() {
    for transport in [Transport::Tcp, Transport::Serial] {
        let mut pair = Pair::new(transport, Script::default());
        let first = pair.run(purchase(1000), Some(WALL));
        assert_eq!(first.status, Status::Success);
        assert_eq!(pair.ecr.known_trace(), Some(1));
        let dropping = std::rc::Rc::new(std::cell::Cell::new(true));
        let d = dropping.clone();
        pair.drop_to_terminal = Box::new(move |b| {
            if command_of(b, transport) == Some(Command::REPEAT_RECEIPT) {
                d.set(false);
            }
            false
        });
        pair.drop_to_ecr = Box::new(move |b| {
            dropping.get() && command_of(b, transport) == Some(Command::COMPLETION)
        });
        let o = pair.run(purchase(1000), Some(WALL));
        assert_eq!(o.status, Status::Success, "{transport:?}: {o:?}");
        assert!(o.recovered && !o.resent, "{transport:?}: {o:?}");
        assert_eq!(o.trace, Some(2));
        assert_eq!(pair.ecr.known_trace(), Some(2));
        assert_eq!(
            pair.term.app().count("authorise"),
            2,
            "{transport:?}: one authorisation per purchase"
        );
    }
}

/// Serial: the first frame of the payment is lost, so the link sends it again just when the
/// ECR's own acknowledgement timer runs out. The ECR waits for the link instead of asking
/// for the last result at once: a repeat receipt crossing the resent payment would take the
/// terminal's `80 00` for its own and the payment's result for a recovery.
#[test]
fn a_payment_the_serial_link_is_still_resending_is_not_crossed_by_a_repeat_receipt() {
    let mut pair = Pair::new(Transport::Serial, Script::default());
    let mut dropped = false;
    pair.drop_to_terminal = Box::new(move |b| {
        if !dropped && command_of(b, Transport::Serial) == Some(Command::AUTHORISATION) {
            dropped = true;
            return true;
        }
        false
    });
    let o = pair.run(purchase(1000), Some(WALL));
    assert_eq!(o.status, Status::Success, "{o:?}");
    assert!(!o.recovered && !o.resent, "{o:?}");
    assert!(
        !pair.sent_by_ecr.contains(&Command::REPEAT_RECEIPT),
        "{:?}",
        pair.sent_by_ecr
    );
    assert_eq!(pair.term.app().count("authorise"), 1);
}

/// Every completion is lost, the payment's and the repeat receipt's: the last result's
/// status information did arrive, and it is enough to tell the payment ran.
#[test]
fn a_recovered_result_whose_completion_is_lost_still_decides() {
    for transport in [Transport::Tcp, Transport::Serial] {
        let mut pair = Pair::new(transport, Script::default());
        let first = pair.run(purchase(1000), Some(WALL));
        assert_eq!(first.status, Status::Success);
        let asked = std::rc::Rc::new(std::cell::Cell::new(false));
        let a = asked.clone();
        pair.drop_to_terminal = Box::new(move |b| {
            if command_of(b, transport) == Some(Command::REPEAT_RECEIPT) {
                a.set(true);
            }
            false
        });
        pair.drop_to_ecr = Box::new(move |b| match command_of(b, transport) {
            Some(Command::COMPLETION) => true,
            Some(Command::STATUS_INFORMATION) => !asked.get(),
            _ => false,
        });
        let o = pair.run(purchase(2500), Some(WALL));
        assert_eq!(o.status, Status::Success, "{transport:?}: {o:?}");
        assert!(o.recovered && !o.resent, "{transport:?}: {o:?}");
        assert_eq!(o.trace, Some(2));
        assert_eq!(pair.term.app().count("authorise"), 2);
    }
}

/// The payment never reached the terminal: the last result is the one the ECR already
/// knew, so sending it again is safe, and happens once.
#[test]
fn a_payment_that_never_arrived_is_sent_again_once() {
    let mut pair = Pair::new(Transport::Tcp, Script::default());
    let first = pair.run(purchase(1000), Some(WALL));
    assert_eq!(first.status, Status::Success);
    assert_eq!(pair.ecr.known_trace(), Some(1));
    let mut dropped = false;
    pair.drop_to_terminal = Box::new(move |b| {
        if !dropped && command_of(b, Transport::Tcp) == Some(Command::AUTHORISATION) {
            dropped = true;
            return true;
        }
        false
    });
    let o = pair.run(purchase(4250), Some(WALL));
    assert_eq!(o.status, Status::Success, "{o:?}");
    assert!(o.resent && !o.recovered, "{o:?}");
    assert_eq!(o.trace, Some(2));
    assert_eq!(
        pair.term.app().count("authorise"),
        2,
        "one per purchase, none twice"
    );
}

/// Without a known trace number or clocks to compare, the ECR cannot tell: it says so and
/// does not pay again.
#[test]
fn when_the_ecr_cannot_tell_it_does_not_resend() {
    let mut pair = Pair::new(Transport::Tcp, Script::default());
    let dropping = std::rc::Rc::new(std::cell::Cell::new(true));
    let d = dropping.clone();
    pair.drop_to_terminal = Box::new(move |b| {
        if command_of(b, Transport::Tcp) == Some(Command::REPEAT_RECEIPT) {
            d.set(false);
        }
        false
    });
    pair.drop_to_ecr = Box::new(move |b| {
        dropping.get()
            && matches!(
                command_of(b, Transport::Tcp),
                Some(Command::STATUS_INFORMATION | Command::COMPLETION)
            )
    });
    let o = pair.run(purchase(4250), None);
    assert_eq!(o.status, Status::Unknown, "{o:?}");
    assert!(
        o.result_text
            .as_deref()
            .unwrap_or("")
            .contains("NOT sent again"),
        "{o:?}"
    );
    assert_eq!(pair.term.app().count("authorise"), 1);
}

/// A terminal that never answers at all: the repeat-receipt request, asked as many times as
/// the ECR's `recovery_attempts` (3), is not answered either, so the outcome is unknown and
/// nothing is sent a second time.
#[test]
fn a_silent_terminal_gives_unknown_not_a_second_payment() {
    let mut pair = Pair::new(Transport::Tcp, Script::default());
    pair.drop_to_ecr = Box::new(|_| true);
    let o = pair.run(purchase(4250), Some(WALL));
    assert_eq!(o.status, Status::Unknown);
    assert_eq!(
        pair.sent_by_ecr,
        [
            Command::AUTHORISATION,
            Command::REPEAT_RECEIPT,
            Command::REPEAT_RECEIPT,
            Command::REPEAT_RECEIPT
        ],
        "one payment, three questions"
    );
    assert!(
        o.result_text
            .as_deref()
            .unwrap_or("")
            .contains("3 requests"),
        "{o:?}"
    );
}

#[test]
fn refund_reversal_end_of_day_status_and_log_off() {
    let mut pair = Pair::new(Transport::Tcp, Script::default());
    let p = pair.run(purchase(4250), Some(WALL));
    let receipt = p.receipt.expect("receipt number");
    let r = pair.run(EcrCommand::Reverse { receipt }, Some(WALL));
    assert_eq!(r.status, Status::Success, "{r:?}");
    assert_eq!(r.amount, Some(4250));
    let again = pair.run(EcrCommand::Reverse { receipt }, Some(WALL));
    assert_eq!(again.status, Status::Failed);
    assert_eq!(
        again.result_code.map(|c| c.0),
        Some(0xB4),
        "already reversed"
    );
    let f = pair.run(
        EcrCommand::Refund {
            amount: 500,
            currency: None,
        },
        Some(WALL),
    );
    assert_eq!(f.status, Status::Success);
    let p2 = pair.run(purchase(1000), Some(WALL));
    assert_eq!(p2.status, Status::Success);
    let eod = pair.run(EcrCommand::EndOfDay, Some(WALL));
    assert_eq!(eod.status, Status::Success, "{eod:?}");
    assert_eq!(
        eod.amount,
        Some(500),
        "1000 purchase - 500 refund; the reversed one excluded"
    );
    // the report came as one 06 D3 text block, its lines taken out of the TLV container
    assert!(
        eod.receipt_lines.iter().any(|l| l == "END OF DAY"),
        "{:?}",
        eod.receipt_lines
    );
    assert!(
        eod.receipt_lines.iter().any(|l| l == "AMOUNT EUR 5.00"),
        "{:?}",
        eod.receipt_lines
    );
    let st = pair.run(EcrCommand::Status, None);
    assert_eq!(st.status, Status::Success);
    assert!(st.completion.unwrap().starts_with("software poslab-zvt"));
    let lo = pair.run(EcrCommand::LogOff, None);
    assert_eq!(lo.status, Status::Success);
    assert_eq!(pair.term.app().calls.last(), Some(&"log_off"));
}

#[test]
fn an_abort_request_ends_a_running_purchase() {
    let mut pair = Pair::new(Transport::Tcp, slow_script());
    pair.ecr.start(purchase(4250), pair.now, Some(WALL));
    // deliver the command and the first intermediate status
    for _ in 0..4 {
        while let Some(b) = pair.ecr.poll_transmit() {
            pair.term.handle_input(&b, pair.now);
        }
        while let Some(b) = pair.term.poll_transmit() {
            pair.ecr.handle_input(&b, pair.now);
        }
    }
    pair.ecr.request_abort(pair.now);
    let o = pair.run_pending();
    assert_eq!(o.status, Status::Failed, "{o:?}");
    assert_eq!(o.result_code.map(|c| c.0), Some(0x6C));
    assert_eq!(
        pair.term.app().history()[0].result.0,
        0x6C,
        "the terminal recorded the abort"
    );
}

impl Pair {
    fn run_pending(&mut self) -> Outcome {
        for _ in 0..1000 {
            while let Some(b) = self.ecr.poll_transmit() {
                self.term.handle_input(&b, self.now);
            }
            while let Some(b) = self.term.poll_transmit() {
                self.ecr.handle_input(&b, self.now);
            }
            if let Some(o) = self.ecr.poll_outcome() {
                return o;
            }
            if let Some(t) = [self.ecr.poll_timeout(), self.term.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
            {
                self.now = self.now.max(t);
                self.ecr.handle_timeout(self.now);
                self.term.handle_timeout(self.now);
            }
        }
        panic!("no outcome");
    }
}

fn pre_authorise(cents: u64) -> EcrCommand {
    EcrCommand::PreAuthorise {
        amount: cents,
        currency: Some(978),
    }
}

/// Reservation (06 22) -> partial reversal (06 23) -> book total (06 24), over TCP and
/// serial: the scripted terminal keeps the reservation by its receipt number, the book
/// total charges the final amount and closes it, the day's total counts only that.
#[test]
fn a_reservation_is_partly_released_then_booked() {
    for transport in [Transport::Tcp, Transport::Serial] {
        let mut pair = Pair::new(transport, Script::default());
        let pre = pair.run(pre_authorise(10_000), Some(WALL));
        assert_eq!(pre.status, Status::Success, "{transport:?}: {pre:?}");
        assert_eq!(pre.amount, Some(10_000));
        assert_eq!(pre.pan.as_deref(), Some("476173******0010"));
        assert!(pre.auth_code.is_some(), "{pre:?}");
        assert!(
            pre.receipt_lines.iter().any(|l| l == "PRE-AUTHORISATION"),
            "{:?}",
            pre.receipt_lines
        );
        let receipt = pre.receipt.expect("the reservation's receipt number");
        assert_eq!(
            pair.term.app().open_reservations().get(&receipt),
            Some(&10_000)
        );

        let part = pair.run(
            EcrCommand::PartialReversal {
                receipt,
                amount: 2_000,
            },
            Some(WALL),
        );
        assert_eq!(part.status, Status::Success, "{part:?}");
        assert_eq!(part.amount, Some(2_000));
        assert_eq!(
            pair.term.app().open_reservations().get(&receipt),
            Some(&8_000),
            "20.00 of 100.00 released"
        );

        let book = pair.run(
            EcrCommand::BookTotal {
                receipt,
                amount: 7_500,
            },
            Some(WALL),
        );
        assert_eq!(book.status, Status::Success, "{book:?}");
        assert_eq!(book.amount, Some(7_500));
        assert_eq!(book.pan.as_deref(), Some("476173******0010"));
        assert_ne!(book.trace, pre.trace, "a transaction of its own");
        assert!(
            pair.term.app().open_reservations().is_empty(),
            "a book total closes the reservation"
        );
        // booking it again: the reservation is gone
        let again = pair.run(
            EcrCommand::BookTotal {
                receipt,
                amount: 7_500,
            },
            Some(WALL),
        );
        assert_eq!(again.status, Status::Failed);
        assert_eq!(again.result_code.map(|c| c.0), Some(0xB8));

        let eod = pair.run(EcrCommand::EndOfDay, Some(WALL));
        assert_eq!(eod.status, Status::Success, "{eod:?}");
        assert_eq!(
            eod.amount,
            Some(7_500),
            "only the booked amount is turnover"
        );
        let app = pair.term.app();
        assert_eq!(
            (
                app.count("pre_authorise"),
                app.count("partial_reversal"),
                app.count("book_total")
            ),
            (1, 1, 2)
        );
        assert_eq!(
            pair.sent_by_ecr
                .iter()
                .filter(|c| **c == Command::BOOK_TOTAL)
                .count(),
            2
        );
    }
}

/// The application answers a book total for a receipt number that names no reservation
/// with an abort (B8): the ECR reports it as failed and does not try again.
#[test]
fn a_book_total_for_an_unknown_receipt_is_aborted() {
    let mut pair = Pair::new(Transport::Tcp, Script::default());
    let pre = pair.run(pre_authorise(5_000), Some(WALL));
    let receipt = pre.receipt.expect("receipt");
    let o = pair.run(
        EcrCommand::BookTotal {
            receipt: receipt + 100,
            amount: 5_000,
        },
        Some(WALL),
    );
    assert_eq!(o.status, Status::Failed, "{o:?}");
    assert_eq!(o.result_code.map(|c| c.0), Some(0xB8));
    assert!(
        o.result_text
            .as_deref()
            .unwrap_or("")
            .contains("pre-authorisation"),
        "{o:?}"
    );
    assert!(!o.recovered && !o.resent);
    let commands: Vec<Command> = pair
        .sent_by_ecr
        .iter()
        .copied()
        .filter(|c| *c != Command::ACK)
        .collect();
    assert_eq!(
        commands,
        [Command::PRE_AUTHORISATION, Command::BOOK_TOTAL],
        "an abort is an answer: nothing asked again, nothing resent"
    );
    // more than is reserved: B7, and the reservation stays as it was
    let over = pair.run(
        EcrCommand::BookTotal {
            receipt,
            amount: 5_001,
        },
        Some(WALL),
    );
    assert_eq!(over.result_code.map(|c| c.0), Some(0xB7), "{over:?}");
    let part = pair.run(
        EcrCommand::PartialReversal {
            receipt: receipt + 1,
            amount: 100,
        },
        Some(WALL),
    );
    assert_eq!(part.result_code.map(|c| c.0), Some(0xB8), "{part:?}");
    assert_eq!(
        pair.term.app().open_reservations().get(&receipt),
        Some(&5_000)
    );
    assert_eq!(
        pair.term.app().history().len(),
        1,
        "refused settlements are no transactions"
    );
}

/// The answer to a book total is lost: the ECR recovers it with a repeat receipt and does
/// not book a second time.
#[test]
fn a_lost_book_total_answer_is_recovered_never_resent() {
    for transport in [Transport::Tcp, Transport::Serial] {
        let mut pair = Pair::new(transport, Script::default());
        let pre = pair.run(pre_authorise(10_000), Some(WALL));
        let receipt = pre.receipt.expect("receipt");
        let dropping = std::rc::Rc::new(std::cell::Cell::new(true));
        let d = dropping.clone();
        pair.drop_to_terminal = Box::new(move |b| {
            if command_of(b, transport) == Some(Command::REPEAT_RECEIPT) {
                d.set(false);
            }
            false
        });
        pair.drop_to_ecr = Box::new(move |b| {
            dropping.get()
                && matches!(
                    command_of(b, transport),
                    Some(Command::STATUS_INFORMATION | Command::COMPLETION | Command::PRINT_LINE)
                )
        });
        let o = pair.run(
            EcrCommand::BookTotal {
                receipt,
                amount: 6_000,
            },
            Some(WALL),
        );
        assert_eq!(o.status, Status::Success, "{transport:?}: {o:?}");
        assert!(o.recovered && !o.resent, "{o:?}");
        assert_eq!(o.amount, Some(6_000));
        assert_eq!(pair.term.app().count("book_total"), 1, "booked once");
        assert_eq!(
            pair.sent_by_ecr
                .iter()
                .filter(|c| **c == Command::BOOK_TOTAL)
                .count(),
            1,
            "{:?}",
            pair.sent_by_ecr
        );
    }
}

/// A reservation request that never reached the terminal is sent again once (the last
/// result is one the ECR already knew), like a purchase.
#[test]
fn a_pre_authorisation_that_never_arrived_is_sent_again_once() {
    let mut pair = Pair::new(Transport::Tcp, Script::default());
    let first = pair.run(purchase(1_000), Some(WALL));
    assert_eq!(first.status, Status::Success);
    let mut dropped = false;
    pair.drop_to_terminal = Box::new(move |b| {
        if !dropped && command_of(b, Transport::Tcp) == Some(Command::PRE_AUTHORISATION) {
            dropped = true;
            return true;
        }
        false
    });
    let o = pair.run(pre_authorise(2_500), Some(WALL));
    assert_eq!(o.status, Status::Success, "{o:?}");
    assert!(o.resent && !o.recovered, "{o:?}");
    assert_eq!(pair.term.app().count("pre_authorise"), 1);
    assert_eq!(pair.term.app().open_reservations().len(), 1);
}

/// An abort request that ends a book total before its status information leaves the
/// reservation as it was.
#[test]
fn an_aborted_book_total_keeps_the_reservation() {
    let script = Script {
        book_total: vec![Answer {
            intermediate: vec![StatusStep {
                status: 0x04,
                after_ms: 0,
            }],
            delay_ms: 2_000,
            ..Answer::default()
        }],
        ..Script::default()
    };
    let mut pair = Pair::new(Transport::Tcp, script);
    let pre = pair.run(pre_authorise(10_000), Some(WALL));
    let receipt = pre.receipt.expect("receipt");
    pair.ecr.start(
        EcrCommand::BookTotal {
            receipt,
            amount: 9_000,
        },
        pair.now,
        Some(WALL),
    );
    for _ in 0..4 {
        while let Some(b) = pair.ecr.poll_transmit() {
            pair.term.handle_input(&b, pair.now);
        }
        while let Some(b) = pair.term.poll_transmit() {
            pair.ecr.handle_input(&b, pair.now);
        }
    }
    assert!(
        pair.term.app().open_reservations().is_empty(),
        "the book total is running"
    );
    pair.ecr.request_abort(pair.now);
    let o = pair.run_pending();
    assert_eq!(o.result_code.map(|c| c.0), Some(0x6C), "{o:?}");
    assert_eq!(
        pair.term.app().open_reservations().get(&receipt),
        Some(&10_000),
        "the reservation is back"
    );
}
