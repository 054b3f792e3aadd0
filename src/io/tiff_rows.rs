//! TIFF input decoded chunk by chunk (strips or tiles), the one TIFF reading path: whole images
//! ([`super::tiff_io::read_tiff`]) are a read of all rows.
//!
//! Only the chunks overlapping the requested rows are decoded, one row of chunks at a time; the
//! last row of chunks stays cached, so consecutive bands that share it do not decode it twice.
//! Memory is the request plus one row of chunks (width × chunk height), never the whole image,
//! except for files stored as one strip, whose only chunk row is the whole image.

use super::limits;
use super::png_io::interleaved_to_grey;
use super::raster::{Raster, SampleFormat, mark_nodata};
use super::stream::{RowReader, check_rows};
use crate::error::{Error, Result};
use ndarray::{Array2, s};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use tiff::ColorType;
use tiff::decoder::{ChunkType, Decoder, DecodingResult, DecodingSampleType, Limits};
use tiff::tags::Tag;

/// GDAL's private tag holding the nodata value as ASCII.
const GDAL_NODATA: u16 = 42113;

/// TIFF's PlanarConfiguration value for band-interleaved samples.
const PLANAR_SEPARATE: u16 = 2;

/// A TIFF opened for reading rows, converted to grey exactly as [`super::read_image`] does.
pub(crate) struct TiffRows {
    path: PathBuf,
    decoder: Decoder<BufReader<File>>,
    width: usize,
    height: usize,
    pixel: PixelLayout,
    format: SampleFormat,
    grid: ChunkGrid,
    nodata: Option<f32>,
    /// The last decoded row of chunks.
    cached: Option<ChunkRow>,
}

/// Interleaved samples of a pixel.
#[derive(Debug, Clone, Copy)]
struct PixelLayout {
    channels: usize,
    alpha: bool,
}

/// How the image is cut into chunks (strips are chunks as wide as the image).
#[derive(Debug, Clone, Copy)]
struct ChunkGrid {
    chunk_width: usize,
    chunk_height: usize,
    across: usize,
}

/// One decoded row of chunks, in grey.
struct ChunkRow {
    index: usize,
    values: Array2<f32>,
    valid: Array2<bool>,
}

impl TiffRows {
    /// Opens `path`. Samples equal to `nodata` are invalid; without it, the GDAL_NODATA tag of
    /// the file (if any) is honoured.
    pub(crate) fn open(path: &Path, nodata: Option<f32>) -> Result<TiffRows> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let decode = |e| Error::decode(path, e);
        let mut decoder = Decoder::new(BufReader::new(file)).map_err(decode)?.with_limits(tiff_limits());
        let (w, h) = decoder.dimensions().map_err(decode)?;
        let (pixel, sample_bytes) = pixel_layout(path, decoder.colortype().map_err(decode)?)?;
        check_pixel_interleaved(path, &mut decoder, pixel)?;
        let format = sample_format(path, &mut decoder)?;
        let grid = chunk_grid(path, &decoder, w as usize, h as usize)?;
        // One row of chunks is decoded at a time: raw samples, as f32, then grey and validity.
        let per_px = pixel.channels as u64 * (sample_bytes + 4) + 5;
        let chunk_row_px = limits::product(&[(grid.chunk_width * grid.across) as u64, grid.chunk_height as u64]);
        limits::check_alloc(
            path,
            &format!("{w} × {h} pixels in chunks of {} × {}", grid.chunk_width, grid.chunk_height),
            chunk_row_px.and_then(|px| px.checked_mul(per_px)),
        )?;
        let nodata = match nodata {
            Some(v) => Some(v),
            None => nodata_tag(path, &mut decoder)?,
        };
        Ok(TiffRows {
            path: path.to_path_buf(),
            decoder,
            width: w as usize,
            height: h as usize,
            pixel,
            format,
            grid,
            nodata,
            cached: None,
        })
    }

    /// Decodes row `index` of chunks (unless it is the cached one) and returns it.
    fn chunk_row(&mut self, index: usize) -> Result<&ChunkRow> {
        // The previous row is dropped before the next one is decoded.
        let row = match self.cached.take().filter(|row| row.index == index) {
            Some(row) => row,
            None => self.decode_chunk_row(index)?,
        };
        Ok(self.cached.insert(row))
    }

    /// Decodes row `index` of chunks to grey and applies the nodata value.
    fn decode_chunk_row(&mut self, index: usize) -> Result<ChunkRow> {
        let ChunkGrid { chunk_width, chunk_height, across } = self.grid;
        let y0 = index * chunk_height;
        let rows = chunk_height.min(self.height - y0);
        let mut out = if across == 1 {
            self.decode_chunk(index, self.width, rows)?
        } else {
            let mut out = Raster {
                values: Array2::zeros((rows, self.width)),
                valid: Array2::from_elem((rows, self.width), false),
                format: self.format,
            };
            for column in 0..across {
                let x0 = column * chunk_width;
                let cols = chunk_width.min(self.width - x0);
                let chunk = self.decode_chunk(index * across + column, cols, rows)?;
                out.values.slice_mut(s![.., x0..x0 + cols]).assign(&chunk.values);
                out.valid.slice_mut(s![.., x0..x0 + cols]).assign(&chunk.valid);
            }
            out
        };
        if let Some(nodata) = self.nodata {
            mark_nodata(out.values.view(), out.valid.view_mut(), nodata);
        }
        Ok(ChunkRow { index, values: out.values, valid: out.valid })
    }

    /// Decodes chunk `index`, `cols` × `rows` pixels, to grey.
    fn decode_chunk(&mut self, index: usize, cols: usize, rows: usize) -> Result<Raster> {
        let path = &self.path;
        let chunk =
            u32::try_from(index).map_err(|_| Error::decode(path, format!("chunk index {index} out of range")))?;
        let data = self.decoder.read_chunk(chunk).map_err(|e| Error::decode(path, format!("chunk {index}: {e}")))?;
        let (format, samples) = samples_to_f32(path, data)?;
        let PixelLayout { channels, alpha } = self.pixel;
        let expected = cols * rows * channels;
        if format != self.format || samples.len() < expected {
            return Err(Error::decode(
                path,
                format!(
                    "chunk {index}: expected {expected} {:?} samples, found {} {format:?}",
                    self.format,
                    samples.len()
                ),
            ));
        }
        Ok(interleaved_to_grey(&samples, cols, rows, channels, alpha, format))
    }
}

impl RowReader for TiffRows {
    fn width(&self) -> usize {
        self.width
    }

    fn height(&self) -> usize {
        self.height
    }

    fn format(&self) -> SampleFormat {
        self.format
    }

    fn read_rows(&mut self, y0: usize, rows: usize) -> Result<(Array2<f32>, Array2<bool>)> {
        check_rows(&self.path, y0, rows, self.height)?;
        limits::check_alloc(
            &self.path,
            &format!("{} × {} pixels (a band of {rows} rows)", self.width, self.height),
            limits::product(&[self.width as u64, rows as u64, 5]),
        )?;
        let chunk_height = self.grid.chunk_height;
        if rows > 0 && y0.is_multiple_of(chunk_height) && rows == chunk_height.min(self.height - y0) {
            // Exactly one row of chunks (a whole single-strip image, say): handed over, not copied.
            let index = y0 / chunk_height;
            let row = match self.cached.take().filter(|row| row.index == index) {
                Some(row) => row,
                None => self.decode_chunk_row(index)?,
            };
            return Ok((row.values, row.valid));
        }
        let mut values = Array2::zeros((rows, self.width));
        let mut valid = Array2::from_elem((rows, self.width), false);
        let mut y = y0;
        while y < y0 + rows {
            let index = y / chunk_height;
            let row = self.chunk_row(index)?;
            let (from, to) =
                (y - index * chunk_height, (y0 + rows).min((index + 1) * chunk_height) - index * chunk_height);
            let dst = y - y0..y - y0 + (to - from);
            values.slice_mut(s![dst.clone(), ..]).assign(&row.values.slice(s![from..to, ..]));
            valid.slice_mut(s![dst, ..]).assign(&row.valid.slice(s![from..to, ..]));
            y += to - from;
        }
        Ok((values, valid))
    }
}

/// The `tiff` crate's own allocation limits: the readers' ceiling ([`limits::decode_limit`]).
fn tiff_limits() -> Limits {
    let limit = usize::try_from(limits::decode_limit()).unwrap_or(usize::MAX);
    let mut tiff = Limits::default();
    tiff.decoding_buffer_size = limit;
    tiff.intermediate_buffer_size = limit;
    tiff.ifd_value_size = limit;
    tiff
}

/// Channels and alpha of the supported colour types: grey, grey + alpha, RGB, RGBA, in 8, 16,
/// 32 or 64-bit samples; and the bytes of one sample.
fn pixel_layout(path: &Path, colour: ColorType) -> Result<(PixelLayout, u64)> {
    let (channels, alpha, bits) = match colour {
        ColorType::Gray(bits) => (1, false, bits),
        ColorType::GrayA(bits) => (2, true, bits),
        ColorType::RGB(bits) => (3, false, bits),
        ColorType::RGBA(bits) => (4, true, bits),
        other => {
            return Err(Error::unsupported(
                path,
                format!("TIFF colour type {other:?}; convert to one grey band or RGB"),
            ));
        }
    };
    if ![8, 16, 32, 64].contains(&bits) {
        return Err(Error::unsupported(
            path,
            format!("{bits}-bit TIFF samples; use 8, 16 or 32-bit integers or float"),
        ));
    }
    Ok((PixelLayout { channels, alpha }, u64::from(bits / 8)))
}

/// Rejects band-interleaved (planar) files with several samples per pixel: their chunks hold one
/// band each.
fn check_pixel_interleaved(path: &Path, decoder: &mut Decoder<BufReader<File>>, pixel: PixelLayout) -> Result<()> {
    let planar =
        decoder.find_tag_unsigned::<u16>(Tag::PlanarConfiguration).map_err(|e| Error::decode(path, e))?.unwrap_or(1);
    if planar == PLANAR_SEPARATE && pixel.channels > 1 {
        return Err(Error::unsupported(
            path,
            format!(
                "band-interleaved TIFF (PlanarConfiguration=2) with {} samples per pixel; \
                 rewrite it pixel-interleaved (e.g. gdal_translate -co INTERLEAVE=PIXEL)",
                pixel.channels
            ),
        ));
    }
    Ok(())
}

/// The sample format, from the decoder's buffer layout (before decoding any chunk).
fn sample_format(path: &Path, decoder: &mut Decoder<BufReader<File>>) -> Result<SampleFormat> {
    let layout = decoder.image_buffer_layout().map_err(|e| Error::decode(path, e))?;
    match layout.sample_type {
        Some(DecodingSampleType::U8) => Ok(SampleFormat::U8),
        Some(DecodingSampleType::U16) => Ok(SampleFormat::U16),
        Some(DecodingSampleType::I16) => Ok(SampleFormat::I16),
        Some(DecodingSampleType::U32) => Ok(SampleFormat::U32),
        Some(DecodingSampleType::I32) => Ok(SampleFormat::I32),
        Some(DecodingSampleType::F32) => Ok(SampleFormat::F32),
        Some(DecodingSampleType::F64) => Ok(SampleFormat::F64),
        other => Err(Error::unsupported(
            path,
            format!(
                "TIFF samples of type {}; use 8/16/32-bit integers or 32/64-bit float",
                other.map_or_else(|| "unknown to the decoder".to_string(), |t| format!("{t:?}").to_lowercase())
            ),
        )),
    }
}

/// Decoded samples as f32, with the format they were stored in.
fn samples_to_f32(path: &Path, data: DecodingResult) -> Result<(SampleFormat, Vec<f32>)> {
    Ok(match data {
        DecodingResult::U8(v) => (SampleFormat::U8, v.into_iter().map(f32::from).collect()),
        DecodingResult::U16(v) => (SampleFormat::U16, v.into_iter().map(f32::from).collect()),
        DecodingResult::I16(v) => (SampleFormat::I16, v.into_iter().map(f32::from).collect()),
        DecodingResult::U32(v) => (SampleFormat::U32, v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::I32(v) => (SampleFormat::I32, v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::F32(v) => (SampleFormat::F32, v),
        DecodingResult::F64(v) => (SampleFormat::F64, v.into_iter().map(|x| x as f32).collect()),
        _ => return Err(Error::unsupported(path, "TIFF sample type (use 8/16/32-bit integers or float)")),
    })
}

/// The chunk grid: strips (the whole width, `RowsPerStrip` rows) or tiles.
fn chunk_grid(path: &Path, decoder: &Decoder<BufReader<File>>, width: usize, height: usize) -> Result<ChunkGrid> {
    let (cw, ch) = decoder.chunk_dimensions();
    let (chunk_width, chunk_height) = match decoder.get_chunk_type() {
        ChunkType::Strip => (width, (ch as usize).min(height)),
        ChunkType::Tile => (cw as usize, ch as usize),
    };
    if chunk_width == 0 || chunk_height == 0 {
        return Err(Error::decode(path, format!("chunks of {cw} × {ch} pixels")));
    }
    Ok(ChunkGrid { chunk_width, chunk_height, across: width.div_ceil(chunk_width) })
}

/// The GDAL_NODATA tag's value, if present; an error when it is not a number (ignoring it would
/// silently count nodata pixels as valid).
fn nodata_tag(path: &Path, decoder: &mut Decoder<BufReader<File>>) -> Result<Option<f32>> {
    let Some(value) = decoder.find_tag(Tag::Unknown(GDAL_NODATA)).map_err(|e| Error::decode(path, e))? else {
        return Ok(None);
    };
    let text = value.into_string().map_err(|_| {
        Error::decode(path, "the GDAL_NODATA tag (42113) is not ASCII text; fix the tag or give --nodata")
    })?;
    let text = text.trim_matches(char::from(0)).trim();
    text.parse::<f32>().map(Some).map_err(|_| {
        Error::decode(
            path,
            format!("the GDAL_NODATA tag (42113) is '{text}', not a number; fix the tag or give the value with --nodata"),
        )
    })
}
