//! Independent peers (pyiso8583, python-escpos, pyscard, ...) that tests run against.
//!
//! In CI (`CI` set) a missing peer is a failure: `.ci/run` installs them all. Locally a
//! test without its peer skips, loudly.

use std::path::PathBuf;
use std::process::Command;

/// The Python interpreter the peers were installed into (`POSLAB_PYTHON`, else `python3`).
pub fn python() -> String {
    std::env::var("POSLAB_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// True when `module` imports in [`python`]. When it does not: panics in CI, and
/// prints a loud skip notice locally so the caller can return early.
#[allow(dead_code)]
pub fn python_module(module: &str, test: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: python module '{module}' is missing in CI; .ci/run must install it");
        }
        eprintln!();
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        eprintln!("!!! SKIPPED {test}: python module '{module}' is not installed");
        eprintln!("!!! install the peers with: pip install -r tests/py/requirements.txt");
        eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    }
    ok
}

/// A script under `tests/py/`.
#[allow(dead_code)]
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(name)
}
