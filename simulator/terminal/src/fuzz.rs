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

/// `terminal_card_answers`: arbitrary bytes as every card answer the terminal's kernel
/// reads (directory, FCI, GPO, records' AFL, CVM list, cryptogram) and as a key exchange's
/// DE 48. Nothing may panic; what parses must be consistent (an AFL names whole records,
/// a cryptogram's type bits are one of AAC/TC/ARQC or neither).
pub fn card_answers(data: &[u8]) {
    use crate::emv;
    if let Ok(c) = emv::candidates(data) {
        assert!(
            c.windows(2).all(|w| w[0].priority <= w[1].priority),
            "sorted by priority"
        );
    }
    let _ = emv::pse_sfi(data);
    let _ = emv::pdol(data);
    if let Ok((_, afl)) = emv::processing_options(data) {
        let _ = emv::afl_records(&afl);
    }
    if let Ok(records) = emv::afl_records(data) {
        assert!(records.iter().all(|(sfi, r)| *sfi > 0 && *r > 0));
    }
    let amount = data.first().map_or(0, |b| u64::from(*b) * 100);
    let _ = emv::select_cvm(data, amount);
    if let Ok(c) = emv::cryptogram(data) {
        assert!(!(c.is_arqc() && c.is_tc()));
    }
    let mut values = emv::TagValues::new();
    if let Ok(items) = poslab_tlv::parse(data) {
        values.absorb(&items);
    }
    if let Ok(dol) = values.dol(data) {
        let want: usize = poslab_tlv::parse_dol(data)
            .map(|d| d.iter().map(|(_, l)| l).sum())
            .unwrap_or(0);
        assert_eq!(
            dol.len(),
            want,
            "DOL values have the lengths the DOL asks for"
        );
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let tmk = poslab_crypto::Key::tdes(&[0x11; 16]);
        if let Ok(tmk) = tmk {
            let _ = crate::iso::session_keys(text, &tmk);
        }
    }
}
