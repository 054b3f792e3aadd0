//! The multi-resolution scheme: image reduction by 2 and the propagation of per-pixel
//! disparity intervals from a coarse level to the next finer one (MicMac's Px1DilatAlti /
//! Px1DilatPlani).

use crate::cost::Intervals;
use crate::error::Result;
use crate::tiles::Region;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Taps of the reduction filter, centred between two pixels (binomial 1 3 3 1).
const TAPS: [f32; 4] = [1.0 / 8.0, 3.0 / 8.0, 3.0 / 8.0, 1.0 / 8.0];

/// Halves an image (size rounded up) with a binomial filter normalised over the valid pixels.
/// A coarse pixel is valid when valid fine pixels carry at least half of its filter weight.
pub fn reduce(image: &Array2<f32>, valid: &Array2<bool>) -> (Array2<f32>, Array2<bool>) {
    let h = image.nrows();
    reduce_rows(image.view(), valid.view(), 0, h, 0..h.div_ceil(2))
}

/// Input rows [`reduce_rows`] needs for coarse rows `rows` of a level `height` rows high.
pub fn reduce_source_rows(rows: &std::ops::Range<usize>, height: usize) -> std::ops::Range<usize> {
    (2 * rows.start).saturating_sub(1)..(2 * rows.end + 1).min(height)
}

/// Coarse rows `rows` of [`reduce`], from the fine rows `first_row ..` held in `image` and
/// `valid` (at least [`reduce_source_rows`] of them) of a level `height` rows high: the same
/// values as reducing the whole level, so a level can be reduced band by band.
pub fn reduce_rows(
    image: ArrayView2<f32>,
    valid: ArrayView2<bool>,
    first_row: usize,
    height: usize,
    rows: std::ops::Range<usize>,
) -> (Array2<f32>, Array2<bool>) {
    let w = image.ncols();
    let wc = w.div_ceil(2);
    let clamp = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
    // Horizontal pass over the fine rows held: value × weight and weight of valid samples.
    let held = image.nrows();
    let mut hv = Array2::<f32>::zeros((held, wc));
    let mut hw = Array2::<f32>::zeros((held, wc));
    for y in 0..held {
        for xc in 0..wc {
            let (mut sv, mut sw) = (0.0, 0.0);
            for (k, t) in TAPS.iter().enumerate() {
                let x = clamp(2 * xc as i64 - 1 + k as i64, w);
                if valid[(y, x)] {
                    sv += t * image[(y, x)];
                    sw += t;
                }
            }
            hv[(y, xc)] = sv;
            hw[(y, xc)] = sw;
        }
    }
    let (first, count) = (rows.start, rows.len());
    let mut out = Array2::<f32>::zeros((count, wc));
    let mut out_valid = Array2::from_elem((count, wc), false);
    for i in 0..count {
        let yc = first + i;
        for xc in 0..wc {
            let (mut sv, mut sw) = (0.0, 0.0);
            for (k, t) in TAPS.iter().enumerate() {
                let y = clamp(2 * yc as i64 - 1 + k as i64, height) - first_row;
                sv += t * hv[(y, xc)];
                sw += t * hw[(y, xc)];
            }
            out[(i, xc)] = if sw > 0.0 { sv / sw } else { 0.0 };
            out_valid[(i, xc)] = sw >= 0.5;
        }
    }
    (out, out_valid)
}

/// The disparity range of a level `level` steps coarser than full resolution (scale 2^-level).
pub fn level_range(d_min: i32, d_max: i32, level: u32) -> (i32, i32) {
    let s = 1i32 << level;
    (d_min.div_euclid(s), -(-d_max).div_euclid(s))
}

/// A coarse disparity that is not to be trusted (its match failed the step's left-right check):
/// the finer level searches the whole range around it ([`Propagation::uncertain_full_range`]).
/// It travels in the coarse disparity grid itself, so that every reader of that grid (the
/// workers of a distributed run included) sees it.
pub const UNCERTAIN_DISPARITY: i32 = i32::MIN;

/// How intervals are widened when moving to a finer level.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Propagation {
    /// ± disparity margin around the upsampled coarse disparity (MicMac's Px1DilatAlti).
    pub dilate_alti_px: i32,
    /// Radius of the min/max filter over neighbouring pixels (MicMac's Px1DilatPlani).
    pub dilate_plani_px: usize,
    /// Search the whole range around the coarser pixels whose match failed the coarser step's
    /// left-right check (an occlusion, or a surface that level could not match: a thin or tall
    /// building lost at low resolution), instead of trusting their disparity. The min/max
    /// filter then spreads the whole range over `dilate_plani_px` around them.
    pub uncertain_full_range: bool,
}

/// Intervals of a `width × height` level from a coarser level's disparity (`factor` = 1, 2, 4 …
/// times smaller): `factor·d_coarse ± dilate_alti`, then the min of the lower bounds and the max
/// of the upper bounds over a `(2r+1)²` neighbourhood, clipped to `range` (inclusive), then
/// widened to a multiple of [`LANES`] candidates where the range allows.
pub fn propagate(
    coarse: &Array2<i32>,
    width: usize,
    height: usize,
    propagation: Propagation,
    range: (i32, i32),
    factor: usize,
) -> Result<Intervals> {
    let region = Region::full(width, height);
    let (lo, hi) = propagated_bounds(&CoarseWindow::whole(coarse), width, height, propagation, range, factor, region);
    Intervals::from_bounds(width, height, &lo, &hi)
}

/// The part of a coarser level's disparity map that some finer pixels need.
#[derive(Debug, Clone, Copy)]
pub struct CoarseWindow<'a> {
    /// Disparities of the coarse pixels `x0 ..` × `y0 ..`.
    /// ([`UNCERTAIN_DISPARITY`] where the coarser step's left-right check failed).
    pub values: ArrayView2<'a, i32>,
    /// First coarse column held.
    pub x0: usize,
    /// First coarse row held.
    pub y0: usize,
    /// Width of the whole coarse level.
    pub width: usize,
    /// Height of the whole coarse level.
    pub height: usize,
}

impl<'a> CoarseWindow<'a> {
    /// A whole coarse level.
    pub fn whole(values: &'a Array2<i32>) -> Self {
        CoarseWindow { values: values.view(), x0: 0, y0: 0, width: values.ncols(), height: values.nrows() }
    }

    /// The coarse pixels [`propagated_bounds`] reads for `region` of a `width × height` level,
    /// from a `coarse_width × coarse_height` level `factor` times smaller.
    pub fn needed(
        region: Region,
        width: usize,
        height: usize,
        propagation: Propagation,
        factor: usize,
        coarse_width: usize,
        coarse_height: usize,
    ) -> Region {
        let around = region.grow(propagation.dilate_plani_px, width, height);
        Region {
            x0: (around.x0 / factor).min(coarse_width - 1),
            y0: (around.y0 / factor).min(coarse_height - 1),
            x1: ((around.x1 - 1) / factor).min(coarse_width - 1) + 1,
            y1: ((around.y1 - 1) / factor).min(coarse_height - 1) + 1,
        }
    }
}

/// The bounds [`propagate`] gives, for the pixels of `region` only (row-major over the region):
/// the same values as over the whole level, computed from the region grown by the filter radius
/// (`coarse` must hold at least [`CoarseWindow::needed`]).
pub fn propagated_bounds(
    coarse: &CoarseWindow,
    width: usize,
    height: usize,
    propagation: Propagation,
    range: (i32, i32),
    factor: usize,
    region: Region,
) -> (Vec<i32>, Vec<i32>) {
    let (hc, wc) = (coarse.height, coarse.width);
    let at = |x: usize, y: usize| ((y / factor).min(hc - 1) - coarse.y0, (x / factor).min(wc - 1) - coarse.x0);
    let centre = |x: usize, y: usize| factor as i32 * coarse.values[at(x, y)];
    let uncertain = |x: usize, y: usize| coarse.values[at(x, y)] == UNCERTAIN_DISPARITY;
    let alti = propagation.dilate_alti_px;
    let r = propagation.dilate_plani_px;
    let around = region.grow(r, width, height);
    let (aw, ah) = (around.width(), around.height());
    let mut lo = vec![0i32; aw * ah];
    let mut hi = vec![0i32; aw * ah];
    for y in 0..ah {
        for x in 0..aw {
            let (xl, yl) = (around.x0 + x, around.y0 + y);
            if uncertain(xl, yl) {
                (lo[y * aw + x], hi[y * aw + x]) = range;
                continue;
            }
            let c = centre(xl, yl);
            lo[y * aw + x] = c - alti;
            hi[y * aw + x] = c + alti;
        }
    }
    let lo = separable_filter(&lo, aw, ah, r, i32::min);
    let hi = separable_filter(&hi, aw, ah, r, i32::max);
    let mut out = (Vec::with_capacity(region.width() * region.height()), Vec::with_capacity(region.width() * region.height()));
    for y in region.y0..region.y1 {
        for x in region.x0..region.x1 {
            let p = (y - around.y0) * aw + (x - around.x0);
            let l = lo[p].clamp(range.0, range.1);
            let h = hi[p].clamp(range.0, range.1).max(l);
            let (l, h) = widen_to_lanes(l, h, range);
            out.0.push(l);
            out.1.push(h);
        }
    }
    out
}

/// Candidates per SIMD register of the regulariser (16 × u16 in 256 bits).
pub const LANES: i32 = 16;

/// Widens `lo ..= hi` symmetrically, within `range`, to a multiple of [`LANES`] candidates:
/// the regulariser's loops then run on full vector registers instead of a scalar tail, which
/// costs less than the extra candidates (and a wider search never hurts the estimate).
fn widen_to_lanes(lo: i32, hi: i32, range: (i32, i32)) -> (i32, i32) {
    let len = hi - lo + 1;
    let target = (len + LANES - 1) / LANES * LANES;
    let extra = target - len;
    let mut lo = lo - extra / 2;
    let mut hi = hi + (extra - extra / 2);
    if lo < range.0 {
        hi = (hi + range.0 - lo).min(range.1);
        lo = range.0;
    }
    if hi > range.1 {
        lo = (lo - (hi - range.1)).max(range.0);
        hi = range.1;
    }
    (lo, hi)
}

/// Min or max over a `(2r+1)²` window, as two 1-D passes, rows in parallel (`f` is `min` or
/// `max`: the order in which a window is reduced does not change the result).
fn separable_filter(v: &[i32], w: usize, h: usize, r: usize, f: fn(i32, i32) -> i32) -> Vec<i32> {
    if r == 0 || w == 0 {
        return v.to_vec();
    }
    let mut tmp = vec![0i32; w * h];
    tmp.par_chunks_mut(w).zip(v.par_chunks(w)).for_each(|(out, row)| {
        for (x, o) in out.iter_mut().enumerate() {
            *o = row[x.saturating_sub(r)..(x + r + 1).min(w)].iter().copied().reduce(f).expect("non-empty window");
        }
    });
    let mut out = vec![0i32; w * h];
    out.par_chunks_mut(w).enumerate().for_each(|(y, out)| {
        let (first, end) = (y.saturating_sub(r), (y + r + 1).min(h));
        out.copy_from_slice(&tmp[first * w..(first + 1) * w]);
        for yy in first + 1..end {
            for (o, &t) in out.iter_mut().zip(&tmp[yy * w..(yy + 1) * w]) {
                *o = f(*o, t);
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncertain_coarse_pixels_search_the_whole_range_around_them() {
        let mut coarse = Array2::from_elem((8, 8), 10i32);
        coarse[(3, 3)] = UNCERTAIN_DISPARITY;
        let propagation = Propagation {
            dilate_alti_px: 2,
            dilate_plani_px: 1,
            uncertain_full_range: true,
        };
        let window = CoarseWindow::whole(&coarse);
        let (w, h, range) = (16, 16, (0, 63));
        let (lo, hi) = propagated_bounds(&window, w, h, propagation, range, 2, Region::full(w, h));
        // Fine pixels (6..8, 6..8) lie in the uncertain coarse pixel, the filter spreads it by 1.
        for y in 0..h {
            for x in 0..w {
                let near = (5..=8).contains(&x) && (5..=8).contains(&y);
                let (l, u) = (lo[y * w + x], hi[y * w + x]);
                if near {
                    assert_eq!((l, u), range, "({x}, {y}) is next to the uncertain pixel");
                } else {
                    assert!(
                        l <= 18 && u >= 22 && u - l < 20,
                        "({x}, {y}): {l}..{u} around 2 × 10"
                    );
                }
            }
        }
        // Without uncertainty the same call gives the narrow interval everywhere.
        coarse[(3, 3)] = 10;
        let (lo, hi) = propagated_bounds(
            &CoarseWindow::whole(&coarse),
            w,
            h,
            propagation,
            range,
            2,
            Region::full(w, h),
        );
        assert!(lo.iter().zip(&hi).all(|(l, u)| u - l < 20));
    }
}
