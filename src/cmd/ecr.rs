use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use poslab_zvt::ecr::{Ecr, EcrCommand, EcrConfig, EcrEvent, Outcome, Status};
use poslab_zvt::link::LinkConfig;

use crate::journal::Journal;
use crate::net;
use crate::zvt as adapters;

/// Act as the cash register (ZVT): send one command to a payment terminal and print what
/// it reported.
///
/// Prints the intermediate status texts, the result code with its meaning, the amount,
/// the masked card number and the receipt lines; --json prints one JSON object instead.
/// Money-safe: when the answer to a purchase, refund, reversal or reservation command is
/// lost, the command is never sent again blindly; the terminal is asked for its last
/// result (repeat receipt) first, and the payment is sent again only when that shows it
/// did not run. Exit status: 0 success, 1 declined, aborted or refused, 3 result unknown
/// (check the terminal), 2 usage or connection error.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("transport").args(["connect", "serial"]).required(true)))]
pub struct Args {
    /// The terminal's address for ZVT over TCP (APDUs raw, usually port 20007)
    #[arg(long, value_name = "HOST:PORT")]
    pub connect: Option<String>,

    /// The terminal's serial port or pty (framed: DLE STX ... DLE ETX CRC, ACK/NAK)
    #[arg(long, value_name = "PATH")]
    pub serial: Option<PathBuf>,

    /// Serial speed (8 data bits, no parity, 2 stop bits)
    #[arg(long, default_value_t = 9600, value_name = "BAUD")]
    pub baud: u32,

    /// The terminal's password (6 digits) sent with refund, reversal, end of day
    #[arg(long, default_value = "000000", value_name = "DIGITS")]
    pub password: String,

    /// Currency, ISO 4217 numeric (978 is EUR)
    #[arg(long, default_value_t = 978, value_name = "CODE")]
    pub currency: u16,

    /// Print the outcome as one JSON object
    #[arg(long)]
    pub json: bool,

    /// Append every APDU, decoded and masked, to this journal (JSON lines)
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// T4: how long to wait for the end of a command; each intermediate status restarts it
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub completion_timeout: Duration,

    /// How long to wait for the terminal's acknowledgement of a command
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub ack_timeout: Duration,

    /// The trace number of the terminal's last transaction that this register already
    /// knows: a lost answer is then matched by trace number, not only by time
    #[arg(long, value_name = "N")]
    pub known_trace: Option<u32>,

    /// Serial faults on the line to the terminal (with --serial), comma-separated: drop=P,
    /// noise=P (bit errors), baud=N (the terminal runs at N), break=P[/DUR], parity=P,
    /// framing=P, stall=P[/DUR], disconnect=P[/DUR]; P is a probability per byte (drop,
    /// noise, parity, framing) or per write; tx: or rx: before a word limits it to what
    /// this register sends or reads. Every fault is journaled
    #[arg(long, value_name = "LIST", requires = "serial", value_parser = parse_serial_faults)]
    pub faults: Option<poslab_faults::SerialSpec>,

    /// Seed of the serial faults' random streams (the same seed, the same faults)
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,

    #[command(subcommand)]
    pub action: Action,
}

fn parse_serial_faults(s: &str) -> Result<poslab_faults::SerialSpec, String> {
    s.parse()
        .map_err(|e: poslab_faults::FaultError| e.to_string())
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Pay an amount (e.g. 42.50) by card (authorisation, 06 01)
    Purchase { amount: String },
    /// Pay an amount back to the card (06 31)
    Refund { amount: String },
    /// Reverse a payment by its receipt number (06 30)
    Reverse {
        #[arg(long, value_name = "N")]
        receipt: u32,
    },
    /// Reserve an amount on the card (pre-authorisation, 06 22)
    ///
    /// The receipt number printed names the reservation for book-total and
    /// partial-reversal.
    PreAuthorise { amount: String },
    /// Charge a reservation's final amount, at most the reserved one (book total, 06 24)
    BookTotal {
        /// The reservation's receipt number
        #[arg(long, value_name = "N")]
        receipt: u32,
        amount: String,
    },
    /// Release part of a reservation (partial reversal, 06 23)
    PartialReversal {
        /// The reservation's receipt number
        #[arg(long, value_name = "N")]
        receipt: u32,
        amount: String,
    },
    /// Close the day: send the batch to the host and print the totals (06 50)
    EndOfDay,
    /// Ask the terminal whether it is ready (status enquiry, 05 01)
    Status,
    /// Register the cash register with the terminal (06 00)
    Register {
        /// Config byte in hex (BA: receipts printed by the ECR, intermediate status on)
        #[arg(long, default_value = "BA", value_name = "HEX")]
        config: String,
    },
    /// Ask for the last receipt again (repeat receipt, 06 20)
    RepeatReceipt,
    /// Ask the terminal to abort what it is doing (06 B0)
    Abort,
    /// Log off (06 02)
    LogOff,
}

/// Parses "42.50", "42.5" or "42" into cents.
pub fn parse_amount(text: &str) -> anyhow::Result<u64> {
    let bad = || {
        anyhow::anyhow!("amount {text:?}: expected digits with at most two decimals, e.g. 42.50")
    };
    let (units, cents) = match text.split_once(['.', ',']) {
        Some((u, c)) if !c.is_empty() && c.len() <= 2 && c.bytes().all(|b| b.is_ascii_digit()) => {
            let c: u64 = c.parse().map_err(|_| bad())?;
            (
                u,
                if text.len() - u.len() - 1 == 1 {
                    c * 10
                } else {
                    c
                },
            )
        }
        Some(_) => return Err(bad()),
        None => (text, 0),
    };
    if units.is_empty() || !units.bytes().all(|b| b.is_ascii_digit()) || units.len() > 10 {
        return Err(bad());
    }
    let units: u64 = units.parse().map_err(|_| bad())?;
    Ok(units * 100 + cents)
}

fn command_of(args: &Args) -> anyhow::Result<EcrCommand> {
    let currency = Some(args.currency);
    Ok(match &args.action {
        Action::Purchase { amount } => EcrCommand::Purchase {
            amount: parse_amount(amount)?,
            currency,
        },
        Action::Refund { amount } => EcrCommand::Refund {
            amount: parse_amount(amount)?,
            currency,
        },
        Action::Reverse { receipt } => EcrCommand::Reverse { receipt: *receipt },
        Action::PreAuthorise { amount } => EcrCommand::PreAuthorise {
            amount: parse_amount(amount)?,
            currency,
        },
        Action::BookTotal { receipt, amount } => EcrCommand::BookTotal {
            receipt: *receipt,
            amount: parse_amount(amount)?,
        },
        Action::PartialReversal { receipt, amount } => EcrCommand::PartialReversal {
            receipt: *receipt,
            amount: parse_amount(amount)?,
        },
        Action::EndOfDay => EcrCommand::EndOfDay,
        Action::Status => EcrCommand::Status,
        Action::Register { config } => EcrCommand::Register {
            config: u8::from_str_radix(config, 16).map_err(|_| {
                anyhow::anyhow!("config {config:?}: expected one hex byte, e.g. BA")
            })?,
            currency,
        },
        Action::RepeatReceipt => EcrCommand::RepeatReceipt,
        Action::Abort => EcrCommand::Abort,
        Action::LogOff => EcrCommand::LogOff,
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let command = command_of(&args)?;
    let password: u32 = match args.password.len() {
        1..=6 if args.password.bytes().all(|b| b.is_ascii_digit()) => args.password.parse()?,
        _ => anyhow::bail!("password: expected up to 6 digits"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = runtime.block_on(async {
        let journal = match &args.journal {
            Some(path) => Journal::to_file(path)?,
            None => Journal::discard(),
        };
        let config = EcrConfig {
            link: if args.serial.is_some() {
                LinkConfig::serial()
            } else {
                LinkConfig::tcp()
            },
            password,
            ack_timeout: args.ack_timeout,
            completion_timeout: args.completion_timeout,
            ..EcrConfig::default()
        };
        let mut ecr = Ecr::new(config);
        ecr.set_known_trace(args.known_trace);
        let quiet = args.json;
        let on_event = |ev: &EcrEvent| {
            if quiet {
                return;
            }
            if let EcrEvent::Decision(text) = ev {
                eprintln!("ecr: {text}");
            }
        };
        if let Some(path) = &args.serial {
            let name = path.display().to_string();
            let (mut stream, drained) = adapters::open_serial_drained(&name, args.baud)?;
            if let Some(spec) = &args.faults {
                stream = crate::faultlink::with_serial_faults(
                    stream,
                    spec,
                    args.baud,
                    args.seed,
                    "ecr->terminal",
                    journal.clone(),
                );
            }
            let outcome = adapters::run_ecr(
                &mut stream,
                &mut ecr,
                command,
                &journal,
                "ecr",
                || async { anyhow::bail!("a serial line is not reconnected") },
                on_event,
            )
            .await;
            // the last acknowledgement must be on the line before the process ends, or
            // the terminal waits for it and refuses the next session's command as busy
            drop(stream);
            let _ = tokio::task::spawn_blocking(move || drained.wait(Duration::from_secs(2))).await;
            outcome
        } else {
            let addr = args.connect.clone().unwrap_or_default();
            let stream = net::connect(&addr, Duration::from_secs(10)).await?;
            adapters::run_ecr(
                stream,
                &mut ecr,
                command,
                &journal,
                "ecr",
                || {
                    let addr = addr.clone();
                    async move { net::connect(&addr, Duration::from_secs(5)).await }
                },
                on_event,
            )
            .await
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print!("{}", render(&outcome));
    }
    Ok(match outcome.status {
        Status::Success => ExitCode::SUCCESS,
        Status::Failed | Status::Refused => ExitCode::from(1),
        Status::Unknown => ExitCode::from(3),
    })
}

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The outcome as people read it.
pub fn render(o: &Outcome) -> String {
    let payment = o.command.moves_money();
    let verdict = match (o.status, payment) {
        (Status::Success, true) => "APPROVED",
        (Status::Success, false) => "done",
        (Status::Failed, true) => "DECLINED",
        (Status::Failed, false) => "failed",
        (Status::Refused, _) => "REFUSED by the terminal",
        (Status::Unknown, _) => "RESULT UNKNOWN (check the terminal; nothing was sent again)",
    };
    let what = match &o.command {
        EcrCommand::Purchase { amount, .. } => format!("purchase {}", money(*amount)),
        EcrCommand::Refund { amount, .. } => format!("refund {}", money(*amount)),
        EcrCommand::Reverse { receipt } => format!("reverse receipt {receipt}"),
        EcrCommand::PreAuthorise { amount, .. } => format!("pre-authorise {}", money(*amount)),
        EcrCommand::BookTotal { receipt, amount } => {
            format!("book total {} of reservation {receipt}", money(*amount))
        }
        EcrCommand::PartialReversal { receipt, amount } => {
            format!("release {} of reservation {receipt}", money(*amount))
        }
        other => other.name().to_string(),
    };
    let mut s = format!("{what}: {verdict}\n");
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<10}{v}\n"));
    if let Some(code) = o.result_code {
        line("result", code.to_string());
    } else if let Some(text) = &o.result_text {
        line("result", text.clone());
    }
    if !o.intermediate.is_empty() {
        line("status", o.intermediate.join(" > "));
    }
    if let Some(a) = o.amount {
        line("amount", money(a));
    }
    match (&o.card_name, &o.pan) {
        (Some(n), Some(p)) => line("card", format!("{n} {p}")),
        (None, Some(p)) => line("card", p.clone()),
        _ => {}
    }
    let ids: Vec<String> = [
        o.trace.map(|t| format!("trace {t:06}")),
        o.receipt.map(|r| format!("receipt {r:04}")),
        o.auth_code.clone().map(|a| format!("auth {a}")),
        o.terminal_id.map(|t| format!("TID {t:08}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !ids.is_empty() {
        line("ids", ids.join("  "));
    }
    if let Some(t) = &o.additional_text {
        line("text", t.clone());
    }
    if let Some(c) = o.completion.as_ref().filter(|c| !c.is_empty()) {
        line("completion", c.clone());
    }
    if o.recovered {
        line(
            "note",
            "the answer was lost; the result was recovered from the terminal (not paid twice)"
                .into(),
        );
    }
    if o.resent {
        line(
            "note",
            "the terminal showed the payment had not run; it was sent again once".into(),
        );
    }
    for n in &o.notes {
        line("log", n.clone());
    }
    if !o.receipt_lines.is_empty() {
        s.push_str("  receipt:\n");
        for l in &o.receipt_lines {
            s.push_str(&format!("    {l}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(args: &[&str]) -> EcrCommand {
        use clap::Parser;
        let mut argv = vec!["poslab", "ecr", "--connect", "127.0.0.1:20007"];
        argv.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Ecr(a) => command_of(&a).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reservation_commands() {
        assert_eq!(
            command(&["pre-authorise", "100"]),
            EcrCommand::PreAuthorise {
                amount: 10_000,
                currency: Some(978)
            }
        );
        assert_eq!(
            command(&["book-total", "--receipt", "12", "75.50"]),
            EcrCommand::BookTotal {
                receipt: 12,
                amount: 7_550
            }
        );
        assert_eq!(
            command(&["partial-reversal", "--receipt", "12", "20"]),
            EcrCommand::PartialReversal {
                receipt: 12,
                amount: 2_000
            }
        );
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("42.50").unwrap(), 4250);
        assert_eq!(parse_amount("42.5").unwrap(), 4250);
        assert_eq!(parse_amount("42").unwrap(), 4200);
        assert_eq!(parse_amount("0,05").unwrap(), 5);
        for bad in ["", "4.2.1", "42.505", "-1", "a", ".5"] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
    }
}
