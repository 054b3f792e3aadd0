//! The per-pixel step of a path: `L_p(d) = C_p(d) + min_d' [L_q(d') + T(|d − d'|)] − min L_q`.
//!
//! `q` is the previous pixel on the path; its interval may differ from `p`'s, so `L_q` is first
//! copied, aligned on `p`'s disparities and padded with `INF`, into a scratch buffer; the
//! minimisation then runs over plain slices that the compiler vectorises.

/// Marks a label that no allowed transition reaches.
pub(crate) const INF: u16 = u16::MAX;

/// Penalties of one path step, in integer cost units.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StepPenalty {
    /// Classical SGM: `p1` for a jump of 1, `p2` for any larger jump.
    Classic { p1: u16, p2: u16 },
    /// `weight · |Δd|`, jumps larger than `max_jump` forbidden.
    Linear { weight: u16, max_jump: usize },
}

/// The previous pixel on the path.
pub(crate) struct Previous<'a> {
    /// `L_q` over `q`'s interval.
    pub costs: &'a [u16],
    /// First disparity of `q`'s interval.
    pub d_min: i32,
    /// `min L_q`.
    pub min: u16,
}

/// Computes `L_p` into `out` (same length as `cost`) and returns its minimum.
/// Without a previous pixel (path start) `L_p = C_p`.
#[inline(always)]
pub(crate) fn step(
    cost: &[u16],
    d_min: i32,
    previous: Option<Previous<'_>>,
    penalty: StepPenalty,
    scratch: &mut Vec<u16>,
    out: &mut [u16],
) -> u16 {
    let n = cost.len();
    let Some(prev) = previous else {
        out.copy_from_slice(cost);
        return min_of(out);
    };
    if let StepPenalty::Classic { p1, p2 } = penalty
        && prev.d_min == d_min && prev.costs.len() == n && n >= 2 {
            // Same interval as q (the common case): read L_q in place, no alignment copy.
            return classic_same_interval(cost, prev.costs, prev.min, p1, p2, out);
        }
    let pad = match penalty {
        StepPenalty::Classic { .. } => 1,
        StepPenalty::Linear { max_jump, .. } => max_jump,
    };
    align(prev.costs, prev.d_min, d_min - pad as i32, n + 2 * pad, scratch);
    match penalty {
        StepPenalty::Classic { p1, p2 } => {
            let (below, centre, above) = (&scratch[..n], &scratch[1..n + 1], &scratch[2..n + 2]);
            return classic_update(cost, below, centre, above, prev.min, p1, p2, out);
        }
        StepPenalty::Linear { weight, max_jump } => {
            out[..n].copy_from_slice(&scratch[pad..pad + n]);
            for jump in 1..=max_jump {
                let t = (weight as usize * jump).min(INF as usize) as u16;
                let below = &scratch[pad - jump..pad - jump + n];
                let above = &scratch[pad + jump..pad + jump + n];
                for ((o, &b), &a) in out.iter_mut().zip(below).zip(above) {
                    *o = (*o).min(b.saturating_add(t)).min(a.saturating_add(t));
                }
            }
            let mut reachable = false;
            for (o, &c) in out.iter_mut().zip(cost) {
                let m = *o;
                reachable |= m != INF;
                *o = if m == INF { INF } else { c.saturating_add(m - prev.min).min(INF - 1) };
            }
            if !reachable {
                // No label of p can be reached from q (intervals too far apart): restart the path.
                out.copy_from_slice(cost);
            }
        }
    }
    min_of(out)
}

/// [`step`], and `L_p` added (saturating) into `sum` (same length as `cost`): the classical
/// model in one AVX2 pass where the CPU has it ([`super::avx2`]), else `step` and a loop.
#[inline(always)]
pub(crate) fn step_add(
    cost: &[u16],
    d_min: i32,
    previous: Option<Previous<'_>>,
    penalty: StepPenalty,
    scratch: &mut Vec<u16>,
    out: &mut [u16],
    sum: &mut [u16],
) -> u16 {
    #[cfg(target_arch = "x86_64")]
    if let (Some(prev), StepPenalty::Classic { p1, p2 }) = (&previous, penalty)
        && super::avx2::available()
    {
        let n = cost.len();
        let (lq, edges) = if prev.d_min == d_min && prev.costs.len() == n {
            (prev.costs, (INF, INF))
        } else {
            align(prev.costs, prev.d_min, d_min - 1, n + 2, scratch);
            (&scratch[1..n + 1], (scratch[0], scratch[n + 1]))
        };
        // SAFETY: `available` checked that the CPU has AVX2.
        return unsafe { super::avx2::classic_add(cost, lq, edges, prev.min, (p1, p2), out, sum) };
    }
    let min = step(cost, d_min, previous, penalty, scratch, out);
    for (s, &l) in sum.iter_mut().zip(out.iter()) {
        *s = s.saturating_add(l);
    }
    min
}

/// The classical update over aligned slices: `below[i]`, `centre[i]`, `above[i]` hold `L_q` at
/// `d − 1`, `d`, `d + 1` of candidate `i`. Returns the minimum of `out`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn classic_update(
    cost: &[u16],
    below: &[u16],
    centre: &[u16],
    above: &[u16],
    min_q: u16,
    p1: u16,
    p2: u16,
    out: &mut [u16],
) -> u16 {
    let far = min_q.saturating_add(p2);
    let mut lowest = INF;
    // Equal-length slices and zipped iterators: no bounds checks, so the loop vectorises.
    for ((((o, &c), &b), &m0), &a) in out.iter_mut().zip(cost).zip(below).zip(centre).zip(above) {
        let m = m0.min(b.min(a).saturating_add(p1)).min(far);
        *o = c.saturating_add(m - min_q).min(INF - 1);
        lowest = lowest.min(*o);
    }
    lowest
}

/// [`classic_update`] when `q` has exactly `p`'s interval: the neighbours are shifted views
/// of `L_q`, the two end candidates are done apart.
#[inline(always)]
fn classic_same_interval(cost: &[u16], lq: &[u16], min_q: u16, p1: u16, p2: u16, out: &mut [u16]) -> u16 {
    let n = cost.len();
    let first = classic_update(&cost[..1], &[INF], &lq[..1], &lq[1..2], min_q, p1, p2, &mut out[..1]);
    let last = classic_update(&cost[n - 1..], &lq[n - 2..n - 1], &lq[n - 1..], &[INF], min_q, p1, p2, &mut out[n - 1..]);
    let middle = classic_update(&cost[1..n - 1], &lq[..n - 2], &lq[1..n - 1], &lq[2..], min_q, p1, p2, &mut out[1..n - 1]);
    first.min(last).min(middle)
}

/// Copies `costs` (starting at disparity `d_from`) into `scratch[0..len]` so that index `i`
/// holds disparity `d_start + i`; disparities outside `costs` get `INF`.
#[inline(always)]
fn align(costs: &[u16], d_from: i32, d_start: i32, len: usize, scratch: &mut Vec<u16>) {
    scratch.clear();
    scratch.resize(len, INF);
    let lo = (d_from - d_start).max(0);
    let hi = (d_from - d_start + costs.len() as i32).min(len as i32);
    if lo < hi {
        let src = (d_start + lo - d_from) as usize;
        scratch[lo as usize..hi as usize].copy_from_slice(&costs[src..src + (hi - lo) as usize]);
    }
}

#[inline(always)]
fn min_of(values: &[u16]) -> u16 {
    values.iter().copied().min().unwrap_or(INF)
}
