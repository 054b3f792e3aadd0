//! Similarity backends: what turns a pair of images into matching costs.
//!
//! The design fits three families with one pair of traits:
//! - classical window measures (census, NCC): `prepare` computes per-image transforms
//!   (census bit strings, window means and deviations), `fill_rows` compares them;
//! - learned backends: `prepare` runs the feature extractor once per image and level,
//!   `fill_rows` evaluates cosine or the MLP on each pixel's candidates, in large batches;
//! - run-time plugins: `fill_rows` hands a block of rows and their intervals over the C ABI.
//!
//! Backends only see valid geometry: the pipeline afterwards forces the worst cost where the
//! right pixel `x − d` falls outside the right image or its mask (see [`crate::cost::mask_costs`]),
//! so every backend treats borders and nodata identically.

mod blend;
mod census;
mod learned;
mod mlp;
mod ncc;

pub use blend::Blend;
pub use census::Census;
pub use learned::{Head, Learned, MlpEngine, Tiling, DEFAULT_FEATURE_MARGIN_PX, DEFAULT_FEATURE_TILE_PX};
pub use mlp::SplitMlp;
pub use ncc::Ncc;

use crate::cost::Intervals;
use crate::error::Result;
use ndarray::Array2;
use std::ops::Range;

/// A window size written "WxH" (width × height) or "N" (square); `None` when malformed.
pub fn parse_window(spec: &str) -> Option<(usize, usize)> {
    match spec.split_once(['x', 'X']) {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => spec.trim().parse().ok().map(|n| (n, n)),
    }
}

/// One pyramid level of an image pair, grey values in [0, 1].
#[derive(Debug, Clone, Copy)]
pub struct LevelPair<'a> {
    /// Left image (the reference: disparities are given for its pixels).
    pub left: &'a Array2<f32>,
    /// Right image.
    pub right: &'a Array2<f32>,
    /// Validity of the left pixels.
    pub left_valid: &'a Array2<bool>,
    /// Validity of the right pixels.
    pub right_valid: &'a Array2<bool>,
}

/// A similarity measure, configured but not yet bound to images.
pub trait Similarity: Send + Sync {
    /// A short name for reports ("census 7x7", "ncc 7x7", "msaff+mlp").
    fn name(&self) -> String;

    /// Prepares matching of one image pair at one pyramid level (transforms, features).
    fn prepare<'a>(&'a self, pair: LevelPair<'a>) -> Result<Box<dyn PairCosts + 'a>>;

    /// About how many bytes [`Similarity::prepare`] holds per image pixel (for the memory
    /// budget); the default suits window measures (a transform or two statistics per pixel).
    fn bytes_per_pixel(&self) -> usize {
        16
    }

    /// Bytes [`Similarity::prepare`] holds besides its per-pixel data for images of at most
    /// `width × height` (e.g. a feature extractor's activations on its largest window).
    fn working_bytes(&self, width: usize, height: usize) -> u64 {
        let _ = (width, height);
        0
    }
}

/// Costs of one prepared image pair.
pub trait PairCosts: Send + Sync {
    /// Writes the costs of rows `rows` into `out`, which holds exactly the entries of those
    /// rows as laid out by `intervals` (pixel-major, each pixel's candidates ascending).
    /// Entries whose right pixel falls outside the right image may hold anything.
    fn fill_rows(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) -> Result<()>;
}
