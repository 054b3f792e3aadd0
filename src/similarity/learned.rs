//! Learned similarity (DeepSim-Nets): a feature extractor run once per image and level, then
//! the cosine of two embeddings or a decision MLP on each pixel's candidates.
//!
//! Feature maps are computed on the image padded (reflect) to the model's multiple, tile by
//! tile for large images: tiles are windows of that one padded image whose origins and margins
//! are multiples of the model's stride, so that pooling grids line up with the untiled run and a
//! tile's core is exact as long as the receptive field fits in the margin.

use super::{LevelPair, PairCosts, Similarity};
use crate::cost::{cost_from_unit, Intervals, COST_ONE};
use crate::error::{Error, Result};
use crate::model::ModelBundle;
use crate::runtime::{DecisionNet, FeatureNet, Runtime};
use ndarray::{s, Array2, Array3, ArrayView2};
use std::ops::Range;

/// How two embeddings are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    /// Cost (1 − cos) / 2.
    Cosine,
    /// Cost 1 − MLP(left, right).
    Mlp,
}

/// Tiling of the feature extraction.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Tiling {
    /// Largest tile side run at once (before margins), pixels.
    pub tile_px: usize,
    /// Context added on each side of a tile, pixels (rounded up to the model's multiple).
    pub margin_px: usize,
}

impl Default for Tiling {
    fn default() -> Self {
        Tiling { tile_px: 1024, margin_px: 128 }
    }
}

/// A learned similarity built from a model bundle.
pub struct Learned {
    name: String,
    features: Box<dyn FeatureNet>,
    mlp: Option<Box<dyn DecisionNet>>,
    head: Head,
    pad_multiple: usize,
    embedding_dim: usize,
    tiling: Tiling,
    /// Pairs per decision-network call.
    mlp_batch: usize,
}

impl Learned {
    /// Loads `bundle` with `runtime`. `head` defaults to the MLP when the bundle has one.
    pub fn new(bundle: &ModelBundle, runtime: &dyn Runtime, head: Option<Head>, tiling: Tiling) -> Result<Self> {
        let head = head.unwrap_or(if bundle.mlp.is_some() { Head::Mlp } else { Head::Cosine });
        let mlp = match (head, &bundle.mlp) {
            (Head::Mlp, Some(info)) => Some(runtime.decision_net(&info.path)?),
            (Head::Mlp, None) => {
                return Err(Error::invalid_parameter(format!(
                    "the MLP head needs {}/mlp.onnx, which this bundle lacks; use the cosine head",
                    bundle.dir.display()
                )));
            }
            (Head::Cosine, _) => None,
        };
        if tiling.tile_px < 16 {
            return Err(Error::invalid_parameter(format!("feature tile of {} px: use at least 16", tiling.tile_px)));
        }
        let m = bundle.features.pad_multiple;
        Ok(Learned {
            name: format!("{}+{} ({})", bundle.features.arch, if head == Head::Mlp { "mlp" } else { "cosine" }, runtime.name()),
            features: runtime.feature_net(&bundle.features.path)?,
            mlp,
            head,
            pad_multiple: m,
            embedding_dim: bundle.features.embedding_dim,
            tiling: Tiling { tile_px: tiling.tile_px.div_ceil(m) * m, margin_px: tiling.margin_px.div_ceil(m) * m },
            mlp_batch: 1 << 15,
        })
    }

    /// How embeddings are compared.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The decision network (loaded only with the MLP head).
    pub fn decision_net(&self) -> Option<&dyn DecisionNet> {
        self.mlp.as_deref()
    }

    /// Length of one embedding (C).
    pub fn embedding_dim(&self) -> usize {
        self.embedding_dim
    }

    /// Embeddings of `image` (grey in [0, 1]) as `[H, W, C]`, one contiguous vector per pixel.
    pub fn embed(&self, image: &Array2<f32>) -> Result<Array3<f32>> {
        let (h, w) = image.dim();
        let m = self.pad_multiple;
        let padded = reflect_pad(image, h.div_ceil(m) * m, w.div_ceil(m) * m);
        let (hp, wp) = padded.dim();
        let c = self.embedding_dim;
        let mut out = Array3::<f32>::zeros((h, w, c));
        let (tile, margin) = (self.tiling.tile_px, self.tiling.margin_px);
        for y0 in (0..h).step_by(tile) {
            for x0 in (0..w).step_by(tile) {
                let (y1, x1) = ((y0 + tile).min(h), (x0 + tile).min(w));
                let wy = (y0.saturating_sub(margin), ((y1 + margin).div_ceil(m) * m).min(hp));
                let wx = (x0.saturating_sub(margin), ((x1 + margin).div_ceil(m) * m).min(wp));
                let window = padded.slice(s![wy.0..wy.1, wx.0..wx.1]);
                let features = self.features.run(window)?;
                if features.dim().0 != c {
                    return Err(Error::invalid_input(format!(
                        "the feature extractor returned {} channels but declares embedding_dim {c}",
                        features.dim().0
                    )));
                }
                let core = features.slice(s![.., y0 - wy.0..y1 - wy.0, x0 - wx.0..x1 - wx.0]);
                out.slice_mut(s![y0..y1, x0..x1, ..]).assign(&core.permuted_axes([1, 2, 0]));
            }
        }
        Ok(out)
    }
}

/// `image` extended to `h × w` by mirroring its last rows and columns (edge pixel not repeated).
fn reflect_pad(image: &Array2<f32>, h: usize, w: usize) -> Array2<f32> {
    let (ih, iw) = image.dim();
    let mirror = |i: usize, n: usize| -> usize {
        if n == 1 {
            return 0;
        }
        let period = 2 * (n - 1);
        let k = i % period;
        if k < n { k } else { period - k }
    };
    Array2::from_shape_fn((h, w), |(y, x)| image[(mirror(y, ih), mirror(x, iw))])
}

impl Similarity for Learned {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The embedding (f32 per channel) and the feature extractor's tiles.
    fn bytes_per_pixel(&self) -> usize {
        4 * self.embedding_dim + 32
    }

    fn prepare<'a>(&'a self, pair: LevelPair<'a>) -> Result<Box<dyn PairCosts + 'a>> {
        // The two images are independent: one per worker (tract runs a plan on one thread).
        let (left, right) = rayon::join(|| self.embed(pair.left), || self.embed(pair.right));
        let (left, right) = (left?, right?);
        Ok(match self.head {
            Head::Cosine => Box::new(CosinePair { left: unit_rows(left), right: unit_rows(right) }),
            Head::Mlp => Box::new(MlpPair {
                left,
                right,
                net: self.mlp.as_deref().expect("built with the MLP head"),
                batch: self.mlp_batch,
            }),
        })
    }
}

/// Scales every embedding to unit length (zero vectors stay zero).
fn unit_rows(mut features: Array3<f32>) -> Array3<f32> {
    for mut v in features.lanes_mut(ndarray::Axis(2)) {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 1e-12 {
            v.mapv_inplace(|x| x / norm);
        }
    }
    features
}

/// Visits every candidate of rows `rows` whose right pixel `xr` is inside the right image with
/// `(entry index in out, x, y, xr)`, and writes the cost `visit` returns, if any (a batched
/// backend returns `None` and writes later); entries outside get the worst cost.
fn for_each_candidate(
    rows: Range<usize>,
    intervals: &Intervals,
    right_width: usize,
    out: &mut [u16],
    mut visit: impl FnMut(usize, usize, usize, usize) -> Option<u16>,
) {
    let base = intervals.row_entries(rows.start).start;
    for y in rows {
        for x in 0..intervals.width() {
            let range = intervals.entries(x, y);
            let d0 = intervals.d_min(x, y) as i64;
            for (k, e) in range.enumerate() {
                let xr = x as i64 - d0 - k as i64;
                if (0..right_width as i64).contains(&xr) {
                    if let Some(cost) = visit(e - base, x, y, xr as usize) {
                        out[e - base] = cost;
                    }
                } else {
                    out[e - base] = COST_ONE;
                }
            }
        }
    }
}

struct CosinePair {
    left: Array3<f32>,
    right: Array3<f32>,
}

impl PairCosts for CosinePair {
    fn fill_rows(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) -> Result<()> {
        let c = self.left.dim().2;
        let left = self.left.as_slice().expect("standard layout");
        let right = self.right.as_slice().expect("standard layout");
        let (wl, wr) = (self.left.dim().1, self.right.dim().1);
        for_each_candidate(rows, intervals, wr, out, |_, x, y, xr| {
            let a = &left[(y * wl + x) * c..(y * wl + x + 1) * c];
            let b = &right[(y * wr + xr) * c..(y * wr + xr + 1) * c];
            let cos: f32 = a.iter().zip(b).map(|(p, q)| p * q).sum();
            Some(cost_from_unit((1.0 - cos) * 0.5))
        });
        Ok(())
    }
}

struct MlpPair<'a> {
    left: Array3<f32>,
    right: Array3<f32>,
    net: &'a dyn DecisionNet,
    batch: usize,
}

impl PairCosts for MlpPair<'_> {
    fn fill_rows(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) -> Result<()> {
        let c = self.left.dim().2;
        let left = self.left.as_slice().expect("standard layout");
        let right = self.right.as_slice().expect("standard layout");
        let (wl, wr) = (self.left.dim().1, self.right.dim().1);
        let mut pending: Vec<(usize, usize, usize)> = Vec::new(); // (entry, left pixel, right pixel)
        for_each_candidate(rows, intervals, wr, out, |e, x, y, xr| {
            pending.push((e, y * wl + x, y * wr + xr));
            None
        });
        let mut a = Vec::with_capacity(self.batch.min(pending.len()) * c);
        let mut b = Vec::with_capacity(a.capacity());
        for chunk in pending.chunks(self.batch) {
            a.clear();
            b.clear();
            for &(_, l, r) in chunk {
                a.extend_from_slice(&left[l * c..(l + 1) * c]);
                b.extend_from_slice(&right[r * c..(r + 1) * c]);
            }
            let av = ArrayView2::from_shape((chunk.len(), c), &a).expect("sized above");
            let bv = ArrayView2::from_shape((chunk.len(), c), &b).expect("sized above");
            let similarity = self.net.run(av, bv)?;
            for (&(e, _, _), s) in chunk.iter().zip(similarity.iter()) {
                out[e] = cost_from_unit(1.0 - s);
            }
        }
        Ok(())
    }
}
