//! `poslab steps`: every step pattern the features can use, with an example from the
//! feature files when one uses it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cucumber::codegen::{StepConstructor, WorldInventory};

use crate::run::world::PosWorld;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to look for examples of each step
    #[arg(long, default_value = "features", value_name = "DIR")]
    pub features: PathBuf,
}

/// One step: keyword, pattern (a regular expression), where it is defined.
pub struct StepPattern {
    pub keyword: &'static str,
    pub pattern: String,
    pub defined_at: String,
}

/// Every registered step.
pub fn patterns() -> Vec<StepPattern> {
    let mut out = Vec::new();
    for g in cucumber::codegen::inventory::iter::<<PosWorld as WorldInventory>::Given> {
        let (loc, re, _) = g.inner();
        out.push(StepPattern {
            keyword: "Given",
            pattern: re().as_str().to_string(),
            defined_at: format!("{}:{}", loc.path, loc.line),
        });
    }
    for w in cucumber::codegen::inventory::iter::<<PosWorld as WorldInventory>::When> {
        let (loc, re, _) = w.inner();
        out.push(StepPattern {
            keyword: "When",
            pattern: re().as_str().to_string(),
            defined_at: format!("{}:{}", loc.path, loc.line),
        });
    }
    for t in cucumber::codegen::inventory::iter::<<PosWorld as WorldInventory>::Then> {
        let (loc, re, _) = t.inner();
        out.push(StepPattern {
            keyword: "Then",
            pattern: re().as_str().to_string(),
            defined_at: format!("{}:{}", loc.path, loc.line),
        });
    }
    out.sort_by(|a, b| a.defined_at.cmp(&b.defined_at));
    out
}

fn step_lines(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            step_lines(&p, out);
        } else if p.extension().is_some_and(|e| e == "feature") {
            if let Ok(text) = std::fs::read_to_string(&p) {
                for (i, line) in text.lines().enumerate() {
                    let t = line.trim();
                    for kw in ["Given ", "When ", "Then ", "And ", "But "] {
                        if let Some(rest) = t.strip_prefix(kw) {
                            out.push((rest.to_string(), format!("{}:{}", p.display(), i + 1)));
                        }
                    }
                }
            }
        }
    }
}

/// A pattern as a person writes it: cucumber-expression parameters shown as `{string}`,
/// `{int}`, `{word}`, anchors dropped.
pub fn readable(pattern: &str) -> String {
    let mut s = pattern
        .trim_start_matches('^')
        .trim_end_matches('$')
        .to_string();
    for i in 0..10 {
        let string = format!(
            r#"(?:"(?P<__{i}_0>[^"\\]*(?:\\.[^"\\]*)*)"|'(?P<__{i}_1>[^'\\]*(?:\\.[^'\\]*)*)')"#
        );
        s = s.replace(&string, "{string}");
    }
    s.replace(r"((?:-?\d+)|(?:\d+))", "{int}")
        .replace(r"([^\s]+)", "{word}")
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut lines = Vec::new();
    step_lines(&args.features, &mut lines);
    let patterns = patterns();
    for p in &patterns {
        let re = regex::Regex::new(&p.pattern)?;
        println!("{} {}", p.keyword, readable(&p.pattern));
        match lines.iter().find(|(text, _)| re.is_match(text)) {
            Some((text, at)) => println!("    e.g. {} {text}    ({at})", p.keyword),
            None => println!("    (no feature uses it yet)"),
        }
        println!("    defined at {}", p.defined_at);
    }
    println!("\n{} steps", patterns.len());
    Ok(ExitCode::SUCCESS)
}
