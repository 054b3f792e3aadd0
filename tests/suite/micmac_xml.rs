//! MicMac parameter files: the authors' file reads unmodified, every invalid file in
//! `xml/invalid/` fails with the error written in its first comment.

use deepsim::micmac::{Algo, MicmacFile, MicmacPlan};
use std::path::{Path, PathBuf};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The shared folder next to the checkout (as CI lays it out), else the development location.
fn shared(p: &str) -> PathBuf {
    let beside = repo("../shared").join(p);
    if beside.exists() { beside } else { Path::new("/work/shared").join(p) }
}

#[test]
fn the_authors_file_is_read_with_overrides_and_inheritance() {
    let path = shared("xml/EPIP_NORMED_MSNET_W_MICMAC.xml");
    let overrides = [("Im1", "Epip1.tif"), ("Im2", "Epip2.tif"), ("DirMEC", "OUT"), ("ZReg", "0.002"), ("IncPix", "100")]
        .map(|(a, b)| (a.to_string(), b.to_string()));
    let file = MicmacFile::load(&path, &overrides).unwrap();
    let c = &file.config;
    assert_eq!((c.im1.as_str(), c.im2.as_str()), ("Epip1.tif", "Epip2.tif"));
    assert_eq!(c.px1_inc, 100.0);
    assert_eq!(c.dir_mec, "OUT", "TmpMEC = ${{DirMEC}}/ with DirMEC overridden");
    let zooms: Vec<u32> = c.steps.iter().map(|s| s.dezoom).collect();
    assert_eq!(zooms, vec![16, 8, 4, 2, 1, 1]);
    for s in &c.steps[..5] {
        assert_eq!((s.szw, s.dilat_alti, s.dilat_plani, s.nb_dir), (3, 7, 3, 7), "inherited from DeZoom -1");
        assert_eq!(s.regul, 0.002);
        assert_eq!(s.pente_max, 3.0);
        assert_eq!(s.algo, Algo::PrgDyn2);
        let mask = s.mask_auto.unwrap();
        assert_eq!((mask.def_cor, mask.cost_trans), (0.4, 1.0));
    }
    assert!(c.steps[0].learned.is_none() && c.steps[1].learned.is_none(), "NCC at 1/16 and 1/8");
    for s in &c.steps[2..5] {
        let learned = s.learned.as_ref().unwrap();
        assert_eq!(learned.cost, "MVCNNCorrel");
        assert_eq!(learned.params, "./MODEL_AERIAL_MSNET_DECISION/.*.pt");
        assert_eq!(learned.arch, "UnetMLPMatcher");
    }
    assert_eq!(c.steps[5].algo, Algo::Dequant);
    let masks = c.masks.as_ref().unwrap();
    assert_eq!((masks.pattern.as_str(), masks.name.as_str(), masks.accept_missing), ("(.*)\\.tif", "$1_Masq.tif", true));
    assert_eq!((c.tiles.min_px, c.tiles.max_px, c.tiles.overlap_px), (640, 612, 20));
    assert_eq!(c.by_process, Some(3));
    for tag in ["Section_Results", "Section_MEC/EtapeMEC/SsResolOptim", "Section_WorkSpace/AvalaibleMemory"] {
        assert!(file.no_effect.iter().any(|t| t == tag), "{tag} is listed as having no effect");
    }
}

#[test]
fn an_override_of_an_unknown_symbol_is_an_error() {
    let path = shared("xml/EPIP_NORMED_MSNET_W_MICMAC.xml");
    let err = MicmacFile::load(&path, &[("Zreg".into(), "0.1".into())]).unwrap_err().to_string();
    assert!(err.contains("+Zreg=0.1") && err.contains("no <Symb> Zreg") && err.contains("ZReg"), "{err}");
}

#[test]
fn the_minimal_example_is_valid() {
    let file = MicmacFile::load(&repo("xml/minimal_epipolar.xml"), &[]).unwrap();
    assert_eq!(file.config.steps.len(), 2);
    assert_eq!(file.config.steps[0].regul, 0.02);
}

#[test]
fn every_invalid_file_gives_its_own_error() {
    // Some files read fine but ask for something the engine cannot run: the plan says so.
    let count = crate::common::check_invalid_files(&repo("xml/invalid"), |path| {
        MicmacFile::load(path, &[]).and_then(|file| MicmacPlan::new(&file.config, path))
    });
    assert!(count >= 17, "{count} invalid files");
}

#[test]
fn a_plugin_step_is_read_inherited_and_overridden() {
    let file = MicmacFile::load(&repo("xml/plugin_epipolar.xml"), &[("Plugin".into(), "/opt/libm.so".into())]).unwrap();
    let plugins: Vec<(&str, &str)> = file
        .config
        .steps
        .iter()
        .map(|s| s.plugin.as_ref().map(|p| (p.path.as_str(), p.options.as_str())).unwrap())
        .collect();
    assert_eq!(
        plugins,
        vec![("/opt/libm.so", "window=5, adaptive=true"), ("/opt/libm.so", "window=5, adaptive=true"), ("/opt/libm.so", "window=7")]
    );
    assert!(file.config.steps.iter().all(|s| s.learned.is_none()));
    // The authors' file has no plugin.
    let authors = MicmacFile::load(&shared("xml/EPIP_NORMED_MSNET_W_MICMAC.xml"), &[]).unwrap();
    assert!(authors.config.steps.iter().all(|s| s.plugin.is_none()));
}
