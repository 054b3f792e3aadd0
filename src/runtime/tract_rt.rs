//! The pure-Rust runtime, on `tract-onnx`.
//!
//! tract cannot always propagate symbolic image sizes through every op (a `Resize` by a scale
//! on a symbolic side, for one), so feature extractors are optimised for concrete sizes, one plan
//! per input size, cached: the engine feeds fixed-size tiles, so only a few sizes ever occur.
//! The decision network has a symbolic batch size.
//!
//! Plans are built with tract's direct spatial convolution off (`TRACT_DISABLE_DIRECT_SPATIAL`,
//! unless the environment sets it): that kernel suits convolutions of a few channels, and on the
//! bundles' 32–128-channel 3×3 convolutions it ran at a third of the speed of im2col and
//! tract's matrix-product kernels (msaff, measured on a 2-core AVX-512 machine: 76 % of the
//! time in `conv_w4_f32`; about 3× faster features without it).

use super::{features_output, similarity_output, DecisionNet, FeatureNet, Runtime};
use crate::error::{Error, ErrorKind, Result};
use ndarray::{Array1, Array3, ArrayView2};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::knobs::KnobScope;

/// The tract runtime (CPU, no native dependency).
#[derive(Debug, Default, Clone, Copy)]
pub struct Tract;

type Plan = std::sync::Arc<TypedRunnableModel>;

fn backend_error(path: &Path, what: &str, err: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Backend, format!("{}: {what}: {err}", path.display()))
}

fn load(path: &Path) -> Result<InferenceModel> {
    if !path.is_file() {
        return Err(Error::new(ErrorKind::Io, format!("{}: no such model file", path.display())));
    }
    tract_onnx::onnx()
        .model_for_path(path)
        .map_err(|e| Error::decode(path, format!("not a loadable ONNX model ({e})")))
}

impl Runtime for Tract {
    fn name(&self) -> String {
        "tract".to_string()
    }

    fn feature_net(&self, path: &Path) -> Result<Box<dyn FeatureNet>> {
        Ok(Box::new(TractFeatures { path: path.to_path_buf(), model: load(path)?, plans: Mutex::default() }))
    }

    fn decision_net(&self, path: &Path) -> Result<Box<dyn DecisionNet>> {
        let mut model = load(path)?;
        let m = model.symbols.sym("M");
        let width = |model: &InferenceModel, i: usize| -> Result<usize> {
            let fact = model.input_fact(i).map_err(|e| backend_error(path, "input", e))?;
            fact.shape.dims().nth(1).and_then(|d| d.concretize()).and_then(|d| if let TDim::Val(v) = d { usize::try_from(v).ok() } else { None }).ok_or_else(|| {
                Error::invalid_input(format!("{}: input {i} has no fixed embedding size", path.display()))
            })
        };
        let c = width(&model, 0)?;
        for i in 0..2 {
            model
                .set_input_fact(i, f32::fact([m.to_dim(), c.to_dim()]).into())
                .map_err(|e| backend_error(path, "setting the input shape", e))?;
        }
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|e| backend_error(path, "optimising the decision network", e))?;
        Ok(Box::new(TractDecision { path: path.to_path_buf(), plan }))
    }
}

/// The knobs feature extractors are optimised under (see the module documentation); a
/// setting in the environment wins.
fn conv_knobs() -> KnobScope {
    const KNOB: &str = "TRACT_DISABLE_DIRECT_SPATIAL";
    let value = if std::env::var_os(KNOB).is_some() { None } else { Some((KNOB, "true")) };
    KnobScope::new(value).expect("a knob of this tract version")
}

struct TractFeatures {
    path: PathBuf,
    model: InferenceModel,
    plans: Mutex<HashMap<(usize, usize), Plan>>,
}

impl TractFeatures {
    fn plan(&self, h: usize, w: usize) -> Result<Plan> {
        if let Some(plan) = self.plans.lock().expect("no panic while locked").get(&(h, w)) {
            return Ok(plan.clone());
        }
        let mut model = self.model.clone();
        model
            .set_input_fact(0, f32::fact([1, 1, h, w]).into())
            .map_err(|e| backend_error(&self.path, "setting the input shape", e))?;
        let plan = conv_knobs()
            .enter(|| model.into_optimized().and_then(|m| m.into_runnable()))
            .map_err(|e| backend_error(&self.path, &format!("optimising for a {w}×{h} input"), e))?;
        self.plans.lock().expect("no panic while locked").insert((h, w), plan.clone());
        Ok(plan)
    }
}

impl FeatureNet for TractFeatures {
    fn run(&self, image: ArrayView2<'_, f32>) -> Result<Array3<f32>> {
        let (h, w) = image.dim();
        let plan = self.plan(h, w)?;
        let input: Tensor = image.to_owned().into_shape_with_order((1, 1, h, w)).expect("same size").into();
        let outputs = plan.run(tvec!(input.into())).map_err(|e| backend_error(&self.path, "running", e))?;
        let out = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| backend_error(&self.path, "reading the output", e))?;
        features_output(&self.path, out, h, w)
    }
}

struct TractDecision {
    path: PathBuf,
    plan: Plan,
}

impl DecisionNet for TractDecision {
    fn run(&self, left: ArrayView2<'_, f32>, right: ArrayView2<'_, f32>) -> Result<Array1<f32>> {
        let inputs = tvec!(Tensor::from(left.to_owned()).into(), Tensor::from(right.to_owned()).into());
        let outputs = self.plan.run(inputs).map_err(|e| backend_error(&self.path, "running", e))?;
        let out = outputs[0].to_plain_array_view::<f32>().map_err(|e| backend_error(&self.path, "reading the output", e))?;
        similarity_output(&self.path, out, left.nrows())
    }
}
