//! Synthetic aerial stereo pairs with exact ground truth (`deepsim synth`).
//!
//! Real aerial ground truth (LiDAR, MicMac surfaces) is sparse, noisy and misaligned at the
//! very places a matcher must learn: facades, occlusion borders, trees. This module makes
//! pairs whose disparity is known exactly, pixel for pixel, with the difficulties of real
//! pairs: urban and peri-urban scenes (terrain, buildings of many shapes and roofs, trees,
//! cars, walls, streets), textures at several scales including weak and repetitive ones,
//! sun shading and cast shadows, facades seen by one view only, and per-view radiometry.
//!
//! # How a pair is made
//!
//! 1. [`scene`]: the pair's seed draws cameras, sun, terrain, street grid and objects.
//! 2. [`dsm`]: the scene is rasterised into height profiles, one per image row, with the
//!    sun's shading and cast shadows fixed to the ground, once per view (the sun may move
//!    between the views: `--time-gap`).
//! 3. [`render`]: each view of each row is rendered from its profile by an exact visibility
//!    sweep; the ground truth (left disparity, defined, non-occluded, right disparity) comes
//!    out of the same geometry, at pixel centres.
//! 4. [`radiometry`]: each view's camera model (gain, offset, gamma, vignetting, blur, noise,
//!    optional JPEG-like artefacts, 8 or 16 bits).
//!
//! # The camera model and why
//!
//! Two cameras at the same height `H`, their centres `B` apart along X, both looking down.
//! Across the rows (x) they are pinhole cameras of focal `f`; along the columns (y) they are
//! orthographic (like a push-broom line sensor). Row `y` of both images then sees exactly
//! ground row `Y = (y − cy) · gsd`, the pair is epipolar without resampling, and
//! `d = f·B / (H − z) − s` for every point at height `z` (`s` sets the smallest disparity).
//! The price: north/south facades, which two frame cameras would see identically in both
//! views, are not shown; east/west facades, which create the occlusions, are. A pair is cut
//! from wide-angle frames at a look angle drawn per pair (`--look-tan`), which decides how
//! much facade each view sees.
//!
//! # Determinism
//!
//! Pair `i` of seed `s` depends only on `(s, i)`, the options and the contents of the texture
//! files ([`textures`], taken in name order): its own random stream
//! ([`rng`]), computed on one thread, with basic IEEE arithmetic and the crate's own
//! `exp`/`ln`/`pow` ([`detmath`]) where libm could differ between machines.

pub mod appearance;
pub mod config;
pub mod dataset;
pub mod detmath;
pub mod dsm;
pub mod geometry;
pub mod noise;
pub mod radiometry;
pub mod render;
pub mod rng;
pub mod scene;
pub mod textures;

pub use config::{parse_size, Span, Style, SynthConfig};
pub use dataset::{write_dataset, DatasetSummary, MANIFEST_FILE};

use crate::error::Result;
use appearance::{Appearance, Texture};
use ndarray::Array2;
use scene::{Radiometry, Scene, LEFT, RIGHT};
use serde_json::json;
use std::sync::Arc;

/// The disparity convention of every file written.
pub const CONVENTION: &str = "left pixel (x, y) matches right pixel (x - d, y)";

/// One generated pair, in memory.
pub struct SynthPair {
    /// Index of the pair in the dataset.
    pub index: u64,
    /// The pair's own seed.
    pub seed: u64,
    /// Left image, grey values on `bits` bits.
    pub left: Array2<u16>,
    /// Right image.
    pub right: Array2<u16>,
    /// Left disparity, NaN where undefined.
    pub disp_left: Array2<f32>,
    /// A surface point is seen at the left pixel.
    pub defined: Array2<bool>,
    /// That point is visible in the right image.
    pub nonocc: Array2<bool>,
    /// Right disparity (right pixel x matches left pixel x + d), with `--right-disparity`.
    pub disp_right: Option<Array2<f32>>,
    /// Rendered radiance of both views before their camera models.
    pub radiance: [Array2<f32>; 2],
    /// Camera models of the left and right views.
    pub radiometry: [Radiometry; 2],
    /// Full scale of the images (255 or 65535).
    pub full_scale: u16,
    /// Everything scene.json records.
    pub params: serde_json::Value,
}

/// A validated configuration with its textures loaded, ready to make pairs.
pub struct Generator {
    config: SynthConfig,
    textures: Arc<Vec<Texture>>,
}

impl Generator {
    /// Checks `config` and loads its textures (`--texture`, `--texture-dir`).
    pub fn new(config: SynthConfig) -> Result<Generator> {
        config.validate()?;
        let textures = textures::load(&config)?;
        Ok(Generator { config, textures: Arc::new(textures) })
    }

    /// The configuration.
    pub fn config(&self) -> &SynthConfig {
        &self.config
    }

    /// The texture sources in index order (`--texture` files, then `--texture-dir` files by
    /// name): file, size and a fingerprint of the values, as the manifest records them.
    pub fn texture_sources(&self) -> Vec<serde_json::Value> {
        self.textures
            .iter()
            .map(|t| json!({"file": t.source, "width": t.width, "height": t.height, "fingerprint": format!("{:016x}", t.fingerprint)}))
            .collect()
    }

    /// Makes pair `index` (independent of every other pair).
    pub fn pair(&self, index: u64) -> SynthPair {
        let c = &self.config;
        let seed = rng::pair_seed(c.seed, index);
        let sizes: Vec<(usize, usize)> = self.textures.iter().map(|t| (t.width, t.height)).collect();
        let scene = Scene::generate(c, seed, &sizes);
        let dsm = dsm::Dsm::build(&scene, c.height_px);
        let look = Appearance::new(&scene, self.textures.clone(), c.wind);
        let mut rendered = render::render(&scene, &dsm, &look, c.width_px, c.height_px, c.supersample, c.right_disparity);
        let root = rng::Rng::new(seed);
        // Exposure: one factor for both views (it is the scene's, not a camera's), bringing the
        // mean grey to a drawn level as an aerial camera's automatic exposure would.
        let mean = rendered.radiance[LEFT].iter().map(|&v| v as f64).sum::<f64>() / rendered.radiance[LEFT].len() as f64;
        let target = root.fork("exposure").range(0.3, 0.45);
        let exposure = if mean > 1e-6 { (target / mean).clamp(0.7, 2.5) } else { 1.0 };
        for img in rendered.radiance.iter_mut() {
            img.mapv_inplace(|v| v * exposure as f32);
        }
        let left = radiometry::expose(&rendered.radiance[LEFT], &scene.radiometry[LEFT], c.bits, c.jpeg_quality, &mut root.fork("noise left"));
        let right = radiometry::expose(&rendered.radiance[RIGHT], &scene.radiometry[RIGHT], c.bits, c.jpeg_quality, &mut root.fork("noise right"));
        let mut params = describe(&scene, &dsm, &rendered, index, c);
        params["exposure"] = json!(exposure);
        SynthPair {
            index,
            seed,
            left,
            right,
            disp_left: rendered.disp_left,
            defined: rendered.defined,
            nonocc: rendered.nonocc,
            disp_right: rendered.disp_right,
            radiance: rendered.radiance,
            radiometry: scene.radiometry,
            full_scale: ((1u32 << c.bits) - 1) as u16,
            params,
        }
    }
}

/// The name of pair `index`: six digits or more.
pub fn pair_id(index: u64) -> String {
    format!("{index:06}")
}

fn describe(scene: &Scene, dsm: &dsm::Dsm, r: &render::Rendered, index: u64, c: &SynthConfig) -> serde_json::Value {
    let finite = || r.disp_left.iter().copied().filter(|d| d.is_finite());
    let n = finite().count();
    let (lo, hi) = finite().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), d| (a.min(d), b.max(d)));
    let mean = if n == 0 { f64::NAN } else { finite().map(f64::from).sum::<f64>() / n as f64 };
    let total = r.disp_left.len() as f64;
    let nonocc = r.nonocc.iter().filter(|v| **v).count() as f64;
    let z_max = dsm.z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    json!({
        "format": "deepsim-synth-pair",
        "version": 1,
        "id": pair_id(index),
        "index": index,
        "dataset_seed": c.seed,
        "seed": scene.seed,
        "width": c.width_px,
        "height": c.height_px,
        "convention": CONVENTION,
        "style": scene.style,
        "camera": scene.camera,
        "disparity_from_height": "d = focal_px * base_m / (flying_height_m - z) - shift_px; right pixel x matches left pixel x + d",
        "camera_model": "pinhole across the rows, orthographic along the columns; row y is ground Y = (y - cy_px) * gsd_m in both views",
        "sun": {"left": scene.light[LEFT].sun, "right": scene.light[RIGHT].sun},
        "time_gap": {"strength": c.time_gap, "tint_gain_left": scene.light[LEFT].tint_gain, "tint_gain_right": scene.light[RIGHT].tint_gain},
        "wind": c.wind,
        "terrain": scene.terrain,
        "streets": {
            "grid_rotation": [scene.layout.c, scene.layout.s],
            "p_streets": scene.layout.p_streets.len(),
            "q_streets": scene.layout.q_streets.len(),
        },
        "counts": scene.counts,
        "max_height_m": z_max,
        "radiometry": {"left": scene.radiometry[LEFT], "right": scene.radiometry[RIGHT]},
        "bits": c.bits,
        "jpeg_quality": c.jpeg_quality,
        "textures": scene.textures,
        "disparity": {
            "min": if n == 0 { None } else { Some(lo) },
            "max": if n == 0 { None } else { Some(hi) },
            "mean": if n == 0 { None } else { Some(mean) },
        },
        "fractions": {
            "defined": n as f64 / total,
            "nonocc": nonocc / total,
        },
    })
}
