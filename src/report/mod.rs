//! Reports of a feature run: JUnit XML, Cucumber JSON and an HTML evidence report, all
//! rendered from one model ([`RunReport`]) that the runner fills as scenarios finish.
//!
//! Everything in the model is already masked (journal excerpts come from the journal,
//! which only ever holds masked card data); the writers escape, they never unmask.

use std::time::Duration;

use serde::Serialize;

pub mod cucumber_json;
pub mod html;
pub mod junit;

/// One run of `poslab run`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunReport {
    /// Bench name (`default`, `process`, ...).
    pub bench: String,
    /// The seed every scenario of the run derived its randomness from.
    pub seed: u64,
    /// `simulated` or `real`.
    pub time: String,
    /// `K/N` when the run was a shard.
    pub shard: Option<String>,
    /// Tag expression the run was filtered with.
    pub tags: Option<String>,
    /// RFC 3339 wall-clock time the run started.
    pub started: String,
    pub duration: Duration,
    pub features: Vec<FeatureReport>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FeatureReport {
    pub name: String,
    pub description: Option<String>,
    /// Path of the `.feature` file, as given to the runner.
    pub path: String,
    pub tags: Vec<String>,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ScenarioReport {
    pub name: String,
    /// `Scenario` or `Scenario Outline`.
    pub keyword: String,
    /// Line of the scenario (for an outline: of its examples row) in the feature file.
    pub line: usize,
    /// The feature's and the scenario's tags, without `@`.
    pub tags: Vec<String>,
    pub steps: Vec<StepReport>,
    pub duration: Duration,
    /// The one-line command that replays this scenario with the same seed.
    pub replay: String,
    /// The journal of the scenario's bench (JSON lines, masked), for the evidence report;
    /// may be cut to its last entries for a long scenario.
    pub journal: Vec<serde_json::Value>,
    /// Receipts printed during the scenario, as plain text (masked by the terminal).
    pub receipts: Vec<String>,
}

impl ScenarioReport {
    pub fn status(&self) -> Status {
        let mut status = Status::Passed;
        for step in &self.steps {
            match step.status {
                Status::Failed => return Status::Failed,
                Status::Undefined | Status::Skipped if status == Status::Passed => {
                    status = step.status
                }
                _ => {}
            }
        }
        status
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StepReport {
    /// `Given `, `When `, `Then `, `And `, `But ` (with the trailing space, as Gherkin has it).
    pub keyword: String,
    pub text: String,
    pub line: usize,
    pub status: Status,
    pub duration: Duration,
    /// Why it failed: the assertion message (names what was expected and what was found).
    pub error: Option<String>,
    /// Journal entries around the failure (already masked).
    pub journal_excerpt: Vec<serde_json::Value>,
    /// The step's data table, if any.
    pub table: Vec<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Passed,
    Failed,
    Skipped,
    Undefined,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Undefined => "undefined",
        }
    }
}

impl RunReport {
    /// (passed, failed, skipped or undefined) scenarios.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for s in self.features.iter().flat_map(|f| &f.scenarios) {
            match s.status() {
                Status::Passed => c.0 += 1,
                Status::Failed => c.1 += 1,
                Status::Skipped | Status::Undefined => c.2 += 1,
            }
        }
        c
    }

    /// A run passes when every scenario passed (an undefined or skipped step fails it).
    pub fn passed(&self) -> bool {
        let (_, failed, other) = self.counts();
        failed == 0 && other == 0
    }
}
