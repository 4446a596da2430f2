//! Property tests for the codecs and the replay of the `zvt_apdu` / `zvt_frame` fuzz
//! corpora through the same library functions the fuzz targets call.

use poslab_zvt::apdu::{self, Apdu, Command};
use poslab_zvt::bmp::{Bmp, Fields};
use poslab_zvt::frame::{self, Item};
use poslab_zvt::message::Message;
use proptest::prelude::*;

fn dle_heavy_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![3 => Just(0x10u8), 1 => Just(0x02u8), 1 => Just(0x03u8), 1 => Just(0x06u8), 1 => Just(0x15u8), 4 => any::<u8>()],
        0..600,
    )
}

proptest! {
    #[test]
    fn framing_round_trips_payloads_full_of_dle(payload in dle_heavy_bytes()) {
        let framed = frame::encode(&payload);
        let (item, used) = frame::decode(&framed).unwrap().unwrap();
        prop_assert_eq!(item, Item::Frame(payload.clone()));
        prop_assert_eq!(used, framed.len());
        // every strict prefix needs more bytes
        for cut in [0, 1, 2, framed.len() / 2, framed.len() - 1] {
            prop_assert_eq!(frame::decode(&framed[..cut]).unwrap(), None);
        }
    }

    #[test]
    fn a_flipped_bit_never_passes_as_the_same_frame(payload in dle_heavy_bytes(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut framed = frame::encode(&payload);
        let i = pos.index(framed.len());
        framed[i] ^= 1 << bit;
        if let Ok(Some((Item::Frame(got), _))) = frame::decode(&framed) {
            prop_assert_ne!(got, payload);
        }
    }

    #[test]
    fn apdus_round_trip(class in any::<u8>(), instr in any::<u8>(), data in prop::collection::vec(any::<u8>(), 0..700), long in any::<bool>()) {
        let a = Apdu { command: Command(class, instr), data, long_length: long };
        let bytes = a.to_bytes();
        let (back, used) = apdu::decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        let long_expected = long || a.data.len() >= 255;
        prop_assert_eq!(back, Apdu { long_length: long_expected, ..a });
    }

    #[test]
    fn status_information_round_trips(amount in 0u64..1_000_000_000_000, trace in 0u32..1_000_000, text in "[ -~]{0,120}", result in any::<u8>()) {
        let fields = Fields::new()
            .with(Bmp::new(0x27, vec![result]))
            .with(Bmp::bcd(0x04, amount, 6))
            .with(Bmp::bcd(0x0B, trace as u64, 3))
            .with(Bmp::new(0x3C, text.as_bytes().to_vec()));
        let m = Message::StatusInformation(fields);
        let back = Message::from_apdu(&m.to_apdu()).unwrap();
        prop_assert_eq!(&back, &m);
        let f = back.fields().unwrap();
        prop_assert_eq!(f.amount(), Some(amount));
        prop_assert_eq!(f.trace(), Some(trace));
        prop_assert_eq!(f.additional_text().unwrap(), poslab_sensitive::mask_digit_runs(text.trim_end()));
    }

    #[test]
    fn reservation_commands_round_trip(
        kind in 0u8..3,
        amount in 0u64..1_000_000_000_000,
        receipt in 0u32..10_000,
        currency in prop::option::of(0u16..1000),
        trace in prop::option::of(0u32..1_000_000),
    ) {
        use poslab_zvt::ecr::EcrCommand;
        use poslab_zvt::message::Password;
        let command = match kind {
            0 => EcrCommand::PreAuthorise { amount, currency },
            1 => EcrCommand::BookTotal { receipt, amount },
            _ => EcrCommand::PartialReversal { receipt, amount },
        };
        let mut m = command.to_message(Password::from_number(0));
        if let (Message::BookTotal(fields), Some(t)) = (&mut m, trace) {
            fields.push(Bmp::bcd(0x0B, t as u64, 3));
        }
        let bytes = m.to_apdu().to_bytes();
        let (a, used) = apdu::decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(a.command, Command(0x06, [0x22, 0x24, 0x23][kind as usize]));
        let back = Message::from_apdu(&a).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert!(back.moves_money() && command.moves_money());
        let f = back.fields().unwrap();
        prop_assert_eq!(f.amount(), Some(amount));
        if kind == 0 {
            prop_assert_eq!(f.currency(), currency);
            prop_assert_eq!(f.receipt(), None);
        } else {
            prop_assert_eq!(f.receipt(), Some(receipt));
        }
        if kind == 1 {
            prop_assert_eq!(f.trace(), trace);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
        poslab_zvt::fuzz::apdu(&data);
        poslab_zvt::fuzz::frame(&data);
        let _ = Fields::parse(&data, 0);
    }

    #[test]
    fn arbitrary_messages_reencode_to_their_data(class in prop::sample::select(vec![0x04u8, 0x05, 0x06, 0x80, 0x84]), instr in any::<u8>(), data in prop::collection::vec(any::<u8>(), 0..120)) {
        let a = Apdu::new(Command(class, instr), data);
        if let Ok(m) = Message::from_apdu(&a) {
            prop_assert_eq!(m.to_apdu().data, a.data);
        }
    }
}

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
    assert!(n >= 3, "{target} corpus has seeds");
}

#[test]
fn fuzz_corpus_zvt_apdu_replays() {
    replay("zvt_apdu", poslab_zvt::fuzz::apdu);
}

#[test]
fn fuzz_corpus_zvt_frame_replays() {
    replay("zvt_frame", poslab_zvt::fuzz::frame);
}
