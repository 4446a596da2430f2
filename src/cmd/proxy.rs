use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use poslab_faults::parse_config;

use crate::journal::Journal;
use crate::proxy::{serve_api, Proxies};

/// Run a TCP fault proxy driven by toxiproxy's REST API.
///
/// Existing toxiproxy clients (toxiproxy-cli, the Go, Ruby, Python and Java clients, the
/// Testcontainers module) drive it unchanged: same paths, JSON bodies, status codes and error
/// bodies. Unlike toxiproxy, toxics in the config file are applied, every random decision is
/// seeded and journaled, and there are more toxic types: loss, duplication, reordering,
/// corruption, flapping, cut, refuse, dns_failure, down and message.
///
/// Prints `api: ADDR` and `seed: N` on stdout once the API is listening.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address of the REST API (loopback unless you say otherwise)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8474")]
    pub api: String,

    /// Proxies (and toxics) to create at start: toxiproxy's JSON populate array, or YAML
    /// (`seed: N` and `proxies: [...]`)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Seed of every random fault decision (default: the config's seed, else random; always
    /// printed)
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Append every connection, toxic change and fault decision to this JSON-lines file
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            parse_config(&text).with_context(|| format!("{}", path.display()))?
        }
        None => Default::default(),
    };
    let seed = args.seed.or(config.seed).unwrap_or_else(random_seed);
    let journal = match &args.journal {
        Some(path) => Journal::to_file(path)?,
        None => Journal::discard(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = crate::net::shutdown_on_signal();
        let proxies = Proxies::new(seed, journal.clone(), shutdown.clone());
        journal.record("proxy", "run", serde_json::json!({"seed": seed}));
        for spec in config.proxies {
            let name = spec.name.clone();
            proxies
                .create(spec)
                .await
                .map_err(|err| anyhow::anyhow!("proxy {name}: {}", err.message))?;
        }
        let listener = crate::net::bind(&args.api).await?;
        let addr = listener.local_addr()?;
        {
            // a reader that went away must not take the proxy down
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "api: {addr}\nseed: {seed}");
            let _ = out.flush();
        }
        tracing::info!(%addr, seed, "fault proxy API listening");
        serve_api(listener, proxies, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}
