//! Integration tests: iso8583_peer. poslab's ISO 8583 codec against pyiso8583 4.0.1 on
//! shared messages, both directions: what poslab packs, pyiso8583 decodes to the same
//! values; what pyiso8583 encodes, poslab unpacks to the same message and packs back to
//! the same bytes. `iso87ascii` is pyiso8583's `default_ascii`, `iso87binary` its `default`.

use std::io::Write;
use std::process::{Command, Stdio};

use poslab_iso8583::samples::purchase_0200;
use poslab_iso8583::tlv::Tlv;
use poslab_iso8583::{Encoding, Field, Format, Message, Mti, Spec};
use serde_json::{Map, Value};

use crate::peers;

/// Runs tests/py/iso8583_peer.py with one input line per item; one output line per item.
fn peer(mode: &str, spec: &str, lines: &[String]) -> Vec<String> {
    let mut child = Command::new(peers::python())
        .arg(peers::script("iso8583_peer.py"))
        .args([mode, spec])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for l in lines {
            writeln!(stdin, "{l}").expect("write to the peer");
        }
    }
    let out = child.wait_with_output().expect("peer finishes");
    assert!(
        out.status.success(),
        "pyiso8583 {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let result: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(result.len(), lines.len(), "one answer per message");
    result
}

/// The pyiso8583 dict of a message: "t" and each field as a string (binary as hex).
fn to_py_dict(msg: &Message) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("t".into(), msg.mti.as_str().into());
    for (de, field) in msg.fields() {
        let v = match field {
            Field::Text(t) => t.to_string(),
            Field::Binary(b) => hex::encode_upper(b),
            Field::Tlv(items) => hex::encode_upper(items.as_bytes()),
            Field::Composite(_) => unreachable!("pyiso8583 has no composites"),
        };
        d.insert(de.to_string(), v.into());
    }
    d
}

/// A small deterministic generator (no global RNG): xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random valid messages over every field the spec defines (the peer's field set).
fn random_messages(spec: &Spec, n: usize, seed: u64) -> Vec<Message> {
    let mut rng = Rng(seed);
    let numbers: Vec<u16> = spec.field_numbers().collect();
    (0..n)
        .map(|_| {
            let mti = format!("0{}{}0", 1 + rng.below(8), rng.below(4) * 2);
            let mut m = Message::new(Mti::new(&mti).unwrap());
            for &de in &numbers {
                if rng.below(5) != 0 {
                    continue;
                }
                let f = spec.field(de).unwrap();
                let len = if f.is_fixed() {
                    f.max
                } else {
                    rng.below(f.max.min(60) as u64 + 1) as usize
                };
                let value: Field = match (&f.format, f.encoding) {
                    (Format::Tlv, enc) => {
                        let budget = if enc == Encoding::Hex {
                            f.max / 2
                        } else {
                            f.max
                        };
                        let mut items = Vec::new();
                        let mut used = 0;
                        for _ in 0..rng.below(6) {
                            let vlen = rng.below(10) as usize;
                            if used + vlen + 3 > budget {
                                break;
                            }
                            used += vlen + 3;
                            let tag = 0x9F01 + rng.below(0x7E) as u32;
                            let v: Vec<u8> = (0..vlen).map(|_| rng.next() as u8).collect();
                            items.push(Tlv::primitive(tag, v));
                        }
                        Field::from(items)
                    }
                    (_, Encoding::Binary) => {
                        Field::Binary((0..len).map(|_| rng.next() as u8).collect())
                    }
                    (_, Encoding::Hex) => {
                        Field::Binary((0..len / 2).map(|_| rng.next() as u8).collect())
                    }
                    _ => {
                        let s: String = (0..len)
                            .map(|_| {
                                if f.numeric {
                                    (b'0' + rng.below(10) as u8) as char
                                } else {
                                    (b' ' + rng.below(95) as u8) as char
                                }
                            })
                            .collect();
                        Field::Text(s.into())
                    }
                };
                m.set(de, value);
            }
            m
        })
        .collect()
}

fn shared_messages(spec: &Spec, seed: u64) -> Vec<Message> {
    let mut all = vec![purchase_0200()];
    let mut small = Message::new(Mti::new("0800").unwrap());
    small.set(7, "1123100000").set(11, "000001").set(70, "301");
    all.push(small);
    all.extend(random_messages(spec, 150, seed));
    all
}

#[test]
fn poslab_packs_and_pyiso8583_decodes_the_same_values() {
    if !peers::python_module(
        "iso8583",
        "poslab_packs_and_pyiso8583_decodes_the_same_values",
    ) {
        return;
    }
    for (name, seed) in [("iso87ascii", 7), ("iso87binary", 11)] {
        let spec = Spec::builtin(name).unwrap();
        let msgs = shared_messages(&spec, seed);
        let hex_lines: Vec<String> = msgs
            .iter()
            .map(|m| hex::encode_upper(spec.pack(m).unwrap()))
            .collect();
        let decoded = peer("decode", name, &hex_lines);
        for (i, (m, line)) in msgs.iter().zip(&decoded).enumerate() {
            let theirs: Map<String, Value> = serde_json::from_str(line).unwrap();
            assert_eq!(theirs, to_py_dict(m), "{name} message {i}");
        }
    }
}

#[test]
fn pyiso8583_encodes_and_poslab_unpacks_and_repacks_byte_identical() {
    if !peers::python_module(
        "iso8583",
        "pyiso8583_encodes_and_poslab_unpacks_and_repacks_byte_identical",
    ) {
        return;
    }
    for (name, seed) in [("iso87ascii", 13), ("iso87binary", 17)] {
        let spec = Spec::builtin(name).unwrap();
        let msgs = shared_messages(&spec, seed);
        let dicts: Vec<String> = msgs
            .iter()
            .map(|m| Value::Object(to_py_dict(m)).to_string())
            .collect();
        let encoded = peer("encode", name, &dicts);
        for (i, (m, hex_line)) in msgs.iter().zip(&encoded).enumerate() {
            let theirs = hex::decode(hex_line).unwrap();
            let ours = spec
                .unpack(&theirs)
                .unwrap_or_else(|e| panic!("{name} message {i}: {e}"));
            assert_eq!(&ours, m, "{name} message {i}");
            assert_eq!(spec.pack(&ours).unwrap(), theirs, "{name} message {i}");
        }
    }
}
