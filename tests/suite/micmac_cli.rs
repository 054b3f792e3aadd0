//! `deepsim match CONFIG.xml +Name=value`: the DeepSim-Nets authors' MicMac file runs unmodified
//! and gives what the equivalent command line gives; MicMac's per-step files; model lookup errors.

use crate::common::planar_scene;
use deepsim::io::{read_disparity, write_tiff_u8};
use ndarray::Array2;
use std::path::{Path, PathBuf};
use std::process::Command;

fn deepsim(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deepsim"));
    c.current_dir(dir);
    c
}

fn authors_file() -> PathBuf {
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/xml/EPIP_NORMED_MSNET_W_MICMAC.xml");
    if beside.exists() { beside } else { PathBuf::from("/work/shared/xml/EPIP_NORMED_MSNET_W_MICMAC.xml") }
}

/// A working directory with Im1.tif / Im2.tif (8-bit) and, when `model`, the tiny MS-AFF bundle
/// in ./MODEL_AERIAL_MSNET_DECISION (where the authors' FileModeleParams points).
fn workspace(model: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(12, 320, 272);
    let to_u8 = |a: &Array2<f32>| a.mapv(|v| (v * 255.0).round() as u8);
    write_tiff_u8(&dir.path().join("Im1.tif"), &to_u8(&scene.pair.left)).unwrap();
    write_tiff_u8(&dir.path().join("Im2.tif"), &to_u8(&scene.pair.right)).unwrap();
    if model {
        let target = dir.path().join("MODEL_AERIAL_MSNET_DECISION");
        std::fs::create_dir(&target).unwrap();
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models/msaff_tiny");
        for f in ["features.onnx", "mlp.onnx"] {
            std::fs::copy(source.join(f), target.join(f)).unwrap();
        }
    }
    dir
}

fn same(a: &Array2<f32>, b: &Array2<f32>) -> bool {
    a.dim() == b.dim() && a.iter().zip(b).all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

#[test]
fn the_authors_file_runs_unmodified_and_equals_the_equivalent_command_line() {
    let ws = workspace(true);
    let dir = ws.path();
    let out = deepsim(dir)
        .arg("-q")
        .arg("match")
        .arg(authors_file())
        .args(["+Im1=Im1.tif", "+Im2=Im2.tif", "+DirMEC=OUT", "+IncPix=40"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mec = dir.join("OUT");
    for (n, zoom, size) in [(1, 16, (17, 20)), (2, 8, (34, 40)), (3, 4, (68, 80)), (4, 2, (136, 160)), (5, 1, (272, 320))] {
        let px1 = read_disparity(&mec.join(format!("Px1_Num{n}_DeZoom{zoom}_LeChantier.tif"))).unwrap().values;
        assert_eq!(px1.dim(), size, "step {n}");
        let px2 = read_disparity(&mec.join(format!("Px2_Num{n}_DeZoom{zoom}_LeChantier.tif"))).unwrap().values;
        assert!(px2.iter().all(|&v| v == 0.0), "Px2 is zero for an epipolar pair");
        for f in [format!("Correl_LeChantier_Num_{n}.tif"), format!("AutoMask_LeChantier_Num_{n}.tif")] {
            assert!(mec.join(&f).exists(), "{f}");
        }
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(mec.join("run.json")).unwrap()).unwrap();
    let similarities: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["similarity"].as_str().unwrap()).collect();
    assert!(similarities[..2].iter().all(|s| s.starts_with("ncc 7x7")), "{similarities:?}");
    assert!(similarities[2..].iter().all(|s| s.contains("mlp")), "{similarities:?}");

    // The same run spelled out on the command line.
    let cli = deepsim(dir)
        .args(["-q", "match", "--left", "Im1.tif", "--right", "Im2.tif", "--out", "CLI", "--disp-min", "-40", "--disp-max", "40"])
        .args(["--levels", "5", "--similarity", "ncc", "--window", "7", "--model", "MODEL_AERIAL_MSNET_DECISION", "--head", "mlp"])
        .args(["--learned-weight", "1", "--mlp-top-k", "0"]) // MicMac files: the exact learned cost alone
        .args(["--learned-levels", "3", "--regularizer", "micmac", "--nb-dir", "7", "--zreg", "0.02", "--max-slope", "3"])
        .args(["--def-cor", "0.4", "--cost-trans", "1", "--dilate-alti", "7", "--dilate-plani", "3"])
        .args(["--lr-check", "-1", "--no-median", "--min-region", "0", "--tile", "612", "--tile-overlap", "20"])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    let from_xml = read_disparity(&mec.join("disparity.tif")).unwrap().values;
    let from_cli = read_disparity(&dir.join("CLI/disparity.tif")).unwrap().values;
    assert!(same(&from_xml, &from_cli), "the MicMac file and the command line disagree");
    // The final eAlgoDequant step (Num6) holds MicMac's Px1 = −d of the sub-pixel result.
    let px1 = read_disparity(&mec.join("Px1_Num6_DeZoom1_LeChantier.tif")).unwrap().values;
    assert!(same(&px1, &from_xml.mapv(|d| -d)));
    assert!(from_xml.iter().any(|d| d.fract() != 0.0), "sub-pixel values");
}

#[test]
fn torchscript_models_get_the_conversion_command_and_no_output() {
    let ws = workspace(false);
    let dir = ws.path();
    std::fs::create_dir(dir.join("MODEL_AERIAL_MSNET_DECISION")).unwrap();
    std::fs::write(dir.join("MODEL_AERIAL_MSNET_DECISION/MODEL_FEATURES.pt"), b"not really").unwrap();
    let out = deepsim(dir)
        .arg("match")
        .arg(authors_file())
        .args(["+Im1=Im1.tif", "+Im2=Im2.tif", "+DirMEC=OUT", "+IncPix=40"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MODEL_FEATURES.pt") && err.contains("deepsim_train.convert_torchscript"), "{err}");
    assert!(!dir.join("OUT/run.json").exists());

    // A folder of bundles given with --models is searched by the folder's name.
    let models = tempfile::tempdir().unwrap();
    let bundle = models.path().join("MODEL_AERIAL_MSNET_DECISION");
    std::fs::create_dir(&bundle).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/models/msaff_tiny");
    for f in ["features.onnx", "mlp.onnx"] {
        std::fs::copy(source.join(f), bundle.join(f)).unwrap();
    }
    std::fs::remove_dir_all(dir.join("MODEL_AERIAL_MSNET_DECISION")).unwrap();
    let out = deepsim(dir)
        .args(["-q", "match"])
        .arg(authors_file())
        .args(["+Im1=Im1.tif", "+Im2=Im2.tif", "+DirMEC=OUT", "+IncPix=40", "--models"])
        .arg(models.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("OUT/run.json").exists());
}

#[test]
fn bad_micmac_calls_name_the_problem() {
    let ws = workspace(false);
    let dir = ws.path();
    let cases: [(&[&str], &str); 5] = [
        (&["+Im1=Im1.tif", "+Im2=Nope.tif", "+DirMEC=OUT"], "Nope.tif"),
        (&["+Im1=Im1.tif", "+Im2=Im2.tif", "+Zreg=0.1"], "no <Symb> Zreg"),
        (&["Im1=Im1.tif"], "+Name=value"),
        (&["+Im1=Im1.tif", "+Im2=Im2.tif", "+DirMEC=OUT", "+IncPix=40"], "MODEL_AERIAL_MSNET_DECISION"),
        (&["+Im1=Im1.tif", "+Im2=Im2.tif", "+DirMEC=OUT", "+NbDirProg=0"], "NbDir"),
    ];
    for (args, expected) in cases {
        let out = deepsim(dir).arg("match").arg(authors_file()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{args:?}: expected '{expected}' in: {err}");
        assert!(!dir.join("OUT/run.json").exists());
    }
    let out = deepsim(dir).args(["match", "--left", "Im1.tif"]).arg(authors_file()).output().unwrap();
    assert!(!out.status.success());
}
