//! Zero-mean normalised cross-correlation over a square window.

use super::{LevelPair, PairCosts, Similarity};
use crate::cost::{cost_from_unit, Intervals, COST_ONE};
use crate::error::{Error, Result};
use ndarray::Array2;
use std::ops::Range;

/// Added to window variances (grey values in [0, 1]) so that flat windows give a correlation
/// near 0 (cost 0.5) instead of a division by zero.
const VARIANCE_EPS: f32 = 1e-6;

/// NCC similarity over a `(2r+1) × (2r+1)` window; cost = (1 − ncc) / 2, as MicMac's.
#[derive(Debug, Clone, Copy)]
pub struct Ncc {
    radius: usize,
}

impl Ncc {
    /// NCC over an odd `size × size` window (3 to 31).
    pub fn new(size: usize) -> Result<Self> {
        if size.is_multiple_of(2) || !(3..=31).contains(&size) {
            return Err(Error::invalid_parameter(format!(
                "NCC window {size}: must be odd, between 3 and 31 (e.g. 5, 7, 9)"
            )));
        }
        Ok(Ncc { radius: size / 2 })
    }
}

impl Similarity for Ncc {
    fn name(&self) -> String {
        let size = 2 * self.radius + 1;
        format!("ncc {size}x{size}")
    }

    fn prepare<'a>(&'a self, pair: LevelPair<'a>) -> Result<Box<dyn PairCosts + 'a>> {
        let left = WindowStats::new(pair.left, self.radius);
        let right = WindowStats::new(pair.right, self.radius);
        Ok(Box::new(NccPair { radius: self.radius, left, right }))
    }
}

/// An image padded by `r` (edge replicated), with the mean and 1/(n·σ) of every window.
struct WindowStats {
    padded: Array2<f32>,
    mean: Array2<f32>,
    inv_norm: Array2<f32>,
}

impl WindowStats {
    fn new(image: &Array2<f32>, r: usize) -> Self {
        let (h, w) = image.dim();
        let padded = Array2::from_shape_fn((h + 2 * r, w + 2 * r), |(y, x)| {
            image[(y.saturating_sub(r).min(h - 1), x.saturating_sub(r).min(w - 1))]
        });
        let n = ((2 * r + 1) * (2 * r + 1)) as f64;
        // Integral images of the padded image and its square (f64: no cancellation trouble).
        let (ph, pw) = padded.dim();
        let mut sum = Array2::<f64>::zeros((ph + 1, pw + 1));
        let mut sq = Array2::<f64>::zeros((ph + 1, pw + 1));
        for y in 0..ph {
            for x in 0..pw {
                let v = padded[(y, x)] as f64;
                sum[(y + 1, x + 1)] = v + sum[(y, x + 1)] + sum[(y + 1, x)] - sum[(y, x)];
                sq[(y + 1, x + 1)] = v * v + sq[(y, x + 1)] + sq[(y + 1, x)] - sq[(y, x)];
            }
        }
        let k = 2 * r + 1;
        let window = |a: &Array2<f64>, y: usize, x: usize| a[(y + k, x + k)] - a[(y, x + k)] - a[(y + k, x)] + a[(y, x)];
        let mut mean = Array2::zeros((h, w));
        let mut inv_norm = Array2::zeros((h, w));
        for y in 0..h {
            for x in 0..w {
                let m = window(&sum, y, x) / n;
                let var = (window(&sq, y, x) / n - m * m).max(0.0) as f32 + VARIANCE_EPS;
                mean[(y, x)] = m as f32;
                inv_norm[(y, x)] = 1.0 / (n as f32 * var.sqrt());
            }
        }
        WindowStats { padded, mean, inv_norm }
    }
}

struct NccPair {
    radius: usize,
    left: WindowStats,
    right: WindowStats,
}

impl PairCosts for NccPair {
    fn fill_rows(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) -> Result<()> {
        let base = intervals.row_entries(rows.start).start;
        let k = 2 * self.radius + 1;
        let n = (k * k) as f32;
        let wr = self.right.mean.ncols() as i64;
        for y in rows {
            for x in 0..intervals.width() {
                let range = intervals.entries(x, y);
                let d0 = intervals.d_min(x, y) as i64;
                let (ml, il) = (self.left.mean[(y, x)], self.left.inv_norm[(y, x)]);
                for (i, c) in out[range.start - base..range.end - base].iter_mut().enumerate() {
                    let xr = x as i64 - d0 - i as i64;
                    if !(0..wr).contains(&xr) {
                        *c = COST_ONE;
                        continue;
                    }
                    let xr = xr as usize;
                    let mut dot = 0.0f32;
                    for j in 0..k {
                        let lrow = &self.left.padded.row(y + j).to_slice().expect("standard layout")[x..x + k];
                        let rrow = &self.right.padded.row(y + j).to_slice().expect("standard layout")[xr..xr + k];
                        dot += lrow.iter().zip(rrow).map(|(a, b)| a * b).sum::<f32>();
                    }
                    let (mr, ir) = (self.right.mean[(y, xr)], self.right.inv_norm[(y, xr)]);
                    let ncc = (dot - n * ml * mr) * il * ir * n;
                    *c = cost_from_unit((1.0 - ncc.clamp(-1.0, 1.0)) * 0.5);
                }
            }
        }
        Ok(())
    }
}
