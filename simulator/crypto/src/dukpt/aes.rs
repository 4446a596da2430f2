//! ANSI X9.24-3:2017 AES DUKPT: 12-byte KSN (8-byte initial key ID = 4-byte BDK ID +
//! 4-byte derivation ID, then a 32-bit counter with at most 16 one-bits), AES-128/192/256
//! BDK, derivation by AES-ECB over 16-byte derivation data:
//! `01 ‖ block counter ‖ key usage (2) ‖ algorithm (2) ‖ length in bits (2) ‖ context (8)`.

use std::fmt;

use zeroize::Zeroizing;

use super::Registers;
use crate::error::{CryptoError, Result};
use crate::key::{Cipher, Key, KeyAlgorithm};

pub const COUNTER_BITS: u32 = 32;
pub const MAX_ONE_BITS: u32 = 16;

/// An AES DUKPT key serial number (12 bytes). Public: printed in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AesKsn([u8; 12]);

impl AesKsn {
    pub fn from_bytes(bytes: &[u8]) -> Result<AesKsn> {
        let arr: [u8; 12] = bytes.try_into().map_err(|_| CryptoError::BadKsn {
            reason: "aes ksn must be 12 bytes",
        })?;
        Ok(AesKsn(arr))
    }
    pub fn parse_hex(text: &str) -> Result<AesKsn> {
        AesKsn::from_bytes(&crate::key::parse_hex("ksn", text)?)
    }
    /// A KSN from the 8-byte initial key ID and a counter.
    pub fn new(ikid: [u8; 8], counter: u32) -> AesKsn {
        let mut k = [0u8; 12];
        k[..8].copy_from_slice(&ikid);
        k[8..].copy_from_slice(&counter.to_be_bytes());
        AesKsn(k)
    }
    pub fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }
    /// The initial key ID (BDK ID ‖ derivation ID).
    pub fn ikid(&self) -> [u8; 8] {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.0[..8]);
        id
    }
    pub fn counter(&self) -> u32 {
        u32::from_be_bytes([self.0[8], self.0[9], self.0[10], self.0[11]])
    }
    pub fn with_counter(&self, counter: u32) -> AesKsn {
        AesKsn::new(self.ikid(), counter)
    }
}

impl fmt::Display for AesKsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}
impl fmt::Debug for AesKsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AesKsn({self})")
    }
}

/// Key usage indicators of the derivation data (X9.24-3:2017 §6.3.2, tables 2 and 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyUsage {
    KeyEncryptionKey,
    PinEncryption,
    MacGeneration,
    MacVerification,
    MacBoth,
    DataEncrypt,
    DataDecrypt,
    DataBoth,
}

impl KeyUsage {
    fn code(self) -> u16 {
        match self {
            KeyUsage::KeyEncryptionKey => 0x0002,
            KeyUsage::PinEncryption => 0x1000,
            KeyUsage::MacGeneration => 0x2000,
            KeyUsage::MacVerification => 0x2001,
            KeyUsage::MacBoth => 0x2002,
            KeyUsage::DataEncrypt => 0x3000,
            KeyUsage::DataDecrypt => 0x3001,
            KeyUsage::DataBoth => 0x3002,
        }
    }
}

const USAGE_DERIVATION: u16 = 0x8000;
const USAGE_INITIAL_KEY: u16 = 0x8001;

fn algorithm_code(alg: KeyAlgorithm) -> Result<u16> {
    Ok(match alg {
        KeyAlgorithm::Tdes2 => 0x0000,
        KeyAlgorithm::Tdes3 => 0x0001,
        KeyAlgorithm::Aes128 => 0x0002,
        KeyAlgorithm::Aes192 => 0x0003,
        KeyAlgorithm::Aes256 => 0x0004,
        KeyAlgorithm::Des => {
            return Err(CryptoError::WrongKeyAlgorithm {
                operation: "aes dukpt key derivation",
                expected: "tdes2, tdes3 or aes",
                got: "des",
            })
        }
    })
}

fn check_aes(key: &Key, what: &'static str) -> Result<()> {
    if !key.algorithm().is_aes() {
        return Err(CryptoError::WrongKeyAlgorithm {
            operation: what,
            expected: "aes",
            got: key.algorithm().name(),
        });
    }
    Ok(())
}

/// X9.24-3 §6.3.1: AES-ECB of the derivation data under `key`, one block per 16 bytes of
/// the derived key (the block counter counts them), truncated to `alg`'s length.
fn derive(key: &Key, usage: u16, alg: KeyAlgorithm, context: &[u8; 8]) -> Result<Key> {
    let len = alg.key_len();
    let mut data = [0u8; 16];
    data[0] = 0x01;
    data[2..4].copy_from_slice(&usage.to_be_bytes());
    data[4..6].copy_from_slice(&algorithm_code(alg)?.to_be_bytes());
    data[6..8].copy_from_slice(&((len * 8) as u16).to_be_bytes());
    data[8..].copy_from_slice(context);
    let c = Cipher::new(key);
    let mut out = Zeroizing::new(Vec::with_capacity(32));
    for counter in 1..=len.div_ceil(16) as u8 {
        let mut block = data;
        block[1] = counter;
        c.encrypt_block(&mut block);
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    Key::new(alg, &out)
}

fn context(ksn: &AesKsn, counter: u64) -> [u8; 8] {
    let mut ctx = [0u8; 8];
    ctx[..4].copy_from_slice(&ksn.0[4..8]);
    ctx[4..].copy_from_slice(&(counter as u32).to_be_bytes());
    ctx
}

/// The initial key (IK) of a device: derived from the BDK and the initial key ID.
pub fn derive_initial_key(bdk: &Key, ikid: &[u8; 8]) -> Result<Key> {
    check_aes(bdk, "aes dukpt initial key derivation")?;
    derive(bdk, USAGE_INITIAL_KEY, bdk.algorithm(), ikid)
}

fn derive_step(parent: &Key, ksn: &AesKsn, n: u64) -> Result<Key> {
    derive(
        parent,
        USAGE_DERIVATION,
        parent.algorithm(),
        &context(ksn, n),
    )
}

fn derive_from_ik(ik: &Key, ksn: &AesKsn, c: u64) -> Result<Key> {
    let mut key = ik.clone();
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
            reason: "transaction counter has more than 16 one-bits",
        });
    }
    Ok(())
}

/// Host side: the derivation ("transaction") key for `ksn`'s counter from the IK.
pub fn derive_transaction_key(ik: &Key, ksn: &AesKsn) -> Result<Key> {
    check_aes(ik, "aes dukpt transaction key derivation")?;
    check_counter(ksn.counter())?;
    derive_from_ik(ik, ksn, ksn.counter() as u64)
}

/// Host side: the derivation key for `ksn` from the BDK.
pub fn host_derivation_key(bdk: &Key, ksn: &AesKsn) -> Result<Key> {
    derive_transaction_key(&derive_initial_key(bdk, &ksn.ikid())?, ksn)
}

/// A working key of `usage` and algorithm `alg` from the transaction's derivation key.
/// The working key may not be stronger than the derivation key (X9.24-3 §6.2).
pub fn working_key(
    derivation_key: &Key,
    ksn: &AesKsn,
    usage: KeyUsage,
    alg: KeyAlgorithm,
) -> Result<Key> {
    check_aes(derivation_key, "aes dukpt working key derivation")?;
    let strength = |a: KeyAlgorithm| match a {
        KeyAlgorithm::Aes256 => 256,
        KeyAlgorithm::Aes192 => 192,
        KeyAlgorithm::Tdes3 => 112,
        KeyAlgorithm::Tdes2 => 80,
        _ => 128,
    };
    if strength(alg) > strength(derivation_key.algorithm()) {
        return Err(CryptoError::BadParameter {
            what: "aes dukpt working key",
            reason: "must not be stronger than the bdk",
        });
    }
    derive(
        derivation_key,
        usage.code(),
        alg,
        &context(ksn, ksn.counter() as u64),
    )
}

/// One transaction's key material on the terminal side.
#[derive(Debug)]
pub struct AesTransaction {
    pub ksn: AesKsn,
    /// The derivation key; apply [`working_key`] for PIN/MAC/data keys.
    pub key: Key,
}

/// The terminal (originating) side: 32 intermediate derivation key registers.
#[derive(Clone)]
pub struct AesDukptTerminal {
    initial_ksn: AesKsn,
    regs: Registers,
}

impl fmt::Debug for AesDukptTerminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AesDukptTerminal")
            .field("initial_ksn", &self.initial_ksn)
            .field("next_counter", &self.regs.next_counter())
            .finish_non_exhaustive()
    }
}

impl AesDukptTerminal {
    /// Loads the initial key for `ikid`; the first transaction uses counter 1.
    pub fn load_initial_key(ik: &Key, ikid: [u8; 8]) -> Result<AesDukptTerminal> {
        check_aes(ik, "aes dukpt load initial key")?;
        let initial_ksn = AesKsn::new(ikid, 0);
        let regs = Registers::load(ik, COUNTER_BITS, MAX_ONE_BITS, |k, n| {
            derive_step(k, &initial_ksn, n)
        })?;
        Ok(AesDukptTerminal { initial_ksn, regs })
    }

    /// Rebuilds a terminal whose next transaction uses `ksn`'s counter.
    pub fn resume(ik: &Key, ksn: &AesKsn) -> Result<AesDukptTerminal> {
        check_aes(ik, "aes dukpt resume")?;
        let initial_ksn = ksn.with_counter(0);
        let regs = Registers::resume(
            ik,
            COUNTER_BITS,
            MAX_ONE_BITS,
            ksn.counter() as u64,
            |k, n| derive_from_ik(k, &initial_ksn, n),
        )?;
        Ok(AesDukptTerminal { initial_ksn, regs })
    }

    pub fn next_ksn(&self) -> Result<AesKsn> {
        Ok(self.initial_ksn.with_counter(self.regs.peek()? as u32))
    }

    pub fn is_exhausted(&self) -> bool {
        self.regs.peek().is_err()
    }

    /// Starts a transaction: its KSN and derivation key; the key is erased and the
    /// counter advanced.
    pub fn next_transaction(&mut self) -> Result<AesTransaction> {
        let initial = self.initial_ksn;
        let (c, key) = self.regs.advance(|k, n| derive_step(k, &initial, n))?;
        Ok(AesTransaction {
            ksn: initial.with_counter(c as u32),
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::parse_hex;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        parse_hex("test", s).unwrap()
    }
    const IKID: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56];
    fn bdk128() -> Key {
        Key::aes(&h("FEDCBA9876543210F1F1F1F1F1F1F1F1")).unwrap()
    }
    fn ik128() -> Key {
        derive_initial_key(&bdk128(), &IKID).unwrap()
    }

    #[test]
    fn initial_keys_x9_24_3_vectors() {
        // ANSI X9.24-3:2017 B.1 / supplement (openemv/dukpt test/dukpt_aes_test.c).
        assert_eq!(ik128().expose(), &h("1273671EA26AC29AFA4D1084127652A1")[..]);
        let bdk256 = Key::aes(&h(
            "FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210F1F1F1F1F1F1F1F1",
        ))
        .unwrap();
        assert_eq!(
            derive_initial_key(&bdk256, &IKID).unwrap().expose(),
            &h("CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F")[..]
        );
    }

    // ANSI X9.24-3:2017 supplement test vectors, AES-128 BDK: derivation keys (openemv/dukpt
    // test/dukpt_aes128_test.c: first eight, 0x1FFFE/0x20000/0x20001, last four).
    const DERIVATION: [(u32, &str); 15] = [
        (0x00000001, "4F21B565BAD9835E112B6465635EAE44"),
        (0x00000002, "2F34D68DE10F68D38091A73B9E7C437C"),
        (0x00000003, "031504E530365CF81264238540518318"),
        (0x00000004, "0EEFC7ADA628BA68878DA9165A8A1887"),
        (0x00000005, "C2A7AC328A5DA2D6002D62465BFC028B"),
        (0x00000006, "D30F7D9351DA58448A2F5E92B4EE3B7D"),
        (0x00000007, "A8253CEED9AC042C54F75D35C8352278"),
        (0x00000008, "718EE6CF0B27E53D5F7AF99C4D8146A2"),
        (0x0001FFFE, "E21E8C8D347F8561A2BE752DAA85A111"),
        (0x00020000, "F7AE9025468A25D37B7249CFFED224C8"),
        (0x00020001, "692C8EA4013645135B36497131DF9D2C"),
        (0xFFFE2000, "48E585B694EB0B18D5C35443E163C0BA"),
        (0xFFFE4000, "396C2C7CA1EA701C03B86B7D41F0C562"),
        (0xFFFE8000, "0387625F189B58AE03EF0E8CCA41105E"),
        (0xFFFF0000, "F6BA59389BD14A9855BE9727E7C52E3C"),
    ];

    #[test]
    fn host_derivation_keys_x9_24_3_vectors() {
        for (c, want) in DERIVATION {
            let ksn = AesKsn::new(IKID, c);
            assert_eq!(
                derive_transaction_key(&ik128(), &ksn).unwrap().expose(),
                &h(want)[..],
                "{c:#x}"
            );
        }
        assert!(derive_transaction_key(&ik128(), &AesKsn::new(IKID, 0x1FFFF)).is_err());
    }

    #[test]
    fn working_keys_x9_24_3_supplement_counter_1_and_8() {
        // ANSI X9.24-3:2017 supplement, AES-128 BDK, AES-128 working keys for counter 1
        // (PIN, MAC generate/verify/both, data encrypt/decrypt/both, KEK) and counter 8/2 (PIN).
        let ksn = AesKsn::new(IKID, 1);
        let dk = host_derivation_key(&bdk128(), &ksn).unwrap();
        let w = |u| {
            working_key(&dk, &ksn, u, KeyAlgorithm::Aes128)
                .unwrap()
                .expose()
                .to_vec()
        };
        assert_eq!(
            w(KeyUsage::PinEncryption),
            h("AF8CB133A78F8DC2D1359F18527593FB")
        );
        assert_eq!(
            w(KeyUsage::MacGeneration),
            h("A2DC23DE6FDE0824A2BC321E08E4B8B7")
        );
        assert_eq!(
            w(KeyUsage::MacVerification),
            h("DBB463945B286C07CD3AD82EE96FD9C9")
        );
        assert_eq!(w(KeyUsage::MacBoth), h("85675439D18D7F1158BD8E3EAA3D502B"));
        assert_eq!(
            w(KeyUsage::DataEncrypt),
            h("A35C412EFD41FDB98B69797C02DCD08F")
        );
        assert_eq!(
            w(KeyUsage::DataDecrypt),
            h("16292C6EA8F64C5420A0584BFBC577BE")
        );
        assert_eq!(w(KeyUsage::DataBoth), h("A308E080DD15A1B741F1721BF67DE11C"));
        assert_eq!(
            w(KeyUsage::KeyEncryptionKey),
            h("36A724B7BEFA5A25F5E7B5782A4554A2")
        );
        for (c, pin) in [
            (8, "4D9DF3FBEE3448FC3E676D04320A90F5"),
            (2, "D30BDC73EC9714B000BEC66BDB7B6D09"),
        ] {
            let ksn = AesKsn::new(IKID, c);
            let dk = host_derivation_key(&bdk128(), &ksn).unwrap();
            assert_eq!(
                working_key(&dk, &ksn, KeyUsage::PinEncryption, KeyAlgorithm::Aes128)
                    .unwrap()
                    .expose(),
                &h(pin)[..]
            );
        }
        assert!(working_key(&dk, &ksn, KeyUsage::PinEncryption, KeyAlgorithm::Aes256).is_err());
        assert_eq!(
            working_key(&dk, &ksn, KeyUsage::PinEncryption, KeyAlgorithm::Tdes3)
                .unwrap()
                .len(),
            24
        );
    }

    #[test]
    fn terminal_reproduces_vectors_and_exhausts() {
        let mut t = AesDukptTerminal::load_initial_key(&ik128(), IKID).unwrap();
        for (c, want) in &DERIVATION[..8] {
            let tx = t.next_transaction().unwrap();
            assert_eq!(tx.ksn.counter(), *c);
            assert_eq!(tx.key.expose(), &h(want)[..]);
        }
        // 0x1FFFE is followed by 0x20000 (0x1FFFF has 17 one-bits).
        let mut t = AesDukptTerminal::resume(&ik128(), &AesKsn::new(IKID, 0x1FFFE)).unwrap();
        for (c, want) in &DERIVATION[8..11] {
            let tx = t.next_transaction().unwrap();
            assert_eq!(tx.ksn.counter(), *c);
            assert_eq!(tx.key.expose(), &h(want)[..]);
        }
        // the last four counters, then exhaustion
        let mut t = AesDukptTerminal::resume(&ik128(), &AesKsn::new(IKID, 0xFFFE2000)).unwrap();
        for (c, want) in &DERIVATION[11..] {
            assert_eq!(t.next_ksn().unwrap().counter(), *c);
            let tx = t.next_transaction().unwrap();
            assert_eq!(tx.key.expose(), &h(want)[..]);
        }
        assert!(t.is_exhausted());
        assert_eq!(
            t.next_transaction().unwrap_err(),
            CryptoError::CounterExhausted
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn terminal_resumed_anywhere_matches_the_host(
            counter in 1u32..=u32::MAX,
            steps in 1usize..20,
            bdk in proptest::collection::vec(any::<u8>(), 16),
            ikid in any::<[u8; 8]>(),
        ) {
            prop_assume!(counter.count_ones() <= MAX_ONE_BITS);
            let bdk = Key::aes(&bdk).unwrap();
            let ik = derive_initial_key(&bdk, &ikid).unwrap();
            let mut t = AesDukptTerminal::resume(&ik, &AesKsn::new(ikid, counter)).unwrap();
            for _ in 0..steps {
                match t.next_transaction() {
                    Ok(tx) => prop_assert_eq!(tx.key, host_derivation_key(&bdk, &tx.ksn).unwrap()),
                    Err(e) => { prop_assert_eq!(e, CryptoError::CounterExhausted); break; }
                }
            }
        }
    }
}
