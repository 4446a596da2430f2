//! `poslab chaos` as a user meets it: random fault plans over purchases on the reference
//! terminal keep the money safe (exit 0); the same plans against a terminal that skips
//! its reversals (`--unsafe-no-reversal`, mutation testing of the checker) break it, and
//! chaos says so with the seed, a minimal plan of one or two items and a replay command
//! that breaks it again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SALES: &str = r#"@lifecycle
Feature: Purchases under chaos
  Scenario: Three purchases
    Given the bench "default"
    And the terminal has signed on
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    When the cashier starts a purchase of 7.50 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    When the cashier starts a purchase of 3.20 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
"#;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("poslab-it-chaos-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chaos(args: &[&str], feature: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poslab"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("chaos")
        .args(args)
        .arg("--features")
        .arg(feature)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_reference_terminal_keeps_the_money_safe_under_random_plans() {
    let dir = scratch("safe");
    let feature = dir.join("sales.feature");
    std::fs::write(&feature, SALES).unwrap();
    let out = chaos(&["--runs", "6", "--seed", "1"], &feature, &dir.join("out"));
    let t = text(&out);
    assert!(out.status.success(), "chaos found a violation:\n{t}");
    assert!(t.contains("6 run(s), 0 money violation(s)"), "{t}");
    // the plans were not empty: every run applied faults
    assert_eq!(t.matches("money safe").count(), 6, "{t}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/chaos.json")).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    assert!(runs
        .iter()
        .all(|r| !r["plan"]["items"].as_array().unwrap().is_empty()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_terminal_that_skips_its_reversals_is_caught_and_shrunk_to_a_minimal_plan() {
    let dir = scratch("unsafe");
    let feature = dir.join("sales.feature");
    std::fs::write(&feature, SALES).unwrap();
    let out_dir = dir.join("out");
    let out = chaos(
        &["--runs", "8", "--seed", "1", "--unsafe-no-reversal"],
        &feature,
        &out_dir,
    );
    let t = text(&out);
    assert!(
        !out.status.success(),
        "the unsafe terminal went unnoticed:\n{t}"
    );
    assert!(t.contains("VIOLATION seed "), "{t}");
    assert!(
        t.contains("the host charged") && t.contains("but the register was told of"),
        "{t}"
    );
    // the first finding: its seed, its minimal plan file and the replay command
    let line = t
        .lines()
        .find(|l| l.starts_with("VIOLATION seed "))
        .unwrap();
    let seed: u64 = line["VIOLATION seed ".len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let plan_file = out_dir.join(format!("violation-{seed}.json"));
    let plan: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    let items = plan["items"].as_array().unwrap();
    assert!(
        (1..=2).contains(&items.len()),
        "the plan was not shrunk: {plan:#}\n{t}"
    );
    let replay = t
        .lines()
        .find_map(|l| l.trim().strip_prefix("replay: "))
        .unwrap();
    assert!(
        replay.starts_with(&format!("poslab chaos --seed {seed} --plan ")),
        "{replay}"
    );
    assert!(replay.contains("--unsafe-no-reversal"), "{replay}");
    // the replay breaks the money again, with the minimal plan alone
    let again = chaos(
        &[
            "--seed",
            &seed.to_string(),
            "--plan",
            plan_file.to_str().unwrap(),
            "--unsafe-no-reversal",
        ],
        &feature,
        &dir.join("replay"),
    );
    let t2 = text(&again);
    assert!(!again.status.success(), "the replay did not break:\n{t2}");
    assert!(t2.contains("1 run(s), 1 money violation(s)"), "{t2}");
    // and the same plan on the reference terminal is safe: the flag is the bug
    let safe = chaos(
        &[
            "--seed",
            &seed.to_string(),
            "--plan",
            plan_file.to_str().unwrap(),
        ],
        &feature,
        &dir.join("safe"),
    );
    assert!(safe.status.success(), "{}", text(&safe));
    let _ = std::fs::remove_dir_all(&dir);
}
