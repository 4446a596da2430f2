//! `poslab chaos`: random fault plans over the lifecycle scenarios, the money checked after
//! every scenario, and a violation shrunk to the smallest plan that still breaks the money.
//!
//! A run is: a seed, the plan generated from it ([`plan::generate`]), the chosen features
//! run on the bench with that plan applied to every scenario's bench ([`Driver`]: a
//! fault starts from the bench's start or once the host has decided n requests), then,
//! after each scenario, every fault cleared, the cash register's command given time to
//! end, the terminal's queued reversals given time to go, and the money checked
//! ([`crate::run::money`]). A scenario's own expectations failing is not a violation —
//! the faults are there to make them fail; only the money counts.
//!
//! Run `k` of `--seed S` has seed `S + k`, and a run's seed alone gives its plan and its
//! scenarios' seeds, so `--seed S+k --runs 1` replays it. A violation is shrunk with the
//! same seed: items are removed one at a time while the money still breaks, then the
//! remaining probabilities are halved while it still does; the minimal plan is written to
//! `<out>/violation-<seed>.json` and replayed with `--plan`.

pub mod plan;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poslab_bench::Bench;
use serde::Serialize;
use serde_json::json;

use crate::bench::live::LiveBench;
use crate::run::money::{self, Violation};
use crate::run::runner::{self, RunExtras, RunSpec};
use crate::run::world::{PosWorld, WAIT};
pub use plan::{Fault, FaultPlan, PlanItem};

/// The part of a chaos run that scenarios see: the plan, and where the money checks go.
#[derive(Clone)]
pub struct ChaosHook {
    plan: Arc<FaultPlan>,
    found: Arc<Mutex<Vec<ScenarioViolations>>>,
}

impl std::fmt::Debug for ChaosHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosHook")
            .field("items", &self.plan.items.len())
            .finish()
    }
}

/// The violations found after one scenario.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioViolations {
    /// `features/x.feature:LINE`
    pub scenario: String,
    pub violations: Vec<Violation>,
}

impl ChaosHook {
    pub fn new(plan: FaultPlan) -> ChaosHook {
        ChaosHook {
            plan: Arc::new(plan),
            found: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The driver of one scenario's bench.
    pub fn driver(&self) -> Driver {
        Driver {
            pending: self.plan.items.clone(),
            scanned: 0,
            host_messages: 0,
            applied: Vec::new(),
        }
    }

    /// After a scenario: clear the faults, let the command and the queued reversals end,
    /// check the money.
    pub async fn after_scenario(&self, w: &mut PosWorld, feature: &str, line: usize) {
        if !w.started() {
            return;
        }
        w.chaos_heal().await;
        w.settle_quietly(WAIT).await;
        let violations = money::wait_until_safe(w, WAIT).await;
        if !violations.is_empty() {
            if let Ok(mut found) = self.found.lock() {
                found.push(ScenarioViolations {
                    scenario: format!("{feature}:{line}"),
                    violations,
                });
            }
        }
    }

    /// Every violation found so far.
    pub fn violations(&self) -> Vec<ScenarioViolations> {
        self.found.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// Applies a plan's items to one bench as they fall due.
pub struct Driver {
    pending: Vec<PlanItem>,
    /// Journal entries looked at so far.
    scanned: usize,
    /// Host decisions seen so far.
    host_messages: u32,
    applied: Vec<PlanItem>,
}

impl Driver {
    /// Applies every item that is due: called as the scenario goes (bench use, waits).
    pub async fn tick(&mut self, bench: &mut LiveBench) {
        if self.pending.is_empty() {
            return;
        }
        let new = bench.journal.entries_from(self.scanned).unwrap_or_default();
        self.scanned += new.len();
        self.host_messages += new
            .iter()
            .filter(|e| crate::run::steps::link(e) == "host")
            .filter(|e| crate::run::steps::kind(e) == "decision")
            .count() as u32;
        let seen = self.host_messages;
        let (due, later): (Vec<PlanItem>, Vec<PlanItem>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|i| i.after_host_messages <= seen);
        self.pending = later;
        for item in due {
            let result = apply(bench, &item).await;
            bench.journal.record(
                "chaos",
                "fault",
                json!({"item": item.id, "after_host_messages": item.after_host_messages,
                       "fault": item.fault, "error": result.err().map(|e| format!("{e:#}"))}),
            );
            self.applied.push(item);
        }
    }

    /// Clears every fault the plan set and applies no more.
    pub async fn heal(&mut self, bench: &mut LiveBench) {
        self.pending.clear();
        if let Ok(f) = bench.host_link_faults() {
            f.clear();
        }
        if let Ok(f) = bench.link_faults("ecr") {
            f.clear();
        }
        use poslab_escpos::device::FaultKind;
        for item in &self.applied {
            if let Fault::Printer { printer } = &item.fault {
                if let Ok(fault) = printer.parse::<poslab_escpos::device::Fault>() {
                    let kind: FaultKind = fault.kind();
                    let _ = bench.printer_clear(kind).await;
                }
            }
        }
        bench
            .journal
            .record("chaos", "healed", json!({"faults": self.applied.len()}));
    }
}

async fn apply(bench: &mut LiveBench, item: &PlanItem) -> anyhow::Result<()> {
    match &item.fault {
        Fault::Link { .. } => {
            let (link, toxic) = item
                .toxic_json()
                .ok_or_else(|| anyhow::anyhow!("not a link fault"))?;
            let spec = poslab_faults::ToxicSpec::from_value(&toxic)
                .map_err(|e| anyhow::anyhow!("{toxic}: {e}"))?;
            match link.as_str() {
                "host" => bench.host_link_faults()?.add(spec),
                "ecr" => bench.link_faults("ecr")?.add(spec),
                other => anyhow::bail!("link {other}: chaos plans fault the host and ecr links"),
            }
            Ok(())
        }
        Fault::Printer { printer } => {
            let fault = printer
                .parse::<poslab_escpos::device::Fault>()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            bench.printer_fault(fault).await
        }
        Fault::PowerLoss => bench.power_cycle().await,
        Fault::Hang => {
            bench.hang().await?;
            bench
                .watchdog(std::time::Duration::from_secs(300))
                .await
                .map(|_| ())
        }
    }
}

/// What `poslab chaos` was asked to do.
#[derive(Clone, Debug)]
pub struct ChaosSpec {
    pub bench: Bench,
    pub bench_arg: Option<String>,
    pub features: Vec<String>,
    pub tags: Option<String>,
    pub seed: u64,
    pub runs: u32,
    /// Items of a generated plan, at most.
    pub max_items: u32,
    /// Re-runs the shrinker may spend on one violation.
    pub shrink_budget: u32,
    /// Run this plan (a replay) instead of generated ones.
    pub plan: Option<FaultPlan>,
    pub out: PathBuf,
    /// Mutation testing of the checker: the reference terminal skips the reversal of a
    /// request whose answer it did not get (money-unsafe; never on by default).
    pub unsafe_no_reversal: bool,
}

/// One run: its seed, plan, and what broke.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub seed: u64,
    pub plan: FaultPlan,
    pub scenarios: usize,
    pub scenarios_failed: usize,
    pub violations: Vec<ScenarioViolations>,
}

/// A violation, shrunk.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub seed: u64,
    pub original: FaultPlan,
    pub minimal: FaultPlan,
    pub violations: Vec<ScenarioViolations>,
    /// Re-runs the shrinker spent.
    pub shrink_runs: u32,
    pub plan_file: PathBuf,
    pub replay: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChaosReport {
    pub runs: Vec<RunResult>,
    pub findings: Vec<Finding>,
    pub elapsed: Duration,
}

impl ChaosSpec {
    fn extras(&self, hook: ChaosHook) -> RunExtras {
        let mut params = serde_json::Map::new();
        if self.unsafe_no_reversal {
            params.insert("unsafe_no_reversal".into(), json!(true));
        }
        RunExtras {
            params,
            chaos: Some(hook),
        }
    }

    /// One run of the features with `plan` and `seed`.
    pub fn run_once(&self, seed: u64, plan: &FaultPlan) -> anyhow::Result<RunResult> {
        let hook = ChaosHook::new(plan.clone());
        let spec = RunSpec {
            paths: self.features.clone(),
            bench: self.bench.clone(),
            tags: self.tags.clone(),
            seed,
            out: self.out.join("last-run"),
            shard: None,
            replay_prefix: "poslab run".into(),
            bench_arg: self.bench_arg.clone(),
            quiet: true,
        };
        let report = runner::run_with(spec, self.extras(hook.clone()))?;
        let (passed, failed, other) = report.counts();
        Ok(RunResult {
            seed,
            plan: plan.clone(),
            scenarios: passed + failed + other,
            scenarios_failed: failed + other,
            violations: hook.violations(),
        })
    }

    /// The replay command of a finding.
    fn replay(&self, seed: u64, plan_file: &std::path::Path) -> String {
        let mut cmd = format!("poslab chaos --seed {seed} --plan {}", plan_file.display());
        if let Some(b) = &self.bench_arg {
            cmd.push_str(&format!(" --bench {b}"));
        }
        if self.unsafe_no_reversal {
            cmd.push_str(" --unsafe-no-reversal");
        }
        if let Some(t) = &self.tags {
            cmd.push_str(&format!(" --tags '{t}'"));
        }
        cmd.push_str(" --features");
        for f in &self.features {
            cmd.push_str(&format!(" {f}"));
        }
        cmd
    }

    /// Shrinks `plan` (which breaks the money with `seed`) to a smallest plan that still
    /// does: items removed one at a time, then probabilities halved, every try a re-run
    /// with the same seed, at most `shrink_budget` re-runs.
    pub fn shrink(
        &self,
        seed: u64,
        plan: &FaultPlan,
        violations: Vec<ScenarioViolations>,
        mut on_try: impl FnMut(&FaultPlan, bool),
    ) -> anyhow::Result<(FaultPlan, Vec<ScenarioViolations>, u32)> {
        let mut best = plan.clone();
        let mut best_violations = violations;
        let mut spent = 0u32;
        let mut breaks = |candidate: &FaultPlan,
                          spent: &mut u32|
         -> anyhow::Result<Option<Vec<ScenarioViolations>>> {
            *spent += 1;
            let r = self.run_once(seed, candidate)?;
            let broke = !r.violations.is_empty();
            on_try(candidate, broke);
            Ok(broke.then_some(r.violations))
        };
        // remove items while the money still breaks
        let mut progress = true;
        while progress && best.items.len() > 1 {
            progress = false;
            for i in 0..best.items.len() {
                if spent >= self.shrink_budget {
                    break;
                }
                let mut candidate = best.clone();
                candidate.items.remove(i);
                if let Some(v) = breaks(&candidate, &mut spent)? {
                    best = candidate;
                    best_violations = v;
                    progress = true;
                    break;
                }
            }
        }
        // lower the probabilities that are left
        for i in 0..best.items.len() {
            for _ in 0..3 {
                if spent >= self.shrink_budget {
                    break;
                }
                let Some(p) = best.items.get(i).and_then(PlanItem::probability) else {
                    break;
                };
                if p < 0.02 {
                    break;
                }
                let mut candidate = best.clone();
                candidate.items[i] = best.items[i].with_probability(p / 2.0);
                match breaks(&candidate, &mut spent)? {
                    Some(v) => {
                        best = candidate;
                        best_violations = v;
                    }
                    None => break,
                }
            }
        }
        Ok((best, best_violations, spent))
    }

    /// Every run, each violation shrunk and written down. `say` gets the progress lines.
    pub fn run(&self, mut say: impl FnMut(&str)) -> anyhow::Result<ChaosReport> {
        let started = Instant::now();
        std::fs::create_dir_all(&self.out)?;
        let mut runs = Vec::new();
        let mut findings = Vec::new();
        let count = if self.plan.is_some() { 1 } else { self.runs };
        for k in 0..count {
            let seed = self.seed.wrapping_add(u64::from(k));
            let plan = match &self.plan {
                Some(p) => p.clone(),
                None => plan::generate(seed, self.max_items),
            };
            let result = self.run_once(seed, &plan)?;
            say(&format!(
                "run {}/{count} seed {seed}: {} item(s), {} scenario(s), {} failed their own checks, {}",
                k + 1,
                plan.items.len(),
                result.scenarios,
                result.scenarios_failed,
                if result.violations.is_empty() {
                    "money safe".to_string()
                } else {
                    format!("{} MONEY VIOLATION(S)", result.violations.len())
                }
            ));
            if !result.violations.is_empty() {
                for v in &result.violations {
                    for x in &v.violations {
                        say(&format!("  {}: {x}", v.scenario));
                    }
                }
                let (minimal, violations, spent) = if self.plan.is_some() {
                    (plan.clone(), result.violations.clone(), 0)
                } else {
                    say(&format!(
                        "  shrinking (budget {} re-runs)...",
                        self.shrink_budget
                    ));
                    self.shrink(seed, &plan, result.violations.clone(), |c, broke| {
                        say(&format!(
                            "    {} item(s): {}",
                            c.items.len(),
                            if broke { "still breaks" } else { "safe" }
                        ))
                    })?
                };
                let plan_file = self.out.join(format!("violation-{seed}.json"));
                std::fs::write(&plan_file, serde_json::to_string_pretty(&minimal)?)?;
                let replay = self.replay(seed, &plan_file);
                say(&format!(
                    "VIOLATION seed {seed}: minimal plan of {} item(s) ({} re-runs):",
                    minimal.items.len(),
                    spent
                ));
                for item in &minimal.items {
                    say(&format!("  {item}"));
                }
                for v in &violations {
                    for x in &v.violations {
                        say(&format!("  {}: {x}", v.scenario));
                    }
                }
                say(&format!("  plan: {}", plan_file.display()));
                say(&format!("  replay: {replay}"));
                findings.push(Finding {
                    seed,
                    original: plan.clone(),
                    minimal,
                    violations,
                    shrink_runs: spent,
                    plan_file,
                    replay,
                });
            }
            runs.push(result);
        }
        let report = ChaosReport {
            runs,
            findings,
            elapsed: started.elapsed(),
        };
        std::fs::write(
            self.out.join("chaos.json"),
            serde_json::to_string_pretty(&report)?,
        )?;
        Ok(report)
    }
}
