//! Raw command-line arguments (clap). Nothing here is validated beyond parsing; see
//! `match_cmd::resolve` for the checks.

use clap::{Args, Parser, Subcommand, ValueEnum};
use deepsim::pipeline::Fill;
use std::path::PathBuf;

/// Dense stereo matching of epipolar image pairs with learned or classical similarity.
///
/// Disparity convention: left pixel (x, y) matches right pixel (x − d, y).
#[derive(Parser, Debug)]
#[command(name = "deepsim", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// No progress bar, no summary.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Match an epipolar pair: writes disparity.tif, confidence.tif, disparity.png and run.json.
    Match(MatchArgs),
    /// Compare a disparity map with ground truth (bad-0.5/1/2/4, EPE, density).
    Eval(EvalArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimilarityKind {
    /// Census transform + Hamming distance (robust to radiometric differences).
    Census,
    /// Zero-mean normalised cross-correlation, cost (1 − ncc) / 2.
    Ncc,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regularizer {
    /// Classical semi-global matching with P1 / P2.
    Sgm,
    /// MicMac's linear penalty (ZReg · |Δd|, maximum slope).
    Micmac,
    /// No regularisation: winner-take-all on the raw costs.
    None,
}

#[derive(Args, Debug)]
pub struct MatchArgs {
    /// Left (reference) image: PNG or TIFF, 8/16-bit or float, grey or RGB.
    #[arg(long)]
    pub left: PathBuf,
    /// Right image.
    #[arg(long)]
    pub right: PathBuf,
    /// Output folder (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Validity mask of the left image (non-zero = valid).
    #[arg(long)]
    pub left_mask: Option<PathBuf>,
    /// Validity mask of the right image (non-zero = valid).
    #[arg(long)]
    pub right_mask: Option<PathBuf>,
    /// Sample value marking invalid pixels in both images (default: the file's GDAL_NODATA tag).
    #[arg(long)]
    pub nodata: Option<f32>,
    /// Smallest disparity (px, full resolution). Without --disp-min/--disp-max: ±1/4 of the width.
    #[arg(long, allow_hyphen_values = true)]
    pub disp_min: Option<i32>,
    /// Largest disparity (px, inclusive).
    #[arg(long, allow_hyphen_values = true)]
    pub disp_max: Option<i32>,
    /// Similarity measure.
    #[arg(long, value_enum, default_value_t = SimilarityKind::Census)]
    pub similarity: SimilarityKind,
    /// Matching window: "7x7" (census: width x height, area ≤ 65) or "7" (square).
    #[arg(long, default_value = "7x7")]
    pub window: String,
    /// Pyramid levels, 1 = full resolution only; default: chosen from the size and range.
    #[arg(long)]
    pub levels: Option<u32>,
    /// ± disparity margin around the coarser level's estimate (MicMac's Px1DilatAlti).
    #[arg(long, default_value_t = 4)]
    pub dilate_alti: i32,
    /// Radius of the min/max filter of the intervals (MicMac's Px1DilatPlani).
    #[arg(long, default_value_t = 2)]
    pub dilate_plani: usize,
    /// Regulariser.
    #[arg(long, value_enum, default_value_t = Regularizer::Sgm)]
    pub regularizer: Regularizer,
    /// Path directions of the regulariser: 4, 8 or 16.
    #[arg(long, default_value_t = 8)]
    pub directions: usize,
    /// SGM penalty of a 1-px disparity change (in units of the worst matching cost).
    #[arg(long, default_value_t = 0.2)]
    pub p1: f32,
    /// SGM penalty of a larger disparity change.
    #[arg(long, default_value_t = 0.8)]
    pub p2: f32,
    /// Lower P2 across image edges: P2 · τ / (τ + |ΔI|), τ in grey units of [0, 1] (e.g. 0.1).
    #[arg(long)]
    pub p2_adapt: Option<f32>,
    /// MicMac regulariser: cost per pixel of disparity change (ZReg).
    #[arg(long, default_value_t = 0.05)]
    pub zreg: f32,
    /// MicMac regulariser: maximum disparity change per pixel of path (Px1PenteMax).
    #[arg(long, default_value_t = 3.0)]
    pub max_slope: f32,
    /// Left-right check tolerance in px (negative disables the check).
    #[arg(long, default_value_t = 1.0, allow_hyphen_values = true)]
    pub lr_check: f32,
    /// Disable sub-pixel refinement.
    #[arg(long)]
    pub no_subpixel: bool,
    /// Disable the 3x3 median filter.
    #[arg(long)]
    pub no_median: bool,
    /// Remove connected regions smaller than this many pixels (0 disables).
    #[arg(long, default_value_t = 50)]
    pub min_region: usize,
    /// Filling of pixels invalidated by the checks.
    #[arg(long, value_enum, default_value_t = Fill::None)]
    pub fill: Fill,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Disparity map to evaluate (.tif, .pfm, .npy; NaN = no prediction).
    #[arg(long)]
    pub disparity: PathBuf,
    /// Ground truth (.pfm, .tif, .npy; non-finite = unknown).
    #[arg(long)]
    pub gt: PathBuf,
    /// Non-occlusion mask (non-zero = non-occluded); default: derived from the ground truth.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}
