//! The census backend against a direct computation.

use crate::common::Rng;
use deepsim::cost::{fill_volume, Intervals, COST_ONE};
use deepsim::similarity::{Census, LevelPair, Similarity};
use ndarray::Array2;

/// Census bits of pixel `(x, y)` in window order, edges replicated.
fn bits(image: &Array2<f32>, x: usize, y: usize, (ww, wh): (usize, usize)) -> Vec<bool> {
    let (h, w) = image.dim();
    let centre = image[(y, x)];
    let mut out = Vec::new();
    for dy in 0..wh {
        for dx in 0..ww {
            if (dx, dy) == (ww / 2, wh / 2) {
                continue;
            }
            let yy = (y + dy).saturating_sub(wh / 2).min(h - 1);
            let xx = (x + dx).saturating_sub(ww / 2).min(w - 1);
            out.push(image[(yy, xx)] < centre);
        }
    }
    out
}

#[test]
fn census_costs_match_a_direct_hamming_distance_on_random_intervals() {
    let mut rng = Rng::new(5);
    let (w, h, window) = (37, 9, (7, 5));
    let left = Array2::from_shape_fn((h, w), |_| rng.unit());
    let right = Array2::from_shape_fn((h, w - 3), |_| rng.unit());
    let valid_l = Array2::from_elem(left.dim(), true);
    let valid_r = Array2::from_elem(right.dim(), true);
    // Intervals partly or wholly outside the right image on both sides.
    let lo: Vec<i32> = (0..w * h).map(|_| rng.range(-12, 30) as i32).collect();
    let hi: Vec<i32> = lo.iter().map(|&l| l + rng.range(0, 20) as i32).collect();
    let intervals = Intervals::from_bounds(w, h, &lo, &hi).unwrap();
    let census = Census::new(window.0, window.1).unwrap();
    let pair = LevelPair { left: &left, right: &right, left_valid: &valid_l, right_valid: &valid_r };
    let costs = fill_volume(census.prepare(pair).unwrap().as_ref(), &intervals).unwrap();
    let n_bits = (window.0 * window.1 - 1) as u64;
    let scale_q16 = ((COST_ONE as u64) << 16).div_ceil(n_bits);
    for y in 0..h {
        for x in 0..w {
            let code_l = bits(&left, x, y, window);
            for (k, e) in intervals.entries(x, y).enumerate() {
                let xr = x as i64 - (intervals.d_min(x, y) as i64 + k as i64);
                let expected = if (0..right.ncols() as i64).contains(&xr) {
                    let code_r = bits(&right, xr as usize, y, window);
                    let distance = code_l.iter().zip(&code_r).filter(|(a, b)| a != b).count() as u64;
                    ((distance * scale_q16) >> 16) as u16
                } else {
                    COST_ONE
                };
                assert_eq!(costs[e], expected, "pixel ({x}, {y}), candidate {k} (right pixel {xr})");
            }
        }
    }
}
