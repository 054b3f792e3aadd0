//! Learned similarity: runtimes against the exporter's goldens, the model contract, the tiling
//! of feature extraction, and the cost-volume plumbing checked with an "identity" model.

use crate::common::Texture;
use deepsim::cost::{fill_volume, Intervals};
use deepsim::io::read_npy_array;
use deepsim::model::ModelBundle;
use deepsim::runtime::{Runtime, Tract};
use deepsim::runtime::DecisionNet;
use deepsim::similarity::{Head, Learned, LevelPair, MlpEngine, Ncc, Similarity, SplitMlp, Tiling};
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

/// Adds `ConstantOfShape([1, 1, 65536, 65536])` (16 GiB of f32) to the graph, added to the
/// features so that no runtime prunes it.
fn add_huge_constant(model: &mut ModelProto) {
    use tract_onnx::pb::{tensor_proto::DataType, NodeProto, TensorProto};
    let graph = model.graph.as_mut().unwrap();
    graph.initializer.push(TensorProto {
        name: "huge_shape".into(),
        dims: vec![4],
        data_type: DataType::Int64 as i32,
        int64_data: vec![1, 1, 65536, 65536],
        ..Default::default()
    });
    let node = |name: &str, op: &str, inputs: &[&str], output: &str| NodeProto {
        name: name.into(),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    };
    let out = graph.output[0].name.clone();
    for n in graph.node.iter_mut() {
        for o in n.output.iter_mut() {
            if *o == out {
                *o = "features_before".into();
            }
        }
    }
    graph.node.push(node("huge", "ConstantOfShape", &["huge_shape"], "huge_zeros"));
    graph.node.push(node("huge_sum", "ReduceMax", &["huge_zeros"], "huge_max"));
    graph.node.push(node("huge_add", "Add", &["features_before", "huge_max"], &out));
}

/// The feature margin: the user's, else the bundle's measured exact margin, else 128.
#[test]
fn the_feature_margin_defaults_to_the_bundles_exact_margin() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("stamped");
    broken_bundle(&dir, |f, _| set_meta(f, "deepsim.exact_margin_px", Some("24")));
    let stamped = ModelBundle::open(&dir).unwrap();
    assert_eq!(stamped.features.exact_margin_px, Some(24));
    assert_eq!(Tiling::for_model(512, None, &stamped.features), Tiling { tile_px: 512, margin_px: 24 });
    assert_eq!(Tiling::for_model(512, Some(100), &stamped.features).margin_px, 100);
    let plain = ModelBundle::open(&models().join("tiny_conv")).unwrap();
    assert_eq!(plain.features.exact_margin_px, None);
    assert_eq!(Tiling::for_model(512, None, &plain.features).margin_px, deepsim::similarity::DEFAULT_FEATURE_MARGIN_PX);
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
        ("bad_margin", Box::new(|f, _| set_meta(f, "deepsim.exact_margin_px", Some("-3"))), "'deepsim.exact_margin_px' = '-3' is not an integer"),
        // Issue #16 item 13: no metadata at all.
        ("bare", Box::new(|f, _| f.metadata_props.clear()), "metadata key 'deepsim.contract' missing"),
        // Issue #16 item 4: a constant-shaped tensor of 2^32 values, which runtimes allocate
        // (or fold at load time) whatever the image.
        ("huge_constant", Box::new(|f, _| add_huge_constant(f)), "node 'huge' (ConstantOfShape) makes a tensor of shape [1, 1, 65536, 65536]"),
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
    // An int8 variant that belongs to another model, or is not declared int8, is refused by name.
    let int8 = models().join("msaff_tiny_int8").join("features.int8.onnx");
    let dir = root.path().join("foreign_int8");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["features.onnx", "mlp.onnx"] {
        std::fs::copy(models().join("tiny_conv").join(f), dir.join(f)).unwrap();
    }
    std::fs::copy(&int8, dir.join("features.int8.onnx")).unwrap();
    let err = ModelBundle::open(&dir).unwrap_err().to_string();
    assert!(err.contains("features.int8.onnx") && err.contains("re-quantise"), "{err}");
    let dir = root.path().join("float_as_int8");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(models().join("msaff_tiny").join("features.onnx"), dir.join("features.onnx")).unwrap();
    std::fs::copy(models().join("msaff_tiny").join("features.onnx"), dir.join("features.int8.onnx")).unwrap();
    let err = ModelBundle::open(&dir).unwrap_err().to_string();
    assert!(err.contains("expected 'int8'"), "{err}");
    assert!(ModelBundle::open(&models().join("msaff_tiny_int8")).unwrap().features_int8.is_some());
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

/// Deterministic embedding-like values: `rows × cols`, roughly N(0, 1).
fn pseudo_normal(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut uniform = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    };
    Array2::from_shape_fn((rows, cols), |_| {
        (0..4).map(|_| uniform()).sum::<f32>() * 1.7 - 3.4
    })
}

#[test]
fn the_split_mlp_matches_the_onnx_mlp() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let dirs: Vec<PathBuf> = BUNDLES
        .iter()
        .map(|n| models().join(n))
        .chain(
            ["msaff", "unet32", "unet_attention"]
                .iter()
                .map(|n| shipped.join(n)),
        )
        .collect();
    let mut checked = 0;
    for dir in dirs {
        let bundle = ModelBundle::open(&dir).unwrap();
        let Some(mlp) = &bundle.mlp else { continue };
        let c = bundle.features.embedding_dim;
        let split = SplitMlp::from_file(&mlp.path, c)
            .unwrap()
            .unwrap_or_else(|| panic!("{}: standard pattern", dir.display()));
        let onnx = Tract.decision_net(&mlp.path).unwrap();
        let (left, right) = (pseudo_normal(700, c, 1), pseudo_normal(700, c, 2));
        let a = split.run(left.view(), right.view()).unwrap();
        let b = onnx.run(left.view(), right.view()).unwrap();
        let diff = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= 1e-4,
            "{}: split MLP differs from the ONNX MLP by {diff:e}",
            dir.display()
        );
        let spread = b.iter().fold(0f32, |m, v| m.max(*v)) - b.iter().fold(1f32, |m, v| m.min(*v));
        assert!(
            spread > 0.05,
            "{}: the check needs varied similarities (spread {spread})",
            dir.display()
        );
        checked += 1;
    }
    assert!(checked >= 8);
}

#[test]
fn an_mlp_outside_the_standard_pattern_runs_through_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    broken_bundle(dir.path(), |_, m| {
        for node in &mut m.as_mut().unwrap().graph.as_mut().unwrap().node {
            if node.op_type == "Relu" {
                node.op_type = "Tanh".into();
            }
        }
    });
    let bundle = ModelBundle::open(dir.path()).unwrap();
    let path = &bundle.mlp.as_ref().unwrap().path;
    assert!(
        SplitMlp::from_file(path, 8).unwrap().is_none(),
        "Tanh is not the pattern"
    );
    let learned = Learned::new(&bundle, &Tract, Some(Head::Mlp), Tiling::default()).unwrap();
    assert_eq!(learned.mlp_engine(), Some(MlpEngine::Onnx));
    let standard = Learned::new(
        &ModelBundle::open(&models().join("tiny_conv")).unwrap(),
        &Tract,
        None,
        Tiling::default(),
    )
    .unwrap();
    assert_eq!(standard.mlp_engine(), Some(MlpEngine::Split));
}

/// A textured pair shifted by `shift` px, and its validity.
fn shifted_pair(w: usize, h: usize, shift: f32) -> (Array2<f32>, Array2<f32>, Array2<bool>) {
    let texture = Texture::new(9, w + 40, h);
    let left = Array2::from_shape_fn((h, w), |(y, x)| texture.at(x as f32, y));
    let right = Array2::from_shape_fn((h, w), |(y, x)| texture.at(x as f32 + shift, y));
    (left, right, Array2::from_elem((h, w), true))
}

#[test]
fn mlp_top_k_keeps_the_mlp_on_the_best_cosine_candidates() {
    let (w, h) = (72, 40);
    let (left, right, valid) = shifted_pair(w, h, 5.4);
    let pair = LevelPair {
        left: &left,
        right: &right,
        left_valid: &valid,
        right_valid: &valid,
    };
    let intervals = Intervals::uniform(w, h, 0, 15).unwrap();
    let bundle = ModelBundle::open(&models().join("tiny_conv")).unwrap();
    let learned = |k: usize| {
        Learned::new(&bundle, &Tract, Some(Head::Mlp), Tiling::default())
            .unwrap()
            .with_mlp_top_k(k)
    };
    let fill = |l: &Learned| fill_volume(l.prepare(pair).unwrap().as_ref(), &intervals).unwrap();
    let exact = fill(&learned(0));
    assert_eq!(
        fill(&learned(16)),
        exact,
        "k ≥ every pixel's candidates: exact"
    );
    let onnx = fill(&learned(0).with_onnx_mlp());
    let worst = onnx
        .iter()
        .zip(&exact)
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap();
    assert!(
        worst <= 1,
        "native and ONNX MLP costs differ by {worst} / 1024"
    );
    let k = 3;
    let pruned = fill(&learned(k));
    let mut pruned_pixels = 0;
    for y in 0..h {
        for x in 0..w {
            let inside = intervals.inside_right(x, y, w);
            if inside.len() <= k {
                continue;
            }
            pruned_pixels += 1;
            let e0 = intervals.entries(x, y).start;
            let same: Vec<usize> = inside
                .clone()
                .filter(|&i| pruned[e0 + i] == exact[e0 + i])
                .collect();
            assert!(
                same.len() >= k,
                "({x}, {y}): the MLP's costs kept on at least {k} candidates"
            );
            let best = inside.clone().map(|i| pruned[e0 + i]).min().unwrap();
            assert!(
                same.iter().any(|&i| pruned[e0 + i] == best),
                "({x}, {y}): a winner is an MLP-evaluated candidate"
            );
            // The pruned candidates rank after the kept ones: after the k-th best of those whose
            // cost is the MLP's (a superset of the kept ones).
            let mut kept_costs: Vec<u16> = same.iter().map(|&i| exact[e0 + i]).collect();
            kept_costs.sort_unstable();
            let kth = kept_costs[k - 1];
            assert!(
                inside
                    .clone()
                    .filter(|i| !same.contains(i))
                    .all(|i| pruned[e0 + i] >= kth),
                "({x}, {y})"
            );
        }
    }
    assert!(pruned_pixels > w * h / 2);
}

/// Overwrites the raw data of initialiser `name` with `value` in every element.
fn fill_initializer(model: &mut ModelProto, name: &str, value: f32) {
    let t = model
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == name)
        .unwrap();
    let n = t.raw_data.len() / 4;
    t.raw_data = std::iter::repeat_n(value.to_le_bytes(), n)
        .flatten()
        .collect();
}

#[test]
fn a_model_with_non_finite_or_out_of_range_outputs_fails_naming_its_file() {
    let root = tempfile::tempdir().unwrap();
    let (w, h) = (48, 32);
    let (left, right, valid) = shifted_pair(w, h, 3.0);
    let pair = LevelPair {
        left: &left,
        right: &right,
        left_valid: &valid,
        right_valid: &valid,
    };
    let intervals = Intervals::uniform(w, h, 0, 7).unwrap();
    let run = |dir: &Path, head: Head| -> String {
        let bundle = ModelBundle::open(dir).unwrap();
        let learned = Learned::new(&bundle, &Tract, Some(head), Tiling::default()).unwrap();
        let err = match learned.prepare(pair) {
            Err(e) => e,
            Ok(costs) => match fill_volume(costs.as_ref(), &intervals) {
                Err(e) => e,
                Ok(v) => panic!("{}: no error (costs {:?}…)", dir.display(), &v[..8]),
            },
        };
        err.to_string()
    };
    // Features NaN (a NaN bias).
    let dir = root.path().join("nan_features");
    broken_bundle(&dir, |f, _| fill_initializer(f, "conv2.bias", f32::NAN));
    let err = run(&dir, Head::Cosine);
    assert!(
        err.contains(dir.join("features.onnx").to_str().unwrap()) && err.contains("NaN"),
        "{err}"
    );
    // Features infinite.
    let dir = root.path().join("inf_features");
    broken_bundle(&dir, |f, _| {
        fill_initializer(f, "conv2.bias", f32::INFINITY)
    });
    let err = run(&dir, Head::Mlp);
    assert!(
        err.contains(dir.join("features.onnx").to_str().unwrap()) && err.contains("inf"),
        "{err}"
    );
    // An MLP without its sigmoid (not the standard pattern: run through the runtime).
    let dir = root.path().join("no_sigmoid");
    broken_bundle(&dir, |_, m| {
        let m = m.as_mut().unwrap();
        fill_initializer(m, "mlp.net.4.bias", 100.0);
        let node = m
            .graph
            .as_mut()
            .unwrap()
            .node
            .iter_mut()
            .find(|n| n.op_type == "Sigmoid")
            .unwrap();
        node.op_type = "Identity".into();
    });
    let err = run(&dir, Head::Mlp);
    assert!(
        err.contains(dir.join("mlp.onnx").to_str().unwrap()) && err.contains("outside [0, 1]"),
        "{err}"
    );
    // An MLP with NaN weights (the native path).
    let dir = root.path().join("nan_mlp");
    broken_bundle(&dir, |_, m| {
        fill_initializer(m.as_mut().unwrap(), "mlp.net.2.weight", f32::NAN)
    });
    let err = run(&dir, Head::Mlp);
    assert!(
        err.contains(dir.join("mlp.onnx").to_str().unwrap()) && err.contains("NaN"),
        "{err}"
    );
}

#[test]
fn runtime_auto_falls_back_to_tract_and_an_explicit_ort_without_a_library_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (left, right, _) = shifted_pair(64, 40, 4.0);
    for (name, image) in [("l.png", &left), ("r.png", &right)] {
        let (h, w) = image.dim();
        image::GrayImage::from_fn(w as u32, h as u32, |x, y| {
            image::Luma([(image[(y as usize, x as usize)] * 255.0) as u8])
        })
        .save(dir.path().join(name))
        .unwrap();
    }
    let missing = dir.path().join("nowhere/libonnxruntime.so.1.99.0");
    let run = |runtime: &str, out: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_deepsim"))
            .args(["match", "--disp-min", "0", "--disp-max", "15", "--left"])
            .arg(dir.path().join("l.png"))
            .arg("--right")
            .arg(dir.path().join("r.png"))
            .arg("--out")
            .arg(dir.path().join(out))
            .arg("--model")
            .arg(models().join("tiny_conv"))
            .args(["--runtime", runtime])
            .env("ORT_DYLIB_PATH", &missing)
            .output()
            .unwrap()
    };
    let auto = run("auto", "auto");
    let stderr = String::from_utf8_lossy(&auto.stderr);
    assert!(auto.status.success(), "{stderr}");
    assert!(
        stderr.contains("runtime tract") && stderr.contains("did not load"),
        "{stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("auto/run.json")).unwrap()).unwrap();
    let choice = &report["models"][0]["model"]["runtime_choice"];
    assert_eq!(choice["requested"], "auto");
    assert_eq!(choice["chosen"], "tract");
    assert!(
        choice["why"].as_str().unwrap().contains("ORT_DYLIB_PATH"),
        "{choice}"
    );
    let explicit = run("ort", "ort");
    let stderr = String::from_utf8_lossy(&explicit.stderr);
    assert!(
        !explicit.status.success(),
        "--runtime ort without a library must fail"
    );
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
    assert!(!dir.path().join("ort/run.json").exists());
}
