//! The early lifecycle (domain.md stages 1 to 5): application and provisioning, keys,
//! parameters, commissioning (self test), training and go-live. Steps act through the
//! bench's emulated nodes and read the host's frames, the display and the printed receipts
//! from the journal.

use std::path::{Path, PathBuf};

use cucumber::{given, then, when};
use poslab_crypto::KeyFile;
use poslab_zvt::ecr::EcrCommand;
use serde_json::Value;

use super::{amount, displayed, field, host_answers, host_requests, mti, receipts};
use crate::run::world::{PosWorld, WAIT};

/// The network management codes (DE 70) by the name the features use.
fn network_code(name: &str) -> &'static str {
    match name {
        "sign-on" => "001",
        "key exchange" => "101",
        _ => "301", // echo test
    }
}

fn is_network(frame: &Value, code: &str) -> bool {
    (mti(frame) == "0800" || mti(frame) == "0810") && field(frame, 70) == Some(code)
}

fn at_ms(e: &Value) -> f64 {
    e.get("at_ms").and_then(Value::as_f64).unwrap_or(0.0)
}

/// A path as written in a feature: relative to the working directory, else to poslab's
/// source tree.
fn fixture_path(p: &str) -> PathBuf {
    let local = PathBuf::from(p);
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

// ---- provisioning ---------------------------------------------------------------------

#[given(expr = "the terminal is loaded with master key {string} from {string}")]
async fn load_master_key(w: &mut PosWorld, name: String, file: String) {
    let path = fixture_path(&file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("key file {}: {e}", path.display()));
    let keys = KeyFile::parse(&text).unwrap_or_else(|e| panic!("key file {file}: {e}"));
    let key = keys
        .key(&name)
        .unwrap_or_else(|e| panic!("key file {file}: {e}"))
        .clone();
    w.bench()
        .await
        .load_master_key(key)
        .await
        .unwrap_or_else(|e| panic!("loading the master key: {e:#}"));
    w.set_mark();
}

#[when(expr = "the cash register registers the terminal")]
async fn register(w: &mut PosWorld) {
    w.ecr(EcrCommand::Register {
        config: 0,
        currency: Some(978),
    })
    .await;
    w.settle().await;
}

#[when(regex = r"^the cashier tries a purchase of (\d+(?:\.\d{1,2})?) EUR$")]
async fn tries_purchase(w: &mut PosWorld, value: String) {
    w.ecr(EcrCommand::Purchase {
        amount: amount(&value),
        currency: Some(978),
    })
    .await;
    w.settle().await;
}

/// A purchase in a currency the terminal was provisioned with (not EUR: that is the
/// transactions' step).
#[when(
    regex = r"^the cashier starts a purchase of (\d+(?:\.\d{1,2})?) (CHF|GBP|USD|PLN|SEK|DKK|CZK|NOK)$"
)]
async fn purchase_in(w: &mut PosWorld, value: String, _currency: String) {
    w.ecr(EcrCommand::Purchase {
        amount: amount(&value),
        currency: None,
    })
    .await;
    let mark = w.mark;
    w.wait_for(WAIT, "the terminal asking for a card", |e| {
        displayed(e.get(mark..).unwrap_or(&[]))
            .iter()
            .any(|t| t.contains("CARD"))
            .then_some(())
    })
    .await;
}

// ---- the host's side of going live --------------------------------------------------

#[then(
    regex = r#"^the host (?:answered|refused) the (sign-on|key exchange|echo test) with response code "([0-9A-Z]{2})"$"#
)]
async fn network_answer(w: &mut PosWorld, what: String, code: String) {
    let want = network_code(&what);
    let got = w
        .wait_for(WAIT, &format!("the host's answer to the {what}"), |e| {
            host_answers(e)
                .into_iter()
                .rev()
                .find(|f| mti(f) == "0810" && field(f, 70) == Some(want))
                .map(|f| field(f, 39).unwrap_or("").to_string())
        })
        .await;
    assert_eq!(
        got,
        code,
        "the host answered the {what} (0800, DE 70 = {want}) with {got}, expected {code}\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r"^the host received exactly (\d+) (sign-on|key exchange|echo test)s?$")]
async fn network_count(w: &mut PosWorld, n: usize, what: String) {
    w.settle().await;
    let want = network_code(&what);
    let got = host_requests(&w.journal())
        .iter()
        .filter(|f| is_network(f, want))
        .count();
    assert_eq!(
        got,
        n,
        "the host received {got} × {what} (0800, DE 70 = {want}), expected {n}\n{}",
        w.excerpt(20)
    );
}

#[then(expr = "the host's key exchange answer carried the session keys")]
async fn keys_in_answer(w: &mut PosWorld) {
    let de48 = w
        .wait_for(
            WAIT,
            "the host's key exchange answer (0810, DE 70 = 101)",
            |e| {
                host_answers(e)
                    .into_iter()
                    .rev()
                    .find(|f| mti(f) == "0810" && field(f, 70) == Some("101"))
                    .map(|f| field(f, 48).unwrap_or("").to_string())
            },
        )
        .await;
    // PK + 32 hex digits of the PIN key under the TMK + its KCV, MK + the same for MAC
    let ok = de48.len() == 80
        && de48.starts_with("PK")
        && de48.get(40..42) == Some("MK")
        && de48
            .chars()
            .enumerate()
            .all(|(i, c)| matches!(i, 0 | 1 | 40 | 41) || c.is_ascii_hexdigit());
    assert!(
        ok,
        "the key exchange answer carries no PIN and MAC keys in DE 48: {de48:?}\n{}",
        w.excerpt(15)
    );
}

#[then(expr = "the last purchase carried a MAC and an encrypted PIN block")]
async fn mac_and_pin(w: &mut PosWorld) {
    w.settle().await;
    let entries = w.journal();
    let f = host_requests(&entries)
        .into_iter()
        .rev()
        .find(|f| mti(f) == "0200")
        .cloned()
        .unwrap_or_else(|| panic!("the host never received a 0200\n{}", w.excerpt(20)));
    let has = |de: u16| {
        f.get("message")
            .and_then(|m| m.get(de.to_string()))
            .is_some()
    };
    assert!(has(64), "the last 0200 has no MAC (DE 64): {f}");
    assert!(has(52), "the last 0200 has no PIN block (DE 52): {f}");
}

#[then(expr = "the host saw the sign-on, the key exchange and the first purchase in that order")]
async fn go_live_order(w: &mut PosWorld) {
    w.settle().await;
    let entries = w.journal();
    let requests = host_requests(&entries);
    let first = |p: &dyn Fn(&Value) -> bool| requests.iter().position(|f| p(f));
    let sign_on = first(&|f| is_network(f, "001"));
    let keyx = first(&|f| is_network(f, "101"));
    let sale = first(&|f| mti(f) == "0200");
    let order: Vec<String> = requests
        .iter()
        .map(|f| match field(f, 70) {
            Some(c) => format!("{} {c}", mti(f)),
            None => mti(f).to_string(),
        })
        .collect();
    match (sign_on, keyx, sale) {
        (Some(a), Some(b), Some(c)) if a < b && b < c => {}
        _ => panic!(
            "expected 0800 001, then 0800 101, then the first 0200; the host received {order:?}"
        ),
    }
}

#[then(expr = "the host received the purchase in currency {string}")]
async fn purchase_currency(w: &mut PosWorld, code: String) {
    let got = w
        .wait_for(WAIT, "a 0200 at the host", |e| {
            host_requests(e)
                .into_iter()
                .rev()
                .find(|f| mti(f) == "0200")
                .map(|f| field(f, 49).unwrap_or("").to_string())
        })
        .await;
    assert_eq!(
        got, code,
        "the 0200's currency (DE 49) is {got}, expected {code}"
    );
}

#[then(regex = r"^the terminal gave up waiting for the host after (\d+) seconds$")]
async fn gave_up_after(w: &mut PosWorld, secs: u64) {
    // the reversal of the last 0200 is sent when the terminal stops waiting
    let (sent, reversed) = w
        .wait_for(WAIT, "a 0200 and then its reversal at the host", |e| {
            let requests = host_requests(e);
            let i = requests.iter().rposition(|f| mti(f) == "0200")?;
            let sent = at_ms(requests[i]);
            let reversal = requests
                .get(i + 1..)?
                .iter()
                .find(|f| mti(f) == "0400" || mti(f) == "0401")?;
            Some((sent, at_ms(reversal)))
        })
        .await;
    let waited = (reversed - sent) / 1000.0;
    assert!(
        (waited - secs as f64).abs() <= 1.0,
        "the terminal waited {waited:.1} s for the host before reversing, expected {secs} s\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r"^the host's settlement counted (\d+) debits? totalling (\d+(?:\.\d{1,2})?) EUR$")]
async fn settlement_debits(w: &mut PosWorld, n: u64, value: String) {
    w.settle().await;
    let entries = w.journal();
    let settlements: Vec<&Value> = host_requests(&entries)
        .into_iter()
        .filter(|f| mti(f) == "0500")
        .collect();
    assert!(
        !settlements.is_empty(),
        "the host received no settlement (0500)\n{}",
        w.excerpt(20)
    );
    let want = (n, amount(&value));
    for f in settlements {
        let number = field(f, 76).and_then(|s| s.trim().parse::<u64>().ok());
        let total = field(f, 88).and_then(|s| s.trim().parse::<u64>().ok());
        assert_eq!(
            (number, total),
            (Some(want.0), Some(want.1)),
            "the 0500 counts debits (DE 76, DE 88) {number:?} / {total:?}, expected {n} / {value}: {f}"
        );
    }
}

// ---- commissioning -------------------------------------------------------------------

const CHECKS: [&str; 4] = ["PRINTER", "KEYPAD", "CARD READER", "HOST LINK"];

fn test_page(entries: &[Value]) -> Option<String> {
    receipts(entries)
        .into_iter()
        .rev()
        .find(|r| r.contains("TEST PAGE"))
}

/// The test page's line for `check`, e.g. "KEYPAD              OK".
fn page_result<'a>(page: &'a str, check: &str) -> Option<&'a str> {
    page.lines()
        .find(|l| l.trim_start().starts_with(check))
        .map(|l| l.trim_end().rsplit(' ').next().unwrap_or(""))
}

/// The self test's result for one check: from its verdict on the display and from the
/// test page, whichever of them appeared since the operator ran it (or since the paper
/// came back), both when both did.
#[then(regex = r#"^the self test reports "([A-Z ]+)" (OK|FAILED)$"#)]
async fn self_test_reports(w: &mut PosWorld, check: String, result: String) {
    assert!(
        CHECKS.contains(&check.as_str()),
        "the self test has no check {check} (it checks {CHECKS:?})"
    );
    let mark = w.mark;
    let verdict = |e: &[Value]| {
        displayed(e.get(mark..).unwrap_or(&[]))
            .into_iter()
            .rev()
            .find(|t| t.starts_with("SELF TEST PASSED") || t.starts_with("SELF TEST FAILED"))
    };
    let (shown, page) = w
        .wait_for(
            WAIT,
            "the self test's verdict (display or test page)",
            |e| {
                let shown = verdict(e);
                let page = test_page(e.get(mark..).unwrap_or(&[]));
                (shown.is_some() || page.is_some()).then_some((shown, page))
            },
        )
        .await;
    if let Some(shown) = shown {
        let failed: Vec<&str> = shown
            .strip_prefix("SELF TEST FAILED: ")
            .map(|l| l.split(", ").collect())
            .unwrap_or_default();
        assert_eq!(
            failed.contains(&check.as_str()),
            result == "FAILED",
            "the display says \"{shown}\", expected {check} {result}\n{}",
            w.excerpt(20)
        );
    }
    if let Some(page) = page {
        let got = page_result(&page, &check)
            .unwrap_or_else(|| panic!("the test page has no line for {check}:\n{page}"));
        assert_eq!(got, result, "the test page says {check} {got}:\n{page}");
    }
}

#[then(expr = "a test page is printed with every check OK")]
async fn test_page_all_ok(w: &mut PosWorld) {
    let mark = w.mark;
    let page = w
        .wait_for(WAIT, "a printed test page", |e| {
            test_page(e.get(mark..).unwrap_or(&[]))
        })
        .await;
    for check in CHECKS {
        assert_eq!(
            page_result(&page, check),
            Some("OK"),
            "the test page does not show {check} OK:\n{page}"
        );
    }
}

#[then(expr = "the test page is held")]
async fn test_page_held(w: &mut PosWorld) {
    let mark = w.mark;
    w.wait_for(WAIT, "the self test's verdict on the display", |e| {
        displayed(e.get(mark..).unwrap_or(&[]))
            .iter()
            .any(|t| t.starts_with("SELF TEST PASSED") || t.starts_with("SELF TEST FAILED"))
            .then_some(())
    })
    .await;
    let since = w.since_mark();
    assert!(
        test_page(&since).is_none(),
        "the test page was printed although the printer has no paper\n{}",
        w.excerpt(20)
    );
}
