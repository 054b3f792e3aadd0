//! A reader for NumPy `.npy` files holding a 2-D array (C order; bool, integer or float).

use super::limits;
use super::raster::{Raster, SampleFormat};
use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// Reads a 2-D `.npy` array; NaN / inf samples are marked invalid.
pub fn read_npy(path: &Path) -> Result<Raster> {
    let (dims, format, values) = read_npy_array(path)?;
    let (h, w) = match dims[..] {
        [h, w] => (h, w),
        _ => return Err(Error::unsupported(path, format!("array of shape {dims:?}; expected 2-D (height, width)"))),
    };
    let values = Array2::from_shape_vec((h, w), values)
        .map_err(|_| Error::decode(path, format!("shape ({h}, {w}) does not match the values read")))?;
    let valid = values.mapv(f32::is_finite);
    Ok(Raster { values, valid, format })
}

/// Reads a `.npy` array of any rank: its shape, stored type and values (as f32, C order).
pub fn read_npy_array(path: &Path) -> Result<(Vec<usize>, SampleFormat, Vec<f32>)> {
    let file_len = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    limits::check_alloc(path, &format!("{file_len} bytes"), Some(file_len))?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |what: &str| Error::decode(path, format!("not a valid .npy file: {what}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (header_len, header_start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        _ => return Err(bad("unknown format version")),
    };
    let data_start = header_start.checked_add(header_len).ok_or_else(|| bad("header length overflows"))?;
    let header = bytes
        .get(header_start..data_start)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("no 'descr' in header"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(Error::unsupported(path, "Fortran-ordered array; save it with np.ascontiguousarray"));
    }
    let shape = dict_value(header, "shape").ok_or_else(|| bad("no 'shape' in header"))?;
    let dims: Vec<usize> = shape
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("unreadable shape"))?;
    let data = &bytes[data_start..];
    // The declared shape is checked against the data present before anything is allocated.
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad(&format!("shape {dims:?} overflows (more than 2^64 values)")))?;
    let (format, values): (SampleFormat, Vec<f32>) = match descr {
        "<f4" => (SampleFormat::F32, decode(data, n, 4, path, |b| f32::from_le_bytes(b.try_into().unwrap()))?),
        "<f8" => (SampleFormat::F64, decode(data, n, 8, path, |b| f64::from_le_bytes(b.try_into().unwrap()) as f32)?),
        "|b1" | "|u1" => (SampleFormat::U8, decode(data, n, 1, path, |b| b[0] as f32)?),
        "<u2" => (SampleFormat::U16, decode(data, n, 2, path, |b| u16::from_le_bytes(b.try_into().unwrap()) as f32)?),
        "<i2" => (SampleFormat::I16, decode(data, n, 2, path, |b| i16::from_le_bytes(b.try_into().unwrap()) as f32)?),
        "<i4" => (SampleFormat::I32, decode(data, n, 4, path, |b| i32::from_le_bytes(b.try_into().unwrap()) as f32)?),
        other => return Err(Error::unsupported(path, format!("dtype '{other}'; use float32, float64, bool, uint8/16, int16/32"))),
    };
    Ok((dims, format, values))
}

/// The raw text after `'key':` in a Python dict literal, up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0;
    let end = rest
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            (c == ',' || c == '}') && depth == 0
        })
        .map_or(rest.len(), |(i, _)| i);
    Some(&rest[..end])
}

fn decode(data: &[u8], n: usize, item_size: usize, path: &Path, f: impl Fn(&[u8]) -> f32) -> Result<Vec<f32>> {
    if n.checked_mul(item_size).is_none_or(|bytes| data.len() < bytes) {
        return Err(Error::decode(path, format!("truncated data: {n} values of {item_size} bytes expected")));
    }
    Ok(data.chunks_exact(item_size).take(n).map(f).collect())
}
