//! Accuracy of a disparity map against ground truth, the Middlebury way: the share of "bad"
//! pixels (error above a threshold, a missing prediction counting as bad), the end-point error
//! over predicted pixels, and the density, on all ground-truth pixels and on non-occluded ones.

use crate::error::{Error, Result};
use ndarray::Array2;
use serde::Serialize;

/// Error thresholds of the bad-pixel rates, in pixels.
pub const BAD_THRESHOLDS_PX: [f32; 4] = [0.5, 1.0, 2.0, 4.0];

/// Metrics over one set of pixels.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Number of evaluated pixels (valid ground truth in the set).
    pub pixels: usize,
    /// % of pixels with error > 0.5 px or no prediction.
    pub bad_0_5: f64,
    /// % with error > 1 px or no prediction.
    pub bad_1: f64,
    /// % with error > 2 px or no prediction.
    pub bad_2: f64,
    /// % with error > 4 px or no prediction.
    pub bad_4: f64,
    /// Mean absolute error over the predicted pixels (px).
    pub epe: f64,
    /// Root-mean-square error over the predicted pixels (px).
    pub rmse: f64,
    /// % of pixels with a prediction.
    pub density: f64,
}

/// Metrics on all ground-truth pixels and on the non-occluded ones.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Every pixel with valid ground truth.
    pub all: Metrics,
    /// Non-occluded pixels with valid ground truth.
    pub nonocc: Metrics,
    /// Where the non-occlusion mask came from ("given" or "computed from the ground truth").
    pub nonocc_source: String,
}

/// Evaluates `disparity` (NaN = no prediction) against `gt` (`gt_valid` marks known values).
/// Without `nonocc`, the non-occlusion mask is derived from the ground truth by [`nonocc_from_gt`].
pub fn evaluate(
    disparity: &Array2<f32>,
    gt: &Array2<f32>,
    gt_valid: &Array2<bool>,
    nonocc: Option<&Array2<bool>>,
) -> Result<Evaluation> {
    if disparity.dim() != gt.dim() {
        return Err(Error::invalid_input(format!(
            "disparity is {}×{} but the ground truth is {}×{}",
            disparity.ncols(),
            disparity.nrows(),
            gt.ncols(),
            gt.nrows()
        )));
    }
    let (mask, source) = match nonocc {
        Some(m) if m.dim() != gt.dim() => {
            return Err(Error::invalid_input(format!(
                "non-occlusion mask is {}×{} but the ground truth is {}×{}",
                m.ncols(),
                m.nrows(),
                gt.ncols(),
                gt.nrows()
            )));
        }
        Some(m) => (m.clone(), "given"),
        None => (nonocc_from_gt(gt, gt_valid, gt.ncols()), "computed from the ground truth"),
    };
    let all = metrics(disparity, gt, gt_valid);
    if all.pixels == 0 {
        return Err(Error::invalid_input(
            "the ground truth has no valid pixel (all NaN, infinite or nodata): nothing to evaluate against",
        ));
    }
    let both = ndarray::Zip::from(gt_valid).and(&mask).map_collect(|&a, &b| a && b);
    let nonocc = metrics(disparity, gt, &both);
    if nonocc.pixels == 0 {
        return Err(Error::invalid_input(format!(
            "the non-occlusion mask ({source}) keeps no pixel with ground truth: nothing to evaluate on; check the mask"
        )));
    }
    Ok(Evaluation { all, nonocc, nonocc_source: source.to_string() })
}

fn metrics(disparity: &Array2<f32>, gt: &Array2<f32>, set: &Array2<bool>) -> Metrics {
    let mut pixels = 0usize;
    let mut bad = [0usize; 4];
    let (mut predicted, mut abs_sum, mut sq_sum) = (0usize, 0f64, 0f64);
    for ((&d, &g), &inside) in disparity.iter().zip(gt).zip(set) {
        if !inside {
            continue;
        }
        pixels += 1;
        if !d.is_finite() {
            bad.iter_mut().for_each(|b| *b += 1);
            continue;
        }
        let err = (d - g).abs();
        predicted += 1;
        abs_sum += err as f64;
        sq_sum += (err as f64).powi(2);
        for (b, &t) in bad.iter_mut().zip(&BAD_THRESHOLDS_PX) {
            if err > t {
                *b += 1;
            }
        }
    }
    let pct = |n: usize| if pixels == 0 { f64::NAN } else { 100.0 * n as f64 / pixels as f64 };
    let mean = |s: f64| if predicted == 0 { f64::NAN } else { s / predicted as f64 };
    Metrics {
        pixels,
        bad_0_5: pct(bad[0]),
        bad_1: pct(bad[1]),
        bad_2: pct(bad[2]),
        bad_4: pct(bad[3]),
        epe: mean(abs_sum),
        rmse: mean(sq_sum).sqrt(),
        density: pct(predicted),
    }
}

/// Non-occluded pixels of the left image, by forward warping its ground truth (a z-buffer per
/// row): a pixel is occluded when it lands outside the right image (`x − d` not in
/// `[0, right_width)`), or when another pixel with a disparity larger by more than 1 px lands
/// on the same right pixel.
pub fn nonocc_from_gt(gt: &Array2<f32>, gt_valid: &Array2<bool>, right_width: usize) -> Array2<bool> {
    let (h, w) = gt.dim();
    let mut out = Array2::from_elem((h, w), false);
    let mut zbuf = vec![f32::NEG_INFINITY; right_width];
    for y in 0..h {
        zbuf.fill(f32::NEG_INFINITY);
        for x in 0..w {
            if !gt_valid[(y, x)] {
                continue;
            }
            let d = gt[(y, x)];
            let xr = x as f32 - d;
            for c in [xr.floor(), xr.ceil()] {
                if c >= 0.0 && (c as usize) < right_width {
                    let slot = &mut zbuf[c as usize];
                    *slot = slot.max(d);
                }
            }
        }
        for x in 0..w {
            if !gt_valid[(y, x)] {
                continue;
            }
            let d = gt[(y, x)];
            let xr = (x as f32 - d).round();
            out[(y, x)] = xr >= 0.0 && (xr as usize) < right_width && zbuf[xr as usize] <= d + 1.0;
        }
    }
    out
}

impl Evaluation {
    /// A plain-text table of both pixel sets.
    pub fn table(&self) -> String {
        let mut s = String::from("set        pixels  bad-0.5   bad-1   bad-2   bad-4     EPE    RMSE  density\n");
        for (name, m) in [("all", &self.all), ("nonocc", &self.nonocc)] {
            s += &format!(
                "{name:<8} {:>8} {:>8.2} {:>7.2} {:>7.2} {:>7.2} {:>7.3} {:>7.3} {:>7.2}\n",
                m.pixels, m.bad_0_5, m.bad_1, m.bad_2, m.bad_4, m.epe, m.rmse, m.density
            );
        }
        s
    }
}
