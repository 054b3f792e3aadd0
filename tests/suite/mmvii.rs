//! `deepsim mmvii` / the `MMVII` launcher as MicMac calls them: the Z files MicMac really
//! writes, the cube's size, order and values, disparities recovered from synthetic pairs, the
//! learned backend against NCC, and one clear error per malformed call with no cube left.

use crate::common::Texture;
use deepsim::mmvii::Layers;
use ndarray::Array2;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The shared folder next to the checkout (as CI lays it out), else the development location.
fn shared(p: &str) -> PathBuf {
    let beside = repo("../shared").join(p);
    if beside.exists() { beside } else { Path::new("/work/shared").join(p) }
}

fn models(name: &str) -> PathBuf {
    repo("tests/data/models").join(name)
}

/// Runs `deepsim mmvii` in `dir` (MicMac's working folder) with MicMac's argument list.
fn mmvii(dir: &Path, call: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepsim")).current_dir(dir).args(["-q", "--threads", "2", "mmvii"]).args(call).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The cube files (final or partial) in `dir`.
fn cube_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("MatchingCube_"))
        .collect()
}

fn read_cube(path: &Path) -> Vec<u16> {
    std::fs::read(path).unwrap().chunks_exact(2).map(|b| u16::from_ne_bytes([b[0], b[1]])).collect()
}

/// A little-endian classic TIFF's IFD-0 entries with an inline value: tag → value.
fn tiff_tags(bytes: &[u8]) -> std::collections::HashMap<u16, u32> {
    assert_eq!(&bytes[..4], b"II*\0", "little-endian TIFF");
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
    let ifd = u32_at(4) as usize;
    (0..u16_at(ifd) as usize)
        .map(|i| {
            let e = ifd + 2 + 12 * i;
            let value = if u16_at(e + 2) == 3 { u16_at(e + 8) as u32 } else { u32_at(e + 8) };
            (u16_at(e), value)
        })
        .collect()
}

/// Decodes MicMac's Z file by hand (uncompressed int16, one tile), independently of the engine.
fn raw_z(path: &Path) -> (usize, usize, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap();
    let tags = tiff_tags(&bytes);
    assert_eq!((tags[&258], tags[&259], tags[&339]), (16, 1, 2), "int16, uncompressed, signed");
    let (w, h, tile_w, tile_h, offset) = (tags[&256] as usize, tags[&257] as usize, tags[&322] as usize, tags[&323] as usize, tags[&324] as usize);
    assert!(w <= tile_w && h <= tile_h, "a single tile");
    let mut values = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let o = offset + 2 * (y * tile_w + x);
            values.push(i16::from_le_bytes([bytes[o], bytes[o + 1]]));
        }
    }
    (w, h, values)
}

/// Decodes an uncompressed 8-bit single-strip grey TIFF by hand.
fn raw_u8_image(path: &Path) -> Array2<f64> {
    let bytes = std::fs::read(path).unwrap();
    let tags = tiff_tags(&bytes);
    assert_eq!((tags[&258], tags[&259]), (8, 1), "8-bit, uncompressed");
    let (w, h, offset) = (tags[&256] as usize, tags[&257] as usize, tags[&273] as usize);
    Array2::from_shape_fn((h, w), |(y, x)| bytes[offset + y * w + x] as f64)
}

#[test]
fn the_shared_micmac_z_files_are_read_exactly() {
    for (post, size) in [("MMV1Pid21397", (195, 250)), ("MMV1Pid21419", (253, 270))] {
        let (zmin_path, zmax_path) = (shared(&format!("data/micmac-cube/ZMin_{post}.tif")), shared(&format!("data/micmac-cube/ZMax_{post}.tif")));
        let layers = Layers::read(&zmin_path, &zmax_path).unwrap();
        let (w, h, zmin) = raw_z(&zmin_path);
        let (_, _, zmax) = raw_z(&zmax_path);
        assert_eq!((w, h), size, "{post}: the tile is Box1's size");
        assert_eq!((layers.width(), layers.height()), size);
        let mut total = 0;
        for y in 0..h {
            for x in 0..w {
                assert_eq!((layers.zmin(x, y), layers.zmax(x, y)), (zmin[y * w + x], zmax[y * w + x]), "{post} ({x}, {y})");
                assert_eq!(layers.entries(x, y).start, total);
                total += (zmax[y * w + x] - zmin[y * w + x]).max(0) as usize;
            }
        }
        assert_eq!(layers.total(), total, "{post}");
    }
}

/// NCC over a (2r+1)² window as MMVII defines it, straight from the definition.
fn hand_ncc(im1: &Array2<f64>, im2: &Array2<f64>, (x1, y1): (i64, i64), x2: f64, r: i64) -> Option<f64> {
    let (h, w) = (im1.nrows() as i64, im1.ncols() as i64);
    let (h2, w2) = (im2.nrows() as i64, im2.ncols() as i64);
    let x0 = x2.floor() as i64;
    let t = x2 - x0 as f64;
    let last = if t > 0.0 { x0 + r + 1 } else { x0 + r };
    if x1 - r < 0 || y1 - r < 0 || x1 + r >= w || y1 + r >= h || x0 - r < 0 || last >= w2 || y1 + r >= h2 {
        return None;
    }
    let mut pairs = Vec::new();
    for dy in -r..=r {
        for dx in -r..=r {
            let a = im1[((y1 + dy) as usize, (x1 + dx) as usize)];
            let (yy, xx) = ((y1 + dy) as usize, (x0 + dx) as usize);
            let b = if t > 0.0 { im2[(yy, xx)] * (1.0 - t) + im2[(yy, xx + 1)] * t } else { im2[(yy, xx)] };
            pairs.push((a, b));
        }
    }
    let n = pairs.len() as f64;
    let (ma, mb) = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
    let cov = pairs.iter().map(|(a, b)| (a - ma) * (b - mb)).sum::<f64>() / n;
    let va = pairs.iter().map(|(a, _)| (a - ma) * (a - ma)).sum::<f64>() / n;
    let vb = pairs.iter().map(|(_, b)| (b - mb) * (b - mb)).sum::<f64>() / n;
    Some(cov / (va * vb).max(1e-10).sqrt())
}

#[test]
fn the_cube_for_micmacs_full_resolution_tile_has_the_specified_size_order_and_values() {
    // The second call of the shared README, replayed in a working folder laid out as MicMac's.
    let dir = tempfile::tempdir().unwrap();
    let post = "MMV1Pid21419";
    for f in ["Im1.tif", "Im2.tif", &format!("ZMin_{post}.tif"), &format!("ZMax_{post}.tif")] {
        std::fs::copy(shared(&format!("data/micmac-cube/{f}")), dir.path().join(f)).unwrap();
    }
    let out = mmvii(dir.path(), &["DM4FillCubeCost", "./Im1.tif", "./Im2.tif", "MMVIICorrel", "[0,0]", "[0,0,253,270]", "[0,0,267,270]", post]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cube_path = dir.path().join(format!("MatchingCube_{post}.data"));
    let (w, h, zmin) = raw_z(&dir.path().join(format!("ZMin_{post}.tif")));
    let (_, _, zmax) = raw_z(&dir.path().join(format!("ZMax_{post}.tif")));
    let total: usize = zmin.iter().zip(&zmax).map(|(a, b)| (b - a).max(0) as usize).sum();
    assert_eq!(std::fs::metadata(&cube_path).unwrap().len(), 2 * total as u64, "Σ max(ZMax − ZMin, 0) u16 values");
    assert_eq!(cube_files(dir.path()), [format!("MatchingCube_{post}.data")], "no partial file left");
    let cube = read_cube(&cube_path);

    // For y, for x, for Z in [ZMin, ZMax): the entry of (x, y, z) by counting.
    let entry = |x: usize, y: usize, z: i16| -> usize {
        let before: usize = (0..y * w + x).map(|p| (zmax[p] - zmin[p]).max(0) as usize).sum();
        assert!(z >= zmin[y * w + x] && z < zmax[y * w + x]);
        before + (z - zmin[y * w + x]) as usize
    };
    // What the call loads: Box1 of Im1, Box2 of Im2 (a window leaving its box costs 1).
    let im1 = raw_u8_image(&dir.path().join("Im1.tif")).slice(ndarray::s![0..270, 0..253]).to_owned();
    let im2 = raw_u8_image(&dir.path().join("Im2.tif")).slice(ndarray::s![0..270, 0..267]).to_owned();
    let mut checked = 0;
    for (x, y) in [(3, 3), (100, 100), (130, 57), (200, 250), (252, 269), (0, 0), (249, 10), (2, 150)] {
        for z in zmin[y * w + x]..zmax[y * w + x] {
            let expected = match hand_ncc(&im1, &im2, (x as i64, y as i64), x as f64 + z as f64, 3) {
                Some(ncc) => ((1.0 - ncc) / 2.0 * 10000.0).round() as i64,
                None => 10000,
            };
            let got = cube[entry(x, y, z)] as i64;
            assert!((got - expected).abs() <= 1, "({x}, {y}) Z {z}: cube {got}, by hand {expected}");
            checked += 1;
        }
    }
    assert!(checked > 50);
    assert_eq!(cube[0], 10000, "(0, 0): the 7x7 window leaves the image");

    // MicMac's truth for this pair: image 2 at x + d shows image 1 at x, d = 4 + 6·x/700, so
    // the best Z (StepZ 1) of each pixel is d rounded.
    let (mut good, mut counted) = (0, 0);
    for y in 4..h - 4 {
        for x in 4..w - 20 {
            let p = y * w + x;
            let first = entry(x, y, zmin[p]);
            let costs = &cube[first..first + (zmax[p] - zmin[p]) as usize];
            let best = zmin[p] as f64 + costs.iter().enumerate().min_by_key(|(_, c)| **c).unwrap().0 as f64;
            good += usize::from((best - (4.0 + 6.0 * x as f64 / 700.0)).abs() <= 0.6);
            counted += 1;
        }
    }
    assert!(good as f64 > 0.95 * counted as f64, "NCC recovers MicMac's truth at {good} of {counted} pixels");
}

/// A MicMac working folder with a synthetic pair: image 2 at `x + shift(y)` shows image 1 at
/// `x`, so the best `Z · step` of row `y` is `shift(y)`. The tile is image-1 pixels
/// `[8, 108) × [4, 74)`, loaded with a margin as MicMac does.
struct Scene {
    dir: tempfile::TempDir,
    shift: fn(usize) -> f64,
    step: f64,
}

const TILE: (usize, usize) = (100, 70);
const P0: (usize, usize) = (8, 4);

impl Scene {
    fn new(shift: fn(usize) -> f64, step: f64, post: &str) -> Scene {
        let (w, h) = (130, 80);
        let dir = tempfile::tempdir().unwrap();
        let texture = Texture::new(5, w + 40, h);
        let im1 = Array2::from_shape_fn((h, w), |(y, x)| (texture.at(x as f32 + 20.0, y) * 255.0).round() as u8);
        let im2 = Array2::from_shape_fn((h, w), |(y, x)| (texture.at(x as f32 + 20.0 - shift(y) as f32, y) * 255.0).round() as u8);
        deepsim::io::write_tiff_u8(&dir.path().join("Im1.tif"), &im1).unwrap();
        deepsim::io::write_tiff_u8(&dir.path().join("Im2.tif"), &im2).unwrap();
        let scene = Scene { dir, shift, step };
        scene.write_z(post, |x, y| {
            // Intervals of varying length around the truth, some empty (ZMax = ZMin or ZMax < ZMin).
            let z = (shift(P0.1 + y) / step).round() as i32;
            match (x + 3 * y) % 37 {
                0 => (z, z),
                1 => (z + 2, z - 1),
                _ => (z - 5 - (x % 3) as i32, z + 6 + (y % 4) as i32),
            }
        });
        scene
    }

    fn write_z(&self, post: &str, bounds: impl Fn(usize, usize) -> (i32, i32)) {
        let (w, h) = TILE;
        let (mut lo, mut hi) = (Vec::new(), Vec::new());
        for y in 0..h {
            for x in 0..w {
                let (a, b) = bounds(x, y);
                lo.push(a as i16);
                hi.push(b as i16);
            }
        }
        for (name, values) in [("ZMin", lo), ("ZMax", hi)] {
            let file = std::fs::File::create(self.dir.path().join(format!("{name}_{post}.tif"))).unwrap();
            let mut enc = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(file)).unwrap();
            enc.write_image::<tiff::encoder::colortype::GrayI16>(w as u32, h as u32, &values).unwrap();
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// MicMac's call for the tile, with `extra` options.
    fn call(&self, model: &str, post: &str, extra: &[&str]) -> Vec<String> {
        let mut call: Vec<String> = ["DM4FillCubeCost", "./Im1.tif", "./Im2.tif", model, "[8,4]", "[5,1,111,77]", "[0,1,130,77]", post]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if self.step != 1.0 {
            call.push(format!("StepZ={:.6}", self.step));
        }
        call.extend(extra.iter().map(|s| s.to_string()));
        call
    }

    fn run(&self, model: &str, post: &str, extra: &[&str]) -> Vec<u16> {
        let call = self.call(model, post, extra);
        let out = mmvii(self.path(), &call.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{call:?}: {}", stderr(&out));
        assert_eq!(cube_files(self.path()), [format!("MatchingCube_{post}.data")]);
        read_cube(&self.path().join(format!("MatchingCube_{post}.data")))
    }

    /// Share of pixels whose arg-min Z·step is the truth.
    fn recovered(&self, post: &str, cube: &[u16]) -> f64 {
        let layers = Layers::read(&self.path().join(format!("ZMin_{post}.tif")), &self.path().join(format!("ZMax_{post}.tif"))).unwrap();
        assert_eq!(cube.len(), layers.total());
        let (mut good, mut counted) = (0, 0);
        for y in 3..TILE.1 - 3 {
            if (self.shift)(P0.1 + y - 2) != (self.shift)(P0.1 + y + 2) {
                continue; // the 5x5 windows straddle two disparities
            }
            for x in 0..TILE.0 {
                let costs = &cube[layers.entries(x, y)];
                if costs.is_empty() {
                    continue;
                }
                let best = costs.iter().enumerate().min_by_key(|(_, c)| **c).unwrap().0 as f64 + layers.zmin(x, y) as f64;
                good += usize::from((best * self.step - (self.shift)(P0.1 + y)).abs() < 1e-6);
                counted += 1;
            }
        }
        assert!(counted > 3000, "{counted} pixels compared");
        good as f64 / counted as f64
    }
}

#[test]
fn the_arg_min_over_each_interval_recovers_a_known_disparity() {
    // Whole pixels, a disparity changing with the row, NCC and the learned cosine.
    let scene = Scene::new(|y| 3.0 + (y / 16) as f64, 1.0, "int");
    let ncc = scene.run("MMVIICorrel", "int", &["SzW=2"]);
    let share = scene.recovered("int", &ncc);
    assert!(share > 0.99, "NCC: {share}");
    let params = format!("CNNParams={}/.*\\.onnx", models("patch5").display());
    let cosine = scene.run("MVCNNCorrel", "int", &[&params, "CNNArch=UnetMLPMatcher", "UseCuda=0", "UsePredicNet=0"]);
    let share = scene.recovered("int", &cosine);
    assert!(share > 0.99, "cosine: {share}");
    // patch5's features are the zero-mean 5x5 windows: cosine is NCC 5x5, entry for entry,
    // wherever NCC's window is inside the images (the model pads with zeros at the borders).
    let mut compared = 0;
    for (a, b) in ncc.iter().zip(&cosine) {
        if *a != 10000 {
            assert!(a.abs_diff(*b) <= 3, "NCC {a} vs cosine {b}");
            compared += 1;
        }
    }
    assert!(compared > 50_000, "{compared}");

    // Half-pixel steps: a shift of 6.5 px is Z = 13 at StepZ 0.5, sampled bilinearly.
    let scene = Scene::new(|_| 6.5, 0.5, "half");
    let ncc = scene.run("MMVIICorrel", "half", &["SzW=2"]);
    assert!(scene.recovered("half", &ncc) > 0.97, "NCC, StepZ 0.5: {}", scene.recovered("half", &ncc));
    let cosine = scene.run("MVCNNCorrel", "half", &[&params]);
    assert!(scene.recovered("half", &cosine) > 0.97, "cosine, StepZ 0.5: {}", scene.recovered("half", &cosine));
    // Bilinear sampling of linear features = features of the bilinear image: still equal.
    for (a, b) in ncc.iter().zip(&cosine) {
        if *a != 10000 {
            assert!(a.abs_diff(*b) <= 3, "StepZ 0.5: NCC {a} vs cosine {b}");
        }
    }
}

#[test]
fn the_mlp_head_and_the_mmvii_launcher() {
    let scene = Scene::new(|_| 4.0, 1.0, "mlp");
    // MicMac's learned call, through the launcher as MicMac runs it (FEATURES / DECISION_NET names).
    let bundle = scene.path().join("models");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::copy(models("tiny_conv").join("features.onnx"), bundle.join("MSAFF_FEATURES.onnx")).unwrap();
    std::fs::copy(models("tiny_conv").join("mlp.onnx"), bundle.join("MSAFF_DECISION_NET.onnx")).unwrap();
    std::fs::write(bundle.join("notes.txt"), "not a model").unwrap();
    let call = scene.call("MVCNNCorrel", "mlp", &["StepZ=1.000000", "CNNParams=./models/.*", "CNNArch=UnetMLPMatcher", "UseCuda=0", "UsePredicNet=1"]);
    let out = Command::new(env!("CARGO_BIN_EXE_MMVII")).current_dir(scene.path()).args(&call).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("MSAFF_DECISION_NET.onnx"), "the summary names the models: {}", stderr(&out));
    let mlp = read_cube(&scene.path().join("MatchingCube_mlp.data"));
    let layers = Layers::read(&scene.path().join("ZMin_mlp.tif"), &scene.path().join("ZMax_mlp.tif")).unwrap();
    assert_eq!(mlp.len(), layers.total());
    let inside: Vec<u16> = mlp.iter().copied().filter(|&c| c != 10000).collect();
    assert!(inside.len() > mlp.len() / 2 && inside.iter().any(|&c| c != inside[0]), "MLP costs vary");
    // Sub-pixel steps through the MLP: bilinear features, same layout.
    let call = scene.call("MVCNNCorrel", "mlp", &["StepZ=0.500000", "CNNParams=./models/.*", "UsePredicNet=1"]);
    let out = Command::new(env!("CARGO_BIN_EXE_MMVII")).current_dir(scene.path()).args(&call).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let half = read_cube(&scene.path().join("MatchingCube_mlp.data"));
    assert_eq!(half.len(), layers.total());
    assert_ne!(half, mlp);
    // The same bundle with the cosine head gives other costs.
    let call = scene.call("MVCNNCorrel", "mlp", &["CNNParams=./models/.*", "UsePredicNet=0"]);
    let out = Command::new(env!("CARGO_BIN_EXE_MMVII")).current_dir(scene.path()).args(&call).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(read_cube(&scene.path().join("MatchingCube_mlp.data")), mlp);
}

#[test]
fn every_malformed_call_gives_its_own_error_and_leaves_no_cube() {
    let scene = Scene::new(|_| 4.0, 1.0, "ok");
    // Z files that do not fit int16 (int32 with 40000).
    for name in ["ZMin", "ZMax"] {
        let file = std::fs::File::create(scene.path().join(format!("{name}_wide.tif"))).unwrap();
        let mut enc = tiff::encoder::TiffEncoder::new(std::io::BufWriter::new(file)).unwrap();
        let values: Vec<i32> = (0..TILE.0 * TILE.1).map(|i| if i == 123 { 40000 } else { 1 }).collect();
        enc.write_image::<tiff::encoder::colortype::GrayI32>(TILE.0 as u32, TILE.1 as u32, &values).unwrap();
    }
    let torch = scene.path().join("torch");
    std::fs::create_dir_all(&torch).unwrap();
    std::fs::write(torch.join("MSAFF_FEATURES.pt"), b"torchscript").unwrap();
    std::fs::write(torch.join("MSAFF_DECISION_NET.pt"), b"torchscript").unwrap();
    let patch5 = format!("CNNParams={}/.*", models("patch5").display());
    let base = ["DM4FillCubeCost", "./Im1.tif", "./Im2.tif", "MMVIICorrel", "[8,4]", "[5,1,111,77]", "[0,1,130,77]"];
    let with = |model: &str, post: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
        v[3] = model.to_string();
        v.push(post.to_string());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let mut missing_post: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    missing_post.push("StepZ=1".into());
    let mut bad_box = with("MMVIICorrel", "ok", &[]);
    bad_box[5] = "[5,1,111]".into();
    let mut box_beyond = with("MMVIICorrel", "ok", &[]);
    box_beyond[5] = "[5,1,200,77]".into();
    let mut p0_outside = with("MMVIICorrel", "ok", &[]);
    p0_outside[4] = "[500,500]".into();
    // Issue #16: an image whose header claims 2^31 × 2^31 pixels.
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad/image/png_header_2g_by_2g.png"), scene.path().join("huge.png")).unwrap();
    let mut huge_im1 = with("MMVIICorrel", "ok", &[]);
    huge_im1[1] = "./huge.png".into();
    let mut other_command = with("MMVIICorrel", "ok", &[]);
    other_command[0] = "DM4MatchMultipleOrtho".into();
    // (what, call, expected message, whether the call gets far enough to know its cube's name:
    // then a stale cube of that name is planted and must be gone too).
    let cases: Vec<(&str, Vec<String>, &str, bool)> = vec![
        ("missing positional", missing_post, "missing positional argument 7 (Post", false),
        ("bad box syntax", bad_box, "Box1 '[5,1,111]': expected [x0,y0,x1,y1]", false),
        ("box beyond the image", box_beyond, "Box1 [5,1,200,77] reaches beyond Im1", true),
        ("P0 outside Box1", p0_outside, "P0 [500,500] (argument 4)", true),
        ("huge declared Im1", huge_im1, "huge.png: the file declares 2147483647 × 2147483647 pixels", true),
        ("missing ZMin file", with("MMVIICorrel", "nozfile", &[]), "ZMin_nozfile.tif", true),
        ("interval outside int16", with("MMVIICorrel", "wide", &[]), "Z value 40000 at pixel (23, 1) is outside the int16 range", true),
        ("unknown model", with("CensusCorrel", "ok", &[]), "unknown model 'CensusCorrel'", false),
        ("unknown option", with("MMVIICorrel", "ok", &["Window=7"]), "unknown option 'Window=7'", false),
        ("bad StepZ", with("MMVIICorrel", "ok", &["StepZ=-1"]), "StepZ=-1", false),
        ("other MMVII command", other_command, "MMVII command 'DM4MatchMultipleOrtho' is not provided by deepsim", false),
        ("no CNNParams", with("MVCNNCorrel", "ok", &[]), "MVCNNCorrel needs CNNParams", false),
        ("TorchScript models", with("MVCNNCorrel", "ok", &["CNNParams=./torch/.*"]), "deepsim_train.convert_torchscript", true),
        ("no model file matched", with("MVCNNCorrel", "ok", &["CNNParams=./torch/.*\\.onnx"]), "no feature extractor in ./torch/", true),
        ("bad regular expression", with("MVCNNCorrel", "ok", &["CNNParams=./torch/(.*"]), "is not a valid regular expression", true),
        ("MLP head without an MLP", with("MVCNNCorrel", "ok", &[&patch5, "UsePredicNet=1"]), "UsePredicNet=1 needs a decision network", true),
        ("GPU request without a GPU", with("MVCNNCorrel", "ok", &[&patch5, "UseCuda=1"]), "UseCuda=1", true),
    ];
    for (what, call, expected, stale) in cases {
        if stale {
            std::fs::write(scene.path().join(format!("MatchingCube_{}.data", call[7])), b"stale").unwrap();
        }
        let out = mmvii(scene.path(), &call.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!out.status.success(), "{what}: should fail");
        let err = stderr(&out);
        assert!(err.contains(expected), "{what}: expected '{expected}' in: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: one message: {err}");
        if what == "GPU request without a GPU" {
            // ONNX Runtime absent, or present without the CUDA provider: either way it says so.
            assert!(err.contains("CUDA") || err.contains("ONNX Runtime"), "{what}: {err}");
        }
        assert!(cube_files(scene.path()).is_empty(), "{what}: left {:?}", cube_files(scene.path()));
    }
    // The good call in the same folder works (the failures above were the calls' fault).
    assert_eq!(scene.run("MMVIICorrel", "ok", &[]).len(), Layers::read(&scene.path().join("ZMin_ok.tif"), &scene.path().join("ZMax_ok.tif")).unwrap().total());
}
