//! Maintenance by the terminal management system: the TMS's orders, packages and faults
//! (through the bench's emulated TMS), the operator calling the TMS (F5 on the pad), and
//! what the TMS recorded and journaled (`link: "tms"`) and what the terminal reported to
//! it and showed. Steps never read the terminal's memory: the firmware it runs is what it
//! reported at call-home and what it showed.

use std::sync::{Arc, Mutex};

use cucumber::{then, when};
use poslab_terminal::keypad::Key;
use poslab_tms::config::{Fault, FaultKind, Generate, ImageSource, PackageConfig, Target};
use poslab_tms::device::{TerminalRecord, TmsDevice};
use poslab_tms::params::ParameterSet;
use poslab_tms::Order;
use serde_json::Value;

use super::{displayed, kind, link};
use crate::run::world::{PosWorld, WAIT};

/// Size of the test packages (16 chunks of 4 KiB).
const IMAGE_SIZE: usize = 65_536;

async fn tms(w: &mut PosWorld) -> Arc<Mutex<TmsDevice>> {
    w.bench().await.tms().unwrap_or_else(|e| panic!("{e:#}"))
}

fn lock(d: &Arc<Mutex<TmsDevice>>) -> std::sync::MutexGuard<'_, TmsDevice> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

/// The TID the bench's terminal has at the TMS.
async fn tid(w: &mut PosWorld) -> String {
    w.bench().await.params.tid.clone()
}

/// Waits until the TMS's record of the terminal satisfies `check`.
async fn wait_record<T>(
    w: &mut PosWorld,
    what: &str,
    mut check: impl FnMut(&TerminalRecord) -> Option<T>,
) -> T {
    let d = tms(w).await;
    let tid = tid(w).await;
    w.wait_for(WAIT, what, |_| lock(&d).terminal(&tid).and_then(&mut check))
        .await
}

fn record_text(d: &Arc<Mutex<TmsDevice>>, tid: &str) -> String {
    lock(d)
        .terminal(tid)
        .map(|r| serde_json::to_string_pretty(r).unwrap_or_default())
        .unwrap_or_else(|| format!("the TMS has no terminal {tid}"))
}

/// TMS journal entries of `kind` since the mark.
fn tms_entries<'a>(entries: &'a [Value], mark: usize, k: &str) -> Vec<&'a Value> {
    entries
        .get(mark..)
        .unwrap_or(&[])
        .iter()
        .filter(|e| link(e) == "tms" && kind(e) == k)
        .collect()
}

/// The DE 62 sub-element `tag` of a journaled TMS message.
fn sub<'a>(entry: &'a Value, tag: &str) -> Option<&'a str> {
    entry["message"]["62"]
        .as_array()?
        .iter()
        .find(|p| p[0].as_str() == Some(tag))?
        .get(1)?
        .as_str()
}

fn processing_code(entry: &Value) -> &str {
    entry["message"]["3"].as_str().unwrap_or("")
}

// ---- the TMS's side ----------------------------------------------------------------------

#[when(
    regex = r#"^the TMS orders (keys-rotate|keys-load|params|logs|decommission) for the terminal$"#
)]
async fn order(w: &mut PosWorld, what: String) {
    let d = tms(w).await;
    let tid = tid(w).await;
    let o = match what.as_str() {
        "keys-rotate" => Order::KeysRotate,
        "keys-load" => Order::KeysLoad,
        "params" => Order::Params,
        "logs" => Order::Logs,
        _ => Order::Decommission,
    };
    lock(&d)
        .order(&tid, o)
        .unwrap_or_else(|e| panic!("the TMS cannot order {what} for {tid}: {e}"));
}

#[when(regex = r#"^the TMS publishes parameters version "([^"]+)" with (\w+) = "([^"]*)"$"#)]
async fn publish_parameters(w: &mut PosWorld, version: String, name: String, value: String) {
    let v = serde_json::from_str::<Value>(&value).unwrap_or(Value::String(value));
    publish_bench_set(w, version, name, v).await;
}

/// Publishes version `version` of the bench's parameter set: the bench's parameters with
/// `name` set to `value`.
async fn publish_bench_set(w: &mut PosWorld, version: String, name: String, value: Value) {
    let d = tms(w).await;
    let params = w.bench().await.params.clone();
    let mut terminal = match serde_json::to_value(&params) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    terminal.remove("version");
    terminal.insert(name, value);
    lock(&d).publish_parameters(
        "bench",
        ParameterSet {
            version,
            terminal,
            ..ParameterSet::default()
        },
    );
}

#[when(
    regex = r#"^the TMS publishes parameters version "([^"]+)" (without the|with a wrong check sum on the|with an expired) CA key "([0-9A-F]{2})" of RID "([0-9A-F]{10})"$"#
)]
async fn publish_ca_keys(
    w: &mut PosWorld,
    version: String,
    how: String,
    index: String,
    rid: String,
) {
    let params = w.bench().await.params.clone();
    let mut keys = params.ca_public_keys();
    let at = keys
        .iter()
        .position(|k| k.rid.eq_ignore_ascii_case(&rid) && k.index.eq_ignore_ascii_case(&index))
        .unwrap_or_else(|| panic!("the terminal holds no CA key {rid} {index}: {keys:?}"));
    match how.as_str() {
        "without the" => {
            keys.remove(at);
        }
        "with an expired" => {
            // the month before the bench's simulated start (2026-11)
            if let Some(k) = keys.get_mut(at) {
                k.expiry = "261031".into();
            }
        }
        _ => {
            if let Some(k) = keys.get_mut(at) {
                let first = if k.checksum.starts_with('0') {
                    "1"
                } else {
                    "0"
                };
                k.checksum.replace_range(0..1, first);
            }
        }
    }
    let keys = serde_json::to_value(&keys).unwrap_or_default();
    publish_bench_set(w, version, "ca_keys".into(), keys).await;
}

#[when(
    regex = r#"^the TMS publishes parameters version "([^"]+)" with the terminal action code denial "([0-9A-F]{10})" for AID "([0-9A-F]{10,32})"$"#
)]
async fn publish_tac(w: &mut PosWorld, version: String, denial: String, aid: String) {
    let apps = serde_json::json!([{"aid": aid, "label": "TEST", "tac_default": "DC4000A800",
                                   "tac_denial": denial, "tac_online": "DC4004F800",
                                   "floor_limit": 0, "cvm_limit": 5000}]);
    publish_bench_set(w, version, "applications".into(), apps).await;
}

#[when(
    regex = r#"^the TMS releases firmware "([^"]+)"( whose health check fails)? to the terminal$"#
)]
async fn release(w: &mut PosWorld, version: String, fails: String) {
    let tid = tid(w).await;
    let target = Target {
        tids: vec![tid],
        ..Target::default()
    };
    let health = if fails.is_empty() { "ok" } else { "fail" };
    release_package(w, &version, health, IMAGE_SIZE, target, Vec::new()).await;
}

/// Releases a generated test image of `size` bytes as package `poslab-ref-VERSION`,
/// whose health check after the reboot says `health` (`ok` or `fail`).
pub(super) async fn release_package(
    w: &mut PosWorld,
    version: &str,
    health: &str,
    size: usize,
    target: Target,
    waves: Vec<poslab_tms::config::Wave>,
) {
    let package = PackageConfig {
        id: format!("poslab-ref-{version}"),
        version: version.to_string(),
        image: ImageSource {
            file: None,
            generate: Some(Generate {
                size,
                seed: 7,
                health: health.into(),
            }),
        },
        target,
        waves,
    };
    w.bench()
        .await
        .tms_node()
        .and_then(|n| n.publish_package(package))
        .unwrap_or_else(|e| panic!("the TMS cannot release firmware {version}: {e:#}"));
}

#[when(
    regex = r#"^the TMS (signs its packages with the wrong key|drops the link at (\d+) % of the download|flips the byte at offset (\d+) of its image|serves its image cut to (\d+) bytes|sends the (tmk|pin|mac|data|ipek) key with a wrong check value|offers its package as version "([^"]+)")$"#
)]
async fn tms_fault(
    w: &mut PosWorld,
    what: String,
    percent: String,
    offset: String,
    cut: String,
    usage: String,
    version: String,
) {
    let d = tms(w).await;
    let number = |s: &str, what: &str| -> u64 {
        s.parse()
            .unwrap_or_else(|e| panic!("{what} {s:?} is not a number: {e}"))
    };
    let f = if what.starts_with("signs") {
        FaultKind::WrongSignature
    } else if what.starts_with("drops") {
        FaultKind::DownAtPercent(number(&percent, "the percentage").min(100) as u8)
    } else if what.starts_with("flips") {
        FaultKind::CorruptChunk(number(&offset, "the offset"))
    } else if what.starts_with("serves") {
        FaultKind::TruncatedImage(number(&cut, "the length"))
    } else if what.starts_with("offers") {
        FaultKind::WrongVersion(version)
    } else {
        FaultKind::WrongKcv(usage)
    };
    lock(&d).set_fault(Fault::new(f).times(1));
}

#[when(expr = "the TMS is down")]
async fn tms_down(w: &mut PosWorld) {
    let d = tms(w).await;
    lock(&d).set_fault(Fault::new(FaultKind::Down));
}

#[when(expr = "the TMS is back")]
async fn tms_back(w: &mut PosWorld) {
    let d = tms(w).await;
    lock(&d).clear_faults();
}

// ---- the terminal's side -----------------------------------------------------------------

#[when(expr = "the operator calls the TMS")]
async fn operator_calls(w: &mut PosWorld) {
    w.set_mark();
    let mark = w.mark;
    w.bench().await.press(Key::Function(5));
    w.wait_for(WAIT, "the terminal calling the TMS", |e| {
        displayed(e.get(mark..).unwrap_or(&[]))
            .iter()
            .any(|t| t == "CALLING TMS")
            .then_some(())
    })
    .await;
}

#[when(regex = r"^the terminal loses power when the download reaches (\d+) %$")]
async fn power_loss_at(w: &mut PosWorld, percent: u64) {
    let mark = w.mark;
    let pct = w
        .wait_for(WAIT, &format!("the download reaching {percent} %"), |e| {
            displayed(e.get(mark..).unwrap_or(&[]))
                .iter()
                .filter_map(|t| {
                    t.strip_prefix("DOWNLOADING ")?
                        .strip_suffix('%')?
                        .parse::<u64>()
                        .ok()
                })
                .find(|p| *p >= percent)
        })
        .await;
    assert!(pct < 100, "the download finished before the power went");
    w.pending = None;
    w.bench()
        .await
        .power_cycle()
        .await
        .unwrap_or_else(|e| panic!("power cycle: {e:#}"));
}

#[when(regex = r#"^a replacement terminal "([^"]+)" is provisioned to the same merchant$"#)]
async fn replacement(w: &mut PosWorld, serial: String) {
    let d = tms(w).await;
    let tid = tid(w).await;
    lock(&d)
        .provision_replacement(&tid, &serial)
        .unwrap_or_else(|e| panic!("the TMS cannot bind {serial} to {tid}: {e}"));
    w.set_mark();
    w.bench()
        .await
        .replace_terminal(&serial)
        .await
        .unwrap_or_else(|e| panic!("device exchange: {e:#}"));
}

// ---- checks ------------------------------------------------------------------------------

#[then(
    regex = r#"^the TMS provisioned the terminal with a master key and parameters version "([^"]+)"$"#
)]
async fn provisioned(w: &mut PosWorld, version: String) {
    let kcv = {
        let d = tms(w).await;
        let tid = tid(w).await;
        let k = lock(&d).master_key_kcv(&tid);
        k
    };
    let sent = wait_record(w, "the TMS provisioning the terminal", |r| {
        (r.key_kcvs.contains_key("tmk") && r.params_sent.is_some()).then(|| {
            (
                r.key_kcvs.get("tmk").cloned(),
                r.params_sent.clone(),
                r.serial.clone(),
            )
        })
    })
    .await;
    assert_eq!(
        sent.0.as_deref(),
        Some(kcv.as_str()),
        "the master key's KCV"
    );
    assert_eq!(
        sent.1.as_deref(),
        Some(version.as_str()),
        "the parameter set sent"
    );
    let entries = w.journal();
    let keys_sent = tms_entries(&entries, 0, "frame-out")
        .into_iter()
        .any(|e| processing_code(e) == "9A0000");
    assert!(
        keys_sent,
        "the TMS journaled no master key answer (9A)\n{}",
        w.excerpt(20)
    );
}

#[then(
    regex = r#"^the terminal reported firmware "([^"]+)"(?: and parameters "([^"]+)")? to the TMS$"#
)]
async fn reported(w: &mut PosWorld, firmware: String, params: String) {
    // the call-home (9D) since the mark, after the last install report (9I) if any: what
    // the terminal said it runs once the update ended
    let mark = w.mark;
    let seen = w
        .wait_for(
            WAIT,
            &format!("a call-home reporting firmware {firmware}"),
            |e| {
                let frames: Vec<&Value> = tms_entries(e, mark, "frame-in")
                    .into_iter()
                    .filter(|f| matches!(processing_code(f), "9D0000" | "9I0000"))
                    .collect();
                let from = frames
                    .iter()
                    .rposition(|f| processing_code(f) == "9I0000")
                    .unwrap_or(0);
                let status = frames
                    .get(from..)?
                    .iter()
                    .find(|f| processing_code(f) == "9D0000")?;
                let got = (sub(status, "03")?, sub(status, "04").unwrap_or(""));
                (got.0 == firmware && (params.is_empty() || got.1 == params)).then(|| {
                    (
                        got.0.to_string(),
                        sub(status, "10").unwrap_or("").to_string(),
                    )
                })
            },
        )
        .await;
    assert!(!seen.1.is_empty(), "the call-home says no boot state");
}

#[then(regex = r"^the TMS delivered new session keys$")]
async fn delivered_session_keys(w: &mut PosWorld) {
    let mark = w.mark;
    w.wait_for(WAIT, "the TMS answering 9B and 9G", |e| {
        let out = tms_entries(e, mark, "frame-out");
        let codes: Vec<&str> = out.iter().map(|e| processing_code(e)).collect();
        (codes.contains(&"9B0000") && codes.contains(&"9G0000")).then_some(())
    })
    .await;
    let r = wait_record(w, "the TMS recording the KCVs it delivered", |r| {
        (r.key_kcvs.contains_key("pin") && r.key_kcvs.contains_key("mac")).then(|| r.clone())
    })
    .await;
    assert!(!r.rotate_ordered, "the rotation is still pending: {r:?}");
}

#[then(regex = r#"^the TMS sent parameters version "([^"]+)"$"#)]
async fn params_sent(w: &mut PosWorld, version: String) {
    wait_record(w, &format!("the TMS sending parameters {version}"), |r| {
        (r.params_sent.as_deref() == Some(version.as_str())).then_some(())
    })
    .await;
}

#[then(regex = r#"^the terminal told the TMS it refused parameters "([^"]+)" because "([^"]+)"$"#)]
async fn params_refused(w: &mut PosWorld, version: String, why: String) {
    let want = format!("parameters {version} refused");
    let errors = wait_record(w, &format!("a call-home reporting that {want}"), |r| {
        let errors = &r.status.as_ref()?.errors;
        errors
            .iter()
            .any(|e| e.starts_with(&want))
            .then(|| errors.clone())
    })
    .await;
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&want) && e.contains(&why)),
        "the terminal's errors: {errors:?}"
    );
}

#[then(regex = r#"^the TMS recorded the install of "([^"]+)" as "([^"]+)"$"#)]
async fn install_recorded(w: &mut PosWorld, version: String, outcome: String) {
    // the TMS journals the install report once its record holds it
    w.wait_for(
        WAIT,
        &format!("the TMS journaling an install report for {version}"),
        |e| {
            tms_entries(e, 0, "install")
                .last()
                .map(|i| (i["version"].clone(), i["outcome"].clone()))
        },
    )
    .await;
    let d = tms(w).await;
    let tid = tid(w).await;
    let got = lock(&d)
        .terminal(&tid)
        .and_then(|r| r.installs.last().cloned());
    let got =
        got.unwrap_or_else(|| panic!("no install in the TMS's record: {}", record_text(&d, &tid)));
    assert_eq!(
        (got.version.as_str(), got.outcome.as_str()),
        (version.as_str(), outcome.as_str()),
        "the install report ({}): {}",
        got.detail,
        record_text(&d, &tid)
    );
}

#[then(regex = r"^the download resumed where it stopped$")]
async fn resumed(w: &mut PosWorld) {
    let entries = w.journal();
    let mark = w.mark;
    // the chunks asked after the mark start past the image's first bytes
    let offsets: Vec<u64> = tms_entries(&entries, mark, "frame-in")
        .into_iter()
        .filter(|e| processing_code(e) == "9F0000")
        .filter_map(|e| sub(e, "36")?.parse().ok())
        .collect();
    let first = offsets.first().copied();
    assert!(
        first.is_some_and(|o| o >= (IMAGE_SIZE / 4) as u64),
        "the terminal asked the image again from offset {first:?} (all: {offsets:?})\n{}",
        w.excerpt(20)
    );
    // and in all, no more chunks than one download and a repeat
    let all = tms_entries(&entries, 0, "frame-in")
        .into_iter()
        .filter(|e| processing_code(e) == "9F0000")
        .count();
    assert!(
        all <= IMAGE_SIZE / 4096 + 2,
        "{all} chunk requests for a {IMAGE_SIZE}-byte image"
    );
}

#[then(regex = r"^the TMS received the terminal's logs$")]
async fn logs_received(w: &mut PosWorld) {
    let r = wait_record(w, "a log upload at the TMS", |r| {
        (r.log_uploads > 0).then(|| r.clone())
    })
    .await;
    let logs = r.logs.clone().unwrap_or_default();
    let text = String::from_utf8_lossy(&logs);
    assert!(
        text.contains("power-up"),
        "the uploaded logs ({} bytes) do not show the terminal's power-up: {}",
        logs.len(),
        text.chars().take(300).collect::<String>()
    );
}

#[then(regex = r"^the TMS retired the terminal after it destroyed its keys$")]
async fn retired(w: &mut PosWorld) {
    let kcv = {
        let d = tms(w).await;
        let tid = tid(w).await;
        let k = lock(&d).master_key_kcv(&tid);
        k
    };
    let r = wait_record(w, "the TMS retiring the terminal", |r| {
        r.retired.then(|| r.clone())
    })
    .await;
    assert!(
        r.destroyed_kcvs.iter().any(|k| k == &kcv),
        "the terminal did not confirm destroying its master key {kcv}: {:?}",
        r.destroyed_kcvs
    );
}

#[then(regex = r#"^the TMS knows the terminal as serial "([^"]+)"$"#)]
async fn known_by_serial(w: &mut PosWorld, serial: String) {
    let want = serial.clone();
    wait_record(w, &format!("the TMS binding serial {serial}"), |r| {
        (r.serial.as_deref() == Some(want.as_str())
            && r.status.as_ref().is_some_and(|s| s.serial == want))
        .then_some(())
    })
    .await;
}
