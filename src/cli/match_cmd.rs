//! `deepsim match`: resolve arguments, read inputs, run the pipeline, write outputs.

use super::args::{MatchArgs, Regularizer, SimilarityKind};
use super::progress::Bar;
use anyhow::{bail, Context};
use super::maps::{product_files, Content, MapFiles};
use deepsim::grid::Storage;
use deepsim::io::{create_file, read_geotags, OutputFolder, OutputSet, ReadOptions};
use std::io::Write as _;
use deepsim::pipeline::{self, auto_levels, pyramid_steps, validity, InputImage, MatchConfig, TileRunner, TileWorker, PRODUCT_FILES};
use deepsim::pyramid::Propagation;
use deepsim::sgm::lines::{LineParams, MaskLabel};
use deepsim::tiles::TileParams;
use deepsim::sgm::{Penalty, SgmParams};
use deepsim::model::{ModelBundle, Precision};
use deepsim::plugin::PluginSimilarity;
use deepsim::similarity::{parse_window, Blend, Census, Head, Learned, Ncc, Similarity, Tiling};
use deepsim::engine_xml::{BackendChoice, EngineFile, RuntimeChoice, ROOT as ENGINE_ROOT};
use deepsim::runtime::Runtime;
use super::args::RuntimeKind;
use std::path::PathBuf;
use serde_json::json;
use std::path::Path;

/// Outputs written by a run; `run.json` is written last and marks the run as complete.
pub const DISPARITY_FILE: &str = "disparity.tif";
pub const CONFIDENCE_FILE: &str = "confidence.tif";
pub const PREVIEW_FILE: &str = "disparity.png";
pub const REPORT_FILE: &str = "run.json";

/// Builds the configuration once the image sizes are known (command-line defaults depend on
/// them): `(width, height)` of the left and the right image.
type ConfigFor<'a> = Box<dyn FnOnce(Sizes) -> anyhow::Result<MatchConfig> + 'a>;

/// `(width, height)` of the left and the right image.
pub type Sizes = ((usize, usize), (usize, usize));

/// A run to execute: inputs, outputs, configuration and backends, from the command line or a
/// `<DeepsimMatch>` file. The Python binding (python/deepsim-py, which compiles this module too)
/// builds one from the same arguments and runs it on arrays in memory.
pub(crate) struct Job<'a> {
    pub(crate) left: PathBuf,
    pub(crate) right: PathBuf,
    pub(crate) left_mask: Option<PathBuf>,
    pub(crate) right_mask: Option<PathBuf>,
    pub(crate) nodata: Option<f32>,
    pub(crate) out: PathBuf,
    /// Folder of the scratch files (default: `out`).
    pub(crate) scratch: Option<PathBuf>,
    /// The configuration, given the pair (command-line defaults depend on the image size).
    pub(crate) config: ConfigFor<'a>,
    pub(crate) backends: Vec<Box<dyn Similarity>>,
    /// The models used, for the report.
    pub(crate) models: Vec<serde_json::Value>,
    /// The plugin used, for the report.
    pub(crate) plugin: Option<serde_json::Value>,
    /// The memory budget, which also bounds what the readers allocate for one file.
    pub(crate) budget: u64,
    /// Write the confidence products (`--confidence`, `<Confidence>`).
    pub(crate) confidence: bool,
}

pub fn run(args: MatchArgs, quiet: bool) -> anyhow::Result<()> {
    if args.dask.is_some() {
        return super::dask::forward();
    }
    if let Some(file) = &args.config {
        return match root_element(file)?.as_str() {
            ENGINE_ROOT => {
                if !args.overrides.is_empty() || args.left.is_some() || args.right.is_some() || args.out.is_some() {
                    bail!("{}: a <{ENGINE_ROOT}> file holds the whole run; edit it instead of adding --left/--right/--out or +Name=value", file.display());
                }
                execute(job_from_file(file, &args, quiet)?, quiet)
            }
            "ParamMICMAC" => {
                if args.confidence {
                    bail!("{}: --confidence is for --left/--right runs and <{ENGINE_ROOT}> files (<Confidence>true</Confidence>); a MicMac parameter file writes MicMac's outputs", file.display());
                }
                super::micmac_cmd::run(file, &args, quiet)
            }
            other => bail!("{}: root element <{other}>: expected <ParamMICMAC> (a MicMac file) or <{ENGINE_ROOT}> (docs/engine-xml.md)", file.display()),
        };
    }
    if !args.overrides.is_empty() {
        bail!("'{}': +Name=value overrides go with a MicMac parameter file (deepsim match CONFIG.xml +Im1=…)", args.overrides[0]);
    }
    execute(job_from_args(&args, quiet)?, quiet)
}

/// The job of a run whose tiles are matched elsewhere (`--dask`): from --left/--right/--out or a
/// `<DeepsimMatch>` file (a MicMac parameter file writes MicMac's outputs, which it does not).
#[allow(dead_code)] // the Python binding's (python/deepsim-py)
pub(crate) fn distributed_job(args: &MatchArgs, quiet: bool) -> anyhow::Result<Job<'_>> {
    match &args.config {
        None if args.overrides.is_empty() => job_from_args(args, quiet),
        None => bail!("'{}': +Name=value overrides go with a MicMac parameter file, which --dask does not run", args.overrides[0]),
        Some(file) => match root_element(file)?.as_str() {
            ENGINE_ROOT if args.left.is_none() && args.right.is_none() && args.out.is_none() => job_from_file(file, args, quiet),
            ENGINE_ROOT => bail!("{}: a <{ENGINE_ROOT}> file holds the whole run; edit it instead of adding --left/--right/--out", file.display()),
            other => bail!("{}: <{other}>: --dask runs --left/--right/--out or <{ENGINE_ROOT}> files (docs/engine-xml.md)", file.display()),
        },
    }
}

/// A run whose tiles another process matches: it makes the step's [`TileRunner`] once the
/// output folder exists, and says what to add to run.json.
pub(crate) trait RemoteRun: TileRunner {
    /// run.json's `distributed` entry.
    fn report(&self) -> serde_json::Value;
}

/// Makes the [`RemoteRun`] of a run, given the folder where its shared files may go (the
/// scratch folder, by default the output folder) and its configuration.
pub(crate) type RemoteFactory<'f> = &'f dyn Fn(&Path, &MatchConfig) -> anyhow::Result<Box<dyn RemoteRun + 'f>>;

/// `deepsim match` with the tiles matched by the runner `remote` makes (`--dask`): the same
/// outputs, written the same way, as [`run`]; returns the output folder.
#[allow(dead_code)] // the Python binding's (python/deepsim-py)
pub(crate) fn run_remote(args: &MatchArgs, quiet: bool, remote: RemoteFactory) -> anyhow::Result<PathBuf> {
    let job = distributed_job(args, quiet)?;
    let out = job.out.clone();
    execute_with(job, quiet, Some(remote))?;
    Ok(out)
}

/// A worker's side of a `--dask` run of `args`: the pair read from its files, its pyramid,
/// and the backends, ready to match any tile of the run (`deepsim.distributed`). `args` must
/// carry the driver's memory budget (`--max-memory`), which decides how tiles split.
#[allow(dead_code)] // the Python binding's (python/deepsim-py)
pub(crate) fn tile_worker(args: &MatchArgs, quiet: bool) -> anyhow::Result<(TileWorker, Vec<Box<dyn Similarity>>)> {
    let job = distributed_job(args, quiet)?;
    deepsim::io::set_decode_limit(job.budget);
    let scratch = job.scratch.clone().unwrap_or_else(std::env::temp_dir);
    let files = RunFiles {
        left: &job.left,
        right: &job.right,
        left_mask: job.left_mask.as_deref(),
        right_mask: job.right_mask.as_deref(),
        nodata: job.nodata,
    };
    let read = read_inputs(&files, job.config, job.backends.len(), job.confidence, &scratch)?;
    let worker = TileWorker::new(read.images, read.config, &read.storage, job.backends.len())?;
    Ok((worker, job.backends))
}

/// The files of a run.
struct RunFiles<'j> {
    left: &'j Path,
    right: &'j Path,
    left_mask: Option<&'j Path>,
    right_mask: Option<&'j Path>,
    nodata: Option<f32>,
}

/// A run's inputs read into level-0 grids, and its configuration for their sizes.
struct ReadInputs {
    config: MatchConfig,
    storage: Storage,
    images: pipeline::Images<'static>,
    /// run.json's `inputs`.
    report: serde_json::Value,
    /// `(width, height)` of the left image.
    size: (usize, usize),
}

/// Opens the images of `files`, resolves the configuration for their sizes and reads them
/// into the storage the budget calls for (scratch files in `scratch` when too large).
fn read_inputs(files: &RunFiles, config: ConfigFor, backends: usize, confidence: bool, scratch: &Path) -> anyhow::Result<ReadInputs> {
    let options = ReadOptions { nodata: files.nodata };
    let left = InputImage::open(files.left, files.left_mask, &options)?;
    let right = InputImage::open(files.right, files.right_mask, &options)?;
    let (size_left, size_right) = (left.size(), right.size());
    let config = config((size_left, size_right))?;
    config
        .validate_sizes(size_left, size_right, backends)
        .with_context(|| format!("left {}, right {}", files.left.display(), files.right.display()))?;
    let (w, h) = size_left;
    let storage = pipeline::storage_for_run(config.memory_budget, w, h, config.keep_steps, confidence, scratch);
    let band_rows = pipeline::input_band_rows(config.memory_budget, w.max(size_right.0));
    let (images, [left_report, right_report]) = pipeline::load_pair(left, right, &storage, band_rows)?;
    let report = json!({ "left": left_report, "right": right_report, "nodata": files.nodata });
    Ok(ReadInputs { config, storage, images, report, size: size_left })
}

/// The root element's name of an XML file.
fn root_element(path: &Path) -> anyhow::Result<String> {
    let text = deepsim::micmac::read_xml_text(path)?;
    Ok(deepsim::micmac::parse_xml(&text, path)?.name)
}

fn job_from_args(args: &MatchArgs, quiet: bool) -> anyhow::Result<Job<'_>> {
    job_with_model(args, quiet, None)
}

/// The job of `args`; with `--model`, `prebuilt` (a backend of [`build_model`] and its report)
/// serves instead of loading the bundle again (the Python binding's `deepsim.Model`).
pub(crate) fn job_with_model(
    args: &MatchArgs,
    quiet: bool,
    prebuilt: Option<(Box<dyn Similarity>, serde_json::Value)>,
) -> anyhow::Result<Job<'_>> {
    let (Some(left), Some(right), Some(out)) = (&args.left, &args.right, &args.out) else {
        bail!("give --left, --right and --out (or a configuration file)");
    };
    // --plugin replaces --similarity (clap refuses both together).
    let (classical, plugin) = match &args.plugin {
        Some(path) => {
            let (plugin, report) = build_plugin(path, args.plugin_options.as_deref().unwrap_or(""), quiet)?;
            (plugin, Some(report))
        }
        None => (build_similarity(args.similarity, &args.window)?, None),
    };
    let mut backends = vec![classical];
    let mut models = Vec::new();
    match &args.model {
        Some(dir) => {
            let (learned, report) = match prebuilt {
                Some(built) => built,
                None => build_model(dir, args, quiet)?,
            };
            let learned = blend_with_classical(learned, args)?;
            backends.push(learned);
            models.push(json!({ "model": report, "learned_levels": args.learned_levels, "learned_weight": learned_weight(args) }));
        }
        None => {
            if args.head.is_some() {
                bail!("--head needs --model (a bundle folder with features.onnx [+ mlp.onnx])");
            }
            if args.learned_weight.is_some() {
                bail!("--learned-weight needs --model (it blends the model's cost with --similarity's)");
            }
        }
    }
    let learned = backends.len() > 1;
    let budget = memory_budget(args)?;
    Ok(Job {
        left: left.clone(),
        right: right.clone(),
        left_mask: args.left_mask.clone(),
        right_mask: args.right_mask.clone(),
        nodata: args.nodata,
        out: out.clone(),
        scratch: args.scratch.clone(),
        config: Box::new(move |sizes| resolve(args, sizes, learned)),
        backends,
        models,
        plugin,
        budget,
        confidence: args.confidence,
    })
}

/// The learned backend of `--model DIR` with the runtime, device, tiling and MLP options of
/// `args`, and its description for the report.
pub(crate) fn build_model(dir: &Path, args: &MatchArgs, quiet: bool) -> anyhow::Result<(Box<dyn Similarity>, serde_json::Value)> {
    let device = super::runtime::DeviceArgs {
        device: args.device,
        device_id: args.device_id,
        trt_cache: args.trt_cache.clone(),
        trt_fp16: args.trt_fp16,
    };
    let (runtime, choice) = super::runtime::build_reported(args.runtime, device, quiet)?;
    let tiling = FeatureTiling { tile_px: args.feature_tile, margin_px: args.feature_margin };
    let mlp = ModelOptions { precision: args.precision, top_k: args.mlp_top_k, onnx: args.mlp_onnx };
    let budget = memory_budget(args)?;
    let (learned, mut report) = build_learned(dir, args.head, runtime.as_ref(), tiling, mlp, budget, quiet)?;
    report["runtime_choice"] = choice;
    Ok((learned, report))
}

fn job_from_file<'a>(path: &Path, args: &MatchArgs, quiet: bool) -> anyhow::Result<Job<'a>> {
    let mut file = EngineFile::load(path)?;
    if args.max_memory.is_some() {
        // The command line's budget wins over the file's (it belongs to the machine).
        file.config.memory_budget = Some(memory_budget(args)?);
    }
    let budget = file.config.memory_budget.unwrap_or_else(pipeline::default_budget);
    let rt = &file.runtime;
    let runtime_kind = match rt.engine {
        RuntimeChoice::Tract => RuntimeKind::Tract,
        RuntimeChoice::Ort => RuntimeKind::Ort,
    };
    let mut runtime = None;
    let mut backends: Vec<Box<dyn Similarity>> = Vec::new();
    let mut models = Vec::new();
    let mut plugins = Vec::new();
    for choice in &file.backends {
        backends.push(match choice {
            BackendChoice::Census { width, height } => Box::new(Census::new(*width, *height)?),
            BackendChoice::Ncc { window } => Box::new(Ncc::new(*window)?),
            BackendChoice::Plugin { path, options } => {
                let (plugin, report) = build_plugin(path, options, quiet)?;
                plugins.push(report);
                plugin
            }
            BackendChoice::Model { dir, head } => {
                if runtime.is_none() {
                    let device = super::runtime::DeviceArgs {
                        device: rt.device,
                        device_id: rt.device_id,
                        trt_cache: rt.trt_cache.clone(),
                        trt_fp16: rt.trt_fp16,
                    };
                    runtime = Some(super::runtime::build(runtime_kind, device)?);
                }
                let runtime = runtime.as_ref().expect("built just above");
                let tiling = FeatureTiling { tile_px: args.feature_tile, margin_px: args.feature_margin };
                let (learned, report) =
                    build_learned(dir, *head, runtime.as_ref(), tiling, ModelOptions::default(), budget, quiet)?;
                models.push(json!({ "model": report }));
                learned
            }
        });
    }
    Ok(Job {
        left: file.left,
        right: file.right,
        left_mask: file.left_mask,
        right_mask: file.right_mask,
        nodata: file.nodata,
        out: file.out,
        scratch: file.scratch.or_else(|| args.scratch.clone()),
        config: Box::new(move |_| Ok(file.config)),
        backends,
        models,
        plugin: (!plugins.is_empty()).then(|| json!(plugins)),
        budget,
        confidence: file.confidence || args.confidence,
    })
}

/// Default SGM penalties (P1, P2): census alone gets the values of the sensitivity table on
/// synthetic aerial validation scenes (README, "Census + SGM defaults"); the other
/// similarities (NCC, learned, plugins) keep 0.2 / 0.8, with which they were measured.
pub(crate) fn default_penalties(args: &MatchArgs) -> (f32, f32) {
    if args.model.is_none() && args.plugin.is_none() && args.similarity == SimilarityKind::Census {
        deepsim::sgm::CENSUS_PENALTIES
    } else {
        deepsim::sgm::DEFAULT_PENALTIES
    }
}

/// Default share of the learned cost on the learned levels (`--learned-weight`).
const DEFAULT_LEARNED_WEIGHT: f32 = 0.5;

/// `--learned-weight`, or its default.
fn learned_weight(args: &MatchArgs) -> f32 {
    args.learned_weight.unwrap_or(DEFAULT_LEARNED_WEIGHT)
}

/// The learned backend as given (`--learned-weight 1`), or blended with a second instance of
/// the classical `--similarity` measure on the same candidates.
fn blend_with_classical(learned: Box<dyn Similarity>, args: &MatchArgs) -> anyhow::Result<Box<dyn Similarity>> {
    let weight = learned_weight(args);
    if !(0.0..=1.0).contains(&weight) {
        bail!("--learned-weight {weight}: must be between 0 and 1 (1 = the learned cost only)");
    }
    if weight == 1.0 {
        return Ok(learned);
    }
    if args.plugin.is_some() {
        if args.learned_weight.is_none() {
            return Ok(learned); // the blend is a census/NCC default; a plugin run keeps the model's cost
        }
        bail!("--learned-weight blends the model with --similarity census|ncc, not with a plugin");
    }
    Ok(Box::new(Blend::new(learned, build_similarity(args.similarity, &args.window)?, weight)?))
}

/// A plugin backend, and its description for the report.
pub fn build_plugin(path: &Path, options: &str, quiet: bool) -> anyhow::Result<(Box<dyn Similarity>, serde_json::Value)> {
    let plugin = PluginSimilarity::new(path, options)?;
    let lib = plugin.library();
    if !quiet {
        note!("deepsim: plugin {} from {} (ABI {})", lib.name(), lib.path().display(), lib.abi_version());
    }
    let report = json!({ "path": path, "name": lib.name(), "abi_version": lib.abi_version(), "options": options });
    Ok((Box::new(plugin), report))
}

/// `--feature-tile` and `--feature-margin` (None: the bundle's exact margin, see
/// [`Tiling::for_model`]).
#[derive(Clone, Copy)]
struct FeatureTiling {
    tile_px: usize,
    margin_px: Option<usize>,
}

/// How the model runs: the feature extractor's precision (`--precision`) and the MLP head
/// (`--mlp-top-k`, `--mlp-onnx`).
#[derive(Clone, Copy)]
struct ModelOptions {
    precision: Precision,
    top_k: usize,
    onnx: bool,
}

impl Default for ModelOptions {
    /// What a parameter file without these options gets (MicMac-style: the exact MLP).
    fn default() -> Self {
        ModelOptions { precision: Precision::Auto, top_k: 0, onnx: false }
    }
}

/// A learned backend from a bundle folder, and its description for the report.
fn build_learned(
    dir: &Path,
    head: Option<Head>,
    runtime: &dyn Runtime,
    tiling: FeatureTiling,
    mlp: ModelOptions,
    budget: u64,
    quiet: bool,
) -> anyhow::Result<(Box<dyn Similarity>, serde_json::Value)> {
    let (bundle, precision) = ModelBundle::open(dir)?.with_precision(mlp.precision, runtime)?;
    let tiling = Tiling::for_model(tiling.tile_px, tiling.margin_px, &bundle.features);
    if !quiet {
        note!("deepsim: model {} on {}, {} features ({})", dir.display(), runtime.name(), precision.chosen, precision.why);
    }
    // Feature windows sized so that the extractor's activations fit the memory budget.
    let mut learned = Learned::new(&bundle, runtime, head, tiling)?
        .with_mlp_top_k(mlp.top_k)
        .with_working_memory(pipeline::backend_working_share(budget));
    if mlp.onnx {
        learned = learned.with_onnx_mlp();
    }
    let mut report = json!({
        "bundle": bundle,
        "runtime": runtime.name(),
        "head": learned.head(),
        "feature_tiling": learned.tiling(),
        "precision": precision,
    });
    if let Some(engine) = learned.mlp_engine() {
        report["mlp"] = json!({ "engine": engine, "top_k": mlp.top_k, "macs_per_candidate": learned.mlp_macs_per_candidate() });
    }
    Ok((Box::new(learned), report))
}

fn execute(job: Job, quiet: bool) -> anyhow::Result<()> {
    execute_with(job, quiet, None)
}

/// Runs `job` and writes its outputs; with `remote`, each step's tiles are matched by the
/// runner it makes.
fn execute_with(job: Job, quiet: bool, remote: Option<RemoteFactory>) -> anyhow::Result<()> {
    deepsim::io::set_decode_limit(job.budget);
    // The folder first: from here on, whatever fails, the previous run's outputs are gone and
    // no other run writes here.
    let out = job.out.as_path();
    let mut names: Vec<String> = [DISPARITY_FILE, CONFIDENCE_FILE, PREVIEW_FILE].map(String::from).to_vec();
    names.extend(PRODUCT_FILES.map(String::from));
    let inputs: Vec<&Path> = [Some(&job.left), Some(&job.right), job.left_mask.as_ref(), job.right_mask.as_ref()]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
        .collect();
    let _folder = OutputFolder::prepare(out, REPORT_FILE, &names, &inputs)?;
    let scratch = job.scratch.as_deref().unwrap_or(out);
    let files = RunFiles {
        left: &job.left,
        right: &job.right,
        left_mask: job.left_mask.as_deref(),
        right_mask: job.right_mask.as_deref(),
        nodata: job.nodata,
    };
    let ReadInputs { config, storage, images, report: inputs, size: (w, h) } =
        read_inputs(&files, job.config, job.backends.len(), job.confidence, scratch)?;
    let backends: Vec<&dyn Similarity> = job.backends.iter().map(|b| b.as_ref()).collect();
    let remote = remote.map(|make| make(scratch, &config)).transpose()?;

    // The left image's georeferencing (GeoTIFF) goes onto the maps on its grid.
    let geo = read_geotags(&job.left)?;
    let mut files = vec![(DISPARITY_FILE.to_string(), Content::Disparity), (CONFIDENCE_FILE.to_string(), Content::Confidence)];
    if job.confidence {
        files.extend(product_files());
    }
    let mut maps = MapFiles::create(out, w, h, geo.as_ref(), &files, Some(PREVIEW_FILE))?;
    // A distributed run prints its own progress (tiles done per step).
    let bar = Bar::new(quiet || remote.is_some());
    let result = match &remote {
        None => pipeline::run_streamed(images, &config, &backends, &storage, &bar, &mut maps),
        Some(runner) => pipeline::run_streamed_remote(images, &config, &backends, &storage, &bar, &mut maps, runner.as_ref()),
    };
    bar.finish();
    let output = result?;
    let mut outputs = OutputSet::new();
    let written = maps.finish(out, &mut outputs)?;

    let density = output.with_value as f64 / (w * h) as f64;
    let facts = RunFacts {
        reports: &output.reports,
        times: &output.times,
        lr_rejected: output.lr_rejected,
        small_regions_removed: output.small_regions_removed,
        filled: output.filled,
        density,
    };
    let mut report = run_report(&facts, &config, &job.models, &job.plugin);
    report["command"] = json!(std::env::args().collect::<Vec<_>>());
    report["inputs"] = inputs;
    report["georeferenced"] = json!(geo.is_some());
    report["storage"] = json!(storage_name(&storage));
    report["confidence_products"] = json!(job.confidence.then(confidence_report));
    report["outputs"] = json!(written);
    if let Some(runner) = &remote {
        report["distributed"] = runner.report();
    }
    write_report(out, &report, outputs)?;

    if !quiet {
        note!(
            "deepsim: {w}×{h} px, disparities {}..{}, {} level(s), {}: {:.2} s, density {:.1} %, written to {}",
            config.disp_min,
            config.disp_max,
            config.levels(),
            output.reports.last().expect("at least one step").similarity,
            output.times.total,
            100.0 * density,
            out.display()
        );
    }
    Ok(())
}

/// What a run did, for [`run_report`].
pub(crate) struct RunFacts<'a> {
    pub(crate) reports: &'a [pipeline::StepReport],
    pub(crate) times: &'a pipeline::StageTimes,
    pub(crate) lr_rejected: usize,
    pub(crate) small_regions_removed: usize,
    pub(crate) filled: usize,
    /// Share of the left pixels with a disparity.
    pub(crate) density: f64,
}

/// run.json's fields about the run itself (similarities, models, parameters, steps, timings,
/// statistics, peak memory); the caller adds where the inputs came from and what was written
/// (`command`, `inputs`, `georeferenced`, `storage`, `confidence_products`, `outputs`). Also the
/// Python binding's `MatchResult.report`.
pub(crate) fn run_report(facts: &RunFacts, config: &MatchConfig, models: &[serde_json::Value], plugin: &Option<serde_json::Value>) -> serde_json::Value {
    let full = facts.reports.last().expect("at least one step");
    json!({
        "deepsim_version": env!("CARGO_PKG_VERSION"),
        "convention": "left pixel (x, y) matches right pixel (x - d, y)",
        "similarity": facts.reports.iter().map(|l| l.similarity.clone()).collect::<Vec<_>>(),
        "models": models,
        "plugin": plugin,
        "parameters": config,
        "threads": rayon::current_num_threads(),
        "steps": facts.reports,
        "timings_s": facts.times,
        "stats": {
            "cost_volume_entries": full.cost_volume_entries,
            "cost_volume_entries_all_levels": facts.reports.iter().map(|l| l.cost_volume_entries).sum::<usize>(),
            "lr_rejected": facts.lr_rejected,
            "small_regions_removed": facts.small_regions_removed,
            "filled": facts.filled,
            "density": facts.density,
        },
        "peak_memory_bytes": deepsim::report::peak_memory_bytes(),
    })
}

/// What run.json says of the confidence products: files, definitions and validity bits.
fn confidence_report() -> serde_json::Value {
    use deepsim::disparity::{ETA_COUNT, ETA_STEP};
    let bits: serde_json::Map<String, serde_json::Value> =
        validity::ALL.iter().map(|(bit, name)| (name.to_string(), json!(bit))).collect();
    json!({
        "files": PRODUCT_FILES,
        "costs": "raw costs of the last step's similarity (before regularisation), in units of the worst cost",
        "eta": { "first": 0.0, "step": ETA_STEP, "count": ETA_COUNT },
        "ambiguity": "mean over eta of the share of candidates within eta of the best cost, in (0, 1]",
        "risk_max_px": "mean over eta of the width of the candidates within eta (= disparity_max - disparity_min)",
        "risk_min_px": "mean over eta of the candidates missing inside that width",
        "disparity_min_max_px": "mean over eta of the lowest / highest disparity within eta of the best cost",
        "search_min_max_px": "the interval the last step searched (inherited from the coarser steps; the whole range at a single step)",
        "validity_bits": bits,
    })
}

/// Where the whole-level rasters were kept, for reports.
pub fn storage_name(storage: &Storage) -> serde_json::Value {
    match storage {
        Storage::Memory => json!("memory"),
        Storage::Scratch(dir) => json!({ "scratch": dir }),
    }
}

/// Writes `dir/run.json` into `outputs` (the run's files, still under temporary names), then
/// renames them all, `run.json` last: its presence marks the outputs as complete. A failure
/// while writing the report (a full disk) leaves none of the outputs behind.
pub fn write_report(dir: &Path, report: &serde_json::Value, mut outputs: OutputSet) -> anyhow::Result<()> {
    outputs.write(&dir.join(REPORT_FILE), |p| {
        let text = serde_json::to_string_pretty(report).map_err(|e| deepsim::Error::decode(p, e))?;
        let mut file = create_file(p)?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| deepsim::Error::io(p, e))
    })?;
    outputs.commit()?;
    Ok(())
}

/// Turns the raw arguments into a complete configuration (defaults resolved) for `pair`.
/// Backend 0 is the classical similarity, backend 1 the learned one when there is a model.
fn resolve(args: &MatchArgs, ((w, h), (right_width, _)): Sizes, learned: bool) -> anyhow::Result<MatchConfig> {
    let (disp_min, disp_max) = match (args.disp_min, args.disp_max) {
        (Some(lo), Some(hi)) => (lo, hi),
        (None, None) => {
            let quarter = (w / 4) as i32;
            (-quarter, quarter)
        }
        _ => bail!("give both --disp-min and --disp-max, or neither (automatic range ±width/4)"),
    };
    if !args.lr_check.is_finite() {
        bail!("--lr-check {}: give a tolerance in pixels (e.g. 1), or a negative number to turn the check off", args.lr_check);
    }
    let levels = args.levels.unwrap_or_else(|| auto_levels(w.min(right_width), h, disp_min, disp_max));
    let regularizer = match args.regularizer {
        Regularizer::Sgm => pipeline::Regularizer::Sgm(SgmParams {
            directions: args.directions,
            penalty: {
                let (p1, p2) = default_penalties(args);
                Penalty::Classic { p1: args.p1.unwrap_or(p1), p2: args.p2.unwrap_or(p2), p2_adapt: args.p2_adapt }
            },
        }),
        Regularizer::Micmac => pipeline::Regularizer::Micmac(LineParams {
            orientations: args.nb_dir,
            weight: args.zreg,
            max_slope: args.max_slope,
            mask: args.def_cor.map(|c| MaskLabel { cost: 1.0 - c, transition: args.cost_trans }),
        }),
        Regularizer::None => pipeline::Regularizer::None,
    };
    let propagation = Propagation {
        dilate_alti_px: args.dilate_alti,
        dilate_plani_px: args.dilate_plani,
        uncertain_full_range: !args.no_uncertain_full_range,
    };
    let steps = pyramid_steps(levels, regularizer, propagation, |level| usize::from(learned && level < args.learned_levels));
    Ok(MatchConfig {
        disp_min,
        disp_max,
        steps,
        subpixel: !args.no_subpixel,
        lr_check_px: (args.lr_check >= 0.0).then_some(args.lr_check),
        lr_check_mode: args.lr_check_mode,
        median: !args.no_median,
        min_region_px: args.min_region,
        fill: args.fill,
        keep_steps: false,
        tiles: (args.tile > 0).then_some(TileParams { size_px: args.tile, overlap_px: args.tile_overlap }),
        memory_budget: Some(memory_budget(args)?),
    })
}

/// `--max-memory`, or the default budget.
pub fn memory_budget(args: &MatchArgs) -> anyhow::Result<u64> {
    match &args.max_memory {
        None => Ok(pipeline::default_budget()),
        Some(text) => pipeline::parse_size(text).with_context(|| format!("--max-memory '{text}': expected a size such as 4G or 512M, at most 1 PiB")),
    }
}

pub fn build_similarity(kind: SimilarityKind, window: &str) -> anyhow::Result<Box<dyn Similarity>> {
    let (w, h) = parse_window(window).with_context(|| format!("--window '{window}': expected N or WxH, e.g. 7 or 9x7"))?;
    Ok(match kind {
        SimilarityKind::Census => Box::new(Census::new(w, h)?),
        SimilarityKind::Ncc => {
            if w != h {
                bail!("--window {window}: NCC uses a square window, e.g. --window 7");
            }
            Box::new(Ncc::new(w)?)
        }
    })
}
