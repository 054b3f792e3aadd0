//! The `deepsim` binary: outputs, the completion marker, and errors.

use crate::common::{planar_scene, save_grey};
use std::path::Path;
use std::process::Command;

fn deepsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deepsim"))
}

#[test]
fn match_writes_all_outputs_and_a_complete_report() {
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(8, 160, 96);
    save_grey(&dir.path().join("l.png"), &scene.pair.left);
    save_grey(&dir.path().join("r.png"), &scene.pair.right);
    let out = dir.path().join("out");
    let status = deepsim()
        .args(["-q", "match", "--disp-min", "0", "--disp-max", "31", "--left"])
        .arg(dir.path().join("l.png"))
        .arg("--right")
        .arg(dir.path().join("r.png"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for f in ["disparity.tif", "confidence.tif", "disparity.png", "run.json"] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(report["parameters"]["disp_max"], 31);
    assert!(report["timings_s"]["total"].as_f64().unwrap() > 0.0);
    assert!(report["stats"]["cost_volume_entries"].as_u64().unwrap() > 0);
    let leftovers: Vec<_> = std::fs::read_dir(&out).unwrap().filter(|e| e.as_ref().unwrap().path().to_string_lossy().ends_with(".partial")).collect();
    assert!(leftovers.is_empty());

    let eval = deepsim()
        .args(["eval", "--disparity"])
        .arg(out.join("disparity.tif"))
        .arg("--gt")
        .arg(out.join("disparity.tif"))
        .output()
        .unwrap();
    assert!(eval.status.success());
    assert!(String::from_utf8_lossy(&eval.stdout).contains("nonocc"));
}

#[test]
fn errors_exit_non_zero_name_the_input_and_leave_no_report() {
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(8, 64, 48);
    save_grey(&dir.path().join("l.png"), &scene.pair.left);
    let short = scene.pair.right.slice(ndarray::s![..40, ..]).to_owned();
    save_grey(&dir.path().join("short.png"), &short);
    std::fs::write(dir.path().join("bad.png"), b"garbage").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("run.json"), "{}").unwrap();
    let cases: [(&str, &[&str], &str); 4] = [
        ("short.png", &[], "different heights"),
        ("bad.png", &[], "bad.png"),
        ("missing.png", &[], "missing.png"),
        ("l.png", &["--disp-min", "0", "--disp-max", "500"], "narrower than the image"),
    ];
    for (right, extra, expected) in cases {
        let output = deepsim()
            .args(["-q", "match", "--left"])
            .arg(dir.path().join("l.png"))
            .arg("--right")
            .arg(dir.path().join(right))
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "expected '{expected}' in: {stderr}");
    }
    // A failed run never leaves a report vouching for the folder (the stale one is gone too
    // once a run with valid inputs starts; invalid inputs stop before touching the folder).
    let failing = deepsim()
        .args(["-q", "match", "--window", "4x4", "--left"])
        .arg(dir.path().join("l.png"))
        .arg("--right")
        .arg(dir.path().join("l.png"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!failing.status.success());
    assert!(String::from_utf8_lossy(&failing.stderr).contains("census window 4x4"));
}

#[test]
fn check_model_accepts_a_good_bundle_and_names_the_problems_of_a_bad_one() {
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models");
    let good = deepsim().arg("check-model").arg(models.join("tiny_conv")).output().unwrap();
    assert!(good.status.success(), "{}", String::from_utf8_lossy(&good.stderr));
    assert!(String::from_utf8_lossy(&good.stdout).contains("model contract 1"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("features.onnx"), b"not a model").unwrap();
    let bad = deepsim().arg("check-model").arg(dir.path()).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an ONNX model"));
}

#[test]
fn georeferencing_of_the_left_image_is_kept_on_the_maps() {
    use deepsim::io::read_geotags;
    use tiff::encoder::{colortype::Gray8, TiffEncoder};
    use tiff::tags::Tag;
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(8, 160, 96);
    let write = |path: &Path, values: &ndarray::Array2<f32>, geo: bool| {
        let mut enc = TiffEncoder::new(std::fs::File::create(path).unwrap()).unwrap();
        let mut image = enc.new_image::<Gray8>(160, 96).unwrap();
        if geo {
            image.encoder().write_tag(Tag::Unknown(33550), &[0.5f64, 0.5, 0.0][..]).unwrap();
            image.encoder().write_tag(Tag::Unknown(33922), &[0.0f64, 0.0, 0.0, 651000.0, 6862000.0, 0.0][..]).unwrap();
            image.encoder().write_tag(Tag::Unknown(34735), &[1u16, 1, 0, 1, 3072, 0, 1, 2154][..]).unwrap();
        }
        let data: Vec<u8> = values.iter().map(|v| (v * 255.0).round() as u8).collect();
        image.write_data(&data).unwrap();
    };
    write(&dir.path().join("l.tif"), &scene.pair.left, true);
    write(&dir.path().join("r.tif"), &scene.pair.right, false);
    let out = dir.path().join("out");
    let status = deepsim()
        .args(["-q", "match", "--disp-min", "0", "--disp-max", "31", "--left"])
        .arg(dir.path().join("l.tif"))
        .arg("--right")
        .arg(dir.path().join("r.tif"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let input = read_geotags(&dir.path().join("l.tif")).unwrap().expect("the input is georeferenced");
    for f in ["disparity.tif", "confidence.tif"] {
        assert_eq!(read_geotags(&out.join(f)).unwrap().as_ref(), Some(&input), "{f}");
    }
    // On a grid 4 times coarser: pixels 4 times larger, the tie point's raster position / 4.
    let coarse = input.scaled(4);
    let direct = {
        let path = dir.path().join("coarse.tif");
        deepsim::io::write_tiff_f32_geo(&path, &ndarray::Array2::zeros((24, 40)), Some(&coarse)).unwrap();
        read_geotags(&path).unwrap().unwrap()
    };
    assert_eq!(direct, coarse);
    assert_eq!(coarse.doubles(33550), Some(&[2.0, 2.0, 0.0][..]));
    assert_eq!(coarse.doubles(33922), Some(&[0.0, 0.0, 0.0, 651000.0, 6862000.0, 0.0][..]));
    assert!(read_geotags(&dir.path().join("r.tif")).unwrap().is_none());
}
