//! `exp`, `ln` and `pow` from basic arithmetic only.
//!
//! The standard library's transcendental functions call the platform's libm, whose last bits
//! differ between systems; a gamma curve or a Gaussian kernel computed with them could flip a
//! grey level on another machine and break the "same seed, same bytes" promise. These
//! versions use only +, −, ×, ÷ and bit manipulation, which IEEE 754 fixes exactly. They are
//! accurate to a few ulps, far more than an image needs.

/// ln 2 split in a high part with zero low bits and the rest (fdlibm's constants), so that
/// `k · LN2_HI` is exact.
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
const LN2: f64 = std::f64::consts::LN_2;

/// e^x (0 below −708, +∞ above 709).
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.0 {
        return f64::INFINITY;
    }
    if x < -708.0 {
        return 0.0;
    }
    let k = (x / LN2 + if x >= 0.0 { 0.5 } else { -0.5 }) as i64; // round to nearest
    let r = (x - k as f64 * LN2_HI) - k as f64 * LN2_LO; // |r| ≤ ~0.35
    // Taylor series of e^r to degree 14 (error < 1e-17 on |r| ≤ 0.35), Horner form.
    let mut p = 1.0;
    for n in (1..=14).rev() {
        p = 1.0 + p * r / n as f64;
    }
    p * f64::from_bits(((k + 1023) as u64) << 52)
}

/// Natural logarithm (NaN for negative input, −∞ for 0).
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return x;
    }
    let (mut m, mut e) = (x, 0i64);
    if m < f64::MIN_POSITIVE {
        m *= (1u64 << 54) as f64;
        e -= 54;
    }
    let bits = m.to_bits();
    e += ((bits >> 52) & 0x7FF) as i64 - 1023;
    m = f64::from_bits((bits & !(0x7FFu64 << 52)) | (1023u64 << 52)); // m in [1, 2)
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut sum = 0.0;
    for k in (0..=12).rev() {
        sum = 1.0 / (2 * k + 1) as f64 + s2 * sum;
    }
    e as f64 * LN2_HI + (e as f64 * LN2_LO + 2.0 * s * sum)
}

/// x^y for x ≥ 0 (0^y = 0 for y > 0, 1 for y = 0).
pub fn pow(x: f64, y: f64) -> f64 {
    if y == 0.0 {
        return 1.0;
    }
    if x == 0.0 {
        return 0.0;
    }
    exp(y * ln(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_std() {
        for i in -200..200 {
            let x = i as f64 * 0.173;
            let (a, b) = (exp(x), x.exp());
            assert!((a - b).abs() <= 4.0 * f64::EPSILON * b, "exp({x}): {a} vs {b}");
        }
        for i in 1..2000 {
            let x = i as f64 * 0.0371;
            assert!((ln(x) - x.ln()).abs() < 1e-14 * (1.0 + x.ln().abs()), "ln({x})");
        }
        assert!((pow(0.5, 2.2) - 0.5f64.powf(2.2)).abs() < 1e-14);
        assert_eq!(pow(0.0, 2.0), 0.0);
        assert_eq!(ln(1.0), 0.0);
    }
}
