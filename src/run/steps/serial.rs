//! Serial-line faults on the cash register's line to the terminal (the bench's
//! `ecr->terminal` link, ZVT framed: DLE STX ... DLE ETX CRC, ACK/NAK), from Gherkin. The
//! stages are `poslab-faults`' serial toxics (byte_drop, bit_errors, wrong_baud, break,
//! parity_error, framing_error, flow_stall, disconnect), seeded by the run's seed, every
//! decision journaled (`kind: "fault"`, link `ecr->terminal#N/upstream|downstream`).
//! Upstream is what the cash register sends. The same stages run over the in-memory line
//! of the embedded terminal and over the pty of a terminal process.

use std::time::Duration;

use cucumber::{given, then, when};
use poslab_emv::profile::Interface;
use poslab_faults::ToxicSpec;
use poslab_terminal::keypad::Key;
use poslab_zvt::ecr::{EcrCommand, Status};
use serde_json::{json, Value};

use super::{kind, link};
use crate::run::world::PosWorld;

/// Adds a toxic on the cash register's line.
async fn add(w: &mut PosWorld, toxic: Value) {
    let spec = ToxicSpec::from_json(toxic.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("serial fault {toxic}: {e}"));
    w.bench()
        .await
        .link_faults("ecr")
        .unwrap_or_else(|e| panic!("{e:#}"))
        .add(spec);
}

/// Adds the same toxic on both ways of the line (`NAME_upstream`, `NAME_downstream`).
async fn add_both(w: &mut PosWorld, name: &str, kind: &str, attributes: Value) {
    for stream in ["upstream", "downstream"] {
        add(
            w,
            json!({"name": format!("{name}_{stream}"), "type": kind, "stream": stream,
                   "attributes": attributes}),
        )
        .await;
    }
}

fn one_in(n: u64) -> f64 {
    assert!(n > 0, "1 byte in 0 is not a rate");
    1.0 / n as f64
}

#[given(regex = r"^the cash register's serial line flips a bit in the next frame it sends$")]
async fn bit_error_once(w: &mut PosWorld) {
    // past DLE STX, class, instruction and length: inside the frame, so the CRC fails
    add(
        w,
        json!({"name": "bit_error_once", "type": "bit_errors", "stream": "upstream",
               "attributes": {"probability": 1.0, "skip": 5, "count": 1}}),
    )
    .await;
}

#[given(regex = r"^the cash register's serial line has noise: 1 byte in (\d+) gets a bit error$")]
async fn noise(w: &mut PosWorld, n: u64) {
    add_both(w, "noise", "bit_errors", json!({"probability": one_in(n)})).await;
}

#[given(regex = r"^the cash register's serial line loses 1 byte in (\d+)$")]
async fn drops(w: &mut PosWorld, n: u64) {
    add_both(w, "drop", "byte_drop", json!({"probability": one_in(n)})).await;
}

#[given(
    regex = r"^the cash register's serial line has (parity|framing) errors on 1 byte in (\d+)$"
)]
async fn line_errors(w: &mut PosWorld, what: String, n: u64) {
    let kind = format!("{what}_error");
    add_both(w, &kind, &kind, json!({"probability": one_in(n)})).await;
}

#[given(regex = r"^the cash register sends a BREAK of (\d+) ms before its next frame$")]
async fn line_break(w: &mut PosWorld, ms: u64) {
    add(
        w,
        json!({"name": "break", "type": "break", "stream": "upstream",
               "attributes": {"probability": 1.0, "duration": ms, "count": 1}}),
    )
    .await;
}

#[given(
    regex = r"^the terminal's serial port runs at (\d+) baud while the cash register's runs at (\d+)$"
)]
async fn wrong_baud(w: &mut PosWorld, terminal: u32, register: u32) {
    add(
        w,
        json!({"name": "wrong_baud_upstream", "type": "wrong_baud", "stream": "upstream",
               "attributes": {"baud": register, "line_baud": terminal}}),
    )
    .await;
    add(
        w,
        json!({"name": "wrong_baud_downstream", "type": "wrong_baud", "stream": "downstream",
               "attributes": {"baud": terminal, "line_baud": register}}),
    )
    .await;
}

#[given(
    regex = r"^flow control stops the cash register's serial line for (\d+) ms by (RTS/CTS|XOFF)$"
)]
async fn stall(w: &mut PosWorld, ms: u64, via: String) {
    let via = if via == "XOFF" { "xoff" } else { "rts_cts" };
    add_both(
        w,
        "stall",
        "flow_stall",
        json!({"probability": 1.0, "duration": ms, "via": via, "count": 1}),
    )
    .await;
}

#[when(regex = r"^the cash register's cable is pulled out for (\d+) seconds$")]
async fn cable_pulled(w: &mut PosWorld, secs: u64) {
    add_both(
        w,
        "cable",
        "disconnect",
        json!({"after": 0, "down": secs * 1000, "mode": "drop"}),
    )
    .await;
}

#[given(regex = r#"^the cash register's serial line has the faults "([^"]*)"$"#)]
async fn spec(w: &mut PosWorld, text: String) {
    let spec: poslab_faults::SerialSpec = text
        .parse()
        .unwrap_or_else(|e| panic!("serial faults {text:?}: {e}"));
    for toxic in spec.toxics(9600) {
        add(w, toxic.to_json()).await;
    }
}

#[when(regex = r"^the terminal's answers to the cash register are lost from now on$")]
async fn answers_lost(w: &mut PosWorld) {
    add(
        w,
        json!({"name": "answers_lost", "type": "byte_drop", "stream": "downstream",
               "attributes": {"probability": 1.0}}),
    )
    .await;
}

#[when(regex = r"^the cash register's serial line is clean again$")]
async fn clean(w: &mut PosWorld) {
    w.bench()
        .await
        .link_faults("ecr")
        .unwrap_or_else(|e| panic!("{e:#}"))
        .clear();
}

/// The cash register's link events (`zvt_link`) since the command started, as text.
fn register_link_events(w: &PosWorld) -> Vec<String> {
    w.since_mark()
        .iter()
        .filter(|e| link(e) == "ecr" && kind(e) == "zvt_link")
        .filter_map(|e| e.get("event").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Fault decisions journaled on the cash register's line, by type.
fn line_faults(entries: &[Value], kind_name: &str) -> usize {
    entries
        .iter()
        .filter(|e| {
            link(e).starts_with("ecr->terminal")
                && kind(e) == "fault"
                && e.get("type").and_then(Value::as_str) == Some(kind_name)
        })
        .count()
}

#[then(
    regex = r"^the terminal refused the garbled frame \(NAK\) and the cash register sent it again$"
)]
async fn nak_and_resent(w: &mut PosWorld) {
    w.settle().await;
    let events = register_link_events(w);
    assert!(
        events
            .iter()
            .any(|e| e.contains("Retransmitted") && e.contains("nak")),
        "expected the cash register to send a frame again after a NAK; its line events: {events:?}\n{}",
        w.excerpt(20)
    );
    assert!(
        line_faults(&w.journal(), "bit_errors") >= 1,
        "no bit error was journaled on the line\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r#"^the line journaled (\d+) "(\w+)" faults?$"#)]
async fn journaled(w: &mut PosWorld, n: usize, kind_name: String) {
    w.settle().await;
    let seen = line_faults(&w.journal(), &kind_name);
    assert_eq!(
        seen,
        n,
        "expected {n} {kind_name} decisions on the cash register's line, saw {seen}\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r#"^the line journaled "(\w+)" faults$"#)]
async fn journaled_some(w: &mut PosWorld, kind_name: String) {
    w.settle().await;
    let seen = line_faults(&w.journal(), &kind_name);
    assert!(
        seen > 0,
        "expected {kind_name} decisions on the cash register's line, saw none\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r"^the cash register sent the payment once$")]
async fn payment_once(w: &mut PosWorld) {
    w.settle().await;
    let payments: Vec<String> = w
        .since_mark()
        .iter()
        .filter(|e| {
            link(e) == "ecr"
                && kind(e) == "zvt"
                && e.get("dir").and_then(Value::as_str) == Some("out")
        })
        .filter_map(|e| e.get("command").and_then(Value::as_str).map(str::to_owned))
        .filter(|c| c.starts_with("06 01"))
        .collect();
    assert_eq!(
        payments.len(),
        1,
        "the cash register sent the payment (06 01) {} times\n{}",
        payments.len(),
        w.excerpt(20)
    );
}

#[then(regex = r"^the cash register asked for the last result and recovered the approval$")]
async fn recovered(w: &mut PosWorld) {
    let o = w
        .settle()
        .await
        .cloned()
        .expect("no command was started at the cash register");
    let decisions: Vec<String> = w
        .since_mark()
        .iter()
        .filter(|e| link(e) == "ecr" && kind(e) == "zvt_decision")
        .filter_map(|e| e.get("decision").and_then(Value::as_str).map(str::to_owned))
        .collect();
    assert!(
        decisions.iter().any(|d| d.contains("recovered, not sent again")),
        "expected the cash register to recover the result from the terminal's last result; its decisions: {decisions:?}\n{}",
        w.excerpt(20)
    );
    assert_eq!(
        o.status,
        Status::Success,
        "the recovered outcome is {:?}, expected approved\n{}",
        o.status,
        w.excerpt(20)
    );
}

#[then(regex = r"^the cash register is told the result is unknown and does not pay again$")]
async fn unknown(w: &mut PosWorld) {
    let o = w
        .settle()
        .await
        .cloned()
        .expect("no command was started at the cash register");
    assert_eq!(
        o.status,
        Status::Unknown,
        "the cash register was told {:?} ({:?}), expected an unknown result\n{}",
        o.status,
        o.result_text,
        w.excerpt(20)
    );
    assert!(!o.resent, "the cash register sent the payment again");
    payment_once(w).await;
}

// ---- devices: the card reader and the printer --------------------------------------------

/// Adds a toxic on the terminal's link to the card reader (the vpcd card link).
async fn add_reader(w: &mut PosWorld, toxic: Value) {
    let spec = ToxicSpec::from_json(toxic.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("reader fault {toxic}: {e}"));
    w.bench()
        .await
        .link_faults("reader")
        .unwrap_or_else(|e| panic!("{e:#}"))
        .add(spec);
}

#[given(regex = r"^the card reader is dead$")]
async fn reader_dead(w: &mut PosWorld) {
    // every card connection is reset as it is made: the reader powers nothing up
    add_reader(
        w,
        json!({"name": "reader_dead", "type": "down", "stream": "upstream"}),
    )
    .await;
}

#[given(regex = r"^the card reader does not answer$")]
async fn reader_silent(w: &mut PosWorld) {
    for stream in ["upstream", "downstream"] {
        add_reader(
            w,
            json!({"name": format!("reader_silent_{stream}"), "type": "timeout", "stream": stream,
                   "attributes": {"timeout": 0}}),
        )
        .await;
    }
}

#[given(expr = "the printer jams after {int} lines")]
async fn jam_after(w: &mut PosWorld, lines: u64) {
    w.bench()
        .await
        .printer_fault(poslab_escpos::device::Fault::JamAfter(lines))
        .await
        .expect("printer");
}

#[when(expr = "the jam is cleared")]
async fn jam_cleared(w: &mut PosWorld) {
    w.set_mark();
    w.bench()
        .await
        .printer_clear(poslab_escpos::device::FaultKind::Jam)
        .await
        .expect("printer");
}

#[then(regex = r"^only the (\d+) held copies were printed after the jam was cleared$")]
async fn only_held(w: &mut PosWorld, n: usize) {
    let mark = w.mark;
    let count = |e: &[Value]| {
        e.get(mark..)
            .unwrap_or(&[])
            .iter()
            .filter(|e| link(e) == "printer" && kind(e) == "receipt")
            .count()
    };
    w.wait_for(crate::run::world::WAIT, &format!("{n} receipts"), |e| {
        (count(e) >= n).then_some(())
    })
    .await;
    // whatever else the printer still had would come out at once: give it a moment
    tokio::time::sleep(Duration::from_secs(3)).await;
    let printed = count(&w.journal());
    assert_eq!(
        printed,
        n,
        "the printer printed {printed} receipts after the jam was cleared, expected only the {n} held copies\n{}",
        w.excerpt(20)
    );
}

/// Waits (at most `within`) until the terminal shows a text containing `wanted` since
/// `mark`, or the cash register has an outcome: whether the terminal asked.
async fn asked_or_over(w: &PosWorld, mark: usize, wanted: &str, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let all = w.journal();
        let since = all.get(mark..).unwrap_or(&[]);
        if super::displayed(since).iter().any(|t| t.contains(wanted)) {
            return true;
        }
        let over = since
            .iter()
            .any(|e| link(e) == "ecr" && kind(e) == "outcome");
        if over || tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Purchases over a line that may lose the command or the answer: the card goes in and
/// the PIN is typed only when the terminal asks; each command ends however it ends.
#[when(
    regex = r#"^the cash register tries (\d+) purchases of (\d+(?:\.\d{1,2})?) EUR, each with card "([^"]+)" and PIN "(\d{4})"$"#
)]
async fn tries_many(w: &mut PosWorld, n: usize, value: String, card: String, pin: String) {
    assert!(n <= 50, "at most 50 purchases in one step");
    for _ in 0..n {
        w.ecr(EcrCommand::Purchase {
            amount: super::amount(&value),
            currency: Some(978),
        })
        .await;
        let mark = w.mark;
        if !asked_or_over(w, mark, "CARD", Duration::from_secs(60)).await {
            w.settle().await;
            continue;
        }
        w.bench()
            .await
            .present_card(&card, Interface::Contact)
            .await
            .unwrap_or_else(|e| panic!("card {card}: {e:#}"));
        if asked_or_over(w, mark, "ENTER PIN", Duration::from_secs(60)).await {
            let b = w.bench().await;
            for d in pin.bytes() {
                b.press(Key::Digit(d - b'0'));
            }
            b.press(Key::Enter);
        }
        w.settle().await;
    }
}

/// On a line that may lose any frame, a purchase may end unknown to the register (it then
/// says "check the terminal" and sends nothing again); what must hold is that it never
/// sent a payment twice blindly: one 06 01 per purchase, plus one per purchase it resent
/// after the terminal showed the first had not run.
#[then(regex = r"^every purchase ended approved, declined or unknown, none sent again blindly$")]
async fn none_sent_twice(w: &mut PosWorld) {
    w.settle().await;
    let purchases: Vec<_> = w
        .outcomes
        .iter()
        .filter(|o| matches!(o.command, EcrCommand::Purchase { .. }))
        .collect();
    let resent = purchases.iter().filter(|o| o.resent).count();
    let sent = w
        .journal()
        .iter()
        .filter(|e| {
            link(e) == "ecr"
                && kind(e) == "zvt"
                && e.get("dir").and_then(Value::as_str) == Some("out")
                && e.get("command")
                    .and_then(Value::as_str)
                    .is_some_and(|c| c.starts_with("06 01"))
        })
        .count();
    assert_eq!(
        sent,
        purchases.len() + resent,
        "the cash register sent 06 01 {sent} times for {} purchases ({resent} resent after the terminal showed they had not run)\n{}",
        purchases.len(),
        w.excerpt(20)
    );
}
