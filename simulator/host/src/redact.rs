//! Raw bytes for the journal, with card numbers and track data masked.
//!
//! The journal keeps raw bytes only for frames that did not decode (a decoded message is
//! journaled as its masked, decoded view). Such bytes can hold anything, so they are shown
//! as hex in which every stretch that could be a card number or track data is masked:
//! - a run of ASCII digits (and the track 2 separators `=`/`D`) holding 12 or more
//!   digits: masked like a PAN (first six and last four digits kept) or, when it contains
//!   a separator, like track 2 (everything after the separator masked);
//! - a run of packed BCD (two decimal digits per byte, `D` separator and `F` padding
//!   nibbles allowed) of 6 bytes or more: the same, nibble by nibble.
//!
//! A masked byte shows as `**` and a masked nibble as `*`.

use poslab_sensitive::{mask_pan, mask_track2};

/// Hex of `bytes` with card-number-like stretches masked.
pub fn masked_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    let mut i = 0;
    while i < bytes.len() {
        let rest = bytes.get(i..).unwrap_or_default();
        let ascii = ascii_run(rest);
        if ascii > 0 {
            let run = rest.get(..ascii).unwrap_or_default();
            let text: String = run.iter().map(|&b| b as char).collect();
            let masked = mask_run(&text);
            for (orig, m) in run.iter().zip(masked.chars()) {
                if m == '*' {
                    out.push_str("**");
                } else {
                    push_hex(&mut out, *orig);
                }
            }
            i += ascii;
            continue;
        }
        let bcd = bcd_run(rest);
        if bcd > 0 {
            let run = rest.get(..bcd).unwrap_or_default();
            let nibbles: String = run
                .iter()
                .flat_map(|b| [b >> 4, b & 0x0f])
                .map(|n| {
                    char::from_digit(u32::from(n), 16)
                        .unwrap_or('?')
                        .to_ascii_uppercase()
                })
                .collect();
            out.push_str(&mask_run(&nibbles));
            i += bcd;
            continue;
        }
        if let Some(b) = rest.first() {
            push_hex(&mut out, *b);
        }
        i += 1;
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0x0f)] as char);
}

/// Masks a run of digits with optional separators (`=`, `D`) and padding (`F`).
fn mask_run(text: &str) -> String {
    if text.contains(['=', 'D', 'd']) {
        // the separator stays, the PAN before it shows 6 + 4, everything after is masked;
        // a run starting with a separator has no PAN to show
        let masked = mask_track2(text);
        if text.starts_with(['=', 'D', 'd']) {
            return masked
                .chars()
                .map(|c| if c.is_ascii_digit() { '*' } else { c })
                .collect();
        }
        masked
    } else {
        let digits = text.trim_end_matches(['F', 'f']);
        let mut m = mask_pan(digits);
        m.push_str(text.get(digits.len()..).unwrap_or_default());
        m
    }
}

/// The length of a run of ASCII digits and track separators at the start of `b` that
/// holds at least 12 digits, or 0.
fn ascii_run(b: &[u8]) -> usize {
    let len = b
        .iter()
        .take_while(|&&c| c.is_ascii_digit() || c == b'=' || c == b'D' || c == b'd')
        .count();
    let digits = b.iter().take(len).filter(|c| c.is_ascii_digit()).count();
    if digits >= 12 {
        len
    } else {
        0
    }
}

/// The length of a run of packed-BCD bytes (nibbles 0-9, `D` separator, `F` padding) at
/// the start of `b`, 6 bytes or more, or 0.
fn bcd_run(b: &[u8]) -> usize {
    let ok = |n: u8| n <= 9 || n == 0xD || n == 0xF;
    let len = b
        .iter()
        .take_while(|&&c| ok(c >> 4) && ok(c & 0x0f))
        .count();
    if len >= 6 {
        len
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PAN: &str = "4761739001010010";

    #[test]
    fn ascii_pans_and_tracks_are_masked() {
        let mut frame = b"\xAB\xCD16".to_vec();
        frame.extend_from_slice(PAN.as_bytes());
        frame.extend_from_slice(b"\xAB");
        let hex = masked_hex(&frame);
        assert_eq!(hex.len(), frame.len() * 2);
        assert!(!hex.contains(&hex::encode_upper(PAN)), "{hex}");
        assert!(hex.starts_with("ABCD313634373631**"), "{hex}");
        assert!(hex.ends_with("30303130AB"), "{hex}");

        let track = format!("{PAN}=25121011234567890");
        let hex = masked_hex(track.as_bytes());
        assert!(hex.contains("3D"), "the separator stays: {hex}");
        assert!(!hex.contains(&hex::encode_upper("1234567890")), "{hex}");
    }

    #[test]
    fn bcd_pans_are_masked() {
        let mut frame = vec![0xAB, 0xCD];
        frame.extend(hex::decode(PAN).unwrap());
        frame.push(0xAB);
        let hex = masked_hex(&frame);
        assert!(!hex.contains(PAN), "{hex}");
        assert!(hex.contains("476173******0010"), "{hex}");
        let t2 = hex::decode("4761739001010010D2512101123456789F").unwrap();
        let hex = masked_hex(&t2);
        assert!(hex.starts_with("476173******0010D"), "{hex}");
        assert!(!hex.contains("2512"), "{hex}");
    }

    #[test]
    fn other_bytes_are_plain_hex() {
        assert_eq!(masked_hex(&[0x00, 0xAB, b'Z']), "00AB5A");
        assert_eq!(masked_hex(b"12345"), "3132333435");
        // ASCII digits are valid BCD too: a long run of them is masked either way
        assert!(masked_hex(b"\x00\x00\x30200").contains('*'));
    }

    proptest! {
        #[test]
        fn a_pan_anywhere_never_shows_in_clear(
            before in proptest::collection::vec(any::<u8>(), 0..40),
            after in proptest::collection::vec(any::<u8>(), 0..40),
            pan in "[1-9][0-9]{12,18}",
            bcd in any::<bool>(),
        ) {
            let mut frame = before.clone();
            let pan_bytes = if bcd {
                let mut p = pan.clone();
                if p.len() % 2 == 1 { p.push('F'); }
                hex::decode(&p).unwrap()
            } else {
                pan.as_bytes().to_vec()
            };
            frame.extend_from_slice(&pan_bytes);
            frame.extend_from_slice(&after);
            let hex = masked_hex(&frame);
            // the clear PAN is neither in the hex of its ASCII form nor as BCD digits
            let middle = &pan[6..pan.len() - 4];
            prop_assert!(!hex.contains(&pan), "{}", hex);
            prop_assert!(!hex.contains(&hex::encode_upper(pan.as_bytes())), "{}", hex);
            // the hidden middle digits never appear around the kept head
            let head_mid = format!("{}{}", &pan[..6], middle);
            prop_assert!(!hex.contains(&head_mid), "{}", hex);
        }
    }
}
