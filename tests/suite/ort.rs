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

/// The int8 variant of a bundle (`features.int8.onnx`, from `deepsim-train quantize`): ONNX
/// Runtime reproduces its golden, it stays close to the float model, and `--precision`
/// chooses it as documented (auto: int8 on ONNX Runtime's CPU provider, fp32 on tract).
#[test]
fn the_int8_variant_matches_its_golden_and_auto_takes_it_on_the_cpu() {
    if !available() {
        return;
    }
    use deepsim::model::Precision;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models/msaff_tiny_int8");
    let bundle = ModelBundle::open(&dir).unwrap();
    let int8 = bundle.features_int8.as_ref().expect("the fixture has features.int8.onnx");
    assert_eq!((int8.precision.as_str(), bundle.features.precision.as_str()), ("int8", "fp32"));
    let ort = Ort::new(options(Device::Cpu)).unwrap();
    assert!(ort.runs_int8_fast() && !Tract.runs_int8_fast());

    let (chosen, choice) = bundle.clone().with_precision(Precision::Auto, &ort).unwrap();
    assert_eq!((choice.chosen, chosen.features.path.as_path()), ("int8", int8.path.as_path()));
    let (chosen, choice) = bundle.clone().with_precision(Precision::Auto, &Tract).unwrap();
    assert_eq!((choice.chosen, chosen.features.path.file_name().unwrap().to_str().unwrap()), ("fp32", "features.onnx"));
    assert!(choice.why.contains("tract"), "{}", choice.why);
    let err = bundle.clone().with_precision(Precision::Int8, &Tract).unwrap_err().to_string();
    assert!(err.contains("ONNX Runtime only") && err.contains("--precision fp32"), "{err}");
    let plain = ModelBundle::open(&dir.with_file_name("msaff_tiny")).unwrap();
    let err = plain.with_precision(Precision::Int8, &ort).unwrap_err().to_string();
    assert!(err.contains("features.int8.onnx") && err.contains("deepsim-train quantize"), "{err}");

    let (shape, _, input) = read_npy_array(&dir.join("features_input.npy")).unwrap();
    let (_, _, golden) = read_npy_array(&dir.join("features_int8_output.npy")).unwrap();
    let (_, _, float) = read_npy_array(&dir.join("features_output.npy")).unwrap();
    let image = ArrayView2::from_shape((shape[2], shape[3]), &input).unwrap();
    let got = ort.feature_net(&int8.path).unwrap().run(image).unwrap();
    let scale = golden.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (x, z) in got.iter().zip(&golden) {
        assert!((x - z).abs() <= 1e-5 * scale, "int8: ort {x} vs golden {z}");
    }
    // Per pixel, the int8 embedding points where the float one does.
    let (c, h, w) = got.dim();
    let f = ndarray::Array3::from_shape_vec((c, h, w), float).unwrap();
    let cosine = |y: usize, x: usize| {
        let (a, b) = (got.slice(ndarray::s![.., y, x]), f.slice(ndarray::s![.., y, x]));
        a.dot(&b) / (a.dot(&a).sqrt() * b.dot(&b).sqrt()).max(1e-12)
    };
    let worst = (0..h).flat_map(|y| (0..w).map(move |x| (y, x))).map(|(y, x)| cosine(y, x)).fold(1f32, f32::min);
    assert!(worst > 0.99, "int8 vs fp32 embedding cosine {worst}");
}

/// On the command line: run.json records the precision chosen and why; an impossible request
/// fails before any output is written.
#[test]
fn match_reports_the_precision_it_ran() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scene = crate::common::planar_scene(3, 96, 64);
    crate::common::save_grey(&dir.path().join("l.png"), &scene.pair.left);
    crate::common::save_grey(&dir.path().join("r.png"), &scene.pair.right);
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models/msaff_tiny_int8");
    let run = |extra: &[&str], out: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_deepsim"))
            .args(["-q", "match", "--disp-min", "0", "--disp-max", "15", "--head", "cosine", "--left"])
            .arg(dir.path().join("l.png"))
            .arg("--right")
            .arg(dir.path().join("r.png"))
            .arg("--out")
            .arg(dir.path().join(out))
            .arg("--model")
            .arg(&bundle)
            .args(extra)
            .output()
            .unwrap()
    };
    for (extra, out, chosen) in [(&["--runtime", "ort"][..], "a", "int8"), (&["--runtime", "tract"][..], "b", "fp32"), (&["--runtime", "ort", "--precision", "fp32"][..], "c", "fp32")] {
        let o = run(extra, out);
        assert!(o.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&o.stderr));
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(out).join("run.json")).unwrap()).unwrap();
        assert_eq!(report["models"][0]["model"]["precision"]["chosen"], chosen, "{extra:?}");
    }
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_deepsim")).args(["check-model", "--runtime", "ort"]).arg(&bundle).output().unwrap();
    assert!(check.status.success());
    assert!(String::from_utf8_lossy(&check.stdout).contains("features.int8.onnx  ran on ort/cpu"), "{}", String::from_utf8_lossy(&check.stdout));
    let o = run(&["--runtime", "tract", "--precision", "int8"], "d");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("ONNX Runtime only"));
    assert!(!dir.path().join("d").join("run.json").exists());
}
