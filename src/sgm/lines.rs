//! MicMac's regulariser (`eAlgo2PrgDyn` with `ModulationProgDyn`), with its exact geometry:
//! `NbDir` line orientations θ_k = k·π/NbDir, k = 0 … NbDir − 1, every line swept in both senses,
//! the linear transition `ZReg·|Δd|` with jumps capped at `max(1, round(PenteMax · step length))`,
//! and the optional "automatic mask" label (`ArgMaskAuto`): an occlusion state with its own cost
//! that a path enters or leaves for `CostTrans`.
//!
//! Per orientation and pixel the path cost is `Fwd + Bwd − C` (the forward and backward sweeps of
//! the pixel's line); the results are summed over the orientations. This is the same value as the
//! fast regulariser's `Σ L_r − (n/2)·C` ([`super::aggregate`] with [`super::Penalty::Linear`]):
//! with 2 or 4 orientations and no mask label both give identical sums (a test checks it).
//!
//! Lines: an orientation closer to the x axis (|cos θ| ≥ |sin θ|) has lines
//! `y = c + round(x · tan θ)`, one per integer `c`; for a given `x` every row belongs to exactly
//! one line, so the lines partition the image and consecutive pixels of a line differ by one
//! column and at most one row (step length 1 or √2). Steeper orientations swap the roles of x
//! and y. Lines of one orientation touch disjoint pixels and are processed in parallel.
//!
//! Path costs are u16, saturating, with the same conventions as the fast regulariser (see
//! [`super::kernel`]); the mask label's path costs are kept next to them.

use super::kernel::{step, Previous, StepPenalty, INF};
use crate::cost::{CostVolume, COST_ONE};
use crate::error::{Error, Result};
use ndarray::Array2;
use rayon::prelude::*;
use serde::Serialize;

/// The cost given to every disparity of a pixel outside the input mask when the mask label is
/// on, so that such pixels fall into the mask label (MicMac gives them 50 on a [0, 1] scale).
const OUTSIDE_MASK: u16 = 8 * COST_ONE;

/// `ArgMaskAuto`: an extra "masked" label per pixel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MaskLabel {
    /// Cost of the label on the matching-cost scale (0 best, 1 worst): `1 − ValDefCorrel`.
    pub cost: f32,
    /// Cost of moving between the label and any disparity (`CostTrans`).
    pub transition: f32,
}

/// Settings of MicMac's regulariser.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LineParams {
    /// Number of line orientations (`NbDir`), each swept in both senses.
    pub orientations: usize,
    /// Cost per pixel of disparity change (`Px1Regul`, ZReg), on the matching-cost scale.
    pub weight: f32,
    /// Largest disparity change per pixel of path (`Px1PenteMax`).
    pub max_slope: f32,
    /// The occlusion label, if any.
    pub mask: Option<MaskLabel>,
}

impl LineParams {
    /// Checks the values; the error names the bad one and the allowed domain.
    pub fn validate(&self) -> Result<()> {
        if !(1..=64).contains(&self.orientations) {
            return Err(Error::invalid_parameter(format!(
                "{} line orientations (NbDir): choose 1 to 64 (MicMac's files use 7)",
                self.orientations
            )));
        }
        let in_range = |v: f32| v.is_finite() && (0.0..=16.0).contains(&v);
        if !in_range(self.weight) {
            return Err(Error::invalid_parameter(format!(
                "regularisation weight (ZReg) {}: must be finite and between 0 and 16",
                self.weight
            )));
        }
        if !(self.max_slope.is_finite() && self.max_slope > 0.0 && self.max_slope <= 1000.0) {
            return Err(Error::invalid_parameter(format!(
                "maximum slope (Px1PenteMax) {}: must be > 0, e.g. 3",
                self.max_slope
            )));
        }
        if let Some(mask) = self.mask
            && (!in_range(mask.cost) || !in_range(mask.transition))
        {
            return Err(Error::invalid_parameter(format!(
                "mask label cost {} / transition {} (1 − ValDefCorrel, CostTrans): must be between 0 and 16",
                mask.cost, mask.transition
            )));
        }
        Ok(())
    }
}

/// The result of [`aggregate_lines`].
#[derive(Debug, Clone)]
pub struct LineAggregate {
    /// Aggregated cost per entry, laid out like the volume's costs (saturating u16).
    pub sum: Vec<u16>,
    /// With the mask label: pixels where the label wins over every disparity (MicMac's AutoMask
    /// is its complement).
    pub masked: Option<Array2<bool>>,
}

/// Aggregates `volume` along MicMac's lines. `left_valid` marks the pixels of the input mask:
/// with the mask label on, the others are pushed into it.
pub fn aggregate_lines(volume: &CostVolume, left_valid: &Array2<bool>, params: &LineParams) -> Result<LineAggregate> {
    params.validate()?;
    let iv = &volume.intervals;
    let (w, h) = (iv.width(), iv.height());
    if left_valid.dim() != (h, w) {
        return Err(Error::invalid_input(format!(
            "mask is {}×{} but the cost volume is {w}×{h}",
            left_valid.ncols(),
            left_valid.nrows()
        )));
    }
    let units = |v: f32| (v * COST_ONE as f32).round().clamp(0.0, (u16::MAX / 2) as f32) as u16;
    let mask = params.mask.map(|m| MaskUnits { cost: units(m.cost), transition: units(m.transition) });
    let forced;
    let costs: &[u16] = match mask {
        Some(_) if left_valid.iter().any(|v| !v) => {
            let mut c = volume.costs.clone();
            for y in 0..h {
                for x in (0..w).filter(|&x| !left_valid[(y, x)]) {
                    c[iv.entries(x, y)].fill(OUTSIDE_MASK);
                }
            }
            forced = c;
            &forced
        }
        _ => &volume.costs,
    };
    let ctx = Context { volume, costs, weight: units(params.weight), max_slope: params.max_slope, mask };

    let mut sum = vec![0u16; iv.total()];
    let mut mask_sum = vec![0u32; if mask.is_some() { w * h } else { 0 }];
    for k in 0..params.orientations {
        let theta = k as f64 * std::f64::consts::PI / params.orientations as f64;
        let lines = Lines::new(theta, w, h);
        let shared = Shared { sum: sum.as_mut_ptr(), mask_sum: mask_sum.as_mut_ptr() };
        (0..lines.count()).into_par_iter().for_each_init(LineBuffers::default, |buffers, index| {
            let pixels = lines.pixels(index);
            if !pixels.is_empty() {
                ctx.line(&pixels, buffers, &shared);
            }
        });
    }
    let masked = mask.map(|_| {
        Array2::from_shape_fn((h, w), |(y, x)| {
            let best = sum[iv.entries(x, y)].iter().copied().min().unwrap_or(INF) as u32;
            mask_sum[y * w + x] < best
        })
    });
    Ok(LineAggregate { sum, masked })
}

/// The mask label in integer cost units.
#[derive(Debug, Clone, Copy)]
struct MaskUnits {
    cost: u16,
    transition: u16,
}

/// The parallel family of lines of one orientation.
struct Lines {
    /// The line runs along x (else along y).
    x_major: bool,
    /// Offset of the minor coordinate per step of the major one.
    slope: f64,
    /// Size along the major / minor axis.
    major: usize,
    minor: usize,
    /// Smallest line offset `c` that reaches the image.
    first_offset: i64,
    /// Number of offsets.
    offsets: usize,
}

impl Lines {
    fn new(theta: f64, width: usize, height: usize) -> Self {
        let (s, c) = theta.sin_cos();
        let x_major = c.abs() >= s.abs();
        let (slope, major, minor) = if x_major { (s / c, width, height) } else { (c / s, height, width) };
        let shift = |t: usize| (t as f64 * slope).round() as i64;
        let (lo, hi) = (shift(0).min(shift(major - 1)), shift(0).max(shift(major - 1)));
        // Line c covers minor = c + shift(t): it meets the image for c in [−hi, minor − 1 − lo].
        Lines { x_major, slope, major, minor, first_offset: -hi, offsets: (minor as i64 - 1 - lo + hi + 1) as usize }
    }

    fn count(&self) -> usize {
        self.offsets
    }

    /// The pixels `(x, y)` of line `index` inside the image, in the forward sense.
    fn pixels(&self, index: usize) -> Vec<(usize, usize)> {
        let c = self.first_offset + index as i64;
        (0..self.major)
            .filter_map(|t| {
                let m = c + (t as f64 * self.slope).round() as i64;
                (0..self.minor as i64).contains(&m).then_some(if self.x_major { (t, m as usize) } else { (m as usize, t) })
            })
            .collect()
    }
}

/// Raw pointers to the accumulators, shared by the lines of one orientation.
struct Shared {
    sum: *mut u16,
    mask_sum: *mut u32,
}

// SAFETY: the lines of one orientation partition the pixels, so concurrent tasks write disjoint
// entries; orientations run one after the other.
unsafe impl Sync for Shared {}

/// Per-worker scratch space, reused from line to line.
#[derive(Default)]
struct LineBuffers {
    /// Forward path costs of every entry of the line, concatenated.
    forward: Vec<u16>,
    /// Start of each pixel's entries in `forward`.
    starts: Vec<usize>,
    /// Forward path cost of the mask label per pixel.
    forward_mask: Vec<u16>,
    /// Backward path costs of the previous and current pixel.
    previous: Vec<u16>,
    current: Vec<u16>,
    scratch: Vec<u16>,
}

/// The state of a path at its last pixel.
#[derive(Clone, Copy)]
struct PathEnd {
    /// Index of the pixel on the line.
    at: usize,
    /// Minimum over the disparity labels.
    min: u16,
    /// Path cost of the mask label.
    mask: u16,
}

struct Context<'a> {
    volume: &'a CostVolume,
    costs: &'a [u16],
    weight: u16,
    max_slope: f32,
    mask: Option<MaskUnits>,
}

impl Context<'_> {
    fn penalty(&self, from: (usize, usize), to: (usize, usize)) -> StepPenalty {
        let (dx, dy) = (to.0 as f32 - from.0 as f32, to.1 as f32 - from.1 as f32);
        let max_jump = ((self.max_slope * (dx * dx + dy * dy).sqrt()).round() as usize).max(1);
        StepPenalty::Linear { weight: self.weight, max_jump }
    }

    /// One path step at pixel `p` (costs `cost`, interval starting at `d_min`) from the previous
    /// pixel (its path costs, mask-label path cost and the step's penalty; none at a line's
    /// start), writing the disparity path costs into `out`; returns (min over `out`, mask label).
    fn advance(
        &self,
        cost: &[u16],
        d_min: i32,
        prev: Option<(Previous<'_>, u16, StepPenalty)>,
        scratch: &mut Vec<u16>,
        out: &mut [u16],
    ) -> (u16, u16) {
        let mask_cost = self.mask.map_or(0, |m| m.cost);
        let Some((previous, prev_mask, penalty)) = prev else {
            out.copy_from_slice(cost);
            return (out.iter().copied().min().unwrap_or(INF), mask_cost);
        };
        let min_d = previous.min;
        let min = step(cost, d_min, Some(previous), penalty, scratch, out);
        let Some(mask) = self.mask else {
            return (min, 0);
        };
        // Fold in the mask label: enter from it (Lk + T), and renormalise by the minimum over
        // all labels of q, mask included.
        let lowest = min_d.min(prev_mask);
        let lift = min_d - lowest;
        let from_mask = prev_mask.saturating_add(mask.transition) - lowest;
        let mut new_min = INF;
        for (o, &c) in out.iter_mut().zip(cost) {
            let via_labels = if *o == INF { INF } else { o.saturating_add(lift) };
            *o = via_labels.min(c.saturating_add(from_mask)).min(INF - 1);
            new_min = new_min.min(*o);
        }
        let stay = prev_mask.min(min_d.saturating_add(mask.transition)) - lowest;
        (new_min, mask.cost.saturating_add(stay).min(INF - 1))
    }

    /// Sweeps one line forward, then backward while adding `Fwd + Bwd − C` to the sums.
    fn line(&self, pixels: &[(usize, usize)], buf: &mut LineBuffers, shared: &Shared) {
        let iv = &self.volume.intervals;
        buf.starts.clear();
        let mut total = 0;
        for &(x, y) in pixels {
            buf.starts.push(total);
            total += iv.len(x, y);
        }
        buf.starts.push(total);
        buf.forward.clear();
        buf.forward.resize(total, 0);
        buf.forward_mask.clear();
        buf.forward_mask.resize(pixels.len(), 0);

        let mut end: Option<PathEnd> = None;
        for (i, &(x, y)) in pixels.iter().enumerate() {
            let cost = &self.costs[iv.entries(x, y)];
            let (done, rest) = buf.forward.split_at_mut(buf.starts[i]);
            let out = &mut rest[..cost.len()];
            let prev = end.map(|e| {
                let q = pixels[e.at];
                let previous = Previous { costs: &done[buf.starts[e.at]..], d_min: iv.d_min(q.0, q.1), min: e.min };
                (previous, e.mask, self.penalty(q, (x, y)))
            });
            let (min, mask) = self.advance(cost, iv.d_min(x, y), prev, &mut buf.scratch, out);
            buf.forward_mask[i] = mask;
            end = Some(PathEnd { at: i, min, mask });
        }

        let max_len = pixels.iter().map(|&(x, y)| iv.len(x, y)).max().unwrap_or(0);
        buf.previous.resize(max_len, 0);
        buf.current.resize(max_len, 0);
        let mut end: Option<(PathEnd, usize)> = None; // and the previous pixel's interval length
        let mask_cost = self.mask.map_or(0, |m| m.cost);
        for i in (0..pixels.len()).rev() {
            let (x, y) = pixels[i];
            let entries = iv.entries(x, y);
            let cost = &self.costs[entries.clone()];
            let n = cost.len();
            let prev = end.map(|(e, len)| {
                let q = pixels[e.at];
                let previous = Previous { costs: &buf.previous[..len], d_min: iv.d_min(q.0, q.1), min: e.min };
                (previous, e.mask, self.penalty(q, (x, y)))
            });
            let (min, mask) = self.advance(cost, iv.d_min(x, y), prev, &mut buf.scratch, &mut buf.current[..n]);
            let forward = &buf.forward[buf.starts[i]..buf.starts[i + 1]];
            // SAFETY: `entries` belongs to pixel (x, y), which no other line of this orientation
            // visits (see `Shared`); the pointer covers the whole volume.
            let sum = unsafe { std::slice::from_raw_parts_mut(shared.sum.add(entries.start), n) };
            for (((s, &f), &b), &c) in sum.iter_mut().zip(forward).zip(&buf.current[..n]).zip(cost) {
                let path = (f as u32 + b as u32).saturating_sub(c as u32).min(u16::MAX as u32) as u16;
                *s = s.saturating_add(path);
            }
            if self.mask.is_some() {
                let path = (buf.forward_mask[i] as u32 + mask as u32).saturating_sub(mask_cost as u32);
                // SAFETY: as above, pixel (x, y) is this task's alone in this orientation.
                unsafe { *shared.mask_sum.add(y * iv.width() + x) += path };
            }
            std::mem::swap(&mut buf.previous, &mut buf.current);
            end = Some((PathEnd { at: i, min, mask }, n));
        }
    }
}
