//! The client side of one maintenance session, as a sans-IO state machine the terminal
//! drives: framed bytes and `now` in; framed requests, events and a deadline out.
//!
//! ```text
//! [9I install report, if one is pending] → 9D call-home with the terminal's status
//!   → the orders of the answer, in this order:
//!     decommission: [logs] → DecommissionOrdered → keys_destroyed() → 9K → Done{decommissioned}
//!     keys-load: 9A, 9B, 9G    keys-dukpt: 9A, 9E    keys-rotate: 9B, 9G  → KeysLoaded
//!     params: 9C → Parameters
//!     logs: LogsRequested → provide_logs() → 9L parts
//!     firmware: PackageOffered → accept_package(offset) → 9F chunks (Chunk events)
//!               → DownloadComplete      (or decline_package() → 9I declined)
//!   → Done{decommissioned: false}
//! ```
//!
//! The session owns neither persistence nor image slots: it hands out what it receives
//! (keys as [`Secret`], KCV-checked, all-or-nothing; parameters; chunks with their offset)
//! and takes what it needs as inputs (resume offset, status, install report, logs,
//! destroyed keys). Any problem (an answer code other than `00`, a bad frame, a key whose
//! check value does not match, a closed link, a timeout) ends the session with
//! [`Event::Failed`], after which it emits and sends nothing more.
//!
//! Driver loop (the adapter, with its own socket and clock):
//! ```text
//! let mut s = ClientSession::new(cfg, status, pending_report, now);
//! while !s.is_finished() {
//!     while let Some(bytes) = s.poll_transmit() { write(bytes) }
//!     while let Some(ev) = s.poll_event() { handle(ev) /* may call accept_package, ... */ }
//!     if s.is_finished() { break }
//!     match read_until(s.poll_timeout()) {
//!         Data(b) => s.handle_bytes(&b, now), Closed => s.handle_closed(now),
//!         TimedOut => s.handle_timeout(now),
//!     }
//! }
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use poslab_crypto::{unwrap_key, Kcv, KcvMethod, Key, KeyAlgorithm, KeyUnderKey};
use poslab_sensitive::{Secret, SecretKind};

use crate::error::TmsError;
use crate::package::Manifest;
use crate::params::ParameterSet;
use crate::protocol::{
    self, rc, Answer, CallHomeAnswer, ChunkAnswer, ChunkRequest, Exchange, InstallReportMsg,
    KeyRecord, KeyUsage, KeysAnswer, LogPart, Order, Request, StatusReport, MAX_CHUNK, NO_TID,
};
use crate::subel::SubElements;

/// Who the terminal is and what it holds.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub serial: String,
    pub model: String,
    /// The TID, once the TMS assigned one (`None` on first provisioning).
    pub tid: Option<String>,
    /// The transport key injected at the factory (TTK).
    pub transport_key: Key,
    /// The master key the terminal holds (needed for `keys-rotate`).
    pub master_key: Option<Key>,
    /// Bytes asked per firmware chunk (at most [`MAX_CHUNK`]).
    pub chunk_size: usize,
    /// How long to wait for each answer.
    pub timeout: Duration,
}

impl ClientConfig {
    pub fn new(serial: &str, model: &str, transport_key: Key) -> ClientConfig {
        ClientConfig {
            serial: serial.to_string(),
            model: model.to_string(),
            tid: None,
            transport_key,
            master_key: None,
            chunk_size: 4096,
            timeout: Duration::from_secs(30),
        }
    }
}

/// What the terminal reports at call-home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerminalStatus {
    pub firmware_version: String,
    pub params_version: String,
    pub counters: BTreeMap<String, u64>,
    pub errors: Vec<String>,
    /// `ok`, `paper-out`, ... (free text).
    pub printer: String,
    pub reader: String,
    /// `normal`, `trial`, `rolled-back`, ... (free text).
    pub boot: String,
}

impl Default for TerminalStatus {
    fn default() -> Self {
        TerminalStatus {
            firmware_version: String::new(),
            params_version: String::new(),
            counters: BTreeMap::new(),
            errors: Vec::new(),
            printer: "ok".into(),
            reader: "ok".into(),
            boot: "normal".into(),
        }
    }
}

/// How an install ended. Open: other outcomes travel as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallOutcome {
    Installed,
    RolledBack,
    RejectedSignature,
    RejectedDigest,
    /// The image is not the version its manifest names.
    RejectedVersion,
    Failed,
    Declined,
    Other(String),
}

impl InstallOutcome {
    pub fn as_str(&self) -> &str {
        match self {
            InstallOutcome::Installed => "installed",
            InstallOutcome::RolledBack => "rolled-back",
            InstallOutcome::RejectedSignature => "rejected-signature",
            InstallOutcome::RejectedDigest => "rejected-digest",
            InstallOutcome::RejectedVersion => "rejected-version",
            InstallOutcome::Failed => "failed",
            InstallOutcome::Declined => "declined",
            InstallOutcome::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> InstallOutcome {
        match s {
            "installed" => InstallOutcome::Installed,
            "rolled-back" => InstallOutcome::RolledBack,
            "rejected-signature" => InstallOutcome::RejectedSignature,
            "rejected-digest" => InstallOutcome::RejectedDigest,
            "rejected-version" => InstallOutcome::RejectedVersion,
            "failed" => InstallOutcome::Failed,
            "declined" => InstallOutcome::Declined,
            o => InstallOutcome::Other(o.to_string()),
        }
    }

    /// Whether the package now runs.
    pub fn is_success(&self) -> bool {
        *self == InstallOutcome::Installed
    }
}

/// The result of installing a package, sent (9I) at the start of the next session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallReport {
    pub package: String,
    pub version: String,
    pub outcome: InstallOutcome,
    pub detail: String,
}

/// A key received and checked: clear bytes as a [`Secret`] (masked in Debug), its KCV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedKey {
    pub usage: KeyUsage,
    /// `tdes2`, `aes128`, ... (poslab_crypto names).
    pub algorithm: String,
    pub key: Secret,
    /// Legacy KCV, 6 upper-case hex digits.
    pub kcv: String,
}

impl LoadedKey {
    fn new(usage: KeyUsage, key: &Key) -> LoadedKey {
        LoadedKey {
            usage,
            algorithm: key.algorithm().name().to_string(),
            key: Secret::new(SecretKind::Key, key.expose().to_vec()),
            kcv: hex::encode_upper(key.kcv().as_bytes()),
        }
    }

    /// The key for poslab-crypto.
    pub fn to_key(&self) -> Result<Key, TmsError> {
        let alg = KeyAlgorithm::from_name(&self.algorithm).ok_or_else(|| TmsError::Key {
            usage: self.usage.to_string(),
            reason: format!("unknown algorithm {:?}", self.algorithm),
        })?;
        Key::new(alg, self.key.expose()).map_err(|e| TmsError::Key {
            usage: self.usage.to_string(),
            reason: e.to_string(),
        })
    }
}

/// What the session tells the terminal.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The call-home answer's identity (TID, MID).
    Assigned { tid: String, mid: String },
    /// What the TMS ordered (informational; unknown orders are ignored).
    Orders(Vec<Order>),
    /// Every key of a key order, KCV-checked; `ksn` for a DUKPT initial key.
    KeysLoaded {
        keys: Vec<LoadedKey>,
        ksn: Option<String>,
    },
    /// A new parameter set (digest checked).
    Parameters { version: String, set: ParameterSet },
    /// A package is offered: answer with `accept_package(offset)` or `decline_package`.
    PackageOffered(Manifest),
    /// Bytes of a package at an offset: write them, then persist `offset + len`.
    Chunk {
        package: String,
        offset: u64,
        bytes: Vec<u8>,
    },
    /// Every byte of the package is here: verify (`package::verify`), then install.
    DownloadComplete { package: String, size: u64 },
    /// Answer with `provide_logs`.
    LogsRequested,
    /// Destroy the keys, then `keys_destroyed(kcvs)`.
    DecommissionOrdered,
    /// The session is over.
    Done { decommissioned: bool },
    /// The session is over without finishing; `why` says where.
    Failed { why: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Plan {
    Send(Exchange),
    EmitKeys,
    WaitLogs,
    WaitPackage,
    WaitDestroy,
    Finish,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Logs,
    Package,
    Destroy,
}

#[derive(Clone, Debug)]
struct Inflight {
    exchange: Exchange,
    stan: u32,
    deadline: Duration,
    /// Bytes a chunk or log part asked for / carried.
    offset: u64,
}

/// One maintenance session. See the module docs for the flow and the driver loop.
pub struct ClientSession {
    cfg: ClientConfig,
    status: TerminalStatus,
    tid: String,
    mid: Option<String>,
    stan: u32,
    rx: Vec<u8>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    plan: VecDeque<Plan>,
    inflight: Option<Inflight>,
    waiting: Option<Wait>,
    finished: bool,
    report: Option<InstallReport>,
    tmk: Option<Key>,
    keys: Vec<LoadedKey>,
    ksn: Option<String>,
    manifest: Option<Manifest>,
    next_offset: u64,
    logs: Vec<u8>,
    log_offset: u64,
    destroyed: Vec<String>,
    decommissioned: bool,
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("serial", &self.cfg.serial)
            .field("tid", &self.tid)
            .field(
                "inflight",
                &self.inflight.as_ref().map(|i| i.exchange.name()),
            )
            .field("waiting", &self.waiting)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    /// Starts a session: the first request (9I if `pending`, else 9D) is ready at once.
    pub fn new(
        config: ClientConfig,
        status: TerminalStatus,
        pending: Option<InstallReport>,
        now: Duration,
    ) -> ClientSession {
        let mut plan = VecDeque::new();
        if pending.is_some() {
            plan.push_back(Plan::Send(Exchange::InstallReport));
        }
        plan.push_back(Plan::Send(Exchange::CallHome));
        let mut s = ClientSession {
            tid: config.tid.clone().unwrap_or_else(|| NO_TID.to_string()),
            tmk: config.master_key.clone(),
            cfg: config,
            status,
            mid: None,
            stan: 0,
            rx: Vec::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            plan,
            inflight: None,
            waiting: None,
            finished: false,
            report: pending,
            keys: Vec::new(),
            ksn: None,
            manifest: None,
            next_offset: 0,
            logs: Vec::new(),
            log_offset: 0,
            destroyed: Vec::new(),
            decommissioned: false,
        };
        s.advance(now);
        s
    }

    /// The next framed request to write.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the pending answer is due (`handle_timeout` then).
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.finished {
            return None;
        }
        self.inflight.as_ref().map(|i| i.deadline)
    }

    /// Done or Failed was emitted.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The TID (assigned by the call-home answer, or the configured one).
    pub fn tid(&self) -> Option<&str> {
        (self.tid != NO_TID).then_some(self.tid.as_str())
    }

    /// The MID the call-home answer gave.
    pub fn mid(&self) -> Option<&str> {
        self.mid.as_deref()
    }

    /// The package being downloaded and the next offset asked.
    pub fn download_position(&self) -> Option<(&str, u64)> {
        self.manifest
            .as_ref()
            .map(|m| (m.id.as_str(), self.next_offset))
    }

    /// Bytes read from the TMS, split anyhow.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Duration) {
        if self.finished {
            return;
        }
        self.rx.extend_from_slice(bytes);
        loop {
            match protocol::framing().decode(&self.rx) {
                Ok(None) => break,
                Err(e) => {
                    self.fail(format!("bad frame from the tms: {e}"));
                    return;
                }
                Ok(Some((frame, used))) => {
                    self.rx.drain(..used.min(self.rx.len()));
                    let answer =
                        protocol::unpack(&frame.payload).and_then(|m| Answer::from_message(&m));
                    match answer {
                        Ok(a) => self.handle_answer(a, now),
                        Err(e) => {
                            self.fail(format!("bad answer from the tms: {e}"));
                            return;
                        }
                    }
                    if self.finished {
                        return;
                    }
                }
            }
        }
    }

    /// The link closed (or could not be opened).
    pub fn handle_closed(&mut self, _now: Duration) {
        if self.finished {
            return;
        }
        let why = match (&self.inflight, &self.manifest) {
            (Some(i), Some(m)) if i.exchange == Exchange::Chunk => format!(
                "connection closed during the download of {} at offset {} of {}",
                m.id, i.offset, m.size
            ),
            (Some(i), _) => format!(
                "connection closed waiting for the {} answer",
                i.exchange.name()
            ),
            _ => "connection closed".to_string(),
        };
        self.fail(why);
    }

    /// Time passed: fails the session when the pending answer is overdue.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.finished {
            return;
        }
        if let Some(i) = &self.inflight {
            if now >= i.deadline {
                let why = format!(
                    "no answer to {} within {} ms",
                    i.exchange.name(),
                    self.cfg.timeout.as_millis()
                );
                self.fail(why);
            }
        }
    }

    /// After [`Event::PackageOffered`]: download from `resume_offset` (the bytes the
    /// terminal already holds; 0 for a fresh download). Ignored at any other time.
    pub fn accept_package(&mut self, resume_offset: u64, now: Duration) {
        if self.waiting != Some(Wait::Package) {
            return;
        }
        self.waiting = None;
        let size = self.manifest.as_ref().map_or(0, |m| m.size);
        self.next_offset = resume_offset.min(size);
        self.plan.push_front(Plan::Send(Exchange::Chunk));
        self.advance(now);
    }

    /// After [`Event::PackageOffered`]: refuse it (reported to the TMS as `declined`).
    pub fn decline_package(&mut self, reason: &str, now: Duration) {
        if self.waiting != Some(Wait::Package) {
            return;
        }
        self.waiting = None;
        if let Some(m) = &self.manifest {
            self.report = Some(InstallReport {
                package: m.id.clone(),
                version: m.version.clone(),
                outcome: InstallOutcome::Declined,
                detail: reason.to_string(),
            });
            self.plan.push_front(Plan::Send(Exchange::InstallReport));
        }
        self.advance(now);
    }

    /// After [`Event::LogsRequested`]: the logs to upload (in parts).
    pub fn provide_logs(&mut self, logs: &[u8], now: Duration) {
        if self.waiting != Some(Wait::Logs) {
            return;
        }
        self.waiting = None;
        self.logs = logs.to_vec();
        self.log_offset = 0;
        self.plan.push_front(Plan::Send(Exchange::LogUpload));
        self.advance(now);
    }

    /// After [`Event::DecommissionOrdered`]: the keys are gone; `kcvs` names them.
    pub fn keys_destroyed(&mut self, kcvs: Vec<String>, now: Duration) {
        if self.waiting != Some(Wait::Destroy) {
            return;
        }
        self.waiting = None;
        self.destroyed = kcvs;
        self.tmk = None;
        self.plan.push_front(Plan::Send(Exchange::KeysDestroyed));
        self.advance(now);
    }

    /// Ends the session from the terminal's side (power loss, an input it will not give):
    /// emits [`Event::Failed`] with `why`.
    pub fn abort(&mut self, why: &str) {
        self.fail(why.to_string());
    }

    fn fail(&mut self, why: String) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.inflight = None;
        self.waiting = None;
        self.plan.clear();
        self.tx.clear();
        self.events.push_back(Event::Failed { why });
    }

    fn advance(&mut self, now: Duration) {
        while !self.finished && self.inflight.is_none() && self.waiting.is_none() {
            let Some(step) = self.plan.pop_front() else {
                self.fail("nothing left to do before the session ended".into());
                return;
            };
            match step {
                Plan::Send(e) => {
                    if let Err(why) = self.send(e, now) {
                        self.fail(why);
                    }
                }
                Plan::EmitKeys => {
                    let keys = std::mem::take(&mut self.keys);
                    let ksn = self.ksn.take();
                    self.events.push_back(Event::KeysLoaded { keys, ksn });
                }
                Plan::WaitLogs => {
                    self.waiting = Some(Wait::Logs);
                    self.events.push_back(Event::LogsRequested);
                }
                Plan::WaitPackage => match &self.manifest {
                    Some(m) => {
                        self.waiting = Some(Wait::Package);
                        self.events.push_back(Event::PackageOffered(m.clone()));
                    }
                    None => self.fail("firmware ordered without a manifest".into()),
                },
                Plan::WaitDestroy => {
                    self.waiting = Some(Wait::Destroy);
                    self.events.push_back(Event::DecommissionOrdered);
                }
                Plan::Finish => {
                    self.finished = true;
                    self.events.push_back(Event::Done {
                        decommissioned: self.decommissioned,
                    });
                }
            }
        }
    }

    fn serial_only(&self) -> Result<SubElements, TmsError> {
        SubElements::new().with("01", self.cfg.serial.as_str())
    }

    fn send(&mut self, exchange: Exchange, now: Duration) -> Result<(), String> {
        self.stan = self.stan % 999_999 + 1;
        let stan = self.stan;
        let mut offset = 0;
        let built: Result<Request, TmsError> = match &exchange {
            Exchange::InstallReport => {
                let r = self.report.take().ok_or("no install report to send")?;
                InstallReportMsg {
                    package: r.package,
                    version: r.version,
                    outcome: r.outcome.as_str().to_string(),
                    detail: r.detail,
                }
                .to_sub(&self.cfg.serial)
                .map(|sub| Request::new(exchange.clone(), stan, &self.tid, sub))
            }
            Exchange::CallHome => StatusReport {
                serial: self.cfg.serial.clone(),
                model: self.cfg.model.clone(),
                firmware_version: self.status.firmware_version.clone(),
                params_version: self.status.params_version.clone(),
                tmk_kcv: self
                    .tmk
                    .as_ref()
                    .map_or_else(|| "none".into(), |k| hex::encode_upper(k.kcv().as_bytes())),
                counters: self.status.counters.clone(),
                errors: self.status.errors.clone(),
                printer: self.status.printer.clone(),
                reader: self.status.reader.clone(),
                boot: self.status.boot.clone(),
            }
            .to_sub()
            .map(|sub| Request::new(exchange.clone(), stan, &self.tid, sub)),
            Exchange::MasterKey
            | Exchange::SessionKeys
            | Exchange::PinKey
            | Exchange::DukptKey
            | Exchange::Other(_) => self
                .serial_only()
                .map(|sub| Request::new(exchange.clone(), stan, &self.tid, sub)),
            Exchange::Parameters => self
                .serial_only()
                .and_then(|s| s.with("04", self.status.params_version.as_str()))
                .map(|sub| Request::new(exchange.clone(), stan, &self.tid, sub)),
            Exchange::Chunk => {
                let m = self.manifest.as_ref().ok_or("chunk without a manifest")?;
                offset = self.next_offset;
                let length = (self.cfg.chunk_size.clamp(1, MAX_CHUNK) as u64)
                    .min(m.size.saturating_sub(offset));
                ChunkRequest {
                    package: m.id.clone(),
                    offset,
                    length,
                }
                .to_sub(&self.cfg.serial)
                .map(|sub| Request::new(exchange.clone(), stan, &self.tid, sub))
            }
            Exchange::LogUpload => {
                offset = self.log_offset;
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(self.logs.len());
                let end = start.saturating_add(MAX_CHUNK).min(self.logs.len());
                LogPart {
                    offset,
                    total: self.logs.len() as u64,
                    bytes: self.logs.get(start..end).unwrap_or(&[]).to_vec(),
                }
                .to_request(stan, &self.tid, &self.cfg.serial)
            }
            Exchange::KeysDestroyed => self
                .serial_only()
                .and_then(|s| s.with("80", self.destroyed.join(",")))
                .map(|sub| Request::new(exchange.clone(), stan, &self.tid, sub)),
        };
        let bytes = built
            .and_then(|r| r.encode())
            .map_err(|e| format!("cannot build the {} request: {e}", exchange.name()))?;
        self.tx.push_back(bytes);
        self.inflight = Some(Inflight {
            exchange,
            stan,
            deadline: now + self.cfg.timeout,
            offset,
        });
        Ok(())
    }

    fn handle_answer(&mut self, a: Answer, now: Duration) {
        let Some(inflight) = self.inflight.take() else {
            self.fail(format!("unsolicited {} answer", a.exchange.name()));
            return;
        };
        if a.exchange != inflight.exchange || a.stan != inflight.stan {
            self.fail(format!(
                "answer {} STAN {} does not match request {} STAN {}",
                a.exchange.name(),
                a.stan,
                inflight.exchange.name(),
                inflight.stan
            ));
            return;
        }
        if !a.is_ok() {
            self.fail(format!(
                "{}: response code {} ({})",
                a.exchange.name(),
                a.code.escape_debug(),
                rc::describe(&a.code)
            ));
            return;
        }
        if let Err(why) = self.on_answer(&inflight, &a) {
            self.fail(why);
            return;
        }
        self.advance(now);
    }

    fn unwrap(&self, rec: &KeyRecord, kek: &Key) -> Result<Key, String> {
        let usage = rec.usage.to_string();
        let alg = KeyAlgorithm::from_name(&rec.algorithm)
            .ok_or_else(|| format!("key {usage}: unknown algorithm {:?}", rec.algorithm))?;
        let kcv = Kcv::parse(KcvMethod::Ecb, &hex::encode(&rec.kcv))
            .map_err(|e| format!("key {usage}: {e}"))?;
        let wrapped =
            KeyUnderKey::new(alg, &rec.cryptogram, kcv).map_err(|e| format!("key {usage}: {e}"))?;
        unwrap_key(kek, &wrapped).map_err(|e| match e {
            poslab_crypto::CryptoError::KcvMismatch { .. } => format!(
                "key {usage}: check value mismatch (the tms stated {}); no key loaded",
                hex::encode_upper(&rec.kcv)
            ),
            e => format!("key {usage}: {e}"),
        })
    }

    fn take_keys(&mut self, a: &Answer, want: &[KeyUsage]) -> Result<(), String> {
        let ka = KeysAnswer::from_answer(a).map_err(|e| e.to_string())?;
        let kek = if want == [KeyUsage::Tmk] {
            if let Some(stated) = &ka.transport_kcv {
                let held = hex::encode_upper(self.cfg.transport_key.kcv().as_bytes());
                if !stated.eq_ignore_ascii_case(&held) {
                    return Err(format!(
                        "master key: wrapped under transport key {stated}, the terminal holds {held}"
                    ));
                }
            }
            self.cfg.transport_key.clone()
        } else {
            self.tmk
                .clone()
                .ok_or_else(|| "session keys: the terminal holds no master key".to_string())?
        };
        for usage in want {
            let rec =
                ka.keys.iter().find(|k| k.usage == *usage).ok_or_else(|| {
                    format!("{}: no {usage} key in the answer", a.exchange.name())
                })?;
            let key = self.unwrap(rec, &kek)?;
            if *usage == KeyUsage::Tmk {
                self.tmk = Some(key.clone());
            }
            self.keys.push(LoadedKey::new(usage.clone(), &key));
        }
        if want.contains(&KeyUsage::Ipek) {
            let ksn = ka
                .ksn
                .ok_or_else(|| "dukpt-key: no KSN (sub-element 71)".to_string())?;
            poslab_crypto::Ksn::parse_hex(&ksn).map_err(|e| format!("dukpt-key: KSN: {e}"))?;
            self.ksn = Some(ksn);
        }
        Ok(())
    }

    fn on_answer(&mut self, inflight: &Inflight, a: &Answer) -> Result<(), String> {
        match &inflight.exchange {
            Exchange::InstallReport | Exchange::Other(_) => Ok(()),
            Exchange::CallHome => {
                let ch = CallHomeAnswer::from_answer(a).map_err(|e| e.to_string())?;
                self.tid = ch.tid.clone();
                self.mid = Some(ch.mid.clone());
                self.events.push_back(Event::Assigned {
                    tid: ch.tid.clone(),
                    mid: ch.mid.clone(),
                });
                self.events.push_back(Event::Orders(ch.orders.clone()));
                self.manifest = ch.manifest.clone();
                let has = |o: Order| ch.orders.contains(&o);
                if has(Order::Decommission) {
                    if has(Order::Logs) {
                        self.plan.push_back(Plan::WaitLogs);
                    }
                    self.plan.push_back(Plan::WaitDestroy);
                } else {
                    let keys: &[Exchange] = if has(Order::KeysLoad) {
                        &[Exchange::MasterKey, Exchange::SessionKeys, Exchange::PinKey]
                    } else if has(Order::KeysDukpt) {
                        &[Exchange::MasterKey, Exchange::DukptKey]
                    } else if has(Order::KeysRotate) {
                        &[Exchange::SessionKeys, Exchange::PinKey]
                    } else {
                        &[]
                    };
                    for e in keys {
                        self.plan.push_back(Plan::Send(e.clone()));
                    }
                    if !keys.is_empty() {
                        self.plan.push_back(Plan::EmitKeys);
                    }
                    if has(Order::Params) {
                        self.plan.push_back(Plan::Send(Exchange::Parameters));
                    }
                    if has(Order::Logs) {
                        self.plan.push_back(Plan::WaitLogs);
                    }
                    if has(Order::Firmware) {
                        self.plan.push_back(Plan::WaitPackage);
                    }
                }
                self.plan.push_back(Plan::Finish);
                Ok(())
            }
            Exchange::MasterKey => self.take_keys(a, &[KeyUsage::Tmk]),
            Exchange::SessionKeys => self.take_keys(a, &[KeyUsage::Mac, KeyUsage::Data]),
            Exchange::PinKey => self.take_keys(a, &[KeyUsage::Pin]),
            Exchange::DukptKey => self.take_keys(a, &[KeyUsage::Ipek]),
            Exchange::Parameters => {
                let data = a.data.as_deref().ok_or("parameters: no DE 63")?;
                let version = protocol::answer_text(a, "40").map_err(|e| e.to_string())?;
                let digest = protocol::answer_text(a, "41").map_err(|e| e.to_string())?;
                if !digest.eq_ignore_ascii_case(&protocol::params_digest(data)) {
                    return Err("parameters: digest mismatch (DE 62 → 41); set not applied".into());
                }
                let set = ParameterSet::from_json(data).map_err(|e| e.to_string())?;
                if set.version != version {
                    return Err(format!(
                        "parameters: DE 62 → 40 says version {version:?}, the set says {:?}",
                        set.version
                    ));
                }
                self.events.push_back(Event::Parameters {
                    version: version.to_string(),
                    set,
                });
                Ok(())
            }
            Exchange::Chunk => {
                let m = self.manifest.clone().ok_or("chunk without a manifest")?;
                let c = ChunkAnswer::from_answer(a).map_err(|e| e.to_string())?;
                if c.package != m.id || c.offset != inflight.offset {
                    return Err(format!(
                        "chunk: asked {} at {}, got {} at {}",
                        m.id, inflight.offset, c.package, c.offset
                    ));
                }
                if c.total != m.size {
                    return Err(format!(
                        "chunk: the image is now {} bytes, the manifest said {}",
                        c.total, m.size
                    ));
                }
                if c.bytes.is_empty() && c.offset < m.size {
                    return Err(format!("chunk: empty chunk at offset {}", c.offset));
                }
                let len = c.bytes.len() as u64;
                self.events.push_back(Event::Chunk {
                    package: c.package,
                    offset: c.offset,
                    bytes: c.bytes,
                });
                self.next_offset = c.offset + len;
                if self.next_offset >= m.size {
                    self.events.push_back(Event::DownloadComplete {
                        package: m.id,
                        size: m.size,
                    });
                } else {
                    self.plan.push_front(Plan::Send(Exchange::Chunk));
                }
                Ok(())
            }
            Exchange::LogUpload => {
                let sent = (self.logs.len() as u64)
                    .saturating_sub(inflight.offset)
                    .min(MAX_CHUNK as u64);
                self.log_offset = inflight.offset + sent;
                if self.log_offset < self.logs.len() as u64 {
                    self.plan.push_front(Plan::Send(Exchange::LogUpload));
                }
                Ok(())
            }
            Exchange::KeysDestroyed => {
                self.decommissioned = true;
                self.keys.clear();
                Ok(())
            }
        }
    }
}
