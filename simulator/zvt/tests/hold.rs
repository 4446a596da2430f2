//! An application that answers later ([`Step::Hold`] then [`Terminal::resume`]), as the
//! reference terminal does while it reads the card and asks the host.

use std::time::Duration;

use poslab_zvt::codes::{IntermediateStatus, ResultCode};
use poslab_zvt::ecr::{Ecr, EcrCommand, EcrConfig, Status};
use poslab_zvt::link::LinkConfig;
use poslab_zvt::terminal::{
    Context, PaymentApplication, PaymentRequest, Reply, Step, Terminal, TerminalConfig,
    TransactionRecord,
};

#[derive(Default)]
struct Later {
    asked: Vec<u64>,
    aborted: bool,
}

impl PaymentApplication for Later {
    fn register(&mut self, _: u8, _: Option<u16>, _: &Context) -> Reply {
        Reply::complete()
    }
    fn authorise(&mut self, r: &PaymentRequest, _: &Context) -> Reply {
        self.asked.push(r.amount.unwrap_or(0));
        Reply {
            steps: vec![
                Step::Intermediate(IntermediateStatus::INSERT_CARD),
                Step::Hold,
            ],
        }
    }
    fn reverse(&mut self, _: Option<u32>, _: &Context) -> Reply {
        Reply::abort(ResultCode::FUNCTION_NOT_POSSIBLE)
    }
    fn refund(&mut self, _: &PaymentRequest, _: &Context) -> Reply {
        Reply::abort(ResultCode::FUNCTION_NOT_POSSIBLE)
    }
    fn end_of_day(&mut self, _: &Context) -> Reply {
        Reply::complete()
    }
    fn abort(&mut self, _: &Context) -> bool {
        self.aborted = true;
        true
    }
    fn last_result(&self) -> Option<TransactionRecord> {
        None
    }
}

fn pump(ecr: &mut Ecr, term: &mut Terminal<Later>, now: Duration) {
    for _ in 0..100 {
        let mut moved = false;
        while let Some(b) = ecr.poll_transmit() {
            moved = true;
            term.handle_input(&b, now);
        }
        while let Some(b) = term.poll_transmit() {
            moved = true;
            ecr.handle_input(&b, now);
        }
        while term.poll_event().is_some() {}
        while ecr.poll_event().is_some() {}
        if !moved {
            return;
        }
    }
}

fn pair() -> (Ecr, Terminal<Later>) {
    let ecr = Ecr::new(EcrConfig {
        link: LinkConfig::tcp(),
        ..EcrConfig::default()
    });
    let term = Terminal::new(
        Later::default(),
        TerminalConfig {
            link: LinkConfig::tcp(),
            ..TerminalConfig::default()
        },
    );
    (ecr, term)
}

#[test]
fn a_held_command_finishes_when_the_application_resumes_it() {
    let (mut ecr, mut term) = pair();
    let now = Duration::ZERO;
    ecr.start(
        EcrCommand::Purchase {
            amount: 4250,
            currency: Some(978),
        },
        now,
        None,
    );
    pump(&mut ecr, &mut term, now);
    assert!(term.is_held(), "the terminal waits for the application");
    assert_eq!(term.app().asked, vec![4250]);
    assert!(ecr.poll_outcome().is_none(), "no outcome while held");
    assert_eq!(
        term.poll_timeout(),
        None,
        "holding sets no deadline of its own"
    );
    term.resume(
        vec![
            Step::Intermediate(IntermediateStatus::REMOVE_CARD),
            Step::Complete(Vec::new()),
        ],
        now,
    );
    pump(&mut ecr, &mut term, now);
    let outcome = ecr.poll_outcome().expect("an outcome");
    assert_eq!(outcome.status, Status::Success, "{outcome:?}");
    assert_eq!(outcome.intermediate.len(), 2, "{:?}", outcome.intermediate);
    assert!(term.is_idle());
    // a resume with nothing held is ignored
    term.resume(vec![Step::Complete(Vec::new())], now);
    assert!(term.poll_transmit().is_none());
}

#[test]
fn an_abort_request_ends_a_held_command() {
    let (mut ecr, mut term) = pair();
    let now = Duration::ZERO;
    ecr.start(
        EcrCommand::Purchase {
            amount: 100,
            currency: None,
        },
        now,
        None,
    );
    pump(&mut ecr, &mut term, now);
    assert!(term.is_held());
    ecr.request_abort(now);
    pump(&mut ecr, &mut term, now);
    assert!(term.app().aborted);
    let outcome = ecr.poll_outcome().expect("an outcome");
    assert_eq!(
        outcome.result_code,
        Some(ResultCode::ABORTED),
        "{outcome:?}"
    );
    assert!(!term.is_held());
}

/// An application that does not implement reservations (the trait's defaults) refuses
/// them with `06 1E 83`, function not possible.
#[test]
fn an_application_without_reservations_refuses_them() {
    for command in [
        EcrCommand::PreAuthorise {
            amount: 100,
            currency: None,
        },
        EcrCommand::BookTotal {
            receipt: 1,
            amount: 100,
        },
        EcrCommand::PartialReversal {
            receipt: 1,
            amount: 100,
        },
    ] {
        let (mut ecr, mut term) = pair();
        let now = Duration::ZERO;
        ecr.start(command.clone(), now, None);
        pump(&mut ecr, &mut term, now);
        let outcome = ecr.poll_outcome().expect("an outcome");
        assert_eq!(outcome.status, Status::Failed, "{command:?}: {outcome:?}");
        assert_eq!(
            outcome.result_code,
            Some(ResultCode::FUNCTION_NOT_POSSIBLE),
            "{outcome:?}"
        );
        assert!(term.is_idle());
    }
}
