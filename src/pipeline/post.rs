//! The last step's filters, by bands of full rows: invalid and rejected pixels, small-region
//! removal, the median, background filling and the confidence of what is left.
//!
//! Each band is read with `margin` more rows above and below, so that its rows get exactly the
//! values a whole-image pass gives: a region of fewer than `min_region_px` pixels spans fewer
//! rows than that, so it lies within the margin whenever it touches the band, and a region
//! reaching the margin's edge from the band is large anyway; the median needs one row more.
//! Background filling works along rows, which bands keep whole. With the confidence products,
//! each band also gets the validity bits that only these filters know.

use super::config::{Fill, MatchConfig};
use super::driver::RowSink;
use super::level::StepGrids;
use super::products::{add_filter_bits, FilterMaps};
use crate::disparity::{fill_background, median3, remove_small_regions};
use crate::error::Result;
use crate::grid::Grid;
use crate::tiles::Region;
use ndarray::{s, Array2, ArrayView2, Zip};

/// Pixel counts of the filters, over the whole image.
#[derive(Debug, Default)]
pub(super) struct PostStats {
    pub lr_rejected: usize,
    pub small_regions_removed: usize,
    pub filled: usize,
    pub with_value: usize,
}

/// Filters the last step's maps in `result` band by band (`band_rows` rows) into `sink`.
pub(super) fn finish(
    result: &StepGrids,
    left_valid: &Grid<bool>,
    config: &MatchConfig,
    band_rows: usize,
    sink: &mut dyn RowSink,
) -> Result<PostStats> {
    let (w, h) = (result.disparity.width(), result.disparity.height());
    let regions_margin = if config.min_region_px > 1 { config.min_region_px } else { 0 };
    let margin = regions_margin + usize::from(config.median);
    let mut stats = PostStats::default();
    for y0 in (0..h).step_by(band_rows.max(1)) {
        let y1 = (y0 + band_rows).min(h);
        let outer = Region { x0: 0, y0: y0.saturating_sub(margin), x1: w, y1: (y1 + margin).min(h) };
        // Rows of the band within `outer`.
        let core = s![y0 - outer.y0..y1 - outer.y0, ..];
        let valid = left_valid.read(outer)?;
        let mut disparity = match &result.subpixel {
            Some(grid) if config.subpixel => grid.read(outer)?.into_owned(),
            _ => result.disparity.read(outer)?.mapv(|d| d as f32),
        };
        let rejected = result.rejected.as_ref().map(|g| g.read(outer)).transpose()?;
        let masked = result.masked.as_ref().map(|g| g.read(outer)).transpose()?;
        if let Some(rejected) = &rejected {
            stats.lr_rejected += Zip::from(rejected.slice(core)).and(valid.slice(core)).fold(0, |n, &r, &ok| n + usize::from(r && ok));
        }
        // Small regions are those of the matched surface, before the left-right check: its
        // rejections (scattered in low texture) would cut a large correct region into pieces
        // that each look small.
        Zip::indexed(&mut disparity).for_each(|(y, x), d| {
            if !valid[(y, x)] || masked.as_ref().is_some_and(|m| m[(y, x)]) {
                *d = f32::NAN;
            }
        });
        let mut regions = disparity.clone();
        remove_small_regions(&mut regions, config.min_region_px, 1.0);
        if let Some(rejected) = &rejected {
            Zip::from(&mut disparity).and(rejected).for_each(|d, &r| if r { *d = f32::NAN });
        }
        let before = with_value(disparity.slice(core));
        let before_regions = result.products.is_some().then(|| disparity.slice(core).to_owned());
        Zip::from(&mut disparity).and(&regions).for_each(|d, r| if !r.is_finite() { *d = f32::NAN });
        stats.small_regions_removed += before - with_value(disparity.slice(core));
        if config.median {
            disparity = median3(&disparity);
        }
        let mut band: Array2<f32> = disparity.slice(core).to_owned();
        let band_valid = valid.slice(core).to_owned();
        let before_fill = result.products.is_some().then(|| band.clone());
        if config.fill == Fill::Background {
            stats.filled += fill_background(&mut band, &band_valid);
        }
        stats.with_value += with_value(band.view());
        let confidence = match &result.confidence {
            Some(grid) => grid.read(Region { x0: 0, y0, x1: w, y1 })?.into_owned(),
            None => Array2::zeros(band.dim()),
        };
        let confidence = Zip::from(&confidence).and(&band).map_collect(|&c, d| if d.is_finite() { c } else { 0.0 });
        sink.rows(y0, band.view(), confidence.view())?;
        if let (Some(grids), Some(before_regions), Some(before_fill)) = (&result.products, &before_regions, &before_fill) {
            let mut products = grids.read(Region { x0: 0, y0, x1: w, y1 })?;
            let maps = FilterMaps {
                valid: band_valid.view(),
                rejected: rejected.as_ref().map(|r| r.slice(core)),
                masked: masked.as_ref().map(|m| m.slice(core)),
                before_regions: before_regions.view(),
                before_fill: before_fill.view(),
                result: band.view(),
            };
            add_filter_bits(&mut products.validity, &maps);
            sink.product_rows(y0, &products)?;
        }
    }
    Ok(stats)
}

/// Pixels with a disparity.
fn with_value(disparity: ArrayView2<f32>) -> usize {
    disparity.iter().filter(|d| d.is_finite()).count()
}
