//! The in-memory raster and the format-dispatching readers.

use super::{npy, pfm, png_io, quantile, tiff_io};
use crate::error::{Error, Result};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
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
    /// Invalid pixels get 0. Same as [`map_to_unit`] with [`Raster::unit_range`].
    pub fn to_unit(&self) -> Array2<f32> {
        let (lo, hi) = self.unit_range();
        map_to_unit(self.values.view(), self.valid.view(), lo, hi)
    }

    /// The samples [`Raster::to_unit`] maps to 0 and 1: (0, 255) for 8-bit data, else the 2nd and
    /// 98th percentiles of the valid samples (NumPy's "linear" interpolation between order
    /// statistics taken in [`f32::total_cmp`] order); (0, 1) when no sample is valid.
    /// [`crate::io::unit_range`] computes the same range, bit for bit, while streaming rows.
    pub fn unit_range(&self) -> (f32, f32) {
        if let Some(range) = fixed_unit_range(self.format) {
            return range;
        }
        let mut samples: Vec<f32> =
            self.values.iter().zip(self.valid.iter()).filter(|(_, ok)| **ok).map(|(v, _)| *v).collect();
        quantile::unit_range_of(&mut samples)
    }
}

/// The unit range that does not depend on the data: (0, 255) for 8-bit samples.
pub(crate) fn fixed_unit_range(format: SampleFormat) -> Option<(f32, f32)> {
    (format == SampleFormat::U8).then_some((0.0, 255.0))
}

/// Maps samples to [0, 1]: `lo` to 0, `hi` to 1, linearly in between, clipped outside; invalid
/// pixels, and every pixel when `hi <= lo`, get 0. With the range of [`Raster::unit_range`] (or
/// [`crate::io::unit_range`] for a streamed image) this is [`Raster::to_unit`], band by band.
pub fn map_to_unit(values: ArrayView2<f32>, valid: ArrayView2<bool>, lo: f32, hi: f32) -> Array2<f32> {
    let scale = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
    ndarray::Zip::from(&values)
        .and(&valid)
        .map_collect(|&v, &ok| if ok { ((v - lo) * scale).clamp(0.0, 1.0) } else { 0.0 })
}

/// Marks the samples equal to `nodata` invalid.
pub(crate) fn mark_nodata(values: ArrayView2<f32>, mut valid: ArrayViewMut2<bool>, nodata: f32) {
    ndarray::Zip::from(&mut valid).and(&values).for_each(|ok, &v| {
        if v == nodata {
            *ok = false;
        }
    });
}

pub(crate) fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// Reads an input image (PNG or TIFF; 8/16-bit, 32-bit float; grey, grey+alpha, RGB, RGBA),
/// converted to one grey band (ITU-R 601 luma weights, as OpenCV's RGB2GRAY).
/// Invalid pixels: NaN samples, nodata samples, transparent pixels (alpha 0).
pub fn read_image(path: &Path, options: &ReadOptions) -> Result<Raster> {
    let raster = match extension(path).as_str() {
        "png" => {
            let mut raster = png_io::read_png(path)?;
            if let Some(nodata) = options.nodata {
                mark_nodata(raster.values.view(), raster.valid.view_mut(), nodata);
            }
            raster
        }
        "tif" | "tiff" => tiff_io::read_tiff(path, options.nodata)?,
        other => {
            return Err(Error::unsupported(
                path,
                format!("file extension '{other}'; use PNG (.png) or TIFF (.tif, .tiff)"),
            ));
        }
    };
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
    Ok(mask_of(raster.values.view(), raster.valid.view()))
}

/// The mask rule: set where the sample is valid and non-zero.
pub(crate) fn mask_of(values: ArrayView2<f32>, valid: ArrayView2<bool>) -> Array2<bool> {
    ndarray::Zip::from(&values).and(&valid).map_collect(|&v, &ok| ok && v != 0.0)
}

/// Reads a disparity map (a result or a ground truth): float TIFF, PFM (Middlebury) or `.npy`.
/// Non-finite values (NaN, ±inf as Middlebury writes for unknown) are invalid.
pub fn read_disparity(path: &Path) -> Result<Raster> {
    let mut raster = match extension(path).as_str() {
        "pfm" => pfm::read_pfm(path)?,
        "npy" => npy::read_npy(path)?,
        "tif" | "tiff" => tiff_io::read_tiff(path, None)?,
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
