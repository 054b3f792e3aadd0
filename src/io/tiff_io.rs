//! TIFF input as whole images (through [`TiffRows`], the chunk-by-chunk reader) and the GeoTIFF
//! georeferencing tags carried from inputs to outputs. Output: [`super::tiff_writer`].

use super::limits;
use super::raster::Raster;
use super::stream::RowReader;
use super::tiff_rows::TiffRows;
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Seek, Write};
use std::path::Path;
use tiff::decoder::Decoder;
use tiff::encoder::{DirectoryEncoder, TiffKind};
use tiff::tags::Tag;

/// Reads a whole TIFF: all rows of [`TiffRows`]. Samples equal to `nodata` are invalid; without
/// it, the GDAL_NODATA tag of the file (if any) is honoured.
pub(crate) fn read_tiff(path: &Path, nodata: Option<f32>) -> Result<Raster> {
    let mut rows = TiffRows::open(path, nodata)?;
    let (w, h) = (rows.width() as u64, rows.height() as u64);
    limits::check_alloc(path, &format!("{w} × {h} pixels"), limits::product(&[w, h, 5]))?;
    let (values, valid) = rows.read_rows(0, rows.height())?;
    Ok(Raster { values, valid, format: rows.format() })
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

    /// Writes the tags into the directory of an image being encoded.
    pub(super) fn write_to<W: Write + Seek, K: TiffKind>(
        &self,
        dir: &mut DirectoryEncoder<'_, W, K>,
    ) -> tiff::TiffResult<()> {
        for (tag, value) in &self.entries {
            match value {
                GeoValue::Doubles(v) => dir.write_tag(Tag::Unknown(*tag), v.as_slice())?,
                GeoValue::Shorts(v) => dir.write_tag(Tag::Unknown(*tag), v.as_slice())?,
                GeoValue::Ascii(v) => dir.write_tag(Tag::Unknown(*tag), v.as_str())?,
            }
        }
        Ok(())
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
