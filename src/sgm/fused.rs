//! The regulariser when every pixel searches the same interval: the full-range case
//! (single-level matching, the coarsest pyramid level), the one that costs the most because
//! every pixel holds every disparity.
//!
//! How the work is organised, and why (OpenCV's `MODE_HH` scheme, run as two threads):
//! - The directions are split into a **forward** half (coming from above, or from the left on
//!   the same row) and a **backward** half (their opposites). The forward pass sweeps the image
//!   top to bottom, each row left to right, and updates all forward directions of a pixel one
//!   after the other while its costs and sum entries are in L1; the backward pass is the
//!   mirror. The volume is far larger than the caches, so memory traffic is what costs: this
//!   reads it twice and writes the sum twice, instead of once per group of directions.
//! - A direction's path costs are kept only for the `|dy| + 1` rows it reads (a ring of row
//!   buffers, in cache). Each pixel's entries sit between `INF` pads as wide as the longest
//!   jump, so the neighbours `d ± j` are plain shifted slices and the inner loops have no edge
//!   case and vectorise.
//! - The two passes run concurrently. Each row of the sum sits behind a mutex: the first pass
//!   to reach a row clears it, both add their directions into it (saturating addition is
//!   commutative, so the order does not matter). They sweep the rows in opposite orders, so
//!   they only meet once, in the middle. With one worker thread they simply run one after the
//!   other.
//!
//! The arithmetic is exactly that of [`super::kernel`] (same formulas, same saturation), so the
//! result is identical to the general path and to the reference.

use super::kernel::{StepPenalty, INF};
use super::Resolved;
use ndarray::Array2;
use std::sync::Mutex;

/// A volume whose pixels all hold the same `n` candidates: pixel `(x, y)`'s costs are at
/// `(y · width + x) · n`.
pub(super) struct Uniform<'a> {
    pub costs: &'a [u16],
    pub width: usize,
    pub height: usize,
    pub n: usize,
    pub guide: &'a Array2<f32>,
    pub penalty: Resolved,
}

/// One row of the sum, shared by the two passes.
struct SumRow<'a> {
    /// Whether a pass has already cleared (and added to) this row.
    cleared: bool,
    entries: &'a mut [u16],
}

/// Path costs of one row for one direction: pixel `x`'s costs at `x · stride + pad ..`, between
/// `pad` `INF`s on each side (`stride = n + 2 · pad`); and each pixel's minimum.
#[derive(Default)]
struct PathRow {
    costs: Vec<u16>,
    mins: Vec<u16>,
}

impl Uniform<'_> {
    /// Adds every path of `dirs` into `sum` (zero on entry, laid out like the costs).
    pub(super) fn aggregate(&self, dirs: &[(i32, i32)], sum: &mut [u16]) {
        let rows: Vec<Mutex<SumRow<'_>>> = sum
            .chunks_mut(self.width * self.n)
            .map(|entries| Mutex::new(SumRow { cleared: false, entries }))
            .collect();
        let forward: Vec<(i32, i32)> = dirs.iter().copied().filter(|&(dx, dy)| dy > 0 || (dy == 0 && dx > 0)).collect();
        let backward: Vec<(i32, i32)> = forward.iter().map(|&(dx, dy)| (-dx, -dy)).collect();
        rayon::join(
            || dispatch!(self.pass_avx2(&forward, true, &rows), self.pass(&forward, true, &rows)),
            || dispatch!(self.pass_avx2(&backward, false, &rows), self.pass(&backward, false, &rows)),
        );
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    fn pass_avx2(&self, dirs: &[(i32, i32)], forward: bool, rows: &[Mutex<SumRow<'_>>]) {
        self.pass(dirs, forward, rows)
    }

    /// One sweep over the image (top-down and left to right when `forward`, else the mirror),
    /// updating every direction of `dirs` at each pixel and adding them into `rows`.
    #[inline(always)]
    fn pass(&self, dirs: &[(i32, i32)], forward: bool, rows: &[Mutex<SumRow<'_>>]) {
        let (w, h, n) = (self.width, self.height, self.n);
        let adaptive = self.penalty.is_adaptive();
        // Jumps beyond n − 1 only reach the pads: cap them there, so are the pads.
        let steps: Vec<StepPenalty> = dirs
            .iter()
            .map(|&(dx, dy)| match self.penalty.at(dx, dy, 0.0, 0.0) {
                StepPenalty::Linear { weight, max_jump } => StepPenalty::Linear { weight, max_jump: max_jump.min(n - 1) },
                classic => classic,
            })
            .collect();
        let pad = steps.iter().map(|s| if let StepPenalty::Linear { max_jump, .. } = s { *max_jump } else { 1 }).max().unwrap_or(1).max(1);
        let stride = n + 2 * pad;
        // Ring of |dy| + 1 rows per direction: row y lives in slot y % (|dy| + 1).
        let mut rings: Vec<Vec<PathRow>> = dirs
            .iter()
            .map(|&(_, dy)| {
                (0..=dy.unsigned_abs())
                    .map(|_| PathRow { costs: vec![INF; w * stride], mins: vec![0; w] })
                    .collect()
            })
            .collect();
        for i in 0..h {
            let y = if forward { i } else { h - 1 - i };
            let cost_row = &self.costs[y * w * n..(y + 1) * w * n];
            // Take this row's slot of every ring out, so the other slots can be read meanwhile.
            let mut current: Vec<PathRow> = rings
                .iter_mut()
                .map(|ring| {
                    let slot = y % ring.len();
                    std::mem::take(&mut ring[slot])
                })
                .collect();
            // Per direction, where its previous pixels are: this row (horizontal), an earlier
            // row still in the ring, or outside the image (every path starts on this row).
            let sources: Vec<Source<'_>> = dirs
                .iter()
                .zip(&rings)
                .map(|(&(_, dy), ring)| match y.checked_add_signed(-(dy as isize)) {
                    _ if dy == 0 => Source::ThisRow,
                    Some(qy) if qy < h => Source::Row(qy, &ring[qy % ring.len()]),
                    _ => Source::Outside,
                })
                .collect();
            let mut row = rows[y].lock().expect("the other pass panicked");
            if !row.cleared {
                row.entries.fill(0);
                row.cleared = true;
            }
            for j in 0..w {
                let x = if forward { j } else { w - 1 - j };
                let cost = &cost_row[x * n..(x + 1) * n];
                let sum = &mut row.entries[x * n..(x + 1) * n];
                for (((&(dx, _), source), &step), paths) in dirs.iter().zip(&sources).zip(&steps).zip(current.iter_mut()) {
                    let qx = x.wrapping_add_signed(-(dx as isize));
                    let out_at = x * stride + pad..x * stride + pad + n;
                    let penalty_from = |qy: usize| match step {
                        StepPenalty::Classic { p1, .. } if adaptive => {
                            StepPenalty::Classic { p1, p2: self.penalty.p2_between(self.guide[(y, x)], self.guide[(qy, qx)]) }
                        }
                        fixed => fixed,
                    };
                    let min = match *source {
                        Source::ThisRow if qx < w => {
                            let q_min = paths.mins[qx];
                            let (q, out) = pixel_pair(&mut paths.costs, qx, x, stride, pad);
                            update(cost, q, q_min, penalty_from(y), out, sum)
                        }
                        Source::Row(qy, previous) if qx < w => {
                            let q = &previous.costs[qx * stride..(qx + 1) * stride];
                            update(cost, q, previous.mins[qx], penalty_from(qy), &mut paths.costs[out_at], sum)
                        }
                        // No previous pixel inside the image: the path starts here.
                        _ => start(cost, &mut paths.costs[out_at], sum),
                    };
                    paths.mins[x] = min;
                }
            }
            drop(row);
            drop(sources);
            for (ring, paths) in rings.iter_mut().zip(current) {
                let slot = y % ring.len();
                ring[slot] = paths;
            }
        }
    }
}

/// Where a direction's previous pixels are, for the pixels of one row.
enum Source<'a> {
    /// On the same row (a horizontal direction).
    ThisRow,
    /// On row `qy`, whose path costs are these.
    Row(usize, &'a PathRow),
    /// Outside the image: every path of the row starts here.
    Outside,
}

/// Pixel `q`'s padded path costs (`stride` values) and pixel `p`'s costs (without the pads, to
/// write), both in one row buffer; `q ≠ p`.
#[inline(always)]
fn pixel_pair(costs: &mut [u16], q: usize, p: usize, stride: usize, pad: usize) -> (&[u16], &mut [u16]) {
    let n = stride - 2 * pad;
    if q < p {
        let (head, tail) = costs.split_at_mut(p * stride);
        (&head[q * stride..(q + 1) * stride], &mut tail[pad..pad + n])
    } else {
        let (head, tail) = costs.split_at_mut(q * stride);
        (&tail[..stride], &mut head[p * stride + pad..p * stride + pad + n])
    }
}

/// First pixel of a path: `L_p = C_p`. Adds it to `sum`, returns its minimum.
#[inline(always)]
fn start(cost: &[u16], out: &mut [u16], sum: &mut [u16]) -> u16 {
    let mut lowest = INF;
    for ((o, s), &c) in out.iter_mut().zip(sum.iter_mut()).zip(cost) {
        *o = c;
        *s = s.saturating_add(c);
        lowest = lowest.min(c);
    }
    lowest
}

/// One step `L_p(d) = C_p(d) + min_d' [L_q(d') + T(|d − d'|)] − min L_q` (capped at `INF − 1`,
/// as in [`super::kernel`]), with `q` = the padded costs of the previous pixel (one `INF` pad
/// on each side for the classical model, as many as the longest jump for the linear one). Writes `L_p` to `out`, adds it to
/// `sum`, returns its minimum. As both pixels hold the same interval, `d' = d` is always
/// allowed: every label is reachable and no path restarts.
#[inline(always)]
fn update(cost: &[u16], q: &[u16], q_min: u16, penalty: StepPenalty, out: &mut [u16], sum: &mut [u16]) -> u16 {
    let n = cost.len();
    match penalty {
        StepPenalty::Classic { p1, p2 } => {
            // min(L_q(d), L_q(d ± 1) + P1, min L_q + P2), in the same loop as the rest; the
            // classical model has one pad on each side.
            let (below, centre, above) = (&q[..n], &q[1..n + 1], &q[2..n + 2]);
            let far = q_min.saturating_add(p2);
            let mut lowest = INF;
            // Equal-length slices and zipped iterators: no bounds checks, so the loop vectorises.
            for (((((o, s), &c), &b), &m0), &a) in out.iter_mut().zip(sum.iter_mut()).zip(cost).zip(below).zip(centre).zip(above) {
                let m = m0.min(b.min(a).saturating_add(p1)).min(far);
                let l = c.saturating_add(m - q_min).min(INF - 1);
                *o = l;
                *s = s.saturating_add(l);
                lowest = lowest.min(l);
            }
            lowest
        }
        StepPenalty::Linear { weight, max_jump } => {
            // min over |j| ≤ max_jump of L_q(d + j) + weight · |j|, built in `out`.
            let pad = (q.len() - n) / 2;
            out.copy_from_slice(&q[pad..pad + n]);
            for jump in 1..=max_jump {
                let t = (weight as usize * jump).min(INF as usize) as u16;
                let (below, above) = (&q[pad - jump..pad - jump + n], &q[pad + jump..pad + jump + n]);
                for ((o, &b), &a) in out.iter_mut().zip(below).zip(above) {
                    *o = (*o).min(b.saturating_add(t)).min(a.saturating_add(t));
                }
            }
            let mut lowest = INF;
            for ((o, s), &c) in out.iter_mut().zip(sum.iter_mut()).zip(cost) {
                let l = c.saturating_add(*o - q_min).min(INF - 1);
                *o = l;
                *s = s.saturating_add(l);
                lowest = lowest.min(l);
            }
            lowest
        }
    }
}
