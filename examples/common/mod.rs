//! Pieces shared by the example benches (included with `#[path]`; not an example itself).

use deepsim::runtime::{Runtime, Tract};

/// The runtimes to measure: tract, and ONNX Runtime's CPU provider when its library loads.
pub fn runtimes() -> Vec<Box<dyn Runtime>> {
    let mut list: Vec<Box<dyn Runtime>> = vec![Box::new(Tract)];
    #[cfg(feature = "ort")]
    match deepsim::runtime::Ort::new(deepsim::runtime::OrtOptions {
        device: deepsim::runtime::Device::Cpu,
        device_id: 0,
        trt_cache: None,
        trt_fp16: false,
    }) {
        Ok(ort) => list.push(Box::new(ort)),
        Err(e) => eprintln!("ONNX Runtime not measured: {e}"),
    }
    list
}
