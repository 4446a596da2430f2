//! A bench brought to life: every emulated node started and wired to the terminal under
//! test, the one journal every node writes to, and the handles steps act through.
//!
//! With every node emulated the links are in-memory pipes and the run uses simulated time;
//! with the terminal a `process:` (poslab's own `poslab terminal`, or a firmware build) the
//! emulated nodes serve it on loopback ports and ptys from [`Wiring`], in real time. Steps
//! act on the emulated nodes (the cash register starts a sale, the cardholder inserts a
//! card or types a PIN, the printer runs out of paper, the host declines the next request)
//! and read the journal; they never reach into the terminal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poslab_bench::{Bench, TimeMode};
use poslab_crypto::KeyFile;
use poslab_emv::card::{Card, VpcdCard};
use poslab_emv::profile::{CardProfile, Interface};
use poslab_escpos::device::{Fault, FaultKind};
use poslab_host::crypto_security::CryptoSecurity;
use poslab_host::Host;
use poslab_iso8583::Spec;
use poslab_terminal::keypad::{self, Decoder, Key, PadLine};
use poslab_terminal::params::Params;
use poslab_zvt::ecr::{Ecr, EcrCommand, EcrConfig, Outcome};
use poslab_zvt::link::LinkConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::process::{DutEvent, ProcessConfig, ProcessDut, Wiring};
use crate::host::HostServer;
use crate::journal::Journal;
use crate::link::{BoxIo, Dialer, Incoming, Offer};
use crate::net::{Handler, Peer};
use crate::printer::{self, PrinterHandle};
use crate::terminal;

/// The key file built into poslab (TEST keys only).
pub const TEST_KEYS: &str = include_str!("../../fixtures/keys/test-keys.yaml");

/// Where the card profiles live.
pub fn card_profile_path(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = PathBuf::from(name);
    if p.extension().is_some() {
        return p;
    }
    let local = PathBuf::from("fixtures/cards").join(format!("{name}.yaml"));
    if local.exists() {
        return local;
    }
    root.join("fixtures/cards").join(format!("{name}.yaml"))
}

/// The terminal under test.
enum Dut {
    /// A real terminal: poslab can only cut its power, through the bench's hooks.
    Real(Option<super::power::PowerHooks>),
    Embedded {
        task: tokio::task::JoinHandle<()>,
        token: CancellationToken,
    },
    Process(ProcessDut),
}

/// How the bench reaches the terminal's card reader.
enum ReaderSide {
    Memory(Arc<Mutex<Offer>>),
    Tcp(String),
    /// A real terminal's own reader: cards are presented by hand (or by a robot).
    ByHand,
}

/// How long the bench's watchdog lets the embedded terminal's core stay stopped before
/// it calls it a hang and resets the terminal (a spawned terminal's is in the bench file).
pub const EMBEDDED_HANG_TIMEOUT: Duration = Duration::from_secs(30);

pub struct LiveBench {
    pub name: String,
    pub time: TimeMode,
    pub seed: u64,
    pub journal: Journal,
    pub host: Arc<Mutex<Host>>,
    pub printer: PrinterHandle,
    ecr: EcrDriver,
    pad: PadDriver,
    reader: ReaderSide,
    cards: HashMap<String, Arc<tokio::sync::Mutex<VpcdCard>>>,
    dut: Dut,
    /// For restarting the embedded terminal after a power loss.
    embedded: Option<EmbeddedParts>,
    /// The live faults of the terminal->host link.
    host_faults: LinkFaults,
    /// The live faults of every link the bench serves (host, ecr, printer, reader, tms).
    links: BenchLinkFaults,
    pub workdir: PathBuf,
    shutdown: CancellationToken,
    pub params: Params,
    /// The emulated TMS, when the bench has a `tms` node.
    tms: Option<super::tms_node::TmsNode>,
}

struct EmbeddedParts {
    config: terminal::Config,
    host_offer: Offer,
    printer_offer: Offer,
    host_faults: LinkFaults,
    links: BenchLinkFaults,
    journal: Journal,
    tms_offer: Option<Offer>,
}

/// The live faults of each link of the bench, by the name steps use (see
/// [`LiveBench::link_faults`]). Upstream is always the bench file's `from -> to`: the
/// terminal to its peer, and the cash register to the terminal.
#[derive(Clone)]
pub struct BenchLinkFaults {
    pub host: LinkFaults,
    pub ecr: LinkFaults,
    pub printer: LinkFaults,
    pub reader: LinkFaults,
    /// The terminal->tms link (the TMS node wires its connections through it).
    pub tms: LinkFaults,
}

/// The link names [`LiveBench::link_faults`] knows, with the bench file's key of each.
pub const FAULT_LINKS: &[(&str, &str)] = &[
    ("host", "terminal->host"),
    ("ecr", "ecr->terminal"),
    ("printer", "terminal->printer"),
    ("reader", "terminal->reader"),
    ("tms", "terminal->tms"),
];

impl BenchLinkFaults {
    fn new(seed: u64) -> BenchLinkFaults {
        BenchLinkFaults {
            host: LinkFaults::new("terminal->host", seed),
            ecr: LinkFaults::new("ecr->terminal", seed),
            printer: LinkFaults::new("terminal->printer", seed),
            reader: LinkFaults::new("terminal->reader", seed),
            tms: LinkFaults::new("terminal->tms", seed),
        }
    }

    /// The faults of `link`: a short name (`host`, `ecr`, `printer`, `reader`, `tms`) or
    /// the bench file's key (`terminal->host`, `ecr->terminal`, ...).
    pub fn get(&self, link: &str) -> Option<&LinkFaults> {
        let short = FAULT_LINKS
            .iter()
            .find(|(short, key)| *short == link || *key == link)
            .map(|(short, _)| *short)?;
        Some(match short {
            "host" => &self.host,
            "ecr" => &self.ecr,
            "printer" => &self.printer,
            "reader" => &self.reader,
            _ => &self.tms,
        })
    }

    /// Reads the standing faults of the bench file's links.
    fn load_standing(&self, bench: &Bench) -> anyhow::Result<()> {
        for l in bench.links() {
            if l.link.faults.is_empty() {
                continue;
            }
            let faults = self.get(l.key).ok_or_else(|| {
                anyhow::anyhow!(
                    "bench {}: links.{}: faults on this link are not served (faults go on {})",
                    bench.source(),
                    l.key,
                    FAULT_LINKS
                        .iter()
                        .map(|(_, k)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
            for (i, f) in l.link.faults.iter().enumerate() {
                let toxics = f.to_toxic_specs().map_err(|e| {
                    anyhow::anyhow!("bench {}: links.{}.faults[{i}]: {e}", bench.source(), l.key)
                })?;
                for toxic in toxics {
                    faults.add(toxic);
                }
            }
        }
        Ok(())
    }
}

/// The live toxics of one link (upstream: terminal to peer; downstream: back), which
/// every connection over it follows, changed by steps while the scenario runs.
#[derive(Clone)]
pub struct LinkFaults {
    /// The link's name in the journal (`terminal->host`, `ecr->terminal`, ...).
    link: String,
    up: tokio::sync::watch::Sender<crate::faultlink::ToxicSet>,
    down: tokio::sync::watch::Sender<crate::faultlink::ToxicSet>,
    seed: u64,
    connections: Arc<std::sync::atomic::AtomicU64>,
    /// The protocol rules' message counts, shared by the link's connections.
    tally: poslab_faults::protocol::Tally,
}

impl LinkFaults {
    fn new(link: &str, seed: u64) -> LinkFaults {
        LinkFaults {
            link: link.to_owned(),
            up: tokio::sync::watch::channel(Arc::new(Vec::new())).0,
            down: tokio::sync::watch::channel(Arc::new(Vec::new())).0,
            seed,
            connections: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            tally: poslab_faults::protocol::Tally::new(),
        }
    }

    /// Adds (or replaces, by name) a toxic.
    pub fn add(&self, toxic: poslab_faults::ToxicSpec) {
        // a protocol rule added (again) counts its messages from now on
        self.tally.reset(&toxic.name);
        let side = match toxic.stream {
            poslab_faults::StreamDir::Upstream => &self.up,
            poslab_faults::StreamDir::Downstream => &self.down,
        };
        side.send_modify(|set| {
            let mut v: Vec<_> = set
                .iter()
                .filter(|t| t.name != toxic.name)
                .cloned()
                .collect();
            v.push(toxic.clone());
            *set = Arc::new(v);
        });
    }

    /// The link's name in the journal (`terminal->host`, `ecr->terminal`, ...).
    pub fn link(&self) -> &str {
        &self.link
    }

    /// Removes the toxic called `name` from both directions; whether there was one.
    pub fn remove(&self, name: &str) -> bool {
        let mut found = false;
        for side in [&self.up, &self.down] {
            side.send_if_modified(|set| {
                if set.iter().any(|t| t.name == name) {
                    *set = Arc::new(set.iter().filter(|t| t.name != name).cloned().collect());
                    found = true;
                    true
                } else {
                    false
                }
            });
        }
        found
    }

    /// The toxics now standing, upstream first.
    pub fn toxics(&self) -> Vec<poslab_faults::ToxicSpec> {
        let mut all = self.up.borrow().to_vec();
        all.extend(self.down.borrow().iter().cloned());
        all
    }

    /// The two directions of a new connection, following the live toxics; each
    /// connection gets its own RNG streams (`terminal->peer#N/upstream/...`).
    fn sides(&self) -> (crate::faultlink::Side, crate::faultlink::Side) {
        let n = self
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let key = format!("{}#{n}", self.link);
        crate::faultlink::Side::live_pair(
            self.up.subscribe(),
            self.down.subscribe(),
            self.seed,
            &key,
            &self.tally,
        )
    }

    /// Removes every toxic.
    pub fn clear(&self) {
        self.up.send_replace(Arc::new(Vec::new()));
        self.down.send_replace(Arc::new(Vec::new()));
    }
}

/// Streams from `incoming` (a process's or a real terminal's connections to an emulated
/// node: the host, the printer) through a fault link that follows `faults`.
fn through_faults(mut incoming: Incoming, faults: LinkFaults, journal: Journal) -> Incoming {
    let (offer, out) = Incoming::channel();
    tokio::spawn(async move {
        let peer = faults
            .link()
            .rsplit("->")
            .next()
            .unwrap_or("peer")
            .to_owned();
        while let Some(stream) = incoming.next().await {
            let (b, theirs) = tokio::io::duplex(crate::link::PIPE_BUFFER);
            let (mut up, down) = faults.sides();
            let ctx = crate::faultlink::LinkCtx::new(faults.link(), journal.clone());
            if crate::faultlink::refuses(&mut up, &ctx, &peer).is_some() {
                drop(stream); // refused: the connection closes at once
                continue;
            }
            crate::faultlink::spawn_link(stream, b, up, down, ctx);
            if offer.offer(Box::new(theirs)).is_err() {
                return;
            }
        }
    });
    out
}

/// A pipe to `peer` through a fault link that follows `faults`.
fn faulty_dialer(name: &'static str, peer: Offer, faults: LinkFaults, journal: Journal) -> Dialer {
    Dialer::custom(name, move || {
        let (peer, faults, journal) = (peer.clone(), faults.clone(), journal.clone());
        async move {
            let (mine, a) = tokio::io::duplex(crate::link::PIPE_BUFFER);
            let (b, theirs) = tokio::io::duplex(crate::link::PIPE_BUFFER);
            let (mut up, down) = faults.sides();
            let ctx = crate::faultlink::LinkCtx::new(faults.link(), journal);
            if let Some(action) = crate::faultlink::refuses(&mut up, &ctx, name) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    format!("{name}: {action:?}"),
                ));
            }
            peer.offer(Box::new(theirs)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "peer is not there")
            })?;
            crate::faultlink::spawn_link(a, b, up, down, ctx);
            Ok(Box::new(mine) as BoxIo)
        }
    })
}

/// One stream of a link the bench holds (the cash register's, a card's), through a fault
/// link that follows `faults`. `ours_is_client`: the bench's end is the link's `from` (the
/// cash register) rather than its `to` (a card on the terminal's reader).
fn faulty_stream(
    stream: BoxIo,
    faults: &LinkFaults,
    journal: &Journal,
    ours_is_client: bool,
) -> BoxIo {
    let (mine, theirs) = tokio::io::duplex(crate::link::PIPE_BUFFER);
    let (up, down) = faults.sides();
    let ctx = crate::faultlink::LinkCtx::new(faults.link(), journal.clone());
    if ours_is_client {
        crate::faultlink::spawn_link(theirs, stream, up, down, ctx);
    } else {
        crate::faultlink::spawn_link(stream, theirs, up, down, ctx);
    }
    Box::new(mine)
}

/// Options of a run that are not in the bench file.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub seed: u64,
    pub workdir: PathBuf,
    /// Parameter overrides for this scenario (on top of the bench file's).
    pub params: serde_json::Map<String, serde_json::Value>,
}

fn load_params(
    bench: &Bench,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> anyhow::Result<Params> {
    let mut map = serde_json::Map::new();
    if let Some(p) = &bench.file().provisioning {
        for (k, v) in &p.parameters {
            map.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in extra {
        map.insert(k.clone(), v.clone());
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| anyhow::anyhow!("bench {}: provisioning.parameters: {e}", bench.source()))
}

fn key_file(bench: &Bench) -> anyhow::Result<KeyFile> {
    let text = match bench
        .file()
        .provisioning
        .as_ref()
        .and_then(|p| p.keys.as_ref())
    {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("key file {path}: {e}"))?
        }
        None => TEST_KEYS.to_string(),
    };
    KeyFile::parse(&text).map_err(|e| anyhow::anyhow!("key file: {e}"))
}

fn host_config(bench: &Bench) -> anyhow::Result<poslab_host::config::Config> {
    crate::cmd::host::load_config(
        bench
            .file()
            .provisioning
            .as_ref()
            .and_then(|p| p.host_config.as_deref())
            .map(Path::new),
    )
}

impl LiveBench {
    /// Starts every node of `bench` and the terminal under test.
    pub async fn start(bench: &Bench, options: RunOptions) -> anyhow::Result<LiveBench> {
        let journal = Journal::in_memory();
        let shutdown = CancellationToken::new();
        let params = load_params(bench, &options.params)?;
        let keys = key_file(bench)?;
        let tmk_name = bench
            .file()
            .provisioning
            .as_ref()
            .and_then(|p| p.master_key.clone())
            .unwrap_or_else(|| "tmk".into());
        let tmk = keys
            .key(&tmk_name)
            .map_err(|e| anyhow::anyhow!("master key {tmk_name}: {e}"))?
            .clone();
        let spec =
            Spec::builtin("iso87ascii").ok_or_else(|| anyhow::anyhow!("no iso87ascii spec"))?;

        // the host
        let mut host = Host::new(host_config(bench)?);
        host.set_security(Box::new(
            CryptoSecurity::from_key_file(&keys, options.seed)
                .map_err(|e| anyhow::anyhow!("host keys: {e}"))?,
        ));
        let server = HostServer::new(host, spec.clone(), journal.clone());
        let host_state = server.host();
        // the TMS (provisions the terminal with the bench's keys and parameters)
        let tms = super::tms_node::server(bench, &params, options.seed, &journal)?;
        // the printer
        // standing printer faults from the bench file
        let printer_faults = bench
            .node("printer")
            .and_then(|n| n.emulated.as_ref())
            .map(|e| e.faults.join(","))
            .unwrap_or_default();
        let printer_faults = poslab_escpos::parse_faults(&printer_faults).map_err(|e| {
            anyhow::anyhow!(
                "bench {}: nodes.printer.emulated.faults: {e}",
                bench.source()
            )
        })?;
        let (printer, _task) = printer::spawn(
            printer::Options {
                link: "printer".into(),
                faults: printer_faults,
                ..printer::Options::default()
            },
            journal.clone(),
        )?;
        std::fs::create_dir_all(&options.workdir)?;
        let time = bench.time_mode();
        let terminal_node = bench.node("terminal");
        let process = terminal_node.and_then(|n| n.process.clone());

        // every link's live faults, with the bench file's standing faults on them
        let links = BenchLinkFaults::new(options.seed);
        links.load_standing(bench)?;
        let host_faults = links.host.clone();
        if let Some(spec_proc) = process {
            // the terminal is a program: serve it on loopback ports and ptys
            let mut wiring = Wiring::allocate(bench, "terminal", &options.workdir).await?;
            let host_listener = wiring
                .take_listener("host")
                .ok_or_else(|| anyhow::anyhow!("the process has no {{host}}"))?;
            serve_incoming(
                through_faults(
                    Incoming::tcp(host_listener),
                    host_faults.clone(),
                    journal.clone(),
                ),
                server,
                shutdown.clone(),
            );
            if let Some(l) = wiring.take_listener("printer") {
                serve_printer(
                    through_faults(Incoming::tcp(l), links.printer.clone(), journal.clone()),
                    printer.clone(),
                    shutdown.clone(),
                );
            }
            if let (Some(node), Some(l)) = (&tms, wiring.take_listener("tms")) {
                serve_incoming(
                    through_faults(Incoming::tcp(l), links.tms.clone(), journal.clone()),
                    node.server.clone(),
                    shutdown.clone(),
                );
            }
            let ecr_pty = wiring
                .take_pty("ecr")
                .ok_or_else(|| anyhow::anyhow!("the process has no {{ecr_pty}}"))?;
            let pad_pty = wiring
                .take_pty("keypad")
                .ok_or_else(|| anyhow::anyhow!("the process has no {{keypad_pty}}"))?;
            let reader = wiring
                .value(&poslab_bench::Placeholder::Listen("reader".into()))
                .ok_or_else(|| anyhow::anyhow!("the process has no {{reader_listen}}"))?;
            let mut config = ProcessConfig::new("terminal", &spec_proc, &options.workdir, |p| {
                wiring.value(p)
            })?;
            config
                .env
                .push(("POSLAB_SEED".into(), options.seed.to_string()));
            let params_json = serde_json::to_string(&params)?;
            config
                .env
                .push(("POSLAB_TERMINAL_PARAMS".into(), params_json));
            let dut = ProcessDut::start(config, journal.clone()).await?;
            let ecr = EcrDriver::start(
                faulty_stream(Box::new(ecr_pty), &links.ecr, &journal, true),
                LinkConfig::serial(),
                journal.clone(),
            );
            let pad = PadDriver::start(Box::new(pad_pty), journal.clone());
            return Ok(LiveBench {
                name: bench.name().to_string(),
                time,
                seed: options.seed,
                journal,
                host: host_state,
                printer,
                ecr,
                pad,
                reader: ReaderSide::Tcp(reader),
                cards: HashMap::new(),
                dut: Dut::Process(dut),
                embedded: None,
                host_faults: host_faults.clone(),
                links: links.clone(),
                workdir: options.workdir,
                shutdown,
                params,
                tms: tms.clone(),
            });
        }

        if let Some(node) = terminal_node.filter(|n| !n.is_emulated()) {
            // a real terminal: serve it where it expects us, drive its ECR port
            let listen_of = |name: &str, default: &str| {
                bench
                    .node(name)
                    .and_then(|n| n.emulated.as_ref())
                    .and_then(|e| e.listen.clone())
                    .unwrap_or_else(|| default.to_string())
            };
            let host_l = crate::net::bind(&listen_of("host", "0.0.0.0:8583")).await?;
            serve_incoming(
                through_faults(Incoming::tcp(host_l), host_faults.clone(), journal.clone()),
                server,
                shutdown.clone(),
            );
            if bench.node("printer").is_some() {
                let l = crate::net::bind(&listen_of("printer", "0.0.0.0:9100")).await?;
                serve_printer(
                    through_faults(Incoming::tcp(l), links.printer.clone(), journal.clone()),
                    printer.clone(),
                    shutdown.clone(),
                );
            }
            let via = bench
                .links()
                .into_iter()
                .find(|l| l.key == "ecr->terminal")
                .and_then(|l| l.link.via)
                .or_else(|| node.attachments().first().copied())
                .ok_or_else(|| {
                    anyhow::anyhow!("the terminal has no attachment for its ECR port")
                })?;
            let stream = super::open(
                "terminal",
                node,
                via,
                super::OpenLimits::default(),
                &journal,
            )
            .await?;
            let link = if matches!(via, poslab_bench::Via::Serial) {
                LinkConfig::serial()
            } else {
                LinkConfig::tcp()
            };
            let ecr = EcrDriver::start(
                faulty_stream(Box::new(stream), &links.ecr, &journal, true),
                link,
                journal.clone(),
            );
            // the pad of a real terminal is its own: nothing is typed for it
            let (pad_end, _) = tokio::io::duplex(64);
            let pad = PadDriver::start(Box::new(pad_end), journal.clone());
            let power = node
                .power
                .as_ref()
                .map(|p| super::power::PowerHooks::new("terminal", p, journal.clone()));
            return Ok(LiveBench {
                name: bench.name().to_string(),
                time,
                seed: options.seed,
                journal,
                host: host_state,
                printer,
                ecr,
                pad,
                reader: ReaderSide::ByHand,
                cards: HashMap::new(),
                dut: Dut::Real(power),
                embedded: None,
                host_faults: host_faults.clone(),
                links: links.clone(),
                workdir: options.workdir,
                shutdown,
                params,
                tms: tms.clone(),
            });
        }

        // every node emulated: in-memory links
        let (host_offer, host_incoming) = Incoming::channel();
        serve_incoming(host_incoming, server, shutdown.clone());
        let (printer_offer, printer_incoming) = Incoming::channel();
        serve_printer(printer_incoming, printer.clone(), shutdown.clone());
        let tms_offer = tms.as_ref().map(|node| {
            let (offer, incoming) = Incoming::channel();
            serve_incoming(incoming, node.server.clone(), shutdown.clone());
            offer
        });
        let config = terminal::Config {
            params: params.clone(),
            tmk,
            state_dir: options.workdir.join("terminal"),
            seed: options.seed,
            spec,
            software_version: format!("poslab-terminal {}", env!("CARGO_PKG_VERSION")),
            wall_start: wall_start(),
            tms: terminal::tms_link::TmsConfig {
                serial: super::tms_node::BENCH_SERIAL.into(),
                ..Default::default()
            },
        };
        let parts = EmbeddedParts {
            config,
            host_offer,
            printer_offer,
            host_faults,
            links: links.clone(),
            journal: journal.clone(),
            tms_offer,
        };
        let (dut, ecr_stream, pad_stream, reader_offer) = start_embedded(&parts, &journal);
        let ecr = EcrDriver::start(
            faulty_stream(ecr_stream, &links.ecr, &journal, true),
            // the register's line is serial on every bench (ZVT framing, ACK/NAK), so
            // serial faults mean the same on the embedded terminal and on a process
            LinkConfig::serial(),
            journal.clone(),
        );
        let pad = PadDriver::start(pad_stream, journal.clone());
        Ok(LiveBench {
            name: bench.name().to_string(),
            time,
            seed: options.seed,
            journal,
            host: host_state,
            printer,
            ecr,
            pad,
            reader: ReaderSide::Memory(Arc::new(Mutex::new(reader_offer))),
            cards: HashMap::new(),
            dut,
            host_faults: parts.host_faults.clone(),
            links,
            embedded: Some(parts),
            workdir: options.workdir,
            shutdown,
            params,
            tms,
        })
    }

    /// The cash register starts `command`; the outcome arrives later ([`LiveBench::ecr_outcome`]).
    pub fn ecr_start(&mut self, command: EcrCommand) -> oneshot::Receiver<anyhow::Result<Outcome>> {
        self.ecr.run(command)
    }

    /// A card is inserted (contact) or tapped (contactless): it connects to the reader.
    pub async fn present_card(
        &mut self,
        profile: &str,
        interface: Interface,
    ) -> anyhow::Result<()> {
        let card = match self.cards.get(profile) {
            Some(c) => c.clone(),
            None => {
                let path = card_profile_path(profile);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| anyhow::anyhow!("card profile {}: {e}", path.display()))?;
                let p = CardProfile::from_yaml(&text, &path.display().to_string())?;
                let c = Arc::new(tokio::sync::Mutex::new(VpcdCard::new(Card::new(
                    p, interface,
                ))));
                self.cards.insert(profile.to_string(), c.clone());
                c
            }
        };
        card.lock().await.card_mut().set_interface(interface);
        let stream: BoxIo = match &self.reader {
            ReaderSide::Memory(offer) => {
                let offer = offer
                    .lock()
                    .map_err(|_| anyhow::anyhow!("reader lock"))?
                    .clone();
                Box::new(offer.pipe()?)
            }
            ReaderSide::Tcp(addr) => {
                Box::new(crate::net::connect(addr, Duration::from_secs(5)).await?)
            }
            ReaderSide::ByHand => anyhow::bail!(
                "the terminal under test is real: present card {profile} to its reader by hand (a @hil scenario)"
            ),
        };
        let stream = faulty_stream(stream, &self.links.reader, &self.journal, false);
        self.journal.record(
            "card",
            "presented",
            json!({"profile": profile, "interface": format!("{interface:?}").to_lowercase()}),
        );
        let shutdown = self.shutdown.clone();
        let journal = self.journal.clone();
        let name = profile.to_string();
        tokio::spawn(async move {
            let mut card = card.lock().await;
            let r = crate::card::serve_card(&mut card, stream, &shutdown).await;
            card.disconnected();
            journal.record(
                "card",
                "removed",
                json!({"profile": name, "error": r.err().map(|e| e.to_string())}),
            );
        });
        Ok(())
    }

    /// The card's track 2 is swiped on the terminal's stripe reader.
    pub fn swipe(&mut self, profile: &str) -> anyhow::Result<()> {
        let path = card_profile_path(profile);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("card profile {}: {e}", path.display()))?;
        let p = CardProfile::from_yaml(&text, &path.display().to_string())?;
        self.pad
            .send(PadLine::Swipe(keypad::Track2Text::new(p.track2.expose())));
        Ok(())
    }

    pub fn press(&mut self, key: Key) {
        self.pad.send(PadLine::Key(key));
    }

    /// The pad's self test answers fail from now on (a broken keyboard).
    pub fn break_pad(&mut self, broken: bool) {
        self.pad.set_broken(broken);
    }

    /// The live faults of the terminal->host link (in memory for the embedded terminal,
    /// on the accepted connections of a process or a real terminal).
    pub fn host_link_faults(&self) -> anyhow::Result<&LinkFaults> {
        Ok(&self.host_faults)
    }

    /// The live faults of a link, by name: `host` (terminal->host), `ecr` (ecr->terminal),
    /// `printer` (terminal->printer), `reader` (terminal->reader: the vpcd card link),
    /// `tms` (terminal->tms), or the bench file's key. Their journal events carry the
    /// bench key (`terminal->printer#2/upstream`). A real terminal's own reader is not
    /// the bench's: its faults are an error.
    pub fn link_faults(&self, link: &str) -> anyhow::Result<&LinkFaults> {
        let faults = self.links.get(link).ok_or_else(|| {
            anyhow::anyhow!(
                "no link {link:?} (known: {})",
                FAULT_LINKS
                    .iter()
                    .map(|(s, _)| *s)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if faults.link() == "terminal->reader" && matches!(self.reader, ReaderSide::ByHand) {
            anyhow::bail!(
                "the terminal under test is real: its card reader is not on the bench's links"
            );
        }
        Ok(faults)
    }

    /// Every link's live faults.
    pub fn all_link_faults(&self) -> &BenchLinkFaults {
        &self.links
    }

    pub async fn printer_fault(&self, fault: Fault) -> anyhow::Result<()> {
        self.printer.set_fault(fault).await
    }

    pub async fn printer_clear(&self, kind: FaultKind) -> anyhow::Result<()> {
        self.printer.clear_fault(kind).await
    }

    /// Power loss of the terminal: killed at once, then started again.
    pub async fn power_cycle(&mut self) -> anyhow::Result<()> {
        self.journal.record("terminal", "power-loss", json!({}));
        self.ecr.abandon();
        match &mut self.dut {
            Dut::Real(Some(hooks)) => hooks.cycle().await?,
            Dut::Real(None) => {
                anyhow::bail!("the real terminal has no power hooks in the bench file")
            }
            Dut::Process(p) => {
                p.power_cycle().await?;
            }
            Dut::Embedded { .. } => self.restart_embedded()?,
        }
        self.journal.record("terminal", "power-restored", json!({}));
        Ok(())
    }

    /// Starts the embedded terminal afresh from its store (what survives a power cut or a
    /// watchdog reset), with new links to the register, the keypad and the reader.
    fn restart_embedded(&mut self) -> anyhow::Result<()> {
        if let Dut::Embedded { task, token } = &self.dut {
            task.abort();
            token.cancel();
        }
        let parts = self
            .embedded
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no embedded terminal"))?;
        let (dut, ecr_stream, pad_stream, reader_offer) = start_embedded(parts, &self.journal);
        self.dut = dut;
        self.ecr.replace(faulty_stream(
            ecr_stream,
            &self.links.ecr,
            &self.journal,
            true,
        ));
        self.pad.replace(pad_stream);
        if let ReaderSide::Memory(o) = &self.reader {
            if let Ok(mut o) = o.lock() {
                *o = reader_offer;
            }
        }
        Ok(())
    }

    /// The terminal hangs: alive but stuck, it answers nobody any more. A spawned terminal
    /// is stopped dead (SIGSTOP: its heartbeat stops too); the embedded one stops running
    /// its core. Finding it is the watchdog's job ([`LiveBench::watchdog`]).
    pub async fn hang(&mut self) -> anyhow::Result<()> {
        self.journal.record("terminal", "hang-injected", json!({}));
        match &mut self.dut {
            Dut::Real(_) => anyhow::bail!("a real terminal cannot be made to hang from here"),
            Dut::Process(p) => p.freeze().await?,
            Dut::Embedded { task, .. } => task.abort(),
        }
        Ok(())
    }

    /// Waits, at most `within`, for the terminal's watchdog to find it hung and restart it,
    /// and returns how long the terminal was silent. A spawned terminal is watched by its
    /// supervisor (the bench file's `watchdog` and `restart`); the embedded one by the
    /// bench: no sign of its core for [`EMBEDDED_HANG_TIMEOUT`] is a hang, and it is reset.
    /// The register gives up the command it was running, as with a power cut.
    pub async fn watchdog(&mut self, within: Duration) -> anyhow::Result<Duration> {
        let deadline = tokio::time::Instant::now() + within;
        let silent = match &mut self.dut {
            Dut::Real(_) => anyhow::bail!("a real terminal's watchdog is its own"),
            Dut::Process(p) => {
                let mut events = p.subscribe();
                let mut silent = None;
                loop {
                    let ev = tokio::time::timeout_at(deadline, events.recv())
                        .await
                        .map_err(|_| {
                            anyhow::anyhow!(
                                "the watchdog did not restart the terminal within {}",
                                humantime::format_duration(within)
                            )
                        })?;
                    match ev {
                        Ok(DutEvent::Hung { silent: s, .. }) => silent = Some(s),
                        Ok(DutEvent::Ready { .. }) if silent.is_some() => break,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(e) => anyhow::bail!("the terminal's supervisor ended: {e}"),
                    }
                }
                silent.unwrap_or_default()
            }
            Dut::Embedded { task, .. } => {
                let mut last_alive = tokio::time::Instant::now();
                loop {
                    if !task.is_finished() {
                        last_alive = tokio::time::Instant::now();
                    } else if last_alive.elapsed() >= EMBEDDED_HANG_TIMEOUT {
                        break;
                    }
                    anyhow::ensure!(
                        tokio::time::Instant::now() < deadline,
                        "the watchdog did not restart the terminal within {}",
                        humantime::format_duration(within)
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                let silent = last_alive.elapsed();
                self.journal.record(
                    "terminal",
                    "hang",
                    json!({"silent_ms": silent.as_millis() as u64, "watchdog": "bench"}),
                );
                self.restart_embedded()?;
                self.journal
                    .record("terminal", "watchdog-restart", json!({}));
                silent
            }
        };
        self.ecr.abandon();
        Ok(silent)
    }

    /// Loads another terminal master key into the embedded terminal (as a key-loading
    /// device would) and restarts it; the host keeps the bench's own key file.
    pub async fn load_master_key(&mut self, tmk: poslab_crypto::Key) -> anyhow::Result<()> {
        let parts = self.embedded.as_mut().ok_or_else(|| {
            anyhow::anyhow!("the terminal is a process: its master key is loaded outside poslab")
        })?;
        parts.config.tmk = tmk;
        parts.config.tms.master_key_injected = true;
        self.power_cycle().await
    }

    /// The emulated TMS's state machine (faults, orders, records).
    pub fn tms(&self) -> anyhow::Result<Arc<Mutex<poslab_tms::device::TmsDevice>>> {
        self.tms_node().map(|n| n.server.device())
    }

    /// The emulated TMS.
    pub fn tms_node(&self) -> anyhow::Result<&super::tms_node::TmsNode> {
        self.tms
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the bench {} has no emulated tms node", self.name))
    }

    /// Device exchange: the terminal is replaced by a new one (empty memory, serial
    /// `serial`), which starts at once: a new embedded terminal, or the process node
    /// started again with its `exchange.args`.
    pub async fn replace_terminal(&mut self, serial: &str) -> anyhow::Result<()> {
        if let Dut::Process(p) = &self.dut {
            self.journal
                .record("terminal", "replaced", json!({"serial": serial}));
            self.ecr.abandon();
            p.replace(serial).await?;
            return Ok(());
        }
        let parts = self.embedded.as_mut().ok_or_else(|| {
            anyhow::anyhow!("the terminal is a real device: swap it outside poslab")
        })?;
        let n: String = serial.chars().filter(char::is_ascii_alphanumeric).collect();
        parts.config.state_dir = self.workdir.join(format!("terminal-{n}"));
        parts.config.tms.serial = serial.to_string();
        self.journal
            .record("terminal", "replaced", json!({"serial": serial}));
        // a new device: the old one stops, the new one starts from its own empty memory
        self.restart_embedded()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        match self.dut {
            Dut::Real(_) => {}
            Dut::Process(p) => p.stop().await,
            Dut::Embedded { task, token } => {
                token.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
            }
        }
    }
}

fn wall_start() -> u64 {
    super::time::wall_now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn start_embedded(parts: &EmbeddedParts, journal: &Journal) -> (Dut, BoxIo, BoxIo, Offer) {
    let (ecr_offer, ecr_incoming) = Incoming::channel();
    let (pad_offer, pad_incoming) = Incoming::channel();
    let (reader_offer, reader_incoming) = Incoming::channel();
    let ecr_stream = ecr_offer.pipe().map(|s| Box::new(s) as BoxIo);
    let pad_stream = pad_offer.pipe().map(|s| Box::new(s) as BoxIo);
    let links = terminal::Links {
        host: faulty_dialer(
            "host",
            parts.host_offer.clone(),
            parts.host_faults.clone(),
            parts.journal.clone(),
        ),
        printer: faulty_dialer(
            "printer",
            parts.printer_offer.clone(),
            parts.links.printer.clone(),
            parts.journal.clone(),
        ),
        ecr: ecr_incoming,
        ecr_link: LinkConfig::serial(),
        reader: reader_incoming,
        keypad: pad_incoming,
        tms: parts
            .tms_offer
            .clone()
            .map(|o| faulty_dialer("tms", o, parts.links.tms.clone(), parts.journal.clone())),
    };
    let token = CancellationToken::new();
    let config = parts.config.clone();
    let term_journal = Journal::to_file(&config.state_dir.join("terminal.jsonl"))
        .unwrap_or_else(|_| Journal::discard());
    let t = token.clone();
    let j = journal.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = terminal::run(config, links, term_journal, t).await {
            j.record("terminal", "crashed", json!({"error": format!("{e:#}")}));
        }
    });
    let (a, b) = (tokio::io::duplex(1), tokio::io::duplex(1));
    let ecr_stream = ecr_stream.unwrap_or_else(|_| Box::new(a.0));
    let pad_stream = pad_stream.unwrap_or_else(|_| Box::new(b.0));
    (
        Dut::Embedded { task, token },
        ecr_stream,
        pad_stream,
        reader_offer,
    )
}

fn serve_incoming<H: Handler>(mut incoming: Incoming, handler: H, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut id = 0;
        loop {
            let stream = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                s = incoming.next() => match s { Some(s) => s, None => return },
            };
            id += 1;
            let h = handler.clone();
            let token = shutdown.child_token();
            tokio::spawn(async move {
                let _ = h
                    .handle(
                        stream,
                        Peer {
                            id,
                            addr: format!("terminal#{id}"),
                        },
                        token,
                    )
                    .await;
            });
        }
    });
}

fn serve_printer(mut incoming: Incoming, printer: PrinterHandle, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                s = incoming.next() => match s { Some(s) => s, None => return },
            };
            let p = printer.clone();
            let token = shutdown.child_token();
            tokio::spawn(async move {
                let _ = printer::serve_stream(&p, stream, "terminal".into(), token).await;
            });
        }
    });
}

// ---- the emulated cash register ---------------------------------------------------------

struct EcrRun(EcrCommand, oneshot::Sender<anyhow::Result<Outcome>>);

struct EcrDriver {
    tx: mpsc::UnboundedSender<EcrRun>,
    /// New links to the terminal (after it restarted with new in-memory pipes).
    streams: mpsc::UnboundedSender<BoxIo>,
    /// The terminal restarted (power loss, watchdog) under the command in progress.
    restarted: Arc<tokio::sync::Notify>,
}

/// How long the register waits for the bench to hand it the restarted terminal's new
/// link before it goes on with the one it has (a process keeps its pty).
const NEW_LINK_WAIT: Duration = Duration::from_secs(2);

impl EcrDriver {
    fn start(stream: BoxIo, link: LinkConfig, journal: Journal) -> EcrDriver {
        let (tx, mut rx) = mpsc::unbounded_channel::<EcrRun>();
        let (streams, mut new_streams) = mpsc::unbounded_channel::<BoxIo>();
        let restarted = Arc::new(tokio::sync::Notify::new());
        let restarts = restarted.clone();
        let config = EcrConfig {
            link,
            completion_timeout: Duration::from_secs(300),
            ..EcrConfig::default()
        };
        tokio::spawn(async move {
            let mut stream = stream;
            let mut ecr = Ecr::new(config.clone());
            loop {
                let EcrRun(command, reply) = tokio::select! {
                    biased;
                    s = new_streams.recv() => match s {
                        Some(s) => {
                            stream = s;
                            ecr = Ecr::new(config.clone());
                            continue;
                        }
                        None => return,
                    },
                    r = rx.recv() => match r { Some(r) => r, None => return },
                };
                let name = command.name();
                let start = tokio::time::Instant::now();
                ecr.start(command, start.elapsed(), Some(crate::zvt::wall_now()));
                // a money-safe register: when the terminal restarts under a command, it
                // asks the terminal for its last result once it is back, as after any
                // lost answer
                let result = loop {
                    let drive = crate::zvt::drive_ecr(
                        &mut stream,
                        &mut ecr,
                        start,
                        &journal,
                        "ecr",
                        || {
                            std::future::ready(Err::<&mut BoxIo, _>(anyhow::anyhow!(
                                "the register does not reconnect"
                            )))
                        },
                        |_| {},
                    );
                    let restarted = tokio::select! {
                        biased;
                        r = drive => break r,
                        _ = restarts.notified() => true,
                    };
                    if restarted {
                        journal.record("ecr", "terminal-restarted", json!({"command": name}));
                        if let Ok(Some(s)) =
                            tokio::time::timeout(NEW_LINK_WAIT, new_streams.recv()).await
                        {
                            stream = s;
                        }
                        ecr.handle_restart(start.elapsed());
                    }
                };
                match &result {
                    Ok(o) => journal.record("ecr", "outcome", json!({"command": name, "status": format!("{:?}", o.status),
                        "result_code": o.result_code.map(|c| c.0), "text": o.additional_text, "receipt": o.receipt,
                        "amount": o.amount, "pan": o.pan, "intermediate": o.intermediate,
                        "result_text": o.result_text, "notes": o.notes, "recovered": o.recovered, "resent": o.resent})),
                    Err(e) => journal.record("ecr", "outcome", json!({"command": name, "error": format!("{e:#}")})),
                };
                let _ = reply.send(result);
            }
        });
        EcrDriver {
            tx,
            streams,
            restarted,
        }
    }

    /// The terminal restarted: the command in progress recovers its outcome.
    fn abandon(&self) {
        self.restarted.notify_waiters();
    }

    fn run(&self, command: EcrCommand) -> oneshot::Receiver<anyhow::Result<Outcome>> {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(EcrRun(command, tx));
        rx
    }

    fn replace(&self, stream: BoxIo) {
        let _ = self.streams.send(stream);
    }
}

// ---- the emulated PIN pad -----------------------------------------------------------------

enum PadMsg {
    Line(PadLine),
    Replace(BoxIo),
    Broken(bool),
}

struct PadDriver {
    tx: mpsc::UnboundedSender<PadMsg>,
}

impl PadDriver {
    fn start(stream: BoxIo, journal: Journal) -> PadDriver {
        let (tx, mut rx) = mpsc::unbounded_channel::<PadMsg>();
        tokio::spawn(async move {
            let mut stream = stream;
            let mut decoder = Decoder::new();
            let mut buf = vec![0u8; 1024];
            let mut broken = false;
            loop {
                tokio::select! {
                    biased;
                    msg = rx.recv() => match msg {
                        None => return,
                        Some(PadMsg::Replace(s)) => { stream = s; decoder = Decoder::new(); }
                        Some(PadMsg::Broken(b)) => broken = b,
                        Some(PadMsg::Line(line)) => {
                            journal.record("keypad", "sent", json!({"line": line.to_string()}));
                            let _ = stream.write_all(&keypad::encode(&line)).await;
                            let _ = stream.flush().await;
                        }
                    },
                    r = stream.read(&mut buf) => match r {
                        Ok(0) | Err(_) => {
                            // the terminal is gone (power loss): wait for the next stream
                            match rx.recv().await {
                                Some(PadMsg::Replace(s)) => { stream = s; decoder = Decoder::new(); }
                                Some(PadMsg::Broken(b)) => broken = b,
                                Some(PadMsg::Line(line)) => { journal.record("keypad", "lost", json!({"line": line.to_string()})); }
                                None => return,
                            }
                        }
                        Ok(n) => {
                            decoder.push(buf.get(..n).unwrap_or(&[]));
                            while let Some(item) = decoder.next() {
                                match item {
                                    Ok(PadLine::Display(text)) => { journal.record("keypad", "display", json!({"text": text})); }
                                    Ok(PadLine::Test) => {
                                        let answer = if broken { PadLine::TestFail("keys do not answer".into()) } else { PadLine::TestOk };
                                        let _ = stream.write_all(&keypad::encode(&answer)).await;
                                        journal.record("keypad", "self-test", json!({"passed": !broken}));
                                    }
                                    Ok(other) => { journal.record("keypad", "received", json!({"line": other.to_string()})); }
                                    Err(e) => { journal.record("keypad", "bad-line", json!({"error": e.to_string()})); }
                                }
                            }
                        }
                    },
                }
            }
        });
        PadDriver { tx }
    }

    fn send(&self, line: PadLine) {
        let _ = self.tx.send(PadMsg::Line(line));
    }

    fn replace(&self, stream: BoxIo) {
        let _ = self.tx.send(PadMsg::Replace(stream));
    }

    fn set_broken(&self, broken: bool) {
        let _ = self.tx.send(PadMsg::Broken(broken));
    }
}
