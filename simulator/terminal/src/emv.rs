//! The terminal side of an EMV transaction, as pure functions over the card's answers:
//! application selection, PDOL/CDOL data, GET PROCESSING OPTIONS and READ RECORD results,
//! cardholder verification method selection, and the cryptogram the card returned.

use std::collections::BTreeMap;

use poslab_tlv::{parse, parse_dol, Tag, Tlv};

use crate::TerminalError;

/// An application the card offers (from the PPSE or the PSE directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub aid: Vec<u8>,
    pub label: String,
    pub priority: u8,
}

fn card_err(what: impl Into<String>) -> TerminalError {
    TerminalError::Card(what.into())
}

fn tlvs(bytes: &[u8], what: &str) -> Result<Vec<Tlv>, TerminalError> {
    parse(bytes).map_err(|e| card_err(format!("{what}: {e}")))
}

/// Every directory entry (tag 61) in a PPSE FCI or a PSE record, best priority first.
pub fn candidates(bytes: &[u8]) -> Result<Vec<Candidate>, TerminalError> {
    let items = tlvs(bytes, "directory")?;
    let mut out = Vec::new();
    collect_entries(&items, &mut out);
    out.sort_by_key(|c| c.priority);
    Ok(out)
}

fn collect_entries(items: &[Tlv], out: &mut Vec<Candidate>) {
    for item in items {
        if item.tag == Tag(0x61) {
            let get = |t: u32| item.find(t).and_then(Tlv::bytes);
            if let Some(aid) = get(0x4F) {
                out.push(Candidate {
                    aid: aid.to_vec(),
                    label: get(0x50)
                        .map(|l| String::from_utf8_lossy(l).into_owned())
                        .unwrap_or_default(),
                    priority: get(0x87)
                        .and_then(|p| p.first().copied())
                        .map_or(15, |p| p & 0x0F),
                });
            }
        } else {
            collect_entries(item.children(), out);
        }
    }
}

/// The SFI of the PSE directory (tag 88 in the PSE's FCI).
pub fn pse_sfi(fci: &[u8]) -> Result<u8, TerminalError> {
    let items = tlvs(fci, "PSE FCI")?;
    poslab_tlv::find(&items, 0x88u32)
        .and_then(Tlv::bytes)
        .and_then(|b| b.first().copied())
        .ok_or_else(|| card_err("the PSE names no directory SFI"))
}

/// Data the terminal knows about the transaction, by tag, for PDOL and CDOL.
#[derive(Clone, Debug, Default)]
pub struct TagValues(BTreeMap<u32, Vec<u8>>);

impl TagValues {
    pub fn new() -> Self {
        TagValues::default()
    }
    pub fn set(&mut self, tag: u32, value: impl Into<Vec<u8>>) {
        self.0.insert(tag, value.into());
    }
    pub fn get(&self, tag: u32) -> Option<&[u8]> {
        self.0.get(&tag).map(Vec::as_slice)
    }
    /// Every primitive object of a card answer (records, GPO, GENERATE AC).
    pub fn absorb(&mut self, items: &[Tlv]) {
        for item in items {
            match item.bytes() {
                Some(b) => {
                    self.0.insert(item.tag.0, b.to_vec());
                }
                None => self.absorb(item.children()),
            }
        }
    }
    /// The values a DOL asks for, each cut or left-padded with zeros to its length
    /// (numeric data is right-aligned as EMV Book 3 §5.4 says; we pad all on the left).
    pub fn dol(&self, dol: &[u8]) -> Result<Vec<u8>, TerminalError> {
        let items = parse_dol(dol).map_err(|e| card_err(format!("DOL: {e}")))?;
        let mut out = Vec::new();
        for (tag, len) in items {
            if len > 255 {
                // EMV DOL lengths are one byte; anything longer is a broken card
                return Err(card_err(format!(
                    "DOL entry {:X} asks for {len} bytes",
                    tag.0
                )));
            }
            let v = self.get(tag.0).unwrap_or(&[]);
            if v.len() >= len {
                out.extend_from_slice(&v[v.len() - len..]);
            } else {
                out.extend(std::iter::repeat_n(0, len - v.len()));
                out.extend_from_slice(v);
            }
        }
        Ok(out)
    }
}

/// The PDOL of a selected application's FCI (empty when it has none).
pub fn pdol(fci: &[u8]) -> Result<Vec<u8>, TerminalError> {
    let items = tlvs(fci, "application FCI")?;
    Ok(poslab_tlv::find(&items, 0x9F38u32)
        .and_then(Tlv::bytes)
        .map(<[u8]>::to_vec)
        .unwrap_or_default())
}

/// AIP and AFL from a GET PROCESSING OPTIONS answer (format 1 `80` or format 2 `77`).
pub fn processing_options(bytes: &[u8]) -> Result<([u8; 2], Vec<u8>), TerminalError> {
    let items = tlvs(bytes, "GPO answer")?;
    match items.first() {
        Some(t) if t.tag == Tag(0x80) => {
            let b = t.bytes().unwrap_or(&[]);
            let (aip, afl) = b
                .split_at_checked(2)
                .ok_or_else(|| card_err("GPO format 1 shorter than the AIP"))?;
            Ok(([aip[0], aip[1]], afl.to_vec())) // ok: split_at_checked(2) gave 2 bytes
        }
        Some(t) if t.tag == Tag(0x77) => {
            let aip = t
                .find(0x82u32)
                .and_then(Tlv::bytes)
                .and_then(|b| <[u8; 2]>::try_from(b).ok())
                .ok_or_else(|| card_err("GPO answer without a 2-byte AIP"))?;
            let afl = t.find(0x94u32).and_then(Tlv::bytes).unwrap_or(&[]).to_vec();
            Ok((aip, afl))
        }
        _ => Err(card_err("GPO answer is neither format 1 (80) nor 2 (77)")),
    }
}

/// The records an AFL names: (SFI, record number).
pub fn afl_records(afl: &[u8]) -> Result<Vec<(u8, u8)>, TerminalError> {
    if !afl.len().is_multiple_of(4) {
        return Err(card_err(format!(
            "AFL of {} bytes is not a multiple of 4",
            afl.len()
        )));
    }
    let mut out = Vec::new();
    for e in afl.chunks(4) {
        let sfi = e[0] >> 3; // ok: chunks(4) of a length checked to be a multiple of 4
        if sfi == 0 || e[1] == 0 || e[2] < e[1] {
            return Err(card_err(format!("bad AFL entry {}", hex::encode_upper(e))));
        }
        for r in e[1]..=e[2] {
            out.push((sfi, r));
        }
    }
    Ok(out)
}

/// How the cardholder proves who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cvm {
    OnlinePin,
    /// Enciphered PIN verified by the ICC (EMV Book 2 §7: GET CHALLENGE, VERIFY P2 = 88).
    OfflineEncipheredPin,
    Signature,
    NoCvm,
}

impl Cvm {
    pub fn label(self) -> &'static str {
        match self {
            Cvm::OnlinePin | Cvm::OfflineEncipheredPin => "PIN",
            Cvm::Signature => "SIGNATURE",
            Cvm::NoCvm => "NO CVM",
        }
    }
}

/// CVM selection (EMV Book 3 §10.5) for a terminal that supports enciphered online PIN,
/// enciphered offline PIN, signature and no CVM, and not plaintext offline PIN. Conditions on amounts compare with X and Y
/// of the list (in the application currency, assumed the transaction's).
pub fn select_cvm(cvm_list: &[u8], amount: u64) -> Cvm {
    let Some((xy, rules)) = cvm_list.split_at_checked(8) else {
        return Cvm::Signature;
    };
    // ok: split_at_checked(8) gave 8 bytes
    let x = u64::from(u32::from_be_bytes([xy[0], xy[1], xy[2], xy[3]]));
    let y = u64::from(u32::from_be_bytes([xy[4], xy[5], xy[6], xy[7]]));
    for rule in rules.chunks_exact(2) {
        let (code, cond) = (rule[0], rule[1]); // ok: chunks_exact(2)
        let applies = match cond {
            0x00 | 0x03 => true, // always; if the terminal supports the CVM
            0x06 => amount < x,
            0x07 => amount > x,
            0x08 => amount < y,
            0x09 => amount > y,
            _ => false, // cash/cashback/manual conditions: not our transactions
        };
        if !applies {
            continue;
        }
        let cvm = match code & 0x3F {
            0x02 => Some(Cvm::OnlinePin),
            0x04 => Some(Cvm::OfflineEncipheredPin),
            0x1E => Some(Cvm::Signature),
            0x1F => Some(Cvm::NoCvm),
            _ => None, // offline PIN and combinations: not supported by this terminal
        };
        match cvm {
            Some(c) => return c,
            None if code & 0x40 != 0 => continue, // "apply the next rule if this fails"
            None => return Cvm::Signature,
        }
    }
    Cvm::Signature
}

/// A GENERATE AC answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cryptogram {
    /// Cryptogram information data: 00 AAC, 40 TC, 80 ARQC.
    pub cid: u8,
    pub atc: [u8; 2],
    pub ac: [u8; 8],
    pub iad: Vec<u8>,
}

impl Cryptogram {
    pub fn is_arqc(&self) -> bool {
        self.cid & 0xC0 == 0x80
    }
    pub fn is_tc(&self) -> bool {
        self.cid & 0xC0 == 0x40
    }
}

/// Reads a GENERATE AC answer (format 1 `80` or format 2 `77`).
pub fn cryptogram(bytes: &[u8]) -> Result<Cryptogram, TerminalError> {
    let items = tlvs(bytes, "GENERATE AC answer")?;
    match items.first() {
        Some(t) if t.tag == Tag(0x80) => {
            let b = t.bytes().unwrap_or(&[]);
            if b.len() < 11 {
                return Err(card_err("GENERATE AC format 1 shorter than 11 bytes"));
            }
            let mut ac = [0; 8];
            ac.copy_from_slice(&b[3..11]); // ok: b.len() >= 11 checked above
            Ok(Cryptogram {
                cid: b[0],
                atc: [b[1], b[2]],
                ac,
                iad: b[11..].to_vec(),
            })
        }
        Some(t) if t.tag == Tag(0x77) => {
            let get = |tag: u32| t.find(tag).and_then(Tlv::bytes);
            let cid = get(0x9F27).and_then(|b| b.first().copied());
            let atc = get(0x9F36).and_then(|b| <[u8; 2]>::try_from(b).ok());
            let ac = get(0x9F26).and_then(|b| <[u8; 8]>::try_from(b).ok());
            match (cid, atc, ac) {
                (Some(cid), Some(atc), Some(ac)) => Ok(Cryptogram {
                    cid,
                    atc,
                    ac,
                    iad: get(0x9F10).unwrap_or(&[]).to_vec(),
                }),
                _ => Err(card_err("GENERATE AC format 2 misses 9F27, 9F36 or 9F26")),
            }
        }
        _ => Err(card_err("GENERATE AC answer is neither format 1 nor 2")),
    }
}

/// DE 55 of an online request: the cryptogram and the data it covers.
pub fn icc_data(values: &TagValues, c: &Cryptogram) -> Vec<Tlv> {
    let mut out = vec![
        Tlv::primitive(0x9F26u32, c.ac.to_vec()),
        Tlv::primitive(0x9F27u32, vec![c.cid]),
        Tlv::primitive(0x9F10u32, c.iad.clone()),
        Tlv::primitive(0x9F36u32, c.atc.to_vec()),
    ];
    for tag in [
        0x9F37u32, 0x95, 0x9A, 0x9C, 0x9F02, 0x9F03, 0x5F2A, 0x82, 0x9F1A, 0x5F34, 0x84, 0x9F34,
    ] {
        if let Some(v) = values.get(tag) {
            out.push(Tlv::primitive(tag, v.to_vec()));
        }
    }
    out
}

/// Issuer authentication data (tag 91) and the authorisation response code from the
/// host's DE 55.
pub fn issuer_authentication(de55: &poslab_tlv::TlvList) -> Option<Vec<u8>> {
    de55.value(0x91u32).map(<[u8]>::to_vec)
}

/// An amount as 6-byte BCD (9F02).
pub fn amount_bcd(minor: u64) -> Vec<u8> {
    let digits = format!("{:012}", minor % 1_000_000_000_000);
    digits
        .as_bytes()
        .chunks(2)
        .map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0')) // ok: an even count of our own digits
        .collect()
}

/// A numeric code (currency, country) as 2-byte BCD.
pub fn code_bcd(n: u16) -> Vec<u8> {
    let d = format!("{:04}", n % 10_000);
    d.as_bytes()
        .chunks(2)
        .map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0')) // ok: an even count of our own digits
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cvm_selection_follows_the_list() {
        // X = 0, Y = 0; plaintext PIN (next), online PIN, signature, no CVM
        let list = hex::decode("00000000000000004103420354035F031F03").unwrap();
        assert_eq!(select_cvm(&list, 4250), Cvm::OnlinePin);
        // no CVM under 50.00, online PIN above
        let list = hex::decode("000013880000000042071F06").unwrap();
        assert_eq!(select_cvm(&list, 6000), Cvm::OnlinePin);
        assert_eq!(select_cvm(&list, 4000), Cvm::NoCvm);
        assert_eq!(select_cvm(&[], 100), Cvm::Signature);
        // enciphered offline PIN, then signature
        let list = hex::decode("000000000000000004031E03").unwrap();
        assert_eq!(select_cvm(&list, 100), Cvm::OfflineEncipheredPin);
    }

    #[test]
    fn afl_names_records() {
        let afl = hex::decode("0801010010010300").unwrap();
        assert_eq!(
            afl_records(&afl).unwrap(),
            vec![(1, 1), (2, 1), (2, 2), (2, 3)]
        );
        assert!(afl_records(&[8, 1]).is_err());
        assert!(afl_records(&[8, 3, 1, 0]).is_err());
    }

    #[test]
    fn dol_values_are_cut_or_padded() {
        let mut v = TagValues::new();
        v.set(0x9F02, amount_bcd(4250));
        v.set(0x5F2A, code_bcd(978));
        let dol = hex::decode("9F02069F37045F2A02").unwrap();
        assert_eq!(
            hex::encode_upper(v.dol(&dol).unwrap()),
            "000000004250000000000978"
        );
    }

    #[test]
    fn cryptograms_in_both_formats() {
        let f1 = hex::decode("800E80001112345678ABCDEF00060102").unwrap();
        let c = cryptogram(&f1).unwrap();
        assert!(c.is_arqc());
        assert_eq!(c.atc, [0, 0x11]);
        let f2 = Tlv::constructed(
            0x77u32,
            vec![
                Tlv::primitive(0x9F27u32, vec![0x40]),
                Tlv::primitive(0x9F36u32, vec![0, 2]),
                Tlv::primitive(0x9F26u32, vec![1; 8]),
            ],
        )
        .to_bytes();
        assert!(cryptogram(&f2).unwrap().is_tc());
        assert!(cryptogram(&[0x80, 0x02, 0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn card_answers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = candidates(&bytes);
            let _ = processing_options(&bytes);
            let _ = afl_records(&bytes);
            let _ = cryptogram(&bytes);
            let _ = select_cvm(&bytes, 1000);
            let _ = pdol(&bytes);
        }
    }
}
