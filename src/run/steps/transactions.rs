//! Daily transactions and risk: what the host saw of a purchase, refund or void (entry
//! mode, processing code, PIN block, chip data both ways, the original's RRN), what the
//! receipts say (copies, date and time, auth code), and the host's approvals per card.
//! Acting steps are in [`super::sale`]; these add checks and a few repeated sales.

use cucumber::{then, when};
use serde_json::Value;

use super::{
    amount, displayed, field, host_answers, host_decisions, host_requests, kind, link, mti,
    receipts,
};
use crate::run::world::{PosWorld, WAIT};

/// The last request with this MTI the host received since the scenario's mark.
async fn last_request(w: &mut PosWorld, m: &str) -> Value {
    w.settle().await;
    let mark = w.mark;
    w.wait_for(WAIT, &format!("a {m} at the host"), |e| {
        host_requests(e.get(mark..).unwrap_or(&[]))
            .into_iter()
            .rev()
            .find(|f| mti(f) == m)
            .cloned()
    })
    .await
}

/// The host's answer to the request with STAN `stan` (the request MTI + 10).
fn answer_to<'a>(entries: &'a [Value], request_mti: &str, stan: &str) -> Option<&'a Value> {
    let want = response_mti(request_mti);
    host_answers(entries)
        .into_iter()
        .rev()
        .find(|f| mti(f) == want && field(f, 11) == Some(stan))
}

fn response_mti(request: &str) -> String {
    let mut b = request.as_bytes().to_vec();
    if let Some(c) = b.get_mut(2) {
        *c = if *c == b'0' { b'1' } else { *c + 1 };
    }
    String::from_utf8(b).unwrap_or_default()
}

/// The tags of DE 55 (an ICC data object in the journal: tag → hex, masked where secret).
fn icc_tags(frame: &Value) -> Vec<String> {
    frame
        .get("message")
        .and_then(|m| m.get("55"))
        .and_then(Value::as_object)
        .map(|o| o.keys().map(|k| k.to_uppercase()).collect())
        .unwrap_or_default()
}

fn icc_value<'a>(frame: &'a Value, tag: &str) -> Option<&'a str> {
    let o = frame.get("message")?.get("55")?.as_object()?;
    o.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(tag))
        .and_then(|(_, v)| v.as_str())
}

#[when(
    regex = r#"^(\d+) purchases? of (\d+(?:\.\d{1,2})?) EUR (?:is|are) tried with card "([^"]+)" and PIN "(\d{4,12})"$"#
)]
async fn tried_with_pin(w: &mut PosWorld, n: usize, value: String, card: String, pin: String) {
    assert!(n <= 50, "at most 50 purchases in one step");
    for _ in 0..n {
        w.ecr(poslab_zvt::ecr::EcrCommand::Purchase {
            amount: amount(&value),
            currency: Some(978),
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
        w.bench()
            .await
            .present_card(&card, poslab_emv::profile::Interface::Contact)
            .await
            .unwrap_or_else(|e| panic!("card {card}: {e:#}"));
        w.wait_for(WAIT, "the terminal asking for the PIN (ENTER PIN)", |e| {
            displayed(e.get(mark..).unwrap_or(&[]))
                .iter()
                .any(|t| t == "ENTER PIN")
                .then_some(())
        })
        .await;
        let b = w.bench().await;
        for d in pin.bytes() {
            b.press(poslab_terminal::keypad::Key::Digit(d - b'0'));
        }
        b.press(poslab_terminal::keypad::Key::Enter);
        w.settle().await;
    }
}

#[then(regex = r#"^the terminal still shows "([^"]+)"$"#)]
async fn still_shows(w: &mut PosWorld, text: String) {
    let shown = displayed(&w.journal());
    let last = shown.last().cloned().unwrap_or_default();
    assert!(
        last.contains(&text),
        "the terminal shows \"{last}\", expected it to still show \"{text}\"\n{}",
        w.excerpt(20)
    );
    assert!(
        w.pending.is_some(),
        "the sale is already over (the terminal was expected to still wait)\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r#"^the host received a "(\d{4})" with POS entry mode "(\d{3})"$"#)]
async fn entry_mode(w: &mut PosWorld, m: String, want: String) {
    let f = last_request(w, &m).await;
    let got = field(&f, 22).unwrap_or("(none)");
    assert_eq!(
        got,
        want,
        "the {m}'s POS entry mode (DE 22) is {got}, expected {want}\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r#"^the host received a "(\d{4})" with processing code "(\d{2,6})"$"#)]
async fn processing_code(w: &mut PosWorld, m: String, want: String) {
    let f = last_request(w, &m).await;
    let got = field(&f, 3).unwrap_or("(none)");
    assert!(
        got.starts_with(&want),
        "the {m}'s processing code (DE 3) is {got}, expected {want}…\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r#"^the host received a "(\d{4})" without a PIN block$"#)]
async fn no_pin_block(w: &mut PosWorld, m: String) {
    let f = last_request(w, &m).await;
    let pin = f.get("message").and_then(|x| x.get("52"));
    assert!(
        pin.is_none(),
        "the {m} carries a PIN block (DE 52): {pin:?}\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r#"^the host received a "(\d{4})" with an ARQC \(9F26\) in its chip data$"#)]
async fn arqc(w: &mut PosWorld, m: String) {
    let f = last_request(w, &m).await;
    let tags = icc_tags(&f);
    let cryptogram = icc_value(&f, "9F26").unwrap_or("");
    assert!(
        !cryptogram.is_empty(),
        "the {m} has no application cryptogram 9F26 in DE 55 (tags: {tags:?})\n{}",
        w.excerpt(20)
    );
    // 9F27 cryptogram information data: 80 = ARQC
    if let Some(cid) = icc_value(&f, "9F27") {
        assert!(
            cid.starts_with('8') || cid.contains('*'),
            "the card's first cryptogram is not an ARQC: 9F27 = {cid}"
        );
    }
}

#[then(regex = r#"^the host's answer carried issuer authentication data \(91\) in its chip data$"#)]
async fn arpc(w: &mut PosWorld) {
    let f = last_request(w, "0200").await;
    let stan = field(&f, 11).unwrap_or("").to_string();
    let entries = w.journal();
    let answer = answer_to(&entries, "0200", &stan)
        .cloned()
        .unwrap_or_else(|| panic!("no 0210 for STAN {stan}\n{}", w.excerpt(20)));
    let tags = icc_tags(&answer);
    assert!(
        tags.iter().any(|t| t == "91"),
        "the host's 0210 has no issuer authentication data (91) in DE 55 (tags: {tags:?})\n{}",
        w.excerpt(20)
    );
}

/// The last approved purchase (0200 with processing code 00…) and the host's answer to it.
fn last_purchase(entries: &[Value]) -> Option<(Value, Value)> {
    host_requests(entries)
        .into_iter()
        .rev()
        .filter(|f| mti(f) == "0200" && field(f, 3).is_some_and(|p| p.starts_with("00")))
        .find_map(|f| {
            let stan = field(f, 11)?;
            let a = answer_to(entries, "0200", stan)?;
            (field(a, 39) == Some("00")).then(|| (f.clone(), a.clone()))
        })
}

#[then(regex = r"^the host received a void of the last purchase carrying its RRN$")]
async fn void_with_rrn(w: &mut PosWorld) {
    w.settle().await;
    let entries = w.journal();
    let (_, answer) = last_purchase(&entries)
        .unwrap_or_else(|| panic!("no approved purchase at the host\n{}", w.excerpt(20)));
    let rrn = field(&answer, 37)
        .unwrap_or_else(|| panic!("the purchase's 0210 has no RRN (DE 37): {answer}"))
        .to_string();
    let voids: Vec<&Value> = host_requests(&entries)
        .into_iter()
        .filter(|f| mti(f) == "0200" && field(f, 3).is_some_and(|p| p.starts_with("02")))
        .collect();
    assert!(
        !voids.is_empty(),
        "the host received no void (0200 with processing code 02…)\n{}",
        w.excerpt(20)
    );
    assert!(
        voids.iter().any(|f| field(f, 37) == Some(rrn.as_str())),
        "no void carries the purchase's RRN {rrn} in DE 37: {:?}",
        voids.iter().map(|f| field(f, 37)).collect::<Vec<_>>()
    );
}

#[then(regex = r#"^the host received exactly (\d+) "(\d{4})"$"#)]
async fn exactly(w: &mut PosWorld, n: usize, m: String) {
    w.settle().await;
    let got = host_requests(&w.journal())
        .iter()
        .filter(|f| mti(f) == m)
        .count();
    assert_eq!(
        got,
        n,
        "the host received {got} × {m}, expected {n}\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r"^the host approved (\d+) purchases?(?: in all)?$")]
async fn approved_count(w: &mut PosWorld, n: usize) {
    w.settle().await;
    let entries = w.journal();
    let purchases: Vec<String> = host_requests(&entries)
        .into_iter()
        .filter(|f| mti(f) == "0200" && field(f, 3).is_some_and(|p| p.starts_with("00")))
        .filter_map(|f| field(f, 11).map(str::to_owned))
        .collect();
    let got = host_decisions(&entries)
        .into_iter()
        .filter(|d| {
            d.get("mti").and_then(Value::as_str) == Some("0200")
                && d.get("code").and_then(Value::as_str) == Some("00")
                && d.get("stan")
                    .and_then(Value::as_str)
                    .is_some_and(|s| purchases.iter().any(|p| p == s))
        })
        .count();
    assert_eq!(
        got,
        n,
        "the host approved {got} purchases, expected {n}\n{}",
        w.excerpt(30)
    );
}

/// The receipts printed since the mark, once the `copy` (merchant or customer) is among
/// them (a merchant copy prints before the customer copy of the same sale).
async fn printed_since(w: &mut PosWorld, copy: &str) -> Vec<String> {
    w.settle().await;
    let mark = w.mark;
    let label = format!("{} COPY", copy.to_uppercase());
    w.wait_for(WAIT, &format!("a {copy} receipt"), |e| {
        let all = receipts(e.get(mark..).unwrap_or(&[]));
        all.iter().any(|r| r.contains(&label)).then_some(all)
    })
    .await
}

fn copy_of<'a>(all: &'a [String], copy: &str) -> Option<&'a String> {
    let label = format!("{} COPY", copy.to_uppercase());
    all.iter().rev().find(|r| r.contains(&label))
}

#[then(regex = r#"^the (customer|merchant) receipt does not show "([^"]+)"$"#)]
async fn receipt_lacks(w: &mut PosWorld, copy: String, text: String) {
    let all = printed_since(w, &copy).await;
    let r = copy_of(&all, &copy)
        .unwrap_or_else(|| panic!("no {copy} receipt was printed\n{}", w.excerpt(20)));
    assert!(
        !r.contains(&text),
        "the {copy} receipt shows \"{text}\":\n{r}"
    );
}

#[then(regex = r"^only the customer copy was printed$")]
async fn only_customer(w: &mut PosWorld) {
    let all = printed_since(w, "customer").await;
    let copies: Vec<&String> = all.iter().filter(|r| r.contains(" COPY")).collect();
    assert!(
        copy_of(&all, "customer").is_some(),
        "no customer copy was printed: {all:#?}"
    );
    assert!(
        copy_of(&all, "merchant").is_none(),
        "a merchant copy was printed for a declined sale: {all:#?}"
    );
    assert_eq!(copies.len(), 1, "copies printed: {copies:#?}");
}

#[then(regex = r"^the (customer|merchant) receipt is dated at the time of the sale$")]
async fn receipt_date(w: &mut PosWorld, copy: String) {
    let all = printed_since(w, &copy).await;
    let r = copy_of(&all, &copy)
        .unwrap_or_else(|| panic!("no {copy} receipt was printed\n{}", w.excerpt(20)))
        .clone();
    let f = last_request(w, "0200").await;
    // DE 13 MMDD, DE 12 hhmmss: the receipt says YYYY-MM-DD hh:mm:ss of the same moment
    let (date, time) = (field(&f, 13).unwrap_or(""), field(&f, 12).unwrap_or(""));
    assert!(
        date.len() == 4 && time.len() == 6,
        "the 0200 has no local date/time (DE 13 {date:?}, DE 12 {time:?})"
    );
    let want = format!(
        "-{}-{} {}:{}:{}",
        &date[..2],
        &date[2..],
        &time[..2],
        &time[2..4],
        &time[4..]
    );
    assert!(
        r.contains(&want),
        "the {copy} receipt does not show the sale's date and time (…{want}):\n{r}"
    );
}

#[then(regex = r"^the (customer|merchant) receipt carries the host's auth code$")]
async fn receipt_auth_code(w: &mut PosWorld, copy: String) {
    let all = printed_since(w, &copy).await;
    let r = copy_of(&all, &copy)
        .unwrap_or_else(|| panic!("no {copy} receipt was printed\n{}", w.excerpt(20)))
        .clone();
    let entries = w.journal();
    let (_, answer) = last_purchase(&entries)
        .unwrap_or_else(|| panic!("no approved purchase at the host\n{}", w.excerpt(20)));
    let code = field(&answer, 38)
        .unwrap_or_else(|| panic!("the host's 0210 has no auth code (DE 38): {answer}"));
    let line = r
        .lines()
        .find(|l| l.starts_with("AUTH CODE"))
        .unwrap_or_else(|| panic!("the {copy} receipt has no AUTH CODE line:\n{r}"));
    assert!(
        line.trim_end().ends_with(code.trim()),
        "the {copy} receipt's auth code line \"{line}\" does not show the host's {code}"
    );
}

#[then(
    regex = r#"^the host's answers to the purchases were ("[0-9A-Z]{2}"(?:(?:, | and )"[0-9A-Z]{2}")*)$"#
)]
async fn answers_were(w: &mut PosWorld, list: String) {
    w.settle().await;
    let want: Vec<String> = list
        .split('"')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect();
    let entries = w.journal();
    let purchases: Vec<String> = host_requests(&entries)
        .into_iter()
        .filter(|f| mti(f) == "0200" && field(f, 3).is_some_and(|p| p.starts_with("00")))
        .filter_map(|f| field(f, 11).map(str::to_owned))
        .collect();
    let got: Vec<String> = purchases
        .iter()
        .filter_map(|stan| {
            answer_to(&entries, "0200", stan)
                .and_then(|a| field(a, 39))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        got,
        want,
        "the host's answers to the purchases (DE 39 of each 0210, in order)\n{}",
        w.excerpt(20)
    );
}

#[then(regex = r"^no receipt shows 12 digits or more in a row$")]
async fn no_long_digit_runs(w: &mut PosWorld) {
    w.settle().await;
    let all = receipts(&w.journal());
    assert!(!all.is_empty(), "nothing was printed\n{}", w.excerpt(20));
    for r in all {
        let mut run = 0usize;
        for c in r.chars() {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            assert!(
                run < 12,
                "a receipt shows 12 or more digits in a row (a card number or a \
                 reference anyone could take for one):\n{r}"
            );
        }
    }
}

#[then(regex = r#"^the cash register sent command "([0-9A-F]{2} [0-9A-F]{2})"$"#)]
async fn register_sent(w: &mut PosWorld, command: String) {
    let mark = w.mark;
    let sent: Vec<String> = w
        .journal()
        .get(mark..)
        .unwrap_or(&[])
        .iter()
        .filter(|e| {
            link(e) == "ecr"
                && kind(e) == "zvt"
                && e.get("dir").and_then(Value::as_str) == Some("out")
        })
        .filter_map(|e| e.get("command").and_then(Value::as_str).map(str::to_owned))
        .collect();
    assert!(
        sent.iter().any(|c| c.starts_with(&command)),
        "the cash register did not send {command}; it sent {sent:?}"
    );
}
