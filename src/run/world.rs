//! The World of a scenario: the bench it runs on (started on first use, stopped after the
//! scenario), and what the scenario has done so far (the last sale, the journal mark).

use std::path::PathBuf;
use std::sync::Mutex;
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
    /// Terminal parameter overrides for every scenario (under the scenario's own).
    pub params: serde_json::Map<String, Value>,
    /// A chaos run: the fault plan every scenario's bench follows, and where the money
    /// checks after each scenario go (`poslab chaos`).
    pub chaos: Option<crate::chaos::ChaosHook>,
}

static RUN: Mutex<Option<RunConfig>> = Mutex::new(None);

/// Sets the run's configuration and numbers the scenarios from 0 again (a run in a
/// process that ran another one before gets the same scenario seeds as a fresh process).
pub fn set_run_config(config: RunConfig) {
    *RUN.lock().unwrap_or_else(|p| p.into_inner()) = Some(config);
    SCENARIO_NO.store(0, std::sync::atomic::Ordering::Relaxed);
}

pub fn run_config() -> Option<RunConfig> {
    RUN.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// How long a step waits for something to happen (simulated time costs nothing).
pub const WAIT: Duration = Duration::from_secs(120);

/// How long a cash-register command may take before the step calls the register hung.
/// A payment's worst case on a bad serial line is bounded but long: waiting for the
/// terminal's `80 00` through its link's retries (21 s), T4 (300 s) for the completion,
/// the same for each of the three repeat-receipt requests, and all of it once more when
/// the payment is sent again after the terminal showed it had not run: some 43 minutes.
pub const ECR_OUTCOME_LIMIT: Duration = Duration::from_secs(45 * 60);

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
    /// `feature: scenario:line` of the running scenario (set before its first step).
    pub scenario: String,
    seq: u32,
    /// The fault plan of a chaos run, applied as the scenario goes.
    chaos: Option<crate::chaos::Driver>,
    /// Terminals at the TMS beside the one under test, and what their last calls did.
    pub fleet: Vec<crate::fleet::FleetTerminal>,
    pub fleet_calls: Vec<crate::fleet::Call>,
}

impl std::fmt::Debug for PosWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PosWorld")
            .field("bench", &self.bench.as_ref().map(|b| b.name.clone()))
            .field("outcomes", &self.outcomes.len())
            .finish()
    }
}

/// The seed of one scenario's bench: the run's seed mixed with the scenario's identity
/// (feature name, scenario name and line), so that a scenario draws the same faults
/// wherever it stands in the run and wherever its file lies, and its replay command
/// (`FILE:LINE --seed S`) repeats it exactly.
/// The scenario's ordinal stands in when its identity is unknown.
fn scenario_seed(seed: u64, scenario: &str, ordinal: u32) -> u64 {
    if scenario.is_empty() {
        return seed ^ u64::from(ordinal);
    }
    // FNV-1a: fixed here so a seed replays across builds
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in scenario.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    seed ^ h
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
            chaos: None,
            fleet: Vec::new(),
            fleet_calls: Vec::new(),
        })
    }

    pub fn started(&self) -> bool {
        self.bench.is_some()
    }

    /// The bench, started on first use.
    pub async fn bench(&mut self) -> &mut LiveBench {
        if self.bench.is_none() {
            crate::bench::time::restart_simulated_wall();
            let cfg = run_config().unwrap_or_else(default_config);
            let workdir = cfg
                .out
                .join("work")
                .join(format!("scenario-{:04}", self.seq));
            let workdir = std::path::absolute(&workdir).unwrap_or(workdir);
            let _ = std::fs::remove_dir_all(&workdir);
            let mut params = cfg.params.clone();
            params.extend(self.params.clone());
            let bench = LiveBench::start(
                &cfg.bench,
                RunOptions {
                    seed: scenario_seed(cfg.seed, &self.scenario, self.seq),
                    workdir,
                    params,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("the bench {} does not start: {e:#}", cfg.bench.name()));
            self.bench = Some(bench);
            self.chaos = cfg.chaos.as_ref().map(crate::chaos::ChaosHook::driver);
        }
        self.chaos_tick().await;
        match self.bench.as_mut() {
            Some(b) => b,
            None => unreachable!("started above"), // ok: set just above
        }
    }

    /// Applies the chaos plan's faults that are due (a chaos run only).
    pub async fn chaos_tick(&mut self) {
        if let (Some(driver), Some(bench)) = (self.chaos.as_mut(), self.bench.as_mut()) {
            driver.tick(bench).await;
        }
    }

    /// Ends the chaos plan: every fault it set is cleared, none is applied any more.
    pub async fn chaos_heal(&mut self) {
        if let (Some(mut driver), Some(bench)) = (self.chaos.take(), self.bench.as_mut()) {
            driver.heal(bench).await;
        }
    }

    /// Waits (at most `within`) for the running command's outcome without failing the
    /// step: `None` when it did not come or the command failed.
    pub async fn settle_quietly(&mut self, within: Duration) -> Option<&Outcome> {
        if let Some(rx) = self.pending.take() {
            if let Ok(Ok(Ok(outcome))) = tokio::time::timeout(within, rx).await {
                self.outcomes.push(outcome.clone());
                self.outcome = Some(outcome);
            }
        }
        self.outcome.as_ref()
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

    /// How many entries the bench's journal holds (cheap: nothing is copied).
    pub fn journal_len(&self) -> usize {
        self.bench.as_ref().map_or(0, |b| b.journal.len())
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
        if let Some(mut rx) = self.pending.take() {
            // None: no outcome within ECR_OUTCOME_LIMIT
            let o = if self.chaos.is_some() {
                // a chaos run: the plan's faults fall due while the command runs
                let deadline = tokio::time::Instant::now() + ECR_OUTCOME_LIMIT;
                loop {
                    tokio::select! {
                        biased;
                        r = &mut rx => break Some(r),
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    }
                    self.chaos_tick().await;
                    if tokio::time::Instant::now() >= deadline {
                        break None;
                    }
                }
            } else {
                tokio::time::timeout(ECR_OUTCOME_LIMIT, rx).await.ok()
            };
            match o {
                Some(Ok(Ok(outcome))) => {
                    self.outcomes.push(outcome.clone());
                    self.outcome = Some(outcome);
                }
                Some(Ok(Err(e))) => panic!(
                    "the cash register's command failed: {e:#}\n--- journal ---\n{}",
                    self.excerpt(20)
                ),
                _ => panic!(
                    "the cash register got no outcome within {} minutes\n--- journal ---\n{}",
                    ECR_OUTCOME_LIMIT.as_secs() / 60,
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
        // the check looks at the journal only: run it again when the journal grew
        let mut checked = None;
        loop {
            let len = self.journal_len();
            if checked != Some(len) {
                checked = Some(len);
                let entries = self.journal();
                if let Some(t) = check(&entries) {
                    return t;
                }
            }
            self.chaos_tick().await;
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
        params: serde_json::Map::new(),
        chaos: None,
    }
}

#[cfg(test)]
mod tests {
    use super::scenario_seed;

    #[test]
    fn a_scenario_seed_follows_the_scenario_not_its_place_in_the_run() {
        let key = "Serial line faults: A noisy line:76";
        assert_eq!(scenario_seed(5, key, 0), scenario_seed(5, key, 17));
        assert_ne!(scenario_seed(5, key, 0), scenario_seed(6, key, 0));
        assert_ne!(
            scenario_seed(5, key, 0),
            scenario_seed(5, "Serial line faults: A noisy line:77", 0)
        );
        // without a name, the ordinal tells scenarios apart
        assert_ne!(scenario_seed(5, "", 1), scenario_seed(5, "", 2));
    }
}
