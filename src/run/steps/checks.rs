//! What the host, the printer, the display and the cash register saw.

use cucumber::then;
use poslab_zvt::ecr::{EcrCommand, Status};
use serde_json::Value;

use super::{amount, displayed, field, host_decisions, host_requests, mti, receipts};
use crate::run::world::{PosWorld, WAIT};

fn secs(n: u64, unit: &str) -> std::time::Duration {
    std::time::Duration::from_secs(if unit.starts_with("minute") {
        n * 60
    } else {
        n
    })
}

#[then(expr = "the terminal shows {string}")]
async fn shows(w: &mut PosWorld, text: String) {
    let mark = w.mark;
    w.wait_for(WAIT, &format!("the terminal showing \"{text}\""), |e| {
        displayed(e.get(mark..).unwrap_or(&[]))
            .iter()
            .any(|t| t.contains(&text))
            .then_some(())
    })
    .await;
}

#[then(regex = r#"^within (\d+) (seconds?|minutes?) the terminal shows "([^"]+)"$"#)]
async fn shows_within(w: &mut PosWorld, n: u64, unit: String, text: String) {
    let mark = w.mark;
    w.wait_for(
        secs(n, &unit),
        &format!("the terminal showing \"{text}\""),
        |e| {
            displayed(e.get(mark..).unwrap_or(&[]))
                .iter()
                .any(|t| t.contains(&text))
                .then_some(())
        },
    )
    .await;
}

#[then(expr = "the terminal tells the cashier {string}")]
async fn tells(w: &mut PosWorld, text: String) {
    shows(w, text).await;
}

#[then(expr = "the terminal never showed {string}")]
async fn never_showed(w: &mut PosWorld, text: String) {
    w.settle().await;
    let shown = displayed(&w.journal());
    assert!(
        !shown.iter().any(|t| t.contains(&text)),
        "the terminal showed \"{text}\": {shown:?}"
    );
}

#[then(
    regex = r"^the cash register is told the sale was (approved|declined|cancelled|not charged)$"
)]
async fn register_told(w: &mut PosWorld, what: String) {
    let o = w
        .settle()
        .await
        .cloned()
        .expect("no command was started at the cash register");
    let ok = match what.as_str() {
        "approved" => o.status == Status::Success,
        _ => o.status != Status::Success,
    };
    assert!(
        ok,
        "the cash register was told {:?} ({:?}), expected {what}\n{}",
        o.status,
        o.additional_text,
        w.excerpt(20)
    );
}

#[then(regex = r#"^the host received an? "(\d{4})"$"#)]
async fn host_received(w: &mut PosWorld, m: String) {
    w.wait_for(WAIT, &format!("a {m} at the host"), |e| {
        host_requests(e).iter().any(|f| mti(f) == m).then_some(())
    })
    .await;
}

#[then(regex = r#"^the host received no "(\d{4})"$"#)]
async fn host_received_none(w: &mut PosWorld, m: String) {
    w.settle().await;
    let n = host_requests(&w.journal())
        .iter()
        .filter(|f| mti(f) == m)
        .count();
    assert_eq!(n, 0, "the host received {n} × {m}");
}

#[then(
    regex = r#"^the host received a "(\d{4})" with amount (\d+(?:\.\d{1,2})?) EUR( and an encrypted PIN block)?$"#
)]
async fn host_received_amount(w: &mut PosWorld, m: String, value: String, pin_block: String) {
    let want = format!("{:012}", amount(&value));
    let f = w
        .wait_for(WAIT, &format!("a {m} for {value} EUR at the host"), |e| {
            host_requests(e)
                .into_iter()
                .rev()
                .find(|f| mti(f) == m && field(f, 4) == Some(want.as_str()))
                .cloned()
        })
        .await;
    let pin = f.get("message").and_then(|m| m.get("52"));
    if !pin_block.is_empty() {
        let shown = pin
            .map(Value::to_string)
            .unwrap_or_else(|| panic!("the {m} carries no PIN block (DE 52): {f}"));
        // the journal keeps it masked: never 16 hex digits of the block in a row
        let longest_hex_run = shown
            .split(|c: char| !c.is_ascii_hexdigit())
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(
            longest_hex_run < 16,
            "the PIN block appears in clear in the journal: {shown}"
        );
    }
}

#[then(expr = "the host received an encrypted PIN block")]
async fn host_pin(w: &mut PosWorld) {
    let f = host_requests(&w.journal())
        .into_iter()
        .rev()
        .find(|f| mti(f) == "0200" || mti(f) == "0100")
        .cloned();
    let f = f.expect("no 0100/0200 at the host");
    assert!(
        f.get("message").and_then(|m| m.get("52")).is_some(),
        "the last request has no PIN block (DE 52): {f}"
    );
}

fn last_code(entries: &[Value], for_mti: &[&str]) -> Option<String> {
    host_decisions(entries)
        .into_iter()
        .rev()
        .find(|d| for_mti.contains(&d.get("mti").and_then(Value::as_str).unwrap_or("")))
        .and_then(|d| d.get("code").and_then(Value::as_str).map(str::to_owned))
}

#[then(regex = r#"^the host (?:approved it|answered) with response code "([0-9A-Z]{2})"$"#)]
async fn host_code(w: &mut PosWorld, code: String) {
    // the answer to this sale: the mark is set when the cashier starts it
    let mark = w.mark;
    let got = w
        .wait_for(WAIT, "the host's answer", |e| {
            last_code(e.get(mark..).unwrap_or(&[]), &["0100", "0200"])
        })
        .await;
    if got != code {
        // the relevant excerpt: what the host received and decided for this sale
        let entries = w.journal();
        let host: Vec<String> = entries
            .get(mark..)
            .unwrap_or(&[])
            .iter()
            .filter(|e| super::link(e) == "host")
            .map(|e| e.to_string())
            .collect();
        panic!(
            "the host answered {got}, expected {code}\n--- the host's journal for this sale ---\n{}",
            host.join("\n")
        );
    }
}

#[then(expr = "no money moved for this purchase")]
async fn no_money(w: &mut PosWorld) {
    let o = w.settle().await.cloned().expect("no sale");
    assert_ne!(
        o.status,
        Status::Success,
        "the register was told the sale succeeded"
    );
    let approved_sales = w
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Success && o.command.moves_money())
        .count();
    let b = w.bench().await;
    let tid = b.params.tid.clone();
    let host = b.host.lock().unwrap_or_else(|p| p.into_inner());
    let standing = host
        .terminal(&tid)
        .map(|t| {
            t.batch
                .iter()
                .filter(|x| {
                    x.code.is_approved() && x.state == poslab_host::TxnState::Standing && x.settles
                })
                .count()
        })
        .unwrap_or(0);
    drop(host);
    assert!(
        standing <= approved_sales,
        "the host holds {standing} standing approvals for {approved_sales} approved sales"
    );
}

#[then(expr = "nobody was charged twice")]
async fn not_twice(w: &mut PosWorld) {
    w.settle().await;
    // a reversal the terminal still has queued is on its way: give its retries the time
    // they take (free in simulated time), then the books must agree (src/run/money.rs)
    let violations = crate::run::money::wait_until_safe(w, WAIT).await;
    if !violations.is_empty() {
        panic!(
            "the books do not agree (waited {} for queued reversals):\n{}\n{}",
            humantime::format_duration(WAIT),
            violations
                .iter()
                .map(|v| format!("  - {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
            w.excerpt(30)
        );
    }
}

#[then(
    regex = r"^the host receives a reversal for (?:that|the last) purchase(?: within (\d+) (seconds?|minutes?))?$"
)]
async fn reversal(w: &mut PosWorld, n: String, unit: String) {
    let within = if n.is_empty() {
        WAIT
    } else {
        secs(n.parse().unwrap_or(60), &unit)
    };
    let stan = host_requests(&w.journal())
        .into_iter()
        .rev()
        .find(|f| mti(f) == "0200")
        .and_then(|f| field(f, 11).map(str::to_owned))
        .expect("the host never received a purchase (0200)");
    w.wait_for(
        within,
        &format!("a reversal (0400/0401) of STAN {stan} at the host"),
        |e| {
            host_requests(e)
                .iter()
                .any(|f| {
                    (mti(f) == "0400" || mti(f) == "0401")
                        && field(f, 90).is_some_and(|d| d.get(4..10) == Some(stan.as_str()))
                })
                .then_some(())
        },
    )
    .await;
}

#[then(regex = r"^the host received a reversal for the last purchase$")]
async fn reversal_received(w: &mut PosWorld) {
    reversal(w, String::new(), String::new()).await;
}

#[then(regex = r"^(?:at close of day )?the terminal's totals match the host's$")]
async fn totals_match(w: &mut PosWorld) {
    w.ecr(EcrCommand::EndOfDay).await;
    let o = w.settle().await.cloned().expect("end of day");
    assert_eq!(
        o.status,
        Status::Success,
        "close of day failed: {:?}\n{}",
        o.additional_text,
        w.excerpt(30)
    );
    let codes: Vec<String> = host_decisions(&w.journal())
        .iter()
        .filter(|d| d.get("mti").and_then(Value::as_str) == Some("0500"))
        .filter_map(|d| d.get("code").and_then(Value::as_str).map(str::to_owned))
        .collect();
    assert_eq!(
        codes.last().map(String::as_str),
        Some("00"),
        "the host's settlement answers: {codes:?}"
    );
}

#[then(expr = "the host closed the batch after a batch upload")]
async fn batch_upload(w: &mut PosWorld) {
    let e = w.journal();
    assert!(
        host_requests(&e).iter().any(|f| mti(f) == "0320"),
        "no batch upload (0320) at the host"
    );
    let codes: Vec<String> = host_decisions(&e)
        .iter()
        .filter(|d| d.get("mti").and_then(Value::as_str) == Some("0500"))
        .filter_map(|d| d.get("code").and_then(Value::as_str).map(str::to_owned))
        .collect();
    assert_eq!(
        codes,
        vec!["95".to_string(), "00".to_string()],
        "settlement answers"
    );
}

#[then(expr = "the printer printed {int} receipt(s)")]
async fn printed(w: &mut PosWorld, n: usize) {
    let mark = w.mark;
    w.settle().await;
    let got = w
        .wait_for(WAIT, &format!("{n} receipts"), |e| {
            let r = receipts(e.get(mark..).unwrap_or(&[]));
            (r.len() >= n).then_some(r.len())
        })
        .await;
    assert_eq!(got, n, "the printer printed {got} receipts, expected {n}");
}

#[then(regex = r#"^the (customer|merchant) receipt shows (.+)$"#)]
async fn receipt_shows(w: &mut PosWorld, copy: String, list: String) {
    w.settle().await;
    let want: Vec<String> = list
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect();
    let label = format!("{} COPY", copy.to_uppercase());
    let mark = w.mark;
    let r = w
        .wait_for(WAIT, &format!("a {copy} receipt"), |e| {
            receipts(e.get(mark..).unwrap_or(&[]))
                .into_iter()
                .rev()
                .find(|r| r.contains(&label))
        })
        .await;
    for s in want {
        assert!(
            r.contains(&s),
            "the {copy} receipt does not show \"{s}\":\n{r}"
        );
    }
}

#[then(expr = "the printed receipt shows {string}")]
async fn any_receipt_shows(w: &mut PosWorld, text: String) {
    let mark = w.mark;
    w.wait_for(WAIT, &format!("a receipt showing \"{text}\""), |e| {
        receipts(e.get(mark..).unwrap_or(&[]))
            .iter()
            .any(|r| r.contains(&text))
            .then_some(())
    })
    .await;
}

#[then(expr = "no receipt shows a card number in clear")]
async fn no_clear_pan(w: &mut PosWorld) {
    w.settle().await;
    for r in receipts(&w.journal()) {
        // a card number: 13 to 19 digits that pass the Luhn check (RRNs and ids do not)
        let digits: Vec<&str> = r
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| (13..=19).contains(&s.len()) && luhn(s))
            .collect();
        assert!(
            digits.is_empty(),
            "a receipt shows a card number in clear:\n{r}"
        );
    }
}

fn luhn(digits: &str) -> bool {
    poslab_sensitive::luhn_valid(digits)
}

#[then(expr = "every receipt says {string}")]
async fn every_receipt(w: &mut PosWorld, text: String) {
    w.settle().await;
    let all = receipts(&w.journal());
    assert!(!all.is_empty(), "nothing was printed");
    for r in all.iter().filter(|r| r.contains("COPY")) {
        assert!(r.contains(&text), "a receipt does not say \"{text}\":\n{r}");
    }
}

#[then(expr = "every purchase ends approved, declined or reversed")]
async fn every_purchase_ends(w: &mut PosWorld) {
    w.settle().await;
    for o in &w.outcomes {
        assert!(
            o.status != Status::Unknown,
            "a purchase ended unknown: {o:?}"
        );
    }
}
