//! The terminal kernel's side of offline data authentication (EMV Book 3 §10.3, Book 2):
//! which method to use, the certificate chain from the terminal's CA keys, and the checks
//! of SDA, DDA (INTERNAL AUTHENTICATE) and CDA (GENERATE AC), each result as TVR byte 1
//! bits. Pure functions: the kernel sends the commands and passes the answers in.

use poslab_crypto::RsaPublic;
use poslab_tlv::{Tag, Tlv};

use crate::oda::{self, CaKey};
use crate::EmvError;

/// TVR byte 1 bits (EMV Book 3 Annex C5).
pub mod tvr {
    pub const ODA_NOT_PERFORMED: u8 = 0x80;
    pub const SDA_FAILED: u8 = 0x40;
    pub const ICC_DATA_MISSING: u8 = 0x20;
    pub const DDA_FAILED: u8 = 0x08;
    pub const CDA_FAILED: u8 = 0x04;
    pub const SDA_SELECTED: u8 = 0x02;
}

/// The method chosen from the AIP (the terminal supports all three; CDA first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OdaMethod {
    None,
    Sda,
    Dda,
    Cda,
}

impl OdaMethod {
    pub fn of_aip(aip: [u8; 2]) -> OdaMethod {
        if aip[0] & 0x01 != 0 {
            OdaMethod::Cda
        } else if aip[0] & 0x20 != 0 {
            OdaMethod::Dda
        } else if aip[0] & 0x40 != 0 {
            OdaMethod::Sda
        } else {
            OdaMethod::None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OdaMethod::None => "none",
            OdaMethod::Sda => "SDA",
            OdaMethod::Dda => "DDA",
            OdaMethod::Cda => "CDA",
        }
    }

    /// The TVR bit a failure of this method sets.
    pub fn failed_bit(self) -> u8 {
        match self {
            OdaMethod::None => tvr::ODA_NOT_PERFORMED,
            OdaMethod::Sda => tvr::SDA_FAILED,
            OdaMethod::Dda => tvr::DDA_FAILED,
            OdaMethod::Cda => tvr::CDA_FAILED,
        }
    }
}

/// The records an AFL marks for offline data authentication: (SFI, record).
pub fn oda_records(afl: &[u8]) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    for e in afl.chunks_exact(4) {
        let (sfi, first, last, n) = (e[0] >> 3, e[1], e[2], e[3]); // ok: chunks_exact(4)
        for r in first..first.saturating_add(n) {
            if r <= last {
                out.push((sfi, r));
            }
        }
    }
    out
}

/// What the card gave the terminal for ODA (from its records).
#[derive(Clone, Copy, Debug)]
pub struct CardData<'a> {
    pub aid: &'a [u8],
    pub aip: [u8; 2],
    pub pan: &'a str,
    /// Today as YYMM (certificate expiry checks).
    pub today_yymm: u16,
    pub ca_index: Option<&'a [u8]>,
    pub issuer_cert: Option<&'a [u8]>,
    pub issuer_remainder: Option<&'a [u8]>,
    pub issuer_exponent: Option<&'a [u8]>,
    pub ssad: Option<&'a [u8]>,
    pub icc_cert: Option<&'a [u8]>,
    pub icc_remainder: Option<&'a [u8]>,
    pub icc_exponent: Option<&'a [u8]>,
    /// The static data to be authenticated ([`oda::static_data`]).
    pub static_data: &'a [u8],
}

/// The outcome of the first half of ODA (before INTERNAL AUTHENTICATE / GENERATE AC).
#[derive(Clone, Debug)]
pub struct OdaPlan {
    pub method: OdaMethod,
    /// TVR byte 1 bits set so far.
    pub tvr: u8,
    /// The ICC public key, for DDA and CDA (and an enciphered PIN).
    pub icc_key: Option<RsaPublic>,
    /// Why it failed, for the journal (no key material).
    pub failure: Option<String>,
}

impl OdaPlan {
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }
}

/// Chooses the method and checks what can be checked from the records: the issuer
/// certificate under the CA key (RID = the AID's first 5 bytes, index `8F`), then SDA's
/// signed static data or the ICC certificate (DDA, CDA).
pub fn prepare(card: &CardData<'_>, ca_keys: &[CaKey]) -> OdaPlan {
    let method = OdaMethod::of_aip(card.aip);
    let mut plan = OdaPlan {
        method,
        tvr: 0,
        icc_key: None,
        failure: None,
    };
    if method == OdaMethod::None {
        plan.tvr |= tvr::ODA_NOT_PERFORMED;
        return plan;
    }
    if method == OdaMethod::Sda {
        plan.tvr |= tvr::SDA_SELECTED;
    }
    let fail = |plan: &mut OdaPlan, missing: bool, why: String| {
        plan.tvr |= method.failed_bit();
        if missing {
            plan.tvr |= tvr::ICC_DATA_MISSING;
        }
        plan.failure = Some(why);
    };
    let (Some(index), Some(cert), Some(exp)) =
        (card.ca_index, card.issuer_cert, card.issuer_exponent)
    else {
        fail(
            &mut plan,
            true,
            "no CA index (8F), issuer certificate (90) or exponent (9F32)".into(),
        );
        return plan;
    };
    let rid = card.aid.get(..5).unwrap_or(card.aid);
    let Some(ca) = ca_keys
        .iter()
        .find(|k| k.rid.as_slice() == rid && index == [k.index])
    else {
        fail(
            &mut plan,
            false,
            format!(
                "no CA key for RID {} index {}",
                hex::encode_upper(rid),
                hex::encode_upper(index)
            ),
        );
        return plan;
    };
    let issuer = match oda::recover_certificate(
        &ca.key,
        0x02,
        cert,
        card.issuer_remainder.unwrap_or(&[]),
        exp,
        &[],
        card.pan,
        card.today_yymm,
    ) {
        Ok(k) => k,
        Err(e) => {
            fail(&mut plan, false, e.to_string());
            return plan;
        }
    };
    if method == OdaMethod::Sda {
        match card.ssad {
            None => fail(
                &mut plan,
                true,
                "no signed static application data (93)".into(),
            ),
            Some(ssad) => {
                if let Err(e) = oda::verify_static_data(&issuer, ssad, card.static_data) {
                    fail(&mut plan, false, e.to_string());
                }
            }
        }
        return plan;
    }
    let (Some(cert), Some(exp)) = (card.icc_cert, card.icc_exponent) else {
        fail(
            &mut plan,
            true,
            "no ICC certificate (9F46) or exponent (9F47)".into(),
        );
        return plan;
    };
    match oda::recover_certificate(
        &issuer,
        0x04,
        cert,
        card.icc_remainder.unwrap_or(&[]),
        exp,
        card.static_data,
        card.pan,
        card.today_yymm,
    ) {
        Ok(k) => plan.icc_key = Some(k),
        Err(e) => fail(&mut plan, false, e.to_string()),
    }
    plan
}

/// `9F4B` from an answer in format 1 (`80`: the signature itself) or 2 (`77`).
pub fn signed_dynamic_data(answer: &[u8]) -> Result<Vec<u8>, EmvError> {
    let items = poslab_tlv::parse(answer).map_err(|e| EmvError::Oda {
        what: "internal authenticate answer",
        reason: e.to_string(),
    })?;
    let missing = || EmvError::Oda {
        what: "internal authenticate answer",
        reason: "no signed dynamic application data".into(),
    };
    match items.first() {
        Some(t) if t.tag == Tag(0x80) => t.bytes().map(<[u8]>::to_vec).ok_or_else(missing),
        Some(t) => t
            .find(0x9F4Bu32)
            .and_then(Tlv::bytes)
            .map(<[u8]>::to_vec)
            .ok_or_else(missing),
        None => Err(missing()),
    }
}

/// DDA: checks the INTERNAL AUTHENTICATE answer against the DDOL data sent.
pub fn check_dda(icc: &RsaPublic, answer: &[u8], ddol_data: &[u8]) -> Result<(), EmvError> {
    let sdad = signed_dynamic_data(answer)?;
    oda::verify_dynamic_data(icc, &sdad, ddol_data).map(|_| ())
}

/// A GENERATE AC answer with CDA, checked: the cryptogram comes out of the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CdaAnswer {
    pub cid: u8,
    pub atc: [u8; 2],
    pub ac: [u8; 8],
    pub iad: Vec<u8>,
}

/// CDA: checks a format 2 GENERATE AC answer (`9F27`, `9F36`, `9F4B`, `9F10`): the
/// transaction data hash code over PDOL data ‖ CDOL1 data ‖ the answer's objects but
/// `9F4B`, the signature under the ICC key over the unpredictable number.
pub fn check_cda(
    icc: &RsaPublic,
    answer: &[u8],
    pdol_data: &[u8],
    cdol1_data: &[u8],
    un: &[u8],
) -> Result<CdaAnswer, EmvError> {
    let bad = |reason: &str| EmvError::Oda {
        what: "cda answer",
        reason: reason.into(),
    };
    let items = poslab_tlv::parse(answer).map_err(|e| bad(&e.to_string()))?;
    let Some(t) = items.first().filter(|t| t.tag == Tag(0x77)) else {
        return Err(bad("not a format 2 answer"));
    };
    let mut others = Vec::new();
    let mut sdad = None;
    for c in t.children() {
        if c.tag == Tag(0x9F4B) {
            sdad = c.bytes().map(<[u8]>::to_vec);
        } else {
            others.extend_from_slice(&c.to_bytes());
        }
    }
    let sdad = sdad.ok_or_else(|| bad("no signed dynamic application data (9F4B)"))?;
    let get = |tag: u32| t.find(tag).and_then(Tlv::bytes);
    let cid = get(0x9F27)
        .and_then(|b| b.first().copied())
        .ok_or_else(|| bad("no CID (9F27)"))?;
    let atc = get(0x9F36)
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .ok_or_else(|| bad("no ATC (9F36)"))?;
    let tdhc = oda::sha1(&[pdol_data, cdol1_data, &others]);
    let r = oda::verify_cda(icc, &sdad, un, cid, &tdhc)?;
    Ok(CdaAnswer {
        cid,
        atc,
        ac: r.ac,
        iad: get(0x9F10).unwrap_or(&[]).to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_from_aip_and_oda_records() {
        assert_eq!(OdaMethod::of_aip([0x3D, 0x80]), OdaMethod::Cda);
        assert_eq!(OdaMethod::of_aip([0x3C, 0x00]), OdaMethod::Dda);
        assert_eq!(OdaMethod::of_aip([0x5C, 0x00]), OdaMethod::Sda);
        assert_eq!(OdaMethod::of_aip([0x1C, 0x00]), OdaMethod::None);
        let afl = hex::decode("080101001001030118010100").unwrap();
        assert_eq!(oda_records(&afl), vec![(2, 1)]);
        assert!(oda_records(&[1, 2, 3]).is_empty());
    }

    /// What a terminal gets from a fixture card: its records, read as the kernel does.
    fn plan_of(yaml: &str) -> OdaPlan {
        use crate::apdu::Command;
        let profile = crate::CardProfile::from_yaml(yaml, "card.yaml").unwrap();
        let app = profile.applications[0].clone();
        let pan = profile.pan.expose().to_string();
        let mut card = crate::Card::new(profile, crate::Interface::Contact);
        card.power_on();
        assert!(card
            .handle_command(&Command::select(&app.aid))
            .sw
            .is_success());
        let pdol_len: usize = poslab_tlv::parse_dol(&app.pdol)
            .unwrap()
            .iter()
            .map(|(_, l)| l)
            .sum();
        let gpo = card.handle_command(&Command::get_processing_options(&vec![0; pdol_len]));
        let afl: Vec<u8> = app.afl.iter().flat_map(|e| e.encode()).collect();
        assert!(gpo.sw.is_success());
        let mut values = std::collections::BTreeMap::new();
        let mut records = Vec::new();
        let marked = oda_records(&afl);
        for e in &app.afl {
            for r in e.first..=e.last {
                let rec = card.handle_command(&Command::read_record(e.sfi, r)).data;
                for t in poslab_tlv::parse(&rec).unwrap()[0].children() {
                    values.insert(t.tag.0, t.bytes().unwrap().to_vec());
                }
                if marked.contains(&(e.sfi, r)) {
                    records.push((e.sfi, rec));
                }
            }
        }
        let static_data = oda::static_data(&records, Some(app.aip));
        let get = |t: u32| values.get(&t).map(Vec::as_slice);
        prepare(
            &CardData {
                aid: &app.aid,
                aip: app.aip,
                pan: &pan,
                today_yymm: 2611,
                ca_index: get(0x8F),
                issuer_cert: get(0x90),
                issuer_remainder: get(0x92),
                issuer_exponent: get(0x9F32),
                ssad: get(0x93),
                icc_cert: get(0x9F46),
                icc_remainder: get(0x9F48),
                icc_exponent: get(0x9F47),
                static_data: &static_data,
            },
            &oda::test_ca_keys(),
        )
    }

    /// The committed fixture cards authenticate (re-run examples/oda_personalise.rs after
    /// changing a card's signed records: see fixtures/cards/ODA.md), the corrupted one does not.
    #[test]
    fn the_fixture_cards_authenticate_as_documented() {
        let cards = [
            (
                include_str!("../../../fixtures/cards/visa-credit.yaml"),
                OdaMethod::Dda,
                0,
            ),
            (
                include_str!("../../../fixtures/cards/mastercard-debit.yaml"),
                OdaMethod::Cda,
                0,
            ),
            (
                include_str!("../../../fixtures/cards/visa-sda.yaml"),
                OdaMethod::Sda,
                tvr::SDA_SELECTED,
            ),
            (
                include_str!("../../../fixtures/cards/visa-offline-pin.yaml"),
                OdaMethod::Dda,
                0,
            ),
            (
                include_str!("../../../fixtures/cards/visa-bad-cert.yaml"),
                OdaMethod::Dda,
                tvr::DDA_FAILED,
            ),
        ];
        for (yaml, method, bits) in cards {
            let plan = plan_of(yaml);
            assert_eq!(
                (plan.method, plan.tvr),
                (method, bits),
                "{:?}",
                plan.failure
            );
            assert_eq!(
                plan.icc_key.is_some(),
                method != OdaMethod::Sda && bits == 0
            );
        }
    }

    #[test]
    fn missing_data_sets_icc_data_missing() {
        let card = CardData {
            aid: &[0xA0, 0, 0, 0, 3, 0x10, 0x10],
            aip: [0x3C, 0],
            pan: "4761739001010010",
            today_yymm: 2611,
            ca_index: None,
            issuer_cert: None,
            issuer_remainder: None,
            issuer_exponent: None,
            ssad: None,
            icc_cert: None,
            icc_remainder: None,
            icc_exponent: None,
            static_data: &[],
        };
        let plan = prepare(&card, &oda::test_ca_keys());
        assert_eq!(plan.tvr, tvr::DDA_FAILED | tvr::ICC_DATA_MISSING);
        let none = prepare(
            &CardData {
                aip: [0x1C, 0],
                ..card
            },
            &[],
        );
        assert_eq!(none.tvr, tvr::ODA_NOT_PERFORMED);
        assert!(signed_dynamic_data(&[]).is_err());
        assert!(check_cda(&oda::test_ca_keys()[0].key, &[0x80, 0], &[], &[], &[]).is_err());
    }
}
