//! The feature suite as a `cargo test` target (harness = false): the same run as
//! `poslab run features/`, against the all-emulated bench (simulated time) and against the
//! bench where the terminal is `poslab terminal` spawned as a process (real time, ptys and
//! loopback ports). Answers libtest's and nextest's `--list` and ignores the other libtest
//! flags it does not need.

use std::process::ExitCode;

use poslab::run::runner::{self, RunSpec};

struct Suite {
    name: &'static str,
    /// Needs real hardware: run only with `--ignored` / `--include-ignored` (nextest:
    /// `--run-ignored only`), against the bench named by POSLAB_HIL_BENCH.
    hil: bool,
    bench: &'static str,
    /// Tag expression: the process bench runs in real time, so scenarios that wait out
    /// long timers on purpose are left to the simulated bench.
    tags: Option<&'static str>,
}

const SUITES: &[Suite] = &[
    Suite {
        name: "features::default_bench",
        hil: false,
        bench: "scenarios/default.yaml",
        tags: None,
    },
    Suite {
        name: "features::process_bench",
        hil: false,
        bench: "scenarios/process.yaml",
        // @embedded-terminal: the bench acts on the embedded terminal itself (its master key)
        tags: Some("not @simulated-time and not @embedded-terminal and not @hil"),
    },
    Suite {
        name: "features::hil_bench",
        hil: true,
        bench: "scenarios/examples/desk-terminal.yaml",
        tags: Some("@hil"),
    },
];

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
    if args.iter().any(|a| a == "--list") {
        for s in SUITES.iter().filter(|s| wanted(s)) {
            println!("{}: test", s.name);
        }
        return ExitCode::SUCCESS;
    }
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let selected: Vec<&Suite> = SUITES
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
            shard: None,
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
    println!(
        "\ntest result: {}. {} passed; {failed} failed",
        if failed == 0 { "ok" } else { "FAILED" },
        selected.len() - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
