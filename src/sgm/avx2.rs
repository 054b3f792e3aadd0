//! The classical path step in AVX2 intrinsics, added into the sum in the same pass.
//!
//! Why a hand-written kernel: per-pixel intervals are short (a few tens of candidates), and the
//! compiler's vectorised loops for them left most candidates to scalar code (the interior
//! `1 .. n − 1` of an interval, which the same-interval case ran on, is never a whole number of
//! registers, and unrolled loops need several registers' worth of candidates). Here every whole
//! group of 16 candidates is one register: the neighbours `d ± 1` are loads shifted by one
//! value, except in the first and last register, whose end lanes take `L_q` just outside the
//! interval by a shift in registers; a scalar tail does the rest (none at the finest level, whose
//! intervals are widened to whole registers). When `q`'s interval is `p`'s (the common case)
//! nothing is copied. The step, the addition into the sum and the minimum are one pass
//! instead of three.
//!
//! The arithmetic is exactly [`super::kernel`]'s (saturating u16, capped at `INF − 1`): the
//! results are identical, which the test below and the reference tests check.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use super::kernel::INF;

/// Whether the CPU runs [`classic_add`].
#[inline]
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One candidate of the classical step: `L_p = min(C_p + min(L_q(d), L_q(d ± 1) + p1, far) − min L_q, INF − 1)`.
#[inline(always)]
fn classic_one(c: u16, below: u16, centre: u16, above: u16, min_q: u16, p1: u16, far: u16) -> u16 {
    let m = centre.min(below.min(above).saturating_add(p1)).min(far);
    c.saturating_add(m - min_q).min(INF - 1)
}

/// `L_p(d) = min(C_p(d) + min(L_q(d), L_q(d ± 1) + p1, min L_q + p2) − min L_q, INF − 1)` for
/// every candidate, written to `out` and added (saturating) to `sum`; returns `min L_p`.
/// `lq[i]` holds `L_q` at `p`'s candidate `i`; `edges` hold `L_q` just below the first and just
/// above the last candidate (`INF` where `q` has no such candidate).
///
/// # Safety
/// The CPU must support AVX2 ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(crate) unsafe fn classic_add(
    cost: &[u16],
    lq: &[u16],
    edges: (u16, u16),
    min_q: u16,
    (p1, p2): (u16, u16),
    out: &mut [u16],
    sum: &mut [u16],
) -> u16 {
    let n = cost.len();
    assert!(
        lq.len() == n && out.len() == n && sum.len() == n,
        "slices of one interval"
    );
    let far = min_q.saturating_add(p2);
    let vq = _mm256_set1_epi16(min_q as i16);
    let vp1 = _mm256_set1_epi16(p1 as i16);
    let vfar = _mm256_set1_epi16(far as i16);
    let vcap = _mm256_set1_epi16((INF - 1) as i16);
    let mut low = _mm256_set1_epi16(INF as i16);
    let whole = n / 16 * 16;
    let mut i = 0;
    while i < whole {
        // SAFETY: i + 16 ≤ n, so every load and store below is inside its slice; the shifted
        // loads at i − 1 and i + 1 are only made when they stay inside `lq`.
        unsafe {
            let load = |s: &[u16], at: usize| _mm256_loadu_si256(s.as_ptr().add(at) as *const __m256i);
            let c = load(cost, i);
            let centre = load(lq, i);
            // The neighbours below / above: loads shifted by one value, except in the first and
            // last register, whose end lane takes the edge (shifted in registers: a copy through
            // memory would stall the load behind the stores).
            let below = if i == 0 { shift_in_first(centre, edges.0) } else { load(lq, i - 1) };
            let above = if i + 16 == n { shift_in_last(centre, edges.1) } else { load(lq, i + 1) };
            let near = _mm256_adds_epu16(_mm256_min_epu16(below, above), vp1);
            let m = _mm256_min_epu16(_mm256_min_epu16(centre, near), vfar);
            let l = _mm256_min_epu16(_mm256_adds_epu16(c, _mm256_sub_epi16(m, vq)), vcap);
            _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, l);
            let s = load(sum, i);
            _mm256_storeu_si256(sum.as_mut_ptr().add(i) as *mut __m256i, _mm256_adds_epu16(s, l));
            low = _mm256_min_epu16(low, l);
        }
        i += 16;
    }
    let half = _mm_min_epu16(
        _mm256_castsi256_si128(low),
        _mm256_extracti128_si256::<1>(low),
    );
    let mut lowest = _mm_extract_epi16::<0>(_mm_minpos_epu16(half)) as u16;
    for i in whole..n {
        let below = if i == 0 { edges.0 } else { lq[i - 1] };
        let above = if i + 1 == n { edges.1 } else { lq[i + 1] };
        let l = classic_one(cost[i], below, lq[i], above, min_q, p1, far);
        out[i] = l;
        sum[i] = sum[i].saturating_add(l);
        lowest = lowest.min(l);
    }
    lowest
}

/// `[fill, v0, v1, …, v14]`: the lanes of `v` moved up by one, `fill` in lane 0.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn shift_in_first(v: __m256i, fill: u16) -> __m256i {
    // Per 128-bit half, `alignr` takes the top value of the half below: `fill` for the low
    // half, v7 for the high half.
    let below = _mm256_permute2x128_si256::<0x20>(_mm256_set1_epi16(fill as i16), v);
    _mm256_alignr_epi8::<14>(v, below)
}

/// `[v1, …, v15, fill]`: the lanes of `v` moved down by one, `fill` in lane 15.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn shift_in_last(v: __m256i, fill: u16) -> __m256i {
    // Per half, `alignr` takes the bottom value of the half above: v8 for the low half,
    // `fill` for the high half.
    let above = _mm256_permute2x128_si256::<0x21>(v, _mm256_set1_epi16(fill as i16));
    _mm256_alignr_epi8::<2>(above, v)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::{INF, available, classic_add, classic_one};

    #[test]
    fn the_avx2_step_equals_the_scalar_formula_on_random_intervals() {
        if !available() {
            eprintln!("no AVX2 on this CPU: the kernel is not used, nothing to test");
            return;
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |top: u32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % top as u64) as u16
        };
        for case in 0..3000 {
            let n = 1 + next(100) as usize;
            // Small costs most of the time; values near the saturation and INF some of the time.
            let top = if case % 5 == 0 { 65_535 } else { 4_000 };
            let cost: Vec<u16> = (0..n).map(|_| next(top)).collect();
            let mut padded: Vec<u16> = (0..n + 2)
                .map(|_| if next(10) == 0 { INF } else { next(top) })
                .collect();
            if case % 3 == 0 {
                (padded[0], padded[n + 1]) = (INF, INF);
            }
            if padded.iter().all(|&v| v == INF) {
                padded[1] = 7;
            }
            let min_q = padded.iter().copied().min().unwrap();
            let penalty = (next(3000), next(30_000));
            let far = min_q.saturating_add(penalty.1);
            let start: Vec<u16> = (0..n).map(|_| next(65_535)).collect();
            let expected: Vec<u16> = (0..n)
                .map(|i| {
                    classic_one(
                        cost[i],
                        padded[i],
                        padded[i + 1],
                        padded[i + 2],
                        min_q,
                        penalty.0,
                        far,
                    )
                })
                .collect();
            let expected_sum: Vec<u16> = start
                .iter()
                .zip(&expected)
                .map(|(s, &l)| s.saturating_add(l))
                .collect();
            let (mut out, mut sum) = (vec![0u16; n], start);
            let edges = (padded[0], padded[n + 1]);
            // SAFETY: checked above that the CPU has AVX2.
            let low = unsafe {
                classic_add(
                    &cost,
                    &padded[1..n + 1],
                    edges,
                    min_q,
                    penalty,
                    &mut out,
                    &mut sum,
                )
            };
            assert_eq!(out, expected, "case {case}, n = {n}");
            assert_eq!(sum, expected_sum, "case {case}, n = {n}");
            assert_eq!(low, *expected.iter().min().unwrap(), "case {case}, n = {n}");
        }
    }
}
