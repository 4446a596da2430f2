//! Magnetic stripe data: track 2 (ISO/IEC 7813), its EMV equivalent (tag `57`), the
//! expiry date and the service code. [`Track2`] is masked in `Debug` and `Display`.

use std::fmt;

use poslab_sensitive::{mask_track2, Pan};

use crate::profile::nibbles_to_bytes;
use crate::EmvError;

/// A year and month, as printed on a card (`YYMM`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Yymm {
    pub year: u8,
    pub month: u8,
}

impl Yymm {
    /// `YYMM`, four digits with a month 01 to 12.
    pub fn parse(s: &str) -> Option<Yymm> {
        let b = s.as_bytes();
        if b.len() != 4 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let d = |i: usize| b.get(i).map_or(0, |c| c - b'0');
        let (year, month) = (d(0) * 10 + d(1), d(2) * 10 + d(3));
        (1..=12).contains(&month).then_some(Yymm { year, month })
    }
    /// Last day of the month as BCD `YYMMDD` (tag `5F24`).
    pub fn to_yymmdd_last_day(self) -> [u8; 3] {
        let leap = self.year.is_multiple_of(4);
        let day = match self.month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        [bcd(self.year), bcd(self.month), bcd(day)]
    }
    /// First day of the month as BCD `YYMMDD` (tag `5F25`).
    pub fn to_yymmdd_first_day(self) -> [u8; 3] {
        [bcd(self.year), bcd(self.month), 0x01]
    }
}

impl fmt::Display for Yymm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}{:02}", self.year, self.month)
    }
}

fn bcd(v: u8) -> u8 {
    ((v / 10 % 10) << 4) | (v % 10)
}

/// The three-digit service code (ISO/IEC 7813).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServiceCode([u8; 3]);

impl ServiceCode {
    pub fn parse(s: &str) -> Option<ServiceCode> {
        match s.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_digit()) => {
                Some(ServiceCode([a - b'0', b - b'0', c - b'0']))
            }
            _ => None,
        }
    }
    /// First digit 2 or 6: the card has a chip, and the terminal must use it (a swipe is
    /// then only a fallback).
    pub fn chip_present(self) -> bool {
        matches!(self.0[0], 2 | 6)
    }
    pub fn digits(self) -> [u8; 3] {
        self.0
    }
}

impl fmt::Display for ServiceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.0[0], self.0[1], self.0[2])
    }
}

impl fmt::Debug for ServiceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceCode({self})")
    }
}

/// Track 2 data: PAN, expiry, service code and discretionary data. Shown masked.
#[derive(Clone, PartialEq, Eq)]
pub struct Track2 {
    pan: Pan,
    expiry: Yymm,
    service_code: ServiceCode,
    discretionary: String,
}

impl Track2 {
    /// Track 2 from its parts; the discretionary data must be digits and the whole track
    /// at most 37 characters (ISO/IEC 7813).
    pub fn new(
        pan: Pan,
        expiry: Yymm,
        service_code: ServiceCode,
        discretionary: &str,
    ) -> Result<Track2, EmvError> {
        if !discretionary.bytes().all(|c| c.is_ascii_digit()) {
            return Err(EmvError::Track2("discretionary data must be digits".into()));
        }
        let len = pan.expose().len() + 1 + 4 + 3 + discretionary.len();
        if len > 37 {
            return Err(EmvError::Track2(format!(
                "{len} characters is longer than the 37 track 2 holds"
            )));
        }
        Ok(Track2 {
            pan,
            expiry,
            service_code,
            discretionary: discretionary.to_string(),
        })
    }

    /// Parses `PAN=YYMMSSS...` (sentinels `;` and `?` allowed around it, `D` accepted as
    /// the separator as in the EMV track 2 equivalent). Errors never show the data.
    pub fn parse(text: &str) -> Result<Track2, EmvError> {
        let t = text.strip_prefix(';').unwrap_or(text);
        let t = t.strip_suffix('?').unwrap_or(t);
        let sep = t
            .find(['=', 'D', 'd'])
            .ok_or_else(|| EmvError::Track2("no separator (= or D) after the PAN".into()))?;
        let (pan, rest) = t.split_at(sep);
        let rest = rest.get(1..).unwrap_or("");
        if !(12..=19).contains(&pan.len()) || !pan.bytes().all(|c| c.is_ascii_digit()) {
            return Err(EmvError::Track2(format!(
                "the PAN must be 12 to 19 digits, found {} characters",
                pan.len()
            )));
        }
        let expiry = rest
            .get(..4)
            .and_then(Yymm::parse)
            .ok_or_else(|| EmvError::Track2("expected YYMM after the separator".into()))?;
        let service_code = rest.get(4..7).and_then(ServiceCode::parse).ok_or_else(|| {
            EmvError::Track2("expected a 3-digit service code after the expiry".into())
        })?;
        Track2::new(
            Pan::new(pan),
            expiry,
            service_code,
            rest.get(7..).unwrap_or(""),
        )
    }

    /// Parses the EMV track 2 equivalent (tag `57`): nibbles, `D` separator, `F` padding.
    pub fn from_tag57(bytes: &[u8]) -> Result<Track2, EmvError> {
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            for n in [b >> 4, b & 0x0F] {
                match n {
                    0..=9 => s.push(char::from(b'0' + n)),
                    0x0D => s.push('D'),
                    0x0F => {}
                    _ => {
                        return Err(EmvError::Track2(format!(
                            "nibble {n:X} in the track 2 equivalent"
                        )))
                    }
                }
            }
        }
        Track2::parse(&s)
    }

    pub fn pan(&self) -> &Pan {
        &self.pan
    }
    pub fn expiry(&self) -> Yymm {
        self.expiry
    }
    pub fn service_code(&self) -> ServiceCode {
        self.service_code
    }

    /// The clear track as read from the stripe, `PAN=YYMMSSSdiscretionary` (no sentinels).
    /// Call this only to put it on a wire.
    pub fn expose(&self) -> String {
        format!(
            "{}={}{}{}",
            self.pan.expose(),
            self.expiry,
            self.service_code,
            self.discretionary
        )
    }

    /// The EMV track 2 equivalent (tag `57`).
    pub fn to_tag57(&self) -> Vec<u8> {
        let clear = self.expose();
        nibbles_to_bytes(clear.bytes().map(|c| match c {
            b'=' => 0x0D,
            c => c.wrapping_sub(b'0') & 0x0F,
        }))
    }
}

impl fmt::Debug for Track2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Track2({})", mask_track2(&self.expose()))
    }
}

impl fmt::Display for Track2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask_track2(&self.expose()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn track2_and_its_emv_equivalent() {
        let t = Track2::parse(";4761739001010010=28122011143804400000?").unwrap();
        assert_eq!(t.expose(), "4761739001010010=28122011143804400000");
        assert_eq!(t.service_code().to_string(), "201");
        assert!(t.service_code().chip_present());
        assert_eq!(
            hex::encode_upper(t.to_tag57()),
            "4761739001010010D28122011143804400000F"
        );
        assert_eq!(Track2::from_tag57(&t.to_tag57()).unwrap(), t);
        assert_eq!(
            t.to_string(),
            format!("476173******0010={}", "*".repeat(20))
        );
        assert!(!format!("{t:?}").contains("4761739001010010"));
        assert_eq!(
            Yymm::parse("2402").unwrap().to_yymmdd_last_day(),
            [0x24, 0x02, 0x29]
        );
        assert_eq!(
            Yymm::parse("2502").unwrap().to_yymmdd_last_day(),
            [0x25, 0x02, 0x28]
        );
        assert!(Yymm::parse("2513").is_none());
    }

    #[test]
    fn bad_track2_errors_do_not_show_the_data() {
        for bad in [
            "4761739001010010",
            "4761739001010010=2813201",
            "47617=28122011",
        ] {
            let err = Track2::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("4761739001"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn track2_round_trips(pan in "[0-9]{12,19}", yy in 0u8..100, mm in 1u8..=12, sc in "[0-9]{3}", disc in "[0-9]{0,8}") {
            let t = Track2::new(Pan::new(pan), Yymm { year: yy, month: mm }, ServiceCode::parse(&sc).unwrap(), &disc);
            if let Ok(t) = t {
                prop_assert_eq!(Track2::parse(&t.expose()).unwrap(), t.clone());
                prop_assert_eq!(Track2::from_tag57(&t.to_tag57()).unwrap(), t);
            }
        }

        #[test]
        fn track2_parse_never_panics(s in "\\PC{0,50}") {
            let _ = Track2::parse(&s);
        }
    }
}
