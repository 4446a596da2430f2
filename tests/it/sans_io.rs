//! Invariant: nothing under `simulator/` depends on tokio (or any async runtime).
//! Codecs and device state machines take bytes and `now`; the runtime lives in `poslab`.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

const RUNTIMES: &[&str] = &["tokio", "async-std", "smol", "mio"];

#[test]
fn simulator_crates_have_no_async_runtime_in_their_dependency_tree() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");

    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or(""),
                p["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let sim_root = format!("{}/simulator/", env!("CARGO_MANIFEST_DIR"));
    let simulator: Vec<&str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| {
            p["manifest_path"]
                .as_str()
                .unwrap_or("")
                .starts_with(&sim_root)
        })
        .map(|p| p["id"].as_str().unwrap_or(""))
        .collect();
    assert!(
        simulator.len() >= 3,
        "found the simulator crates: {simulator:?}"
    );

    // normal and build edges only: a dev-dependency (a test harness) may use tokio
    let mut edges: HashMap<&str, Vec<&str>> = HashMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve") {
        let id = node["id"].as_str().unwrap_or("");
        for dep in node["deps"].as_array().into_iter().flatten() {
            let runtime_edge = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if runtime_edge {
                edges
                    .entry(id)
                    .or_default()
                    .push(dep["pkg"].as_str().unwrap_or(""));
            }
        }
    }
    for root in simulator {
        let mut seen = HashSet::new();
        let mut stack = vec![(root, vec![names[root]])];
        while let Some((id, path)) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            let name = names.get(id).copied().unwrap_or("?");
            assert!(
                !RUNTIMES.contains(&name),
                "{} depends on {name}: {}",
                names[root],
                path.join(" → ")
            );
            for next in edges.get(id).into_iter().flatten() {
                let mut p = path.clone();
                p.push(names.get(next).copied().unwrap_or("?"));
                stack.push((next, p));
            }
        }
    }
}
