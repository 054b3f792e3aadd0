//! Filling a cost volume from a similarity backend, in parallel over blocks of rows.

use super::{Intervals, COST_ONE};
use crate::error::Result;
use crate::similarity::PairCosts;
use ndarray::Array2;
use rayon::prelude::*;

/// Cost given to every candidate of a left pixel that is itself invalid: the same value for all
/// candidates, so the regulariser carries its neighbours' disparities through it.
const COST_LEFT_INVALID: u16 = COST_ONE / 2;

/// Splits `data` (laid out as `intervals`) into one mutable slice per block of `rows_per_block` rows.
pub(crate) fn split_rows<'a, T>(
    data: &'a mut [T],
    intervals: &Intervals,
    rows_per_block: usize,
) -> Vec<(std::ops::Range<usize>, &'a mut [T])> {
    let mut blocks = Vec::new();
    let mut rest = data;
    let mut y = 0;
    while y < intervals.height() {
        let y_end = (y + rows_per_block).min(intervals.height());
        let len = intervals.row_entries(y_end - 1).end - intervals.row_entries(y).start;
        let (head, tail) = rest.split_at_mut(len);
        blocks.push((y..y_end, head));
        rest = tail;
        y = y_end;
    }
    blocks
}

/// Computes every entry of `intervals` with `backend`, in parallel over blocks of rows.
pub fn fill_volume(backend: &dyn PairCosts, intervals: &Intervals) -> Result<Vec<u16>> {
    let mut costs = crate::buffer::zeroed_u16(intervals.total());
    let threads = rayon::current_num_threads().max(1);
    let rows_per_block = (intervals.height() / (threads * 8)).clamp(1, 64);
    split_rows(&mut costs, intervals, rows_per_block)
        .into_par_iter()
        .try_for_each(|(rows, out)| backend.fill_rows(rows, intervals, out))?;
    Ok(costs)
}

/// Applies the geometry and the masks, the same way for every backend: the worst cost where the
/// right pixel `x − d` is outside the right image or invalid, a constant cost for all candidates
/// of an invalid left pixel.
pub fn mask_costs(
    intervals: &Intervals,
    costs: &mut [u16],
    left_valid: &Array2<bool>,
    right_valid: &Array2<bool>,
) {
    split_rows(costs, intervals, 1).into_par_iter().for_each(|(rows, row_costs)| {
        let y = rows.start;
        let base = intervals.row_entries(y).start;
        let right_row = right_valid.row(y);
        let right_row_all_valid = right_row.iter().all(|&v| v);
        for x in 0..intervals.width() {
            let range = intervals.entries(x, y);
            let pixel = &mut row_costs[range.start - base..range.end - base];
            if !left_valid[(y, x)] {
                pixel.fill(COST_LEFT_INVALID);
                continue;
            }
            let inside = intervals.inside_right(x, y, right_row.len());
            pixel[..inside.start].fill(COST_ONE);
            pixel[inside.end..].fill(COST_ONE);
            if !right_row_all_valid {
                let first_xr = x as i64 - intervals.d_min(x, y) as i64;
                for (k, c) in pixel.iter_mut().enumerate().take(inside.end).skip(inside.start) {
                    if !right_row[(first_xr - k as i64) as usize] {
                        *c = COST_ONE;
                    }
                }
            }
        }
    });
}
