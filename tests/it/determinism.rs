//! The same seed gives a byte-identical journal twice: `poslab run` on the default bench
//! (simulated time) over a purchase, network faults with random loss, power loss and the
//! close of day, twice with one seed, writes the same bytes into every journal (the
//! scenarios' bench journals under `<out>/journals/` and the terminal's own journals
//! under `<out>/work/`); another seed changes what the seeded loss did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const FEATURES: &[&str] = &[
    "features/transactions/purchase.feature",
    "features/faults/network.feature",
    "features/faults/power-loss.feature",
    "features/close-of-day/settlement.feature",
];

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("poslab-it-det-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the features with `seed`, returns every journal file (path under `out` → bytes).
fn run(seed: u64, out: &Path) -> BTreeMap<String, Vec<u8>> {
    let output = Command::new(env!("CARGO_BIN_EXE_poslab"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("run")
        .args(FEATURES)
        .args(["--seed", &seed.to_string(), "--quiet", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the features must pass:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut files = BTreeMap::new();
    collect(out, out, &mut files);
    files
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(root, &p, files);
        } else if p.extension().is_some_and(|x| x == "jsonl") {
            let key = p.strip_prefix(root).unwrap().display().to_string();
            files.insert(key, std::fs::read(&p).unwrap());
        }
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}:\n  {x}\n  {y}", i + 1);
        }
    }
    format!("lengths {} and {}", a.lines().count(), b.lines().count())
}

#[test]
fn the_same_seed_writes_the_same_journal_bytes_and_another_seed_does_not() {
    let dir = scratch("seed");
    let a = run(7, &dir.join("a"));
    let b = run(7, &dir.join("b"));
    let bench_journals = a.keys().filter(|k| k.starts_with("journals")).count();
    assert!(
        bench_journals >= 15,
        "expected a journal per scenario, got {:?}",
        a.keys().collect::<Vec<_>>()
    );
    assert!(
        a.keys().any(|k| k.ends_with("terminal.jsonl")),
        "the terminal's own journals are missing: {:?}",
        a.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "the two runs wrote different journal files"
    );
    for (name, bytes) in &a {
        assert!(
            bytes == &b[name],
            "{name} differs between two runs with seed 7: {}",
            first_difference(bytes, &b[name])
        );
    }
    // the wall clock of a simulated-time run is the fixed epoch plus simulated time
    let purchase = a
        .iter()
        .find(|(k, _)| k.contains("purchase.feature"))
        .map(|(_, v)| String::from_utf8_lossy(v).to_string())
        .unwrap();
    assert!(
        purchase.contains("\"wall\":\"2026-11-02T09:"),
        "{purchase:.300}"
    );

    // another seed: the seeded packet loss drops other packets (the fault decisions of
    // the lossy link's scenario differ, not only its keys and cryptograms)
    let c = run(8, &dir.join("c"));
    let faults = |bytes: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(bytes)
            .lines()
            .filter(|l| l.contains("\"kind\":\"fault\"") && l.contains("\"link\":\"terminal->host"))
            .map(str::to_owned)
            .collect()
    };
    let lossy: Vec<&String> = a
        .iter()
        .filter(|(k, v)| {
            k.starts_with("journals") && faults(v).iter().any(|l| l.contains("\"type\":\"loss\""))
        })
        .map(|(k, _)| k)
        .collect();
    assert!(
        !lossy.is_empty(),
        "no scenario journaled a packet loss decision"
    );
    for k in lossy {
        assert_ne!(
            faults(&a[k]),
            faults(&c[k]),
            "{k}: seeds 7 and 8 made the same fault decisions: the seed does not reach the faults"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
