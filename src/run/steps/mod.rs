//! The step library: thin glue from Gherkin to the bench's emulated nodes and journal.
//! Grouped by domain: [`setup`] (benches, provisioning, standing faults), [`sale`] (the
//! cashier and the cardholder), [`checks`] (what the host, the printer, the display and
//! the cash register saw). Steps act and assert only through links and the journal.

pub mod checks;
pub mod closing;
pub mod faults;
pub mod lifecycle;
pub mod links;
pub mod maintenance;
pub mod preauth;
pub mod rollout;
pub mod sale;
pub mod security;
pub mod serial;
pub mod setup;
pub mod transactions;

use serde_json::Value;

/// "42.50" → 4250 (two decimals, the bench's currency).
pub fn amount(text: &str) -> u64 {
    poslab_terminal::params::parse_amount(text, 2)
        .unwrap_or_else(|| panic!("\"{text}\" is not an amount with at most two decimals"))
}

pub fn kind(e: &Value) -> &str {
    e.get("kind").and_then(Value::as_str).unwrap_or("")
}

pub fn link(e: &Value) -> &str {
    e.get("link").and_then(Value::as_str).unwrap_or("")
}

/// Frames the host received (`dir: in`), with their MTI.
pub fn host_requests(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| {
            link(e) == "host"
                && kind(e) == "frame"
                && e.get("dir").and_then(Value::as_str) == Some("in")
        })
        .collect()
}

/// Frames the host sent (`dir: out`).
pub fn host_answers(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| {
            link(e) == "host"
                && kind(e) == "frame"
                && e.get("dir").and_then(Value::as_str) == Some("out")
        })
        .collect()
}

/// The host's decisions (MTI, STAN, code).
pub fn host_decisions(entries: &[Value]) -> Vec<&Value> {
    entries
        .iter()
        .filter(|e| link(e) == "host" && kind(e) == "decision")
        .collect()
}

pub fn field(frame: &Value, de: u16) -> Option<&str> {
    frame.get("message")?.get(de.to_string())?.as_str()
}

pub fn mti(frame: &Value) -> &str {
    frame.get("mti").and_then(Value::as_str).unwrap_or("")
}

/// What the terminal's display showed, in order.
pub fn displayed(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| link(e) == "keypad" && kind(e) == "display")
        .filter_map(|e| e.get("text").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Receipts the printer finished, as text.
pub fn receipts(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| link(e) == "printer" && kind(e) == "receipt")
        .map(|e| {
            e.get("lines")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default()
        })
        .collect()
}
