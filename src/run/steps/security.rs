//! Steps for payment security, seen from outside the terminal: offline data
//! authentication (SDA, DDA, CDA) and the card's own cardholder verification (enciphered
//! offline PIN) as the chip data (DE 55: AIP `82`, TVR `95`, CVM results `9F34`) the
//! host received shows them, and the host's PIN translation (its decision notes).

use cucumber::{then, when};
use poslab_terminal::keypad::Key;
use serde_json::Value;

use super::{displayed, host_decisions, host_requests, mti};
use crate::run::world::{PosWorld, WAIT};

/// The chip data (DE 55) of the last 0100/0200 the host received since the sale began.
fn chip_data(entries: &[Value]) -> Option<Value> {
    host_requests(entries)
        .into_iter()
        .rev()
        .find(|f| matches!(mti(f), "0100" | "0200"))
        .and_then(|f| f.get("message")?.get("55").cloned())
}

fn tag<'a>(de55: &'a Value, t: &str) -> &'a str {
    de55.get(t).and_then(Value::as_str).unwrap_or("")
}

/// The method a terminal chooses from the AIP (EMV Book 3 §10.3: CDA, DDA, SDA).
fn method_of(aip: &str) -> &'static str {
    let b1 = u8::from_str_radix(aip.get(..2).unwrap_or("00"), 16).unwrap_or(0);
    if b1 & 0x01 != 0 {
        "CDA"
    } else if b1 & 0x20 != 0 {
        "DDA"
    } else if b1 & 0x40 != 0 {
        "SDA"
    } else {
        "none"
    }
}

/// TVR byte 1: the failure bit of each method.
fn failed_bit(method: &str) -> u8 {
    match method {
        "SDA" => 0x40,
        "DDA" => 0x08,
        "CDA" => 0x04,
        _ => 0x80,
    }
}

#[then(
    regex = r#"^offline data authentication by (SDA|DDA|CDA) (succeeded|failed) and the host saw TVR "([0-9A-F]{10})"$"#
)]
async fn oda_result(w: &mut PosWorld, method: String, result: String, tvr: String) {
    let mark = w.mark;
    let de55 = w
        .wait_for(WAIT, "a 0100/0200 with chip data at the host", |e| {
            chip_data(e.get(mark..).unwrap_or(&[]))
        })
        .await;
    let (aip, seen) = (tag(&de55, "82"), tag(&de55, "95"));
    let b1 = u8::from_str_radix(seen.get(..2).unwrap_or("00"), 16).unwrap_or(0);
    let failed = b1 & failed_bit(&method) != 0;
    assert!(
        method_of(aip) == method && seen == tvr && failed == (result == "failed"),
        "expected {method} to have {result} with TVR {tvr}; the host saw AIP {aip} ({}) and TVR {seen}\n{}",
        method_of(aip),
        w.excerpt(20)
    );
    if method == "CDA" {
        // the cryptogram came out of the card's signature and reached the host
        assert!(!tag(&de55, "9F26").is_empty(), "no 9F26 in {de55}");
    }
}

#[then(expr = "the host saw the CVM result {string}")]
async fn cvm_result(w: &mut PosWorld, expected: String) {
    // CVM results (9F34): method, condition, result (EMV Book 4 Annex A4)
    let code = match expected.as_str() {
        "enciphered PIN verified" => "040302",
        "enciphered PIN failed" => "040301",
        "online PIN" => "420300",
        other => panic!("no CVM result named {other:?}"),
    };
    let mark = w.mark;
    let de55 = w
        .wait_for(WAIT, "a 0100/0200 with chip data at the host", |e| {
            chip_data(e.get(mark..).unwrap_or(&[]))
        })
        .await;
    assert_eq!(
        tag(&de55, "9F34"),
        code,
        "expected CVM results {code} ({expected}) in the chip data {de55}\n{}",
        w.excerpt(20)
    );
}

#[when(expr = "the cardholder enters PIN {string} again")]
async fn pin_again(w: &mut PosWorld, pin: String) {
    // the prompt that follows the last "WRONG PIN …" of this sale
    let mark = w.mark;
    w.wait_for(WAIT, "the terminal asking for the PIN again", |e| {
        let shown = displayed(e.get(mark..).unwrap_or(&[]));
        let wrong = shown.iter().rposition(|t| t.starts_with("WRONG PIN"))?;
        shown[wrong..]
            .iter()
            .any(|t| t == "ENTER PIN")
            .then_some(())
    })
    .await;
    let b = w.bench().await;
    for d in pin.bytes() {
        b.press(Key::Digit(d - b'0'));
    }
    b.press(Key::Enter);
}

#[then(
    regex = r#"^the host translated the PIN block into the issuer zone "(iso-[034])" under key check value "([0-9A-F]{6})"$"#
)]
async fn pin_translated(w: &mut PosWorld, format: String, kcv: String) {
    let mark = w.mark;
    let note = w
        .wait_for(WAIT, "the host's PIN translation", |e| {
            host_decisions(e.get(mark..).unwrap_or(&[]))
                .into_iter()
                .flat_map(|d| {
                    d.get("notes")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|n| n.as_str().map(str::to_owned))
                .find(|n| n.starts_with("pin translated"))
        })
        .await;
    assert!(
        note.ends_with(&format!("-> {format} (kcv {kcv})")),
        "expected a translation to {format} under KCV {kcv}, the host noted {note:?}\n{}",
        w.excerpt(20)
    );
}
