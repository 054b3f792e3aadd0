//! The matching pipeline: pyramid → per level (costs over per-pixel intervals → regularisation
//! → winner-take-all → intervals of the next level) → at full resolution, sub-pixel,
//! left-right check and filters.

use crate::cost::{fill_volume, mask_costs, CostVolume, Intervals};
use crate::disparity::{fill_background, left_right_check, median3, remove_small_regions, winner_take_all};
use crate::error::{Error, Result};
use crate::pyramid::{level_range, propagate, reduce, Propagation};
use crate::sgm::{aggregate, SgmParams};
use crate::similarity::{LevelPair, Similarity};
use ndarray::Array2;
use serde::Serialize;
use std::time::Instant;

/// A stereo pair ready for matching: grey values in [0, 1] and validity masks.
#[derive(Debug, Clone)]
pub struct Pair {
    /// Left image (reference).
    pub left: Array2<f32>,
    /// Right image.
    pub right: Array2<f32>,
    /// Valid left pixels.
    pub left_valid: Array2<bool>,
    /// Valid right pixels.
    pub right_valid: Array2<bool>,
}

/// What to do with pixels left without a disparity by the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fill {
    /// Leave them as no value (NaN).
    None,
    /// Fill with the background (smaller) of the nearest valid disparities on the row.
    Background,
}

/// The full configuration of a run, validated by [`MatchConfig::validate`].
#[derive(Debug, Clone, Serialize)]
pub struct MatchConfig {
    /// Smallest disparity searched, full resolution (x_right = x_left − d).
    pub disp_min: i32,
    /// Largest disparity searched, inclusive.
    pub disp_max: i32,
    /// Number of pyramid levels, 1 = full resolution only.
    pub levels: u32,
    /// Regulariser; `None` takes the winner of the raw costs.
    pub sgm: Option<SgmParams>,
    /// Interval propagation between levels.
    pub propagation: Propagation,
    /// Sub-pixel refinement of the final level.
    pub subpixel: bool,
    /// Left-right check tolerance in pixels; `None` disables the check.
    pub lr_check_px: Option<f32>,
    /// 3 × 3 median filter on the result.
    pub median: bool,
    /// Connected regions smaller than this are removed (0 or 1 disables).
    pub min_region_px: usize,
    /// Filling of invalidated pixels.
    pub fill: Fill,
}

impl MatchConfig {
    /// Checks the configuration against the pair it will run on.
    pub fn validate(&self, pair: &Pair) -> Result<()> {
        let (hl, wl) = pair.left.dim();
        let (hr, wr) = pair.right.dim();
        if hl == 0 || wl == 0 || hr == 0 || wr == 0 {
            return Err(Error::invalid_input(format!("empty image: left is {wl}×{hl}, right is {wr}×{hr}")));
        }
        if hl != hr {
            return Err(Error::invalid_input(format!(
                "the images have different heights (left {wl}×{hl}, right {wr}×{hr}): an epipolar pair \
                 needs the same rows in both images"
            )));
        }
        if pair.left_valid.dim() != pair.left.dim() || pair.right_valid.dim() != pair.right.dim() {
            return Err(Error::invalid_input(format!(
                "mask sizes ({}×{} left, {}×{} right) differ from the image sizes ({wl}×{hl}, {wr}×{hr})",
                pair.left_valid.ncols(),
                pair.left_valid.nrows(),
                pair.right_valid.ncols(),
                pair.right_valid.nrows()
            )));
        }
        if !pair.left_valid.iter().any(|&v| v) {
            return Err(Error::invalid_input("the left image has no valid pixel (mask, nodata or NaN everywhere)"));
        }
        if !pair.right_valid.iter().any(|&v| v) {
            return Err(Error::invalid_input("the right image has no valid pixel (mask, nodata or NaN everywhere)"));
        }
        if self.disp_max < self.disp_min {
            return Err(Error::invalid_parameter(format!(
                "disparity range {}..{} is empty: need disp-min ≤ disp-max",
                self.disp_min, self.disp_max
            )));
        }
        let span = self.disp_max as i64 - self.disp_min as i64 + 1;
        if span > wl as i64 || self.disp_min as i64 >= wl as i64 || self.disp_max as i64 <= -(wr as i64) {
            return Err(Error::invalid_parameter(format!(
                "disparity range {}..{} does not fit images {wl} (left) and {wr} (right) pixels wide: \
                 the range must be narrower than the image",
                self.disp_min, self.disp_max
            )));
        }
        let max_levels = max_levels(wl.min(wr), hl);
        if self.levels == 0 || self.levels > max_levels {
            return Err(Error::invalid_parameter(format!(
                "{} pyramid levels for a {wl}×{hl} image: choose 1 to {max_levels} (the coarsest level keeps \
                 at least 16 pixels per side)",
                self.levels
            )));
        }
        if let Some(sgm) = &self.sgm {
            sgm.validate()?;
        }
        if self.propagation.dilate_alti_px < 1 {
            return Err(Error::invalid_parameter(format!(
                "interval dilation {} px: must be at least 1",
                self.propagation.dilate_alti_px
            )));
        }
        if let Some(t) = self.lr_check_px
            && !(t.is_finite() && t >= 0.0) {
                return Err(Error::invalid_parameter(format!("left-right tolerance {t}: must be ≥ 0")));
            }
        Ok(())
    }
}

/// The largest number of pyramid levels for an image (coarsest side ≥ 16 px).
pub fn max_levels(width: usize, height: usize) -> u32 {
    let mut levels = 1;
    while levels < 8 && (width.min(height) >> levels) >= 16 {
        levels += 1;
    }
    levels
}

/// A sensible number of levels: coarsen while the coarse level keeps ≥ 64 px per side and
/// ≥ 8 candidate disparities, at most 5 levels.
pub fn auto_levels(width: usize, height: usize, disp_min: i32, disp_max: i32) -> u32 {
    let span = (disp_max - disp_min + 1) as usize;
    let mut levels = 1;
    while levels < 5 && (width.min(height) >> levels) >= 64 && (span >> levels) >= 8 {
        levels += 1;
    }
    levels
}

/// Receives progress events (the CLI shows a bar; the library stays silent).
pub trait Progress: Sync {
    /// A stage `stage` of level `level` (0 = full resolution) starts.
    fn stage(&self, level: u32, stage: &str);
}

/// Ignores progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _: u32, _: &str) {}
}

/// Seconds spent in each stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageTimes {
    /// Pyramid construction.
    pub pyramid: f64,
    /// Backend preparation (transforms, features).
    pub prepare: f64,
    /// Filling the cost volumes.
    pub cost: f64,
    /// Regularisation.
    pub regularize: f64,
    /// Winner-take-all and interval propagation.
    pub wta: f64,
    /// Left-right check and filters.
    pub post: f64,
    /// Everything.
    pub total: f64,
}

/// What happened at one level.
#[derive(Debug, Clone, Serialize)]
pub struct LevelReport {
    /// 0 = full resolution, k = 2^-k.
    pub level: u32,
    /// Size of the level.
    pub width: usize,
    /// Size of the level.
    pub height: usize,
    /// Backend name.
    pub similarity: String,
    /// Number of (pixel, disparity) entries of the cost volume.
    pub cost_volume_entries: usize,
    /// Mean candidates per pixel.
    pub mean_candidates: f64,
    /// Smallest and largest disparity searched at this level (level pixels).
    pub disparity_span: (i32, i32),
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct MatchOutput {
    /// Left disparity, full resolution, NaN = no value.
    pub disparity: Array2<f32>,
    /// Confidence in [0, 1] (0 where no value).
    pub confidence: Array2<f32>,
    /// Per level, coarsest first.
    pub levels: Vec<LevelReport>,
    /// Timings.
    pub times: StageTimes,
    /// Pixels rejected by the left-right check.
    pub lr_rejected: usize,
    /// Pixels removed as small regions.
    pub small_regions_removed: usize,
    /// Pixels filled.
    pub filled: usize,
}

/// Matches `pair` with `similarity` chosen per level (`similarity(level)`, 0 = full resolution).
pub fn run<'s>(
    pair: &Pair,
    config: &MatchConfig,
    similarity: &dyn Fn(u32) -> &'s dyn Similarity,
    progress: &dyn Progress,
) -> Result<MatchOutput> {
    config.validate(pair)?;
    let start = Instant::now();
    let mut times = StageTimes::default();

    progress.stage(config.levels - 1, "pyramid");
    let t = Instant::now();
    let mut pyramid = vec![pair.clone()];
    for _ in 1..config.levels {
        let last = pyramid.last().expect("non-empty");
        let (left, left_valid) = reduce(&last.left, &last.left_valid);
        let (right, right_valid) = reduce(&last.right, &last.right_valid);
        pyramid.push(Pair { left, right, left_valid, right_valid });
    }
    times.pyramid = t.elapsed().as_secs_f64();

    let mut reports = Vec::new();
    let mut coarse: Option<Array2<i32>> = None;
    for level in (0..config.levels).rev() {
        let images = &pyramid[level as usize];
        let (h, w) = images.left.dim();
        let range = level_range(config.disp_min, config.disp_max, level);
        let intervals = match &coarse {
            None => Intervals::uniform(w, h, range.0, range.1)?,
            Some(prev) => propagate(prev, w, h, config.propagation, range)?,
        };
        let backend = similarity(level);
        let level_pair = LevelPair {
            left: &images.left,
            right: &images.right,
            left_valid: &images.left_valid,
            right_valid: &images.right_valid,
        };

        progress.stage(level, "features");
        let t = Instant::now();
        let prepared = backend.prepare(level_pair)?;
        times.prepare += t.elapsed().as_secs_f64();

        progress.stage(level, "costs");
        let t = Instant::now();
        let mut costs = fill_volume(prepared.as_ref(), &intervals)?;
        drop(prepared);
        mask_costs(&intervals, &mut costs, &images.left_valid, &images.right_valid);
        let volume = CostVolume { intervals, costs };
        times.cost += t.elapsed().as_secs_f64();

        progress.stage(level, "regularisation");
        let t = Instant::now();
        let aggregated: Vec<u16> = match &config.sgm {
            Some(params) => aggregate(&volume, &images.left, params)?,
            None => volume.costs.clone(),
        };
        times.regularize += t.elapsed().as_secs_f64();

        progress.stage(level, "winner-take-all");
        let t = Instant::now();
        let winner = winner_take_all(&volume.intervals, &aggregated);
        times.wta += t.elapsed().as_secs_f64();

        let entries = volume.intervals.total();
        reports.push(LevelReport {
            level,
            width: w,
            height: h,
            similarity: backend.name(),
            cost_volume_entries: entries,
            mean_candidates: entries as f64 / (w * h) as f64,
            disparity_span: volume.intervals.span(),
        });

        if level > 0 {
            coarse = Some(winner.disparity);
            continue;
        }

        progress.stage(0, "filters");
        let t = Instant::now();
        let mut disparity = if config.subpixel { winner.subpixel.clone() } else { winner.disparity.mapv(|d| d as f32) };
        ndarray::Zip::from(&mut disparity).and(&images.left_valid).for_each(|d, &ok| {
            if !ok {
                *d = f32::NAN;
            }
        });
        let lr_rejected = match config.lr_check_px {
            Some(tol) => left_right_check(
                &volume.intervals,
                &aggregated,
                &winner.disparity,
                images.right.ncols(),
                tol,
                &mut disparity,
            ),
            None => 0,
        };
        let small_regions_removed = remove_small_regions(&mut disparity, config.min_region_px, 1.0);
        if config.median {
            disparity = median3(&disparity);
        }
        let filled = match config.fill {
            Fill::None => 0,
            Fill::Background => fill_background(&mut disparity, &images.left_valid),
        };
        let confidence = ndarray::Zip::from(&winner.confidence)
            .and(&disparity)
            .map_collect(|&c, d| if d.is_finite() { c } else { 0.0 });
        times.post = t.elapsed().as_secs_f64();
        times.total = start.elapsed().as_secs_f64();
        return Ok(MatchOutput {
            disparity,
            confidence,
            levels: reports,
            times,
            lr_rejected,
            small_regions_removed,
            filled,
        });
    }
    unreachable!("validate() guarantees at least one level")
}
