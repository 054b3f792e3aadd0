//! Raw command-line arguments (clap). Nothing here is validated beyond parsing; see
//! `match_cmd::resolve` for the checks.

use clap::{Args, Parser, Subcommand, ValueEnum};
use deepsim::model::Precision;
use deepsim::pipeline::{Fill, LrCheckMode};
use deepsim::runtime::Device;
use deepsim::similarity::Head;
use std::path::PathBuf;

/// Dense stereo matching of epipolar image pairs with learned or classical similarity.
///
/// Disparity convention: left pixel (x, y) matches right pixel (x − d, y).
#[derive(Parser, Debug)]
#[command(name = "deepsim", version, about, long_about = None)]
pub struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true, env = "DEEPSIM_THREADS")]
    pub threads: Option<usize>,
    /// No progress bar, no summary.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Match an epipolar pair: writes disparity.tif, confidence.tif, disparity.png and run.json
    /// (with --confidence also ambiguity, risk, disparity interval and validity maps).
    ///
    /// Also runs a MicMac parameter file as `mm3d MICMAC` would:
    /// `deepsim match CONFIG.xml +Im1=Epip1.tif +Im2=Epip2.tif +DirMEC=OUT` (see docs/micmac.md).
    Match(Box<MatchArgs>),
    /// Compare a disparity map with ground truth (bad-0.5/1/2/4, EPE, density).
    Eval(EvalArgs),
    /// Check a model bundle against the model contract and run it once on a small image.
    CheckModel(CheckModelArgs),
    /// Generate synthetic aerial stereo pairs with exact ground truth (a training dataset).
    Synth(SynthArgs),
    /// MicMac's external cost cube: accepts `MMVII DM4FillCubeCost …` calls verbatim (the `MMVII`
    /// launcher forwards them here) and writes MatchingCube_<Post>.data.
    Mmvii(MmviiArgs),
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimilarityKind {
    /// Census transform + Hamming distance (robust to radiometric differences).
    Census,
    /// Zero-mean normalised cross-correlation, cost (1 − ncc) / 2.
    Ncc,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// ONNX Runtime when its library is found (ORT_DYLIB_PATH, the active or the project's venvs,
    /// python3's onnxruntime) and loads, else tract; the choice and why are printed and in run.json.
    Auto,
    /// Pure-Rust runtime (tract), CPU, no native library needed.
    Tract,
    /// ONNX Runtime, loaded from ORT_DYLIB_PATH or python3's onnxruntime package (CPU, CUDA, TensorRT).
    Ort,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regularizer {
    /// Classical semi-global matching with P1 / P2.
    Sgm,
    /// MicMac's dynamic programming: NbDir line orientations, ZReg · |Δd| with a maximum
    /// slope, optional occlusion label (--def-cor, --cost-trans).
    Micmac,
    /// No regularisation: winner-take-all on the raw costs.
    None,
}

#[derive(Args, Debug)]
pub struct MatchArgs {
    /// A MicMac parameter file (ParamMICMAC) to run instead of --left/--right/--out.
    pub config: Option<PathBuf>,
    /// With a MicMac file: "+Name=value" overrides of its <DicoLoc> symbols (e.g. +Im1=a.tif).
    pub overrides: Vec<String>,
    /// With a MicMac file: a folder of ONNX bundles; FileModeleParams "FOLDER/REGEX" is looked up
    /// as FOLDER (relative to the working directory), then as DIR/<name of FOLDER>.
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Left (reference) image: PNG or TIFF, 8/16-bit or float, grey or RGB.
    #[arg(long, required_unless_present = "config")]
    pub left: Option<PathBuf>,
    /// Right image.
    #[arg(long, required_unless_present = "config")]
    pub right: Option<PathBuf>,
    /// Output folder (created if needed).
    #[arg(long, required_unless_present = "config")]
    pub out: Option<PathBuf>,
    /// Validity mask of the left image (non-zero = valid).
    #[arg(long)]
    pub left_mask: Option<PathBuf>,
    /// Validity mask of the right image (non-zero = valid).
    #[arg(long)]
    pub right_mask: Option<PathBuf>,
    /// Sample value marking invalid pixels in both images (default: the file's GDAL_NODATA tag).
    #[arg(long, allow_hyphen_values = true)]
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
    /// Similarity plugin: a shared library built against plugins/deepsim-plugin-api (Rust) or
    /// include/deepsim_plugin.h (C). Replaces --similarity on every level not served by --model.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["similarity", "window"])]
    pub plugin: Option<PathBuf>,
    /// Options string handed to the plugin, which parses it (e.g. "window=7,adaptive=true").
    #[arg(long, value_name = "STRING", requires = "plugin")]
    pub plugin_options: Option<String>,
    /// Model bundle folder (features.onnx [+ mlp.onnx]): learned similarity on the finest levels.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// How learned embeddings are compared (default: mlp when the bundle has one).
    #[arg(long, value_enum)]
    pub head: Option<Head>,
    /// Runtime executing the model.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Auto)]
    pub runtime: RuntimeKind,
    /// Feature extractor arithmetic: int8 runs the bundle's features.int8.onnx (written by
    /// `deepsim-train quantize`, parity in its card), about 2× faster on ONNX Runtime CPUs; auto
    /// takes it with ONNX Runtime on the CPU when the bundle has one, else fp32
    #[arg(long, value_enum, default_value_t = Precision::Auto)]
    pub precision: Precision,
    /// With the MLP head: run it only on each pixel's K best cosine candidates, the others
    /// ranked after them by cosine (0: on every candidate, exact). The default, 4, was chosen on
    /// held-out synthetic pairs: bad-2 within 0.1 point of the exact MLP (docs/learned-speed.md).
    #[arg(long, value_name = "K", default_value_t = 4)]
    pub mlp_top_k: usize,
    /// With the MLP head: run mlp.onnx through the runtime instead of the native split MLP
    /// (same results to float rounding; for comparisons).
    #[arg(long)]
    pub mlp_onnx: bool,
    /// Execution provider (ONNX Runtime): cpu, cuda, tensorrt, or auto (best available, else CPU with a warning).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// GPU index for cuda / tensorrt.
    #[arg(long, default_value_t = 0)]
    pub device_id: i32,
    /// TensorRT engine cache folder (engines are built once per model and tile size).
    #[arg(long)]
    pub trt_cache: Option<PathBuf>,
    /// TensorRT fp16 kernels.
    #[arg(long)]
    pub trt_fp16: bool,
    /// With --model: the learned similarity serves this many finest levels; coarser levels use
    /// --similarity (MicMac's scheme: NCC at 1/16 and 1/8, learned at 1/4, 1/2, 1).
    #[arg(long, default_value_t = 3)]
    pub learned_levels: u32,
    /// With --model: weight of the learned cost on the learned levels, the rest going to
    /// --similarity's cost on the same candidates (1 = learned only). Default 0.5: the equal
    /// blend was the most accurate on held-out synthetic pairs (README, "Choosing the blend").
    #[arg(long)]
    pub learned_weight: Option<f32>,
    /// Feature extraction tile side (px); larger images are processed in tiles (512: as fast as
    /// larger tiles and a third less memory, docs/learned-speed.md).
    #[arg(long, default_value_t = deepsim::similarity::DEFAULT_FEATURE_TILE_PX)]
    pub feature_tile: usize,
    /// Context around each feature tile (px); default: the bundle's measured exact margin
    /// (metadata deepsim.exact_margin_px), else 128.
    #[arg(long)]
    pub feature_margin: Option<usize>,
    /// Match each level in tiles of this side (px at that level) with --tile-overlap px of
    /// context: the cost volume then holds one tile at a time (0: whole levels).
    #[arg(long, default_value_t = 2048)]
    pub tile: usize,
    /// Context matched around each tile, on every side (px).
    #[arg(long, default_value_t = 64)]
    pub tile_overlap: usize,
    /// Memory budget (e.g. 4G, 512M; default: half of the machine's memory). Tiles whose
    /// working set would pass it are split; images that do not fit are processed by bands of
    /// rows with their pyramid and step results in scratch files.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// Folder for the scratch files of large images (default: the output folder); the files
    /// are anonymous and vanish with the process.
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<std::path::PathBuf>,
    /// Pyramid levels, 1 = full resolution only; default: chosen from the size and range.
    #[arg(long)]
    pub levels: Option<u32>,
    /// ± disparity margin around the coarser level's estimate (MicMac's Px1DilatAlti).
    #[arg(long, default_value_t = 4)]
    pub dilate_alti: i32,
    /// Radius of the min/max filter of the intervals (MicMac's Px1DilatPlani).
    #[arg(long, default_value_t = 2)]
    pub dilate_plani: usize,
    /// Trust every coarser disparity: without it, the pixels around a coarser match that fails
    /// that step's left-right check search the whole range (a building lost at low resolution
    /// is found again).
    #[arg(long)]
    pub no_uncertain_full_range: bool,
    /// Regulariser.
    #[arg(long, value_enum, default_value_t = Regularizer::Sgm)]
    pub regularizer: Regularizer,
    /// SGM path directions: 4, 8 or 16.
    #[arg(long, default_value_t = 8)]
    pub directions: usize,
    /// MicMac regulariser: line orientations (NbDir), each swept in both senses.
    #[arg(long, default_value_t = 7)]
    pub nb_dir: usize,
    /// MicMac regulariser: turn on the occlusion label with this default correlation
    /// (ValDefCorrel, e.g. 0.4; the label costs 1 − value).
    #[arg(long)]
    pub def_cor: Option<f32>,
    /// MicMac regulariser: cost of entering or leaving the occlusion label (CostTrans).
    #[arg(long, default_value_t = 1.0)]
    pub cost_trans: f32,
    /// SGM penalty of a 1-px disparity change (in units of the worst matching cost); default
    /// 0.5 with census alone (chosen on synthetic validation scenes: README, "Census + SGM
    /// defaults"), 0.2 otherwise.
    #[arg(long)]
    pub p1: Option<f32>,
    /// SGM penalty of a larger disparity change; default 1.6 with census alone, 0.8 otherwise.
    #[arg(long)]
    pub p2: Option<f32>,
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
    /// Where the left-right check takes the right disparity: `fast` reads it off the left
    /// volume's diagonals, `accurate` (default) regularises the right image's own volume (≈ 2×
    /// the regularisation time).
    #[arg(long, value_enum, default_value_t = LrCheckMode::Accurate)]
    pub lr_check_mode: LrCheckMode,
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
    /// Also write the confidence products next to the disparity: ambiguity.tif, risk_min.tif,
    /// risk_max.tif, disparity_min.tif, disparity_max.tif (float) and validity.tif (uint16 bit
    /// flags); README, "Confidence products".
    #[arg(long)]
    pub confidence: bool,
    /// Match the tiles on a Dask cluster (scheduler address, e.g. tcp://host:8786): the same
    /// tiles and result as on this machine; runs the Python package's `deepsim.distributed`
    /// (`$DEEPSIM_PYTHON -m deepsim.distributed`, default python3). Inputs, output and
    /// --scratch must be on storage the workers share; README, "Large pairs on a Dask cluster".
    #[arg(long, value_name = "SCHEDULER_ADDRESS")]
    pub dask: Option<String>,
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

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Dataset folder (created if needed): one sub-folder per pair and manifest.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of pairs to generate.
    #[arg(long)]
    pub count: u64,
    /// Image size: W (square) or WxH, in pixels.
    #[arg(long, default_value = "1024")]
    pub size: String,
    /// Dataset seed; pair i depends only on (seed, i) and the options.
    #[arg(long)]
    pub seed: u64,
    /// Index of the first pair (to extend an existing dataset made with the same options).
    #[arg(long, default_value_t = 0)]
    pub start_index: u64,
    /// Ground sampling distance, m/px: a value or a range LO:HI drawn per pair.
    #[arg(long, default_value = "0.1:0.25")]
    pub gsd: String,
    /// Base-to-height ratio of the views: a value or a range LO:HI.
    #[arg(long, default_value = "0.2:0.4")]
    pub base_to_height: String,
    /// Tangent of the look angle at the middle of the pair (0 = nadir; more shows more facade).
    #[arg(long, default_value = "-0.2:0.2", allow_hyphen_values = true)]
    pub look_tan: String,
    /// Focal length of the frame cameras the pairs are cut from (px).
    #[arg(long, default_value_t = 12000.0)]
    pub focal_px: f64,
    /// Disparity of the lowest terrain (px): every disparity is at least this.
    #[arg(long, default_value_t = 16.0, allow_hyphen_values = true)]
    pub min_disparity: f64,
    /// Settlement style.
    #[arg(long, value_enum, default_value_t = deepsim::synth::Style::Mixed)]
    pub style: deepsim::synth::Style,
    /// Bits per sample of the images: 8 or 16.
    #[arg(long, default_value_t = 8)]
    pub bits: u8,
    /// Sensor noise: standard deviation at mid-grey, in 8-bit grey levels (0 = none).
    #[arg(long, default_value_t = deepsim::synth::config::DEFAULT_NOISE_DN)]
    pub noise: f64,
    /// Optical blur, Gaussian sigma in px (0 = none).
    #[arg(long, default_value_t = deepsim::synth::config::DEFAULT_BLUR_PX)]
    pub blur: f64,
    /// Strength of the per-view radiometric differences (0 = identical camera models, 1 = typical).
    #[arg(long, default_value_t = 1.0)]
    pub radiometric: f64,
    /// Add JPEG-like compression artefacts at this quality (1-100).
    #[arg(long)]
    pub jpeg_quality: Option<u8>,
    /// Also write disp_right.tif (right pixel x matches left pixel x + d).
    #[arg(long)]
    pub right_disparity: bool,
    /// Also write preview.png (left | right | disparity) in each pair folder.
    #[arg(long)]
    pub previews: bool,
    /// Rays per pixel along the rows (anti-aliasing), 1-4.
    #[arg(long, default_value_t = 2)]
    pub supersample: usize,
    /// Grey texture image (PNG/TIFF) used at random for some ground and roof materials; repeatable.
    #[arg(long)]
    pub texture: Vec<PathBuf>,
    /// Folder of PNG/TIFF images (e.g. left images of real pairs): random crops of every one
    /// texture ground, flat roofs and tree crowns.
    #[arg(long, value_name = "DIR")]
    pub texture_dir: Option<PathBuf>,
    /// Views taken at different times: the sun moves between them (cast shadows differ),
    /// exposure and white balance change. 0 = same instant, 1 = typical, up to 3.
    #[arg(long, default_value_t = 1.0)]
    pub time_gap: f64,
    /// Wind in tree crowns: leaf texture displaced differently in the two views (geometry and
    /// ground truth unchanged). 0 = rigid, 1 = typical, up to 3.
    #[arg(long, default_value_t = 1.0)]
    pub wind: f64,
}

#[derive(Args, Debug)]
pub struct CheckModelArgs {
    /// Model bundle folder (features.onnx [+ mlp.onnx]).
    pub bundle: PathBuf,
    /// Runtime to load it with.
    #[arg(long, value_enum, default_value_t = RuntimeKind::Tract)]
    pub runtime: RuntimeKind,
}

#[derive(Args, Debug)]
#[command(after_help = "MicMac calls `MMVII DM4FillCubeCost Im1 Im2 Model P0 Box1 Box2 Post [Name=value ...]` in its \
working folder; the options above can also be set through their environment variables, since MicMac's \
call cannot carry them. Z·StepZ is MicMac's Px1 (x2 = x1 + Px1 = x1 − d). See docs/mmvii.md.")]
pub struct MmviiArgs {
    /// Runtime of MVCNNCorrel's networks [default: tract; ort when the call has UseCuda=1].
    #[arg(long, value_enum, env = "DEEPSIM_RUNTIME")]
    pub runtime: Option<RuntimeKind>,
    /// Execution provider (ONNX Runtime) [default: cuda when the call has UseCuda=1, else cpu];
    /// `tensorrt` for TensorRT, `auto` for the best available.
    #[arg(long, value_enum, env = "DEEPSIM_DEVICE")]
    pub device: Option<Device>,
    /// GPU index for cuda / tensorrt.
    #[arg(long, default_value_t = 0, env = "DEEPSIM_DEVICE_ID")]
    pub device_id: i32,
    /// TensorRT engine cache folder.
    #[arg(long, env = "DEEPSIM_TRT_CACHE")]
    pub trt_cache: Option<PathBuf>,
    /// TensorRT fp16 kernels.
    #[arg(long, env = "DEEPSIM_TRT_FP16")]
    pub trt_fp16: bool,
    /// Feature extraction tile side (px).
    #[arg(long, default_value_t = 1024)]
    pub feature_tile: usize,
    /// Context around each feature tile (px); default: the bundle's measured exact margin
    /// (metadata deepsim.exact_margin_px), else 128.
    #[arg(long)]
    pub feature_margin: Option<usize>,
    /// MicMac's call: DM4FillCubeCost Im1 Im2 Model P0 Box1 Box2 Post [StepZ=] [CNNParams=DIR/REGEX]
    /// [CNNArch=] [UseCuda=0|1] [UsePredicNet=0|1] [SzW=] [ModCmp=]
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "CALL")]
    pub call: Vec<String>,
}
