//! Entry points for the cargo-fuzz targets (`fuzz/fuzz_targets/zvt_*.rs`) and the tests that
//! replay their seed corpora. Each parses arbitrary bytes and checks a round trip.

use crate::apdu;
use crate::frame::{self, Item};
use crate::message::Message;

/// `zvt_apdu`: APDU stream -> messages; every decoded message re-encodes to the same
/// command and data.
pub fn apdu(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((a, used))) = apdu::decode(rest) {
        assert!(used > 0 && used <= rest.len());
        let again = a.to_bytes();
        assert_eq!(again, rest.get(..used).unwrap_or(&[]), "apdu round trip");
        if let Ok(m) = Message::from_apdu(&a) {
            let back = m.to_apdu();
            assert_eq!(back.command, a.command, "command round trip");
            assert_eq!(back.data, a.data, "data round trip for {}", a.command);
            let _ = format!("{m:?}");
            let _ = m.fields();
        }
        rest = rest.get(used..).unwrap_or(&[]);
    }
}

/// `zvt_frame`: serial line bytes -> items; every good frame re-frames to the same bytes.
pub fn frame(data: &[u8]) {
    let mut rest = data;
    let mut steps = 0usize;
    while let Ok(Some((item, used))) = frame::decode(rest) {
        assert!(used <= rest.len());
        if let Item::Frame(bytes) = &item {
            assert_eq!(
                frame::encode(bytes),
                rest.get(..used).unwrap_or(&[]),
                "frame round trip"
            );
            self::apdu(bytes);
        }
        rest = rest.get(used.max(1)..).unwrap_or(&[]);
        steps += 1;
        assert!(steps <= data.len() + 1);
    }
}
