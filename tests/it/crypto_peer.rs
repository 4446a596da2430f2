//! Cross-checks poslab-crypto against independent implementations: pyemv (EMV ICC master
//! keys, session keys, AC, ARPC 1/2, retail MAC, KCV) and psec (ISO 9564 PIN blocks 0, 2,
//! 3, 4, ISO 9797-1 MAC algorithms 1 and 3, KCV, AES). Inputs are random from a fixed
//! seed; each case is computed on both sides and compared. The Python side lives in
//! tests/py/crypto_pyemv.py and tests/py/crypto_psec.py.

use std::io::Write;
use std::process::{Command, Stdio};

use poslab_crypto::{
    decipher_pin_block, decode_pin_block, derive_common_session_key, derive_icc_master_key_a,
    ecb_encrypt, encipher_pin_block, encode_pin_block, generate_ac, generate_arpc_method1,
    generate_arpc_method2, mac_alg1, mac_alg3, Key, Padding, Pin, PinBlockFormat,
};
use serde_json::{json, Value};

use crate::peers;

const SEED: u64 = 0x5EED_C0DE_2026;
const CASES: usize = 150;

/// splitmix64: a fixed-seed generator for test inputs (no global RNG).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    fn bytes_in(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let n = self.range(lo, hi);
        self.bytes(n)
    }
    fn digits_in(&mut self, lo: usize, hi: usize) -> String {
        let n = self.range(lo, hi);
        self.digits(n)
    }
    fn array8(&mut self) -> [u8; 8] {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.bytes(8));
        a
    }
}

fn hx(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("peer answered hex")
}

/// Runs a peer script over `cases` (one JSON line each) and returns its `out` values.
fn ask(script: &str, cases: &[Value]) -> Vec<Value> {
    let mut child = Command::new(peers::python())
        .arg(peers::script(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python starts");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for c in cases {
            writeln!(stdin, "{c}").expect("write case");
        }
    }
    let out = child.wait_with_output().expect("python runs");
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line")["out"].clone())
        .collect();
    assert_eq!(answers.len(), cases.len(), "{script} answered every case");
    answers
}

/// A PIN block psec made that we decode, with what it must decode to.
struct Pending {
    index: usize,
    format: PinBlockFormat,
    key: Option<Key>,
    pan: String,
    digits: String,
}

fn padding(p: u64) -> Padding {
    match p {
        1 => Padding::Method1,
        2 => Padding::Method2,
        _ => Padding::Method3,
    }
}

#[test]
fn emv_cryptography_matches_pyemv() {
    if !peers::python_module("pyemv", "emv_cryptography_matches_pyemv") {
        return;
    }
    let mut rng = Rng(SEED);
    let mut cases = Vec::new();
    let mut ours = Vec::new();
    for _ in 0..CASES {
        // ICC master key, option A
        let imk = rng.bytes(16);
        let pan = rng.digits_in(12, 19);
        let psn = rng.digits(2);
        let psn_bcd = u8::from_str_radix(&psn, 16).unwrap();
        let mk = derive_icc_master_key_a(&Key::tdes(&imk).unwrap(), &pan, psn_bcd).unwrap();
        cases.push(json!({"op": "icc_mk_a", "imk": hx(&imk), "pan": pan, "psn": psn}));
        ours.push(hx(mk.expose()));
        // common session key
        let r = rng.bytes(8);
        let sk = derive_common_session_key(&mk, &r).unwrap();
        cases.push(json!({"op": "common_sk", "mk": hx(mk.expose()), "r": hx(&r)}));
        ours.push(hx(sk.expose()));
        // AC over random CDOL data, padding 1 (Visa) or 2 (EMV)
        let data = rng.bytes_in(0, 80);
        let p = 1 + rng.below(2);
        let ac = generate_ac(&sk, &data, padding(p)).unwrap();
        cases.push(json!({"op": "ac", "sk": hx(sk.expose()), "data": hx(&data), "padding": p}));
        ours.push(hx(&ac));
        // ARPC methods 1 and 2
        let arc = rng.bytes(2);
        cases.push(json!({"op": "arpc1", "sk": hx(sk.expose()), "arqc": hx(&ac), "arc": hx(&arc)}));
        ours.push(hx(&generate_arpc_method1(&sk, &ac, &arc).unwrap()));
        let csu = rng.bytes(4);
        let prop = rng.bytes_in(0, 8);
        cases.push(json!({"op": "arpc2", "sk": hx(sk.expose()), "arqc": hx(&ac), "csu": hx(&csu), "prop": hx(&prop)}));
        ours.push(hx(&generate_arpc_method2(&sk, &ac, &csu, &prop).unwrap()));
        // retail MAC and KCV
        let key = rng.bytes(16);
        let k = Key::tdes(&key).unwrap();
        let data = rng.bytes_in(0, 64);
        let p = 1 + rng.below(2);
        cases.push(json!({"op": "mac3", "key": hx(&key), "data": hx(&data), "padding": p}));
        ours.push(hx(&mac_alg3(&k, &data, padding(p)).unwrap()));
        cases.push(json!({"op": "kcv", "key": hx(&key)}));
        ours.push(k.kcv().to_string());
    }
    let theirs = ask("crypto_pyemv.py", &cases);
    for ((case, mine), peer) in cases.iter().zip(&ours).zip(&theirs) {
        assert_eq!(Some(mine.as_str()), peer.as_str(), "case {case}");
    }
}

#[test]
fn pin_blocks_macs_and_kcvs_match_psec() {
    if !peers::python_module("psec", "pin_blocks_macs_and_kcvs_match_psec") {
        return;
    }
    let mut rng = Rng(SEED ^ 0x9564);
    let mut cases = Vec::new();
    // what we expect psec to answer; None = a block psec made, checked below
    let mut ours: Vec<Option<String>> = Vec::new();
    let mut theirs_to_decode: Vec<Pending> = Vec::new();
    for _ in 0..CASES {
        let digits = rng.digits_in(4, 12);
        let pin = Pin::new(&digits).unwrap();
        let pan = rng.digits_in(13, 19);
        let fill = rng.array8();
        // format 0: both directions
        let b0 = encode_pin_block(PinBlockFormat::Iso0, &pin, &pan, &fill).unwrap();
        cases.push(json!({"op": "pin0_encode", "pin": digits, "pan": pan}));
        ours.push(Some(hx(b0.expose())));
        cases.push(json!({"op": "pin0_decode", "block": hx(b0.expose()), "pan": pan}));
        ours.push(Some(digits.clone()));
        // format 2
        let b2 = encode_pin_block(PinBlockFormat::Iso2, &pin, "", &fill).unwrap();
        cases.push(json!({"op": "pin2_encode", "pin": digits}));
        ours.push(Some(hx(b2.expose())));
        // format 3: ours decoded by psec, psec's decoded by us (random fill on both sides)
        let b3 = encode_pin_block(PinBlockFormat::Iso3, &pin, &pan, &fill).unwrap();
        cases.push(json!({"op": "pin3_decode", "block": hx(b3.expose()), "pan": pan}));
        ours.push(Some(digits.clone()));
        cases.push(json!({"op": "pin3_encode", "pin": digits, "pan": pan}));
        ours.push(None);
        theirs_to_decode.push(Pending {
            index: cases.len() - 1,
            format: PinBlockFormat::Iso3,
            key: None,
            pan: pan.clone(),
            digits: digits.clone(),
        });
        // format 4 under a random AES key, both directions
        let aes_len = [16usize, 24, 32][rng.below(3) as usize];
        let aes_key = rng.bytes(aes_len);
        let k4 = Key::aes(&aes_key).unwrap();
        let b4 = encipher_pin_block(&k4, PinBlockFormat::Iso4, &pin, &pan, &fill).unwrap();
        cases.push(json!({"op": "pin4_decipher", "key": hx(&aes_key), "block": hx(b4.expose()), "pan": pan}));
        ours.push(Some(digits.clone()));
        cases.push(json!({"op": "pin4_encipher", "key": hx(&aes_key), "pin": digits, "pan": pan}));
        ours.push(None);
        theirs_to_decode.push(Pending {
            index: cases.len() - 1,
            format: PinBlockFormat::Iso4,
            key: Some(k4),
            pan: pan.clone(),
            digits: digits.clone(),
        });
        // ISO 9797-1 MAC algorithm 3 (retail) and 1 (TDES or AES CBC-MAC), padding 1-3
        let key = rng.bytes(16);
        let p = 1 + rng.below(3);
        let data = rng.bytes_in(1, 64);
        let k = Key::tdes(&key).unwrap();
        cases.push(json!({"op": "retail_mac", "key": hx(&key), "data": hx(&data), "padding": p}));
        ours.push(Some(hx(&mac_alg3(&k, &data, padding(p)).unwrap())));
        let use_aes = rng.below(2) == 1;
        let k1 = if use_aes {
            Key::aes(&key)
        } else {
            Key::tdes(&key)
        }
        .unwrap();
        cases.push(json!({"op": "cbc_mac", "aes": use_aes, "key": hx(&key), "data": hx(&data), "padding": p}));
        ours.push(Some(hx(&mac_alg1(&k1, &data, padding(p)))));
        cases.push(json!({"op": "kcv", "key": hx(&key)}));
        ours.push(Some(k.kcv().to_string()));
        let block = rng.bytes(32);
        cases.push(json!({"op": "aes_ecb", "key": hx(&key), "data": hx(&block)}));
        ours.push(Some(hx(
            &ecb_encrypt(&Key::aes(&key).unwrap(), &block).unwrap()
        )));
    }
    let theirs = ask("crypto_psec.py", &cases);
    for ((case, mine), peer) in cases.iter().zip(&ours).zip(&theirs) {
        if let Some(mine) = mine {
            assert_eq!(Some(mine.as_str()), peer.as_str(), "case {case}");
        }
    }
    for Pending {
        index: i,
        format,
        key,
        pan,
        digits,
    } in theirs_to_decode
    {
        let block = unhex(theirs[i].as_str().expect("hex block"));
        let pin = match key {
            Some(k) => decipher_pin_block(&k, format, &block, &pan),
            None => decode_pin_block(format, &block, &pan),
        }
        .unwrap_or_else(|e| panic!("case {}: {e}", cases[i]));
        assert_eq!(pin.expose(), digits, "case {}", cases[i]);
    }
}
