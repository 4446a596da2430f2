//! The cash-register link: the ZVT payment-terminal role (poslab-zvt's state machine)
//! whose application hands each command to the terminal's core and holds the command
//! ([`Step::Hold`]) until the core sends the steps that finish it.

use std::sync::{Arc, Mutex};

use poslab_terminal::txn::TxnKind;
use poslab_zvt::codes::ResultCode;
use poslab_zvt::link::LinkConfig;
use poslab_zvt::message::Message;
use poslab_zvt::terminal::{
    Context, PaymentApplication, PaymentRequest, Reply, Step, Terminal, TerminalConfig,
    TerminalEvent, TransactionRecord,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{AbortGate, EcrRequest};
use crate::journal::Journal;
use crate::link::Incoming;

pub(crate) struct EcrApp {
    requests: mpsc::UnboundedSender<EcrRequest>,
    gate: Arc<AbortGate>,
    last: Arc<Mutex<Option<TransactionRecord>>>,
}

impl EcrApp {
    pub(crate) fn new(
        requests: mpsc::UnboundedSender<EcrRequest>,
        gate: Arc<AbortGate>,
        last: Arc<Mutex<Option<TransactionRecord>>>,
    ) -> EcrApp {
        EcrApp {
            requests,
            gate,
            last,
        }
    }

    fn hand_over(&self, request: EcrRequest) -> Reply {
        self.gate.reset();
        match self.requests.send(request) {
            Ok(()) => Reply {
                steps: vec![Step::Hold],
            },
            Err(_) => Reply::abort(ResultCode::SYSTEM_ERROR),
        }
    }
}

impl PaymentApplication for EcrApp {
    fn register(&mut self, _config: u8, _currency: Option<u16>, _ctx: &Context) -> Reply {
        self.hand_over(EcrRequest::SignOn)
    }
    fn authorise(&mut self, request: &PaymentRequest, _ctx: &Context) -> Reply {
        match request.amount {
            Some(amount) if amount > 0 => self.hand_over(EcrRequest::Sale {
                kind: TxnKind::Purchase,
                amount,
            }),
            _ => Reply::abort(ResultCode::FUNCTION_NOT_POSSIBLE),
        }
    }
    fn reverse(&mut self, receipt: Option<u32>, _ctx: &Context) -> Reply {
        self.hand_over(EcrRequest::Void { receipt })
    }
    fn refund(&mut self, request: &PaymentRequest, _ctx: &Context) -> Reply {
        match request.amount {
            Some(amount) if amount > 0 => self.hand_over(EcrRequest::Sale {
                kind: TxnKind::Refund,
                amount,
            }),
            _ => Reply::abort(ResultCode::FUNCTION_NOT_POSSIBLE),
        }
    }
    fn pre_authorise(&mut self, request: &PaymentRequest, _ctx: &Context) -> Reply {
        match request.amount {
            Some(amount) if amount > 0 => self.hand_over(EcrRequest::Sale {
                kind: TxnKind::PreAuth,
                amount,
            }),
            _ => Reply::abort(ResultCode::FUNCTION_NOT_POSSIBLE),
        }
    }
    fn book_total(
        &mut self,
        receipt: Option<u32>,
        request: &PaymentRequest,
        _ctx: &Context,
    ) -> Reply {
        self.hand_over(EcrRequest::Completion {
            receipt,
            amount: request.amount.unwrap_or(0),
        })
    }
    fn end_of_day(&mut self, _ctx: &Context) -> Reply {
        self.hand_over(EcrRequest::EndOfDay)
    }
    fn abort(&mut self, _ctx: &Context) -> bool {
        self.gate.request()
    }
    fn last_result(&self) -> Option<TransactionRecord> {
        self.last.lock().ok().and_then(|l| l.clone())
    }
}

/// Serves cash registers one after the other (a new connection replaces the old one).
pub(crate) async fn serve(
    mut incoming: Incoming,
    link: LinkConfig,
    app: EcrApp,
    mut steps: mpsc::UnboundedReceiver<Vec<Step>>,
    journal: Journal,
    software_version: String,
    shutdown: CancellationToken,
) {
    // what the core hears of the register's acknowledgements (besides its commands)
    let core = app.requests.clone();
    let mut terminal = Terminal::new(
        app,
        TerminalConfig {
            link,
            software_version,
            ..TerminalConfig::default()
        },
    );
    let start = Instant::now();
    let mut stream = tokio::select! {
        biased;
        _ = shutdown.cancelled() => return,
        s = incoming.next() => match s { Some(s) => s, None => return },
    };
    terminal.reset_link();
    let mut open = true;
    // the core's steps, played when the held command is ready for them (after the ECR
    // acknowledged what went before)
    let mut queued: std::collections::VecDeque<Vec<Step>> = std::collections::VecDeque::new();
    let mut buf = vec![0u8; 4096];
    // the message the register left unacknowledged in the running command
    let mut silent: Option<Message> = None;
    // the trace of the status information sent in the running command
    let mut told: Option<u32> = None;
    loop {
        while terminal.is_held() {
            match queued.pop_front() {
                Some(steps) => terminal.resume(steps, start.elapsed()),
                None => break,
            }
        }
        if terminal.is_idle() && !queued.is_empty() {
            // the command ended without them (the ECR aborted it, or went silent): a
            // payment result among them never reaches the register
            for steps in queued.drain(..) {
                for step in steps {
                    if let Step::StatusInformation(f) = step {
                        let _ = core.send(EcrRequest::ResultUndelivered { trace: f.trace() });
                    }
                }
            }
        }
        while let Some(bytes) = terminal.poll_transmit() {
            if stream.write_all(&bytes).await.is_err() || stream.flush().await.is_err() {
                break;
            }
        }
        while let Some(ev) = terminal.poll_event() {
            match &ev {
                TerminalEvent::Apdu {
                    dir: poslab_zvt::terminal::Direction::Out,
                    message: Some(Message::StatusInformation(f)),
                    ..
                } => told = f.trace(),
                TerminalEvent::EcrSilent(sent) => silent = Some(sent.clone()),
                TerminalEvent::Finished(m) => {
                    let payment = matches!(m, Message::Authorisation(_));
                    match (silent.take(), told.take()) {
                        // the status information went unacknowledged
                        (Some(Message::StatusInformation(f)), _) if payment => {
                            let _ = core.send(EcrRequest::ResultUndelivered { trace: f.trace() });
                        }
                        // acknowledged, but the completion was not
                        (Some(Message::Completion(_)), Some(t)) if payment => {
                            let _ = core.send(EcrRequest::ResultUndelivered { trace: Some(t) });
                        }
                        (Some(_), _) => {}
                        // every message acknowledged: the register has the result
                        (None, Some(t)) => {
                            let _ = core.send(EcrRequest::ResultDelivered { trace: t });
                        }
                        (None, None) => {}
                    }
                }
                _ => {}
            }
            crate::zvt::log_terminal_event(ev, &journal, "terminal/ecr");
        }
        let deadline = terminal.poll_timeout().map(|t| start + t);
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            next = incoming.next(), if open => match next {
                Some(s) => {
                    tracing::info!("a cash register connected; it replaces the previous one");
                    stream = s;
                    terminal.reset_link();
                }
                None => open = false,
            },
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    // the cash register went away: wait for the next one, keep the state
                    tokio::select! {
                        biased;
                        _ = shutdown.cancelled() => return,
                        next = incoming.next(), if open => match next {
                            Some(s) => { stream = s; terminal.reset_link(); }
                            None => open = false,
                        },
                        s = steps.recv() => {
                            // the core finished while no ECR listened: the result is kept
                            // for a repeat-receipt request
                            if let Some(s) = s { queued.push_back(s); }
                        }
                    }
                }
                Ok(n) => {
                    terminal.set_wall_clock(crate::zvt::wall_now());
                    terminal.handle_input(buf.get(..n).unwrap_or(&[]), start.elapsed());
                }
            },
            s = steps.recv() => match s {
                Some(s) => queued.push_back(s),
                None => return,
            },
            _ = sleep_until(deadline) => {
                terminal.handle_timeout(start.elapsed());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending::<()>().await,
    }
}
