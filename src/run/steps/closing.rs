//! Close of day, the X and Z reports, and the fault flows: what the host settled, what
//! the reports printed, which reversals reached the host and when, and what the printer
//! printed once it could.

use cucumber::gherkin::Step;
use cucumber::{given, then, when};
use poslab_host::config::{ActionConfig, Delivery, MatchConfig, MtiPattern};
use poslab_host::Rule;
use poslab_zvt::ecr::{EcrCommand, Status};
use serde_json::Value;

use super::{amount, displayed, field, host_decisions, host_requests, kind, link, mti, receipts};
use crate::run::world::{PosWorld, WAIT};

// ---- helpers ------------------------------------------------------------------------

/// A receipt entry of the printer: its lines, whether it was cut, whether it is whole.
struct Printed {
    lines: Vec<String>,
    incomplete: bool,
}

impl Printed {
    fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The lines with runs of spaces collapsed and the ends trimmed ("SALES       2" →
    /// "SALES 2"), as a person reads a two-column report.
    fn words(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }
}

fn printed(entries: &[Value]) -> Vec<Printed> {
    entries
        .iter()
        .filter(|e| link(e) == "printer" && kind(e) == "receipt")
        .map(|e| Printed {
            lines: e
                .get("lines")
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            incomplete: e
                .get("incomplete")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
        .collect()
}

fn since(entries: &[Value], mark: usize) -> &[Value] {
    entries.get(mark.min(entries.len())..).unwrap_or(&[])
}

/// Host frames in and out, with their index in the journal.
fn host_frames(entries: &[Value], dir: &str) -> Vec<(usize, Value)> {
    entries
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            link(e) == "host"
                && kind(e) == "frame"
                && e.get("dir").and_then(Value::as_str) == Some(dir)
        })
        .map(|(i, e)| (i, e.clone()))
        .collect()
}

/// The STAN of the last purchase (0200 with a purchase processing code) the host received.
fn last_purchase_stan(w: &PosWorld) -> String {
    host_requests(&w.journal())
        .into_iter()
        .rev()
        .find(|f| mti(f) == "0200" && field(f, 3).is_some_and(|p| p.starts_with("00")))
        .and_then(|f| field(f, 11).map(str::to_owned))
        .unwrap_or_else(|| {
            panic!(
                "the host never received a purchase (0200, processing code 00)\n{}",
                w.excerpt(20)
            )
        })
}

/// A reversal (0400/0401) naming `stan` in DE 90.
fn reverses(f: &Value, stan: &str) -> bool {
    (mti(f) == "0400" || mti(f) == "0401")
        && field(f, 90).is_some_and(|d| d.get(4..10) == Some(stan))
}

/// The last close of day (0500) the host received since the mark, once the command ended.
async fn last_settlement(w: &mut PosWorld) -> Value {
    w.settle().await;
    let mark = w.mark;
    w.wait_for(WAIT, "a close of day (0500) at the host", |e| {
        host_requests(since(e, mark))
            .into_iter()
            .rev()
            .find(|f| mti(f) == "0500")
            .cloned()
    })
    .await
}

fn number(f: &Value, de: u16) -> u64 {
    field(f, de)
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("the close of day has no number in DE {de}: {f}"))
}

fn money(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

// ---- standing faults ----------------------------------------------------------------

#[given(regex = r#"^the host will not answer the next (\d+) "(\d{4})" messages$"#)]
async fn host_silent_times(w: &mut PosWorld, n: u32, m: String) {
    assert!((1..=20).contains(&n), "between 1 and 20 silent answers");
    let b = w.bench().await;
    let when = MatchConfig {
        // a repeat (0401) is the same reversal sent again
        mti: vec![MtiPattern(format!("{}x", m.get(..3).unwrap_or(&m)))],
        ..MatchConfig::default()
    };
    let mut rule = Rule::once(
        "step: no answer (repeated)",
        when,
        ActionConfig {
            answer: Delivery::None,
            ..ActionConfig::default()
        },
    );
    rule.remaining = Some(n);
    b.host
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_override(rule);
}

#[when(
    regex = r"^the host loses the last standing transaction of its batch \(a host data error\)$"
)]
async fn host_loses(w: &mut PosWorld) {
    w.settle().await;
    let b = w.bench().await;
    let tid = b.params.tid.clone();
    let lost = b
        .host
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .lose_last_standing(&tid);
    let lost = lost.unwrap_or_else(|| {
        panic!("the host's batch for terminal {tid} holds no standing transaction to lose")
    });
    b.journal.record(
        "host",
        "data-error",
        serde_json::json!({"lost_stan": lost.stan, "amount": lost.amount}),
    );
}

// ---- close of day -------------------------------------------------------------------

#[then(
    regex = r"^the host received a close of day with (\d+) sales? for (\d+\.\d{2}) EUR and (\d+) refunds? for (\d+\.\d{2}) EUR$"
)]
async fn settlement_totals(
    w: &mut PosWorld,
    sales: u64,
    sales_amount: String,
    refunds: u64,
    refunds_amount: String,
) {
    let f = last_settlement(w).await;
    let (sa, ra) = (amount(&sales_amount), amount(&refunds_amount));
    let got = (
        number(&f, 76),
        number(&f, 88),
        number(&f, 74),
        number(&f, 86),
    );
    assert_eq!(
        got,
        (sales, sa, refunds, ra),
        "the close of day counted (sales DE 76, amount DE 88, refunds DE 74, amount DE 86) = \
         {got:?}, expected {:?}\n{f}",
        (sales, sa, refunds, ra)
    );
    let net = if sa >= ra {
        format!("D{:016}", sa - ra)
    } else {
        format!("C{:016}", ra - sa)
    };
    assert_eq!(
        field(&f, 97),
        Some(net.as_str()),
        "the close of day's net amount (DE 97)\n{f}"
    );
}

#[then(regex = r"^the close of day's net amount is (debit|credit) (\d+\.\d{2}) EUR$")]
async fn settlement_net(w: &mut PosWorld, side: String, value: String) {
    let f = last_settlement(w).await;
    let want = format!(
        "{}{:016}",
        if side == "debit" { 'D' } else { 'C' },
        amount(&value)
    );
    assert_eq!(
        field(&f, 97),
        Some(want.as_str()),
        "the close of day's net amount (DE 97)\n{f}"
    );
}

#[then(regex = r"^the close of day totals equal what the cash register was told was sold$")]
async fn settlement_equals_sold(w: &mut PosWorld) {
    let f = last_settlement(w).await;
    let ok: Vec<_> = w
        .outcomes
        .iter()
        .filter(|o| o.status == Status::Success)
        .collect();
    let voided: Vec<u32> = ok
        .iter()
        .filter_map(|o| match o.command {
            EcrCommand::Reverse { receipt } => Some(receipt),
            _ => None,
        })
        .collect();
    let (mut sales, mut sales_amount, mut refunds, mut refunds_amount) = (0, 0, 0, 0);
    for o in &ok {
        let voided = o.receipt.is_some_and(|r| voided.contains(&r));
        match o.command {
            EcrCommand::Purchase { amount, .. } if !voided => {
                sales += 1;
                sales_amount += amount;
            }
            EcrCommand::Refund { amount, .. } if !voided => {
                refunds += 1;
                refunds_amount += amount;
            }
            _ => {}
        }
    }
    assert!(
        sales + refunds > 0,
        "the cash register was told of no approved sale or refund"
    );
    let got = (
        number(&f, 76),
        number(&f, 88),
        number(&f, 74),
        number(&f, 86),
    );
    assert_eq!(
        got,
        (sales, sales_amount, refunds, refunds_amount),
        "close of day (sales, amount, refunds, amount) = {got:?}; the cash register was told \
         of {sales} sales for {} and {refunds} refunds for {}\n{}",
        money(sales_amount),
        money(refunds_amount),
        w.excerpt(20)
    );
}

#[then(expr = "the host answered the close of day with {string}")]
async fn settlement_code(w: &mut PosWorld, code: String) {
    last_settlement(w).await;
    let mark = w.mark;
    let got = w
        .wait_for(WAIT, "the host's answer to the close of day", |e| {
            host_decisions(since(e, mark))
                .into_iter()
                .rev()
                .find(|d| d.get("mti").and_then(Value::as_str) == Some("0500"))
                .and_then(|d| d.get("code").and_then(Value::as_str).map(str::to_owned))
        })
        .await;
    assert_eq!(
        got,
        code,
        "the host answered the close of day {got}, expected {code}\n{}",
        w.excerpt(15)
    );
}

#[then(expr = "the last close of day carried processing code {string}")]
async fn settlement_processing_code(w: &mut PosWorld, code: String) {
    let f = last_settlement(w).await;
    assert_eq!(
        field(&f, 3),
        Some(code.as_str()),
        "the processing code (DE 3) of the last close of day\n{f}"
    );
}

#[then(regex = r"^the cash register is told the batch is closed$")]
async fn register_batch_closed(w: &mut PosWorld) {
    let o = w
        .settle()
        .await
        .cloned()
        .expect("no close of day was started");
    assert!(
        matches!(o.command, EcrCommand::EndOfDay),
        "the last command was {:?}, not a close of day",
        o.command
    );
    assert_eq!(
        o.status,
        Status::Success,
        "the cash register was told {:?} ({:?})\n{}",
        o.status,
        o.additional_text,
        w.excerpt(20)
    );
}

#[then(regex = r"^the cash register is told the close of day failed$")]
async fn register_close_failed(w: &mut PosWorld) {
    let o = w
        .settle()
        .await
        .cloned()
        .expect("no close of day was started");
    assert!(
        matches!(o.command, EcrCommand::EndOfDay) && o.status != Status::Success,
        "the cash register was told {:?} for {:?}\n{}",
        o.status,
        o.command,
        w.excerpt(20)
    );
}

#[then(
    regex = r#"^the terminal uploaded its batch: one "0320" for each of its (\d+) transactions$"#
)]
async fn batch_uploaded(w: &mut PosWorld, n: usize) {
    w.settle().await;
    let everything = w.journal();
    let e = since(&everything, w.mark);
    let requests = host_requests(e);
    let all = w.journal();
    let purchases: Vec<&str> = host_requests(&all)
        .into_iter()
        .filter(|f| mti(f) == "0200")
        .filter_map(|f| field(f, 11))
        .collect();
    let uploads: Vec<&Value> = requests.into_iter().filter(|f| mti(f) == "0320").collect();
    let mut named: Vec<String> = uploads
        .iter()
        .map(|f| {
            field(f, 90)
                .and_then(|d| d.get(4..10))
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        uploads.len(),
        n,
        "the host received {} batch uploads (0320), expected {n}: {named:?}\n{}",
        uploads.len(),
        w.excerpt(20)
    );
    for s in &named {
        assert!(
            purchases.contains(&s.as_str()),
            "a 0320 names STAN {s:?}, which the host never received as a 0200"
        );
    }
    named.sort();
    named.dedup();
    assert_eq!(named.len(), n, "a transaction was uploaded twice");
    let codes: Vec<String> = host_decisions(e)
        .into_iter()
        .filter(|d| d.get("mti").and_then(Value::as_str) == Some("0320"))
        .filter_map(|d| d.get("code").and_then(Value::as_str).map(str::to_owned))
        .collect();
    assert!(
        codes.len() == n && codes.iter().all(|c| c == "00"),
        "the host's answers to the uploads: {codes:?}"
    );
    let first_upload = host_frames(e, "in")
        .into_iter()
        .find(|(_, f)| mti(f) == "0320")
        .map(|(i, _)| i);
    let settlements: Vec<usize> = host_frames(e, "in")
        .into_iter()
        .filter(|(_, f)| mti(f) == "0500")
        .map(|(i, _)| i)
        .collect();
    assert!(
        settlements.len() == 2
            && first_upload.is_some_and(|u| settlements[0] < u && u < settlements[1]),
        "expected close of day, upload, close of day again; 0500 at {settlements:?}, first \
         0320 at {first_upload:?}"
    );
}

// ---- reports ------------------------------------------------------------------------

async fn report_shows(w: &mut PosWorld, title: &str, step: &Step) {
    let mark = w.mark;
    let report = w
        .wait_for(WAIT, &format!("a printed {title}"), |e| {
            printed(since(e, mark))
                .into_iter()
                .rev()
                .find(|r| r.lines.iter().any(|l| l.contains(title)))
        })
        .await;
    let words = report.words();
    let rows = step
        .table
        .as_ref()
        .map(|t| t.rows.clone())
        .unwrap_or_default();
    assert!(!rows.is_empty(), "the step needs a table of lines");
    for row in rows {
        let want = row
            .iter()
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            words.contains(&want),
            "the {title} has no line \"{want}\":\n{}",
            report.text()
        );
    }
}

#[then(regex = r"^the X report shows:$")]
async fn x_report_shows(w: &mut PosWorld, step: &Step) {
    report_shows(w, "X REPORT", step).await;
}

#[then(regex = r"^the Z report shows:$")]
async fn z_report_shows(w: &mut PosWorld, step: &Step) {
    w.settle().await;
    report_shows(w, "Z REPORT", step).await;
}

#[then(regex = r#"^the (X|Z) report does not show "([^"]+)"$"#)]
async fn report_lacks(w: &mut PosWorld, which: String, text: String) {
    w.settle().await;
    let title = format!("{which} REPORT");
    let mark = w.mark;
    let report = w
        .wait_for(WAIT, &format!("a printed {title}"), |e| {
            printed(since(e, mark))
                .into_iter()
                .rev()
                .find(|r| r.lines.iter().any(|l| l.contains(&title)))
        })
        .await;
    assert!(
        !report.text().contains(&text),
        "the {title} shows \"{text}\":\n{}",
        report.text()
    );
}

#[then(regex = r"^the fees on the X report equal the fees the host charged$")]
async fn fees_reconcile(w: &mut PosWorld) {
    let mark = w.mark;
    let report = w
        .wait_for(WAIT, "a printed X REPORT", |e| {
            printed(since(e, mark))
                .into_iter()
                .rev()
                .find(|r| r.lines.iter().any(|l| l.contains("X REPORT")))
        })
        .await;
    let line = report
        .words()
        .into_iter()
        .find(|l| l.starts_with("FEES TOTAL "))
        .unwrap_or_else(|| panic!("the X report has no FEES TOTAL line:\n{}", report.text()));
    let printed_fees = line
        .rsplit(' ')
        .next()
        .map(amount)
        .unwrap_or_else(|| panic!("no amount in \"{line}\""));
    let b = w.bench().await;
    let tid = b.params.tid.clone();
    let host = b.host.lock().unwrap_or_else(|p| p.into_inner());
    let charged: u64 = host
        .terminal(&tid)
        .map(|t| {
            t.batch
                .iter()
                .filter(|x| {
                    x.settles && x.code.is_approved() && x.state == poslab_host::TxnState::Standing
                })
                .map(|x| x.fee)
                .sum()
        })
        .unwrap_or(0);
    drop(host);
    assert!(
        charged > 0,
        "the host charged no fees: nothing to reconcile"
    );
    assert_eq!(
        printed_fees,
        charged,
        "the X report's fees ({}) differ from the fees the host charged ({})",
        money(printed_fees),
        money(charged)
    );
}

#[then(regex = r#"^no "(\d{4})" for (\d+\.\d{2}) EUR reached the host$"#)]
async fn none_for_amount(w: &mut PosWorld, m: String, value: String) {
    w.settle().await;
    let want = format!("{:012}", amount(&value));
    let seen = host_requests(&w.journal())
        .into_iter()
        .filter(|f| mti(f) == m && field(f, 4) == Some(want.as_str()))
        .count();
    assert_eq!(seen, 0, "the host received {seen} × {m} for {value} EUR");
}

// ---- reversals ----------------------------------------------------------------------

#[then(regex = r"^the host holds that purchase as reversed$")]
async fn host_holds_reversed(w: &mut PosWorld) {
    w.settle().await;
    let stan: u32 = last_purchase_stan(w).parse().unwrap_or(0);
    let b = w.bench().await;
    let tid = b.params.tid.clone();
    let host = b.host.lock().unwrap_or_else(|p| p.into_inner());
    let states: Vec<String> = host
        .terminal(&tid)
        .map(|t| {
            t.batch
                .iter()
                .filter(|x| x.stan == stan)
                .map(|x| format!("{:?}", x.state))
                .collect()
        })
        .unwrap_or_default();
    drop(host);
    assert!(
        states.len() == 1 && states[0] == "Reversed",
        "the host holds STAN {stan} as {states:?}, expected one reversed transaction"
    );
}

#[then(
    regex = r"^the queued reversal of that purchase reached the host after the close of day began and before the settlement$"
)]
async fn reversal_before_settlement(w: &mut PosWorld) {
    w.settle().await;
    let stan = last_purchase_stan(w);
    let began = w.mark;
    let e = w.journal();
    let inbound = host_frames(&e, "in");
    let settlement = inbound
        .iter()
        .find(|(i, f)| *i >= began && mti(f) == "0500")
        .map(|(i, _)| *i)
        .unwrap_or_else(|| panic!("no close of day (0500) at the host\n{}", w.excerpt(20)));
    let tries: Vec<(usize, String)> = inbound
        .iter()
        .filter(|(_, f)| reverses(f, &stan))
        .filter_map(|(i, f)| field(f, 11).map(|own| (*i, own.to_owned())))
        .collect();
    let acks: Vec<usize> = host_frames(&e, "out")
        .into_iter()
        .filter(|(_, a)| {
            mti(a) == "0410"
                && tries
                    .iter()
                    .any(|(_, own)| field(a, 11) == Some(own.as_str()))
        })
        .map(|(i, _)| i)
        .collect();
    assert!(
        tries.iter().any(|(i, _)| *i < began),
        "no reversal of STAN {stan} was tried before the close of day: nothing was queued"
    );
    assert!(
        acks.iter().all(|i| *i >= began),
        "the host had acknowledged the reversal of STAN {stan} before the close of day began \
         (entries {acks:?}, close of day from {began}): it was not queued"
    );
    assert!(
        acks.iter().any(|i| *i < settlement),
        "the host acknowledged the reversal of STAN {stan} at entries {acks:?}, the close of \
         day came at {settlement}\n{}",
        w.excerpt(30)
    );
}

#[then(
    regex = r#"^the host received the reversal of that purchase (\d+) times, the last one as a repeat \("0401"\), and acknowledged it$"#
)]
async fn reversal_retried(w: &mut PosWorld, n: usize) {
    let stan = last_purchase_stan(w);
    let tries = w
        .wait_for(
            WAIT,
            &format!("{n} reversals of STAN {stan} at the host"),
            |e| {
                let r: Vec<Value> = host_requests(e)
                    .into_iter()
                    .filter(|f| reverses(f, &stan))
                    .cloned()
                    .collect();
                (r.len() >= n).then_some(r)
            },
        )
        .await;
    let mtis: Vec<&str> = tries.iter().map(mti).collect();
    assert_eq!(
        tries.len(),
        n,
        "the host received {mtis:?} for STAN {stan}, expected {n} tries"
    );
    assert_eq!(mtis.first(), Some(&"0400"), "the first try: {mtis:?}");
    assert_eq!(mtis.last(), Some(&"0401"), "the last try: {mtis:?}");
    let own: Vec<&str> = tries.iter().filter_map(|f| field(f, 11)).collect();
    let e = w.journal();
    let last_try = host_frames(&e, "in")
        .into_iter()
        .rev()
        .find(|(_, f)| reverses(f, &stan))
        .map_or(0, |(i, _)| i);
    let acks: Vec<usize> = host_frames(&e, "out")
        .into_iter()
        .filter(|(_, a)| mti(a) == "0410" && field(a, 11).is_some_and(|s| own.contains(&s)))
        .map(|(i, _)| i)
        .collect();
    assert!(
        acks.len() == 1 && acks[0] > last_try,
        "the host acknowledged the reversal of STAN {stan} at entries {acks:?}; expected one \
         acknowledgement, of the last try (entry {last_try})\n{}",
        w.excerpt(20)
    );
}

#[then(
    regex = r"^the host had held back its answer to that purchase, and had not answered when the reversal came$"
)]
async fn late_answer_not_before_reversal(w: &mut PosWorld) {
    let stan = last_purchase_stan(w);
    let e = w.journal();
    let delayed = host_decisions(&e).into_iter().any(|d| {
        d.get("mti").and_then(Value::as_str) == Some("0200")
            && d.get("stan").and_then(Value::as_str) == Some(stan.as_str())
            && d.get("actions").and_then(Value::as_array).is_some_and(|a| {
                a.iter()
                    .any(|x| x.as_str().is_some_and(|t| t.starts_with("delay")))
            })
    });
    assert!(
        delayed,
        "the host answered the purchase (STAN {stan}) without a delay: nothing was late\n{}",
        w.excerpt(30)
    );
    let reversal_at = host_frames(&e, "in")
        .into_iter()
        .find(|(_, f)| reverses(f, &stan))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no reversal of STAN {stan} at the host\n{}", w.excerpt(20)));
    let answered_before = host_frames(&e, "out")
        .into_iter()
        .any(|(i, a)| i < reversal_at && mti(&a) == "0210" && field(&a, 11) == Some(stan.as_str()));
    assert!(
        !answered_before,
        "the host had answered the purchase (STAN {stan}) before the reversal came: the \
         terminal reversed an answered sale\n{}",
        w.excerpt(30)
    );
}

#[then(regex = r#"^after the restart the terminal shows "([^"]+)" again$"#)]
async fn shows_after_restart(w: &mut PosWorld, text: String) {
    w.wait_for(
        WAIT,
        &format!("\"{text}\" after the power came back"),
        |e| {
            let restored = e
                .iter()
                .rposition(|x| link(x) == "terminal" && kind(x) == "power-restored")?;
            displayed(e.get(restored..).unwrap_or(&[]))
                .contains(&text)
                .then_some(())
        },
    )
    .await;
}

#[then(
    regex = r"^the host acknowledged the reversal of that purchase only after the power came back$"
)]
async fn reversal_after_power(w: &mut PosWorld) {
    let stan = last_purchase_stan(w);
    let restored = w
        .wait_for(WAIT, "the terminal's power coming back", |e| {
            e.iter()
                .rposition(|x| link(x) == "terminal" && kind(x) == "power-restored")
        })
        .await;
    let acks = w
        .wait_for(
            WAIT,
            &format!("the host acknowledging the reversal of STAN {stan}"),
            |e| {
                let own: Vec<String> = host_frames(e, "in")
                    .into_iter()
                    .filter(|(_, f)| reverses(f, &stan))
                    .filter_map(|(_, f)| field(&f, 11).map(str::to_owned))
                    .collect();
                let acks: Vec<usize> = host_frames(e, "out")
                    .into_iter()
                    .filter(|(_, a)| {
                        mti(a) == "0410" && field(a, 11).is_some_and(|s| own.iter().any(|o| o == s))
                    })
                    .map(|(i, _)| i)
                    .collect();
                (!acks.is_empty()).then_some(acks)
            },
        )
        .await;
    assert!(
        acks.iter().all(|i| *i > restored),
        "the host acknowledged the reversal of STAN {stan} at entries {acks:?}, before the \
         power came back (entry {restored}): nothing was left to survive the power cut\n{}",
        w.excerpt(30)
    );
}

// ---- the printer --------------------------------------------------------------------

#[then(expr = "the printer printed the held receipt showing {string}")]
async fn held_receipt(w: &mut PosWorld, text: String) {
    let mark = w.mark;
    w.wait_for(WAIT, &format!("a whole receipt showing \"{text}\""), |e| {
        printed(since(e, mark))
            .into_iter()
            .find(|r| !r.incomplete && r.text().contains(&text) && r.text().contains("COPY"))
    })
    .await;
}

#[then(regex = r#"^both held copies were printed, each showing "([^"]+)"$"#)]
async fn held_copies(w: &mut PosWorld, text: String) {
    let mark = w.mark;
    for copy in ["MERCHANT COPY", "CUSTOMER COPY"] {
        let r = w
            .wait_for(WAIT, &format!("the held {copy}"), |e| {
                printed(since(e, mark))
                    .into_iter()
                    .find(|r| r.text().contains(copy))
            })
            .await;
        assert!(
            !r.incomplete && r.text().contains(&text),
            "the {copy} printed after the fault was cleared is incomplete or lacks \"{text}\":\n{}",
            r.text()
        );
    }
}

#[then(regex = r"^no whole receipt was printed yet$")]
async fn nothing_whole_yet(w: &mut PosWorld) {
    let whole: Vec<String> = printed(&w.journal())
        .into_iter()
        .filter(|r| !r.incomplete && r.text().contains("COPY"))
        .map(|r| r.text())
        .collect();
    assert!(
        whole.is_empty(),
        "the printer printed {} whole receipt(s) while it had a fault:\n{}",
        whole.len(),
        whole.join("\n---\n")
    );
}

#[then(regex = r"^the first receipt stopped after (\d+) lines$")]
async fn cut_short(w: &mut PosWorld, n: usize) {
    let all = printed(&w.journal());
    let first = all
        .first()
        .unwrap_or_else(|| panic!("nothing was printed\n{}", w.excerpt(20)));
    assert!(
        first.incomplete && first.lines.len() == n,
        "the first receipt: incomplete {}, {} lines, expected an incomplete receipt of {n} lines:\n{}",
        first.incomplete,
        first.lines.len(),
        first.text()
    );
}

#[then(regex = r#"^the reprinted merchant copy is whole, from "([^"]+)" to "([^"]+)"$"#)]
async fn reprinted_whole(w: &mut PosWorld, head: String, tail: String) {
    let mark = w.mark;
    let r = w
        .wait_for(WAIT, "the reprinted merchant copy", |e| {
            printed(since(e, mark))
                .into_iter()
                .find(|r| r.text().contains("MERCHANT COPY"))
        })
        .await;
    let words = r.words();
    let first = words.iter().find(|l| !l.is_empty()).cloned();
    let last = words.iter().rev().find(|l| !l.is_empty()).cloned();
    assert!(
        !r.incomplete
            && first.as_deref() == Some(head.as_str())
            && last.as_deref() == Some(tail.as_str()),
        "the reprinted merchant copy (incomplete {}) runs from {first:?} to {last:?}:\n{}",
        r.incomplete,
        r.text()
    );
}

#[then(regex = r"^every receipt printed so far was printed once$")]
async fn printed_once(w: &mut PosWorld) {
    let whole: Vec<String> = receipts(&w.journal());
    let mut copies: Vec<&String> = whole.iter().filter(|r| r.contains("COPY")).collect();
    let n = copies.len();
    copies.sort();
    copies.dedup();
    assert_eq!(copies.len(), n, "a receipt was printed twice");
}

#[then(
    regex = r#"^the held receipts came out in the order of the sales: "([^"]+)" before "([^"]+)"$"#
)]
async fn held_in_order(w: &mut PosWorld, first: String, second: String) {
    w.settle().await;
    let mark = w.mark;
    let all = printed(since(&w.journal(), mark));
    let at = |text: &str| {
        all.iter()
            .enumerate()
            .filter(|(_, r)| !r.incomplete && r.text().contains(text))
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    let (a, b) = (at(&first), at(&second));
    assert!(
        !a.is_empty() && !b.is_empty() && a.iter().max() < b.iter().min(),
        "receipts showing \"{first}\" at {a:?}, showing \"{second}\" at {b:?} (in printing order)"
    );
}
