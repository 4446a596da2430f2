//! The feature suite as a `cargo test` target (harness = false): the same run as
//! `poslab run features/`, against the all-emulated bench (simulated time) and against the
//! bench where the terminal is `poslab terminal` spawned as a process (real time, ptys and
//! loopback ports). Answers libtest's and nextest's `--list` and ignores the other libtest
//! flags it does not need.
//!
//! The process bench is four suites, a quarter of its scenarios each (`--shard k/4`):
//! most of its time is spent waiting out real link timers, so when more than one suite
//! is selected each runs in its own child process (this binary again, `--exact NAME`)
//! and they wait side by side. nextest runs them as separate tests anyway.

use std::process::ExitCode;

use poslab::run::runner::{self, RunSpec};

struct Suite {
    name: String,
    /// Needs real hardware: run only with `--ignored` / `--include-ignored` (nextest:
    /// `--run-ignored only`), against the bench named by POSLAB_HIL_BENCH.
    hil: bool,
    bench: &'static str,
    /// (K, N): the K-th of N shards of the bench's scenarios.
    shard: Option<(u32, u32)>,
    /// Tag expression: the process bench runs in real time, so scenarios that wait out
    /// long timers on purpose are left to the simulated bench.
    tags: Option<&'static str>,
}

/// @embedded-terminal: the bench acts on the embedded terminal itself (its master key).
const PROCESS_TAGS: &str = "not @simulated-time and not @embedded-terminal and not @hil";

/// Set in the child processes that run one suite each.
const CHILD_ENV: &str = "POSLAB_FEATURES_CHILD";

/// Shards of the process bench, run side by side (its longest scenario waits 80 s).
const PROCESS_SHARDS: u32 = 4;

fn suites() -> Vec<Suite> {
    let mut suites = vec![Suite {
        name: "features::default_bench".into(),
        hil: false,
        bench: "scenarios/default.yaml",
        shard: None,
        tags: None,
    }];
    for k in 1..=PROCESS_SHARDS {
        suites.push(Suite {
            name: format!("features::process_bench_{k}of{PROCESS_SHARDS}"),
            hil: false,
            bench: "scenarios/process.yaml",
            shard: Some((k, PROCESS_SHARDS)),
            tags: Some(PROCESS_TAGS),
        });
    }
    suites.push(Suite {
        name: "features::hil_bench".into(),
        hil: true,
        bench: "scenarios/examples/desk-terminal.yaml",
        shard: None,
        tags: Some("@hil"),
    });
    suites
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ignored_only = args.iter().any(|a| a == "--ignored");
    let include_ignored = args.iter().any(|a| a == "--include-ignored");
    let wanted = |s: &Suite| {
        if ignored_only {
            s.hil
        } else {
            !s.hil || include_ignored
        }
    };
    let all = suites();
    if args.iter().any(|a| a == "--list") {
        for s in all.iter().filter(|s| wanted(s)) {
            println!("{}: test", s.name);
        }
        return ExitCode::SUCCESS;
    }
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&Suite> = all
        .iter()
        .filter(|s| wanted(s))
        .filter(|s| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        s.name == f.as_str()
                    } else {
                        s.name.contains(f.as_str())
                    }
                })
        })
        .collect();
    // the process bench starts the poslab binary Cargo built for this test
    std::env::set_var("POSLAB_BIN", env!("CARGO_BIN_EXE_poslab"));
    let root = env!("CARGO_MANIFEST_DIR");
    if let Err(e) = std::env::set_current_dir(root) {
        eprintln!("cannot enter {root}: {e}");
        return ExitCode::FAILURE;
    }
    if selected.len() > 1 && std::env::var_os(CHILD_ENV).is_none() {
        return run_side_by_side(&selected);
    }
    let mut failed = 0;
    for s in &selected {
        println!("\n=== {} ({}) ===", s.name, s.bench);
        let bench_path = match (s.hil, std::env::var("POSLAB_HIL_BENCH")) {
            (true, Ok(p)) => p,
            _ => s.bench.to_string(),
        };
        let bench = match poslab::cmd::run::load_bench(Some(std::path::Path::new(&bench_path))) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: {e:#}", s.name);
                failed += 1;
                continue;
            }
        };
        let out = std::path::Path::new("target/poslab-features").join(s.name.replace("::", "-"));
        let spec = RunSpec {
            paths: vec!["features".into()],
            bench,
            tags: s.tags.map(str::to_owned),
            seed: 1,
            out: out.clone(),
            shard: s.shard,
            replay_prefix: "cargo run -- run".into(),
            bench_arg: Some(bench_path.clone()),
            quiet: false,
        };
        match runner::run(spec) {
            Ok(report) => {
                let _ = poslab::report::write_all(
                    &report,
                    Some(&out.join("junit.xml")),
                    None,
                    Some(&out.join("report.html")),
                );
                let (p, f, o) = report.counts();
                println!(
                    "test {} ... {} ({p} passed, {f} failed, {o} undefined or skipped, {:.1} s)",
                    s.name,
                    if report.passed() && p > 0 {
                        "ok"
                    } else {
                        "FAILED"
                    },
                    report.duration.as_secs_f64()
                );
                if !report.passed() || p == 0 {
                    failed += 1;
                }
            }
            Err(e) => {
                println!("test {} ... FAILED: {e:#}", s.name);
                failed += 1;
            }
        }
    }
    summary(selected.len(), failed, "")
}

/// libtest's closing line, and the exit code that goes with it.
fn summary(selected: usize, failed: usize, note: &str) -> ExitCode {
    println!(
        "\ntest result: {}. {} passed; {failed} failed{note}",
        if failed == 0 { "ok" } else { "FAILED" },
        selected - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs each suite in a child process (this binary, `--exact NAME`), all at once; prints
/// each child's output as it finishes and fails when any child fails.
fn run_side_by_side(selected: &[&Suite]) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot find this test binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut children = Vec::new();
    for s in selected {
        let child = std::process::Command::new(&exe)
            .args(["--exact", s.name.as_str()])
            .args(
                std::env::args()
                    .skip(1)
                    .filter(|a| a == "--ignored" || a == "--include-ignored"),
            )
            .env(CHILD_ENV, "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        children.push((s.name.as_str(), child));
    }
    let mut failed = 0;
    for (name, child) in children {
        let output = match child.and_then(|c| c.wait_with_output()) {
            Ok(o) => o,
            Err(e) => {
                println!("test {name} ... FAILED: cannot run it in a child process: {e}");
                failed += 1;
                continue;
            }
        };
        print!("{}", String::from_utf8_lossy(&output.stdout));
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        if !output.status.success() {
            failed += 1;
        }
    }
    summary(selected.len(), failed, " (each suite in its own process)")
}
