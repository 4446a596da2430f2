//! Reports of a feature run: JUnit XML, Cucumber JSON and an HTML evidence report, all
//! rendered from one model ([`RunReport`]) that the runner fills as scenarios finish.
//!
//! Everything in the model is already masked (journal excerpts come from the journal,
//! which only ever holds masked card data); the writers escape, they never unmask.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

pub mod cucumber_json;
pub mod html;
pub mod junit;
#[cfg(test)]
mod tests;

/// Writes each requested report (creating its parent directories): JUnit XML, Cucumber
/// JSON, HTML evidence. A path that is `None` is not written.
pub fn write_all(
    report: &RunReport,
    junit: Option<&Path>,
    cucumber_json: Option<&Path>,
    html: Option<&Path>,
) -> anyhow::Result<()> {
    type Writer = fn(&RunReport, &mut BufWriter<File>) -> std::io::Result<()>;
    let writers: [(Option<&Path>, &str, Writer); 3] = [
        (junit, "JUnit XML", junit::write),
        (cucumber_json, "Cucumber JSON", |r, w| {
            cucumber_json::write(r, w)
        }),
        (html, "HTML", html::write),
    ];
    for (path, what, write) in writers {
        let Some(path) = path else { continue };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating {} for the {what} report", dir.display()))?;
        }
        let file = File::create(path)
            .with_context(|| format!("creating the {what} report {}", path.display()))?;
        let mut out = BufWriter::new(file);
        write(report, &mut out)
            .and_then(|()| out.flush())
            .with_context(|| format!("writing the {what} report {}", path.display()))?;
    }
    Ok(())
}

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

impl FeatureReport {
    /// Names that tell this feature's scenarios apart (for JUnit test case names and report
    /// ids): an outline row, or a scenario sharing its name with another one of the
    /// feature, gets ` (line N)` appended. Same order as `scenarios`.
    pub fn case_names(&self) -> Vec<String> {
        self.scenarios
            .iter()
            .map(|s| {
                let shared = self.scenarios.iter().filter(|o| o.name == s.name).count() > 1;
                if s.is_outline() || shared {
                    format!("{} (line {})", s.name, s.line)
                } else {
                    s.name.clone()
                }
            })
            .collect()
    }

    /// Sum of the scenarios' durations.
    pub fn duration(&self) -> Duration {
        self.scenarios.iter().map(|s| s.duration).sum()
    }
}

impl ScenarioReport {
    /// Whether this is a row of a `Scenario Outline` (`Scenario Template`).
    pub fn is_outline(&self) -> bool {
        self.keyword.contains("Outline") || self.keyword.contains("Template")
    }

    /// The step that failed the scenario, if one did.
    pub fn failed_step(&self) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.status == Status::Failed)
    }

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
