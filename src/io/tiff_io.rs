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

/// GeoTIFF georeferencing of an input (model tie points, pixel scale or transformation, geo
/// keys and their parameters), carried over to outputs on the same pixel grid.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeoTags {
    entries: Vec<(u16, GeoValue)>,
}

#[derive(Debug, Clone, PartialEq)]
enum GeoValue {
    Doubles(Vec<f64>),
    Shorts(Vec<u16>),
    Ascii(String),
}

const MODEL_PIXEL_SCALE: u16 = 33550;
const MODEL_TIEPOINT: u16 = 33922;
const MODEL_TRANSFORMATION: u16 = 34264;
const GEO_KEY_DIRECTORY: u16 = 34735;
const GEO_DOUBLE_PARAMS: u16 = 34736;
const GEO_ASCII_PARAMS: u16 = 34737;

impl GeoTags {
    /// The values of a double-valued tag (e.g. 33550, ModelPixelScale), if present.
    pub fn doubles(&self, tag: u16) -> Option<&[f64]> {
        self.entries.iter().find_map(|(t, v)| match v {
            GeoValue::Doubles(d) if *t == tag => Some(d.as_slice()),
            _ => None,
        })
    }

    /// The tags of a grid `factor` times coarser (a pyramid level or a MicMac `DeZoom` step):
    /// pixel sizes × factor, tie-point raster coordinates ÷ factor.
    pub fn scaled(&self, factor: u32) -> GeoTags {
        let f = factor as f64;
        let entries = self
            .entries
            .iter()
            .map(|(tag, value)| {
                let value = match (tag, value) {
                    (&MODEL_PIXEL_SCALE, GeoValue::Doubles(v)) => {
                        GeoValue::Doubles(v.iter().enumerate().map(|(i, x)| if i < 2 { x * f } else { *x }).collect())
                    }
                    (&MODEL_TIEPOINT, GeoValue::Doubles(v)) => {
                        GeoValue::Doubles(v.iter().enumerate().map(|(i, x)| if i % 6 < 2 { x / f } else { *x }).collect())
                    }
                    (&MODEL_TRANSFORMATION, GeoValue::Doubles(v)) => {
                        // Row-major 4 × 4: the raster-coordinate columns 0 and 1 scale.
                        GeoValue::Doubles(v.iter().enumerate().map(|(i, x)| if i % 4 < 2 { x * f } else { *x }).collect())
                    }
                    _ => value.clone(),
                };
                (*tag, value)
            })
            .collect();
        GeoTags { entries }
    }
}

/// The georeferencing tags of a TIFF file, `None` when it has none (or is not a TIFF).
pub fn read_geotags(path: &Path) -> Result<Option<GeoTags>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext != "tif" && ext != "tiff" {
        return Ok(None);
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut decoder = Decoder::new(BufReader::new(file)).map_err(|e| Error::decode(path, e))?;
    let mut entries = Vec::new();
    for tag in [MODEL_PIXEL_SCALE, MODEL_TIEPOINT, MODEL_TRANSFORMATION, GEO_DOUBLE_PARAMS] {
        if let Some(v) = decoder.find_tag(Tag::Unknown(tag)).map_err(|e| Error::decode(path, e))? {
            entries.push((tag, GeoValue::Doubles(v.into_f64_vec().map_err(|e| Error::decode(path, e))?)));
        }
    }
    if let Some(v) = decoder.find_tag(Tag::Unknown(GEO_KEY_DIRECTORY)).map_err(|e| Error::decode(path, e))? {
        entries.push((GEO_KEY_DIRECTORY, GeoValue::Shorts(v.into_u16_vec().map_err(|e| Error::decode(path, e))?)));
    }
    if let Some(v) = decoder.find_tag(Tag::Unknown(GEO_ASCII_PARAMS)).map_err(|e| Error::decode(path, e))? {
        entries.push((GEO_ASCII_PARAMS, GeoValue::Ascii(v.into_string().map_err(|e| Error::decode(path, e))?)));
    }
    entries.sort_by_key(|(tag, _)| *tag);
    Ok((!entries.is_empty()).then_some(GeoTags { entries }))
}

/// Writes a single-band float32 TIFF (deflate-compressed). NaN stays NaN.
pub fn write_tiff_f32(path: &Path, values: &Array2<f32>) -> Result<()> {
    write_tiff_f32_geo(path, values, None)
}

/// Writes a single-band 8-bit TIFF (deflate-compressed).
pub fn write_tiff_u8(path: &Path, values: &Array2<u8>) -> Result<()> {
    write_tiff_u8_geo(path, values, None)
}

/// [`write_tiff_f32`] with georeferencing tags.
pub fn write_tiff_f32_geo(path: &Path, values: &Array2<f32>, geo: Option<&GeoTags>) -> Result<()> {
    let data: Vec<f32> = values.iter().copied().collect();
    write_grey::<tiff::encoder::colortype::Gray32Float>(path, values.ncols(), values.nrows(), &data, geo)
}

/// [`write_tiff_u8`] with georeferencing tags.
pub fn write_tiff_u8_geo(path: &Path, values: &Array2<u8>, geo: Option<&GeoTags>) -> Result<()> {
    let data: Vec<u8> = values.iter().copied().collect();
    write_grey::<tiff::encoder::colortype::Gray8>(path, values.ncols(), values.nrows(), &data, geo)
}

/// Images whose samples pass this size are written as BigTIFF (classic TIFF offsets are 32-bit;
/// the margin covers incompressible data and the directory).
const BIGTIFF_ABOVE_BYTES: u64 = 3 << 30;

fn write_grey<C: tiff::encoder::colortype::ColorType>(
    path: &Path,
    width: usize,
    height: usize,
    data: &[C::Inner],
    geo: Option<&GeoTags>,
) -> Result<()>
where
    [C::Inner]: tiff::encoder::TiffValue,
{
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let encode_err = |e: tiff::TiffError| Error::new(crate::error::ErrorKind::Io, format!("{}: {e}", path.display()));
    let bytes = std::mem::size_of_val(data) as u64;
    let compression = tiff::encoder::Compression::Deflate(tiff::encoder::compression::DeflateLevel::Fast);
    if bytes > BIGTIFF_ABOVE_BYTES {
        let mut enc = tiff::encoder::TiffEncoder::new_big(BufWriter::new(file)).map_err(encode_err)?.with_compression(compression);
        encode::<C, _, _>(&mut enc, width, height, data, geo).map_err(encode_err)
    } else {
        let mut enc = tiff::encoder::TiffEncoder::new(BufWriter::new(file)).map_err(encode_err)?.with_compression(compression);
        encode::<C, _, _>(&mut enc, width, height, data, geo).map_err(encode_err)
    }
}

fn encode<C: tiff::encoder::colortype::ColorType, W: std::io::Write + std::io::Seek, K: tiff::encoder::TiffKind>(
    enc: &mut tiff::encoder::TiffEncoder<W, K>,
    width: usize,
    height: usize,
    data: &[C::Inner],
    geo: Option<&GeoTags>,
) -> tiff::TiffResult<()>
where
    [C::Inner]: tiff::encoder::TiffValue,
{
    let mut image = enc.new_image::<C>(width as u32, height as u32)?;
    for (tag, value) in geo.map(|g| g.entries.as_slice()).unwrap_or_default() {
        let dir = image.encoder();
        match value {
            GeoValue::Doubles(v) => dir.write_tag(Tag::Unknown(*tag), v.as_slice())?,
            GeoValue::Shorts(v) => dir.write_tag(Tag::Unknown(*tag), v.as_slice())?,
            GeoValue::Ascii(v) => dir.write_tag(Tag::Unknown(*tag), v.as_str())?,
        }
    }
    image.write_data(data)
}
