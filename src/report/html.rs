//! A self-contained HTML evidence report (no external CSS, scripts or fonts) for a person to
//! read: the run's settings and counts, a table of contents, and per scenario its steps, the
//! error of a failed step, the replay command, the receipts and the journal.
//!
//! Every value from the model goes through [`esc`]. Status is shown by a word and a symbol as
//! well as a colour, so a grayscale print still reads.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use serde_json::Value;

use super::{FeatureReport, RunReport, ScenarioReport, Status, StepReport};

const STYLE: &str = "\
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem 2rem;color:#1f2328}
h1{font-size:1.5rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse}td,th{padding:.2rem .6rem;text-align:left;vertical-align:top}
table.meta th{font-weight:600;color:#57606a}table.steps{width:100%}
table.steps td{border-top:1px solid #eaeef2}table.journal td,table.journal th{border:1px solid #d0d7de;font:12px monospace}
.badge{display:inline-block;min-width:6.5em;padding:0 .4em;border-radius:.3em;font:700 12px/1.6 monospace;text-align:center}
.passed{background:#dafbe1;color:#116329;border:1px solid #116329}
.failed{background:#cf222e;color:#fff;border:2px solid #82071e}
.skipped{background:#eaeef2;color:#424a53;border:1px dashed #424a53}
.undefined{background:#fff8c5;color:#7d4e00;border:1px dotted #7d4e00}
details.scenario{margin:.6rem 0;border:1px solid #d0d7de;border-radius:.4rem;padding:.4rem .8rem}
details.scenario[open]>summary{margin-bottom:.4rem}summary{cursor:pointer}
.tag{color:#0550ae;font:12px monospace;margin-left:.4em}.dur{color:#57606a;font-size:12px;margin-left:.6em}
pre{background:#f6f8fa;border:1px solid #d0d7de;padding:.5rem;overflow-x:auto;white-space:pre-wrap}
pre.error{border-left:4px solid #cf222e}pre.receipt{display:inline-block;min-width:24ch;margin-right:1rem}
code.replay{display:block;background:#f6f8fa;border:1px solid #d0d7de;padding:.4rem;user-select:all;word-break:break-all}
table.data td{border:1px solid #d0d7de;font:12px monospace}
";

pub fn write(report: &RunReport, out: &mut impl Write) -> io::Result<()> {
    let mut h = String::with_capacity(64 * 1024);
    // Writing into a String cannot fail.
    render(report, &mut h).map_err(|_| io::Error::other("formatting the HTML report"))?;
    out.write_all(h.as_bytes())
}

fn render(r: &RunReport, h: &mut String) -> std::fmt::Result {
    let (passed, failed, skipped) = r.counts();
    let overall = if r.passed() {
        Status::Passed
    } else {
        Status::Failed
    };
    write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>poslab run: {} ({})</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
         <header>\n<h1>poslab run {}</h1>\n<table class=\"meta\">\n",
        esc(&r.bench),
        overall.as_str(),
        badge(overall),
    )?;
    let none = || "–".to_string();
    let rows = [
        ("Bench", esc(&r.bench)),
        ("Seed", r.seed.to_string()),
        ("Time", esc(&r.time)),
        ("Shard", r.shard.as_deref().map_or_else(none, esc)),
        ("Tags", r.tags.as_deref().map_or_else(none, esc)),
        ("Started", esc(&r.started)),
        ("Duration", dur(r.duration)),
        (
            "Scenarios",
            format!("{passed} passed, {failed} failed, {skipped} skipped or undefined"),
        ),
    ];
    for (name, value) in rows {
        writeln!(h, "<tr><th>{name}</th><td>{value}</td></tr>")?;
    }
    h.push_str("</table>\n</header>\n<nav>\n<h2>Features</h2>\n<ol>\n");
    for (i, f) in r.features.iter().enumerate() {
        let worst = f
            .scenarios
            .iter()
            .map(|s| s.status())
            .fold(Status::Passed, worse);
        writeln!(
            h,
            "<li>{} <a href=\"#f{i}\">{}</a> <span class=\"dur\">{} scenarios, {}</span></li>",
            badge(worst),
            esc(&f.name),
            f.scenarios.len(),
            esc(&f.path),
        )?;
    }
    h.push_str("</ol>\n</nav>\n<main>\n");
    for (i, f) in r.features.iter().enumerate() {
        feature(h, i, f)?;
    }
    h.push_str("</main>\n</body>\n</html>\n");
    Ok(())
}

fn feature(h: &mut String, i: usize, f: &FeatureReport) -> std::fmt::Result {
    writeln!(
        h,
        "<section id=\"f{i}\">\n<h2>Feature: {}{}</h2>\n<p class=\"dur\">{}</p>",
        esc(&f.name),
        tags(&f.tags),
        esc(&f.path),
    )?;
    if let Some(description) = f.description.as_deref().filter(|d| !d.trim().is_empty()) {
        writeln!(h, "<p>{}</p>", esc(description.trim()))?;
    }
    for (j, s) in f.scenarios.iter().enumerate() {
        scenario(h, &format!("f{i}-s{j}"), f, s)?;
    }
    h.push_str("</section>\n");
    Ok(())
}

fn scenario(h: &mut String, id: &str, f: &FeatureReport, s: &ScenarioReport) -> std::fmt::Result {
    let status = s.status();
    writeln!(
        h,
        "<details class=\"scenario\" id=\"{id}\"{}>\n<summary>{} <b>{}: {}</b> \
         <span class=\"dur\">line {}, {}</span>{}</summary>\n<table class=\"steps\">",
        if status == Status::Failed {
            " open"
        } else {
            ""
        },
        badge(status),
        esc(&s.keyword),
        esc(&s.name),
        s.line,
        dur(s.duration),
        tags(&s.tags),
    )?;
    for step in &s.steps {
        self::step(h, f, step)?;
    }
    writeln!(
        h,
        "</table>\n<p>Replay with the same seed:</p>\n<code class=\"replay\">{}</code>",
        esc(&s.replay)
    )?;
    if !s.receipts.is_empty() {
        writeln!(h, "<h4>Receipts ({})</h4>", s.receipts.len())?;
        for receipt in &s.receipts {
            writeln!(h, "<pre class=\"receipt\">{}</pre>", esc(receipt))?;
        }
    }
    if !s.journal.is_empty() {
        writeln!(
            h,
            "<details><summary>Journal ({} entries)</summary>",
            s.journal.len()
        )?;
        journal(h, &s.journal)?;
        h.push_str("</details>\n");
    }
    h.push_str("</details>\n");
    Ok(())
}

fn step(h: &mut String, f: &FeatureReport, step: &StepReport) -> std::fmt::Result {
    write!(
        h,
        "<tr><td>{}</td><td><b>{}</b>{}",
        badge(step.status),
        esc(step.keyword.trim_end()),
        esc(&format!(" {}", step.text)),
    )?;
    if !step.table.is_empty() {
        h.push_str("<table class=\"data\">");
        for row in &step.table {
            h.push_str("<tr>");
            for cell in row {
                write!(h, "<td>{}</td>", esc(cell))?;
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    if let Some(error) = &step.error {
        write!(
            h,
            "<pre class=\"error\">{}:{}\n{}</pre>",
            esc(&f.path),
            step.line,
            esc(error)
        )?;
    }
    if !step.journal_excerpt.is_empty() {
        h.push_str("<details open><summary>Journal around the failure</summary>");
        journal(h, &step.journal_excerpt)?;
        h.push_str("</details>");
    }
    writeln!(h, "</td><td class=\"dur\">{}</td></tr>", dur(step.duration))
}

/// A journal as a table: the envelope's `seq`, `at_ms`, `link`, `kind`, then the rest of the
/// entry as compact JSON.
fn journal(h: &mut String, entries: &[Value]) -> std::fmt::Result {
    h.push_str(
        "<table class=\"journal\"><tr><th>seq</th><th>at_ms</th><th>link</th><th>kind</th>\
         <th>entry</th></tr>\n",
    );
    for entry in entries {
        let mut rest = entry.clone();
        let mut take = |key: &str| match rest.as_object_mut().and_then(|m| m.remove(key)) {
            Some(Value::String(s)) => esc(&s),
            Some(Value::Number(n)) if key == "at_ms" => {
                n.as_f64().map_or(n.to_string(), |ms| format!("{ms:.3}"))
            }
            Some(v) => esc(&v.to_string()),
            None => String::new(),
        };
        let cells = [take("seq"), take("at_ms"), take("link"), take("kind")];
        write!(h, "<tr>")?;
        for cell in cells {
            write!(h, "<td>{cell}</td>")?;
        }
        writeln!(h, "<td>{}</td></tr>", esc(&rest.to_string()))?;
    }
    h.push_str("</table>\n");
    Ok(())
}

fn worse(a: Status, b: Status) -> Status {
    let rank = |s| match s {
        Status::Passed => 0,
        Status::Skipped => 1,
        Status::Undefined => 2,
        Status::Failed => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

fn badge(status: Status) -> String {
    let (symbol, word) = match status {
        Status::Passed => ("✔", "PASSED"),
        Status::Failed => ("✘", "FAILED"),
        Status::Skipped => ("–", "SKIPPED"),
        Status::Undefined => ("?", "UNDEFINED"),
    };
    format!(
        "<span class=\"badge {}\">{symbol} {word}</span>",
        status.as_str()
    )
}

fn tags(tags: &[String]) -> String {
    tags.iter()
        .map(|t| {
            format!(
                "<span class=\"tag\">@{}</span>",
                esc(t.trim_start_matches('@'))
            )
        })
        .collect()
}

fn dur(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// HTML-escapes text and attribute values; control characters other than tab, newline and
/// carriage return are shown as `\u{..}` so they stay visible as evidence.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
