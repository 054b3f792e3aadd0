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
use deepsim::similarity::{Census, Learned, Ncc, Similarity, Tiling};
use serde_json::json;
use std::path::Path;

/// Outputs written by a run; `run.json` is written last and marks the run as complete.
pub const DISPARITY_FILE: &str = "disparity.tif";
pub const CONFIDENCE_FILE: &str = "confidence.tif";
pub const PREVIEW_FILE: &str = "disparity.png";
pub const REPORT_FILE: &str = "run.json";

pub fn run(args: MatchArgs, quiet: bool) -> anyhow::Result<()> {
    if let Some(file) = &args.config {
        return super::micmac_cmd::run(file, &args, quiet);
    }
    if !args.overrides.is_empty() {
        bail!("'{}': +Name=value overrides go with a MicMac parameter file (deepsim match CONFIG.xml +Im1=…)", args.overrides[0]);
    }
    let (Some(left_path), Some(right_path), Some(out)) = (&args.left, &args.right, &args.out) else {
        bail!("give --left, --right and --out (or a MicMac parameter file)");
    };
    let options = ReadOptions { nodata: args.nodata };
    let left = read_image(left_path, &options)?;
    let right = read_image(right_path, &options)?;
    let pair = build_pair(&left, &right, args.left_mask.as_deref(), args.right_mask.as_deref())?;
    let similarity = build_similarity(args.similarity, &args.window)?;
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
    let mut backends: Vec<&dyn Similarity> = vec![similarity.as_ref()];
    if let Some((model, _, _)) = &learned {
        backends.push(model);
    }
    let config = resolve(&args, &pair, learned.is_some())?;
    config.validate(&pair, backends.len())?;

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
        "inputs": {
            "left": describe(left_path, &left),
            "georeferenced": geo.is_some(),
            "right": describe(right_path, &right),
            "left_mask": args.left_mask,
            "right_mask": args.right_mask,
            "nodata": args.nodata,
        },
        "similarity": output.reports.iter().map(|l| l.similarity.clone()).collect::<Vec<_>>(),
        "model": learned.as_ref().map(|(_, bundle, runtime)| json!({ "bundle": bundle, "runtime": runtime, "learned_levels": args.learned_levels })),
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

/// Turns the raw arguments into a complete configuration (defaults resolved). Backend 0 is
/// the classical similarity, backend 1 the learned one when there is a model.
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

pub fn build_similarity(kind: SimilarityKind, window: &str) -> anyhow::Result<Box<dyn Similarity>> {
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
