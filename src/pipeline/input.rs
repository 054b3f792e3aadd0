//! Reading an image pair from files into level-0 grids, band by band: grey values mapped to
//! [0, 1] (the rule of [`crate::io::Raster::to_unit`]), validity from the file (alpha, nodata,
//! NaN) and the optional mask files. With TIFF inputs nothing is ever held whole.

use super::Images;
use crate::error::{Error, Result};
use crate::grid::{Grid, Storage};
use crate::io::limits;
use crate::io::{map_to_unit, open_mask_rows, open_rows, unit_range, ReadOptions, RowReader, SampleFormat};
use ndarray::Zip;
use std::path::{Path, PathBuf};

/// One input image with its optional mask, opened (sizes known) but not read yet.
pub struct InputImage {
    path: PathBuf,
    reader: Box<dyn RowReader>,
    mask: Option<(PathBuf, Box<dyn RowReader>)>,
}

/// What was read from one input, for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InputReport {
    /// The image file.
    pub path: PathBuf,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// How the samples are stored.
    pub sample_format: SampleFormat,
    /// Pixels valid in the file and the mask.
    pub valid_pixels: usize,
    /// The mask file.
    pub mask: Option<PathBuf>,
}

impl InputImage {
    /// Opens `path` (and `mask`), checking that the mask has the image's size.
    pub fn open(path: &Path, mask: Option<&Path>, options: &ReadOptions) -> Result<Self> {
        let reader = open_rows(path, options)?;
        // The narrowest band the pipeline reads must fit the budget (the readers' ceiling).
        let (w, h) = (reader.width() as u64, reader.height() as u64);
        limits::check_alloc(
            path,
            &format!("{w} × {h} pixels"),
            limits::product(&[w, super::memory::MIN_BAND_ROWS as u64, super::memory::INPUT_BYTES_PER_PX as u64]),
        )?;
        let mask = match mask {
            Some(m) => {
                let mask_reader = open_mask_rows(m)?;
                if (mask_reader.width(), mask_reader.height()) != (reader.width(), reader.height()) {
                    return Err(Error::invalid_input(format!(
                        "mask {} is {}×{} but its image {} is {}×{}: give a mask of the image's size",
                        m.display(),
                        mask_reader.width(),
                        mask_reader.height(),
                        path.display(),
                        reader.width(),
                        reader.height()
                    )));
                }
                Some((m.to_path_buf(), mask_reader))
            }
            None => None,
        };
        Ok(InputImage { path: path.to_path_buf(), reader, mask })
    }

    /// `(width, height)`.
    pub fn size(&self) -> (usize, usize) {
        (self.reader.width(), self.reader.height())
    }

    /// Reads the image into grids in `storage`, `band_rows` rows at a time. An image without
    /// a valid pixel is an error.
    pub fn load(mut self, storage: &Storage, band_rows: usize) -> Result<(Grid<'static, f32>, Grid<'static, bool>, InputReport)> {
        let (w, h) = self.size();
        let band_rows = band_rows.clamp(1, h.max(1));
        let (lo, hi) = unit_range(self.reader.as_mut(), band_rows)?;
        let mut values = Grid::new(w, h, storage)?;
        let mut validity = Grid::new(w, h, storage)?;
        let mut valid_pixels = 0;
        for y0 in (0..h).step_by(band_rows) {
            let rows = band_rows.min(h - y0);
            let (raw, mut valid) = self.reader.read_rows(y0, rows)?;
            if let Some((_, mask)) = &mut self.mask {
                let (m, m_ok) = mask.read_rows(y0, rows)?;
                Zip::from(&mut valid).and(&m).and(&m_ok).for_each(|v, &m, &ok| *v &= ok && m != 0.0);
            }
            let band = map_to_unit(raw.view(), valid.view(), lo, hi);
            valid_pixels += valid.iter().filter(|&&v| v).count();
            values.write(0, y0, band.view())?;
            validity.write(0, y0, valid.view())?;
        }
        if valid_pixels == 0 {
            return Err(Error::invalid_input(format!(
                "{} has no valid pixel (mask, nodata or NaN everywhere)",
                self.path.display()
            )));
        }
        let report = InputReport {
            path: self.path,
            width: w,
            height: h,
            sample_format: self.reader.format(),
            valid_pixels,
            mask: self.mask.map(|(p, _)| p),
        };
        Ok((values, validity, report))
    }
}

/// Reads both images of a pair (see [`InputImage::load`]).
pub fn load_pair(
    left: InputImage,
    right: InputImage,
    storage: &Storage,
    band_rows: usize,
) -> Result<(Images<'static>, [InputReport; 2])> {
    let (left, left_valid, left_report) = left.load(storage, band_rows)?;
    let (right, right_valid, right_report) = right.load(storage, band_rows)?;
    Ok((Images { left, right, left_valid, right_valid }, [left_report, right_report]))
}
