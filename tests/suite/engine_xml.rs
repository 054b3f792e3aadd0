//! This project's own XML (`<DeepsimMatch>`): the example reads, every invalid file fails with
//! its own error, and a file runs exactly like the equivalent command line.

use crate::common::planar_scene;
use deepsim::engine_xml::{BackendChoice, EngineFile, RuntimeChoice};
use deepsim::io::read_disparity;
use deepsim::pipeline::Regularizer;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn the_example_file_reads_with_its_steps_and_paths() {
    let file = EngineFile::load(&repo("xml/deepsim_example.xml")).unwrap();
    assert!(file.left.ends_with("examples/data/motorcycle_left.png") && file.left.exists(), "{}", file.left.display());
    assert_eq!((file.config.disp_min, file.config.disp_max), (0, 63));
    assert_eq!(file.runtime.engine, RuntimeChoice::Tract);
    let levels: Vec<u32> = file.config.steps.iter().map(|s| s.level).collect();
    assert_eq!(levels, vec![2, 1, 0]);
    assert_eq!(file.backends.len(), 2, "census once, the model once");
    assert!(matches!(file.backends[0], BackendChoice::Census { width: 7, height: 7 }));
    assert!(matches!(&file.backends[1], BackendChoice::Model { dir, .. } if dir.join("features.onnx").exists()));
    assert!(matches!(file.config.steps[0].regularizer, Regularizer::Sgm(_)));
    assert!(matches!(file.config.steps[2].regularizer, Regularizer::Micmac(p) if p.orientations == 8));
}

#[test]
fn every_invalid_engine_file_gives_its_own_error() {
    let count = crate::common::check_invalid_files(&repo("xml/invalid-engine"), EngineFile::load);
    assert!(count >= 9, "{count} invalid files");
}

#[test]
fn a_file_runs_like_the_equivalent_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(17, 200, 120);
    crate::common::save_grey(&dir.path().join("l.png"), &scene.pair.left);
    crate::common::save_grey(&dir.path().join("r.png"), &scene.pair.right);
    let model = repo("tests/data/models/tiny_conv");
    let xml = format!(
        "<DeepsimMatch>\n  <Left>l.png</Left> <Right>r.png</Right> <Output>from-xml</Output>\n  \
         <DisparityMin>0</DisparityMin> <DisparityMax>40</DisparityMax>\n  \
         <Step> <Zoom>2</Zoom> <Ncc> <Window>5</Window> </Ncc> <Sgm> <P1>0.1</P1> <P2>0.6</P2> </Sgm> </Step>\n  \
         <Step> <Zoom>1</Zoom> <Model> <Dir>{}</Dir> <Head>cosine</Head> </Model> <Sgm> <P1>0.1</P1> <P2>0.6</P2> </Sgm>\n    \
         <DilateAlti>3</DilateAlti> <DilatePlani>1</DilatePlani> </Step>\n  <LrCheck>1</LrCheck> <LrCheckMode>accurate</LrCheckMode> <MinRegion>0</MinRegion>\n</DeepsimMatch>\n",
        model.display()
    );
    std::fs::write(dir.path().join("run.xml"), xml).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_deepsim")).current_dir(dir.path()).arg("-q").arg("match").args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["run.xml"]);
    let model_arg = model.to_str().unwrap();
    run(&[
        "--left", "l.png", "--right", "r.png", "--out", "from-cli", "--disp-min", "0", "--disp-max", "40", "--levels", "2",
        "--similarity", "ncc", "--window", "5", "--p1", "0.1", "--p2", "0.6", "--model", model_arg, "--head", "cosine",
        "--learned-weight", "1", "--runtime", "tract", "--learned-levels", "1", "--dilate-alti", "3", "--dilate-plani", "1", "--lr-check",
        "1", "--lr-check-mode", "accurate", "--min-region", "0",
    ]);
    let a = read_disparity(&dir.path().join("from-xml/disparity.tif")).unwrap().values;
    let b = read_disparity(&dir.path().join("from-cli/disparity.tif")).unwrap().values;
    assert!(a.iter().zip(&b).all(|(x, y)| x == y || (x.is_nan() && y.is_nan())), "the file and the command line disagree");
    assert!(dir.path().join("from-xml/run.json").exists());
}
