//! A weighted blend of two similarity measures: `cost = w · a + (1 − w) · b`.
//!
//! Why: a learned cost and a census cost fail in different places. The learned embedding sees a
//! wide context and copes with repetitive or weakly textured areas and radiometric changes; the
//! census window is exact on fine, well textured detail and insensitive to the domain the network
//! was trained on. Their errors are weakly correlated, so a convex combination of the two costs is
//! a cheap hybrid (the census fill costs a few percent of the learned one). Both costs are already
//! in the engine's unit ([`crate::cost::COST_ONE`] = the worst match), so the blend needs no
//! rescaling, and SGM penalties keep their meaning.

use super::{LevelPair, PairCosts, Similarity};
use crate::cost::{Intervals, COST_ONE};
use crate::error::{Error, Result};
use std::ops::Range;

/// `weight_a · a + (1 − weight_a) · b`, entry by entry.
pub struct Blend {
    a: Box<dyn Similarity>,
    b: Box<dyn Similarity>,
    /// Weight of `a`, in [0, 1].
    weight_a: f32,
}

impl Blend {
    /// Blends `a` (weight `weight_a`) with `b` (weight `1 − weight_a`).
    pub fn new(a: Box<dyn Similarity>, b: Box<dyn Similarity>, weight_a: f32) -> Result<Self> {
        if !(0.0..=1.0).contains(&weight_a) {
            return Err(Error::invalid_parameter(format!(
                "blend weight {weight_a}: must be between 0 and 1 (the share of the first cost)"
            )));
        }
        Ok(Blend { a, b, weight_a })
    }

    /// Weight of the first measure.
    pub fn weight(&self) -> f32 {
        self.weight_a
    }
}

impl Similarity for Blend {
    fn name(&self) -> String {
        format!("{:.2}·{} + {:.2}·{}", self.weight_a, self.a.name(), 1.0 - self.weight_a, self.b.name())
    }

    fn prepare<'a>(&'a self, pair: LevelPair<'a>) -> Result<Box<dyn PairCosts + 'a>> {
        let (a, b) = rayon::join(|| self.a.prepare(pair), || self.b.prepare(pair));
        // Weights in 1/2^15 units: the blend of two u16 costs stays exact to one unit.
        let wa = (self.weight_a * 32768.0).round() as u32;
        Ok(Box::new(BlendPair { a: a?, b: b?, wa_q15: wa }))
    }

    fn bytes_per_pixel(&self) -> usize {
        // Both measures' data, plus the second cost buffer (2 bytes per entry, counted per
        // pixel by the pipeline through the cost volume itself).
        self.a.bytes_per_pixel() + self.b.bytes_per_pixel()
    }

    fn working_bytes(&self, width: usize, height: usize) -> u64 {
        // Prepared side by side.
        self.a.working_bytes(width, height) + self.b.working_bytes(width, height)
    }
}

struct BlendPair<'a> {
    a: Box<dyn PairCosts + 'a>,
    b: Box<dyn PairCosts + 'a>,
    wa_q15: u32,
}

impl PairCosts for BlendPair<'_> {
    fn fill_rows(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) -> Result<()> {
        self.a.fill_rows(rows.clone(), intervals, out)?;
        let mut second = vec![0u16; out.len()];
        self.b.fill_rows(rows, intervals, &mut second)?;
        let (wa, wb) = (self.wa_q15, 32768 - self.wa_q15);
        for (c, &s) in out.iter_mut().zip(&second) {
            let mixed = (u32::from(*c) * wa + u32::from(s) * wb + 16384) >> 15;
            *c = mixed.min(u32::from(COST_ONE)) as u16;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::{Census, Ncc};
    use ndarray::Array2;

    fn pair_images() -> (Array2<f32>, Array2<f32>, Array2<bool>) {
        let left = Array2::from_shape_fn((24, 40), |(y, x)| ((x * 7 + y * 13) % 17) as f32 / 17.0);
        let right = Array2::from_shape_fn((24, 40), |(y, x)| (((x + 3) * 7 + y * 13) % 17) as f32 / 17.0);
        (left, right, Array2::from_elem((24, 40), true))
    }

    fn costs(sim: &dyn Similarity) -> Vec<u16> {
        let (left, right, valid) = pair_images();
        let pair = LevelPair { left: &left, right: &right, left_valid: &valid, right_valid: &valid };
        let intervals = Intervals::uniform(40, 24, 0, 8).unwrap();
        let mut out = vec![0u16; intervals.row_entries(23).end];
        sim.prepare(pair).unwrap().fill_rows(0..24, &intervals, &mut out).unwrap();
        out
    }

    #[test]
    fn blend_is_the_weighted_mean_of_its_parts() {
        let census = costs(&Census::new(5, 5).unwrap());
        let ncc = costs(&Ncc::new(5).unwrap());
        let blend = Blend::new(Box::new(Census::new(5, 5).unwrap()), Box::new(Ncc::new(5).unwrap()), 0.25).unwrap();
        let mixed = costs(&blend);
        for ((&c, &n), &m) in census.iter().zip(&ncc).zip(&mixed) {
            let want = 0.25 * f32::from(c) + 0.75 * f32::from(n);
            assert!((f32::from(m) - want).abs() <= 1.0, "census {c}, ncc {n}: blend {m}, want {want}");
        }
        assert_ne!(census, mixed);
    }

    #[test]
    fn weights_outside_the_unit_interval_are_refused() {
        let make = |w| Blend::new(Box::new(Census::new(5, 5).unwrap()), Box::new(Ncc::new(5).unwrap()), w);
        assert!(make(1.5).is_err());
        assert!(make(-0.1).is_err());
        assert!(make(f32::NAN).is_err());
        assert!(make(1.0).is_ok());
    }
}
