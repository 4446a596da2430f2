//! The reference terminal's offline data authentication and enciphered offline PIN (a
//! child module of `flow`, so it works on the terminal's state). The checks themselves
//! are `poslab_emv::oda_terminal`; this is the dialogue with the card and the journal:
//!
//! - after READ RECORD: SDA, DDA (INTERNAL AUTHENTICATE with the DDOL data) or the
//!   certificate half of CDA, from the CA keys the terminal holds (its parameters'
//!   `ca_keys` as the TMS sent them, expired ones left out; by default the test CAs of
//!   `fixtures/keys/oda-test-keys.yaml`), TVR byte 1 set (`95`), journaled as
//!   `terminal`/`oda` with the method, the TVR and why it failed;
//! - terminal action analysis before the first GENERATE AC: TVR against the issuer's
//!   (`9F0E`) and the terminal's denial codes → AAC (offline decline); CDA requested
//!   with the ARQC when chosen (P1 `90`), and its signature checked (the cryptogram comes
//!   out of it) — a bad one sets "CDA failed" and the sale is declined;
//! - enciphered offline PIN (CVM `04`): GET CHALLENGE, the PIN block (format 2) with the
//!   challenge enciphered under the ICC public key, VERIFY P2 = `88`; a wrong PIN says
//!   how many tries are left and asks again, the last try blocks the PIN ("PIN TRIES
//!   EXCEEDED", TVR byte 3 `A0`: the terminal's denial code declines it offline).

use poslab_emv::apdu::Command;
use poslab_emv::oda::{self, CaKey};
use poslab_emv::oda_terminal::{self, tvr, CardData, OdaMethod, OdaPlan};
use serde_json::json;

use super::{CardTxn, Core};
use crate::card::ReaderLink;
use crate::link::BoxIo;
use poslab_terminal::emv::{Cryptogram, TagValues};

/// The terminal action code "denial": cardholder verification not successful (TVR byte
/// 3 bit 8). Everything else is left to the issuer's codes and the host.
pub(super) const TAC_DENIAL: [u8; 5] = [0x00, 0x00, 0x80, 0x00, 0x00];

/// The built-in test CA keys (parsed once).
fn test_ca_keys() -> &'static [CaKey] {
    static KEYS: std::sync::OnceLock<Vec<CaKey>> = std::sync::OnceLock::new();
    KEYS.get_or_init(oda::test_ca_keys)
}

/// The first GENERATE AC's P1: AAC when the TVR hits a denial code (the issuer's, or the
/// terminal's: `tac_denial`, from the application's parameters or [`TAC_DENIAL`]), else
/// ARQC (with CDA when it was chosen and the ICC key recovered).
pub(super) fn first_ac_p1(card: &CardTxn, tac_denial: [u8; 5]) -> u8 {
    let tvr = card.values.get(0x95).unwrap_or(&[0; 5]);
    let iac = card.values.get(0x9F0E).unwrap_or(&[0; 5]);
    let deny = (0..5).any(|i| {
        let t = tvr.get(i).copied().unwrap_or(0);
        t & (iac.get(i).copied().unwrap_or(0) | tac_denial[i]) != 0
    });
    if deny {
        0x00
    } else if card
        .oda
        .as_ref()
        .is_some_and(|p| p.method == OdaMethod::Cda && p.icc_key.is_some())
    {
        0x90
    } else {
        0x80
    }
}

fn set_tvr(values: &mut TagValues, byte: usize, bits: u8) {
    let mut t = values
        .get(0x95)
        .map(<[u8]>::to_vec)
        .unwrap_or_else(|| vec![0; 5]);
    t.resize(5, 0);
    t[byte] |= bits; // ok: resized to 5
    values.set(0x95, t);
}

impl Core {
    /// ODA after the records are read (see the module docs); returns the plan the rest of
    /// the transaction follows.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn authenticate_card(
        &mut self,
        link: &mut ReaderLink<BoxIo>,
        values: &mut TagValues,
        aid: &[u8],
        aip: [u8; 2],
        oda_records: &[(u8, Vec<u8>)],
        pan: &str,
        today_yymm: u16,
    ) -> OdaPlan {
        let with_aip = values.get(0x9F4A).is_some_and(|l| l.contains(&0x82));
        let static_data = oda::static_data(oda_records, with_aip.then_some(aip));
        let get = |t: u32| values.get(t);
        let card = CardData {
            aid,
            aip,
            pan,
            today_yymm,
            ca_index: get(0x8F),
            issuer_cert: get(0x90),
            issuer_remainder: get(0x92),
            issuer_exponent: get(0x9F32),
            ssad: get(0x93),
            icc_cert: get(0x9F46),
            icc_remainder: get(0x9F48),
            icc_exponent: get(0x9F47),
            static_data: &static_data,
        };
        let from_params;
        let keys = match &self.cfg.params.ca_keys {
            None => test_ca_keys(),
            Some(list) => {
                // a set with a bad key was refused whole; an expired key is not used
                from_params = list
                    .iter()
                    .filter(|k| !k.expired(today_yymm))
                    .filter_map(|k| k.key().ok())
                    .collect::<Vec<_>>();
                &from_params
            }
        };
        let mut plan = oda_terminal::prepare(&card, keys);
        if plan.method == OdaMethod::Dda && !plan.failed() {
            let ddol = values
                .get(0x9F49)
                .map(<[u8]>::to_vec)
                .unwrap_or_else(|| vec![0x9F, 0x37, 0x04]);
            let data = values.dol(&ddol).unwrap_or_default();
            let result = match link.exchange(&Command::internal_authenticate(&data)).await {
                Ok(r) if r.sw.is_success() => plan
                    .icc_key
                    .as_ref()
                    .map(|k| oda_terminal::check_dda(k, &r.data, &data).map_err(|e| e.to_string()))
                    .unwrap_or_else(|| Err("no ICC key".into())),
                Ok(r) => Err(format!("INTERNAL AUTHENTICATE: {}", r.sw)),
                Err(e) => Err(format!("INTERNAL AUTHENTICATE: {e}")),
            };
            if let Err(why) = result {
                plan.tvr |= tvr::DDA_FAILED;
                plan.failure = Some(why);
            }
        }
        set_tvr(values, 0, plan.tvr);
        self.journal_oda(&plan, values);
        plan
    }

    pub(super) fn journal_oda(&self, plan: &OdaPlan, values: &TagValues) {
        self.journal.record(
            "terminal",
            "oda",
            json!({
                "method": plan.method.name(),
                "result": if plan.failed() { "failed" } else if plan.method == OdaMethod::None { "not performed" } else { "ok" },
                "tvr": hex::encode_upper(values.get(0x95).unwrap_or(&[0; 5])),
                "why": plan.failure,
            }),
        );
    }

    /// CDA: checks the first GENERATE AC answer; the cryptogram, or why it failed (the
    /// TVR then has "CDA failed").
    pub(super) fn cda_cryptogram(
        &self,
        card: &mut CardTxn,
        answer: &[u8],
        cdol1_data: &[u8],
    ) -> Result<Cryptogram, String> {
        let un = card.values.get(0x9F37).unwrap_or(&[]).to_vec();
        let checked = match card.oda.as_ref().and_then(|p| p.icc_key.as_ref()) {
            Some(key) => oda_terminal::check_cda(key, answer, &card.pdol_data, cdol1_data, &un)
                .map_err(|e| e.to_string()),
            None => Err("no ICC key".into()),
        };
        match checked {
            Ok(c) => Ok(Cryptogram {
                cid: c.cid,
                atc: c.atc,
                ac: c.ac,
                iad: c.iad,
            }),
            Err(why) => {
                set_tvr(&mut card.values, 0, tvr::CDA_FAILED);
                if let Some(p) = card.oda.as_mut() {
                    p.tvr |= tvr::CDA_FAILED;
                    p.failure = Some(why.clone());
                }
                if let Some(p) = card.oda.as_ref() {
                    self.journal_oda(p, &card.values);
                }
                Err(why)
            }
        }
    }

    /// Enciphered offline PIN (see the module docs). `Ok(true)`: verified; `Ok(false)`:
    /// cardholder verification failed (tries exceeded, or the card refused), the TVR
    /// says so; `Err(())`: cancelled.
    pub(super) async fn offline_pin(&mut self, card: &mut CardTxn) -> Result<bool, ()> {
        let key = card.oda.as_ref().and_then(|p| p.icc_key.clone());
        loop {
            let Some(pin) = self.enter_pin().await else {
                return Err(());
            };
            let Some(link) = card.link.as_mut() else {
                return Ok(false);
            };
            let block = poslab_emv::card::format2_pin_block(&pin);
            drop(pin);
            let challenge = link.exchange(&Command::get_challenge()).await;
            let enciphered = match (&key, &challenge, block) {
                (Some(k), Ok(c), Some(b)) if c.sw.is_success() => {
                    let pad: Vec<u8> = (0..4)
                        .flat_map(|_| self.random_u32().to_be_bytes())
                        .collect();
                    poslab_emv::card::encipher_pin_for_card(k, &b, &c.data, &pad).ok()
                }
                _ => None,
            };
            let Some(enciphered) = enciphered else {
                self.cvm_result(card, "enciphered PIN failed", 0x01);
                return Ok(false);
            };
            let Some(link) = card.link.as_mut() else {
                return Ok(false);
            };
            let answer = link
                .exchange(&Command::verify_enciphered(&enciphered))
                .await;
            match answer {
                Ok(r) if r.sw.is_success() => {
                    self.cvm_result(card, "enciphered PIN verified", 0x02);
                    return Ok(true);
                }
                Ok(r) if r.sw.sw1() == 0x63 && r.sw.0 & 0x0F > 0 => {
                    let left = r.sw.0 & 0x0F;
                    self.journal.record(
                        "terminal",
                        "cvm",
                        json!({"method": "enciphered offline PIN", "result": "wrong PIN", "tries_left": left}),
                    );
                    self.show(&format!(
                        "WRONG PIN - {left} {} LEFT",
                        if left == 1 { "TRY" } else { "TRIES" }
                    ));
                }
                Ok(r)
                    if r.sw.sw1() == 0x63
                        || r.sw == poslab_emv::StatusWord::AUTHENTICATION_METHOD_BLOCKED =>
                {
                    set_tvr(&mut card.values, 2, 0x20);
                    self.cvm_result(card, "PIN tries exceeded", 0x01);
                    self.show("PIN TRIES EXCEEDED");
                    return Ok(false);
                }
                _ => {
                    self.cvm_result(card, "enciphered PIN failed", 0x01);
                    return Ok(false);
                }
            }
        }
    }

    /// CVM results (`9F34`: method, condition, result) and the journal; a failure sets
    /// "cardholder verification was not successful" in the TVR.
    fn cvm_result(&self, card: &mut CardTxn, text: &str, result: u8) {
        card.values.set(0x9F34, vec![0x04, 0x03, result]);
        if result != 0x02 {
            set_tvr(&mut card.values, 2, 0x80);
        }
        self.journal.record(
            "terminal",
            "cvm",
            json!({"method": "enciphered offline PIN", "result": text,
                   "cvm_results": hex::encode_upper([0x04, 0x03, result])}),
        );
    }
}
