//! The matching pipeline: pyramid → per level (costs over per-pixel intervals → regularisation
//! → winner-take-all → intervals of the next level) → at full resolution, sub-pixel,
//! left-right check and filters.

use crate::cost::{fill_volume, mask_costs, CostVolume, Intervals};
use crate::disparity::{fill_background, left_right_check, median3, remove_small_regions, winner_take_all, Winner};
use crate::error::{Error, Result};
use crate::pyramid::{level_range, propagated_bounds, reduce, Propagation};
use crate::sgm::lines::{aggregate_lines, LineParams};
use crate::sgm::{aggregate, SgmParams};
use crate::similarity::{LevelPair, Similarity};
use crate::tiles::{tiles, Region, Tile, TileParams};
use ndarray::{s, Array2};
use serde::Serialize;
use std::borrow::Cow;
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

/// How a step regularises its costs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Regularizer {
    /// None: the winner of the raw costs.
    None,
    /// Semi-global matching over 4, 8 or 16 directions ([`crate::sgm::aggregate`]).
    Sgm(SgmParams),
    /// MicMac's dynamic programming over `NbDir` line orientations, with its optional
    /// occlusion label ([`crate::sgm::lines::aggregate_lines`]).
    Micmac(LineParams),
}

impl Regularizer {
    fn validate(&self) -> Result<()> {
        match self {
            Regularizer::None => Ok(()),
            Regularizer::Sgm(p) => p.validate(),
            Regularizer::Micmac(p) => p.validate(),
        }
    }
}

/// One matching step: a pyramid level, its similarity and regulariser. Steps run coarsest
/// first; each one searches around the previous step's disparity (the first one searches the
/// whole range).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Step {
    /// Pyramid level: the images are reduced by 2^level (0 = full resolution).
    pub level: u32,
    /// Index of the step's backend in the list given to [`run`].
    pub similarity: usize,
    /// The regulariser.
    pub regularizer: Regularizer,
    /// How the previous step's disparity becomes this step's intervals (unused by the first).
    pub propagation: Propagation,
}

/// The usual plan: one step per level from `levels − 1` down to 0, all alike except for the
/// backend, chosen per level by `similarity(level)`.
pub fn pyramid_steps(
    levels: u32,
    regularizer: Regularizer,
    propagation: Propagation,
    similarity: impl Fn(u32) -> usize,
) -> Vec<Step> {
    (0..levels).rev().map(|level| Step { level, similarity: similarity(level), regularizer, propagation }).collect()
}

/// The full configuration of a run, validated by [`MatchConfig::validate`].
#[derive(Debug, Clone, Serialize)]
pub struct MatchConfig {
    /// Smallest disparity searched, full resolution (x_right = x_left − d).
    pub disp_min: i32,
    /// Largest disparity searched, inclusive.
    pub disp_max: i32,
    /// The steps, coarsest first; the last one is at full resolution.
    pub steps: Vec<Step>,
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
    /// Keep every step's result in [`MatchOutput::steps`] (MicMac writes one file per step).
    pub keep_steps: bool,
    /// Match each step in overlapping tiles: the cost volume then holds one tile at a time.
    pub tiles: Option<TileParams>,
}

impl MatchConfig {
    /// Number of pyramid levels the steps use.
    pub fn levels(&self) -> u32 {
        self.steps.iter().map(|s| s.level + 1).max().unwrap_or(0)
    }

    /// Checks the configuration against the pair it will run on and the number of backends.
    pub fn validate(&self, pair: &Pair, backends: usize) -> Result<()> {
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
        if self.steps.is_empty() || self.levels() > max_levels {
            return Err(Error::invalid_parameter(format!(
                "{} pyramid levels for a {wl}×{hl} image: choose 1 to {max_levels} (the coarsest level keeps \
                 at least 16 pixels per side)",
                self.levels()
            )));
        }
        for (i, pair) in self.steps.windows(2).enumerate() {
            if pair[1].level > pair[0].level {
                return Err(Error::invalid_parameter(format!(
                    "step {} (reduction {}) follows a finer step (reduction {}): steps go from coarse to fine",
                    i + 2,
                    1u32 << pair[1].level,
                    1u32 << pair[0].level
                )));
            }
        }
        let last = self.steps.last().expect("checked non-empty");
        if last.level != 0 {
            return Err(Error::invalid_parameter(format!(
                "the last step works at reduction {}: the last step must be at full resolution (1)",
                1u32 << last.level
            )));
        }
        for (i, step) in self.steps.iter().enumerate() {
            if step.similarity >= backends {
                return Err(Error::invalid_parameter(format!(
                    "step {} uses similarity #{} but only {backends} are given",
                    i + 1,
                    step.similarity
                )));
            }
            step.regularizer.validate()?;
            if i > 0 && step.propagation.dilate_alti_px < 1 {
                return Err(Error::invalid_parameter(format!(
                    "step {}: interval dilation {} px: must be at least 1",
                    i + 1,
                    step.propagation.dilate_alti_px
                )));
            }
        }
        if let Some(t) = self.tiles
            && t.size_px < 16 {
                return Err(Error::invalid_parameter(format!("tile size {} px: use at least 16", t.size_px)));
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

/// What happened at one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
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
    /// Pixels that ended in the occlusion label (MicMac's regulariser with a mask label).
    pub masked_pixels: usize,
    /// Tiles the step was matched in.
    pub tiles: usize,
}

/// The result of one step, at the step's resolution (kept with [`MatchConfig::keep_steps`]).
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// Pyramid level of the step.
    pub level: u32,
    /// Integer disparity (level pixels) of the winner, every pixel.
    pub disparity: Array2<i32>,
    /// Confidence in [0, 1] of the winner.
    pub confidence: Array2<f32>,
    /// Pixels that ended in the occlusion label, when the regulariser has one.
    pub masked: Option<Array2<bool>>,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct MatchOutput {
    /// Left disparity, full resolution, NaN = no value.
    pub disparity: Array2<f32>,
    /// Confidence in [0, 1] (0 where no value).
    pub confidence: Array2<f32>,
    /// Per step, coarsest first.
    pub reports: Vec<StepReport>,
    /// Per step when [`MatchConfig::keep_steps`] is set, else empty.
    pub steps: Vec<StepOutput>,
    /// Timings.
    pub times: StageTimes,
    /// Pixels rejected by the left-right check.
    pub lr_rejected: usize,
    /// Pixels removed as small regions.
    pub small_regions_removed: usize,
    /// Pixels filled.
    pub filled: usize,
}

/// Matches `pair` through the steps of `config`; step `s` uses `backends[s.similarity]`.
pub fn run(
    pair: &Pair,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    progress: &dyn Progress,
) -> Result<MatchOutput> {
    config.validate(pair, backends.len())?;
    let start = Instant::now();
    let mut times = StageTimes::default();

    let levels = config.levels();
    progress.stage(levels - 1, "pyramid");
    let t = Instant::now();
    // Level 0 is `pair` itself (never copied: it is the largest); reduced[k] is level k + 1.
    let mut reduced: Vec<Pair> = Vec::new();
    for _ in 1..levels {
        let last = reduced.last().unwrap_or(pair);
        let (left, left_valid) = reduce(&last.left, &last.left_valid);
        let (right, right_valid) = reduce(&last.right, &last.right_valid);
        reduced.push(Pair { left, right, left_valid, right_valid });
    }
    let pyramid = |level: u32| if level == 0 { pair } else { &reduced[level as usize - 1] };
    times.pyramid = t.elapsed().as_secs_f64();

    let mut reports = Vec::new();
    let mut kept = Vec::new();
    // The previous step's disparity and level.
    let mut previous: Option<(Array2<i32>, u32)> = None;
    let last_step = config.steps.len() - 1;
    for (index, step) in config.steps.iter().enumerate() {
        let level = step.level;
        let images = pyramid(level);
        let (h, w) = images.left.dim();
        let range = level_range(config.disp_min, config.disp_max, level);
        let search = match &previous {
            None => Search::Range(range),
            Some((prev, prev_level)) => Search::Around {
                coarse: prev,
                factor: 1 << (prev_level - level),
                propagation: step.propagation,
                range,
            },
        };
        let backend = backends[step.similarity];
        let lr_check = if index == last_step { config.lr_check_px } else { None };
        let tiles = tiles(w, h, config.tiles);
        let mut result = StepResult::new(h, w, matches!(step.regularizer, Regularizer::Micmac(LineParams { mask: Some(_), .. })));
        for (k, tile) in tiles.iter().enumerate() {
            if tiles.len() > 1 {
                progress.stage(level, &format!("tile {}/{}", k + 1, tiles.len()));
            }
            let matched = match_tile(images, tile.outer, &search, backend, &step.regularizer, lr_check, progress, level, &mut times)?;
            result.paste(&matched, tile);
        }

        reports.push(StepReport {
            level,
            width: w,
            height: h,
            similarity: backend.name(),
            cost_volume_entries: result.entries,
            mean_candidates: result.entries as f64 / (w * h) as f64,
            disparity_span: result.span,
            masked_pixels: result.masked.as_ref().map_or(0, |m| m.iter().filter(|&&v| v).count()),
            tiles: tiles.len(),
        });
        if config.keep_steps {
            kept.push(StepOutput {
                level,
                disparity: result.disparity.clone(),
                confidence: result.confidence.clone(),
                masked: result.masked.clone(),
            });
        }

        if index < last_step {
            previous = Some((result.disparity, level));
            continue;
        }

        progress.stage(0, "filters");
        let t = Instant::now();
        let mut disparity = if config.subpixel { result.subpixel } else { result.disparity.mapv(|d| d as f32) };
        ndarray::Zip::from(&mut disparity).and(&images.left_valid).and(&result.rejected).for_each(|d, &ok, &rejected| {
            if !ok || rejected {
                *d = f32::NAN;
            }
        });
        if let Some(masked) = &result.masked {
            ndarray::Zip::from(&mut disparity).and(masked).for_each(|d, &m| {
                if m {
                    *d = f32::NAN;
                }
            });
        }
        let lr_rejected = ndarray::Zip::from(&result.rejected)
            .and(&images.left_valid)
            .fold(0, |n, &r, &ok| n + usize::from(r && ok));
        let small_regions_removed = remove_small_regions(&mut disparity, config.min_region_px, 1.0);
        if config.median {
            disparity = median3(&disparity);
        }
        let filled = match config.fill {
            Fill::None => 0,
            Fill::Background => fill_background(&mut disparity, &images.left_valid),
        };
        let confidence = ndarray::Zip::from(&result.confidence)
            .and(&disparity)
            .map_collect(|&c, d| if d.is_finite() { c } else { 0.0 });
        times.post += t.elapsed().as_secs_f64();
        times.total = start.elapsed().as_secs_f64();
        return Ok(MatchOutput {
            disparity,
            confidence,
            reports,
            steps: kept,
            times,
            lr_rejected,
            small_regions_removed,
            filled,
        });
    }
    unreachable!("validate() guarantees at least one step")
}

/// Where a step searches: the whole range (first step) or around the previous step's result.
enum Search<'a> {
    Range((i32, i32)),
    Around { coarse: &'a Array2<i32>, factor: usize, propagation: Propagation, range: (i32, i32) },
}

impl Search<'_> {
    /// Inclusive bounds of the pixels of `region` of a `width × height` level, row-major.
    fn bounds(&self, width: usize, height: usize, region: Region) -> (Vec<i32>, Vec<i32>) {
        match self {
            Search::Range((lo, hi)) => {
                let n = region.width() * region.height();
                (vec![*lo; n], vec![*hi; n])
            }
            Search::Around { coarse, factor, propagation, range } => {
                propagated_bounds(coarse, width, height, *propagation, *range, *factor, region)
            }
        }
    }
}

/// A step's per-pixel results over its whole level, assembled from the tiles' cores.
struct StepResult {
    disparity: Array2<i32>,
    subpixel: Array2<f32>,
    confidence: Array2<f32>,
    masked: Option<Array2<bool>>,
    /// Rejected by the left-right check.
    rejected: Array2<bool>,
    entries: usize,
    span: (i32, i32),
}

impl StepResult {
    fn new(h: usize, w: usize, with_mask: bool) -> Self {
        StepResult {
            disparity: Array2::zeros((h, w)),
            subpixel: Array2::zeros((h, w)),
            confidence: Array2::zeros((h, w)),
            masked: with_mask.then(|| Array2::from_elem((h, w), false)),
            rejected: Array2::from_elem((h, w), false),
            entries: 0,
            span: (i32::MAX, i32::MIN),
        }
    }

    /// Copies the core of `tile` from `matched` (which covers `tile.outer`).
    fn paste(&mut self, matched: &TileResult, tile: &Tile) {
        let (c, o) = (tile.core, tile.outer);
        let inner = s![c.y0 - o.y0..c.y1 - o.y0, c.x0 - o.x0..c.x1 - o.x0];
        let outer = s![c.y0..c.y1, c.x0..c.x1];
        self.disparity.slice_mut(outer).assign(&matched.winner.disparity.slice(inner));
        self.subpixel.slice_mut(outer).assign(&matched.winner.subpixel.slice(inner));
        self.confidence.slice_mut(outer).assign(&matched.winner.confidence.slice(inner));
        if let (Some(all), Some(part)) = (&mut self.masked, &matched.masked) {
            all.slice_mut(outer).assign(&part.slice(inner));
        }
        self.rejected.slice_mut(outer).assign(&matched.rejected.slice(inner));
        self.entries += matched.entries;
        self.span = (self.span.0.min(matched.span.0), self.span.1.max(matched.span.1));
    }
}

/// The results of one tile, over its outer rectangle, in the level's disparities.
struct TileResult {
    winner: Winner,
    masked: Option<Array2<bool>>,
    rejected: Array2<bool>,
    entries: usize,
    span: (i32, i32),
}

/// Matches the pixels of `region` of a level: the left image cropped to the region, the right
/// image to the columns its candidates reach (disparities are shifted accordingly and shifted
/// back in the result), costs, regularisation, winner-take-all and, at the last step, the
/// left-right check.
#[allow(clippy::too_many_arguments)]
fn match_tile(
    images: &Pair,
    region: Region,
    search: &Search<'_>,
    backend: &dyn Similarity,
    regularizer: &Regularizer,
    lr_check_px: Option<f32>,
    progress: &dyn Progress,
    level: u32,
    times: &mut StageTimes,
) -> Result<TileResult> {
    let (h, w) = images.left.dim();
    let wr = images.right.ncols();
    let (mut lo, mut hi) = search.bounds(w, h, region);
    let d_lo = lo.iter().copied().min().expect("non-empty region");
    let d_hi = hi.iter().copied().max().expect("non-empty region");
    // Right columns the candidates reach; the whole right image when the tile is the level.
    let (xr0, xr1) = if region == Region::full(w, h) {
        (0, wr)
    } else {
        let first = (region.x0 as i64 - d_hi as i64).clamp(0, wr as i64 - 1) as usize;
        let end = (region.x1 as i64 - d_lo as i64).clamp(first as i64 + 1, wr as i64) as usize;
        (first, end)
    };
    let shift = region.x0 as i32 - xr0 as i32;
    lo.iter_mut().chain(hi.iter_mut()).for_each(|d| *d -= shift);
    let intervals = Intervals::from_bounds(region.width(), region.height(), &lo, &hi)?;
    // A tile covering the whole level matches the level's images as they are (no copy).
    let crop = if region == Region::full(w, h) {
        Cow::Borrowed(images)
    } else {
        let left_rows = s![region.y0..region.y1, region.x0..region.x1];
        let right_rows = s![region.y0..region.y1, xr0..xr1];
        Cow::Owned(Pair {
            left: images.left.slice(left_rows).to_owned(),
            right: images.right.slice(right_rows).to_owned(),
            left_valid: images.left_valid.slice(left_rows).to_owned(),
            right_valid: images.right_valid.slice(right_rows).to_owned(),
        })
    };
    let level_pair = LevelPair { left: &crop.left, right: &crop.right, left_valid: &crop.left_valid, right_valid: &crop.right_valid };

    progress.stage(level, "features");
    let t = Instant::now();
    let prepared = backend.prepare(level_pair)?;
    times.prepare += t.elapsed().as_secs_f64();

    progress.stage(level, "costs");
    let t = Instant::now();
    let mut costs = fill_volume(prepared.as_ref(), &intervals)?;
    drop(prepared);
    mask_costs(&intervals, &mut costs, &crop.left_valid, &crop.right_valid);
    let volume = CostVolume { intervals, costs };
    times.cost += t.elapsed().as_secs_f64();

    progress.stage(level, "regularisation");
    let t = Instant::now();
    let (aggregated, masked): (Vec<u16>, Option<Array2<bool>>) = match regularizer {
        Regularizer::Sgm(params) => (aggregate(&volume, &crop.left, params)?, None),
        Regularizer::Micmac(params) => {
            let result = aggregate_lines(&volume, &crop.left_valid, params)?;
            (result.sum, result.masked)
        }
        Regularizer::None => (volume.costs.clone(), None),
    };
    times.regularize += t.elapsed().as_secs_f64();

    progress.stage(level, "winner-take-all");
    let t = Instant::now();
    let mut winner = winner_take_all(&volume.intervals, &aggregated);
    times.wta += t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut rejected = Array2::from_elem(crop.left.dim(), false);
    if let Some(tolerance) = lr_check_px {
        let mut marks = Array2::<f32>::zeros(crop.left.dim());
        left_right_check(&volume.intervals, &aggregated, &winner.disparity, crop.right.ncols(), tolerance, &mut marks);
        ndarray::Zip::from(&mut rejected).and(&marks).for_each(|r, m| *r = m.is_nan());
    }
    times.post += t.elapsed().as_secs_f64();

    let span = volume.intervals.span();
    winner.disparity.mapv_inplace(|d| d + shift);
    winner.subpixel.mapv_inplace(|d| d + shift as f32);
    Ok(TileResult {
        winner,
        masked,
        rejected,
        entries: volume.intervals.total(),
        span: (span.0 + shift, span.1 + shift),
    })
}
