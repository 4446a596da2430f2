//! Character encodings a printer decodes text with: the `ESC t` code pages and UTF-8.

use serde::Serialize;

use crate::codepage_tables as t;

/// How the printer turns text bytes into characters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// A one-byte code page selected with `ESC t n` (the number is `n`).
    CodePage(u8),
    /// UTF-8, selected with `FS ( C` fn 48 m=2 (or configured).
    Utf8,
}

impl Default for Encoding {
    fn default() -> Self {
        Encoding::CodePage(0)
    }
}

/// The upper half of code page `n` of `ESC t` (Epson numbering), or `None` when unsupported.
pub fn table(n: u8) -> Option<(&'static str, &'static [char; 128])> {
    t::TABLES
        .iter()
        .find(|(id, _, _)| *id == n)
        .map(|(_, name, upper)| (*name, *upper))
}

/// The name of an encoding for diagnostics and the model.
pub fn name(encoding: Encoding) -> String {
    match encoding {
        Encoding::Utf8 => "UTF-8".into(),
        Encoding::CodePage(n) => match table(n) {
            Some((name, _)) => name.into(),
            None => format!("code page {n} (unsupported)"),
        },
    }
}

/// Decodes one byte of a one-byte code page (`n` unsupported falls back to PC437).
pub fn decode_byte(n: u8, b: u8) -> char {
    if b < 0x80 {
        return char::from(b);
    }
    let upper = table(n).or_else(|| table(0)).map(|(_, u)| u);
    let Some(upper) = upper else {
        return '\u{FFFD}';
    };
    upper
        .get(usize::from(b - 0x80))
        .copied()
        .unwrap_or('\u{FFFD}')
}

/// Incremental UTF-8 decoding: bytes may arrive split inside a character.
#[derive(Clone, Debug, Default)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Decodes what is complete; returns the text and the number of invalid sequences
    /// (each became U+FFFD).
    pub fn push(&mut self, bytes: &[u8]) -> (String, usize) {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut invalid = 0;
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            invalid += 1;
                            rest = bad.get(n..).unwrap_or(&[]);
                        }
                        None => {
                            rest = bad;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        (out, invalid)
    }

    /// Flushes an incomplete trailing sequence as U+FFFD.
    pub fn flush(&mut self) -> Option<char> {
        if self.pending.is_empty() {
            None
        } else {
            self.pending.clear();
            Some('\u{FFFD}')
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_pages_decode_their_upper_halves() {
        assert_eq!(decode_byte(0, 0x81), 'ü');
        assert_eq!(decode_byte(0, 0xC9), '╔');
        assert_eq!(decode_byte(2, 0xD5), 'ı');
        assert_eq!(decode_byte(19, 0xD5), '€');
        assert_eq!(decode_byte(16, 0x80), '€');
        assert_eq!(decode_byte(16, 0xE9), 'é');
        assert_eq!(decode_byte(0, b'A'), 'A');
    }

    #[test]
    fn utf8_split_inside_a_character() {
        let mut d = Utf8Decoder::default();
        let euro = "€".as_bytes();
        assert_eq!(d.push(&euro[..1]), (String::new(), 0));
        assert_eq!(d.push(&euro[1..]), ("€".to_string(), 0));
        assert_eq!(d.push(b"a\xffb"), ("a\u{FFFD}b".to_string(), 1));
        assert!(d.is_empty());
    }
}
