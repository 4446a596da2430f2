//! Typed ZVT messages over [`Apdu`]. Parsing is total over the command space: a command
//! this module does not model is [`Message::Other`], kept whole, so it round-trips and can
//! be answered (`84 83 00`, function not possible) instead of killing the link.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::apdu::{Apdu, Command};
use crate::bmp::{bcd_decode, bcd_encode, hex, Fields};
use crate::codes::{IntermediateStatus, ResultCode};
use crate::ZvtError;

/// The data starts at byte 3 of a short APDU; offsets in errors count from the APDU start.
const BASE: usize = 3;

/// A password (3 bytes BCD). Never shown.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Password(pub [u8; 3]);

impl Password {
    pub fn from_number(n: u32) -> Password {
        let b = bcd_encode(n as u64, 3);
        Password([b[0], b[1], b[2]])
    }
    pub fn number(&self) -> Option<u32> {
        bcd_decode(&self.0).map(|v| v as u32)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Message {
    /// `80 00`: positive acknowledgement.
    Ack,
    /// `84 xx`: negative acknowledgement with an error code.
    Nak(ResultCode),
    /// `06 00`: password, config byte, optional currency (2 bytes BCD), then BMPs
    /// (`03` service byte, `06` TLV).
    Registration {
        password: Password,
        config: u8,
        currency: Option<u16>,
        fields: Fields,
    },
    /// `06 01`: BMPs (`04` amount, `49` currency, `19` payment type, ...).
    Authorisation(Fields),
    /// `06 02`.
    LogOff,
    /// `06 20`: password, then BMPs.
    RepeatReceipt { password: Password, fields: Fields },
    /// `06 30`: password, then BMPs (`87` receipt number).
    Reversal { password: Password, fields: Fields },
    /// `06 31`: password, then BMPs (`04` amount).
    Refund { password: Password, fields: Fields },
    /// `06 22` pre-authorisation (reservation): BMPs as for an authorisation (`04` amount,
    /// `49` currency, `19` payment type, ...), no password. Answered like an authorisation;
    /// the status information's receipt number (`87`) names the reservation.
    PreAuthorisation(Fields),
    /// `06 23` partial reversal of a pre-authorisation: releases part (or the rest) of a
    /// reservation. BMPs `87` receipt number of the reservation (`FF FF` asks for the open
    /// ones), `04` amount to release, optional `19`, `49`, `06`; no password.
    PartialReversal(Fields),
    /// `06 24` book total: completes a reservation. BMPs `87` receipt number of the
    /// reservation, `04` final amount (at most the reserved one), optional `0B` trace and
    /// `3B` authorisation attribute of the reservation, `19`, card data, `06`; no password.
    BookTotal(Fields),
    /// `06 50`: password, then BMPs.
    EndOfDay { password: Password, fields: Fields },
    /// `06 B0`: the ECR asks the terminal to abort what it is doing.
    AbortRequest,
    /// `05 01`: optional password, then BMPs (`03` service byte).
    StatusEnquiry {
        password: Option<Password>,
        fields: Fields,
    },
    /// `04 FF`: status byte, then optional timeout and TLV (kept raw).
    IntermediateStatus {
        status: IntermediateStatus,
        rest: Vec<u8>,
    },
    /// `04 0F`: the result of a transaction, as BMPs.
    StatusInformation(Fields),
    /// `06 D1`: attribute byte, then the text of one line.
    PrintLine { attribute: u8, text: Vec<u8> },
    /// `06 D3`: a TLV container with the receipt text.
    PrintTextBlock(Fields),
    /// `06 0F`: completion. Its data depends on the command it ends (BMPs after a payment
    /// or registration, software version and status after a status enquiry): kept raw.
    Completion(Vec<u8>),
    /// `06 1E`: the terminal aborts, with a result code and optional data.
    Abort { code: ResultCode, rest: Vec<u8> },
    /// Anything else.
    Other(Apdu),
}

fn password_at(data: &[u8], what: &str) -> Result<(Password, usize), ZvtError> {
    match data.get(..3) {
        Some(p) => Ok((Password([p[0], p[1], p[2]]), 3)),
        None => Err(ZvtError::Truncated {
            what: format!("{what} password"),
            offset: BASE,
            needed: 3,
            left: data.len(),
        }),
    }
}

impl Message {
    /// Decodes an APDU into a message. Errors say which field of which command was bad.
    pub fn from_apdu(apdu: &Apdu) -> Result<Message, ZvtError> {
        let d = apdu.data.as_slice();
        let tail = |from: usize| d.get(from..).unwrap_or(&[]);
        let fields = |from: usize| Fields::parse(tail(from), BASE + from);
        Ok(match apdu.command {
            Command::ACK if d.is_empty() => Message::Ack,
            Command(0x84, code) if d.is_empty() => Message::Nak(ResultCode(code)),
            Command::REGISTRATION => {
                let (password, n) = password_at(d, "registration")?;
                let config = *d.get(n).ok_or_else(|| ZvtError::Truncated {
                    what: "registration config byte".into(),
                    offset: BASE + n,
                    needed: 1,
                    left: 0,
                })?;
                let rest = tail(n + 1);
                let has_currency = rest.len() == 2
                    || (rest.len() > 2 && !matches!(rest.first(), Some(0x03 | 0x06)));
                let (currency, from) = if has_currency {
                    let cc = bcd_decode(rest.get(..2).unwrap_or(&[])).ok_or_else(|| {
                        ZvtError::Invalid {
                            what: "registration currency".into(),
                            offset: BASE + n + 1,
                            reason: format!("not BCD: {}", hex(rest.get(..2).unwrap_or(&[]))),
                        }
                    })?;
                    (Some(cc as u16), n + 3)
                } else {
                    (None, n + 1)
                };
                Message::Registration {
                    password,
                    config,
                    currency,
                    fields: fields(from)?,
                }
            }
            Command::AUTHORISATION => Message::Authorisation(fields(0)?),
            Command::LOG_OFF if d.is_empty() => Message::LogOff,
            Command::REPEAT_RECEIPT => {
                let (password, n) = password_at(d, "repeat receipt")?;
                Message::RepeatReceipt {
                    password,
                    fields: fields(n)?,
                }
            }
            Command::REVERSAL => {
                let (password, n) = password_at(d, "reversal")?;
                Message::Reversal {
                    password,
                    fields: fields(n)?,
                }
            }
            Command::REFUND => {
                let (password, n) = password_at(d, "refund")?;
                Message::Refund {
                    password,
                    fields: fields(n)?,
                }
            }
            Command::PRE_AUTHORISATION => Message::PreAuthorisation(fields(0)?),
            Command::PARTIAL_REVERSAL => Message::PartialReversal(fields(0)?),
            Command::BOOK_TOTAL => Message::BookTotal(fields(0)?),
            Command::END_OF_DAY => {
                let (password, n) = password_at(d, "end of day")?;
                Message::EndOfDay {
                    password,
                    fields: fields(n)?,
                }
            }
            Command::ABORT_REQUEST if d.is_empty() => Message::AbortRequest,
            Command::STATUS_ENQUIRY => {
                if d.len() >= 3 && !matches!(d.first(), Some(0x03 | 0x06)) {
                    let (password, n) = password_at(d, "status enquiry")?;
                    Message::StatusEnquiry {
                        password: Some(password),
                        fields: fields(n)?,
                    }
                } else {
                    Message::StatusEnquiry {
                        password: None,
                        fields: fields(0)?,
                    }
                }
            }
            Command::INTERMEDIATE_STATUS => {
                let status = *d.first().ok_or_else(|| ZvtError::Truncated {
                    what: "intermediate status byte".into(),
                    offset: BASE,
                    needed: 1,
                    left: 0,
                })?;
                Message::IntermediateStatus {
                    status: IntermediateStatus(status),
                    rest: tail(1).to_vec(),
                }
            }
            Command::STATUS_INFORMATION => Message::StatusInformation(fields(0)?),
            Command::PRINT_LINE => {
                let attribute = *d.first().ok_or_else(|| ZvtError::Truncated {
                    what: "print line attribute".into(),
                    offset: BASE,
                    needed: 1,
                    left: 0,
                })?;
                Message::PrintLine {
                    attribute,
                    text: tail(1).to_vec(),
                }
            }
            Command::PRINT_TEXT_BLOCK => Message::PrintTextBlock(fields(0)?),
            Command::COMPLETION => Message::Completion(d.to_vec()),
            Command::ABORT => {
                let code = *d.first().ok_or_else(|| ZvtError::Truncated {
                    what: "abort result code".into(),
                    offset: BASE,
                    needed: 1,
                    left: 0,
                })?;
                Message::Abort {
                    code: ResultCode(code),
                    rest: tail(1).to_vec(),
                }
            }
            _ => Message::Other(apdu.clone()),
        })
    }

    pub fn command(&self) -> Command {
        match self {
            Message::Ack => Command::ACK,
            Message::Nak(code) => Command(0x84, code.0),
            Message::Registration { .. } => Command::REGISTRATION,
            Message::Authorisation(_) => Command::AUTHORISATION,
            Message::LogOff => Command::LOG_OFF,
            Message::RepeatReceipt { .. } => Command::REPEAT_RECEIPT,
            Message::Reversal { .. } => Command::REVERSAL,
            Message::Refund { .. } => Command::REFUND,
            Message::PreAuthorisation(_) => Command::PRE_AUTHORISATION,
            Message::PartialReversal(_) => Command::PARTIAL_REVERSAL,
            Message::BookTotal(_) => Command::BOOK_TOTAL,
            Message::EndOfDay { .. } => Command::END_OF_DAY,
            Message::AbortRequest => Command::ABORT_REQUEST,
            Message::StatusEnquiry { .. } => Command::STATUS_ENQUIRY,
            Message::IntermediateStatus { .. } => Command::INTERMEDIATE_STATUS,
            Message::StatusInformation(_) => Command::STATUS_INFORMATION,
            Message::PrintLine { .. } => Command::PRINT_LINE,
            Message::PrintTextBlock(_) => Command::PRINT_TEXT_BLOCK,
            Message::Completion(_) => Command::COMPLETION,
            Message::Abort { .. } => Command::ABORT,
            Message::Other(apdu) => apdu.command,
        }
    }

    pub fn to_apdu(&self) -> Apdu {
        if let Message::Other(apdu) = self {
            return apdu.clone();
        }
        let mut d = Vec::new();
        match self {
            Message::Ack | Message::Nak(_) | Message::LogOff | Message::AbortRequest => {}
            Message::Registration {
                password,
                config,
                currency,
                fields,
            } => {
                d.extend_from_slice(&password.0);
                d.push(*config);
                if let Some(cc) = currency {
                    d.extend_from_slice(&bcd_encode(*cc as u64, 2));
                }
                fields.encode_into(&mut d);
            }
            Message::Authorisation(fields)
            | Message::PreAuthorisation(fields)
            | Message::PartialReversal(fields)
            | Message::BookTotal(fields)
            | Message::StatusInformation(fields)
            | Message::PrintTextBlock(fields) => fields.encode_into(&mut d),
            Message::RepeatReceipt { password, fields }
            | Message::Reversal { password, fields }
            | Message::Refund { password, fields }
            | Message::EndOfDay { password, fields } => {
                d.extend_from_slice(&password.0);
                fields.encode_into(&mut d);
            }
            Message::StatusEnquiry { password, fields } => {
                if let Some(p) = password {
                    d.extend_from_slice(&p.0);
                }
                fields.encode_into(&mut d);
            }
            Message::IntermediateStatus { status, rest } => {
                d.push(status.0);
                d.extend_from_slice(rest);
            }
            Message::PrintLine { attribute, text } => {
                d.push(*attribute);
                d.extend_from_slice(text);
            }
            Message::Completion(data) => d.extend_from_slice(data),
            Message::Abort { code, rest } => {
                d.push(code.0);
                d.extend_from_slice(rest);
            }
            Message::Other(_) => {}
        }
        Apdu::new(self.command(), d)
    }

    /// The fields of the message, when its data is a BMP list (completion: when it parses).
    pub fn fields(&self) -> Option<Fields> {
        match self {
            Message::Registration { fields, .. }
            | Message::Authorisation(fields)
            | Message::PreAuthorisation(fields)
            | Message::PartialReversal(fields)
            | Message::BookTotal(fields)
            | Message::RepeatReceipt { fields, .. }
            | Message::Reversal { fields, .. }
            | Message::Refund { fields, .. }
            | Message::EndOfDay { fields, .. }
            | Message::StatusEnquiry { fields, .. }
            | Message::StatusInformation(fields)
            | Message::PrintTextBlock(fields) => Some(fields.clone()),
            Message::Completion(data) => Fields::parse(data, BASE).ok(),
            _ => None,
        }
    }

    /// A payment command whose blind repetition could charge twice (a second reservation
    /// holds the cardholder's funds twice, a second booking or release changes the amount).
    pub fn moves_money(&self) -> bool {
        matches!(
            self,
            Message::Authorisation(_)
                | Message::Reversal { .. }
                | Message::Refund { .. }
                | Message::PreAuthorisation(_)
                | Message::PartialReversal(_)
                | Message::BookTotal(_)
        )
    }
}

/// The decoded view for journals and `--json`: command, name and the masked fields.
impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let c = self.command();
        m.serialize_entry("command", &format!("{:02X} {:02X}", c.0, c.1))?;
        if let Some(name) = c.name() {
            m.serialize_entry("name", name)?;
        }
        match self {
            Message::Nak(code) => {
                m.serialize_entry("code", code)?;
                m.serialize_entry("meaning", &code.to_string())?;
            }
            Message::Registration {
                config,
                currency,
                fields,
                ..
            } => {
                m.serialize_entry("config", &format!("{config:02X}"))?;
                if let Some(cc) = currency {
                    m.serialize_entry("currency", &format!("{cc:04}"))?;
                }
                m.serialize_entry("fields", fields)?;
            }
            Message::IntermediateStatus { status, rest } => {
                m.serialize_entry("status", status)?;
                m.serialize_entry("text", &status.text().unwrap_or("unknown status"))?;
                if !rest.is_empty() {
                    m.serialize_entry("rest", &hex(rest))?;
                }
            }
            Message::PrintLine { attribute, text } => {
                m.serialize_entry("attribute", &format!("{attribute:02X}"))?;
                m.serialize_entry(
                    "text",
                    &poslab_sensitive::mask_digit_runs(&String::from_utf8_lossy(text)),
                )?;
            }
            Message::Completion(data) => match Fields::parse(data, BASE) {
                Ok(fields) if !data.is_empty() => m.serialize_entry("fields", &fields)?,
                _ if !data.is_empty() => {
                    m.serialize_entry("data", &poslab_sensitive::mask_digit_runs(&hex(data)))?
                }
                _ => {}
            },
            Message::Abort { code, rest } => {
                m.serialize_entry("code", code)?;
                m.serialize_entry("meaning", &code.to_string())?;
                if !rest.is_empty() {
                    m.serialize_entry("rest", &poslab_sensitive::mask_digit_runs(&hex(rest)))?;
                }
            }
            Message::Other(apdu) => {
                m.serialize_entry("data", &poslab_sensitive::mask_digit_runs(&hex(&apdu.data)))?;
            }
            other => {
                if let Some(fields) = other.fields() {
                    if !fields.is_empty() {
                        m.serialize_entry("fields", &fields)?;
                    }
                }
            }
        }
        m.end()
    }
}

/// `06 D3` print text block: one TLV container (BMP 06) holding the receipt type
/// (tag `1F07`: 1 merchant, 2 customer, 3 administration) and the lines (tag `25`, one tag
/// `07` per line, then tag `09` `FF`, end of the receipt), as the zvt crate and real
/// terminals lay it out. Lines are sent in Latin-1; other characters become `?`.
pub fn text_block(receipt_type: u8, lines: &[String]) -> Fields {
    use poslab_tlv::Tlv;
    let mut rows: Vec<Tlv> = lines
        .iter()
        .map(|l| {
            let bytes: Vec<u8> = l
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect();
            Tlv::primitive(0x07u32, bytes)
        })
        .collect();
    rows.push(Tlv::primitive(0x09u32, vec![0xFF]));
    let container = poslab_tlv::encode(&[
        Tlv::primitive(0x1F07u32, vec![receipt_type]),
        Tlv::constructed(0x25u32, rows),
    ]);
    Fields::new().with(crate::bmp::Bmp::new(0x06, container))
}

/// The receipt type and lines of a `06 D3` text block ([`text_block`]); `None` when it
/// carries no TLV container with lines.
pub fn text_block_lines(fields: &Fields) -> Option<(Option<u8>, Vec<String>)> {
    let container = poslab_tlv::parse(&fields.get(0x06)?.value).ok()?;
    let receipt_type = poslab_tlv::find(&container, 0x1F07u32)
        .and_then(|t| t.bytes())
        .and_then(|b| b.first().copied());
    let lines = poslab_tlv::find(&container, 0x25u32)?
        .children()
        .iter()
        .filter(|t| t.tag == poslab_tlv::Tag(0x07))
        .filter_map(|t| t.bytes())
        .map(|b| b.iter().map(|&c| char::from(c)).collect())
        .collect();
    Some((receipt_type, lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bmp::Bmp;

    fn rt(m: &Message) -> Message {
        Message::from_apdu(&m.to_apdu()).unwrap()
    }

    #[test]
    fn a_text_block_carries_its_lines_in_a_tlv_container() {
        let lines = vec!["END OF DAY".to_string(), "TOTAL EUR 5.00".to_string()];
        let m = Message::PrintTextBlock(text_block(3, &lines));
        let apdu = m.to_apdu();
        // BMP 06, BER length, then 1F07 01 03 and 25 ...
        assert_eq!(apdu.data.first(), Some(&0x06));
        assert_eq!(apdu.data.get(2..6), Some(&[0x1F, 0x07, 0x01, 0x03][..]));
        let back = Message::from_apdu(&apdu).unwrap();
        let Message::PrintTextBlock(fields) = back else {
            panic!("{back:?}")
        };
        assert_eq!(text_block_lines(&fields), Some((Some(3), lines)));
    }

    #[test]
    fn commands_round_trip() {
        let msgs = [
            Message::Ack,
            Message::Nak(ResultCode(0x83)),
            Message::Registration {
                password: Password::from_number(123456),
                config: 0xBA,
                currency: Some(978),
                fields: Fields::new().with(Bmp::new(0x03, vec![0x00])),
            },
            Message::Authorisation(Fields::new().with(Bmp::bcd(0x04, 4250, 6))),
            Message::LogOff,
            Message::Reversal {
                password: Password::from_number(0),
                fields: Fields::new().with(Bmp::bcd(0x87, 12, 2)),
            },
            Message::PreAuthorisation(Fields::new().with(Bmp::bcd(0x04, 10_000, 6))),
            Message::PartialReversal(
                Fields::new()
                    .with(Bmp::bcd(0x87, 12, 2))
                    .with(Bmp::bcd(0x04, 2500, 6)),
            ),
            Message::BookTotal(
                Fields::new()
                    .with(Bmp::bcd(0x87, 12, 2))
                    .with(Bmp::bcd(0x04, 7500, 6)),
            ),
            Message::AbortRequest,
            Message::StatusEnquiry {
                password: None,
                fields: Fields::new(),
            },
            Message::IntermediateStatus {
                status: IntermediateStatus(0x0A),
                rest: vec![],
            },
            Message::PrintLine {
                attribute: 0,
                text: b"THANK YOU".to_vec(),
            },
            Message::Completion(vec![0x27, 0x00]),
            Message::Abort {
                code: ResultCode(0x6C),
                rest: vec![],
            },
            Message::Other(Apdu::new(Command(0x0F, 0xA1), vec![1, 2, 3])),
        ];
        for m in &msgs {
            assert_eq!(&rt(m), m);
        }
    }

    #[test]
    fn registration_bytes() {
        let m = Message::Registration {
            password: Password::from_number(123456),
            config: 0xBA,
            currency: Some(978),
            fields: Fields::new().with(Bmp::new(0x03, vec![0x00])),
        };
        assert_eq!(
            hex(&m.to_apdu().to_bytes()),
            "0600081234 56BA0978 0300".replace(' ', "")
        );
    }

    /// Decodes hand-written APDU bytes (spaces allowed) into a message.
    fn decode(spaced: &str) -> (Message, Vec<u8>) {
        let bytes = ::hex::decode(spaced.replace(' ', "")).unwrap();
        let apdu = crate::apdu::decode_exact(&bytes).unwrap();
        (Message::from_apdu(&apdu).unwrap(), bytes)
    }

    /// `06 22`, written out from PA00P015: class 06, instruction 22, length 0A, no password,
    /// BMP 04 amount 42.50 (6 bytes BCD), BMP 49 currency 0978.
    #[test]
    fn pre_authorisation_bytes() {
        let m = Message::PreAuthorisation(
            Fields::new()
                .with(Bmp::bcd(0x04, 4250, 6))
                .with(Bmp::bcd(0x49, 978, 2)),
        );
        let (decoded, bytes) = decode("06 22 0A  04 00 00 00 00 42 50  49 09 78");
        assert_eq!(m.to_apdu().to_bytes(), bytes);
        assert_eq!(decoded, m);
        let f = decoded.fields().unwrap();
        assert_eq!((f.amount(), f.currency()), (Some(4250), Some(978)));
        assert_eq!(decoded.command().name(), Some("pre-authorisation"));
        assert!(decoded.moves_money());
    }

    /// `06 24`: BMP 87 receipt 0012, BMP 04 final amount 30.00, BMP 0B trace 000007, BMP 3B
    /// authorisation attribute (8 bytes ASCII, space padded); length 3 + 7 + 4 + 9 = 0x17.
    #[test]
    fn book_total_bytes() {
        let m = Message::BookTotal(
            Fields::new()
                .with(Bmp::bcd(0x87, 12, 2))
                .with(Bmp::bcd(0x04, 3000, 6))
                .with(Bmp::bcd(0x0B, 7, 3))
                .with(Bmp::ascii_fixed(0x3B, "123456")),
        );
        let (decoded, bytes) = decode(
            "06 24 17  87 00 12  04 00 00 00 00 30 00  0B 00 00 07  3B 31 32 33 34 35 36 20 20",
        );
        assert_eq!(m.to_apdu().to_bytes(), bytes);
        assert_eq!(decoded, m);
        let f = decoded.fields().unwrap();
        assert_eq!(f.receipt(), Some(12));
        assert_eq!(f.amount(), Some(3000));
        assert_eq!(f.trace(), Some(7));
        assert_eq!(f.text(0x3B).as_deref(), Some("123456"));
        assert_eq!(decoded.command().name(), Some("book total"));
        // the shortest form: receipt and amount only
        let short = Message::BookTotal(
            Fields::new()
                .with(Bmp::bcd(0x87, 12, 2))
                .with(Bmp::bcd(0x04, 3000, 6)),
        );
        let (decoded, bytes) = decode("06 24 0A  87 00 12  04 00 00 00 00 30 00");
        assert_eq!(short.to_apdu().to_bytes(), bytes);
        assert_eq!(decoded, short);
    }

    /// `06 23`: BMP 87 receipt 0012, BMP 04 amount to release 10.00; length 0A. The receipt
    /// number `FF FF` (not BCD: "which reservations are open?") is kept as sent.
    #[test]
    fn partial_reversal_bytes() {
        let m = Message::PartialReversal(
            Fields::new()
                .with(Bmp::bcd(0x87, 12, 2))
                .with(Bmp::bcd(0x04, 1000, 6)),
        );
        let (decoded, bytes) = decode("06 23 0A  87 00 12  04 00 00 00 00 10 00");
        assert_eq!(m.to_apdu().to_bytes(), bytes);
        assert_eq!(decoded, m);
        let f = decoded.fields().unwrap();
        assert_eq!((f.receipt(), f.amount()), (Some(12), Some(1000)));
        assert_eq!(decoded.command().name(), Some("partial reversal"));
        assert!(decoded.moves_money());

        let (all, bytes) = decode("06 23 03  87 FF FF");
        assert_eq!(all.to_apdu().to_bytes(), bytes);
        assert_eq!(
            all.fields().unwrap().receipt(),
            None,
            "FF FF is no receipt number"
        );
    }

    #[test]
    fn a_bad_bmp_in_a_book_total_is_an_error_with_a_place() {
        // BMP 04 needs 6 bytes, 2 are left
        let err = Message::from_apdu(&Apdu::new(
            Command::BOOK_TOTAL,
            vec![0x87, 0x00, 0x12, 0x04, 0x00, 0x00],
        ))
        .unwrap_err();
        assert!(err.to_string().starts_with("at byte 6"), "{err}");
    }

    #[test]
    fn a_short_registration_is_an_error_with_a_place() {
        let err = Message::from_apdu(&Apdu::new(Command::REGISTRATION, vec![0x12])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "at byte 3, registration password: needs 3 bytes, 1 left"
        );
    }

    #[test]
    fn json_view_masks_the_pan() {
        let pan = poslab_sensitive::test_cards::visa();
        let m = Message::StatusInformation(
            Fields::new()
                .with(Bmp::new(0x27, vec![0]))
                .with(Bmp::masked_pan(&poslab_sensitive::Pan::new(pan))),
        );
        let json = serde_json::to_string(&m).unwrap();
        let masked = format!("{}******{}", &pan[..6], &pan[pan.len() - 4..]);
        assert!(json.contains(&masked), "{json}");
        assert!(!json.contains(pan), "{json}");
        let dbg = format!("{m:?}");
        assert!(!dbg.contains(pan));
    }
}
