//! PNG input by rows: the header is read at open (size and sample type known before any pixel
//! is decoded), then rows are decoded in order as they are asked for, so a large PNG is read in
//! bounded memory like a TIFF. A request for rows above the decoder's position starts the
//! decoder again from the file's beginning (the passes over an image go top to bottom).
//!
//! Interlaced (Adam7) files deliver their rows pass by pass: they are decoded whole at the
//! first read, after checking that this fits the readers' ceiling ([`super::limits`]).
//!
//! The conversion is the one of [`super::read_image`]: the `png` crate with `EXPAND` (palette to
//! RGB, low bit depths to 8 bits, `tRNS` to alpha, as the `image` crate decodes), then
//! [`interleaved_to_grey`] and the nodata value.

use super::limits;
use super::png_io::{PngHeader, interleaved_to_grey, read_png_header};
use super::raster::{ReadOptions, SampleFormat, mark_nodata, read_image};
use super::stream::{RasterRows, RowReader, check_rows};
use crate::error::{Error, Result};
use ndarray::Array2;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// A PNG read by rows (see the module documentation).
pub(crate) struct PngRows {
    path: PathBuf,
    header: PngHeader,
    options: ReadOptions,
    source: Source,
}

enum Source {
    /// Rows decoded in order; `next` is the row the decoder returns next.
    Stream { reader: Option<Box<png::Reader<BufReader<File>>>>, next: usize },
    /// An interlaced file, decoded whole at the first read.
    Whole(Option<RasterRows>),
}

impl PngRows {
    pub(crate) fn open(path: &Path, options: &ReadOptions) -> Result<Self> {
        let header = read_png_header(path)?;
        if header.width == 0 || header.height == 0 {
            return Err(Error::invalid_input(format!("{}: the image is empty (0 pixels)", path.display())));
        }
        let reader = open_reader(path)?;
        let source = if reader.info().interlaced {
            // It will be decoded whole: refused now, before the other image or the output
            // folder are touched, when that cannot fit.
            header.check_budget(path)?;
            Source::Whole(None)
        } else {
            Source::Stream { reader: Some(reader), next: 0 }
        };
        Ok(PngRows { path: path.to_path_buf(), header, options: options.clone(), source })
    }
}

/// A `png` decoder positioned before the first row, its allocations bounded by the ceiling.
fn open_reader(path: &Path) -> Result<Box<png::Reader<BufReader<File>>>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let bytes = usize::try_from(limits::decode_limit()).unwrap_or(usize::MAX);
    let mut decoder = png::Decoder::new_with_limits(BufReader::new(file), png::Limits { bytes });
    decoder.set_transformations(png::Transformations::EXPAND);
    decoder.read_info().map(Box::new).map_err(|e| Error::decode(path, e))
}

impl RowReader for PngRows {
    fn width(&self) -> usize {
        self.header.width
    }

    fn height(&self) -> usize {
        self.header.height
    }

    fn format(&self) -> SampleFormat {
        self.header.format
    }

    fn read_rows(&mut self, y0: usize, rows: usize) -> Result<(Array2<f32>, Array2<bool>)> {
        check_rows(&self.path, y0, rows, self.header.height)?;
        let (w, channels, alpha, format) =
            (self.header.width, self.header.channels, self.header.alpha, self.header.format);
        // The band's samples as f32, then its grey values and validity.
        limits::check_alloc(
            &self.path,
            &format!("{w} × {} pixels (a band of {rows} rows)", self.header.height),
            limits::product(&[w as u64, rows as u64, channels as u64 * 4 + 5]),
        )?;
        match &mut self.source {
            Source::Whole(rows_of) => {
                if rows_of.is_none() {
                    let raster = read_image(&self.path, &self.options)?;
                    if (raster.width(), raster.height()) != (self.header.width, self.header.height) {
                        return Err(Error::decode(&self.path, "the decoded size differs from the header's"));
                    }
                    *rows_of = Some(RasterRows::from_file(&self.path, raster));
                }
                rows_of.as_mut().expect("decoded just above").read_rows(y0, rows)
            }
            Source::Stream { reader, next } => {
                if reader.is_none() || *next > y0 {
                    *reader = Some(open_reader(&self.path)?);
                    *next = 0;
                }
                let decoder = reader.as_mut().expect("opened just above");
                let path = &self.path;
                let mut samples = Vec::with_capacity(rows * w * channels);
                while *next < y0 + rows {
                    let row =
                        decoder.next_row().map_err(|e| Error::decode(path, format!("row {next}: {e}")))?.ok_or_else(
                            || Error::decode(path, format!("the data ends at row {next} of {}", self.header.height)),
                        )?;
                    if *next >= y0 {
                        append_samples(row.data(), format, w * channels, &mut samples)
                            .map_err(|what| Error::decode(path, format!("row {next}: {what}")))?;
                    }
                    *next += 1;
                }
                let mut raster = interleaved_to_grey(&samples, w, rows, channels, alpha, format);
                if let Some(nodata) = self.options.nodata {
                    mark_nodata(raster.values.view(), raster.valid.view_mut(), nodata);
                }
                Ok((raster.values, raster.valid))
            }
        }
    }
}

/// Appends the `count` samples of a decoded row (8-bit, or 16-bit big-endian) as f32.
fn append_samples(
    data: &[u8],
    format: SampleFormat,
    count: usize,
    out: &mut Vec<f32>,
) -> std::result::Result<(), String> {
    let bytes_per_sample = if format == SampleFormat::U16 { 2 } else { 1 };
    if data.len() < count * bytes_per_sample {
        return Err(format!("{} bytes decoded, {} expected", data.len(), count * bytes_per_sample));
    }
    if bytes_per_sample == 2 {
        out.extend(data.chunks_exact(2).take(count).map(|b| u16::from_be_bytes([b[0], b[1]]) as f32));
    } else {
        out.extend(data[..count].iter().map(|&b| b as f32));
    }
    Ok(())
}
