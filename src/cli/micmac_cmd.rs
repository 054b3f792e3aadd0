//! `deepsim match CONFIG.xml +Name=value …`: runs a MicMac parameter file as `mm3d MICMAC`
//! would, and writes MicMac's per-step files next to the engine's own outputs.
//!
//! Paths in the file (images, masks, DirMEC, model folders) are relative to the working
//! directory, as MicMac's `<WorkDir> ThisDir` means.

use super::args::MatchArgs;
use super::maps::{write_grid, Content, MapFiles};
use super::match_cmd::{build_plugin, memory_budget, storage_name, write_report};
use super::match_cmd::{CONFIDENCE_FILE, DISPARITY_FILE, PREVIEW_FILE, REPORT_FILE};
use super::progress::Bar;
use anyhow::{bail, Context};
use deepsim::io::{read_geotags, OutputFolder, OutputSet, ReadOptions};
use deepsim::micmac::{resolve_model, BackendSpec, MaskRule, MicmacFile, MicmacPlan};
use deepsim::model::ModelBundle;
use deepsim::pipeline::{self, InputImage};
use deepsim::similarity::{Head, Learned, Ncc, Similarity, Tiling};
use serde_json::json;
use std::path::{Path, PathBuf};

pub fn run(file: &Path, args: &MatchArgs, quiet: bool) -> anyhow::Result<()> {
    if args.left.is_some() || args.right.is_some() || args.out.is_some() {
        bail!("a MicMac parameter file names its images and output folder: use +Im1=… +Im2=… +DirMEC=… instead of --left/--right/--out");
    }
    let overrides = parse_overrides(&args.overrides)?;
    let micmac = MicmacFile::load(file, &overrides)?;
    if !quiet && !micmac.no_effect.is_empty() {
        note!("deepsim: warning: {} tags have no effect in this engine: {}", micmac.no_effect.len(), micmac.no_effect.join(", "));
    }
    let cfg = &micmac.config;
    let plan = MicmacPlan::new(cfg, file)?;
    let work_dir = std::env::current_dir().context("cannot read the current directory")?;

    let budget = memory_budget(args)?;
    deepsim::io::set_decode_limit(budget);
    let options = ReadOptions { nodata: args.nodata };
    let (im1, im2) = (work_dir.join(&cfg.im1), work_dir.join(&cfg.im2));
    let (mask1, mask2) = match &cfg.masks {
        Some(rule) => (find_mask(rule, &cfg.im1, &work_dir)?, find_mask(rule, &cfg.im2, &work_dir)?),
        None => (None, None),
    };
    // The folder first: from here on, whatever fails, the previous run's outputs are gone and
    // no other run writes here.
    let dir_mec = work_dir.join(&cfg.dir_mec);
    let inputs: Vec<&Path> =
        [Some(&im1), Some(&im2), mask1.as_ref(), mask2.as_ref()].into_iter().flatten().map(PathBuf::as_path).collect();
    let _folder = OutputFolder::prepare(&dir_mec, REPORT_FILE, &output_names(&plan), &inputs)?;
    let left = InputImage::open(&im1, mask1.as_deref(), &options)?;
    let right = InputImage::open(&im2, mask2.as_deref(), &options)?;
    let (size_left, size_right) = (left.size(), right.size());

    let runtime = super::runtime::build(
        args.runtime,
        super::runtime::DeviceArgs {
            device: args.device,
            device_id: args.device_id,
            trt_cache: args.trt_cache.clone(),
            trt_fp16: args.trt_fp16,
        },
    )?;
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
                let tiling = Tiling::for_model(args.feature_tile, args.feature_margin, &bundle.features);
                let learned = Learned::new(&bundle, runtime.as_ref(), Some(head), tiling)
                    .with_context(|| format!("FileModeleParams '{params}' → {}", dir.display()))?
                    .with_working_memory(pipeline::backend_working_share(budget));
                if !quiet {
                    note!("deepsim: {params} → model {} ({head:?} head) on {}", dir.display(), runtime.name());
                }
                models.push(json!({ "params": params, "bundle": bundle, "head": head, "feature_tiling": learned.tiling() }));
                Box::new(learned)
            }
        });
    }
    let backend_refs: Vec<&dyn Similarity> = backends.iter().map(|b| b.as_ref()).collect();
    let mut config = plan.config.clone();
    config.memory_budget = Some(budget);
    config
        .validate_sizes(size_left, size_right, backend_refs.len())
        .with_context(|| format!("Im1 {}, Im2 {}", im1.display(), im2.display()))?;

    let (w, h) = size_left;
    let scratch = args.scratch.as_deref().unwrap_or(&dir_mec);
    let storage = pipeline::storage_for(config.memory_budget, w, h, config.keep_steps, scratch);
    let band_rows = pipeline::input_band_rows(config.memory_budget, w.max(size_right.0));
    let (images, [left_report, right_report]) = pipeline::load_pair(left, right, &storage, band_rows)?;

    // The final maps stream to their files while the last step is filtered.
    let geo = read_geotags(&im1)?;
    let mut final_files = vec![(DISPARITY_FILE.to_string(), Content::Disparity), (CONFIDENCE_FILE.to_string(), Content::Confidence)];
    if let Some(number) = plan.dequant {
        final_files.push((format!("Px1_Num{number}_DeZoom1_LeChantier.tif"), Content::Px1));
        final_files.push((format!("Px2_Num{number}_DeZoom1_LeChantier.tif"), Content::Zeros));
    }
    let mut maps = MapFiles::create(&dir_mec, w, h, geo.as_ref(), &final_files, Some(PREVIEW_FILE))?;
    let bar = Bar::new(quiet);
    let result = pipeline::run_streamed(images, &config, &backend_refs, &storage, &bar, &mut maps);
    bar.finish();
    let output = result?;

    let mut outputs = OutputSet::new();
    let mut written = Vec::new();
    for (i, step) in output.steps.iter().enumerate() {
        let (number, dezoom) = (plan.numbers[i], plan.dezooms[i]);
        let geo = geo.as_ref().map(|g| g.scaled(dezoom));
        let geo = geo.as_ref();
        let px1 = format!("Px1_Num{number}_DeZoom{dezoom}_LeChantier.tif");
        write_grid(&dir_mec, &px1, &step.disparity, geo, &mut outputs, |d| -(d as f32))?;
        let px2 = format!("Px2_Num{number}_DeZoom{dezoom}_LeChantier.tif");
        write_grid(&dir_mec, &px2, &step.disparity, geo, &mut outputs, |_| 0f32)?;
        written.extend([px1, px2]);
        if plan.correl_images[i] {
            let correl = format!("Correl_LeChantier_Num_{number}.tif");
            write_grid(&dir_mec, &correl, &step.confidence, geo, &mut outputs, |c| (c.clamp(0.0, 1.0) * 255.0).round() as u8)?;
            written.push(correl);
        }
        if let Some(masked) = &step.masked {
            let auto_mask = format!("AutoMask_LeChantier_Num_{number}.tif");
            write_grid(&dir_mec, &auto_mask, masked, geo, &mut outputs, |m| u8::from(!m))?;
            written.push(auto_mask);
        }
    }
    written.extend(maps.finish(&dir_mec, &mut outputs)?);

    let density = output.with_value as f64 / (w * h) as f64;
    let report = json!({
        "deepsim_version": env!("CARGO_PKG_VERSION"),
        "command": std::env::args().collect::<Vec<_>>(),
        "convention": "disparity.tif: left pixel (x, y) matches right pixel (x - d, y); Px1_*.tif hold MicMac's Px1 = -d (x_right = x_left + Px1)",
        "micmac_file": micmac,
        "work_dir": work_dir,
        "inputs": { "left": left_report, "right": right_report },
        "models": models,
        "runtime": runtime.name(),
        "plan": plan,
        "storage": storage_name(&storage),
        "threads": rayon::current_num_threads(),
        "steps": output.reports,
        "timings_s": output.times,
        "stats": { "density": density },
        "peak_memory_bytes": deepsim::report::peak_memory_bytes(),
        "outputs": written,
    });
    write_report(&dir_mec, &report, outputs)?;
    if !quiet {
        note!(
            "deepsim: {} steps, {:.2} s, density {:.1} %, written to {} ({REPORT_FILE} last)",
            config.steps.len(),
            output.times.total,
            100.0 * density,
            dir_mec.display()
        );
    }
    Ok(())
}

/// Every file a run of `plan` may write in DirMEC (removed before the run, with the previous
/// run's outputs).
fn output_names(plan: &MicmacPlan) -> Vec<String> {
    let mut names: Vec<String> = [DISPARITY_FILE, CONFIDENCE_FILE, PREVIEW_FILE].map(String::from).to_vec();
    for (&number, &dezoom) in plan.numbers.iter().zip(&plan.dezooms) {
        names.push(format!("Px1_Num{number}_DeZoom{dezoom}_LeChantier.tif"));
        names.push(format!("Px2_Num{number}_DeZoom{dezoom}_LeChantier.tif"));
        names.push(format!("Correl_LeChantier_Num_{number}.tif"));
        names.push(format!("AutoMask_LeChantier_Num_{number}.tif"));
    }
    if let Some(number) = plan.dequant {
        names.push(format!("Px1_Num{number}_DeZoom1_LeChantier.tif"));
        names.push(format!("Px2_Num{number}_DeZoom1_LeChantier.tif"));
    }
    names
}

/// `+Name=value` arguments as (name, value) pairs.
fn parse_overrides(raw: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = raw
        .iter()
        .map(|arg| {
            let body = arg.strip_prefix('+').with_context(|| {
                format!("'{arg}': after the parameter file, arguments are +Name=value overrides (e.g. +Im1=left.tif)")
            })?;
            match body.split_once('=') {
                Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
                _ => bail!("'{arg}': expected +Name=value (e.g. +DirMEC=OUT)"),
            }
        })
        .collect::<anyhow::Result<_>>()?;
    for (i, (name, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(n, _)| n == name) {
            bail!("+{name}= is given twice; give each override once");
        }
    }
    Ok(pairs)
}

/// MicMac's replacement rule for `NomMasq`: `$` and one digit is that group of `PatternSel`
/// (`$1_Masq.tif` is group 1 then `_Masq.tif`, not a group named `1_Masq` as Rust's `regex`
/// would read it); `$$` is a `$`; any other `$` is kept.
fn expand_mask_name(template: &str, captures: &regex::Captures<'_>) -> anyhow::Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('$') => {
                chars.next();
                out.push('$');
            }
            Some(d) if d.is_ascii_digit() => {
                chars.next();
                let group = d.to_digit(10).expect("a digit") as usize;
                if group >= captures.len() {
                    bail!("${group} names group {group}, but the pattern has {} group(s)", captures.len() - 1);
                }
                out.push_str(captures.get(group).map_or("", |m| m.as_str()));
            }
            _ => out.push('$'),
        }
    }
    Ok(out)
}

/// The mask of `image` by MicMac's rule: `PatternSel` must match the whole name, `NomMasq`
/// takes its groups (`$1` …). A missing file is "all valid" with `AcceptNonExistingFile`.
fn find_mask(rule: &MaskRule, image: &str, work_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let pattern = regex::Regex::new(&format!("^(?:{})$", rule.pattern.trim()))
        .with_context(|| format!("<MasqImageIn/OneMasqueImage/PatternSel> '{}' is not a valid regular expression", rule.pattern))?;
    let Some(captures) = pattern.captures(image) else {
        return Ok(None);
    };
    let name = expand_mask_name(rule.name.trim(), &captures).with_context(|| {
        format!("<MasqImageIn/OneMasqueImage/NomMasq> '{}' with <PatternSel> '{}'", rule.name.trim(), rule.pattern.trim())
    })?;
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
