//! From a `ParamMICMAC` configuration to the engine's steps.
//!
//! Every `EtapeMEC` with `eAlgo2PrgDyn` becomes one [`crate::pipeline::Step`]: its `DeZoom` is
//! the pyramid level, `SzW` the NCC window (2·SzW + 1)² unless `CorrelAdHoc` names a learned
//! model, `Px1DilatAlti` / `Px1DilatPlani` the interval propagation from the step before, and
//! `ModulationProgDyn` with `Px1Regul` MicMac's regulariser ([`crate::sgm::lines`]): `NbDir`
//! orientations, `ZReg`, `Px1PenteMax`, and `ArgMaskAuto` as the occlusion label (cost
//! `1 − ValDefCorrel`, transition `CostTrans`). A final `eAlgoDequant` step at full resolution
//! turns on the sub-pixel refinement of the last step. MicMac post-processes nothing else, so
//! neither does the plan (no left-right check, median or small-region removal). Every step is
//! matched in tiles of `SzDalleMax` px with `SzRecouvrtDalles` px of overlap, as MicMac does.
//!
//! Disparities: MicMac's Px1 is `x_right − x_left`, the engine's `d` is `x_left − x_right`;
//! `Px1IncCalc` (± range) is symmetric, so the range is `−inc ..= inc` either way.

use super::config::{Algo, MicmacConfig};
use crate::error::{Error, Result};
use crate::pipeline::{Fill, MatchConfig, Regularizer, Step};
use crate::pyramid::Propagation;
use crate::sgm::lines::{LineParams, MaskLabel};
use crate::tiles::TileParams;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A similarity a step asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackendSpec {
    /// NCC over a square window of this side.
    Ncc {
        /// Window side, 2·SzW + 1.
        window: usize,
    },
    /// A run-time plugin (`DeepsimPlugin`, this project's tag).
    Plugin {
        /// The shared library, relative to the working directory.
        path: String,
        /// The options string handed to the plugin.
        options: String,
    },
    /// A learned model (`CorrelAdHoc/ScoreLearnedMMVII`).
    Learned {
        /// `FileModeleParams`: folder and regular expression.
        params: String,
        /// The MLP head (`FileModeleArch` contains "MLP"), else cosine.
        mlp: bool,
    },
}

/// What a MicMac file runs, in the engine's terms.
#[derive(Debug, Clone, Serialize)]
pub struct MicmacPlan {
    /// The engine configuration (pair-dependent checks are left to `MatchConfig::validate`).
    pub config: MatchConfig,
    /// The distinct similarities; `config.steps[i].similarity` indexes this list.
    pub backends: Vec<BackendSpec>,
    /// MicMac's step number (`Num{N}` in file names) of each engine step.
    pub numbers: Vec<usize>,
    /// MicMac's reduction factor (`DeZoom`) of each engine step.
    pub dezooms: Vec<u32>,
    /// Number and `GenImagesCorrel` of each engine step.
    pub correl_images: Vec<bool>,
    /// MicMac's number of the final `eAlgoDequant` step, when there is one.
    pub dequant: Option<usize>,
}

impl MicmacPlan {
    /// Builds the plan; an unsupported combination is an error naming the step's line.
    pub fn new(config: &MicmacConfig, file: &Path) -> Result<Self> {
        let at = |line: usize, what: String| Error::invalid_input(format!("{}:{line}: <EtapeMEC>: {what}", file.display()));
        let inc = config.px1_inc.round() as i32;
        let mut backends: Vec<BackendSpec> = Vec::new();
        let mut steps = Vec::new();
        let (mut numbers, mut dezooms, mut correl_images) = (Vec::new(), Vec::new(), Vec::new());
        let mut dequant = None;
        for (i, s) in config.steps.iter().enumerate() {
            let number = i + 1; // Num0 is the DeZoom −1 defaults
            if dequant.is_some() {
                return Err(at(s.line, "a step follows the eAlgoDequant step: sub-pixel refinement must be the last step".into()));
            }
            if s.algo == Algo::Dequant {
                match steps.last() {
                    None => return Err(at(s.line, "eAlgoDequant refines a previous step, but it is the first one".into())),
                    Some(_) if s.dezoom != 1 => {
                        return Err(at(s.line, format!("eAlgoDequant at DeZoom {}: the refinement runs at full resolution (DeZoom 1)", s.dezoom)));
                    }
                    Some(_) => dequant = Some(number),
                }
                continue;
            }
            if s.px1_pas != 1.0 {
                return Err(at(
                    s.line,
                    format!(
                        "Px1Pas {} with eAlgo2PrgDyn: this engine searches whole-pixel disparities (Px1Pas 1); \
                         sub-pixel values come from a final eAlgoDequant step",
                        s.px1_pas
                    ),
                ));
            }
            let spec = match (&s.learned, &s.plugin) {
                (_, Some(p)) => BackendSpec::Plugin { path: p.path.clone(), options: p.options.clone() },
                (Some(l), None) if l.cost == "MVCNNCorrel" => BackendSpec::Learned { params: l.params.clone(), mlp: l.arch.contains("MLP") },
                (Some(l), None) => {
                    return Err(at(
                        s.line,
                        format!("FileModeleCost '{}': the learned similarity is MVCNNCorrel (MMVIICorrel is the NCC of steps without CorrelAdHoc)", l.cost),
                    ));
                }
                (None, None) => BackendSpec::Ncc { window: 2 * s.szw + 1 },
            };
            let similarity = match backends.iter().position(|b| *b == spec) {
                Some(k) => k,
                None => {
                    backends.push(spec);
                    backends.len() - 1
                }
            };
            let regularizer = Regularizer::Micmac(LineParams {
                orientations: s.nb_dir,
                weight: s.regul as f32,
                max_slope: s.pente_max as f32,
                mask: s.mask_auto.map(|m| MaskLabel { cost: (1.0 - m.def_cor) as f32, transition: m.cost_trans as f32 }),
            });
            regularizer.validate().map_err(|e| at(s.line, e.message().to_string()))?;
            if s.dilat_alti < 1 && !steps.is_empty() {
                return Err(at(s.line, format!("Px1DilatAlti {}: the search around the previous step needs at least 1", s.dilat_alti)));
            }
            steps.push(Step {
                level: s.dezoom.trailing_zeros(),
                similarity,
                regularizer,
                propagation: Propagation {
                    dilate_alti_px: s.dilat_alti,
                    dilate_plani_px: s.dilat_plani,
                    // MicMac's propagation: the interval around the coarser disparity only.
                    uncertain_full_range: false,
                },
            });
            numbers.push(number);
            dezooms.push(s.dezoom);
            correl_images.push(s.gen_images_correl);
        }
        if steps.is_empty() {
            return Err(Error::invalid_input(format!("{}: no eAlgo2PrgDyn step to run", file.display())));
        }
        let config = MatchConfig {
            disp_min: -inc,
            disp_max: inc,
            steps,
            subpixel: dequant.is_some(),
            lr_check_px: None,
            lr_check_mode: Default::default(),
            median: false,
            min_region_px: 0,
            fill: Fill::None,
            keep_steps: true,
            tiles: Some(TileParams { size_px: config.tiles.max_px.max(16), overlap_px: config.tiles.overlap_px }),
            // MicMac has no tag for it: the command line's --max-memory.
            memory_budget: None,
        };
        Ok(MicmacPlan { config, backends, numbers, dezooms, correl_images, dequant })
    }
}

/// Finds the ONNX bundle for a `FileModeleParams` pattern ("FOLDER/REGEX", relative to
/// `work_dir`): the folder itself when it holds `features.onnx`, else `models_dir/<folder name>`.
/// A folder that only holds TorchScript files gets an error explaining the conversion.
pub fn resolve_model(params: &str, work_dir: &Path, models_dir: Option<&Path>) -> Result<PathBuf> {
    let (folder, pattern) = params.rsplit_once('/').unwrap_or((".", params));
    let folder_path = work_dir.join(folder);
    let name = Path::new(folder).file_name().map(|n| n.to_os_string());
    let mut tried = vec![folder_path.clone()];
    if folder_path.join("features.onnx").is_file() {
        return Ok(folder_path);
    }
    if let (Some(dir), Some(name)) = (models_dir, &name) {
        let candidate = dir.join(name);
        if candidate.join("features.onnx").is_file() {
            return Ok(candidate);
        }
        tried.push(candidate);
    }
    let torchscript: Vec<String> = std::fs::read_dir(&folder_path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".pt"))
                .collect()
        })
        .unwrap_or_default();
    let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    if !torchscript.is_empty() {
        return Err(Error::invalid_input(format!(
            "FileModeleParams '{params}': {} holds TorchScript models ({}), which this engine does not run. \
             Convert them once to an ONNX bundle with the training side's converter, e.g.\n  \
             python -m deepsim_train.convert_torchscript --features {dir}/<..FEATURES..>.pt --mlp {dir}/<..DECISION_NET..>.pt \
             --out {dir} --arch msaff --pad-multiple 8\n\
             (see training/README.md), then run again: the bundle (features.onnx [+ mlp.onnx]) is found in that folder \
             or in --models DIR/{}",
            folder_path.display(),
            torchscript.join(", "),
            name.as_ref().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            dir = folder_path.display(),
        )));
    }
    Err(Error::invalid_input(format!(
        "FileModeleParams '{params}' (pattern '{pattern}'): no ONNX model bundle (features.onnx [+ mlp.onnx]) in {}; \
         put the bundle there or pass --models DIR with DIR/{} holding it",
        tried.join(" nor in "),
        name.as_ref().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "<folder>".into()),
    )))
}
