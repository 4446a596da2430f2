//! ANSI X9.24-1:2009 TDES DUKPT: 10-byte KSN (59-bit initial KSN + 21-bit counter),
//! two-key TDES BDK, IPEK, non-reversible key generation, working-key variants.

use std::fmt;

use zeroize::Zeroizing;

use super::Registers;
use crate::error::{CryptoError, Result};
use crate::key::{Cipher, Key, KeyAlgorithm};

/// Counter width and the most one-bits a counter may have (X9.24-1).
pub const COUNTER_BITS: u32 = 21;
pub const MAX_ONE_BITS: u32 = 10;
const COUNTER_MASK: u32 = (1 << COUNTER_BITS) - 1;
const KEY_MASK: [u8; 16] = [
    0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0, 0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0,
];

/// A TDES DUKPT key serial number (10 bytes). Public: printed in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TdesKsn([u8; 10]);

impl TdesKsn {
    pub fn from_bytes(bytes: &[u8]) -> Result<TdesKsn> {
        let arr: [u8; 10] = bytes.try_into().map_err(|_| CryptoError::BadKsn {
            reason: "tdes ksn must be 10 bytes",
        })?;
        Ok(TdesKsn(arr))
    }
    pub fn parse_hex(text: &str) -> Result<TdesKsn> {
        TdesKsn::from_bytes(&crate::key::parse_hex("ksn", text)?)
    }
    pub fn as_bytes(&self) -> &[u8; 10] {
        &self.0
    }
    /// The 21-bit transaction counter.
    pub fn counter(&self) -> u32 {
        u32::from_be_bytes([0, self.0[7], self.0[8], self.0[9]]) & COUNTER_MASK
    }
    /// The same KSN with another counter.
    pub fn with_counter(&self, counter: u32) -> Result<TdesKsn> {
        if counter > COUNTER_MASK {
            return Err(CryptoError::BadKsn {
                reason: "tdes counter does not fit in 21 bits",
            });
        }
        let mut k = self.0;
        let c = counter.to_be_bytes();
        k[7] = (k[7] & 0xE0) | c[1];
        k[8] = c[2];
        k[9] = c[3];
        Ok(TdesKsn(k))
    }
    /// The initial KSN (counter cleared).
    pub fn initial(&self) -> TdesKsn {
        let mut k = self.0;
        k[7] &= 0xE0;
        k[8] = 0;
        k[9] = 0;
        TdesKsn(k)
    }
    /// The rightmost 8 bytes with the counter replaced by `counter` (derivation data).
    fn right8(&self, counter: u64) -> [u8; 8] {
        let mut r = [0u8; 8];
        r.copy_from_slice(&self.initial().0[2..]);
        let c = (counter as u32).to_be_bytes();
        r[5] |= c[1];
        r[6] |= c[2];
        r[7] |= c[3];
        r
    }
}

impl fmt::Display for TdesKsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}
impl fmt::Debug for TdesKsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TdesKsn({self})")
    }
}

fn check_tdes2(key: &Key, what: &'static str) -> Result<()> {
    if key.algorithm() != KeyAlgorithm::Tdes2 {
        return Err(CryptoError::WrongKeyAlgorithm {
            operation: what,
            expected: "tdes2",
            got: key.algorithm().name(),
        });
    }
    Ok(())
}

/// The initial PIN encryption key (IPEK): `TDES_BDK(KSN[0..8] & …E0)` ‖
/// `TDES_{BDK ⊕ C0C0C0C000000000C0C0C0C000000000}(same)`.
pub fn derive_ipek(bdk: &Key, ksn: &TdesKsn) -> Result<Key> {
    check_tdes2(bdk, "tdes dukpt ipek derivation")?;
    let mut data = [0u8; 8];
    data.copy_from_slice(&ksn.initial().0[..8]);
    let mut out = Zeroizing::new([0u8; 16]);
    out[..8].copy_from_slice(&data);
    out[8..].copy_from_slice(&data);
    Cipher::new(bdk).encrypt_block(&mut out[..8]);
    Cipher::new(&bdk.xor_mask(&KEY_MASK)).encrypt_block(&mut out[8..]);
    Key::new(KeyAlgorithm::Tdes2, &out[..])
}

/// Non-reversible key generation process (X9.24-1 A.2): a new key from `key` and the
/// 8-byte crypto register `r`.
fn nrkgp(key: &Key, r: &[u8; 8]) -> Result<Key> {
    let k = key.expose();
    let half = |left: &[u8], right: &[u8]| -> Result<[u8; 8]> {
        let mut block = [0u8; 8];
        for i in 0..8 {
            block[i] = r[i] ^ right[i];
        }
        Cipher::new(&Key::new(KeyAlgorithm::Des, left)?).encrypt_block(&mut block);
        for i in 0..8 {
            block[i] ^= right[i];
        }
        Ok(block)
    };
    let masked = key.xor_mask(&KEY_MASK);
    let m = masked.expose();
    let mut out = Zeroizing::new([0u8; 16]);
    out[..8].copy_from_slice(&half(&m[..8], &m[8..])?);
    out[8..].copy_from_slice(&half(&k[..8], &k[8..])?);
    Key::new(KeyAlgorithm::Tdes2, &out[..])
}

/// The key of counter `n` derived from `parent` (whose counter is `n` minus its lowest
/// set bit).
fn derive_step(parent: &Key, ksn: &TdesKsn, n: u64) -> Result<Key> {
    nrkgp(parent, &ksn.right8(n))
}

/// The key of counter `c` from the IPEK: one NRKGP per set bit, most significant first.
fn derive_from_ipek(ipek: &Key, ksn: &TdesKsn, c: u64) -> Result<Key> {
    let mut key = ipek.clone();
    let mut so_far = 0u64;
    for bit in (0..COUNTER_BITS).rev() {
        if c & (1 << bit) != 0 {
            so_far |= 1 << bit;
            key = derive_step(&key, ksn, so_far)?;
        }
    }
    Ok(key)
}

fn check_counter(counter: u32) -> Result<()> {
    if counter == 0 {
        return Err(CryptoError::BadKsn {
            reason: "transaction counter is zero",
        });
    }
    if counter.count_ones() > MAX_ONE_BITS {
        return Err(CryptoError::BadKsn {
            reason: "transaction counter has more than 10 one-bits",
        });
    }
    Ok(())
}

/// Host side: the transaction key for `ksn` from the IPEK.
pub fn derive_transaction_key(ipek: &Key, ksn: &TdesKsn) -> Result<Key> {
    check_tdes2(ipek, "tdes dukpt transaction key derivation")?;
    check_counter(ksn.counter())?;
    derive_from_ipek(ipek, ksn, ksn.counter() as u64)
}

/// Host side: the transaction key for `ksn` from the BDK.
pub fn host_transaction_key(bdk: &Key, ksn: &TdesKsn) -> Result<Key> {
    derive_transaction_key(&derive_ipek(bdk, ksn)?, ksn)
}

/// Working-key variants of a TDES DUKPT transaction key (X9.24-1:2009).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// PIN encryption: ⊕ `00000000000000FF00000000000000FF`.
    Pin,
    /// MAC, request (terminal → host): ⊕ `000000000000FF00000000000000FF00`.
    MacRequest,
    /// MAC, response (host → terminal): ⊕ `00000000FF00000000000000FF000000`.
    MacResponse,
    /// Data encryption, request: ⊕ `0000000000FF00000000000000FF0000`, then each half
    /// enciphered under the variant key itself.
    DataRequest,
    /// Data encryption, response: ⊕ `000000FF00000000000000FF00000000`, then as above.
    DataResponse,
}

/// The working key of `variant` from a transaction key.
pub fn working_key(txn_key: &Key, variant: Variant) -> Key {
    let pos = match variant {
        Variant::Pin => 7,
        Variant::MacRequest => 6,
        Variant::MacResponse => 4,
        Variant::DataRequest => 5,
        Variant::DataResponse => 3,
    };
    let mut mask = [0u8; 16];
    mask[pos] = 0xFF;
    mask[pos + 8] = 0xFF;
    let k = txn_key.xor_mask(&mask);
    match variant {
        Variant::DataRequest | Variant::DataResponse => {
            let c = Cipher::new(&k);
            let mut out = Zeroizing::new(k.expose().to_vec());
            out.chunks_exact_mut(8).for_each(|b| c.encrypt_block(b));
            Key::new(k.algorithm(), &out).unwrap_or(k) // ok: same length as k
        }
        _ => k,
    }
}

/// One transaction's key material on the terminal side.
#[derive(Debug)]
pub struct TdesTransaction {
    /// The KSN to send with this transaction.
    pub ksn: TdesKsn,
    /// The transaction key; apply [`working_key`] for PIN/MAC/data keys.
    pub key: Key,
}

/// The terminal (originating) side: future key registers, counter, exhaustion.
#[derive(Clone)]
pub struct TdesDukptTerminal {
    initial_ksn: TdesKsn,
    regs: Registers,
}

impl fmt::Debug for TdesDukptTerminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TdesDukptTerminal")
            .field("initial_ksn", &self.initial_ksn)
            .field("next_counter", &self.regs.next_counter())
            .finish_non_exhaustive()
    }
}

impl TdesDukptTerminal {
    /// Loads the IPEK (X9.24-1 "Load Initial Key"): derives the 21 future keys; the IPEK
    /// itself is not kept. The first transaction uses counter 1.
    pub fn load_initial_key(ipek: &Key, ksn: &TdesKsn) -> Result<TdesDukptTerminal> {
        check_tdes2(ipek, "tdes dukpt load initial key")?;
        let initial_ksn = ksn.initial();
        let regs = Registers::load(ipek, COUNTER_BITS, MAX_ONE_BITS, |k, n| {
            derive_step(k, &initial_ksn, n)
        })?;
        Ok(TdesDukptTerminal { initial_ksn, regs })
    }

    /// Rebuilds a terminal whose next transaction uses `ksn`'s counter (simulated device
    /// restored from storage).
    pub fn resume(ipek: &Key, ksn: &TdesKsn) -> Result<TdesDukptTerminal> {
        check_tdes2(ipek, "tdes dukpt resume")?;
        let initial_ksn = ksn.initial();
        let regs = Registers::resume(
            ipek,
            COUNTER_BITS,
            MAX_ONE_BITS,
            ksn.counter() as u64,
            |k, n| derive_from_ipek(k, &initial_ksn, n),
        )?;
        Ok(TdesDukptTerminal { initial_ksn, regs })
    }

    /// The KSN the next transaction will carry, or `CounterExhausted`.
    pub fn next_ksn(&self) -> Result<TdesKsn> {
        self.initial_ksn.with_counter(self.regs.peek()? as u32)
    }

    pub fn is_exhausted(&self) -> bool {
        self.regs.peek().is_err()
    }

    /// Starts a transaction: returns its KSN and transaction key, erases that key from
    /// the registers and advances the counter.
    pub fn next_transaction(&mut self) -> Result<TdesTransaction> {
        let initial = self.initial_ksn;
        let (c, key) = self.regs.advance(|k, n| derive_step(k, &initial, n))?;
        Ok(TdesTransaction {
            ksn: initial.with_counter(c as u32)?,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::parse_hex;
    use crate::pin::{encipher_pin_block, Pin, PinBlockFormat};
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        parse_hex("test", s).unwrap()
    }
    fn bdk() -> Key {
        Key::tdes(&h("0123456789ABCDEFFEDCBA9876543210")).unwrap()
    }
    fn iksn() -> TdesKsn {
        TdesKsn::parse_hex("FFFF9876543210E00000").unwrap()
    }

    // ANSI X9.24-1:2009 Annex A.4.2, initial sequence (as tabulated in openemv/dukpt
    // test/dukpt_tdes_test.c): counter, transaction key, PIN block 041274EDCBA9876F
    // (PIN 1234, PAN 4012345678909) enciphered under the PIN variant.
    const INITIAL: [(u32, &str, &str); 21] = [
        (0x01, "042666B49184CFA368DE9628D0397BC9", "1B9C1845EB993A7A"),
        (0x02, "C46551CEF9FD24B0AA9AD834130D3BC7", "10A01C8D02C69107"),
        (0x03, "0DF3D9422ACA56E547676D07AD6BADFA", "18DC07B94797B466"),
        (0x04, "279C0F6AEED0BE652B2C733E1383AE91", "0BC79509D5645DF7"),
        (0x05, "5F8DC6D2C845C125508DDC048093B83F", "5BC0AF22AD87B327"),
        (0x06, "5E415CB0BAF9F03CD0C14B63FB62FF43", "A16DF70AE36158D8"),
        (0x07, "0C8F780B7C8B49D0AE84A9EB2A6CE660", "27711C16CB257F8E"),
        (0x08, "27F66D5244FF62E1AA6F6120EDEB4280", "50E55547A5027551"),
        (0x09, "27E31064FDC565698900E2057F658E7E", "536CF7F678ACFC8D"),
        (0x0A, "6CF2500A22507C7CC776CEADC1E33014", "EDABBA23221833FE"),
        (0x0B, "3E8260BA04B2D620C01482B3819A18B7", "2328981C57B4BDBA"),
        (0x0C, "B716E1E11CF53D80726CAEE75C3A624F", "038D03CC926CF286"),
        (0x0D, "E072EDF95340535FB6C581C58FBF2533", "6C8AA97088B62C68"),
        (0x0E, "A80046087F5B8F245AAD95E18429084F", "F17C9E1D72CD4950"),
        (0x0F, "93DD5B956C4878472E453AAEFD32A5AA", "B170F6E7F7F2F64A"),
        (0x10, "59598DCBD9BD94C094165CE453585F57", "D5D9638559EF53D6"),
        (0x11, "2B5F01F4F0CC05EA639D523231BF1BA2", "D544F8CDD292C863"),
        (0x12, "9CF640F279C2AEE615F725EEEAC2CBAF", "7A21BD10F36DC41D"),
        (0x13, "C3DF489FDF1153B4F03DE97C27DC4C2F", "78649BD17D0DFA60"),
        (0x14, "658488507721B3F14737FA93F923CBD2", "7E7E16EA0C31AD56"),
        (0x15, "E161D1956A61F6D2F37AFD7F9CC3699A", "72105C22EBC791E6"),
    ];

    // ANSI X9.24-1:2009 Annex A.4.3, roll-over sequence (same source).
    const ROLLOVER: [(u32, &str, &str); 13] = [
        (
            0x0FF800,
            "F9CDFEBF4F5B1D9EB3EC12454527E176",
            "33365F5CC6F23C35",
        ),
        (
            0x0FF801,
            "5BEE92627E97825C911BF619DF72CA3B",
            "3A86BF003F835C9D",
        ),
        (
            0x0FF802,
            "64CA2F8AB93F61B01620B00BF77C7301",
            "3DB977D05C36DF3F",
        ),
        (
            0x0FF804,
            "35A168695B3BA83307E871C42021DD37",
            "BA83243305712099",
        ),
        (
            0x0FF808,
            "12C380FCB72ED3C26FC6079AF63F4787",
            "B0DA04AC90A36D85",
        ),
        (
            0x0FF810,
            "D8007C833A1E3C49C6889B97A68C54FF",
            "2CF02BD9C309EEDA",
        ),
        (
            0x0FF820,
            "A9C9FF9B735FDD49591F296B0BF0FD70",
            "9D1E2F77AEEE81C6",
        ),
        (
            0x0FF840,
            "0E3E221062CB5E03A384602783A004FA",
            "40870B0F8BA2011C",
        ),
        (
            0x0FF880,
            "CA8225C587124DFBB87F279C0BE29727",
            "22E340D6ABB40981",
        ),
        (
            0x0FF900,
            "906AAC1751D4971A144D52C76C6E1F97",
            "1A4C10AFBA03A430",
        ),
        (
            0x0FFA00,
            "2B9E2CE7C2750337E10B54D2989EA6AF",
            "849763B43E5F9CFF",
        ),
        (
            0x0FFC00,
            "F9430DF975082491C77BE4EF4FDB91EE",
            "DEFC6F09F8927B71",
        ),
        (
            0x100000,
            "AA4D58DB653EC74A48C75F2F047DD2B5",
            "73EC88AD0AC5830E",
        ),
    ];

    fn pin_block_under(txn: &Key) -> Vec<u8> {
        let k = working_key(txn, Variant::Pin);
        encipher_pin_block(
            &k,
            PinBlockFormat::Iso0,
            &Pin::new("1234").unwrap(),
            "4012345678909",
            &[0; 8],
        )
        .unwrap()
        .expose()
        .to_vec()
    }

    #[test]
    fn ipek_x9_24_vector() {
        let ipek = derive_ipek(&bdk(), &iksn()).unwrap();
        assert_eq!(ipek.expose(), &h("6AC292FAA1315B4D858AB3A3D7D5933A")[..]);
    }

    #[test]
    fn host_side_reproduces_the_x9_24_sequences() {
        let ipek = derive_ipek(&bdk(), &iksn()).unwrap();
        for (c, key, block) in INITIAL.iter().chain(ROLLOVER.iter()) {
            let ksn = iksn().with_counter(*c).unwrap();
            let txn = derive_transaction_key(&ipek, &ksn).unwrap();
            assert_eq!(txn.expose(), &h(key)[..], "counter {c:#x}");
            assert_eq!(pin_block_under(&txn), h(block), "counter {c:#x}");
            assert_eq!(host_transaction_key(&bdk(), &ksn).unwrap(), txn);
        }
    }

    #[test]
    fn terminal_side_reproduces_the_x9_24_sequences() {
        let ipek = derive_ipek(&bdk(), &iksn()).unwrap();
        let mut t = TdesDukptTerminal::load_initial_key(&ipek, &iksn()).unwrap();
        for (c, key, block) in INITIAL {
            let tx = t.next_transaction().unwrap();
            assert_eq!(tx.ksn, iksn().with_counter(c).unwrap());
            assert_eq!(tx.key.expose(), &h(key)[..]);
            assert_eq!(pin_block_under(&tx.key), h(block));
        }
        // Roll-over: resume at …EFF800 and walk the skip over counters with > 10 one-bits.
        let start = iksn().with_counter(0x0FF800).unwrap();
        let mut t = TdesDukptTerminal::resume(&ipek, &start).unwrap();
        for (c, key, _) in ROLLOVER {
            assert_eq!(t.next_ksn().unwrap().counter(), c);
            let tx = t.next_transaction().unwrap();
            assert_eq!(tx.ksn.counter(), c);
            assert_eq!(tx.key.expose(), &h(key)[..], "counter {c:#x}");
        }
    }

    #[test]
    fn working_key_variants_x9_24_3_annex_c_counter_1() {
        // ANSI X9.24-3:2017 Annex C (TDES DUKPT) counter-1 working keys, as used in public
        // DUKPT test suites (PIN, MAC request, MAC response, data request).
        let txn = Key::tdes(&h("042666B49184CFA368DE9628D0397BC9")).unwrap();
        let w = |v| working_key(&txn, v).expose().to_vec();
        assert_eq!(w(Variant::Pin), h("042666B49184CF5C68DE9628D0397B36"));
        assert_eq!(
            w(Variant::MacRequest),
            h("042666B4918430A368DE9628D03984C9")
        );
        assert_eq!(
            w(Variant::MacResponse),
            h("042666B46E84CFA368DE96282F397BC9")
        );
        assert_eq!(
            w(Variant::DataRequest),
            h("448D3F076D8304036A55A3D7E0055A78")
        );
    }

    #[test]
    fn terminal_exhausts_after_the_last_counter() {
        let ipek = derive_ipek(&bdk(), &iksn()).unwrap();
        // 0x1FF800 has 10 one-bits and is the last valid 21-bit counter.
        let mut t =
            TdesDukptTerminal::resume(&ipek, &iksn().with_counter(0x1FF800).unwrap()).unwrap();
        let tx = t.next_transaction().unwrap();
        assert_eq!(tx.ksn.to_string(), "FFFF9876543210FFF800");
        assert_eq!(tx.key, host_transaction_key(&bdk(), &tx.ksn).unwrap());
        assert!(t.is_exhausted());
        assert_eq!(
            t.next_transaction().unwrap_err(),
            CryptoError::CounterExhausted
        );
        assert_eq!(
            t.next_ksn().unwrap_err().to_string(),
            "dukpt counter exhausted: the device must be re-keyed"
        );
    }

    #[test]
    fn host_rejects_unusable_counters() {
        let ipek = derive_ipek(&bdk(), &iksn()).unwrap();
        assert!(derive_transaction_key(&ipek, &iksn()).is_err());
        let eleven = iksn().with_counter(0x7FF).unwrap();
        assert_eq!(
            derive_transaction_key(&ipek, &eleven)
                .unwrap_err()
                .to_string(),
            "bad ksn: transaction counter has more than 10 one-bits"
        );
        assert!(TdesKsn::from_bytes(&[0; 9]).is_err());
        assert!(iksn().with_counter(1 << 21).is_err());
        assert!(TdesDukptTerminal::resume(&ipek, &eleven).is_err());
    }

    #[test]
    fn terminal_and_host_agree_over_the_first_3000_transactions() {
        let ipek = derive_ipek(&bdk(), &iksn()).unwrap();
        let mut t = TdesDukptTerminal::load_initial_key(&ipek, &iksn()).unwrap();
        let mut last = 0;
        for _ in 0..3000 {
            let tx = t.next_transaction().unwrap();
            let c = tx.ksn.counter();
            assert!(c > last && c.count_ones() <= MAX_ONE_BITS);
            // every skipped counter has too many one-bits
            assert!((last + 1..c).all(|s| s.count_ones() > MAX_ONE_BITS));
            assert_eq!(tx.key, derive_transaction_key(&ipek, &tx.ksn).unwrap());
            last = c;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn terminal_resumed_anywhere_matches_the_host(
            counter in 1u32..(1 << 21),
            steps in 1usize..40,
            bdk in proptest::collection::vec(any::<u8>(), 16),
            base in any::<[u8; 10]>(),
        ) {
            prop_assume!(counter.count_ones() <= MAX_ONE_BITS);
            let bdk = Key::tdes(&bdk).unwrap();
            let ksn = TdesKsn(base).with_counter(counter).unwrap();
            let ipek = derive_ipek(&bdk, &ksn).unwrap();
            let mut t = TdesDukptTerminal::resume(&ipek, &ksn).unwrap();
            for _ in 0..steps {
                match t.next_transaction() {
                    Ok(tx) => prop_assert_eq!(tx.key, host_transaction_key(&bdk, &tx.ksn).unwrap()),
                    Err(e) => { prop_assert_eq!(e, CryptoError::CounterExhausted); break; }
                }
            }
        }
    }
}
