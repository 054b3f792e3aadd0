//! `deepsim match`: resolve arguments, read inputs, run the pipeline, write outputs.

use super::args::{MatchArgs, Regularizer, SimilarityKind};
use super::progress::Bar;
use anyhow::{bail, Context};
use deepsim::io::{read_image, read_mask, write_preview_png, write_tiff_f32, OutputSet, Raster, ReadOptions};
use deepsim::pipeline::{self, auto_levels, MatchConfig, Pair};
use deepsim::pyramid::Propagation;
use deepsim::sgm::{Penalty, SgmParams};
use deepsim::model::ModelBundle;
use deepsim::plugin::PluginSimilarity;
use deepsim::similarity::{Census, Learned, Ncc, Similarity, Tiling};
use serde_json::json;
use std::path::Path;

/// Outputs written by a run; `run.json` is written last and marks the run as complete.
pub const DISPARITY_FILE: &str = "disparity.tif";
pub const CONFIDENCE_FILE: &str = "confidence.tif";
pub const PREVIEW_FILE: &str = "disparity.png";
pub const REPORT_FILE: &str = "run.json";

pub fn run(args: MatchArgs, quiet: bool) -> anyhow::Result<()> {
    let options = ReadOptions { nodata: args.nodata };
    let left = read_image(&args.left, &options)?;
    let right = read_image(&args.right, &options)?;
    let pair = build_pair(&left, &right, args.left_mask.as_deref(), args.right_mask.as_deref())?;
    let config = resolve(&args, &pair)?;
    config.validate(&pair)?;
    // --plugin replaces --similarity (clap refuses both together).
    let (similarity, plugin_report): (Box<dyn Similarity>, _) = match &args.plugin {
        Some(path) => {
            let options = args.plugin_options.as_deref().unwrap_or("");
            let plugin = PluginSimilarity::new(path, options)?;
            let lib = plugin.library();
            if !quiet {
                eprintln!("deepsim: plugin {} from {} (ABI {})", lib.name(), lib.path().display(), lib.abi_version());
            }
            let report = json!({ "path": path, "name": lib.name(), "abi_version": lib.abi_version(), "options": options });
            (Box::new(plugin), Some(report))
        }
        None => (build_similarity(args.similarity, &args.window)?, None),
    };
    let learned = match &args.model {
        Some(dir) => {
            let bundle = ModelBundle::open(dir)?;
            let runtime = super::runtime::build(
                args.runtime,
                super::runtime::DeviceArgs {
                    device: args.device,
                    device_id: args.device_id,
                    trt_cache: args.trt_cache.clone(),
                    trt_fp16: args.trt_fp16,
                },
            )?;
            if !quiet {
                eprintln!("deepsim: model {} on {}", dir.display(), runtime.name());
            }
            let tiling = Tiling { tile_px: args.feature_tile, margin_px: args.feature_margin };
            Some((Learned::new(&bundle, runtime.as_ref(), args.head, tiling)?, bundle, runtime.name()))
        }
        None => {
            if args.head.is_some() {
                bail!("--head needs --model (a bundle folder with features.onnx [+ mlp.onnx])");
            }
            None
        }
    };
    let similarity_at = |level: u32| -> &dyn Similarity {
        match &learned {
            Some((model, _, _)) if level < args.learned_levels => model,
            _ => similarity.as_ref(),
        }
    };

    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create output folder {}", args.out.display()))?;
    // A stale report would vouch for outputs this run is about to replace.
    let report_path = args.out.join(REPORT_FILE);
    if report_path.exists() {
        std::fs::remove_file(&report_path).with_context(|| format!("cannot remove {}", report_path.display()))?;
    }

    let bar = Bar::new(config.levels, quiet);
    let result = pipeline::run(&pair, &config, &similarity_at, &bar);
    bar.finish();
    let output = result?;

    let mut outputs = OutputSet::new();
    outputs.write(&args.out.join(DISPARITY_FILE), |p| write_tiff_f32(p, &output.disparity))?;
    outputs.write(&args.out.join(CONFIDENCE_FILE), |p| write_tiff_f32(p, &output.confidence))?;
    outputs.write(&args.out.join(PREVIEW_FILE), |p| write_preview_png(p, &output.disparity))?;
    outputs.commit()?;

    let valid = output.disparity.iter().filter(|d| d.is_finite()).count();
    let density = valid as f64 / output.disparity.len() as f64;
    let full = output.levels.last().expect("at least one level");
    let report = json!({
        "deepsim_version": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "convention": "left pixel (x, y) matches right pixel (x - d, y)",
        "inputs": {
            "left": describe(&args.left, &left),
            "right": describe(&args.right, &right),
            "left_mask": args.left_mask,
            "right_mask": args.right_mask,
            "nodata": args.nodata,
        },
        "similarity": output.levels.iter().map(|l| l.similarity.clone()).collect::<Vec<_>>(),
        "plugin": plugin_report,
        "model": learned.as_ref().map(|(_, bundle, runtime)| json!({ "bundle": bundle, "runtime": runtime, "learned_levels": args.learned_levels })),
        "parameters": config,
        "threads": rayon::current_num_threads(),
        "levels": output.levels,
        "timings_s": output.times,
        "stats": {
            "cost_volume_entries": full.cost_volume_entries,
            "cost_volume_entries_all_levels": output.levels.iter().map(|l| l.cost_volume_entries).sum::<usize>(),
            "lr_rejected": output.lr_rejected,
            "small_regions_removed": output.small_regions_removed,
            "filled": output.filled,
            "density": density,
        },
        "peak_memory_bytes": deepsim::report::peak_memory_bytes(),
        "outputs": [DISPARITY_FILE, CONFIDENCE_FILE, PREVIEW_FILE],
    });
    let mut last = OutputSet::new();
    last.write(&report_path, |p| {
        std::fs::write(p, serde_json::to_string_pretty(&report).expect("serialisable"))
            .map_err(|e| deepsim::Error::io(p, e))
    })?;
    last.commit()?;

    if !quiet {
        eprintln!(
            "deepsim: {}×{} px, disparities {}..{}, {} level(s), {}: {:.2} s, density {:.1} %, written to {}",
            pair.left.ncols(),
            pair.left.nrows(),
            config.disp_min,
            config.disp_max,
            config.levels,
            output.levels.last().map(|l| l.similarity.clone()).unwrap_or_default(),
            output.times.total,
            100.0 * density,
            args.out.display()
        );
    }
    Ok(())
}

fn describe(path: &Path, raster: &Raster) -> serde_json::Value {
    json!({
        "path": path,
        "width": raster.width(),
        "height": raster.height(),
        "sample_format": raster.format,
        "valid_pixels": raster.valid.iter().filter(|v| **v).count(),
    })
}

/// Grey values in [0, 1] and validity (file validity ∧ mask) of both images.
fn build_pair(left: &Raster, right: &Raster, left_mask: Option<&Path>, right_mask: Option<&Path>) -> anyhow::Result<Pair> {
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

/// Turns the raw arguments into a complete configuration (defaults resolved).
fn resolve(args: &MatchArgs, pair: &Pair) -> anyhow::Result<MatchConfig> {
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
    let sgm = match args.regularizer {
        Regularizer::Sgm => Some(SgmParams {
            directions: args.directions,
            penalty: Penalty::Classic { p1: args.p1, p2: args.p2, p2_adapt: args.p2_adapt },
        }),
        Regularizer::Micmac => Some(SgmParams {
            directions: args.directions,
            penalty: Penalty::Linear { weight: args.zreg, max_slope: args.max_slope },
        }),
        Regularizer::None => None,
    };
    Ok(MatchConfig {
        disp_min,
        disp_max,
        levels,
        sgm,
        propagation: Propagation { dilate_alti_px: args.dilate_alti, dilate_plani_px: args.dilate_plani },
        subpixel: !args.no_subpixel,
        lr_check_px: (args.lr_check >= 0.0).then_some(args.lr_check),
        median: !args.no_median,
        min_region_px: args.min_region,
        fill: args.fill,
    })
}

/// Parses "WxH" or "N" into (width, height).
fn parse_window(spec: &str) -> anyhow::Result<(usize, usize)> {
    let parse = |s: &str| s.trim().parse::<usize>().with_context(|| format!("--window '{spec}': expected N or WxH, e.g. 7 or 9x7"));
    match spec.split_once(['x', 'X']) {
        Some((a, b)) => Ok((parse(a)?, parse(b)?)),
        None => {
            let n = parse(spec)?;
            Ok((n, n))
        }
    }
}

fn build_similarity(kind: SimilarityKind, window: &str) -> anyhow::Result<Box<dyn Similarity>> {
    let (w, h) = parse_window(window)?;
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
