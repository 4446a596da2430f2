//! Runs feature files with cucumber-rs against a bench and collects a [`RunReport`]:
//! every step's status, the failing step's message and journal excerpt, the seed and the
//! one-line command that replays a failed scenario.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use cucumber::event::{
    self, Cucumber as Ev, Feature as FeatureEv, RetryableScenario, Scenario as ScenarioEv,
    Step as StepEv,
};
use cucumber::gherkin;
use cucumber::tag::Ext as _;
use cucumber::{World as _, Writer};
use poslab_bench::{Bench, TimeMode};
use serde_json::Value;

use super::world::{set_run_config, PosWorld, RunConfig};
use crate::report::{FeatureReport, RunReport, ScenarioReport, Status, StepReport};

/// What to run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Feature files or directories; `file.feature:LINE` runs the scenario at that line.
    pub paths: Vec<String>,
    pub bench: Bench,
    pub tags: Option<String>,
    pub seed: u64,
    pub out: PathBuf,
    /// (K, N): run the K-th of N shards (1-based).
    pub shard: Option<(u32, u32)>,
    /// The command line a replay starts with (`poslab run` or `cargo test --test features --`).
    pub replay_prefix: String,
    /// The bench file's path as given (for the replay line).
    pub bench_arg: Option<String>,
    pub quiet: bool,
}

type Journals = Mutex<HashMap<(String, usize), Vec<Value>>>;

fn journals() -> &'static Journals {
    static J: OnceLock<Journals> = OnceLock::new();
    J.get_or_init(|| Mutex::new(HashMap::new()))
}

fn feature_key(f: &gherkin::Feature) -> String {
    f.path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| f.name.clone())
}

/// Stable shard of a scenario: by its file and line.
fn shard_of(path: &str, line: usize, n: u32) -> u32 {
    // FNV-1a: stable across runs and platforms
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes().chain(line.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % u64::from(n.max(1))) as u32 + 1
}

/// What a run may add to [`RunSpec`] beyond the command line of `poslab run`.
#[derive(Clone, Default)]
pub struct RunExtras {
    /// Terminal parameter overrides for every scenario.
    pub params: serde_json::Map<String, Value>,
    /// A chaos run's fault plan and money checks.
    pub chaos: Option<crate::chaos::ChaosHook>,
}

/// Where the journal of the scenario at `line` of `feature` is written under `out`:
/// `journals/<feature path, '/' as '_'>-<line>.jsonl`, one JSON entry a line.
pub fn journal_path(out: &Path, feature: &str, line: usize) -> PathBuf {
    let name: String = feature
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    out.join("journals").join(format!("{name}-{line}.jsonl"))
}

fn write_journal(path: &Path, entries: &[Value]) {
    let mut text = String::new();
    for e in entries {
        text.push_str(&e.to_string());
        text.push('\n');
    }
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(path, text));
    if let Err(e) = written {
        tracing::error!(journal = %path.display(), error = %e, "cannot write the scenario's journal");
    }
}

/// One run at a time per process: the run's configuration is the process's.
static RUN_LOCK: Mutex<()> = Mutex::new(());

/// Runs everything `spec` names, in the runtime the bench's time mode asks for.
pub fn run(spec: RunSpec) -> anyhow::Result<RunReport> {
    run_with(spec, RunExtras::default())
}

/// [`run`] with parameter overrides or a chaos plan.
pub fn run_with(spec: RunSpec, extras: RunExtras) -> anyhow::Result<RunReport> {
    let _one_run = RUN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let runtime = crate::bench::time::runtime_for(spec.bench.time_mode())?;
    let time_mode = spec.bench.time_mode();
    let started = std::time::SystemTime::now();
    let clock = Instant::now();
    set_run_config(RunConfig {
        bench: spec.bench.clone(),
        seed: spec.seed,
        out: spec.out.clone(),
        params: extras.params.clone(),
        chaos: extras.chaos.clone(),
    });
    // scenarios that need real hardware run only when a tag expression asks for them
    let tag_text = spec.tags.clone().unwrap_or_else(|| "not @hil".to_string());
    let tags = match Some(&tag_text) {
        Some(t) => Some(
            t.parse::<gherkin::tagexpr::TagOperation>()
                .map_err(|e| anyhow::anyhow!("--tags {t}: {e}"))?,
        ),
        None => None,
    };
    let mut report = RunReport {
        bench: spec.bench.name().to_string(),
        seed: spec.seed,
        time: match spec.bench.time_mode() {
            TimeMode::Simulated => "simulated".into(),
            TimeMode::Real => "real".into(),
        },
        shard: spec.shard.map(|(k, n)| format!("{k}/{n}")),
        tags: spec.tags.clone(),
        started: humantime::format_rfc3339_seconds(started).to_string(),
        ..RunReport::default()
    };
    for path in &spec.paths {
        let (file, line) = match path.rsplit_once(':') {
            Some((f, l)) if l.bytes().all(|b| b.is_ascii_digit()) && !l.is_empty() => {
                (f.to_string(), l.parse::<usize>().ok())
            }
            _ => (path.clone(), None),
        };
        if !Path::new(&file).exists() {
            anyhow::bail!("{file}: no such feature file or directory");
        }
        let tags = tags.clone();
        let shard = spec.shard;
        let collector = Collector::new(spec.clone());
        let filter =
            move |f: &gherkin::Feature, r: Option<&gherkin::Rule>, s: &gherkin::Scenario| {
                if let Some(l) = line {
                    if s.position.line != l {
                        return false;
                    }
                }
                if let Some(t) = &tags {
                    let all: Vec<&String> = f
                        .tags
                        .iter()
                        .chain(r.map(|r| r.tags.iter()).into_iter().flatten())
                        .chain(s.tags.iter())
                        .collect();
                    if !t.eval(all.iter().map(|s| s.as_str())) {
                        return false;
                    }
                }
                if let Some((k, n)) = shard {
                    if shard_of(&feature_key(f), s.position.line, n) != k {
                        return false;
                    }
                }
                true
            };
        let out = spec.out.clone();
        let chaos = extras.chaos.clone();
        let cucumber = PosWorld::cucumber()
            .max_concurrent_scenarios(1)
            .fail_on_skipped()
            .with_writer(cucumber::writer::Normalize::new(collector))
            .before(|f, _r, s, world| {
                // not the path: a feature file moved or run from another directory keeps
                // its scenarios' faults
                world.scenario = format!("{}: {}:{}", f.name, s.name, s.position.line);
                Box::pin(async {})
            })
            .after(move |f, _r, s, _ev, world| {
                let (out, chaos) = (out.clone(), chaos.clone());
                Box::pin(async move {
                    if let Some(w) = world {
                        let key = f.path.as_ref().map(|p| display_path(p)).unwrap_or_default();
                        if let Some(chaos) = &chaos {
                            chaos.after_scenario(w, &key, s.position.line).await;
                        }
                        let j = w.finish().await;
                        write_journal(&journal_path(&out, &key, s.position.line), &j);
                        if let Ok(mut m) = journals().lock() {
                            m.insert((feature_key(f), s.position.line), j);
                        }
                    }
                })
            })
            .with_default_cli();
        // a simulated-time run reads a simulated wall clock (the same seed, the same bytes)
        let writer = runtime.block_on(async {
            let _wall = crate::bench::time::SimulatedWall::for_mode(time_mode);
            cucumber.filter_run(file.clone(), filter).await
        });
        let collected = writer.inner_writer().take();
        report.features.extend(collected);
    }
    report.duration = clock.elapsed();
    Ok(report)
}

/// Collects cucumber's events into the report model and prints progress.
struct Collector {
    spec: RunSpec,
    features: Arc<Mutex<Vec<FeatureReport>>>,
    scenario_started: Option<Instant>,
    step_started: Option<Instant>,
}

impl Collector {
    fn new(spec: RunSpec) -> Collector {
        Collector {
            spec,
            features: Arc::new(Mutex::new(Vec::new())),
            scenario_started: None,
            step_started: None,
        }
    }

    fn take(&self) -> Vec<FeatureReport> {
        self.features
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default()
    }

    fn say(&self, text: &str) {
        if !self.spec.quiet {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        }
    }

    fn replay(&self, feature: &gherkin::Feature, line: usize) -> String {
        let path = feature
            .path
            .as_ref()
            .map(|p| display_path(p))
            .unwrap_or_default();
        let mut cmd = format!(
            "{} {path}:{line} --seed {}",
            self.spec.replay_prefix, self.spec.seed
        );
        if let Some(b) = &self.spec.bench_arg {
            cmd.push_str(&format!(" --bench {b}"));
        }
        cmd
    }

    fn on_step(&mut self, feature: &gherkin::Feature, step: &gherkin::Step, ev: &StepEv<PosWorld>) {
        let features = match self.features.lock() {
            Ok(f) => f,
            Err(_) => return,
        };
        if features.last().and_then(|f| f.scenarios.last()).is_none() {
            return;
        }
        let duration = self.step_started.map(|t| t.elapsed()).unwrap_or_default();
        let (status, error) = match ev {
            StepEv::Started => {
                self.step_started = Some(Instant::now());
                return;
            }
            StepEv::Passed(..) => (Status::Passed, None),
            StepEv::Skipped => (
                Status::Undefined,
                Some(format!(
                    "no step matches \"{}\" (see `poslab steps`)",
                    step.value
                )),
            ),
            StepEv::Failed(_, _, _, err) => {
                let msg = match err {
                    event::StepError::Panic(info) => panic_text(info),
                    event::StepError::NotFound => {
                        format!("no step matches \"{}\" (see `poslab steps`)", step.value)
                    }
                    other => other.to_string(),
                };
                let status = if matches!(err, event::StepError::NotFound) {
                    Status::Undefined
                } else {
                    Status::Failed
                };
                (status, Some(msg))
            }
        };
        let mark = match status {
            Status::Passed => "  ✓",
            Status::Failed => "  ✗",
            _ => "  ?",
        };
        drop(features);
        self.say(&format!("{mark} {}{}", step.keyword, step.value));
        if let Some(e) = &error {
            for l in e.lines() {
                self.say(&format!("      {l}"));
            }
        }
        let _ = feature;
        if let Ok(mut features) = self.features.lock() {
            if let Some(scenario) = features.last_mut().and_then(|f| f.scenarios.last_mut()) {
                scenario.steps.push(StepReport {
                    keyword: step.keyword.clone(),
                    text: step.value.clone(),
                    line: step.position.line,
                    status,
                    duration,
                    error,
                    journal_excerpt: Vec::new(),
                    table: step
                        .table
                        .as_ref()
                        .map(|t| t.rows.clone())
                        .unwrap_or_default(),
                });
            }
        }
    }
}

fn display_path(p: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    p.strip_prefix(&cwd).unwrap_or(p).display().to_string()
}

fn panic_text(info: &event::Info) -> String {
    if let Some(s) = info.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = info.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        "the step panicked".into()
    }
}

impl Writer<PosWorld> for Collector {
    type Cli = cucumber::cli::Empty;

    async fn handle_event(
        &mut self,
        event: cucumber::parser::Result<cucumber::Event<Ev<PosWorld>>>,
        _cli: &Self::Cli,
    ) {
        let ev = match event {
            Ok(e) => e.value,
            Err(e) => {
                // a feature file that does not parse fails the run
                let mut f = FeatureReport {
                    name: "parse error".into(),
                    path: String::new(),
                    ..FeatureReport::default()
                };
                f.scenarios.push(ScenarioReport {
                    name: format!("{e}"),
                    keyword: "Scenario".into(),
                    steps: vec![StepReport {
                        keyword: "Given ".into(),
                        text: "the feature file parses".into(),
                        status: Status::Failed,
                        error: Some(e.to_string()),
                        ..StepReport::default()
                    }],
                    ..ScenarioReport::default()
                });
                self.say(&format!("✗ {e}"));
                if let Ok(mut fs) = self.features.lock() {
                    fs.push(f);
                }
                return;
            }
        };
        let Ev::Feature(feature, fev) = ev else {
            return;
        };
        match fev {
            FeatureEv::Started => {
                self.say(&format!("\nFeature: {}", feature.name));
                if let Ok(mut fs) = self.features.lock() {
                    fs.push(FeatureReport {
                        name: feature.name.clone(),
                        description: feature.description.clone(),
                        path: feature
                            .path
                            .as_ref()
                            .map(|p| display_path(p))
                            .unwrap_or_default(),
                        tags: feature.tags.clone(),
                        scenarios: Vec::new(),
                    });
                }
            }
            FeatureEv::Scenario(scenario, RetryableScenario { event, .. }) => {
                self.on_scenario(&feature, &scenario, event)
            }
            FeatureEv::Rule(
                _,
                cucumber::event::Rule::Scenario(scenario, RetryableScenario { event, .. }),
            ) => self.on_scenario(&feature, &scenario, event),
            _ => {}
        }
    }
}

impl Collector {
    fn on_scenario(
        &mut self,
        feature: &gherkin::Feature,
        scenario: &gherkin::Scenario,
        ev: ScenarioEv<PosWorld>,
    ) {
        match ev {
            ScenarioEv::Started => {
                self.scenario_started = Some(Instant::now());
                self.say(&format!("  {}: {}", scenario.keyword, scenario.name));
                let replay = self.replay(feature, scenario.position.line);
                if let Ok(mut fs) = self.features.lock() {
                    if let Some(f) = fs.last_mut() {
                        f.scenarios.push(ScenarioReport {
                            name: scenario.name.clone(),
                            keyword: scenario.keyword.clone(),
                            line: scenario.position.line,
                            tags: feature
                                .tags
                                .iter()
                                .chain(scenario.tags.iter())
                                .cloned()
                                .collect(),
                            replay,
                            ..ScenarioReport::default()
                        });
                    }
                }
            }
            ScenarioEv::Background(step, sev) | ScenarioEv::Step(step, sev) => {
                self.on_step(feature, &step, &sev)
            }
            ScenarioEv::Finished => {
                let journal = journals()
                    .lock()
                    .ok()
                    .and_then(|mut m| m.remove(&(feature_key(feature), scenario.position.line)))
                    .unwrap_or_default();
                let duration = self
                    .scenario_started
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                let mut failed_replay = None;
                if let Ok(mut fs) = self.features.lock() {
                    if let Some(s) = fs.last_mut().and_then(|f| f.scenarios.last_mut()) {
                        s.duration = duration;
                        s.receipts = super::steps::receipts(&journal);
                        let excerpt: Vec<Value> =
                            journal.iter().rev().take(25).rev().cloned().collect();
                        if let Some(step) =
                            s.steps.iter_mut().find(|st| st.status == Status::Failed)
                        {
                            step.journal_excerpt = excerpt;
                        }
                        if s.status() != Status::Passed {
                            failed_replay = Some(s.replay.clone());
                        }
                        let keep = journal.len().saturating_sub(2000);
                        s.journal = journal.into_iter().skip(keep).collect();
                    }
                }
                if let Some(r) = failed_replay {
                    self.say(&format!("    seed {} — replay with: {r}", self.spec.seed));
                }
            }
            _ => {}
        }
    }
}

impl cucumber::writer::Normalized for Collector {}
