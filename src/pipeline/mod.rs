//! The matching pipeline: pyramid → per level (costs over per-pixel intervals → regularisation
//! → winner-take-all → intervals of the next level) → at full resolution, sub-pixel,
//! left-right check and filters.

mod input;
mod memory;
mod post;

use crate::cost::{fill_volume, mask_costs, CostVolume, Intervals};
use crate::disparity::{flat_costs, left_right_check, winner_take_all, Winner};
use crate::error::{Error, Result};
use crate::grid::{Grid, Sample, Storage};
use crate::pyramid::{level_range, propagated_bounds, reduce_rows, reduce_source_rows, CoarseWindow, Propagation};
use crate::sgm::lines::{aggregate_lines, LineParams};
use crate::sgm::{aggregate, SgmParams};
use crate::similarity::{LevelPair, Similarity};
use crate::tiles::{tiles, Region, Tile, TileParams};

pub use input::{load_pair, InputImage, InputReport};
pub use memory::{backend_working_share, default_budget, input_band_rows, parse_size, storage_for, MIN_BUDGET};
use ndarray::{s, Array2, ArrayView2};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::VecDeque;
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
    /// Checks the parameters (penalties, directions, slopes) against their domains.
    pub fn validate(&self) -> Result<()> {
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
    /// Memory budget of the run in bytes: tiles whose working set would pass it are split, and
    /// rows are processed in bands (see [`memory`]). `None`: no bound.
    pub memory_budget: Option<u64>,
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
        self.validate_sizes((wl, hl), (wr, hr), backends)?;
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
        Ok(())
    }

    /// Checks the configuration against the image sizes (`(width, height)` of the left and
    /// right images) and the number of backends.
    pub fn validate_sizes(&self, (wl, hl): (usize, usize), (wr, hr): (usize, usize), backends: usize) -> Result<()> {
        if hl == 0 || wl == 0 || hr == 0 || wr == 0 {
            return Err(Error::invalid_input(format!("empty image: left is {wl}×{hl}, right is {wr}×{hr}")));
        }
        if hl != hr {
            return Err(Error::invalid_input(format!(
                "the images have different heights (left {wl}×{hl}, right {wr}×{hr}): an epipolar pair \
                 needs the same rows in both images"
            )));
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
        if let Some(t) = self.tiles
            && t.overlap_px < MIN_TILE_OVERLAP_PX
            && (t.size_px < wl || t.size_px < hl)
        {
            return Err(Error::invalid_parameter(format!(
                "tile overlap {} px: use at least {MIN_TILE_OVERLAP_PX} px (tiles are matched with this context on \
                 every side; less cuts the matching windows and paths at tile borders; default 64)",
                t.overlap_px
            )));
        }
        if let Some(t) = self.lr_check_px
            && !(t.is_finite() && t >= 0.0) {
                return Err(Error::invalid_parameter(format!("left-right tolerance {t}: must be ≥ 0")));
            }
        if let Some(bytes) = self.memory_budget
            && bytes < memory::MIN_BUDGET {
                return Err(Error::invalid_parameter(format!(
                    "memory budget {} MB: use at least {} MB",
                    bytes >> 20,
                    memory::MIN_BUDGET >> 20
                )));
            }
        Ok(())
    }
}

/// The least context around tiles (when the image is cut into tiles): the matching windows'
/// half-size and a few pixels of regularisation paths.
pub const MIN_TILE_OVERLAP_PX: usize = 8;

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

    /// The share of the matching done, in [0, 1] (steps weigh by their pixel counts).
    fn done(&self, _fraction: f64) {}
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

/// Matches `pair` (held in memory) through the steps of `config`; step `s` uses
/// `backends[s.similarity]`. Everything stays in memory; [`run_streamed`] is the same run with
/// the whole-level rasters in scratch files and the results delivered by row bands.
pub fn run(
    pair: &Pair,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    progress: &dyn Progress,
) -> Result<MatchOutput> {
    config.validate(pair, backends.len())?;
    let mut sink = Collect {
        disparity: Array2::zeros(pair.left.dim()),
        confidence: Array2::zeros(pair.left.dim()),
    };
    let summary = run_streamed(Images::borrowed(pair), config, backends, &Storage::Memory, progress, &mut sink)?;
    let steps = summary
        .steps
        .into_iter()
        .map(|step| {
            Ok(StepOutput {
                level: step.level,
                disparity: step.disparity.into_array()?,
                confidence: step.confidence.into_array()?,
                masked: step.masked.map(Grid::into_array).transpose()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(MatchOutput {
        disparity: sink.disparity,
        confidence: sink.confidence,
        reports: summary.reports,
        steps,
        times: summary.times,
        lr_rejected: summary.lr_rejected,
        small_regions_removed: summary.small_regions_removed,
        filled: summary.filled,
    })
}

/// The images of a pyramid level as grids (in memory or in scratch files).
#[derive(Debug)]
pub struct Images<'a> {
    /// Left image, grey values in [0, 1].
    pub left: Grid<'a, f32>,
    /// Right image.
    pub right: Grid<'a, f32>,
    /// Valid left pixels.
    pub left_valid: Grid<'a, bool>,
    /// Valid right pixels.
    pub right_valid: Grid<'a, bool>,
}

impl<'a> Images<'a> {
    /// Grids reading `pair` in place.
    pub fn borrowed(pair: &'a Pair) -> Self {
        Images {
            left: Grid::borrowed(&pair.left),
            right: Grid::borrowed(&pair.right),
            left_valid: Grid::borrowed(&pair.left_valid),
            right_valid: Grid::borrowed(&pair.right_valid),
        }
    }

    /// The next coarser level, reduced band by band (`band_rows` coarse rows at a time).
    fn reduce(&self, storage: &Storage, band_rows: usize) -> Result<Images<'static>> {
        let (left, left_valid) = reduce_grid(&self.left, &self.left_valid, storage, band_rows)?;
        let (right, right_valid) = reduce_grid(&self.right, &self.right_valid, storage, band_rows)?;
        Ok(Images { left, right, left_valid, right_valid })
    }
}

/// [`reduce`] of a grid and its validity, `band_rows` coarse rows at a time.
fn reduce_grid(
    image: &Grid<f32>,
    valid: &Grid<bool>,
    storage: &Storage,
    band_rows: usize,
) -> Result<(Grid<'static, f32>, Grid<'static, bool>)> {
    let (w, h) = (image.width(), image.height());
    let (wc, hc) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = Grid::new(wc, hc, storage)?;
    let mut out_valid = Grid::new(wc, hc, storage)?;
    for first in (0..hc).step_by(band_rows.max(1)) {
        let rows = first..(first + band_rows).min(hc);
        let source = reduce_source_rows(&rows, h);
        let region = Region { x0: 0, y0: source.start, x1: w, y1: source.end };
        let (values, ok) = reduce_rows(image.read(region)?.view(), valid.read(region)?.view(), source.start, h, rows);
        out.write(0, first, values.view())?;
        out_valid.write(0, first, ok.view())?;
    }
    Ok((out, out_valid))
}

/// Receives the final disparity and confidence, a band of full rows at a time, top to bottom.
pub trait RowSink {
    /// Rows `first_row ..` of the disparity (NaN = no value) and the confidence.
    fn rows(&mut self, first_row: usize, disparity: ArrayView2<f32>, confidence: ArrayView2<f32>) -> Result<()>;
}

/// Collects the rows into whole arrays.
struct Collect {
    disparity: Array2<f32>,
    confidence: Array2<f32>,
}

impl RowSink for Collect {
    fn rows(&mut self, first_row: usize, disparity: ArrayView2<f32>, confidence: ArrayView2<f32>) -> Result<()> {
        let rows = s![first_row..first_row + disparity.nrows(), ..];
        self.disparity.slice_mut(rows).assign(&disparity);
        self.confidence.slice_mut(rows).assign(&confidence);
        Ok(())
    }
}

/// One step's maps at the step's resolution (kept with [`MatchConfig::keep_steps`]).
#[derive(Debug)]
pub struct StepMaps {
    /// Pyramid level of the step.
    pub level: u32,
    /// Integer disparity (level pixels) of the winner, every pixel.
    pub disparity: Grid<'static, i32>,
    /// Confidence in [0, 1] of the winner.
    pub confidence: Grid<'static, f32>,
    /// Pixels that ended in the occlusion label, when the regulariser has one.
    pub masked: Option<Grid<'static, bool>>,
}

/// What a streamed run reports (its maps went to the [`RowSink`]).
#[derive(Debug)]
pub struct RunSummary {
    /// Per step, coarsest first.
    pub reports: Vec<StepReport>,
    /// Per step when [`MatchConfig::keep_steps`] is set, else empty.
    pub steps: Vec<StepMaps>,
    /// Timings.
    pub times: StageTimes,
    /// Pixels rejected by the left-right check.
    pub lr_rejected: usize,
    /// Pixels removed as small regions.
    pub small_regions_removed: usize,
    /// Pixels filled.
    pub filled: usize,
    /// Pixels with a disparity in the result.
    pub with_value: usize,
}

/// Matches the level-0 `images` through the steps of `config` and hands the result to `sink`
/// by bands of rows. Whole-level rasters (pyramid levels, step results) are kept in `storage`;
/// with [`MatchConfig::memory_budget`], tiles and bands are sized to stay within it.
/// The caller has checked that both images have valid pixels.
pub fn run_streamed(
    images: Images<'_>,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    storage: &Storage,
    progress: &dyn Progress,
    sink: &mut dyn RowSink,
) -> Result<RunSummary> {
    let (wl, hl) = (images.left.width(), images.left.height());
    config.validate_sizes((wl, hl), (images.right.width(), images.right.height()), backends.len())?;
    let budget = config.memory_budget.map(memory::Budget::new);
    let bands = |width: usize, bytes_per_px: usize| budget.map_or(usize::MAX, |b| b.band_rows(width, bytes_per_px));
    run_in_bands(images, config, backends, storage, progress, sink, &bands)
}

/// [`run_streamed`] with the rows per band given by `bands(width, bytes per pixel)`.
fn run_in_bands(
    images: Images<'_>,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    storage: &Storage,
    progress: &dyn Progress,
    sink: &mut dyn RowSink,
    bands: &dyn Fn(usize, usize) -> usize,
) -> Result<RunSummary> {
    let start = Instant::now();
    let mut times = StageTimes::default();
    let budget = config.memory_budget.map(memory::Budget::new);

    let levels = config.levels();
    progress.stage(levels - 1, "pyramid");
    let t = Instant::now();
    let mut pyramid = vec![images];
    for _ in 1..levels {
        let finer = pyramid.last().expect("level 0 is there");
        let coarser = finer.reduce(storage, bands(finer.left.width(), memory::REDUCE_BYTES_PER_PX))?;
        pyramid.push(coarser);
    }
    times.pyramid = t.elapsed().as_secs_f64();

    let step_pixels: Vec<f64> = config
        .steps
        .iter()
        .map(|step| {
            let level = &pyramid[step.level as usize].left;
            (level.width() * level.height()) as f64
        })
        .collect();
    let all_pixels: f64 = step_pixels.iter().sum();
    let mut pixels_done = 0.0;

    let mut reports = Vec::new();
    let mut kept = Vec::new();
    // The previous step's disparity and level.
    let mut previous: Option<(Grid<'static, i32>, u32)> = None;
    let last_step = config.steps.len() - 1;
    for (index, step) in config.steps.iter().enumerate() {
        let level = step.level;
        let images = &pyramid[level as usize];
        let (w, h) = (images.left.width(), images.left.height());
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
        let last = index == last_step;
        let with_mask = matches!(step.regularizer, Regularizer::Micmac(LineParams { mask: Some(_), .. }));
        let keep = Keep { confidence: last || config.keep_steps, masked: with_mask && (last || config.keep_steps), last };
        let mut result = StepGrids::new(w, h, keep, storage)?;
        let context = TileContext {
            images,
            search: &search,
            backend,
            regularizer: &step.regularizer,
            lr_check_px: if last { config.lr_check_px } else { None },
            level,
        };
        let advance = |core_pixels: usize| progress.done((pixels_done + core_pixels as f64) / all_pixels);
        let tiles = match_level(&context, config.tiles, budget, &mut result, progress, &advance, &mut times)?;
        pixels_done += step_pixels[index];

        reports.push(StepReport {
            level,
            width: w,
            height: h,
            similarity: backend.name(),
            cost_volume_entries: result.entries,
            mean_candidates: result.entries as f64 / (w * h) as f64,
            disparity_span: result.span,
            masked_pixels: result.masked_count,
            tiles,
        });
        if !last {
            let disparity = if config.keep_steps {
                let maps = result.maps(level, storage)?;
                let copy = copy_grid(&maps.disparity, storage)?;
                kept.push(maps);
                copy
            } else {
                result.disparity
            };
            previous = Some((disparity, level));
            continue;
        }

        progress.stage(0, "filters");
        let t = Instant::now();
        let band = bands(w, memory::POST_BYTES_PER_PX).min(h);
        let stats = post::finish(&result, &images.left_valid, config, band, sink)?;
        times.post += t.elapsed().as_secs_f64();
        if config.keep_steps {
            kept.push(result.maps(level, storage)?);
        }
        times.total = start.elapsed().as_secs_f64();
        return Ok(RunSummary {
            reports,
            steps: kept,
            times,
            lr_rejected: stats.lr_rejected,
            small_regions_removed: stats.small_regions_removed,
            filled: stats.filled,
            with_value: stats.with_value,
        });
    }
    unreachable!("validate() guarantees at least one step")
}

/// A copy of `grid` in `storage`, band by band.
fn copy_grid<T: Sample>(grid: &Grid<'_, T>, storage: &Storage) -> Result<Grid<'static, T>> {
    let (w, h) = (grid.width(), grid.height());
    let mut copy = Grid::new(w, h, storage)?;
    for y0 in (0..h).step_by(256) {
        let rows = Region { x0: 0, y0, x1: w, y1: (y0 + 256).min(h) };
        copy.write(0, y0, grid.read(rows)?.view())?;
    }
    Ok(copy)
}

/// Everything a step's tiles share.
struct TileContext<'a> {
    images: &'a Images<'a>,
    search: &'a Search<'a>,
    backend: &'a dyn Similarity,
    regularizer: &'a Regularizer,
    lr_check_px: Option<f32>,
    level: u32,
}

/// Matches every tile of a level into `result`; returns the number of tiles matched. With a
/// budget, a tile whose working set would pass it is split in four, recursively.
fn match_level(
    context: &TileContext,
    params: Option<TileParams>,
    budget: Option<memory::Budget>,
    result: &mut StepGrids,
    progress: &dyn Progress,
    advance: &dyn Fn(usize),
    times: &mut StageTimes,
) -> Result<usize> {
    let (w, h) = (context.images.left.width(), context.images.left.height());
    let overlap = params.map_or(memory::SPLIT_OVERLAP_PX, |p| p.overlap_px);
    let mut pending: VecDeque<Tile> = tiles(w, h, params).into();
    let mut matched = 0;
    let mut core_pixels = 0;
    while let Some(tile) = pending.pop_front() {
        let bounds = TileBounds::new(context, tile.outer)?;
        if let Some(budget) = budget {
            let need = memory::tile_bytes(tile.outer, bounds.entries(), bounds.right_columns(), context.backend);
            if need > budget.tile_bytes() {
                let parts = split(tile, overlap, w, h);
                if parts.len() == 1 {
                    return Err(Error::invalid_parameter(format!(
                        "the memory budget ({} MB) is too small for level {}: a {}×{} tile needs {} MB, more than \
                         the {} MB a tile may use (half of the budget left after the program's share): raise the \
                         budget (--max-memory)",
                        budget.total() >> 20,
                        context.level,
                        tile.outer.width(),
                        tile.outer.height(),
                        need >> 20,
                        budget.tile_bytes() >> 20
                    )));
                }
                parts.into_iter().rev().for_each(|part| pending.push_front(part));
                continue;
            }
        }
        matched += 1;
        progress.stage(context.level, &format!("tile {matched}"));
        let tile_result = match_tile(context, tile.outer, bounds, progress, times)?;
        result.paste(&tile_result, &tile)?;
        core_pixels += tile.core.width() * tile.core.height();
        advance(core_pixels);
    }
    Ok(matched)
}

/// The four quarters of a tile's core (each with its own overlap), or the tile itself when its
/// core is too small to split.
fn split(tile: Tile, overlap: usize, width: usize, height: usize) -> Vec<Tile> {
    let c = tile.core;
    if c.width() < 2 * memory::MIN_SPLIT_PX || c.height() < 2 * memory::MIN_SPLIT_PX {
        return vec![tile];
    }
    let (xm, ym) = ((c.x0 + c.x1) / 2, (c.y0 + c.y1) / 2);
    [(c.y0, ym, c.x0, xm), (c.y0, ym, xm, c.x1), (ym, c.y1, c.x0, xm), (ym, c.y1, xm, c.x1)]
        .into_iter()
        .map(|(y0, y1, x0, x1)| {
            let core = Region { x0, y0, x1, y1 };
            Tile { core, outer: core.grow(overlap, width, height) }
        })
        .collect()
}

/// Where a step searches: the whole range (first step) or around the previous step's result.
enum Search<'a> {
    Range((i32, i32)),
    Around { coarse: &'a Grid<'static, i32>, factor: usize, propagation: Propagation, range: (i32, i32) },
}

impl Search<'_> {
    /// Inclusive bounds of the pixels of `region` of a `width × height` level, row-major.
    fn bounds(&self, width: usize, height: usize, region: Region) -> Result<(Vec<i32>, Vec<i32>)> {
        Ok(match self {
            Search::Range((lo, hi)) => {
                let n = region.width() * region.height();
                (vec![*lo; n], vec![*hi; n])
            }
            Search::Around { coarse, factor, propagation, range } => {
                let needed = CoarseWindow::needed(region, width, height, *propagation, *factor, coarse.width(), coarse.height());
                let values = coarse.read(needed)?;
                let window = CoarseWindow {
                    values: values.view(),
                    x0: needed.x0,
                    y0: needed.y0,
                    width: coarse.width(),
                    height: coarse.height(),
                };
                propagated_bounds(&window, width, height, *propagation, *range, *factor, region)
            }
        })
    }
}

/// The disparity bounds of a tile, shifted to the right image's crop.
struct TileBounds {
    lo: Vec<i32>,
    hi: Vec<i32>,
    /// Right columns the candidates reach.
    right: (usize, usize),
    /// Disparities in the crop = level disparities − shift.
    shift: i32,
}

impl TileBounds {
    fn new(context: &TileContext, region: Region) -> Result<Self> {
        let images = context.images;
        let (w, h) = (images.left.width(), images.left.height());
        let wr = images.right.width();
        let (mut lo, mut hi) = context.search.bounds(w, h, region)?;
        let d_lo = lo.iter().copied().min().expect("non-empty region");
        let d_hi = hi.iter().copied().max().expect("non-empty region");
        // The whole right image when the tile is the level.
        let right = if region == Region::full(w, h) {
            (0, wr)
        } else {
            let first = (region.x0 as i64 - d_hi as i64).clamp(0, wr as i64 - 1) as usize;
            let end = (region.x1 as i64 - d_lo as i64).clamp(first as i64 + 1, wr as i64) as usize;
            (first, end)
        };
        let shift = region.x0 as i32 - right.0 as i32;
        lo.iter_mut().chain(hi.iter_mut()).for_each(|d| *d -= shift);
        Ok(TileBounds { lo, hi, right, shift })
    }

    /// Cost-volume entries (candidates before the widening to SIMD lanes, which adds ≤ 15 per
    /// pixel and is counted by [`memory`]'s margins).
    fn entries(&self) -> usize {
        self.lo.iter().zip(&self.hi).map(|(l, h)| (h - l + 1) as usize).sum()
    }

    fn right_columns(&self) -> usize {
        self.right.1 - self.right.0
    }
}

/// Which maps a step keeps besides the integer disparity.
#[derive(Debug, Clone, Copy)]
struct Keep {
    confidence: bool,
    masked: bool,
    /// The last step: sub-pixel disparity and left-right rejections too.
    last: bool,
}

/// A step's per-pixel results over its whole level, assembled from the tiles' cores.
struct StepGrids {
    disparity: Grid<'static, i32>,
    subpixel: Option<Grid<'static, f32>>,
    confidence: Option<Grid<'static, f32>>,
    masked: Option<Grid<'static, bool>>,
    /// Rejected by the left-right check.
    rejected: Option<Grid<'static, bool>>,
    entries: usize,
    span: (i32, i32),
    masked_count: usize,
}

impl StepGrids {
    fn new(w: usize, h: usize, keep: Keep, storage: &Storage) -> Result<Self> {
        fn optional<T: Sample>(on: bool, w: usize, h: usize, storage: &Storage) -> Result<Option<Grid<'static, T>>> {
            on.then(|| Grid::new(w, h, storage)).transpose()
        }
        Ok(StepGrids {
            disparity: Grid::new(w, h, storage)?,
            subpixel: optional(keep.last, w, h, storage)?,
            confidence: optional(keep.confidence, w, h, storage)?,
            masked: optional(keep.masked, w, h, storage)?,
            rejected: optional(keep.last, w, h, storage)?,
            entries: 0,
            span: (i32::MAX, i32::MIN),
            masked_count: 0,
        })
    }

    /// Copies the core of `tile` from `matched` (which covers `tile.outer`).
    fn paste(&mut self, matched: &TileResult, tile: &Tile) -> Result<()> {
        let (c, o) = (tile.core, tile.outer);
        let inner = s![c.y0 - o.y0..c.y1 - o.y0, c.x0 - o.x0..c.x1 - o.x0];
        self.disparity.write(c.x0, c.y0, matched.winner.disparity.slice(inner))?;
        if let Some(grid) = &mut self.subpixel {
            grid.write(c.x0, c.y0, matched.winner.subpixel.slice(inner))?;
        }
        if let Some(grid) = &mut self.confidence {
            grid.write(c.x0, c.y0, matched.winner.confidence.slice(inner))?;
        }
        if let Some(part) = &matched.masked {
            let part = part.slice(inner);
            self.masked_count += part.iter().filter(|&&m| m).count();
            if let Some(grid) = &mut self.masked {
                grid.write(c.x0, c.y0, part)?;
            }
        }
        if let Some(grid) = &mut self.rejected {
            grid.write(c.x0, c.y0, matched.rejected.slice(inner))?;
        }
        self.entries += matched.entries;
        self.span = (self.span.0.min(matched.span.0), self.span.1.max(matched.span.1));
        Ok(())
    }

    /// The maps a caller keeps ([`MatchConfig::keep_steps`]).
    fn maps(self, level: u32, storage: &Storage) -> Result<StepMaps> {
        let (w, h) = (self.disparity.width(), self.disparity.height());
        let confidence = match self.confidence {
            Some(grid) => grid,
            None => Grid::new(w, h, storage)?,
        };
        Ok(StepMaps { level, disparity: self.disparity, confidence, masked: self.masked })
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

/// `region` of a grid as an array: borrowed when it is the whole grid in memory.
fn crop<'g, T: Sample>(grid: &'g Grid<'_, T>, region: Region) -> Result<Cow<'g, Array2<T>>> {
    match grid.in_memory() {
        Some(array) if region == grid.region() => Ok(Cow::Borrowed(array)),
        _ => Ok(Cow::Owned(grid.read(region)?.into_owned())),
    }
}

/// Matches the pixels of `region` of a level: the left image cropped to the region, the right
/// image to the columns its candidates reach (disparities are shifted accordingly and shifted
/// back in the result), costs, regularisation, winner-take-all and, at the last step, the
/// left-right check.
fn match_tile(
    context: &TileContext,
    region: Region,
    bounds: TileBounds,
    progress: &dyn Progress,
    times: &mut StageTimes,
) -> Result<TileResult> {
    let (images, level) = (context.images, context.level);
    let TileBounds { lo, hi, right: (xr0, xr1), shift } = bounds;
    let intervals = Intervals::from_bounds(region.width(), region.height(), &lo, &hi)?;
    drop((lo, hi));
    let right_region = Region { x0: xr0, x1: xr1, ..region };
    let left = crop(&images.left, region)?;
    let right = crop(&images.right, right_region)?;
    let left_valid = crop(&images.left_valid, region)?;
    let right_valid = crop(&images.right_valid, right_region)?;
    let level_pair = LevelPair { left: &left, right: &right, left_valid: &left_valid, right_valid: &right_valid };

    progress.stage(level, "features");
    let t = Instant::now();
    let prepared = context.backend.prepare(level_pair)?;
    times.prepare += t.elapsed().as_secs_f64();

    progress.stage(level, "costs");
    let t = Instant::now();
    let mut costs = fill_volume(prepared.as_ref(), &intervals)?;
    drop(prepared);
    mask_costs(&intervals, &mut costs, &left_valid, &right_valid);
    let volume = CostVolume { intervals, costs };
    times.cost += t.elapsed().as_secs_f64();

    progress.stage(level, "regularisation");
    let t = Instant::now();
    let (aggregated, masked): (Cow<[u16]>, Option<Array2<bool>>) = match context.regularizer {
        Regularizer::Sgm(params) => (Cow::Owned(aggregate(&volume, &left, params)?), None),
        Regularizer::Micmac(params) => {
            let result = aggregate_lines(&volume, &left_valid, params)?;
            (Cow::Owned(result.sum), result.masked)
        }
        Regularizer::None => (Cow::Borrowed(volume.costs.as_slice()), None),
    };
    times.regularize += t.elapsed().as_secs_f64();

    progress.stage(level, "winner-take-all");
    let t = Instant::now();
    let mut winner = winner_take_all(&volume.intervals, &aggregated);
    // No information in the raw costs: no confidence, whatever the regulariser made of them.
    let flat = flat_costs(&volume.intervals, &volume.costs, right.ncols());
    ndarray::Zip::from(&mut winner.confidence).and(&flat).for_each(|c, &f| if f { *c = 0.0 });
    times.wta += t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut rejected = Array2::from_elem(left.dim(), false);
    if let Some(tolerance) = context.lr_check_px {
        let mut marks = Array2::<f32>::zeros(left.dim());
        left_right_check(&volume.intervals, &aggregated, &winner.disparity, right.ncols(), tolerance, &mut marks);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::Census;

    /// A textured pair with a disparity step: left (x, y) = right (x − d, y).
    fn pair(w: usize, h: usize) -> Pair {
        let texture = |x: f32, y: f32| 0.5 + 0.25 * (0.9 * x).sin() * (0.7 * y).cos() + 0.2 * ((x * 12.9898 + y * 78.233).sin() * 43758.547).fract();
        let d = |x: usize, y: usize| if (x / 17 + y / 13).is_multiple_of(3) { 9.0 } else { 4.0 };
        Pair {
            left: Array2::from_shape_fn((h, w), |(y, x)| texture(x as f32 - d(x, y), y as f32)),
            right: Array2::from_shape_fn((h, w), |(y, x)| texture(x as f32, y as f32)),
            left_valid: Array2::from_shape_fn((h, w), |(y, x)| (x + 3 * y) % 97 != 0),
            right_valid: Array2::from_elem((h, w), true),
        }
    }

    fn sgm() -> Regularizer {
        Regularizer::Sgm(SgmParams { directions: 8, penalty: crate::sgm::Penalty::Classic { p1: 0.2, p2: 0.8, p2_adapt: None } })
    }

    fn config(regularizer: Regularizer) -> MatchConfig {
        let propagation = Propagation { dilate_alti_px: 2, dilate_plani_px: 1 };
        MatchConfig {
            disp_min: 0,
            disp_max: 15,
            steps: pyramid_steps(2, regularizer, propagation, |_| 0),
            subpixel: true,
            lr_check_px: Some(1.0),
            median: true,
            min_region_px: 6,
            fill: Fill::Background,
            keep_steps: true,
            tiles: Some(TileParams { size_px: 40, overlap_px: 8 }),
            memory_budget: None,
        }
    }

    /// Narrow bands and scratch files change nothing: the same bits as one in-memory pass.
    #[test]
    fn bands_and_scratch_files_give_the_same_result_as_memory() {
        let pair = pair(97, 83);
        let census = Census::new(5, 5).unwrap();
        let micmac = Regularizer::Micmac(LineParams {
            orientations: 5,
            weight: 0.05,
            max_slope: 2.0,
            mask: Some(crate::sgm::lines::MaskLabel { cost: 0.5, transition: 0.3 }),
        });
        for regularizer in [sgm(), micmac] {
            let cfg = config(regularizer);
            let whole = run(&pair, &cfg, &[&census], &NoProgress).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let scratch = Storage::Scratch(dir.path().to_path_buf());
            let mut sink = Collect { disparity: Array2::zeros(pair.left.dim()), confidence: Array2::zeros(pair.left.dim()) };
            let summary = run_in_bands(Images::borrowed(&pair), &cfg, &[&census], &scratch, &NoProgress, &mut sink, &|_, _| 7).unwrap();
            let same = |a: &Array2<f32>, b: &Array2<f32>| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same(&whole.disparity, &sink.disparity), "{regularizer:?}: disparity");
            assert!(same(&whole.confidence, &sink.confidence), "{regularizer:?}: confidence");
            assert_eq!(
                (whole.lr_rejected, whole.small_regions_removed, whole.filled),
                (summary.lr_rejected, summary.small_regions_removed, summary.filled)
            );
            assert!(whole.small_regions_removed > 0 && whole.filled > 0, "the filters had work to do");
            for (a, b) in whole.steps.iter().zip(summary.steps) {
                assert!(b.disparity.on_disk());
                assert_eq!(a.disparity, b.disparity.into_array().unwrap());
                assert_eq!(a.masked, b.masked.map(|m| m.into_array().unwrap()));
            }
        }
    }

    /// A budget too small for a tile splits it (more tiles, same pixels covered), and one too
    /// small for the smallest tile is an error naming the budget.
    #[test]
    fn tiles_split_to_fit_the_budget() {
        let pair = pair(300, 260);
        let census = Census::new(5, 5).unwrap();
        let mut cfg = config(sgm());
        cfg.disp_max = 127;
        cfg.tiles = None;
        cfg.steps = pyramid_steps(1, sgm(), Propagation { dilate_alti_px: 2, dilate_plani_px: 1 }, |_| 0);
        let free = run(&pair, &cfg, &[&census], &NoProgress).unwrap();
        assert_eq!(free.reports[0].tiles, 1);
        // 300 × 260 × 128 candidates × 6 B ≈ 60 MB: a 128 MB budget gives a tile 32 MB.
        cfg.memory_budget = Some(MIN_BUDGET);
        let split = run(&pair, &cfg, &[&census], &NoProgress).unwrap();
        assert!(split.reports[0].tiles >= 4, "{} tiles", split.reports[0].tiles);
        let agree = free.disparity.iter().zip(&split.disparity).filter(|(a, b)| (*a - *b).abs() < 0.25 || (a.is_nan() && b.is_nan())).count();
        assert!(agree as f64 > 0.97 * free.disparity.len() as f64, "{agree} of {}", free.disparity.len());
    }
}
