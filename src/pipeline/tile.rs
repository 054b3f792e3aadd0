//! One tile of a level: crops, costs, regularisation, winner-take-all and, at the last step,
//! the left-right check. The cost volume exists only here, one tile at a time.

use super::config::Regularizer;
use super::level::{TileBounds, TileContext, TileResult};
use super::products::{tile_products, TileFrame};
use super::progress::Progress;
use super::report::StageTimes;
use crate::cost::{cost_from_unit, fill_volume, mask_costs, CostVolume, Intervals};
use crate::disparity::right_volume::right_volume;
use crate::disparity::{flat_costs, left_right_check, left_right_check_accurate, winner_take_all};
use crate::error::Result;
use crate::grid::{Grid, Sample};
use crate::sgm::{aggregate, Penalty, SgmParams};
use crate::sgm::lines::aggregate_lines;
use crate::similarity::LevelPair;
use crate::tiles::Region;
use ndarray::Array2;
use std::borrow::Cow;
use std::time::Instant;

/// `region` of a grid as an array: borrowed when it is the whole grid in memory.
fn crop<'g, T: Sample>(grid: &'g Grid<'_, T>, region: Region) -> Result<Cow<'g, Array2<T>>> {
    match grid.in_memory() {
        Some(array) if region == grid.region() => Ok(Cow::Borrowed(array)),
        _ => Ok(Cow::Owned(grid.read(region)?.into_owned())),
    }
}

/// Matches the pixels of `region` of a level: the left image cropped to the region, the right
/// image to the columns its candidates reach (disparities are shifted accordingly and shifted
/// back in the result), costs, regularisation, winner-take-all and, at the last step, the
/// left-right check.
pub(super) fn match_tile(
    context: &TileContext,
    region: Region,
    bounds: TileBounds,
    progress: &dyn Progress,
    times: &mut StageTimes,
) -> Result<TileResult> {
    let (images, level) = (context.images, context.level);
    let TileBounds { lo, hi, right: (xr0, xr1), shift, right_intervals } = bounds;
    let intervals = Intervals::from_bounds(region.width(), region.height(), &lo, &hi)?;
    drop((lo, hi));
    let right_region = Region { x0: xr0, x1: xr1, ..region };
    let left = crop(&images.left, region)?;
    let right = crop(&images.right, right_region)?;
    let left_valid = crop(&images.left_valid, region)?;
    let right_valid = crop(&images.right_valid, right_region)?;
    let level_pair = LevelPair { left: &left, right: &right, left_valid: &left_valid, right_valid: &right_valid };

    progress.stage(level, "features");
    let t = Instant::now();
    let prepared = context.backend.prepare(level_pair)?;
    times.prepare += t.elapsed().as_secs_f64();

    progress.stage(level, "costs");
    let t = Instant::now();
    let mut costs = fill_volume(prepared.as_ref(), &intervals)?;
    drop(prepared);
    mask_costs(&intervals, &mut costs, &left_valid, &right_valid);
    let volume = CostVolume { intervals, costs };
    times.cost += t.elapsed().as_secs_f64();

    progress.stage(level, "regularisation");
    let t = Instant::now();
    let (aggregated, masked) = regularize(context.regularizer, &volume, &left, &left_valid)?;
    times.regularize += t.elapsed().as_secs_f64();

    progress.stage(level, "winner-take-all");
    let t = Instant::now();
    let mut winner = winner_take_all(&volume.intervals, &aggregated);
    // No information in the raw costs: no confidence, whatever the regulariser made of them.
    let flat = flat_costs(&volume.intervals, &volume.costs, right.ncols());
    ndarray::Zip::from(&mut winner.confidence).and(&flat).for_each(|c, &f| if f { *c = 0.0 });

    let products = context.products.then(|| {
        let frame = TileFrame {
            right_valid: &right_valid,
            left_valid: &left_valid,
            right_x0: xr0,
            right_width: images.right.width(),
            clip_range: context.search.clip_range().map(|(lo, hi)| (lo - shift, hi - shift)),
            shift,
        };
        tile_products(&volume, &winner, &frame)
    });
    times.wta += t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut rejected = Array2::from_elem(left.dim(), false);
    if let Some(tolerance) = context.lr_check_px {
        let mut marks = Array2::<f32>::zeros(left.dim());
        let margin = match context.regularizer {
            Regularizer::Sgm(SgmParams { penalty: Penalty::Classic { p1, .. }, .. }) => cost_from_unit(*p1),
            _ => 0,
        };
        match right_intervals {
            // The accurate mode: the right image's own volume, regularised along its paths.
            Some(right_intervals) => {
                let right_volume = right_volume(&volume, right_intervals);
                let t = Instant::now();
                let (right_aggregated, _) = regularize(context.regularizer, &right_volume, &right, &right_valid)?;
                // The right pass's regularisation counts as regularisation, the rest as the check.
                let right_pass_s = t.elapsed().as_secs_f64();
                times.regularize += right_pass_s;
                times.post -= right_pass_s;
                let right_winner = winner_take_all(&right_volume.intervals, &right_aggregated);
                left_right_check_accurate(
                    &winner.disparity,
                    &right_volume.intervals,
                    &right_aggregated,
                    &right_winner.disparity,
                    tolerance,
                    margin,
                    &mut marks,
                );
            }
            None => {
                left_right_check(&volume.intervals, &aggregated, &winner.disparity, right.ncols(), tolerance, margin, &mut marks);
            }
        }
        // Invalid left pixels have no match to check (their flag comes from the mask).
        ndarray::Zip::from(&mut rejected).and(&marks).and(left_valid.as_ref()).for_each(|r, m, &ok| *r = ok && m.is_nan());
    }
    times.post += t.elapsed().as_secs_f64();

    let span = volume.intervals.span();
    winner.disparity.mapv_inplace(|d| d + shift);
    winner.subpixel.mapv_inplace(|d| d + shift as f32);
    Ok(TileResult {
        winner,
        masked,
        rejected,
        products,
        entries: volume.intervals.total(),
        span: (span.0 + shift, span.1 + shift),
    })
}

/// Aggregated costs (borrowed when there is no regulariser) and MicMac's occlusion label.
type Regularized<'v> = (Cow<'v, [u16]>, Option<Array2<bool>>);

/// `volume` regularised by `regularizer` (`guide`: the grey image of the volume's reference
/// view; `valid`: its validity), and MicMac's occlusion label where it has one.
fn regularize<'v>(
    regularizer: &Regularizer,
    volume: &'v CostVolume,
    guide: &Array2<f32>,
    valid: &Array2<bool>,
) -> Result<Regularized<'v>> {
    Ok(match regularizer {
        Regularizer::Sgm(params) => (Cow::Owned(aggregate(volume, guide, params)?), None),
        Regularizer::Micmac(params) => {
            let result = aggregate_lines(volume, valid, params)?;
            (Cow::Owned(result.sum), result.masked)
        }
        Regularizer::None => (Cow::Borrowed(volume.costs.as_slice()), None),
    })
}
