//! Left-right consistency from the one aggregated volume.
//!
//! The right image's disparity is read off the left volume along its diagonals: right pixel
//! `xr` is matched by the left pixels `x = xr + d`, with aggregated cost `S(x, d)`; the best of
//! those gives `d_right(xr)`. No second volume is computed (OpenCV's SGBM does the same).

use crate::cost::Intervals;
use ndarray::Array2;
use ndarray::parallel::prelude::*;

/// Marks as invalid (NaN in `disparity`) every pixel whose integer disparity `d` disagrees by
/// more than `tolerance_px` with the right disparity at `x − d`. Returns the number invalidated.
pub fn left_right_check(
    intervals: &Intervals,
    aggregated: &[u16],
    winner: &Array2<i32>,
    right_width: usize,
    tolerance_px: f32,
    disparity: &mut Array2<f32>,
) -> usize {
    let w = intervals.width();
    disparity
        .axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(y, mut row)| {
            let mut best_right = vec![(u16::MAX, 0i32); right_width];
            for x in 0..w {
                let d0 = intervals.d_min(x, y);
                for (k, &s) in aggregated[intervals.entries(x, y)].iter().enumerate() {
                    let d = d0 + k as i32;
                    let xr = x as i64 - d as i64;
                    if (0..right_width as i64).contains(&xr) && s < best_right[xr as usize].0 {
                        best_right[xr as usize] = (s, d);
                    }
                }
            }
            let mut rejected = 0;
            for x in 0..w {
                let d = winner[(y, x)];
                let xr = x as i64 - d as i64;
                let consistent = (0..right_width as i64).contains(&xr)
                    && ((best_right[xr as usize].1 - d).abs() as f32) <= tolerance_px;
                if !consistent && row[x].is_finite() {
                    row[x] = f32::NAN;
                    rejected += 1;
                }
            }
            rejected
        })
        .sum()
}
