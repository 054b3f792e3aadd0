//! Which of a bundle's feature extractors runs: `features.onnx` (float) or its int8 variant
//! `features.int8.onnx` (written by `deepsim-train quantize`, with a parity report in the card).
//!
//! The int8 file is an accelerator for ONNX Runtime on CPUs, whose int8 convolutions (VNNI where
//! the CPU has it) run the feature extractor about twice as fast; tract does not run its
//! quantised graph, and GPUs have their own reduced precisions (`--trt-fp16`). So `auto` takes
//! it exactly when the runtime says int8 is fast there and the bundle has one, and says why.

use super::ModelBundle;
use crate::error::{Error, Result};
use crate::runtime::Runtime;

/// `--precision`: the feature extractor's arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// int8 when the bundle has `features.int8.onnx` and the runtime runs int8 fast (ONNX
    /// Runtime on the CPU), else the float `features.onnx`.
    Auto,
    /// The float `features.onnx` (fp32 arithmetic; weights may be stored in fp16).
    Fp32,
    /// The bundle's `features.int8.onnx` (ONNX Runtime only).
    Int8,
}

/// What was asked, what runs and why: for the terminal and run.json.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PrecisionChoice {
    /// `--precision` as given.
    pub requested: Precision,
    /// "fp32" or "int8".
    pub chosen: &'static str,
    /// Why, in words.
    pub why: String,
}

impl ModelBundle {
    /// This bundle with the feature extractor that `requested` selects on `runtime`.
    pub fn with_precision(
        mut self,
        requested: Precision,
        runtime: &dyn Runtime,
    ) -> Result<(Self, PrecisionChoice)> {
        let fast = runtime.runs_int8_fast();
        let choice = |chosen, why: String| PrecisionChoice {
            requested,
            chosen,
            why,
        };
        let missing = || {
            format!(
                "{}: no int8 variant (features.int8.onnx); write one with `deepsim-train quantize --bundle {} --synth DIR --pairs DIR...`",
                self.dir.display(),
                self.dir.display()
            )
        };
        match requested {
            Precision::Fp32 => Ok((self, choice("fp32", "requested".into()))),
            Precision::Int8 => {
                if !runtime.name().starts_with("ort") {
                    return Err(Error::invalid_parameter(format!(
                        "--precision int8: the int8 feature extractor runs on ONNX Runtime only, not {}; use --runtime ort or --precision fp32",
                        runtime.name()
                    )));
                }
                let Some(int8) = self.features_int8.take() else {
                    return Err(Error::invalid_parameter(format!(
                        "--precision int8: {}",
                        missing()
                    )));
                };
                self.features = int8;
                Ok((self, choice("int8", "requested".into())))
            }
            Precision::Auto => match (self.features_int8.take(), fast) {
                (Some(int8), true) => {
                    self.features = int8;
                    let why = format!(
                        "{} runs int8 convolutions fast and the bundle has features.int8.onnx",
                        runtime.name()
                    );
                    Ok((self, choice("int8", why)))
                }
                (Some(_), false) => {
                    let why = format!(
                        "the bundle's int8 variant is for ONNX Runtime on the CPU, not {}",
                        runtime.name()
                    );
                    Ok((self, choice("fp32", why)))
                }
                (None, _) => Ok((
                    self,
                    choice(
                        "fp32",
                        "the bundle has no int8 variant (features.int8.onnx)".into(),
                    ),
                )),
            },
        }
    }
}
