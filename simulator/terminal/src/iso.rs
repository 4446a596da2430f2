//! The ISO 8583 requests the terminal sends and what it reads from the answers.
//!
//! Field use (ISO 8583:1987): 2 PAN, 3 processing code, 4 amount, 7 transmission time,
//! 11 STAN, 12/13 local time/date, 14 expiry, 22 POS entry mode, 23 PAN sequence number,
//! 25 condition code, 35 track 2, 37 RRN, 38 approval code, 41 TID, 42 MID, 49 currency,
//! 52 PIN block, 55 ICC data, 64 MAC, 70 network code, 74/76/86/88/97 settlement totals,
//! 90 original data elements. The MAC (DE 64, or DE 128 when the message has
//! secondary-bitmap fields) covers the message as packed on the wire in the host's
//! dialect, up to the MAC field ([`poslab_iso8583::Spec::mac_bytes`]), under the session
//! MAC key (ISO 9797-1 algorithm 3, padding 1).

use poslab_crypto::{Key, KeyAlgorithm, KeyUnderKey, MacAlgorithm, Padding};
use poslab_iso8583::{Field, Message, Mti, Spec};
use poslab_sensitive::Pan;
use poslab_tlv::Tlv;

use crate::params::Params;
use crate::txn::{Entry, SafEntry, Stamp, Totals, TxnKind, TxnRecord};
use crate::TerminalError;

fn message(mti: &str) -> Message {
    let mti = Mti::new(mti).unwrap_or_else(|_| unreachable!("built-in MTI {mti}")); // ok: literals
    Message::new(mti)
}

fn stamp_fields(m: &mut Message, stan: u32, at: &Stamp) {
    m.set(7, at.mmddhhmmss());
    m.set(11, format!("{:06}", stan % 1_000_000));
    m.set(12, at.hhmmss());
    m.set(13, at.mmdd());
}

fn ids(m: &mut Message, params: &Params) {
    m.set(41, params.tid.as_str());
    m.set(42, params.mid.as_str());
}

/// 0800 network management: `001` sign-on, `002` sign-off, `101` key exchange, `301` echo.
pub fn network(code: &str, stan: u32, at: &Stamp, params: &Params) -> Message {
    let mut m = message("0800");
    stamp_fields(&mut m, stan, at);
    ids(&mut m, params);
    m.set(70, code);
    m
}

/// The card as read for one transaction. Lives only as long as the transaction.
pub struct CardRead {
    pub pan: Pan,
    /// YYMM.
    pub expiry: String,
    pub psn: Option<u8>,
    /// Track 2 equivalent data (`=` separator), for swiped cards.
    pub track2: Option<String>,
    pub entry: Entry,
    pub label: String,
    pub service_code: Option<String>,
}

impl std::fmt::Debug for CardRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardRead")
            .field("pan", &self.pan)
            .field("entry", &self.entry)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// A financial request (0100 pre-authorisation, 0200 purchase/refund/void, 0220
/// completion).
pub struct Financial<'a> {
    pub kind: TxnKind,
    pub amount: u64,
    pub stan: u32,
    pub at: Stamp,
    pub card: Option<&'a CardRead>,
    /// Enciphered PIN block (ISO format 0 under the PIN key).
    pub pin_block: Option<[u8; 8]>,
    pub icc: Vec<Tlv>,
    /// For a void: the original's RRN; for a completion: the pre-authorisation.
    pub original: Option<&'a TxnRecord>,
}

pub fn financial(f: &Financial, params: &Params) -> Message {
    let mut m = message(f.kind.mti());
    if let Some(card) = f.card {
        if card.track2.is_none() {
            m.set(2, card.pan.expose());
            m.set(14, card.expiry.as_str());
        }
    }
    m.set(3, f.kind.processing_code());
    m.set(4, format!("{:012}", f.amount));
    stamp_fields(&mut m, f.stan, &f.at);
    let entry = f.card.map_or(Entry::Reference, |c| c.entry);
    m.set(22, entry.pos_entry_mode());
    if let Some(psn) = f.card.and_then(|c| c.psn) {
        m.set(23, format!("{psn:03}"));
    }
    m.set(25, "00");
    if let Some(track) = f.card.and_then(|c| c.track2.as_deref()) {
        m.set(35, track);
    }
    if let Some(orig) = f.original {
        if let Some(rrn) = &orig.rrn {
            m.set(37, rrn.as_str());
        }
        if f.kind == TxnKind::Completion {
            if let Some(code) = &orig.auth_code {
                m.set(38, code.as_str());
            }
        }
        m.set(90, original_data(orig.kind.mti(), orig.stan, &orig.at));
    }
    ids(&mut m, params);
    m.set(49, format!("{:03}", params.currency));
    if let Some(block) = f.pin_block {
        m.set(52, block.to_vec());
    }
    if !f.icc.is_empty() {
        m.set(55, f.icc.clone());
    }
    m
}

/// DE 90: original MTI, STAN, transmission time, then zero institution ids.
pub fn original_data(mti: &str, stan: u32, at: &Stamp) -> String {
    format!("{mti}{:06}{}{:022}", stan % 1_000_000, at.mmddhhmmss(), 0)
}

/// The reversal (0400, repeats 0401) or advice (0220, repeats 0221) of a queued entry.
pub fn saf_message(entry: &SafEntry, at: &Stamp, params: &Params) -> Message {
    let repeat = entry.attempts > 0;
    let mti = match (entry.mti.as_str(), repeat) {
        ("0400", true) => "0401",
        ("0220", true) => "0221",
        (m, _) => m,
    };
    let mut m = message(mti);
    m.set(3, entry.processing_code.as_str());
    m.set(4, format!("{:012}", entry.amount));
    stamp_fields(&mut m, entry.stan, at);
    m.set(25, "00");
    ids(&mut m, params);
    m.set(49, format!("{:03}", params.currency));
    m.set(
        90,
        original_data(&entry.original_mti, entry.original_stan, &entry.original_at),
    );
    m
}

/// 0500 settlement with the terminal's totals; processing code 920000, or 960000 after a
/// batch upload.
pub fn settlement(
    totals: &Totals,
    after_upload: bool,
    stan: u32,
    at: &Stamp,
    params: &Params,
) -> Message {
    let mut m = message("0500");
    m.set(3, if after_upload { "960000" } else { "920000" });
    stamp_fields(&mut m, stan, at);
    ids(&mut m, params);
    m.set(49, format!("{:03}", params.currency));
    m.set(74, format!("{:010}", totals.credits));
    m.set(76, format!("{:010}", totals.debits));
    m.set(86, format!("{:016}", totals.credits_amount));
    m.set(88, format!("{:016}", totals.debits_amount));
    m.set(97, totals.net());
    m
}

/// 0320 batch upload of one transaction.
pub fn batch_upload(record: &TxnRecord, stan: u32, at: &Stamp, params: &Params) -> Message {
    let mut m = message("0320");
    m.set(3, record.kind.processing_code());
    m.set(4, format!("{:012}", record.amount));
    stamp_fields(&mut m, stan, at);
    if let Some(rrn) = &record.rrn {
        m.set(37, rrn.as_str());
    }
    if let Some(code) = &record.auth_code {
        m.set(38, code.as_str());
    }
    ids(&mut m, params);
    m.set(49, format!("{:03}", params.currency));
    m.set(
        90,
        original_data(record.kind.mti(), record.stan, &record.at),
    );
    m
}

/// Signs `m` under `key`: its MAC in DE 64 (DE 128 when it has secondary-bitmap fields),
/// over its bytes as `spec` packs them.
pub fn sign(m: &mut Message, key: &Key, spec: &Spec) -> Result<(), TerminalError> {
    m.remove(64);
    m.remove(128);
    let (de, covered) = spec
        .mac_bytes(m)
        .map_err(|e| TerminalError::Crypto(e.to_string()))?;
    let mac = poslab_crypto::generate_mac(MacAlgorithm::Alg3(Padding::Method1), key, &covered, 8)
        .map_err(|e| TerminalError::Crypto(e.to_string()))?;
    m.set(de, Field::Binary(mac));
    Ok(())
}

/// Checks the MAC (DE 64 or 128) of an answer, over its bytes as `spec` packs them;
/// `Ok(false)` when it has none.
pub fn verify(m: &Message, key: &Key, spec: &Spec) -> Result<bool, TerminalError> {
    let Some(mac) = m.binary(64).or_else(|| m.binary(128)) else {
        return Ok(false);
    };
    let (_, covered) = spec
        .mac_bytes(m)
        .map_err(|e| TerminalError::Crypto(e.to_string()))?;
    let expected =
        poslab_crypto::generate_mac(MacAlgorithm::Alg3(Padding::Method1), key, &covered, 8)
            .map_err(|e| TerminalError::Crypto(e.to_string()))?;
    if expected == mac {
        Ok(true)
    } else {
        Err(TerminalError::BadMac)
    }
}

/// The session keys of a key exchange answer (DE 48 `PK` + 32 hex + KCV + `MK` + 32 hex +
/// KCV), unwrapped under the terminal master key and checked against their KCVs.
pub fn session_keys(de48: &str, tmk: &Key) -> Result<(Key, Key), TerminalError> {
    let bad = |what: &str| TerminalError::KeyExchange(what.to_string());
    let rest = de48
        .strip_prefix("PK")
        .ok_or_else(|| bad("DE 48 does not start with PK"))?;
    let (pk, rest) = rest
        .split_at_checked(38)
        .ok_or_else(|| bad("PIN key too short"))?;
    let rest = rest
        .strip_prefix("MK")
        .ok_or_else(|| bad("no MK after the PIN key"))?;
    if rest.len() != 38 {
        return Err(bad("MAC key is not 32 hex digits and a 6-digit KCV"));
    }
    let unwrap = |part: &str, what: &str| -> Result<Key, TerminalError> {
        let (crypt, kcv) = part.split_at(32);
        let wrapped = KeyUnderKey::from_hex(KeyAlgorithm::Tdes2, crypt, kcv)
            .map_err(|e| TerminalError::KeyExchange(format!("{what}: {e}")))?;
        poslab_crypto::unwrap_key(tmk, &wrapped)
            .map_err(|e| TerminalError::KeyExchange(format!("{what}: {e}")))
    };
    Ok((unwrap(pk, "PIN key")?, unwrap(rest, "MAC key")?))
}

/// The response code (DE 39) of an answer.
pub fn response_code(m: &Message) -> Option<&str> {
    m.text(39)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp::from_unix(1_795_411_455)
    }

    #[test]
    fn a_purchase_carries_the_card_and_the_terminal() {
        let card = CardRead {
            pan: Pan::new("4761739001010010"),
            expiry: "2812".into(),
            psn: Some(1),
            track2: None,
            entry: Entry::Chip,
            label: "VISA CREDIT".into(),
            service_code: None,
        };
        let f = Financial {
            kind: TxnKind::Purchase,
            amount: 4250,
            stan: 7,
            at: stamp(),
            card: Some(&card),
            pin_block: Some([1; 8]),
            icc: vec![Tlv::primitive(0x9F36u32, vec![0, 17])],
            original: None,
        };
        let m = financial(&f, &Params::default());
        assert_eq!(m.mti.as_str(), "0200");
        assert_eq!(m.text(2), Some("4761739001010010"));
        assert_eq!(m.text(4), Some("000000004250"));
        assert_eq!(m.text(11), Some("000007"));
        assert_eq!(m.text(22), Some("051"));
        assert_eq!(m.text(23), Some("001"));
        assert_eq!(m.text(41), Some("00000001"));
        assert_eq!(m.binary(52), Some(&[1u8; 8][..]));
        assert!(format!("{card:?}").contains("476173******0010"));
        assert!(!format!("{card:?}").contains("4761739001010010"));
        // packs with the default dialect
        let spec = poslab_iso8583::Spec::builtin("iso87ascii").unwrap();
        spec.pack(&m).unwrap();
    }

    #[test]
    fn a_reversal_names_its_original() {
        let e = SafEntry {
            mti: "0400".into(),
            stan: 9,
            original_mti: "0200".into(),
            original_stan: 8,
            amount: 1000,
            processing_code: "000000".into(),
            attempts: 1,
            receipt: 3,
            original_at: stamp(),
        };
        let m = saf_message(&e, &stamp(), &Params::default());
        assert_eq!(m.mti.as_str(), "0401");
        assert_eq!(m.text(90).unwrap().len(), 42);
        assert!(m.text(90).unwrap().starts_with("0200000008"));
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let key = Key::tdes(&hex::decode("7D3C0B5A6E1F2A9B8C4D5E6F70819A2B").unwrap()).unwrap();
        let spec = poslab_iso8583::Spec::builtin("iso87ascii").unwrap();
        let mut m = network("301", 1, &stamp(), &Params::default());
        sign(&mut m, &key, &spec).unwrap();
        assert!(verify(&m, &key, &spec).unwrap());
        m.set(11, "000002");
        assert!(matches!(
            verify(&m, &key, &spec),
            Err(TerminalError::BadMac)
        ));
    }

    #[test]
    fn session_keys_unwrap_and_check_kcvs() {
        let tmk = Key::tdes(&hex::decode("7EA3A0DE29EC71736D9D1A0C18D3ACAE").unwrap()).unwrap();
        let pin = Key::tdes(&hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap()).unwrap();
        let mac = Key::tdes(&hex::decode("1111111111111111EEEEEEEEEEEEEEEE").unwrap()).unwrap();
        let pk = poslab_crypto::wrap_key(&tmk, &pin).unwrap();
        let mk = poslab_crypto::wrap_key(&tmk, &mac).unwrap();
        let de48 = format!(
            "PK{}{}MK{}{}",
            pk.cryptogram_hex(),
            pk.kcv(),
            mk.cryptogram_hex(),
            mk.kcv()
        );
        let (p, m) = session_keys(&de48, &tmk).unwrap();
        assert_eq!(p.expose(), pin.expose());
        assert_eq!(m.expose(), mac.expose());
        let mut bad = de48.clone();
        bad.replace_range(34..40, "000000");
        assert!(session_keys(&bad, &tmk).is_err());
        assert!(session_keys("PK12", &tmk).is_err());
    }
}
