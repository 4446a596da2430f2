//! Where each key of a YAML document is: a map from a dotted path (`nodes.terminal.serial.baud`,
//! `nodes.terminal.process.args[2]`) to the line and column of the key and of its value.
//!
//! Semantic checks run on the typed model, which has lost positions; they name the path of
//! what is wrong and this index turns the path back into `file:line:column`. It reads the
//! YAML event stream of the same parser serde-saphyr uses, so both agree on positions.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser};

/// A position in the source, 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Pos,
    value: Option<Pos>,
}

/// The positions of every mapping key and sequence item of the first document.
#[derive(Debug, Default)]
pub struct LocationIndex {
    entries: HashMap<String, Entry>,
}

enum Frame {
    Mapping {
        path: String,
        /// The key whose value comes next; `None` while a key is expected.
        key: Option<String>,
    },
    Sequence {
        path: String,
        index: usize,
    },
}

impl LocationIndex {
    /// Indexes `text`; a document that does not parse gives what was indexed before the
    /// error (the deserialiser reports the error itself).
    pub fn build(text: &str) -> LocationIndex {
        let mut index = LocationIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        let mut documents = 0;
        while let Some(Ok((event, span))) = parser.next_event() {
            let pos = Pos {
                line: span.start.line() as u64,
                column: span.start.col() as u64 + 1,
            };
            match event {
                Event::DocumentStart(..) => {
                    documents += 1;
                    if documents > 1 {
                        break;
                    }
                }
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Mapping { path, key }) = stack.last_mut() {
                        if key.is_none() {
                            let full = join(path, &value);
                            index.entries.entry(full.clone()).or_insert(Entry {
                                key: pos,
                                value: None,
                            });
                            *key = Some(full);
                            continue;
                        }
                    }
                    index.node_at(&mut stack, pos);
                    finish_value(&mut stack);
                }
                Event::Alias(..) => {
                    index.node_at(&mut stack, pos);
                    finish_value(&mut stack);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = index.node_at(&mut stack, pos);
                    if matches!(event, Event::MappingStart(..)) {
                        stack.push(Frame::Mapping { path, key: None });
                    } else {
                        stack.push(Frame::Sequence { path, index: 0 });
                    }
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    finish_value(&mut stack);
                }
                _ => {}
            }
        }
        index
    }

    /// Records a node (a value) at `pos` and returns its path.
    fn node_at(&mut self, stack: &mut [Frame], pos: Pos) -> String {
        match stack.last() {
            None => String::new(),
            Some(Frame::Mapping { path, key }) => match key {
                Some(full) => {
                    if let Some(entry) = self.entries.get_mut(full) {
                        entry.value.get_or_insert(pos);
                    }
                    full.clone()
                }
                // a complex key (a mapping or sequence used as a key): not indexed
                None => format!("{path}.?"),
            },
            Some(Frame::Sequence { path, index }) => {
                let full = format!("{path}[{index}]");
                self.entries.entry(full.clone()).or_insert(Entry {
                    key: pos,
                    value: Some(pos),
                });
                full
            }
        }
    }

    /// Where the key at `path` is (for a sequence item: the item).
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.entries.get(path).map(|e| e.key)
    }

    /// Where the value at `path` starts (falls back to the key).
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.entries.get(path).map(|e| e.value.unwrap_or(e.key))
    }

    /// The path of the key or value that starts at `pos` (the innermost when several do).
    pub fn path_at(&self, pos: Pos) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(_, e)| e.key == pos || e.value == Some(pos))
            .map(|(path, _)| path.as_str())
            .max_by_key(|path| path.len())
    }

    /// The position of the longest prefix of `path` that is indexed: a problem with a
    /// defaulted field points at the nearest thing the user wrote.
    pub fn nearest(&self, path: &str, at_value: bool) -> Option<Pos> {
        let mut p = path;
        loop {
            let found = if at_value { self.value(p) } else { self.key(p) };
            if found.is_some() {
                return found;
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A value just ended: its mapping now expects a key, its sequence the next item.
fn finish_value(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Mapping { key, .. }) => *key = None,
        Some(Frame::Sequence { index, .. }) => *index += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
name: x
nodes:
  terminal:
    serial: { path: /dev/ttyUSB0, baud: 9600 }
    process:
      command: fw
      args:
        - --host
        - \"{host}\"
  host: emulated
links:
  terminal->host: {}
";

    #[test]
    fn keys_and_values_have_their_positions() {
        let index = LocationIndex::build(TEXT);
        assert_eq!(index.key("name"), Some(Pos { line: 1, column: 1 }));
        assert_eq!(index.value("name"), Some(Pos { line: 1, column: 7 }));
        assert_eq!(
            index.key("nodes.terminal"),
            Some(Pos { line: 3, column: 3 })
        );
        assert_eq!(
            index.value("nodes.terminal.serial.baud"),
            Some(Pos {
                line: 4,
                column: 41
            })
        );
        assert_eq!(
            index.key("nodes.terminal.process.args[1]"),
            Some(Pos {
                line: 9,
                column: 11
            })
        );
        assert_eq!(
            index.key("nodes.host"),
            Some(Pos {
                line: 10,
                column: 3
            })
        );
        assert_eq!(
            index.key("links.terminal->host"),
            Some(Pos {
                line: 12,
                column: 3
            })
        );
    }

    #[test]
    fn nearest_falls_back_to_the_parent() {
        let index = LocationIndex::build(TEXT);
        assert_eq!(
            index.nearest("nodes.terminal.process.ready.pattern", false),
            index.key("nodes.terminal.process")
        );
        assert_eq!(index.nearest("nothing.here", false), None);
    }

    #[test]
    fn broken_yaml_does_not_panic() {
        let index = LocationIndex::build("a: [1, 2\nb: {");
        assert!(index.key("a").is_some());
    }
}
