//! Hostile inputs, concurrent runs and links (issue #16): every case fails cleanly (exit 1, the
//! input named, no panic or abort), never writes outside the output folder, and never leaves a
//! folder that looks complete after a failure.
//!
//! `tests/bad/<role>/` holds small files (written by `tests/bad/make.py`) that must fail in
//! their role; hostile XML files are in `xml/invalid*/` with the other invalid ones.

use crate::common::{planar_scene, save_grey};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn deepsim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deepsim"))
}

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A folder with a small textured pair `l.png`, `r.png`.
fn pair() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(3, 96, 64);
    save_grey(&dir.path().join("l.png"), &scene.pair.left);
    save_grey(&dir.path().join("r.png"), &scene.pair.right);
    dir
}

/// `deepsim -q match` on `left`/`right` into `out` with a small range, plus `extra`.
fn run_match(left: &Path, right: &Path, out: &Path, extra: &[&str]) -> Output {
    deepsim()
        .args(["-q", "match", "--disp-min", "0", "--disp-max", "23", "--left"])
        .arg(left)
        .arg("--right")
        .arg(right)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 1 with one message naming `named`, and none of the marks of a panic or an abort.
fn assert_clean_failure(what: &str, o: &Output, named: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{what}: exit {:?}, stderr: {err}", o.status);
    assert!(err.contains(named), "{what}: the message names {named}: {err}");
    for mark in ["panicked", "memory allocation", "stack overflow", "RUST_BACKTRACE"] {
        assert!(!err.contains(mark), "{what}: '{mark}' in: {err}");
    }
}

fn bad_files(role: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(repo("tests/bad").join(role)).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "tests/bad/{role} is empty");
    files
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_bad_image_fails_cleanly_as_left_image_and_as_mask() {
    let dir = pair();
    let (l, r) = (dir.path().join("l.png"), dir.path().join("r.png"));
    for bad in bad_files("image") {
        let out = dir.path().join("out");
        let o = run_match(&bad, &r, &out, &["--max-memory", "1G"]);
        assert_clean_failure(&format!("--left {}", bad.display()), &o, &file_name(&bad));
        assert!(!out.join("run.json").exists());
    }
    for bad in bad_files("mask") {
        let out = dir.path().join("out");
        let mut extra = vec!["--max-memory", "1G", "--left-mask"];
        extra.push(bad.to_str().unwrap());
        let o = run_match(&l, &r, &out, &extra);
        assert_clean_failure(&format!("--left-mask {}", bad.display()), &o, &file_name(&bad));
        assert!(!out.join("run.json").exists());
    }
}

#[test]
fn a_huge_declared_size_is_refused_before_allocating_and_names_the_budget() {
    let dir = pair();
    let bad = repo("tests/bad/image/png_header_2g_by_2g.png");
    let o = run_match(&bad, &dir.path().join("r.png"), &dir.path().join("out"), &["--max-memory", "512M"]);
    assert_clean_failure("huge PNG", &o, "2147483647 × 2147483647 pixels");
    assert!(stderr(&o).contains("512 MiB"), "{}", stderr(&o));
    // The same file as a synthetic texture.
    let o = deepsim()
        .args(["-q", "synth", "--size", "64", "--count", "1", "--seed", "1", "--texture"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("synth"))
        .output()
        .unwrap();
    assert_clean_failure("synth --texture", &o, "png_header_2g_by_2g.png");
}

#[test]
fn every_bad_ground_truth_fails_cleanly_in_eval() {
    let dir = tempfile::tempdir().unwrap();
    let disparity = dir.path().join("d.tif");
    deepsim::io::write_tiff_f32(&disparity, &ndarray::Array2::zeros((8, 8))).unwrap();
    for bad in bad_files("gt") {
        let o = deepsim().args(["eval", "--disparity"]).arg(&disparity).arg("--gt").arg(&bad).output().unwrap();
        assert_clean_failure(&format!("--gt {}", bad.display()), &o, &file_name(&bad));
    }
}

#[test]
fn eval_refuses_ground_truth_without_a_valid_pixel_and_an_empty_mask() {
    let dir = tempfile::tempdir().unwrap();
    let disparity = dir.path().join("d.tif");
    deepsim::io::write_tiff_f32(&disparity, &ndarray::Array2::zeros((8, 8))).unwrap();
    let nan_gt = dir.path().join("nan.tif");
    deepsim::io::write_tiff_f32(&nan_gt, &ndarray::Array2::from_elem((8, 8), f32::NAN)).unwrap();
    let o = deepsim().args(["eval", "--disparity"]).arg(&disparity).arg("--gt").arg(&nan_gt).output().unwrap();
    assert_clean_failure("all-NaN ground truth", &o, "no valid pixel");
    assert!(stderr(&o).contains("nan.tif"), "{}", stderr(&o));
    let mask = dir.path().join("zeros.tif");
    deepsim::io::write_tiff_u8(&mask, &ndarray::Array2::zeros((8, 8))).unwrap();
    let o = deepsim()
        .args(["eval", "--disparity"])
        .arg(&disparity)
        .arg("--gt")
        .arg(&disparity)
        .arg("--mask")
        .arg(&mask)
        .output()
        .unwrap();
    assert_clean_failure("all-zero mask", &o, "zeros.tif");
    // --json onto an input.
    let o = deepsim()
        .args(["eval", "--disparity"])
        .arg(&disparity)
        .arg("--gt")
        .arg(&nan_gt)
        .arg("--json")
        .arg(&nan_gt)
        .output()
        .unwrap();
    assert_clean_failure("--json onto the ground truth", &o, "would overwrite");
    assert_eq!(deepsim::io::read_disparity(&nan_gt).unwrap().width(), 8, "the ground truth is intact");
}

/// `depth` nested `<a>` elements inside `root`.
fn nested(root: &str, depth: usize) -> String {
    format!("<{root}>{}{}</{root}>", "<a>".repeat(depth), "</a>".repeat(depth))
}

#[test]
fn deeply_nested_xml_is_refused_in_both_flavours() {
    let dir = tempfile::tempdir().unwrap();
    for (root, depth) in [("ParamMICMAC", 10_000), ("DeepsimMatch", 200_000)] {
        let path = dir.path().join(format!("{root}.xml"));
        std::fs::write(&path, nested(root, depth)).unwrap();
        let err = deepsim::micmac::parse_xml(&std::fs::read_to_string(&path).unwrap(), &path).unwrap_err().to_string();
        assert!(err.contains("nested more than 100 deep"), "{err}");
        let o = deepsim().arg("match").arg(&path).output().unwrap();
        assert_clean_failure(root, &o, &format!("{root}.xml:1"));
    }
}

#[test]
fn a_config_file_that_never_ends_is_not_read_for_ever() {
    let o = deepsim().args(["match", "/dev/zero"]).output().unwrap();
    assert_clean_failure("/dev/zero", &o, "/dev/zero: more than 16 MiB");
}

#[test]
fn many_symbols_and_chained_symbols_parse() {
    // 40000 symbols, a chain of 60: fine (the parser and the resolution are linear).
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo("xml/minimal_epipolar.xml")).unwrap();
    let mut symbols: String = (0..40_000).map(|i| format!("<Symb>S{i}=v{i}</Symb>\n")).collect();
    symbols += "<Symb>C0=x</Symb>\n";
    symbols.extend((1..60).map(|i| format!("<Symb>C{i}=${{C{}}}</Symb>\n", i - 1)));
    let path = dir.path().join("many.xml");
    std::fs::write(&path, base.replace("<Symb> ZReg=0.02 </Symb>", &format!("<Symb> ZReg=0.02 </Symb>\n{symbols}")))
        .unwrap();
    let file = deepsim::micmac::MicmacFile::load(&path, &[]).unwrap();
    assert_eq!(file.symbols["C59"], "x");
    assert_eq!(file.symbols.len(), 40_000 + 60 + 3);
}

#[test]
fn a_closed_stderr_does_not_turn_success_into_a_panic() {
    let dir = pair();
    let out = dir.path().join("out");
    // Not quiet: the summary line is written to a pipe whose reader is gone.
    let mut child = deepsim()
        .args(["match", "--disp-min", "0", "--disp-max", "23", "--left"])
        .arg(dir.path().join("l.png"))
        .arg("--right")
        .arg(dir.path().join("r.png"))
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(out.join("run.json").exists());
    // And a failing run still exits 1, not 101.
    let mut child = deepsim()
        .args(["match", "--left", "nope.png", "--right", "nope.png", "--out"])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

#[test]
fn bad_option_values_are_refused_with_the_option_named() {
    let dir = pair();
    let (l, r, out) = (dir.path().join("l.png"), dir.path().join("r.png"), dir.path().join("out"));
    let cases: [(&[&str], &str); 7] = [
        (&["--lr-check", "nan"], "--lr-check NaN"),
        (&["--learned-weight", "0.5"], "--learned-weight needs --model"),
        (&["--model", concat!(env!("CARGO_MANIFEST_DIR"), "/models/msaff"), "--learned-weight", "1.5"], "--learned-weight 1.5: must be between 0 and 1"),
        (&["--max-memory", "1e30G"], "--max-memory '1e30G'"),
        (&["--tile", "32", "--tile-overlap", "0"], "tile overlap 0 px: use at least 8"),
        (&["--threads", "100000"], "--threads 100000"),
        (&["--lr-check", "inf"], "--lr-check inf"),
    ];
    for (extra, expected) in cases {
        let o = run_match(&l, &r, &out, extra);
        assert_clean_failure(&format!("{extra:?}"), &o, expected);
    }
    // A negative nodata value parses as a value (it used to be taken for an option).
    let o = run_match(&l, &r, &out, &["--nodata", "-9999"]);
    assert!(o.status.success(), "--nodata -9999: {}", stderr(&o));
}

#[test]
fn plugin_load_failures_carry_the_loaders_reason() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libfake.so");
    std::fs::write(&fake, b"not an ELF file at all").unwrap();
    let p = pair();
    let o = run_match(
        &p.path().join("l.png"),
        &p.path().join("r.png"),
        &p.path().join("out"),
        &["--plugin", fake.to_str().unwrap()],
    );
    assert_clean_failure("fake plugin", &o, "libfake.so");
    let err = stderr(&o);
    // dlerror's own words follow libloading's "dlopen failed".
    assert!(err.contains("dlopen failed: ") && err.len() > err.find("dlopen failed: ").unwrap() + 20, "{err}");
}

#[test]
fn micmac_mask_patterns_follow_micmacs_group_rule() {
    // `$1_Masq.tif` is group 1 followed by `_Masq.tif` (Rust's regex would read a group named
    // `1_Masq` and give `.tif`, silently dropping the mask).
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(4, 128, 96);
    let to_u8 = |a: &ndarray::Array2<f32>| a.mapv(|v| (v * 255.0).round() as u8);
    deepsim::io::write_tiff_u8(&dir.path().join("left.tif"), &to_u8(&scene.pair.left)).unwrap();
    deepsim::io::write_tiff_u8(&dir.path().join("right.tif"), &to_u8(&scene.pair.right)).unwrap();
    // The left mask keeps only the left half.
    let mask = ndarray::Array2::from_shape_fn((96, 128), |(_, x)| if x < 64 { 255u8 } else { 0 });
    deepsim::io::write_tiff_u8(&dir.path().join("left_Masq.tif"), &mask).unwrap();
    let base = std::fs::read_to_string(repo("xml/minimal_epipolar.xml")).unwrap();
    let xml = base.replace(
        "</Section_PriseDeVue>",
        "  <MasqImageIn>\n    <OneMasqueImage> <PatternSel> (.*)\\.tif </PatternSel> <NomMasq> $1_Masq.tif </NomMasq> </OneMasqueImage>\n    \
         <AcceptNonExistingFile> true </AcceptNonExistingFile>\n  </MasqImageIn>\n</Section_PriseDeVue>",
    );
    std::fs::write(
        dir.path().join("mask.xml"),
        xml.replace("<Px1IncCalc> 50 </Px1IncCalc>", "<Px1IncCalc> 20 </Px1IncCalc>"),
    )
    .unwrap();
    let o = deepsim().current_dir(dir.path()).args(["-q", "match", "mask.xml"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("MEC/run.json")).unwrap()).unwrap();
    assert!(
        report["inputs"]["left"]["mask"].as_str().unwrap().ends_with("left_Masq.tif"),
        "{}",
        report["inputs"]["left"]
    );
    assert_eq!(report["inputs"]["left"]["valid_pixels"], 64 * 96);
    let disparity = deepsim::io::read_disparity(&dir.path().join("MEC/disparity.tif")).unwrap();
    assert!(disparity.values.slice(ndarray::s![.., 64..]).iter().all(|d| d.is_nan()), "masked half has no value");
}

#[test]
fn duplicate_overrides_are_refused() {
    let o = deepsim()
        .args(["match"])
        .arg(repo("xml/minimal_epipolar.xml"))
        .args(["+Im1=a.tif", "+Im1=b.tif"])
        .output()
        .unwrap();
    assert_clean_failure("+Im1 twice", &o, "+Im1= is given twice");
}

// ---- The output folder: links, concurrent runs, stale outputs, inputs among outputs ----

#[test]
fn links_planted_in_the_output_folder_are_never_written_through() {
    let dir = pair();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    // Links at the temporary names of earlier versions and at the final names.
    for name in [
        "disparity.tif.partial",
        "confidence.tif.partial",
        "disparity.png.partial",
        "run.json.partial",
        "disparity.tif",
        "run.json",
    ] {
        std::os::unix::fs::symlink(&victim, out.join(name)).unwrap();
    }
    let o = run_match(&dir.path().join("l.png"), &dir.path().join("r.png"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // The final names are now the outputs themselves, not links.
    for name in ["disparity.tif", "run.json"] {
        assert!(!std::fs::symlink_metadata(out.join(name)).unwrap().file_type().is_symlink(), "{name}");
    }
    // No temporary left behind.
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.starts_with('.') && n.ends_with(".partial")), "{names:?}");
}

#[test]
fn writers_refuse_a_link_at_the_path_they_open() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let link = dir.path().join("link.tif");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let err = deepsim::io::write_tiff_f32(&link, &ndarray::Array2::zeros((4, 4))).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // Temporaries get fresh, unique names: a link planted at any earlier one is not reused.
    let a = deepsim::io::AtomicFile::new(&dir.path().join("x.tif")).unwrap();
    let b = deepsim::io::AtomicFile::new(&dir.path().join("x.tif")).unwrap();
    assert_ne!(a.tmp_path(), b.tmp_path());
    assert!(a.tmp_path().is_file() && !std::fs::symlink_metadata(a.tmp_path()).unwrap().file_type().is_symlink());
    let (pa, pb) = (a.tmp_path().to_path_buf(), b.tmp_path().to_path_buf());
    drop((a, b));
    assert!(!pa.exists() && !pb.exists(), "dropped temporaries are removed");
}

#[test]
fn a_second_run_into_a_folder_in_use_fails_naming_the_holder() {
    let dir = pair();
    let out = dir.path().join("out");
    let held = deepsim::io::OutputFolder::prepare(&out, "run.json", &[], &[]).unwrap();
    // In the same process, a second lock on the folder fails too (flock is per open file).
    let err = deepsim::io::OutputFolder::prepare(&out, "run.json", &[], &[]).err().unwrap().to_string();
    assert!(err.contains(&format!("in use by another deepsim run (pid {})", std::process::id())), "{err}");
    let o = run_match(&dir.path().join("l.png"), &dir.path().join("r.png"), &out, &[]);
    assert_clean_failure("concurrent run", &o, &format!("pid {}", std::process::id()));
    drop(held);
    assert!(!out.join(deepsim::io::LOCK_FILE).exists(), "the lock file goes with the run");
    let o = run_match(&dir.path().join("l.png"), &dir.path().join("r.png"), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!out.join(deepsim::io::LOCK_FILE).exists());
}

#[test]
fn concurrent_runs_into_one_folder_never_leave_a_broken_output() {
    let dir = pair();
    let out = dir.path().join("out");
    let spawn = || {
        deepsim()
            .args(["-q", "match", "--disp-min", "0", "--disp-max", "23", "--left"])
            .arg(dir.path().join("l.png"))
            .arg("--right")
            .arg(dir.path().join("r.png"))
            .arg("--out")
            .arg(&out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = (0..4).map(|_| spawn()).collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let succeeded = outputs.iter().filter(|o| o.status.success()).count();
    assert!(succeeded >= 1, "at least one run gets the folder");
    for o in outputs.iter().filter(|o| !o.status.success()) {
        assert_clean_failure("losing run", o, "in use by another deepsim run");
    }
    // Whoever won, the folder holds one complete, decodable set.
    assert!(out.join("run.json").exists());
    assert_eq!(deepsim::io::read_disparity(&out.join("disparity.tif")).unwrap().width(), 96);
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n.ends_with(".partial") || n == deepsim::io::LOCK_FILE), "{names:?}");
}

#[test]
fn a_failed_run_leaves_no_output_of_the_previous_run() {
    let dir = pair();
    let out = dir.path().join("out");
    let (l, r) = (dir.path().join("l.png"), dir.path().join("r.png"));
    let o = run_match(&l, &r, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["disparity.tif", "confidence.tif", "disparity.png", "run.json"] {
        assert!(out.join(f).exists(), "{f}");
    }
    // A right image whose header is fine and whose pixels are not: the run fails after it has
    // started on the folder.
    let good = std::fs::read(&r).unwrap();
    let corrupt = dir.path().join("corrupt.png");
    std::fs::write(&corrupt, &good[..good.len() / 2]).unwrap();
    let o = run_match(&l, &corrupt, &out, &[]);
    assert_clean_failure("corrupt right image", &o, "corrupt.png");
    let left: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(left.is_empty(), "the previous run's outputs are gone, nothing else is left: {left:?}");
    // Likewise when an input is missing: the run has started on the folder.
    assert!(run_match(&l, &r, &out, &[]).status.success());
    let o = run_match(&l, &dir.path().join("missing.png"), &out, &[]);
    assert_clean_failure("missing right image", &o, "missing.png");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

#[test]
fn outputs_never_overwrite_inputs() {
    let dir = pair();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The left image is named like an output, in the output folder (and reached through `..`).
    std::fs::copy(dir.path().join("l.png"), out.join("disparity.png")).unwrap();
    let before = std::fs::read(out.join("disparity.png")).unwrap();
    let via_dots = out.join("../out/disparity.png");
    let o = run_match(&via_dots, &dir.path().join("r.png"), &out, &[]);
    assert_clean_failure("input among the outputs", &o, "would overwrite it");
    assert_eq!(std::fs::read(out.join("disparity.png")).unwrap(), before);
}

#[test]
fn an_output_path_that_is_a_file_is_named_as_such() {
    let dir = pair();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let o = run_match(&dir.path().join("l.png"), &dir.path().join("r.png"), &file, &[]);
    assert_clean_failure("--out a file", &o, "the output folder is a file");
}

#[test]
fn a_set_whose_rename_fails_is_rolled_back() {
    use deepsim::io::{OutputSet, create_file};
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    // The last member's final name is a non-empty folder: its rename fails.
    std::fs::create_dir_all(dir.path().join("run.json/inside")).unwrap();
    let mut set = OutputSet::new();
    for name in ["a.tif", "run.json"] {
        set.write(&dir.path().join(name), |p| create_file(p)?.write_all(b"data").map_err(|e| deepsim::Error::io(p, e)))
            .unwrap();
    }
    assert!(set.commit().is_err());
    assert!(!dir.path().join("a.tif").exists(), "the member renamed before the failure is removed");
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["run.json"], "only the folder that blocked the rename");
}

#[test]
fn a_completely_ambiguous_pair_gets_no_confidence() {
    // Two identical constant images: every candidate costs the same.
    let dir = tempfile::tempdir().unwrap();
    let flat = ndarray::Array2::from_elem((64, 96), 0.5f32);
    save_grey(&dir.path().join("l.png"), &flat);
    save_grey(&dir.path().join("r.png"), &flat);
    let out = dir.path().join("out");
    for regularizer in ["sgm", "micmac", "none"] {
        let o = run_match(&dir.path().join("l.png"), &dir.path().join("r.png"), &out, &["--regularizer", regularizer]);
        assert!(o.status.success(), "{regularizer}: {}", stderr(&o));
        let confidence = deepsim::io::read_disparity(&out.join("confidence.tif")).unwrap().values;
        let max = confidence.iter().fold(0.0f32, |m, &c| m.max(c));
        assert_eq!(max, 0.0, "{regularizer}: a pair without information has confidence 0 everywhere");
    }
}

#[test]
fn synth_refuses_pairs_that_do_not_fit_the_memory_instead_of_aborting() {
    let dir = tempfile::tempdir().unwrap();
    let o = deepsim()
        .args(["-q", "--threads", "64", "synth", "--size", "16384", "--focal-px", "20000", "--count", "64", "--seed", "1"])
        .arg("--out")
        .arg(dir.path().join("synth"))
        .output()
        .unwrap();
    assert_clean_failure("synth 16384² × 64 threads", &o, "--size 16384x16384");
    assert!(stderr(&o).contains("memory budget"), "{}", stderr(&o));
}

#[test]
fn check_model_refuses_a_declared_embedding_size_the_network_does_not_output() {
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let source = repo("tests/data/models/tiny_conv/features.onnx");
    let mut model = tract_onnx::pb::ModelProto::decode(std::fs::read(source).unwrap().as_slice()).unwrap();
    let declared = model.metadata_props.iter_mut().find(|p| p.key == "deepsim.embedding_dim").unwrap();
    let real: usize = declared.value.parse().unwrap();
    declared.value = (real + 1).to_string();
    std::fs::write(dir.path().join("features.onnx"), model.encode_to_vec()).unwrap();
    let o = deepsim().arg("check-model").arg(dir.path()).output().unwrap();
    assert_clean_failure("embedding size mismatch", &o, "features.onnx");
    // Caught from the graph's declared output shape, or else by running the network.
    let err = stderr(&o);
    let declared = real + 1;
    assert!(
        err.contains(&format!("deepsim.embedding_dim is {declared}")) || err.contains(&format!("deepsim.embedding_dim {declared}")),
        "{err}"
    );
}

/// A full disk (simulated with a file-size limit: writes past it fail with EFBIG, as on a full
/// file system): the run fails with the file named, and the folder, which held a complete
/// earlier run, no longer looks complete (no run.json, no raster, no temporary left).
#[test]
fn a_full_disk_fails_cleanly_and_leaves_no_complete_looking_folder() {
    let dir = pair();
    let out = dir.path().join("out");
    let ok = run_match(&dir.path().join("l.png"), &dir.path().join("r.png"), &out, &[]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(out.join("run.json").exists() && out.join("disparity.tif").exists());

    // bash: `ulimit -f` in KiB; SIGXFSZ ignored so that the write returns EFBIG instead of
    // killing the process (the disposition survives exec).
    let o = Command::new("bash")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 8; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_deepsim"))
        .args(["-q", "match", "--disp-min", "0", "--disp-max", "23", "--left"])
        .arg(dir.path().join("l.png"))
        .arg("--right")
        .arg(dir.path().join("r.png"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_clean_failure("full disk", &o, "out");
    let left: Vec<String> = std::fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(!left.iter().any(|n| n == "run.json" || n.ends_with(".tif") || n.contains("partial")), "left behind: {left:?}");
}
