//! `deepsim check-model`: the contract check of a bundle, then one run of each network.

use super::args::CheckModelArgs;
use deepsim::model::ModelBundle;
use deepsim::runtime::Device;
use ndarray::Array2;

pub fn run(args: CheckModelArgs) -> anyhow::Result<()> {
    let bundle = ModelBundle::open(&args.bundle)?;
    let cpu = super::runtime::DeviceArgs { device: Device::Cpu, device_id: 0, trt_cache: None, trt_fp16: false };
    let runtime = super::runtime::build(args.runtime, cpu)?;
    let f = &bundle.features;
    say!("{}: model contract {} — OK\n", bundle.dir.display(), f.contract);
    say!("  features.onnx  arch {}, embedding {}, pad multiple {}, normalisation \"{}\"\n", f.arch, f.embedding_dim, f.pad_multiple, f.normalization);
    // The smallest multiple of the padding of at least 32 pixels.
    let side = 32usize.next_multiple_of(f.pad_multiple);
    let image = Array2::from_shape_fn((side, side), |(y, x)| ((x * 7 + y * 13) % 17) as f32 / 16.0);
    let features = runtime.feature_net(&f.path)?.run(image.view())?;
    anyhow::ensure!(features.iter().all(|v| v.is_finite()), "{}: non-finite features on a {side}×{side} test image", f.path.display());
    anyhow::ensure!(
        features.dim().0 == f.embedding_dim,
        "{}: the network outputs {} feature channels but declares deepsim.embedding_dim {}; export them alike",
        f.path.display(),
        features.dim().0,
        f.embedding_dim
    );
    say!("  ran on {} with a {side}×{side} image: [{}, {side}, {side}] features, all finite\n", runtime.name(), features.dim().0);
    if let Some(q) = &bundle.features_int8 {
        if runtime.runs_int8_fast() {
            let int8 = runtime.feature_net(&q.path)?.run(image.view())?;
            anyhow::ensure!(int8.dim() == features.dim(), "{}: output {:?}, the float model's is {:?}", q.path.display(), int8.dim(), features.dim());
            anyhow::ensure!(int8.iter().all(|v| v.is_finite()), "{}: non-finite features on a {side}×{side} test image", q.path.display());
            let cosine = mean_pixel_cosine(&features, &int8);
            say!("  features.int8.onnx  ran on {}: mean embedding cosine to the float model {cosine:.4} on the test image\n", runtime.name());
        } else {
            say!("  features.int8.onnx  contract OK; runs on ONNX Runtime's CPU provider (not run on {})\n", runtime.name());
        }
    }
    match &bundle.mlp {
        Some(m) => {
            let c = m.embedding_dim;
            let left = Array2::from_shape_fn((5, c), |(i, j)| ((i + j) % 3) as f32 - 1.0);
            let s = runtime.decision_net(&m.path)?.run(left.view(), left.view())?;
            anyhow::ensure!(
                s.iter().all(|v| (0.0..=1.0).contains(v)),
                "{}: similarities {:?} are not all in [0, 1]: the contract puts the sigmoid inside the graph",
                m.path.display(),
                s.iter().collect::<Vec<_>>()
            );
            say!("  mlp.onnx       embedding {c}: 5 pairs → similarities in [0, 1]\n");
        }
        None => say!("  no mlp.onnx: cosine head only\n"),
    }
    Ok(())
}

/// Mean over pixels of the cosine between two `[C, h, w]` embeddings.
fn mean_pixel_cosine(a: &ndarray::Array3<f32>, b: &ndarray::Array3<f32>) -> f32 {
    let (_, h, w) = a.dim();
    let mut sum = 0.0;
    for y in 0..h {
        for x in 0..w {
            let (u, v) = (a.slice(ndarray::s![.., y, x]), b.slice(ndarray::s![.., y, x]));
            sum += u.dot(&v) / (u.dot(&u).sqrt() * v.dot(&v).sqrt()).max(1e-12);
        }
    }
    sum / (h * w).max(1) as f32
}
