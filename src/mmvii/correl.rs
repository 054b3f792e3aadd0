//! `MMVIICorrel`: normalised cross-correlation over a `(2·SzW+1)²` window, cost `(1 − NCC)/2`,
//! as MMVII computes it (`cMatIner2Var::Correl`: `cov / √max(ε, var₁·var₂)`, ε = 1e-10, in the
//! images' own units), with image 2 sampled bilinearly at sub-pixel `StepZ`.
//!
//! The image-1 window of a pixel is centred once and reused for all its candidates; each
//! candidate then takes one pass over its image-2 window, accumulating around the window's
//! centre sample so that the variance does not lose precision to cancellation.

use super::cube::scaled;
use super::{split_rows, Crop, Geometry, Layers, COST_SCALE};
use crate::error::Result;
use ndarray::Array2;
use rayon::prelude::*;

/// MMVII's floor under `var₁·var₂`: flat windows correlate to 0 (cost 0.5).
const CORREL_EPS: f64 = 1e-10;

/// Counts invalid pixels in rectangles (summed-area table), or knows there are none.
struct InvalidCount {
    table: Option<Array2<u32>>,
}

impl InvalidCount {
    fn new(valid: &Array2<bool>) -> Self {
        if valid.iter().all(|&v| v) {
            return InvalidCount { table: None };
        }
        let (h, w) = valid.dim();
        let mut t = Array2::<u32>::zeros((h + 1, w + 1));
        for y in 0..h {
            for x in 0..w {
                t[(y + 1, x + 1)] = u32::from(!valid[(y, x)]) + t[(y, x + 1)] + t[(y + 1, x)] - t[(y, x)];
            }
        }
        InvalidCount { table: Some(t) }
    }

    /// Whether every pixel of columns `x0..=x1`, rows `y0..=y1` (inside the image) is valid.
    #[inline]
    fn all_valid(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> bool {
        match &self.table {
            None => true,
            Some(t) => t[(y1 + 1, x1 + 1)] + t[(y0, x0)] == t[(y0, x1 + 1)] + t[(y1 + 1, x0)],
        }
    }
}

/// Fills the cube with NCC costs over a `(2·szw+1)²` window.
pub fn fill_correl(layers: &Layers, geo: &Geometry, crop1: &Crop, crop2: &Crop, szw: usize) -> Result<Vec<u16>> {
    let mut costs = vec![COST_SCALE; layers.total()];
    let r = szw as i64;
    let k = 2 * szw + 1;
    let n = (k * k) as f64;
    let (h1, w1) = crop1.values.dim();
    let (h2, w2) = crop2.values.dim();
    let img1 = crop1.values.as_standard_layout();
    let img2 = crop2.values.as_standard_layout();
    let (v1, v2) = (img1.as_slice().expect("standard layout"), img2.as_slice().expect("standard layout"));
    let (bad1, bad2) = (InvalidCount::new(&crop1.valid), InvalidCount::new(&crop2.valid));
    split_rows(&mut costs, layers).into_par_iter().for_each(|(y, out)| {
        let base = layers.row_entries(y).start;
        let ry = geo.right_row(y);
        if ry - r < 0 || ry + r >= h2 as i64 {
            return; // the image-2 window leaves the loaded rows: worst cost everywhere
        }
        let (ry0, ry1) = ((ry - r) as usize, (ry + r) as usize);
        let mut centred = vec![0f32; k * k];
        for x in 0..layers.width() {
            let range = layers.entries(x, y);
            if range.is_empty() {
                continue;
            }
            let pixel = &mut out[range.start - base..range.end - base];
            let (lx, ly) = geo.left(x, y);
            if lx - r < 0 || ly - r < 0 || lx + r >= w1 as i64 || ly + r >= h1 as i64 {
                continue;
            }
            let (lx0, ly0) = ((lx - r) as usize, (ly - r) as usize);
            if !bad1.all_valid(lx0, ly0, lx0 + k - 1, ly0 + k - 1) {
                continue;
            }
            let mut mean1 = 0f64;
            for j in 0..k {
                let row = &v1[(ly0 + j) * w1 + lx0..(ly0 + j) * w1 + lx0 + k];
                centred[j * k..(j + 1) * k].copy_from_slice(row);
                mean1 += row.iter().map(|&v| v as f64).sum::<f64>();
            }
            mean1 /= n;
            let mut var1 = 0f64;
            for a in centred.iter_mut() {
                *a = (*a as f64 - mean1) as f32;
                var1 += (*a as f64) * (*a as f64);
            }
            var1 /= n;
            let zmin = layers.zmin(x, y) as i32;
            for (i, cost) in pixel.iter_mut().enumerate() {
                let Some(sample) = geo.right_sample(x, zmin + i as i32, w2) else { continue };
                let interpolate = sample.t > 0.0;
                let xa = sample.x0 as i64 - r;
                let xb = sample.x0 as i64 + r + i64::from(interpolate);
                if xa < 0 || xb >= w2 as i64 || !bad2.all_valid(xa as usize, ry0, xb as usize, ry1) {
                    continue;
                }
                let xa = xa as usize;
                let (t, u) = (sample.t, 1.0 - sample.t);
                let at = |row: &[f32], i: usize| if interpolate { row[i] * u + row[i + 1] * t } else { row[i] };
                let centre = at(&v2[ry as usize * w2..(ry as usize + 1) * w2], sample.x0);
                let span = k + usize::from(interpolate);
                let (mut s1, mut s2, mut dot) = (0f32, 0f32, 0f32);
                for j in 0..k {
                    let row = &v2[(ry0 + j) * w2 + xa..(ry0 + j) * w2 + xa + span];
                    let a = &centred[j * k..(j + 1) * k];
                    for (i, &ai) in a.iter().enumerate() {
                        let d = at(row, i) - centre;
                        s1 += d;
                        s2 += d * d;
                        dot += ai * d;
                    }
                }
                let mean2 = s1 as f64 / n;
                let var2 = (s2 as f64 / n - mean2 * mean2).max(0.0);
                let cov = dot as f64 / n;
                let ncc = (cov / (var1 * var2).max(CORREL_EPS).sqrt()).clamp(-1.0, 1.0);
                *cost = scaled(((1.0 - ncc) * 0.5) as f32);
            }
        }
    });
    Ok(costs)
}
