//! PNG input through the `image` crate.

use super::raster::{Raster, SampleFormat};
use crate::error::{Error, Result};
use image::DynamicImage;
use ndarray::Array2;
use std::path::Path;

/// Luma weights of ITU-R BT.601 (OpenCV's RGB2GRAY).
pub(crate) const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

pub(crate) fn read_png(path: &Path) -> Result<Raster> {
    let reader = image::ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = reader.with_guessed_format().map_err(|e| Error::io(path, e))?;
    reader.no_limits();
    let img = reader.decode().map_err(|e| Error::decode(path, e))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (format, channels, alpha, samples): (SampleFormat, usize, bool, Vec<f32>) = match img {
        DynamicImage::ImageLuma8(b) => (SampleFormat::U8, 1, false, to_f32(b.into_raw())),
        DynamicImage::ImageLumaA8(b) => (SampleFormat::U8, 2, true, to_f32(b.into_raw())),
        DynamicImage::ImageRgb8(b) => (SampleFormat::U8, 3, false, to_f32(b.into_raw())),
        DynamicImage::ImageRgba8(b) => (SampleFormat::U8, 4, true, to_f32(b.into_raw())),
        DynamicImage::ImageLuma16(b) => (SampleFormat::U16, 1, false, to_f32(b.into_raw())),
        DynamicImage::ImageLumaA16(b) => (SampleFormat::U16, 2, true, to_f32(b.into_raw())),
        DynamicImage::ImageRgb16(b) => (SampleFormat::U16, 3, false, to_f32(b.into_raw())),
        DynamicImage::ImageRgba16(b) => (SampleFormat::U16, 4, true, to_f32(b.into_raw())),
        other => {
            return Err(Error::unsupported(path, format!("PNG pixel type {:?}", other.color())));
        }
    };
    Ok(interleaved_to_grey(&samples, w, h, channels, alpha, format))
}

fn to_f32<T: Copy + Into<f32>>(v: Vec<T>) -> Vec<f32> {
    v.into_iter().map(Into::into).collect()
}

/// Converts interleaved samples (1 to 4 channels, the last one alpha when `alpha`) to grey.
pub(crate) fn interleaved_to_grey(
    samples: &[f32],
    w: usize,
    h: usize,
    channels: usize,
    alpha: bool,
    format: SampleFormat,
) -> Raster {
    let colour = if alpha { channels - 1 } else { channels };
    let mut values = Array2::zeros((h, w));
    let mut valid = Array2::from_elem((h, w), true);
    for (i, (v, ok)) in values.iter_mut().zip(valid.iter_mut()).enumerate() {
        let px = &samples[i * channels..(i + 1) * channels];
        *v = if colour >= 3 { LUMA[0] * px[0] + LUMA[1] * px[1] + LUMA[2] * px[2] } else { px[0] };
        *ok = v.is_finite() && !(alpha && px[channels - 1] == 0.0);
    }
    Raster { values, valid, format }
}
