//! Learned similarity: runtimes against the exporter's goldens, the model contract, the tiling
//! of feature extraction, and the cost-volume plumbing checked with an "identity" model.

use crate::common::Texture;
use deepsim::cost::{fill_volume, Intervals};
use deepsim::io::read_npy_array;
use deepsim::model::ModelBundle;
use deepsim::runtime::{Runtime, Tract};
use deepsim::similarity::{Head, Learned, LevelPair, Ncc, Similarity, Tiling};
use ndarray::{Array2, ArrayView2};
use prost::Message;
use std::path::{Path, PathBuf};
use tract_onnx::pb::ModelProto;

fn models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models")
}

fn npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let (shape, _, values) = read_npy_array(path).unwrap();
    (shape, values)
}

/// Largest |a − b| relative to max(1, max |b|).
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

const BUNDLES: [&str; 10] = [
    "tiny_conv",
    "tiny_conv_fp16",
    "patch3",
    "patch5",
    "msaff_tiny",
    "msaff_tiny_fp16",
    "unet32_tiny",
    "unet32_tiny_fp16",
    "unet_attention_tiny",
    "unet_attention_tiny_fp16",
];

#[test]
fn tract_matches_the_exporter_goldens_for_every_tiny_bundle() {
    for name in BUNDLES {
        let dir = models().join(name);
        let bundle = ModelBundle::open(&dir).unwrap();
        let (shape, input) = npy(&dir.join("features_input.npy"));
        let (_, expected) = npy(&dir.join("features_output.npy"));
        let image = ArrayView2::from_shape((shape[2], shape[3]), &input).unwrap();
        let features = Tract.feature_net(&bundle.features.path).unwrap().run(image).unwrap();
        let got: Vec<f32> = features.iter().copied().collect();
        // Tolerance: 1e-5 relative (the exporter's own PyTorch/ONNX Runtime agreement bound),
        // 1e-4 for files with fp16 weights (tract and ONNX Runtime may round the casts differently).
        let tolerance = if name.ends_with("fp16") { 1e-4 } else { 1e-5 };
        let diff = rel_diff(&got, &expected);
        assert!(diff <= tolerance, "{name}: features differ by {diff:e} (relative)");
        if let Some(mlp) = &bundle.mlp {
            let (lshape, left) = npy(&dir.join("mlp_left.npy"));
            let (_, right) = npy(&dir.join("mlp_right.npy"));
            let (_, expected) = npy(&dir.join("mlp_similarity.npy"));
            let l = ArrayView2::from_shape((lshape[0], lshape[1]), &left).unwrap();
            let r = ArrayView2::from_shape((lshape[0], lshape[1]), &right).unwrap();
            let got = Tract.decision_net(&mlp.path).unwrap().run(l, r).unwrap().to_vec();
            let diff = rel_diff(&got, &expected);
            assert!(diff <= tolerance, "{name}: similarities differ by {diff:e}");
        }
    }
}

#[test]
fn feature_tiling_does_not_change_the_result() {
    let texture = Texture::new(21, 200, 150);
    let image = Array2::from_shape_fn((150, 200), |(y, x)| texture.at(x as f32, y));
    for (name, margin) in [("tiny_conv", 16), ("msaff_tiny", 128), ("unet32_tiny", 160)] {
        let bundle = ModelBundle::open(&models().join(name)).unwrap();
        let whole = Learned::new(&bundle, &Tract, Some(Head::Cosine), Tiling { tile_px: 4096, margin_px: 0 }).unwrap();
        let tiled = Learned::new(&bundle, &Tract, Some(Head::Cosine), Tiling { tile_px: 48, margin_px: margin }).unwrap();
        let a = whole.embed(&image).unwrap();
        let b = tiled.embed(&image).unwrap();
        assert_eq!(a.dim(), (150, 200, 8));
        let diff = rel_diff(b.as_slice().unwrap(), a.as_slice().unwrap());
        assert!(diff < 1e-5, "{name}: tiled features differ by {diff:e}");
    }
}

#[test]
fn identity_patch_model_makes_cosine_equal_to_ncc() {
    // patch3 outputs the zero-mean 3x3 window of every pixel: cosine of two such vectors is the
    // NCC of the windows, so the learned backend must fill the same volume as the NCC backend
    // (away from the border, where the model pads with zeros and NCC replicates edges).
    let (w, h) = (90, 60);
    let texture = Texture::new(4, w + 40, h);
    let left = Array2::from_shape_fn((h, w), |(y, x)| texture.at(x as f32, y));
    let right = Array2::from_shape_fn((h, w), |(y, x)| texture.at(x as f32 + 7.3, y));
    let valid = Array2::from_elem((h, w), true);
    let pair = LevelPair { left: &left, right: &right, left_valid: &valid, right_valid: &valid };
    let intervals = Intervals::uniform(w, h, -12, 4).unwrap();
    let bundle = ModelBundle::open(&models().join("patch3")).unwrap();
    let learned = Learned::new(&bundle, &Tract, None, Tiling::default()).unwrap();
    assert!(learned.name().contains("cosine"), "no MLP in the bundle: cosine by default");
    let ncc = Ncc::new(3).unwrap();
    let a = fill_volume(learned.prepare(pair).unwrap().as_ref(), &intervals).unwrap();
    let b = fill_volume(ncc.prepare(pair).unwrap().as_ref(), &intervals).unwrap();
    let mut compared = 0;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            for (k, e) in intervals.entries(x, y).enumerate() {
                let xr = x as i32 - (-12 + k as i32);
                if xr >= 1 && xr < w as i32 - 1 {
                    assert!(a[e].abs_diff(b[e]) <= 2, "({x}, {y}) d {}: cosine cost {} vs NCC cost {}", k as i32 - 12, a[e], b[e]);
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 50_000);
}

#[test]
fn the_mlp_head_needs_an_mlp() {
    let bundle = ModelBundle::open(&models().join("patch3")).unwrap();
    let err = Learned::new(&bundle, &Tract, Some(Head::Mlp), Tiling::default()).err().unwrap();
    assert!(err.to_string().contains("mlp.onnx"), "{err}");
}

/// Copies a bundle into `dir`, letting `edit` change the features and MLP protos.
fn broken_bundle(dir: &Path, edit: impl Fn(&mut ModelProto, &mut Option<ModelProto>)) {
    let src = models().join("tiny_conv");
    let read = |f: &str| ModelProto::decode(std::fs::read(src.join(f)).unwrap().as_slice()).unwrap();
    let mut features = read("features.onnx");
    let mut mlp = Some(read("mlp.onnx"));
    edit(&mut features, &mut mlp);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("features.onnx"), features.encode_to_vec()).unwrap();
    if let Some(m) = mlp {
        std::fs::write(dir.join("mlp.onnx"), m.encode_to_vec()).unwrap();
    }
}

fn set_meta(model: &mut ModelProto, key: &str, value: Option<&str>) {
    model.metadata_props.retain(|p| p.key != key);
    if let Some(v) = value {
        model.metadata_props.push(tract_onnx::pb::StringStringEntryProto { key: key.into(), value: v.into() });
    }
}

#[test]
fn contract_violations_each_give_their_own_error() {
    let root = tempfile::tempdir().unwrap();
    type Edit = Box<dyn Fn(&mut ModelProto, &mut Option<ModelProto>)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("no_meta", Box::new(|f, _| set_meta(f, "deepsim.embedding_dim", None)), "metadata key 'deepsim.embedding_dim' missing"),
        ("bad_dim", Box::new(|f, _| set_meta(f, "deepsim.pad_multiple", Some("eight"))), "'deepsim.pad_multiple' = 'eight' is not a positive integer"),
        // Issue #16 item 4: a padding multiple that would pad every tile to a gigantic image.
        (
            "huge_pad",
            Box::new(|f, _| set_meta(f, "deepsim.pad_multiple", Some("1000000"))),
            "'deepsim.pad_multiple' = 1000000 is out of range: at most 1024",
        ),
        (
            "huge_dim",
            Box::new(|f, m| {
                set_meta(f, "deepsim.embedding_dim", Some("100000000"));
                set_meta(m.as_mut().unwrap(), "deepsim.embedding_dim", Some("100000000"));
            }),
            "'deepsim.embedding_dim' = 100000000 is out of range",
        ),
        ("future", Box::new(|f, _| set_meta(f, "deepsim.contract", Some("7"))), "contract version 7; this build of deepsim reads versions 1–1"),
        ("role", Box::new(|f, _| set_meta(f, "deepsim.role", Some("mlp"))), "declares deepsim.role 'mlp'"),
        (
            "name",
            Box::new(|f, _| f.graph.as_mut().unwrap().input[0].name = "img".into()),
            "no input named 'image' (found [\"img\"])",
        ),
        (
            "rank",
            Box::new(|f, _| {
                let input = &mut f.graph.as_mut().unwrap().input[0];
                let Some(tract_onnx::pb::type_proto::Value::TensorType(t)) = input.r#type.as_mut().unwrap().value.as_mut() else { unreachable!() };
                t.shape.as_mut().unwrap().dim.pop();
            }),
            "input 'image' has rank 3; the contract requires rank 4",
        ),
        (
            "mismatch",
            Box::new(|_, m| set_meta(m.as_mut().unwrap(), "deepsim.embedding_dim", Some("16"))),
            "declares embedding_dim 8 but",
        ),
        (
            "mlp_output",
            Box::new(|_, m| m.as_mut().unwrap().graph.as_mut().unwrap().output[0].name = "score".into()),
            "no output named 'similarity'",
        ),
    ];
    for (name, edit, expected) in cases {
        let dir = root.path().join(name);
        broken_bundle(&dir, edit);
        let err = ModelBundle::open(&dir).unwrap_err();
        assert!(err.to_string().contains(expected), "{name}: expected '{expected}' in:\n{err}");
        assert!(err.to_string().contains(dir.to_str().unwrap()), "{name}: the message names the file");
    }
    // Several problems are reported together.
    let dir = root.path().join("several");
    broken_bundle(&dir, |f, m| {
        set_meta(f, "deepsim.arch", None);
        set_meta(m.as_mut().unwrap(), "deepsim.role", Some("features"));
    });
    let err = ModelBundle::open(&dir).unwrap_err().to_string();
    assert!(err.contains("'deepsim.arch' missing") && err.contains("declares deepsim.role 'features'"), "{err}");
    // Not ONNX at all, and no features file.
    let dir = root.path().join("garbage");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("features.onnx"), b"definitely not protobuf \xff\xff\xff").unwrap();
    assert!(ModelBundle::open(&dir).unwrap_err().to_string().contains("not an ONNX model"));
    let dir = root.path().join("empty");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(ModelBundle::open(&dir).unwrap_err().to_string().contains("features.onnx: missing"));
    // Issue #16 item 30: a link to a device is not "missing" (and is never read: /dev/zero is endless).
    let dir = root.path().join("device");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("features.onnx")).unwrap();
    assert!(ModelBundle::open(&dir).unwrap_err().to_string().contains("features.onnx: not a regular file"));
    assert!(ModelBundle::open(&root.path().join("nowhere")).unwrap_err().to_string().contains("bundle folder not found"));
}

#[test]
fn learned_backend_through_the_pipeline_behaves_like_ncc() {
    use deepsim::pipeline::{run, NoProgress};
    let scene = crate::common::planar_scene(12, 160, 100);
    let bundle = ModelBundle::open(&models().join("patch5")).unwrap();
    let learned = Learned::new(&bundle, &Tract, None, Tiling::default()).unwrap();
    let ncc = Ncc::new(5).unwrap();
    let (h, w) = scene.gt.dim();
    let valid = Array2::from_elem((h, w), true);
    let visible = deepsim::eval::nonocc_from_gt(&scene.gt, &valid, w);
    let interior = Array2::from_shape_fn((h, w), |(y, x)| visible[(y, x)] && y >= 8 && x >= 8 && y + 8 < h && x + 8 < w);
    let bad2 = |similarity: &dyn Similarity| {
        let out = run(&scene.pair, &crate::common::config(0, 40, 2), &[similarity], &NoProgress).unwrap();
        deepsim::eval::evaluate(&out.disparity, &scene.gt, &valid, Some(&interior)).unwrap().nonocc.bad_2
    };
    let (a, b) = (bad2(&learned), bad2(&ncc));
    assert!(a < 10.0, "patch model: bad-2 {a:.2} %");
    assert!((a - b).abs() < 1.0, "patch model bad-2 {a:.2} % vs NCC 5x5 {b:.2} %");
}
