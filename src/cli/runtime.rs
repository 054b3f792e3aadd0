//! Turning `--runtime` / `--device` into a runtime, with the explicit-failure policy.

use super::args::RuntimeKind;
use anyhow::bail;
use deepsim::runtime::{Device, Runtime, Tract};
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
    match kind {
        RuntimeKind::Tract => {
            if device.device != Device::Cpu {
                bail!("--device {:?}: the tract runtime runs on the CPU only; use --runtime ort for GPUs", device.device);
            }
            Ok(Box::new(Tract))
        }
        #[cfg(feature = "ort")]
        RuntimeKind::Ort => Ok(Box::new(deepsim::runtime::Ort::new(deepsim::runtime::OrtOptions {
            device: device.device,
            device_id: device.device_id,
            trt_cache: device.trt_cache,
            trt_fp16: device.trt_fp16,
        })?)),
        #[cfg(not(feature = "ort"))]
        RuntimeKind::Ort => bail!("--runtime ort: this build has no ONNX Runtime support (rebuild with the default `ort` feature)"),
    }
}
