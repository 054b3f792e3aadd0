//! Pixels whose matching costs carry no information: every candidate inside the right image
//! costs the same (a textureless patch, two constant images, a similarity returning constant
//! costs).
//!
//! The regulariser still gives such pixels a unique minimum: penalties carried along its paths
//! from the image borders (where out-of-image candidates cost the worst) make the aggregated
//! costs grow away from one disparity, so `1 − best / second best` says 1.0, a confident match
//! made of nothing. Their confidence is set to 0 instead: the disparity may still be a fair
//! guess propagated from textured neighbours, but nothing in the pixel's own costs supports it.

use crate::cost::Intervals;
use ndarray::Array2;
use rayon::prelude::*;

/// True where all candidates of the pixel that fall inside the right image (`right_width`
/// columns) have the same raw cost, or none does.
pub fn flat_costs(intervals: &Intervals, costs: &[u16], right_width: usize) -> Array2<bool> {
    let (w, h) = (intervals.width(), intervals.height());
    let rows: Vec<Vec<bool>> = (0..h)
        .into_par_iter()
        .map(|y| {
            (0..w)
                .map(|x| {
                    let pixel = &costs[intervals.entries(x, y)];
                    let inside = &pixel[intervals.inside_right(x, y, right_width)];
                    let (mut lo, mut hi) = (u16::MAX, u16::MIN);
                    for &c in inside {
                        lo = lo.min(c);
                        hi = hi.max(c);
                    }
                    lo >= hi
                })
                .collect()
        })
        .collect();
    Array2::from_shape_fn((h, w), |(y, x)| rows[y][x])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_costs_are_flat_and_any_difference_is_not() {
        // Two pixels, candidates 0..4 each; the right image is 10 columns wide.
        let intervals = Intervals::from_bounds(2, 1, &[0, 0], &[3, 3]).unwrap();
        let costs = [7, 7, 7, 7, 7, 3, 7, 7];
        let flat = flat_costs(&intervals, &costs, 10);
        assert_eq!(flat.as_slice().unwrap(), &[true, false]);
        // Pixel 0 sees only candidate 0 inside a 1-column right image: flat.
        assert!(flat_costs(&intervals, &[1, 2, 3, 4, 1, 2, 3, 4], 1)[(0, 0)]);
    }
}
