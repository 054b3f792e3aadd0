//! Splitting a pyramid level into overlapping tiles, so that a step's cost volume never holds
//! more than one tile (MicMac's `SzDalleMax` / `SzRecouvrtDalles`).
//!
//! Each tile has a *core* (its share of the output; the cores partition the level) and an
//! *outer* rectangle, the core grown by the overlap on every side (clipped to the level), which
//! is what gets matched. Results are kept on the core only, so every output pixel is computed
//! with at least `overlap` pixels of context in every direction (except at the level's border):
//! the regulariser's paths and the similarity windows see nearly what they would see untiled,
//! and the tiled result agrees with the untiled one except for a few pixels (measured in tests).

use serde::Serialize;

/// A rectangle of pixels `x0 .. x1` × `y0 .. y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Region {
    /// First column.
    pub x0: usize,
    /// First row.
    pub y0: usize,
    /// One past the last column.
    pub x1: usize,
    /// One past the last row.
    pub y1: usize,
}

impl Region {
    /// The whole `width × height` grid.
    pub fn full(width: usize, height: usize) -> Self {
        Region { x0: 0, y0: 0, x1: width, y1: height }
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }

    /// Grown by `by` on every side, clipped to a `width × height` grid.
    pub fn grow(&self, by: usize, width: usize, height: usize) -> Self {
        Region {
            x0: self.x0.saturating_sub(by),
            y0: self.y0.saturating_sub(by),
            x1: (self.x1 + by).min(width),
            y1: (self.y1 + by).min(height),
        }
    }
}

/// Tile size and overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TileParams {
    /// Side of a tile's core (px at the step's level).
    pub size_px: usize,
    /// Context matched around each core on every side (px at the step's level).
    pub overlap_px: usize,
}

/// One tile: the pixels it outputs and the pixels it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Output share; the cores of a level partition it.
    pub core: Region,
    /// The core with its overlap.
    pub outer: Region,
}

/// Tiles covering a `width × height` level, row by row; one tile (the whole level) without
/// `params` or when the level fits in one core. Cores have equal sizes up to one pixel.
pub fn tiles(width: usize, height: usize, params: Option<TileParams>) -> Vec<Tile> {
    let whole = Region::full(width, height);
    let Some(p) = params.filter(|p| p.size_px > 0 && (width > p.size_px || height > p.size_px)) else {
        return vec![Tile { core: whole, outer: whole }];
    };
    let cuts = |n: usize| -> Vec<usize> {
        let count = n.div_ceil(p.size_px);
        (0..=count).map(|i| i * n / count).collect()
    };
    let (xs, ys) = (cuts(width), cuts(height));
    let mut out = Vec::new();
    for y in ys.windows(2) {
        for x in xs.windows(2) {
            let core = Region { x0: x[0], y0: y[0], x1: x[1], y1: y[1] };
            out.push(Tile { core, outer: core.grow(p.overlap_px, width, height) });
        }
    }
    out
}
