//! TIFF input (8/16/32-bit integer, 32/64-bit float; grey, RGB, with or without alpha;
//! the GDAL_NODATA tag) and float / 8-bit output.

use super::png_io::interleaved_to_grey;
use super::raster::{Raster, SampleFormat};
use crate::error::{Error, Result};
use ndarray::Array2;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::Path;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::tags::Tag;
use tiff::ColorType;

/// GDAL's private tag holding the nodata value as ASCII.
const GDAL_NODATA: u16 = 42113;

pub(crate) fn read_tiff(path: &Path, honour_nodata_tag: bool) -> Result<Raster> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut decoder = Decoder::new(BufReader::new(file))
        .map_err(|e| Error::decode(path, e))?
        .with_limits(Limits::unlimited());
    let (w, h) = decoder.dimensions().map_err(|e| Error::decode(path, e))?;
    let (w, h) = (w as usize, h as usize);
    let (channels, alpha) = match decoder.colortype().map_err(|e| Error::decode(path, e))? {
        ColorType::Gray(_) => (1, false),
        ColorType::GrayA(_) => (2, true),
        ColorType::RGB(_) => (3, false),
        ColorType::RGBA(_) => (4, true),
        other => {
            return Err(Error::unsupported(
                path,
                format!("TIFF colour type {other:?}; convert to one grey band or RGB"),
            ));
        }
    };
    let nodata = if honour_nodata_tag {
        decoder
            .get_tag_ascii_string(Tag::Unknown(GDAL_NODATA))
            .ok()
            .and_then(|s| s.trim_matches(char::from(0)).trim().parse::<f32>().ok())
    } else {
        None
    };
    let data = decoder.read_image().map_err(|e| Error::decode(path, e))?;
    let (format, samples): (SampleFormat, Vec<f32>) = match data {
        DecodingResult::U8(v) => (SampleFormat::U8, v.into_iter().map(f32::from).collect()),
        DecodingResult::U16(v) => (SampleFormat::U16, v.into_iter().map(f32::from).collect()),
        DecodingResult::I16(v) => (SampleFormat::I16, v.into_iter().map(f32::from).collect()),
        DecodingResult::U32(v) => (SampleFormat::U32, v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::I32(v) => (SampleFormat::I32, v.into_iter().map(|x| x as f32).collect()),
        DecodingResult::F32(v) => (SampleFormat::F32, v),
        DecodingResult::F64(v) => (SampleFormat::F64, v.into_iter().map(|x| x as f32).collect()),
        _ => return Err(Error::unsupported(path, "TIFF sample type (use 8/16/32-bit integers or float)")),
    };
    if samples.len() < w * h * channels {
        return Err(Error::decode(path, format!("expected {} samples, found {}", w * h * channels, samples.len())));
    }
    let mut raster = interleaved_to_grey(&samples, w, h, channels, alpha, format);
    if let Some(nd) = nodata {
        ndarray::Zip::from(&mut raster.valid).and(&raster.values).for_each(|ok, &v| {
            if v == nd {
                *ok = false;
            }
        });
    }
    Ok(raster)
}

/// Writes a single-band float32 TIFF (deflate-compressed). NaN stays NaN.
pub fn write_tiff_f32(path: &Path, values: &Array2<f32>) -> Result<()> {
    let (h, w) = values.dim();
    let data: Vec<f32> = values.iter().copied().collect();
    write_with(path, |enc| enc.write_image::<tiff::encoder::colortype::Gray32Float>(w as u32, h as u32, &data))
}

/// Writes a single-band 8-bit TIFF (deflate-compressed).
pub fn write_tiff_u8(path: &Path, values: &Array2<u8>) -> Result<()> {
    let (h, w) = values.dim();
    let data: Vec<u8> = values.iter().copied().collect();
    write_with(path, |enc| enc.write_image::<tiff::encoder::colortype::Gray8>(w as u32, h as u32, &data))
}

fn write_with(
    path: &Path,
    write: impl FnOnce(&mut tiff::encoder::TiffEncoder<BufWriter<File>>) -> tiff::TiffResult<()>,
) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let encode_err = |e: tiff::TiffError| Error::new(crate::error::ErrorKind::Io, format!("{}: {e}", path.display()));
    let mut enc = tiff::encoder::TiffEncoder::new(BufWriter::new(file))
        .map_err(encode_err)?
        .with_compression(tiff::encoder::Compression::Deflate(tiff::encoder::compression::DeflateLevel::Fast));
    write(&mut enc).map_err(encode_err)?;
    Ok(())
}
