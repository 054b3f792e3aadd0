//! `deepsim match`: resolve arguments, read inputs, run the pipeline, write outputs.

use super::args::{MatchArgs, Regularizer, SimilarityKind};
use super::progress::Bar;
use anyhow::{bail, Context};
use deepsim::io::{read_geotags, read_image, read_mask, write_preview_png, write_tiff_f32_geo, OutputSet, Raster, ReadOptions};
use deepsim::pipeline::{self, auto_levels, pyramid_steps, MatchConfig, Pair};
use deepsim::pyramid::Propagation;
use deepsim::sgm::lines::{LineParams, MaskLabel};
use deepsim::tiles::TileParams;
use deepsim::sgm::{Penalty, SgmParams};
use deepsim::model::ModelBundle;
use deepsim::plugin::PluginSimilarity;
use deepsim::similarity::{parse_window, Census, Head, Learned, Ncc, Similarity, Tiling};
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

/// Builds the configuration once the pair is read (command-line defaults depend on its size).
type ConfigFor<'a> = Box<dyn FnOnce(&Pair) -> anyhow::Result<MatchConfig> + 'a>;

/// A run to execute: inputs, outputs, configuration and backends, from the command line or a
/// `<DeepsimMatch>` file.
struct Job<'a> {
    left: PathBuf,
    right: PathBuf,
    left_mask: Option<PathBuf>,
    right_mask: Option<PathBuf>,
    nodata: Option<f32>,
    out: PathBuf,
    /// The configuration, given the pair (command-line defaults depend on the image size).
    config: ConfigFor<'a>,
    backends: Vec<Box<dyn Similarity>>,
    /// The models used, for the report.
    models: Vec<serde_json::Value>,
    /// The plugin used, for the report.
    plugin: Option<serde_json::Value>,
}

pub fn run(args: MatchArgs, quiet: bool) -> anyhow::Result<()> {
    if let Some(file) = &args.config {
        return match root_element(file)?.as_str() {
            ENGINE_ROOT => {
                if !args.overrides.is_empty() || args.left.is_some() || args.right.is_some() || args.out.is_some() {
                    bail!("{}: a <{ENGINE_ROOT}> file holds the whole run; edit it instead of adding --left/--right/--out or +Name=value", file.display());
                }
                execute(job_from_file(file, &args, quiet)?, quiet)
            }
            "ParamMICMAC" => super::micmac_cmd::run(file, &args, quiet),
            other => bail!("{}: root element <{other}>: expected <ParamMICMAC> (a MicMac file) or <{ENGINE_ROOT}> (docs/engine-xml.md)", file.display()),
        };
    }
    if !args.overrides.is_empty() {
        bail!("'{}': +Name=value overrides go with a MicMac parameter file (deepsim match CONFIG.xml +Im1=…)", args.overrides[0]);
    }
    execute(job_from_args(&args, quiet)?, quiet)
}

/// The root element's name of an XML file.
fn root_element(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(deepsim::micmac::parse_xml(&text, path)?.name)
}

fn job_from_args(args: &MatchArgs, quiet: bool) -> anyhow::Result<Job<'_>> {
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
            let device = super::runtime::DeviceArgs {
                device: args.device,
                device_id: args.device_id,
                trt_cache: args.trt_cache.clone(),
                trt_fp16: args.trt_fp16,
            };
            let runtime = super::runtime::build(args.runtime, device)?;
            let tiling = Tiling { tile_px: args.feature_tile, margin_px: args.feature_margin };
            let (learned, report) = build_learned(dir, args.head, runtime.as_ref(), tiling, quiet)?;
            backends.push(learned);
            models.push(json!({ "model": report, "learned_levels": args.learned_levels }));
        }
        None => {
            if args.head.is_some() {
                bail!("--head needs --model (a bundle folder with features.onnx [+ mlp.onnx])");
            }
        }
    }
    let learned = backends.len() > 1;
    Ok(Job {
        left: left.clone(),
        right: right.clone(),
        left_mask: args.left_mask.clone(),
        right_mask: args.right_mask.clone(),
        nodata: args.nodata,
        out: out.clone(),
        config: Box::new(move |pair| resolve(args, pair, learned)),
        backends,
        models,
        plugin,
    })
}

fn job_from_file<'a>(path: &Path, args: &MatchArgs, quiet: bool) -> anyhow::Result<Job<'a>> {
    let file = EngineFile::load(path)?;
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
                let tiling = Tiling { tile_px: args.feature_tile, margin_px: args.feature_margin };
                let (learned, report) = build_learned(dir, *head, runtime.as_ref(), tiling, quiet)?;
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
        config: Box::new(move |_| Ok(file.config)),
        backends,
        models,
        plugin: (!plugins.is_empty()).then(|| json!(plugins)),
    })
}

/// A plugin backend, and its description for the report.
pub fn build_plugin(path: &Path, options: &str, quiet: bool) -> anyhow::Result<(Box<dyn Similarity>, serde_json::Value)> {
    let plugin = PluginSimilarity::new(path, options)?;
    let lib = plugin.library();
    if !quiet {
        eprintln!("deepsim: plugin {} from {} (ABI {})", lib.name(), lib.path().display(), lib.abi_version());
    }
    let report = json!({ "path": path, "name": lib.name(), "abi_version": lib.abi_version(), "options": options });
    Ok((Box::new(plugin), report))
}

/// A learned backend from a bundle folder, and its description for the report.
fn build_learned(
    dir: &Path,
    head: Option<Head>,
    runtime: &dyn Runtime,
    tiling: Tiling,
    quiet: bool,
) -> anyhow::Result<(Box<dyn Similarity>, serde_json::Value)> {
    let bundle = ModelBundle::open(dir)?;
    if !quiet {
        eprintln!("deepsim: model {} on {}", dir.display(), runtime.name());
    }
    let learned = Learned::new(&bundle, runtime, head, tiling)?;
    Ok((Box::new(learned), json!({ "bundle": bundle, "runtime": runtime.name() })))
}

fn execute(job: Job, quiet: bool) -> anyhow::Result<()> {
    let options = ReadOptions { nodata: job.nodata };
    let left = read_image(&job.left, &options)?;
    let right = read_image(&job.right, &options)?;
    let pair = build_pair(&left, &right, job.left_mask.as_deref(), job.right_mask.as_deref())?;
    let inputs = json!({
        "left": describe(&job.left, &left),
        "right": describe(&job.right, &right),
        "left_mask": job.left_mask,
        "right_mask": job.right_mask,
        "nodata": job.nodata,
    });
    // The pair holds what matching needs; the decoded files are not kept beside it.
    drop((left, right));
    let config = (job.config)(&pair)?;
    let backends: Vec<&dyn Similarity> = job.backends.iter().map(|b| b.as_ref()).collect();
    config.validate(&pair, backends.len())?;
    let out = job.out.as_path();
    let left_path = job.left.as_path();

    prepare_output_dir(out)?;
    let bar = Bar::new(config.steps.len(), quiet);
    let result = pipeline::run(&pair, &config, &backends, &bar);
    bar.finish();
    let output = result?;

    let mut outputs = OutputSet::new();
    // The left image's georeferencing (GeoTIFF) goes onto the maps on its grid.
    let geo = read_geotags(left_path)?;
    outputs.write(&out.join(DISPARITY_FILE), |p| write_tiff_f32_geo(p, &output.disparity, geo.as_ref()))?;
    outputs.write(&out.join(CONFIDENCE_FILE), |p| write_tiff_f32_geo(p, &output.confidence, geo.as_ref()))?;
    outputs.write(&out.join(PREVIEW_FILE), |p| write_preview_png(p, &output.disparity))?;
    outputs.commit()?;

    let density = density(&output.disparity);
    let full = output.reports.last().expect("at least one step");
    let report = json!({
        "deepsim_version": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "convention": "left pixel (x, y) matches right pixel (x - d, y)",
        "inputs": inputs,
        "georeferenced": geo.is_some(),
        "similarity": output.reports.iter().map(|l| l.similarity.clone()).collect::<Vec<_>>(),
        "models": job.models,
        "plugin": job.plugin,
        "parameters": config,
        "threads": rayon::current_num_threads(),
        "steps": output.reports,
        "timings_s": output.times,
        "stats": {
            "cost_volume_entries": full.cost_volume_entries,
            "cost_volume_entries_all_levels": output.reports.iter().map(|l| l.cost_volume_entries).sum::<usize>(),
            "lr_rejected": output.lr_rejected,
            "small_regions_removed": output.small_regions_removed,
            "filled": output.filled,
            "density": density,
        },
        "peak_memory_bytes": deepsim::report::peak_memory_bytes(),
        "outputs": [DISPARITY_FILE, CONFIDENCE_FILE, PREVIEW_FILE],
    });
    write_report(out, &report)?;

    if !quiet {
        eprintln!(
            "deepsim: {}×{} px, disparities {}..{}, {} level(s), {}: {:.2} s, density {:.1} %, written to {}",
            pair.left.ncols(),
            pair.left.nrows(),
            config.disp_min,
            config.disp_max,
            config.levels(),
            full.similarity,
            output.times.total,
            100.0 * density,
            out.display()
        );
    }
    Ok(())
}

/// Creates `dir` and removes a stale report there: it would vouch for outputs this run is about
/// to replace.
pub fn prepare_output_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create output folder {}", dir.display()))?;
    let report_path = dir.join(REPORT_FILE);
    if report_path.exists() {
        std::fs::remove_file(&report_path).with_context(|| format!("cannot remove {}", report_path.display()))?;
    }
    Ok(())
}

/// Writes `dir/run.json`, the last file of a run: its presence marks the outputs as complete.
pub fn write_report(dir: &Path, report: &serde_json::Value) -> anyhow::Result<()> {
    let mut last = OutputSet::new();
    last.write(&dir.join(REPORT_FILE), |p| {
        std::fs::write(p, serde_json::to_string_pretty(report).expect("serialisable")).map_err(|e| deepsim::Error::io(p, e))
    })?;
    last.commit()?;
    Ok(())
}

/// The share of pixels with a value.
pub fn density(disparity: &ndarray::Array2<f32>) -> f64 {
    disparity.iter().filter(|d| d.is_finite()).count() as f64 / disparity.len() as f64
}

pub fn describe(path: &Path, raster: &Raster) -> serde_json::Value {
    json!({
        "path": path,
        "width": raster.width(),
        "height": raster.height(),
        "sample_format": raster.format,
        "valid_pixels": raster.valid.iter().filter(|v| **v).count(),
    })
}

/// Grey values in [0, 1] and validity (file validity ∧ mask) of both images.
pub fn build_pair(left: &Raster, right: &Raster, left_mask: Option<&Path>, right_mask: Option<&Path>) -> anyhow::Result<Pair> {
    let valid = |raster: &Raster, mask: Option<&Path>| -> anyhow::Result<ndarray::Array2<bool>> {
        let mut valid = raster.valid.clone();
        if let Some(path) = mask {
            let m = read_mask(path)?;
            if m.dim() != valid.dim() {
                bail!(
                    "mask {} is {}×{} but its image is {}×{}",
                    path.display(),
                    m.ncols(),
                    m.nrows(),
                    raster.width(),
                    raster.height()
                );
            }
            ndarray::Zip::from(&mut valid).and(&m).for_each(|v, &k| *v &= k);
        }
        Ok(valid)
    };
    Ok(Pair {
        left: left.to_unit(),
        right: right.to_unit(),
        left_valid: valid(left, left_mask)?,
        right_valid: valid(right, right_mask)?,
    })
}

/// Turns the raw arguments into a complete configuration (defaults resolved) for `pair`.
/// Backend 0 is the classical similarity, backend 1 the learned one when there is a model.
fn resolve(args: &MatchArgs, pair: &Pair, learned: bool) -> anyhow::Result<MatchConfig> {
    let (h, w) = pair.left.dim();
    let (disp_min, disp_max) = match (args.disp_min, args.disp_max) {
        (Some(lo), Some(hi)) => (lo, hi),
        (None, None) => {
            let quarter = (w / 4) as i32;
            (-quarter, quarter)
        }
        _ => bail!("give both --disp-min and --disp-max, or neither (automatic range ±width/4)"),
    };
    let levels = args.levels.unwrap_or_else(|| auto_levels(w.min(pair.right.ncols()), h, disp_min, disp_max));
    let regularizer = match args.regularizer {
        Regularizer::Sgm => pipeline::Regularizer::Sgm(SgmParams {
            directions: args.directions,
            penalty: Penalty::Classic { p1: args.p1, p2: args.p2, p2_adapt: args.p2_adapt },
        }),
        Regularizer::Micmac => pipeline::Regularizer::Micmac(LineParams {
            orientations: args.nb_dir,
            weight: args.zreg,
            max_slope: args.max_slope,
            mask: args.def_cor.map(|c| MaskLabel { cost: 1.0 - c, transition: args.cost_trans }),
        }),
        Regularizer::None => pipeline::Regularizer::None,
    };
    let propagation = Propagation { dilate_alti_px: args.dilate_alti, dilate_plani_px: args.dilate_plani };
    let steps = pyramid_steps(levels, regularizer, propagation, |level| usize::from(learned && level < args.learned_levels));
    Ok(MatchConfig {
        disp_min,
        disp_max,
        steps,
        subpixel: !args.no_subpixel,
        lr_check_px: (args.lr_check >= 0.0).then_some(args.lr_check),
        median: !args.no_median,
        min_region_px: args.min_region,
        fill: args.fill,
        keep_steps: false,
        tiles: (args.tile > 0).then_some(TileParams { size_px: args.tile, overlap_px: args.tile_overlap }),
    })
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
