//! Runtime CPU-feature dispatch for the hot loops.
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
