//! The in-memory raster and the format-dispatching readers.

use super::{npy, pfm, png_io, tiff_io};
use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// The sample type a raster was stored with; decides how it maps to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SampleFormat {
    /// 8-bit unsigned.
    U8,
    /// 16-bit unsigned.
    U16,
    /// 16-bit signed.
    I16,
    /// 32-bit unsigned.
    U32,
    /// 32-bit signed.
    I32,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

/// A single-band raster in its native units, with a validity mask.
#[derive(Debug, Clone)]
pub struct Raster {
    /// Sample values, shape (height, width), in the file's units (grey levels, metres, pixels).
    pub values: Array2<f32>,
    /// True where the sample is usable (not nodata, not NaN, not transparent).
    pub valid: Array2<bool>,
    /// How the samples were stored.
    pub format: SampleFormat,
}

/// Options for reading an input image.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Samples equal to this value are invalid (overrides a GDAL_NODATA tag in the file).
    pub nodata: Option<f32>,
}

impl Raster {
    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.values.ncols()
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.values.nrows()
    }

    /// The raster mapped to [0, 1], the one rule shared with the training side:
    /// 8-bit samples are divided by 255; any other type is stretched linearly so that the
    /// 2nd and 98th percentiles of the valid samples map to 0 and 1, then clipped.
    /// Invalid pixels get 0.
    pub fn to_unit(&self) -> Array2<f32> {
        let (lo, hi) = match self.format {
            SampleFormat::U8 => (0.0, 255.0),
            _ => percentile_range(&self.values, &self.valid, 0.02, 0.98),
        };
        let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
        let mut out = Array2::zeros(self.values.raw_dim());
        ndarray::Zip::from(&mut out).and(&self.values).and(&self.valid).for_each(|o, &v, &ok| {
            *o = if ok { ((v - lo) * scale).clamp(0.0, 1.0) } else { 0.0 };
        });
        out
    }
}

/// The `lo`/`hi` quantiles of the valid samples, with linear interpolation between order
/// statistics (NumPy's default "linear" method, as the training side computes them).
fn percentile_range(values: &Array2<f32>, valid: &Array2<bool>, lo: f64, hi: f64) -> (f32, f32) {
    let mut samples: Vec<f32> =
        values.iter().zip(valid.iter()).filter(|(_, ok)| **ok).map(|(v, _)| *v).collect();
    if samples.is_empty() {
        return (0.0, 1.0);
    }
    (quantile(&mut samples, lo), quantile(&mut samples, hi))
}

/// The `q` quantile of `samples` (reordered in place), interpolated between neighbours.
fn quantile(samples: &mut [f32], q: f64) -> f32 {
    let h = q * (samples.len() - 1) as f64;
    let i = h.floor() as usize;
    let below = *samples.select_nth_unstable_by(i, f32::total_cmp).1 as f64;
    let above = if i + 1 < samples.len() {
        samples[i + 1..].iter().copied().fold(f32::INFINITY, f32::min) as f64
    } else {
        below
    };
    (below + (h - i as f64) * (above - below)) as f32
}

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// Reads an input image (PNG or TIFF; 8/16-bit, 32-bit float; grey, grey+alpha, RGB, RGBA),
/// converted to one grey band (ITU-R 601 luma weights, as OpenCV's RGB2GRAY).
/// Invalid pixels: NaN samples, nodata samples, transparent pixels (alpha 0).
pub fn read_image(path: &Path, options: &ReadOptions) -> Result<Raster> {
    let mut raster = match extension(path).as_str() {
        "png" => png_io::read_png(path)?,
        "tif" | "tiff" => tiff_io::read_tiff(path, options.nodata.is_none())?,
        other => {
            return Err(Error::unsupported(
                path,
                format!("file extension '{other}'; use PNG (.png) or TIFF (.tif, .tiff)"),
            ));
        }
    };
    if let Some(nodata) = options.nodata {
        ndarray::Zip::from(&mut raster.valid).and(&raster.values).for_each(|ok, &v| {
            if v == nodata {
                *ok = false;
            }
        });
    }
    if raster.width() == 0 || raster.height() == 0 {
        return Err(Error::invalid_input(format!("{}: the image is empty (0 pixels)", path.display())));
    }
    Ok(raster)
}

/// Reads a validity mask: any image format [`read_image`] accepts, or `.npy`;
/// non-zero (true) means valid.
pub fn read_mask(path: &Path) -> Result<Array2<bool>> {
    let raster = match extension(path).as_str() {
        "npy" => npy::read_npy(path)?,
        _ => read_image(path, &ReadOptions::default())?,
    };
    Ok(ndarray::Zip::from(&raster.values).and(&raster.valid).map_collect(|&v, &ok| ok && v != 0.0))
}

/// Reads a disparity map (a result or a ground truth): float TIFF, PFM (Middlebury) or `.npy`.
/// Non-finite values (NaN, ±inf as Middlebury writes for unknown) are invalid.
pub fn read_disparity(path: &Path) -> Result<Raster> {
    let mut raster = match extension(path).as_str() {
        "pfm" => pfm::read_pfm(path)?,
        "npy" => npy::read_npy(path)?,
        "tif" | "tiff" => tiff_io::read_tiff(path, true)?,
        other => {
            return Err(Error::unsupported(
                path,
                format!("disparity file extension '{other}'; use .tif, .pfm or .npy"),
            ));
        }
    };
    ndarray::Zip::from(&mut raster.valid).and(&raster.values).for_each(|ok, v| {
        if !v.is_finite() {
            *ok = false;
        }
    });
    Ok(raster)
}
