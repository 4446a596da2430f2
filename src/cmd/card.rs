//! `poslab card`: an emulated EMV card in a virtual smart-card reader (vpcd protocol).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use poslab_emv::{Card, CardProfile, Interface};

use crate::card::{run_card, CardOptions};

/// Run an emulated EMV card in a virtual smart-card reader.
///
/// The card connects, as a TCP client, to a reader speaking vsmartcard's vpcd protocol:
/// pcscd with the vsmartcard-vpcd driver (then every PC/SC program sees the card in
/// "Virtual PCD 00 00"), or poslab's own reader. The card answers APDUs as a real EMV card
/// does, with real cryptograms from the profile's test issuer key, and keeps its counters
/// (ATC, PIN tries) while it runs. When the reader goes away the card waits and connects
/// again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Card profile (YAML), e.g. fixtures/cards/visa-credit.yaml
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,

    /// Address of the vpcd reader to connect to
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:35963")]
    pub vpcd: String,

    /// How the card is presented: inserted (contact) or tapped (contactless)
    #[arg(long, value_enum, default_value_t = Presented::Contact)]
    pub interface: Presented,

    /// Stop when the reader closes the connection instead of reconnecting
    #[arg(long)]
    pub once: bool,

    /// Milliseconds between connection attempts while the reader is not there
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub retry_ms: u64,

    /// Only load and check the profile, print a summary (card data masked) and exit
    #[arg(long)]
    pub check: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Presented {
    Contact,
    Contactless,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.profile)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.profile.display()))?;
    let profile = CardProfile::from_yaml(&text, &args.profile.display().to_string())?;
    if args.check {
        println!("{}", summary(&profile));
        return Ok(ExitCode::SUCCESS);
    }
    let interface = match args.interface {
        Presented::Contact => Interface::Contact,
        Presented::Contactless => Interface::Contactless,
    };
    tracing::info!(
        card = %profile.name,
        pan = %profile.pan,
        "card ready; connecting to the reader at {}",
        args.vpcd
    );
    let card = Card::new(profile, interface);
    let options = CardOptions {
        retry: Duration::from_millis(args.retry_ms.max(10)),
        once: args.once,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let card = runtime.block_on(async {
        let shutdown = crate::net::shutdown_on_signal();
        run_card(card, &args.vpcd, options, shutdown).await
    })?;
    let s = card.state();
    tracing::info!(
        atc = s.atc,
        pin_tries_left = s.pin_tries_left,
        "card stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// A masked one-screen summary of a profile.
pub fn summary(p: &CardProfile) -> String {
    let mut out = format!(
        "{}: {}\n  pan {}  expiry {}  service code {}\n  track 2 {}\n  interfaces {:?}\n",
        p.name, p.description, p.pan, p.expiry, p.service_code, p.track2, p.interfaces
    );
    if let Some(f) = p.chip_fault {
        out.push_str(&format!("  chip fault {f:?}\n"));
    }
    out.push_str(&format!(
        "  pin {}  tries {}/{}  atc {}  offline limit {}\n",
        if p.pin.is_some() { "set" } else { "none" },
        p.pin_tries_left,
        p.pin_try_limit,
        p.atc,
        p.offline_limit
    ));
    for a in &p.applications {
        out.push_str(&format!(
            "  application {} {:?}{}  aip {}  {} records\n",
            hex::encode_upper(&a.aid),
            a.label,
            if a.blocked { " (blocked)" } else { "" },
            hex::encode_upper(a.aip),
            a.records.len()
        ));
    }
    out.trim_end().to_string()
}
