//! `poslab printer`: the receipt printer emulator.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use poslab_escpos::{parse_faults, Config, Fault, FaultKind};

use crate::journal::Journal;
use crate::net::{self, Limits};
use crate::printer::{self, Options, PrinterService};

/// Emulate an ESC/POS receipt printer: every cut ends a receipt, written to --out as
/// NNNN.txt (the text as a person reads it), NNNN.png (the paper roll) and NNNN.json (the
/// model with diagnostics). Status queries (DLE EOT, GS r, GS I, GS ( H, ASB) are answered
/// as a real printer does, including while faults are active.
///
/// Faults (comma-separated): paper-near-end, paper-out, paper-out-after=N (lines),
/// cover-open, jam, jam-after=N (lines), offline, slow=Nlps, garbage (junk bytes before
/// answers), drawer-open; and on the --serial or --pty line: drop=P, noise=P (bit errors),
/// baud=N (the terminal runs at N), break=P[/DUR], parity=P, framing=P, stall=P[/DUR],
/// disconnect=P[/DUR], each maybe after tx: (what the printer sends) or rx: (what it reads).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen for ESC/POS over TCP (JetDirect/9100 style); one connection at a time
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,

    /// Serve a serial port (e.g. /dev/ttyUSB0)
    #[arg(long, value_name = "PATH")]
    pub serial: Option<String>,

    /// Baud rate of --serial
    #[arg(long, default_value_t = 9600, value_name = "BAUD")]
    pub baud: u32,

    /// Create a pseudo-terminal and serve it; its path is printed ("pty /dev/pts/N")
    #[arg(long)]
    pub pty: bool,

    /// Directory for the receipts (created if missing)
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Faults active from power-on
    #[arg(long, value_name = "LIST", value_parser = parse_fault_list)]
    pub faults: Option<FaultList>,

    /// Append receipts, status answers and fault changes to this journal (card data masked)
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// Printable width in dots (576: 80 mm paper, 384: 58 mm)
    #[arg(long, default_value_t = 576, value_name = "DOTS")]
    pub width: u32,

    /// Model name answered to GS I 67
    #[arg(long, default_value = "poslab TM", value_name = "NAME")]
    pub model: String,

    /// Decode text as UTF-8 from power-on (else PC437 until ESC t or FS ( C)
    #[arg(long)]
    pub utf8: bool,

    /// Seed of the junk bytes of the garbage fault and of the serial line's faults
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,

    /// Read control commands from standard input, one per line: "set FAULT",
    /// "clear FAULT", "status" (prints the status as JSON)
    #[arg(long)]
    pub stdin_control: bool,
}

/// A comma-separated list of faults, as one argument: the printer's own, and the serial
/// line's (journaled, seeded by --seed).
#[derive(Clone, Debug)]
pub struct FaultList(pub Vec<Fault>, pub Option<poslab_faults::SerialSpec>);

fn parse_fault_list(s: &str) -> Result<FaultList, String> {
    let (line, own): (Vec<&str>, Vec<&str>) = s
        .split(',')
        .filter(|w| !w.trim().is_empty())
        .partition(|w| poslab_faults::serial::is_serial_word(w));
    let printer = parse_faults(&own.join(",")).map_err(|e| e.to_string())?;
    let serial = if line.is_empty() {
        None
    } else {
        Some(
            line.join(",")
                .parse::<poslab_faults::SerialSpec>()
                .map_err(|e| e.to_string())?,
        )
    };
    Ok(FaultList(printer, serial))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let journal = match &args.journal {
        Some(path) => Journal::to_file(path)?,
        None => Journal::discard(),
    };
    let options = Options {
        config: Config {
            width_dots: args.width.clamp(64, 4096),
            model_name: args.model.clone(),
            utf8: args.utf8,
            seed: args.seed,
        },
        out_dir: Some(args.out.clone()),
        faults: args.faults.clone().map(|f| f.0).unwrap_or_default(),
        link: "printer".into(),
    };
    let (handle, task) = printer::spawn(options, journal.clone())?;
    let shutdown = net::shutdown_on_signal();
    let mut tasks = tokio::task::JoinSet::new();

    let listen = match (&args.listen, &args.serial, args.pty) {
        (None, None, false) => Some("127.0.0.1:9100".to_string()),
        (l, _, _) => l.clone(),
    };
    if let Some(addr) = listen {
        let listener = net::bind(&addr).await?;
        say(format!("listening on {}", net::local_addr(&listener)?));
        let service = PrinterService {
            handle: handle.clone(),
        };
        let stop = shutdown.clone();
        tasks.spawn(async move {
            net::serve(listener, service, Limits { max_connections: 1 }, stop).await
        });
    }
    let line_faults = args.faults.as_ref().and_then(|f| f.1.clone());
    if let Some(path) = args.serial.clone() {
        let port = printer::open_serial(&path, args.baud)?;
        say(format!("serial {path} @ {}", args.baud));
        let h = handle.clone();
        let stop = shutdown.clone();
        match &line_faults {
            None => {
                tasks.spawn(async move { printer::serve_serial(&h, port, &path, stop).await });
            }
            Some(spec) => {
                // the port as a stream, through the line's faults
                let port = crate::zvt::bridge(port, &path)?;
                let port = crate::faultlink::with_serial_faults(
                    port,
                    spec,
                    args.baud,
                    args.seed,
                    "printer-line",
                    journal.clone(),
                );
                tasks.spawn(async move { printer::serve_stream(&h, port, path, stop).await });
            }
        }
    }
    if args.pty {
        let (pty, path) = crate::pty::Pty::open()?;
        say(format!("pty {}", path.display()));
        let h = handle.clone();
        let stop = shutdown.clone();
        let peer = path.display().to_string();
        match &line_faults {
            None => {
                tasks.spawn(async move { printer::serve_stream(&h, pty, peer, stop).await });
            }
            Some(spec) => {
                let pty = crate::faultlink::with_serial_faults(
                    pty,
                    spec,
                    args.baud,
                    args.seed,
                    "printer-line",
                    journal.clone(),
                );
                tasks.spawn(async move { printer::serve_stream(&h, pty, peer, stop).await });
            }
        }
    }
    if args.stdin_control {
        let h = handle.clone();
        let stop = shutdown.clone();
        // Standard input is read on a plain thread (blocking reads, no tokio io-std).
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            loop {
                let line = tokio::select! {
                    _ = stop.cancelled() => break,
                    line = lines.recv() => line,
                };
                let Some(line) = line else { break };
                match control(&h, line.trim()).await {
                    Ok(Some(out)) => say(out),
                    Ok(None) => {}
                    Err(err) => say(format!("error: {err:#}")),
                }
            }
        });
    }

    shutdown.cancelled().await;
    while let Some(result) = tasks.join_next().await {
        if let Ok(Err(err)) = result {
            tracing::warn!(
                error = format!("{err:#}"),
                "printer transport ended with an error"
            );
        }
    }
    handle.power_off().await;
    let _ = task.await;
    Ok(())
}

/// One control line: "set FAULT", "clear FAULT", "status".
async fn control(h: &printer::PrinterHandle, line: &str) -> anyhow::Result<Option<String>> {
    let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
    match verb {
        "" => Ok(None),
        "set" => {
            h.set_fault(arg.parse::<Fault>()?).await?;
            Ok(Some(format!("ok set {arg}")))
        }
        "clear" => {
            h.clear_fault(arg.parse::<FaultKind>()?).await?;
            Ok(Some(format!("ok clear {arg}")))
        }
        "status" => Ok(Some(serde_json::to_string(&h.status().await?)?)),
        other => {
            anyhow::bail!("unknown control command '{other}' (set FAULT, clear FAULT, status)")
        }
    }
}

/// A line on stdout, flushed at once (tests and scripts read it).
fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
