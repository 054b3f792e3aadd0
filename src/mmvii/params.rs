//! `CNNParams=DIR/REGEX`: which ONNX files hold the feature extractor and the decision MLP.
//!
//! As in MMVII, the value is a folder and a regular expression over the file names in it (the
//! whole name must match). Among the matching files, a name containing `FEATURES` or
//! `features` is the feature extractor and one containing `DECISION_NET` or `mlp` the decision
//! network, so both MicMac's DeepSim-Nets names (`…_FEATURES.pt`, `…_DECISION_NET.pt`) and a
//! deepsim bundle (`features.onnx`, `mlp.onnx`) are recognised. Only `.onnx` files run here;
//! TorchScript (`.pt`) files are pointed to the converter. A value naming a folder selects
//! every file in it.

use crate::error::{Error, ErrorKind, Result};
use crate::model::ModelBundle;
use regex::Regex;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Features,
    Mlp,
}

fn role_of(name: &str) -> Option<Role> {
    if name.contains("FEATURES") || name.contains("features") {
        Some(Role::Features)
    } else if name.contains("DECISION_NET") || name.contains("mlp") {
        Some(Role::Mlp)
    } else {
        None
    }
}

const CONVERTER: &str = "python -m deepsim_train.convert_torchscript --features FEATURES.pt [--mlp DECISION_NET.pt] \
                         --out BUNDLE --arch msaff --pad-multiple 8 (see training/README.md)";

/// Resolves `spec` (relative to `workdir`) into a checked bundle; the decision network is
/// looked for and loaded only when `want_mlp` (MicMac's `UsePredicNet=1`).
pub fn resolve_cnn_params(spec: &str, workdir: &Path, want_mlp: bool) -> Result<ModelBundle> {
    let (dir, pattern) = if super::in_workdir(workdir, spec).is_dir() {
        (spec, ".*")
    } else {
        match spec.rfind('/') {
            Some(i) => (&spec[..=i], &spec[i + 1..]),
            None => (".", spec),
        }
    };
    let folder = super::in_workdir(workdir, dir);
    let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        // The regex crate's message spans several lines (pattern, caret, reason): keep the reason.
        let reason = e.to_string().lines().last().unwrap_or_default().trim_start_matches("error: ").to_string();
        Error::invalid_parameter(format!("CNNParams={spec}: '{pattern}' is not a valid regular expression ({reason})"))
    })?;
    let listing = std::fs::read_dir(&folder).map_err(|e| {
        Error::new(ErrorKind::Io, format!("CNNParams={spec}: cannot list the model folder {}: {e}", folder.display()))
    })?;
    let mut matched: Vec<String> = listing
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_file())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .filter(|name| regex.is_match(name))
        .collect();
    matched.sort();
    let pick = |role: Role, what: &str| -> Result<Option<PathBuf>> {
        let of_role: Vec<&String> = matched.iter().filter(|n| role_of(n) == Some(role)).collect();
        let onnx: Vec<&&String> = of_role.iter().filter(|n| n.ends_with(".onnx")).collect();
        let torch: Vec<&&String> = of_role.iter().filter(|n| n.ends_with(".pt")).collect();
        match (onnx.as_slice(), torch.as_slice()) {
            ([one], _) => Ok(Some(folder.join(one))),
            ([], []) => Ok(None),
            ([], [pt, ..]) => Err(Error::unsupported(
                &folder.join(pt),
                format!(
                    "a TorchScript (LibTorch) {what}; deepsim runs ONNX models: convert it with `{CONVERTER}` \
                     and point CNNParams (FileModeleParams in the MicMac XML) at BUNDLE/.*\\.onnx"
                ),
            )),
            (several, _) => Err(Error::invalid_parameter(format!(
                "CNNParams={spec} matches several {what}s in {}: {}; narrow the regular expression",
                folder.display(),
                several.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    };
    // A few names say enough; a pattern like `../../etc/.*` must not print a whole folder.
    const LISTED: usize = 8;
    let listed = match matched.len() {
        0 => "no file".to_string(),
        n if n <= LISTED => matched.join(", "),
        n => format!("{}, … ({n} files)", matched[..LISTED].join(", ")),
    };
    let features = pick(Role::Features, "feature extractor")?.ok_or_else(|| {
        Error::invalid_input(format!(
            "CNNParams={spec}: no feature extractor in {} (the regular expression '{pattern}' matches {listed}); \
             expected a .onnx file whose name contains 'features' or 'FEATURES', e.g. a deepsim bundle's features.onnx",
            folder.display()
        ))
    })?;
    let mlp = if want_mlp {
        Some(pick(Role::Mlp, "decision network")?.ok_or_else(|| {
            Error::invalid_input(format!(
                "UsePredicNet=1 needs a decision network, but CNNParams={spec} selects none in {} (matched: {listed}); \
                 expected a .onnx file whose name contains 'mlp' or 'DECISION_NET', or use UsePredicNet=0 (cosine)",
                folder.display()
            ))
        })?)
    } else {
        None
    };
    ModelBundle::from_files(&features, mlp.as_deref())
}
