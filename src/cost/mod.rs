//! The cost volume with per-pixel disparity intervals.
//!
//! Every pixel `p` of a level searches its own interval `[d_min(p), d_min(p) + len(p))`: the full
//! range at the coarsest pyramid level, a few pixels around the coarser estimate at finer levels
//! (as MicMac does). Costs of all pixels are stored back to back in one `Vec<u16>`, pixel-major
//! and row by row, so that a pixel's candidates are contiguous (the regulariser's inner loops run
//! over contiguous slices) and a row of the image is one contiguous range (rows are the unit of
//! parallel work).
//!
//! Costs are integers: a real cost `c` in [0, 1] (1 − similarity, as MicMac) is stored as
//! `round(c · COST_ONE)`.

pub(crate) mod fill;
mod intervals;

pub use fill::{fill_volume, mask_costs};
pub use intervals::Intervals;

/// The integer cost that stands for a real cost of 1.0 (the worst match).
pub const COST_ONE: u16 = 1024;

/// Converts a real cost in [0, 1] to the integer scale (clamped; NaN maps to the worst cost).
#[inline]
pub fn cost_from_unit(cost: f32) -> u16 {
    if cost.is_nan() {
        return COST_ONE;
    }
    (cost.clamp(0.0, 1.0) * COST_ONE as f32).round() as u16
}

/// Matching costs of one pyramid level, one entry per pixel and candidate disparity.
#[derive(Debug, Clone)]
pub struct CostVolume {
    /// Which disparities each pixel holds.
    pub intervals: Intervals,
    /// The costs, laid out as described in the module documentation.
    pub costs: Vec<u16>,
}
