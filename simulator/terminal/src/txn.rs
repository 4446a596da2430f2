//! Transactions as the terminal keeps them: its journal of sales (for receipts, reports and
//! settlement) and its store-and-forward queue. Nothing here holds clear card data: the
//! PAN is kept masked, tracks and PIN blocks are never stored.

use serde::{Deserialize, Serialize};

/// A wall-clock time stamp (the terminal's local time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl Stamp {
    /// From seconds since the Unix epoch (UTC).
    pub fn from_unix(secs: u64) -> Stamp {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // civil from days (Howard Hinnant's algorithm)
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let y = yoe + era * 400;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = if m <= 2 { y + 1 } else { y };
        Stamp {
            year: y as u16,
            month: m as u8,
            day: d as u8,
            hour: (rem / 3600) as u8,
            minute: (rem / 60 % 60) as u8,
            second: (rem % 60) as u8,
        }
    }
    /// DE 7: MMDDhhmmss.
    pub fn mmddhhmmss(&self) -> String {
        format!(
            "{:02}{:02}{:02}{:02}{:02}",
            self.month, self.day, self.hour, self.minute, self.second
        )
    }
    /// DE 12: hhmmss.
    pub fn hhmmss(&self) -> String {
        format!("{:02}{:02}{:02}", self.hour, self.minute, self.second)
    }
    /// DE 13: MMDD.
    pub fn mmdd(&self) -> String {
        format!("{:02}{:02}", self.month, self.day)
    }
    /// 9A: YYMMDD as BCD.
    pub fn emv_date(&self) -> [u8; 3] {
        [bcd((self.year % 100) as u8), bcd(self.month), bcd(self.day)]
    }
    /// YYMM, for expiry checks.
    pub fn yymm(&self) -> u16 {
        (self.year % 100) * 100 + u16::from(self.month)
    }
    /// For receipts: 2026-11-23 14:05:09.
    pub fn receipt_text(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

fn bcd(n: u8) -> u8 {
    ((n / 10) << 4) | (n % 10)
}

/// What the cardholder asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnKind {
    Purchase,
    Refund,
    Void,
    PreAuth,
    Completion,
}

impl TxnKind {
    /// Processing code (DE 3).
    pub fn processing_code(self) -> &'static str {
        match self {
            TxnKind::Purchase | TxnKind::PreAuth | TxnKind::Completion => "000000",
            TxnKind::Refund => "200000",
            TxnKind::Void => "020000",
        }
    }
    /// Request MTI.
    pub fn mti(self) -> &'static str {
        match self {
            TxnKind::PreAuth => "0100",
            TxnKind::Completion => "0220",
            _ => "0200",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            TxnKind::Purchase => "PURCHASE",
            TxnKind::Refund => "REFUND",
            TxnKind::Void => "VOID",
            TxnKind::PreAuth => "PRE-AUTHORISATION",
            TxnKind::Completion => "COMPLETION",
        }
    }
}

/// How the card was read (DE 22 first two digits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entry {
    Chip,
    Contactless,
    Swipe,
    /// Magstripe after the chip failed.
    Fallback,
    /// No card: a void or completion refers to an earlier transaction.
    Reference,
}

impl Entry {
    /// DE 22: entry mode (2 digits) then PIN capability (1 digit: 1 = can take PINs).
    pub fn pos_entry_mode(self) -> &'static str {
        match self {
            Entry::Chip => "051",
            Entry::Contactless => "071",
            Entry::Swipe => "901",
            Entry::Fallback => "801",
            Entry::Reference => "011",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Entry::Chip => "CHIP",
            Entry::Contactless => "CONTACTLESS",
            Entry::Swipe => "SWIPE",
            Entry::Fallback => "FALLBACK SWIPE",
            Entry::Reference => "REFERENCE",
        }
    }
}

/// Debit, credit or foreign: decides the fee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardKind {
    Debit,
    Credit,
    Foreign,
}

impl CardKind {
    pub fn label(self) -> &'static str {
        match self {
            CardKind::Debit => "DEBIT",
            CardKind::Credit => "CREDIT",
            CardKind::Foreign => "FOREIGN",
        }
    }
    /// From the PAN (test ranges, as the default host knows them) and whether the issuer
    /// is abroad.
    pub fn of(pan: &str, foreign: bool) -> CardKind {
        if foreign || pan.starts_with("4999") {
            CardKind::Foreign
        } else if pan.starts_with("4000") || pan.starts_with("5413") || pan.starts_with('6') {
            CardKind::Debit
        } else {
            CardKind::Credit
        }
    }
}

/// How the transaction ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "result")]
pub enum Outcome {
    Approved {
        code: String,
    },
    Declined {
        code: String,
    },
    /// The host did not answer: the terminal reversed it (queued until acknowledged).
    NoAnswer,
    /// The card declined offline (AAC) or the terminal refused it.
    Refused {
        reason: String,
    },
    Cancelled,
}

impl Outcome {
    pub fn approved(&self) -> bool {
        matches!(self, Outcome::Approved { .. })
    }
    pub fn code(&self) -> Option<&str> {
        match self {
            Outcome::Approved { code } | Outcome::Declined { code } => Some(code),
            _ => None,
        }
    }
}

/// Standing, reversed or voided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnState {
    #[default]
    Standing,
    Reversed,
    Voided,
    /// A pre-authorisation that a completion has used.
    Completed,
}

/// One transaction in the terminal's journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    /// Receipt number (1, 2, ... in the batch).
    pub receipt: u32,
    pub stan: u32,
    pub kind: TxnKind,
    pub amount: u64,
    pub currency: u16,
    /// First 6 and last 4 only.
    pub pan_masked: Option<String>,
    pub card_label: Option<String>,
    pub card_kind: Option<CardKind>,
    pub entry: Entry,
    pub outcome: Outcome,
    pub auth_code: Option<String>,
    pub rrn: Option<String>,
    pub at: Stamp,
    pub training: bool,
    #[serde(default)]
    pub state: TxnState,
    /// Cardholder verification: "PIN", "SIGNATURE", "NO CVM".
    pub cvm: Option<String>,
    /// For a void or completion: the receipt number it refers to.
    pub original: Option<u32>,
}

impl TxnRecord {
    /// Counts in the settlement totals: approved, standing, money-moving, not training.
    pub fn settles(&self) -> bool {
        self.outcome.approved()
            && !self.training
            && self.state == TxnState::Standing
            && matches!(
                self.kind,
                TxnKind::Purchase | TxnKind::Refund | TxnKind::Completion
            )
    }
}

/// Settlement totals (DE 74/76/86/88/97), as the terminal counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub credits: u64,
    pub credits_amount: u64,
    pub debits: u64,
    pub debits_amount: u64,
}

impl Totals {
    pub fn of<'a>(records: impl IntoIterator<Item = &'a TxnRecord>) -> Totals {
        let mut t = Totals::default();
        for r in records.into_iter().filter(|r| r.settles()) {
            if r.kind == TxnKind::Refund {
                t.credits += 1;
                t.credits_amount += r.amount;
            } else {
                t.debits += 1;
                t.debits_amount += r.amount;
            }
        }
        t
    }
    /// DE 97: `D` + debit minus credit, or `C` + credit minus debit, 16 digits.
    pub fn net(&self) -> String {
        if self.debits_amount >= self.credits_amount {
            format!("D{:016}", self.debits_amount - self.credits_amount)
        } else {
            format!("C{:016}", self.credits_amount - self.debits_amount)
        }
    }
}

/// A message the host has not acknowledged yet: sent again until it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafEntry {
    /// `0400` reversal or `0220` advice (repeats go out as 0401/0221).
    pub mti: String,
    pub stan: u32,
    pub original_mti: String,
    pub original_stan: u32,
    pub amount: u64,
    pub processing_code: String,
    pub attempts: u32,
    pub receipt: u32,
    pub original_at: Stamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_time_to_civil_time() {
        // 2026-11-23 05:24:15 UTC
        let s = Stamp::from_unix(1_795_411_455);
        assert_eq!(
            (s.year, s.month, s.day, s.hour, s.minute, s.second),
            (2026, 11, 23, 5, 24, 15)
        );
        assert_eq!(s.mmddhhmmss(), "1123052415");
        assert_eq!(s.emv_date(), [0x26, 0x11, 0x23]);
        assert_eq!(Stamp::from_unix(0).receipt_text(), "1970-01-01 00:00:00");
        let leap = Stamp::from_unix(951_782_400); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    fn rec(kind: TxnKind, amount: u64, approved: bool, state: TxnState) -> TxnRecord {
        TxnRecord {
            receipt: 1,
            stan: 1,
            kind,
            amount,
            currency: 978,
            pan_masked: None,
            card_label: None,
            card_kind: None,
            entry: Entry::Chip,
            outcome: if approved {
                Outcome::Approved { code: "00".into() }
            } else {
                Outcome::Declined { code: "51".into() }
            },
            auth_code: None,
            rrn: None,
            at: Stamp::default(),
            training: false,
            state,
            cvm: None,
            original: None,
        }
    }

    #[test]
    fn totals_count_standing_approved_money() {
        let records = [
            rec(TxnKind::Purchase, 1000, true, TxnState::Standing),
            rec(TxnKind::Purchase, 500, true, TxnState::Reversed),
            rec(TxnKind::Purchase, 700, false, TxnState::Standing),
            rec(TxnKind::Refund, 300, true, TxnState::Standing),
            rec(TxnKind::PreAuth, 9000, true, TxnState::Standing),
            rec(TxnKind::Completion, 200, true, TxnState::Standing),
        ];
        let t = Totals::of(&records);
        assert_eq!(
            t,
            Totals {
                credits: 1,
                credits_amount: 300,
                debits: 2,
                debits_amount: 1200
            }
        );
        assert_eq!(t.net(), "D0000000000000900");
    }
}
