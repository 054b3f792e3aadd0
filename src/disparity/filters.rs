//! Clean-up filters on a disparity map (NaN = no value).

use ndarray::parallel::prelude::*;
use ndarray::{Array2, Axis};

/// 3 × 3 median over the valid neighbours of each valid pixel (invalid pixels stay invalid).
pub fn median3(disparity: &Array2<f32>) -> Array2<f32> {
    let (h, w) = disparity.dim();
    let mut out = Array2::zeros((h, w));
    let standard = disparity.as_standard_layout();
    let values = standard.as_slice().expect("standard layout");
    out.axis_iter_mut(Axis(0)).into_par_iter().enumerate().for_each(|(y, mut row)| {
        // Interior runs of LANES pixels whose 3 × 3 windows are all finite: the same network on
        // LANES pixels at once (vectorised), the exact same values as one pixel at a time.
        let mut done = vec![false; w];
        if y > 0 && y + 1 < h && w > LANES + 2 {
            let rows = [&values[(y - 1) * w..y * w], &values[y * w..(y + 1) * w], &values[(y + 1) * w..(y + 2) * w]];
            let row_out = row.as_slice_mut().expect("rows of a new array are contiguous");
            let mut x0 = 1;
            while x0 + LANES < w {
                if let Some(medians) = median9_lanes(&rows, x0) {
                    row_out[x0..x0 + LANES].copy_from_slice(&medians);
                    done[x0..x0 + LANES].fill(true);
                }
                x0 += LANES;
            }
        }
        for (x, o) in row.iter_mut().enumerate() {
            if done[x] {
                continue;
            }
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
            if n == 9 {
                *o = median9(window);
                continue;
            }
            let values = &mut window[..n];
            values.sort_unstable_by(f32::total_cmp);
            *o = if n % 2 == 1 { values[n / 2] } else { 0.5 * (values[n / 2 - 1] + values[n / 2]) };
        }
    });
    out
}

/// Pixels per call of [`median9_lanes`].
const LANES: usize = 16;

/// The key map of `f32::total_cmp` on the bits of a float; it is its own inverse.
#[inline(always)]
fn total_key(bits: i32) -> i32 {
    bits ^ (((bits >> 31) as u32) >> 1) as i32
}

/// [`median9`] of the 3 × 3 windows of pixels `x0 .. x0 + LANES` (`x0 ≥ 1`, `x0 + LANES < width`)
/// of the middle row of `rows`, or `None` when a window holds a non-finite value (those pixels
/// take the general path).
#[inline(always)]
fn median9_lanes(rows: &[&[f32]; 3], x0: usize) -> Option<[f32; LANES]> {
    let mut p = [[0i32; LANES]; 9];
    let mut finite = true;
    for (r, row) in rows.iter().enumerate() {
        for dx in 0..3 {
            let src = &row[x0 - 1 + dx..x0 - 1 + dx + LANES];
            for (key, v) in p[r * 3 + dx].iter_mut().zip(src) {
                let bits = v.to_bits();
                finite &= bits & 0x7f80_0000 != 0x7f80_0000;
                *key = total_key(bits as i32);
            }
        }
    }
    if !finite {
        return None;
    }
    for (a, b) in MEDIAN9_NETWORK {
        let [pa, pb] = p.get_disjoint_mut([a, b]).expect("distinct positions of the network");
        for (x, y) in pa.iter_mut().zip(pb.iter_mut()) {
            (*x, *y) = ((*x).min(*y), (*x).max(*y));
        }
    }
    Some(std::array::from_fn(|lane| f32::from_bits(total_key(p[4][lane]) as u32)))
}

/// Paeth's median-of-9 network (Devillard's `opt_med9`): the median ends in position 4.
const MEDIAN9_NETWORK: [(usize, usize); 19] = [
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
    (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
];

/// The median of 9 values in the order of [`f32::total_cmp`] (what the general path's sort
/// gives), by a fixed network of 19 compare-exchanges (Paeth; Devillard's `opt_med9`) on
/// integer keys of that order: no branches, no sort.
fn median9(values: [f32; 9]) -> f32 {
    let mut p = values.map(|v| total_key(v.to_bits() as i32));
    for (a, b) in MEDIAN9_NETWORK {
        let (lo, hi) = (p[a].min(p[b]), p[a].max(p[b]));
        (p[a], p[b]) = (lo, hi);
    }
    f32::from_bits(total_key(p[4]) as u32)
}

/// Invalidates connected regions (4-connectivity, neighbours within `max_step_px`) of fewer
/// than `min_pixels` pixels: small isolated blobs are almost always mismatches.
/// Returns the number of pixels invalidated.
pub fn remove_small_regions(disparity: &mut Array2<f32>, min_pixels: usize, max_step_px: f32) -> usize {
    if min_pixels <= 1 {
        return 0;
    }
    let (h, w) = disparity.dim();
    if !disparity.is_standard_layout() {
        *disparity = disparity.as_standard_layout().into_owned();
    }
    // Flat indices: one division per visited pixel (for its border tests), none per neighbour.
    let values = disparity.as_slice_mut().expect("standard layout, ensured above");
    let mut label = vec![u32::MAX; h * w];
    let mut stack = Vec::new();
    let mut region = Vec::new();
    let mut removed = 0;
    for start in 0..h * w {
        if label[start] != u32::MAX || !values[start].is_finite() {
            continue;
        }
        region.clear();
        stack.push(start);
        label[start] = start as u32;
        while let Some(p) = stack.pop() {
            region.push(p);
            let (y, x) = (p / w, p % w);
            let v = values[p];
            let mut visit = |q: usize| {
                let u = values[q];
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
                values[p] = f32::NAN;
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

#[cfg(test)]
mod tests {
    use super::{median3, median9};
    use ndarray::Array2;

    #[test]
    fn median3_gives_the_window_median_with_and_without_invalid_neighbours() {
        // Wide rows take the lane-parallel path where windows are whole; the NaNs send some
        // windows to the general path. Both must give the median of the finite values.
        let mut state = 7u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        let (h, w) = (9, 77);
        let d = Array2::from_shape_fn((h, w), |_| if next() % 23 == 0 { f32::NAN } else { (next() % 4000) as f32 / 16.0 - 50.0 });
        let m = median3(&d);
        for y in 0..h {
            for x in 0..w {
                if !d[(y, x)].is_finite() {
                    assert!(m[(y, x)].is_nan());
                    continue;
                }
                let mut v: Vec<f32> = (y.saturating_sub(1)..(y + 2).min(h))
                    .flat_map(|yy| (x.saturating_sub(1)..(x + 2).min(w)).map(move |xx| (yy, xx)))
                    .map(|p| d[p])
                    .filter(|v| v.is_finite())
                    .collect();
                v.sort_unstable_by(f32::total_cmp);
                let n = v.len();
                let expected = if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) };
                assert_eq!(m[(y, x)].to_bits(), expected.to_bits(), "({x}, {y})");
            }
        }
    }

    #[test]
    fn median9_is_the_middle_of_the_sorted_values() {
        let mut state = 99u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 40) as f32 / 1024.0 - 4000.0
        };
        for case in 0..2000 {
            let mut values: [f32; 9] = std::array::from_fn(|_| next());
            if case % 3 == 0 {
                values[4] = values[0]; // ties
                values[7] = -0.0;
                values[8] = 0.0;
            }
            let mut sorted = values;
            sorted.sort_unstable_by(f32::total_cmp);
            assert_eq!(median9(values).to_bits(), sorted[4].to_bits(), "{values:?}");
        }
    }
}
