//! Fuzz entry point (`fuzz/fuzz_targets/bench_load.rs`), also replayed over the committed
//! corpus by `cargo test`.

use crate::{Bench, LoadError};

/// Loads arbitrary bytes as a bench file. Oracles: never panics; a syntax error that
/// names a position names a line >= 1; a bench that loads writes back to YAML that loads
/// to the same model.
pub fn load(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Bench::load("fuzz.yaml", text) {
        Ok(bench) => {
            let yaml = bench.to_yaml();
            match Bench::load("fuzz.yaml", &yaml) {
                Ok(again) => assert_eq!(again.file(), bench.file(), "round trip:\n{yaml}"),
                Err(err) => panic!("a loaded bench wrote YAML that does not load: {err}\n{yaml}"),
            }
        }
        Err(LoadError::Syntax { line, message, .. }) => {
            assert!(line != Some(0), "line 0 in {message}");
            assert!(!message.is_empty());
        }
        Err(LoadError::Invalid { problems, .. }) => {
            assert!(!problems.is_empty());
        }
    }
}
