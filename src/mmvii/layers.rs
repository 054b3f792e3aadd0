//! The per-pixel Z intervals of a tile: MicMac's `ZMin_<Post>.tif` and `ZMax_<Post>.tif`
//! ("nappes englobantes"), and where each pixel's costs go in the cube.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::BufReader;
use std::ops::Range;
use std::path::Path;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::ColorType;

/// The Z interval `[zmin, zmax)` of every pixel of a `width × height` tile and the offsets of
/// each pixel's costs in the cube (row-major, Z fastest).
#[derive(Debug, Clone, PartialEq)]
pub struct Layers {
    width: usize,
    height: usize,
    zmin: Vec<i16>,
    zmax: Vec<i16>,
    /// `offset[p]` is where pixel `p`'s costs start; `offset[w·h]` is the total.
    offset: Vec<usize>,
}

/// Largest cube accepted, in entries (2 GiB of costs): a guard against corrupt Z files.
const MAX_ENTRIES: usize = 1 << 30;

impl Layers {
    /// Builds the layout from row-major bounds.
    pub fn new(width: usize, height: usize, zmin: Vec<i16>, zmax: Vec<i16>) -> Result<Self> {
        let n = width * height;
        if zmin.len() != n || zmax.len() != n {
            return Err(Error::invalid_input(format!(
                "Z bounds hold {} and {} values for a {width}×{height} tile",
                zmin.len(),
                zmax.len()
            )));
        }
        let mut offset = Vec::with_capacity(n + 1);
        let mut total = 0usize;
        offset.push(0);
        for (lo, hi) in zmin.iter().zip(&zmax) {
            total += (*hi as i32 - *lo as i32).max(0) as usize;
            offset.push(total);
        }
        if total > MAX_ENTRIES {
            return Err(Error::invalid_input(format!(
                "the Z intervals add up to {total} costs for a {width}×{height} tile (more than {MAX_ENTRIES}): \
                 are the ZMin / ZMax files swapped or corrupt?"
            )));
        }
        Ok(Layers { width, height, zmin, zmax, offset })
    }

    /// Reads MicMac's `ZMin` and `ZMax` files (signed 16-bit, one band, same size).
    pub fn read(zmin_path: &Path, zmax_path: &Path) -> Result<Self> {
        let (w, h, zmin) = read_z_file(zmin_path)?;
        let (w2, h2, zmax) = read_z_file(zmax_path)?;
        if (w, h) != (w2, h2) {
            return Err(Error::invalid_input(format!(
                "{} is {w}×{h} but {} is {w2}×{h2}: MicMac writes both for the same tile",
                zmin_path.display(),
                zmax_path.display()
            )));
        }
        Self::new(w, h, zmin, zmax)
    }

    /// Tile width.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Tile height.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Total number of costs, `Σ max(ZMax − ZMin, 0)`.
    pub fn total(&self) -> usize {
        self.offset[self.offset.len() - 1]
    }

    /// `ZMin` of pixel `(x, y)`.
    #[inline]
    pub fn zmin(&self, x: usize, y: usize) -> i16 {
        self.zmin[y * self.width + x]
    }

    /// `ZMax` of pixel `(x, y)`.
    #[inline]
    pub fn zmax(&self, x: usize, y: usize) -> i16 {
        self.zmax[y * self.width + x]
    }

    /// The cube entries of pixel `(x, y)` (one per Z in `[ZMin, ZMax)`).
    #[inline]
    pub fn entries(&self, x: usize, y: usize) -> Range<usize> {
        let p = y * self.width + x;
        self.offset[p]..self.offset[p + 1]
    }

    /// The cube entries of row `y`.
    #[inline]
    pub fn row_entries(&self, y: usize) -> Range<usize> {
        self.offset[y * self.width]..self.offset[(y + 1) * self.width]
    }
}

/// Reads one Z file: `(width, height, values)`. MicMac writes int16; other integer types are
/// accepted when every value fits in int16.
fn read_z_file(path: &Path) -> Result<(usize, usize, Vec<i16>)> {
    let file = File::open(path).map_err(|e| {
        Error::io(
            path,
            std::io::Error::new(
                e.kind(),
                format!("{e} (MicMac writes ZMin_<Post>.tif / ZMax_<Post>.tif in its working folder before the call: run from that folder)"),
            ),
        )
    })?;
    let mut decoder = Decoder::new(BufReader::new(file)).map_err(|e| Error::decode(path, e))?.with_limits(Limits::unlimited());
    let (w, h) = decoder.dimensions().map_err(|e| Error::decode(path, e))?;
    // Decoded samples (up to 8 bytes), widened to i64, narrowed to i16.
    crate::io::limits::check_alloc(path, &format!("{w} × {h} pixels"), crate::io::limits::product(&[w.into(), h.into(), 18]))?;
    let (w, h) = (w as usize, h as usize);
    match decoder.colortype().map_err(|e| Error::decode(path, e))? {
        ColorType::Gray(_) => {}
        other => return Err(Error::unsupported(path, format!("colour type {other:?}; a Z file has one int16 band"))),
    }
    let data = decoder.read_image().map_err(|e| Error::decode(path, e))?;
    let wide: Vec<i64> = match data {
        DecodingResult::I16(v) => return check_len(path, w, h, v),
        DecodingResult::I8(v) => v.into_iter().map(i64::from).collect(),
        DecodingResult::U8(v) => v.into_iter().map(i64::from).collect(),
        DecodingResult::U16(v) => v.into_iter().map(i64::from).collect(),
        DecodingResult::I32(v) => v.into_iter().map(i64::from).collect(),
        DecodingResult::U32(v) => v.into_iter().map(i64::from).collect(),
        DecodingResult::I64(v) => v,
        DecodingResult::U64(v) => v.into_iter().map(|x| i64::try_from(x).unwrap_or(i64::MAX)).collect(),
        _ => return Err(Error::unsupported(path, "floating-point samples; Z files hold int16 Z indices")),
    };
    let mut narrow = Vec::with_capacity(wide.len());
    for (i, v) in wide.into_iter().enumerate() {
        let z = i16::try_from(v).map_err(|_| {
            Error::invalid_input(format!(
                "{}: Z value {v} at pixel ({}, {}) is outside the int16 range (−32768..32767) of MicMac's Z indices",
                path.display(),
                i % w.max(1),
                i / w.max(1)
            ))
        })?;
        narrow.push(z);
    }
    check_len(path, w, h, narrow)
}

fn check_len(path: &Path, w: usize, h: usize, mut v: Vec<i16>) -> Result<(usize, usize, Vec<i16>)> {
    if v.len() < w * h {
        return Err(Error::decode(path, format!("expected {} samples, found {}", w * h, v.len())));
    }
    v.truncate(w * h);
    Ok((w, h, v))
}
