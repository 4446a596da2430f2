//! Replays the committed seed corpora of the `crypto_*` fuzz targets through the same
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
fn crypto_pinblock_corpus_replays() {
    replay("crypto_pinblock", poslab_crypto::fuzz::pin_block);
}

#[test]
fn crypto_ksn_corpus_replays() {
    replay("crypto_ksn", poslab_crypto::fuzz::ksn);
}

#[test]
fn crypto_keyfile_corpus_replays() {
    replay("crypto_keyfile", poslab_crypto::fuzz::key_file);
}
