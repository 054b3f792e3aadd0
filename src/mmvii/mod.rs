//! MicMac's external cost-cube command, `MMVII DM4FillCubeCost`, re-implemented.
//!
//! When a MicMac step uses a learned cost (`ScoreLearnedMMVII` in the XML), `mm3d MICMAC` writes
//! the per-pixel search intervals of a tile to `ZMin_<Post>.tif` / `ZMax_<Post>.tif` in its
//! working folder, runs
//!
//! ```text
//! MMVII DM4FillCubeCost Im1 Im2 Model P0 Box1 Box2 Post [StepZ=] [CNNParams=DIR/REGEX] [CNNArch=]
//!       [UseCuda=0|1] [UsePredicNet=0|1] [SzW=] [ModCmp=]
//! ```
//! through the shell, and reads back `MatchingCube_<Post>.data`. `deepsim mmvii` accepts that
//! call verbatim (the `MMVII` launcher next to the `deepsim` binary forwards to it), so a MicMac
//! user switches by putting one executable on `PATH`; the learned models are ONNX bundles run by
//! [`crate::runtime`] instead of LibTorch.
//!
//! # Files (all relative to the working folder, MicMac's current directory)
//!
//! - `ZMin_<Post>.tif`, `ZMax_<Post>.tif`: int16, one band, the tile's size; pixel `(x, y)`
//!   searches the Z indices `ZMin ≤ Z < ZMax` (empty when `ZMax ≤ ZMin`). Read by [`Layers`].
//! - `MatchingCube_<Post>.data`: raw native-endian `u16`, no header; for `y`, for `x`, for `Z`
//!   in `[ZMin, ZMax)` (Z fastest); value `round(10000 · clamp(cost, 0, 1))`, lower is better;
//!   exactly `Σ max(ZMax − ZMin, 0)` values. Written under a temporary name and renamed when
//!   complete; on any error no cube is left behind.
//!
//! # Geometry and the sign of Z
//!
//! Tile pixel `(x, y)` is image-1 pixel `(x + P0.x, y + P0.y)` and, for index `Z`, is compared
//! with image 2 at `(x + P0.x + Z · StepZ, y + P0.y)` (absolute image coordinates; `Box1` and
//! `Box2` only say which part of each image to load). This is MicMac's `Px1` convention,
//! `x₂ = x₁ + Px1`; the engine's own convention elsewhere is `x_right = x_left − d`, so
//! **`Z · StepZ = −d`**. The conversion happens here and nowhere else: this module works in
//! MicMac's convention throughout, because its inputs and outputs are MicMac's.
//!
//! A sub-pixel `StepZ` samples image 2 (NCC) or the image-2 feature map (learned) bilinearly
//! between columns; an integer `StepZ` reads whole pixels only. A comparison that needs a pixel
//! outside the loaded boxes (which MicMac clips to the images) or an invalid pixel (nodata,
//! transparent) gets the worst cost, 1.
//!
//! # Models
//!
//! - `MMVIICorrel`: normalised cross-correlation over a `(2·SzW+1)²` window, cost `(1 − NCC)/2`
//!   ([`Scorer::Correl`]);
//! - `MVCNNCorrel`: the learned similarity of an ONNX bundle picked by `CNNParams`
//!   ([`resolve_cnn_params`]): cosine, cost `(1 − cos)/2` (`UsePredicNet=0`), or the decision
//!   MLP, cost `1 − MLP` (`UsePredicNet=1`) ([`Scorer::Learned`]).

mod call;
mod correl;
mod cube;
mod layers;
mod learned;
mod params;

pub use call::{Call, ModelName, PixelBox, COMMAND};
pub use correl::fill_correl;
pub use cube::{cube_file_name, write_cube, COST_SCALE};
pub use layers::Layers;
pub use learned::{fill_learned, FeatureMap};
pub use params::resolve_cnn_params;

use crate::error::{Error, Result};
use crate::io::{read_image, AtomicFile, Raster, ReadOptions};
use crate::similarity::Learned;
use ndarray::{s, Array2};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How a cube is filled.
pub enum Scorer<'a> {
    /// `MMVIICorrel`: NCC over a `(2·szw+1)²` window.
    Correl {
        /// Half-size of the window (MicMac's `SzW`).
        szw: usize,
    },
    /// `MVCNNCorrel`: a learned similarity (its head decides cosine or MLP).
    Learned(&'a Learned),
}

/// One image's loaded box: samples (native units for NCC, [0, 1] for the networks), validity,
/// and the box's origin in the image.
#[derive(Debug, Clone)]
pub struct Crop {
    /// Sample values of the box, `(height, width)`.
    pub values: Array2<f32>,
    /// True where the sample is usable.
    pub valid: Array2<bool>,
    /// Image coordinates of the box's first column and row.
    pub origin: (i64, i64),
}

/// Where the tile sits in the two crops and how Z maps to image-2 columns.
#[derive(Debug, Clone, Copy)]
pub struct Geometry {
    /// Image-1 coordinates of tile pixel (0, 0) (MicMac's `P0`).
    pub p0: (i64, i64),
    /// Origin of the image-1 crop.
    pub origin1: (i64, i64),
    /// Origin of the image-2 crop.
    pub origin2: (i64, i64),
    /// Image-2 columns per Z index (MicMac's `StepZ`).
    pub step_z: f64,
}

/// A column of image 2 (crop coordinates) to sample: whole pixel `x0`, or `(1 − t)·[x0] + t·[x0 + 1]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub x0: usize,
    pub t: f32,
}

impl Geometry {
    /// Crop-1 coordinates `(column, row)` of tile pixel `(x, y)` (may be outside the crop).
    #[inline]
    pub(crate) fn left(&self, x: usize, y: usize) -> (i64, i64) {
        (x as i64 + self.p0.0 - self.origin1.0, y as i64 + self.p0.1 - self.origin1.1)
    }

    /// Crop-2 row of tile row `y` (may be outside the crop).
    #[inline]
    pub(crate) fn right_row(&self, y: usize) -> i64 {
        y as i64 + self.p0.1 - self.origin2.1
    }

    /// Crop-2 column of tile column `x` at Z index `z`, as a sample, or `None` when it falls
    /// outside `[0, width − 1]`.
    #[inline]
    pub(crate) fn right_sample(&self, x: usize, z: i32, width: usize) -> Option<Sample> {
        let base = x as i64 + self.p0.0 - self.origin2.0;
        if self.step_z.fract() == 0.0 {
            let xr = base + z as i64 * self.step_z as i64;
            return (0..width as i64).contains(&xr).then_some(Sample { x0: xr as usize, t: 0.0 });
        }
        let xr = base as f64 + z as f64 * self.step_z;
        let mut x0 = xr.floor();
        let mut t = xr - x0;
        // Positions within rounding noise of a column are that column (e.g. StepZ 0.333333 × 3).
        if t < 1e-6 {
            t = 0.0;
        } else if t > 1.0 - 1e-6 {
            x0 += 1.0;
            t = 0.0;
        }
        let last = width as f64 - 1.0;
        if x0 < 0.0 || x0 > last || (x0 == last && t > 0.0) {
            return None;
        }
        Some(Sample { x0: x0 as usize, t: t as f32 })
    }
}

/// Timings and sizes of one run, for the report line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// The cube written.
    pub cube: PathBuf,
    /// Tile width and height.
    pub tile: (usize, usize),
    /// Number of costs written.
    pub entries: usize,
    /// Seconds spent reading the inputs.
    pub read_s: f64,
    /// Seconds spent running the feature extractor (learned models).
    pub features_s: f64,
    /// Seconds spent filling the cube.
    pub fill_s: f64,
    /// Seconds spent writing the cube.
    pub write_s: f64,
}

/// Runs one parsed call in `workdir` (MicMac's working folder: relative paths of the call, the
/// Z files and the cube are relative to it) and writes the cube.
///
/// A stale cube of the same name is removed first, so that whatever happens afterwards, the
/// folder never holds a cube that this call did not write.
pub fn run(call: &Call, workdir: &Path, scorer: &Scorer<'_>) -> Result<Summary> {
    let cube_path = in_workdir(workdir, cube_file_name(&call.post));
    if cube_path.exists() {
        std::fs::remove_file(&cube_path).map_err(|e| Error::io(&cube_path, e))?;
    }
    let t = Instant::now();
    let layers = Layers::read(&in_workdir(workdir, call.zmin_file_name()), &in_workdir(workdir, call.zmax_file_name()))?;
    check_tile_in_box1(call, layers.width(), layers.height())?;
    let learned = matches!(scorer, Scorer::Learned(_));
    let crop1 = load_crop(&in_workdir(workdir, &call.im1), 1, &call.box1, learned)?;
    let crop2 = load_crop(&in_workdir(workdir, &call.im2), 2, &call.box2, learned)?;
    let geometry = Geometry { p0: call.p0, origin1: crop1.origin, origin2: crop2.origin, step_z: call.step_z };
    let read_s = t.elapsed().as_secs_f64();

    let (costs, features_s, fill_s) = match scorer {
        Scorer::Correl { szw } => {
            let t = Instant::now();
            let costs = fill_correl(&layers, &geometry, &crop1, &crop2, *szw)?;
            (costs, 0.0, t.elapsed().as_secs_f64())
        }
        Scorer::Learned(model) => {
            let t = Instant::now();
            let (f1, f2) = rayon::join(|| FeatureMap::new(model, &crop1), || FeatureMap::new(model, &crop2));
            let (f1, f2) = (f1?, f2?);
            let features_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let costs = fill_learned(&layers, &geometry, &f1, &f2, model.head(), model.decision_net())?;
            (costs, features_s, t.elapsed().as_secs_f64())
        }
    };

    let t = Instant::now();
    let file = AtomicFile::new(&cube_path)?;
    if let Err(e) = write_cube(file.tmp_path(), &costs) {
        file.discard();
        return Err(e);
    }
    let cube = file.commit()?;
    Ok(Summary {
        cube,
        tile: (layers.width(), layers.height()),
        entries: costs.len(),
        read_s,
        features_s,
        fill_s,
        write_s: t.elapsed().as_secs_f64(),
    })
}

/// An error when the tile (`width × height` Z-file pixels at `P0`) does not overlap `Box1`: every
/// cost would then be the worst, a cube that looks computed but holds nothing.
fn check_tile_in_box1(call: &Call, width: usize, height: usize) -> Result<()> {
    let (x0, y0) = call.p0;
    let (x1, y1) = (x0.saturating_add(width as i64), y0.saturating_add(height as i64));
    let b = &call.box1;
    if x1 <= b.x0 || x0 >= b.x1 || y1 <= b.y0 || y0 >= b.y1 {
        return Err(Error::invalid_parameter(format!(
            "P0 [{x0},{y0}] (argument 4): the {width}×{height} tile of the Z files starting there lies outside \
             Box1 {b}; every cost would be the worst. Check that the call's P0 and boxes belong together"
        )));
    }
    Ok(())
}

/// Reads image `which` (1 or 2) from `path` and cuts `bx` out of it: native sample values for NCC, or the [0, 1] mapping of
/// the whole image (the rule the networks were trained with, computed on the whole image so
/// that every tile of a MicMac run sees the same mapping) for the learned models.
pub fn load_crop(path: &Path, which: u8, bx: &PixelBox, unit: bool) -> Result<Crop> {
    let raster: Raster = read_image(path, &ReadOptions::default())
        .map_err(|e| Error::new(e.kind(), format!("Im{which}: {}", e.message())))?;
    let (w, h) = (raster.width() as i64, raster.height() as i64);
    if bx.x1 > w || bx.y1 > h {
        return Err(Error::invalid_input(format!(
            "Box{which} {bx} reaches beyond Im{which} {} ({w}×{h} px); MicMac clips the boxes to the \
             images: check that the call names the images of this zoom level",
            path.display()
        )));
    }
    let values = if unit { raster.to_unit() } else { raster.values };
    let window = s![bx.y0 as usize..bx.y1 as usize, bx.x0 as usize..bx.x1 as usize];
    Ok(Crop {
        values: values.slice(window).to_owned(),
        valid: raster.valid.slice(window).to_owned(),
        origin: (bx.x0, bx.y0),
    })
}

/// `path` relative to `workdir` (unchanged when absolute or when `workdir` is `.`, so that
/// messages show the paths as MicMac wrote them).
pub fn in_workdir(workdir: &Path, path: impl AsRef<Path>) -> PathBuf {
    if workdir == Path::new(".") { path.as_ref().to_path_buf() } else { workdir.join(path) }
}

/// Splits `costs` (laid out as `layers`) into one mutable slice per tile row.
pub(crate) fn split_rows<'a>(costs: &'a mut [u16], layers: &Layers) -> Vec<(usize, &'a mut [u16])> {
    let mut rows = Vec::with_capacity(layers.height());
    let mut rest = costs;
    for y in 0..layers.height() {
        let (head, tail) = rest.split_at_mut(layers.row_entries(y).len());
        rows.push((y, head));
        rest = tail;
    }
    rows
}
