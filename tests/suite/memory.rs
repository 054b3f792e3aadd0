//! Bounded memory (`--max-memory`): large images go through scratch files and bands of rows,
//! stay under the budget, and give the same maps as an in-memory run.

use crate::common::planar_scene;
use deepsim::io::{read_disparity, write_tiff_f32};
use std::path::Path;
use std::process::Command;

fn run(dir: &Path, out: &str, extra: &[&str]) -> serde_json::Value {
    let status = Command::new(env!("CARGO_BIN_EXE_deepsim"))
        .args(["-q", "match", "--disp-min", "0", "--disp-max", "63", "--levels", "3", "--tile", "128", "--tile-overlap", "48"])
        .arg("--left")
        .arg(dir.join("l.tif"))
        .arg("--right")
        .arg(dir.join("r.tif"))
        .arg("--out")
        .arg(dir.join(out))
        .args(extra)
        .status()
        .unwrap();
    assert!(status.success(), "deepsim match {extra:?} failed");
    serde_json::from_slice(&std::fs::read(dir.join(out).join("run.json")).unwrap()).unwrap()
}

/// A 1800 × 1200 float pair (percentile stretch, strip-by-strip reading) under the smallest
/// budget: scratch storage, peak memory below the budget, the same bits as in memory.
#[test]
fn a_pair_larger_than_the_budget_runs_within_it_and_gives_the_in_memory_result() {
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(12, 1800, 1200);
    write_tiff_f32(&dir.path().join("l.tif"), &scene.pair.left.mapv(|v| 1000.0 * v - 200.0)).unwrap();
    write_tiff_f32(&dir.path().join("r.tif"), &scene.pair.right.mapv(|v| 1000.0 * v - 200.0)).unwrap();

    let free = run(dir.path(), "free", &["--max-memory", "8G"]);
    assert_eq!(free["storage"], "memory");
    let budget = 128u64 << 20;
    let bounded = run(dir.path(), "bounded", &["--max-memory", "128M"]);
    assert!(bounded["storage"]["scratch"].is_string(), "storage: {}", bounded["storage"]);
    let peak = bounded["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak < budget, "peak {} MB over the 128 MB budget", peak >> 20);
    // The scratch files (in the output folder by default) are gone.
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path().join("bounded")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    names.sort();
    assert_eq!(names, ["confidence.tif", "disparity.png", "disparity.tif", "run.json"]);

    for map in ["disparity.tif", "confidence.tif"] {
        let a = read_disparity(&dir.path().join("free").join(map)).unwrap();
        let b = read_disparity(&dir.path().join("bounded").join(map)).unwrap();
        assert!(a.values.iter().zip(&b.values).all(|(x, y)| x.to_bits() == y.to_bits()), "{map} differs");
    }
    assert_eq!(free["stats"], bounded["stats"]);
    let density = bounded["stats"]["density"].as_f64().unwrap();
    assert!(density > 0.9, "density {density}");

    // The accurate left-right check's right volume counts in the budget too.
    let accurate = run(dir.path(), "accurate", &["--max-memory", "128M", "--lr-check-mode", "accurate"]);
    let peak = accurate["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak < budget, "accurate left-right check: peak {} MB over the 128 MB budget", peak >> 20);
    let density = accurate["stats"]["density"].as_f64().unwrap();
    assert!(density > 0.9, "accurate left-right check: density {density}");
}

#[test]
fn a_budget_too_small_is_refused_with_the_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(12, 64, 48);
    write_tiff_f32(&dir.path().join("l.tif"), &scene.pair.left).unwrap();
    write_tiff_f32(&dir.path().join("r.tif"), &scene.pair.right).unwrap();
    for (budget, message) in [("16M", "use at least 128 MB"), ("lots", "--max-memory 'lots'")] {
        let output = Command::new(env!("CARGO_BIN_EXE_deepsim"))
            .args(["-q", "match", "--disp-min", "0", "--disp-max", "15", "--max-memory", budget, "--left"])
            .arg(dir.path().join("l.tif"))
            .arg("--right")
            .arg(dir.path().join("r.tif"))
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{budget}: {stderr}");
        assert!(!dir.path().join("out/run.json").exists());
    }
}

/// A learned run under a small budget: the feature windows shrink to fit the extractor's
/// activations into it (run.json says so) and, their margins being kept, the map is the one of
/// the default budget.
#[test]
fn a_learned_run_sizes_its_feature_tiles_from_the_budget_and_keeps_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(5, 320, 200);
    write_tiff_f32(&dir.path().join("l.tif"), &scene.pair.left).unwrap();
    write_tiff_f32(&dir.path().join("r.tif"), &scene.pair.right).unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models/msaff_tiny");
    let model = model.to_str().unwrap();
    let learned = ["--model", model, "--head", "cosine", "--runtime", "tract"];
    let tiling = |report: &serde_json::Value| report["models"][0]["model"]["feature_tiling"]["tile_px"].as_u64().unwrap();

    let free = run(dir.path(), "free", &[&learned[..], &["--max-memory", "8G"]].concat());
    assert_eq!(tiling(&free) as usize, deepsim::similarity::DEFAULT_FEATURE_TILE_PX, "8 GB leaves the default feature tile");
    let bounded = run(dir.path(), "bounded", &[&learned[..], &["--max-memory", "192M"]].concat());
    assert!(tiling(&bounded) < 320, "192 MB must split the 320 px image into feature tiles: {}", tiling(&bounded));
    let peak = bounded["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak < 192 << 20, "peak {} MB over the 192 MB budget", peak >> 20);

    let a = read_disparity(&dir.path().join("free/disparity.tif")).unwrap();
    let b = read_disparity(&dir.path().join("bounded/disparity.tif")).unwrap();
    let same = a.values.iter().zip(&b.values).filter(|(x, y)| x.to_bits() == y.to_bits()).count();
    // Tiled features equal whole-image ones to 1e-5 (tests/suite/learned.rs); rounding to f16
    // may flip a last bit, hence not quite every pixel.
    assert!(same as f64 >= 0.999 * a.values.len() as f64, "{same} of {} pixels equal", a.values.len());
}

/// The confidence products under the smallest budget: scratch storage, peak memory below the
/// budget, the same bits as in memory for every map.
#[test]
fn confidence_products_stay_within_the_budget_and_match_the_in_memory_run() {
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(13, 1200, 800);
    write_tiff_f32(&dir.path().join("l.tif"), &scene.pair.left).unwrap();
    write_tiff_f32(&dir.path().join("r.tif"), &scene.pair.right).unwrap();
    let free = run(dir.path(), "free", &["--max-memory", "8G", "--confidence"]);
    assert_eq!(free["storage"], "memory");
    // 192 MB: under 128 MB the accurate left-right check's right volume makes the 128-px tiles
    // split further (then the maps differ within the tiling tolerance, not bit for bit).
    let bounded = run(dir.path(), "bounded", &["--max-memory", "192M", "--confidence"]);
    assert!(bounded["storage"]["scratch"].is_string(), "storage: {}", bounded["storage"]);
    let peak = bounded["peak_memory_bytes"].as_u64().unwrap();
    assert!(peak < 192 << 20, "peak {} MB over the 192 MB budget", peak >> 20);
    for map in ["disparity.tif", "confidence.tif"].into_iter().chain(deepsim::pipeline::PRODUCT_FILES) {
        let read = |run: &str| deepsim::io::read_image(&dir.path().join(run).join(map), &Default::default()).unwrap().values;
        let (a, b) = (read("free"), read("bounded"));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{map} differs");
    }
}
