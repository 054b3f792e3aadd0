//! Cost of going through the plugin ABI: the same measure (NCC 7×7) built in and as the `zncc`
//! example plugin, on one thread, per `fill_rows` call and over a whole cost volume.
//!
//! ```text
//! cargo build --release -p deepsim-plugin-zncc
//! cargo run --release --example plugin_overhead [-- target/release/libdeepsim_plugin_zncc.so]
//! ```
//!
//! The per-call overhead is the time of a plugin call minus the time of the built-in call on the
//! same tiny block (lending an instance from the pool, building the block, the FFI call, the
//! plugin's checks of its arguments, clamping the costs). Both compute bit-identical costs.

use deepsim::cost::{fill_volume, Intervals};
use deepsim::plugin::PluginSimilarity;
use deepsim::similarity::{LevelPair, Ncc, PairCosts, Similarity};
use ndarray::Array2;
use std::path::PathBuf;
use std::time::Instant;

fn texture(w: usize, h: usize, seed: u32) -> Array2<f32> {
    Array2::from_shape_fn((h, w), |(y, x)| {
        let v = (x as u32).wrapping_mul(2654435761) ^ (y as u32).wrapping_mul(40503) ^ seed;
        (v.wrapping_mul(2246822519) >> 8) as f32 / (1u32 << 24) as f32
    })
}

/// Median seconds per call of `f` over `rounds` rounds of `calls` calls.
fn per_call(rounds: usize, calls: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..calls {
                f();
            }
            t.elapsed().as_secs_f64() / calls as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[rounds / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("target/release/{}deepsim_plugin_zncc{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)));
    let builtin = Ncc::new(7)?;
    let plugin = PluginSimilarity::new(&path, "window=7")?;
    rayon::ThreadPoolBuilder::new().num_threads(1).build_global()?;

    println!("| case | built-in | plugin | difference |");
    println!("|---|---|---|---|");
    // Per call: one row of a small image, 1 or 16 candidates per pixel.
    for (w, candidates) in [(16usize, 1i32), (64, 16)] {
        let (left, right) = (texture(w, 8, 1), texture(w, 8, 2));
        let valid = Array2::from_elem((8, w), true);
        let pair = LevelPair { left: &left, right: &right, left_valid: &valid, right_valid: &valid };
        let intervals = Intervals::uniform(w, 8, 0, candidates - 1)?;
        let mut out = vec![0u16; intervals.row_entries(3).len()];
        let (a, b) = (builtin.prepare(pair)?, plugin.prepare(pair)?);
        let mut time = |costs: &dyn PairCosts| per_call(15, 20_000, || costs.fill_rows(3..4, &intervals, &mut out).unwrap());
        let (ta, tb) = (time(a.as_ref()), time(b.as_ref()));
        println!(
            "| one call, 1 row × {w} px × {candidates} candidate(s) | {:.2} µs | {:.2} µs | {:+.2} µs per call |",
            ta * 1e6,
            tb * 1e6,
            (tb - ta) * 1e6
        );
    }
    // The ABI alone: a plugin whose compute only writes zeros (the panic fixture with at=never).
    let fixture = path.with_file_name(format!("{}deepsim_fixture_panic{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
    if let Ok(noop) = PluginSimilarity::new(&fixture, "at=never") {
        let (left, right) = (texture(16, 8, 1), texture(16, 8, 2));
        let valid = Array2::from_elem((8, 16), true);
        let pair = LevelPair { left: &left, right: &right, left_valid: &valid, right_valid: &valid };
        let intervals = Intervals::uniform(16, 8, 0, 0)?;
        let mut out = vec![0u16; 16];
        let prepared = noop.prepare(pair)?;
        let t = per_call(15, 20_000, || prepared.fill_rows(3..4, &intervals, &mut out).unwrap());
        println!("| one call to a plugin that only writes zeros, 1 row × 16 px × 1 candidate | – | {:.2} µs | the whole per-call cost of the ABI |", t * 1e6);
    } else {
        println!("(build deepsim-fixture-panic for the no-op row: cargo build --release -p deepsim-fixture-panic)");
    }
    // A whole volume, as the pipeline fills it (blocks of rows; here on one thread).
    let (w, h, d) = (512, 256, 64);
    let (left, right) = (texture(w, h, 1), texture(w, h, 2));
    let valid = Array2::from_elem((h, w), true);
    let pair = LevelPair { left: &left, right: &right, left_valid: &valid, right_valid: &valid };
    let intervals = Intervals::uniform(w, h, 0, d - 1)?;
    let mut rates = Vec::new();
    for similarity in [&builtin as &dyn Similarity, &plugin] {
        let t = Instant::now();
        let prepared = similarity.prepare(pair)?;
        let prepare_s = t.elapsed().as_secs_f64();
        let fill_s = per_call(5, 1, || {
            std::hint::black_box(fill_volume(prepared.as_ref(), &intervals).unwrap());
        });
        rates.push((prepare_s, fill_s));
    }
    let entries = intervals.total() as f64;
    println!(
        "| volume {w}×{h}×{d} (prepare + fill) | {:.1} ms + {:.0} ms ({:.0} M entries/s) | {:.1} ms + {:.0} ms ({:.0} M entries/s) | {:+.1} % fill time |",
        rates[0].0 * 1e3,
        rates[0].1 * 1e3,
        entries / rates[0].1 / 1e6,
        rates[1].0 * 1e3,
        rates[1].1 * 1e3,
        entries / rates[1].1 / 1e6,
        100.0 * (rates[1].1 / rates[0].1 - 1.0)
    );
    Ok(())
}
