//! Runtime CPU-feature dispatch for the hot loops, and the dot product the learned cosine
//! paths share (the engine's cost fill and the MicMac cube fill).
//!
//! The hot loops are written as plain Rust over slices, `#[inline(always)]`, and compiled twice:
//! once for the baseline target and once inside a `#[target_feature(enable = "avx2,popcnt")]`
//! wrapper, where the compiler vectorises them with 256-bit registers (16 u16 lanes) and counts
//! bits with `popcnt`. `dispatch!` calls the wrapper when the CPU has these features.

/// Calls the AVX2 build of a worker when the CPU has AVX2 and POPCNT, the portable build
/// otherwise.
macro_rules! dispatch {
    ($avx2:expr, $portable:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("popcnt") {
                // SAFETY: the CPU supports AVX2 and POPCNT, checked just above.
                unsafe { $avx2 }
            } else {
                $portable
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $portable
        }
    }};
}

/// Dot product with independent partial sums, which the compiler vectorises; fully unrolled
/// for the common embedding sizes.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    match (a.len(), <&[f32; 64]>::try_from(a), <&[f32; 64]>::try_from(b)) {
        (64, Ok(a), Ok(b)) => dot_fixed(a, b),
        _ => dot_any(a, b),
    }
}

#[inline]
fn dot_fixed<const N: usize>(a: &[f32; N], b: &[f32; N]) -> f32 {
    let mut acc = [0f32; 16];
    for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a.chunks_exact(16).remainder().iter().zip(b.chunks_exact(16).remainder()).map(|(x, y)| x * y).sum();
    reduce(acc) + tail
}

#[inline]
fn dot_any(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    reduce(acc) + tail
}

#[inline]
fn reduce(acc: [f32; 16]) -> f32 {
    let mut s8 = [0f32; 8];
    for i in 0..8 {
        s8[i] = acc[i] + acc[i + 8];
    }
    (s8[0] + s8[4]) + (s8[1] + s8[5]) + (s8[2] + s8[6]) + (s8[3] + s8[7])
}

#[cfg(test)]
mod tests {
    use super::dot;

    #[test]
    fn dot_matches_the_plain_sum_for_every_length() {
        for n in [1, 7, 8, 16, 17, 64, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-5, "n = {n}");
        }
    }
}
