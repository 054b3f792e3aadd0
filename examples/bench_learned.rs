//! Speed of the learned backends: feature extraction per megapixel and cost-volume fill rate
//! (pixel × candidate per second) for the cosine and MLP heads, on each runtime.
//!
//! `cargo run --release --example bench_learned -- BUNDLE [BUNDLE ...]`
//! (ONNX Runtime rows need ORT_DYLIB_PATH or python3's onnxruntime; bench/learned.sh sets it.)

#[path = "common/mod.rs"]
mod common;

use deepsim::cost::{fill_volume, Intervals};
use deepsim::model::ModelBundle;
use deepsim::similarity::{Head, Learned, LevelPair, Similarity, Tiling};
use ndarray::Array2;
use std::path::PathBuf;
use std::time::Instant;

fn texture(w: usize, h: usize, seed: u32) -> Array2<f32> {
    Array2::from_shape_fn((h, w), |(y, x)| {
        let v = (x as u32 / 2).wrapping_mul(2654435761) ^ (y as u32 / 2).wrapping_mul(40503) ^ seed;
        (v.wrapping_mul(2246822519) >> 8) as f32 / (1u32 << 24) as f32
    })
}

fn main() -> deepsim::Result<()> {
    let bundles: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let (w, h) = (512, 512);
    let left = texture(w, h, 1);
    let right = texture(w, h, 2);
    let valid = Array2::from_elem((h, w), true);
    let pair = LevelPair { left: &left, right: &right, left_valid: &valid, right_valid: &valid };
    let candidates = 32;
    let intervals = Intervals::uniform(w, h, 0, candidates - 1)?;
    // The MLP costs ~0.35 M multiply-adds per candidate: a smaller volume keeps the run short.
    let (wm, hm) = (128, 64);
    let (left_m, right_m, valid_m) = (texture(wm, hm, 3), texture(wm, hm, 4), Array2::from_elem((hm, wm), true));
    let pair_m = LevelPair { left: &left_m, right: &right_m, left_valid: &valid_m, right_valid: &valid_m };
    let intervals_m = Intervals::uniform(wm, hm, 0, candidates - 1)?;
    println!("{:<16} {:<9} {:>14} {:>18} {:>18}", "model", "runtime", "features s/MP", "cosine Mcand/s", "mlp Mcand/s");
    for dir in &bundles {
        let bundle = ModelBundle::open(dir)?;
        for runtime in common::runtimes() {
            let mut row = format!("{:<16} {:<9}", bundle.features.arch, runtime.name());
            let cosine = Learned::new(&bundle, runtime.as_ref(), Some(Head::Cosine), Tiling::default())?;
            cosine.embed(&left)?; // warm-up: builds the plan for this size
            let t = Instant::now();
            cosine.embed(&left)?;
            let per_mp = t.elapsed().as_secs_f64() / (w * h) as f64 * 1e6;
            row += &format!(" {per_mp:>14.3}");
            let prepared = cosine.prepare(pair)?;
            let t = Instant::now();
            fill_volume(prepared.as_ref(), &intervals)?;
            row += &format!(" {:>18.1}", intervals.total() as f64 / t.elapsed().as_secs_f64() / 1e6);
            if bundle.mlp.is_some() {
                let mlp = Learned::new(&bundle, runtime.as_ref(), Some(Head::Mlp), Tiling::default())?;
                let prepared = mlp.prepare(pair_m)?;
                let t = Instant::now();
                fill_volume(prepared.as_ref(), &intervals_m)?;
                row += &format!(" {:>18.3}", intervals_m.total() as f64 / t.elapsed().as_secs_f64() / 1e6);
            }
            println!("{row}");
        }
    }
    Ok(())
}
