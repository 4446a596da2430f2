//! Bench files: the topology of a bench (nodes, where each real one is, links and standing
//! faults) as data.
//!
//! A bench file is YAML (`scenarios/*.yaml`). [`Bench::load`] parses it with serde-saphyr
//! (syntax and type errors carry the line and column), then checks what a type cannot say
//! (node kinds, a node both emulated and real, addresses and ports, placeholders, regular
//! expressions, links) and reports every problem with `file:line:column` found by looking
//! the offending key up in the source ([`locate::LocationIndex`]).
//!
//! Sans-IO: nothing here opens a port or starts a process. The runtime that turns a node's
//! "where" into a byte stream is `poslab::bench` (tokio).

use std::collections::BTreeSet;
use std::fmt;

pub mod fuzz;
pub mod locate;
pub mod model;
pub mod placeholder;
mod validate;

pub use model::{
    BenchFile, Emulated, FaultSpec, FlowControl, HumanDuration, Link, Node, NodeKind, Parity,
    Power, Process, Ready, Restart, RestartPolicy, Serial, Stream, Via, Watchdog,
};
pub use placeholder::Placeholder;

/// One problem found in a bench file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the document (`nodes.terminal.serial.baud`).
    pub path: String,
    /// 1-based line and column, when known.
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

/// Why a bench file was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// Not YAML, or YAML of the wrong shape (unknown key, wrong type, missing field).
    #[error("{}", fmt_at(file, *line, *column, message))]
    Syntax {
        file: String,
        line: Option<u64>,
        column: Option<u64>,
        message: String,
    },
    /// Well-formed, but wrong: every problem found, in source order.
    #[error("{}", fmt_problems(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

impl LoadError {
    /// The first line an error points at, if any.
    pub fn line(&self) -> Option<u64> {
        match self {
            LoadError::Syntax { line, .. } => *line,
            LoadError::Invalid { problems, .. } => problems.iter().find_map(|p| p.line),
        }
    }

    pub fn problems(&self) -> &[Problem] {
        match self {
            LoadError::Syntax { .. } => &[],
            LoadError::Invalid { problems, .. } => problems,
        }
    }
}

fn fmt_at(file: &str, line: Option<u64>, column: Option<u64>, message: &str) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}: {message}"),
        (Some(l), None) => format!("{file}:{l}: {message}"),
        _ => format!("{file}: {message}"),
    }
}

fn fmt_problems(file: &str, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            fmt_at(
                file,
                p.line,
                p.column,
                &format!("{}: {}", p.path, p.message),
            )
        })
        .collect();
    lines.join("\n")
}

/// Simulated or real time for a run (design §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeMode {
    /// Every node emulated, every link in memory: tokio's paused clock on a current-thread
    /// runtime; a 60 s timeout takes no time and the run is deterministic.
    Simulated,
    /// A real device, a process or a real socket is in the loop: the wall clock.
    Real,
}

/// How a link's bytes travel, once the bench is resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// Both ends emulated: an in-memory pipe.
    Memory,
    /// One end real: the real end `node` is reached through its attachment `via`.
    Real { node: String, via: Via },
}

/// A link with its ends and how it is carried.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRef<'a> {
    pub key: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub link: &'a Link,
    pub wire: Wire,
}

/// A checked bench.
#[derive(Debug, Clone, PartialEq)]
pub struct Bench {
    file: BenchFile,
    source: String,
}

impl Bench {
    /// Parses and checks a bench file; `source` names it in errors (usually the path).
    pub fn load(source: &str, text: &str) -> Result<Bench, LoadError> {
        let file: BenchFile =
            serde_saphyr::from_str(text).map_err(|err| syntax(source, text, &err))?;
        let problems = validate::check(&file);
        if problems.is_empty() {
            return Ok(Bench {
                file,
                source: source.to_owned(),
            });
        }
        let index = locate::LocationIndex::build(text);
        let mut problems: Vec<Problem> = problems
            .into_iter()
            .map(|p| {
                let pos = index.nearest(&p.path, p.at_value);
                Problem {
                    path: p.path,
                    line: pos.map(|p| p.line),
                    column: pos.map(|p| p.column),
                    message: p.message,
                }
            })
            .collect();
        problems.sort_by_key(|p| (p.line.unwrap_or(u64::MAX), p.column));
        Err(LoadError::Invalid {
            file: source.to_owned(),
            problems,
        })
    }

    /// Checks a model built in code (errors carry paths, not lines).
    pub fn from_model(source: &str, file: BenchFile) -> Result<Bench, LoadError> {
        let problems = validate::check(&file);
        if problems.is_empty() {
            Ok(Bench {
                file,
                source: source.to_owned(),
            })
        } else {
            Err(LoadError::Invalid {
                file: source.to_owned(),
                problems: problems
                    .into_iter()
                    .map(|p| Problem {
                        path: p.path,
                        line: None,
                        column: None,
                        message: p.message,
                    })
                    .collect(),
            })
        }
    }

    pub fn file(&self) -> &BenchFile {
        &self.file
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The bench's name (its `name:` or the source it was loaded from).
    pub fn name(&self) -> &str {
        self.file.name.as_deref().unwrap_or(&self.source)
    }

    /// The nodes with their kinds, by name.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, NodeKind, &Node)> {
        self.file.nodes.iter().filter_map(|(name, node)| {
            validate::kind_of(name, node).map(|kind| (name.as_str(), kind, node))
        })
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.file.nodes.get(name)
    }

    pub fn kind_of(&self, name: &str) -> Option<NodeKind> {
        self.file
            .nodes
            .get(name)
            .and_then(|node| validate::kind_of(name, node))
    }

    /// The first node of `kind`.
    pub fn node_of_kind(&self, kind: NodeKind) -> Option<(&str, &Node)> {
        self.nodes()
            .find(|(_, k, _)| *k == kind)
            .map(|(name, _, node)| (name, node))
    }

    /// The links, with their ends and how each is carried.
    pub fn links(&self) -> Vec<LinkRef<'_>> {
        self.file
            .links
            .iter()
            .filter_map(|(key, link)| {
                let (from, to) = validate::split_link(key)?;
                let wire = validate::wire(&self.file, from, to, link).ok()?;
                Some(LinkRef {
                    key,
                    from,
                    to,
                    link,
                    wire,
                })
            })
            .collect()
    }

    /// The names of the nodes linked to `node`.
    pub fn neighbours(&self, node: &str) -> BTreeSet<&str> {
        validate::neighbours(&self.file, node)
    }

    /// The placeholders a process node's arguments, environment and working directory use.
    pub fn placeholders(&self, node: &str) -> BTreeSet<Placeholder> {
        let Some(process) = self.node(node).and_then(|n| n.process.as_ref()) else {
            return BTreeSet::new();
        };
        process
            .args
            .iter()
            .chain(std::iter::once(&process.command))
            .chain(process.env.values())
            .chain(process.cwd.iter())
            .chain(process.exchange.iter().flat_map(|e| &e.args))
            .filter_map(|t| placeholder::holes(t).ok())
            .flatten()
            .collect()
    }

    /// Simulated time only when every node is emulated and nothing listens on a real
    /// socket; real time as soon as any node is real or a process (design §3: tokio's
    /// paused clock and real transports do not mix).
    pub fn time_mode(&self) -> TimeMode {
        let all_in_memory = self.file.nodes.values().all(|node| {
            node.is_emulated()
                && node
                    .emulated
                    .as_ref()
                    .is_none_or(|e| e.listen.is_none() && e.vpcd.is_none())
        });
        if all_in_memory {
            TimeMode::Simulated
        } else {
            TimeMode::Real
        }
    }

    /// The bench written back as YAML.
    pub fn to_yaml(&self) -> String {
        to_yaml(&self.file)
    }
}

/// A model as YAML (what [`Bench::load`] reads back to the same model).
pub fn to_yaml(file: &BenchFile) -> String {
    serde_saphyr::to_string(file).unwrap_or_else(|err| format!("# cannot serialise: {err}\n"))
}

fn syntax(source: &str, text: &str, err: &serde_saphyr::Error) -> LoadError {
    let location = err.location().filter(|l| l.line() > 0);
    let options = serde_saphyr::render_options! {
        snippets: serde_saphyr::SnippetMode::Off,
    };
    let mut message = err.without_snippet().render_with_options(options);
    // the rendered message may end with its own "at line L column C"; we print the position
    // as file:line:column in front instead
    if let Some(cut) = message.find(" at line ") {
        message.truncate(cut);
    }
    let mut message = message.trim().to_owned();
    if let Some(l) = location {
        let pos = locate::Pos {
            line: l.line(),
            column: l.column(),
        };
        if let Some(path) = locate::LocationIndex::build(text).path_at(pos) {
            message = format!("{path}: {message}");
        }
    }
    LoadError::Syntax {
        file: source.to_owned(),
        line: location.map(|l| l.line()),
        column: location.map(|l| l.column()),
        message,
    }
}

/// The JSON Schema of bench files (draft 2020-12), as shipped in `scenarios/bench.schema.json`.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(BenchFile)).unwrap_or_default()
}

/// The schema, pretty-printed with a final newline.
pub fn schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).unwrap_or_default();
    text.push('\n');
    text
}

impl fmt::Display for TimeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeMode::Simulated => "simulated",
            TimeMode::Real => "real",
        })
    }
}

/// Kind names, for messages.
pub(crate) fn kind_list() -> String {
    NodeKind::ALL.map(|k| k.as_str()).join(", ")
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
