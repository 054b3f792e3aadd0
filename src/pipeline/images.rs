//! The images a run matches: a pair held in memory, and the pyramid levels as grids (in memory
//! or in scratch files), each level reduced from the finer one band by band so that a level
//! never has to be held whole.

use crate::error::Result;
use crate::grid::{Grid, Storage};
use crate::pyramid::{reduce_rows, reduce_source_rows};
use crate::tiles::Region;
use ndarray::Array2;

/// A stereo pair ready for matching: grey values in [0, 1] and validity masks.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Left image (reference).
    pub left: Array2<f32>,
    /// Right image.
    pub right: Array2<f32>,
    /// Valid left pixels.
    pub left_valid: Array2<bool>,
    /// Valid right pixels.
    pub right_valid: Array2<bool>,
}

/// The images of a pyramid level as grids (in memory or in scratch files).
#[derive(Debug)]
pub struct Images<'a> {
    /// Left image, grey values in [0, 1].
    pub left: Grid<'a, f32>,
    /// Right image.
    pub right: Grid<'a, f32>,
    /// Valid left pixels.
    pub left_valid: Grid<'a, bool>,
    /// Valid right pixels.
    pub right_valid: Grid<'a, bool>,
}

impl<'a> Images<'a> {
    /// Grids reading `pair` in place.
    pub fn borrowed(pair: &'a Pair) -> Self {
        Images {
            left: Grid::borrowed(&pair.left),
            right: Grid::borrowed(&pair.right),
            left_valid: Grid::borrowed(&pair.left_valid),
            right_valid: Grid::borrowed(&pair.right_valid),
        }
    }

    /// The next coarser level, reduced band by band (`band_rows` coarse rows at a time).
    pub(super) fn reduce(&self, storage: &Storage, band_rows: usize) -> Result<Images<'static>> {
        let (left, left_valid) = reduce_grid(&self.left, &self.left_valid, storage, band_rows)?;
        let (right, right_valid) = reduce_grid(&self.right, &self.right_valid, storage, band_rows)?;
        Ok(Images { left, right, left_valid, right_valid })
    }
}

/// [`reduce`] of a grid and its validity, `band_rows` coarse rows at a time.
fn reduce_grid(
    image: &Grid<f32>,
    valid: &Grid<bool>,
    storage: &Storage,
    band_rows: usize,
) -> Result<(Grid<'static, f32>, Grid<'static, bool>)> {
    let (w, h) = (image.width(), image.height());
    let (wc, hc) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Grid::new(wc, hc, storage)?;
    let mut out_valid = Grid::new(wc, hc, storage)?;
    for first in (0..hc).step_by(band_rows.max(1)) {
        let rows = first..(first + band_rows).min(hc);
        let source = reduce_source_rows(&rows, h);
        let region = Region { x0: 0, y0: source.start, x1: w, y1: source.end };
        let (values, ok) = reduce_rows(image.read(region)?.view(), valid.read(region)?.view(), source.start, h, rows);
        out.write(0, first, values.view())?;
        out_valid.write(0, first, ok.view())?;
    }
    Ok((out, out_valid))
}
