//! Settlement totals (ISO 8583:1987 reconciliation fields), as plain values.
//!
//! | DE | meaning (from the cardholder's side)      | what the host counts                    |
//! |----|-------------------------------------------|-----------------------------------------|
//! | 74 | credits, number                           | approved refunds still standing         |
//! | 75 | credits, reversal number                  | refunds later reversed or voided        |
//! | 76 | debits, number                            | approved sales still standing           |
//! | 77 | debits, reversal number                   | sales later reversed or voided          |
//! | 86 | credits, amount                           | sum of DE 74's amounts (minor units)    |
//! | 87 | credits, reversal amount                  | sum of DE 75's amounts                  |
//! | 88 | debits, amount                            | sum of DE 76's amounts                  |
//! | 89 | debits, reversal amount                   | sum of DE 77's amounts                  |
//! | 97 | amount, net settlement (x+n16)            | `D` + (88 − 86) or `C` + (86 − 88)      |
//!
//! ISO 8583:1993 uses the same data element numbers for these totals (1500-class MTIs).

use std::fmt;

/// One side's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub credits: u64,
    pub credits_reversed: u64,
    pub debits: u64,
    pub debits_reversed: u64,
    pub credits_amount: u64,
    pub credits_reversed_amount: u64,
    pub debits_amount: u64,
    pub debits_reversed_amount: u64,
}

/// Reads one total.
pub type Getter = fn(&Totals) -> u64;

/// The data elements that carry totals, with the getter for each.
pub const FIELDS: [(u16, Getter); 8] = [
    (74, |t| t.credits),
    (75, |t| t.credits_reversed),
    (76, |t| t.debits),
    (77, |t| t.debits_reversed),
    (86, |t| t.credits_amount),
    (87, |t| t.credits_reversed_amount),
    (88, |t| t.debits_amount),
    (89, |t| t.debits_reversed_amount),
];

impl Totals {
    /// Net settlement amount: positive when debits exceed credits.
    pub fn net(&self) -> i128 {
        i128::from(self.debits_amount) - i128::from(self.credits_amount)
    }

    /// DE 97 text: `D` or `C` and 16 digits.
    pub fn net_text(&self) -> String {
        let net = self.net();
        let sign = if net < 0 { 'C' } else { 'D' };
        format!("{sign}{:016}", net.unsigned_abs())
    }

    /// Parses DE 97 (`D`/`C` + digits) into a signed amount.
    pub fn parse_net(text: &str) -> Option<i128> {
        let (sign, digits) = match text.as_bytes().first()? {
            b'D' | b'd' => (1, text.get(1..).unwrap_or_default()),
            b'C' | b'c' => (-1, text.get(1..).unwrap_or_default()),
            _ => (1, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<i128>().ok().map(|n| sign * n)
    }

    /// Each data element, with its text (n10 counts, n16 amounts).
    pub fn fields(&self) -> Vec<(u16, String)> {
        let mut out: Vec<(u16, String)> = FIELDS
            .iter()
            .map(|(de, get)| {
                let width = if *de < 80 { 10 } else { 16 };
                (*de, format!("{:0width$}", get(self)))
            })
            .collect();
        out.push((97, self.net_text()));
        out
    }

    /// Compares the totals a terminal sent (text by data element; absent ones are not
    /// compared) with these. Returns the differences, empty when in balance, and an
    /// error when a field is not a number.
    pub fn compare(&self, sent: impl Fn(u16) -> Option<String>) -> Result<Vec<Difference>, u16> {
        let mut diffs = Vec::new();
        for (de, get) in FIELDS {
            if let Some(text) = sent(de) {
                let theirs: u64 = text.trim().parse().map_err(|_| de)?;
                if theirs != get(self) {
                    diffs.push(Difference {
                        de,
                        terminal: theirs.to_string(),
                        host: get(self).to_string(),
                    });
                }
            }
        }
        if let Some(text) = sent(97) {
            let theirs = Totals::parse_net(text.trim()).ok_or(97u16)?;
            if theirs != self.net() {
                diffs.push(Difference {
                    de: 97,
                    terminal: text,
                    host: self.net_text(),
                });
            }
        }
        Ok(diffs)
    }
}

/// One total that does not match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub de: u16,
    pub terminal: String,
    pub host: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DE {}: terminal {}, host {}",
            self.de, self.terminal, self.host
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Totals {
        Totals {
            credits: 1,
            credits_amount: 500,
            debits: 3,
            debits_amount: 12_000,
            debits_reversed: 1,
            debits_reversed_amount: 2_000,
            ..Default::default()
        }
    }

    #[test]
    fn fields_round_trip_through_compare() {
        let t = sample();
        let fields = t.fields();
        let get = |de: u16| {
            fields
                .iter()
                .find(|(d, _)| *d == de)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(t.compare(get), Ok(vec![]));
        assert_eq!(t.net_text(), "D0000000000011500");
    }

    #[test]
    fn differences_name_the_field() {
        let t = sample();
        let diffs = t
            .compare(|de| match de {
                76 => Some("0000000004".into()),
                88 => Some("0000000000012000".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].to_string(), "DE 76: terminal 4, host 3");
        assert_eq!(t.compare(|de| (de == 86).then(|| "12a".into())), Err(86));
    }

    #[test]
    fn net_is_signed() {
        let t = Totals {
            credits_amount: 700,
            debits_amount: 200,
            ..Default::default()
        };
        assert_eq!(t.net_text(), "C0000000000000500");
        assert_eq!(Totals::parse_net("C0000000000000500"), Some(-500));
        assert_eq!(Totals::parse_net("D12"), Some(12));
        assert_eq!(Totals::parse_net("X"), None);
        assert_eq!(Totals::parse_net(""), None);
    }
}
