//! ONNX Runtime: same goldens as tract, and the explicit-failure policy for GPU providers.
//! Needs the ONNX Runtime library (ORT_DYLIB_PATH or python3's onnxruntime; scripts/test.sh
//! points ORT_DYLIB_PATH at the training venv's). Without it these tests say so and pass.

use deepsim::io::read_npy_array;
use deepsim::model::ModelBundle;
use deepsim::runtime::{find_library, Device, Ort, OrtOptions, Runtime, Tract};
use ndarray::{Array2, ArrayView2};
use std::path::Path;

fn options(device: Device) -> OrtOptions {
    OrtOptions { device, device_id: 0, trt_cache: None, trt_fp16: false }
}

fn available() -> bool {
    let found = find_library().is_some();
    if !found {
        eprintln!("ONNX Runtime library not found (set ORT_DYLIB_PATH): ONNX Runtime tests not run");
    }
    found
}

#[test]
fn ort_matches_the_goldens_and_tract() {
    if !available() {
        return;
    }
    let ort = Ort::new(options(Device::Cpu)).unwrap();
    assert_eq!(ort.name(), "ort/cpu");
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models");
    for name in ["tiny_conv", "msaff_tiny", "unet32_tiny", "unet_attention_tiny", "patch5"] {
        let dir = models.join(name);
        let bundle = ModelBundle::open(&dir).unwrap();
        let (shape, _, input) = read_npy_array(&dir.join("features_input.npy")).unwrap();
        let (_, _, expected) = read_npy_array(&dir.join("features_output.npy")).unwrap();
        let image = ArrayView2::from_shape((shape[2], shape[3]), &input).unwrap();
        let a = ort.feature_net(&bundle.features.path).unwrap().run(image).unwrap();
        let b = Tract.feature_net(&bundle.features.path).unwrap().run(image).unwrap();
        let scale = expected.iter().fold(1f32, |m, v| m.max(v.abs()));
        for ((x, y), z) in a.iter().zip(b.iter()).zip(&expected) {
            assert!((x - z).abs() <= 1e-5 * scale, "{name}: ort {x} vs golden {z}");
            assert!((x - y).abs() <= 2e-5 * scale, "{name}: ort {x} vs tract {y}");
        }
        if let Some(mlp) = &bundle.mlp {
            let net = ort.decision_net(&mlp.path).unwrap();
            let (s, _, l) = read_npy_array(&dir.join("mlp_left.npy")).unwrap();
            let (_, _, r) = read_npy_array(&dir.join("mlp_right.npy")).unwrap();
            let (_, _, expected) = read_npy_array(&dir.join("mlp_similarity.npy")).unwrap();
            let l = Array2::from_shape_vec((s[0], s[1]), l).unwrap();
            let r = Array2::from_shape_vec((s[0], s[1]), r).unwrap();
            let got = net.run(l.view(), r.view()).unwrap();
            for (x, z) in got.iter().zip(&expected) {
                assert!((x - z).abs() <= 1e-5, "{name} mlp: {x} vs {z}");
            }
        }
    }
}

#[test]
fn an_explicit_gpu_request_that_cannot_be_honoured_is_an_error() {
    if !available() {
        return;
    }
    // The CPU package has neither provider; with onnxruntime-gpu present this test has nothing to show.
    for (device, name) in [(Device::Cuda, "CUDA"), (Device::Tensorrt, "TensorRT")] {
        match Ort::new(options(device)) {
            Ok(ort) => eprintln!("{name} is available here ({}): nothing to check", ort.name()),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(name) && msg.contains("onnxruntime-gpu"), "{msg}");
            }
        }
    }
    let auto = Ort::new(options(Device::Auto)).unwrap();
    assert!(["ort/cpu", "ort/cuda", "ort/tensorrt"].contains(&auto.name().as_str()));
}
