//! Turning `--runtime` / `--device` into a runtime, with the explicit-failure policy: an explicit
//! `--runtime ort` (or a GPU device) that cannot be honoured is an error; `--runtime auto` takes
//! ONNX Runtime when its library is found and loads, tract otherwise, and says which and why.

use super::args::RuntimeKind;
use anyhow::bail;
use deepsim::runtime::{Device, Runtime, Tract};
use serde_json::{Value, json};
use std::path::PathBuf;

/// ONNX Runtime settings from the command line.
#[cfg_attr(not(feature = "ort"), allow(dead_code))]
pub struct DeviceArgs {
    pub device: Device,
    pub device_id: i32,
    pub trt_cache: Option<PathBuf>,
    pub trt_fp16: bool,
}

pub fn build(kind: RuntimeKind, device: DeviceArgs) -> anyhow::Result<Box<dyn Runtime>> {
    Ok(build_reported(kind, device, true)?.0)
}

/// The runtime for `kind`, and the choice for run.json (`requested`, `chosen`, `why`); unless
/// `quiet`, `auto`'s choice is printed.
pub fn build_reported(
    kind: RuntimeKind,
    device: DeviceArgs,
    quiet: bool,
) -> anyhow::Result<(Box<dyn Runtime>, Value)> {
    let report = |runtime: Box<dyn Runtime>, requested: &str, why: String| {
        let choice = json!({ "requested": requested, "chosen": runtime.name(), "why": why });
        (runtime, choice)
    };
    match kind {
        RuntimeKind::Tract => {
            if device.device != Device::Cpu {
                bail!(
                    "--device {:?}: the tract runtime runs on the CPU only; use --runtime ort for GPUs",
                    device.device
                );
            }
            Ok(report(Box::new(Tract), "tract", "requested".into()))
        }
        RuntimeKind::Ort => Ok(report(ort(device)?, "ort", "requested".into())),
        RuntimeKind::Auto => {
            let (runtime, why) = auto(device)?;
            if !quiet {
                note!("deepsim: runtime {} ({why})", runtime.name());
            }
            Ok(report(runtime, "auto", why))
        }
    }
}

#[cfg(feature = "ort")]
fn ort(device: DeviceArgs) -> anyhow::Result<Box<dyn Runtime>> {
    Ok(Box::new(deepsim::runtime::Ort::new(
        deepsim::runtime::OrtOptions {
            device: device.device,
            device_id: device.device_id,
            trt_cache: device.trt_cache,
            trt_fp16: device.trt_fp16,
        },
    )?))
}

#[cfg(not(feature = "ort"))]
fn ort(_: DeviceArgs) -> anyhow::Result<Box<dyn Runtime>> {
    bail!(
        "--runtime ort: this build has no ONNX Runtime support (rebuild with the default `ort` feature)"
    )
}

/// `--runtime auto`: ONNX Runtime when found and loadable, else tract; a GPU device needs ONNX
/// Runtime, so with one this is `--runtime ort`.
#[cfg(feature = "ort")]
fn auto(device: DeviceArgs) -> anyhow::Result<(Box<dyn Runtime>, String)> {
    if device.device != Device::Cpu {
        let why = format!("--device {:?} needs ONNX Runtime", device.device).to_lowercase();
        return Ok((ort(device)?, why));
    }
    let Some((path, source)) = deepsim::runtime::locate_library() else {
        let why = "no ONNX Runtime library found (ORT_DYLIB_PATH unset, no onnxruntime Python package in the active \
                   or project venvs or for python3): tract, the built-in runtime; `pip install onnxruntime` for \
                   faster feature extraction";
        return Ok((Box::new(Tract), why.to_string()));
    };
    match ort(device) {
        Ok(runtime) => Ok((
            runtime,
            format!("ONNX Runtime found at {} ({source})", path.display()),
        )),
        Err(e) => {
            let why = format!(
                "ONNX Runtime at {} ({source}) did not load: {e}; tract instead",
                path.display()
            );
            note!("deepsim: warning: {why}");
            Ok((Box::new(Tract), why))
        }
    }
}

#[cfg(not(feature = "ort"))]
fn auto(device: DeviceArgs) -> anyhow::Result<(Box<dyn Runtime>, String)> {
    if device.device != Device::Cpu {
        return Ok((ort(device)?, String::new()));
    }
    Ok((
        Box::new(Tract),
        "this build has no ONNX Runtime support: tract".to_string(),
    ))
}
