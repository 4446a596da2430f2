//! The TMS itself as a sans-IO state machine: frames and `now` in, answers, a close
//! decision, stored logs and journal entries out. One [`TmsDevice`] serves every
//! terminal; each connection has its own [`Conn`] (receive buffer, chunk count).
//!
//! Decisions at call-home (sub-element 20 of the answer):
//! - `decommission` when ordered ([`TmsDevice::decommission`]), with `logs` if ordered;
//! - `keys-load` (or `keys-dukpt`) when the terminal reports no master key or one whose
//!   KCV is not this terminal's; `keys-rotate` when ordered;
//! - `params` when the reported parameter version is not the terminal's set's;
//! - `logs` when ordered;
//! - `firmware` for the first package that targets the terminal (TID, model, running
//!   version), that it does not run, has not failed or declined, and whose rollout wave
//!   has room and is open.
//!
//! Faults ([`crate::config::Fault`]) come from the config and from [`TmsDevice::set_fault`].

use std::collections::BTreeMap;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use poslab_crypto::dukpt::tdes::{derive_ipek, TdesKsn};
use poslab_crypto::{ecb_encrypt, wrap_key, Key, KeyFile};
use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{Config, Fault, FaultKind, KeyMode, PackageConfig, TerminalEntry};
use crate::error::TmsError;
use crate::package::{self, Manifest};
use crate::params::ParameterSet;
use crate::protocol::{
    self, rc, Answer, CallHomeAnswer, ChunkAnswer, ChunkRequest, Exchange, InstallReportMsg,
    KeyRecord, KeyUsage, KeysAnswer, LogPart, Order, Request, StatusReport, MAX_CHUNK, NO_TID,
};
use crate::subel::SubElements;

/// Built-in key file shared with the acquirer host.
pub const HOST_KEYS_YAML: &str = include_str!("../../../fixtures/keys/test-keys.yaml");

/// One journal entry: a kind (`frame-in`, `frame-out`, `bad-frame`, `decision`,
/// `install`, `logs`, `closed`) and a masked body.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JournalEntry {
    pub kind: &'static str,
    pub body: Value,
}

/// Logs a terminal finished uploading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLogs {
    pub tid: String,
    pub serial: String,
    pub bytes: Vec<u8>,
}

/// What the adapter must do after an input.
#[derive(Debug, Default)]
pub struct Output {
    /// Framed answers to write, in order.
    pub frames: Vec<Vec<u8>>,
    /// Close the connection after writing `frames`.
    pub close: bool,
    pub journal: Vec<JournalEntry>,
    /// Completed log uploads to store (the adapter writes them under the journal's dir).
    pub logs: Vec<StoredLogs>,
}

/// One connection's state.
#[derive(Debug)]
pub struct Conn {
    pub name: String,
    rx: Vec<u8>,
    chunks: u32,
    closed: bool,
}

/// An install result as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstallRecord {
    pub package: String,
    pub version: String,
    pub outcome: String,
    pub detail: String,
    pub at_ms: u64,
}

/// Everything the TMS knows about one TID.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TerminalRecord {
    pub tid: String,
    pub mid: String,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub key_mode: KeyMode,
    /// The last call-home status.
    pub status: Option<StatusReport>,
    pub last_seen_ms: Option<u64>,
    pub sessions: u64,
    /// KCVs of the keys last delivered, by usage (`tmk`, `pin`, `mac`, `data`, `ipek`).
    pub key_kcvs: BTreeMap<String, String>,
    pub ksn: Option<String>,
    pub params_sent: Option<String>,
    pub installs: Vec<InstallRecord>,
    /// The last complete log upload.
    #[serde(skip)]
    pub logs: Option<Vec<u8>>,
    pub log_uploads: u32,
    pub retired: bool,
    /// Serials once bound to this TID and retired with it.
    pub retired_serials: Vec<String>,
    /// KCVs the terminal said it destroyed.
    pub destroyed_kcvs: Vec<String>,
    pub decommission_ordered: bool,
    pub rotate_ordered: bool,
    pub keys_ordered: bool,
    pub params_ordered: bool,
    pub logs_ordered: bool,
    #[serde(skip)]
    log_buffer: Vec<u8>,
    #[serde(skip)]
    parameters: Option<String>,
    #[serde(skip)]
    tmk: Option<Key>,
}

impl TerminalRecord {
    fn new(t: &TerminalEntry, tmk: Option<Key>) -> TerminalRecord {
        TerminalRecord {
            tid: t.tid.clone(),
            mid: t.mid.clone(),
            serial: t.serial.clone(),
            model: t.model.clone(),
            key_mode: t.key_mode,
            status: None,
            last_seen_ms: None,
            sessions: 0,
            key_kcvs: BTreeMap::new(),
            ksn: None,
            params_sent: None,
            installs: Vec::new(),
            logs: None,
            log_uploads: 0,
            retired: false,
            retired_serials: Vec::new(),
            destroyed_kcvs: Vec::new(),
            decommission_ordered: false,
            rotate_ordered: false,
            keys_ordered: false,
            params_ordered: false,
            logs_ordered: false,
            log_buffer: Vec::new(),
            parameters: t.parameters.clone(),
            tmk,
        }
    }
}

#[derive(Debug)]
struct PackageState {
    cfg: PackageConfig,
    image: Vec<u8>,
    manifest: Manifest,
    /// (tid, wave index) in the order terminals joined.
    members: Vec<(String, usize)>,
    successes: Vec<u32>,
    failures: Vec<u32>,
    halted: bool,
    wave_at: Vec<Option<Duration>>,
}

/// Rollout figures of a package.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rollout {
    pub package: String,
    pub members: Vec<(String, usize)>,
    pub successes: Vec<u32>,
    pub failures: Vec<u32>,
    pub halted: bool,
}

#[derive(Debug, Clone)]
struct ActiveFault {
    fault: Fault,
    fired: u32,
}

/// The TMS.
pub struct TmsDevice {
    merchants: Vec<crate::config::Merchant>,
    sets: Vec<(String, ParameterSet)>,
    terminals: BTreeMap<String, TerminalRecord>,
    /// Config order of TIDs (auto-binding picks the first unbound).
    order: Vec<String>,
    packages: Vec<PackageState>,
    faults: Vec<ActiveFault>,
    tmk: Key,
    ttk: Key,
    bdk: Option<(Key, Option<poslab_crypto::Ksn>)>,
    signing: SigningKey,
    seed: u64,
    counter: u64,
}

impl std::fmt::Debug for TmsDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TmsDevice")
            .field("terminals", &self.terminals.len())
            .field("packages", &self.packages.len())
            .field("tmk", &self.tmk)
            .finish_non_exhaustive()
    }
}

fn cfg_err(path: &str, reason: impl std::fmt::Display) -> TmsError {
    TmsError::Config {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl TmsDevice {
    /// A TMS from a config that names no files (built-in keys; generated images).
    pub fn new(config: Config, seed: u64) -> Result<TmsDevice, TmsError> {
        TmsDevice::with_loader(config, seed, &|path: &str| {
            Err(format!("{path}: no file access here"))
        })
    }

    /// A TMS whose config may name files: `load` reads them (the adapter's I/O).
    pub fn with_loader(
        config: Config,
        seed: u64,
        load: &dyn Fn(&str) -> Result<Vec<u8>, String>,
    ) -> Result<TmsDevice, TmsError> {
        let text = |path: &str| -> Result<String, TmsError> {
            let bytes = load(path).map_err(|e| cfg_err(path, e))?;
            String::from_utf8(bytes).map_err(|_| cfg_err(path, "not UTF-8 text"))
        };
        let key_file = |file: &Option<String>, builtin: &str| -> Result<KeyFile, TmsError> {
            let (t, origin) = match file {
                Some(p) => (text(p)?, p.as_str()),
                None => (builtin.to_string(), "builtin"),
            };
            KeyFile::parse(&t).map_err(|e| cfg_err(origin, e))
        };
        let k = &config.keys;
        let host_keys = key_file(&k.file, HOST_KEYS_YAML)?;
        let tmk = host_keys
            .key(&k.master_key)
            .map_err(|e| cfg_err("keys.master_key", e))?
            .clone();
        let bdk = host_keys
            .get(&k.bdk)
            .map(|e| (e.key.clone(), e.initial_ksn));
        let ttk = key_file(&k.transport_file, package::TEST_TRANSPORT_KEY_YAML)?
            .key(&k.transport_key)
            .map_err(|e| cfg_err("keys.transport_key", e))?
            .clone();
        let signing = match &k.signing_file {
            Some(p) => package::signing_key_from_yaml(&text(p)?, p)?,
            None => package::test_signing_key(),
        };
        let mut terminals = BTreeMap::new();
        let mut order = Vec::new();
        for t in &config.terminals {
            let own_tmk = match &t.keys_file {
                Some(p) => Some(
                    key_file(&Some(p.clone()), "")?
                        .key(&k.master_key)
                        .map_err(|e| cfg_err(p, e))?
                        .clone(),
                ),
                None => None,
            };
            order.push(t.tid.clone());
            terminals.insert(t.tid.clone(), TerminalRecord::new(t, own_tmk));
        }
        let sets = config
            .parameter_sets
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    ParameterSet {
                        version: s.version.clone(),
                        terminal: s.terminal.clone(),
                        tms: s.tms.clone(),
                    },
                )
            })
            .collect();
        let mut packages = Vec::new();
        for p in &config.packages {
            let image = match (&p.image.file, &p.image.generate) {
                (Some(f), _) => load(f).map_err(|e| cfg_err(f, e))?,
                (None, Some(g)) => {
                    package::generate_image(&p.id, &p.version, g.size, g.seed, g.health != "fail")
                }
                (None, None) => return Err(cfg_err(&p.id, "no image")),
            };
            let manifest = Manifest::sign(&p.id, &p.version, &image, &signing);
            let waves = p.waves.len().max(1);
            packages.push(PackageState {
                wave_at: p
                    .waves
                    .iter()
                    .map(|w| {
                        w.at.as_deref()
                            .and_then(|a| humantime::parse_duration(a).ok())
                    })
                    .collect(),
                cfg: p.clone(),
                image,
                manifest,
                members: Vec::new(),
                successes: vec![0; waves],
                failures: vec![0; waves],
                halted: false,
            });
        }
        Ok(TmsDevice {
            merchants: config.merchants.clone(),
            sets,
            terminals,
            order,
            packages,
            faults: config
                .faults
                .iter()
                .map(|f| ActiveFault {
                    fault: f.clone(),
                    fired: 0,
                })
                .collect(),
            tmk,
            ttk,
            bdk,
            signing,
            seed,
            counter: 0,
        })
    }

    // ---- runtime API (steps) ----------------------------------------------------------

    /// Registers a terminal at run time, as a `terminals:` entry of the configuration
    /// would (its master key is the TMS's; a per-terminal key file needs the config).
    pub fn add_terminal(&mut self, entry: &TerminalEntry) -> Result<(), TmsError> {
        if entry.tid.len() != 8 || !entry.tid.is_ascii() {
            return Err(cfg_err("tid", "8 ASCII characters expected"));
        }
        if self.terminals.contains_key(&entry.tid) {
            return Err(cfg_err(
                "tid",
                format!("{} is already registered", entry.tid),
            ));
        }
        if entry.keys_file.is_some() {
            return Err(cfg_err(
                "keys_file",
                "a terminal with its own key file is registered in the configuration",
            ));
        }
        self.order.push(entry.tid.clone());
        self.terminals
            .insert(entry.tid.clone(), TerminalRecord::new(entry, None));
        Ok(())
    }

    /// Adds a fault (from now on).
    pub fn set_fault(&mut self, fault: Fault) {
        self.faults.push(ActiveFault { fault, fired: 0 });
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// The faults still armed.
    pub fn faults(&self) -> Vec<Fault> {
        self.faults.iter().map(|f| f.fault.clone()).collect()
    }

    /// Orders something for a TID's next call-home (`keys-load`, `keys-rotate`,
    /// `params`, `logs`, `decommission`; `firmware` follows the packages).
    pub fn order(&mut self, tid: &str, order: Order) -> Result<(), TmsError> {
        let t = self.record_mut(tid)?;
        match order {
            Order::KeysLoad | Order::KeysDukpt => t.keys_ordered = true,
            Order::KeysRotate => t.rotate_ordered = true,
            Order::Params => t.params_ordered = true,
            Order::Logs => t.logs_ordered = true,
            Order::Decommission => t.decommission_ordered = true,
            Order::Firmware | Order::Other(_) => {
                return Err(cfg_err(
                    "order",
                    format!("{} cannot be ordered directly", order.as_str()),
                ))
            }
        }
        Ok(())
    }

    /// Orders key destruction at the TID's next call-home; the TID is retired when the
    /// terminal confirms.
    pub fn decommission(&mut self, tid: &str) -> Result<(), TmsError> {
        self.order(tid, Order::Decommission)
    }

    /// Binds a new serial number (a replacement terminal) to a TID, retired or not; the
    /// old serial is refused from now on (`RT`).
    pub fn provision_replacement(&mut self, tid: &str, serial: &str) -> Result<(), TmsError> {
        if self
            .terminals
            .values()
            .any(|t| t.serial.as_deref() == Some(serial) && t.tid != tid)
        {
            return Err(cfg_err(
                "serial",
                format!("{serial} is bound to another TID"),
            ));
        }
        let t = self.record_mut(tid)?;
        if let Some(old) = t.serial.take() {
            if old != serial {
                t.retired_serials.push(old);
            }
        }
        t.serial = Some(serial.to_string());
        t.retired = false;
        t.decommission_ordered = false;
        t.status = None;
        t.key_kcvs.clear();
        t.params_sent = None;
        Ok(())
    }

    /// Publishes a new version of a parameter set (terminals running another version get
    /// `params` at their next call-home).
    pub fn publish_parameters(&mut self, name: &str, set: ParameterSet) {
        match self.sets.iter_mut().find(|(n, _)| n == name) {
            Some((_, s)) => *s = set,
            None => self.sets.push((name.to_string(), set)),
        }
    }

    /// Adds a package, or replaces the one with the same id (its rollout starts over);
    /// the manifest is signed now. Images come from `generate` (a file image needs
    /// [`TmsDevice::publish_image`]).
    pub fn publish_package(&mut self, cfg: PackageConfig) -> Result<(), TmsError> {
        let image = match &cfg.image.generate {
            Some(g) => {
                package::generate_image(&cfg.id, &cfg.version, g.size, g.seed, g.health != "fail")
            }
            None => return Err(cfg_err(&cfg.id, "publish_package needs image.generate")),
        };
        self.publish_image(cfg, image)
    }

    /// As [`TmsDevice::publish_package`] with the image bytes given.
    pub fn publish_image(&mut self, cfg: PackageConfig, image: Vec<u8>) -> Result<(), TmsError> {
        if cfg.id.is_empty() || cfg.id.contains(',') || image.is_empty() {
            return Err(cfg_err(
                &cfg.id,
                "a package needs an id (no comma) and an image",
            ));
        }
        let waves = cfg.waves.len().max(1);
        let state = PackageState {
            wave_at: cfg
                .waves
                .iter()
                .map(|w| {
                    w.at.as_deref()
                        .and_then(|a| humantime::parse_duration(a).ok())
                })
                .collect(),
            manifest: Manifest::sign(&cfg.id, &cfg.version, &image, &self.signing),
            image,
            members: Vec::new(),
            successes: vec![0; waves],
            failures: vec![0; waves],
            halted: false,
            cfg,
        };
        match self.packages.iter_mut().find(|p| p.cfg.id == state.cfg.id) {
            Some(p) => *p = state,
            None => self.packages.push(state),
        }
        Ok(())
    }

    pub fn terminal(&self, tid: &str) -> Option<&TerminalRecord> {
        self.terminals.get(tid)
    }

    pub fn terminals(&self) -> impl Iterator<Item = &TerminalRecord> {
        self.terminals.values()
    }

    pub fn rollout(&self, package: &str) -> Option<Rollout> {
        self.packages
            .iter()
            .find(|p| p.cfg.id == package)
            .map(|p| Rollout {
                package: p.cfg.id.clone(),
                members: p.members.clone(),
                successes: p.successes.clone(),
                failures: p.failures.clone(),
                halted: p.halted,
            })
    }

    /// The signed manifest of a package as configured (no faults applied).
    pub fn manifest(&self, package: &str) -> Option<&Manifest> {
        self.packages
            .iter()
            .find(|p| p.cfg.id == package)
            .map(|p| &p.manifest)
    }

    /// KCV of the master key the TMS gives a TID.
    pub fn master_key_kcv(&self, tid: &str) -> String {
        let k = self
            .terminals
            .get(tid)
            .and_then(|t| t.tmk.as_ref())
            .unwrap_or(&self.tmk);
        hex::encode_upper(k.kcv().as_bytes())
    }

    fn record_mut(&mut self, tid: &str) -> Result<&mut TerminalRecord, TmsError> {
        self.terminals
            .get_mut(tid)
            .ok_or_else(|| cfg_err("tid", format!("unknown TID {tid}")))
    }

    // ---- connections ------------------------------------------------------------------

    pub fn connect(&mut self, name: &str) -> Conn {
        Conn {
            name: name.to_string(),
            rx: Vec::new(),
            chunks: 0,
            closed: false,
        }
    }

    /// Bytes read from a connection, split anyhow.
    pub fn handle_bytes(&mut self, conn: &mut Conn, bytes: &[u8], now: Duration) -> Output {
        let mut out = Output::default();
        if conn.closed {
            return out;
        }
        conn.rx.extend_from_slice(bytes);
        loop {
            match protocol::framing().decode(&conn.rx) {
                Ok(None) => break,
                Err(e) => {
                    out.journal.push(JournalEntry {
                        kind: "bad-frame",
                        body: json!({"conn": conn.name, "error": e.to_string(), "len": conn.rx.len(),
                                     "head": hex::encode_upper(conn.rx.get(..8.min(conn.rx.len())).unwrap_or(&[]))}),
                    });
                    out.close = true;
                    conn.closed = true;
                    return out;
                }
                Ok(Some((frame, used))) => {
                    conn.rx.drain(..used.min(conn.rx.len()));
                    self.handle_payload(conn, &frame.payload, now, &mut out);
                    if out.close {
                        conn.closed = true;
                        return out;
                    }
                }
            }
        }
        out
    }

    fn fault_fires(&mut self, tid: &str, pred: impl Fn(&FaultKind) -> bool) -> Option<FaultKind> {
        let f = self.faults.iter_mut().find(|f| {
            pred(&f.fault.fault)
                && f.fault.tid.as_deref().is_none_or(|t| t == tid)
                && f.fault.times.is_none_or(|n| f.fired < n)
        })?;
        f.fired += 1;
        Some(f.fault.fault.clone())
    }

    fn fault_armed(&self, tid: &str, pred: impl Fn(&FaultKind) -> bool) -> Option<FaultKind> {
        self.faults
            .iter()
            .find(|f| {
                pred(&f.fault.fault)
                    && f.fault.tid.as_deref().is_none_or(|t| t == tid)
                    && f.fault.times.is_none_or(|n| f.fired < n)
            })
            .map(|f| f.fault.fault.clone())
    }

    fn handle_payload(&mut self, conn: &mut Conn, payload: &[u8], now: Duration, out: &mut Output) {
        if self
            .fault_fires("", |k| matches!(k, FaultKind::Down))
            .is_some()
        {
            out.journal.push(decision(
                &conn.name,
                "",
                "fault down: connection closed unanswered",
            ));
            out.close = true;
            return;
        }
        let msg = match protocol::unpack(payload) {
            Ok(m) => m,
            Err(e) => {
                out.journal.push(JournalEntry {
                    kind: "bad-frame",
                    body: json!({"conn": conn.name, "error": e.to_string(), "len": payload.len()}),
                });
                // answer what can be answered: a format error with whatever echoes we have
                let a = Request::new(
                    Exchange::Other("000000".into()),
                    0,
                    NO_TID,
                    SubElements::new(),
                )
                .answer(rc::FORMAT_ERROR);
                self.emit(conn, &a, out);
                return;
            }
        };
        out.journal.push(JournalEntry {
            kind: "frame-in",
            body: json!({"conn": conn.name, "message": protocol::journal_view(&msg)}),
        });
        let req = match Request::from_message(&msg) {
            Ok(r) => r,
            Err(e) => {
                out.journal
                    .push(decision(&conn.name, "", &format!("refused: {e}")));
                let a = Answer {
                    exchange: Exchange::from_code(msg.text(3).unwrap_or("")),
                    stan: msg.text(11).and_then(|s| s.parse().ok()).unwrap_or(0),
                    tid: msg.text(41).unwrap_or(NO_TID).to_string(),
                    code: rc::INVALID.into(),
                    mid: None,
                    sub: SubElements::new(),
                    data: None,
                };
                self.emit(conn, &a, out);
                return;
            }
        };
        let answer = match self.answer(conn, &req, now, out) {
            Ok(Some(a)) => a,
            Ok(None) => {
                out.close = true;
                return;
            }
            Err((code, why)) => {
                out.journal.push(decision(
                    &conn.name,
                    &req.tid,
                    &format!("{}: {code} {why}", req.exchange.name()),
                ));
                req.answer(code)
            }
        };
        self.emit(conn, &answer, out);
    }

    fn emit(&self, conn: &Conn, a: &Answer, out: &mut Output) {
        match a.to_message().and_then(|m| {
            let bytes = protocol::frame(&m)?;
            Ok((m, bytes))
        }) {
            Ok((m, bytes)) => {
                out.journal.push(JournalEntry {
                    kind: "frame-out",
                    body: json!({"conn": conn.name, "message": protocol::journal_view(&m)}),
                });
                out.frames.push(bytes);
            }
            Err(e) => {
                out.journal.push(decision(
                    &conn.name,
                    &a.tid,
                    &format!("cannot encode answer: {e}"),
                ));
                out.close = true;
            }
        }
    }

    /// Finds the terminal a request comes from (serial first, then TID binding).
    fn identify(
        &mut self,
        req: &Request,
        call_home: bool,
    ) -> Result<String, (&'static str, String)> {
        let serial = req
            .serial()
            .ok_or((rc::INVALID, "no serial number (DE 62 → 01)".to_string()))?
            .to_string();
        if let Some(t) = self
            .terminals
            .values()
            .find(|t| t.retired_serials.contains(&serial))
        {
            return Err((
                rc::RETIRED,
                format!("serial {serial} was retired from TID {}", t.tid),
            ));
        }
        if let Some(t) = self
            .terminals
            .values()
            .find(|t| t.serial.as_deref() == Some(&serial))
        {
            if t.retired {
                return Err((rc::RETIRED, format!("TID {} is retired", t.tid)));
            }
            return Ok(t.tid.clone());
        }
        if !call_home {
            return Err((
                rc::UNKNOWN_TERMINAL,
                format!("serial {serial} is not provisioned"),
            ));
        }
        // bind an unbound entry: by DE 41, or the first unbound one
        let tid = if req.tid != NO_TID {
            match self.terminals.get(&req.tid) {
                Some(t) if t.retired => {
                    return Err((rc::RETIRED, format!("TID {} is retired", t.tid)))
                }
                Some(t) if t.serial.is_none() => Some(t.tid.clone()),
                _ => None,
            }
        } else {
            self.order
                .iter()
                .find(|tid| {
                    self.terminals
                        .get(*tid)
                        .is_some_and(|t| t.serial.is_none() && !t.retired)
                })
                .cloned()
        };
        let Some(tid) = tid else {
            return Err((
                rc::UNKNOWN_TERMINAL,
                format!("serial {serial} (TID {}) is not provisioned", req.tid),
            ));
        };
        if let Some(t) = self.terminals.get_mut(&tid) {
            t.serial = Some(serial);
        }
        Ok(tid)
    }

    fn answer(
        &mut self,
        conn: &mut Conn,
        req: &Request,
        now: Duration,
        out: &mut Output,
    ) -> Result<Option<Answer>, (&'static str, String)> {
        let invalid = |e: TmsError| (rc::INVALID, e.to_string());
        if let Exchange::Other(code) = &req.exchange {
            return Err((
                rc::INVALID,
                format!("unknown processing code {}", hex::encode_upper(code)),
            ));
        }
        let tid = self.identify(req, req.exchange == Exchange::CallHome)?;
        let d = |text: String| decision(&conn.name, &tid, &text);
        match &req.exchange {
            Exchange::CallHome => {
                let status = StatusReport::from_request(req).map_err(invalid)?;
                let mut a = req.answer(rc::OK);
                let ch = self.call_home(&tid, status, now, out, &conn.name);
                a.tid = tid.clone();
                a.mid = Some(ch.mid.clone());
                a.sub = ch.to_sub().map_err(invalid)?;
                out.journal.push(d(format!(
                    "call-home: orders [{}]",
                    Order::format_list(&ch.orders)
                )));
                Ok(Some(a))
            }
            Exchange::InstallReport => {
                let r = InstallReportMsg::from_request(req).map_err(invalid)?;
                self.install_report(&tid, r, now, out, &conn.name);
                Ok(Some(req.answer(rc::OK)))
            }
            Exchange::MasterKey | Exchange::SessionKeys | Exchange::PinKey | Exchange::DukptKey => {
                let keys = self
                    .keys(&tid, &req.exchange)
                    .map_err(|e| (rc::TMS_ERROR, e.to_string()))?;
                out.journal.push(d(format!(
                    "{}: {}",
                    req.exchange.name(),
                    keys.keys
                        .iter()
                        .map(KeyRecord::masked)
                        .collect::<Vec<_>>()
                        .join(" ")
                )));
                let mut a = req.answer(rc::OK);
                a.sub = keys.to_sub().map_err(invalid)?;
                Ok(Some(a))
            }
            Exchange::Parameters => {
                let set = self
                    .parameters_for(&tid)
                    .ok_or((rc::NOT_PERMITTED, "no parameter set".to_string()))?;
                let json = set.to_json();
                let mut a = req.answer(rc::OK);
                a.sub = SubElements::new()
                    .with("40", set.version.as_str())
                    .and_then(|s| s.with("41", protocol::params_digest(&json)))
                    .map_err(invalid)?;
                if json.len() > 9999 {
                    return Err((
                        rc::TMS_ERROR,
                        format!("parameter set of {} bytes exceeds DE 63", json.len()),
                    ));
                }
                a.data = Some(json);
                if let Some(t) = self.terminals.get_mut(&tid) {
                    t.params_sent = Some(set.version.clone());
                    t.params_ordered = false;
                }
                out.journal
                    .push(d(format!("parameters: version {} sent", set.version)));
                Ok(Some(a))
            }
            Exchange::Chunk => {
                let c = ChunkRequest::from_request(req).map_err(invalid)?;
                self.chunk(conn, &tid, req, c, out)
            }
            Exchange::LogUpload => {
                let part = LogPart::from_request(req).map_err(invalid)?;
                let serial = req.serial().unwrap_or("").to_string();
                let t = self
                    .terminals
                    .get_mut(&tid)
                    .ok_or((rc::UNKNOWN_TERMINAL, tid.clone()))?;
                if part.offset != t.log_buffer.len() as u64 {
                    t.log_buffer.clear();
                    if part.offset != 0 {
                        return Err((
                            rc::INVALID,
                            format!("log part at {} without the parts before", part.offset),
                        ));
                    }
                }
                t.log_buffer.extend_from_slice(&part.bytes);
                if t.log_buffer.len() as u64 >= part.total {
                    let bytes = std::mem::take(&mut t.log_buffer);
                    t.logs = Some(bytes.clone());
                    t.log_uploads += 1;
                    t.logs_ordered = false;
                    out.journal.push(JournalEntry {
                        kind: "logs",
                        body: json!({"conn": conn.name, "tid": tid, "bytes": bytes.len()}),
                    });
                    out.logs.push(StoredLogs {
                        tid: tid.clone(),
                        serial,
                        bytes,
                    });
                }
                Ok(Some(req.answer(rc::OK)))
            }
            Exchange::KeysDestroyed => {
                let kcvs: Vec<String> = req
                    .sub
                    .text("80")
                    .unwrap_or("")
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                let t = self
                    .terminals
                    .get_mut(&tid)
                    .ok_or((rc::UNKNOWN_TERMINAL, tid.clone()))?;
                if !t.decommission_ordered {
                    return Err((rc::NOT_PERMITTED, "key destruction was not ordered".into()));
                }
                t.destroyed_kcvs = kcvs.clone();
                t.retired = true;
                t.decommission_ordered = false;
                t.key_kcvs.clear();
                out.journal.push(d(format!(
                    "keys destroyed ({}); TID {tid} retired",
                    kcvs.join(",")
                )));
                Ok(Some(req.answer(rc::OK)))
            }
            Exchange::Other(_) => Err((rc::INVALID, "unknown processing code".into())),
        }
    }

    fn parameters_for(&self, tid: &str) -> Option<ParameterSet> {
        let t = self.terminals.get(tid)?;
        let merchant = self.merchants.iter().find(|m| m.mid == t.mid);
        let name = t
            .parameters
            .clone()
            .or_else(|| merchant.and_then(|m| m.parameters.clone()));
        let mut set = match name {
            Some(n) => self.sets.iter().find(|(s, _)| *s == n)?.1.clone(),
            None => self.sets.first()?.1.clone(),
        };
        set.terminal
            .insert("tid".into(), Value::String(t.tid.clone()));
        set.terminal
            .insert("mid".into(), Value::String(t.mid.clone()));
        if let Some(m) = merchant {
            if !m.name.is_empty() {
                set.terminal
                    .entry("merchant_name")
                    .or_insert_with(|| Value::String(m.name.clone()));
            }
            if !m.address.is_empty() {
                set.terminal
                    .entry("merchant_address")
                    .or_insert_with(|| json!(m.address));
            }
            if !m.mcc.is_empty() {
                set.terminal
                    .entry("mcc")
                    .or_insert_with(|| Value::String(m.mcc.clone()));
            }
        }
        Some(set)
    }

    fn call_home(
        &mut self,
        tid: &str,
        status: StatusReport,
        now: Duration,
        out: &mut Output,
        conn: &str,
    ) -> CallHomeAnswer {
        let expected_kcv = self.master_key_kcv(tid);
        let params_version = self.parameters_for(tid).map(|s| s.version);
        let offer = self.offer(tid, &status, now, out, conn);
        let Some(t) = self.terminals.get_mut(tid) else {
            return CallHomeAnswer {
                tid: tid.to_string(),
                mid: String::new(),
                orders: Vec::new(),
                manifest: None,
                params_version: None,
            };
        };
        t.sessions += 1;
        t.last_seen_ms = Some(ms(now));
        if t.model.is_none() && !status.model.is_empty() {
            t.model = Some(status.model.clone());
        }
        let mut orders = Vec::new();
        if t.decommission_ordered {
            if t.logs_ordered {
                orders.push(Order::Logs);
            }
            orders.push(Order::Decommission);
        } else {
            let has_tmk = status.tmk_kcv.eq_ignore_ascii_case(&expected_kcv);
            if !has_tmk || t.keys_ordered {
                orders.push(match t.key_mode {
                    KeyMode::MasterSession => Order::KeysLoad,
                    KeyMode::Dukpt => Order::KeysDukpt,
                });
                t.keys_ordered = false;
                t.rotate_ordered = false;
            } else if t.rotate_ordered {
                orders.push(Order::KeysRotate);
                t.rotate_ordered = false;
            }
            if let Some(v) = &params_version {
                if *v != status.params_version || t.params_ordered {
                    orders.push(Order::Params);
                }
            }
            if t.logs_ordered {
                orders.push(Order::Logs);
            }
            if offer.is_some() {
                orders.push(Order::Firmware);
            }
        }
        t.status = Some(status);
        let firmware = orders.contains(&Order::Firmware);
        CallHomeAnswer {
            tid: t.tid.clone(),
            mid: t.mid.clone(),
            params_version: if orders.contains(&Order::Params) {
                params_version
            } else {
                None
            },
            orders,
            manifest: if firmware { offer } else { None },
        }
    }

    /// The package to offer a terminal, with faults applied to the manifest.
    fn offer(
        &mut self,
        tid: &str,
        status: &StatusReport,
        now: Duration,
        out: &mut Output,
        conn: &str,
    ) -> Option<Manifest> {
        let t = self.terminals.get(tid)?;
        if t.decommission_ordered {
            return None;
        }
        let model = if status.model.is_empty() {
            t.model.clone().unwrap_or_default()
        } else {
            status.model.clone()
        };
        let installs = t.installs.clone();
        let mut chosen = None;
        for (i, p) in self.packages.iter_mut().enumerate() {
            let tg = &p.cfg.target;
            let targeted = (tg.tids.is_empty() || tg.tids.iter().any(|x| x == tid))
                && (tg.models.is_empty() || tg.models.contains(&model))
                && (tg.versions.is_empty() || tg.versions.contains(&status.firmware_version));
            if !targeted || status.firmware_version == p.cfg.version {
                continue;
            }
            if installs
                .iter()
                .any(|r| r.package == p.cfg.id && r.outcome != "installed")
            {
                continue;
            }
            if p.halted {
                out.journal.push(decision(
                    conn,
                    tid,
                    &format!("{}: rollout halted, not offered", p.cfg.id),
                ));
                continue;
            }
            if p.members.iter().any(|(m, _)| m == tid) {
                chosen = Some(i);
                break;
            }
            // join the first open wave with room
            let waves = p.cfg.waves.len().max(1);
            let total_ok: u32 = p.successes.iter().sum();
            let mut joined = None;
            for w in 0..waves {
                let wave = p.cfg.waves.get(w);
                let open = match wave {
                    None => true,
                    Some(wv) => {
                        let by_count = wv.after_successes.map(|n| total_ok >= n);
                        let by_time = p.wave_at.get(w).copied().flatten().map(|at| now >= at);
                        match (by_count, by_time) {
                            (None, None) => true,
                            (a, b) => a.unwrap_or(false) || b.unwrap_or(false),
                        }
                    }
                };
                let room = wave
                    .and_then(|wv| wv.size)
                    .is_none_or(|n| p.members.iter().filter(|(_, x)| *x == w).count() < n);
                if open && room {
                    joined = Some(w);
                    break;
                }
            }
            match joined {
                Some(w) => {
                    p.members.push((tid.to_string(), w));
                    out.journal.push(decision(
                        conn,
                        tid,
                        &format!("{}: joins wave {}", p.cfg.id, w + 1),
                    ));
                    chosen = Some(i);
                    break;
                }
                None => {
                    out.journal.push(decision(
                        conn,
                        tid,
                        &format!("{}: no open wave with room yet", p.cfg.id),
                    ));
                }
            }
        }
        let i = chosen?;
        let mut m = self.packages.get(i)?.manifest.clone();
        let image = self.packages.get(i)?.image.clone();
        let id = m.id.clone();
        if let Some(FaultKind::WrongVersion(v)) =
            self.fault_fires(tid, |k| matches!(k, FaultKind::WrongVersion(_)))
        {
            m = Manifest::sign(&id, &v, &image, &self.signing);
            out.journal.push(decision(
                conn,
                tid,
                &format!("fault wrong_version: {id} offered as {v}"),
            ));
        }
        if let Some(FaultKind::TruncatedImage(n)) =
            self.fault_armed(tid, |k| matches!(k, FaultKind::TruncatedImage(_)))
        {
            m.size = n.min(m.size);
            m.signature = ed25519_dalek::Signer::sign(&self.signing, &m.signed_bytes())
                .to_bytes()
                .to_vec();
            out.journal.push(decision(
                conn,
                tid,
                &format!("fault truncated_image: {id} offered as {} bytes", m.size),
            ));
        }
        if self
            .fault_fires(tid, |k| matches!(k, FaultKind::WrongSignature))
            .is_some()
        {
            if let Some(b) = m.signature.get_mut(0) {
                *b ^= 0x01;
            }
            out.journal
                .push(decision(conn, tid, &format!("fault wrong_signature: {id}")));
        }
        Some(m)
    }

    fn chunk(
        &mut self,
        conn: &mut Conn,
        tid: &str,
        req: &Request,
        c: ChunkRequest,
        out: &mut Output,
    ) -> Result<Option<Answer>, (&'static str, String)> {
        let Some(p) = self.packages.iter().find(|p| p.cfg.id == c.package) else {
            return Err((rc::NOT_PERMITTED, format!("unknown package {}", c.package)));
        };
        if !p.members.iter().any(|(m, _)| m == tid) {
            return Err((
                rc::NOT_PERMITTED,
                format!("{} was not offered to {tid}", c.package),
            ));
        }
        let full = p.image.len() as u64;
        let total = match self.fault_armed(tid, |k| matches!(k, FaultKind::TruncatedImage(_))) {
            Some(FaultKind::TruncatedImage(n)) => n.min(full),
            _ => full,
        };
        if c.offset > total {
            return Err((
                rc::NOT_PERMITTED,
                format!("offset {} beyond the image ({total} bytes)", c.offset),
            ));
        }
        if c.length == 0 || c.length > MAX_CHUNK as u64 {
            return Err((
                rc::INVALID,
                format!("length {}: 1 to {MAX_CHUNK}", c.length),
            ));
        }
        if let Some(FaultKind::DownAfterChunks(n)) =
            self.fault_armed(tid, |k| matches!(k, FaultKind::DownAfterChunks(_)))
        {
            if conn.chunks >= n {
                self.fault_fires(tid, |k| matches!(k, FaultKind::DownAfterChunks(_)));
                out.journal.push(decision(
                    &conn.name,
                    tid,
                    &format!(
                        "fault down_after_chunks {n}: closed at offset {} of {}",
                        c.offset, total
                    ),
                ));
                return Ok(None);
            }
        }
        if let Some(FaultKind::DownAtPercent(pc)) =
            self.fault_armed(tid, |k| matches!(k, FaultKind::DownAtPercent(_)))
        {
            if c.offset * 100 >= total * u64::from(pc) && c.offset > 0 {
                self.fault_fires(tid, |k| matches!(k, FaultKind::DownAtPercent(_)));
                out.journal.push(decision(
                    &conn.name,
                    tid,
                    &format!(
                        "fault down_at_percent {pc}: closed at offset {} of {}",
                        c.offset, total
                    ),
                ));
                return Ok(None);
            }
        }
        let start = usize::try_from(c.offset).unwrap_or(usize::MAX);
        let end =
            usize::try_from(c.offset.saturating_add(c.length).min(total)).unwrap_or(usize::MAX);
        let mut bytes = p.image.get(start..end).unwrap_or(&[]).to_vec();
        if let Some(FaultKind::CorruptChunk(at)) = self.fault_armed(tid, |k| {
            matches!(k, FaultKind::CorruptChunk(at) if *at >= c.offset && *at < c.offset + c.length)
        }) {
            self.fault_fires(tid, |k| matches!(k, FaultKind::CorruptChunk(x) if *x == at));
            let i = usize::try_from(at - c.offset).unwrap_or(usize::MAX);
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 0xFF;
            }
            out.journal.push(decision(&conn.name, tid, &format!("fault corrupt_chunk: byte {at} flipped")));
        }
        conn.chunks += 1;
        let mut a = req.answer(rc::OK);
        ChunkAnswer {
            package: c.package,
            offset: c.offset,
            total,
            bytes,
        }
        .fill(&mut a)
        .map_err(|e| (rc::TMS_ERROR, e.to_string()))?;
        Ok(Some(a))
    }

    fn install_report(
        &mut self,
        tid: &str,
        r: InstallReportMsg,
        now: Duration,
        out: &mut Output,
        conn: &str,
    ) {
        let ok = r.outcome == "installed";
        let counts = r.outcome != "declined";
        if let Some(p) = self.packages.iter_mut().find(|p| p.cfg.id == r.package) {
            if let Some(&(_, w)) = p.members.iter().find(|(m, _)| m == tid) {
                if ok {
                    if let Some(s) = p.successes.get_mut(w) {
                        *s += 1;
                    }
                } else if counts {
                    if let Some(f) = p.failures.get_mut(w) {
                        *f += 1;
                    }
                    let max = p.cfg.waves.get(w).and_then(|wv| wv.max_failures);
                    if let (Some(max), Some(f)) = (max, p.failures.get(w)) {
                        if *f > max {
                            p.halted = true;
                            out.journal.push(decision(conn, tid, &format!(
                                "{}: {f} failed installs in wave {} (max {max}): rollout halted", p.cfg.id, w + 1)));
                        }
                    }
                }
            }
            if ok && r.version != p.cfg.version {
                out.journal.push(decision(
                    conn,
                    tid,
                    &format!(
                        "{}: installed version {} is not the package's {}",
                        p.cfg.id, r.version, p.cfg.version
                    ),
                ));
            }
        }
        out.journal.push(JournalEntry {
            kind: "install",
            body: json!({"conn": conn, "tid": tid, "package": r.package, "version": r.version,
                         "outcome": r.outcome, "detail": r.detail}),
        });
        if let Some(t) = self.terminals.get_mut(tid) {
            t.installs.push(InstallRecord {
                package: r.package,
                version: r.version,
                outcome: r.outcome,
                detail: r.detail,
                at_ms: ms(now),
            });
        }
    }

    fn session_key(&mut self, tmk: &Key) -> Result<Key, TmsError> {
        self.counter += 1;
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&self.seed.to_be_bytes());
        block[8..].copy_from_slice(&self.counter.to_be_bytes());
        let bytes = ecb_encrypt(tmk, &block).map_err(|e| cfg_err("session key", e))?;
        Ok(Key::tdes(&bytes)
            .map_err(|e| cfg_err("session key", e))?
            .with_odd_parity())
    }

    fn keys(&mut self, tid: &str, exchange: &Exchange) -> Result<KeysAnswer, TmsError> {
        let tmk = self
            .terminals
            .get(tid)
            .and_then(|t| t.tmk.clone())
            .unwrap_or_else(|| self.tmk.clone());
        let wrap = |usage: KeyUsage, kek: &Key, key: &Key| -> Result<KeyRecord, TmsError> {
            let w = wrap_key(kek, key).map_err(|e| cfg_err("key wrap", e))?;
            Ok(KeyRecord {
                usage,
                algorithm: key.algorithm().name().to_string(),
                cryptogram: w.cryptogram().to_vec(),
                kcv: w.kcv().as_bytes().to_vec(),
            })
        };
        let mut answer = KeysAnswer::default();
        let mut delivered: Vec<(KeyUsage, Key)> = Vec::new();
        match exchange {
            Exchange::MasterKey => {
                answer.keys.push(wrap(KeyUsage::Tmk, &self.ttk, &tmk)?);
                answer.transport_kcv = Some(hex::encode_upper(self.ttk.kcv().as_bytes()));
                delivered.push((KeyUsage::Tmk, tmk.clone()));
            }
            Exchange::SessionKeys => {
                for usage in [KeyUsage::Mac, KeyUsage::Data] {
                    let k = self.session_key(&tmk)?;
                    answer.keys.push(wrap(usage.clone(), &tmk, &k)?);
                    delivered.push((usage, k));
                }
            }
            Exchange::PinKey => {
                let k = self.session_key(&tmk)?;
                answer.keys.push(wrap(KeyUsage::Pin, &tmk, &k)?);
                delivered.push((KeyUsage::Pin, k));
            }
            Exchange::DukptKey => {
                let (bdk, initial) = self
                    .bdk
                    .clone()
                    .ok_or_else(|| cfg_err("keys.bdk", "no BDK in the key file"))?;
                let initial = match initial {
                    Some(poslab_crypto::Ksn::Tdes(k)) => k,
                    _ => return Err(cfg_err("keys.bdk", "the BDK needs a TDES initial_ksn")),
                };
                let ksn = terminal_ksn(&initial, tid)?;
                let ipek = derive_ipek(&bdk, &ksn).map_err(|e| cfg_err("dukpt", e))?;
                answer.keys.push(wrap(KeyUsage::Ipek, &tmk, &ipek)?);
                let ksn_hex = hex::encode_upper(ksn.as_bytes());
                answer.ksn = Some(ksn_hex.clone());
                if let Some(t) = self.terminals.get_mut(tid) {
                    t.ksn = Some(ksn_hex);
                }
                delivered.push((KeyUsage::Ipek, ipek));
            }
            _ => {}
        }
        // the wrong_kcv fault: flip the stated KCV of one usage
        for rec in &mut answer.keys {
            let name = rec.usage.to_string();
            if self
                .fault_fires(tid, |k| matches!(k, FaultKind::WrongKcv(u) if *u == name))
                .is_some()
            {
                if let Some(b) = rec.kcv.get_mut(0) {
                    *b ^= 0x5A;
                }
            }
        }
        if let Some(t) = self.terminals.get_mut(tid) {
            for (usage, k) in &delivered {
                t.key_kcvs
                    .insert(usage.to_string(), hex::encode_upper(k.kcv().as_bytes()));
            }
        }
        Ok(answer)
    }
}

/// The TID's KSN: the BDK's initial KSN with the TID's digits (mod 2^19) as device id in
/// the 19 bits above the 21-bit counter; counter zero.
fn terminal_ksn(initial: &TdesKsn, tid: &str) -> Result<TdesKsn, TmsError> {
    let bytes = initial.as_bytes();
    let mut v: u128 = bytes.iter().fold(0u128, |a, b| a << 8 | u128::from(*b));
    let device: u128 = tid
        .bytes()
        .filter(u8::is_ascii_digit)
        .fold(0u128, |a, d| (a * 10 + u128::from(d - b'0')) % (1 << 19));
    let mask: u128 = ((1u128 << 19) - 1) << 21;
    v = (v & !mask & !((1u128 << 21) - 1)) | (device << 21);
    let mut out = [0u8; 10];
    for (i, b) in out.iter_mut().enumerate() {
        *b = (v >> (8 * (9 - i))) as u8;
    }
    TdesKsn::from_bytes(&out).map_err(|e| cfg_err("dukpt ksn", e))
}

fn decision(conn: &str, tid: &str, text: &str) -> JournalEntry {
    JournalEntry {
        kind: "decision",
        body: json!({"conn": conn, "tid": tid, "decision": text}),
    }
}

#[cfg(test)]
mod tests;
