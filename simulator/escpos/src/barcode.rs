//! 1D barcodes: the `GS k` symbologies turned into bar modules (drawn by the renderer).

use barcoders::sym::{codabar::Codabar, code128::Code128, code39::Code39, code93::Code93};
use barcoders::sym::{ean13::EAN13, ean8::EAN8, tf::TF};

/// A barcode ready to draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    pub symbology: &'static str,
    /// Human-readable text (what the HRI line shows).
    pub text: String,
    /// Modules, 1 = bar; empty when poslab does not draw this symbology.
    pub modules: Vec<u8>,
}

/// The name of `GS k` system `m`.
pub fn symbology(m: u8) -> &'static str {
    match m {
        0 | 65 => "UPC-A",
        1 | 66 => "UPC-E",
        2 | 67 => "EAN13",
        3 | 68 => "EAN8",
        4 | 69 => "CODE39",
        5 | 70 => "ITF",
        6 | 71 => "CODABAR",
        72 => "CODE93",
        73 => "CODE128",
        74 => "GS1-128",
        75 => "GS1 DataBar Omnidirectional",
        76 => "GS1 DataBar Truncated",
        77 => "GS1 DataBar Limited",
        78 => "GS1 DataBar Expanded",
        79 => "CODE128 auto",
        _ => "unknown",
    }
}

fn digits(data: &[u8], lens: &[usize], name: &str) -> Result<String, String> {
    if !data.iter().all(u8::is_ascii_digit) || !lens.contains(&data.len()) {
        return Err(format!(
            "{name} needs {} digits, got {:?}",
            lens.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" or "),
            String::from_utf8_lossy(data)
        ));
    }
    Ok(String::from_utf8_lossy(data).into_owned())
}

/// Encodes `GS k` system `m` with `data`. An error means a real printer would refuse the
/// data (nothing printed); an unsupported symbology gives empty modules.
pub fn encode(m: u8, data: &[u8]) -> Result<Encoded, String> {
    let name = symbology(m);
    let bad = |e: barcoders::error::Error| format!("{name} data rejected: {e}");
    let (text, modules) = match m {
        0 | 65 => {
            let d = digits(data, &[11, 12], name)?;
            let m = EAN13::new(format!("0{d}")).map_err(bad)?.encode();
            (with_check_digit(d, 11), m)
        }
        2 | 67 => {
            let d = digits(data, &[12, 13], name)?;
            let m = EAN13::new(&d).map_err(bad)?.encode();
            (with_check_digit(d, 12), m)
        }
        3 | 68 => {
            let d = digits(data, &[7, 8], name)?;
            let m = EAN8::new(&d).map_err(bad)?.encode();
            (with_check_digit(d, 7), m)
        }
        4 | 69 => {
            let s = String::from_utf8_lossy(data);
            let s = s.trim_matches('*').to_string();
            if s.is_empty() || s.len() > 255 {
                return Err(format!("{name} needs 1 to 255 characters"));
            }
            let m = Code39::new(&s).map_err(bad)?.encode();
            (s, m)
        }
        5 | 70 => {
            let d = String::from_utf8_lossy(data).into_owned();
            if d.is_empty() || !d.len().is_multiple_of(2) || !d.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(format!("{name} needs an even number of digits"));
            }
            let m = TF::interleaved(&d).map_err(bad)?.encode();
            (d, m)
        }
        6 | 71 => {
            let s = String::from_utf8_lossy(data).to_ascii_uppercase();
            let m = Codabar::new(&s).map_err(bad)?.encode();
            (s, m)
        }
        72 => {
            let s = String::from_utf8_lossy(data).into_owned();
            let m = Code93::new(&s).map_err(bad)?.encode();
            (s, m)
        }
        73 => {
            let (input, text) = code128_input(data)?;
            let m = Code128::new(&input).map_err(bad)?.encode();
            (text, m)
        }
        _ => (String::from_utf8_lossy(data).into_owned(), Vec::new()),
    };
    Ok(Encoded {
        symbology: name,
        text,
        modules,
    })
}

/// The HRI of UPC/EAN shows the check digit the printer adds to `bare`-digit data.
fn with_check_digit(mut digits: String, bare: usize) -> String {
    if digits.len() == bare {
        let sum: u32 = digits
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
            .sum();
        digits.push(char::from(b'0' + ((10 - sum % 10) % 10) as u8));
    }
    digits
}

/// Turns ESC/POS CODE128 data (`{A`/`{B`/`{C` code-set prefixes, code set C as byte values
/// 0..=99) into barcoders' notation (À/Ɓ/Ć, set C as digit pairs) and the HRI text.
fn code128_input(data: &[u8]) -> Result<(String, String), String> {
    let mut input = String::new();
    let mut text = String::new();
    let mut set = None;
    let mut i = 0usize;
    while let Some(&b) = data.get(i) {
        if b == b'{' {
            let Some(&c) = data.get(i + 1) else {
                return Err("CODE128 data ends inside a '{' escape".into());
            };
            i += 2;
            match c {
                b'A' | b'B' | b'C' => {
                    set = Some(c);
                    input.push(match c {
                        b'A' => 'À',
                        b'B' => 'Ɓ',
                        _ => 'Ć',
                    });
                }
                b'{' if set.is_some() && set != Some(b'C') => {
                    input.push('{');
                    text.push('{');
                }
                _ => {
                    return Err(format!(
                        "CODE128 escape '{{{}' is not drawn by poslab",
                        char::from(c).escape_default()
                    ))
                }
            }
            continue;
        }
        i += 1;
        match set {
            None => return Err("CODE128 data must start with {A, {B or {C".into()),
            Some(b'C') => {
                if b > 99 {
                    return Err(format!("CODE128 code set C value {b} is over 99"));
                }
                let pair = format!("{b:02}");
                input.push_str(&pair);
                text.push_str(&pair);
            }
            Some(_) => {
                input.push(char::from(b));
                if b >= 0x20 {
                    text.push(char::from(b));
                }
            }
        }
    }
    if set.is_none() {
        return Err("CODE128 data must start with {A, {B or {C".into());
    }
    Ok((input, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code128_sets() {
        let e = encode(73, b"{BAB{C\x0c\x22").unwrap();
        assert_eq!(e.text, "AB1234");
        assert!(!e.modules.is_empty());
        assert!(encode(73, b"AB").is_err());
        assert!(encode(73, b"{C\x64").is_err());
    }

    #[test]
    fn ean13_with_and_without_check_digit() {
        let e = encode(67, b"400638133393").unwrap();
        assert_eq!(e.modules.len(), 95);
        assert_eq!(e.text, "4006381333931", "the HRI shows the check digit");
        assert_eq!(encode(65, b"03600029145").unwrap().text, "036000291452");
        assert_eq!(encode(68, b"9638507").unwrap().text, "96385074");
        assert!(encode(67, b"4006381333931").is_ok());
        assert!(encode(67, b"4006381333932").is_err());
        assert!(encode(67, b"12ab").is_err());
    }

    #[test]
    fn code39_and_unsupported() {
        assert!(!encode(69, b"POSLAB-1").unwrap().modules.is_empty());
        assert!(encode(66, b"0123456").unwrap().modules.is_empty());
    }
}
