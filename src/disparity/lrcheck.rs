//! Left-right consistency, in two modes.
//!
//! - **fast** ([`left_right_check`]): the right image's disparity is read off the left volume
//!   along its diagonals: right pixel `xr` is matched by the left pixels `x = xr + d`, with
//!   aggregated cost `S(x, d)`; the best of those gives `d_right(xr)`. No second volume is
//!   computed (OpenCV's SGBM does the same).
//! - **accurate** ([`left_right_check_accurate`]): the right disparity is the winner of the
//!   right image's own volume, regularised along the right image's paths
//!   ([`right_volume`](super::right_volume), Pandora's `cross_checking_accurate`).

use crate::cost::Intervals;
use ndarray::Array2;
use ndarray::parallel::prelude::*;

/// Marks as invalid (NaN in `disparity`) every pixel whose integer disparity `d` disagrees by
/// more than `tolerance_px` with the right disparity at `x − d`, unless its own aggregated cost
/// is within `margin` of the cost that right disparity won with: the right view then does not
/// clearly prefer another match (low texture, where neighbouring pixels' winners scatter by a
/// pixel or two and their costs barely differ), and the pixel is kept. A margin of one 1-px
/// step penalty (SGM's P1) keeps those and still rejects occlusions and mismatches, which
/// another pixel claims with a clearly lower cost. Returns the number invalidated.
pub fn left_right_check(
    intervals: &Intervals,
    aggregated: &[u16],
    winner: &Array2<i32>,
    right_width: usize,
    tolerance_px: f32,
    margin: u16,
    disparity: &mut Array2<f32>,
) -> usize {
    let best_right = |y: usize| {
        dispatch!(
            best_right_avx2(intervals, aggregated, y, right_width),
            best_right_row(intervals, aggregated, y, right_width)
        )
    };
    reject_inconsistent(disparity, winner, right_width, best_right, |best_right, y, x, d, xr| {
        let (d_right, cost_right) = best_right[xr];
        let own = aggregated[intervals.entries(x, y)][(d - intervals.d_min(x, y)) as usize];
        ((d_right - d).abs() as f32) <= tolerance_px || own as u32 <= cost_right as u32 + margin as u32
    })
}

/// [`left_right_check`] against the right image's own regularised volume: `right_intervals` and
/// `right_aggregated` (laid out like them), whose winner-take-all is `right_winner`. A pixel
/// whose right disparity disagrees is kept when the right volume's cost of its own match is
/// within `margin` of the right winner's (the same rule as the fast check, judged on the right
/// view's sums). Returns the number invalidated.
#[allow(clippy::too_many_arguments)]
pub fn left_right_check_accurate(
    winner: &Array2<i32>,
    right_intervals: &Intervals,
    right_aggregated: &[u16],
    right_winner: &Array2<i32>,
    tolerance_px: f32,
    margin: u16,
    disparity: &mut Array2<f32>,
) -> usize {
    let right_width = right_intervals.width();
    reject_inconsistent(disparity, winner, right_width, |_| (), |_, y, _, d, xr| {
        let d_right = right_winner[(y, xr)];
        let costs = &right_aggregated[right_intervals.entries(xr, y)];
        let at = |d: i32| costs.get((d - right_intervals.d_min(xr, y)) as usize).copied();
        ((d_right - d).abs() as f32) <= tolerance_px
            || matches!((at(d), at(d_right)), (Some(own), Some(best)) if own as u32 <= best as u32 + margin as u32)
    })
}

/// What both checks share: every finite pixel whose match `x − d` (`d` its winning disparity)
/// falls outside the right image, or for which `consistent(row_state, y, x, d, xr)` is false,
/// becomes NaN. `row_state(y)` is computed once per row (the fast check's right-view minima).
/// Rows run in parallel. Returns the number invalidated.
fn reject_inconsistent<S>(
    disparity: &mut Array2<f32>,
    winner: &Array2<i32>,
    right_width: usize,
    row_state: impl Fn(usize) -> S + Sync,
    consistent: impl Fn(&S, usize, usize, i32, usize) -> bool + Sync,
) -> usize {
    disparity
        .axis_iter_mut(ndarray::Axis(0))
        .into_par_iter()
        .enumerate()
        .map(|(y, mut row)| {
            let state = row_state(y);
            let mut rejected = 0;
            for (x, value) in row.iter_mut().enumerate() {
                let d = winner[(y, x)];
                let xr = x as i64 - d as i64;
                let matched = (0..right_width as i64).contains(&xr) && consistent(&state, y, x, d, xr as usize);
                if !matched && value.is_finite() {
                    *value = f32::NAN;
                    rejected += 1;
                }
            }
            rejected
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn best_right_avx2(intervals: &Intervals, aggregated: &[u16], y: usize, right_width: usize) -> Vec<(i32, u16)> {
    best_right_row(intervals, aggregated, y, right_width)
}

/// For each right pixel of row `y`, the disparity of its lowest aggregated cost (the smallest
/// disparity among equals; 0 where no left pixel sees it below `u16::MAX`) and that cost. Each right pixel
/// keeps the minimum of `cost · 2^32 + (d − i32::MIN)`: the lowest cost, then the smallest
/// disparity, in one `min` without branches. Pixel `x`'s candidates walk the right row
/// backwards, so they are zipped with a reversed slice of these keys.
#[inline(always)]
fn best_right_row(intervals: &Intervals, aggregated: &[u16], y: usize, right_width: usize) -> Vec<(i32, u16)> {
    const NONE: i64 = (u16::MAX as i64) << 32;
    let mut best = vec![NONE; right_width];
    for x in 0..intervals.width() {
        let inside = intervals.inside_right(x, y, right_width);
        if inside.is_empty() {
            continue;
        }
        let d_min = intervals.d_min(x, y);
        let costs = &aggregated[intervals.entries(x, y)][inside.clone()];
        // Right pixels of candidates inside.end − 1 down to inside.start, ascending.
        let first_xr = x as i64 - d_min as i64;
        let right = (first_xr + 1 - inside.end as i64) as usize..(first_xr + 1 - inside.start as i64) as usize;
        let d_first = d_min as i64 + inside.start as i64 - i32::MIN as i64;
        for ((&s, d), b) in costs.iter().zip(d_first..).zip(best[right].iter_mut().rev()) {
            *b = (*b).min((s as i64) << 32 | d);
        }
    }
    best.iter()
        .map(|&b| if b >= NONE { (0, u16::MAX) } else { (((b & 0xffff_ffff) + i32::MIN as i64) as i32, (b >> 32) as u16) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::best_right_row;
    use crate::cost::Intervals;

    #[test]
    fn best_right_matches_a_direct_scan_with_ties_and_intervals_outside_the_image() {
        let mut state = 12345u64;
        let mut next = |m: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        let (w, h, right_width) = (40, 3, 33);
        let lo: Vec<i32> = (0..w * h).map(|_| next(50) as i32 - 10).collect();
        let hi: Vec<i32> = lo.iter().map(|&l| l + next(12) as i32).collect();
        let iv = Intervals::from_bounds(w, h, &lo, &hi).unwrap();
        // Few distinct values, so ties are frequent; some entries at u16::MAX.
        let aggregated: Vec<u16> = (0..iv.total()).map(|_| [3, 5, 8, u16::MAX][next(4) as usize]).collect();
        for y in 0..h {
            let mut expected = vec![(u16::MAX, 0i32); right_width];
            for x in 0..w {
                for (k, &s) in aggregated[iv.entries(x, y)].iter().enumerate() {
                    let d = iv.d_min(x, y) + k as i32;
                    let xr = x as i64 - d as i64;
                    if (0..right_width as i64).contains(&xr) && s < expected[xr as usize].0 {
                        expected[xr as usize] = (s, d);
                    }
                }
            }
            let expected: Vec<i32> = expected.iter().map(|e| e.1).collect();
            let got: Vec<i32> = best_right_row(&iv, &aggregated, y, right_width).iter().map(|b| b.0).collect();
            assert_eq!(got, expected, "row {y}");
        }
    }

    #[test]
    fn a_pixel_the_right_view_prefers_only_within_the_margin_is_kept() {
        use super::left_right_check;
        use ndarray::Array2;
        // One row, 4 pixels, disparities 0..=3, right image 4 px wide. Pixel 3 wins d = 3
        // (right pixel 0); pixel 0 wins d = 0 (right pixel 0) with a cost 10 higher: the right
        // view prefers pixel 3 (d = 3), 3 px away from pixel 0's disparity.
        let iv = Intervals::from_bounds(4, 1, &[0; 4], &[3; 4]).unwrap();
        let mut aggregated = vec![500u16; iv.total()];
        aggregated[iv.entries(0, 0).start] = 110; // pixel 0, d = 0
        aggregated[iv.entries(3, 0).start + 3] = 100; // pixel 3, d = 3
        let winner = Array2::from_shape_vec((1, 4), vec![0, 0, 0, 3]).unwrap();
        let run = |margin| {
            let mut marks = Array2::<f32>::zeros((1, 4));
            left_right_check(&iv, &aggregated, &winner, 4, 1.0, margin, &mut marks);
            marks[(0, 0)].is_finite()
        };
        assert!(!run(0), "without a margin the right view's preference rejects pixel 0");
        assert!(!run(9), "a margin below the cost difference still rejects it");
        assert!(run(10), "within the margin the pixel is kept");
    }
}
