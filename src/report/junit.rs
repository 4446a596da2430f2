//! JUnit XML, in the dialect CI systems read (GitLab, Jenkins, GitHub test reporters):
//! `<testsuites>` → one `<testsuite>` per feature → one `<testcase>` per scenario, with a
//! `<failure>` (the failing step, its error, the journal excerpt and the replay command) or a
//! `<skipped>`, and the steps with their status in `<system-out>`.

use std::io::{self, Write};
use std::time::Duration;

use super::{FeatureReport, RunReport, ScenarioReport, Status};

pub fn write(report: &RunReport, out: &mut impl Write) -> io::Result<()> {
    let (passed, failed, other) = report.counts();
    writeln!(out, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    writeln!(
        out,
        r#"<testsuites name="poslab run" tests="{}" failures="{failed}" skipped="{other}" errors="0" time="{}" timestamp="{}">"#,
        passed + failed + other,
        secs(report.duration),
        attr(&report.started),
    )?;
    for feature in &report.features {
        write_suite(report, feature, out)?;
    }
    writeln!(out, "</testsuites>")
}

fn write_suite(
    report: &RunReport,
    feature: &FeatureReport,
    out: &mut impl Write,
) -> io::Result<()> {
    let count = |f: fn(Status) -> bool| feature.scenarios.iter().filter(|s| f(s.status())).count();
    writeln!(
        out,
        r#"  <testsuite name="{}" tests="{}" failures="{}" skipped="{}" errors="0" time="{}" timestamp="{}" file="{}">"#,
        attr(&feature.name),
        feature.scenarios.len(),
        count(|s| s == Status::Failed),
        count(|s| matches!(s, Status::Skipped | Status::Undefined)),
        secs(feature.duration()),
        attr(&report.started),
        attr(&feature.path),
    )?;
    writeln!(out, "    <properties>")?;
    let seed = report.seed.to_string();
    let props = [
        ("bench", Some(&report.bench)),
        ("seed", Some(&seed)),
        ("time", Some(&report.time)),
        ("shard", report.shard.as_ref()),
        ("tags", report.tags.as_ref()),
    ];
    for (name, value) in props {
        if let Some(value) = value {
            writeln!(
                out,
                r#"      <property name="{name}" value="{}"/>"#,
                attr(value)
            )?;
        }
    }
    writeln!(out, "    </properties>")?;
    for (scenario, name) in feature.scenarios.iter().zip(feature.case_names()) {
        write_case(feature, scenario, &name, out)?;
    }
    writeln!(out, "  </testsuite>")
}

fn write_case(
    feature: &FeatureReport,
    scenario: &ScenarioReport,
    name: &str,
    out: &mut impl Write,
) -> io::Result<()> {
    writeln!(
        out,
        r#"    <testcase classname="{}" name="{}" file="{}" line="{}" time="{}">"#,
        attr(&feature.name),
        attr(name),
        attr(&feature.path),
        scenario.line,
        secs(scenario.duration),
    )?;
    match scenario.status() {
        Status::Passed => {}
        Status::Failed => {
            let step = scenario.failed_step();
            let error = step
                .and_then(|s| s.error.as_deref())
                .unwrap_or("step failed");
            let mut body = String::new();
            if let Some(step) = step {
                body += &format!(
                    "{}{} ({}:{})\n",
                    step.keyword, step.text, feature.path, step.line
                );
            }
            body += error;
            body.push('\n');
            if let Some(step) = step.filter(|s| !s.journal_excerpt.is_empty()) {
                body += "\njournal excerpt:\n";
                for entry in &step.journal_excerpt {
                    body += &entry.to_string();
                    body.push('\n');
                }
            }
            body += &format!("\nreplay: {}\n", scenario.replay);
            writeln!(
                out,
                r#"      <failure message="{}" type="step failed">{}</failure>"#,
                attr(error.lines().next().unwrap_or_default()),
                text(&body),
            )?;
        }
        status => {
            let message = match scenario.steps.iter().find(|s| s.status == status) {
                Some(step) => format!("{} step: {}{}", status.as_str(), step.keyword, step.text),
                None => status.as_str().to_string(),
            };
            writeln!(out, r#"      <skipped message="{}"/>"#, attr(&message))?;
        }
    }
    let mut steps = String::new();
    for step in &scenario.steps {
        steps += &format!(
            "{:<9} {}{} ({}s)\n",
            step.status.as_str(),
            step.keyword,
            step.text,
            secs(step.duration)
        );
        for row in &step.table {
            steps += &format!("          | {} |\n", row.join(" | "));
        }
    }
    steps += &format!("replay: {}\n", scenario.replay);
    writeln!(out, "      <system-out>{}</system-out>", text(&steps))?;
    writeln!(out, "    </testcase>")
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// Whether XML 1.0 allows `c` at all (`Char` production); the others are dropped.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escapes character data.
fn text(s: &str) -> String {
    escape(s, false)
}

/// Escapes an attribute value; tab, newline and carriage return become character references,
/// since a parser would otherwise normalise them to spaces.
fn attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|&c| xml_char(c)) {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&apos;",
            '\t' if attribute => out += "&#9;",
            '\n' if attribute => out += "&#10;",
            '\r' => out += "&#13;",
            c => out.push(c),
        }
    }
    out
}
