//! Network runtimes: what executes the ONNX models of a bundle.
//!
//! The similarity backends only see two small traits, one per model role of the contract
//! (`docs/model-contract.md`): a feature extractor (grey tile in, one embedding per pixel out)
//! and a decision network (pairs of embeddings in, similarities out). A runtime turns an ONNX
//! file into either. The pure-Rust runtime (tract) needs no native library; ONNX Runtime is
//! faster on CPUs and the one with GPUs. The command line's `--runtime auto` picks ONNX Runtime
//! when its library is found ([`locate_library`]), tract otherwise.

#[cfg(feature = "ort")]
mod ort_rt;
mod tract_rt;

#[cfg(feature = "ort")]
pub use ort_rt::{find_library, locate_library, Ort, OrtOptions};
pub use tract_rt::Tract;

use crate::error::{Error, Result};
use ndarray::{Array1, Array3, ArrayView2, ArrayViewD};
use std::path::Path;

/// Which execution provider to run on (ONNX Runtime; tract is CPU only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// The CPU.
    Cpu,
    /// NVIDIA CUDA (needs `onnxruntime-gpu` and a GPU); an error if unavailable.
    Cuda,
    /// NVIDIA TensorRT (needs `onnxruntime-gpu` with TensorRT); an error if unavailable.
    Tensorrt,
    /// The best available: TensorRT, CUDA, else the CPU with a warning.
    Auto,
}

/// A feature extractor: `features.onnx` of a bundle.
pub trait FeatureNet: Send + Sync {
    /// Embeddings `[C, H, W]` of a grey image `[H, W]` in [0, 1] whose sides are multiples of
    /// the model's `pad_multiple` (the caller pads).
    fn run(&self, image: ArrayView2<'_, f32>) -> Result<Array3<f32>>;

    /// Whether one call already keeps every core busy (ONNX Runtime's intra-op threads, a GPU):
    /// the two images of a pair are then embedded one after the other, which holds half the
    /// activations at the same speed. tract runs a plan on one thread: both images at once.
    fn uses_all_cores(&self) -> bool {
        false
    }
}

/// A decision network: `mlp.onnx` of a bundle.
pub trait DecisionNet: Send + Sync {
    /// Similarities in [0, 1] of the rows of `left` and `right` (both `[M, C]`).
    fn run(&self, left: ArrayView2<'_, f32>, right: ArrayView2<'_, f32>) -> Result<Array1<f32>>;
}

/// Loads ONNX files into runnable networks.
pub trait Runtime: Send + Sync {
    /// A name for reports, with the execution provider where there is one ("tract", "ort/cuda").
    fn name(&self) -> String;

    /// Loads a feature extractor.
    fn feature_net(&self, path: &Path) -> Result<Box<dyn FeatureNet>>;

    /// Loads a decision network.
    fn decision_net(&self, path: &Path) -> Result<Box<dyn DecisionNet>>;

    /// Whether quantised (int8 QDQ) feature extractors run faster than float ones here, so that
    /// `--precision auto` takes a bundle's `features.int8.onnx`.
    fn runs_int8_fast(&self) -> bool {
        false
    }
}

/// Checks a feature extractor's output against the contract (`[1, C, h, w]` for an `h × w`
/// input) and returns it as `[C, h, w]`.
fn features_output(path: &Path, out: ArrayViewD<'_, f32>, h: usize, w: usize) -> Result<Array3<f32>> {
    let shape = out.shape().to_vec();
    if shape.len() != 4 || shape[0] != 1 || shape[2] != h || shape[3] != w {
        return Err(Error::invalid_input(format!(
            "{}: output shape {shape:?} for a {w}×{h} input; the contract requires [1, C, {h}, {w}]",
            path.display()
        )));
    }
    Ok(out.to_owned().into_shape_with_order((shape[1], h, w)).expect("same size"))
}

/// Checks a decision network's output against the contract (one similarity per pair).
fn similarity_output(path: &Path, out: ArrayViewD<'_, f32>, pairs: usize) -> Result<Array1<f32>> {
    if out.len() != pairs {
        return Err(Error::invalid_input(format!(
            "{}: {} similarities for {pairs} pairs; the contract requires one per pair",
            path.display(),
            out.len()
        )));
    }
    Ok(out.iter().copied().collect())
}
