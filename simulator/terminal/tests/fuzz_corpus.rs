//! Replays the committed seed corpus of the `keypad` fuzz target through the same library
//! function the target calls.

fn replay(target: &str, f: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        f(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n >= 10, "{target}: corpus has seeds");
}

#[test]
fn keypad_corpus_replays() {
    replay("keypad", poslab_terminal::fuzz::keypad);
}

#[test]
fn card_answers_corpus_replays() {
    replay("terminal_card_answers", poslab_terminal::fuzz::card_answers);
}
