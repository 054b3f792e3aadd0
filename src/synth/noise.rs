//! Value noise: the multi-scale randomness behind terrain relief, grass, asphalt, foliage.
//!
//! A 256 × 256 table of random values, bilinearly interpolated with a smoothstep and summed
//! over octaves (fBm). A table lookup is several times cheaper than hashing lattice corners,
//! which matters at ~10 million evaluations per pair; each octave is rotated and offset so
//! that the table's period and its axes do not show.

use super::rng::Rng;

const N: usize = 256;
const MASK: i64 = (N - 1) as i64;

/// A table of value noise owned by one scene.
pub struct Noise {
    table: Vec<f32>,
}

/// Rotation between octaves (a rotation by ~36.87°, exact in binary: 0.8 = 4/5, 0.6 = 3/5
/// are not exact, but the same everywhere, which is what matters).
const ROT: (f64, f64) = (0.8, 0.6);

impl Noise {
    /// A table filled from `rng`, values uniform in [−1, 1].
    pub fn new(rng: &mut Rng) -> Self {
        Noise { table: (0..N * N).map(|_| rng.range(-1.0, 1.0) as f32).collect() }
    }

    /// Smooth noise in [−1, 1] with a feature size of 1 unit.
    #[inline]
    pub fn value(&self, x: f64, y: f64) -> f32 {
        let (ix, iy) = (floor_i64(x), floor_i64(y));
        let (tx, ty) = ((x - ix as f64) as f32, (y - iy as f64) as f32);
        let (x0, y0) = ((ix & MASK) as usize, (iy & MASK) as usize);
        let (x1, y1) = ((x0 + 1) & (N - 1), (y0 + 1) & (N - 1));
        let sx = tx * tx * (3.0 - 2.0 * tx);
        let sy = ty * ty * (3.0 - 2.0 * ty);
        let t = &self.table;
        let a = t[y0 * N + x0] + (t[y0 * N + x1] - t[y0 * N + x0]) * sx;
        let b = t[y1 * N + x0] + (t[y1 * N + x1] - t[y1 * N + x0]) * sx;
        a + (b - a) * sy
    }

    /// Raw table cell: white noise in [−1, 1] per integer lattice point (no interpolation).
    #[inline]
    pub fn cell(&self, i: i64, j: i64) -> f32 {
        self.table[((j & MASK) as usize) * N + (i & MASK) as usize]
    }

    /// [`fbm`](Self::fbm) as seen through pixels of `pixel_m`: each octave is weighted by
    /// [`fade`] of its feature size, so detail finer than a pixel averages out instead of
    /// aliasing (normalised as the full sum, so contrast drops as a camera's would).
    pub fn fbm_limited(&self, x: f64, y: f64, scale: f64, octaves: u32, pixel_m: f64) -> f32 {
        let (mut px, mut py) = (x / scale, y / scale);
        let (mut sum, mut amp, mut norm) = (0.0f32, 1.0f32, 0.0f32);
        let mut feature = scale;
        for o in 0..octaves {
            let k = fade(feature, pixel_m);
            if k > 0.0 {
                sum += k * amp * self.value(px + 17.31 * o as f64, py - 41.7 * o as f64);
            }
            norm += amp;
            amp *= 0.5;
            feature *= 0.5;
            let (rx, ry) = (ROT.0 * px - ROT.1 * py, ROT.1 * px + ROT.0 * py);
            px = 2.0 * rx;
            py = 2.0 * ry;
        }
        sum / norm
    }

    /// Fractal sum of `octaves` octaves, feature size `scale` (same units as x, y),
    /// each octave half the size and half the amplitude; normalised to [−1, 1].
    pub fn fbm(&self, x: f64, y: f64, scale: f64, octaves: u32) -> f32 {
        let (mut px, mut py) = (x / scale, y / scale);
        let (mut sum, mut amp, mut norm) = (0.0f32, 1.0f32, 0.0f32);
        for o in 0..octaves {
            sum += amp * self.value(px + 17.31 * o as f64, py - 41.7 * o as f64);
            norm += amp;
            amp *= 0.5;
            let (rx, ry) = (ROT.0 * px - ROT.1 * py, ROT.1 * px + ROT.0 * py);
            px = 2.0 * rx;
            py = 2.0 * ry;
        }
        sum / norm
    }
}

/// ⌊x⌋ as an integer, exact for |x| < 2⁶³; inlined, where `f64::floor` may be a libm call
/// on targets without SSE4.1.
#[inline]
pub fn floor_i64(x: f64) -> i64 {
    let i = x as i64;
    if (i as f64) > x { i - 1 } else { i }
}

/// ⌊x⌋ as a float (see [`floor_i64`]).
#[inline]
pub fn floor(x: f64) -> f64 {
    floor_i64(x) as f64
}

/// How much of a texture feature of size `feature_m` survives averaging over a pixel of
/// `pixel_m`: 1 from 1.2 px up, 0 below 0.4 px.
#[inline]
pub fn fade(feature_m: f64, pixel_m: f64) -> f32 {
    ((feature_m / pixel_m - 0.4) / 0.8).clamp(0.0, 1.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_continuous() {
        let n = Noise::new(&mut Rng::new(3));
        let mut prev = n.value(-3.0, 5.5);
        for i in 1..5000 {
            let x = -3.0 + i as f64 * 0.001;
            let v = n.value(x, 5.5);
            assert!((-1.0..=1.0).contains(&v));
            assert!((v - prev).abs() < 0.01);
            prev = v;
        }
        for i in 0..1000 {
            let v = n.fbm(i as f64 * 0.37, i as f64 * -1.3, 4.0, 4);
            assert!((-1.0..=1.0).contains(&v));
        }
    }
}
