//! `poslab terminal`: the reference terminal as a program of its own, as a bench runs a
//! firmware build (scenarios/process.yaml).

use std::path::PathBuf;
use std::process::ExitCode;

use poslab_crypto::KeyFile;
use poslab_iso8583::Spec;
use poslab_terminal::params::Params;
use poslab_zvt::link::LinkConfig;

use crate::journal::Journal;
use crate::link::{BoxIo, Dialer, Incoming};
use crate::net;

/// Run poslab's reference payment terminal.
///
/// It talks to everything over its links: ISO 8583 to the host (`--host`, it connects),
/// ZVT to the cash register (`--ecr`: a serial port or pty path, framed; or an address to
/// listen on), ESC/POS to the printer (`--printer`, it connects), the vpcd protocol to
/// cards (`--reader`: it listens; a card connects when it is inserted or tapped), and the
/// keypad line protocol to its PIN pad and display (`--keypad`: a serial port or pty path,
/// or an address to connect to). Its memory (counters, batch, reversals to deliver,
/// receipts waiting for paper, session keys under the master key) is a file in `--state`,
/// rewritten atomically on every change: kill it at any moment and it carries on where it
/// was. Prints "terminal ready" when its links are up.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The acquirer host (ISO 8583, 2-byte length framing)
    #[arg(long, value_name = "ADDR")]
    pub host: String,

    /// The terminal management system: master key, parameters, firmware, logs come from it
    /// (the terminal calls it on its first start, on F5, on its parameters' timer, after an
    /// update)
    #[arg(long, value_name = "ADDR")]
    pub tms: Option<String>,

    /// The terminal's serial number (how the TMS knows it)
    #[arg(long, default_value = "PT-0001", value_name = "SERIAL")]
    pub serial: String,

    /// The cash register: a serial port or pty path, or an address to listen on
    #[arg(long, value_name = "PATH|ADDR")]
    pub ecr: String,

    /// The receipt printer (ESC/POS over TCP)
    #[arg(long, value_name = "ADDR")]
    pub printer: String,

    /// Where the card reader listens for cards (vpcd protocol)
    #[arg(long, default_value = "127.0.0.1:35963", value_name = "ADDR")]
    pub reader: String,

    /// The PIN pad and display: a serial port or pty path, or an address to connect to
    #[arg(long, value_name = "PATH|ADDR")]
    pub keypad: String,

    /// The terminal's own journal (JSON lines); its state lives beside it unless --state
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// Directory of the terminal's memory (default: beside the journal, or ./terminal-state)
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// Parameters (JSON or YAML: tid, mid, merchant_name, currency, host_timeout_ms, ...);
    /// the environment variable POSLAB_TERMINAL_PARAMS (JSON) is read when absent
    #[arg(long, value_name = "FILE")]
    pub params: Option<PathBuf>,

    /// TEST key file with the terminal master key (default: the built-in test keys)
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,

    /// Name of the terminal master key in the key file
    #[arg(long, default_value = "tmk", value_name = "NAME")]
    pub master_key: String,

    /// ISO 8583 dialect of the host link
    #[arg(long, default_value = "iso87ascii", value_name = "SPEC")]
    pub spec: String,

    /// Seed of the terminal's unpredictable numbers (default: POSLAB_SEED or 1)
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Serial speed of the ECR and keypad lines
    #[arg(long, default_value_t = 9600, value_name = "BAUD")]
    pub baud: u32,
}

fn is_path(s: &str) -> bool {
    s.starts_with('/') || s.starts_with("./")
}

fn load_params(args: &Args) -> anyhow::Result<Params> {
    if let Some(p) = &args.params {
        let text = std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
        return serde_saphyr::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
    }
    match std::env::var("POSLAB_TERMINAL_PARAMS") {
        Ok(json) => {
            serde_json::from_str(&json).map_err(|e| anyhow::anyhow!("POSLAB_TERMINAL_PARAMS: {e}"))
        }
        Err(_) => Ok(Params::default()),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let params = load_params(&args)?;
    let keys_text = match &args.keys {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?,
        None => crate::bench::live::TEST_KEYS.to_string(),
    };
    let keys = KeyFile::parse(&keys_text).map_err(|e| anyhow::anyhow!("key file: {e}"))?;
    let tmk = keys
        .key(&args.master_key)
        .map_err(|e| anyhow::anyhow!("master key {}: {e}", args.master_key))?
        .clone();
    let spec = Spec::load(&args.spec).map_err(|e| anyhow::anyhow!("spec {}: {e}", args.spec))?;
    let state_dir = args.state.clone().unwrap_or_else(|| match &args.journal {
        Some(j) => j
            .parent()
            .map(|p| p.join("terminal-state"))
            .unwrap_or_else(|| "terminal-state".into()),
        None => "terminal-state".into(),
    });
    let seed = args
        .seed
        .or_else(|| {
            std::env::var("POSLAB_SEED")
                .ok()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let journal = match &args.journal {
            Some(p) => Journal::to_file(p)?,
            None => Journal::discard(),
        };
        let (ecr, ecr_link) = if is_path(&args.ecr) {
            let s: BoxIo = Box::new(crate::zvt::open_serial(&args.ecr, args.baud)?);
            (Incoming::once(s), LinkConfig::serial())
        } else {
            (
                Incoming::tcp(net::bind(&args.ecr).await?),
                LinkConfig::tcp(),
            )
        };
        let keypad = if is_path(&args.keypad) {
            let s: BoxIo = Box::new(crate::zvt::open_serial(&args.keypad, args.baud)?);
            Incoming::once(s)
        } else {
            let s: BoxIo =
                Box::new(net::connect(&args.keypad, std::time::Duration::from_secs(10)).await?);
            Incoming::once(s)
        };
        let reader = Incoming::tcp(net::bind(&args.reader).await?);
        let config = crate::terminal::Config {
            params,
            tmk,
            state_dir,
            seed,
            spec,
            software_version: format!("poslab-terminal {}", env!("CARGO_PKG_VERSION")),
            wall_start: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            tms: crate::terminal::tms_link::TmsConfig {
                serial: args.serial.clone(),
                // with a TMS the master key comes from it, unless one is given here
                master_key_injected: args.tms.is_none() || args.keys.is_some(),
                ..Default::default()
            },
        };
        let links = crate::terminal::Links {
            host: Dialer::tcp(args.host.clone()),
            printer: Dialer::tcp(args.printer.clone()),
            ecr,
            ecr_link,
            reader,
            keypad,
            tms: args.tms.clone().map(Dialer::tcp),
        };
        println!("terminal ready");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let shutdown = net::shutdown_on_signal();
        // a line every few seconds, for a bench watchdog that takes silence for a hang
        tokio::spawn(async {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                println!("heartbeat");
                let _ = std::io::stdout().flush();
            }
        });
        crate::terminal::run(config, links, journal, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}
