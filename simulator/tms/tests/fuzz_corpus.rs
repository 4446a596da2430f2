//! Replays the committed seed corpora of the `tms_*` fuzz targets through the same
//! library functions the targets call.

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
    assert!(n >= 3, "{target}: corpus has seeds");
}

#[test]
fn tms_subelements_corpus_replays() {
    replay("tms_subelements", poslab_tms::fuzz::subelements);
}

#[test]
fn tms_config_corpus_replays() {
    replay("tms_config", poslab_tms::fuzz::config);
}

#[test]
fn tms_session_corpus_replays() {
    replay("tms_session", poslab_tms::fuzz::session);
}
