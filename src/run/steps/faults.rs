//! Message-aware faults from Gherkin: the `iso8583`, `zvt` and `apdu` toxics of
//! `poslab-faults` (the same types bench files and `poslab proxy` take) on the bench's
//! links, by sender (and so by link and direction), for one message (the default,
//! `once`), `for N seconds`, or `until cleared` (`the "host" link is healthy again`).
//! Every decision is a journal event (`kind: "fault"`, the link and direction, the rule's
//! RNG stream key, and what it decided about which message).
//!
//! - host link: `the host's 0210 is dropped`, `... is delayed by 5 seconds`, `... arrives
//!   after the terminal's timeout`, `... is duplicated`, `... carries a wrong MAC`,
//!   `... has DE 39 corrupted`, `... is preceded by an unsolicited 0800`; the terminal's
//!   requests likewise (`the terminal's 0200 is dropped`);
//! - cash register link: `the terminal's ZVT 06 0F is dropped` (its answers),
//!   `the cash register's ZVT 06 01 is ...` (its commands); drop, delay, duplicate,
//!   corrupt;
//! - card reader link: `the card answers GENERATE AC with status 6A82`, `the card is
//!   removed before GENERATE AC`, `the card's answer to READ RECORD is dropped`.

use cucumber::{given, then};
use serde_json::{json, Value};

use super::links::add_on;
use super::{kind, link};
use crate::run::world::PosWorld;

/// How long a fault lasts: `once` (default), `for N seconds`, `until cleared`.
#[derive(Clone, Copy, Debug)]
enum Lasting {
    Once,
    For(u64),
    UntilCleared,
}

fn lasting(text: &str) -> Lasting {
    let t = text.trim();
    if t.is_empty() || t == "once" {
        Lasting::Once
    } else if t == "until cleared" {
        Lasting::UntilCleared
    } else {
        let n = t
            .trim_start_matches("for ")
            .trim_end_matches(" seconds")
            .trim_end_matches(" second");
        Lasting::For(
            n.parse()
                .unwrap_or_else(|_| panic!("\"{t}\": once, for N seconds or until cleared")),
        )
    }
}

/// Adds a protocol toxic `kind` on `link`/`stream` with `attributes` for `how` long.
async fn rule(
    w: &mut PosWorld,
    link_name: &str,
    stream: &str,
    toxic_kind: &str,
    name: String,
    mut attributes: Value,
    how: Lasting,
) {
    let count = match how {
        Lasting::Once => 1,
        _ => 0,
    };
    if let Some(map) = attributes.as_object_mut() {
        map.insert("count".into(), json!(count));
    }
    let secs = match how {
        Lasting::For(n) => Some(n),
        _ => None,
    };
    add_on(
        w,
        link_name,
        json!({"name": name, "type": toxic_kind, "stream": stream, "attributes": attributes}),
        secs,
    )
    .await;
}

/// The ISO 8583 action of a step's wording, and its attributes.
async fn iso_action(w: &mut PosWorld, what: &str) -> Value {
    if what == "is dropped" {
        return json!({"action": "drop"});
    }
    if what == "is duplicated" {
        return json!({"action": "duplicate"});
    }
    if what == "carries a wrong MAC" {
        return json!({"action": "wrong_mac"});
    }
    if what == "arrives after the terminal's timeout" {
        let timeout = w.bench().await.params.host_timeout_ms;
        return json!({"action": "delay", "delay": timeout + 10_000});
    }
    if let Some(n) = what
        .strip_prefix("is delayed by ")
        .and_then(|r| r.strip_suffix(" seconds").or(r.strip_suffix(" second")))
    {
        let n: u64 = n.parse().unwrap_or_else(|_| panic!("\"{what}\": seconds"));
        return json!({"action": "delay", "delay": n * 1000});
    }
    if let Some(de) = what
        .strip_prefix("has DE ")
        .and_then(|r| r.strip_suffix(" corrupted"))
    {
        let de: u16 = de
            .parse()
            .unwrap_or_else(|_| panic!("\"{what}\": a field number"));
        return json!({"action": "corrupt", "field": de});
    }
    if let Some(mti) = what.strip_prefix("is preceded by an unsolicited ") {
        return json!({"action": "unsolicited", "unsolicited_mti": mti});
    }
    panic!("unknown ISO 8583 fault \"{what}\"")
}

#[given(
    regex = r"^the (host|terminal)'s (\d{4}) (is dropped|is duplicated|carries a wrong MAC|arrives after the terminal's timeout|is delayed by \d+ seconds?|has DE \d+ corrupted|is preceded by an unsolicited \d{4})(?: (once|for \d+ seconds?|until cleared))?$"
)]
async fn iso_fault(w: &mut PosWorld, sender: String, mti: String, what: String, how: String) {
    let stream = if sender == "host" {
        "downstream"
    } else {
        "upstream"
    };
    let mut attributes = iso_action(w, &what).await;
    if let Some(map) = attributes.as_object_mut() {
        map.insert("mti".into(), json!(mti));
    }
    let action = attributes["action"].as_str().unwrap_or("").to_string();
    rule(
        w,
        "host",
        stream,
        "iso8583",
        format!("iso8583_{mti}_{action}"),
        attributes,
        lasting(&how),
    )
    .await;
}

/// `is dropped`, `is delayed by N seconds`, `is duplicated`, `is corrupted`.
fn plain_action(what: &str) -> Value {
    match what {
        "is dropped" => json!({"action": "drop"}),
        "is duplicated" => json!({"action": "duplicate"}),
        "is corrupted" => json!({"action": "corrupt"}),
        other => {
            let n: u64 = other
                .strip_prefix("is delayed by ")
                .and_then(|r| r.strip_suffix(" seconds").or(r.strip_suffix(" second")))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unknown fault \"{other}\""));
            json!({"action": "delay", "delay": n * 1000})
        }
    }
}

#[given(
    regex = r"^the (terminal|cash register)'s ZVT ([0-9A-Fa-f]{2} [0-9A-Fa-f]{2})(?: \([^)]*\))? (is dropped|is duplicated|is corrupted|is delayed by \d+ seconds?)(?: (once|for \d+ seconds?|until cleared))?$"
)]
async fn zvt_fault(w: &mut PosWorld, sender: String, command: String, what: String, how: String) {
    let stream = if sender == "terminal" {
        "downstream"
    } else {
        "upstream"
    };
    let mut attributes = plain_action(&what);
    if let Some(map) = attributes.as_object_mut() {
        map.insert("command".into(), json!(command));
    }
    let action = attributes["action"].as_str().unwrap_or("").to_string();
    rule(
        w,
        "ecr",
        stream,
        "zvt",
        format!("zvt_{}_{action}_{stream}", command.replace(' ', "")),
        attributes,
        lasting(&how),
    )
    .await;
}

/// An APDU's INS from its name (`GENERATE AC`) or hex (`INS AE`).
pub fn ins_of(command: &str) -> String {
    let known = [
        ("SELECT", "A4"),
        ("GET PROCESSING OPTIONS", "A8"),
        ("READ RECORD", "B2"),
        ("GENERATE AC", "AE"),
        ("VERIFY", "20"),
        ("GET DATA", "CA"),
        ("GET CHALLENGE", "84"),
        ("INTERNAL AUTHENTICATE", "88"),
        ("EXTERNAL AUTHENTICATE", "82"),
        ("COMPUTE CRYPTOGRAPHIC CHECKSUM", "2A"),
    ];
    if let Some(hex) = command.strip_prefix("INS ") {
        return hex.to_uppercase();
    }
    known
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(command))
        .map(|(_, ins)| ins.to_string())
        .unwrap_or_else(|| {
            panic!(
                "unknown APDU command \"{command}\" (known: {}, or INS xx)",
                known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )
        })
}

#[given(
    regex = r"^the card answers (SELECT|GET PROCESSING OPTIONS|READ RECORD|GENERATE AC|VERIFY|GET DATA|GET CHALLENGE|INTERNAL AUTHENTICATE|EXTERNAL AUTHENTICATE|COMPUTE CRYPTOGRAPHIC CHECKSUM|INS [0-9A-Fa-f]{2}) with status ([0-9A-Fa-f]{4})(?: (once|for \d+ seconds?|until cleared))?$"
)]
async fn apdu_status(w: &mut PosWorld, command: String, sw: String, how: String) {
    let ins = ins_of(&command);
    rule(
        w,
        "reader",
        "downstream",
        "apdu",
        format!("apdu_{ins}_sw"),
        json!({"ins": ins, "action": "status_word", "sw": sw}),
        lasting(&how),
    )
    .await;
}

#[given(
    regex = r"^the card is removed before (SELECT|GET PROCESSING OPTIONS|READ RECORD|GENERATE AC|VERIFY|GET DATA|GET CHALLENGE|INTERNAL AUTHENTICATE|EXTERNAL AUTHENTICATE|COMPUTE CRYPTOGRAPHIC CHECKSUM|INS [0-9A-Fa-f]{2})$"
)]
async fn apdu_removed(w: &mut PosWorld, command: String) {
    let ins = ins_of(&command);
    rule(
        w,
        "reader",
        "upstream",
        "apdu",
        format!("apdu_{ins}_removed"),
        json!({"ins": ins, "action": "remove_card"}),
        Lasting::Once,
    )
    .await;
}

#[given(
    regex = r"^the card's answer to (SELECT|GET PROCESSING OPTIONS|READ RECORD|GENERATE AC|VERIFY|GET DATA|GET CHALLENGE|INTERNAL AUTHENTICATE|EXTERNAL AUTHENTICATE|COMPUTE CRYPTOGRAPHIC CHECKSUM|INS [0-9A-Fa-f]{2}) (is dropped|is duplicated|is delayed by \d+ seconds?)(?: (once|for \d+ seconds?|until cleared))?$"
)]
async fn apdu_answer(w: &mut PosWorld, command: String, what: String, how: String) {
    let ins = ins_of(&command);
    let mut attributes = plain_action(&what);
    if let Some(map) = attributes.as_object_mut() {
        map.insert("ins".into(), json!(ins));
    }
    let action = attributes["action"].as_str().unwrap_or("").to_string();
    rule(
        w,
        "reader",
        "downstream",
        "apdu",
        format!("apdu_{ins}_{action}"),
        attributes,
        lasting(&how),
    )
    .await;
}

/// The fault decisions journaled on a link (its bench key, e.g. `terminal->host`).
fn decisions<'a>(entries: &'a [Value], key: &str, decision: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| kind(e) == "fault" && link(e).starts_with(key))
        .filter(|e| e["decision"]["decision"] == decision)
        .collect()
}

#[then(regex = r#"^the "(\w+)" link journaled (\d+) "(\w+)" fault decisions?$"#)]
async fn journaled(w: &mut PosWorld, link_name: String, n: usize, decision: String) {
    w.settle().await;
    let key = w
        .bench()
        .await
        .link_faults(&link_name)
        .unwrap_or_else(|e| panic!("{e:#}"))
        .link()
        .to_string();
    let entries = w.journal();
    let seen = decisions(&entries, &key, &decision);
    assert_eq!(
        seen.len(),
        n,
        "expected {n} \"{decision}\" fault decision(s) on {key}, saw {}: {seen:?}\n{}",
        seen.len(),
        w.excerpt(20)
    );
    for e in seen {
        assert!(
            e["rng"].as_str().is_some_and(|r| r.starts_with(&key)),
            "every decision names its seed stream: {e}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lasting_words() {
        assert!(matches!(lasting(""), Lasting::Once));
        assert!(matches!(lasting("once"), Lasting::Once));
        assert!(matches!(lasting("for 30 seconds"), Lasting::For(30)));
        assert!(matches!(lasting("until cleared"), Lasting::UntilCleared));
    }

    #[test]
    fn apdu_names() {
        assert_eq!(ins_of("GENERATE AC"), "AE");
        assert_eq!(ins_of("INS b2"), "B2");
    }
}
