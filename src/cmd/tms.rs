use std::path::PathBuf;
use std::process::ExitCode;

use poslab_tms::config::Config;
use poslab_tms::device::TmsDevice;

use crate::journal::Journal;
use crate::net::{self, Limits};
use crate::tms::TmsServer;

/// Serve terminals as a terminal management system (TMS): keys, parameters, firmware,
/// diagnostics, decommissioning.
///
/// ISO 8583 0800/0810 maintenance sessions (NIBSS-style processing codes: 9D call-home,
/// 9A master key, 9B session keys, 9G PIN key, 9E DUKPT key, 9C parameters, 9F firmware
/// chunk, 9I install report, 9L log upload, 9K keys destroyed) over TCP with a 2-byte
/// length. The master key is the acquirer host's (TEST keys), delivered under the TEST
/// transport key; packages are signed with the TEST Ed25519 key. The built-in
/// configuration (scenarios/tms/default.yaml) knows merchant 000000000000001, terminals
/// 00000001 to 00000003, parameter set "retail" version 1 and package poslab-ref-1.1.0 in
/// two waves. Prints "listening on ADDR" when ready; stops cleanly on Ctrl-C or SIGTERM.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8584", value_name = "ADDR")]
    pub listen: String,

    /// TMS configuration (YAML): keys, merchants, terminals, parameter sets, packages,
    /// rollout waves, standing faults; the built-in scenarios/tms/default.yaml when absent
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Append every frame (decoded, keys by check value only) and decision to this journal
    /// (JSON lines); uploaded terminal logs are stored beside it in tms-logs/
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// Seed of the session keys the TMS generates
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,

    /// Connections served at once
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,

    /// Serve the control API (JSON over HTTP: terminals, orders, replacement, logs,
    /// parameter sets, packages and their rollout, faults) on this address; loopback
    /// unless told otherwise
    #[arg(long, value_name = "ADDR")]
    pub api: Option<String>,
}

/// The configuration named by `--config` (files it names are read relative to the
/// working directory), or the built-in default, as a device.
pub fn load_device(path: Option<&std::path::Path>, seed: u64) -> anyhow::Result<TmsDevice> {
    let config = match path {
        None => Config::from_yaml(
            poslab_tms::config::DEFAULT_YAML,
            "builtin:scenarios/tms/default.yaml",
        )?,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            Config::from_yaml(&text, &path.display().to_string())?
        }
    };
    let loader = |file: &str| std::fs::read(file).map_err(|e| format!("cannot read: {e}"));
    Ok(TmsDevice::with_loader(config, seed, &loader)?)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let device = load_device(args.config.as_deref(), args.seed)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let journal = match &args.journal {
            Some(path) => Journal::to_file(path)?,
            None => Journal::discard(),
        };
        let listener = net::bind(&args.listen).await?;
        let addr = net::local_addr(&listener)?;
        let server = TmsServer::new(device, journal);
        let shutdown = net::shutdown_on_signal();
        if let Some(api) = &args.api {
            let listener = net::bind(api).await?;
            let api_addr = net::local_addr(&listener)?;
            if !api_addr.ip().is_loopback() {
                tracing::warn!(%api_addr, "the TMS control API is reachable beyond this machine");
            }
            println!("api on {api_addr}");
            let (server, stop) = (server.clone(), shutdown.clone());
            tokio::spawn(async move {
                if let Err(e) = crate::tms_api::serve(listener, server, stop).await {
                    tracing::error!("tms api: {e:#}");
                }
            });
        }
        println!("listening on {addr}");
        tracing::info!(%addr, "poslab tms ready");
        crate::tms::run(
            listener,
            server,
            Limits {
                max_connections: args.max_connections,
            },
            shutdown,
        )
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}
