//! Clean-up filters on a disparity map (NaN = no value).

use ndarray::parallel::prelude::*;
use ndarray::{Array2, Axis};

/// 3 × 3 median over the valid neighbours of each valid pixel (invalid pixels stay invalid).
pub fn median3(disparity: &Array2<f32>) -> Array2<f32> {
    let (h, w) = disparity.dim();
    let mut out = Array2::zeros((h, w));
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(y, mut row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let centre = disparity[(y, x)];
            if !centre.is_finite() {
                *o = centre;
                continue;
            }
            let mut window = [0f32; 9];
            let mut n = 0;
            for yy in y.saturating_sub(1)..(y + 2).min(h) {
                for xx in x.saturating_sub(1)..(x + 2).min(w) {
                    let v = disparity[(yy, xx)];
                    if v.is_finite() {
                        window[n] = v;
                        n += 1;
                    }
                }
            }
            let values = &mut window[..n];
            values.sort_unstable_by(f32::total_cmp);
            *o = if n % 2 == 1 { values[n / 2] } else { 0.5 * (values[n / 2 - 1] + values[n / 2]) };
        }
    });
    out
}

/// Invalidates connected regions (4-connectivity, neighbours within `max_step_px`) of fewer
/// than `min_pixels` pixels: small isolated blobs are almost always mismatches.
/// Returns the number of pixels invalidated.
pub fn remove_small_regions(disparity: &mut Array2<f32>, min_pixels: usize, max_step_px: f32) -> usize {
    if min_pixels <= 1 {
        return 0;
    }
    let (h, w) = disparity.dim();
    let mut label = vec![u32::MAX; h * w];
    let mut stack = Vec::new();
    let mut region = Vec::new();
    let mut removed = 0;
    for start in 0..h * w {
        if label[start] != u32::MAX || !disparity[(start / w, start % w)].is_finite() {
            continue;
        }
        region.clear();
        stack.push(start);
        label[start] = start as u32;
        while let Some(p) = stack.pop() {
            region.push(p);
            let (y, x) = (p / w, p % w);
            let v = disparity[(y, x)];
            let mut visit = |q: usize| {
                let u = disparity[(q / w, q % w)];
                if label[q] == u32::MAX && u.is_finite() && (u - v).abs() <= max_step_px {
                    label[q] = start as u32;
                    stack.push(q);
                }
            };
            if x > 0 {
                visit(p - 1);
            }
            if x + 1 < w {
                visit(p + 1);
            }
            if y > 0 {
                visit(p - w);
            }
            if y + 1 < h {
                visit(p + w);
            }
        }
        if region.len() < min_pixels {
            for &p in &region {
                disparity[(p / w, p % w)] = f32::NAN;
            }
            removed += region.len();
        }
    }
    removed
}

/// Fills invalid pixels where `fillable` is true with the smaller (background) of the nearest
/// valid disparities to their left and right on the same row: occlusions belong to the farther
/// surface. Returns the number of pixels filled.
pub fn fill_background(disparity: &mut Array2<f32>, fillable: &Array2<bool>) -> usize {
    let (h, w) = disparity.dim();
    let mut filled = 0;
    for y in 0..h {
        let row: Vec<f32> = disparity.row(y).to_vec();
        let mut left_valid = vec![f32::NAN; w];
        let mut last = f32::NAN;
        for x in 0..w {
            if row[x].is_finite() {
                last = row[x];
            }
            left_valid[x] = last;
        }
        let mut next = f32::NAN;
        for x in (0..w).rev() {
            if row[x].is_finite() {
                next = row[x];
                continue;
            }
            if !fillable[(y, x)] {
                continue;
            }
            let value = match (left_valid[x].is_finite(), next.is_finite()) {
                (true, true) => left_valid[x].min(next),
                (true, false) => left_valid[x],
                (false, true) => next,
                (false, false) => continue,
            };
            disparity[(y, x)] = value;
            filled += 1;
        }
    }
    filled
}
