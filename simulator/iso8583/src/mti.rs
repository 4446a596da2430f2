//! The message type indicator: four digits, open (any digits round-trip).

use std::fmt;

/// A message type indicator such as "0200". Open: any four digits are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti([u8; 4]);

/// The message class (second digit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MtiClass {
    Authorization,
    Financial,
    FileAction,
    Reversal,
    Reconciliation,
    Administrative,
    FeeCollection,
    NetworkManagement,
    /// 0 and 9 (reserved), kept as the digit.
    Other(u8),
}

/// An MTI that is not four digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected an MTI of 4 digits, found {0:?}")]
pub struct MtiError(pub String);

impl Mti {
    pub fn new(s: &str) -> Result<Mti, MtiError> {
        let b = s.as_bytes();
        match <[u8; 4]>::try_from(b) {
            Ok(d) if d.iter().all(u8::is_ascii_digit) => Ok(Mti(d)),
            _ => Err(MtiError(s.chars().take(16).collect())),
        }
    }

    /// From four ASCII digit bytes (as read from the wire).
    pub fn from_digits(d: [u8; 4]) -> Result<Mti, MtiError> {
        if d.iter().all(u8::is_ascii_digit) {
            Ok(Mti(d))
        } else {
            Err(MtiError(String::from_utf8_lossy(&d).into_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        // ok: the four bytes are ASCII digits (checked by every constructor)
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    pub fn digits(&self) -> [u8; 4] {
        self.0
    }

    fn digit(&self, i: usize) -> u8 {
        self.0[i] - b'0'
    }

    /// ISO 8583 version digit: 0 = 1987, 1 = 1993, 2 = 2003.
    pub fn version(&self) -> u8 {
        self.digit(0)
    }

    pub fn class(&self) -> MtiClass {
        match self.digit(1) {
            1 => MtiClass::Authorization,
            2 => MtiClass::Financial,
            3 => MtiClass::FileAction,
            4 => MtiClass::Reversal,
            5 => MtiClass::Reconciliation,
            6 => MtiClass::Administrative,
            7 => MtiClass::FeeCollection,
            8 => MtiClass::NetworkManagement,
            d => MtiClass::Other(d),
        }
    }

    /// Function digit: 0 request, 1 request response, 2 advice, 3 advice response,
    /// 4 notification, 5 notification acknowledgement.
    pub fn function(&self) -> u8 {
        self.digit(2)
    }

    /// Origin digit: 0 acquirer, 1 acquirer repeat, 2 issuer, 3 issuer repeat, ...
    pub fn origin(&self) -> u8 {
        self.digit(3)
    }

    /// A request, advice or notification (function digit 0, 2 or 4): something that is answered.
    pub fn is_request(&self) -> bool {
        matches!(self.function(), 0 | 2 | 4)
    }

    /// A repeat (retransmission): odd origin digit (0201, 0401, 0421).
    pub fn is_repeat(&self) -> bool {
        self.origin() % 2 == 1
    }

    /// The MTI of the answer: function digit + 1, repeat origin to its first-send origin.
    /// 0100→0110, 0200→0210, 0401→0410, 0421→0430, 0800→0810, 1804→1814. A response MTI
    /// is returned unchanged.
    pub fn response(&self) -> Mti {
        let mut d = self.0;
        if self.is_request() {
            d[2] += 1;
            d[3] = b'0' + (self.origin() & !1);
        }
        Mti(d)
    }
}

impl std::str::FromStr for Mti {
    type Err = MtiError;
    fn from_str(s: &str) -> Result<Mti, MtiError> {
        Mti::new(s)
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mti({})", self.as_str())
    }
}

impl serde::Serialize for Mti {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Mti {
        Mti::new(s).unwrap()
    }

    #[test]
    fn responses_follow_the_function_and_origin_digits() {
        for (req, resp) in [
            ("0100", "0110"),
            ("0200", "0210"),
            ("0400", "0410"),
            ("0401", "0410"),
            ("0420", "0430"),
            ("0421", "0430"),
            ("0800", "0810"),
            ("0500", "0510"),
            ("0320", "0330"),
            ("0220", "0230"),
            ("0221", "0230"),
            ("0120", "0130"),
            ("1804", "1814"),
            ("1200", "1210"),
        ] {
            assert_eq!(m(req).response(), m(resp), "{req}");
            assert!(m(req).is_request());
            assert!(!m(resp).is_request());
            assert_eq!(m(resp).response(), m(resp));
        }
    }

    #[test]
    fn classes_and_validation() {
        assert_eq!(m("0200").class(), MtiClass::Financial);
        assert_eq!(m("0800").class(), MtiClass::NetworkManagement);
        assert_eq!(m("0900").class(), MtiClass::Other(9));
        assert_eq!(m("1200").version(), 1);
        assert!(m("0421").is_repeat());
        assert!(Mti::new("020").is_err());
        assert!(Mti::new("02A0").is_err());
        assert_eq!(
            Mti::new("x").unwrap_err().to_string(),
            "expected an MTI of 4 digits, found \"x\""
        );
        assert_eq!(m("0200").to_string(), "0200");
        assert_eq!(format!("{:?}", m("0200")), "Mti(0200)");
    }
}
