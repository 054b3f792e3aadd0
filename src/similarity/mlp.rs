//! The decision MLP evaluated natively, with its first layer split (exact).
//!
//! The first layer is linear in the concatenation `[f_left; f_right]`:
//! `W1 [f_l; f_r] + b1 = (W1a f_l + b1) + W1b f_r`. Every left and every right embedding is
//! projected once per image row (`project_*`), and each candidate costs only `relu(p_l + p_r)`
//! and the hidden layers, run as matrix products on batches of candidates
//! ([`SplitMlp::similarities`]). This does the same arithmetic as the ONNX graph, reordered:
//! results agree with it to float rounding (checked by the tests against the ONNX MLP).

use crate::error::Result;
use crate::model::{MlpWeights, read_mlp};
use crate::runtime::DecisionNet;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2};
use std::path::Path;

/// A decision MLP ready for split evaluation. As a [`DecisionNet`] it takes pairs of
/// embeddings like the ONNX file it was read from.
pub struct SplitMlp {
    /// Embedding length C.
    embedding_dim: usize,
    /// First layer's width H.
    hidden: usize,
    /// `W1a`, the left half of the first layer, `[H, C]`.
    first_left: Array2<f32>,
    /// `W1b`, the right half, `[H, C]`.
    first_right: Array2<f32>,
    /// `b1`, `[H]`.
    first_bias: Vec<f32>,
    /// The other layers: `(W [out, in], b [out])`; ReLU after each but the last.
    rest: Vec<(Array2<f32>, Vec<f32>)>,
}

/// Work buffers of one thread.
#[derive(Default)]
pub(crate) struct MlpScratch {
    a: Vec<f32>,
    b: Vec<f32>,
}

impl SplitMlp {
    /// The split form of `weights` for `embedding_dim`-long embeddings; `None` when the first
    /// layer does not take `2 × embedding_dim` values.
    pub fn new(weights: &MlpWeights, embedding_dim: usize) -> Option<Self> {
        let first = weights.layers.first()?;
        let c = embedding_dim;
        if first.inputs != 2 * c {
            return None;
        }
        let h = first.outputs;
        let w1 = ArrayView2::from_shape((h, 2 * c), &first.weight).ok()?;
        let rest = weights.layers[1..]
            .iter()
            .map(|l| {
                Some((
                    ArrayView2::from_shape((l.outputs, l.inputs), &l.weight)
                        .ok()?
                        .to_owned(),
                    l.bias.clone(),
                ))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SplitMlp {
            embedding_dim: c,
            hidden: h,
            first_left: w1.slice(ndarray::s![.., ..c]).to_owned(),
            first_right: w1.slice(ndarray::s![.., c..]).to_owned(),
            first_bias: first.bias.clone(),
            rest,
        })
    }

    /// The decision network in `path` for `embedding_dim`-long embeddings; `None` when its
    /// graph is not the standard pattern (`crate::model::read_mlp`).
    pub fn from_file(path: &Path, embedding_dim: usize) -> Result<Option<Self>> {
        Ok(read_mlp(path)?.and_then(|w| Self::new(&w, embedding_dim)))
    }

    /// Multiply-adds per candidate after the split (the hidden layers and the sum).
    pub fn macs_per_candidate(&self) -> usize {
        self.hidden + self.rest.iter().map(|(w, _)| w.len()).sum::<usize>()
    }

    /// `W1a f + b1` for `n` left embeddings `[n, C]`, written to `out` `[n, H]`.
    pub(crate) fn project_left(&self, embeddings: &[f32], n: usize, out: &mut Vec<f32>) {
        self.project(&self.first_left, Some(&self.first_bias), embeddings, n, out);
    }

    /// `W1b f` for `n` right embeddings `[n, C]`, written to `out` `[n, H]`.
    pub(crate) fn project_right(&self, embeddings: &[f32], n: usize, out: &mut Vec<f32>) {
        self.project(&self.first_right, None, embeddings, n, out);
    }

    fn project(
        &self,
        w: &Array2<f32>,
        bias: Option<&[f32]>,
        embeddings: &[f32],
        n: usize,
        out: &mut Vec<f32>,
    ) {
        let h = self.hidden;
        out.clear();
        match bias {
            Some(b) => (0..n).for_each(|_| out.extend_from_slice(b)),
            None => out.resize(n * h, 0.0),
        }
        let x = ArrayView2::from_shape(
            (n, self.embedding_dim),
            &embeddings[..n * self.embedding_dim],
        )
        .expect("sized by n");
        let y = ArrayViewMut2::from_shape((n, h), &mut out[..]).expect("sized above");
        general_mat_mul(1.0, &x, &w.t(), 1.0, &mut { y });
    }

    /// Similarities of `pairs` (indices of rows of the projections `left` and `right`, both
    /// `[*, H]`), written to `out`.
    pub(crate) fn similarities(
        &self,
        left: &[f32],
        right: &[f32],
        pairs: &[(u32, u32)],
        scratch: &mut MlpScratch,
        out: &mut [f32],
    ) {
        let h = self.hidden;
        let n = pairs.len();
        let a = &mut scratch.a;
        a.clear();
        a.reserve(n * h);
        for &(l, r) in pairs {
            let (pl, pr) = (
                &left[l as usize * h..(l as usize + 1) * h],
                &right[r as usize * h..(r as usize + 1) * h],
            );
            a.extend(pl.iter().zip(pr).map(|(x, y)| relu(x + y)));
        }
        let mut width = h;
        let last = self.rest.len() - 1;
        for (i, (w, bias)) in self.rest.iter().enumerate() {
            let outputs = w.nrows();
            let b = &mut scratch.b;
            b.clear();
            (0..n).for_each(|_| b.extend_from_slice(bias));
            {
                let x = ArrayView2::from_shape((n, width), &a[..n * width]).expect("sized above");
                let mut y =
                    ArrayViewMut2::from_shape((n, outputs), &mut b[..]).expect("sized above");
                general_mat_mul(1.0, &x, &w.t(), 1.0, &mut y);
            }
            if i < last {
                b.iter_mut().for_each(|v| *v = relu(*v));
            }
            std::mem::swap(a, b);
            width = outputs;
        }
        for (o, &logit) in out.iter_mut().zip(a.iter()) {
            *o = 1.0 / (1.0 + (-logit).exp());
        }
    }
}

impl DecisionNet for SplitMlp {
    fn run(&self, left: ArrayView2<'_, f32>, right: ArrayView2<'_, f32>) -> Result<Array1<f32>> {
        let n = left.nrows();
        assert_eq!(
            (right.nrows(), left.ncols(), right.ncols()),
            (n, self.embedding_dim, self.embedding_dim),
            "[M, C] pairs"
        );
        let (l, r) = (left.as_standard_layout(), right.as_standard_layout());
        let (mut pl, mut pr) = (Vec::new(), Vec::new());
        self.project_left(l.as_slice().expect("standard layout"), n, &mut pl);
        self.project_right(r.as_slice().expect("standard layout"), n, &mut pr);
        let pairs: Vec<(u32, u32)> = (0..n as u32).map(|i| (i, i)).collect();
        let mut out = vec![0.0; n];
        let mut scratch = MlpScratch::default();
        for (p, o) in pairs.chunks(256).zip(out.chunks_mut(256)) {
            self.similarities(&pl, &pr, p, &mut scratch, o);
        }
        Ok(out.into())
    }
}

/// ReLU that keeps NaN (as ONNX's does), so that a broken model shows in its output.
#[inline]
fn relu(v: f32) -> f32 {
    if v < 0.0 { 0.0 } else { v }
}
