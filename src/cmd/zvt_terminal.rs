use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use poslab_zvt::link::LinkConfig;
use poslab_zvt::scripted::{Script, ScriptedApplication};
use poslab_zvt::terminal::{Terminal, TerminalConfig};

use crate::journal::Journal;
use crate::net::{self, Limits};
use crate::zvt::{self as adapters, TerminalHandler};

/// Serve the payment-terminal side of the ZVT cash-register link, answering from a script.
///
/// A cash register (a real one, or `poslab ecr`) drives it with registration, payments,
/// refunds, reversals, end of day, status enquiry, abort and log-off. The answers (result
/// code, intermediate statuses, receipt lines, pauses) come from a YAML script (see
/// fixtures/zvt-scripts/); without one every command is approved at once with the test card
/// 476173******0010. Over TCP the APDUs go raw (port 20007 by default); over a serial
/// port or pty they are framed (DLE STX ... DLE ETX CRC, ACK/NAK, 3 retries). The terminal
/// keeps its last result for a repeat-receipt request (06 20), so an ECR that lost an
/// answer can recover it. Prints "listening on ADDR" or "pty PATH" when ready; stops on
/// Ctrl-C or SIGTERM.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("transport").args(["listen", "serial", "pty"])))]
pub struct Args {
    /// Serve ZVT over TCP on this address (the default, 127.0.0.1:20007; port 0 picks a
    /// free port)
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Serve ZVT on this serial port (framed)
    #[arg(long, value_name = "PATH")]
    pub serial: Option<PathBuf>,

    /// Create a pty pair, serve on its master and print the slave's path for the ECR
    #[arg(long)]
    pub pty: bool,

    /// Serial speed (8 data bits, no parity, 2 stop bits)
    #[arg(long, default_value_t = 9600, value_name = "BAUD")]
    pub baud: u32,

    /// How the payment application answers (YAML): result codes, intermediate statuses,
    /// receipt lines, delays per command
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,

    /// Append every APDU, decoded and masked, to this journal (JSON lines)
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// How long to wait for the ECR's acknowledgement of each message
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub ack_timeout: Duration,
}

/// Reads and checks a terminal script.
pub fn load_script(path: Option<&Path>) -> anyhow::Result<Script> {
    let Some(path) = path else {
        return Ok(Script::default());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let script: Script =
        serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    script
        .validate()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(script)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let script = load_script(args.script.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let journal = match &args.journal {
            Some(path) => Journal::to_file(path)?,
            None => Journal::discard(),
        };
        let shutdown = net::shutdown_on_signal();
        let serial = args.serial.is_some() || args.pty;
        let config = TerminalConfig {
            link: if serial {
                LinkConfig::serial()
            } else {
                LinkConfig::tcp()
            },
            ecr_ack_timeout: args.ack_timeout,
            ..TerminalConfig::default()
        };
        let mut terminal = Terminal::new(ScriptedApplication::new(script), config);
        if let Some(path) = &args.serial {
            let name = path.display().to_string();
            let stream = adapters::open_serial(&name, args.baud)?;
            println!("serial {name}");
            tracing::info!(port = %name, "poslab zvt-terminal ready");
            adapters::serve_terminal_stream(
                stream,
                &mut terminal,
                &journal,
                "zvt-terminal",
                &shutdown,
            )
            .await?;
        } else if args.pty {
            #[cfg(unix)]
            {
                let (stream, path, _guard) = adapters::open_pty()?;
                println!("pty {path}");
                tracing::info!(pty = %path, "poslab zvt-terminal ready");
                adapters::serve_terminal_stream(
                    stream,
                    &mut terminal,
                    &journal,
                    "zvt-terminal",
                    &shutdown,
                )
                .await?;
            }
            #[cfg(not(unix))]
            anyhow::bail!("--pty needs a Unix system");
        } else {
            let addr = args.listen.as_deref().unwrap_or("127.0.0.1:20007");
            let listener = net::bind(addr).await?;
            let local = net::local_addr(&listener)?;
            println!("listening on {local}");
            tracing::info!(addr = %local, "poslab zvt-terminal ready");
            let handler = TerminalHandler::new(terminal, journal);
            net::serve(
                listener,
                handler,
                Limits {
                    max_connections: 16,
                },
                shutdown,
            )
            .await?;
        }
        Ok(ExitCode::SUCCESS)
    })
}
