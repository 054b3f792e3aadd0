//! Speed of `deepsim mmvii` (MicMac's DM4FillCubeCost) on a MicMac-sized tile: cube fill given
//! the features (cosine, MLP), MMVIICorrel, and feature extraction, per runtime.
//!
//! `cargo run --release --example bench_mmvii -- [BUNDLE] [--size 1000] [--candidates 30] [--mlp-rows 40] [--fill-only]`
//!
//! BUNDLE defaults to models/msaff. The tile is `size × size` with `candidates` Z per pixel
//! (StepZ 1, and StepZ 0.5 for the bilinear path); image 2's crop is wider by the Z range, as
//! MicMac's Box2. The MLP is timed on the first `mlp-rows` rows and extrapolated (it costs far
//! more per candidate). Threads: rayon's default (all cores) unless RAYON_NUM_THREADS is set.
//! ONNX Runtime rows need ORT_DYLIB_PATH or python3's onnxruntime.

#[path = "common/mod.rs"]
mod common;

use deepsim::mmvii::{fill_learned, Crop, FeatureMap, Geometry, Layers};
use deepsim::model::ModelBundle;
use deepsim::similarity::{Head, Learned, Tiling};
use ndarray::{Array2, Array3};
use std::path::PathBuf;
use std::time::Instant;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn hash(x: usize, y: usize, seed: u32) -> f32 {
    let v = (x as u32).wrapping_mul(2654435761) ^ (y as u32).wrapping_mul(40503) ^ seed.wrapping_mul(97);
    (v.wrapping_mul(2246822519) >> 8) as f32 / (1u32 << 24) as f32
}

/// A smooth-ish grey texture in [0, 1].
fn texture(w: usize, h: usize, seed: u32) -> Array2<f32> {
    Array2::from_shape_fn((h, w), |(y, x)| 0.5 * hash(x / 2, y / 2, seed) + 0.5 * hash(x, y, seed + 1))
}

/// CPU seconds used by this process so far (user + system, all threads; Linux), if known.
fn cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Runs `f` `n` times; the best wall-clock time, the CPU time of that run, and the last output.
/// On a shared machine the CPU time divided by the threads is what the run costs on idle cores.
fn best_of<T>(n: usize, mut f: impl FnMut() -> deepsim::Result<T>) -> deepsim::Result<(f64, T)> {
    let mut best = (f64::INFINITY, f64::NAN);
    let mut last = None;
    for _ in 0..n {
        let (t, c) = (Instant::now(), cpu_s());
        let out = f()?;
        let wall = t.elapsed().as_secs_f64();
        if wall < best.0 {
            best = (wall, cpu_s().zip(c).map_or(f64::NAN, |(b, a)| b - a));
        }
        last = Some(out);
    }
    eprintln!("    (wall {:.3} s, CPU {:.2} s over {} thread(s))", best.0, best.1, rayon::current_num_threads());
    Ok((best.0, last.expect("n ≥ 1")))
}

fn main() -> deepsim::Result<()> {
    let bundle_dir = std::env::args().nth(1).filter(|a| !a.starts_with("--")).map(PathBuf::from).unwrap_or_else(|| "models/msaff".into());
    let size = arg("--size", 1000);
    let candidates = arg("--candidates", 30);
    let mlp_rows = arg("--mlp-rows", 40).min(size);
    let bundle = ModelBundle::open(&bundle_dir)?;
    let c = bundle.features.embedding_dim;
    let (w1, h) = (size, size);
    let w2 = size + candidates;
    let threads = rayon::current_num_threads();
    println!("tile {size}×{size}, {candidates} candidates per pixel ({:.1} M costs), C = {c}, {threads} thread(s)", (size * size * candidates) as f64 / 1e6);

    // Intervals: Z in [0, candidates) everywhere (image 2's crop starts at the tile's column).
    let n = w1 * h;
    let layers = Layers::new(w1, h, vec![0; n], vec![candidates as i16; n])?;
    let geo = |step_z: f64| Geometry { p0: (0, 0), origin1: (0, 0), origin2: (0, 0), step_z };

    // 1. Cube fill given features (random features: the fill does not care what they mean).
    let feats = |w: usize, seed: u32| Array3::from_shape_fn((h, w, c), |(y, x, k)| hash(x * c + k, y, seed) - 0.5);
    let (f1, f2) = (feats(w1, 1), feats(w2, 2));
    let (v1, v2) = (Array2::from_elem((h, w1), true), Array2::from_elem((h, w2), true));
    let t = Instant::now();
    let (m1, m2) = (FeatureMap::from_raw(f1, &v1), FeatureMap::from_raw(f2, &v2));
    println!("feature maps → unit vectors + norms: {:.3} s", t.elapsed().as_secs_f64());
    for step in [1.0, 0.5] {
        let (s, cube) = best_of(3, || fill_learned(&layers, &geo(step), &m1, &m2, Head::Cosine, None))?;
        println!(
            "cosine fill, StepZ {step}: {s:.3} s ({:.0} M costs/s), {} MB cube",
            cube.len() as f64 / s / 1e6,
            cube.len() * 2 / 1_000_000
        );
    }
    drop((m1, m2));
    if std::env::args().any(|a| a == "--fill-only") {
        return Ok(());
    }

    // 2. MMVIICorrel 7x7 on the same tile.
    let crop = |w: usize, seed: u32| Crop { values: texture(w, h, seed).mapv(|v| (v * 255.0).round()), valid: Array2::from_elem((h, w), true), origin: (0, 0) };
    let (c1, c2) = (crop(w1, 1), crop(w2, 2));
    let (s, _) = best_of(1, || deepsim::mmvii::fill_correl(&layers, &geo(1.0), &c1, &c2, 3))?;
    println!("MMVIICorrel 7x7 fill, StepZ 1: {s:.3} s ({:.0} M costs/s)", layers.total() as f64 / s / 1e6);

    // 3. Per runtime: features of both crops, and the MLP fill (extrapolated from mlp_rows rows).
    let sub = Layers::new(w1, mlp_rows, vec![0; w1 * mlp_rows], vec![candidates as i16; w1 * mlp_rows])?;
    let mlp_maps = {
        let f1 = feats(w1, 3).slice(ndarray::s![..mlp_rows, .., ..]).to_owned();
        let f2 = feats(w2, 4).slice(ndarray::s![..mlp_rows, .., ..]).to_owned();
        let (v1, v2) = (Array2::from_elem((mlp_rows, w1), true), Array2::from_elem((mlp_rows, w2), true));
        (FeatureMap::from_raw(f1, &v1), FeatureMap::from_raw(f2, &v2))
    };
    let (i1, i2) = (texture(w1, h, 5), texture(w2, h, 6));
    for runtime in common::runtimes() {
        let model = Learned::new(&bundle, runtime.as_ref(), Some(Head::Mlp), Tiling { tile_px: 512, margin_px: 128 })?;
        let net = model.decision_net();
        let (s, _) = best_of(1, || fill_learned(&sub, &geo(1.0), &mlp_maps.0, &mlp_maps.1, Head::Mlp, net))?;
        let mlp_full = s * (h as f64 / mlp_rows as f64);
        println!(
            "{}: MLP fill {:.3} s for {mlp_rows} rows → {mlp_full:.1} s for the tile ({:.2} M costs/s)",
            runtime.name(),
            s,
            sub.total() as f64 / s / 1e6
        );
        let t = Instant::now();
        let (e1, e2) = rayon::join(|| model.embed(&i1), || model.embed(&i2));
        let (e1, e2) = (e1?, e2?);
        let features_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (m1, m2) = rayon::join(|| FeatureMap::from_raw(e1, &v1), || FeatureMap::from_raw(e2, &v2));
        let prep_s = t.elapsed().as_secs_f64();
        let (cos_s, _) = best_of(1, || fill_learned(&layers, &geo(1.0), &m1, &m2, Head::Cosine, None))?;
        println!(
            "{}: {} features of both crops {features_s:.1} s (+{prep_s:.2} s normalising); total cosine {:.1} s, total MLP ≈ {:.1} s",
            runtime.name(),
            bundle.features.arch,
            features_s + prep_s + cos_s,
            features_s + prep_s + mlp_full
        );
    }
    Ok(())
}
