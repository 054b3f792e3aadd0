//! `MVCNNCorrel`: the learned similarity on the two crops' feature maps.
//!
//! Features are computed once per crop. They are stored as unit vectors plus their norms, so
//! that the cosine head is a single dot product per candidate at whole-pixel positions (the
//! common `StepZ = 1`), and the raw features, which the MLP and sub-pixel sampling need, are
//! `norm × unit`. At a sub-pixel position the image-2 feature is the bilinear mix
//! `f = (1 − t)·f₀ + t·f₁` of two columns; its cosine with a unit vector `a` follows from two dot
//! products that neighbouring candidates share, `a·f = (1 − t)·n₀·(a·u₀) + t·n₁·(a·u₁)` and
//! `|f|² = (1 − t)²n₀² + t²n₁² + 2t(1 − t)·n₀n₁·(u₀·u₁)`, with `u₀·u₁` precomputed per column.

use super::cube::scaled;
use super::{split_rows, Crop, Geometry, Layers, Sample, COST_SCALE};
use crate::error::{Error, Result};
use crate::runtime::DecisionNet;
use crate::simd::dot;
use crate::similarity::{Head, Learned};
use ndarray::{Array2, Array3, ArrayView2};
use rayon::prelude::*;

/// Pairs per decision-network call.
const MLP_BATCH: usize = 1 << 15;

/// The embeddings of one crop, ready for comparison.
pub struct FeatureMap {
    /// Unit-length embeddings `[H, W, C]` (zero where the embedding is zero).
    unit: Array3<f32>,
    /// Length of each embedding `[H, W]`.
    norm: Array2<f32>,
    /// `u(x)·u(x + 1)` for each pixel (0 in the last column) `[H, W]`.
    next_cos: Array2<f32>,
    /// Pixels whose embedding may be used (valid image pixel, finite embedding).
    valid: Array2<bool>,
}

impl FeatureMap {
    /// Runs `model`'s feature extractor on `crop` (values in [0, 1]).
    pub fn new(model: &Learned, crop: &Crop) -> Result<Self> {
        Ok(Self::from_raw(model.embed(&crop.values)?, &crop.valid))
    }

    /// Wraps raw embeddings `[H, W, C]` and the validity of their pixels `[H, W]`.
    pub fn from_raw(mut features: Array3<f32>, valid: &Array2<bool>) -> Self {
        let (h, w, c) = features.dim();
        assert_eq!(valid.dim(), (h, w), "one validity flag per embedding");
        let mut norm = Array2::<f32>::zeros((h, w));
        let mut valid = valid.clone();
        let data = features.as_slice_mut().expect("standard layout");
        for (p, v) in data.chunks_exact_mut(c).enumerate() {
            let n = dot(v, v).sqrt();
            if !n.is_finite() {
                valid[(p / w, p % w)] = false;
                v.fill(0.0);
                continue;
            }
            norm[(p / w, p % w)] = n;
            if n > 1e-12 {
                v.iter_mut().for_each(|x| *x /= n);
            }
        }
        let mut next_cos = Array2::<f32>::zeros((h, w));
        for y in 0..h {
            for x in 0..w.saturating_sub(1) {
                let p = (y * w + x) * c;
                next_cos[(y, x)] = dot(&data[p..p + c], &data[p + c..p + 2 * c]);
            }
        }
        FeatureMap { unit: features, norm, next_cos, valid }
    }

    fn dims(&self) -> (usize, usize, usize) {
        self.unit.dim()
    }

    #[inline]
    fn unit_at(&self, x: usize, y: usize) -> &[f32] {
        let c = self.unit.dim().2;
        let p = (y * self.unit.dim().1 + x) * c;
        &self.unit.as_slice().expect("standard layout")[p..p + c]
    }

    /// Whether `sample` of row `y` uses valid pixels only.
    #[inline]
    fn sample_valid(&self, s: Sample, y: usize) -> bool {
        self.valid[(y, s.x0)] && (s.t == 0.0 || self.valid[(y, s.x0 + 1)])
    }

    /// The raw (not normalised) embedding at `sample` of row `y`, appended to `out`.
    fn push_raw(&self, s: Sample, y: usize, out: &mut Vec<f32>) {
        let n0 = self.norm[(y, s.x0)];
        if s.t == 0.0 {
            out.extend(self.unit_at(s.x0, y).iter().map(|u| u * n0));
        } else {
            let (w0, w1) = ((1.0 - s.t) * n0, s.t * self.norm[(y, s.x0 + 1)]);
            out.extend(self.unit_at(s.x0, y).iter().zip(self.unit_at(s.x0 + 1, y)).map(|(a, b)| a * w0 + b * w1));
        }
    }
}

/// Fills the cube from the two feature maps with the cosine head or the decision network.
pub fn fill_learned(
    layers: &Layers,
    geo: &Geometry,
    left: &FeatureMap,
    right: &FeatureMap,
    head: Head,
    net: Option<&dyn DecisionNet>,
) -> Result<Vec<u16>> {
    if left.dims().2 != right.dims().2 {
        return Err(Error::invalid_input(format!(
            "feature maps of {} and {} channels cannot be compared",
            left.dims().2,
            right.dims().2
        )));
    }
    let mut costs = vec![COST_SCALE; layers.total()];
    let rows = split_rows(&mut costs, layers);
    match (head, net) {
        (Head::Cosine, _) => rows.into_par_iter().for_each(|(y, out)| cosine_row(layers, geo, left, right, y, out)),
        (Head::Mlp, Some(net)) => rows.into_par_iter().try_for_each(|(y, out)| mlp_row(layers, geo, left, right, net, y, out))?,
        (Head::Mlp, None) => return Err(Error::invalid_parameter("the MLP head needs a decision network (mlp.onnx)")),
    }
    Ok(costs)
}

/// Where tile pixel `(x, y)` reads its image-1 embedding, if it may.
#[inline]
fn left_pixel(geo: &Geometry, left: &FeatureMap, x: usize, y: usize) -> Option<(usize, usize)> {
    let (h, w, _) = left.dims();
    let (lx, ly) = geo.left(x, y);
    if lx < 0 || ly < 0 || lx >= w as i64 || ly >= h as i64 || !left.valid[(ly as usize, lx as usize)] {
        return None;
    }
    Some((lx as usize, ly as usize))
}

fn cosine_row(layers: &Layers, geo: &Geometry, left: &FeatureMap, right: &FeatureMap, y: usize, out: &mut [u16]) {
    let (h2, w2, c) = right.dims();
    let ry = geo.right_row(y);
    if ry < 0 || ry >= h2 as i64 {
        return;
    }
    let ry = ry as usize;
    let base = layers.row_entries(y).start;
    // Whole-pixel steps (StepZ = 1 in practice): one dot product with a row slice per candidate.
    let whole_step = (geo.step_z.fract() == 0.0).then_some(geo.step_z as i64);
    let unit_row = &right.unit.as_slice().expect("standard layout")[ry * w2 * c..(ry + 1) * w2 * c];
    let valid_row = right.valid.row(ry);
    let valid_row = valid_row.as_slice().expect("standard layout");
    for x in 0..layers.width() {
        let range = layers.entries(x, y);
        if range.is_empty() {
            continue;
        }
        let Some((lx, ly)) = left_pixel(geo, left, x, y) else { continue };
        let a = left.unit_at(lx, ly);
        let zmin = layers.zmin(x, y) as i32;
        let costs = &mut out[range.start - base..range.end - base];
        if let Some(step) = whole_step {
            let first = x as i64 + geo.p0.0 - geo.origin2.0 + zmin as i64 * step;
            for (i, cost) in costs.iter_mut().enumerate() {
                let xr = first + i as i64 * step;
                if xr < 0 || xr >= w2 as i64 || !valid_row[xr as usize] {
                    continue;
                }
                let xr = xr as usize;
                *cost = scaled((1.0 - dot(a, &unit_row[xr * c..(xr + 1) * c])) * 0.5);
            }
            continue;
        }
        // Dot products of `a` with two columns, for the bilinear case (neighbours share them).
        let mut cache = [(usize::MAX, 0f32); 2];
        let mut dot_at = |xr: usize| -> f32 {
            let slot = &mut cache[xr & 1];
            if slot.0 != xr {
                *slot = (xr, dot(a, &unit_row[xr * c..(xr + 1) * c]));
            }
            slot.1
        };
        for (i, cost) in costs.iter_mut().enumerate() {
            let Some(s) = geo.right_sample(x, zmin + i as i32, w2) else { continue };
            if !right.sample_valid(s, ry) {
                continue;
            }
            let cos = if s.t == 0.0 {
                dot_at(s.x0)
            } else {
                let (t, u) = (s.t, 1.0 - s.t);
                let (n0, n1) = (right.norm[(ry, s.x0)], right.norm[(ry, s.x0 + 1)]);
                let num = u * n0 * dot_at(s.x0) + t * n1 * dot_at(s.x0 + 1);
                let den2 = u * u * n0 * n0 + t * t * n1 * n1 + 2.0 * t * u * n0 * n1 * right.next_cos[(ry, s.x0)];
                if den2 > 1e-24 { num / den2.sqrt() } else { 0.0 }
            };
            *cost = scaled((1.0 - cos) * 0.5);
        }
    }
}

fn mlp_row(
    layers: &Layers,
    geo: &Geometry,
    left: &FeatureMap,
    right: &FeatureMap,
    net: &dyn DecisionNet,
    y: usize,
    out: &mut [u16],
) -> Result<()> {
    let (h2, w2, c) = right.dims();
    let ry = geo.right_row(y);
    if ry < 0 || ry >= h2 as i64 {
        return Ok(());
    }
    let ry = ry as usize;
    let base = layers.row_entries(y).start;
    let mut entries = Vec::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let run = |entries: &mut Vec<usize>, a: &mut Vec<f32>, b: &mut Vec<f32>, out: &mut [u16]| -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let m = entries.len();
        let av = ArrayView2::from_shape((m, c), a.as_slice()).expect("sized by construction");
        let bv = ArrayView2::from_shape((m, c), b.as_slice()).expect("sized by construction");
        let similarity = net.run(av, bv)?;
        for (&e, s) in entries.iter().zip(similarity.iter()) {
            out[e] = scaled(1.0 - s);
        }
        entries.clear();
        a.clear();
        b.clear();
        Ok(())
    };
    for x in 0..layers.width() {
        let range = layers.entries(x, y);
        if range.is_empty() {
            continue;
        }
        let Some((lx, ly)) = left_pixel(geo, left, x, y) else { continue };
        let zmin = layers.zmin(x, y) as i32;
        for (i, e) in range.enumerate() {
            let Some(s) = geo.right_sample(x, zmin + i as i32, w2) else { continue };
            if !right.sample_valid(s, ry) {
                continue;
            }
            entries.push(e - base);
            left.push_raw(Sample { x0: lx, t: 0.0 }, ly, &mut a);
            right.push_raw(s, ry, &mut b);
            if entries.len() == MLP_BATCH {
                run(&mut entries, &mut a, &mut b, out)?;
            }
        }
    }
    run(&mut entries, &mut a, &mut b, out)
}
