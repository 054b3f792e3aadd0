//! Census transform with Hamming distance.

use super::{LevelPair, PairCosts, Similarity};
use crate::cost::{Intervals, COST_ONE};
use crate::error::{Error, Result};
use ndarray::parallel::prelude::*;
use ndarray::{Array2, Axis};
use std::ops::Range;

/// Census similarity: each pixel becomes the bit string "neighbour darker than centre" over a
/// `width × height` window; the cost is the Hamming distance divided by the number of bits.
#[derive(Debug, Clone, Copy)]
pub struct Census {
    width: usize,
    height: usize,
}

impl Census {
    /// A census over an odd `width × height` window of at most 65 pixels (64 bits + centre).
    pub fn new(width: usize, height: usize) -> Result<Self> {
        if width.is_multiple_of(2) || height.is_multiple_of(2) || width * height > 65 || width * height < 9 {
            return Err(Error::invalid_parameter(format!(
                "census window {width}x{height}: both sides must be odd and the area between 9 and 65 \
                 pixels (e.g. 5x5, 7x7, 9x7)"
            )));
        }
        Ok(Census { width, height })
    }

    fn bits(&self) -> u32 {
        (self.width * self.height - 1) as u32
    }

    /// Census codes of every pixel (image edges replicated), computed offset by offset over
    /// whole rows so that the inner loop is a plain vectorisable pass; rows in parallel.
    fn transform(&self, image: &Array2<f32>) -> Array2<u64> {
        let (h, w) = image.dim();
        let (rx, ry) = (self.width / 2, self.height / 2);
        let padded = Array2::from_shape_fn((h + 2 * ry, w + 2 * rx), |(y, x)| {
            image[(y.saturating_sub(ry).min(h - 1), x.saturating_sub(rx).min(w - 1))]
        });
        let mut codes = Array2::<u64>::zeros((h, w));
        codes.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(y, mut out)| {
            let out = out.as_slice_mut().expect("standard layout");
            dispatch!(self.transform_row_avx2(&padded, y, out), self.transform_row(&padded, y, out))
        });
        codes
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    fn transform_row_avx2(&self, padded: &Array2<f32>, y: usize, out: &mut [u64]) {
        self.transform_row(padded, y, out)
    }

    /// Codes of row `y` from the edge-padded image.
    #[inline(always)]
    fn transform_row(&self, padded: &Array2<f32>, y: usize, out: &mut [u64]) {
        let (rx, ry, w) = (self.width / 2, self.height / 2, out.len());
        let centre = &padded.row(y + ry).to_slice().expect("standard layout")[rx..rx + w];
        for dy in 0..self.height {
            let row = padded.row(y + dy).to_slice().expect("standard layout");
            for dx in 0..self.width {
                if dx == rx && dy == ry {
                    continue;
                }
                for ((code, &c), &v) in out.iter_mut().zip(centre).zip(&row[dx..dx + w]) {
                    *code = (*code << 1) | u64::from(v < c);
                }
            }
        }
    }
}

impl Similarity for Census {
    fn name(&self) -> String {
        format!("census {}x{}", self.width, self.height)
    }

    fn prepare<'a>(&'a self, pair: LevelPair<'a>) -> Result<Box<dyn PairCosts + 'a>> {
        Ok(Box::new(CensusCodes {
            left: self.transform(pair.left),
            right: self.transform(pair.right),
            scale_q16: ((COST_ONE as u64) << 16).div_ceil(self.bits() as u64) as u32,
        }))
    }
}

struct CensusCodes {
    left: Array2<u64>,
    right: Array2<u64>,
    /// Integer cost of a Hamming distance n: `(n · scale_q16) >> 16` ≈ n · COST_ONE / bits.
    scale_q16: u32,
}

impl PairCosts for CensusCodes {
    fn fill_rows(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) -> Result<()> {
        dispatch!(self.fill_rows_avx2(rows.clone(), intervals, out), self.fill_rows_portable(rows, intervals, out));
        Ok(())
    }
}

impl CensusCodes {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    fn fill_rows_avx2(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) {
        self.fill_rows_portable(rows, intervals, out)
    }

    /// The costs of `rows`. Candidate `k` of pixel `x` is right pixel `x − d_min − k`: a pixel's
    /// candidates walk the right row backwards, so the inner loop zips them with a reversed
    /// slice of the right codes (contiguous loads, vectorised XOR and bit count).
    #[inline(always)]
    fn fill_rows_portable(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) {
        let base = intervals.row_entries(rows.start).start;
        for y in rows {
            let right_row = self.right.row(y).to_slice().expect("standard layout");
            let left_row = self.left.row(y).to_slice().expect("standard layout");
            for (x, &code) in left_row.iter().enumerate() {
                let range = intervals.entries(x, y);
                let pixel = &mut out[range.start - base..range.end - base];
                let inside = intervals.inside_right(x, y, right_row.len());
                pixel[..inside.start].fill(COST_ONE);
                pixel[inside.end..].fill(COST_ONE);
                if inside.is_empty() {
                    continue;
                }
                // Right pixels of candidates inside.end − 1 down to inside.start, ascending.
                let first_xr = x as i64 - intervals.d_min(x, y) as i64;
                let right = &right_row[(first_xr + 1 - inside.end as i64) as usize..(first_xr + 1 - inside.start as i64) as usize];
                for (c, &r) in pixel[inside].iter_mut().zip(right.iter().rev()) {
                    *c = (((code ^ r).count_ones() * self.scale_q16) >> 16) as u16;
                }
            }
        }
    }
}
