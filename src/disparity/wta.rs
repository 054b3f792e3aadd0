//! Winner-take-all over each pixel's interval.

use crate::cost::Intervals;
use ndarray::Array2;
use rayon::prelude::*;

/// Per-pixel result of the winner-take-all.
#[derive(Debug, Clone)]
pub struct Winner {
    /// Integer disparity of the lowest aggregated cost.
    pub disparity: Array2<i32>,
    /// The same refined to sub-pixel by a parabola through the minimum and its two neighbours
    /// (unchanged at an interval bound).
    pub subpixel: Array2<f32>,
    /// `1 − best / second best`, the second best taken outside the best ±1: 0 when ambiguous,
    /// towards 1 when the minimum is distinct.
    pub confidence: Array2<f32>,
}

/// Picks, for every pixel, the disparity with the lowest aggregated cost.
pub fn winner_take_all(intervals: &Intervals, aggregated: &[u16]) -> Winner {
    let (w, h) = (intervals.width(), intervals.height());
    let rows: Vec<Vec<(i32, f32, f32)>> =
        (0..h).into_par_iter().map(|y| dispatch!(pick_row_avx2(intervals, aggregated, y), pick_row(intervals, aggregated, y))).collect();
    let get = |f: fn(&(i32, f32, f32)) -> f32| Array2::from_shape_fn((h, w), |(y, x)| f(&rows[y][x]));
    Winner {
        disparity: Array2::from_shape_fn((h, w), |(y, x)| rows[y][x].0),
        subpixel: get(|r| r.1),
        confidence: get(|r| r.2),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn pick_row_avx2(intervals: &Intervals, aggregated: &[u16], y: usize) -> Vec<(i32, f32, f32)> {
    pick_row(intervals, aggregated, y)
}

#[inline(always)]
fn pick_row(intervals: &Intervals, aggregated: &[u16], y: usize) -> Vec<(i32, f32, f32)> {
    // A plain loop: an iterator adapter's `fold` would be a separate function, built without AVX2.
    let mut row = Vec::with_capacity(intervals.width());
    for x in 0..intervals.width() {
        row.push(pick(&aggregated[intervals.entries(x, y)], intervals.d_min(x, y)));
    }
    row
}

#[inline(always)]
fn pick(costs: &[u16], d_min: i32) -> (i32, f32, f32) {
    let (c0, best) = argmin(costs);
    let mut offset = 0.0;
    if best > 0 && best + 1 < costs.len() {
        let (cm, cp) = (costs[best - 1] as f32, costs[best + 1] as f32);
        let curvature = cm - 2.0 * c0 as f32 + cp;
        if curvature > 0.0 {
            offset = ((cm - cp) / (2.0 * curvature)).clamp(-0.5, 0.5);
        }
    }
    // The second best, outside best ± 1 (if anything is).
    let confidence = if best >= 2 || best + 2 < costs.len() {
        let second = lowest(&costs[..best.saturating_sub(1)]).min(lowest(costs.get(best + 2..).unwrap_or(&[])));
        if second > 0 { 1.0 - c0 as f32 / second as f32 } else { 0.0 }
    } else {
        0.0
    };
    let d = d_min + best as i32;
    (d, d as f32 + offset, confidence)
}

/// The lowest cost and the index of its first occurrence. Short intervals (all real ones) take
/// one vectorisable pass: the minimum of `cost · 2^16 + index` is the first lowest cost.
#[inline(always)]
fn argmin(costs: &[u16]) -> (u16, usize) {
    assert!(!costs.is_empty(), "empty interval");
    if costs.len() <= 1 << 16 {
        // Plain loops rather than `Iterator::min`: they stay inlined in the AVX2 build.
        let mut key = u32::MAX;
        for (&c, k) in costs.iter().zip(0u32..) {
            key = key.min((c as u32) << 16 | k);
        }
        ((key >> 16) as u16, (key & 0xffff) as usize)
    } else {
        let c0 = lowest(costs);
        (c0, costs.iter().position(|&c| c == c0).expect("the minimum is in the slice"))
    }
}

/// The lowest of `costs`, `u16::MAX` when empty.
#[inline(always)]
fn lowest(costs: &[u16]) -> u16 {
    let mut m = u16::MAX;
    for &c in costs {
        m = m.min(c);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::argmin;

    #[test]
    fn argmin_takes_the_first_of_equal_minima_for_short_and_long_intervals() {
        assert_eq!(argmin(&[5, 3, 7, 3, 9]), (3, 1));
        assert_eq!(argmin(&[2]), (2, 0));
        let mut long = vec![100u16; 70_000];
        long[66_000] = 4;
        long[69_999] = 4;
        assert_eq!(argmin(&long), (4, 66_000));
    }
}
