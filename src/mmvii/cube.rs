//! The cube file MicMac reads back: raw native-endian `u16`, no header.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// The integer that stands for a cost of 1 (MicMac divides by 1e4).
pub const COST_SCALE: u16 = 10_000;

/// `MatchingCube_<Post>.data`.
pub fn cube_file_name(post: &str) -> String {
    format!("MatchingCube_{post}.data")
}

/// `round(10000 · clamp(cost, 0, 1))`; NaN is the worst cost.
#[inline]
pub(crate) fn scaled(cost: f32) -> u16 {
    if cost.is_nan() {
        return COST_SCALE;
    }
    // `+ 0.5` then truncation is `round` for non-negative values, without a libm call per cost.
    (cost.clamp(0.0, 1.0) * COST_SCALE as f32 + 0.5) as u16
}

/// Writes `costs` to `path` as raw native-endian `u16`.
pub fn write_cube(path: &Path, costs: &[u16]) -> Result<()> {
    let mut file = std::io::BufWriter::new(crate::io::create_file(path)?);
    let mut bytes = Vec::with_capacity(costs.len().min(1 << 20) * 2);
    for chunk in costs.chunks(1 << 20) {
        bytes.clear();
        bytes.extend(chunk.iter().flat_map(|c| c.to_ne_bytes()));
        file.write_all(&bytes).map_err(|e| Error::io(path, e))?;
    }
    file.flush().map_err(|e| Error::io(path, e))
}
