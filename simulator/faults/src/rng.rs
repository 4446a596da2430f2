//! Seeded random streams, one per stage.

use rand_core::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// A deterministic random stream derived from a run seed and a stage key.
///
/// The key names the stage (e.g. `host#3/downstream/latency_downstream`), so each stage
/// draws from its own stream: adding or removing one stage never changes the numbers
/// another one sees. The derivation (FNV-1a of the key, mixed with the seed by SplitMix64)
/// is fixed here, not borrowed from std's unstable hasher, so a seed replays across builds.
#[derive(Clone, Debug)]
pub struct RngStream {
    key: String,
    rng: Pcg64Mcg,
}

impl RngStream {
    pub fn derive(seed: u64, key: &str) -> RngStream {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mixed = splitmix(splitmix(seed) ^ h);
        RngStream {
            key: key.to_owned(),
            rng: Pcg64Mcg::seed_from_u64(mixed),
        }
    }

    /// The key the stream was derived from (journaled with every decision).
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p` (clamped to [0, 1]); always draws, so the stream advances
    /// the same way whatever `p` is.
    pub fn chance(&mut self, p: f64) -> bool {
        let x = self.unit();
        x < p.clamp(0.0, 1.0)
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            let _ = self.next_u64();
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_and_key_same_stream_other_key_other_stream() {
        let mut a = RngStream::derive(7, "p#1/upstream/loss");
        let mut b = RngStream::derive(7, "p#1/upstream/loss");
        let mut c = RngStream::derive(7, "p#1/upstream/latency");
        let mut d = RngStream::derive(8, "p#1/upstream/loss");
        let xa: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        let xd: Vec<u64> = (0..4).map(|_| d.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        assert_ne!(xa, xd);
    }

    #[test]
    fn below_and_unit_stay_in_range() {
        let mut r = RngStream::derive(1, "k");
        for _ in 0..1000 {
            assert!(r.below(10) < 10);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn chance_matches_its_probability() {
        let mut r = RngStream::derive(42, "chance");
        let hits = (0..100_000).filter(|_| r.chance(0.25)).count();
        assert!((24_000..26_000).contains(&hits), "{hits}");
    }
}
