//! The World of a scenario: the bench it runs on (started on first use, stopped after the
//! scenario), and what the scenario has done so far (the last sale, the journal mark).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use poslab_bench::{Bench, TimeMode};
use poslab_zvt::ecr::{EcrCommand, Outcome};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::bench::live::{LiveBench, RunOptions};

/// What the whole run shares: the bench file, the seed, where artefacts go.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub bench: Bench,
    pub seed: u64,
    pub out: PathBuf,
}

static RUN: OnceLock<RunConfig> = OnceLock::new();

pub fn set_run_config(config: RunConfig) {
    let _ = RUN.set(config);
}

pub fn run_config() -> Option<&'static RunConfig> {
    RUN.get()
}

/// How long a step waits for something to happen (simulated time costs nothing).
pub const WAIT: Duration = Duration::from_secs(120);

#[derive(cucumber::World)]
#[world(init = Self::new)]
pub struct PosWorld {
    bench: Option<LiveBench>,
    /// Parameter overrides given before the bench started.
    pub params: serde_json::Map<String, Value>,
    /// The cash-register command running now, and its outcome once known.
    pub pending: Option<oneshot::Receiver<anyhow::Result<Outcome>>>,
    pub outcome: Option<Outcome>,
    /// Outcomes of every command of the scenario, in order.
    pub outcomes: Vec<Outcome>,
    /// Journal entries before this index are from earlier steps ("since" marks).
    pub mark: usize,
    pub scenario: String,
    seq: u32,
}

impl std::fmt::Debug for PosWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PosWorld")
            .field("bench", &self.bench.as_ref().map(|b| b.name.clone()))
            .field("outcomes", &self.outcomes.len())
            .finish()
    }
}

static SCENARIO_NO: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl PosWorld {
    async fn new() -> Result<PosWorld, anyhow::Error> {
        Ok(PosWorld {
            bench: None,
            params: serde_json::Map::new(),
            pending: None,
            outcome: None,
            outcomes: Vec::new(),
            mark: 0,
            scenario: String::new(),
            seq: SCENARIO_NO.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    pub fn started(&self) -> bool {
        self.bench.is_some()
    }

    /// The bench, started on first use.
    pub async fn bench(&mut self) -> &mut LiveBench {
        if self.bench.is_none() {
            let cfg = run_config().cloned().unwrap_or_else(default_config);
            let workdir = cfg
                .out
                .join("work")
                .join(format!("scenario-{:04}", self.seq));
            let workdir = std::path::absolute(&workdir).unwrap_or(workdir);
            let _ = std::fs::remove_dir_all(&workdir);
            let bench = LiveBench::start(
                &cfg.bench,
                RunOptions {
                    seed: cfg.seed ^ u64::from(self.seq),
                    workdir,
                    params: self.params.clone(),
                },
            )
            .await
            .unwrap_or_else(|e| panic!("the bench {} does not start: {e:#}", cfg.bench.name()));
            self.bench = Some(bench);
        }
        match self.bench.as_mut() {
            Some(b) => b,
            None => unreachable!("started above"), // ok: set just above
        }
    }

    pub fn time(&self) -> TimeMode {
        self.bench.as_ref().map_or(TimeMode::Simulated, |b| b.time)
    }

    /// Every journal entry of the bench so far.
    pub fn journal(&self) -> Vec<Value> {
        self.bench
            .as_ref()
            .and_then(|b| b.journal.entries().ok())
            .unwrap_or_default()
    }

    pub fn since_mark(&self) -> Vec<Value> {
        let all = self.journal();
        all.get(self.mark.min(all.len())..).unwrap_or(&[]).to_vec()
    }

    pub fn set_mark(&mut self) {
        self.mark = self.journal().len();
    }

    /// The last entries, for a failure message.
    pub fn excerpt(&self, n: usize) -> String {
        let all = self.journal();
        let from = all.len().saturating_sub(n);
        all[from..]
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Starts a cash-register command (finishing the one before first).
    pub async fn ecr(&mut self, command: EcrCommand) {
        self.settle().await;
        self.set_mark();
        let rx = self.bench().await.ecr_start(command);
        self.pending = Some(rx);
        self.outcome = None;
    }

    /// Waits for the running command's outcome.
    pub async fn settle(&mut self) -> Option<&Outcome> {
        if let Some(rx) = self.pending.take() {
            let o = tokio::time::timeout(Duration::from_secs(600), rx).await;
            match o {
                Ok(Ok(Ok(outcome))) => {
                    self.outcomes.push(outcome.clone());
                    self.outcome = Some(outcome);
                }
                Ok(Ok(Err(e))) => panic!(
                    "the cash register's command failed: {e:#}\n--- journal ---\n{}",
                    self.excerpt(20)
                ),
                _ => panic!(
                    "the cash register got no outcome within 10 minutes\n--- journal ---\n{}",
                    self.excerpt(20)
                ),
            }
        }
        self.outcome.as_ref()
    }

    /// Polls `check` on the journal until it gives `Some` or `within` passes.
    pub async fn wait_for<T>(
        &mut self,
        within: Duration,
        what: &str,
        mut check: impl FnMut(&[Value]) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let entries = self.journal();
            if let Some(t) = check(&entries) {
                return t;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{what}: not seen within {}\n--- last journal entries ---\n{}",
                    humantime::format_duration(within),
                    self.excerpt(25)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn finish(&mut self) -> Vec<Value> {
        let journal = self.journal();
        if let Some(b) = self.bench.take() {
            b.stop().await;
        }
        journal
    }
}

fn default_config() -> RunConfig {
    let text = include_str!("../../scenarios/default.yaml");
    RunConfig {
        bench: Bench::load("scenarios/default.yaml", text).unwrap_or_else(|e| panic!("{e}")),
        seed: 1,
        out: std::env::temp_dir().join("poslab-run"),
    }
}
