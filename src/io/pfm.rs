//! A reader for PFM (portable float map), the format of Middlebury's ground truth.

use super::limits;
use super::raster::{Raster, SampleFormat};
use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// Reads a PFM file ("Pf" grey or "PF" colour, first channel kept). Rows are stored bottom-up;
/// the scale's sign gives the byte order. Infinite values (Middlebury's "unknown") are invalid.
pub fn read_pfm(path: &Path) -> Result<Raster> {
    let file_len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    limits::check_alloc(path, &format!("{file_len} bytes"), Some(file_len))?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |what: &str| Error::decode(path, format!("not a valid PFM file: {what}"));
    // The header is three whitespace-separated tokens after the magic, then one whitespace byte.
    let mut tokens = Vec::new();
    let mut pos = 0;
    while tokens.len() < 4 {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let start = pos;
        while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if start == pos {
            return Err(bad("truncated header"));
        }
        tokens.push(String::from_utf8_lossy(&bytes[start..pos]).into_owned());
    }
    pos += 1;
    let channels = match tokens[0].as_str() {
        "Pf" => 1,
        "PF" => 3,
        _ => return Err(bad("magic is neither 'Pf' nor 'PF'")),
    };
    let w: usize = tokens[1].parse().map_err(|_| bad("bad width"))?;
    let h: usize = tokens[2].parse().map_err(|_| bad("bad height"))?;
    let scale: f32 = tokens[3].parse().map_err(|_| bad("bad scale"))?;
    let little = scale < 0.0;
    // The declared size is checked against the data present before anything is allocated.
    let need = w.checked_mul(h).and_then(|n| n.checked_mul(channels * 4));
    let data = need
        .and_then(|need| bytes.get(pos..pos.checked_add(need)?))
        .ok_or_else(|| bad(&format!("truncated data ({w} × {h} pixels declared)")))?;
    if w == 0 || h == 0 {
        return Err(bad("empty image (0 pixels)"));
    }
    let mut values = Array2::zeros((h, w));
    for y in 0..h {
        let src_row = h - 1 - y;
        for x in 0..w {
            let i = ((src_row * w + x) * channels) * 4;
            let b = [data[i], data[i + 1], data[i + 2], data[i + 3]];
            values[(y, x)] = if little { f32::from_le_bytes(b) } else { f32::from_be_bytes(b) };
        }
    }
    let valid = values.mapv(f32::is_finite);
    Ok(Raster { values, valid, format: SampleFormat::F32 })
}
