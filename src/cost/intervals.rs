//! Per-pixel disparity intervals and the offsets of each pixel's costs.

use crate::error::{Error, Result};
use std::ops::Range;

/// For each pixel of a `width × height` grid, the disparities `d_min .. d_min + len`.
#[derive(Debug, Clone, PartialEq)]
pub struct Intervals {
    width: usize,
    height: usize,
    d_min: Vec<i32>,
    len: Vec<u32>,
    /// `offset[p]` is where pixel `p`'s costs start; `offset[w·h]` is the total.
    offset: Vec<usize>,
    /// `(d_min, len)` when every pixel has this same interval.
    common: Option<(i32, usize)>,
    /// The longest interval and the most entries of any row, kept because the regulariser
    /// sizes its buffers with them per row (a scan of every pixel each time cost more than
    /// the regularisation itself).
    max_len: usize,
    max_row_entries: usize,
}

impl Intervals {
    /// Every pixel searches `d_min ..= d_max`.
    pub fn uniform(width: usize, height: usize, d_min: i32, d_max: i32) -> Result<Self> {
        if d_max < d_min {
            return Err(Error::invalid_parameter(format!(
                "empty disparity range: d_min {d_min} > d_max {d_max}"
            )));
        }
        let n = width * height;
        Ok(Self::from_parts(width, height, vec![d_min; n], vec![(d_max - d_min + 1) as u32; n]))
    }

    /// Pixel `p` searches `lo[p] ..= hi[p]` (row-major arrays of `width × height` values).
    pub fn from_bounds(width: usize, height: usize, lo: &[i32], hi: &[i32]) -> Result<Self> {
        let n = width * height;
        if lo.len() != n || hi.len() != n {
            return Err(Error::invalid_input(format!(
                "interval bounds hold {} and {} values for a {width}×{height} grid",
                lo.len(),
                hi.len()
            )));
        }
        if let Some(p) = (0..n).find(|&p| hi[p] < lo[p]) {
            return Err(Error::invalid_input(format!(
                "empty interval at pixel ({}, {}): {} > {}",
                p % width.max(1),
                p / width.max(1),
                lo[p],
                hi[p]
            )));
        }
        let len = lo.iter().zip(hi).map(|(l, h)| (h - l + 1) as u32).collect();
        Ok(Self::from_parts(width, height, lo.to_vec(), len))
    }

    fn from_parts(width: usize, height: usize, d_min: Vec<i32>, len: Vec<u32>) -> Self {
        let mut offset = Vec::with_capacity(len.len() + 1);
        let mut total = 0usize;
        offset.push(0);
        for &l in &len {
            total += l as usize;
            offset.push(total);
        }
        let common = match (d_min.first(), len.first()) {
            (Some(&d), Some(&l)) if d_min.iter().all(|&v| v == d) && len.iter().all(|&v| v == l) => Some((d, l as usize)),
            _ => None,
        };
        let max_len = len.iter().copied().max().unwrap_or(0) as usize;
        let max_row_entries =
            (0..height).map(|y| offset[(y + 1) * width] - offset[y * width]).max().unwrap_or(0);
        Intervals { width, height, d_min, len, offset, common, max_len, max_row_entries }
    }

    /// `(d_min, len)` when every pixel searches the same interval (then pixel `p`'s costs are
    /// at `p · len`), `None` otherwise or for an empty grid.
    pub fn common(&self) -> Option<(i32, usize)> {
        self.common
    }

    /// Grid width.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Grid height.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Total number of (pixel, disparity) entries.
    pub fn total(&self) -> usize {
        self.offset[self.offset.len() - 1]
    }

    /// Smallest disparity of pixel `(x, y)`.
    #[inline]
    pub fn d_min(&self, x: usize, y: usize) -> i32 {
        self.d_min[y * self.width + x]
    }

    /// Number of candidates of pixel `(x, y)`.
    #[inline]
    pub fn len(&self, x: usize, y: usize) -> usize {
        self.len[y * self.width + x] as usize
    }

    /// The smallest disparity of every pixel, row-major (`width × height` values).
    pub fn d_mins(&self) -> &[i32] {
        &self.d_min
    }

    /// The number of candidates of every pixel, row-major (`width × height` values).
    pub fn lens(&self) -> &[u32] {
        &self.len
    }

    /// The entries of pixel `(x, y)` in the cost vector.
    #[inline]
    pub fn entries(&self, x: usize, y: usize) -> Range<usize> {
        let p = y * self.width + x;
        self.offset[p]..self.offset[p + 1]
    }

    /// The candidates `k` of pixel `(x, y)` whose right pixel `x − d_min − k` lies in
    /// `[0, right_width)`, as a range of candidate indices (possibly empty).
    #[inline]
    pub fn inside_right(&self, x: usize, y: usize, right_width: usize) -> Range<usize> {
        let first_xr = x as i64 - self.d_min(x, y) as i64;
        let n = self.len(x, y) as i64;
        let lo = (first_xr - right_width as i64 + 1).clamp(0, n);
        let hi = (first_xr + 1).clamp(lo, n);
        lo as usize..hi as usize
    }

    /// The entries of row `y`.
    #[inline]
    pub fn row_entries(&self, y: usize) -> Range<usize> {
        self.offset[y * self.width]..self.offset[(y + 1) * self.width]
    }

    /// The largest number of entries in any row.
    pub fn max_row_entries(&self) -> usize {
        self.max_row_entries
    }

    /// The longest interval.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The smallest and largest disparity searched by any pixel.
    pub fn span(&self) -> (i32, i32) {
        let lo = self.d_min.iter().copied().min().unwrap_or(0);
        let hi = self.d_min.iter().zip(&self.len).map(|(d, l)| d + *l as i32 - 1).max().unwrap_or(0);
        (lo, hi)
    }
}
