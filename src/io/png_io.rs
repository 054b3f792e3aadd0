//! PNG input through the `image` crate: the header is read first (size and sample type known
//! without decoding), the pixels decoded whole only when their declared size fits the budget.

use super::limits;
use super::raster::{Raster, SampleFormat};
use crate::error::{Error, Result};
use image::{ColorType, DynamicImage, ImageDecoder};
use ndarray::Array2;
use std::path::Path;

/// Luma weights of ITU-R BT.601 (OpenCV's RGB2GRAY).
pub(crate) const LUMA: [f32; 3] = [0.299, 0.587, 0.114];

/// What a PNG's header declares: size, sample format and layout, read without decoding pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PngHeader {
    pub width: usize,
    pub height: usize,
    pub format: SampleFormat,
    pub channels: usize,
    pub alpha: bool,
}

impl PngHeader {
    /// Bytes a whole decode holds at its peak: the decoded buffer, its samples as f32, and the
    /// grey values and validity (`None` past 2⁶⁴).
    fn decode_bytes(&self) -> Option<u64> {
        let pixels = limits::product(&[self.width as u64, self.height as u64])?;
        let sample_bytes = if self.format == SampleFormat::U16 { 2 } else { 1 };
        let decoded = limits::product(&[pixels, self.channels as u64, sample_bytes])?;
        let as_f32 = limits::product(&[pixels, self.channels as u64, 4])?;
        decoded.checked_add(as_f32)?.checked_add(limits::product(&[pixels, 5])?)
    }

    /// An error naming `path` when decoding it whole would pass the readers' ceiling.
    pub(crate) fn check_budget(&self, path: &Path) -> Result<()> {
        limits::check_alloc(path, &format!("{} × {} pixels", self.width, self.height), self.decode_bytes())
    }
}

fn open_decoder(path: &Path) -> Result<(PngHeader, impl ImageDecoder)> {
    // The size first, from IHDR alone (nothing allocated): one decoded row must fit the ceiling
    // before a decoder sets up its row buffers.
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut png_decoder = png::Decoder::new(std::io::BufReader::new(file));
    let info = png_decoder.read_header_info().map_err(|e| Error::decode(path, e))?;
    let (w, h) = (u64::from(info.width), u64::from(info.height));
    limits::check_alloc(path, &format!("{w} × {h} pixels"), limits::product(&[w, 4 * 8 + 5]))?;
    let mut reader = image::ImageReader::open(path).map_err(|e| Error::io(path, e))?;
    reader.limits(image::Limits::no_limits());
    let reader = reader.with_guessed_format().map_err(|e| Error::io(path, e))?;
    let decoder = reader.into_decoder().map_err(|e| Error::decode(path, e))?;
    let (w, h) = decoder.dimensions();
    let (format, channels, alpha) = match decoder.color_type() {
        ColorType::L8 => (SampleFormat::U8, 1, false),
        ColorType::La8 => (SampleFormat::U8, 2, true),
        ColorType::Rgb8 => (SampleFormat::U8, 3, false),
        ColorType::Rgba8 => (SampleFormat::U8, 4, true),
        ColorType::L16 => (SampleFormat::U16, 1, false),
        ColorType::La16 => (SampleFormat::U16, 2, true),
        ColorType::Rgb16 => (SampleFormat::U16, 3, false),
        ColorType::Rgba16 => (SampleFormat::U16, 4, true),
        other => {
            return Err(Error::unsupported(
                path,
                format!("PNG pixel type {other:?}; use 8 or 16-bit grey, grey + alpha, RGB or RGBA"),
            ));
        }
    };
    Ok((PngHeader { width: w as usize, height: h as usize, format, channels, alpha }, decoder))
}

/// The header of a PNG: its size and sample format, without decoding any pixel.
pub(crate) fn read_png_header(path: &Path) -> Result<PngHeader> {
    Ok(open_decoder(path)?.0)
}

/// Decodes a whole PNG to one grey band, after checking that what its header declares fits the
/// readers' allocation ceiling ([`limits`]).
pub(crate) fn read_png(path: &Path) -> Result<Raster> {
    let (header, mut decoder) = open_decoder(path)?;
    let PngHeader { width: w, height: h, format, channels, alpha } = header;
    header.check_budget(path)?;
    decoder.set_limits(image::Limits::no_limits()).map_err(|e| Error::decode(path, e))?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| Error::decode(path, e))?;
    let samples: Vec<f32> = match img {
        DynamicImage::ImageLuma8(b) => to_f32(b.into_raw()),
        DynamicImage::ImageLumaA8(b) => to_f32(b.into_raw()),
        DynamicImage::ImageRgb8(b) => to_f32(b.into_raw()),
        DynamicImage::ImageRgba8(b) => to_f32(b.into_raw()),
        DynamicImage::ImageLuma16(b) => to_f32(b.into_raw()),
        DynamicImage::ImageLumaA16(b) => to_f32(b.into_raw()),
        DynamicImage::ImageRgb16(b) => to_f32(b.into_raw()),
        DynamicImage::ImageRgba16(b) => to_f32(b.into_raw()),
        other => {
            return Err(Error::unsupported(path, format!("PNG pixel type {:?}", other.color())));
        }
    };
    if samples.len() < w * h * channels {
        return Err(Error::decode(path, format!("{} samples decoded, {} expected", samples.len(), w * h * channels)));
    }
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
