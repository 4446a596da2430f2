//! The command line: one binary, one subcommand per device or tool.

use clap::{Parser, Subcommand};

use crate::cmd;

/// poslab: a hardware-in-the-loop simulator and test harness for payment terminals.
///
/// poslab emulates any end of any link of a payment bench (acquirer host, card and
/// reader, receipt printer, cash register, terminal) and drives the whole service life of a
/// terminal from Gherkin features. Card data is masked everywhere it is shown.
#[derive(Debug, Parser)]
#[command(
    name = "poslab",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log filter for diagnostics on stderr (tracing's env-filter syntax, e.g. "info",
    /// "poslab=debug"); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = "info", value_name = "FILTER")]
    pub log: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the acquirer host simulator (ISO 8583 over TCP)
    Host(cmd::host::Args),
    /// Decode a stream of framed ISO 8583 messages to JSON lines or a table
    Decode(cmd::decode::Args),
    /// Act as many terminals sending purchases to a host, and measure it
    Load(cmd::load::Args),
    /// Run the receipt printer emulator (ESC/POS over TCP, serial or pty)
    Printer(cmd::printer::Args),
    /// Run an emulated EMV card in a virtual smart-card reader (vpcd protocol)
    Card(cmd::card::Args),
    /// Act as the cash register (ZVT): send a purchase, refund, reversal or end of day
    Ecr(cmd::ecr::Args),
    /// Run the terminal side of the ZVT cash-register link
    ZvtTerminal(cmd::zvt_terminal::Args),
    /// Run the fault proxy (toxiproxy-compatible REST API)
    Proxy(cmd::proxy::Args),
    /// Print the JSON Schema of bench files
    Schema(cmd::schema::Args),
    /// Run Gherkin features against a bench (the main job)
    Run(cmd::run::Args),
    /// Run poslab's reference payment terminal as a program of its own
    Terminal(cmd::terminal::Args),
    /// Run the terminal management system (keys, parameters, firmware, diagnostics over TCP)
    Tms(cmd::tms::Args),
    /// List every step the features can use, with an example
    Steps(cmd::steps::Args),
    /// Random fault plans over the scenarios; the money checked after each, violations shrunk
    Chaos(cmd::chaos::Args),
}

/// Logs go to stderr so that stdout stays the command's output (JSON lines, tables).
pub fn init_tracing(filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
