//! The confidence products: per full-resolution pixel, Pandora's ambiguity and risks, a
//! disparity interval ([`crate::disparity::cost_curves`] defines them) and validity bit flags
//! saying why a pixel has no value or deserves doubt.
//!
//! They are computed where the cost volume exists: in each tile of the last step, from its raw
//! costs (the similarity's own, before regularisation, so every backend gets them), and
//! assembled from the tiles' cores into whole-level grids like the disparity, then delivered by
//! row bands with it. No cost volume is kept beyond its tile. The flags that only the filters
//! know (left-right check, small regions, filling) are added by `post`, band by band.
//!
//! Tiling: the measures of a pixel depend only on its raw costs over its interval, so with one
//! step (the whole range searched) they are the same bits with or without tiles; with several
//! steps they follow the intervals, which the coarser steps' tiling may shift at a few pixels,
//! as it does the disparity.

use crate::cost::{CostVolume, Intervals};
use crate::disparity::{CurveMeasures, Winner, cost_curves};
use crate::error::Result;
use crate::grid::{Grid, Storage};
use crate::tiles::Region;
use ndarray::{Array2, Zip, s};
use rayon::prelude::*;

/// The validity bits of `validity.tif` (uint16, several may be set). A pixel with a value in
/// `disparity.tif` and no bit but [`validity::INCOMPLETE_RANGE`] is an ordinary match.
pub mod validity {
    /// The left pixel is invalid: nodata, NaN, or outside the left mask.
    pub const INVALID_LEFT: u16 = 1 << 0;
    /// The match `x − d` falls outside the right image.
    pub const RIGHT_OUTSIDE: u16 = 1 << 1;
    /// The match falls on an invalid right pixel (nodata, NaN, right mask).
    pub const RIGHT_INVALID: u16 = 1 << 2;
    /// Some candidates of the pixel's interval fall outside the right image or on invalid right
    /// pixels (near the left border for positive disparities): fewer candidates were compared.
    pub const INCOMPLETE_RANGE: u16 = 1 << 3;
    /// Rejected by the left-right check.
    pub const LR_REJECTED: u16 = 1 << 4;
    /// Removed as part of a small connected region.
    pub const SMALL_REGION: u16 = 1 << 5;
    /// Filled (`--fill background`): the value is the background's, not a match.
    pub const FILLED: u16 = 1 << 6;
    /// Ambiguous: the confidence is 0 (the raw costs are all alike, or another candidate more
    /// than 1 px away ties the best aggregated cost, or the interval is too short to tell).
    pub const AMBIGUOUS: u16 = 1 << 7;
    /// The interval inherited from the coarser step cut the search: the winner is at a bound of
    /// its interval that is not a bound of the whole range, so the best match may lie beyond it.
    pub const COARSE_CLIPPED: u16 = 1 << 8;
    /// MicMac's regulariser put the pixel in its occlusion label (`--def-cor`).
    pub const OCCLUSION_LABEL: u16 = 1 << 9;
    /// No value in `disparity.tif` (whatever the cause among the bits above).
    pub const NO_VALUE: u16 = 1 << 10;

    /// Every bit, with its name, in order (for reports and documentation).
    pub const ALL: [(u16, &str); 11] = [
        (INVALID_LEFT, "invalid_left"),
        (RIGHT_OUTSIDE, "right_outside"),
        (RIGHT_INVALID, "right_invalid"),
        (INCOMPLETE_RANGE, "incomplete_range"),
        (LR_REJECTED, "lr_rejected"),
        (SMALL_REGION, "small_region"),
        (FILLED, "filled"),
        (AMBIGUOUS, "ambiguous"),
        (COARSE_CLIPPED, "coarse_clipped"),
        (OCCLUSION_LABEL, "occlusion_label"),
        (NO_VALUE, "no_value"),
    ];
}

/// The confidence products over a rectangle of pixels (a tile, a band of rows or the image).
/// The measures are NaN where the left pixel is invalid or has no candidate in the right image.
#[derive(Debug, Clone)]
pub struct Products {
    /// Pandora's ambiguity in (0, 1]: the mean share of candidates within η of the best raw
    /// cost (0: only the best fits; 1: all fit alike).
    pub ambiguity: Array2<f32>,
    /// Pandora's risk_min (px): candidates missing inside the η interval, averaged over η.
    pub risk_min: Array2<f32>,
    /// Pandora's risk_max (px): the width of the η interval, averaged over η
    /// (= `disparity_max − disparity_min`).
    pub risk_max: Array2<f32>,
    /// Lower bound of the disparity interval (px, full resolution): the lowest disparity whose
    /// raw cost is within η of the best, averaged over η.
    pub disparity_min: Array2<f32>,
    /// Upper bound of the disparity interval, likewise.
    pub disparity_max: Array2<f32>,
    /// Smallest disparity the last step searched (px, full resolution): the bound of the
    /// interval inherited from the coarser steps (the whole range's at a single step).
    pub search_min: Array2<f32>,
    /// Largest disparity the last step searched.
    pub search_max: Array2<f32>,
    /// [`validity`] bits.
    pub validity: Array2<u16>,
}

/// File names of the products in a run's output folder, in the order of [`Products::maps`].
pub const PRODUCT_FILES: [&str; 8] = [
    "ambiguity.tif",
    "risk_min.tif",
    "risk_max.tif",
    "disparity_min.tif",
    "disparity_max.tif",
    "search_min.tif",
    "search_max.tif",
    "validity.tif",
];

/// Number of float maps among the products (all but `validity.tif`).
pub const FLOAT_MAPS: usize = PRODUCT_FILES.len() - 1;

impl Products {
    /// The float maps, in the order of [`PRODUCT_FILES`] (validity comes last there).
    pub fn maps(&self) -> [&Array2<f32>; FLOAT_MAPS] {
        [
            &self.ambiguity,
            &self.risk_min,
            &self.risk_max,
            &self.disparity_min,
            &self.disparity_max,
            &self.search_min,
            &self.search_max,
        ]
    }

    fn maps_mut(&mut self) -> [&mut Array2<f32>; FLOAT_MAPS] {
        [
            &mut self.ambiguity,
            &mut self.risk_min,
            &mut self.risk_max,
            &mut self.disparity_min,
            &mut self.disparity_max,
            &mut self.search_min,
            &mut self.search_max,
        ]
    }

    /// Products of `dim` pixels with no value.
    pub fn empty(dim: (usize, usize)) -> Self {
        let nan = Array2::from_elem(dim, f32::NAN);
        Products {
            ambiguity: nan.clone(),
            risk_min: nan.clone(),
            risk_max: nan.clone(),
            disparity_min: nan.clone(),
            disparity_max: nan.clone(),
            search_min: nan.clone(),
            search_max: nan,
            validity: Array2::zeros(dim),
        }
    }

    /// The products of `region` (a copy).
    pub fn crop(&self, region: Region) -> Products {
        let part = s![region.y0..region.y1, region.x0..region.x1];
        let mut out = Products::empty((region.height(), region.width()));
        for (to, from) in out.maps_mut().into_iter().zip(self.maps()) {
            to.assign(&from.slice(part));
        }
        out.validity.assign(&self.validity.slice(part));
        out
    }

    /// The float maps, mutable, in the order of [`Products::maps`] (a distributed run's
    /// decoder fills them).
    pub(super) fn float_maps_mut(&mut self) -> Vec<&mut Array2<f32>> {
        self.maps_mut().into_iter().collect()
    }

    /// Copies `band` into rows `first_row ..`.
    pub fn assign_rows(&mut self, first_row: usize, band: &Products) {
        let rows = s![first_row..first_row + band.validity.nrows(), ..];
        for (to, from) in self.maps_mut().into_iter().zip(band.maps()) {
            to.slice_mut(rows).assign(from);
        }
        self.validity.slice_mut(rows).assign(&band.validity);
    }
}

/// Where a tile's right crop lies and what the whole search could reach, for the flags.
pub(super) struct TileFrame<'a> {
    /// Validity of the right crop.
    pub right_valid: &'a Array2<bool>,
    /// Validity of the left crop.
    pub left_valid: &'a Array2<bool>,
    /// First column of the right crop in the right image.
    pub right_x0: usize,
    /// Width of the right image.
    pub right_width: usize,
    /// The whole range in the crop's disparities, when the intervals came from a coarser step
    /// (so that a winner at an interval bound inside it was clipped).
    pub clip_range: Option<(i32, i32)>,
    /// Level disparities = crop disparities + shift.
    pub shift: i32,
}

/// The products of a tile from its raw-cost volume and winner (in the crop's disparities); the
/// interval bounds come out in the level's.
pub(super) fn tile_products(volume: &CostVolume, winner: &Winner, frame: &TileFrame) -> Products {
    let intervals = &volume.intervals;
    let (w, h) = (intervals.width(), intervals.height());
    let curves = cost_curves(intervals, &volume.costs, frame.right_valid, frame.shift);
    let bits: Vec<u16> = (0..h * w)
        .into_par_iter()
        .map(|p| pixel_bits(&curves[p], winner, frame, intervals, (p / w, p % w)))
        .collect();
    let mut products = Products::empty((h, w));
    for (p, (m, bits)) in curves.iter().zip(bits).enumerate() {
        let at = (p / w, p % w);
        products.validity[at] = bits;
        if frame.left_valid[at] {
            products.ambiguity[at] = m.ambiguity;
            products.risk_min[at] = m.risk_min;
            products.risk_max[at] = m.risk_max;
            products.disparity_min[at] = m.disparity_min;
            products.disparity_max[at] = m.disparity_max;
            let first = intervals.d_min(at.1, at.0) + frame.shift;
            products.search_min[at] = first as f32;
            products.search_max[at] = (first + intervals.len(at.1, at.0) as i32 - 1) as f32;
        }
    }
    products
}

/// The validity bits a tile knows of pixel `(y, x)`.
fn pixel_bits(
    m: &CurveMeasures,
    winner: &Winner,
    frame: &TileFrame,
    intervals: &Intervals,
    (y, x): (usize, usize),
) -> u16 {
    let mut bits = 0;
    if m.incomplete {
        bits |= validity::INCOMPLETE_RANGE;
    }
    let d = winner.disparity[(y, x)];
    let xr = x as i64 - d as i64;
    let xr_image = xr + frame.right_x0 as i64;
    if !(0..frame.right_width as i64).contains(&xr_image) {
        bits |= validity::RIGHT_OUTSIDE;
    } else if !frame.right_valid[(y, xr as usize)] {
        bits |= validity::RIGHT_INVALID;
    }
    if winner.confidence[(y, x)] == 0.0 {
        bits |= validity::AMBIGUOUS;
    }
    if let Some((lo, hi)) = frame.clip_range {
        let first = intervals.d_min(x, y);
        let last = first + intervals.len(x, y) as i32 - 1;
        if (d == first && first > lo) || (d == last && last < hi) {
            bits |= validity::COARSE_CLIPPED;
        }
    }
    bits
}

/// The products over a whole level, assembled from the tiles' cores.
pub(super) struct ProductGrids {
    maps: [Grid<'static, f32>; FLOAT_MAPS],
    validity: Grid<'static, u16>,
}

impl ProductGrids {
    pub(super) fn new(w: usize, h: usize, storage: &Storage) -> Result<Self> {
        let grid = || Grid::new(w, h, storage);
        Ok(ProductGrids {
            maps: [grid()?, grid()?, grid()?, grid()?, grid()?, grid()?, grid()?],
            validity: Grid::new(w, h, storage)?,
        })
    }

    /// Writes the part `inner` of `tile` (which covers a tile's outer rectangle) at `(x0, y0)`.
    pub(super) fn write(
        &mut self,
        x0: usize,
        y0: usize,
        tile: &Products,
        inner: Region,
    ) -> Result<()> {
        let part = s![inner.y0..inner.y1, inner.x0..inner.x1];
        for (grid, map) in self.maps.iter_mut().zip(tile.maps()) {
            grid.write(x0, y0, map.slice(part))?;
        }
        self.validity.write(x0, y0, tile.validity.slice(part))
    }

    /// The products of `region`.
    pub(super) fn read(&self, region: Region) -> Result<Products> {
        let [a, rmin, rmax, dmin, dmax, smin, smax] = &self.maps;
        let read = |g: &Grid<'static, f32>| g.read(region).map(|v| v.into_owned());
        Ok(Products {
            ambiguity: read(a)?,
            risk_min: read(rmin)?,
            risk_max: read(rmax)?,
            disparity_min: read(dmin)?,
            disparity_max: read(dmax)?,
            search_min: read(smin)?,
            search_max: read(smax)?,
            validity: self.validity.read(region)?.into_owned(),
        })
    }
}

/// Adds to `validity` the bits of the final filters, over one band: `valid` left pixels,
/// left-right `rejected` and occlusion-`masked` pixels, the disparity `before_regions` (after
/// the checks, before small regions were removed), `before_fill` and the `result`.
pub(super) struct FilterMaps<'a> {
    pub valid: ndarray::ArrayView2<'a, bool>,
    pub rejected: Option<ndarray::ArrayView2<'a, bool>>,
    pub masked: Option<ndarray::ArrayView2<'a, bool>>,
    pub before_regions: ndarray::ArrayView2<'a, f32>,
    pub before_fill: ndarray::ArrayView2<'a, f32>,
    pub result: ndarray::ArrayView2<'a, f32>,
}

pub(super) fn add_filter_bits(validity: &mut Array2<u16>, maps: &FilterMaps) {
    Zip::indexed(validity).for_each(|p, bits| {
        let valid = maps.valid[p];
        if !valid {
            *bits |= validity::INVALID_LEFT;
        }
        if valid && maps.rejected.is_some_and(|r| r[p]) {
            *bits |= validity::LR_REJECTED;
        }
        if maps.masked.is_some_and(|m| m[p]) {
            *bits |= validity::OCCLUSION_LABEL;
        }
        if maps.before_regions[p].is_finite() && !maps.before_fill[p].is_finite() {
            *bits |= validity::SMALL_REGION;
        }
        if !maps.before_fill[p].is_finite() && maps.result[p].is_finite() {
            *bits |= validity::FILLED;
        }
        if !maps.result[p].is_finite() {
            *bits |= validity::NO_VALUE;
        }
    });
}
