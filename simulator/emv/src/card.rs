//! The card: an EMV application (or several) answering command APDUs as a real card does.
//!
//! Commands: SELECT (PSE `1PAY.SYS.DDF01` on contact, PPSE `2PAY.SYS.DDF01` on contactless,
//! an AID, exact or partial), READ RECORD (PSE directory and application records), GET
//! PROCESSING OPTIONS (PDOL data checked against the PDOL), GET DATA (`9F36` ATC, `9F17`
//! PIN try counter, `9F13` last online ATC, any application data object), VERIFY
//! (plaintext offline PIN, ISO 9564 format 2 block, P2 = 80), GENERATE AC (first and
//! second, real cryptograms: ICC master key by option A from the test issuer key, EMV
//! common session key, MAC algorithm 3 over CDOL data ‖ AIP ‖ ATC ‖ IAD, CVN 18 style),
//! EXTERNAL AUTHENTICATE (ARPC method 1), and issuer script commands (APPLICATION BLOCK and
//! UNBLOCK, CARD BLOCK, PIN UNBLOCK, PUT DATA) MACed under the session key.
//!
//! Risk decisions: the card never answers with a cryptogram stronger than the terminal
//! asked for (AAC < TC < ARQC); a TC request becomes an ARQC once the consecutive offline
//! limit is used up or the PIN try limit is exceeded; a blocked application or card only
//! gives AACs. Counters (ATC, PIN tries, last online ATC, offline count, script count and
//! status, blocks) live in [`CardState`] and survive power cycles; the selection and the
//! transaction in progress do not.

use poslab_crypto::{Key, Padding, SessionKeyMethod};
use poslab_tlv::{parse_dol, Tag, Tlv};

use crate::apdu::{ins, push_len, Command, Response, StatusWord};
use crate::profile::{bcd_byte, Application, CardProfile, ChipFault, Interface};
use crate::vpcd::{self, FrameBuffer, ReaderMessage};

/// `1PAY.SYS.DDF01`, the contact payment system environment.
pub const PSE: &[u8] = b"1PAY.SYS.DDF01";
/// `2PAY.SYS.DDF01`, the proximity (contactless) payment system environment.
pub const PPSE: &[u8] = b"2PAY.SYS.DDF01";
/// SFI of the PSE directory file.
const PSE_SFI: u8 = 1;

/// Cryptogram information data (`9F27`), bits 8-7.
pub mod cid {
    pub const AAC: u8 = 0x00;
    pub const TC: u8 = 0x40;
    pub const ARQC: u8 = 0x80;
    pub const MASK: u8 = 0xC0;
}

/// What the card remembers across power cycles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardState {
    pub atc: u16,
    pub last_online_atc: u16,
    pub pin_tries_left: u8,
    /// Offline approvals (TC) since the last online transaction.
    pub consecutive_offline: u16,
    /// Blocked by profile or by an issuer script, per application (profile order).
    pub app_blocked: Vec<bool>,
    pub card_blocked: bool,
    /// Issuer script commands processed in the last transaction that had any.
    pub script_commands: u8,
    /// An issuer script command failed in that transaction.
    pub script_failed: bool,
    /// Status word of the last issuer script command.
    pub last_script_status: Option<StatusWord>,
    /// Data objects written by PUT DATA, per application.
    pub put_data: Vec<(usize, u32, Vec<u8>)>,
    /// An ARQC was issued and the second GENERATE AC never came.
    pub online_incomplete: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Selected {
    None,
    Pse,
    Ppse,
    App(usize),
}

struct FirstAc {
    cid: u8,
    ac: [u8; 8],
    sk: Key,
}

struct Session {
    selected: Selected,
    gpo_done: bool,
    pin_verified: bool,
    pin_failed: bool,
    first_ac: Option<FirstAc>,
    issuer_auth: Option<bool>,
    second_ac_done: bool,
    scripts_this_txn: u8,
    script_failed_this_txn: bool,
    /// The PDOL values of GET PROCESSING OPTIONS (hashed by CDA).
    pdol_data: Vec<u8>,
    /// The last GET CHALLENGE answer, for an enciphered PIN (used once).
    challenge: Option<[u8; 8]>,
    challenges: u32,
}

#[path = "oda_card.rs"]
mod oda_card;
pub use oda_card::encipher_pin_for_card;

impl Session {
    fn new() -> Self {
        Session {
            selected: Selected::None,
            gpo_done: false,
            pin_verified: false,
            pin_failed: false,
            first_ac: None,
            issuer_auth: None,
            second_ac_done: false,
            scripts_this_txn: 0,
            script_failed_this_txn: false,
            pdol_data: Vec::new(),
            challenge: None,
            challenges: 0,
        }
    }
}

/// An EMV card built from a [`CardProfile`].
pub struct Card {
    profile: CardProfile,
    interface: Interface,
    powered: bool,
    state: CardState,
    session: Session,
    /// ICC master key for application cryptograms, derived once from the issuer key.
    icc_mk: Option<Key>,
    /// Why the card could not derive its keys (answers `6985` to GENERATE AC).
    key_error: Option<String>,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("profile", &self.profile.name)
            .field("pan", &self.profile.pan)
            .field("interface", &self.interface)
            .field("powered", &self.powered)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

type Answer = Result<Vec<u8>, StatusWord>;

impl Card {
    /// A card read through `interface` (contact or contactless; the PSE answers on
    /// contact, the PPSE on contactless).
    pub fn new(profile: CardProfile, interface: Interface) -> Card {
        let (icc_mk, key_error) = match &profile.keys {
            None => (None, None),
            Some(k) => match Key::tdes(k.imk_ac.expose()).and_then(|imk| {
                poslab_crypto::derive_icc_master_key_a(
                    &imk,
                    profile.pan.expose(),
                    bcd_byte(profile.pan_sequence),
                )
            }) {
                Ok(mk) => (Some(mk), None),
                Err(e) => (None, Some(e.to_string())),
            },
        };
        let state = CardState {
            atc: profile.atc,
            last_online_atc: profile.last_online_atc,
            pin_tries_left: profile.pin_tries_left,
            consecutive_offline: profile.atc.saturating_sub(profile.last_online_atc),
            app_blocked: profile.applications.iter().map(|a| a.blocked).collect(),
            card_blocked: false,
            script_commands: 0,
            script_failed: false,
            last_script_status: None,
            put_data: Vec::new(),
            online_incomplete: false,
        };
        Card {
            profile,
            interface,
            powered: false,
            state,
            session: Session::new(),
            icc_mk,
            key_error,
        }
    }

    pub fn profile(&self) -> &CardProfile {
        &self.profile
    }
    pub fn state(&self) -> &CardState {
        &self.state
    }
    pub fn interface(&self) -> Interface {
        self.interface
    }
    /// Presents the card through another interface (inserted instead of tapped).
    pub fn set_interface(&mut self, interface: Interface) {
        self.interface = interface;
        self.session = Session::new();
    }
    pub fn is_powered(&self) -> bool {
        self.powered
    }

    /// The answer to reset; `None` when the card has no working chip.
    pub fn atr(&self) -> Option<&[u8]> {
        if !self.profile.has_chip() || self.profile.chip_fault == Some(ChipFault::Mute) {
            return None;
        }
        Some(&self.profile.atr)
    }

    pub fn power_on(&mut self) {
        self.end_session();
        self.powered = true;
    }

    pub fn power_off(&mut self) {
        self.end_session();
        self.powered = false;
    }

    fn end_session(&mut self) {
        if self
            .session
            .first_ac
            .as_ref()
            .is_some_and(|f| f.cid == cid::ARQC)
            && !self.session.second_ac_done
        {
            self.state.online_incomplete = true;
        }
        self.session = Session::new();
    }

    /// One vpcd message from the reader; `Some(payload)` is the answer to send back
    /// (an empty payload means "no answer": mute chip, or not powered).
    pub fn handle_message(&mut self, msg: ReaderMessage) -> Option<Vec<u8>> {
        match msg {
            ReaderMessage::PowerOff => {
                self.power_off();
                None
            }
            ReaderMessage::PowerOn | ReaderMessage::Reset => {
                self.power_on();
                None
            }
            ReaderMessage::GetAtr => Some(self.atr().map(<[u8]>::to_vec).unwrap_or_default()),
            ReaderMessage::Apdu(bytes) => {
                if !self.powered || self.atr().is_none() {
                    return Some(Vec::new());
                }
                Some(self.handle_apdu(&bytes).encode())
            }
            ReaderMessage::Control(_) | ReaderMessage::Empty => None,
        }
    }

    /// One command APDU (bytes) and the card's answer.
    pub fn handle_apdu(&mut self, bytes: &[u8]) -> Response {
        match Command::parse(bytes) {
            Ok(cmd) => self.handle_command(&cmd),
            Err(_) => Response::status(StatusWord::WRONG_LENGTH),
        }
    }

    /// One command and the card's answer.
    pub fn handle_command(&mut self, cmd: &Command) -> Response {
        if let Some(ChipFault::Answer(sw)) = self.profile.chip_fault {
            return Response::status(sw);
        }
        let answer = match (cmd.cla, cmd.ins) {
            (0x00, ins::SELECT) => self.select(cmd),
            (0x00, ins::READ_RECORD) => self.read_record(cmd),
            (0x80, ins::GET_PROCESSING_OPTIONS) => self.gpo(cmd),
            (0x80, ins::GET_DATA) => self.get_data(cmd),
            (0x00, ins::VERIFY) => self.verify(cmd),
            (0x00, ins::INTERNAL_AUTHENTICATE) => self.internal_authenticate(cmd),
            (0x00, ins::GET_CHALLENGE) => self.get_challenge(cmd),
            (0x80, ins::GENERATE_AC) => self.generate_ac(cmd),
            (0x00, ins::EXTERNAL_AUTHENTICATE) => self.external_authenticate(cmd),
            (
                0x84,
                ins::APPLICATION_BLOCK
                | ins::APPLICATION_UNBLOCK
                | ins::CARD_BLOCK
                | ins::PIN_CHANGE_UNBLOCK,
            )
            | (0x04, ins::PUT_DATA) => self.issuer_script(cmd),
            (0x00 | 0x80 | 0x84 | 0x04, _) => Err(StatusWord::INS_NOT_SUPPORTED),
            _ => Err(StatusWord::CLA_NOT_SUPPORTED),
        };
        match answer {
            Ok(data) => Response::ok(data),
            Err(sw) if sw == StatusWord::SELECTED_FILE_INVALIDATED => {
                // a blocked application still returns its FCI with 6283
                let data = match self.session.selected {
                    Selected::App(i) => self.app_fci(i),
                    _ => Vec::new(),
                };
                Response { data, sw }
            }
            Err(sw) => Response::status(sw),
        }
    }

    fn app(&self, i: usize) -> Option<&Application> {
        self.profile.applications.get(i)
    }

    fn current_app(&self) -> Result<usize, StatusWord> {
        match self.session.selected {
            Selected::App(i) => Ok(i),
            _ => Err(StatusWord::CONDITIONS_NOT_SATISFIED),
        }
    }

    fn app_value(&self, i: usize, tag: u32) -> Option<Vec<u8>> {
        if let Some((_, _, v)) = self
            .state
            .put_data
            .iter()
            .rev()
            .find(|(a, t, _)| *a == i && *t == tag)
        {
            return Some(v.clone());
        }
        self.app(i).and_then(|a| self.profile.app_data(a, tag))
    }

    // ---- SELECT -------------------------------------------------------------------

    fn select(&mut self, cmd: &Command) -> Answer {
        if cmd.p1 != 0x04 || (cmd.p2 != 0x00 && cmd.p2 != 0x02) {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        self.end_session();
        if self.state.card_blocked {
            return Err(StatusWord::FUNCTION_NOT_SUPPORTED);
        }
        let name = cmd.data.as_slice();
        if name == PSE {
            if self.interface != Interface::Contact || !self.profile.pse {
                return Err(StatusWord::FILE_NOT_FOUND);
            }
            self.session.selected = Selected::Pse;
            let a5 = Tlv::constructed(
                0xA5u32,
                vec![
                    Tlv::primitive(0x88u32, vec![PSE_SFI]),
                    Tlv::primitive(0x5F2Du32, b"en".to_vec()),
                ],
            );
            return Ok(fci(PSE, a5));
        }
        if name == PPSE {
            if self.interface != Interface::Contactless {
                return Err(StatusWord::FILE_NOT_FOUND);
            }
            self.session.selected = Selected::Ppse;
            let entries = self
                .profile
                .applications
                .iter()
                .map(|a| {
                    let mut e = vec![
                        Tlv::primitive(0x4Fu32, a.aid.clone()),
                        Tlv::primitive(0x50u32, a.label.as_bytes().to_vec()),
                    ];
                    if let Some(p) = a.priority {
                        e.push(Tlv::primitive(0x87u32, vec![p]));
                    }
                    if let Some(k) = a.kernel_id {
                        e.push(Tlv::primitive(0x9F2Au32, vec![k]));
                    }
                    Tlv::constructed(0x61u32, e)
                })
                .collect();
            let a5 = Tlv::constructed(0xA5u32, vec![Tlv::constructed(0xBF0Cu32, entries)]);
            return Ok(fci(PPSE, a5));
        }
        // an AID, exact or partial (the terminal's AID is a prefix of the card's)
        let found = if name.len() >= 5 {
            self.profile
                .applications
                .iter()
                .position(|a| a.aid.starts_with(name))
        } else {
            None
        };
        let Some(i) = found else {
            return Err(StatusWord::FILE_NOT_FOUND);
        };
        self.session.selected = Selected::App(i);
        if self.state.app_blocked.get(i).copied().unwrap_or(false) {
            return Err(StatusWord::SELECTED_FILE_INVALIDATED);
        }
        Ok(self.app_fci(i))
    }

    fn app_fci(&self, i: usize) -> Vec<u8> {
        let Some(app) = self.app(i) else {
            return Vec::new();
        };
        let mut a5 = vec![Tlv::primitive(0x50u32, app.label.as_bytes().to_vec())];
        if let Some(p) = app.priority {
            a5.push(Tlv::primitive(0x87u32, vec![p]));
        }
        if !app.pdol.is_empty() {
            a5.push(Tlv::primitive(0x9F38u32, app.pdol.clone()));
        }
        a5.push(Tlv::primitive(0x5F2Du32, b"en".to_vec()));
        fci(&app.aid, Tlv::constructed(0xA5u32, a5))
    }

    // ---- READ RECORD ----------------------------------------------------------------

    fn read_record(&mut self, cmd: &Command) -> Answer {
        if cmd.p2 & 0x07 != 0x04 || cmd.p1 == 0 {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        let sfi = cmd.p2 >> 3;
        let rec = cmd.p1;
        match self.session.selected {
            Selected::Pse if sfi == PSE_SFI => {
                // one directory entry per record
                let app = self
                    .profile
                    .applications
                    .get(usize::from(rec) - 1)
                    .ok_or(StatusWord::RECORD_NOT_FOUND)?;
                let mut e = vec![
                    Tlv::primitive(0x4Fu32, app.aid.clone()),
                    Tlv::primitive(0x50u32, app.label.as_bytes().to_vec()),
                ];
                if let Some(p) = app.priority {
                    e.push(Tlv::primitive(0x87u32, vec![p]));
                }
                Ok(Tlv::constructed(0x70u32, vec![Tlv::constructed(0x61u32, e)]).to_bytes())
            }
            Selected::App(i) => {
                let app = self.app(i).ok_or(StatusWord::FILE_NOT_FOUND)?;
                let tags = app
                    .records
                    .get(&(sfi, rec))
                    .ok_or(StatusWord::RECORD_NOT_FOUND)?;
                let items = tags
                    .iter()
                    .filter_map(|t| self.app_value(i, *t).map(|v| Tlv::primitive(*t, v)))
                    .collect();
                Ok(Tlv::constructed(0x70u32, items).to_bytes())
            }
            Selected::Pse | Selected::Ppse => Err(StatusWord::FILE_NOT_FOUND),
            Selected::None => Err(StatusWord::CONDITIONS_NOT_SATISFIED),
        }
    }

    // ---- GET PROCESSING OPTIONS -------------------------------------------------------

    fn gpo(&mut self, cmd: &Command) -> Answer {
        let i = self.current_app()?;
        if self.session.gpo_done || self.state.app_blocked.get(i).copied().unwrap_or(true) {
            return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        let app = self.app(i).ok_or(StatusWord::FILE_NOT_FOUND)?;
        let expected: usize = parse_dol(&app.pdol)
            .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?
            .iter()
            .map(|(_, l)| *l)
            .sum();
        let tlvs = poslab_tlv::parse(&cmd.data).map_err(|_| StatusWord::WRONG_LENGTH)?;
        let values = match tlvs.as_slice() {
            [t] if t.tag == Tag(0x83) => t.bytes().unwrap_or(&[]),
            _ => return Err(StatusWord::WRONG_DATA),
        };
        if values.len() != expected {
            return Err(StatusWord::WRONG_LENGTH);
        }
        if self.state.atc == u16::MAX {
            return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        let (aip, afl): (Vec<u8>, Vec<u8>) = (
            app.aip.to_vec(),
            app.afl.iter().flat_map(|e| e.encode()).collect(),
        );
        self.state.atc += 1;
        self.session.gpo_done = true;
        self.session.pdol_data = values.to_vec();
        Ok(match self.interface {
            Interface::Contactless => Tlv::constructed(
                0x77u32,
                vec![Tlv::primitive(0x82u32, aip), Tlv::primitive(0x94u32, afl)],
            )
            .to_bytes(),
            _ => {
                let mut body = aip;
                body.extend_from_slice(&afl);
                Tlv::primitive(0x80u32, body).to_bytes()
            }
        })
    }

    // ---- GET DATA -----------------------------------------------------------------

    fn get_data(&mut self, cmd: &Command) -> Answer {
        let tag = u32::from(u16::from_be_bytes([cmd.p1, cmd.p2]));
        let value = match tag {
            0x9F36 => self.state.atc.to_be_bytes().to_vec(),
            0x9F13 => self.state.last_online_atc.to_be_bytes().to_vec(),
            0x9F17 => vec![self.state.pin_tries_left],
            _ => match self.session.selected {
                Selected::App(i) => self
                    .app_value(i, tag)
                    // never hand out account data by GET DATA
                    .filter(|_| !matches!(tag, 0x57 | 0x5A | 0x5F20 | 0x5F24))
                    .ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)?,
                _ => return Err(StatusWord::REFERENCED_DATA_NOT_FOUND),
            },
        };
        Ok(Tlv::primitive(tag, value).to_bytes())
    }

    // ---- VERIFY -------------------------------------------------------------------

    fn verify(&mut self, cmd: &Command) -> Answer {
        if cmd.p1 != 0x00 || (cmd.p2 != 0x80 && cmd.p2 != 0x88) {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        self.current_app()?;
        let Some(pin) = self.profile.pin.clone() else {
            return Err(StatusWord::REFERENCE_DATA_NOT_USABLE);
        };
        let tries = self.state.pin_tries_left;
        if cmd.data.is_empty() {
            // ask how many tries are left
            return Err(if tries == 0 {
                StatusWord::AUTHENTICATION_METHOD_BLOCKED
            } else {
                StatusWord::tries_left(tries)
            });
        }
        if tries == 0 {
            return Err(StatusWord::AUTHENTICATION_METHOD_BLOCKED);
        }
        let block = if cmd.p2 == 0x88 {
            self.decipher_pin(cmd)?
        } else {
            cmd.data.clone()
        };
        if block.len() != 8 {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let Some(entered) = parse_pin_block(&block) else {
            return Err(StatusWord::WRONG_DATA);
        };
        if constant_time_eq(&entered, pin.expose()) {
            self.state.pin_tries_left = self.profile.pin_try_limit;
            self.session.pin_verified = true;
            self.session.pin_failed = false;
            Ok(Vec::new())
        } else {
            self.state.pin_tries_left = tries - 1;
            self.session.pin_failed = true;
            Err(StatusWord::tries_left(tries - 1))
        }
    }

    // ---- GENERATE AC ----------------------------------------------------------------

    fn generate_ac(&mut self, cmd: &Command) -> Answer {
        let i = self.current_app()?;
        if !self.session.gpo_done || self.session.second_ac_done {
            return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        let requested = cmd.p1 & cid::MASK;
        if requested == cid::MASK || cmd.p1 & 0x2F != 0 || cmd.p2 != 0 {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        let app = self.app(i).ok_or(StatusWord::FILE_NOT_FOUND)?.clone();
        let blocked =
            self.state.card_blocked || self.state.app_blocked.get(i).copied().unwrap_or(true);
        let offline_ok = self.state.consecutive_offline < self.profile.offline_limit
            && self.state.pin_tries_left > 0;
        match &self.session.first_ac {
            None => {
                let dol_len = dol_total(&app.cdol1)?;
                if cmd.data.len() != dol_len {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                let decided = if blocked {
                    cid::AAC
                } else {
                    match requested {
                        cid::AAC => cid::AAC,
                        cid::TC if offline_ok => cid::TC,
                        _ => cid::ARQC,
                    }
                };
                let sk = self.session_key()?;
                let iad = self.iad(decided, None);
                let ac = self.cryptogram(&sk, &cmd.data, &app, &iad)?;
                if decided == cid::TC {
                    self.state.consecutive_offline =
                        self.state.consecutive_offline.saturating_add(1);
                }
                if decided != cid::ARQC {
                    // no second GENERATE AC after an offline decision
                    self.session.second_ac_done = true;
                }
                self.session.first_ac = Some(FirstAc {
                    cid: decided,
                    ac,
                    sk,
                });
                self.session.scripts_this_txn = 0;
                self.session.script_failed_this_txn = false;
                // CDA requested and supported (AIP byte 1 bit 1): the answer is signed
                if cmd.p1 & 0x10 != 0 && app.aip[0] & 0x01 != 0 && decided != cid::AAC {
                    let un = dol_value(&app.cdol1, &cmd.data, 0x9F37).unwrap_or_default();
                    return self.cda_response(decided, &ac, &iad, &cmd.data, &un);
                }
                Ok(self.ac_response(decided, &ac, &iad))
            }
            Some(first) => {
                if requested == cid::ARQC {
                    return Err(StatusWord::INCORRECT_P1_P2);
                }
                let dol_len = dol_total(&app.cdol2)?;
                if cmd.data.len() != dol_len {
                    return Err(StatusWord::WRONG_LENGTH);
                }
                let arc = dol_value(&app.cdol2, &cmd.data, 0x8A).unwrap_or_default();
                let approved_online = matches!(arc.as_slice(), b"00" | b"08" | b"10" | b"11");
                let unable_online_approve = arc.as_slice() == b"Y3";
                let decided = if blocked
                    || requested == cid::AAC
                    || self.session.issuer_auth == Some(false)
                {
                    cid::AAC
                } else if approved_online || (unable_online_approve && offline_ok) {
                    cid::TC
                } else {
                    cid::AAC
                };
                let sk = first.sk.clone();
                let iad = self.iad(cid::ARQC, Some(decided));
                let ac = self.cryptogram(&sk, &cmd.data, &app, &iad)?;
                if approved_online || self.session.issuer_auth == Some(true) {
                    self.state.last_online_atc = self.state.atc;
                    self.state.consecutive_offline = 0;
                }
                self.state.online_incomplete = false;
                self.session.second_ac_done = true;
                Ok(self.ac_response(decided, &ac, &iad))
            }
        }
    }

    fn session_key(&self) -> Result<Key, StatusWord> {
        let mk = self
            .icc_mk
            .as_ref()
            .ok_or(StatusWord::CONDITIONS_NOT_SATISFIED)?;
        if self.key_error.is_some() {
            return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        poslab_crypto::derive_ac_session_key(mk, SessionKeyMethod::Common, self.state.atc, [0; 4])
            .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)
    }

    /// The one cryptographic call: AC over CDOL data ‖ AIP ‖ ATC ‖ IAD.
    fn cryptogram(
        &self,
        sk: &Key,
        cdol_data: &[u8],
        app: &Application,
        iad: &[u8],
    ) -> Result<[u8; 8], StatusWord> {
        let input = ac_input(cdol_data, app.aip, self.state.atc, iad);
        poslab_crypto::generate_ac(sk, &input, Padding::Method2)
            .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)
    }

    /// Issuer application data, Visa format: length 06, DKI, CVN, CVR (4 bytes).
    fn iad(&self, first: u8, second: Option<u8>) -> Vec<u8> {
        let (dki, cvn) = self
            .profile
            .keys
            .as_ref()
            .map_or((0, 0), |k| (k.dki, k.cvn));
        let ac_bits = |c: u8| match c {
            cid::TC => 0b01,
            cid::ARQC => 0b10,
            _ => 0b00,
        };
        let mut b2 = match second {
            None => 0b10 << 6, // second GENERATE AC not requested (yet)
            Some(c) => ac_bits(c) << 6,
        };
        b2 |= ac_bits(first) << 4;
        if self.session.issuer_auth == Some(false) {
            b2 |= 0x08;
        }
        if self.session.pin_verified || self.session.pin_failed {
            b2 |= 0x04;
        }
        if self.session.pin_failed && !self.session.pin_verified {
            b2 |= 0x02;
        }
        let mut b3 = 0u8;
        if self.state.online_incomplete {
            b3 |= 0x80;
        }
        if self.state.pin_tries_left == 0 && self.profile.pin.is_some() {
            b3 |= 0x40;
        }
        let mut b4 = (self.state.script_commands.min(15)) << 4;
        if self.state.script_failed {
            b4 |= 0x08;
        }
        vec![0x06, dki, cvn, 0x03, b2, b3, b4]
    }

    fn ac_response(&self, cid: u8, ac: &[u8; 8], iad: &[u8]) -> Vec<u8> {
        let atc = self.state.atc.to_be_bytes();
        match self.interface {
            Interface::Contactless => Tlv::constructed(
                0x77u32,
                vec![
                    Tlv::primitive(0x9F27u32, vec![cid]),
                    Tlv::primitive(0x9F36u32, atc.to_vec()),
                    Tlv::primitive(0x9F26u32, ac.to_vec()),
                    Tlv::primitive(0x9F10u32, iad.to_vec()),
                ],
            )
            .to_bytes(),
            _ => {
                let mut body = vec![cid];
                body.extend_from_slice(&atc);
                body.extend_from_slice(ac);
                body.extend_from_slice(iad);
                Tlv::primitive(0x80u32, body).to_bytes()
            }
        }
    }

    // ---- EXTERNAL AUTHENTICATE --------------------------------------------------------

    fn external_authenticate(&mut self, cmd: &Command) -> Answer {
        self.current_app()?;
        let first = match &self.session.first_ac {
            Some(f) if f.cid == cid::ARQC && !self.session.second_ac_done => f,
            _ => return Err(StatusWord::CONDITIONS_NOT_SATISFIED),
        };
        if self.session.issuer_auth.is_some() {
            return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        let (arpc, arc) = match cmd.data.split_at_checked(8) {
            Some((arpc, arc)) if arc.len() == 2 => (arpc, arc),
            _ => return Err(StatusWord::WRONG_LENGTH),
        };
        let ok =
            poslab_crypto::verify_arpc_method1(&first.sk, &first.ac, arc, arpc).unwrap_or(false);
        self.session.issuer_auth = Some(ok);
        if ok {
            self.state.last_online_atc = self.state.atc;
            Ok(Vec::new())
        } else {
            Err(StatusWord::AUTHENTICATION_FAILED)
        }
    }

    // ---- issuer scripts -------------------------------------------------------------

    fn issuer_script(&mut self, cmd: &Command) -> Answer {
        let result = self.issuer_script_inner(cmd);
        let sw = match &result {
            Ok(_) => StatusWord::SUCCESS,
            Err(sw) => *sw,
        };
        if sw != StatusWord::CONDITIONS_NOT_SATISFIED || self.session.first_ac.is_some() {
            self.session.scripts_this_txn = self.session.scripts_this_txn.saturating_add(1);
            if sw != StatusWord::SUCCESS {
                self.session.script_failed_this_txn = true;
            }
            self.state.script_commands = self.session.scripts_this_txn;
            self.state.script_failed = self.session.script_failed_this_txn;
            self.state.last_script_status = Some(sw);
        }
        result
    }

    fn issuer_script_inner(&mut self, cmd: &Command) -> Answer {
        let i = self.current_app()?;
        let first = self
            .session
            .first_ac
            .as_ref()
            .filter(|f| f.cid == cid::ARQC)
            .ok_or(StatusWord::CONDITIONS_NOT_SATISFIED)?;
        // secure messaging: the last 8 bytes are a MAC over the header, ATC, ARQC and data
        let (payload, mac) = cmd
            .data
            .split_at_checked(cmd.data.len().wrapping_sub(8))
            .filter(|(_, m)| m.len() == 8)
            .ok_or(StatusWord::SM_DATA_INCORRECT)?;
        let input = script_mac_input(cmd, self.state.atc, &first.ac, payload);
        let want = poslab_crypto::generate_ac(&first.sk, &input, Padding::Method2)
            .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?;
        if !constant_time_eq(&want, mac) {
            return Err(StatusWord::SM_DATA_INCORRECT);
        }
        match cmd.ins {
            ins::APPLICATION_BLOCK => {
                if let Some(b) = self.state.app_blocked.get_mut(i) {
                    *b = true;
                }
            }
            ins::APPLICATION_UNBLOCK => {
                if let Some(b) = self.state.app_blocked.get_mut(i) {
                    *b = false;
                }
            }
            ins::CARD_BLOCK => self.state.card_blocked = true,
            ins::PIN_CHANGE_UNBLOCK => {
                if cmd.p2 != 0x00 {
                    return Err(StatusWord::INCORRECT_P1_P2);
                }
                self.state.pin_tries_left = self.profile.pin_try_limit;
            }
            ins::PUT_DATA => {
                let tag = u32::from(u16::from_be_bytes([cmd.p1, cmd.p2]));
                if matches!(tag, 0x57 | 0x5A | 0x9F36 | 0x9F13 | 0x9F17) {
                    return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
                }
                self.state.put_data.push((i, tag, payload.to_vec()));
            }
            _ => return Err(StatusWord::INS_NOT_SUPPORTED),
        }
        Ok(Vec::new())
    }
}

/// The data an application cryptogram is computed over: CDOL data ‖ AIP ‖ ATC ‖ IAD
/// (Visa CVN 18 and EMV CCD style; with the usual CDOL1 this is
/// `9F02 9F03 9F1A 95 5F2A 9A 9C 9F37 82 9F36 9F10`). The issuer builds the same.
pub fn ac_input(cdol_data: &[u8], aip: [u8; 2], atc: u16, iad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(cdol_data.len() + 4 + iad.len());
    v.extend_from_slice(cdol_data);
    v.extend_from_slice(&aip);
    v.extend_from_slice(&atc.to_be_bytes());
    v.extend_from_slice(iad);
    v
}

/// The data an issuer script command's MAC is computed over:
/// `CLA INS P1 P2 Lc ‖ ATC ‖ ARQC ‖ data` (Lc counts the 8-byte MAC).
pub fn script_mac_input(cmd: &Command, atc: u16, arqc: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = vec![cmd.cla, cmd.ins, cmd.p1, cmd.p2];
    v.push(u8::try_from(payload.len() + 8).unwrap_or(u8::MAX));
    v.extend_from_slice(&atc.to_be_bytes());
    v.extend_from_slice(arqc);
    v.extend_from_slice(payload);
    v
}

/// Builds a MACed issuer script command (what a host puts in tag `71`/`72`), given the
/// session key, the ATC and the ARQC of the transaction.
pub fn issuer_script_command(
    sk: &Key,
    header: [u8; 4],
    payload: &[u8],
    atc: u16,
    arqc: &[u8],
) -> Result<Command, crate::EmvError> {
    let [cla, ins_byte, p1, p2] = header;
    let mut cmd = Command::new(cla, ins_byte, p1, p2, Vec::new(), None);
    let input = script_mac_input(&cmd, atc, arqc, payload);
    let mac = poslab_crypto::generate_ac(sk, &input, Padding::Method2)
        .map_err(|e| crate::EmvError::Crypto(e.to_string()))?;
    cmd.data = payload.to_vec();
    cmd.data.extend_from_slice(&mac);
    Ok(cmd)
}

fn fci(name: &[u8], a5: Tlv) -> Vec<u8> {
    Tlv::constructed(0x6Fu32, vec![Tlv::primitive(0x84u32, name.to_vec()), a5]).to_bytes()
}

fn dol_total(dol: &[u8]) -> Result<usize, StatusWord> {
    Ok(parse_dol(dol)
        .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?
        .iter()
        .map(|(_, l)| *l)
        .sum())
}

/// The value of `tag` in DOL-ordered `data`.
pub fn dol_value(dol: &[u8], data: &[u8], tag: u32) -> Option<Vec<u8>> {
    let mut pos = 0usize;
    for (t, len) in parse_dol(dol).ok()? {
        let v = data.get(pos..pos + len)?;
        if t == Tag(tag) {
            return Some(v.to_vec());
        }
        pos += len;
    }
    None
}

/// The PIN digits of an ISO 9564 format 2 block (`2N PP..PF..F`), as ASCII.
pub fn parse_pin_block(block: &[u8]) -> Option<Vec<u8>> {
    let nibbles: Vec<u8> = block.iter().flat_map(|b| [b >> 4, b & 0x0F]).collect();
    let (&control, rest) = nibbles.split_first()?;
    let (&n, rest) = rest.split_first()?;
    if control != 0x2 || !(4..=12).contains(&n) || nibbles.len() != 16 {
        return None;
    }
    let (digits, fill) = rest.split_at(usize::from(n));
    if !digits.iter().all(|d| *d <= 9) || !fill.iter().all(|f| *f == 0x0F) {
        return None;
    }
    Some(digits.iter().map(|d| b'0' + d).collect())
}

/// An ISO 9564 format 2 PIN block for `pin` (4 to 12 ASCII digits).
pub fn format2_pin_block(pin: &str) -> Option<[u8; 8]> {
    if !(4..=12).contains(&pin.len()) || !pin.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut nibbles = vec![0x2, pin.len() as u8]; // ok: <= 12
    nibbles.extend(pin.bytes().map(|c| c - b'0'));
    nibbles.resize(16, 0x0F);
    let mut out = [0u8; 8];
    for (o, pair) in out.iter_mut().zip(nibbles.chunks_exact(2)) {
        *o = (pair.first().copied().unwrap_or(0x0F) << 4) | pair.get(1).copied().unwrap_or(0x0F);
    }
    Some(out)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// A card on the vpcd wire: bytes from the reader in, bytes to the reader out.
#[derive(Debug)]
pub struct VpcdCard {
    card: Card,
    frames: FrameBuffer,
}

impl VpcdCard {
    pub fn new(card: Card) -> Self {
        VpcdCard {
            card,
            frames: FrameBuffer::new(),
        }
    }
    pub fn card(&self) -> &Card {
        &self.card
    }
    pub fn card_mut(&mut self) -> &mut Card {
        &mut self.card
    }
    pub fn into_card(self) -> Card {
        self.card
    }

    /// Feeds bytes from the reader; returns the bytes to send back (zero or more frames).
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.frames.feed(bytes);
        let mut out = Vec::new();
        while let Some(payload) = self.frames.next_frame() {
            if let Some(answer) = self
                .card
                .handle_message(ReaderMessage::from_payload(payload))
            {
                // an answer longer than a frame cannot happen (records are small); send
                // "no answer" rather than a truncated one
                let frame = vpcd::encode_frame(&answer).unwrap_or_else(|_| vec![0, 0]);
                out.extend_from_slice(&frame);
            }
        }
        out
    }

    /// The reader went away (connection closed): power is gone.
    pub fn disconnected(&mut self) {
        self.frames.clear();
        self.card.power_off();
    }
}

/// Length-prefixes a value the BER way (for callers building TLVs by hand).
pub fn ber_length(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    push_len(&mut v, n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::CardProfile;

    fn visa(interface: Interface) -> Card {
        let p = CardProfile::from_yaml(
            include_str!("../../../fixtures/cards/visa-credit.yaml"),
            "visa-credit.yaml",
        )
        .unwrap();
        let mut c = Card::new(p, interface);
        c.power_on();
        c
    }

    fn run(card: &mut Card, cmd: Command) -> Response {
        card.handle_apdu(&cmd.encode().unwrap())
    }

    const AID: &[u8] = &[0xA0, 0, 0, 0, 0x03, 0x10, 0x10];

    #[test]
    fn pin_blocks() {
        let b = format2_pin_block("1234").unwrap();
        assert_eq!(b, [0x24, 0x12, 0x34, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(parse_pin_block(&b).unwrap(), b"1234");
        assert!(parse_pin_block(&[0x14, 0x12, 0x34, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).is_none());
        assert!(parse_pin_block(&[0x24, 0x12, 0x3A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]).is_none());
        assert!(parse_pin_block(&[0x24, 0x12, 0x34, 0xF0, 0xFF, 0xFF, 0xFF, 0xFF]).is_none());
        assert!(format2_pin_block("123").is_none());
    }

    #[test]
    fn pin_try_counter_counts_down_and_blocks() {
        let mut c = visa(Interface::Contact);
        assert_eq!(run(&mut c, Command::select(AID)).sw, StatusWord::SUCCESS);
        let wrong = format2_pin_block("9999").unwrap();
        assert_eq!(
            run(&mut c, Command::verify_plaintext(&wrong)).sw,
            StatusWord(0x63C2)
        );
        assert_eq!(
            run(&mut c, Command::get_data(0x9F17)).data,
            vec![0x9F, 0x17, 0x01, 0x02]
        );
        let right = format2_pin_block("1234").unwrap();
        assert_eq!(
            run(&mut c, Command::verify_plaintext(&right)).sw,
            StatusWord::SUCCESS
        );
        assert_eq!(c.state().pin_tries_left, 3);
        for left in [2, 1, 0] {
            assert_eq!(
                run(&mut c, Command::verify_plaintext(&wrong)).sw,
                StatusWord::tries_left(left)
            );
        }
        assert_eq!(
            run(&mut c, Command::verify_plaintext(&right)).sw,
            StatusWord(0x6983)
        );
        let malformed = [0x24, 0x12, 0x34, 0x00, 0xFF, 0xFF, 0xFF, 0xFF];
        let mut c = visa(Interface::Contact);
        run(&mut c, Command::select(AID));
        assert_eq!(
            run(&mut c, Command::verify_plaintext(&malformed)).sw,
            StatusWord(0x6A80)
        );
        let mut p2 = Command::verify_plaintext(&right);
        p2.p2 = 0x8C;
        assert_eq!(run(&mut c, p2).sw, StatusWord(0x6A86));
        // enciphered (P2 = 88) without a GET CHALLENGE first
        let mut p2 = Command::verify_plaintext(&right);
        p2.p2 = 0x88;
        assert_eq!(run(&mut c, p2).sw, StatusWord(0x6985));
    }

    #[test]
    fn commands_out_of_order_and_unknown() {
        let mut c = visa(Interface::Contact);
        assert_eq!(
            run(&mut c, Command::get_processing_options(&[])).sw,
            StatusWord(0x6985)
        );
        assert_eq!(
            run(&mut c, Command::generate_ac(0x80, &[0; 29])).sw,
            StatusWord(0x6985)
        );
        assert_eq!(
            run(&mut c, Command::select(b"nothing here")).sw,
            StatusWord(0x6A82)
        );
        assert_eq!(run(&mut c, Command::select(PPSE)).sw, StatusWord(0x6A82));
        assert_eq!(
            run(&mut c, Command::new(0x00, 0x44, 0, 0, vec![], None)).sw,
            StatusWord(0x6D00)
        );
        assert_eq!(
            run(&mut c, Command::new(0xA0, 0xA4, 0, 0, vec![], None)).sw,
            StatusWord(0x6E00)
        );
        assert_eq!(c.handle_apdu(&[0x00]).sw, StatusWord(0x6700));
        run(&mut c, Command::select(AID));
        // PDOL is 12 bytes
        assert_eq!(
            run(&mut c, Command::get_processing_options(&[0; 11])).sw,
            StatusWord(0x6700)
        );
        let gpo = run(&mut c, Command::get_processing_options(&[0; 12]));
        assert_eq!(gpo.sw, StatusWord::SUCCESS);
        assert_eq!(
            gpo.data,
            hex::decode("800E3C00080101001001030118010100").unwrap()
        );
        assert_eq!(
            run(&mut c, Command::read_record(4, 1)).sw,
            StatusWord(0x6A83)
        );
        assert_eq!(
            run(&mut c, Command::generate_ac(0x80, &[0; 28])).sw,
            StatusWord(0x6700)
        );
        assert_eq!(c.state().atc, 17);
    }

    #[test]
    fn the_card_never_gives_more_than_asked_and_respects_the_offline_limit() {
        let mut c = visa(Interface::Contact);
        // profile: atc 16, last online 15 -> one offline done, limit 3
        let mut cids = Vec::new();
        for _ in 0..4 {
            run(&mut c, Command::select(AID));
            run(&mut c, Command::get_processing_options(&[0; 12]));
            let r = run(&mut c, Command::generate_ac(cid::TC, &[0; 29]));
            assert_eq!(r.sw, StatusWord::SUCCESS);
            cids.push(r.data[2]);
        }
        assert_eq!(cids, vec![cid::TC, cid::TC, cid::ARQC, cid::ARQC]);
        run(&mut c, Command::select(AID));
        run(&mut c, Command::get_processing_options(&[0; 12]));
        let r = run(&mut c, Command::generate_ac(cid::AAC, &[0; 29]));
        assert_eq!(r.data[2], cid::AAC);
        // no second GENERATE AC after an AAC
        assert_eq!(
            run(&mut c, Command::generate_ac(cid::TC, &[0; 31])).sw,
            StatusWord(0x6985)
        );
    }

    #[test]
    fn atr_and_mute_chip_on_the_vpcd_wire() {
        let mut card = VpcdCard::new(visa(Interface::Contact));
        let mut wire = ReaderMessage::PowerOn.encode().unwrap();
        wire.extend(ReaderMessage::GetAtr.encode().unwrap());
        let out = card.handle_bytes(&wire);
        assert_eq!(
            out,
            vpcd::encode_frame(&crate::profile::DEFAULT_ATR).unwrap()
        );
        let fb = CardProfile::from_yaml(
            include_str!("../../../fixtures/cards/fallback.yaml"),
            "fallback.yaml",
        )
        .unwrap();
        let mut mute = VpcdCard::new(Card::new(fb, Interface::Contact));
        assert_eq!(mute.handle_bytes(&wire), vec![0, 0]);
        let sel = ReaderMessage::Apdu(Command::select(PSE).encode().unwrap())
            .encode()
            .unwrap();
        assert_eq!(mute.handle_bytes(&sel), vec![0, 0]);
    }
}
