//! The printer state machine: status bytes, faults, ASB, in-order answers, slow printing,
//! and the parser's streaming invariants (proptest) and fuzz corpus replay.

use std::time::Duration;

use poslab_escpos::model::Cut;
use poslab_escpos::{parse_faults, Config, Event, Fault, FaultKind, Printer, Receipt};
use proptest::prelude::*;

const T0: Duration = Duration::ZERO;

fn printer() -> Printer {
    Printer::new(Config::default())
}

/// Receipts, status answers (command, reply) and fault changes (fault, active).
type Drained = (Vec<Receipt>, Vec<(String, Vec<u8>)>, Vec<(String, bool)>);

fn drain(p: &mut Printer) -> Drained {
    let (mut r, mut s, mut f) = (vec![], vec![], vec![]);
    while let Some(e) = p.poll_event() {
        match e {
            Event::Receipt(x) => r.push(x),
            Event::Status { command, reply } => s.push((command, reply)),
            Event::Fault { fault, active, .. } => f.push((fault, active)),
        }
    }
    (r, s, f)
}

fn ask(p: &mut Printer, bytes: &[u8]) -> Vec<u8> {
    p.handle_bytes(T0, bytes);
    p.poll_transmit().unwrap_or_default()
}

#[test]
fn dle_eot_answers_0x12_when_all_is_well() {
    let mut p = printer();
    assert_eq!(
        ask(&mut p, b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04"),
        vec![0x12; 4]
    );
}

#[test]
fn dle_eot_bits_follow_the_epson_layout() {
    let cases: &[(Fault, [u8; 4])] = &[
        (Fault::PaperNearEnd, [0x12, 0x12, 0x12, 0x1E]),
        (Fault::PaperOut, [0x1A, 0x32, 0x12, 0x72]),
        (Fault::CoverOpen, [0x1A, 0x16, 0x12, 0x12]),
        (Fault::Jam, [0x1A, 0x52, 0x1A, 0x12]),
        (Fault::Offline, [0x1A, 0x12, 0x12, 0x12]),
        (Fault::DrawerOpen, [0x16, 0x12, 0x12, 0x12]),
    ];
    for (fault, want) in cases {
        let mut p = printer();
        p.set_fault(T0, *fault);
        let got = ask(&mut p, b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04");
        assert_eq!(got, want.to_vec(), "{fault}");
        assert_eq!(p.status().dle_eot, *want, "{fault}");
        p.clear_fault(T0, fault.kind());
        assert_eq!(
            ask(&mut p, b"\x10\x04\x01\x10\x04\x04"),
            vec![0x12, 0x12],
            "{fault} cleared"
        );
    }
}

#[test]
fn out_of_paper_discards_data_but_answers_real_time_commands() {
    let mut p = printer();
    p.handle_bytes(T0, b"BEFORE\n");
    p.set_fault(T0, Fault::PaperOut);
    let (r, _, f) = drain(&mut p);
    assert_eq!(r.len(), 1, "the receipt in progress ends");
    assert!(r[0].incomplete);
    assert_eq!(r[0].cut, None);
    assert_eq!(f, vec![("paper-out".into(), true)]);
    // Data is discarded, GS r (buffered) is not answered, DLE EOT is.
    assert_eq!(
        ask(&mut p, b"LOST\n\x1dr\x01\x10\x04\x04\x1dV\x00"),
        vec![0x72]
    );
    assert_eq!(p.status().discarded_bytes, 5 + 3 + 3);
    p.clear_fault(T0, FaultKind::PaperOut);
    p.handle_bytes(T0, b"AFTER\n\x1dV\x01");
    let (r, _, _) = drain(&mut p);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].text_lines(), vec!["AFTER"]);
    assert_eq!(r[0].cut, Some(Cut::Partial));
    assert!(!r[0].incomplete);
}

#[test]
fn paper_runs_out_after_n_lines() {
    let mut p = printer();
    p.set_fault(T0, "paper-out-after=3".parse().unwrap());
    p.handle_bytes(T0, b"1\n2\n3\n4\n5\n\x1dV\x00");
    let (r, _, f) = drain(&mut p);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].text_lines(), vec!["1", "2", "3"]);
    assert!(r[0].incomplete);
    assert!(r[0]
        .diagnostics
        .iter()
        .any(|d| d.message.contains("paper ran out")));
    assert!(f.contains(&("paper-out".into(), true)));
    assert_eq!(p.status().paper, "out");
}

#[test]
fn cover_open_holds_the_data_until_closed() {
    let mut p = printer();
    p.set_fault(T0, Fault::CoverOpen);
    p.handle_bytes(T0, b"HELD\n\x1dV\x00");
    assert!(drain(&mut p).0.is_empty());
    assert_eq!(p.status().buffered_bytes, 8);
    p.clear_fault(T0, FaultKind::CoverOpen);
    let (r, _, _) = drain(&mut p);
    assert_eq!(r[0].text_lines(), vec!["HELD"]);
}

#[test]
fn asb_is_sent_when_enabled_and_on_every_change() {
    let mut p = printer();
    assert_eq!(ask(&mut p, b"\x1da\xff"), vec![0x10, 0, 0, 0]);
    p.set_fault(T0, Fault::CoverOpen);
    let msg = p.poll_transmit().unwrap();
    assert_eq!(msg, vec![0x38, 0, 0, 0]);
    assert_eq!(msg[0] & 0x93, 0x10, "receiptio's ASB classifier");
    p.set_fault(T0, Fault::PaperNearEnd);
    assert_eq!(p.poll_transmit().unwrap(), vec![0x38, 0, 0x03, 0]);
    p.set_fault(T0, Fault::Garbage);
    p.clear_fault(T0, FaultKind::Garbage);
    assert_eq!(p.poll_transmit(), None, "no change, no message");
    p.clear_fault(T0, FaultKind::CoverOpen);
    assert_eq!(p.poll_transmit().unwrap(), vec![0x10, 0, 0x03, 0]);
    assert_eq!(ask(&mut p, b"\x1da\x00"), Vec::<u8>::new());
    p.set_fault(T0, Fault::Jam);
    assert_eq!(p.poll_transmit(), None, "disabled");
}

#[test]
fn buffered_status_commands_answer_in_order() {
    let mut p = printer();
    assert_eq!(
        ask(&mut p, b"\x1d(H\x06\x0000ABCD"),
        vec![0x37, 0x22, b'A', b'B', b'C', b'D', 0]
    );
    assert_eq!(ask(&mut p, b"\x1dI\x43"), b"\x5fposlab TM\x00".to_vec());
    p.set_fault(T0, Fault::PaperNearEnd);
    assert_eq!(ask(&mut p, b"\x1dr\x01"), vec![0x03]);
    assert_eq!(
        ask(&mut p, b"\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08"),
        vec![0x37, 0x25, 0]
    );
}

#[test]
fn slow_printing_is_expressed_as_deadlines() {
    let mut p = printer();
    p.set_fault(T0, Fault::Slow(10));
    p.handle_bytes(T0, b"A\nB\nC\n\x1d(H\x06\x0000WXYZ");
    // The first line prints at once; the rest waits for the head.
    assert_eq!(
        p.poll_transmit(),
        None,
        "GS ( H waits for the lines before it"
    );
    let mut now = T0;
    let mut steps = 0;
    while let Some(deadline) = p.poll_timeout() {
        assert!(deadline > now);
        now = deadline;
        p.handle_timeout(now);
        steps += 1;
        assert!(steps < 10);
    }
    assert_eq!(
        now,
        Duration::from_millis(300),
        "3 lines at 10 lines per second"
    );
    assert_eq!(
        p.poll_transmit().unwrap(),
        vec![0x37, 0x22, b'W', b'X', b'Y', b'Z', 0]
    );
}

#[test]
fn garbage_precedes_answers_and_is_seeded() {
    let run = || {
        let mut p = printer();
        p.set_fault(T0, Fault::Garbage);
        ask(&mut p, b"\x10\x04\x01")
    };
    let a = run();
    assert!(a.len() > 1 && a.len() <= 4, "{a:?}");
    assert_eq!(a.last(), Some(&0x12));
    assert_eq!(a, run(), "same seed, same junk");
}

#[test]
fn fault_lists_parse_and_reject_nonsense() {
    assert_eq!(
        parse_faults("paper-near-end,paper-out-after=20,cover-open,jam,offline,slow=10lps,garbage")
            .unwrap(),
        vec![
            Fault::PaperNearEnd,
            Fault::PaperOutAfter(20),
            Fault::CoverOpen,
            Fault::Jam,
            Fault::Offline,
            Fault::Slow(10),
            Fault::Garbage
        ]
    );
    for bad in ["fire", "slow", "slow=0", "jam=3", "paper-out-after=x"] {
        let err = parse_faults(bad).unwrap_err().to_string();
        assert!(err.starts_with("bad fault"), "{err}");
    }
}

#[test]
fn malformed_and_unknown_sequences_become_diagnostics_with_offsets() {
    let rs = poslab_escpos::print_stream(Config::default(), b"OK\n\x1b\xfe\x1dV\x07X\n\x1dV\x00");
    let d: Vec<(u64, &str)> = rs[0]
        .diagnostics
        .iter()
        .map(|d| (d.offset, d.message.as_str()))
        .collect();
    assert_eq!(
        d,
        vec![
            (3, "unknown command 1b fe"),
            (
                5,
                "malformed command 1d 56 07: GS V cut mode 0x07 is unknown"
            )
        ]
    );
    assert_eq!(rs[0].text_lines(), vec!["OK", "X"]);
}

#[test]
fn utf8_passthrough_when_the_printer_is_told_so() {
    let mut stream = b"\x1c(C\x02\x000\x02".to_vec();
    stream.extend("Grüße €\n".as_bytes());
    stream.extend(b"\x1dV\x00");
    let rs = poslab_escpos::print_stream(Config::default(), &stream);
    assert_eq!(rs[0].text_lines(), vec!["Grüße €"]);
}

fn fixtures() -> Vec<Vec<u8>> {
    let dir = format!("{}/../../fixtures/escpos", env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "bin") {
            out.push(std::fs::read(path).unwrap());
        }
    }
    assert!(out.len() >= 3);
    out
}

fn print_in_pieces(stream: &[u8], cuts: &[usize]) -> Vec<Receipt> {
    let mut p = printer();
    let mut last = 0;
    for &c in cuts {
        let c = c.clamp(last, stream.len());
        p.handle_bytes(T0, &stream[last..c]);
        last = c;
    }
    p.handle_bytes(T0, &stream[last..]);
    p.handle_end_of_stream(T0);
    let mut r = drain(&mut p).0;
    r.extend(p.finish_receipt());
    r
}

/// Regression (proptest): DLE ENQ 2 (clear buffers) cleared data that a different split
/// had already printed.
#[test]
fn clearing_buffers_does_not_depend_on_the_split() {
    let stream: &[u8] = b"A\n\x10\x05\x02B\n\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08C\n\x1dV\x00";
    let whole = poslab_escpos::print_stream(Config::default(), stream);
    assert_eq!(whole[0].text_lines(), vec!["A", "B", "C"]);
    for cut in 0..stream.len() {
        assert_eq!(print_in_pieces(stream, &[cut]), whole, "split at {cut}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any split of a real stream prints the same receipts.
    #[test]
    fn any_split_prints_the_same(which in 0usize..3, mut cuts in proptest::collection::vec(0usize..2100, 0..12)) {
        let streams = fixtures();
        let stream = &streams[which % streams.len()];
        cuts.sort_unstable();
        let whole = poslab_escpos::print_stream(Config::default(), stream);
        prop_assert_eq!(print_in_pieces(stream, &cuts), whole);
    }

    /// Byte by byte, too, for arbitrary input.
    #[test]
    fn arbitrary_bytes_never_panic_and_split_invariant(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let whole = poslab_escpos::print_stream(Config::default(), &data);
        let cuts: Vec<usize> = (0..data.len()).collect();
        prop_assert_eq!(print_in_pieces(&data, &cuts), whole);
        poslab_escpos::fuzz::parse(&data);
    }

    /// Arbitrary bytes that look like ESC/POS (mostly introducers and small numbers).
    #[test]
    fn escpos_like_bytes_never_panic(data in proptest::collection::vec(
        prop_oneof![Just(0x1bu8), Just(0x1d), Just(0x1c), Just(0x10), Just(0x0a), 0u8..8, 0x28u8..0x80], 0..400)) {
        poslab_escpos::fuzz::parse(&data);
    }
}

/// The committed fuzz corpus goes through the fuzz target's function on every `cargo test`.
#[test]
fn fuzz_corpus_replays() {
    let dir = format!(
        "{}/../../fuzz/corpus/escpos_parse",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        poslab_escpos::fuzz::parse(&data);
        n += 1;
    }
    assert!(n >= 3, "the seed corpus has {n} files");
}
