use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use poslab_iso8583::Spec;

use crate::load::{self, LoadOptions};

/// Act as many terminals sending 0200 purchases to an ISO 8583 host, and measure it.
///
/// Each terminal has its own connection, TID (from --tid-start up) and STAN sequence.
/// --requests is the total, shared out evenly between the terminals; the run also stops
/// at --time-limit, counting what is still in flight (or unsent) as unanswered. Prints
/// throughput, latency percentiles (HDR histogram), response codes, errors and unmatched
/// answers; exits 1 when any request went unanswered or failed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Host to load
    #[arg(long, default_value = "127.0.0.1:8583", value_name = "ADDR")]
    pub target: String,

    /// Terminals (connections) at once
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub terminals: usize,

    /// Requests in total, shared out between the terminals
    #[arg(long, default_value_t = 10_000, value_name = "M")]
    pub requests: u64,

    /// Requests per second in total (open loop, latency measured from when each request
    /// was due); as fast as answers come when absent
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,

    /// Requests in flight per connection (pipelining)
    #[arg(long, default_value_t = 1, value_name = "W")]
    pub window: usize,

    /// ISO 8583 dialect (built-in spec name or spec file)
    #[arg(long, default_value = "iso87ascii", value_name = "SPEC")]
    pub spec: String,

    /// Stop after this long, whatever is left
    #[arg(long, default_value = "60s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub time_limit: Duration,

    /// The first terminal's TID, as a number (8 digits on the wire)
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub tid_start: u64,

    /// Merchant id (DE 42)
    #[arg(long, default_value = "000000000000001", value_name = "MID")]
    pub mid: String,

    /// Amount of each purchase, in minor units (cents)
    #[arg(long, default_value_t = 1_000, value_name = "MINOR")]
    pub amount: u64,

    /// Each terminal's first STAN (default: from the clock, so that runs against the same
    /// host do not repeat STANs and get answered 94 as duplicates)
    #[arg(long, value_name = "N")]
    pub stan_start: Option<u32>,

    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,

    /// Runtime worker threads (default: one per core)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = Spec::load(&args.spec).map_err(|e| anyhow::anyhow!("spec {}: {e}", args.spec))?;
    let stan_start = args.stan_start.unwrap_or_else(|| {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        (secs % 900_000) as u32 + 1
    });
    let options = LoadOptions {
        target: args.target.clone(),
        terminals: args.terminals,
        requests: args.requests,
        rate: args.rate,
        window: args.window,
        time_limit: args.time_limit,
        tid_start: args.tid_start,
        mid: args.mid.clone(),
        amount: args.amount,
        stan_start,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.enable_all().build()?;
    let report = runtime.block_on(load::run(options, Arc::new(spec)))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!(
            "poslab load → {} (spec {}, window {})\n{}",
            args.target,
            args.spec,
            args.window,
            report.render()
        );
    }
    Ok(if report.errors() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
