//! What a run is asked to do: the steps (pyramid level, similarity, regulariser, interval
//! propagation), the checks and filters at full resolution, tiling and the memory budget, and
//! the validation of all of it against the images before anything is computed.

use super::images::Pair;
use super::memory;
use crate::error::{Error, Result};
use crate::pyramid::Propagation;
use crate::sgm::lines::LineParams;
use crate::sgm::SgmParams;
use crate::tiles::TileParams;
use serde::Serialize;

/// What to do with pixels left without a disparity by the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Fill {
    /// Leave them as no value (NaN).
    None,
    /// Fill with the background (smaller) of the nearest valid disparities on the row.
    Background,
}

/// Where the left-right check takes the right image's disparity from
/// ([`crate::disparity::left_right_check`], [`crate::disparity::left_right_check_accurate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrCheckMode {
    /// Read off the left aggregated volume along its diagonals (OpenCV's scheme): no second
    /// regularisation.
    Fast,
    /// The right image's own volume regularised along the right image's paths (Pandora's
    /// `cross_checking_accurate`): about twice the regularisation cost. The default: more
    /// accurate and denser on every synthetic set it was measured on (docs/classical-aerial.md).
    #[default]
    Accurate,
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
    /// Where the left-right checks (this one and the coarser steps') take the right disparity.
    pub lr_check_mode: LrCheckMode,
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
