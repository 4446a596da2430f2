//! Rolling firmware out to a fleet: terminals at the bench's TMS beside the one under test
//! ([`crate::fleet::FleetTerminal`], real firmware slots, maintenance only), packages
//! targeted by TID, model and running version and released in waves, and what each
//! terminal of the fleet ended up running. Fleet terminals are numbered from 1 in the
//! order the steps added them (TIDs `00000101`, `00000102`, ...).

use cucumber::gherkin::Step;
use cucumber::{given, then, when};
use poslab_tms::config::{Target, TerminalEntry, Wave};

use super::maintenance::release_package;

use crate::fleet::{call_over_pipe, FleetTerminal};
use crate::run::world::PosWorld;

/// Size of the fleet's test packages.
const IMAGE_SIZE: usize = 16_384;

fn package_id(version: &str) -> String {
    format!("poslab-ref-{version}")
}

/// `"a", "b" and "c"` → `[a, b, c]`.
fn quoted(list: &str) -> Vec<String> {
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// `1, 2 and 3` → `[1, 2, 3]` (1-based fleet numbers).
fn numbers(list: &str) -> Vec<usize> {
    list.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .unwrap_or_else(|e| panic!("{s:?} is not a number: {e}"))
        })
        .collect()
}

#[given(
    regex = r#"^the TMS also manages (\d+) terminals? of model "([^"]+)" running firmware "([^"]+)"$"#
)]
async fn manages(w: &mut PosWorld, count: usize, model: String, version: String) {
    let mid = w.bench().await.params.mid.clone();
    let device = w.bench().await.tms().unwrap_or_else(|e| panic!("{e:#}"));
    for _ in 0..count {
        let n = w.fleet.len() + 1;
        let tid = format!("{:08}", 100 + n);
        device
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add_terminal(&TerminalEntry {
                tid: tid.clone(),
                mid: mid.clone(),
                model: Some(model.clone()),
                ..TerminalEntry::default()
            })
            .unwrap_or_else(|e| panic!("the TMS cannot register {tid}: {e}"));
        w.fleet.push(FleetTerminal::new(
            &format!("FL-{n:04}"),
            &model,
            Some(&tid),
            &version,
        ));
    }
}

fn waves(step: &Step) -> Vec<Wave> {
    let Some(table) = step.table.as_ref() else {
        return Vec::new();
    };
    let mut rows = table.rows.iter();
    let header: Vec<String> = rows
        .next()
        .map(|r| r.iter().map(|c| c.trim().to_string()).collect())
        .unwrap_or_default();
    rows.map(|row| {
        let mut wave = Wave::default();
        for (name, cell) in header.iter().zip(row) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            let number = || -> u32 {
                cell.parse()
                    .unwrap_or_else(|e| panic!("waves: {name} {cell:?}: {e}"))
            };
            match name.as_str() {
                "size" => wave.size = Some(number() as usize),
                "after_successes" => wave.after_successes = Some(number()),
                "max_failures" => wave.max_failures = Some(number()),
                "at" => wave.at = Some(cell.to_string()),
                other => {
                    panic!("waves: no column {other:?} (size, after_successes, at, max_failures)")
                }
            }
        }
        wave
    })
    .collect()
}

async fn release(w: &mut PosWorld, version: &str, fails: bool, target: Target, waves: Vec<Wave>) {
    let health = if fails { "fail" } else { "ok" };
    release_package(w, version, health, IMAGE_SIZE, target, waves).await;
}

#[when(
    regex = r#"^the TMS releases firmware "([^"]+)"( whose health check fails)? to model "([^"]+)" on firmware "([^"]+)"(?: in waves:)?$"#
)]
async fn release_to_model(
    w: &mut PosWorld,
    version: String,
    fails: String,
    model: String,
    from: String,
    step: &Step,
) {
    let target = Target {
        models: vec![model],
        versions: vec![from],
        ..Target::default()
    };
    release(w, &version, !fails.is_empty(), target, waves(step)).await;
}

#[when(regex = r#"^the TMS releases firmware "([^"]+)" to the fleet's terminals? ([\d, and]+)$"#)]
async fn release_to_tids(w: &mut PosWorld, version: String, which: String) {
    let tids = numbers(&which)
        .into_iter()
        .map(|n| {
            w.fleet
                .get(n.wrapping_sub(1))
                .and_then(|t| t.tid.clone())
                .unwrap_or_else(|| panic!("the fleet has no terminal {n}"))
        })
        .collect();
    let target = Target {
        tids,
        ..Target::default()
    };
    release(w, &version, false, target, Vec::new()).await;
}

#[when(expr = "the fleet calls the TMS")]
async fn fleet_calls(w: &mut PosWorld) {
    let server = w
        .bench()
        .await
        .tms_node()
        .unwrap_or_else(|e| panic!("{e:#}"))
        .server
        .clone();
    let mut fleet = std::mem::take(&mut w.fleet);
    let mut calls = Vec::new();
    for (i, t) in fleet.iter_mut().enumerate() {
        let n = 10_000 + (w.fleet_calls.len() + i) as u64;
        calls.push(call_over_pipe(&server, t, n).await);
    }
    w.fleet = fleet;
    w.fleet_calls = calls;
}

#[then(regex = r#"^the fleet runs firmware ("[^"]+"(?:(?:, | and )"[^"]+")*)$"#)]
async fn fleet_runs(w: &mut PosWorld, list: String) {
    let want = quoted(&list);
    let have: Vec<String> = w.fleet.iter().map(FleetTerminal::version).collect();
    assert_eq!(
        have, want,
        "what the fleet runs (terminal 1 first); last calls: {:#?}",
        w.fleet_calls
    );
}

#[then(
    regex = r#"^the TMS offered "([^"]+)" to (no terminal|terminals? [\d, and]+) of the fleet in their last calls$"#
)]
async fn offered(w: &mut PosWorld, version: String, which: String) {
    let want = if which == "no terminal" {
        Vec::new()
    } else {
        numbers(&which)
    };
    let have: Vec<usize> = w
        .fleet_calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.offered.as_ref().is_some_and(|(_, v)| *v == version))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        have, want,
        "the fleet's terminals offered {version}; last calls: {:#?}",
        w.fleet_calls
    );
}

/// The TMS's rollout of package `poslab-ref-VERSION`.
async fn rollout_of(w: &mut PosWorld, version: &str) -> poslab_tms::device::Rollout {
    let device = w.bench().await.tms().unwrap_or_else(|e| panic!("{e:#}"));
    let rollout = device
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .rollout(&package_id(version));
    rollout.unwrap_or_else(|| panic!("the TMS has no package {version}"))
}

#[then(regex = r#"^the rollout of "([^"]+)" put the fleet's terminals in waves ([\d, and-]+)$"#)]
async fn rollout_waves(w: &mut PosWorld, version: String, list: String) {
    let rollout = rollout_of(w, &version).await;
    let have: Vec<String> = w
        .fleet
        .iter()
        .map(|t| {
            rollout
                .members
                .iter()
                .find(|(tid, _)| Some(tid) == t.tid.as_ref())
                .map(|(_, wave)| (wave + 1).to_string())
                .unwrap_or_else(|| "-".into())
        })
        .collect();
    let want: Vec<String> = list
        .split([',', ' '])
        .filter(|s| !s.is_empty() && *s != "and")
        .map(str::to_string)
        .collect();
    assert_eq!(have, want, "waves of the fleet's terminals: {rollout:?}");
}

#[then(regex = r#"^the TMS (halted|did not halt) the rollout of "([^"]+)"$"#)]
async fn halted(w: &mut PosWorld, how: String, version: String) {
    let rollout = rollout_of(w, &version).await;
    assert_eq!(rollout.halted, how == "halted", "{rollout:?}");
}
