//! Retrieval reference numbers and approval codes: generated, unique within a run.
//!
//! Deterministic: built from `now` (an input) and counters, never from a global RNG.

use std::time::{SystemTime, UNIX_EPOCH};

/// Hands out RRNs (DE 37) and approval codes (DE 38).
#[derive(Clone, Debug, Default)]
pub struct IdGenerator {
    rrn_seq: u64,
    auth_seq: u64,
}

impl IdGenerator {
    /// `YDDD` (last digit of the year, day of the year) then an 8-digit sequence: the
    /// usual retrieval reference shape, unique for the first 10^8 references of a run.
    pub fn rrn(&mut self, now: SystemTime) -> String {
        self.rrn_seq += 1;
        let (year, yday) = year_and_day(now);
        format!("{}{:03}{:08}", year % 10, yday, self.rrn_seq % 100_000_000)
    }

    /// Six characters, digits and capital letters, from a counter (2.1 billion distinct).
    pub fn approval_code(&mut self) -> String {
        self.auth_seq += 1;
        const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        // spread consecutive codes so they do not look like a counter
        let mut n = self.auth_seq.wrapping_mul(1_500_450_271) % 2_176_782_336;
        let mut out = [b'0'; 6];
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(n % 36) as usize];
            n /= 36;
        }
        out.iter().map(|&b| b as char).collect()
    }
}

/// The calendar year and the day of the year (1..=366) of `now`, in UTC.
pub fn year_and_day(now: SystemTime) -> (i64, u32) {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let extra = u32::from(leap && m > 2);
    (y, BEFORE[(m - 1) as usize] + d + extra)
}

/// `MMDDhhmmss` (DE 7, transmission date and time) of `now`, in UTC.
pub fn mmddhhmmss(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (_, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!("{m:02}{d:02}{:02}{:02}{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Howard Hinnant's days-from-civil inverse: (year, month 1..=12, day 1..=31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn calendar_is_right() {
        assert_eq!(year_and_day(at(0)), (1970, 1));
        // 2024-03-01 is day 61 of a leap year
        assert_eq!(year_and_day(at(1_709_251_200)), (2024, 61));
        // 2026-12-31 is day 365
        assert_eq!(year_and_day(at(1_798_675_200)), (2026, 365));
        assert_eq!(mmddhhmmss(at(1_709_251_200 + 3661)), "0301010101");
    }

    #[test]
    fn rrns_and_approval_codes_are_unique_and_well_formed() {
        let mut ids = IdGenerator::default();
        let mut rrns = HashSet::new();
        let mut codes = HashSet::new();
        for _ in 0..100_000 {
            let rrn = ids.rrn(at(1_709_251_200));
            assert_eq!(rrn.len(), 12);
            assert!(rrn.starts_with("4061"), "{rrn}");
            assert!(rrns.insert(rrn));
            let code = ids.approval_code();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(codes.insert(code));
        }
    }
}
