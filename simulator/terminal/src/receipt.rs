//! What the terminal prints: transaction receipts (merchant and customer copies), the X
//! and Z reports, the commissioning test page; and the ESC/POS bytes that print them.
//!
//! Receipts show the PAN masked (first 6, last 4), never a track, PIN block or key.

use std::collections::BTreeMap;

use crate::params::Params;
use crate::txn::{CardKind, Outcome, Totals, TxnKind, TxnRecord};

/// Width of the paper in characters (80 mm paper, font A).
pub const WIDTH: usize = 42;

/// One printed line and how it is printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub text: String,
    pub bold: bool,
    pub center: bool,
    pub double: bool,
}

impl Line {
    fn plain(text: impl Into<String>) -> Line {
        Line {
            text: text.into(),
            bold: false,
            center: false,
            double: false,
        }
    }
    fn center(text: impl Into<String>) -> Line {
        Line {
            center: true,
            ..Line::plain(text)
        }
    }
    fn bold(mut self) -> Line {
        self.bold = true;
        self
    }
    fn double(mut self) -> Line {
        self.double = true;
        self
    }
}

/// A label on the left, a value on the right, on one line.
fn pair(label: &str, value: &str) -> Line {
    let room = WIDTH.saturating_sub(label.len() + 1);
    Line::plain(format!("{label} {value:>room$}"))
}

/// Which copy of a receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    Merchant,
    Customer,
}

impl Copy {
    pub fn label(self) -> &'static str {
        match self {
            Copy::Merchant => "MERCHANT COPY",
            Copy::Customer => "CUSTOMER COPY",
        }
    }
}

fn header(params: &Params, out: &mut Vec<Line>) {
    if params.training {
        out.push(Line::center("*** TRAINING - NOT A PAYMENT ***").bold());
    }
    out.push(Line::center(params.merchant_name.clone()).bold());
    for l in &params.merchant_address {
        out.push(Line::center(l.clone()));
    }
    for l in &params.receipt_header {
        out.push(Line::center(l.clone()));
    }
    out.push(pair("TID", &params.tid));
    // grouped, so that no reader mistakes the merchant id for a card number
    out.push(pair("MID", &grouped(&params.mid)));
}

/// `text` in groups of four characters: a long id (MID, RRN) never reads as a card number.
fn grouped(text: &str) -> String {
    let groups: Vec<String> = text
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    groups.join(" ")
}

/// The result line of a transaction.
pub fn result_text(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Approved { .. } => "APPROVED",
        Outcome::Declined { code } => decline_text(code),
        Outcome::NoAnswer => "NO ANSWER - NOT CHARGED",
        Outcome::Refused { .. } => "DECLINED BY CARD",
        Outcome::Cancelled => "CANCELLED",
    }
}

/// What the terminal shows for a host response code.
pub fn decline_text(code: &str) -> &'static str {
    match code {
        "00" => "APPROVED",
        "03" => "INVALID MERCHANT",
        "05" => "DECLINED",
        "14" => "INVALID CARD",
        "51" => "INSUFFICIENT FUNDS",
        "54" => "EXPIRED CARD",
        "55" => "WRONG PIN",
        "57" | "58" => "NOT PERMITTED",
        "59" => "DECLINED - SUSPECTED FRAUD",
        "61" => "AMOUNT LIMIT EXCEEDED",
        "75" => "PIN TRIES EXCEEDED",
        "91" => "ISSUER UNAVAILABLE",
        "94" => "DUPLICATE TRANSACTION",
        "96" => "SYSTEM ERROR",
        "A0" => "SECURITY ERROR",
        _ => "DECLINED",
    }
}

/// A transaction receipt.
pub fn transaction(record: &TxnRecord, copy: Copy, params: &Params) -> Vec<Line> {
    let mut out = Vec::new();
    header(params, &mut out);
    out.push(Line::plain(record.at.receipt_text()));
    out.push(Line::center(record.kind.label()).bold().double());
    if let Some(label) = &record.card_label {
        out.push(Line::plain(label.clone()));
    }
    if let Some(pan) = &record.pan_masked {
        out.push(pair("CARD", pan));
    }
    out.push(pair("ENTRY", record.entry.label()));
    let sign = if record.kind == TxnKind::Refund {
        "-"
    } else {
        ""
    };
    out.push(
        pair(
            "AMOUNT",
            &format!(
                "{} {sign}{}",
                params.currency_alpha,
                params.format_amount(record.amount)
            ),
        )
        .bold(),
    );
    out.push(pair("RECEIPT", &format!("{:04}", record.receipt)));
    out.push(pair("TRACE", &format!("{:06}", record.stan)));
    if let Some(rrn) = &record.rrn {
        out.push(pair("RRN", &grouped(rrn)));
    }
    if let Some(code) = &record.auth_code {
        out.push(pair("AUTH CODE", code));
    }
    if let Some(code) = record.outcome.code() {
        out.push(pair("RESPONSE", code));
    }
    out.push(Line::center(result_text(&record.outcome)).bold().double());
    if record.outcome.approved()
        && record.cvm.as_deref() == Some("SIGNATURE")
        && copy == Copy::Merchant
    {
        out.push(Line::plain(""));
        out.push(Line::plain("SIGNATURE ______________________________"));
    }
    if record.outcome.approved() && record.cvm.as_deref() == Some("PIN") {
        out.push(Line::center("PIN VERIFIED"));
    }
    if record.training {
        out.push(Line::center("TRAINING - NO MONEY MOVED").bold());
    }
    for l in &params.receipt_footer {
        out.push(Line::center(l.clone()));
    }
    out.push(Line::center(copy.label()));
    out
}

/// Per card kind: (count, amount, fee in minor units).
fn by_kind(records: &[TxnRecord], params: &Params) -> BTreeMap<CardKind, (u64, u64, u64)> {
    let mut m: BTreeMap<CardKind, (u64, u64, u64)> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.settles() && r.kind != TxnKind::Refund)
    {
        let kind = r.card_kind.unwrap_or(CardKind::Credit);
        let e = m.entry(kind).or_default();
        e.0 += 1;
        e.1 += r.amount;
        e.2 += fee(r.amount, kind, params);
    }
    m
}

/// The merchant's fee for one sale, rounded half up to the minor unit.
pub fn fee(amount: u64, kind: CardKind, params: &Params) -> u64 {
    let rate = match kind {
        CardKind::Debit => params.fees.debit,
        CardKind::Credit => params.fees.credit,
        CardKind::Foreign => params.fees.foreign,
    };
    // basis points of a basis point, in integers: rate has at most 4 decimals
    let micro = (rate * 10_000.0).round() as u64; // percent * 10^4
    (amount * micro + 500_000) / 1_000_000
}

/// The X (interim, `closing` false) or Z (closing) report.
pub fn report(
    records: &[TxnRecord],
    closing: bool,
    params: &Params,
    at: &crate::txn::Stamp,
) -> Vec<Line> {
    let mut out = Vec::new();
    header(params, &mut out);
    out.push(Line::plain(at.receipt_text()));
    out.push(
        Line::center(if closing {
            "Z REPORT - CLOSE OF DAY"
        } else {
            "X REPORT"
        })
        .bold()
        .double(),
    );
    let totals = Totals::of(records);
    let money = |minor: u64| format!("{} {}", params.currency_alpha, params.format_amount(minor));
    out.push(pair("SALES", &totals.debits.to_string()));
    out.push(pair("SALES TOTAL", &money(totals.debits_amount)));
    out.push(pair("REFUNDS", &totals.credits.to_string()));
    out.push(pair("REFUNDS TOTAL", &money(totals.credits_amount)));
    let net = totals.debits_amount as i128 - totals.credits_amount as i128;
    out.push(
        pair(
            "NET",
            &format!(
                "{} {}{}",
                params.currency_alpha,
                if net < 0 { "-" } else { "" },
                params.format_amount(net.unsigned_abs() as u64)
            ),
        )
        .bold(),
    );
    if let Some(average) = totals.debits_amount.checked_div(totals.debits) {
        out.push(pair("AVERAGE TICKET", &money(average)));
    }
    let reversed = records
        .iter()
        .filter(|r| r.state == crate::txn::TxnState::Reversed)
        .count();
    let voided = records
        .iter()
        .filter(|r| r.state == crate::txn::TxnState::Voided)
        .count();
    let declined = records
        .iter()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::Declined { .. } | Outcome::Refused { .. }
            )
        })
        .count();
    out.push(pair("VOIDED", &voided.to_string()));
    out.push(pair("REVERSED", &reversed.to_string()));
    out.push(pair("DECLINED", &declined.to_string()));
    out.push(Line::plain("BY CARD TYPE"));
    let mut fees = 0;
    for (kind, (n, amount, fee)) in by_kind(records, params) {
        out.push(pair(&format!("{} {n}", kind.label()), &money(amount)));
        out.push(pair(&format!("  FEE {}", kind.label()), &money(fee)));
        fees += fee;
    }
    out.push(pair("FEES TOTAL", &money(fees)).bold());
    if records.iter().any(|r| r.training) {
        out.push(pair(
            "TRAINING (NOT COUNTED)",
            &records.iter().filter(|r| r.training).count().to_string(),
        ));
    }
    if closing {
        out.push(Line::center("BATCH CLOSED"));
    }
    out
}

/// The commissioning test page.
pub fn test_page(params: &Params, checks: &[(String, bool)], version: &str) -> Vec<Line> {
    let mut out = Vec::new();
    header(params, &mut out);
    out.push(Line::center("TEST PAGE").bold().double());
    out.push(pair("SOFTWARE", version));
    out.push(pair("PARAMETERS", &params.version));
    for (name, ok) in checks {
        out.push(pair(name, if *ok { "OK" } else { "FAILED" }));
    }
    out.push(Line::plain("0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
    out
}

/// Plain text of a receipt, as a person reads it.
pub fn text(lines: &[Line]) -> String {
    let mut s = String::new();
    for l in lines {
        if l.center {
            let pad = WIDTH.saturating_sub(l.text.chars().count()) / 2;
            s.push_str(&" ".repeat(pad));
        }
        s.push_str(&l.text);
        s.push('\n');
    }
    s
}

/// ESC/POS bytes: initialise, the lines with their styles, feed and a partial cut.
pub fn escpos(lines: &[Line]) -> Vec<u8> {
    let mut out = vec![0x1B, 0x40]; // ESC @
    for l in lines {
        out.extend_from_slice(&[0x1B, 0x61, u8::from(l.center)]); // ESC a n
        out.extend_from_slice(&[0x1B, 0x45, u8::from(l.bold)]); // ESC E n
        out.extend_from_slice(&[0x1D, 0x21, if l.double { 0x11 } else { 0x00 }]); // GS ! n
        out.extend(l.text.chars().map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c as u8
            } else {
                b'?'
            }
        }));
        out.push(b'\n');
    }
    out.extend_from_slice(&[0x1B, 0x64, 0x03]); // ESC d 3: feed 3 lines
    out.extend_from_slice(&[0x1D, 0x56, 0x01]); // GS V 1: partial cut
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{Entry, Stamp, TxnState};

    fn record(kind: TxnKind, amount: u64, card: CardKind) -> TxnRecord {
        TxnRecord {
            receipt: 1,
            stan: 12,
            kind,
            amount,
            currency: 978,
            pan_masked: Some("476173******0010".into()),
            card_label: Some("VISA CREDIT".into()),
            card_kind: Some(card),
            entry: Entry::Chip,
            outcome: Outcome::Approved { code: "00".into() },
            auth_code: Some("A1B2C3".into()),
            rrn: Some("632700000001".into()),
            at: Stamp::from_unix(1_795_411_455),
            training: false,
            state: TxnState::Standing,
            cvm: Some("PIN".into()),
            original: None,
        }
    }

    #[test]
    fn a_receipt_shows_the_masked_card_amount_and_result() {
        let t = text(&transaction(
            &record(TxnKind::Purchase, 4250, CardKind::Credit),
            Copy::Customer,
            &Params::default(),
        ));
        assert!(t.contains("476173******0010"), "{t}");
        assert!(t.contains("EUR 42.50"), "{t}");
        assert!(t.contains("APPROVED"));
        assert!(t.contains("CUSTOMER COPY"));
        assert!(!t.contains("TRAINING"));
        let training = Params {
            training: true,
            ..Params::default()
        };
        let t = text(&transaction(
            &record(TxnKind::Purchase, 4250, CardKind::Credit),
            Copy::Merchant,
            &training,
        ));
        assert!(t.contains("TRAINING"), "{t}");
    }

    #[test]
    fn no_receipt_line_holds_twelve_digits_in_a_row() {
        // a 12-digit RRN or 15-digit MID in one run reads like a card number
        for copy in [Copy::Merchant, Copy::Customer] {
            let t = text(&transaction(
                &record(TxnKind::Purchase, 4250, CardKind::Credit),
                copy,
                &Params::default(),
            ));
            assert!(t.contains("6327 0000 0001"), "{t}");
            let mut run = 0;
            for c in t.chars() {
                run = if c.is_ascii_digit() { run + 1 } else { 0 };
                assert!(run < 12, "12 digits in a row:\n{t}");
            }
        }
    }

    #[test]
    fn fees_per_card_kind_and_report_totals() {
        let p = Params::default();
        assert_eq!(fee(10_000, CardKind::Credit, &p), 90);
        assert_eq!(fee(10_000, CardKind::Debit, &p), 30);
        assert_eq!(fee(333, CardKind::Foreign, &p), 6); // 6.327 -> 6
        let recs = vec![
            record(TxnKind::Purchase, 10_000, CardKind::Credit),
            record(TxnKind::Purchase, 5_000, CardKind::Debit),
            record(TxnKind::Refund, 2_000, CardKind::Credit),
        ];
        let t = text(&report(&recs, true, &p, &Stamp::default()));
        assert!(t.contains("Z REPORT"), "{t}");
        assert!(t.contains("EUR 130.00"), "{t}");
        assert!(t.contains("FEE CREDIT"), "{t}");
        assert!(t.contains("EUR 0.90"), "{t}");
        assert!(t.contains("EUR 1.05"), "{t}"); // fees total 0.90 + 0.15
    }

    #[test]
    fn escpos_bytes_start_with_init_and_end_with_a_cut() {
        let b = escpos(&[Line::plain("HELLO")]);
        assert_eq!(&b[..2], &[0x1B, 0x40]);
        assert_eq!(&b[b.len() - 3..], &[0x1D, 0x56, 0x01]);
    }
}
