//! Each view's camera model: vignetting, optical blur, tone curve, sensor noise,
//! compression, quantisation.
//!
//! The two views get different models (drawn per pair, scaled by `--radiometric`), because
//! a matcher trained on identical radiometry learns to rely on it. The order follows the
//! physics: vignetting and blur act on linear radiance, the tone curve (gain, offset, gamma)
//! maps it to grey values, noise is signal-dependent (read + shot noise), then an optional
//! JPEG-like block DCT quantisation and the final rounding. Only basic arithmetic and the
//! crate's own [`detmath`](super::detmath) are used, so the bytes are the same everywhere.

use super::detmath;
use super::rng::Rng;
use super::scene::Radiometry;
use ndarray::Array2;

/// Applies `model` to `radiance` and returns grey values on `bits` bits (0..=2^bits − 1).
pub fn expose(radiance: &Array2<f32>, model: &Radiometry, bits: u8, jpeg_quality: Option<u8>, rng: &mut Rng) -> Array2<u16> {
    let (h, w) = radiance.dim();
    let mut img = radiance.clone();
    if model.vignetting > 0.0 {
        let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        let r2max = cx * cx + cy * cy;
        for ((y, x), v) in img.indexed_iter_mut() {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            *v *= (1.0 - model.vignetting * (dx * dx + dy * dy) / r2max.max(1.0)) as f32;
        }
    }
    if model.blur_px > 0.01 {
        img = blur(&img, model.blur_px);
    }
    let curve = ToneCurve::new(model);
    let full = 255.0f32;
    let mut grey = img.mapv(|v| curve.apply(v) * full);
    if model.noise_dn > 0.0 {
        let k = model.noise_dn as f32;
        for v in grey.iter_mut() {
            let level = (*v / full).max(0.0);
            let sigma = k * ((0.25 + level) / 0.75).sqrt();
            *v += sigma * rng.normal() as f32;
        }
    }
    if let Some(q) = jpeg_quality {
        dct_quantise(&mut grey, q);
    }
    let max = ((1u32 << bits) - 1) as f32;
    grey.mapv(|v| ((v / full).clamp(0.0, 1.0) * max).round() as u16)
}

/// `(gain·L + offset)^gamma`, clipped to [0, 1], through a 4096-entry table.
struct ToneCurve {
    gain: f32,
    offset: f32,
    table: Vec<f32>,
}

const CURVE_SIZE: usize = 4096;

impl ToneCurve {
    fn new(m: &Radiometry) -> Self {
        let table = (0..=CURVE_SIZE).map(|i| detmath::pow(i as f64 / CURVE_SIZE as f64, m.gamma) as f32).collect();
        ToneCurve { gain: m.gain as f32, offset: m.offset as f32, table }
    }

    /// The exact curve (for inverting it in tests: see [`invert_tone`]).
    #[inline]
    fn apply(&self, radiance: f32) -> f32 {
        let v = (self.gain * radiance + self.offset).clamp(0.0, 1.0) * CURVE_SIZE as f32;
        let i = (v as usize).min(CURVE_SIZE - 1);
        let t = v - i as f32;
        self.table[i] + (self.table[i + 1] - self.table[i]) * t
    }
}

/// Maps a grey value in [0, 1] back to radiance under `model` (ignoring blur, noise,
/// vignetting and clipping), for checking the pair against its ground truth.
pub fn invert_tone(grey: f64, model: &Radiometry) -> f64 {
    (detmath::pow(grey.max(0.0), 1.0 / model.gamma) - model.offset) / model.gain
}

/// Separable Gaussian blur with edge clamping.
pub fn blur(img: &Array2<f32>, sigma_px: f64) -> Array2<f32> {
    let radius = (3.0 * sigma_px).ceil() as isize;
    let mut kernel: Vec<f32> = (-radius..=radius).map(|i| detmath::exp(-((i * i) as f64) / (2.0 * sigma_px * sigma_px)) as f32).collect();
    let sum: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= sum);
    let (h, w) = img.dim();
    let src = img.as_standard_layout();
    let src = src.as_slice().expect("standard layout");
    let r = radius as usize;
    // Rows: pad each row by clamping, then convolve.
    let mut tmp = vec![0.0f32; h * w];
    let mut padded = vec![0.0f32; w + 2 * r];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for (i, p) in padded.iter_mut().enumerate() {
            *p = row[(i as isize - radius).clamp(0, w as isize - 1) as usize];
        }
        for (x, out) in tmp[y * w..(y + 1) * w].iter_mut().enumerate() {
            *out = kernel.iter().zip(&padded[x..x + kernel.len()]).map(|(k, v)| k * v).sum();
        }
    }
    // Columns: accumulate whole rows, clamped at the borders.
    let mut out = vec![0.0f32; h * w];
    for y in 0..h {
        let dst = &mut out[y * w..(y + 1) * w];
        for (k, &kv) in kernel.iter().enumerate() {
            let yi = (y as isize + k as isize - radius).clamp(0, h as isize - 1) as usize;
            for (d, s) in dst.iter_mut().zip(&tmp[yi * w..(yi + 1) * w]) {
                *d += kv * s;
            }
        }
    }
    Array2::from_shape_vec((h, w), out).expect("h × w values")
}

/// cos(kπ/16), k = 0..=8, written out so that no libm is involved.
const COS16: [f64; 9] = [
    1.0,
    0.980_785_280_403_230_4,
    0.923_879_532_511_286_7,
    0.831_469_612_302_545_2,
    std::f64::consts::FRAC_1_SQRT_2,
    0.555_570_233_019_602_2,
    0.382_683_432_365_089_8,
    0.195_090_322_016_128_3,
    0.0,
];

/// The standard JPEG luminance quantisation table.
const JPEG_LUMA: [u16; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80,
    62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95,
    98, 112, 100, 103, 99,
];

/// The orthonormal 8-point DCT-II matrix.
fn dct_matrix() -> [[f32; 8]; 8] {
    let mut m = [[0.0f32; 8]; 8];
    for (u, row) in m.iter_mut().enumerate() {
        let c = if u == 0 { 0.353_553_390_593_273_8 } else { 0.5 };
        for (n, v) in row.iter_mut().enumerate() {
            let mut k = ((2 * n + 1) * u) % 32;
            if k > 16 {
                k = 32 - k;
            }
            let cos = if k <= 8 { COS16[k] } else { -COS16[16 - k] };
            *v = (c * cos) as f32;
        }
    }
    m
}

#[allow(clippy::needless_range_loop)] // matrix products read best with indices
/// JPEG-like artefacts: each 8 × 8 block (grey levels 0..255) goes through the DCT, its
/// coefficients are rounded to multiples of the quality-scaled JPEG table, and back.
pub fn dct_quantise(img: &mut Array2<f32>, quality: u8) {
    let q = quality.clamp(1, 100) as u32;
    let scale = if q < 50 { 5000 / q } else { 200 - 2 * q };
    let table: Vec<f32> = JPEG_LUMA.iter().map(|&t| ((t as u32 * scale + 50) / 100).max(1) as f32).collect();
    let m = dct_matrix();
    let (h, w) = img.dim();
    let mut block = [[0.0f32; 8]; 8];
    let mut tmp = [[0.0f32; 8]; 8];
    for by in (0..h).step_by(8) {
        for bx in (0..w).step_by(8) {
            for (i, row) in block.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    let (y, x) = ((by + i).min(h - 1), (bx + j).min(w - 1));
                    *v = img[(y, x)] - 128.0;
                }
            }
            // Forward: M · B · Mᵀ.
            for u in 0..8 {
                for j in 0..8 {
                    tmp[u][j] = (0..8).map(|i| m[u][i] * block[i][j]).sum();
                }
            }
            for u in 0..8 {
                for v in 0..8 {
                    let c: f32 = (0..8).map(|j| tmp[u][j] * m[v][j]).sum();
                    let qv = table[u * 8 + v];
                    block[u][v] = (c / qv).round() * qv;
                }
            }
            // Inverse: Mᵀ · C · M.
            for i in 0..8 {
                for v in 0..8 {
                    tmp[i][v] = (0..8).map(|u| m[u][i] * block[u][v]).sum();
                }
            }
            for i in 0..8 {
                for j in 0..8 {
                    let (y, x) = (by + i, bx + j);
                    if y < h && x < w {
                        img[(y, x)] = (0..8).map(|v| tmp[i][v] * m[v][j]).sum::<f32>() + 128.0;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_round_trip_at_best_quality_is_close() {
        let mut img = Array2::from_shape_fn((16, 24), |(y, x)| ((x * 7 + y * 13) % 255) as f32);
        let orig = img.clone();
        dct_quantise(&mut img, 100);
        let max = img.iter().zip(&orig).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(max < 3.0, "max error {max}");
    }

    #[test]
    fn tone_curve_inverts() {
        let m = Radiometry { gain: 1.1, offset: 0.02, gamma: 0.9, blur_px: 0.0, noise_dn: 0.0, vignetting: 0.0 };
        let c = ToneCurve::new(&m);
        for i in 0..50 {
            let l = i as f32 / 60.0;
            let back = invert_tone(c.apply(l) as f64, &m);
            assert!((back - l as f64).abs() < 1e-3, "{l} → {back}");
        }
    }
}
