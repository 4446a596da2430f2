//! ISO/IEC 7816-4 APDUs: command APDUs (cases 1 to 4, short and extended lengths),
//! response APDUs (data + status word) and status words as an open enum.
//!
//! Parsing is exact: a command parsed from bytes encodes back to the same bytes (the
//! `extended` flag remembers which length form the sender used). `Debug` never shows a
//! command's or a response's data (it may be a PIN block, track 2 or a PAN): only lengths.

use std::fmt;

use crate::EmvError;

/// A status word (SW1 SW2). Open: every `u16` is a status word; the known ones have a name
/// and a description, the rest print as four hex digits and round-trip unchanged.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusWord(pub u16);

impl StatusWord {
    pub const SUCCESS: StatusWord = StatusWord(0x9000);
    /// Selected file deactivated (an EMV application that is blocked answers SELECT so).
    pub const SELECTED_FILE_INVALIDATED: StatusWord = StatusWord(0x6283);
    /// Authentication failed (EXTERNAL AUTHENTICATE with a wrong ARPC).
    pub const AUTHENTICATION_FAILED: StatusWord = StatusWord(0x6300);
    pub const NO_PRECISE_DIAGNOSIS: StatusWord = StatusWord(0x6F00);
    pub const WRONG_LENGTH: StatusWord = StatusWord(0x6700);
    pub const SECURITY_STATUS_NOT_SATISFIED: StatusWord = StatusWord(0x6982);
    pub const AUTHENTICATION_METHOD_BLOCKED: StatusWord = StatusWord(0x6983);
    pub const REFERENCE_DATA_NOT_USABLE: StatusWord = StatusWord(0x6984);
    pub const CONDITIONS_NOT_SATISFIED: StatusWord = StatusWord(0x6985);
    pub const COMMAND_NOT_ALLOWED: StatusWord = StatusWord(0x6986);
    pub const SM_DATA_INCORRECT: StatusWord = StatusWord(0x6988);
    pub const WRONG_DATA: StatusWord = StatusWord(0x6A80);
    pub const FUNCTION_NOT_SUPPORTED: StatusWord = StatusWord(0x6A81);
    pub const FILE_NOT_FOUND: StatusWord = StatusWord(0x6A82);
    pub const RECORD_NOT_FOUND: StatusWord = StatusWord(0x6A83);
    pub const INCORRECT_P1_P2: StatusWord = StatusWord(0x6A86);
    pub const REFERENCED_DATA_NOT_FOUND: StatusWord = StatusWord(0x6A88);
    pub const WRONG_P1_P2: StatusWord = StatusWord(0x6B00);
    pub const INS_NOT_SUPPORTED: StatusWord = StatusWord(0x6D00);
    pub const CLA_NOT_SUPPORTED: StatusWord = StatusWord(0x6E00);

    pub fn from_bytes(sw1: u8, sw2: u8) -> Self {
        StatusWord(u16::from_be_bytes([sw1, sw2]))
    }
    /// `63Cx`: a wrong PIN (or other verification), `x` tries left (0 to 15).
    pub fn tries_left(x: u8) -> Self {
        StatusWord(0x63C0 | u16::from(x.min(15)))
    }
    /// `61xx`: `xx` more bytes available with GET RESPONSE (T=0).
    pub fn bytes_available(n: u8) -> Self {
        StatusWord(0x6100 | u16::from(n))
    }
    /// `6Cxx`: wrong Le, re-issue with Le = `xx` (T=0).
    pub fn wrong_le(n: u8) -> Self {
        StatusWord(0x6C00 | u16::from(n))
    }
    pub fn sw1(self) -> u8 {
        self.0.to_be_bytes()[0]
    }
    pub fn sw2(self) -> u8 {
        self.0.to_be_bytes()[1]
    }
    pub fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }
    /// `9000` and the `61xx` "more data" family.
    pub fn is_success(self) -> bool {
        self.0 == 0x9000 || self.sw1() == 0x61
    }
    /// Tries left when this is `63Cx`.
    pub fn verification_tries_left(self) -> Option<u8> {
        (self.0 & 0xFFF0 == 0x63C0).then_some(self.sw2() & 0x0F)
    }

    /// What the status word means, for the known ones.
    pub fn description(self) -> Option<String> {
        let fixed = match self.0 {
            0x9000 => "success",
            0x6200 => "warning, state of non-volatile memory unchanged",
            0x6281 => "part of returned data may be corrupted",
            0x6282 => "end of file or record reached before reading le bytes",
            0x6283 => "selected file deactivated",
            0x6300 => "authentication failed",
            0x6400 => "execution error, state of non-volatile memory unchanged",
            0x6581 => "memory failure",
            0x6700 => "wrong length",
            0x6881 => "logical channel not supported",
            0x6882 => "secure messaging not supported",
            0x6982 => "security status not satisfied",
            0x6983 => "authentication method blocked",
            0x6984 => "reference data not usable",
            0x6985 => "conditions of use not satisfied",
            0x6986 => "command not allowed, no current ef",
            0x6987 => "expected secure messaging data objects missing",
            0x6988 => "incorrect secure messaging data objects",
            0x6A80 => "incorrect parameters in the command data field",
            0x6A81 => "function not supported",
            0x6A82 => "file or application not found",
            0x6A83 => "record not found",
            0x6A84 => "not enough memory space in the file",
            0x6A86 => "incorrect parameters p1-p2",
            0x6A88 => "referenced data not found",
            0x6B00 => "wrong parameters p1-p2",
            0x6D00 => "instruction code not supported or invalid",
            0x6E00 => "class not supported",
            0x6F00 => "no precise diagnosis",
            _ => {
                return match self.sw1() {
                    0x61 => Some(format!("{} more bytes available", self.sw2())),
                    0x6C => Some(format!("wrong le, exact length is {}", self.sw2())),
                    0x63 if self.sw2() & 0xF0 == 0xC0 => Some(format!(
                        "verification failed, {} tries left",
                        self.sw2() & 0x0F
                    )),
                    _ => None,
                }
            }
        };
        Some(fixed.to_string())
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.description() {
            Some(d) => write!(f, "{:04X} ({d})", self.0),
            None => write!(f, "{:04X}", self.0),
        }
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusWord({:04X})", self.0)
    }
}

impl From<u16> for StatusWord {
    fn from(v: u16) -> Self {
        StatusWord(v)
    }
}

/// Instruction bytes the card knows (others are answered `6D00`).
pub mod ins {
    pub const SELECT: u8 = 0xA4;
    pub const READ_RECORD: u8 = 0xB2;
    pub const GET_PROCESSING_OPTIONS: u8 = 0xA8;
    pub const GET_DATA: u8 = 0xCA;
    pub const VERIFY: u8 = 0x20;
    pub const GENERATE_AC: u8 = 0xAE;
    pub const EXTERNAL_AUTHENTICATE: u8 = 0x82;
    pub const GET_CHALLENGE: u8 = 0x84;
    pub const INTERNAL_AUTHENTICATE: u8 = 0x88;
    pub const GET_RESPONSE: u8 = 0xC0;
    pub const APPLICATION_BLOCK: u8 = 0x1E;
    pub const APPLICATION_UNBLOCK: u8 = 0x18;
    pub const CARD_BLOCK: u8 = 0x16;
    pub const PIN_CHANGE_UNBLOCK: u8 = 0x24;
    pub const PUT_DATA: u8 = 0xDA;
}

/// A command APDU. `le` is Ne, the number of bytes expected (1..=256 short, 1..=65536
/// extended); `None` means no Le field (cases 1 and 3).
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: Vec<u8>,
    pub le: Option<u32>,
    /// Lengths were (or will be) written in the extended form.
    pub extended: bool,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Command({:02X} {:02X} {:02X} {:02X}, {} data bytes, le {:?}{})",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.le,
            if self.extended { ", extended" } else { "" }
        )
    }
}

/// The four ISO 7816-4 cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// No data, no Le.
    One,
    /// Le only.
    Two,
    /// Data only.
    Three,
    /// Data and Le.
    Four,
}

impl Command {
    /// A command with the length form chosen automatically (short where it fits).
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8, data: Vec<u8>, le: Option<u32>) -> Self {
        let extended = data.len() > 255 || le.is_some_and(|n| n > 256);
        Command {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
            extended,
        }
    }

    /// SELECT by name (`00 A4 04 00 Lc name 00`).
    pub fn select(name: &[u8]) -> Self {
        Command::new(0x00, ins::SELECT, 0x04, 0x00, name.to_vec(), Some(256))
    }

    /// READ RECORD `record` of `sfi`.
    pub fn read_record(sfi: u8, record: u8) -> Self {
        Command::new(
            0x00,
            ins::READ_RECORD,
            record,
            (sfi << 3) | 0x04,
            Vec::new(),
            Some(256),
        )
    }

    /// GET PROCESSING OPTIONS with the PDOL values (wrapped in tag `83`).
    pub fn get_processing_options(pdol_values: &[u8]) -> Self {
        let mut data = vec![0x83];
        push_len(&mut data, pdol_values.len());
        data.extend_from_slice(pdol_values);
        Command::new(0x80, ins::GET_PROCESSING_OPTIONS, 0, 0, data, Some(256))
    }

    /// GET DATA for a one- or two-byte tag.
    pub fn get_data(tag: u16) -> Self {
        let [p1, p2] = tag.to_be_bytes();
        Command::new(0x80, ins::GET_DATA, p1, p2, Vec::new(), Some(256))
    }

    /// VERIFY with a plaintext offline PIN block (P2 = 80).
    pub fn verify_plaintext(pin_block: &[u8]) -> Self {
        Command::new(0x00, ins::VERIFY, 0x00, 0x80, pin_block.to_vec(), None)
    }

    /// VERIFY with an enciphered offline PIN (P2 = 88; EMV Book 2 §7.2).
    pub fn verify_enciphered(enciphered: &[u8]) -> Self {
        Command::new(0x00, ins::VERIFY, 0x00, 0x88, enciphered.to_vec(), None)
    }

    /// GET CHALLENGE (8 bytes from the card, for an enciphered PIN).
    pub fn get_challenge() -> Self {
        Command::new(0x00, ins::GET_CHALLENGE, 0, 0, Vec::new(), Some(256))
    }

    /// INTERNAL AUTHENTICATE (DDA) with the DDOL values.
    pub fn internal_authenticate(ddol_values: &[u8]) -> Self {
        Command::new(
            0x00,
            ins::INTERNAL_AUTHENTICATE,
            0,
            0,
            ddol_values.to_vec(),
            Some(256),
        )
    }

    /// GENERATE AC; `p1` is the reference control parameter (00 AAC, 40 TC, 80 ARQC).
    pub fn generate_ac(p1: u8, cdol_values: &[u8]) -> Self {
        Command::new(
            0x80,
            ins::GENERATE_AC,
            p1,
            0x00,
            cdol_values.to_vec(),
            Some(256),
        )
    }

    /// EXTERNAL AUTHENTICATE with the issuer authentication data (ARPC ‖ ARC).
    pub fn external_authenticate(issuer_auth_data: &[u8]) -> Self {
        Command::new(
            0x00,
            ins::EXTERNAL_AUTHENTICATE,
            0x00,
            0x00,
            issuer_auth_data.to_vec(),
            None,
        )
    }

    pub fn case(&self) -> Case {
        match (self.data.is_empty(), self.le.is_some()) {
            (true, false) => Case::One,
            (true, true) => Case::Two,
            (false, false) => Case::Three,
            (false, true) => Case::Four,
        }
    }

    /// Parses one whole command APDU (exactly `bytes`, nothing after it).
    pub fn parse(bytes: &[u8]) -> Result<Self, EmvError> {
        let (&[cla, ins, p1, p2], body) = split_header(bytes)?;
        let head = |data: Vec<u8>, le: Option<u32>, extended: bool| Command {
            cla,
            ins,
            p1,
            p2,
            data,
            le,
            extended,
        };
        let Some((&b4, rest)) = body.split_first() else {
            return Ok(head(Vec::new(), None, false));
        };
        if b4 != 0 || body.len() == 1 {
            // short form: body = Le | Lc data | Lc data Le
            if body.len() == 1 {
                return Ok(head(Vec::new(), Some(short_ne(b4)), false));
            }
            let lc = usize::from(b4);
            return match rest.len().checked_sub(lc) {
                Some(0) => Ok(head(rest.to_vec(), None, false)),
                Some(1) => {
                    let (data, le) = rest.split_at(lc);
                    let le = le.first().copied().unwrap_or(0);
                    Ok(head(data.to_vec(), Some(short_ne(le)), false))
                }
                _ => Err(EmvError::ApduLength {
                    offset: 4,
                    detail: format!(
                        "short lc {lc} leaves {} bytes after it (expected {lc} or {})",
                        rest.len(),
                        lc + 1
                    ),
                }),
            };
        }
        // b4 == 0 and more bytes follow: extended form
        match rest {
            [a, b] => Ok(head(
                Vec::new(),
                Some(extended_ne(u16::from_be_bytes([*a, *b]))),
                true,
            )),
            [a, b, tail @ ..] => {
                let lc = usize::from(u16::from_be_bytes([*a, *b]));
                if lc == 0 {
                    return Err(EmvError::ApduLength {
                        offset: 5,
                        detail: format!("extended lc is 0 with {} bytes after it", tail.len()),
                    });
                }
                match tail.len().checked_sub(lc) {
                    Some(0) => Ok(head(tail.to_vec(), None, true)),
                    Some(2) => {
                        let (data, le) = tail.split_at(lc);
                        let le = match le {
                            [x, y] => u16::from_be_bytes([*x, *y]),
                            _ => 0,
                        };
                        Ok(head(data.to_vec(), Some(extended_ne(le)), true))
                    }
                    _ => Err(EmvError::ApduLength {
                        offset: 5,
                        detail: format!(
                            "extended lc {lc} leaves {} bytes after it (expected {lc} or {})",
                            tail.len(),
                            lc + 2
                        ),
                    }),
                }
            }
            _ => Err(EmvError::ApduLength {
                offset: 5,
                detail: format!(
                    "extended length needs 2 bytes after the 00 marker, found {}",
                    rest.len()
                ),
            }),
        }
    }

    /// The command's bytes. Fails when the data or Le cannot be written in the chosen form.
    pub fn encode(&self) -> Result<Vec<u8>, EmvError> {
        let mut out = Vec::with_capacity(self.data.len() + 9);
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        let too_long = |what: &str, n: usize| EmvError::ApduEncode(format!("{what} {n} too long"));
        if !self.extended {
            if !self.data.is_empty() {
                let lc = u8::try_from(self.data.len())
                    .map_err(|_| too_long("short lc", self.data.len()))?;
                out.push(lc);
                out.extend_from_slice(&self.data);
            }
            if let Some(ne) = self.le {
                match ne {
                    1..=255 => out.push(ne as u8), // ok: range checked
                    256 => out.push(0),
                    _ => return Err(too_long("short le", ne as usize)),
                }
            }
        } else {
            if self.data.is_empty() && self.le.is_none() {
                return Err(EmvError::ApduEncode(
                    "an extended case 1 command has no length field to extend".into(),
                ));
            }
            out.push(0);
            if !self.data.is_empty() {
                let lc = u16::try_from(self.data.len())
                    .map_err(|_| too_long("extended lc", self.data.len()))?;
                out.extend_from_slice(&lc.to_be_bytes());
                out.extend_from_slice(&self.data);
            }
            if let Some(ne) = self.le {
                match ne {
                    1..=65535 => out.extend_from_slice(&(ne as u16).to_be_bytes()), // ok: range checked
                    65536 => out.extend_from_slice(&[0, 0]),
                    _ => return Err(too_long("extended le", ne as usize)),
                }
            }
        }
        Ok(out)
    }
}

fn split_header(bytes: &[u8]) -> Result<(&[u8; 4], &[u8]), EmvError> {
    match bytes.split_first_chunk::<4>() {
        Some((h, rest)) => Ok((h, rest)),
        None => Err(EmvError::ApduLength {
            offset: bytes.len(),
            detail: format!("a command needs 4 header bytes, found {}", bytes.len()),
        }),
    }
}

fn short_ne(b: u8) -> u32 {
    if b == 0 {
        256
    } else {
        u32::from(b)
    }
}

fn extended_ne(v: u16) -> u32 {
    if v == 0 {
        65536
    } else {
        u32::from(v)
    }
}

/// Appends a BER length (short form, `81 nn` or `82 nn nn`).
pub(crate) fn push_len(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8); // ok: < 0x80
    } else if n <= 0xFF {
        out.extend_from_slice(&[0x81, n as u8]); // ok: <= 0xFF
    } else {
        let n = u16::try_from(n).unwrap_or(u16::MAX);
        out.push(0x82);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A response APDU: data and status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub data: Vec<u8>,
    pub sw: StatusWord,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response({} data bytes, {})", self.data.len(), self.sw)
    }
}

impl Response {
    pub fn ok(data: Vec<u8>) -> Self {
        Response {
            data,
            sw: StatusWord::SUCCESS,
        }
    }
    pub fn status(sw: StatusWord) -> Self {
        Response {
            data: Vec::new(),
            sw,
        }
    }
    /// Parses `data ‖ SW1 SW2`.
    pub fn parse(bytes: &[u8]) -> Result<Self, EmvError> {
        match bytes.split_last_chunk::<2>() {
            Some((data, [sw1, sw2])) => Ok(Response {
                data: data.to_vec(),
                sw: StatusWord::from_bytes(*sw1, *sw2),
            }),
            None => Err(EmvError::ApduLength {
                offset: bytes.len(),
                detail: format!(
                    "a response needs a 2-byte status word, found {} bytes",
                    bytes.len()
                ),
            }),
        }
    }
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.sw.to_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn the_four_cases_short() {
        let c1 = Command::parse(&h("00 A4 04 00")).unwrap();
        assert_eq!(c1.case(), Case::One);
        let c2 = Command::parse(&h("80 CA 9F 36 00")).unwrap();
        assert_eq!((c2.case(), c2.le), (Case::Two, Some(256)));
        let c3 = Command::parse(&h("00 20 00 80 08 24 12 34 FF FF FF FF FF")).unwrap();
        assert_eq!((c3.case(), c3.data.len()), (Case::Three, 8));
        let c4 = Command::parse(&h("00 A4 04 00 07 A0 00 00 00 03 10 10 00")).unwrap();
        assert_eq!(c4.case(), Case::Four);
        assert_eq!(c4.data, h("A0000000031010"));
        assert_eq!(c4, Command::select(&h("A0000000031010")));
        for c in [c1, c2, c3, c4] {
            let bytes = c.encode().unwrap();
            assert_eq!(Command::parse(&bytes).unwrap(), c);
        }
    }

    #[test]
    fn the_cases_extended() {
        let c2 = Command::parse(&h("00 B0 00 00 00 01 00")).unwrap();
        assert_eq!(
            (c2.case(), c2.le, c2.extended),
            (Case::Two, Some(256), true)
        );
        let c2max = Command::parse(&h("00 B0 00 00 00 00 00")).unwrap();
        assert_eq!(c2max.le, Some(65536));
        let mut long = h("00 D6 00 00 00 01 2C");
        long.extend(vec![0xAB; 300]);
        let c3 = Command::parse(&long).unwrap();
        assert_eq!((c3.case(), c3.data.len()), (Case::Three, 300));
        long.extend([0x00, 0x00]);
        let c4 = Command::parse(&long).unwrap();
        assert_eq!((c4.case(), c4.le), (Case::Four, Some(65536)));
        assert_eq!(c4.encode().unwrap(), long);
        assert!(Command::new(0, 0xD6, 0, 0, vec![0; 300], None).extended);
    }

    #[test]
    fn bad_lengths_say_where() {
        let err = Command::parse(&h("00 A4")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad apdu length at byte 2: a command needs 4 header bytes, found 2"
        );
        let err = Command::parse(&h("00 A4 04 00 07 A0 00")).unwrap_err();
        assert!(
            err.to_string().contains("short lc 7 leaves 2 bytes"),
            "{err}"
        );
        let err = Command::parse(&h("00 A4 04 00 00 00 00 01")).unwrap_err();
        assert!(err.to_string().contains("extended lc is 0"), "{err}");
        assert!(Command::parse(&h("00 A4 04 00 00 01")).is_err());
    }

    #[test]
    fn status_words_are_open_and_described() {
        assert_eq!(StatusWord(0x9000).to_string(), "9000 (success)");
        assert_eq!(
            StatusWord(0x6A82).to_string(),
            "6A82 (file or application not found)"
        );
        assert_eq!(
            StatusWord::tries_left(2).to_string(),
            "63C2 (verification failed, 2 tries left)"
        );
        assert_eq!(
            StatusWord(0x6110).to_string(),
            "6110 (16 more bytes available)"
        );
        assert_eq!(
            StatusWord::wrong_le(0x1C).to_string(),
            "6C1C (wrong le, exact length is 28)"
        );
        assert_eq!(StatusWord(0x1234).to_string(), "1234");
        assert_eq!(format!("{:?}", StatusWord(0xABCD)), "StatusWord(ABCD)");
        assert_eq!(StatusWord(0x63C1).verification_tries_left(), Some(1));
        assert_eq!(StatusWord(0x6983).verification_tries_left(), None);
        let r = Response::parse(&h("12 34 AB CD")).unwrap();
        assert_eq!(r.sw, StatusWord(0xABCD));
        assert_eq!(r.encode(), h("12 34 AB CD"));
        assert!(Response::parse(&h("90")).is_err());
    }

    #[test]
    fn debug_never_shows_data() {
        let c = Command::verify_plaintext(&h("241234FFFFFFFFFF"));
        let d = format!("{c:?}");
        assert!(!d.contains("1234") && !d.contains("12, 52"), "{d}");
        let r = Response::ok(h("5A084111111111111111"));
        assert!(!format!("{r:?}").contains("4111"));
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(c) = Command::parse(&bytes) {
                prop_assert_eq!(c.encode().unwrap(), bytes);
            }
        }

        #[test]
        fn built_commands_round_trip(
            head in any::<[u8; 4]>(),
            data in proptest::collection::vec(any::<u8>(), 0..600),
            le in proptest::option::of(1u32..=65536),
        ) {
            let c = Command::new(head[0], head[1], head[2], head[3], data, le);
            let bytes = c.encode().unwrap();
            prop_assert_eq!(Command::parse(&bytes).unwrap(), c);
        }

        #[test]
        fn responses_round_trip(data in proptest::collection::vec(any::<u8>(), 0..300), sw in any::<u16>()) {
            let r = Response { data, sw: StatusWord(sw) };
            prop_assert_eq!(Response::parse(&r.encode()).unwrap(), r);
        }
    }
}
