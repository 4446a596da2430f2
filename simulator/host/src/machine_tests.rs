//! The host's flows, one test each, with a fake clock.

use std::time::{Duration, UNIX_EPOCH};

use poslab_iso8583::{Field, Message, Mti};

use super::*;
use crate::config::{
    ActionConfig, CodeSpec, Config, DuplicateMode, MatchConfig, MtiPattern, ResponseCode,
};

const MID: &str = "000000000000001";
const TID: &str = "00000001";
fn pan() -> &'static str {
    poslab_sensitive::test_cards::visa()
}

fn host() -> Host {
    Host::new(Config::default_config())
}

/// The default configuration without its risk checks (many sales with one card).
fn host_without_risk() -> Host {
    let mut config = Config::default_config();
    config.risk = Default::default();
    Host::new(config)
}

fn ctx(t: u64) -> RequestContext {
    RequestContext {
        conn: 1,
        now: UNIX_EPOCH + Duration::from_secs(1_795_000_000 + t),
        tid: None,
    }
}

fn msg(mti: &str, fields: &[(u16, &str)]) -> Message {
    let mut m = Message::new(Mti::new(mti).unwrap());
    for (de, v) in fields {
        m.set(*de, Field::Text((*v).to_string().into()));
    }
    m
}

fn amount(minor: u64) -> String {
    format!("{minor:012}")
}

fn sale_with(proc_code: &str, stan: u32, minor: u64) -> Message {
    let stan = format!("{stan:06}");
    let amt = amount(minor);
    msg(
        "0200",
        &[
            (2, pan()),
            (3, proc_code),
            (4, &amt),
            (7, "1123101010"),
            (11, &stan),
            (12, "101010"),
            (13, "1123"),
            (22, "051"),
            (25, "00"),
            (41, TID),
            (42, MID),
            (49, "978"),
        ],
    )
}

fn sale(stan: u32, minor: u64) -> Message {
    sale_with("000000", stan, minor)
}

fn code(d: &Decision) -> &str {
    d.response
        .as_ref()
        .and_then(|r| r.text(39))
        .unwrap_or("(no answer)")
}

fn reply(d: &Decision) -> &Message {
    d.response.as_ref().expect("an answer")
}

fn reversal(mti: &str, stan: u32, orig_stan: u32, minor: u64) -> Message {
    let de90 = format!("0200{orig_stan:06}1123101010{}", "0".repeat(22));
    let stan = format!("{stan:06}");
    let amt = amount(minor);
    msg(
        mti,
        &[
            (3, "000000"),
            (4, &amt),
            (11, &stan),
            (41, TID),
            (42, MID),
            (90, &de90),
        ],
    )
}

fn network(code: &str, stan: u32) -> Message {
    let stan = format!("{stan:06}");
    msg(
        "0800",
        &[(7, "1123101010"), (11, &stan), (41, TID), (70, code)],
    )
}

fn settle(proc_code: &str, stan: u32, t: &Totals) -> Message {
    let stan = format!("{stan:06}");
    let mut m = msg("0500", &[(3, proc_code), (11, &stan), (41, TID), (42, MID)]);
    for (de, v) in t.fields() {
        m.set(de, Field::Text(v.into()));
    }
    m
}

#[test]
fn a_purchase_is_approved_with_an_approval_code_and_rrn() {
    let mut h = host();
    let d = h.handle(&sale(1, 1234), &ctx(0));
    assert_eq!(code(&d), "00");
    assert_eq!(d.rule.as_deref(), Some("approve"));
    let r = reply(&d);
    assert_eq!(r.mti.as_str(), "0210");
    assert_eq!(r.text(38).map(str::len), Some(6));
    assert_eq!(r.text(37).map(str::len), Some(12));
    for de in [3, 4, 7, 11, 12, 13, 41, 42, 49] {
        assert!(r.get(de).is_some(), "DE {de} is echoed");
    }
    assert!(r.get(2).is_none(), "the PAN is not echoed");
    let t = h.terminal(TID).unwrap();
    assert_eq!(t.batch.len(), 1);
    assert_eq!(t.batch[0].pan_masked.as_deref(), Some("476173******0010"));
    // merchant fee: visa credit 0.9 % of 12.34
    assert_eq!(t.batch[0].fee, 11);
}

#[test]
fn approval_codes_and_rrns_are_unique() {
    let mut h = host_without_risk();
    let mut seen = std::collections::HashSet::new();
    for stan in 1..=200 {
        let d = h.handle(&sale(stan, 100), &ctx(stan as u64));
        let r = reply(&d);
        assert!(seen.insert(r.text(37).unwrap().to_string()));
        assert!(seen.insert(r.text(38).unwrap().to_string()));
    }
}

#[test]
fn amounts_from_900_to_999_99_decline_with_their_last_two_digits() {
    let mut h = host();
    let d = h.handle(&sale(1, 90551), &ctx(0));
    assert_eq!(code(&d), "51");
    assert_eq!(d.rule.as_deref(), Some("decline-by-amount"));
    assert!(reply(&d).get(38).is_none(), "no approval code on a decline");
    assert_eq!(code(&h.handle(&sale(2, 90005), &ctx(1))), "05");
    assert_eq!(code(&h.handle(&sale(3, 89999), &ctx(2))), "00");
}

#[test]
fn amounts_above_10000_are_declined_61() {
    let mut h = host();
    assert_eq!(code(&h.handle(&sale(1, 1_000_001), &ctx(0))), "61");
    assert_eq!(code(&h.handle(&sale(2, 1_000_000), &ctx(1))), "00");
}

#[test]
fn unknown_terminals_and_merchants_get_03() {
    let mut h = host();
    let mut m = sale(1, 100);
    m.set(41, Field::Text("00000011".into()));
    let d = h.handle(&m, &ctx(0));
    assert_eq!(code(&d), "03");
    assert!(d.notes.iter().any(|n| n.contains("unknown terminal")));
    let mut m = sale(2, 100);
    m.set(42, Field::Text("000000000000009".into()));
    assert_eq!(code(&h.handle(&m, &ctx(1))), "03");
    let mut m = sale(3, 100);
    m.remove(41);
    assert_eq!(code(&h.handle(&m, &ctx(2))), "03");
    // a provisioned terminal without DE 42 is fine
    assert_eq!(code(&h.handle(&network("001", 4), &ctx(3))), "00");
}

#[test]
fn a_reversal_matches_its_original_and_is_idempotent() {
    let mut h = host();
    h.handle(&sale(7, 5000), &ctx(0));
    let d = h.handle(&reversal("0400", 8, 7, 5000), &ctx(1));
    assert_eq!(code(&d), "00");
    assert_eq!(reply(&d).mti.as_str(), "0410", "never a 0210 for a 0400");
    assert!(reply(&d).get(90).is_some());
    let t = h.terminal(TID).unwrap();
    assert_eq!(t.batch[0].state, TxnState::Reversed);
    assert_eq!(t.totals().debits, 0);
    assert_eq!(t.totals().debits_reversed, 1);

    // the repeat is answered again and reverses nothing twice
    let d = h.handle(&reversal("0401", 8, 7, 5000), &ctx(2));
    assert_eq!(code(&d), "00");
    assert_eq!(reply(&d).mti.as_str(), "0410");
    assert!(
        d.notes.iter().any(|n| n.contains("already reversed")),
        "{:?}",
        d.notes
    );
    assert_eq!(h.terminal(TID).unwrap().totals().debits_reversed, 1);
}

#[test]
fn a_reversal_without_de90_uses_its_own_stan() {
    let mut h = host();
    h.handle(&sale(9, 5000), &ctx(0));
    let mut r = reversal("0420", 9, 9, 5000);
    r.remove(90);
    let d = h.handle(&r, &ctx(1));
    assert_eq!(code(&d), "00");
    assert_eq!(reply(&d).mti.as_str(), "0430");
    assert_eq!(h.terminal(TID).unwrap().batch[0].state, TxnState::Reversed);
}

#[test]
fn a_reversal_of_an_unknown_transaction_is_answered_25() {
    let mut h = host();
    let d = h.handle(&reversal("0400", 2, 1, 5000), &ctx(0));
    assert_eq!(code(&d), "25");
    assert!(d.notes.iter().any(|n| n.contains("unknown transaction")));

    let mut config = Config::default_config();
    config.reversals.unknown_original = ResponseCode(*b"12");
    let mut h = Host::new(config);
    assert_eq!(
        code(&h.handle(&reversal("0400", 2, 1, 5000), &ctx(0))),
        "12"
    );
}

#[test]
fn a_void_cancels_the_original_named_by_its_rrn() {
    let mut h = host();
    let d = h.handle(&sale(1, 2500), &ctx(0));
    let rrn = reply(&d).text(37).unwrap().to_string();
    let mut void = sale_with("020000", 2, 2500);
    void.set(37, Field::Text(rrn.clone().into()));
    let d = h.handle(&void, &ctx(1));
    assert_eq!(code(&d), "00");
    assert_ne!(
        reply(&d).text(37),
        Some(rrn.as_str()),
        "a void gets its own RRN"
    );
    let t = h.terminal(TID).unwrap();
    assert_eq!(t.batch[0].state, TxnState::Voided);
    assert_eq!(t.totals().debits, 0);
    assert_eq!(t.totals().debits_reversed_amount, 2500);

    // voiding an unknown transaction
    let mut void = sale_with("020000", 3, 2500);
    void.set(37, Field::Text("999999999999".into()));
    assert_eq!(code(&h.handle(&void, &ctx(2))), "25");
}

#[test]
fn reversing_a_void_restores_the_original() {
    let mut h = host();
    let d = h.handle(&sale(1, 2500), &ctx(0));
    let rrn = reply(&d).text(37).unwrap().to_string();
    let mut void = sale_with("020000", 2, 2500);
    void.set(37, Field::Text(rrn.into()));
    h.handle(&void, &ctx(1));
    let mut rev = reversal("0400", 2, 2, 2500);
    rev.set(3, Field::Text("020000".into()));
    assert_eq!(code(&h.handle(&rev, &ctx(2))), "00");
    let t = h.terminal(TID).unwrap();
    assert_eq!(t.batch[0].state, TxnState::Standing);
    assert_eq!(t.totals().debits, 1);
}

#[test]
fn a_refund_is_a_credit() {
    let mut h = host();
    let d = h.handle(&sale_with("200000", 1, 700), &ctx(0));
    assert_eq!(code(&d), "00");
    let t = h.terminal(TID).unwrap().totals();
    assert_eq!((t.credits, t.credits_amount), (1, 700));
    assert_eq!(t.debits, 0);
}

#[test]
fn network_management_signs_on_echoes_and_signs_off() {
    let mut h = host();
    let d = h.handle(&network("001", 1), &ctx(0));
    assert_eq!(code(&d), "00");
    let r = reply(&d);
    assert_eq!(r.mti.as_str(), "0810");
    assert_eq!(r.text(70), Some("001"));
    assert_eq!(r.text(11), Some("000001"));
    assert!(h.terminal(TID).unwrap().signed_on);
    assert_eq!(code(&h.handle(&network("301", 2), &ctx(1))), "00");
    let d = h.handle(&network("101", 3), &ctx(2));
    assert_eq!(code(&d), "00");
    assert!(d.notes.iter().any(|n| n.contains("key exchange")));
    h.handle(&network("002", 4), &ctx(3));
    assert!(!h.terminal(TID).unwrap().signed_on);
}

#[test]
fn sign_on_can_be_required() {
    let mut config = Config::default_config();
    config.sign_on.required = true;
    let mut h = Host::new(config);
    assert_eq!(code(&h.handle(&sale(1, 100), &ctx(0))), "91");
    h.handle(&network("001", 2), &ctx(1));
    assert_eq!(code(&h.handle(&sale(3, 100), &ctx(2))), "00");
}

#[test]
fn settlement_in_balance_closes_the_batch() {
    let mut h = host();
    h.handle(&sale(1, 1000), &ctx(0));
    h.handle(&sale(2, 2000), &ctx(1));
    h.handle(&sale_with("200000", 3, 500), &ctx(2));
    h.handle(&sale(4, 90551), &ctx(3)); // declined: not in the totals
    let expected = Totals {
        debits: 2,
        debits_amount: 3000,
        credits: 1,
        credits_amount: 500,
        ..Default::default()
    };
    assert_eq!(h.terminal(TID).unwrap().totals(), expected);
    let d = h.handle(&settle("920000", 5, &expected), &ctx(4));
    assert_eq!(code(&d), "00");
    assert_eq!(reply(&d).mti.as_str(), "0510");
    let t = h.terminal(TID).unwrap();
    assert!(t.batch.is_empty());
    assert_eq!(t.batches_closed, 1);
}

#[test]
fn settlement_out_of_balance_is_95_and_keeps_the_batch() {
    let mut h = host();
    h.handle(&sale(1, 1000), &ctx(0));
    let wrong = Totals {
        debits: 2,
        debits_amount: 2000,
        ..Default::default()
    };
    let d = h.handle(&settle("920000", 2, &wrong), &ctx(1));
    assert_eq!(code(&d), "95");
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("DE 76: terminal 2, host 1")),
        "{:?}",
        d.notes
    );
    assert_eq!(h.terminal(TID).unwrap().batch.len(), 1);
    // rules cannot approve an out-of-balance settlement
    h.push_override(Rule::once(
        "approve anything",
        MatchConfig::default(),
        ActionConfig {
            code: Some(CodeSpec::Fixed(ResponseCode::APPROVED)),
            ..Default::default()
        },
    ));
    assert_eq!(code(&h.handle(&settle("920000", 3, &wrong), &ctx(2))), "95");
}

#[test]
fn batch_upload_then_final_settlement_balances() {
    let mut h = host();
    // the host saw one sale; the terminal has two (one approved offline it thinks)
    h.handle(&sale(1, 1000), &ctx(0));
    let terminal = Totals {
        debits: 2,
        debits_amount: 3000,
        ..Default::default()
    };
    assert_eq!(
        code(&h.handle(&settle("920000", 3, &terminal), &ctx(1))),
        "95"
    );
    for (stan, orig, minor) in [(4, 1, 1000), (5, 2, 2000)] {
        let de90 = format!("0200{orig:06}1123101010{}", "0".repeat(22));
        let s = format!("{stan:06}");
        let a = amount(minor);
        let up = msg(
            "0320",
            &[
                (3, "000000"),
                (4, &a),
                (11, &s),
                (41, TID),
                (42, MID),
                (90, &de90),
            ],
        );
        let d = h.handle(&up, &ctx(2));
        assert_eq!(code(&d), "00");
        assert_eq!(reply(&d).mti.as_str(), "0330");
    }
    let d = h.handle(&settle("960000", 6, &terminal), &ctx(3));
    assert_eq!(code(&d), "00", "{:?}", d.notes);
    assert!(h.terminal(TID).unwrap().batch.is_empty());
}

#[test]
fn duplicates_are_declined_94_or_answered_as_before() {
    let mut h = host();
    let first = h.handle(&sale(1, 1000), &ctx(0));
    let d = h.handle(&sale(1, 1000), &ctx(1));
    assert_eq!(code(&d), "94");
    assert_eq!(h.terminal(TID).unwrap().batch.len(), 1);
    // another amount with the same STAN is a new transaction
    assert_eq!(code(&h.handle(&sale(1, 1001), &ctx(2))), "00");

    let mut config = Config::default_config();
    config.duplicates.mode = DuplicateMode::Repeat;
    let mut h = Host::new(config);
    let a = h.handle(&sale(1, 1000), &ctx(0));
    let b = h.handle(&sale(1, 1000), &ctx(1));
    assert_eq!(code(&b), "00");
    assert_eq!(reply(&a).text(37), reply(&b).text(37));
    assert_eq!(reply(&a).text(38), reply(&b).text(38));
    assert_eq!(h.terminal(TID).unwrap().totals().debits, 1);
    drop(first);
}

#[test]
fn advices_are_acknowledged_once() {
    let mut h = host();
    let mut advice = sale(1, 4000);
    advice.mti = Mti::new("0220").unwrap();
    advice.set(38, Field::Text("OFF123".into()));
    let d = h.handle(&advice, &ctx(0));
    assert_eq!(code(&d), "00");
    assert_eq!(reply(&d).mti.as_str(), "0230");
    advice.mti = Mti::new("0221").unwrap();
    assert_eq!(code(&h.handle(&advice, &ctx(1))), "00");
    let t = h.terminal(TID).unwrap().totals();
    assert_eq!((t.debits, t.debits_amount), (1, 4000));
}

#[test]
fn one_shot_overrides_shape_the_next_answer() {
    let mut h = host();
    h.push_override(Rule::once(
        "no answer to the next 0200",
        MatchConfig {
            mti: vec![MtiPattern("0200".into())],
            ..Default::default()
        },
        ActionConfig {
            answer: crate::Delivery::None,
            ..Default::default()
        },
    ));
    let d = h.handle(&sale(1, 1000), &ctx(0));
    assert!(d.response.is_none());
    assert_eq!(
        d.code,
        Some(ResponseCode::APPROVED),
        "decided, but not sent"
    );
    // the host approved it: the terminal's reversal finds it
    assert_eq!(
        code(&h.handle(&reversal("0400", 1, 1, 1000), &ctx(1))),
        "00"
    );
    // the override is spent
    assert_eq!(code(&h.handle(&sale(2, 1000), &ctx(2))), "00");

    h.push_override(Rule::once(
        "decline the next sale with 51",
        MatchConfig::default(),
        ActionConfig {
            code: Some(CodeSpec::Fixed(ResponseCode(*b"51"))),
            delay: Some(Duration::from_secs(35)),
            answer: crate::Delivery::Twice,
            ..Default::default()
        },
    ));
    let d = h.handle(&sale(3, 1000), &ctx(3));
    assert_eq!(code(&d), "51");
    assert!(matches!(d.actions[0], Action::Delay(t) if t == Duration::from_secs(35)));
    assert!(matches!(d.actions[1], Action::Twice));
    assert_eq!(h.clear_overrides(), 0);
}

#[test]
fn close_and_unsolicited_actions() {
    let mut config = Config::default_config();
    let rules: Config = Config::from_yaml(
        "rules:\n  - name: hang up\n    when: {amount: {min: \"1.11\", max: \"1.11\"}}\n    then: {answer: close}\n  - name: echo back\n    when: {amount: {min: \"2.22\", max: \"2.22\"}}\n    then: {unsolicited: {mti: \"0800\", fields: {70: \"301\"}}}\n",
        "test",
    )
    .unwrap();
    config.rules.splice(0..0, rules.rules);
    let mut h = Host::new(config);
    let d = h.handle(&sale(1, 111), &ctx(0));
    assert!(d.response.is_none());
    assert!(matches!(d.actions[..], [Action::Close]));
    let d = h.handle(&sale(2, 222), &ctx(1));
    assert_eq!(code(&d), "00");
    match &d.actions[..] {
        [Action::Unsolicited(m)] => {
            assert_eq!(m.mti.as_str(), "0800");
            assert_eq!(m.text(70), Some("301"));
            assert_eq!(m.text(41), Some(TID));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn responses_from_the_terminal_are_not_answered() {
    let mut h = host();
    let d = h.handle(
        &msg("0810", &[(11, "000001"), (39, "00"), (41, TID)]),
        &ctx(0),
    );
    assert!(d.response.is_none());
    assert!(d.actions.is_empty());
}

#[test]
fn stand_in_approves_small_amounts_for_an_unavailable_issuer() {
    let mut config = Config::default_config();
    config.stand_in.enabled = true;
    let unavailable = Config::from_yaml(
        "rules:\n  - name: issuer down\n    then: {code: \"91\"}\n",
        "t",
    )
    .unwrap();
    config.rules = unavailable.rules;
    let mut h = Host::new(config);
    let d = h.handle(&sale(1, 5000), &ctx(0));
    assert_eq!(code(&d), "00");
    assert!(d.notes.iter().any(|n| n.contains("stand-in")));
    assert_eq!(code(&h.handle(&sale(2, 50000), &ctx(1))), "91");
}

#[test]
fn a_request_without_a_stan_is_a_format_error() {
    let mut h = host();
    let mut m = sale(1, 100);
    m.remove(11);
    assert_eq!(code(&h.handle(&m, &ctx(0))), "30");
}

#[test]
fn fuzz_corpora_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    type Target = (&'static str, fn(&[u8]));
    let targets: [Target; 2] = [
        ("host_handle", crate::fuzz::handle),
        ("host_config", crate::fuzz::config),
    ];
    for (target, run) in targets {
        let mut n = 0;
        for entry in std::fs::read_dir(root.join(target)).unwrap() {
            run(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 3, "{target}: {n} seeds");
    }
}

#[test]
fn the_seed_sessions_reach_the_flows() {
    // the seeds are real sessions: the first one signs on, buys and settles in balance
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let data = std::fs::read(root.join("host_handle/sign_on_buy_settle")).unwrap();
    let spec = poslab_iso8583::Spec::builtin("iso87ascii").unwrap();
    let mut h = host();
    let mut rest = &data[..];
    let mut codes = Vec::new();
    while rest.len() > 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let msg = spec.unpack(&rest[2..2 + len]).unwrap();
        codes.push(code(&h.handle(&msg, &ctx(0))).to_string());
        rest = &rest[2 + len..];
    }
    assert_eq!(codes, ["00", "00", "51", "00"]);
}

// ---------------------------------------------------------------------------------------
// Risk monitoring (velocity, unusual amounts) and pre-authorisation with completion.

fn other_pan() -> &'static str {
    poslab_sensitive::test_cards::mastercard()
}

fn sale_by(pan: &str, stan: u32, minor: u64) -> Message {
    let mut m = sale(stan, minor);
    m.set(2, Field::Text(pan.to_string().into()));
    m
}

fn config_with(yaml: &str) -> Config {
    let mut config = Config::default_config();
    config.risk = Config::from_yaml(yaml, "risk.yaml").unwrap().risk;
    config
}

#[test]
fn velocity_declines_the_sixth_approval_within_ten_minutes_with_59() {
    let mut h = host();
    for stan in 1..=5 {
        let d = h.handle(&sale(stan, 1000), &ctx(60 * u64::from(stan)));
        assert_eq!(code(&d), "00", "purchase {stan}");
    }
    let d = h.handle(&sale(6, 1000), &ctx(360));
    assert_eq!(code(&d), "59");
    assert_eq!(reply(&d).mti.as_str(), "0210");
    assert!(reply(&d).get(38).is_none(), "no approval code on a decline");
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("velocity: 5 approvals in window")),
        "{:?}",
        d.notes
    );
    assert!(d.notes.iter().all(|n| !n.contains(pan())), "{:?}", d.notes);
    // declined: not in the totals, and it does not count either
    assert_eq!(h.terminal(TID).unwrap().totals().debits, 5);
    assert_eq!(code(&h.handle(&sale(7, 1000), &ctx(361))), "59");
    // the first approval (t = 60) leaves the window at t = 660: one more is approved
    assert_eq!(code(&h.handle(&sale(8, 1000), &ctx(659))), "59");
    assert_eq!(code(&h.handle(&sale(9, 1000), &ctx(660))), "00");
    assert_eq!(code(&h.handle(&sale(10, 1000), &ctx(661))), "59");
}

#[test]
fn velocity_window_expiry_resets_the_count() {
    let mut h = host();
    for stan in 1..=5 {
        assert_eq!(code(&h.handle(&sale(stan, 1000), &ctx(0))), "00");
    }
    assert_eq!(code(&h.handle(&sale(6, 1000), &ctx(599))), "59");
    for stan in 7..=11 {
        let d = h.handle(&sale(stan, 1000), &ctx(600));
        assert_eq!(code(&d), "00", "purchase {stan} in a fresh window");
    }
    assert_eq!(code(&h.handle(&sale(12, 1000), &ctx(600))), "59");
}

#[test]
fn velocity_leaves_other_cards_alone() {
    let mut h = host();
    for stan in 1..=5 {
        h.handle(&sale(stan, 1000), &ctx(0));
    }
    assert_eq!(code(&h.handle(&sale(6, 1000), &ctx(1))), "59");
    for stan in 7..=11 {
        let d = h.handle(&sale_by(other_pan(), stan, 1000), &ctx(2));
        assert_eq!(code(&d), "00", "other card, purchase {stan}");
    }
    assert_eq!(
        code(&h.handle(&sale_by(other_pan(), 12, 1000), &ctx(3))),
        "59"
    );
}

#[test]
fn velocity_counts_reversed_approvals_but_not_declines() {
    let mut h = host();
    // rule declines (905.51 -> 51) do not count
    for stan in 1..=3 {
        assert_eq!(code(&h.handle(&sale(stan, 90551), &ctx(0))), "51");
    }
    for stan in 4..=8 {
        assert_eq!(code(&h.handle(&sale(stan, 1000), &ctx(1))), "00");
    }
    // a reversed approval still counts
    assert_eq!(
        code(&h.handle(&reversal("0400", 9, 8, 1000), &ctx(2))),
        "00"
    );
    assert_eq!(code(&h.handle(&sale(10, 1000), &ctx(3))), "59");
    // refunds and voids are not purchases: risk leaves them alone
    assert_eq!(
        code(&h.handle(&sale_with("200000", 11, 500), &ctx(4))),
        "00"
    );
}

#[test]
fn velocity_is_off_when_absent() {
    let mut h = host_without_risk();
    for stan in 1..=20 {
        assert_eq!(code(&h.handle(&sale(stan, 1000), &ctx(0))), "00");
    }
}

#[test]
fn unusual_amounts_from_a_new_card_are_declined_59() {
    let yaml = "risk:\n  unusual_amount: { above: \"5000.00\", code: \"59\" }\n";
    let mut h = Host::new(config_with(yaml));
    let d = h.handle(&sale(1, 600_000), &ctx(0));
    assert_eq!(code(&d), "59");
    assert!(
        d.notes
            .iter()
            .any(|n| n.starts_with("unusual amount: 6000.00")),
        "{:?}",
        d.notes
    );
    assert_eq!(
        code(&h.handle(&sale(2, 500_000), &ctx(1))),
        "00",
        "not above"
    );
    assert_eq!(
        code(&h.handle(&sale(3, 600_000), &ctx(2))),
        "00",
        "known card"
    );
    let d = h.handle(&sale_by(other_pan(), 4, 600_000), &ctx(3));
    assert_eq!(code(&d), "59", "another new card");
    // with velocity absent, many approvals are fine
    for stan in 5..=15 {
        assert_eq!(code(&h.handle(&sale(stan, 100), &ctx(4))), "00");
    }
}

#[test]
fn risk_configuration_is_read_and_errors_name_line_and_column() {
    let config = Config::default_config();
    let v = config.risk.velocity.expect("velocity on by default");
    assert_eq!(
        (v.max, v.window, v.code.as_str()),
        (5, Duration::from_secs(600), "59")
    );
    assert!(config.risk.unusual_amount.is_none());

    let yaml = "risk:\n  velocity: {max: 3, window: 90s}\n";
    let v = Config::from_yaml(yaml, "r.yaml")
        .unwrap()
        .risk
        .velocity
        .unwrap();
    assert_eq!(
        (v.max, v.window, v.code.as_str()),
        (3, Duration::from_secs(90), "59")
    );

    let cases = [
        (
            "risk:\n  velocity:\n    max: 3\n    window: ten minutes\n",
            "v.yaml:4:13",
            "duration",
        ),
        (
            "risk:\n  velocity:\n    max: 3\n    window: 10m\n    code: \"5\"\n",
            "v.yaml:5:11",
            "response code",
        ),
        (
            "risk:\n  velocity:\n    max: many\n    window: 10m\n",
            "v.yaml:3",
            "max",
        ),
        (
            "risk:\n  velocity:\n    window: 10m\n",
            "v.yaml:3",
            "missing field `max`",
        ),
        (
            "risk:\n  unusual_amount: {above: \"lots\"}\n",
            "v.yaml:2",
            "amount",
        ),
        ("risk:\n  velocty: {max: 3}\n", "v.yaml:2", "velocty"),
    ];
    for (yaml, at, what) in cases {
        let err = Config::from_yaml(yaml, "v.yaml").unwrap_err().to_string();
        assert!(err.starts_with(at), "{yaml:?}: {err}");
        assert!(err.contains(what), "{yaml:?}: {err}");
    }
}

#[test]
fn a_pre_authorisation_is_completed_by_a_0220_that_settles() {
    let mut h = host();
    // 0100: pre-authorisation of 100.00, approved, not in the settlement totals
    let mut auth = sale(1, 10_000);
    auth.mti = Mti::new("0100").unwrap();
    let d = h.handle(&auth, &ctx(0));
    assert_eq!(code(&d), "00");
    let r = reply(&d);
    assert_eq!(r.mti.as_str(), "0110");
    let rrn = r.text(37).unwrap().to_string();
    let approval = r.text(38).unwrap().to_string();
    assert_eq!(h.terminal(TID).unwrap().totals(), Totals::default());

    // 0220: the completion of 80.00 names the authorisation (DE 90, DE 37, DE 38)
    let mut completion = sale(2, 8_000);
    completion.mti = Mti::new("0220").unwrap();
    completion.set(37, Field::Text(rrn.clone().into()));
    completion.set(38, Field::Text(approval.clone().into()));
    let de90 = format!("0100000001{}{}", "1123101010", "0".repeat(22));
    completion.set(90, Field::Text(de90.into()));
    let d = h.handle(&completion, &ctx(60));
    assert_eq!(code(&d), "00");
    let r = reply(&d);
    assert_eq!(r.mti.as_str(), "0230");
    assert_eq!(r.text(37), Some(rrn.as_str()));
    assert_eq!(r.text(38), Some(approval.as_str()));
    assert!(
        d.notes
            .iter()
            .any(|n| n == "completes the 0100 of STAN 000001 (authorised 100.00)"),
        "{:?}",
        d.notes
    );

    // the completion, not the authorisation, is in the totals (DE 76/88)
    let expected = Totals {
        debits: 1,
        debits_amount: 8_000,
        ..Default::default()
    };
    assert_eq!(h.terminal(TID).unwrap().totals(), expected);
    let fields: std::collections::BTreeMap<u16, String> = expected.fields().into_iter().collect();
    assert_eq!(fields.get(&76).map(String::as_str), Some("0000000001"));
    assert_eq!(
        fields.get(&88).map(String::as_str),
        Some("0000000000008000")
    );
    let d = h.handle(&settle("920000", 3, &expected), &ctx(120));
    assert_eq!(code(&d), "00");
    assert_eq!(h.terminal(TID).unwrap().batches_closed, 1);
}

#[test]
fn a_completion_found_by_its_rrn_and_above_the_authorisation_is_noted() {
    let mut h = host();
    let mut auth = sale(1, 10_000);
    auth.mti = Mti::new("0100").unwrap();
    let d = h.handle(&auth, &ctx(0));
    let rrn = reply(&d).text(37).unwrap().to_string();
    let mut completion = sale(2, 12_000);
    completion.mti = Mti::new("0220").unwrap();
    completion.set(37, Field::Text(rrn.into()));
    let d = h.handle(&completion, &ctx(1));
    assert_eq!(code(&d), "00", "an advice is acknowledged");
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("above the authorised amount")),
        "{:?}",
        d.notes
    );
    assert!(d
        .notes
        .iter()
        .any(|n| n.starts_with("completes the 0100 of STAN 000001")));
}

#[test]
fn a_lost_transaction_puts_the_settlement_out_of_balance() {
    let mut h = host();
    h.handle(&sale(1, 1000), &ctx(0));
    h.handle(&sale(2, 2000), &ctx(1));
    h.handle(&sale(3, 90551), &ctx(2)); // declined: never lost, never counted
    let lost = h.lose_last_standing(TID).expect("a standing transaction");
    assert_eq!((lost.stan, lost.amount), (2, 2000));
    assert!(h.lose_last_standing("99999999").is_none());
    let terminal = Totals {
        debits: 2,
        debits_amount: 3000,
        ..Default::default()
    };
    assert_eq!(
        code(&h.handle(&settle("920000", 4, &terminal), &ctx(3))),
        "95"
    );
    // the STAN index still finds what is left: a reversal of STAN 1 reverses it
    let d = h.handle(&reversal("0400", 5, 1, 1000), &ctx(4));
    assert_eq!(code(&d), "00");
    let t = h.terminal(TID).unwrap();
    assert_eq!(t.batch.len(), 2);
    assert_eq!(t.batch[0].state, TxnState::Reversed);
}
