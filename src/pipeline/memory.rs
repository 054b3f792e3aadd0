//! The memory budget: how much a tile and a band of rows hold, and where whole-level rasters
//! go.
//!
//! Estimates, per unit, of what the pipeline allocates (measured on this code with
//! `bench/large.sh`; they err on the large side):
//! - a tile: its cost volume and aggregated costs (u16 each) plus the regulariser's path
//!   buffers, per candidate; its bounds, intervals, winner maps and crops per pixel; and the
//!   backend's prepared transforms or features ([`Similarity::bytes_per_pixel`]);
//! - a band of rows (pyramid reduction, final filters): its inputs, outputs and temporaries;
//! - whole-level rasters kept in memory: every pyramid level of both images and masks, and
//!   the steps' maps.

use crate::grid::Storage;
use crate::similarity::Similarity;
use crate::tiles::Region;
use std::path::Path;

/// The smallest budget accepted.
pub const MIN_BUDGET: u64 = 128 << 20;
/// Held whatever the image size: the program, thread stacks, runtimes and models.
const BASELINE: u64 = 64 << 20;
/// Per cost-volume candidate: costs, aggregated costs, path buffers.
const BYTES_PER_ENTRY: u64 = 6;
/// Per tile pixel, besides the candidates and the backend.
const BYTES_PER_TILE_PX: u64 = 96;
/// Per pixel of a band being reduced to the next pyramid level.
pub(super) const REDUCE_BYTES_PER_PX: usize = 40;
/// Per pixel of a band of the final filters.
pub(super) const POST_BYTES_PER_PX: usize = 64;
/// More of it with the confidence products (eight maps read, two copies of the band, flags).
pub(super) const POST_PRODUCTS_BYTES_PER_PX: usize = 48;
/// Per tile pixel, the confidence products (eight maps and the per-pixel measures).
const PRODUCTS_BYTES_PER_TILE_PX: u64 = 64;
/// Per level-0 pixel of a run with its whole-level rasters in memory, the confidence products'
/// eight maps.
const PRODUCTS_WHOLE_BYTES_PER_PX: u64 = 30;
/// Per level-0 pixel of a run with its whole-level rasters in memory (pyramid of both images
/// and masks, the last step's maps, the result and its reading buffers).
const WHOLE_BYTES_PER_PX: u64 = 48;
/// More of it when every step's maps are kept.
const KEPT_STEPS_BYTES_PER_PX: u64 = 12;
/// Context around the cores of tiles created by splitting (when no tiling was configured).
pub(super) const SPLIT_OVERLAP_PX: usize = 64;
/// Tiles are not split below this core size.
pub(super) const MIN_SPLIT_PX: usize = 32;

/// A memory budget in bytes, shared between the tile being matched and the row bands.
#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    total: u64,
}

impl Budget {
    pub(super) fn new(total: u64) -> Self {
        Budget { total }
    }

    pub(super) fn total(&self) -> u64 {
        self.total
    }

    /// What one tile may hold.
    pub(super) fn tile_bytes(&self) -> u64 {
        self.total.saturating_sub(BASELINE) / 2
    }

    /// Rows per band for a pass over rows `width` pixels wide using `bytes_per_px`.
    pub(super) fn band_rows(&self, width: usize, bytes_per_px: usize) -> usize {
        let share = self.total.saturating_sub(BASELINE) / 4;
        (share / (width.max(1) * bytes_per_px) as u64).max(MIN_BAND_ROWS as u64) as usize
    }
}

/// What matching `outer` holds: `entries` candidates, the right image's volume of
/// `right_entries` candidates (the accurate left-right check; 0 without), a right crop
/// `right_columns` wide, and the confidence products when `products`.
pub(super) fn tile_bytes(
    outer: Region,
    entries: usize,
    right_entries: usize,
    right_columns: usize,
    backend: &dyn Similarity,
    products: bool,
) -> u64 {
    let pixels = (outer.width() * outer.height()) as u64;
    let products = if products { pixels * PRODUCTS_BYTES_PER_TILE_PX } else { 0 };
    let right_pixels = (right_columns * outer.height()) as u64;
    // Intervals are widened to whole SIMD registers: up to 15 more candidates per pixel.
    let candidates = entries as u64 + 15 * pixels;
    // The right volume lives beside the left one (whose raw costs it is built from) with its
    // own aggregation, path buffers, intervals and winner maps.
    let right = if right_entries > 0 {
        (right_entries as u64 + 15 * right_pixels) * BYTES_PER_ENTRY + right_pixels * BYTES_PER_TILE_PX
    } else {
        0
    };
    candidates * BYTES_PER_ENTRY
        + right
        + pixels * BYTES_PER_TILE_PX
        + (pixels + right_pixels) * backend.bytes_per_pixel() as u64
        + backend.working_bytes(outer.width().max(right_columns), outer.height())
        + products
}

/// What a similarity may hold whatever the tile size ([`Similarity::working_bytes`], e.g. a
/// feature extractor's activations on one window) under a budget of `total` bytes: half of
/// what one tile may hold, the other half going to the tile's own data.
pub fn backend_working_share(total: u64) -> u64 {
    Budget::new(total).tile_bytes() / 2
}

/// Rows per band when reading inputs `width` pixels wide under `budget`.
pub fn input_band_rows(budget: Option<u64>, width: usize) -> usize {
    budget.map_or(usize::MAX, |b| Budget::new(b).band_rows(width, INPUT_BYTES_PER_PX))
}

/// Per pixel of a band of an input being read (decoded samples, grey values, validity, mask).
pub(super) const INPUT_BYTES_PER_PX: usize = 48;

/// The fewest rows a band holds, whatever the budget.
pub(super) const MIN_BAND_ROWS: usize = 16;

/// Where a run on a `width × height` pair keeps its whole-level rasters: in memory when they
/// fit in half of `budget` (or without a budget), else in anonymous files in `scratch`.
pub fn storage_for(budget: Option<u64>, width: usize, height: usize, keep_steps: bool, scratch: &Path) -> Storage {
    storage_for_run(budget, width, height, keep_steps, false, scratch)
}

/// [`storage_for`] a run that also computes the confidence products when `products`.
pub fn storage_for_run(budget: Option<u64>, width: usize, height: usize, keep_steps: bool, products: bool, scratch: &Path) -> Storage {
    let Some(budget) = budget else {
        return Storage::Memory;
    };
    let per_pixel = WHOLE_BYTES_PER_PX
        + if keep_steps { KEPT_STEPS_BYTES_PER_PX } else { 0 }
        + if products { PRODUCTS_WHOLE_BYTES_PER_PX } else { 0 };
    if (width * height) as u64 * per_pixel <= budget.saturating_sub(BASELINE) / 2 {
        Storage::Memory
    } else {
        Storage::Scratch(scratch.to_path_buf())
    }
}

/// The largest memory size accepted (1 PiB): beyond it a size is a typo, and converting it to
/// bytes would saturate silently.
pub const MAX_SIZE_BYTES: u64 = 1 << 50;

/// A memory size written `4G`, `512M`, `1.5G`, `2048K` or in bytes (binary units; a trailing
/// `B` or `iB` is allowed); `None` when malformed or above [`MAX_SIZE_BYTES`].
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (number, shift) = match t.chars().last()?.to_ascii_uppercase() {
        'K' => (&t[..t.len() - 1], 10),
        'M' => (&t[..t.len() - 1], 20),
        'G' => (&t[..t.len() - 1], 30),
        'T' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let value: f64 = number.trim().parse().ok()?;
    let bytes = value * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes <= MAX_SIZE_BYTES as f64).then_some(bytes as u64)
}

/// The default budget: half of the machine's physical memory (Linux), else 4 GB.
pub fn default_budget() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|info| {
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    });
    total.map_or(4 << 30, |kb| kb * 1024 / 2)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("4G"), Some(4 << 30));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("12 X"), None);
        assert_eq!(parse_size("-1G"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("1e30G"), None, "beyond 1 PiB: refused, not saturated");
        assert_eq!(parse_size("1P"), None);
    }
}
