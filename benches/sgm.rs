//! Throughput of the core stages, in (pixel × disparity [× direction]) per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deepsim::cost::{fill_volume, CostVolume, Intervals};
use deepsim::sgm::{aggregate, Penalty, SgmParams};
use deepsim::similarity::{Census, LevelPair, Similarity};
use ndarray::Array2;
use std::hint::black_box;

fn texture(w: usize, h: usize, seed: u32) -> Array2<f32> {
    Array2::from_shape_fn((h, w), |(y, x)| {
        let v = (x as u32).wrapping_mul(2654435761) ^ (y as u32).wrapping_mul(40503) ^ seed;
        (v.wrapping_mul(2246822519) >> 8) as f32 / (1u32 << 24) as f32
    })
}

fn benches(c: &mut Criterion) {
    let (w, h, d) = (512, 256, 64);
    let left = texture(w, h, 1);
    let right = texture(w, h, 2);
    let valid = Array2::from_elem((h, w), true);
    let intervals = Intervals::uniform(w, h, 0, d - 1).unwrap();
    let census = Census::new(7, 7).unwrap();
    let pair = LevelPair { left: &left, right: &right, left_valid: &valid, right_valid: &valid };
    let prepared = census.prepare(pair).unwrap();

    let mut group = c.benchmark_group("cost");
    group.throughput(Throughput::Elements(intervals.total() as u64));
    group.bench_function("census7x7_fill_512x256x64", |b| b.iter(|| fill_volume(prepared.as_ref(), black_box(&intervals)).unwrap()));
    group.finish();

    let volume = CostVolume { costs: fill_volume(prepared.as_ref(), &intervals).unwrap(), intervals };
    let mut group = c.benchmark_group("sgm");
    group.sample_size(10);
    for (name, penalty) in [
        ("classic", Penalty::Classic { p1: 0.2, p2: 0.8, p2_adapt: None }),
        ("micmac_linear", Penalty::Linear { weight: 0.05, max_slope: 3.0 }),
    ] {
        let params = SgmParams { directions: 8, penalty };
        group.throughput(Throughput::Elements(volume.intervals.total() as u64 * 8));
        group.bench_function(format!("{name}_8dir_512x256x64"), |b| b.iter(|| aggregate(black_box(&volume), &left, &params).unwrap()));
    }
    group.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
