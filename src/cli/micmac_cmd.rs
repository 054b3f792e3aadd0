//! `deepsim match CONFIG.xml +Name=value …`: runs a MicMac parameter file as `mm3d MICMAC`
//! would, and writes MicMac's per-step files next to the engine's own outputs.
//!
//! Paths in the file (images, masks, DirMEC, model folders) are relative to the working
//! directory, as MicMac's `<WorkDir> ThisDir` means.

use super::args::MatchArgs;
use super::match_cmd::{build_pair, build_plugin, density, describe, prepare_output_dir, write_report};
use super::match_cmd::{CONFIDENCE_FILE, DISPARITY_FILE, PREVIEW_FILE, REPORT_FILE};
use super::progress::Bar;
use anyhow::{bail, Context};
use deepsim::io::{read_geotags, read_image, write_preview_png, write_tiff_f32_geo, write_tiff_u8_geo, GeoTags, OutputSet, ReadOptions};
use deepsim::micmac::{resolve_model, BackendSpec, MaskRule, MicmacFile, MicmacPlan};
use deepsim::model::ModelBundle;
use deepsim::pipeline;
use deepsim::similarity::{Head, Learned, Ncc, Similarity, Tiling};
use ndarray::Array2;
use serde_json::json;
use std::path::{Path, PathBuf};

pub fn run(file: &Path, args: &MatchArgs, quiet: bool) -> anyhow::Result<()> {
    if args.left.is_some() || args.right.is_some() || args.out.is_some() {
        bail!("a MicMac parameter file names its images and output folder: use +Im1=… +Im2=… +DirMEC=… instead of --left/--right/--out");
    }
    let overrides = parse_overrides(&args.overrides)?;
    let micmac = MicmacFile::load(file, &overrides)?;
    if !quiet && !micmac.no_effect.is_empty() {
        eprintln!("deepsim: warning: {} tags have no effect in this engine: {}", micmac.no_effect.len(), micmac.no_effect.join(", "));
    }
    let cfg = &micmac.config;
    let plan = MicmacPlan::new(cfg, file)?;
    let work_dir = std::env::current_dir().context("cannot read the current directory")?;

    let options = ReadOptions { nodata: args.nodata };
    let (im1, im2) = (work_dir.join(&cfg.im1), work_dir.join(&cfg.im2));
    let left = read_image(&im1, &options)?;
    let right = read_image(&im2, &options)?;
    let (mask1, mask2) = match &cfg.masks {
        Some(rule) => (find_mask(rule, &cfg.im1, &work_dir)?, find_mask(rule, &cfg.im2, &work_dir)?),
        None => (None, None),
    };
    let pair = build_pair(&left, &right, mask1.as_deref(), mask2.as_deref())?;

    let runtime = super::runtime::build(
        args.runtime,
        super::runtime::DeviceArgs {
            device: args.device,
            device_id: args.device_id,
            trt_cache: args.trt_cache.clone(),
            trt_fp16: args.trt_fp16,
        },
    )?;
    let tiling = Tiling { tile_px: args.feature_tile, margin_px: args.feature_margin };
    let mut backends: Vec<Box<dyn Similarity>> = Vec::new();
    let mut models = Vec::new();
    for spec in &plan.backends {
        backends.push(match spec {
            BackendSpec::Ncc { window } => Box::new(Ncc::new(*window)?),
            BackendSpec::Plugin { path, options } => build_plugin(&work_dir.join(path), options, quiet)?.0,
            BackendSpec::Learned { params, mlp } => {
                let dir = resolve_model(params, &work_dir, args.models.as_deref())?;
                let bundle = ModelBundle::open(&dir)?;
                let head = if *mlp { Head::Mlp } else { Head::Cosine };
                let learned = Learned::new(&bundle, runtime.as_ref(), Some(head), tiling)
                    .with_context(|| format!("FileModeleParams '{params}' → {}", dir.display()))?;
                if !quiet {
                    eprintln!("deepsim: {params} → model {} ({head:?} head) on {}", dir.display(), runtime.name());
                }
                models.push(json!({ "params": params, "bundle": bundle, "head": head }));
                Box::new(learned)
            }
        });
    }
    let backend_refs: Vec<&dyn Similarity> = backends.iter().map(|b| b.as_ref()).collect();
    plan.config.validate(&pair, backend_refs.len())?;

    let dir_mec = work_dir.join(&cfg.dir_mec);
    prepare_output_dir(&dir_mec)?;
    let bar = Bar::new(plan.config.steps.len(), quiet);
    let result = pipeline::run(&pair, &plan.config, &backend_refs, &bar);
    bar.finish();
    let output = result?;

    let geo = read_geotags(&im1)?;
    let mut files = Files { dir: &dir_mec, outputs: OutputSet::new(), written: Vec::new(), geo: None };
    for (i, step) in output.steps.iter().enumerate() {
        let (number, dezoom) = (plan.numbers[i], plan.dezooms[i]);
        files.geo = geo.as_ref().map(|g| g.scaled(dezoom));
        let px1 = step.disparity.mapv(|d| -(d as f32));
        files.f32(format!("Px1_Num{number}_DeZoom{dezoom}_LeChantier.tif"), &px1)?;
        files.f32(format!("Px2_Num{number}_DeZoom{dezoom}_LeChantier.tif"), &Array2::zeros(px1.dim()))?;
        if plan.correl_images[i] {
            let correl = step.confidence.mapv(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8);
            files.u8(format!("Correl_LeChantier_Num_{number}.tif"), &correl)?;
        }
        if let Some(masked) = &step.masked {
            files.u8(format!("AutoMask_LeChantier_Num_{number}.tif"), &masked.mapv(|m| u8::from(!m)))?;
        }
    }
    files.geo = geo.clone();
    if let Some(number) = plan.dequant {
        let px1 = output.disparity.mapv(|d| -d);
        files.f32(format!("Px1_Num{number}_DeZoom1_LeChantier.tif"), &px1)?;
        files.f32(format!("Px2_Num{number}_DeZoom1_LeChantier.tif"), &Array2::zeros(px1.dim()))?;
    }
    files.f32(DISPARITY_FILE.to_string(), &output.disparity)?;
    files.f32(CONFIDENCE_FILE.to_string(), &output.confidence)?;
    files.outputs.write(&dir_mec.join(PREVIEW_FILE), |p| write_preview_png(p, &output.disparity))?;
    files.written.push(PREVIEW_FILE.to_string());
    let written = files.commit()?;

    let density = density(&output.disparity);
    let report = json!({
        "deepsim_version": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "convention": "disparity.tif: left pixel (x, y) matches right pixel (x - d, y); Px1_*.tif hold MicMac's Px1 = -d (x_right = x_left + Px1)",
        "micmac_file": micmac,
        "work_dir": work_dir,
        "inputs": {
            "left": describe(&im1, &left),
            "right": describe(&im2, &right),
            "left_mask": mask1,
            "right_mask": mask2,
        },
        "models": models,
        "runtime": runtime.name(),
        "plan": plan,
        "threads": rayon::current_num_threads(),
        "steps": output.reports,
        "timings_s": output.times,
        "stats": { "density": density },
        "peak_memory_bytes": deepsim::report::peak_memory_bytes(),
        "outputs": written,
    });
    write_report(&dir_mec, &report)?;
    if !quiet {
        eprintln!(
            "deepsim: {} steps, {:.2} s, density {:.1} %, written to {} ({REPORT_FILE} last)",
            plan.config.steps.len(),
            output.times.total,
            100.0 * density,
            dir_mec.display()
        );
    }
    Ok(())
}

/// `+Name=value` arguments as (name, value) pairs.
fn parse_overrides(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    raw.iter()
        .map(|arg| {
            let body = arg.strip_prefix('+').with_context(|| {
                format!("'{arg}': after the parameter file, arguments are +Name=value overrides (e.g. +Im1=left.tif)")
            })?;
            match body.split_once('=') {
                Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
                _ => bail!("'{arg}': expected +Name=value (e.g. +DirMEC=OUT)"),
            }
        })
        .collect()
}

/// The mask of `image` by MicMac's rule: `PatternSel` must match the whole name, `NomMasq`
/// takes its groups (`$1` …). A missing file is "all valid" with `AcceptNonExistingFile`.
fn find_mask(rule: &MaskRule, image: &str, work_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let pattern = regex::Regex::new(&format!("^(?:{})$", rule.pattern.trim()))
        .with_context(|| format!("<MasqImageIn/OneMasqueImage/PatternSel> '{}' is not a valid regular expression", rule.pattern))?;
    let Some(captures) = pattern.captures(image) else {
        return Ok(None);
    };
    let mut name = String::new();
    captures.expand(rule.name.trim(), &mut name);
    let path = work_dir.join(&name);
    if path.is_file() {
        Ok(Some(path))
    } else if rule.accept_missing {
        Ok(None)
    } else {
        bail!(
            "mask {} of image {image} (<MasqImageIn> {} → {}) not found; create it or set <AcceptNonExistingFile> true",
            path.display(),
            rule.pattern.trim(),
            rule.name.trim()
        )
    }
}

/// The outputs of a run, written as `*.partial` files and renamed together by [`Files::commit`].
/// MicMac's step files: `Px1_Num{N}_DeZoom{Z}_LeChantier.tif` (Px1 = −d, float), `Px2_…` (zeros),
/// `Correl_LeChantier_Num_{N}.tif` (confidence × 255) and `AutoMask_LeChantier_Num_{N}.tif`
/// (1 = a disparity, 0 = the occlusion label).
struct Files<'a> {
    dir: &'a Path,
    outputs: OutputSet,
    written: Vec<String>,
    /// Georeferencing of the images being written (the left input's, scaled to their zoom).
    geo: Option<GeoTags>,
}

impl Files<'_> {
    fn f32(&mut self, name: String, values: &Array2<f32>) -> anyhow::Result<()> {
        self.outputs.write(&self.dir.join(&name), |p| write_tiff_f32_geo(p, values, self.geo.as_ref()))?;
        self.written.push(name);
        Ok(())
    }

    fn u8(&mut self, name: String, values: &Array2<u8>) -> anyhow::Result<()> {
        self.outputs.write(&self.dir.join(&name), |p| write_tiff_u8_geo(p, values, self.geo.as_ref()))?;
        self.written.push(name);
        Ok(())
    }

    fn commit(self) -> anyhow::Result<Vec<String>> {
        self.outputs.commit()?;
        Ok(self.written)
    }
}
