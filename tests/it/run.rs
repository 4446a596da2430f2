//! `poslab run` as a user meets it: a wrong expectation fails the run with a message that
//! names the step, the journal around it, the seed and the command that replays it; an
//! undefined step fails the run too; reports are written.

use std::process::Command;

fn poslab() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_poslab"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("poslab-it-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const WRONG: &str = r#"Feature: A deliberately wrong expectation
  Scenario: The host answers 00, the feature expects 51
    Given the bench "default"
    And the terminal has signed on
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the host answered with response code "51"
"#;

#[test]
fn a_wrong_expectation_names_the_step_the_seed_and_the_replay() {
    let dir = scratch("wrong");
    let feature = dir.join("wrong.feature");
    std::fs::write(&feature, WRONG).unwrap();
    let junit = dir.join("junit.xml");
    let out = poslab()
        .args([
            "run",
            feature.to_str().unwrap(),
            "--seed",
            "4242",
            "--junit",
        ])
        .arg(&junit)
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a failed step must fail the run:\n{stdout}"
    );
    assert!(
        stdout.contains("✗ Then the host answered with response code \"51\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("the host answered 00, expected 51"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\"kind\":\"decision\""),
        "journal excerpt missing:\n{stdout}"
    );
    assert!(stdout.contains("seed 4242"), "{stdout}");
    assert!(
        stdout.contains(&format!("poslab run {}:2 --seed 4242", feature.display())),
        "replay command missing:\n{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<failure"), "{xml}");
    assert!(dir.join("out/report.html").exists());
    // card data stays masked in everything the run wrote
    for text in [stdout.to_string(), xml] {
        assert!(
            !text.contains("4761739001010010"),
            "a clear PAN in the run's output"
        );
    }
}

#[test]
fn an_undefined_step_fails_the_run() {
    let dir = scratch("undefined");
    let feature = dir.join("undefined.feature");
    std::fs::write(
        &feature,
        "Feature: Undefined\n  Scenario: A step nobody wrote\n    Given the moon is made of cheese\n",
    )
    .unwrap();
    let out = poslab()
        .args(["run", feature.to_str().unwrap(), "--out"])
        .arg(dir.join("out"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("1 undefined"), "{stdout}");
}

#[test]
fn steps_lists_every_step_with_an_example() {
    let out = poslab().arg("steps").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("Given the host will not answer the next {string}"),
        "{stdout}"
    );
    assert!(
        stdout.contains("e.g. Given the terminal has signed on"),
        "{stdout}"
    );
}

const PAPERLESS_BENCH: &str = r#"name: paperless
nodes:
  terminal: emulated
  host: emulated
  printer:
    emulated: { faults: [paper-out] }
  reader: emulated
  card: emulated
  ecr:
    emulated: { protocol: zvt }
  keypad: emulated
links:
  ecr->terminal: {}
  terminal->host: {}
  terminal->printer: {}
  terminal->reader: {}
  terminal->keypad: {}
  reader->card: {}
"#;

const PAPERLESS: &str = r#"Feature: A printer out of paper from the bench file
  Scenario: The sale completes, the cashier is told, nothing is printed
    Given the bench "paperless"
    And the terminal has signed on
    When the cashier starts a purchase of 12.00 EUR
    And the cardholder inserts card "visa-credit" and enters PIN "1234"
    Then the terminal shows "APPROVED"
    And the terminal tells the cashier "PRINTER OUT OF PAPER"
    And the printer printed 0 receipts
"#;

#[test]
fn printer_faults_stand_from_the_bench_file() {
    let dir = scratch("paperless");
    std::fs::write(dir.join("paperless.yaml"), PAPERLESS_BENCH).unwrap();
    std::fs::write(dir.join("paperless.feature"), PAPERLESS).unwrap();
    let run = |bench: &std::path::Path| {
        poslab()
            .arg("run")
            .arg(dir.join("paperless.feature"))
            .arg("--bench")
            .arg(bench)
            .arg("--out")
            .arg(dir.join("out"))
            .output()
            .unwrap()
    };
    let out = run(&dir.join("paperless.yaml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // a misspelt fault stops the run and names the file and the key
    std::fs::write(
        dir.join("bad.yaml"),
        PAPERLESS_BENCH.replace("paper-out", "paper-gone"),
    )
    .unwrap();
    let out = run(&dir.join("bad.yaml"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("bad.yaml: nodes.printer.emulated.faults: bad fault 'paper-gone'"),
        "{stdout}"
    );
}
