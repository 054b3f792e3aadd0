//! What a run returns besides the final maps: per-step reports, timings, the counts of the
//! checks and filters, and the per-step maps kept for MicMac-style outputs.

use super::products::Products;
use crate::grid::Grid;
use ndarray::Array2;
use serde::Serialize;

/// Seconds spent in each stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageTimes {
    /// Pyramid construction.
    pub pyramid: f64,
    /// Backend preparation (transforms, features).
    pub prepare: f64,
    /// Filling the cost volumes.
    pub cost: f64,
    /// Regularisation (the accurate left-right check's right pass included).
    pub regularize: f64,
    /// Winner-take-all and interval propagation.
    pub wta: f64,
    /// Left-right check and filters.
    pub post: f64,
    /// Everything.
    pub total: f64,
}

impl StageTimes {
    /// Adds the matching stages of a tile matched elsewhere (a distributed run's worker).
    pub(super) fn add_tile(&mut self, tile: &StageTimes) {
        self.prepare += tile.prepare;
        self.cost += tile.cost;
        self.regularize += tile.regularize;
        self.wta += tile.wta;
        self.post += tile.post;
    }
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
    /// The confidence products, from [`super::run_with_products`] (`None` from [`super::run`]).
    pub products: Option<Products>,
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
