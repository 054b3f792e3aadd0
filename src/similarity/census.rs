//! Census transform with Hamming distance.

use super::{LevelPair, PairCosts, Similarity};
use crate::cost::{Intervals, COST_ONE};
use crate::error::{Error, Result};
use ndarray::Array2;
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
        if width % 2 == 0 || height % 2 == 0 || width * height > 65 || width * height < 9 {
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

    fn transform(&self, image: &Array2<f32>) -> Array2<u64> {
        let (h, w) = image.dim();
        let (rx, ry) = ((self.width / 2) as i64, (self.height / 2) as i64);
        let clamp = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
        Array2::from_shape_fn((h, w), |(y, x)| {
            let centre = image[(y, x)];
            let mut code = 0u64;
            for dy in -ry..=ry {
                let yy = clamp(y as i64 + dy, h);
                for dx in -rx..=rx {
                    if dx == 0 && dy == 0 {
                        continue;
                    }
                    let xx = clamp(x as i64 + dx, w);
                    code = (code << 1) | u64::from(image[(yy, xx)] < centre);
                }
            }
            code
        })
    }
}

impl Similarity for Census {
    fn name(&self) -> String {
        format!("census {}x{}", self.width, self.height)
    }

    fn prepare<'a>(&'a self, pair: LevelPair<'a>) -> Result<Box<dyn PairCosts + 'a>> {
        let bits = self.bits();
        let cost_of_distance =
            (0..=bits).map(|n| ((n as f32 / bits as f32) * COST_ONE as f32).round() as u16).collect();
        Ok(Box::new(CensusCodes {
            left: self.transform(pair.left),
            right: self.transform(pair.right),
            cost_of_distance,
        }))
    }
}

struct CensusCodes {
    left: Array2<u64>,
    right: Array2<u64>,
    /// Integer cost of each Hamming distance.
    cost_of_distance: Vec<u16>,
}

impl PairCosts for CensusCodes {
    fn fill_rows(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) -> Result<()> {
        let base = intervals.row_entries(rows.start).start;
        let wr = self.right.ncols() as i64;
        for y in rows {
            let right_row = self.right.row(y);
            for x in 0..intervals.width() {
                let code = self.left[(y, x)];
                let range = intervals.entries(x, y);
                let d0 = intervals.d_min(x, y) as i64;
                for (k, c) in out[range.start - base..range.end - base].iter_mut().enumerate() {
                    let xr = x as i64 - d0 - k as i64;
                    *c = if (0..wr).contains(&xr) {
                        self.cost_of_distance[(code ^ right_row[xr as usize]).count_ones() as usize]
                    } else {
                        COST_ONE
                    };
                }
            }
        }
        Ok(())
    }
}
