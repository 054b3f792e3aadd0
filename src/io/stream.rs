//! Row-streaming input: images read band by band so that a 20000 × 20000 pair is processed in
//! bounded memory.
//!
//! TIFF is the streaming format: only the strips or tiles overlapping the requested rows are
//! decoded ([`super::tiff_rows`]), and a whole-image read goes through the same code, so a band
//! is exactly the corresponding rows of [`read_image`]. `.npy` and the other formats cannot
//! be decoded partially by the libraries used here: they are decoded whole once and served from
//! memory ([`RasterRows`]). PNG rows are decoded in order ([`super::png_rows`]; interlaced files
//! whole, at the first read).
//!
//! The [0, 1] mapping of [`Raster::to_unit`] needs percentiles of the whole image:
//! [`unit_range`] computes them exactly while streaming (see [`super::quantile`]), and
//! [`map_to_unit`](super::map_to_unit) applies them band by band.

use super::npy;
use super::png_rows::PngRows;
use super::quantile::streamed_unit_range;
use super::raster::{Raster, ReadOptions, SampleFormat, extension, fixed_unit_range, mask_of, read_image};
use super::tiff_rows::TiffRows;
use crate::error::{Error, Result};
use ndarray::{Array2, s};
use std::path::{Path, PathBuf};

/// An image read by bands of rows, in any order.
pub trait RowReader: Send {
    /// Width in pixels.
    fn width(&self) -> usize;

    /// Height in pixels.
    fn height(&self) -> usize;

    /// How the samples were stored (as [`Raster::format`]).
    fn format(&self) -> SampleFormat;

    /// Rows `y0 .. y0 + rows`: grey values in the file's units and their validity, exactly the
    /// rows [`read_image`] gives (same grey conversion, alpha, NaN, GDAL_NODATA tag and
    /// [`ReadOptions::nodata`]). An error if the rows pass the height; `rows == 0` gives empty
    /// arrays.
    fn read_rows(&mut self, y0: usize, rows: usize) -> Result<(Array2<f32>, Array2<bool>)>;
}

/// Opens an input image for reading by rows, with the rules of [`read_image`]. TIFF files are
/// decoded chunk by chunk; other formats are decoded whole once.
pub fn open_rows(path: &Path, options: &ReadOptions) -> Result<Box<dyn RowReader>> {
    match extension(path).as_str() {
        "tif" | "tiff" => Ok(Box::new(TiffRows::open(path, options.nodata)?)),
        "png" => Ok(Box::new(PngRows::open(path, options)?)),
        _ => Ok(Box::new(RasterRows::from_file(path, read_image(path, options)?))),
    }
}

/// Opens a validity mask for reading by rows, with the rule of [`read_mask`](super::read_mask): the returned
/// reader's validity is the mask (set where the file's sample is valid and non-zero) and its
/// values are 1 where the mask is set, 0 elsewhere; its format is the file's.
pub fn open_mask_rows(path: &Path) -> Result<Box<dyn RowReader>> {
    let inner = match extension(path).as_str() {
        "npy" => Box::new(RasterRows::from_file(path, npy::read_npy(path)?)),
        _ => open_rows(path, &ReadOptions::default())?,
    };
    Ok(Box::new(MaskRows { inner }))
}

/// The [0, 1] mapping range of [`Raster::to_unit`], computed by streaming over `reader` in bands
/// of `band_rows` rows: (0, 255) for 8-bit data (nothing is read), else the exact 2nd and 98th
/// percentiles of the valid samples, bit-identical to [`Raster::unit_range`]. 16-bit integer
/// data take one pass over the image, other data two. Memory: one band plus a few 2^16-bin
/// histograms.
pub fn unit_range(reader: &mut dyn RowReader, band_rows: usize) -> Result<(f32, f32)> {
    if let Some(range) = fixed_unit_range(reader.format()) {
        return Ok(range);
    }
    if band_rows == 0 {
        return Err(Error::invalid_parameter("unit_range: band_rows is 0; read at least one row per band"));
    }
    let integer_offset = match reader.format() {
        SampleFormat::U16 => Some(0),
        SampleFormat::I16 => Some(32768),
        _ => None,
    };
    streamed_unit_range(integer_offset, |visit| for_each_valid(reader, band_rows, visit))?.ok_or_else(|| {
        Error::invalid_input(
            "unit_range: the image changed between the two passes over it; do not modify it while reading",
        )
    })
}

/// Calls `visit` on every valid sample, reading `reader` in bands of `band_rows` rows.
fn for_each_valid(reader: &mut dyn RowReader, band_rows: usize, visit: &mut dyn FnMut(f32)) -> Result<()> {
    let height = reader.height();
    for y0 in (0..height).step_by(band_rows) {
        let (values, valid) = reader.read_rows(y0, band_rows.min(height - y0))?;
        for (&v, _) in values.iter().zip(&valid).filter(|(_, ok)| **ok) {
            visit(v);
        }
    }
    Ok(())
}

/// An error naming the file when rows `y0 .. y0 + rows` are not all in an image `height` high.
pub(crate) fn check_rows(path: &Path, y0: usize, rows: usize, height: usize) -> Result<()> {
    if y0.checked_add(rows).is_none_or(|end| end > height) {
        return Err(Error::invalid_input(format!(
            "{}: rows {y0} .. {y0} + {rows} requested, but the image has {height} rows",
            path.display()
        )));
    }
    Ok(())
}

/// A raster held in memory, served by rows: the reader of the formats that cannot be decoded
/// partially, and a way to run streaming code on an image already in memory.
pub struct RasterRows {
    raster: Raster,
    /// The file it was read from, named in errors.
    path: PathBuf,
}

impl RasterRows {
    /// Serves the rows of `raster`.
    pub fn new(raster: Raster) -> Self {
        RasterRows { raster, path: PathBuf::from("<in-memory raster>") }
    }

    pub(crate) fn from_file(path: &Path, raster: Raster) -> Self {
        RasterRows { raster, path: path.to_path_buf() }
    }
}

impl RowReader for RasterRows {
    fn width(&self) -> usize {
        self.raster.width()
    }

    fn height(&self) -> usize {
        self.raster.height()
    }

    fn format(&self) -> SampleFormat {
        self.raster.format
    }

    fn read_rows(&mut self, y0: usize, rows: usize) -> Result<(Array2<f32>, Array2<bool>)> {
        check_rows(&self.path, y0, rows, self.raster.height())?;
        let band = s![y0..y0 + rows, ..];
        Ok((self.raster.values.slice(band).to_owned(), self.raster.valid.slice(band).to_owned()))
    }
}

/// A mask read by rows: validity is the mask, values 1 where it is set.
struct MaskRows {
    inner: Box<dyn RowReader>,
}

impl RowReader for MaskRows {
    fn width(&self) -> usize {
        self.inner.width()
    }

    fn height(&self) -> usize {
        self.inner.height()
    }

    fn format(&self) -> SampleFormat {
        self.inner.format()
    }

    fn read_rows(&mut self, y0: usize, rows: usize) -> Result<(Array2<f32>, Array2<bool>)> {
        let (values, valid) = self.inner.read_rows(y0, rows)?;
        let mask = mask_of(values.view(), valid.view());
        Ok((mask.mapv(|set| if set { 1.0 } else { 0.0 }), mask))
    }
}
