//! Semi-global regularisation over a cost volume with per-pixel intervals.
//!
//! Path costs are accumulated along 4, 8 or 16 directions (each line swept in both senses) and
//! summed per entry. Two transition models:
//! - **classical SGM** (Hirschmüller): `P1` for |Δd| = 1, `P2` for larger jumps, `P2` optionally
//!   lowered across image edges;
//! - **MicMac's linear model** (`eAlgo2PrgDyn`): `weight · |Δd|` with jumps capped at
//!   `max(1, round(max_slope · step length))`. As MicMac sums forward + backward − cost per
//!   line, the result is `Σ L_r − (n_dirs / 2) · C`.
//!
//! Two implementations, one result (both are tested against [`reference`](mod@reference)):
//! - **the same interval everywhere** (single-level matching, the coarsest pyramid level: the
//!   largest volumes): the `fused` module, two passes of half the directions each (OpenCV's
//!   `MODE_HH` scheme), run concurrently, reading the volume twice in all;
//! - **per-pixel intervals**: the general path below, which aligns each previous pixel's
//!   interval on the current one's.
//!
//! How the general path is organised, and why: the two horizontal directions depend only on the
//! previous pixel of the same row, so every row is an independent task. All other directions depend only
//! on earlier rows (one or two back), so one top-to-bottom sweep serves every "downward"
//! direction at once and one bottom-to-top sweep every "upward" one; within a row the pixels are
//! independent and are split into chunks run in parallel. Path costs live in small per-row ring
//! buffers, never in a full volume per direction, so memory is the cost volume (u16) plus one
//! u16 sum per entry (saturating: only labels far worse than any plausible one can saturate,
//! and a saturating sum does not depend on the order of the directions).
//!
//! Path costs are u16 with saturating arithmetic; a label whose path cost saturates counts as
//! unreachable. A path that cannot reach any label of the next pixel restarts there.

mod avx2;
mod fused;
mod kernel;
pub mod lines;
pub mod reference;

use crate::cost::{CostVolume, Intervals, COST_ONE};
use crate::cost::fill::split_rows;
use crate::error::{Error, Result};
use kernel::{step_add, Previous, StepPenalty};
use ndarray::Array2;
use rayon::prelude::*;

/// The transition model, in units of the matching cost (1.0 = the worst match).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Penalty {
    /// Classical SGM.
    Classic {
        /// Penalty of a disparity change of one pixel.
        p1: f32,
        /// Penalty of any larger change.
        p2: f32,
        /// When set to τ (grey levels in [0, 1]), `P2` becomes `max(P1, P2 · τ / (τ + |ΔI|))`
        /// with `ΔI` the grey difference between the two pixels: cheaper jumps across edges.
        p2_adapt: Option<f32>,
    },
    /// MicMac's linear penalty (`ZReg`, `Px1PenteMax`).
    Linear {
        /// Cost per pixel of disparity change (MicMac's ZReg).
        weight: f32,
        /// Maximum disparity change per pixel of path (MicMac's Px1PenteMax).
        max_slope: f32,
    },
}

/// The default (P1, P2) of classical SGM with census alone (the command line's and
/// `<DeepsimMatch>` files'), chosen by a sensitivity table on synthetic aerial validation scenes
/// (docs/classical-aerial.md); the other similarities keep [`DEFAULT_PENALTIES`].
pub const CENSUS_PENALTIES: (f32, f32) = (0.5, 1.6);

/// The default (P1, P2) of classical SGM with NCC, learned and plugin similarities.
pub const DEFAULT_PENALTIES: (f32, f32) = (0.2, 0.8);

/// Regulariser settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SgmParams {
    /// 4, 8 or 16 path directions (both senses of 2, 4 or 8 line orientations).
    pub directions: usize,
    /// The transition model.
    pub penalty: Penalty,
}

impl SgmParams {
    /// Checks the values; the error names the bad one and the allowed domain.
    pub fn validate(&self) -> Result<()> {
        if ![4, 8, 16].contains(&self.directions) {
            return Err(Error::invalid_parameter(format!(
                "{} SGM directions: choose 4, 8 or 16",
                self.directions
            )));
        }
        let bad = |name: &str, v: f32| {
            Err(Error::invalid_parameter(format!("SGM {name} = {v}: must be finite and between 0 and 16")))
        };
        let check = |name: &str, v: f32| if v.is_finite() && (0.0..=16.0).contains(&v) { Ok(()) } else { bad(name, v) };
        match self.penalty {
            Penalty::Classic { p1, p2, p2_adapt } => {
                check("P1", p1)?;
                check("P2", p2)?;
                if p2 < p1 {
                    return Err(Error::invalid_parameter(format!("SGM P2 = {p2} is below P1 = {p1}: need P2 ≥ P1")));
                }
                if let Some(t) = p2_adapt
                    && !(t.is_finite() && t > 0.0) {
                        return Err(Error::invalid_parameter(format!("SGM P2 adaptation τ = {t}: must be > 0")));
                    }
            }
            Penalty::Linear { weight, max_slope } => {
                check("weight (ZReg)", weight)?;
                if !(max_slope.is_finite() && max_slope > 0.0 && max_slope <= 1000.0) {
                    return Err(Error::invalid_parameter(format!(
                        "SGM maximum slope = {max_slope}: must be > 0 (MicMac's Px1PenteMax, e.g. 3)"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The path directions `(dx, dy)` for 4, 8 or 16 directions; the previous pixel of `p` on a path
/// is `p − (dx, dy)`.
pub fn directions(count: usize) -> Vec<(i32, i32)> {
    let mut dirs = vec![(1, 0), (-1, 0), (0, 1), (0, -1)];
    if count >= 8 {
        dirs.extend([(1, 1), (-1, -1), (-1, 1), (1, -1)]);
    }
    if count >= 16 {
        dirs.extend([(2, 1), (-2, -1), (1, 2), (-1, -2), (-2, 1), (2, -1), (-1, 2), (1, -2)]);
    }
    dirs
}

/// Integer penalties, resolved once.
#[derive(Debug, Clone, Copy)]
struct Resolved {
    penalty: Penalty,
    p1: u16,
    p2: u16,
    weight: u16,
}

impl Resolved {
    fn new(penalty: Penalty) -> Self {
        let units = |v: f32| (v * COST_ONE as f32).round().clamp(0.0, (u16::MAX / 2) as f32) as u16;
        match penalty {
            Penalty::Classic { p1, p2, .. } => Resolved { penalty, p1: units(p1), p2: units(p2), weight: 0 },
            Penalty::Linear { weight, .. } => Resolved { penalty, p1: 0, p2: 0, weight: units(weight) },
        }
    }

    /// Whether the penalty depends on the image (then [`Resolved::at`] is needed per pixel).
    fn is_adaptive(&self) -> bool {
        matches!(self.penalty, Penalty::Classic { p2_adapt: Some(_), .. })
    }

    /// The classical `P2` of a step between pixels of grey values `grey_p` and `grey_q`.
    #[inline]
    fn p2_between(&self, grey_p: f32, grey_q: f32) -> u16 {
        match self.penalty {
            Penalty::Classic { p2_adapt: Some(tau), .. } => {
                let scaled = self.p2 as f32 * tau / (tau + (grey_p - grey_q).abs());
                (scaled.round() as u16).max(self.p1)
            }
            _ => self.p2,
        }
    }

    /// The penalty of the step from `q` to `p` along `(dx, dy)`, given their grey values.
    #[inline]
    fn at(&self, dx: i32, dy: i32, grey_p: f32, grey_q: f32) -> StepPenalty {
        match self.penalty {
            Penalty::Classic { .. } => StepPenalty::Classic { p1: self.p1, p2: self.p2_between(grey_p, grey_q) },
            Penalty::Linear { max_slope, .. } => {
                let length = ((dx * dx + dy * dy) as f32).sqrt();
                let max_jump = ((max_slope * length).round() as usize).max(1);
                StepPenalty::Linear { weight: self.weight, max_jump }
            }
        }
    }
}

/// Aggregates `volume` along the paths of `params`; `guide` is the left image of the level
/// (grey in [0, 1], used by the adaptive P2). Returns one u16 per entry (saturating sum), laid out like the costs.
pub fn aggregate(volume: &CostVolume, guide: &Array2<f32>, params: &SgmParams) -> Result<Vec<u16>> {
    params.validate()?;
    let iv = &volume.intervals;
    if guide.dim() != (iv.height(), iv.width()) {
        return Err(Error::invalid_input(format!(
            "guide image is {}×{} but the cost volume is {}×{}",
            guide.ncols(),
            guide.nrows(),
            iv.width(),
            iv.height()
        )));
    }
    let penalty = Resolved::new(params.penalty);
    let dirs = directions(params.directions);
    let mut sum = crate::buffer::zeroed_u16(iv.total());
    if let Some((_, n)) = iv.common() {
        let uniform = fused::Uniform { costs: &volume.costs, width: iv.width(), height: iv.height(), n, guide, penalty };
        uniform.aggregate(&dirs, &mut sum);
    } else {
        let ctx = Context { iv, costs: &volume.costs, guide, penalty };
        ctx.horizontal(&mut sum);
        let down: Vec<_> = dirs.iter().copied().filter(|d| d.1 > 0).collect();
        let up: Vec<_> = dirs.iter().copied().filter(|d| d.1 < 0).collect();
        ctx.row_sweep(&down, &mut sum);
        ctx.row_sweep(&up, &mut sum);
    }
    if let Penalty::Linear { .. } = params.penalty {
        let half = (dirs.len() / 2) as u16;
        sum.par_iter_mut().zip(volume.costs.par_iter()).for_each(|(s, &c)| *s = s.saturating_sub(c.saturating_mul(half)));
    }
    Ok(sum)
}

struct Context<'a> {
    iv: &'a Intervals,
    costs: &'a [u16],
    guide: &'a Array2<f32>,
    penalty: Resolved,
}

/// Path costs of one row for one direction, and each pixel's minimum.
#[derive(Default)]
struct RowPaths {
    costs: Vec<u16>,
    mins: Vec<u16>,
}

impl Context<'_> {
    /// Both horizontal directions, every row an independent task.
    fn horizontal(&self, sum: &mut [u16]) {
        split_rows(sum, self.iv, 1).into_par_iter().for_each(|(rows, row_sum)| {
            dispatch!(self.horizontal_row_avx2(rows.start, row_sum), self.horizontal_row(rows.start, row_sum))
        });
    }


    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    fn horizontal_row_avx2(&self, y: usize, row_sum: &mut [u16]) {
        self.horizontal_row(y, row_sum)
    }

    /// Row `y` swept left to right then right to left.
    #[inline(always)]
    fn horizontal_row(&self, y: usize, row_sum: &mut [u16]) {
        let iv = self.iv;
        let base = iv.row_entries(y).start;
        let max_len = iv.max_len();
        let (mut prev, mut cur, mut scratch) = (vec![0u16; max_len], vec![0u16; max_len], Vec::new());
        let adaptive = self.penalty.is_adaptive();
        for dx in [1i32, -1] {
            let fixed = self.penalty.at(dx, 0, 0.0, 0.0);
            let mut prev_state: Option<(usize, u16)> = None; // (x of q, min L_q)
            for i in 0..iv.width() {
                let x = if dx > 0 { i } else { iv.width() - 1 - i };
                let range = iv.entries(x, y);
                let n = range.len();
                let previous = prev_state.map(|(qx, min)| Previous {
                    costs: &prev[..iv.len(qx, y)],
                    d_min: iv.d_min(qx, y),
                    min,
                });
                let pen = match prev_state {
                    Some((qx, _)) if adaptive => self.penalty.at(dx, 0, self.guide[(y, x)], self.guide[(y, qx)]),
                    _ => fixed,
                };
                let sum = &mut row_sum[range.start - base..range.end - base];
                let min = step_add(&self.costs[range.clone()], iv.d_min(x, y), previous, pen, &mut scratch, &mut cur[..n], sum);
                std::mem::swap(&mut prev, &mut cur);
                prev_state = Some((x, min));
            }
        }
    }

    /// One sweep over the rows (top-down when every `dy > 0`, bottom-up when every `dy < 0`)
    /// serving all `dirs` at once; pixels of a row are processed in parallel chunks.
    fn row_sweep(&self, dirs: &[(i32, i32)], sum: &mut [u16]) {
        if dirs.is_empty() {
            return;
        }
        let iv = self.iv;
        let (w, h) = (iv.width(), iv.height());
        let downward = dirs[0].1 > 0;
        // Ring of |dy| + 1 rows per direction: row y lives in slot y % (|dy| + 1).
        let mut rings: Vec<Vec<RowPaths>> = dirs
            .iter()
            .map(|&(_, dy)| {
                (0..=dy.unsigned_abs())
                    .map(|_| RowPaths { costs: vec![0; iv.max_row_entries()], mins: vec![0; w] })
                    .collect()
            })
            .collect();
        let chunk_px = (w / (rayon::current_num_threads() * 4)).max(32);
        let x_bounds: Vec<usize> = (0..w).step_by(chunk_px).chain(std::iter::once(w)).collect();
        let mut rows_sum: Vec<Option<&mut [u16]>> =
            split_rows(sum, iv, 1).into_iter().map(|(_, s)| Some(s)).collect();
        let order: Box<dyn Iterator<Item = usize>> = if downward { Box::new(0..h) } else { Box::new((0..h).rev()) };
        for y in order {
            let base = iv.row_entries(y).start;
            let local: Vec<usize> = x_bounds
                .iter()
                .map(|&x| if x == w { iv.row_entries(y).end - base } else { iv.entries(x, y).start - base })
                .collect();
            // Take this row's slot of every ring out, so the other slots can be read meanwhile.
            let mut current: Vec<RowPaths> = rings
                .iter_mut()
                .map(|ring| {
                    let slot = y % ring.len();
                    std::mem::take(&mut ring[slot])
                })
                .collect();
            let row_sum = rows_sum[y].take().expect("each row is swept once");
            let mut tasks: Vec<Task<'_>> = chunk_slices(row_sum, &local)
                .into_iter()
                .enumerate()
                .map(|(i, s)| Task { x0: x_bounds[i], x1: x_bounds[i + 1], sum: s, paths: Vec::new() })
                .collect();
            for paths in current.iter_mut() {
                let costs = chunk_slices(&mut paths.costs[..local[local.len() - 1]], &local);
                let mins = chunk_slices(&mut paths.mins[..], &x_bounds);
                for ((task, c), m) in tasks.iter_mut().zip(costs).zip(mins) {
                    task.paths.push((c, m));
                }
            }
            let rings_ref = &rings;
            tasks.par_iter_mut().for_each(|task| {
                dispatch!(self.row_chunk_avx2(y, dirs, rings_ref, task), self.row_chunk(y, dirs, rings_ref, task))
            });
            drop(tasks);
            for (ring, paths) in rings.iter_mut().zip(current) {
                let slot = y % ring.len();
                ring[slot] = paths;
            }
            rows_sum[y] = None;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    fn row_chunk_avx2(&self, y: usize, dirs: &[(i32, i32)], rings: &[Vec<RowPaths>], task: &mut Task<'_>) {
        self.row_chunk(y, dirs, rings, task)
    }

    /// Pixels `task.x0 .. task.x1` of row `y` for every direction of a sweep.
    #[inline(always)]
    fn row_chunk(&self, y: usize, dirs: &[(i32, i32)], rings: &[Vec<RowPaths>], task: &mut Task<'_>) {
        let iv = self.iv;
        let (w, h) = (iv.width() as i32, iv.height() as i32);
        let chunk_base = iv.entries(task.x0, y).start;
        let adaptive = self.penalty.is_adaptive();
        // Everything that depends on the direction but not on x, resolved once per row chunk.
        let per_dir: Vec<DirRow<'_>> = dirs
            .iter()
            .zip(rings)
            .map(|(&(dx, dy), ring)| {
                let qy = y as i32 - dy;
                let previous_row = (0..h).contains(&qy).then(|| {
                    let qy = qy as usize;
                    (qy, &ring[qy % ring.len()], iv.row_entries(qy).start)
                });
                DirRow { dx, previous_row, fixed: self.penalty.at(dx, dy, 0.0, 0.0) }
            })
            .collect();
        let mut scratch = Vec::new();
        for x in task.x0..task.x1 {
            let range = iv.entries(x, y);
            let local = range.start - chunk_base..range.end - chunk_base;
            let cost = &self.costs[range.clone()];
            let d_min = iv.d_min(x, y);
            for (k, &DirRow { dx, previous_row: q, fixed }) in per_dir.iter().enumerate() {
                let qx = x as i32 - dx;
                let mut pen = fixed;
                let previous = match q {
                    Some((qy, slot, q_base)) if (0..w).contains(&qx) => {
                        let qx = qx as usize;
                        if adaptive {
                            pen = self.penalty.at(dx, dirs[k].1, self.guide[(y, x)], self.guide[(qy, qx)]);
                        }
                        let q_range = iv.entries(qx, qy);
                        Some(Previous {
                            costs: &slot.costs[q_range.start - q_base..q_range.end - q_base],
                            d_min: iv.d_min(qx, qy),
                            min: slot.mins[qx],
                        })
                    }
                    _ => None,
                };
                let (paths, mins) = &mut task.paths[k];
                let out = &mut paths[local.clone()];
                mins[x - task.x0] = step_add(cost, d_min, previous, pen, &mut scratch, out, &mut task.sum[local.clone()]);
            }
        }
    }
}

/// One direction of a row sweep, as seen from row `y`.
#[derive(Clone, Copy)]
struct DirRow<'a> {
    dx: i32,
    /// The previous pixels' row: its index, its path costs and the offset of its first entry.
    previous_row: Option<(usize, &'a RowPaths, usize)>,
    /// The penalty when it does not depend on the image.
    fixed: StepPenalty,
}

/// A chunk of pixels of one row: its sum entries and, per direction, its path costs and minima.
struct Task<'a> {
    x0: usize,
    x1: usize,
    sum: &'a mut [u16],
    paths: Vec<(&'a mut [u16], &'a mut [u16])>,
}

/// Splits `data` at the ascending `bounds` (first 0, last `data.len()`), one slice per gap.
fn chunk_slices<'a, T>(data: &'a mut [T], bounds: &[usize]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(bounds.len().saturating_sub(1));
    let mut rest = data;
    for pair in bounds.windows(2) {
        let (head, tail) = rest.split_at_mut(pair[1] - pair[0]);
        out.push(head);
        rest = tail;
    }
    out
}
