//! The right image's own cost volume, for the accurate left-right check.
//!
//! The fast check reads the right disparity off the left aggregated volume along its diagonals:
//! the right view's paths are then the left image's paths, and a right pixel is judged by sums
//! regularised around other pixels. The accurate check (Pandora's `cross_checking_accurate`)
//! regularises a right-referenced volume along the right image's own paths and takes its own
//! winner-take-all, at about twice the regularisation cost.
//!
//! No similarity is evaluated again: the raw cost is symmetric (it compares a left and a right
//! window), so right pixel `xr` at disparity `d` (left pixel `xr + d`) costs what the left volume
//! holds for left pixel `xr + d` at `d`, masks included. Which disparities a right pixel holds:
//! - where every left pixel searches the same interval, the same interval (entries whose left
//!   pixel is outside the image cost the worst, as the left volume's entries whose right pixel
//!   is outside do); the regulariser then takes its uniform path;
//! - otherwise (intervals narrowed around a coarser step), the smallest interval holding every
//!   disparity with which some left pixel of the row can land on it: any match a left pixel can
//!   make with `xr` is there, so a consistent match is never missed. Disparities of that
//!   interval that no left pixel searched cost the worst (nobody claims them). A right pixel that
//!   no left pixel reaches gets its row neighbour's interval at the worst cost everywhere, so
//!   paths cross it without a penalty.

use crate::cost::fill::split_rows;
use crate::cost::{COST_ONE, CostVolume, Intervals};
use crate::error::Result;
use rayon::prelude::*;

/// The intervals of the right pixels of a `right_width`-wide right image, given the left
/// pixels' (see the module documentation).
pub fn right_intervals(left: &Intervals, right_width: usize) -> Result<Intervals> {
    let h = left.height();
    if let Some((d_min, n)) = left.common() {
        return Intervals::uniform(right_width, h, d_min, d_min + n as i32 - 1);
    }
    let mut lo = vec![i32::MAX; right_width * h];
    let mut hi = vec![i32::MIN; right_width * h];
    lo.par_chunks_mut(right_width.max(1))
        .zip(hi.par_chunks_mut(right_width.max(1)))
        .enumerate()
        .for_each(|(y, (lo, hi))| {
            for x in 0..left.width() {
                let inside = left.inside_right(x, y, right_width);
                let first_xr = x as i64 - left.d_min(x, y) as i64;
                for k in inside {
                    let xr = (first_xr - k as i64) as usize;
                    let d = left.d_min(x, y) + k as i32;
                    lo[xr] = lo[xr].min(d);
                    hi[xr] = hi[xr].max(d);
                }
            }
            // Unreached pixels take a reached neighbour's interval (the previous one, or the next
            // for those before the first); a row nobody reaches takes the left row's first interval.
            let first = (0..right_width).find(|&xr| lo[xr] <= hi[xr]);
            let fallback = match first {
                Some(xr) => (lo[xr], hi[xr]),
                None => (
                    left.d_min(0, y),
                    left.d_min(0, y) + left.len(0, y) as i32 - 1,
                ),
            };
            let mut last = fallback;
            for xr in 0..right_width {
                if lo[xr] <= hi[xr] {
                    last = (lo[xr], hi[xr]);
                } else {
                    (lo[xr], hi[xr]) = last;
                }
            }
        });
    Intervals::from_bounds(right_width, h, &lo, &hi)
}

/// The right-referenced raw volume over `intervals` ([`right_intervals`]): entry `(xr, d)` is
/// the left volume's `(xr + d, d)`, the worst cost where the left volume has no such entry.
pub fn right_volume(left: &CostVolume, intervals: Intervals) -> CostVolume {
    let mut costs = crate::buffer::zeroed_u16(intervals.total());
    let liv = &left.intervals;
    let w = liv.width() as i64;
    split_rows(&mut costs, &intervals, 1)
        .into_par_iter()
        .for_each(|(rows, out)| {
            let y = rows.start;
            let base = intervals.row_entries(y).start;
            for xr in 0..intervals.width() {
                let range = intervals.entries(xr, y);
                let d_first = intervals.d_min(xr, y);
                for (k, c) in out[range.start - base..range.end - base]
                    .iter_mut()
                    .enumerate()
                {
                    let d = d_first + k as i32;
                    let x = xr as i64 + d as i64;
                    *c = if (0..w).contains(&x) {
                        let (x, d_min) = (x as usize, liv.d_min(x as usize, y));
                        let j = d - d_min;
                        if j >= 0 && (j as usize) < liv.len(x, y) {
                            left.costs[liv.entries(x, y).start + j as usize]
                        } else {
                            COST_ONE
                        }
                    } else {
                        COST_ONE
                    };
                }
            }
        });
    CostVolume { intervals, costs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_entries_are_the_left_entries_on_the_same_diagonal_and_cover_every_match() {
        let (w, h, right_width) = (30, 2, 26);
        let lo: Vec<i32> = (0..w * h).map(|p| ((p * 7) % 11) as i32 - 2).collect();
        let hi: Vec<i32> = lo
            .iter()
            .enumerate()
            .map(|(p, &l)| l + (p % 4) as i32)
            .collect();
        let left_iv = Intervals::from_bounds(w, h, &lo, &hi).unwrap();
        let left = CostVolume {
            costs: (0..left_iv.total()).map(|i| (i % 1000) as u16).collect(),
            intervals: left_iv,
        };
        let right = right_volume(
            &left,
            right_intervals(&left.intervals, right_width).unwrap(),
        );
        let riv = &right.intervals;
        for y in 0..h {
            for x in 0..w {
                for k in left.intervals.inside_right(x, y, right_width) {
                    let d = left.intervals.d_min(x, y) + k as i32;
                    let xr = (x as i64 - d as i64) as usize;
                    let j = d - riv.d_min(xr, y);
                    assert!(
                        j >= 0 && (j as usize) < riv.len(xr, y),
                        "({x}, {y}) d {d}: not in the right interval of {xr}"
                    );
                    let left_cost = left.costs[left.intervals.entries(x, y).start + k];
                    assert_eq!(
                        right.costs[riv.entries(xr, y).start + j as usize],
                        left_cost
                    );
                }
            }
        }
        // Every other entry (no left pixel searched it) is the worst cost.
        let claimed: usize = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| left.intervals.inside_right(x, y, right_width).len())
            .sum();
        let worst = right.costs.iter().filter(|&&c| c == COST_ONE).count();
        assert_eq!(worst, riv.total() - claimed);
    }
}
