//! Run-time similarity plugins: the example plugin against the built-in measure, each test
//! fixture's own error (the host carries on), a plugin compiled from C against the header.
//!
//! The plugin libraries are workspace members (`plugins/*`, cdylibs): the first test that needs
//! them builds them with the cargo running the tests, into the same target folder and profile.
//! The C plugin is compiled with `$CC` (default `cc`); without a C compiler its tests fail.

use crate::common::{config, planar_scene, Rng};
use deepsim::cost::{fill_volume, Intervals};
use deepsim::eval::{evaluate, nonocc_from_gt};
use deepsim::pipeline::{run, NoProgress, Pair};
use deepsim::plugin::PluginSimilarity;
use deepsim::similarity::{LevelPair, Ncc, Similarity};
use deepsim::ErrorKind;
use ndarray::Array2;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const PLUGINS: [&str; 4] = ["deepsim-plugin-zncc", "deepsim-fixture-wrong-abi", "deepsim-fixture-panic", "deepsim-fixture-error"];

/// The folder of the built plugin libraries (`target/<profile>`), built on first use.
fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // The test binary is target/<profile>/deps/tests-<hash>.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(&cargo);
        build.current_dir(env!("CARGO_MANIFEST_DIR")).args(["build", "--locked", "--quiet"]).env("CARGO_TARGET_DIR", target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        for p in PLUGINS {
            build.args(["-p", p]);
        }
        let status = build.status().unwrap_or_else(|e| panic!("cannot run {cargo} to build the plugins: {e}"));
        assert!(status.success(), "building the plugins ({}) failed", PLUGINS.join(", "));
        profile_dir
    })
}

/// The path of the workspace plugin library of crate `name` (e.g. "deepsim_plugin_zncc").
fn library(name: &str) -> PathBuf {
    use std::env::consts::{DLL_PREFIX, DLL_SUFFIX};
    plugin_dir().join(format!("{DLL_PREFIX}{name}{DLL_SUFFIX}"))
}

/// Compiles `plugins/deepsim-plugin-api/c/absdiff.c` with extra flags into a kept temporary folder.
fn compile_c(defines: &[&str], name: &str) -> PathBuf {
    compile("CC", "cc", &["-std=c11"], defines, "absdiff.c", name)
}

/// Compiles `plugins/deepsim-plugin-api/c/{source}` with `$env_var` (default `default`) into
/// `lib{name}` in a kept temporary folder. No compiler is a failure, not a skip.
fn compile(env_var: &str, default: &str, std: &[&str], defines: &[&str], source: &str, name: &str) -> PathBuf {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().unwrap());
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/deepsim-plugin-api");
    let out = dir.path().join(format!("lib{name}{}", std::env::consts::DLL_SUFFIX));
    let compiler = std::env::var(env_var).unwrap_or_else(|_| default.into());
    let status = Command::new(&compiler)
        .args(std)
        .args(["-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-O2", "-I"])
        .arg(api.join("include"))
        .args(defines)
        .arg(api.join("c").join(source))
        .arg("-o")
        .arg(&out)
        .arg("-lm")
        .status()
        .unwrap_or_else(|e| panic!("no compiler '{compiler}' ({e}) for {source}: install gcc/g++ or set {env_var}"));
    assert!(status.success(), "{compiler} failed on {source}");
    out
}

fn zncc(options: &str) -> PluginSimilarity {
    PluginSimilarity::new(&library("deepsim_plugin_zncc"), options).unwrap()
}

fn same_disparity(a: &Array2<f32>, b: &Array2<f32>) -> bool {
    a.dim() == b.dim() && a.iter().zip(b).all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

fn small_pair(seed: u64, wl: usize, wr: usize, h: usize) -> Pair {
    let mut rng = Rng::new(seed);
    let left = Array2::from_shape_fn((h, wl), |_| rng.unit());
    let right = Array2::from_shape_fn((h, wr), |_| rng.unit());
    Pair { left_valid: Array2::from_elem((h, wl), true), right_valid: Array2::from_elem((h, wr), true), left, right }
}

fn level(pair: &Pair) -> LevelPair<'_> {
    LevelPair { left: &pair.left, right: &pair.right, left_valid: &pair.left_valid, right_valid: &pair.right_valid }
}

#[test]
fn zncc_plugin_gives_the_builtin_ncc_costs_and_disparities_exactly() {
    let scene = planar_scene(3, 240, 160);
    for window in [5, 7] {
        let builtin = Ncc::new(window).unwrap();
        let plugin = zncc(&format!("window={window}"));
        // The raw costs, over per-pixel intervals that cross both image borders.
        let intervals = Intervals::uniform(240, 160, -6, 40).unwrap();
        let expected = fill_volume(builtin.prepare(level(&scene.pair)).unwrap().as_ref(), &intervals).unwrap();
        let got = fill_volume(plugin.prepare(level(&scene.pair)).unwrap().as_ref(), &intervals).unwrap();
        assert!(expected == got, "window {window}: plugin costs differ from the built-in NCC");
        // The whole multi-resolution pipeline.
        for levels in [1, 3] {
            let cfg = config(0, 40, levels);
            let a = run(&scene.pair, &cfg, &[&builtin as &dyn Similarity], &NoProgress).unwrap();
            let b = run(&scene.pair, &cfg, &[&plugin as &dyn Similarity], &NoProgress).unwrap();
            assert!(same_disparity(&a.disparity, &b.disparity), "window {window}, {levels} level(s): disparities differ");
            assert!(b.reports.iter().all(|l| l.similarity == format!("plugin zncc (window={window})")), "{:?}", b.reports);
        }
        // One instance per worker at most (the first one is made when the plugin is selected).
        let created = plugin.instances_created();
        assert!((1..=rayon::current_num_threads().max(1)).contains(&created), "{created} instances");
    }
}

#[test]
fn adaptive_zncc_plugin_recovers_a_piecewise_planar_scene() {
    let scene = planar_scene(3, 240, 160);
    let valid = Array2::from_elem(scene.gt.dim(), true);
    let nonocc = nonocc_from_gt(&scene.gt, &valid, 240);
    let plugin = zncc("window=7, adaptive=true");
    let builtin = Ncc::new(7).unwrap();
    let mut bad = Vec::new();
    for similarity in [&plugin as &dyn Similarity, &builtin] {
        let disparity = run(&scene.pair, &config(0, 40, 2), &[similarity], &NoProgress).unwrap().disparity;
        let e = evaluate(&disparity, &scene.gt, &valid, Some(&nonocc)).unwrap();
        assert!(e.nonocc.bad_0_5 < 6.0 && e.nonocc.epe < 0.5, "{}: bad-0.5 {:.2} %, EPE {:.3}", similarity.name(), e.nonocc.bad_0_5, e.nonocc.epe);
        bad.push(e.nonocc.bad_1);
    }
    // Shifted windows help next to depth edges: never worse than the centred window overall.
    assert!(bad[0] <= bad[1] + 0.5, "adaptive bad-1 {:.2} % vs centred {:.2} %", bad[0], bad[1]);
}

/// The confidence products come from the cost volume, whoever fills it: the zncc plugin's
/// equal the built-in NCC's, bit for bit.
#[test]
fn zncc_plugin_gives_the_builtin_ncc_confidence_products() {
    let scene = planar_scene(5, 200, 120);
    let plugin = zncc("window=7");
    let builtin = Ncc::new(7).unwrap();
    let cfg = config(0, 40, 2);
    let a = deepsim::pipeline::run_with_products(&scene.pair, &cfg, &[&plugin], &NoProgress).unwrap().products.unwrap();
    let b = deepsim::pipeline::run_with_products(&scene.pair, &cfg, &[&builtin], &NoProgress).unwrap().products.unwrap();
    for (x, y) in a.maps().into_iter().zip(b.maps()) {
        assert!(x.iter().zip(y).all(|(u, v)| u.to_bits() == v.to_bits()));
    }
    assert_eq!(a.validity, b.validity);
    assert!(a.ambiguity.iter().any(|v| v.is_finite() && *v < 0.5), "the products were computed");
}

#[test]
fn zncc_plugin_rejects_bad_options_when_created() {
    for (options, expected) in [("window=8", "window=8: must be odd"), ("size=7", "'size' is unknown"), ("adaptive=maybe", "adaptive='maybe'")] {
        let err = PluginSimilarity::new(&library("deepsim_plugin_zncc"), options).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Plugin);
        let msg = err.to_string();
        assert!(msg.contains("create failed") && msg.contains(expected) && msg.contains("deepsim_plugin_zncc"), "{msg}");
    }
}

#[test]
fn a_plugin_of_another_abi_version_is_refused_naming_both_versions() {
    let path = library("deepsim_fixture_wrong_abi");
    let err = PluginSimilarity::new(&path, "").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Plugin);
    let msg = err.to_string();
    assert!(msg.contains(path.to_str().unwrap()), "{msg}");
    assert!(msg.contains("uses plugin ABI 999; this build of deepsim supports ABI 1"), "{msg}");
    // The host carries on: a good plugin still loads and runs.
    let pair = small_pair(1, 40, 40, 20);
    let good = zncc("");
    run(&pair, &config(0, 8, 1), &[&good as &dyn Similarity], &NoProgress).unwrap();
}

#[test]
fn a_library_without_the_entry_symbol_or_file_is_refused_naming_the_path() {
    let path = compile_c(&["-DDS_NO_ENTRY"], "no_entry");
    let msg = PluginSimilarity::new(&path, "").unwrap_err().to_string();
    assert!(msg.contains(path.to_str().unwrap()) && msg.contains("missing symbol 'deepsim_plugin_entry'"), "{msg}");
    let missing = Path::new("no/such/libplugin.so");
    let msg = PluginSimilarity::new(missing, "").unwrap_err().to_string();
    assert!(msg.contains("no/such/libplugin.so"), "{msg}");
}

#[test]
fn a_panicking_plugin_becomes_an_error_and_the_host_keeps_working() {
    let path = library("deepsim_fixture_panic");
    let pair = small_pair(2, 64, 64, 48);
    let cfg = config(0, 15, 1);
    let err = PluginSimilarity::new(&path, "at=create").unwrap_err();
    assert!(err.to_string().contains("create panicked: fixture-panic: panic in create, as asked"), "{err}");
    for (at, expected) in [("prepare", "prepare panicked: fixture-panic: panic in prepare, as asked"), ("compute", "compute panicked: index out of bounds")] {
        let plugin = PluginSimilarity::new(&path, &format!("at={at}")).unwrap();
        let err = run(&pair, &cfg, &[&plugin as &dyn Similarity], &NoProgress).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Backend);
        assert!(err.to_string().contains(expected) && err.to_string().contains("deepsim_fixture_panic"), "{err}");
    }
    // Still alive: the same library with instances that do not panic, and another plugin.
    let calm = PluginSimilarity::new(&path, "at=never").unwrap();
    let out = run(&pair, &cfg, &[&calm as &dyn Similarity], &NoProgress).unwrap();
    assert_eq!(out.disparity.dim(), (48, 64));
    let other = zncc("");
    run(&pair, &cfg, &[&other as &dyn Similarity], &NoProgress).unwrap();
}

#[test]
fn a_failing_plugin_reports_its_own_message() {
    let path = library("deepsim_fixture_error");
    let pair = small_pair(3, 64, 64, 48);
    let cfg = config(0, 15, 1);
    let err = PluginSimilarity::new(&path, "at=create").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Plugin);
    assert!(err.to_string().contains("create failed: fixture-error: create refuses the options 'at=create' on purpose"), "{err}");
    for (at, expected) in [
        ("prepare", "prepare failed: fixture-error: prepare refuses the 64×48 pair on purpose"),
        ("compute", "compute failed: fixture-error: compute refuses rows"),
    ] {
        let plugin = PluginSimilarity::new(&path, &format!("at={at}")).unwrap();
        let err = run(&pair, &cfg, &[&plugin as &dyn Similarity], &NoProgress).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Backend);
        assert!(err.to_string().contains(expected), "{err}");
        // The same instances fail again the same way (they stay usable after an error).
        let again = run(&pair, &cfg, &[&plugin as &dyn Similarity], &NoProgress).unwrap_err();
        assert!(again.to_string().contains(expected), "{again}");
    }
}

#[test]
fn a_plugin_compiled_from_c_against_the_header_loads_and_matches_its_reference() {
    use deepsim_plugin_api::{DsBlock, DsImage, DsLevel, DsPluginDescriptor};
    use std::mem::{offset_of, size_of};
    let path = compile_c(&[], "absdiff");

    // The C compiler lays the structs out as the Rust crate does.
    let rust = [
        size_of::<DsImage>(), offset_of!(DsImage, data), offset_of!(DsImage, valid), offset_of!(DsImage, width),
        offset_of!(DsImage, height), offset_of!(DsImage, stride),
        size_of::<DsLevel>(), offset_of!(DsLevel, left), offset_of!(DsLevel, right),
        size_of::<DsBlock>(), offset_of!(DsBlock, y0), offset_of!(DsBlock, rows), offset_of!(DsBlock, width),
        offset_of!(DsBlock, d_min), offset_of!(DsBlock, count), offset_of!(DsBlock, costs), offset_of!(DsBlock, costs_len),
        size_of::<DsPluginDescriptor>(), offset_of!(DsPluginDescriptor, abi_version), offset_of!(DsPluginDescriptor, size),
        offset_of!(DsPluginDescriptor, name), offset_of!(DsPluginDescriptor, create), offset_of!(DsPluginDescriptor, prepare),
        offset_of!(DsPluginDescriptor, compute), offset_of!(DsPluginDescriptor, last_error), offset_of!(DsPluginDescriptor, destroy),
    ];
    let mut c = [0usize; 26];
    // SAFETY: the test library exports `size_t deepsim_test_layout(size_t *, size_t)`; the
    // library stays loaded while the function is used.
    let n = unsafe {
        let lib = libloading::Library::new(&path).unwrap();
        let layout = lib.get::<unsafe extern "C" fn(*mut usize, usize) -> usize>(b"deepsim_test_layout").unwrap();
        layout(c.as_mut_ptr(), c.len())
    };
    assert_eq!(n, rust.len());
    assert_eq!(c, rust, "C header and Rust crate disagree on the ABI layout");

    // Its costs, value for value, over intervals crossing both borders, right image narrower.
    let plugin = PluginSimilarity::new(&path, "scale=4").unwrap();
    assert_eq!(plugin.library().name(), "absdiff-c");
    let pair = small_pair(4, 50, 45, 30);
    let intervals = Intervals::uniform(50, 30, -3, 12).unwrap();
    let costs = fill_volume(plugin.prepare(level(&pair)).unwrap().as_ref(), &intervals).unwrap();
    for y in 0..30 {
        for x in 0..50 {
            for (k, &cost) in costs[intervals.entries(x, y)].iter().enumerate() {
                let xr = x as i64 - intervals.d_min(x, y) as i64 - k as i64;
                let expected = if (0..45).contains(&xr) {
                    deepsim::cost::cost_from_unit(4.0 * (pair.left[(y, x)] - pair.right[(y, xr as usize)]).abs())
                } else {
                    deepsim::cost::COST_ONE
                };
                assert_eq!(cost, expected, "pixel ({x}, {y}), candidate {k}");
            }
        }
    }
    // In the whole pipeline, and its create error comes back through last_error(NULL).
    run(&pair, &config(0, 8, 1), &[&plugin as &dyn Similarity], &NoProgress).unwrap();
    let msg = PluginSimilarity::new(&path, "scale=x").unwrap_err().to_string();
    assert!(msg.contains("create failed: absdiff: options 'scale=x': expected scale=S with S > 0"), "{msg}");
}

#[test]
fn a_plugin_compiled_from_cxx_loads_runs_and_turns_exceptions_into_errors() {
    let path = compile("CXX", "c++", &["-std=c++17"], &[], "ramp.cpp", "ramp");
    let plugin = PluginSimilarity::new(&path, "").unwrap();
    assert_eq!(plugin.library().name(), "ramp-cxx");
    let pair = small_pair(5, 40, 40, 20);
    let intervals = Intervals::uniform(40, 20, -2, 5).unwrap();
    let costs = fill_volume(plugin.prepare(level(&pair)).unwrap().as_ref(), &intervals).unwrap();
    let ramp: Vec<u16> = (0..40 * 20).flat_map(|_| 0..8).collect();
    assert_eq!(costs, ramp);
    let msg = PluginSimilarity::new(&path, "throw").unwrap_err().to_string();
    assert!(msg.contains("create panicked: ramp: create throws, as asked"), "{msg}");
}

#[test]
fn match_cli_runs_a_plugin_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let scene = planar_scene(8, 160, 96);
    let save = |name: &str, values: &Array2<f32>| {
        let (h, w) = values.dim();
        image::GrayImage::from_fn(w as u32, h as u32, |x, y| image::Luma([(values[(y as usize, x as usize)] * 255.0).round() as u8]))
            .save(dir.path().join(name))
            .unwrap();
    };
    save("l.png", &scene.pair.left);
    save("r.png", &scene.pair.right);
    let matching = |out: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_deepsim"))
            .args(["-q", "match", "--disp-min", "0", "--disp-max", "31", "--left"])
            .arg(dir.path().join("l.png"))
            .arg("--right")
            .arg(dir.path().join("r.png"))
            .arg("--out")
            .arg(dir.path().join(out))
            .args(extra)
            .output()
            .unwrap()
    };
    let zncc_path = library("deepsim_plugin_zncc");
    let zncc_path = zncc_path.to_str().unwrap();
    let builtin = matching("builtin", &["--similarity", "ncc", "--window", "5"]);
    let plugin = matching("plugin", &["--plugin", zncc_path, "--plugin-options", "window=5"]);
    assert!(builtin.status.success() && plugin.status.success(), "{}", String::from_utf8_lossy(&plugin.stderr));
    let read = |out: &str| deepsim::io::read_image(&dir.path().join(out).join("disparity.tif"), &Default::default()).unwrap().values;
    assert!(same_disparity(&read("builtin"), &read("plugin")), "the CLI's plugin run differs from --similarity ncc");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("plugin/run.json")).unwrap()).unwrap();
    assert_eq!(report["plugin"]["name"], "zncc");
    assert_eq!(report["plugin"]["options"], "window=5");
    assert_eq!(report["plugin"]["abi_version"], 1);

    let wrong = library("deepsim_fixture_wrong_abi");
    let failed = matching("wrong", &["--plugin", wrong.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success() && stderr.contains(wrong.to_str().unwrap()) && stderr.contains("ABI 999"), "{stderr}");
    assert!(!dir.path().join("wrong/run.json").exists());
    let conflict = matching("conflict", &["--plugin", zncc_path, "--similarity", "census"]);
    assert!(!conflict.status.success(), "--plugin with --similarity must be refused");
}

/// A small pair as 8-bit PNGs in `dir`.
fn save_pair(dir: &Path) {
    let scene = planar_scene(5, 200, 120);
    for (name, image) in [("l.png", &scene.pair.left), ("r.png", &scene.pair.right)] {
        let (h, w) = image.dim();
        image::GrayImage::from_fn(w as u32, h as u32, |x, y| image::Luma([(image[(y as usize, x as usize)] * 255.0).round() as u8]))
            .save(dir.join(name))
            .unwrap();
    }
}

fn deepsim_in(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_deepsim")).current_dir(dir).arg("-q").arg("match").args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn both_xml_flavours_select_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    save_pair(dir.path());
    let zncc = library("deepsim_plugin_zncc");
    let zncc = zncc.to_str().unwrap();
    // This project's XML: equals the command line with --plugin.
    let xml = format!(
        "<DeepsimMatch> <Left>l.png</Left> <Right>r.png</Right> <Output>xml</Output>\n\
         <DisparityMin>0</DisparityMin> <DisparityMax>40</DisparityMax>\n\
         <Step> <Zoom>2</Zoom> <Plugin> <Path>{zncc}</Path> <Options>window=5</Options> </Plugin> </Step>\n\
         <Step> <Zoom>1</Zoom> <Plugin> <Path>{zncc}</Path> <Options>window=5</Options> </Plugin> </Step>\n\
         </DeepsimMatch>\n"
    );
    std::fs::write(dir.path().join("run.xml"), xml).unwrap();
    deepsim_in(dir.path(), &["run.xml"]);
    deepsim_in(dir.path(), &["--left", "l.png", "--right", "r.png", "--out", "cli", "--disp-min", "0", "--disp-max", "40", "--levels", "2", "--plugin", zncc, "--plugin-options", "window=5"]);
    let read = |p: &str| deepsim::io::read_disparity(&dir.path().join(p)).unwrap().values;
    assert!(same_disparity(&read("xml/disparity.tif"), &read("cli/disparity.tif")));

    // MicMac's XML with this project's <DeepsimPlugin> tag.
    let png_to_tif = |name: &str, to: &str| {
        let image = image::open(dir.path().join(name)).unwrap().to_luma8();
        let values = Array2::from_shape_fn((image.height() as usize, image.width() as usize), |(y, x)| image.get_pixel(x as u32, y as u32)[0]);
        deepsim::io::write_tiff_u8(&dir.path().join(to), &values).unwrap();
    };
    png_to_tif("l.png", "left.tif");
    png_to_tif("r.png", "right.tif");
    let micmac = Path::new(env!("CARGO_MANIFEST_DIR")).join("xml/plugin_epipolar.xml");
    let plugin_arg = format!("+Plugin={zncc}");
    deepsim_in(dir.path(), &[micmac.to_str().unwrap(), &plugin_arg]); // no TmpMEC: results in MEC/
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("MEC/run.json")).unwrap()).unwrap();
    let names: Vec<String> = report["steps"].as_array().unwrap().iter().map(|s| s["similarity"].as_str().unwrap().to_string()).collect();
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|n| n.contains("zncc")), "{names:?}");
}
