//! Card data that is masked by construction.
//!
//! Every value that a payment standard calls sensitive (PAN, track data, PIN blocks,
//! keys, cryptograms, CVV) lives in a newtype from this crate. Their `Debug`, `Display`
//! and `Serialize` never show the clear value: a PAN shows its first six and last four
//! digits, everything else shows only its length. The clear value is reachable only
//! through an explicit, greppable call (`expose`), so a log line, a journal entry, an
//! error message or a report cannot leak it by accident.

use std::fmt;

use serde::{Serialize, Serializer};

/// Masks a primary account number: the first six and last four digits stay, every other
/// character becomes `*`. Values of twelve characters or fewer keep only their last four
/// (a short PAN with a visible BIN and tail would be nearly clear).
/// Whether `digits` (ASCII digits only) pass the Luhn check, as every card number does.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

pub fn mask_pan(pan: &str) -> String {
    let chars: Vec<char> = pan.chars().collect();
    let n = chars.len();
    let (head, tail) = if n > 12 { (6, 4) } else { (0, 4.min(n / 2)) };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i >= n - tail { *c } else { '*' })
        .collect()
}

/// Masks track 2 equivalent data (`PAN=YYMMSSS...` or `PAN D YYMM ...`): the PAN part is
/// masked as [`mask_pan`] does, the separator stays, everything after it (expiry, service
/// code, discretionary data) is starred.
pub fn mask_track2(track: &str) -> String {
    match track.find(['=', 'D', 'd']) {
        Some(sep) => {
            let (pan, rest) = track.split_at(sep);
            let mut out = mask_pan(pan);
            out.push_str(&rest[..1]);
            out.extend(std::iter::repeat_n('*', rest.len() - 1));
            out
        }
        None => "*".repeat(track.len()),
    }
}

/// A primary account number. Shown masked (first 6, last 4) everywhere.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pan(String);

impl Pan {
    pub fn new(digits: impl Into<String>) -> Self {
        Pan(digits.into())
    }
    /// The clear PAN. Call this only to put it on a wire or into a cryptographic function.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn masked(&self) -> String {
        mask_pan(&self.0)
    }
    /// The first `n` digits (the BIN/IIN is 6 or 8), for routing rules.
    pub fn prefix(&self, n: usize) -> &str {
        let end = self
            .0
            .char_indices()
            .nth(n)
            .map_or(self.0.len(), |(i, _)| i);
        &self.0[..end]
    }
    pub fn last4(&self) -> &str {
        let n = self.0.chars().count();
        let start = self
            .0
            .char_indices()
            .nth(n.saturating_sub(4))
            .map_or(0, |(i, _)| i);
        &self.0[start..]
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}
impl fmt::Display for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}
impl Serialize for Pan {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// What kind of secret a [`Secret`] holds; it names the value in masked output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    Track1,
    Track2,
    Track3,
    PinBlock,
    Key,
    Cryptogram,
    Cvv,
    Pin,
    Mac,
    Other,
}

impl SecretKind {
    pub fn label(self) -> &'static str {
        match self {
            SecretKind::Track1 => "track1",
            SecretKind::Track2 => "track2",
            SecretKind::Track3 => "track3",
            SecretKind::PinBlock => "pin-block",
            SecretKind::Key => "key",
            SecretKind::Cryptogram => "cryptogram",
            SecretKind::Cvv => "cvv",
            SecretKind::Pin => "pin",
            SecretKind::Mac => "mac",
            SecretKind::Other => "secret",
        }
    }
}

/// Bytes that must never be shown: shown as `<pin-block: 8 bytes>`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret {
    kind: SecretKind,
    bytes: Vec<u8>,
}

impl Secret {
    pub fn new(kind: SecretKind, bytes: impl Into<Vec<u8>>) -> Self {
        Secret {
            kind,
            bytes: bytes.into(),
        }
    }
    pub fn kind(&self) -> SecretKind {
        self.kind
    }
    /// The clear bytes. Call this only to put them on a wire or into a cryptographic function.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }
    pub fn len(&self) -> usize {
        self.bytes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
    pub fn masked(&self) -> String {
        format!("<{}: {} bytes>", self.kind.label(), self.bytes.len())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.masked())
    }
}

/// Replaces every run of 13 to 19 digits in free text (a log line, a device's display
/// text, a printed receipt line) by its masked form, so text that came from a device under
/// test can be journaled safely even when the device leaks a clear PAN.
pub fn mask_digit_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if (13..=19).contains(&run.len()) {
            out.push_str(&mask_pan(run));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn luhn_tells_card_numbers_from_other_digit_runs() {
        let (visa, mastercard) = (test_cards::visa(), test_cards::mastercard());
        assert!(luhn_valid(visa));
        assert!(luhn_valid(mastercard));
        // one digit changed (the last, plus one) breaks the check digit
        let last = visa.as_bytes()[visa.len() - 1] - b'0';
        let changed = format!("{}{}", &visa[..visa.len() - 1], (last + 1) % 10);
        assert!(!luhn_valid(&changed));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid(&format!("{}x{}", &visa[..14], &visa[15..])));
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pan_shows_first_six_and_last_four() {
        let pan = Pan::new(test_cards::visa());
        assert_eq!(pan.to_string(), "476173******0010");
        assert_eq!(format!("{pan:?}"), "Pan(476173******0010)");
        assert_eq!(serde_json::to_string(&pan).unwrap(), "\"476173******0010\"");
        assert_eq!(pan.prefix(6), "476173");
        assert_eq!(pan.last4(), "0010");
    }

    #[test]
    fn short_values_keep_at_most_half() {
        assert_eq!(mask_pan("123456"), "***456");
        assert_eq!(mask_pan("12"), "*2");
        assert_eq!(mask_pan(""), "");
    }

    #[test]
    fn track2_masks_everything_after_the_separator() {
        let t = format!("{}=22122011143804400000", test_cards::visa());
        assert_eq!(
            mask_track2(&t),
            format!("476173******0010={}", "*".repeat(20))
        );
        assert_eq!(
            mask_track2(&format!("{}D2212", test_cards::visa())),
            "476173******0010D****"
        );
    }

    #[test]
    fn secrets_show_only_kind_and_length() {
        let s = Secret::new(SecretKind::PinBlock, vec![0x12; 8]);
        assert_eq!(format!("{s:?}"), "<pin-block: 8 bytes>");
        assert_eq!(s.to_string(), "<pin-block: 8 bytes>");
        assert!(!format!("{s:?}").contains("12"));
    }

    #[test]
    fn digit_runs_in_text_are_masked() {
        assert_eq!(
            mask_digit_runs(&format!(
                "card {} ok, amount 1250",
                test_cards::mastercard()
            )),
            "card 541333******0434 ok, amount 1250"
        );
    }

    proptest! {
        #[test]
        fn masked_pan_never_shows_middle_digits(pan in "[0-9]{13,19}") {
            let m = mask_pan(&pan);
            prop_assert_eq!(m.len(), pan.len());
            prop_assert_eq!(&m[..6], &pan[..6]);
            prop_assert_eq!(&m[m.len() - 4..], &pan[pan.len() - 4..]);
            prop_assert!(m[6..m.len() - 4].chars().all(|c| c == '*'));
        }

        #[test]
        fn masking_free_text_never_panics_and_hides_long_runs(text in "\\PC{0,64}") {
            let m = mask_digit_runs(&text);
            let longest = m.split(|c: char| !c.is_ascii_digit()).map(str::len).max().unwrap_or(0);
            prop_assert!(!(13..=19).contains(&longest));
        }
    }
}

/// The documented test card numbers of `fixtures/cards/`, read from the profiles themselves
/// (compiled in), so that no card number is written in code: tests, the scripted terminal's
/// default card and benchmarks take them from here.
pub mod test_cards {
    fn pan_of(profile: &'static str) -> &'static str {
        profile
            .lines()
            .find_map(|l| l.strip_prefix("pan:"))
            .map(|v| v.trim().trim_matches('"'))
            .unwrap_or("")
    }

    /// Visa credit (chip and PIN), `fixtures/cards/visa-credit.yaml`.
    pub fn visa() -> &'static str {
        pan_of(include_str!("../../../fixtures/cards/visa-credit.yaml"))
    }

    /// Mastercard debit (contactless), `fixtures/cards/mastercard-debit.yaml`.
    pub fn mastercard() -> &'static str {
        pan_of(include_str!(
            "../../../fixtures/cards/mastercard-debit.yaml"
        ))
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_fixture_pans_are_read() {
            for pan in [super::visa(), super::mastercard()] {
                assert!((13..=19).contains(&pan.len()), "{pan:?}");
                assert!(pan.bytes().all(|b| b.is_ascii_digit()), "{pan:?}");
            }
            assert_ne!(super::visa(), super::mastercard());
        }
    }
}
