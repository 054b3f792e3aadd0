//! A small, explicit pseudo-random generator (SplitMix64) and the seed derivations.
//!
//! Written here rather than taken from a crate so that the byte-exact output of a seed can
//! never change under us with a dependency update: every random number the generator uses
//! comes from these few lines of integer arithmetic. Pair `i` of seed `s` gets its own
//! stream [`pair_seed`]`(s, i)`, so it is the same whatever `--count` and `--start-index`
//! were, and each concern (layout, each view's camera, each view's noise) forks a named
//! sub-stream, so changing a radiometric option does not move a single building.

/// The SplitMix64 finaliser: a bijective mix of 64 bits.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of pair `index` of a dataset made with `seed`.
pub fn pair_seed(seed: u64, index: u64) -> u64 {
    mix(seed ^ mix(index.wrapping_add(0x6A09_E667_F3BC_C909)))
}

/// A hash of a seed and two lattice coordinates, for position-keyed randomness
/// (per-tile brightness, noise lattices).
pub fn hash2(seed: u64, i: i64, j: i64) -> u64 {
    mix(seed ^ mix((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (j as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)))
}

/// [`hash2`] mapped to [0, 1).
pub fn hash2_unit(seed: u64, i: i64, j: i64) -> f64 {
    (hash2(seed, i, j) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// An independent generator for the sub-stream named `tag`.
    pub fn fork(&self, tag: &str) -> Rng {
        let mut h = 0xCBF2_9CE4_8422_2325u64; // FNV-1a of the tag
        for b in tag.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
        }
        Rng(mix(self.0 ^ mix(h)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform integer in [0, n) (n > 0; 0 gives 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Picks an index with the given (non-negative, not all zero) weights.
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut r = self.unit() * total;
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }

    /// Approximately standard normal: the Irwin–Hall sum of four uniforms, rescaled to unit
    /// variance (tails cut at ±3.46 σ). Only basic arithmetic, so identical on every machine.
    pub fn normal(&mut self) -> f64 {
        let s = self.unit() + self.unit() + self.unit() + self.unit();
        (s - 2.0) * 1.732_050_807_568_877_2
    }

    /// A uniformly distributed unit vector of the plane (rejection sampling, no trigonometry).
    pub fn unit_vector(&mut self) -> (f64, f64) {
        loop {
            let (x, y) = (self.range(-1.0, 1.0), self.range(-1.0, 1.0));
            let r2 = x * x + y * y;
            if r2 > 1e-4 && r2 <= 1.0 {
                let r = r2.sqrt();
                return (x / r, y / r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_pin_the_stream() {
        // Pinned so that an accidental change of the generator (which would change every
        // dataset) fails here first.
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn ranges_and_pair_seeds() {
        let mut r = Rng::new(7);
        for _ in 0..1000 {
            let v = r.unit();
            assert!((0.0..1.0).contains(&v));
            assert!(r.below(5) < 5);
        }
        assert_ne!(pair_seed(1, 0), pair_seed(1, 1));
        assert_ne!(pair_seed(1, 0), pair_seed(2, 0));
    }
}
