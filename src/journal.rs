//! The journal: every frame on every link and every decision, as JSON lines.
//!
//! One entry per event, written with a single `write` and no user-space buffer, so a run
//! that is killed still leaves every event it recorded. Entries carry a sequence number,
//! the time since the journal opened (simulated time when tokio's clock is paused, real
//! time otherwise), the wall-clock time ([`crate::bench::time::wall_now`]: on a
//! simulated-time run a fixed epoch plus simulated time, so the same seed writes the same
//! bytes; the system clock otherwise), the link, the kind of event and its body. What a
//! caller puts in the body must already be masked: devices journal masked views
//! (`poslab_sensitive`), never clear card data.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    sink: Sink,
    seq: AtomicU64,
    start: tokio::time::Instant,
}

enum Sink {
    File { path: PathBuf, file: Mutex<File> },
    Memory(Mutex<Vec<Value>>),
    Discard,
}

impl Journal {
    /// Appends to `path` (created if missing).
    pub fn to_file(path: &Path) -> anyhow::Result<Journal> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|err| anyhow::anyhow!("cannot open journal {}: {err}", path.display()))?;
        Ok(Journal::with(Sink::File {
            path: path.to_owned(),
            file: Mutex::new(file),
        }))
    }

    /// Keeps entries in memory, for tests and steps that assert on them.
    pub fn in_memory() -> Journal {
        Journal::with(Sink::Memory(Mutex::new(Vec::new())))
    }

    /// Records nothing (a command run without `--journal`).
    pub fn discard() -> Journal {
        Journal::with(Sink::Discard)
    }

    fn with(sink: Sink) -> Journal {
        Journal {
            inner: Arc::new(Inner {
                sink,
                seq: AtomicU64::new(0),
                start: tokio::time::Instant::now(),
            }),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !matches!(self.inner.sink, Sink::Discard)
    }

    pub fn path(&self) -> Option<&Path> {
        match &self.inner.sink {
            Sink::File { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Records one event. `body` should be a JSON object; its keys are merged after the
    /// envelope (`seq`, `at_ms`, `wall`, `link`, `kind`). Returns the sequence number.
    pub fn record(&self, link: &str, kind: &str, body: Value) -> u64 {
        if !self.is_enabled() {
            return 0;
        }
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let mut entry = Map::new();
        entry.insert("seq".into(), seq.into());
        let elapsed = self.inner.start.elapsed();
        entry.insert("at_ms".into(), (elapsed.as_secs_f64() * 1000.0).into());
        entry.insert(
            "wall".into(),
            humantime::format_rfc3339_millis(crate::bench::time::wall_now())
                .to_string()
                .into(),
        );
        entry.insert("link".into(), link.into());
        entry.insert("kind".into(), kind.into());
        match body {
            Value::Object(map) => entry.extend(map),
            Value::Null => {}
            other => {
                entry.insert("body".into(), other);
            }
        }
        let entry = Value::Object(entry);
        match &self.inner.sink {
            Sink::File { path, file } => {
                let mut line = entry.to_string();
                line.push('\n');
                let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Err(err) = file.write_all(line.as_bytes()) {
                    tracing::error!(journal = %path.display(), error = %err, "journal write failed");
                }
            }
            Sink::Memory(entries) => {
                entries
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(entry);
            }
            Sink::Discard => {}
        }
        seq
    }

    /// How many entries the journal holds (a file journal counts its file's entries).
    pub fn len(&self) -> usize {
        match &self.inner.sink {
            Sink::Memory(entries) => entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .len(),
            _ => self.entries().map(|e| e.len()).unwrap_or(0),
        }
    }

    /// Whether the journal holds no entry yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries from index `from` on (in-memory journals; a file journal reads its file
    /// back), for watchers that look only at what is new.
    pub fn entries_from(&self, from: usize) -> anyhow::Result<Vec<Value>> {
        match &self.inner.sink {
            Sink::Memory(entries) => Ok(entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(from..)
                .unwrap_or(&[])
                .to_vec()),
            _ => Ok(self.entries()?.into_iter().skip(from).collect()),
        }
    }

    /// The entries recorded so far (in-memory journals; a file journal reads its file back).
    pub fn entries(&self) -> anyhow::Result<Vec<Value>> {
        match &self.inner.sink {
            Sink::Memory(entries) => Ok(entries
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone()),
            Sink::File { path, .. } => read(path),
            Sink::Discard => Ok(Vec::new()),
        }
    }
}

/// Reads a journal file; a malformed line is an error naming the file and line. A last line
/// cut short by a killed writer is ignored (the run died while writing it).
pub fn read(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read journal {}: {err}", path.display()))?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(value) => out.push(value),
            Err(_) if i + 1 == lines.len() && !complete => break,
            Err(err) => anyhow::bail!("{}:{}: not a journal entry: {err}", path.display(), i + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_carry_an_envelope_and_the_body() {
        let journal = Journal::in_memory();
        assert_eq!(
            journal.record("host", "frame", json!({"dir": "in", "mti": "0200"})),
            1
        );
        assert_eq!(journal.record("host", "note", json!("plain")), 2);
        let entries = journal.entries().unwrap();
        assert_eq!(entries[0]["seq"], 1);
        assert_eq!(entries[0]["link"], "host");
        assert_eq!(entries[0]["mti"], "0200");
        assert_eq!(entries[1]["body"], "plain");
        assert!(entries[1]["at_ms"].as_f64().unwrap() >= 0.0);
    }

    #[test]
    fn file_journal_is_readable_line_by_line_and_survives_a_torn_last_line() {
        let dir = std::env::temp_dir().join(format!("poslab-journal-{}", std::process::id()));
        let path = dir.join("j.jsonl");
        let _ = std::fs::remove_file(&path);
        let journal = Journal::to_file(&path).unwrap();
        journal.record("printer", "receipt", json!({"n": 1}));
        journal.record("printer", "receipt", json!({"n": 2}));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"seq\":3,")
            .unwrap();
        let entries = read(&path).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["n"], 2);

        std::fs::write(&path, "{\"a\":1}\nnot json\n{\"b\":2}\n").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("j.jsonl:2"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
