//! Example deepsim plugin: zero-mean normalised cross-correlation, cost `(1 − ncc) / 2`.
//!
//! Options (`--plugin-options`, comma- or space-separated `key=value`):
//! - `window=N`: odd square window side, 3 to 31 (default 7);
//! - `adaptive=true|false` (default false): shiftable windows — the cost of a candidate is the
//!   best of five windows, centred and shifted by the window radius left, right, up and down
//!   (both images shifted alike), so that a pixel next to a depth edge can use a window lying
//!   on its own side of the edge. The centred window alone is the engine's built-in `ncc`, and
//!   with `adaptive=false` this plugin computes exactly the built-in's costs (same arithmetic,
//!   same order), which the test suite checks disparity for disparity.

use deepsim_plugin_api::rust::{cost_from_unit, Block, Level, Plugin};
use deepsim_plugin_api::DS_COST_ONE;
use std::ffi::CStr;

/// Added to window variances (grey values in [0, 1]) so that flat windows give a correlation
/// near 0 (cost 0.5) instead of a division by zero (the built-in's value).
const VARIANCE_EPS: f32 = 1e-6;

struct Zncc {
    radius: usize,
    adaptive: bool,
    pair: Option<Prepared>,
}

struct Prepared {
    left: WindowStats,
    right: WindowStats,
}

/// An image padded by `r` (edge replicated), with the mean and 1/(n·σ) of every window.
struct WindowStats {
    width: usize,
    height: usize,
    padded: Vec<f32>,
    padded_width: usize,
    mean: Vec<f32>,
    inv_norm: Vec<f32>,
}

impl WindowStats {
    fn new(image: &deepsim_plugin_api::rust::Image<'_>, r: usize) -> Self {
        let (h, w) = (image.height(), image.width());
        let (ph, pw) = (h + 2 * r, w + 2 * r);
        let mut padded = vec![0f32; ph * pw];
        for y in 0..ph {
            for x in 0..pw {
                padded[y * pw + x] = image.get(x.saturating_sub(r).min(w - 1), y.saturating_sub(r).min(h - 1));
            }
        }
        let n = ((2 * r + 1) * (2 * r + 1)) as f64;
        // Integral images of the padded image and its square (f64: no cancellation trouble).
        let iw = pw + 1;
        let mut sum = vec![0f64; (ph + 1) * iw];
        let mut sq = vec![0f64; (ph + 1) * iw];
        for y in 0..ph {
            for x in 0..pw {
                let v = padded[y * pw + x] as f64;
                sum[(y + 1) * iw + x + 1] = v + sum[y * iw + x + 1] + sum[(y + 1) * iw + x] - sum[y * iw + x];
                sq[(y + 1) * iw + x + 1] = v * v + sq[y * iw + x + 1] + sq[(y + 1) * iw + x] - sq[y * iw + x];
            }
        }
        let k = 2 * r + 1;
        let window = |a: &[f64], y: usize, x: usize| a[(y + k) * iw + x + k] - a[y * iw + x + k] - a[(y + k) * iw + x] + a[y * iw + x];
        let mut mean = vec![0f32; h * w];
        let mut inv_norm = vec![0f32; h * w];
        for y in 0..h {
            for x in 0..w {
                let m = window(&sum, y, x) / n;
                let var = (window(&sq, y, x) / n - m * m).max(0.0) as f32 + VARIANCE_EPS;
                mean[y * w + x] = m as f32;
                inv_norm[y * w + x] = 1.0 / (n as f32 * var.sqrt());
            }
        }
        WindowStats { width: w, height: h, padded, padded_width: pw, mean, inv_norm }
    }
}

impl Zncc {
    /// The NCC cost of the windows centred on left `(xl, y)` and right `(xr, y)`.
    fn cost(&self, pair: &Prepared, y: usize, xl: usize, xr: usize) -> u16 {
        let left = (pair.left.mean[y * pair.left.width + xl], pair.left.inv_norm[y * pair.left.width + xl]);
        self.cost_with(pair, left, y, xl, xr)
    }

    /// As [`Zncc::cost`], given the left window's mean and 1/(n·σ) — the built-in's arithmetic,
    /// in the same order, so that both give the same costs to the bit.
    #[inline(always)]
    fn cost_with(&self, pair: &Prepared, (ml, il): (f32, f32), y: usize, xl: usize, xr: usize) -> u16 {
        let k = 2 * self.radius + 1;
        let n = (k * k) as f32;
        let (lw, rw) = (pair.left.padded_width, pair.right.padded_width);
        let (lwin, rwin) = (&pair.left.padded[y * lw + xl..], &pair.right.padded[y * rw + xr..]);
        let mut dot = 0.0f32;
        for j in 0..k {
            let (lrow, rrow) = (&lwin[j * lw..j * lw + k], &rwin[j * rw..j * rw + k]);
            dot += lrow.iter().zip(rrow).map(|(a, b)| a * b).sum::<f32>();
        }
        let (mr, ir) = (pair.right.mean[y * pair.right.width + xr], pair.right.inv_norm[y * pair.right.width + xr]);
        let ncc = (dot - n * ml * mr) * il * ir * n;
        cost_from_unit((1.0 - ncc.clamp(-1.0, 1.0)) * 0.5)
    }

    /// The best cost over the centred and the four shifted windows that fit in both images.
    fn adaptive_cost(&self, pair: &Prepared, y: usize, xl: usize, xr: usize) -> u16 {
        let r = self.radius as i64;
        let (wl, wr, h) = (pair.left.width as i64, pair.right.width as i64, pair.left.height as i64);
        let mut best = self.cost(pair, y, xl, xr);
        for (sx, sy) in [(-r, 0), (r, 0), (0, -r), (0, r)] {
            let (xs, xrs, ys) = (xl as i64 + sx, xr as i64 + sx, y as i64 + sy);
            if (0..wl).contains(&xs) && (0..wr).contains(&xrs) && (0..h).contains(&ys) {
                best = best.min(self.cost(pair, ys as usize, xs as usize, xrs as usize));
            }
        }
        best
    }
}

impl Plugin for Zncc {
    const NAME: &'static CStr = c"zncc";

    fn create(options: &str) -> Result<Self, String> {
        let mut window = 7usize;
        let mut adaptive = false;
        for item in options.split([',', ' ', '\t', '\n']).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("zncc option '{item}': expected key=value (window=7, adaptive=true)"))?;
            match key.trim() {
                "window" => {
                    window = value.trim().parse().map_err(|_| format!("zncc option window='{value}': expected an odd integer, e.g. window=7"))?;
                    if window.is_multiple_of(2) || !(3..=31).contains(&window) {
                        return Err(format!("zncc option window={window}: must be odd, between 3 and 31 (e.g. 5, 7, 9)"));
                    }
                }
                "adaptive" => {
                    adaptive = match value.trim() {
                        "true" | "1" | "yes" => true,
                        "false" | "0" | "no" => false,
                        other => return Err(format!("zncc option adaptive='{other}': expected true or false")),
                    }
                }
                other => return Err(format!("zncc option '{other}' is unknown; the options are window=N and adaptive=true|false")),
            }
        }
        Ok(Zncc { radius: window / 2, adaptive, pair: None })
    }

    fn prepare(&mut self, level: &Level<'_>) -> Result<(), String> {
        if level.left.width() == 0 || level.right.width() == 0 || level.left.height() == 0 {
            return Err("zncc: empty image".into());
        }
        self.pair = Some(Prepared { left: WindowStats::new(&level.left, self.radius), right: WindowStats::new(&level.right, self.radius) });
        Ok(())
    }

    fn compute(&mut self, block: &mut Block<'_>) -> Result<(), String> {
        let pair = self.pair.as_ref().ok_or("zncc: compute before prepare")?;
        if block.width() != pair.left.width || block.y0() + block.rows() > pair.left.height {
            return Err(format!(
                "zncc: block of {} rows from row {} and {} columns does not fit the prepared {}×{} image",
                block.rows(),
                block.y0(),
                block.width(),
                pair.left.width,
                pair.left.height
            ));
        }
        let wr = pair.right.width as i64;
        for px in block.pixels() {
            let first_xr = px.x as i64 - px.d_min as i64;
            if self.adaptive {
                for (i, c) in px.costs.iter_mut().enumerate() {
                    let xr = first_xr - i as i64;
                    *c = if (0..wr).contains(&xr) { self.adaptive_cost(pair, px.y, px.x, xr as usize) } else { DS_COST_ONE };
                }
                continue;
            }
            let w = pair.left.width;
            let left = (pair.left.mean[px.y * w + px.x], pair.left.inv_norm[px.y * w + px.x]);
            for (i, c) in px.costs.iter_mut().enumerate() {
                let xr = first_xr - i as i64;
                *c = if (0..wr).contains(&xr) { self.cost_with(pair, left, px.y, px.x, xr as usize) } else { DS_COST_ONE };
            }
        }
        Ok(())
    }
}

deepsim_plugin_api::export_plugin!(Zncc);
