//! The card's side of offline data authentication and enciphered offline PIN (a child
//! module of `card`, so it works on the card's state):
//! - INTERNAL AUTHENTICATE (DDA): signs the ICC dynamic number and the DDOL data the
//!   terminal sent with the ICC private key (`9F4B` in a format 1 answer);
//! - CDA on the first GENERATE AC (P1 bit `10`): the answer becomes format 2 with
//!   `9F27`, `9F36`, `9F4B` (CID, AC and the transaction data hash code signed) and `9F10`;
//! - GET CHALLENGE: 8 bytes, deterministic from the ATC and a counter (no RNG);
//! - VERIFY P2 = `88`: the enciphered PIN (EMV Book 2 §7.2: `7F` ‖ format 2 PIN block ‖
//!   the challenge ‖ padding, under the ICC key), deciphered with the ICC private key;
//!   the challenge must be the last one given, then the PIN is checked as in plaintext.
//!
//! Keys come from the profile (`keys.icc_rsa`); a card without one answers `6985`.

use poslab_crypto::RsaPrivate;
use poslab_tlv::Tlv;

use super::{Answer, Card};
use crate::apdu::{Command, StatusWord};
use crate::oda;

impl Card {
    fn icc_key(&self) -> Result<RsaPrivate, StatusWord> {
        self.profile
            .keys
            .as_ref()
            .and_then(|k| k.icc_rsa.clone())
            .ok_or(StatusWord::CONDITIONS_NOT_SATISFIED)
    }

    /// The ICC dynamic number for this transaction (8 bytes, from the ATC and `salt`).
    fn dynamic_number(&self, salt: &[u8]) -> [u8; 8] {
        let h = oda::sha1(&[b"poslab idn", &self.state.atc.to_be_bytes(), salt]);
        let mut n = [0u8; 8];
        n.copy_from_slice(&h[..8]);
        n
    }

    pub(super) fn internal_authenticate(&mut self, cmd: &Command) -> Answer {
        self.current_app()?;
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        if cmd.data.is_empty() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let key = self.icc_key()?;
        let idn = self.dynamic_number(&cmd.data);
        let mut dd = vec![8u8];
        dd.extend_from_slice(&idn);
        let sdad = oda::sign_dynamic_data(&key, &dd, &cmd.data)
            .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?;
        Ok(Tlv::primitive(0x80u32, sdad).to_bytes())
    }

    /// The first GENERATE AC's answer with a CDA signature (format 2, no `9F26`).
    pub(super) fn cda_response(
        &self,
        cid: u8,
        ac: &[u8; 8],
        iad: &[u8],
        cdol1_data: &[u8],
        un: &[u8],
    ) -> Answer {
        let key = self.icc_key()?;
        let atc = self.state.atc.to_be_bytes();
        let clear = [
            Tlv::primitive(0x9F27u32, vec![cid]),
            Tlv::primitive(0x9F36u32, atc.to_vec()),
            Tlv::primitive(0x9F10u32, iad.to_vec()),
        ];
        let mut answer_objects = Vec::new();
        for t in &clear {
            answer_objects.extend_from_slice(&t.to_bytes());
        }
        let tdhc = oda::sha1(&[&self.session.pdol_data, cdol1_data, &answer_objects]);
        let idn = self.dynamic_number(un);
        let dd = oda::cda_dynamic_data(&idn, cid, ac, &tdhc);
        let sdad =
            oda::sign_dynamic_data(&key, &dd, un).map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?;
        let [c, a, i] = clear;
        Ok(Tlv::constructed(0x77u32, vec![c, a, Tlv::primitive(0x9F4Bu32, sdad), i]).to_bytes())
    }

    pub(super) fn get_challenge(&mut self, cmd: &Command) -> Answer {
        if cmd.p1 != 0 || cmd.p2 != 0 {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        self.session.challenges = self.session.challenges.wrapping_add(1);
        let c = self.dynamic_number(&self.session.challenges.to_be_bytes());
        self.session.challenge = Some(c);
        Ok(c.to_vec())
    }

    /// VERIFY P2 = 88: deciphers the PIN block and returns it (format 2), or the status
    /// word to answer. The challenge is used up either way.
    pub(super) fn decipher_pin(&mut self, cmd: &Command) -> Result<Vec<u8>, StatusWord> {
        let challenge = self
            .session
            .challenge
            .take()
            .ok_or(StatusWord::CONDITIONS_NOT_SATISFIED)?;
        let key = self.icc_key()?;
        if cmd.data.len() != key.public().len() {
            return Err(StatusWord::WRONG_LENGTH);
        }
        let clear = zeroize::Zeroizing::new(
            key.private_op(&cmd.data)
                .map_err(|_| StatusWord::WRONG_DATA)?,
        );
        match (clear.first(), clear.get(1..9), clear.get(9..17)) {
            (Some(0x7F), Some(block), Some(ch)) if ch == challenge => Ok(block.to_vec()),
            _ => Err(StatusWord::WRONG_DATA),
        }
    }
}

/// Terminal side of enciphered offline PIN: `7F ‖ block ‖ challenge ‖ pad` under the
/// card's public key. `pad` supplies the padding bytes (cycled; caller-chosen, no RNG).
pub fn encipher_pin_for_card(
    key: &poslab_crypto::RsaPublic,
    block: &[u8; 8],
    challenge: &[u8],
    pad: &[u8],
) -> Result<Vec<u8>, crate::EmvError> {
    if challenge.len() != 8 || key.len() < 17 {
        return Err(crate::EmvError::Oda {
            what: "enciphered pin",
            reason: "challenge must be 8 bytes and the key at least 17".into(),
        });
    }
    let mut m = zeroize::Zeroizing::new(vec![0x7Fu8]);
    m.extend_from_slice(block);
    m.extend_from_slice(challenge);
    let fill = if pad.is_empty() { &[0x55u8][..] } else { pad };
    while m.len() < key.len() {
        let next = fill[m.len() % fill.len()];
        m.push(next);
    }
    // the message starts with 7F: below any modulus whose first byte is at least 80
    key.public_op(&m).map_err(|e| crate::EmvError::Oda {
        what: "enciphered pin",
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oda_terminal;
    use crate::profile::{CardProfile, Interface};

    fn card(yaml: &str) -> Card {
        let p = CardProfile::from_yaml(yaml, "card.yaml").unwrap();
        let mut c = Card::new(p, Interface::Contact);
        c.power_on();
        c
    }

    fn run(c: &mut Card, cmd: Command) -> crate::Response {
        c.handle_apdu(&cmd.encode().unwrap())
    }

    fn started(yaml: &str, aid: &[u8], pdol_len: usize) -> Card {
        let mut c = card(yaml);
        assert!(run(&mut c, Command::select(aid)).sw.is_success());
        let gpo = run(&mut c, Command::get_processing_options(&vec![0; pdol_len]));
        assert!(gpo.sw.is_success(), "{}", gpo.sw);
        c
    }

    const VISA: &str = include_str!("../../../fixtures/cards/visa-offline-pin.yaml");
    const MC: &str = include_str!("../../../fixtures/cards/mastercard-debit.yaml");
    const VISA_AID: &[u8] = &[0xA0, 0, 0, 0, 3, 0x10, 0x10];
    const MC_AID: &[u8] = &[0xA0, 0, 0, 0, 4, 0x10, 0x10];

    #[test]
    fn dda_signature_verifies_under_the_icc_key() {
        let mut c = started(VISA, VISA_AID, 12);
        let key = c.icc_key().unwrap().public().clone();
        let un = [1u8, 2, 3, 4];
        let r = run(&mut c, Command::internal_authenticate(&un));
        assert!(r.sw.is_success(), "{}", r.sw);
        oda_terminal::check_dda(&key, &r.data, &un).unwrap();
        assert!(oda_terminal::check_dda(&key, &r.data, &[1, 2, 3, 5]).is_err());
    }

    #[test]
    fn enciphered_pin_right_wrong_and_replayed() {
        let mut c = started(VISA, VISA_AID, 12);
        let key = c.icc_key().unwrap().public().clone();
        let block = crate::card::format2_pin_block("1234").unwrap();
        let wrong = crate::card::format2_pin_block("9999").unwrap();
        // without a challenge
        let e = encipher_pin_for_card(&key, &block, &[0; 8], b"pad").unwrap();
        assert_eq!(
            run(&mut c, Command::verify_enciphered(&e)).sw,
            StatusWord(0x6985)
        );
        // a wrong PIN counts down
        let ch = run(&mut c, Command::get_challenge()).data;
        let e = encipher_pin_for_card(&key, &wrong, &ch, b"pad").unwrap();
        assert_eq!(
            run(&mut c, Command::verify_enciphered(&e)).sw,
            StatusWord(0x63C2)
        );
        // the right PIN under an old challenge is refused, under a fresh one accepted
        let e = encipher_pin_for_card(&key, &block, &ch, b"pad").unwrap();
        assert_eq!(
            run(&mut c, Command::verify_enciphered(&e)).sw,
            StatusWord(0x6985)
        );
        let ch2 = run(&mut c, Command::get_challenge()).data;
        assert_ne!(ch, ch2);
        let e = encipher_pin_for_card(&key, &block, &ch2, b"other pad").unwrap();
        assert_eq!(
            run(&mut c, Command::verify_enciphered(&e)).sw,
            StatusWord::SUCCESS
        );
        // garbage that deciphers to no 7F header
        let _ = run(&mut c, Command::get_challenge());
        let junk = vec![0x42; key.len()];
        assert_eq!(
            run(&mut c, Command::verify_enciphered(&junk)).sw,
            StatusWord(0x6A80)
        );
    }

    #[test]
    fn cda_signs_the_first_generate_ac() {
        let mut c = started(MC, MC_AID, 14);
        let key = c.icc_key().unwrap().public().clone();
        let mut cdol1 = vec![0u8; 29];
        cdol1[25..29].copy_from_slice(&[9, 9, 9, 9]); // 9F37, last in CDOL1
        let r = run(&mut c, Command::generate_ac(0x90, &cdol1));
        assert!(r.sw.is_success(), "{}", r.sw);
        let got = oda_terminal::check_cda(&key, &r.data, &[0; 14], &cdol1, &[9, 9, 9, 9]).unwrap();
        assert_eq!(got.cid, 0x80);
        // another unpredictable number or other CDOL data: refused
        assert!(oda_terminal::check_cda(&key, &r.data, &[0; 14], &cdol1, &[9, 9, 9, 8]).is_err());
        let mut other = cdol1.clone();
        other[0] = 1;
        assert!(oda_terminal::check_cda(&key, &r.data, &[0; 14], &other, &[9, 9, 9, 9]).is_err());
    }
}
