//! Learned similarity (DeepSim-Nets): a feature extractor run once per image and level, then
//! the cosine of two embeddings or a decision MLP on each pixel's candidates.
//!
//! Feature maps are computed on the image padded (reflect) to the model's multiple, tile by
//! tile for large images: tiles are windows of that one padded image whose origins and margins
//! are multiples of the model's stride, so that pooling grids line up with the untiled run and a
//! tile's core is exact as long as the receptive field fits in the margin.
//!
//! Embeddings are kept in 16 bits (f16: 10 mantissa bits, far below the models' own fp16
//! weights' error) and widened to f32 one image row at a time while costs are computed.
//!
//! The MLP head runs natively when `mlp.onnx` has the standard pattern (`crate::model::read_mlp`),
//! with its first layer split per image row (`super::mlp`), else through the runtime. With
//! `mlp_top_k = k > 0` it runs only on each pixel's k best cosine candidates; the others get a
//! cost from their cosine mapped above the kept ones' (see [`MlpPair`]), so the kept candidates
//! always rank first and the rest keep their cosine order.

use super::mlp::{MlpScratch, SplitMlp};
use super::{LevelPair, PairCosts, Similarity};
use crate::cost::{COST_ONE, Intervals, cost_from_unit};
use crate::error::{Error, ErrorKind, Result};
use crate::model::ModelBundle;
use crate::runtime::{DecisionNet, FeatureNet, Runtime};
use crate::simd::dot;
use half::f16;
use half::slice::HalfFloatSliceExt;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, s};
use std::ops::Range;
use std::path::PathBuf;

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

/// The feature margin used when neither the user nor the bundle gives one (px).
pub const DEFAULT_FEATURE_MARGIN_PX: usize = 128;

impl Tiling {
    /// Tiles of `tile_px` with the user's margin, else the bundle's measured exact margin
    /// (`deepsim.exact_margin_px`), else [`DEFAULT_FEATURE_MARGIN_PX`].
    pub fn for_model(tile_px: usize, margin_px: Option<usize>, features: &crate::model::ModelInfo) -> Self {
        Tiling { tile_px, margin_px: margin_px.or(features.exact_margin_px).unwrap_or(DEFAULT_FEATURE_MARGIN_PX) }
    }
}

/// The default feature tile side (px, before margins). 512 rather than a whole 1 Mpx image:
/// on toulouse-0051 (1024², msaff-adapted int8, idle 2-core machine, same run) it took 19.3 s
/// and peaked at 0.87 GB, against 20.7 s and 1.32 GB for 1024-px tiles (docs/learned-speed.md):
/// the extractor's activations are held per window, and the 56-px margins cost less than the
/// cache misses of the larger window.
pub const DEFAULT_FEATURE_TILE_PX: usize = 512;

impl Default for Tiling {
    fn default() -> Self {
        Tiling {
            tile_px: DEFAULT_FEATURE_TILE_PX,
            margin_px: DEFAULT_FEATURE_MARGIN_PX,
        }
    }
}

/// How the MLP head is evaluated (for reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MlpEngine {
    /// Natively, first layer split per row (the graph has the standard pattern).
    Split,
    /// The ONNX file through the runtime.
    Onnx,
}

/// Activations a feature extractor holds per input pixel and embedding channel, bytes: msaff
/// (64 channels) under ONNX Runtime peaks at about 1.6 kB per pixel of the window it runs on.
const ACTIVATION_BYTES_PER_PX_PER_CHANNEL: usize = 26;

/// A learned similarity built from a model bundle.
pub struct Learned {
    name: String,
    features: Box<dyn FeatureNet>,
    features_path: PathBuf,
    mlp: Option<Box<dyn DecisionNet>>,
    mlp_path: Option<PathBuf>,
    split: Option<SplitMlp>,
    head: Head,
    pad_multiple: usize,
    embedding_dim: usize,
    tiling: Tiling,
    /// Pairs per decision-network call.
    mlp_batch: usize,
    /// The MLP only on each pixel's k best cosine candidates (0: on all).
    mlp_top_k: usize,
}

impl Learned {
    /// Loads `bundle` with `runtime`. `head` defaults to the MLP when the bundle has one.
    pub fn new(
        bundle: &ModelBundle,
        runtime: &dyn Runtime,
        head: Option<Head>,
        tiling: Tiling,
    ) -> Result<Self> {
        let head = head.unwrap_or(if bundle.mlp.is_some() {
            Head::Mlp
        } else {
            Head::Cosine
        });
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
        let split = match (&mlp, &bundle.mlp) {
            (Some(_), Some(info)) => {
                SplitMlp::from_file(&info.path, bundle.features.embedding_dim)?
            }
            _ => None,
        };
        if tiling.tile_px < 16 {
            return Err(Error::invalid_parameter(format!(
                "feature tile of {} px: use at least 16",
                tiling.tile_px
            )));
        }
        let m = bundle.features.pad_multiple;
        Ok(Learned {
            name: format!(
                "{}+{} ({})",
                bundle.features.arch,
                if head == Head::Mlp { "mlp" } else { "cosine" },
                runtime.name()
            ),
            features: runtime.feature_net(&bundle.features.path)?,
            features_path: bundle.features.path.clone(),
            mlp,
            mlp_path: bundle.mlp.as_ref().map(|m| m.path.clone()),
            split,
            head,
            pad_multiple: m,
            embedding_dim: bundle.features.embedding_dim,
            tiling: Tiling {
                tile_px: tiling.tile_px.div_ceil(m) * m,
                margin_px: tiling.margin_px.div_ceil(m) * m,
            },
            mlp_batch: 1 << 15,
            mlp_top_k: 0,
        })
    }

    /// Shrinks the feature tiles so that the extractor's activations on one window (both
    /// images' when they are embedded side by side) stay within `bytes`; the margins are kept
    /// (they make tiles exact), so small budgets cost more compute, never accuracy. Tiles do
    /// not go below 32 px (plus margins): a budget too small for that is overrun, and said so
    /// by [`Learned::working_bytes`] in the tile accounting.
    pub fn with_working_memory(mut self, bytes: u64) -> Self {
        let m = self.pad_multiple;
        let per_window_px = self.activation_bytes_per_px() as u64;
        let side = ((bytes / per_window_px.max(1)) as f64).sqrt() as usize;
        let fitting = side.saturating_sub(2 * self.tiling.margin_px) / m * m;
        let floor = 32usize.div_ceil(m) * m;
        self.tiling.tile_px = self.tiling.tile_px.min(fitting.max(floor));
        self
    }

    /// The feature tiling in use (after [`Learned::with_working_memory`]).
    pub fn tiling(&self) -> Tiling {
        self.tiling
    }

    /// Activation bytes per pixel of a feature window, for both images when they are embedded
    /// at the same time.
    fn activation_bytes_per_px(&self) -> usize {
        let one = ACTIVATION_BYTES_PER_PX_PER_CHANNEL * self.embedding_dim;
        if self.features.uses_all_cores() { one } else { 2 * one }
    }

    /// The MLP head only on each pixel's `k` best cosine candidates (0, the default: on all).
    pub fn with_mlp_top_k(mut self, k: usize) -> Self {
        self.mlp_top_k = k;
        self
    }

    /// Runs the MLP through the runtime even when it could run natively (for comparisons).
    pub fn with_onnx_mlp(mut self) -> Self {
        self.split = None;
        self
    }

    /// How the MLP head is evaluated (`None` with the cosine head).
    pub fn mlp_engine(&self) -> Option<MlpEngine> {
        self.mlp.as_ref().map(|_| {
            if self.split.is_some() {
                MlpEngine::Split
            } else {
                MlpEngine::Onnx
            }
        })
    }

    /// Multiply-adds per candidate of the MLP head as evaluated (`None` with the cosine head or
    /// when the MLP runs through the runtime).
    pub fn mlp_macs_per_candidate(&self) -> Option<usize> {
        self.split.as_ref().map(SplitMlp::macs_per_candidate)
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
        let mut out = Array3::<f32>::zeros((h, w, self.embedding_dim));
        self.embed_tiles(image, |ys, xs, core| {
            out.slice_mut(s![ys, xs, ..])
                .assign(&core.permuted_axes([1, 2, 0]));
            Ok(())
        })?;
        Ok(out)
    }

    /// Embeddings of `image` in 16 bits; an error naming the model when one is not finite.
    fn embed_f16(&self, image: &Array2<f32>) -> Result<Embeddings> {
        let (h, w) = image.dim();
        let c = self.embedding_dim;
        let mut data = vec![f16::ZERO; h * w * c];
        self.embed_tiles(image, |ys, xs, core| {
            for (ty, y) in ys.clone().enumerate() {
                for (tx, x) in xs.clone().enumerate() {
                    let v = core.slice(s![.., ty, tx]);
                    let dst = &mut data[(y * w + x) * c..(y * w + x + 1) * c];
                    for (d, &value) in dst.iter_mut().zip(v.iter()) {
                        if !value.is_finite() {
                            return Err(Error::new(
                                ErrorKind::Backend,
                                format!(
                                    "{}: the feature extractor returned {value} at pixel ({x}, {y}); the model is \
                                     broken (re-export it, or check its card's parity report)",
                                    self.features_path.display()
                                ),
                            ));
                        }
                        *d = f16::from_f32(value);
                    }
                }
            }
            Ok(())
        })?;
        Ok(Embeddings {
            width: w,
            dim: c,
            data,
        })
    }

    /// Runs the feature extractor tile by tile and hands each tile's core `[C, h, w]` with its
    /// rows and columns in `image` to `store`.
    fn embed_tiles(
        &self,
        image: &Array2<f32>,
        mut store: impl FnMut(Range<usize>, Range<usize>, ArrayView3<'_, f32>) -> Result<()>,
    ) -> Result<()> {
        let (h, w) = image.dim();
        let m = self.pad_multiple;
        let padded = reflect_pad(image, h.div_ceil(m) * m, w.div_ceil(m) * m);
        let (hp, wp) = padded.dim();
        let c = self.embedding_dim;
        let (tile, margin) = (self.tiling.tile_px, self.tiling.margin_px);
        for y0 in (0..h).step_by(tile) {
            for x0 in (0..w).step_by(tile) {
                let (y1, x1) = ((y0 + tile).min(h), (x0 + tile).min(w));
                let wy = (
                    y0.saturating_sub(margin),
                    ((y1 + margin).div_ceil(m) * m).min(hp),
                );
                let wx = (
                    x0.saturating_sub(margin),
                    ((x1 + margin).div_ceil(m) * m).min(wp),
                );
                let window = padded.slice(s![wy.0..wy.1, wx.0..wx.1]);
                let features = self.features.run(window)?;
                if features.dim().0 != c {
                    return Err(Error::invalid_input(format!(
                        "{}: the feature extractor returned {} channels but declares embedding_dim {c}",
                        self.features_path.display(),
                        features.dim().0
                    )));
                }
                let core = features.slice(s![.., y0 - wy.0..y1 - wy.0, x0 - wx.0..x1 - wx.0]);
                store(y0..y1, x0..x1, core)?;
            }
        }
        Ok(())
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

    /// The embedding (f16 per channel) and the rows being compared.
    fn bytes_per_pixel(&self) -> usize {
        2 * self.embedding_dim + 32
    }

    /// The feature extractor's activations on its largest window (tile plus margins, within
    /// the padded image; both images' when they are embedded side by side).
    fn working_bytes(&self, width: usize, height: usize) -> u64 {
        let side = self.tiling.tile_px + 2 * self.tiling.margin_px;
        let m = self.pad_multiple;
        let (w, h) = (side.min(width.div_ceil(m) * m), side.min(height.div_ceil(m) * m));
        (w * h) as u64 * self.activation_bytes_per_px() as u64
    }

    fn prepare<'a>(&'a self, pair: LevelPair<'a>) -> Result<Box<dyn PairCosts + 'a>> {
        // The two images are independent: one per worker when the runtime runs a plan on one
        // thread (tract), one after the other when a call uses every core (half the memory).
        let (left, right) = if self.features.uses_all_cores() {
            (self.embed_f16(pair.left), self.embed_f16(pair.right))
        } else {
            rayon::join(|| self.embed_f16(pair.left), || self.embed_f16(pair.right))
        };
        let (left, right) = (left?, right?);
        Ok(match self.head {
            Head::Cosine => Box::new(CosinePair {
                left: left.into_unit(),
                right: right.into_unit(),
            }),
            Head::Mlp => {
                let net = match &self.split {
                    Some(split) => MlpNet::Split(split),
                    None => MlpNet::Onnx(
                        self.mlp.as_deref().expect("built with the MLP head"),
                        self.mlp_batch,
                    ),
                };
                let path = self.mlp_path.as_deref().expect("built with the MLP head");
                Box::new(MlpPair {
                    left,
                    right,
                    net,
                    top_k: self.mlp_top_k,
                    path,
                })
            }
        })
    }
}

/// Embeddings of one image, `[H, W, C]` in 16 bits.
struct Embeddings {
    width: usize,
    dim: usize,
    data: Vec<f16>,
}

impl Embeddings {
    /// Row `y` widened to f32 `[W, C]` into `out`.
    fn row_f32(&self, y: usize, out: &mut Vec<f32>) {
        let n = self.width * self.dim;
        out.resize(n, 0.0);
        self.data[y * n..(y + 1) * n].convert_to_f32_slice(out);
    }

    /// Every embedding scaled to unit length (zero vectors stay zero).
    fn into_unit(mut self) -> Self {
        let mut v = vec![0.0f32; self.dim];
        for chunk in self.data.chunks_exact_mut(self.dim) {
            chunk.convert_to_f32_slice(&mut v);
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 1e-12 {
                v.iter_mut().for_each(|x| *x /= norm);
                chunk.convert_from_f32_slice(&v);
            }
        }
        self
    }
}

/// Each embedding of `row` (`[n, dim]`) scaled to unit length, in place; returns nothing.
fn normalise_rows(row: &mut [f32], dim: usize) {
    for v in row.chunks_exact_mut(dim) {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 1e-12 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
    }
}

/// Per-thread rows widened to f32.
#[derive(Default)]
struct RowBuffers {
    left: Vec<f32>,
    right: Vec<f32>,
}

struct CosinePair {
    left: Embeddings,
    right: Embeddings,
}

impl PairCosts for CosinePair {
    fn fill_rows(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) -> Result<()> {
        let c = self.left.dim;
        let wr = self.right.width;
        let base = intervals.row_entries(rows.start).start;
        let mut buf = RowBuffers::default();
        for y in rows {
            self.left.row_f32(y, &mut buf.left);
            self.right.row_f32(y, &mut buf.right);
            for x in 0..intervals.width() {
                let entries = intervals.entries(x, y);
                let inside = intervals.inside_right(x, y, wr);
                let pixel = &mut out[entries.start - base..entries.end - base];
                pixel[..inside.start].fill(COST_ONE);
                pixel[inside.end..].fill(COST_ONE);
                let a = &buf.left[x * c..(x + 1) * c];
                let first_xr = x as i64 - intervals.d_min(x, y) as i64;
                for k in inside {
                    let xr = (first_xr - k as i64) as usize;
                    let cos = dot(a, &buf.right[xr * c..(xr + 1) * c]);
                    pixel[k] = cost_from_unit((1.0 - cos) * 0.5);
                }
            }
        }
        Ok(())
    }
}

/// How the MLP is run.
enum MlpNet<'a> {
    /// Natively, first layer split.
    Split(&'a SplitMlp),
    /// Through the runtime, this many pairs per call.
    Onnx(&'a dyn DecisionNet, usize),
}

/// The MLP head on a prepared pair. With `top_k > 0`, a pixel with more than `top_k` candidates
/// inside the right image gets the MLP on its `top_k` best cosine candidates only; each other
/// candidate, of cosine cost `q` (≥ `q_k`, the worst kept one's), gets
/// `m + (1 − m)·(q − q_k)/(1 − q_k)` where `m` is the worst MLP cost among the kept ones: above
/// every kept candidate, in cosine order.
struct MlpPair<'a> {
    left: Embeddings,
    right: Embeddings,
    net: MlpNet<'a>,
    top_k: usize,
    /// `mlp.onnx`, for errors.
    path: &'a std::path::Path,
}

/// Candidates of one row, chosen for the MLP or pruned.
#[derive(Default)]
struct RowCandidates {
    /// (entry index in `out`, left x, right x) of the candidates the MLP evaluates.
    kept: Vec<(usize, u32, u32)>,
    /// (entry index in `out`, cosine cost) of the pruned ones.
    pruned: Vec<(usize, f32)>,
    /// Per pixel with pruned candidates: (its kept range, its pruned range, q_k).
    pixels: Vec<(Range<usize>, Range<usize>, f32)>,
    /// (k, cosine cost) of the pixel being sorted.
    scratch: Vec<(usize, f32)>,
}

/// Pairs per native MLP batch: three `[batch, 384]` f32 matrices stay within L2.
const SPLIT_BATCH: usize = 256;

impl MlpPair<'_> {
    /// Splits the candidates of row `y` into kept and pruned; `left`/`right` are the rows in
    /// f32; `out` starts at entry `base`.
    fn choose(
        &self,
        y: usize,
        intervals: &Intervals,
        base: usize,
        rows: &mut RowBuffers,
        out: &mut [u16],
        cand: &mut RowCandidates,
    ) {
        let c = self.left.dim;
        let wr = self.right.width;
        cand.kept.clear();
        cand.pruned.clear();
        cand.pixels.clear();
        let normalised = if self.top_k > 0 {
            // Unit copies for the cosine ranking, after the raw rows.
            let (l, r) = (rows.left.len(), rows.right.len());
            rows.left.extend_from_within(..l);
            rows.right.extend_from_within(..r);
            normalise_rows(&mut rows.left[l..], c);
            normalise_rows(&mut rows.right[r..], c);
            Some((l, r))
        } else {
            None
        };
        for x in 0..intervals.width() {
            let entries = intervals.entries(x, y);
            let inside = intervals.inside_right(x, y, wr);
            let pixel = &mut out[entries.start - base..entries.end - base];
            pixel[..inside.start].fill(COST_ONE);
            pixel[inside.end..].fill(COST_ONE);
            let first_xr = x as i64 - intervals.d_min(x, y) as i64;
            let e0 = entries.start - base;
            let xr_of = |k: usize| (first_xr - k as i64) as u32;
            match normalised {
                Some((l, r)) if inside.len() > self.top_k => {
                    let a = &rows.left[l + x * c..l + (x + 1) * c];
                    cand.scratch.clear();
                    for k in inside {
                        let xr = xr_of(k) as usize;
                        let cos = dot(a, &rows.right[r + xr * c..r + (xr + 1) * c]);
                        cand.scratch.push((k, (1.0 - cos) * 0.5));
                    }
                    let by_cost = |p: &(usize, f32), q: &(usize, f32)| p.1.total_cmp(&q.1);
                    cand.scratch.select_nth_unstable_by(self.top_k - 1, by_cost);
                    let (best, rest) = cand.scratch.split_at(self.top_k);
                    let q_k = best.iter().fold(0.0f32, |m, p| m.max(p.1));
                    let kept0 = cand.kept.len();
                    cand.kept
                        .extend(best.iter().map(|&(k, _)| (e0 + k, x as u32, xr_of(k))));
                    let pruned0 = cand.pruned.len();
                    cand.pruned.extend(rest.iter().map(|&(k, q)| (e0 + k, q)));
                    cand.pixels
                        .push((kept0..cand.kept.len(), pruned0..cand.pruned.len(), q_k));
                }
                _ => cand
                    .kept
                    .extend(inside.map(|k| (e0 + k, x as u32, xr_of(k)))),
            }
        }
    }

    /// The error for an MLP output outside [0, 1].
    fn bad_output(&self, s: f32) -> Error {
        Error::new(
            ErrorKind::Backend,
            format!(
                "{}: the decision network returned {s}, outside [0, 1] (the contract requires a sigmoid at the \
                 end); the model is broken: re-export it",
                self.path.display()
            ),
        )
    }
}

impl PairCosts for MlpPair<'_> {
    fn fill_rows(&self, rows: Range<usize>, intervals: &Intervals, out: &mut [u16]) -> Result<()> {
        let c = self.left.dim;
        let base = intervals.row_entries(rows.start).start;
        let mut buf = RowBuffers::default();
        let mut cand = RowCandidates::default();
        let (mut proj_left, mut proj_right) = (Vec::new(), Vec::new());
        let mut scratch = MlpScratch::default();
        let (mut pairs, mut similarity) = (Vec::new(), Vec::new());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for y in rows {
            self.left.row_f32(y, &mut buf.left);
            self.right.row_f32(y, &mut buf.right);
            let (wl, wr) = (self.left.width, self.right.width);
            self.choose(y, intervals, base, &mut buf, out, &mut cand);
            match self.net {
                MlpNet::Split(net) => {
                    net.project_left(&buf.left, wl, &mut proj_left);
                    net.project_right(&buf.right, wr, &mut proj_right);
                    for chunk in cand.kept.chunks(SPLIT_BATCH) {
                        pairs.clear();
                        pairs.extend(chunk.iter().map(|&(_, xl, xr)| (xl, xr)));
                        similarity.resize(chunk.len(), 0.0);
                        net.similarities(
                            &proj_left,
                            &proj_right,
                            &pairs,
                            &mut scratch,
                            &mut similarity,
                        );
                        for (&(e, _, _), &s) in chunk.iter().zip(&similarity) {
                            if !(0.0..=1.0).contains(&s) {
                                return Err(self.bad_output(s));
                            }
                            out[e] = cost_from_unit(1.0 - s);
                        }
                    }
                }
                MlpNet::Onnx(net, batch) => {
                    for chunk in cand.kept.chunks(batch) {
                        a.clear();
                        b.clear();
                        for &(_, xl, xr) in chunk {
                            a.extend_from_slice(&buf.left[xl as usize * c..(xl as usize + 1) * c]);
                            b.extend_from_slice(&buf.right[xr as usize * c..(xr as usize + 1) * c]);
                        }
                        let av = ArrayView2::from_shape((chunk.len(), c), &a).expect("sized above");
                        let bv = ArrayView2::from_shape((chunk.len(), c), &b).expect("sized above");
                        let s = net.run(av, bv)?;
                        for (&(e, _, _), &s) in chunk.iter().zip(s.iter()) {
                            // A little slack: a runtime may round a saturated sigmoid past 1.
                            if !(-1e-6..=1.0 + 1e-6).contains(&s) {
                                return Err(self.bad_output(s));
                            }
                            out[e] = cost_from_unit(1.0 - s);
                        }
                    }
                }
            }
            for (kept, pruned, q_k) in &cand.pixels {
                let m = cand.kept[kept.clone()]
                    .iter()
                    .map(|&(e, _, _)| out[e])
                    .max()
                    .unwrap_or(0) as f32
                    / COST_ONE as f32;
                let span = (1.0 - q_k).max(1e-6);
                for &(e, q) in &cand.pruned[pruned.clone()] {
                    out[e] = cost_from_unit(m + (1.0 - m) * ((q - q_k) / span).clamp(0.0, 1.0));
                }
            }
        }
        Ok(())
    }
}
