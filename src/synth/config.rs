//! The generator's options, checked in full before anything is written.
//!
//! Everything a dataset depends on lives in [`SynthConfig`], which is serialised verbatim
//! into the manifest: the manifest and a seed are enough to regenerate every byte. Options
//! that vary per pair are given as a [`Span`] (`0.15` or `0.1:0.3`) and drawn per pair.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Default `--noise` (8-bit grey levels at mid-grey): the real aerial pairs of
/// `shared/data/aerial-unlabeled` measure 0.34 to 0.98 (docs/synth/measure_realism.py).
pub const DEFAULT_NOISE_DN: f64 = 0.8;
/// Largest `--time-gap`.
pub const MAX_TIME_GAP: f64 = 3.0;
/// Default `--blur` (Gaussian σ, px).
pub const DEFAULT_BLUR_PX: f64 = 0.6;

/// A value or a range `lo:hi` drawn uniformly per pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// Lower bound (inclusive).
    pub lo: f64,
    /// Upper bound; equal to `lo` for a fixed value.
    pub hi: f64,
}

impl Span {
    /// A fixed value.
    pub fn fixed(v: f64) -> Self {
        Span { lo: v, hi: v }
    }

    /// Parses `V` or `LO:HI`; `what` names the option in error messages.
    pub fn parse(text: &str, what: &str) -> Result<Span> {
        let num = |s: &str| {
            s.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                Error::invalid_parameter(format!("{what} '{text}': expected a number or a range LO:HI, e.g. 0.15 or 0.1:0.3"))
            })
        };
        let span = match text.split_once(':') {
            Some((a, b)) => Span { lo: num(a)?, hi: num(b)? },
            None => Span::fixed(num(text)?),
        };
        if span.lo > span.hi {
            return Err(Error::invalid_parameter(format!("{what} '{text}': the range is reversed; write {}:{}", span.hi, span.lo)));
        }
        Ok(span)
    }

    fn check(&self, what: &str, min: f64, max: f64, hint: &str) -> Result<()> {
        if self.lo < min || self.hi > max {
            return Err(Error::invalid_parameter(format!(
                "{what} {}: must lie within [{min}, {max}] ({hint})",
                self.display()
            )));
        }
        Ok(())
    }

    /// `V` or `LO:HI`.
    pub fn display(&self) -> String {
        if self.lo == self.hi { format!("{}", self.lo) } else { format!("{}:{}", self.lo, self.hi) }
    }
}

/// The kind of settlement a pair shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Dense blocks: courtyard and L-shaped buildings, mostly flat roofs, few trees.
    Urban,
    /// Detached houses with pitched roofs, gardens, trees, walls, fields.
    Periurban,
    /// Each pair draws one of the two.
    Mixed,
}

/// Every option of the generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Dataset seed; pair `i` uses a seed derived from (seed, i).
    pub seed: u64,
    /// Index of the first pair written.
    pub start_index: u64,
    /// Number of pairs written.
    pub count: u64,
    /// Image width (px).
    pub width_px: usize,
    /// Image height (px).
    pub height_px: usize,
    /// Ground sampling distance at the lowest terrain (m per pixel).
    pub gsd_m: Span,
    /// Base-to-height ratio B/H of the two views.
    pub base_to_height: Span,
    /// Tangent of the look angle at the middle of the pair (0: the pair straddles the nadir).
    /// Larger values show more facade.
    pub look_tan: Span,
    /// Focal length (px) of the frame cameras the pair is cut from.
    pub focal_px: f64,
    /// Disparity (px) of the lowest possible terrain: every disparity is at least this.
    pub min_disparity_px: f64,
    /// Settlement style.
    pub style: Style,
    /// Output sample depth: 8 or 16 bits.
    pub bits: u8,
    /// Sensor noise, standard deviation at mid-grey in 8-bit grey levels (0 = none).
    pub noise_dn: f64,
    /// Optical blur (Gaussian σ, px) of the views (0 = none).
    pub blur_px: f64,
    /// Strength of the per-view radiometric differences (gain, offset, gamma, blur):
    /// 0 = identical camera models, 1 = typical, up to 3.
    pub radiometric: f64,
    /// JPEG-like 8 × 8 DCT quantisation of both views at this quality (1–100), if any.
    pub jpeg_quality: Option<u8>,
    /// Also write the right image's disparity.
    pub right_disparity: bool,
    /// Also write `preview.png` (left | right | disparity) per pair.
    pub previews: bool,
    /// Rays per pixel along the rows (anti-aliasing), 1–4.
    pub supersample: usize,
    /// Grey texture images used, at random, in place of some procedural materials.
    pub textures: Vec<PathBuf>,
    /// A folder whose PNG/TIFF images (e.g. the left images of real pairs) all become texture
    /// sources: random crops of them (position, scale, quarter turns) texture ground, flat
    /// roofs and tree crowns, in grey.
    #[serde(default)]
    pub texture_dir: Option<PathBuf>,
    /// Strength of the differences of two views taken at different times: the sun moves
    /// (cast shadows differ), exposure and white balance change. 0 = same instant, 1 =
    /// typical (sun ±2° in azimuth, ±1° in elevation per view), up to 3.
    #[serde(default)]
    pub time_gap: f64,
    /// Strength of the wind in tree crowns: their leaf texture is displaced differently in
    /// the two views (the crown geometry and the ground truth are not). 0 = rigid, 1 = typical
    /// (displacements up to ~0.25 m), up to 3.
    #[serde(default)]
    pub wind: f64,
}

impl SynthConfig {
    /// Defaults for a `width × height` dataset with `seed`.
    pub fn new(width_px: usize, height_px: usize, seed: u64) -> Self {
        SynthConfig {
            seed,
            start_index: 0,
            count: 1,
            width_px,
            height_px,
            gsd_m: Span { lo: 0.1, hi: 0.25 },
            base_to_height: Span { lo: 0.2, hi: 0.4 },
            look_tan: Span { lo: -0.2, hi: 0.2 },
            focal_px: 12000.0,
            min_disparity_px: 16.0,
            style: Style::Mixed,
            bits: 8,
            noise_dn: DEFAULT_NOISE_DN,
            blur_px: DEFAULT_BLUR_PX,
            radiometric: 1.0,
            jpeg_quality: None,
            right_disparity: false,
            previews: false,
            supersample: 2,
            textures: Vec::new(),
            texture_dir: None,
            time_gap: 1.0,
            wind: 1.0,
        }
    }

    /// Checks every option; the message names the option, its value and the allowed values.
    pub fn validate(&self) -> Result<()> {
        let p = Error::invalid_parameter;
        for (name, v) in [("width", self.width_px), ("height", self.height_px)] {
            if !(32..=16384).contains(&v) {
                return Err(p(format!("--size: {name} {v} px is out of range; use 32 to 16384 px")));
            }
        }
        if self.count == 0 {
            return Err(p("--count 0: nothing to generate; give at least 1".to_string()));
        }
        if self.start_index.checked_add(self.count).is_none_or(|end| end > 100_000_000) {
            return Err(p(format!(
                "--start-index {} with --count {}: pair indices must stay below 100000000",
                self.start_index, self.count
            )));
        }
        self.gsd_m.check("--gsd", 0.02, 5.0, "metres per pixel, e.g. 0.15")?;
        self.base_to_height.check("--base-to-height", 0.02, 1.5, "aerial pairs have 0.2 to 0.6")?;
        self.look_tan.check("--look-tan", -0.6, 0.6, "tangent of the look angle; 0 is nadir")?;
        if !(self.focal_px.is_finite() && self.focal_px >= self.width_px.max(self.height_px) as f64 && self.focal_px <= 1e6) {
            return Err(p(format!(
                "--focal-px {}: must be at least the image size ({} px) and at most 1e6",
                self.focal_px,
                self.width_px.max(self.height_px)
            )));
        }
        let half_width = self.width_px as f64 / 2.0;
        if !(self.min_disparity_px.is_finite() && self.min_disparity_px.abs() < half_width) {
            return Err(p(format!(
                "--min-disparity {}: must lie within ±{half_width} px (half the width) so that the views overlap",
                self.min_disparity_px
            )));
        }
        if self.look_tan.lo.abs().max(self.look_tan.hi.abs()) + self.base_to_height.hi / 2.0 > 0.8 {
            return Err(p(format!(
                "--look-tan {} with --base-to-height {}: the outer view would look more than 38° off nadir; reduce either",
                self.look_tan.display(),
                self.base_to_height.display()
            )));
        }
        if self.bits != 8 && self.bits != 16 {
            return Err(p(format!("--bits {}: use 8 or 16", self.bits)));
        }
        if !(0.0..=50.0).contains(&self.noise_dn) {
            return Err(p(format!("--noise {}: use 0 (none) to 50 grey levels", self.noise_dn)));
        }
        if !(0.0..=3.0).contains(&self.blur_px) {
            return Err(p(format!("--blur {}: use 0 (none) to 3 px", self.blur_px)));
        }
        if !(0.0..=3.0).contains(&self.radiometric) {
            return Err(p(format!("--radiometric {}: use 0 (identical views) to 3", self.radiometric)));
        }
        if let Some(q) = self.jpeg_quality
            && !(1..=100).contains(&q)
        {
            return Err(p(format!("--jpeg-quality {q}: use 1 (worst) to 100 (best)")));
        }
        if !(0.0..=MAX_TIME_GAP).contains(&self.time_gap) {
            return Err(p(format!("--time-gap {}: use 0 (views taken at the same instant) to {MAX_TIME_GAP}", self.time_gap)));
        }
        if !(0.0..=3.0).contains(&self.wind) {
            return Err(p(format!("--wind {}: use 0 (rigid tree crowns) to 3", self.wind)));
        }
        if !(1..=4).contains(&self.supersample) {
            return Err(p(format!("--supersample {}: use 1 to 4 rays per pixel", self.supersample)));
        }
        Ok(())
    }
}

/// Parses `--size`: `W` (square) or `WxH`.
pub fn parse_size(text: &str) -> Result<(usize, usize)> {
    let bad = || Error::invalid_parameter(format!("--size '{text}': expected W or WxH in pixels, e.g. 1024 or 640x480"));
    let num = |s: &str| s.trim().parse::<usize>().map_err(|_| bad());
    match text.split_once(['x', 'X']) {
        Some((w, h)) => Ok((num(w)?, num(h)?)),
        None => {
            let n = num(text)?;
            Ok((n, n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_sizes_parse() {
        assert_eq!(Span::parse("0.2", "--gsd").unwrap(), Span::fixed(0.2));
        assert_eq!(Span::parse("0.1:0.3", "--gsd").unwrap(), Span { lo: 0.1, hi: 0.3 });
        assert!(Span::parse("0.3:0.1", "--gsd").unwrap_err().message().contains("0.1:0.3"));
        assert!(Span::parse("abc", "--gsd").is_err());
        assert_eq!(parse_size("640x480").unwrap(), (640, 480));
        assert_eq!(parse_size("256").unwrap(), (256, 256));
        assert!(parse_size("12y4").is_err());
        assert!(SynthConfig::new(256, 192, 1).validate().is_ok());
    }
}
