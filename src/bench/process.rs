//! `process:`: a program poslab starts as a node (a firmware build for the host, poslab's
//! own terminal), wired through ptys and loopback ports, watched and restarted.
//!
//! A supervisor task owns the child. It journals every output line (digit runs masked),
//! decides readiness (a regular expression on stdout/stderr, with a time limit), detects an
//! exit (code or signal; non-zero or a signal is a crash) and a hang (no output, or no
//! heartbeat line, for `hang_timeout`), applies the restart policy, and obeys
//! [`ProcessDut::power_cycle`]: SIGKILL to the whole process group, then start again, as a
//! power loss would. The program keeps its own state on disk (`{workdir}`); the ptys and
//! loopback listeners stay the same across restarts, so the same arguments serve again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use poslab_bench::placeholder::{self, Placeholder};
use poslab_bench::{Bench, Process, RestartPolicy};
use poslab_sensitive::mask_digit_runs;
use regex::Regex;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::journal::Journal;
use crate::pty::Pty;

use super::DutError;

/// What the supervisor reports.
#[derive(Debug, Clone, PartialEq)]
pub enum DutEvent {
    Started {
        generation: u32,
        pid: u32,
    },
    Ready {
        generation: u32,
    },
    /// One line of stdout or stderr, digit runs masked.
    Output {
        generation: u32,
        stream: OutStream,
        line: String,
    },
    Exited {
        generation: u32,
        exit: Exit,
    },
    /// No sign of life for `silent`; the process was killed.
    Hung {
        generation: u32,
        silent: Duration,
    },
    /// Not ready within the time limit; the process was killed.
    NotReady {
        generation: u32,
        waited: Duration,
    },
    /// Killed by a power cycle.
    PowerLoss {
        generation: u32,
    },
    Restarting {
        generation: u32,
        restart: u32,
    },
    /// The restart budget is spent; the node stays down.
    GaveUp {
        restarts: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutStream {
    Stdout,
    Stderr,
}

impl OutStream {
    fn as_str(self) -> &'static str {
        match self {
            OutStream::Stdout => "stdout",
            OutStream::Stderr => "stderr",
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl Exit {
    /// A non-zero exit or death by a signal.
    pub fn is_crash(&self) -> bool {
        self.signal.is_some() || self.code != Some(0)
    }

    fn from_status(status: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        Exit {
            code: status.code(),
            signal: status.signal(),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(code), _) => write!(f, "exit code {code}"),
            (None, Some(signal)) => write!(f, "signal {signal}"),
            (None, None) => f.write_str("unknown exit"),
        }
    }
}

/// Where the supervised program is.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Starting,
    Running { pid: u32 },
    Ready { pid: u32 },
    Down { reason: String },
    Stopped,
}

/// A process node's configuration with every placeholder filled and every pattern compiled.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    pub node: String,
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub ready: Option<(Regex, Duration)>,
    pub hang: Option<(Duration, Option<Regex>)>,
    pub policy: RestartPolicy,
    pub max_restarts: u32,
    pub restart_delay: Duration,
    /// A device exchange's arguments, placeholders filled but `{serial}` (kept as
    /// [`SERIAL_HOLE`] until the replacement's serial is known).
    pub exchange_args: Option<Vec<String>>,
}

/// Stands for `{serial}` in [`ProcessConfig::exchange_args`].
const SERIAL_HOLE: &str = "\u{0}serial\u{0}";

fn with_serial(args: &Option<Vec<String>>, serial: &str) -> Option<Vec<String>> {
    args.as_ref().map(|args| {
        args.iter()
            .map(|a| a.replace(SERIAL_HOLE, serial))
            .collect()
    })
}

impl ProcessConfig {
    /// The arguments of a replacement device with serial number `serial` (none when the
    /// node declares no `exchange`).
    pub fn exchange_args(&self, serial: &str) -> Option<Vec<String>> {
        self.exchange_args.as_ref().map(|args| {
            args.iter()
                .map(|a| a.replace(SERIAL_HOLE, serial))
                .collect()
        })
    }

    /// Fills the templates of `spec` with `values` and compiles its patterns.
    pub fn new(
        node: &str,
        spec: &Process,
        workdir: &Path,
        values: impl Fn(&Placeholder) -> Option<String>,
    ) -> Result<ProcessConfig, DutError> {
        let fill = |what: &str, template: &str| {
            placeholder::render(template, |p| match p {
                Placeholder::Workdir => Some(workdir.display().to_string()),
                Placeholder::Serial => Some(SERIAL_HOLE.to_string()),
                other => values(other),
            })
            .map_err(|err| DutError::Config {
                node: node.to_owned(),
                message: format!("{what} `{template}`: {err}"),
            })
        };
        let compile = |what: &str, pattern: &str| {
            Regex::new(pattern).map_err(|err| DutError::Config {
                node: node.to_owned(),
                message: format!("{what}: {err}"),
            })
        };
        let mut args = Vec::with_capacity(spec.args.len());
        for arg in &spec.args {
            args.push(fill("argument", arg)?);
        }
        let mut env = Vec::with_capacity(spec.env.len());
        for (key, value) in &spec.env {
            env.push((key.clone(), fill("environment value", value)?));
        }
        let cwd = match &spec.cwd {
            Some(cwd) => PathBuf::from(fill("cwd", cwd)?),
            None => workdir.to_owned(),
        };
        let ready = match &spec.ready {
            Some(r) => Some((compile("ready pattern", &r.pattern)?, r.timeout.get())),
            None => None,
        };
        let hang = match &spec.watchdog {
            Some(w) => Some((
                w.hang_timeout.get(),
                match &w.heartbeat {
                    Some(h) => Some(compile("heartbeat pattern", h)?),
                    None => None,
                },
            )),
            None => None,
        };
        let exchange_args = match &spec.exchange {
            Some(e) => Some(
                e.args
                    .iter()
                    .map(|a| fill("exchange argument", a))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        Ok(ProcessConfig {
            exchange_args,
            node: node.to_owned(),
            program: fill("command", &spec.command)?,
            args,
            env,
            cwd,
            ready,
            hang,
            policy: spec.restart.policy,
            max_restarts: spec.restart.max_restarts,
            restart_delay: spec.restart.delay.get(),
        })
    }
}

/// What poslab allocated for a process node's placeholders: a loopback listener per
/// `{NODE}`/`{NODE_port}`, a pty per `{NODE_pty}`, and the work directory. The emulated
/// nodes take their listener or pty from here (`take_*`) to serve the process.
pub struct Wiring {
    pub workdir: PathBuf,
    listeners: BTreeMap<String, TcpListener>,
    ptys: BTreeMap<String, Pty>,
    values: BTreeMap<Placeholder, String>,
}

impl Wiring {
    /// Allocates everything the placeholders of process node `node` ask for.
    pub async fn allocate(bench: &Bench, node: &str, workdir: &Path) -> Result<Wiring, DutError> {
        std::fs::create_dir_all(workdir).map_err(|err| DutError::Io {
            what: format!("work directory {}", workdir.display()),
            err,
        })?;
        let mut wiring = Wiring {
            workdir: workdir.to_owned(),
            listeners: BTreeMap::new(),
            ptys: BTreeMap::new(),
            values: BTreeMap::new(),
        };
        // POSLAB_BIN names the poslab binary when the caller is not it (a test harness)
        let exe = std::env::var_os("POSLAB_BIN")
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok());
        if let Some(exe) = exe {
            wiring
                .values
                .insert(Placeholder::Poslab, exe.display().to_string());
        }
        for hole in bench.placeholders(node) {
            match &hole {
                Placeholder::Addr(peer) | Placeholder::Port(peer) => {
                    if !wiring.listeners.contains_key(peer) {
                        let listener =
                            TcpListener::bind("127.0.0.1:0")
                                .await
                                .map_err(|err| DutError::Io {
                                    what: format!("loopback port for {peer}"),
                                    err,
                                })?;
                        let addr = listener.local_addr().map_err(|err| DutError::Io {
                            what: format!("loopback port for {peer}"),
                            err,
                        })?;
                        wiring
                            .values
                            .insert(Placeholder::Addr(peer.clone()), addr.to_string());
                        wiring
                            .values
                            .insert(Placeholder::Port(peer.clone()), addr.port().to_string());
                        wiring.listeners.insert(peer.clone(), listener);
                    }
                }
                Placeholder::Pty(peer) => {
                    let (pty, path) = Pty::open().map_err(|err| DutError::Io {
                        what: format!("pty for {peer}"),
                        err,
                    })?;
                    wiring
                        .values
                        .insert(hole.clone(), path.display().to_string());
                    wiring.ptys.insert(peer.clone(), pty);
                }
                Placeholder::Listen(peer) => {
                    // reserve a free port for the process to listen on
                    let addr = std::net::TcpListener::bind("127.0.0.1:0")
                        .and_then(|l| l.local_addr())
                        .map_err(|err| DutError::Io {
                            what: format!("loopback port for {peer}"),
                            err,
                        })?;
                    wiring.values.insert(hole.clone(), addr.to_string());
                }
                Placeholder::Workdir => {
                    wiring
                        .values
                        .insert(Placeholder::Workdir, workdir.display().to_string());
                }
                Placeholder::Poslab | Placeholder::Serial => {}
            }
        }
        Ok(wiring)
    }

    /// What a placeholder stands for.
    pub fn value(&self, placeholder: &Placeholder) -> Option<String> {
        self.values.get(placeholder).cloned()
    }

    /// The listener the emulated `peer` serves the process on.
    pub fn take_listener(&mut self, peer: &str) -> Option<TcpListener> {
        self.listeners.remove(peer)
    }

    /// The pty master the emulated `peer` talks to the process through.
    pub fn take_pty(&mut self, peer: &str) -> Option<Pty> {
        self.ptys.remove(peer)
    }
}

enum Command {
    /// Kill and start again; with arguments, the program started is given those instead
    /// (a device exchange: the replacement is the same build, configured anew).
    PowerCycle(oneshot::Sender<Result<(), DutError>>, Option<Vec<String>>),
    /// Stops the program dead (SIGSTOP to its process group) without ending it: a hang,
    /// for the watchdog to find.
    Freeze(oneshot::Sender<()>),
    Stop(oneshot::Sender<()>),
}

/// A supervised process node.
pub struct ProcessDut {
    node: String,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<DutEvent>,
    status: watch::Receiver<Status>,
    first_ready: std::sync::Mutex<Option<oneshot::Receiver<Result<(), DutError>>>>,
    /// What a device exchange starts (see [`ProcessConfig::exchange_args`]).
    exchange: Option<Vec<String>>,
}

impl ProcessDut {
    /// Starts the program and waits until it is ready (its ready line, or at once when none
    /// is configured). A program that exits, hangs or is not ready in time is an error
    /// (after the restarts its policy allows).
    pub async fn start(config: ProcessConfig, journal: Journal) -> Result<ProcessDut, DutError> {
        let (dut, _events) = ProcessDut::spawn(config, journal);
        dut.ready().await?;
        Ok(dut)
    }

    /// Starts the program without waiting; the subscription sees every event from the
    /// first start on. Call [`ProcessDut::ready`] to wait for readiness.
    pub fn spawn(
        config: ProcessConfig,
        journal: Journal,
    ) -> (ProcessDut, broadcast::Receiver<DutEvent>) {
        let (commands, command_rx) = mpsc::channel(8);
        let (events, subscription) = broadcast::channel(1024);
        let (status_tx, status) = watch::channel(Status::Starting);
        let (ready_tx, ready_rx) = oneshot::channel();
        let node = config.node.clone();
        let exchange = config.exchange_args.clone();
        let supervisor = Supervisor {
            config,
            journal,
            events: events.clone(),
            status: status_tx,
            generation: 0,
            restarts: 0,
        };
        tokio::spawn(supervisor.run(command_rx, ready_tx));
        let dut = ProcessDut {
            node,
            commands,
            events,
            status,
            first_ready: std::sync::Mutex::new(Some(ready_rx)),
            exchange,
        };
        (dut, subscription)
    }

    /// Waits until the first start is ready; on failure the program is stopped.
    pub async fn ready(&self) -> Result<(), DutError> {
        let pending = self
            .first_ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(pending) = pending else {
            return Ok(());
        };
        match pending.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                self.stop().await;
                Err(err)
            }
            Err(_) => Err(DutError::Supervisor {
                node: self.node.clone(),
            }),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DutEvent> {
        self.events.subscribe()
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Power loss: SIGKILL to the process group, then start again and wait until ready.
    pub async fn power_cycle(&self) -> Result<(), DutError> {
        self.restart_with(None).await
    }

    /// Device exchange: the program is killed and started again with the node's
    /// `exchange.args` for serial number `serial` (its restart count starts afresh), and
    /// this waits until it is ready.
    pub async fn replace(&self, serial: &str) -> Result<(), DutError> {
        let args = with_serial(&self.exchange, serial).ok_or_else(|| DutError::Config {
            node: self.node.clone(),
            message: "no `exchange` in the bench file: swap the device by hand".into(),
        })?;
        self.restart_with(Some(args)).await
    }

    async fn restart_with(&self, args: Option<Vec<String>>) -> Result<(), DutError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::PowerCycle(reply, args))
            .await
            .map_err(|_| DutError::Supervisor {
                node: self.node.clone(),
            })?;
        answer.await.unwrap_or_else(|_| {
            Err(DutError::Supervisor {
                node: self.node.clone(),
            })
        })
    }

    /// Freezes the running program (a hang: it stays alive and says nothing more); the
    /// watchdog, when the node has one, takes the silence for a hang, kills it and applies
    /// the restart policy.
    pub async fn freeze(&self) -> Result<(), DutError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::Freeze(reply))
            .await
            .map_err(|_| DutError::Supervisor {
                node: self.node.clone(),
            })?;
        done.await.map_err(|_| DutError::Supervisor {
            node: self.node.clone(),
        })
    }

    /// Kills the program and ends supervision.
    pub async fn stop(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Stop(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Waits (up to `limit`) for an event that `want` accepts, on a subscription taken
    /// before the action that should cause it.
    pub async fn wait_for(
        events: &mut broadcast::Receiver<DutEvent>,
        limit: Duration,
        mut want: impl FnMut(&DutEvent) -> bool,
    ) -> Option<DutEvent> {
        let deadline = Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(event)) if want(&event) => return Some(event),
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => return None,
            }
        }
    }
}

struct Supervisor {
    config: ProcessConfig,
    journal: Journal,
    events: broadcast::Sender<DutEvent>,
    status: watch::Sender<Status>,
    generation: u32,
    restarts: u32,
}

/// Why one run of the program ended.
enum Ended {
    Exited(Exit),
    Hung(Duration),
    NotReady(Duration),
    PowerCycle(oneshot::Sender<Result<(), DutError>>, Option<Vec<String>>),
    Stop(Option<oneshot::Sender<()>>),
}

impl Supervisor {
    fn emit(&self, event: DutEvent) {
        let _ = self.events.send(event);
    }

    fn record(&self, kind: &str, body: serde_json::Value) {
        self.journal.record(&self.config.node, kind, body);
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        ready: oneshot::Sender<Result<(), DutError>>,
    ) {
        let mut waiting: Option<oneshot::Sender<Result<(), DutError>>> = Some(ready);
        loop {
            self.generation += 1;
            let generation = self.generation;
            let _ = self.status.send(Status::Starting);
            let ended = match self.spawn() {
                Ok(child) => self.watch(child, &mut commands, &mut waiting).await,
                Err(err) => {
                    self.record("spawn-failed", json!({"error": err.to_string()}));
                    if let Some(reply) = waiting.take() {
                        let _ = reply.send(Err(err));
                    }
                    Ended::Exited(Exit {
                        code: None,
                        signal: None,
                    })
                }
            };
            let failure = match ended {
                Ended::Stop(reply) => {
                    let _ = self.status.send(Status::Stopped);
                    self.record("stopped", json!({"generation": generation}));
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    return;
                }
                Ended::PowerCycle(reply, args) => {
                    self.record("power-loss", json!({"generation": generation}));
                    self.emit(DutEvent::PowerLoss { generation });
                    self.take_args(args);
                    if let Some(old) = waiting.replace(reply) {
                        let _ = old.send(Err(DutError::Interrupted {
                            node: self.config.node.clone(),
                        }));
                    }
                    continue;
                }
                Ended::Exited(exit) => {
                    self.record(
                        "exit",
                        json!({"generation": generation, "code": exit.code,
                               "signal": exit.signal, "crash": exit.is_crash()}),
                    );
                    let _ = self.status.send(Status::Down {
                        reason: format!("the program ended ({exit})"),
                    });
                    self.emit(DutEvent::Exited { generation, exit });
                    let err = DutError::Exited {
                        node: self.config.node.clone(),
                        exit: exit.to_string(),
                    };
                    (exit.is_crash(), err)
                }
                Ended::Hung(silent) => {
                    self.record(
                        "hang",
                        json!({"generation": generation, "silent_ms": silent.as_millis() as u64}),
                    );
                    let _ = self.status.send(Status::Down {
                        reason: format!(
                            "no sign of life for {}",
                            humantime::format_duration(silent)
                        ),
                    });
                    self.emit(DutEvent::Hung { generation, silent });
                    (
                        true,
                        DutError::Hung {
                            node: self.config.node.clone(),
                            silent,
                        },
                    )
                }
                Ended::NotReady(waited) => {
                    self.record(
                        "not-ready",
                        json!({"generation": generation, "waited_ms": waited.as_millis() as u64}),
                    );
                    let _ = self.status.send(Status::Down {
                        reason: format!("not ready within {}", humantime::format_duration(waited)),
                    });
                    self.emit(DutEvent::NotReady { generation, waited });
                    (
                        true,
                        DutError::NotReady {
                            node: self.config.node.clone(),
                            waited,
                        },
                    )
                }
            };
            let (crashed, err) = failure;
            let wanted = match self.config.policy {
                RestartPolicy::Never => false,
                RestartPolicy::OnFailure => crashed,
                RestartPolicy::Always => true,
            };
            if wanted && self.restarts < self.config.max_restarts {
                self.restarts += 1;
                self.record(
                    "restart",
                    json!({"generation": generation, "restart": self.restarts}),
                );
                self.emit(DutEvent::Restarting {
                    generation,
                    restart: self.restarts,
                });
                tokio::select! {
                    _ = tokio::time::sleep(self.config.restart_delay) => continue,
                    command = commands.recv() => match command {
                        Some(Command::PowerCycle(reply, args)) => {
                            self.take_args(args);
                            if let Some(old) = waiting.replace(reply) {
                                let _ = old.send(Err(err));
                            }
                            continue;
                        }
                        Some(Command::Freeze(reply)) => {
                            // nothing runs to freeze; the restart goes ahead
                            let _ = reply.send(());
                            continue;
                        }
                        Some(Command::Stop(reply)) => {
                            if let Some(old) = waiting.take() {
                                let _ = old.send(Err(err));
                            }
                            let _ = self.status.send(Status::Stopped);
                            let _ = reply.send(());
                            return;
                        }
                        None => return,
                    }
                }
            }
            if wanted {
                self.record("gave-up", json!({"restarts": self.restarts}));
                self.emit(DutEvent::GaveUp {
                    restarts: self.restarts,
                });
            }
            let _ = self.status.send(Status::Down {
                reason: err.to_string(),
            });
            if let Some(reply) = waiting.take() {
                let _ = reply.send(Err(err));
            }
            // down: only a power cycle brings it back
            loop {
                match commands.recv().await {
                    Some(Command::PowerCycle(reply, args)) => {
                        self.take_args(args);
                        waiting = Some(reply);
                        break;
                    }
                    Some(Command::Freeze(reply)) => {
                        let _ = reply.send(());
                    }
                    Some(Command::Stop(reply)) => {
                        let _ = self.status.send(Status::Stopped);
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                }
            }
        }
    }

    /// A device exchange's arguments replace the program's from the next start on.
    fn take_args(&mut self, args: Option<Vec<String>>) {
        if let Some(args) = args {
            self.record(
                "replaced",
                json!({"args": args.iter().map(|a| mask_digit_runs(a)).collect::<Vec<_>>()}),
            );
            self.config.args = args;
            self.restarts = 0;
        }
    }

    fn spawn(&self) -> Result<tokio::process::Child, DutError> {
        let config = &self.config;
        let mut command = tokio::process::Command::new(&config.program);
        command
            .args(&config.args)
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&config.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        command.spawn().map_err(|err| DutError::Spawn {
            node: config.node.clone(),
            program: config.program.clone(),
            err,
        })
    }

    async fn watch(
        &mut self,
        mut child: tokio::process::Child,
        commands: &mut mpsc::Receiver<Command>,
        waiting: &mut Option<oneshot::Sender<Result<(), DutError>>>,
    ) -> Ended {
        let generation = self.generation;
        let pid = child.id().unwrap_or(0);
        self.record(
            "process-start",
            json!({"generation": generation, "pid": pid, "program": self.config.program,
                   "args": self.config.args.iter().map(|a| mask_digit_runs(a)).collect::<Vec<_>>()}),
        );
        self.emit(DutEvent::Started { generation, pid });
        let _ = self.status.send(Status::Running { pid });

        let (lines_tx, mut lines) = mpsc::channel::<(OutStream, String)>(256);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(read_lines(out, OutStream::Stdout, lines_tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(read_lines(err, OutStream::Stderr, lines_tx));
        }

        let started = Instant::now();
        let mut is_ready = self.config.ready.is_none();
        if is_ready {
            self.became_ready(pid, waiting);
        }
        let ready_deadline = self.config.ready.as_ref().map(|(_, t)| started + *t);
        let mut last_life = started;
        let mut lines_open = true;

        let ended = loop {
            let hang_at = self.config.hang.as_ref().map(|(t, _)| last_life + *t);
            let ready_at = if is_ready { None } else { ready_deadline };
            tokio::select! {
                line = lines.recv(), if lines_open => match line {
                    Some((stream, line)) => {
                        if self.output(generation, stream, &line) {
                            last_life = Instant::now();
                        }
                        if !is_ready && self.config.ready.as_ref().is_some_and(|(re, _)| re.is_match(&line)) {
                            is_ready = true;
                            self.became_ready(pid, waiting);
                        }
                    }
                    None => lines_open = false,
                },
                status = child.wait() => {
                    break match status {
                        Ok(status) => Ended::Exited(Exit::from_status(status)),
                        Err(_) => Ended::Exited(Exit { code: None, signal: None }),
                    };
                }
                _ = sleep_until_opt(ready_at) => {
                    kill_group(&mut child).await;
                    let limit = self.config.ready.as_ref().map_or(Duration::ZERO, |(_, t)| *t);
                    break Ended::NotReady(limit);
                }
                _ = sleep_until_opt(hang_at), if is_ready => {
                    kill_group(&mut child).await;
                    break Ended::Hung(last_life.elapsed());
                }
                command = commands.recv() => match command {
                    Some(Command::PowerCycle(reply, args)) => {
                        kill_group(&mut child).await;
                        break Ended::PowerCycle(reply, args);
                    }
                    Some(Command::Freeze(reply)) => {
                        freeze_group(&child);
                        self.record("frozen", json!({"generation": generation, "pid": pid}));
                        let _ = reply.send(());
                    }
                    Some(Command::Stop(reply)) => {
                        kill_group(&mut child).await;
                        break Ended::Stop(Some(reply));
                    }
                    None => {
                        kill_group(&mut child).await;
                        break Ended::Stop(None);
                    }
                },
            }
        };
        // the last words of a crashed program are the most useful ones: journal what is
        // still in the pipes (bounded: the pipes close when the process group is gone)
        if lines_open {
            let drain_until = Instant::now() + Duration::from_millis(500);
            while let Ok(Some((stream, line))) =
                tokio::time::timeout_at(drain_until, lines.recv()).await
            {
                self.output(generation, stream, &line);
            }
        }
        ended
    }

    fn became_ready(&self, pid: u32, waiting: &mut Option<oneshot::Sender<Result<(), DutError>>>) {
        let generation = self.generation;
        self.record("ready", json!({"generation": generation, "pid": pid}));
        self.emit(DutEvent::Ready { generation });
        let _ = self.status.send(Status::Ready { pid });
        if let Some(reply) = waiting.take() {
            let _ = reply.send(Ok(()));
        }
    }

    /// Journals and publishes one line; true when it counts as a sign of life.
    fn output(&self, generation: u32, stream: OutStream, line: &str) -> bool {
        let masked = mask_digit_runs(line);
        self.record(
            "output",
            json!({"generation": generation, "stream": stream.as_str(), "line": masked}),
        );
        self.emit(DutEvent::Output {
            generation,
            stream,
            line: masked,
        });
        match &self.config.hang {
            Some((_, Some(heartbeat))) => heartbeat.is_match(line),
            _ => true,
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// SIGKILL to the whole process group (a `sh -c` wrapper and its children), then reap.
/// Stops every process of the child's group (SIGSTOP): alive, silent, deaf. SIGKILL still
/// ends them ([`kill_group`]).
fn freeze_group(child: &tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        // SAFETY: sending a signal to a process group we created (process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGSTOP);
        }
    }
}

async fn kill_group(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        // SAFETY: sending a signal to a process group we created (process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill().await;
}

async fn read_lines(
    pipe: impl AsyncRead + Unpin,
    stream: OutStream,
    out: mpsc::Sender<(OutStream, String)>,
) {
    use tokio::io::AsyncReadExt;
    // a program that prints without newlines still gets journalled, in bounded pieces
    const MAX_LINE: u64 = 16 * 1024;
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']).to_owned();
                if out.send((stream, line)).await.is_err() {
                    return;
                }
            }
        }
    }
}
