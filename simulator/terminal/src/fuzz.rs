//! Entry points for the cargo-fuzz targets (`fuzz/fuzz_targets/keypad.rs`) and the test
//! that replays their seed corpus (`tests/fuzz_corpus.rs`).

use crate::keypad::{self, Decoder, PadLine, MAX_LINE};

/// `keypad`: arbitrary stream bytes through the keypad [`Decoder`]. Checks that pushing the
/// bytes in chunks (cut where the data says) gives the same items as pushing them at once,
/// that the unfinished-line buffer stays within `MAX_LINE + 1` bytes, that every error
/// points inside the stream, and that every decoded line encodes and decodes back to itself.
pub fn keypad(data: &[u8]) {
    let whole = decode(data, &[]);
    // Cut points from the data itself: after every byte whose low bits are zero.
    let cuts: Vec<usize> = data
        .iter()
        .enumerate()
        .filter(|(_, &b)| b & 0x0f == 0)
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(decode(data, &cuts), whole, "chunking changed the items");
    for item in whole {
        match item {
            Ok(line) => {
                let _ = format!("{line} {line:?}");
                let mut d = Decoder::new();
                d.push(&keypad::encode(&line));
                assert_eq!(d.next(), Some(Ok(line)), "round trip");
                assert_eq!(d.next(), None);
            }
            Err(e) => {
                assert!(
                    e.offset() < data.len() as u64,
                    "offset {e} outside the stream"
                );
                let _ = e.to_string();
            }
        }
    }
}

type Item = Result<PadLine, keypad::KeypadError>;

fn decode(data: &[u8], cuts: &[usize]) -> Vec<Item> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    let mut from = 0;
    for &c in cuts.iter().chain([&data.len()]) {
        d.push(data.get(from..c).unwrap_or_default());
        assert!(
            d.buffered() <= MAX_LINE + 1,
            "buffer {} bytes",
            d.buffered()
        );
        out.extend(std::iter::from_fn(|| d.next()));
        from = c;
    }
    assert_eq!(d.position(), data.len() as u64);
    out
}
