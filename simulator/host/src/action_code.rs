//! ISO 8583:1993 action codes (DE 39, n3) for the host's two-character response codes.
//!
//! The host decides in 1987 response codes (`00`, `51`, `95`, ...: rules, journal and
//! configuration speak them); an answer to a 1993 request (MTI version digit `1`) carries
//! the action code of the 1993 standard instead. An approval depends on the message
//! class: `000` for authorisations and financial messages, `300` for file actions (batch
//! upload), `400` for reversals, `500` for reconciliation in balance, `800` for network
//! management. A code without a 1993 counterpart becomes `909` (system malfunction).

use crate::config::ResponseCode;

/// 1987 response code → 1993 action code, for codes that mean the same in every class.
const TABLE: &[(&[u8; 2], &str)] = &[
    (b"01", "107"), // refer to card issuer
    (b"02", "108"), // refer to card issuer's special conditions
    (b"03", "109"), // invalid merchant
    (b"04", "200"), // pick up
    (b"05", "100"), // do not honour
    (b"07", "207"), // pick up, special conditions
    (b"08", "001"), // honour with identification
    (b"10", "002"), // approved for partial amount
    (b"11", "003"), // approved (VIP)
    (b"12", "902"), // invalid transaction
    (b"13", "110"), // invalid amount
    (b"14", "111"), // invalid card number
    (b"15", "908"), // no such issuer (destination cannot be found)
    (b"16", "004"), // approved, update track 3
    (b"25", "302"), // unable to locate the record (the original)
    (b"30", "904"), // format error
    (b"41", "208"), // lost card
    (b"43", "209"), // stolen card
    (b"51", "116"), // not sufficient funds
    (b"54", "101"), // expired card
    (b"55", "117"), // incorrect PIN
    (b"57", "119"), // not permitted to cardholder
    (b"58", "120"), // not permitted to terminal
    (b"59", "102"), // suspected fraud
    (b"61", "121"), // exceeds withdrawal amount limit
    (b"62", "104"), // restricted card
    (b"63", "122"), // security violation
    (b"65", "123"), // exceeds withdrawal frequency limit
    (b"75", "106"), // allowable PIN tries exceeded
    (b"91", "912"), // card issuer unavailable
    (b"92", "908"), // destination cannot be found for routing
    (b"94", "913"), // duplicate transmission
    (b"96", "909"), // system malfunction
];

/// The 1993 action code for `code` in an answer of message class `class` (the MTI's
/// second digit: `b'1'` authorisation, `b'2'` financial, `b'3'` file action, `b'4'`
/// reversal, `b'5'` reconciliation, `b'8'` network management).
pub fn action_code(code: ResponseCode, class: u8) -> &'static str {
    if code == ResponseCode::APPROVED {
        return match class {
            b'3' => "300",
            b'4' => "400",
            b'5' => "500",
            b'8' => "800",
            _ => "000",
        };
    }
    if &code.0 == b"95" {
        // reconciliation error: reconciled, out of balance
        return "501";
    }
    TABLE
        .iter()
        .find(|(c, _)| **c == code.0)
        .map_or("909", |(_, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(s: &str) -> ResponseCode {
        ResponseCode::new(s).unwrap()
    }

    #[test]
    fn approvals_follow_the_message_class() {
        assert_eq!(action_code(rc("00"), b'1'), "000");
        assert_eq!(action_code(rc("00"), b'2'), "000");
        assert_eq!(action_code(rc("00"), b'3'), "300");
        assert_eq!(action_code(rc("00"), b'4'), "400");
        assert_eq!(action_code(rc("00"), b'5'), "500");
        assert_eq!(action_code(rc("00"), b'8'), "800");
    }

    #[test]
    fn declines_and_errors_have_their_1993_codes() {
        assert_eq!(action_code(rc("51"), b'2'), "116");
        assert_eq!(action_code(rc("05"), b'1'), "100");
        assert_eq!(action_code(rc("03"), b'2'), "109");
        assert_eq!(action_code(rc("25"), b'4'), "302");
        assert_eq!(action_code(rc("95"), b'5'), "501");
        assert_eq!(action_code(rc("94"), b'2'), "913");
        assert_eq!(action_code(rc("Z3"), b'2'), "909");
    }

    #[test]
    fn every_action_code_is_three_digits_and_no_decline_reads_as_an_approval() {
        for (c, a) in TABLE {
            assert!(a.len() == 3 && a.bytes().all(|b| b.is_ascii_digit()), "{a}");
            let approved = ResponseCode(**c).is_approved();
            assert_eq!(
                a.starts_with("00"),
                approved,
                "{} → {a}",
                ResponseCode(**c).as_str()
            );
        }
    }
}
