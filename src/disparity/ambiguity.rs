//! Pixels whose matching costs carry no information: every candidate inside the right image
//! costs the same (a textureless patch, two constant images, a similarity returning constant
//! costs).
//!
//! The regulariser still gives such pixels a unique minimum: penalties carried along its paths
//! from the image borders (where out-of-image candidates cost the worst) make the aggregated
//! costs grow away from one disparity, so `1 − best / second best` says 1.0, a confident match
//! made of nothing. Their confidence is set to 0 instead: the disparity may still be a fair
//! guess propagated from textured neighbours, but nothing in the pixel's own costs supports it.

//!
//! [`cost_curves`] measures the same thing by degrees, per pixel, from the raw costs: Pandora's
//! ambiguity and risks (Sarrazin et al., "Ambiguity concept in stereo matching pipeline",
//! ISPRS 2021) and the disparity interval they imply. They read the similarity's own costs,
//! whatever produced them (census, NCC, a learned network, a plugin), so every backend gets them.
//!
//! Definitions (η over `ETA_COUNT` values 0, 0.01, …, 0.69, Pandora's defaults; costs in units
//! of the worst cost, [`COST_ONE`] = 1; the candidates are those of the pixel's interval whose
//! right pixel is inside the right image and valid; `S(η)` is the set of candidates whose cost
//! is within η of the pixel's lowest):
//! - ambiguity = mean over η of |S(η)| / (number of candidates), in (0, 1]: near 0 when only the
//!   best candidate is good, 1 when all are alike;
//! - disparity_min / disparity_max = mean over η of the smallest / largest disparity of S(η);
//! - risk_max = mean over η of the width of S(η) = disparity_max − disparity_min (px);
//! - risk_min = mean over η of the candidates missing between those bounds,
//!   `1 + width − |S(η)|` (px): 0 when S(η) is one run of neighbours.
//!
//! Unlike Pandora, costs are not rescaled by the extremes of the whole cost volume (nor the
//! ambiguity by its percentiles): those depend on the image and, here, on the tile, and the
//! products must not change with tiling. The fixed cost scale of [`COST_ONE`] is used instead.
//! The sums run over η buckets, O(candidates + η values) per pixel, not their product.

use crate::cost::{COST_ONE, Intervals};
use ndarray::Array2;
use rayon::prelude::*;

/// True where all candidates of the pixel that fall inside the right image (`right_width`
/// columns) have the same raw cost, or none does.
pub fn flat_costs(intervals: &Intervals, costs: &[u16], right_width: usize) -> Array2<bool> {
    let (w, h) = (intervals.width(), intervals.height());
    let rows: Vec<Vec<bool>> = (0..h)
        .into_par_iter()
        .map(|y| dispatch!(flat_row_avx2(intervals, costs, right_width, y), flat_row(intervals, costs, right_width, y)))
        .collect();
    Array2::from_shape_fn((h, w), |(y, x)| rows[y][x])
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn flat_row_avx2(intervals: &Intervals, costs: &[u16], right_width: usize, y: usize) -> Vec<bool> {
    flat_row(intervals, costs, right_width, y)
}

/// [`flat_costs`] of row `y` (plain loops: they stay inlined in the AVX2 build).
#[inline(always)]
fn flat_row(intervals: &Intervals, costs: &[u16], right_width: usize, y: usize) -> Vec<bool> {
    let mut row = Vec::with_capacity(intervals.width());
    for x in 0..intervals.width() {
        let pixel = &costs[intervals.entries(x, y)];
        let inside = &pixel[intervals.inside_right(x, y, right_width)];
        let (mut lo, mut hi) = (u16::MAX, u16::MIN);
        for &c in inside {
            lo = lo.min(c);
            hi = hi.max(c);
        }
        row.push(lo >= hi);
    }
    row
}

/// Number of η values (0, 0.01, …, 0.69: Pandora's `eta_max` 0.7 and `eta_step` 0.01).
pub const ETA_COUNT: usize = 70;
/// η step, in units of the worst cost.
pub const ETA_STEP: f32 = 0.01;

/// Pandora's measures of one pixel's cost curve ([module docs](self)). NaN where the pixel has
/// no candidate inside the right image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveMeasures {
    /// Mean share of candidates within η of the lowest cost, in (0, 1].
    pub ambiguity: f32,
    /// Mean number of candidates missing inside the η interval (px).
    pub risk_min: f32,
    /// Mean width of the η interval (px).
    pub risk_max: f32,
    /// Mean lowest disparity of the η interval (disparities of the interval's pixel).
    pub disparity_min: f32,
    /// Mean highest disparity of the η interval.
    pub disparity_max: f32,
    /// Some candidates of the interval fall outside the right image or on invalid right pixels.
    pub incomplete: bool,
}

impl CurveMeasures {
    const NONE: CurveMeasures = CurveMeasures {
        ambiguity: f32::NAN,
        risk_min: f32::NAN,
        risk_max: f32::NAN,
        disparity_min: f32::NAN,
        disparity_max: f32::NAN,
        incomplete: true,
    };
}

/// [`CurveMeasures`] of every pixel of a volume (raw costs, as filled and masked) whose right
/// image, cropped as the volume sees it, has validity `right_valid`. Row-major, `w × h`. The
/// disparity bounds are given in the volume's disparities plus `disparity_offset` (added as an
/// integer, so that a tile's crop-shifted volume gives the whole level's values bit for bit).
pub fn cost_curves(
    intervals: &Intervals,
    costs: &[u16],
    right_valid: &Array2<bool>,
    disparity_offset: i32,
) -> Vec<CurveMeasures> {
    let (w, h) = (intervals.width(), intervals.height());
    let rows: Vec<Vec<CurveMeasures>> = (0..h)
        .into_par_iter()
        .map(|y| {
            let right_row = right_valid.row(y);
            let all_valid = right_row.iter().all(|&v| v);
            let mut buckets = Buckets::new();
            (0..w)
                .map(|x| {
                    let pixel = &costs[intervals.entries(x, y)];
                    let inside = intervals.inside_right(x, y, right_row.len());
                    let first_xr = x as i64 - intervals.d_min(x, y) as i64;
                    let valid = |k: usize| all_valid || right_row[(first_xr - k as i64) as usize];
                    buckets.measure(
                        pixel,
                        inside,
                        valid,
                        intervals.d_min(x, y) + disparity_offset,
                    )
                })
                .collect()
        })
        .collect();
    rows.into_iter().flatten().collect()
}

/// Per η bucket `k`: how many candidates first enter S(η) at η = k·[`ETA_STEP`], and the
/// lowest and highest candidate index among them.
struct Buckets {
    count: [u32; ETA_COUNT],
    lo: [u32; ETA_COUNT],
    hi: [u32; ETA_COUNT],
}

impl Buckets {
    fn new() -> Self {
        Buckets {
            count: [0; ETA_COUNT],
            lo: [u32::MAX; ETA_COUNT],
            hi: [0; ETA_COUNT],
        }
    }

    fn measure(
        &mut self,
        pixel: &[u16],
        inside: std::ops::Range<usize>,
        valid: impl Fn(usize) -> bool,
        d_min: i32,
    ) -> CurveMeasures {
        let mut lowest = u16::MAX;
        let mut candidates = 0u32;
        for k in inside.clone() {
            if valid(k) {
                lowest = lowest.min(pixel[k]);
                candidates += 1;
            }
        }
        if candidates == 0 {
            return CurveMeasures::NONE;
        }
        let incomplete = candidates as usize != pixel.len();
        // Candidate k is in S(η_j) for every j ≥ its bucket ceil(excess · 100 / COST_ONE).
        let scale = (1.0 / ETA_STEP).round() as u32;
        let mut last = 0;
        for k in inside {
            if !valid(k) {
                continue;
            }
            let excess = (pixel[k] - lowest) as u32;
            let bucket = (excess * scale).div_ceil(COST_ONE as u32) as usize;
            if bucket < ETA_COUNT {
                self.count[bucket] += 1;
                self.lo[bucket] = self.lo[bucket].min(k as u32);
                self.hi[bucket] = self.hi[bucket].max(k as u32);
                last = last.max(bucket);
            }
        }
        // S(η) changes only at the non-empty buckets: add each state once per η it holds for.
        // Bucket 0 holds the best candidate, so the state is never empty when counted.
        let (mut n, mut lo, mut hi) = (0u32, u32::MAX, 0u32);
        let (mut sum_n, mut sum_lo, mut sum_hi, mut sum_missing) = (0u64, 0u64, 0u64, 0u64);
        let mut since = 0;
        let mut add = |run: usize, n: u32, lo: u32, hi: u32| {
            let run = run as u64;
            sum_n += run * n as u64;
            sum_lo += run * lo as u64;
            sum_hi += run * hi as u64;
            sum_missing += run * (1 + hi - lo - n) as u64;
        };
        for j in 0..=last {
            if self.count[j] == 0 {
                continue;
            }
            if j > since {
                add(j - since, n, lo, hi);
            }
            n += self.count[j];
            lo = lo.min(self.lo[j]);
            hi = hi.max(self.hi[j]);
            (self.count[j], self.lo[j], self.hi[j]) = (0, u32::MAX, 0);
            since = j;
        }
        add(ETA_COUNT - since, n, lo, hi);
        let etas = ETA_COUNT as f64;
        let (mean_lo, mean_hi) = (sum_lo as f64 / etas, sum_hi as f64 / etas);
        CurveMeasures {
            ambiguity: (sum_n as f64 / (etas * candidates as f64)) as f32,
            risk_min: (sum_missing as f64 / etas) as f32,
            risk_max: (mean_hi - mean_lo) as f32,
            disparity_min: (d_min as f64 + mean_lo) as f32,
            disparity_max: (d_min as f64 + mean_hi) as f32,
            incomplete,
        }
    }
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

    /// Pandora's loops over η and candidates, written directly (costs in units of COST_ONE).
    fn direct(costs: &[u16], d_min: i32) -> (f32, f32, f32, f32, f32) {
        let c: Vec<f64> = costs.iter().map(|&c| c as f64 / COST_ONE as f64).collect();
        let m = c.iter().copied().fold(f64::INFINITY, f64::min);
        let (mut amb, mut rmin, mut rmax, mut lo_sum, mut hi_sum) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for j in 0..ETA_COUNT {
            let eta = j as f64 * 0.01;
            let inside: Vec<usize> = (0..c.len()).filter(|&k| c[k] <= m + eta + 1e-9).collect();
            let (lo, hi) = (inside[0] as f64, *inside.last().unwrap() as f64);
            amb += inside.len() as f64 / c.len() as f64;
            rmax += hi - lo;
            rmin += 1.0 + hi - lo - inside.len() as f64;
            lo_sum += lo;
            hi_sum += hi;
        }
        let n = ETA_COUNT as f64;
        (
            (amb / n) as f32,
            (rmin / n) as f32,
            (rmax / n) as f32,
            (d_min as f64 + lo_sum / n) as f32,
            (d_min as f64 + hi_sum / n) as f32,
        )
    }

    #[test]
    fn cost_curves_match_pandoras_definitions() {
        let mut state = 7u64;
        let mut next = |m: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % m
        };
        let (w, h) = (30, 4);
        let lo: Vec<i32> = (0..w * h).map(|_| next(8) as i32 - 3).collect();
        let hi: Vec<i32> = lo.iter().map(|&l| l + next(20) as i32).collect();
        let iv = Intervals::from_bounds(w, h, &lo, &hi).unwrap();
        let costs: Vec<u16> = (0..iv.total()).map(|_| 300 + next(500) as u16).collect();
        let right_valid = Array2::from_elem((h, w + 40), true);
        let measures = cost_curves(&iv, &costs, &right_valid, 0);
        for y in 0..h {
            for x in 0..w {
                let m = measures[y * w + x];
                let inside = iv.inside_right(x, y, w + 40);
                let pixel = &costs[iv.entries(x, y)];
                if inside.is_empty() {
                    assert!(m.ambiguity.is_nan());
                    continue;
                }
                // Only pixels whose candidates are all inside compare with the direct loops.
                if inside.len() != pixel.len() {
                    assert!(m.incomplete);
                    continue;
                }
                let (a, rmin, rmax, dlo, dhi) = direct(pixel, iv.d_min(x, y));
                let close = |u: f32, v: f32| (u - v).abs() < 1e-4;
                assert!(
                    close(m.ambiguity, a) && close(m.risk_min, rmin) && close(m.risk_max, rmax),
                    "({x}, {y}): {m:?} vs {a} {rmin} {rmax}"
                );
                assert!(
                    close(m.disparity_min, dlo) && close(m.disparity_max, dhi),
                    "({x}, {y}): {m:?} vs {dlo} {dhi}"
                );
                assert!(!m.incomplete && m.ambiguity > 0.0 && m.ambiguity <= 1.0);
            }
        }
        // A single sharp minimum: only it is ever within η, the ambiguity is 1 / candidates.
        // Disparities −3..=0 of pixel x = 0 reach right columns 0..=3, all inside.
        let iv = Intervals::from_bounds(1, 1, &[-3], &[0]).unwrap();
        let m = cost_curves(
            &iv,
            &[1000, 10, 1000, 1000],
            &Array2::from_elem((1, 8), true),
            5,
        )[0];
        assert_eq!(
            (m.ambiguity, m.risk_max, m.disparity_min, m.disparity_max),
            (0.25, 0.0, 3.0, 3.0)
        );
    }
}
