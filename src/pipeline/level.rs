//! One step over its whole level: where each pixel searches (the whole range, or around the
//! coarser step's disparity), the level cut into tiles (split further when a tile would pass
//! the memory budget), and the tiles' cores pasted into the level's grids.

use super::config::{LrCheckMode, Regularizer};
use super::images::Images;
use super::memory;
use super::products::{ProductGrids, Products};
use super::remote::TilePart;
use super::progress::Progress;
use super::report::{StageTimes, StepMaps};
use super::tile::match_tile;
use crate::cost::Intervals;
use crate::disparity::right_volume::right_intervals;
use crate::disparity::Winner;
use crate::error::{Error, Result};
use crate::grid::{Grid, Sample, Storage};
use crate::pyramid::{propagated_bounds, CoarseWindow, Propagation};
use crate::similarity::Similarity;
use crate::tiles::{tiles, Region, Tile, TileParams};
use ndarray::Array2;
use std::collections::VecDeque;

/// Everything a step's tiles share.
pub(super) struct TileContext<'a> {
    pub(super) images: &'a Images<'a>,
    pub(super) search: &'a Search<'a>,
    pub(super) backend: &'a dyn Similarity,
    pub(super) regularizer: &'a Regularizer,
    pub(super) lr_check_px: Option<f32>,
    pub(super) lr_check_mode: LrCheckMode,
    pub(super) level: u32,
    /// Compute the confidence products (the last step, when the sink wants them).
    pub(super) products: bool,
}

/// Matches every tile of a level into `result`; returns the number of tiles matched. With a
/// budget, a tile whose working set would pass it is split in four, recursively.
pub(super) fn match_level(
    context: &TileContext,
    params: Option<TileParams>,
    budget: Option<memory::Budget>,
    result: &mut StepGrids,
    progress: &dyn Progress,
    advance: &dyn Fn(usize),
    times: &mut StageTimes,
) -> Result<usize> {
    let (w, h) = (context.images.left.width(), context.images.left.height());
    match_tiles(context, tiles(w, h, params), params, budget, &mut |matched, tile| result.paste(matched, tile), progress, advance, times)
}

/// Matches `top` (tiles of [`tiles`] for `params`), each split as [`match_level`] says, and
/// hands each matched tile to `paste`; returns the number of tiles matched. A distributed run
/// calls it with one tile of the plan per task (`remote`).
#[allow(clippy::too_many_arguments)]
pub(super) fn match_tiles(
    context: &TileContext,
    top: Vec<Tile>,
    params: Option<TileParams>,
    budget: Option<memory::Budget>,
    paste: &mut dyn FnMut(&TileResult, &Tile) -> Result<()>,
    progress: &dyn Progress,
    advance: &dyn Fn(usize),
    times: &mut StageTimes,
) -> Result<usize> {
    let (w, h) = (context.images.left.width(), context.images.left.height());
    let overlap = params.map_or(memory::SPLIT_OVERLAP_PX, |p| p.overlap_px);
    let mut pending: VecDeque<Tile> = top.into();
    let mut matched = 0;
    let mut core_pixels = 0;
    while let Some(tile) = pending.pop_front() {
        let bounds = TileBounds::new(context, tile.outer)?;
        if let Some(budget) = budget {
            let need = memory::tile_bytes(tile.outer, bounds.entries(), bounds.right_entries(), bounds.right_columns(), context.backend, context.products);
            if need > budget.tile_bytes() {
                let parts = split(tile, overlap, w, h);
                if parts.len() == 1 {
                    return Err(Error::invalid_parameter(format!(
                        "the memory budget ({} MB) is too small for level {}: a {}×{} tile needs {} MB, more than \
                         the {} MB a tile may use (half of the budget left after the program's share): raise the \
                         budget (--max-memory){}",
                        budget.total() >> 20,
                        context.level,
                        tile.outer.width(),
                        tile.outer.height(),
                        need >> 20,
                        budget.tile_bytes() >> 20,
                        if bounds.right_entries() > 0 {
                            ", or use --lr-check-mode fast (the accurate check's right volume spans the tile's width \
                             plus the disparity range)"
                        } else {
                            ""
                        }
                    )));
                }
                parts.into_iter().rev().for_each(|part| pending.push_front(part));
                continue;
            }
        }
        matched += 1;
        progress.stage(context.level, &format!("tile {matched}"));
        let tile_result = match_tile(context, tile.outer, bounds, progress, times)?;
        paste(&tile_result, &tile)?;
        core_pixels += tile.core.width() * tile.core.height();
        advance(core_pixels);
    }
    Ok(matched)
}

/// The four quarters of a tile's core (each with its own overlap), or the tile itself when its
/// core is too small to split.
fn split(tile: Tile, overlap: usize, width: usize, height: usize) -> Vec<Tile> {
    let c = tile.core;
    if c.width() < 2 * memory::MIN_SPLIT_PX || c.height() < 2 * memory::MIN_SPLIT_PX {
        return vec![tile];
    }
    let (xm, ym) = ((c.x0 + c.x1) / 2, (c.y0 + c.y1) / 2);
    [(c.y0, ym, c.x0, xm), (c.y0, ym, xm, c.x1), (ym, c.y1, c.x0, xm), (ym, c.y1, xm, c.x1)]
        .into_iter()
        .map(|(y0, y1, x0, x1)| {
            let core = Region { x0, y0, x1, y1 };
            Tile { core, outer: core.grow(overlap, width, height) }
        })
        .collect()
}

/// Where a step searches: the whole range (first step) or around the previous step's result.
pub(super) enum Search<'a> {
    Range((i32, i32)),
    Around { coarse: &'a Grid<'static, i32>, factor: usize, propagation: Propagation, range: (i32, i32) },
}

impl Search<'_> {
    /// The whole range, when the search is narrowed around a coarser result (so that an
    /// interval bound inside it may clip the search).
    pub(super) fn clip_range(&self) -> Option<(i32, i32)> {
        match self {
            Search::Range(_) => None,
            Search::Around { range, .. } => Some(*range),
        }
    }

    /// Inclusive bounds of the pixels of `region` of a `width × height` level, row-major.
    pub(super) fn bounds(&self, width: usize, height: usize, region: Region) -> Result<(Vec<i32>, Vec<i32>)> {
        Ok(match self {
            Search::Range((lo, hi)) => {
                let n = region.width() * region.height();
                (vec![*lo; n], vec![*hi; n])
            }
            Search::Around { coarse, factor, propagation, range } => {
                let needed = CoarseWindow::needed(region, width, height, *propagation, *factor, coarse.width(), coarse.height());
                let values = coarse.read(needed)?;
                let window = CoarseWindow {
                    values: values.view(),
                    x0: needed.x0,
                    y0: needed.y0,
                    width: coarse.width(),
                    height: coarse.height(),
                };
                propagated_bounds(&window, width, height, *propagation, *range, *factor, region)
            }
        })
    }
}

/// The disparity bounds of a tile, shifted to the right image's crop.
pub(super) struct TileBounds {
    pub(super) lo: Vec<i32>,
    pub(super) hi: Vec<i32>,
    /// Right columns the candidates reach.
    pub(super) right: (usize, usize),
    /// Disparities in the crop = level disparities − shift.
    pub(super) shift: i32,
    /// The right pixels' intervals, in the crop's disparities, when the tile runs the accurate
    /// left-right check ([`crate::disparity::right_volume`]).
    pub(super) right_intervals: Option<Intervals>,
}

impl TileBounds {
    pub(super) fn new(context: &TileContext, region: Region) -> Result<Self> {
        let images = context.images;
        let (w, h) = (images.left.width(), images.left.height());
        let wr = images.right.width();
        let (mut lo, mut hi) = context.search.bounds(w, h, region)?;
        let d_lo = lo.iter().copied().min().expect("non-empty region");
        let d_hi = hi.iter().copied().max().expect("non-empty region");
        // The whole right image when the tile is the level.
        let right = if region == Region::full(w, h) {
            (0, wr)
        } else {
            let first = (region.x0 as i64 - d_hi as i64).clamp(0, wr as i64 - 1) as usize;
            let end = (region.x1 as i64 - d_lo as i64).clamp(first as i64 + 1, wr as i64) as usize;
            (first, end)
        };
        let shift = region.x0 as i32 - right.0 as i32;
        lo.iter_mut().chain(hi.iter_mut()).for_each(|d| *d -= shift);
        let right_intervals = (context.lr_check_px.is_some() && context.lr_check_mode == LrCheckMode::Accurate)
            .then(|| right_intervals(&Intervals::from_bounds(region.width(), region.height(), &lo, &hi)?, right.1 - right.0))
            .transpose()?;
        Ok(TileBounds { lo, hi, right, shift, right_intervals })
    }

    /// Cost-volume entries (candidates before the widening to SIMD lanes, which adds ≤ 15 per
    /// pixel and is counted by [`memory`]'s margins).
    pub(super) fn entries(&self) -> usize {
        self.lo.iter().zip(&self.hi).map(|(l, h)| (h - l + 1) as usize).sum()
    }

    /// Entries of the right image's volume (0 without the accurate left-right check).
    pub(super) fn right_entries(&self) -> usize {
        self.right_intervals.as_ref().map_or(0, |iv| iv.total())
    }

    pub(super) fn right_columns(&self) -> usize {
        self.right.1 - self.right.0
    }
}

/// Which maps a step keeps besides the integer disparity.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keep {
    pub(super) confidence: bool,
    pub(super) masked: bool,
    /// The last step: sub-pixel disparity and left-right rejections too.
    pub(super) last: bool,
    /// Left-right rejections (the last step, or a step whose next one widens around them).
    pub(super) rejected: bool,
    /// The confidence products (`products`).
    pub(super) products: bool,
}

/// A step's per-pixel results over its whole level, assembled from the tiles' cores.
pub(super) struct StepGrids {
    pub(super) disparity: Grid<'static, i32>,
    pub(super) subpixel: Option<Grid<'static, f32>>,
    pub(super) confidence: Option<Grid<'static, f32>>,
    pub(super) masked: Option<Grid<'static, bool>>,
    /// Rejected by the left-right check.
    pub(super) rejected: Option<Grid<'static, bool>>,
    /// The confidence products.
    pub(super) products: Option<ProductGrids>,
    pub(super) entries: usize,
    pub(super) span: (i32, i32),
    pub(super) masked_count: usize,
}

impl StepGrids {
    pub(super) fn new(w: usize, h: usize, keep: Keep, storage: &Storage) -> Result<Self> {
        fn optional<T: Sample>(on: bool, w: usize, h: usize, storage: &Storage) -> Result<Option<Grid<'static, T>>> {
            on.then(|| Grid::new(w, h, storage)).transpose()
        }
        Ok(StepGrids {
            disparity: Grid::new(w, h, storage)?,
            subpixel: optional(keep.last, w, h, storage)?,
            confidence: optional(keep.confidence, w, h, storage)?,
            masked: optional(keep.masked, w, h, storage)?,
            rejected: optional(keep.rejected, w, h, storage)?,
            products: keep.products.then(|| ProductGrids::new(w, h, storage)).transpose()?,
            entries: 0,
            span: (i32::MAX, i32::MIN),
            masked_count: 0,
        })
    }

    /// Copies the core of `tile` from `matched` (which covers `tile.outer`).
    pub(super) fn paste(&mut self, matched: &TileResult, tile: &Tile) -> Result<()> {
        let part = TilePart::cut(matched, tile, self.keeps());
        self.write_part(&part)
    }

    /// The maps a caller keeps ([`MatchConfig::keep_steps`]).
    pub(super) fn maps(self, level: u32, storage: &Storage) -> Result<StepMaps> {
        let (w, h) = (self.disparity.width(), self.disparity.height());
        let confidence = match self.confidence {
            Some(grid) => grid,
            None => Grid::new(w, h, storage)?,
        };
        Ok(StepMaps { level, disparity: self.disparity, confidence, masked: self.masked })
    }
}

/// The results of one tile, over its outer rectangle, in the level's disparities.
pub(super) struct TileResult {
    pub(super) winner: Winner,
    pub(super) masked: Option<Array2<bool>>,
    pub(super) rejected: Array2<bool>,
    pub(super) products: Option<Products>,
    pub(super) entries: usize,
    pub(super) span: (i32, i32),
}
