//! The money-safety invariants, in one place: what "nobody was charged twice" means.
//!
//! The books are read from the two sides a merchant and a cardholder can see: the host's
//! journal (what it approved and what reversals it acknowledged) and the cash register's
//! outcomes (what the register was told). A terminal is money-safe when:
//! - no purchase STAN stands approved twice at the host;
//! - the purchases the host charged (approved, not reversed) are no more than the
//!   purchases the register was told were approved, amount by amount (an approval the
//!   register never heard of must have been reversed; one cash-register request never
//!   gets two approvals);
//! - every reversal the terminal sent was eventually acknowledged by the host;
//! - a close of day the register was told succeeded ended with the host agreeing on the
//!   totals (its last 0500 answered 00).
//!
//! [`check`] is pure (entries and outcomes in, violations out); [`wait_until_safe`] gives
//! the terminal's queued reversals the time their retries take, then checks. The step
//! "nobody was charged twice" and `poslab chaos` both use them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use poslab_zvt::ecr::{EcrCommand, Outcome, Status};
use serde_json::Value;

use super::steps::{field, kind, link, mti};
use super::world::PosWorld;

/// One broken invariant, said so that a reader knows which money went where.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "invariant", rename_all = "kebab-case")]
pub enum Violation {
    /// The host approved the same purchase STAN twice and neither was reversed.
    DuplicateStan { stan: u32 },
    /// The host charged more purchases (or other amounts) than the register was told of.
    ChargedNotApproved {
        /// STAN and amount (minor units) of each purchase the host still charges.
        charged: Vec<(u32, u64)>,
        /// Amounts of the purchases the register was told were approved.
        approved: Vec<u64>,
    },
    /// The terminal sent a reversal of this STAN and the host never acknowledged one.
    ReversalNotAcknowledged { original_stan: u32 },
    /// The register was told the day closed, but the host's last settlement answer was
    /// not 00 (or there was none).
    TotalsDisagree { host_code: Option<String> },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::DuplicateStan { stan } => {
                write!(f, "STAN {stan} stands approved twice at the host")
            }
            Violation::ChargedNotApproved { charged, approved } => write!(
                f,
                "the host charged {} purchase(s) {:?} (STAN, amount) but the register was told of {} approval(s) {:?}",
                charged.len(),
                charged,
                approved.len(),
                approved
            ),
            Violation::ReversalNotAcknowledged { original_stan } => write!(
                f,
                "the terminal sent a reversal of STAN {original_stan} that the host never acknowledged"
            ),
            Violation::TotalsDisagree { host_code } => write!(
                f,
                "the register was told the day closed, the host's last settlement answer was {}",
                host_code.as_deref().unwrap_or("none")
            ),
        }
    }
}

/// A purchase the host approved: its STAN, amount and whether it was reversed since.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostBooks {
    /// STAN → amounts of approved purchases (0200, processing code 00…), in order.
    pub approved: BTreeMap<u32, Vec<u64>>,
    /// Original STANs whose reversal (0400/0401) the host acknowledged.
    pub reversed: BTreeSet<u32>,
    /// Original STANs of every reversal the host received.
    pub reversal_attempts: BTreeSet<u32>,
    /// The code of the last settlement (0500) the host answered.
    pub last_settlement: Option<String>,
}

fn number(text: Option<&str>) -> Option<u64> {
    text.and_then(|t| t.trim().parse().ok())
}

/// Reads the host's side of the books from the journal: its frames in and decisions.
pub fn host_books(entries: &[Value]) -> HostBooks {
    let mut books = HostBooks::default();
    // the last request of each connection, for the decision that follows it
    let mut last_in: BTreeMap<u64, &Value> = BTreeMap::new();
    for e in entries.iter().filter(|e| link(e) == "host") {
        let conn = e.get("conn").and_then(Value::as_u64).unwrap_or(0);
        match kind(e) {
            "frame" if e.get("dir").and_then(Value::as_str) == Some("in") => {
                last_in.insert(conn, e);
            }
            "decision" => {
                let code = e.get("code").and_then(Value::as_str).unwrap_or("");
                let approved = matches!(code, "00" | "08" | "10" | "11" | "16");
                let request = last_in.remove(&conn);
                let m = mti(e);
                match m {
                    "0200" => {
                        let Some(req) = request else { continue };
                        let purchase = field(req, 3).is_some_and(|pc| pc.starts_with("00"));
                        let stan = number(field(req, 11));
                        if let (true, true, Some(stan)) = (approved, purchase, stan) {
                            let amount = number(field(req, 4)).unwrap_or(0);
                            books.approved.entry(stan as u32).or_default().push(amount);
                        }
                    }
                    "0400" | "0401" => {
                        let original = request
                            .and_then(|r| field(r, 90))
                            .and_then(|d| d.get(4..10))
                            .and_then(|s| s.parse::<u32>().ok());
                        if let Some(stan) = original {
                            books.reversal_attempts.insert(stan);
                            // 25: nothing to reverse; 12: not reversible — both end the retries
                            if matches!(code, "00" | "25" | "12") {
                                books.reversed.insert(stan);
                            }
                        }
                    }
                    "0500" => books.last_settlement = Some(code.to_string()),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    books
}

/// Checks the invariants on a scenario's journal and the cash register's outcomes.
pub fn check(entries: &[Value], outcomes: &[Outcome]) -> Vec<Violation> {
    let books = host_books(entries);
    let mut out = Vec::new();
    let mut charged: Vec<(u32, u64)> = Vec::new();
    for (stan, amounts) in &books.approved {
        if books.reversed.contains(stan) {
            continue;
        }
        if amounts.len() > 1 {
            out.push(Violation::DuplicateStan { stan: *stan });
        }
        charged.extend(amounts.iter().map(|a| (*stan, *a)));
    }
    let mut approved: Vec<u64> = outcomes
        .iter()
        .filter(|o| o.status == Status::Success && matches!(o.command, EcrCommand::Purchase { .. }))
        .map(|o| match o.command {
            EcrCommand::Purchase { amount, .. } => o.amount.unwrap_or(amount),
            _ => 0,
        })
        .collect();
    approved.sort_unstable();
    // every charged amount must be matched by an approval the register was told of
    let mut left = approved.clone();
    let unmatched = charged
        .iter()
        .any(|(_, a)| match left.iter().position(|x| x == a) {
            Some(i) => {
                left.remove(i);
                false
            }
            None => true,
        });
    if unmatched {
        out.push(Violation::ChargedNotApproved { charged, approved });
    }
    for stan in books.reversal_attempts.difference(&books.reversed) {
        out.push(Violation::ReversalNotAcknowledged {
            original_stan: *stan,
        });
    }
    let closed = outcomes
        .iter()
        .rev()
        .find(|o| matches!(o.command, EcrCommand::EndOfDay))
        .is_some_and(|o| o.status == Status::Success);
    if closed && books.last_settlement.as_deref() != Some("00") {
        out.push(Violation::TotalsDisagree {
            host_code: books.last_settlement.clone(),
        });
    }
    out
}

/// Waits (up to `within`, free in simulated time) for the books to come right — a
/// reversal the terminal still has queued is on its way — and returns what is still wrong.
pub async fn wait_until_safe(w: &mut PosWorld, within: Duration) -> Vec<Violation> {
    let deadline = tokio::time::Instant::now() + within;
    let mut checked = None;
    let mut violations = Vec::new();
    loop {
        // the books change only when the journal grows
        let len = w.journal_len();
        if checked != Some(len) {
            checked = Some(len);
            violations = check(&w.journal(), &w.outcomes);
        }
        if violations.is_empty() || tokio::time::Instant::now() >= deadline {
            return violations;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(conn: u64, m: &str, fields: Value) -> Value {
        json!({"link": "host", "kind": "frame", "dir": "in", "conn": conn, "mti": m, "message": fields})
    }

    fn decision(conn: u64, m: &str, code: &str) -> Value {
        json!({"link": "host", "kind": "decision", "conn": conn, "mti": m, "code": code})
    }

    fn purchase(conn: u64, stan: u32, amount: u64, code: &str) -> Vec<Value> {
        vec![
            frame(
                conn,
                "0200",
                json!({"3": "000000", "4": format!("{amount:012}"), "11": format!("{stan:06}")}),
            ),
            decision(conn, "0200", code),
        ]
    }

    fn reversal(conn: u64, original: u32, code: &str) -> Vec<Value> {
        vec![
            frame(
                conn,
                "0400",
                json!({"11": "000099", "90": format!("0200{original:06}0000000000000000000000000000")}),
            ),
            decision(conn, "0400", code),
        ]
    }

    fn outcome(command: EcrCommand, status: Status) -> Outcome {
        Outcome {
            command,
            status,
            result_code: None,
            result_text: None,
            amount: None,
            currency: None,
            pan: None,
            card_name: None,
            trace: None,
            receipt: None,
            terminal_id: None,
            auth_code: None,
            additional_text: None,
            intermediate: Vec::new(),
            receipt_lines: Vec::new(),
            status_information: Vec::new(),
            completion: None,
            recovered: false,
            resent: false,
            notes: Vec::new(),
        }
    }

    fn approved(amount: u64) -> Outcome {
        let mut o = outcome(
            EcrCommand::Purchase {
                amount,
                currency: None,
            },
            Status::Success,
        );
        o.amount = Some(amount);
        o
    }

    fn failed(amount: u64) -> Outcome {
        let mut o = approved(amount);
        o.status = Status::Failed;
        o
    }

    #[test]
    fn an_approved_purchase_the_register_knows_is_fine() {
        let j = purchase(1, 5, 1200, "00");
        assert_eq!(check(&j, &[approved(1200)]), vec![]);
    }

    #[test]
    fn an_approval_the_register_was_told_failed_must_be_reversed() {
        let mut j = purchase(1, 5, 1200, "00");
        let v = check(&j, &[failed(1200)]);
        assert!(
            matches!(&v[..], [Violation::ChargedNotApproved { charged, .. }] if charged == &vec![(5, 1200)]),
            "{v:?}"
        );
        j.extend(reversal(2, 5, "00"));
        assert_eq!(check(&j, &[failed(1200)]), vec![]);
    }

    #[test]
    fn two_approvals_for_one_request_are_a_double_charge() {
        let mut j = purchase(1, 5, 1200, "00");
        j.extend(purchase(2, 6, 1200, "00"));
        let v = check(&j, &[approved(1200)]);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].to_string().contains("charged 2 purchase(s)"),
            "{}",
            v[0]
        );
        // the same STAN approved twice
        let mut j = purchase(1, 7, 500, "00");
        j.extend(purchase(1, 7, 500, "00"));
        let v = check(&j, &[approved(500), approved(500)]);
        assert_eq!(v, vec![Violation::DuplicateStan { stan: 7 }]);
    }

    #[test]
    fn a_decline_charges_nothing_and_a_wrong_amount_is_caught() {
        let j = purchase(1, 5, 1200, "51");
        assert_eq!(check(&j, &[failed(1200)]), vec![]);
        let j = purchase(1, 5, 1300, "00");
        assert_eq!(check(&j, &[approved(1200)]).len(), 1);
    }

    #[test]
    fn a_reversal_never_acknowledged_is_a_violation() {
        let mut j = purchase(1, 5, 1200, "00");
        j.extend(reversal(2, 5, "96"));
        let v = check(&j, &[failed(1200)]);
        assert!(
            v.contains(&Violation::ReversalNotAcknowledged { original_stan: 5 }),
            "{v:?}"
        );
        j.extend(reversal(3, 5, "00"));
        assert_eq!(check(&j, &[failed(1200)]), vec![]);
    }

    #[test]
    fn a_closed_day_needs_the_hosts_agreement() {
        let mut eod = outcome(EcrCommand::EndOfDay, Status::Success);
        let j = vec![frame(1, "0500", json!({})), decision(1, "0500", "95")];
        assert_eq!(
            check(&j, std::slice::from_ref(&eod)),
            vec![Violation::TotalsDisagree {
                host_code: Some("95".into())
            }]
        );
        let mut j2 = j.clone();
        j2.extend([frame(1, "0500", json!({})), decision(1, "0500", "00")]);
        assert_eq!(check(&j2, std::slice::from_ref(&eod)), vec![]);
        // a close of day the register knows failed makes no claim
        eod.status = Status::Failed;
        assert_eq!(check(&j, &[eod]), vec![]);
    }
}
