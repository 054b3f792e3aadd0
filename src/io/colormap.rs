//! Colour-mapped previews of disparity maps (a perceptually ordered "turbo"-like ramp;
//! invalid pixels in black).

use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// Control points of the ramp, from low to high disparity.
const RAMP: [[f32; 3]; 7] = [
    [48.0, 18.0, 59.0],
    [65.0, 105.0, 225.0],
    [27.0, 207.0, 212.0],
    [97.0, 252.0, 108.0],
    [210.0, 232.0, 53.0],
    [254.0, 155.0, 45.0],
    [122.0, 4.0, 3.0],
];

/// RGB bytes (row-major, 3 per pixel) of the disparity map, scaled between the 1st and 99th
/// percentiles of its finite values.
pub fn disparity_preview_rgb(disparity: &Array2<f32>) -> Vec<u8> {
    let mut finite: Vec<f32> = disparity.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = if finite.is_empty() {
        (0.0, 1.0)
    } else {
        let n = finite.len();
        let lo = *finite.select_nth_unstable_by((n - 1) / 100, f32::total_cmp).1;
        let hi = *finite.select_nth_unstable_by((n - 1) * 99 / 100, f32::total_cmp).1;
        (lo, if hi > lo { hi } else { lo + 1.0 })
    };
    let mut rgb = Vec::with_capacity(disparity.len() * 3);
    for &d in disparity.iter() {
        if !d.is_finite() {
            rgb.extend_from_slice(&[0, 0, 0]);
            continue;
        }
        let t = ((d - lo) / (hi - lo)).clamp(0.0, 1.0) * (RAMP.len() - 1) as f32;
        let i = (t.floor() as usize).min(RAMP.len() - 2);
        let f = t - i as f32;
        for (lo, hi) in RAMP[i].iter().zip(&RAMP[i + 1]) {
            rgb.push((lo * (1.0 - f) + hi * f).round() as u8);
        }
    }
    rgb
}

/// Writes the colour-mapped preview of `disparity` as an RGB PNG.
pub fn write_preview_png(path: &Path, disparity: &Array2<f32>) -> Result<()> {
    let (h, w) = disparity.dim();
    let rgb = disparity_preview_rgb(disparity);
    let file = super::atomic::create_file(path)?;
    // The fast deflate: the preview is for eyes, and the default level took longer than
    // several matching stages on a 2048² map (written last, on one thread).
    let encoder = image::codecs::png::PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        image::codecs::png::CompressionType::Fast,
        image::codecs::png::FilterType::Adaptive,
    );
    image::ImageEncoder::write_image(encoder, &rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| Error::new(crate::error::ErrorKind::Io, format!("{}: {e}", path.display())))
}
