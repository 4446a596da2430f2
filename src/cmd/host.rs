use std::path::PathBuf;
use std::process::ExitCode;

use poslab_crypto::KeyFile;
use poslab_host::{Config, CryptoSecurity, Host};
use poslab_iso8583::Spec;

use crate::host::HostServer;
use crate::journal::Journal;
use crate::net::{self, Limits};

/// Serve ISO 8583 terminals as a stateful acquirer host.
///
/// Merchants and terminals, rules (first match wins), reversals, voids, refunds, network
/// management and settlement with batch upload, as configured in a YAML file (the
/// built-in default when --config is absent: merchant 000000000000001, terminals 00000001
/// to 00000010; amounts 900.00-999.99 declined with their last two digits, above
/// 10,000.00 with 61, the rest approved). Prints "listening on ADDR" when ready; stops
/// cleanly on Ctrl-C or SIGTERM.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8583", value_name = "ADDR")]
    pub listen: String,

    /// ISO 8583 dialect: a built-in spec (iso87ascii, iso87binary, iso93ascii,
    /// iso87binary-tpdu) or a spec file (YAML)
    #[arg(long, default_value = "iso87ascii", value_name = "SPEC")]
    pub spec: String,

    /// Host configuration (YAML): merchants, terminals, card profiles, rules; the built-in
    /// scenarios/host/default.yaml when absent
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check MACs (DE 64/128, wrong: A0), PINs (DE 52, wrong: 55, third wrong: 75) and
    /// ARQCs (DE 55, answered with an ARPC in tag 91), and answer key exchanges (0800 DE 70
    /// = 101: session keys under the TMK in DE 48), with the keys of this TEST key file
    /// (e.g. fixtures/keys/test-keys.yaml); no checks when absent
    #[arg(long, value_name = "FILE")]
    pub security: Option<PathBuf>,

    /// Append every frame and decision to this journal (JSON lines, card data masked)
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// Connections served at once
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,

    /// Runtime worker threads (default: one per core)
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Measure each request's service time (bytes read to answer written) and print its
    /// percentiles when the host stops
    #[arg(long)]
    pub stats: bool,
}

/// The configuration named by `--config`, or the built-in default.
pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    match path {
        None => Ok(Config::default_config()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            Ok(Config::from_yaml(&text, &path.display().to_string())?)
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = load_config(args.config.as_deref())?;
    let security = match &args.security {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let keys = KeyFile::parse(&text)
                .map_err(|e| anyhow::anyhow!("key file {}: {e}", path.display()))?;
            Some(
                CryptoSecurity::from_key_file(&keys, 0)
                    .map_err(|e| anyhow::anyhow!("key file {}: {e}", path.display()))?,
            )
        }
    };
    let spec = Spec::load(&args.spec).map_err(|e| anyhow::anyhow!("spec {}: {e}", args.spec))?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = runtime.enable_all().build()?;
    runtime.block_on(async move {
        let journal = match &args.journal {
            Some(path) => Journal::to_file(path)?,
            None => Journal::discard(),
        };
        let listener = net::bind(&args.listen).await?;
        let addr = net::local_addr(&listener)?;
        let mut host = Host::new(config);
        if let Some(security) = security {
            host.set_security(Box::new(security));
        }
        let mut server = HostServer::new(host, spec, journal);
        if args.stats {
            server = server.with_service_stats();
        }
        let stats = server.clone();
        println!("listening on {addr}");
        tracing::info!(%addr, spec = %args.spec, "poslab host ready");
        let shutdown = net::shutdown_on_signal();
        let served = crate::host::run(
            listener,
            server,
            Limits {
                max_connections: args.max_connections,
            },
            shutdown,
        )
        .await;
        if let Some(h) = stats.service_stats() {
            println!(
                "service time (request read to answer written), {} requests: p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
                h.len(),
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.9),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
        served
    })?;
    Ok(ExitCode::SUCCESS)
}
