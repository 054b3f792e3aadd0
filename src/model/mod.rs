//! Model bundles and the ONNX model contract (`docs/model-contract.md`).
//!
//! A bundle is a folder with `features.onnx` (required), `mlp.onnx` (optional), `card.md`, and
//! optionally `features.int8.onnx`, an int8 variant of the feature extractor for ONNX Runtime
//! on CPUs ([`Precision`]).
//! [`ModelBundle::open`] checks both files against the contract before anything runs and
//! reports every problem at once, each naming its file and the fix, so that a model exported
//! wrongly is caught here rather than as a shape error deep inside a runtime.

mod graph_limits;
mod mlp_weights;
mod precision;

pub use mlp_weights::{read_mlp, Dense, MlpWeights};
pub use precision::{Precision, PrecisionChoice};

use crate::error::{Error, ErrorKind, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tract_onnx::pb::{tensor_shape_proto::dimension::Value as DimValue, type_proto, ModelProto};
use tract_onnx::prelude::Framework;

/// Contract versions this build reads.
pub const SUPPORTED_CONTRACTS: std::ops::RangeInclusive<u32> = 1..=1;

/// File names inside a bundle.
pub const FEATURES_FILE: &str = "features.onnx";
/// The decision network's file name.
pub const MLP_FILE: &str = "mlp.onnx";
/// The int8 variant of the feature extractor (optional).
pub const INT8_FEATURES_FILE: &str = "features.int8.onnx";

/// What the contract's metadata says about one ONNX file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    /// The file.
    pub path: PathBuf,
    /// `deepsim.contract`.
    pub contract: u32,
    /// `deepsim.arch` (feature extractors; for the MLP, whatever it declares).
    pub arch: String,
    /// `deepsim.embedding_dim`.
    pub embedding_dim: usize,
    /// `deepsim.pad_multiple` (feature extractors; 1 for the MLP).
    pub pad_multiple: usize,
    /// `deepsim.normalization`, for reports.
    pub normalization: String,
    /// `deepsim.exact_margin_px` (optional, feature extractors): the context around a feature
    /// tile that makes its features equal the whole image's, as measured by the exporter.
    pub exact_margin_px: Option<usize>,
    /// `deepsim.precision`: "fp32" (also when absent) or "int8".
    pub precision: String,
}

/// The largest `deepsim.exact_margin_px` accepted.
pub const MAX_EXACT_MARGIN_PX: usize = 4096;

/// A checked model bundle.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelBundle {
    /// The folder.
    pub dir: PathBuf,
    /// The feature extractor.
    pub features: ModelInfo,
    /// The decision network, if the bundle has one.
    pub mlp: Option<ModelInfo>,
    /// The int8 variant of the feature extractor, if the bundle has one (see [`Precision`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features_int8: Option<ModelInfo>,
}

/// The role a file plays, with the tensors the contract requires of it.
#[derive(Clone, Copy)]
enum Role {
    Features,
    Mlp,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Features => "features",
            Role::Mlp => "mlp",
        }
    }

    /// (name, rank) of the required inputs and outputs.
    fn inputs(self) -> &'static [(&'static str, usize)] {
        match self {
            Role::Features => &[("image", 4)],
            Role::Mlp => &[("left", 2), ("right", 2)],
        }
    }

    fn outputs(self) -> &'static [(&'static str, usize)] {
        match self {
            Role::Features => &[("features", 4)],
            Role::Mlp => &[("similarity", 1)],
        }
    }
}

impl ModelBundle {
    /// Opens and checks the bundle in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::new(
                ErrorKind::Io,
                format!("{}: model bundle folder not found (a folder with features.onnx [+ mlp.onnx])", dir.display()),
            ));
        }
        let present = |name: &str| Some(dir.join(name)).filter(|p| p.exists());
        let (mlp, int8) = (present(MLP_FILE), present(INT8_FEATURES_FILE));
        Self::check(&dir.join(FEATURES_FILE), mlp.as_deref(), int8.as_deref())
    }

    /// Checks a feature extractor and an optional decision network given by their paths, whatever
    /// their file names (MicMac's `CNNParams` selects them by a regular expression); the bundle's
    /// folder is the feature extractor's.
    pub fn from_files(features: &Path, mlp: Option<&Path>) -> Result<Self> {
        Self::check(features, mlp, None)
    }

    /// Checks the files of a bundle, reporting every problem at once.
    fn check(features: &Path, mlp: Option<&Path>, int8: Option<&Path>) -> Result<Self> {
        let dir = features.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut problems = Vec::new();
        let features = check_file(features, Role::Features, &mut problems);
        let mlp = mlp.and_then(|path| check_file(path, Role::Mlp, &mut problems));
        let features_int8 = int8.and_then(|path| check_file(path, Role::Features, &mut problems));
        if let (Some(f), Some(q)) = (&features, &features_int8) {
            check_int8_variant(q, f, &mut problems);
        }
        if let (Some(f), Some(m)) = (&features, &mlp)
            && f.embedding_dim != m.embedding_dim {
                problems.push(format!(
                    "{} declares embedding_dim {} but {} declares {}: the decision network must take the \
                     feature extractor's embeddings; export both from the same checkpoint",
                    f.path.display(),
                    f.embedding_dim,
                    m.path.display(),
                    m.embedding_dim
                ));
            }
        match (features, problems.is_empty()) {
            (Some(features), true) => Ok(ModelBundle { dir, features, mlp, features_int8 }),
            _ => Err(Error::invalid_input(format!(
                "model bundle {} breaks the model contract (docs/model-contract.md):\n  - {}",
                dir.display(),
                problems.join("\n  - ")
            ))),
        }
    }
}

/// Checks `features.int8.onnx` (already checked against the contract) against the float
/// extractor it stands in for: same architecture, embedding size and pad multiple, and declared int8.
fn check_int8_variant(int8: &ModelInfo, float: &ModelInfo, problems: &mut Vec<String>) {
    let at = int8.path.display();
    if int8.precision != "int8" {
        problems.push(format!(
            "{at}: declares deepsim.precision '{}', expected 'int8' (write it with `deepsim-train quantize`, or remove it to run the float model)",
            int8.precision
        ));
    }
    if (int8.arch.as_str(), int8.embedding_dim, int8.pad_multiple) != (float.arch.as_str(), float.embedding_dim, float.pad_multiple) {
        problems.push(format!(
            "{at}: is a {} with embedding_dim {} and pad_multiple {}, but {} is a {} with {} and {}: \
             re-quantise it from this bundle's features.onnx (`deepsim-train quantize`), or remove it to run the float model",
            int8.arch, int8.embedding_dim, int8.pad_multiple, float.path.display(), float.arch, float.embedding_dim, float.pad_multiple
        ));
    }
}

/// The largest `deepsim.pad_multiple` accepted: inputs are padded up to a multiple of it, so a
/// huge value would pad every tile to an enormous image (real networks use 4 to 64).
pub const MAX_PAD_MULTIPLE: usize = 1024;

/// The largest `deepsim.embedding_dim` accepted (real networks use 64 to 512).
pub const MAX_EMBEDDING_DIM: usize = 8192;

/// Checks one file; problems are appended, the info returned when it could be read at all.
fn check_file(path: &Path, role: Role, problems: &mut Vec<String>) -> Option<ModelInfo> {
    let at = path.display();
    if !path.is_file() {
        if path.exists() {
            problems.push(format!("{at}: not a regular file (a device, folder or link to one); give the exported .onnx file"));
        } else {
            problems.push(format!("{at}: missing (every bundle needs {FEATURES_FILE}; {MLP_FILE} is optional)"));
        }
        return None;
    }
    let proto: ModelProto = match tract_onnx::onnx().proto_model_for_path(path) {
        Ok(p) if p.graph.is_some() => p,
        Ok(_) => {
            problems.push(format!("{at}: not an ONNX model (no graph); export it with the training side's `export`"));
            return None;
        }
        Err(e) => {
            problems.push(format!("{at}: not an ONNX model ({e}); export it with the training side's `export`"));
            return None;
        }
    };
    let meta: BTreeMap<&str, &str> = proto.metadata_props.iter().map(|p| (p.key.as_str(), p.value.as_str())).collect();
    let mut key = |k: &str| -> Option<String> {
        let v = meta.get(k).map(|v| v.to_string());
        if v.is_none() {
            problems.push(format!("{at}: metadata key '{k}' missing (add it to the ONNX metadata_props)"));
        }
        v
    };
    let contract = key("deepsim.contract");
    let declared_role = key("deepsim.role");
    let arch = key("deepsim.arch");
    let dim = key("deepsim.embedding_dim");
    let pad = if matches!(role, Role::Features) { key("deepsim.pad_multiple") } else { Some("1".into()) };
    let normalization = key("deepsim.normalization");
    let precision = match meta.get("deepsim.precision").copied().unwrap_or("fp32") {
        p @ ("fp32" | "int8") => p.to_string(),
        other => {
            problems.push(format!("{at}: metadata 'deepsim.precision' = '{other}': expected fp32 or int8"));
            "fp32".to_string()
        }
    };
    let exact_margin = meta.get("deepsim.exact_margin_px").and_then(|v| match v.trim().parse::<usize>() {
        Ok(n) if n <= MAX_EXACT_MARGIN_PX => Some(n),
        _ => {
            problems.push(format!(
                "{at}: metadata 'deepsim.exact_margin_px' = '{v}' is not an integer in 0..={MAX_EXACT_MARGIN_PX} (remove it or re-measure it)"
            ));
            None
        }
    });
    let mut number = |name: &str, value: Option<String>, max: usize| -> Option<usize> {
        let v = value?;
        match v.trim().parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Some(n),
            Ok(n) if n > max => {
                problems.push(format!("{at}: metadata '{name}' = {n} is out of range: at most {max}"));
                None
            }
            _ => {
                problems.push(format!("{at}: metadata '{name}' = '{v}' is not a positive integer"));
                None
            }
        }
    };
    let contract = number("deepsim.contract", contract, u32::MAX as usize).map(|c| c as u32);
    let embedding_dim = number("deepsim.embedding_dim", dim, MAX_EMBEDDING_DIM);
    let pad_multiple = number("deepsim.pad_multiple", pad, MAX_PAD_MULTIPLE);
    if let Some(c) = contract
        && !SUPPORTED_CONTRACTS.contains(&c) {
            problems.push(format!(
                "{at}: model contract version {c}; this build of deepsim reads versions {}–{}",
                SUPPORTED_CONTRACTS.start(),
                SUPPORTED_CONTRACTS.end()
            ));
        }
    if let Some(r) = &declared_role
        && r != role.name() {
            problems.push(format!("{at}: declares deepsim.role '{r}' but sits where a '{}' model belongs", role.name()));
        }
    let graph = proto.graph.as_ref().expect("checked above");
    let initializers: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<_> = graph.input.iter().filter(|i| !initializers.contains(&i.name.as_str())).collect();
    let check_tensors = |kind: &str, found: &[&tract_onnx::pb::ValueInfoProto], wanted: &[(&str, usize)], problems: &mut Vec<String>| {
        let names: Vec<&str> = found.iter().map(|v| v.name.as_str()).collect();
        for &(name, rank) in wanted {
            match found.iter().find(|v| v.name == name) {
                None => problems.push(format!(
                    "{at}: no {kind} named '{name}' (found {names:?}); the contract names are {:?}",
                    wanted.iter().map(|w| w.0).collect::<Vec<_>>()
                )),
                Some(v) => {
                    if let Some(r) = rank_of(v)
                        && r != rank {
                            problems.push(format!("{at}: {kind} '{name}' has rank {r}; the contract requires rank {rank}"));
                        }
                }
            }
        }
        if found.len() != wanted.len() {
            problems.push(format!("{at}: {} {kind}s {names:?}; the contract requires exactly {}", found.len(), wanted.len()));
        }
    };
    problems.extend(graph_limits::oversized_constant_tensors(graph).into_iter().map(|p| format!("{at}: {p}")));
    check_tensors("input", &inputs, role.inputs(), problems);
    let outputs: Vec<_> = graph.output.iter().collect();
    check_tensors("output", &outputs, role.outputs(), problems);
    if let (Role::Features, Some(dim)) = (role, embedding_dim)
        && let Some(output) = outputs.iter().find(|v| v.name == "features")
        && let Some(channels) = static_dim(output, 1)
        && channels != dim
    {
        problems.push(format!(
            "{at}: output 'features' has {channels} channels but deepsim.embedding_dim is {dim}; export them alike"
        ));
    }
    if let (Role::Mlp, Some(dim)) = (role, embedding_dim) {
        for v in &inputs {
            if let Some(width) = static_dim(v, 1)
                && width != dim {
                    problems.push(format!(
                        "{at}: input '{}' takes {width} values per row but deepsim.embedding_dim is {dim}",
                        v.name
                    ));
                }
        }
    }
    Some(ModelInfo {
        path: path.to_path_buf(),
        contract: contract?,
        arch: arch?,
        embedding_dim: embedding_dim?,
        pad_multiple: pad_multiple?,
        normalization: normalization?,
        exact_margin_px: exact_margin,
        precision,
    })
}

fn tensor_shape(v: &tract_onnx::pb::ValueInfoProto) -> Option<&tract_onnx::pb::TensorShapeProto> {
    let type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    t.shape.as_ref()
}

fn rank_of(v: &tract_onnx::pb::ValueInfoProto) -> Option<usize> {
    tensor_shape(v).map(|s| s.dim.len())
}

fn static_dim(v: &tract_onnx::pb::ValueInfoProto, axis: usize) -> Option<usize> {
    match tensor_shape(v)?.dim.get(axis)?.value.as_ref()? {
        DimValue::DimValue(n) => usize::try_from(*n).ok(),
        DimValue::DimParam(_) => None,
    }
}
