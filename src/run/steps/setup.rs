//! Benches, provisioning, going live, and faults that stand before a sale.

use std::time::Duration;

use cucumber::given;
use poslab_escpos::device::{Fault, FaultKind};
use poslab_host::config::{
    ActionConfig, CodeSpec, Delivery, MatchConfig, MtiPattern, ResponseCode,
};
use poslab_host::Rule;
use poslab_zvt::ecr::{EcrCommand, Status};
use serde_json::Value;

use super::{host_requests, mti};
use crate::run::world::PosWorld;

#[given(expr = "the bench {string}")]
async fn the_bench(w: &mut PosWorld, _name: String) {
    // the run's --bench decides; the name documents the bench the feature was written for
    w.bench().await;
}

#[given(expr = "the terminal is provisioned with parameter {word} = {string}")]
async fn parameter(w: &mut PosWorld, name: String, value: String) {
    assert!(
        !w.started(),
        "parameters must be set before the bench starts (put this step first)"
    );
    let v = serde_json::from_str::<Value>(&value).unwrap_or(Value::String(value));
    w.params.insert(name, v);
}

#[given(expr = "the terminal is provisioned as terminal {string} of merchant {string}")]
async fn provisioned_as(w: &mut PosWorld, tid: String, mid: String) {
    assert!(
        !w.started(),
        "provisioning must come before the bench starts (put this step first)"
    );
    w.params.insert("tid".into(), Value::String(tid));
    w.params.insert("mid".into(), Value::String(mid));
}

#[given(expr = "merchant {string} is provisioned with terminal {string}")]
async fn merchant_provisioned(w: &mut PosWorld, mid: String, tid: String) {
    let b = w.bench().await;
    let host = b.host.lock().unwrap_or_else(|p| p.into_inner());
    assert!(
        host.is_provisioned(&tid),
        "the host does not know terminal {tid} (merchant {mid})"
    );
}

#[given(expr = "the terminal has signed on")]
async fn signed_on(w: &mut PosWorld) {
    w.ecr(EcrCommand::Register {
        config: 0,
        currency: Some(978),
    })
    .await;
    let o = w.settle().await.cloned().expect("an outcome");
    assert_eq!(
        o.status,
        Status::Success,
        "registration/sign-on failed: {:?}\n{}",
        o,
        w.excerpt(20)
    );
    let signed = host_requests(&w.journal())
        .iter()
        .any(|f| mti(f) == "0800" && super::field(f, 70) == Some("001"));
    assert!(
        signed,
        "the host never received a sign-on (0800, DE 70 = 001)"
    );
}

fn once(w: &mut crate::bench::live::LiveBench, name: &str, mti: &str, then: ActionConfig) {
    let when = MatchConfig {
        mti: vec![MtiPattern(mti.to_string())],
        ..MatchConfig::default()
    };
    w.host
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_override(Rule::once(name, when, then));
}

#[given(expr = "the host will not answer the next {string}")]
async fn host_silent(w: &mut PosWorld, m: String) {
    let b = w.bench().await;
    once(
        b,
        "step: no answer",
        &m,
        ActionConfig {
            answer: Delivery::None,
            ..ActionConfig::default()
        },
    );
}

#[given(expr = "the host will answer the next {string} after {int} seconds")]
async fn host_late(w: &mut PosWorld, m: String, secs: u64) {
    let b = w.bench().await;
    once(
        b,
        "step: late answer",
        &m,
        ActionConfig {
            delay: Some(Duration::from_secs(secs)),
            ..ActionConfig::default()
        },
    );
}

#[given(expr = "the host will decline the next {string} with {string}")]
async fn host_declines(w: &mut PosWorld, m: String, code: String) {
    let code = ResponseCode::new(&code).unwrap_or_else(|e| panic!("response code {code}: {e}"));
    let b = w.bench().await;
    once(
        b,
        "step: decline",
        &m,
        ActionConfig {
            code: Some(CodeSpec::Fixed(code)),
            ..ActionConfig::default()
        },
    );
}

#[given(expr = "the host will close the connection on the next {string}")]
async fn host_closes(w: &mut PosWorld, m: String) {
    let b = w.bench().await;
    once(
        b,
        "step: close",
        &m,
        ActionConfig {
            answer: Delivery::Close,
            ..ActionConfig::default()
        },
    );
}

#[given(expr = "the printer runs out of paper after {int} lines")]
async fn paper_out_after(w: &mut PosWorld, lines: u64) {
    w.bench()
        .await
        .printer_fault(Fault::PaperOutAfter(lines))
        .await
        .expect("printer");
}

#[given(expr = "the printer is out of paper")]
async fn paper_out(w: &mut PosWorld) {
    w.bench()
        .await
        .printer_fault(Fault::PaperOut)
        .await
        .expect("printer");
}

#[given(expr = "the printer cover is open")]
async fn cover_open(w: &mut PosWorld) {
    w.bench()
        .await
        .printer_fault(Fault::CoverOpen)
        .await
        .expect("printer");
}

#[given(
    regex = r"^the printer (is offline|is jammed|paper is near its end|sends noise before its answers|prints (\d+) lines? per second)$"
)]
async fn printer_state(w: &mut PosWorld, what: String, lps: String) {
    let fault = match what.as_str() {
        "is offline" => Fault::Offline,
        "is jammed" => Fault::Jam,
        "paper is near its end" => Fault::PaperNearEnd,
        "sends noise before its answers" => Fault::Garbage,
        _ => Fault::Slow(
            lps.parse()
                .unwrap_or_else(|e| panic!("{lps:?} lines per second: {e}")),
        ),
    };
    w.bench().await.printer_fault(fault).await.expect("printer");
}

#[cucumber::when(regex = r"^the printer is back online$")]
async fn printer_online(w: &mut PosWorld) {
    w.set_mark();
    w.bench()
        .await
        .printer_clear(FaultKind::Offline)
        .await
        .expect("printer");
}

#[given(expr = "the keypad is broken")]
async fn pad_broken(w: &mut PosWorld) {
    w.bench().await.break_pad(true);
}

#[cucumber::when(expr = "paper is loaded")]
async fn paper_loaded(w: &mut PosWorld) {
    w.set_mark();
    w.bench()
        .await
        .printer_clear(FaultKind::PaperOut)
        .await
        .expect("printer");
}

#[cucumber::when(expr = "the cover is closed")]
async fn cover_closed(w: &mut PosWorld) {
    w.set_mark();
    w.bench()
        .await
        .printer_clear(FaultKind::CoverOpen)
        .await
        .expect("printer");
}
