//! The run, end to end: the pyramid, then each step matched tile by tile over its level
//! (`level`), each step's disparity bounding the next one's search, and at full resolution
//! the filters, delivered to a [`RowSink`] band by band (`post`).
//!
//! [`run`] keeps everything in memory; [`run_streamed`] is the same code with the whole-level
//! rasters in a [`Storage`] of the caller's choice, so that the memory held is bounded by the
//! budget whatever the image size.

use super::config::{MatchConfig, Regularizer};
use super::images::{Images, Pair};
use super::level::{match_level, Keep, Search, StepGrids, TileContext};
use super::remote::{match_level_remote, TileRunner};
use super::products::Products;
use super::progress::Progress;
use super::report::{MatchOutput, RunSummary, StageTimes, StepOutput, StepReport};
use super::{memory, post};
use crate::error::Result;
use crate::grid::{Grid, Sample, Storage};
use crate::pyramid::{level_range, UNCERTAIN_DISPARITY};
use crate::sgm::lines::LineParams;
use crate::similarity::Similarity;
use crate::tiles::Region;
use ndarray::{s, Array2, ArrayView2};
use std::time::Instant;

/// Matches `pair` (held in memory) through the steps of `config`; step `s` uses
/// `backends[s.similarity]`. Everything stays in memory; [`run_streamed`] is the same run with
/// the whole-level rasters in scratch files and the results delivered by row bands.
pub fn run(
    pair: &Pair,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    progress: &dyn Progress,
) -> Result<MatchOutput> {
    run_in_memory(pair, config, backends, progress, false)
}

/// [`run`], with the confidence products ([`Products`]) in [`MatchOutput::products`].
pub fn run_with_products(
    pair: &Pair,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    progress: &dyn Progress,
) -> Result<MatchOutput> {
    run_in_memory(pair, config, backends, progress, true)
}

fn run_in_memory(
    pair: &Pair,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    progress: &dyn Progress,
    products: bool,
) -> Result<MatchOutput> {
    config.validate(pair, backends.len())?;
    let mut sink = Collect::new(pair.left.dim(), products);
    let summary = run_streamed(Images::borrowed(pair), config, backends, &Storage::Memory, progress, &mut sink)?;
    let steps = summary
        .steps
        .into_iter()
        .map(|step| {
            Ok(StepOutput {
                level: step.level,
                disparity: step.disparity.into_array()?,
                confidence: step.confidence.into_array()?,
                masked: step.masked.map(Grid::into_array).transpose()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(MatchOutput {
        disparity: sink.disparity,
        confidence: sink.confidence,
        reports: summary.reports,
        steps,
        times: summary.times,
        lr_rejected: summary.lr_rejected,
        small_regions_removed: summary.small_regions_removed,
        filled: summary.filled,
        products: sink.products,
    })
}

/// Receives the final disparity and confidence, a band of full rows at a time, top to bottom.
pub trait RowSink {
    /// Rows `first_row ..` of the disparity (NaN = no value) and the confidence.
    fn rows(&mut self, first_row: usize, disparity: ArrayView2<f32>, confidence: ArrayView2<f32>) -> Result<()>;

    /// Whether the run computes the confidence products for this sink. By default not: they
    /// cost time (a pass over the cost volume) and memory (six more maps).
    fn wants_products(&self) -> bool {
        false
    }

    /// Rows `first_row ..` of the confidence products, right after [`RowSink::rows`] gave the
    /// same rows; called only when [`RowSink::wants_products`] says so.
    fn product_rows(&mut self, _first_row: usize, _products: &Products) -> Result<()> {
        Ok(())
    }
}

/// Collects the rows into whole arrays.
struct Collect {
    disparity: Array2<f32>,
    confidence: Array2<f32>,
    products: Option<Products>,
}

impl Collect {
    fn new(dim: (usize, usize), products: bool) -> Self {
        Collect { disparity: Array2::zeros(dim), confidence: Array2::zeros(dim), products: products.then(|| Products::empty(dim)) }
    }
}

impl RowSink for Collect {
    fn rows(&mut self, first_row: usize, disparity: ArrayView2<f32>, confidence: ArrayView2<f32>) -> Result<()> {
        let rows = s![first_row..first_row + disparity.nrows(), ..];
        self.disparity.slice_mut(rows).assign(&disparity);
        self.confidence.slice_mut(rows).assign(&confidence);
        Ok(())
    }

    fn wants_products(&self) -> bool {
        self.products.is_some()
    }

    fn product_rows(&mut self, first_row: usize, products: &Products) -> Result<()> {
        if let Some(all) = &mut self.products {
            all.assign_rows(first_row, products);
        }
        Ok(())
    }
}

/// Matches the level-0 `images` through the steps of `config` and hands the result to `sink`
/// by bands of rows. Whole-level rasters (pyramid levels, step results) are kept in `storage`;
/// with [`MatchConfig::memory_budget`], tiles and bands are sized to stay within it.
/// The caller has checked that both images have valid pixels.
pub fn run_streamed(
    images: Images<'_>,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    storage: &Storage,
    progress: &dyn Progress,
    sink: &mut dyn RowSink,
) -> Result<RunSummary> {
    run_checked(images, config, backends, storage, progress, sink, None)
}

/// [`run_streamed`] with each step's tiles matched by `runner` (other processes: the workers
/// of a distributed run, see [`super::remote`]) instead of in this process; the rest of the
/// run (step order, assembly, filters, `sink`) is the same code, and so is the result.
pub fn run_streamed_remote(
    images: Images<'_>,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    storage: &Storage,
    progress: &dyn Progress,
    sink: &mut dyn RowSink,
    runner: &dyn TileRunner,
) -> Result<RunSummary> {
    run_checked(images, config, backends, storage, progress, sink, Some(runner))
}

/// Both entries: the sizes checked against `config`, bands sized from its memory budget.
fn run_checked(
    images: Images<'_>,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    storage: &Storage,
    progress: &dyn Progress,
    sink: &mut dyn RowSink,
    runner: Option<&dyn TileRunner>,
) -> Result<RunSummary> {
    let (wl, hl) = (images.left.width(), images.left.height());
    config.validate_sizes((wl, hl), (images.right.width(), images.right.height()), backends.len())?;
    let budget = config.memory_budget.map(memory::Budget::new);
    let bands = |width: usize, bytes_per_px: usize| budget.map_or(usize::MAX, |b| b.band_rows(width, bytes_per_px));
    run_in_bands(images, config, backends, storage, progress, sink, &bands, runner)
}

/// The pyramid of `images` (level 0 first, `levels` levels) in `storage`, and the seconds
/// it took.
pub(super) fn build_pyramid<'a>(
    images: Images<'a>,
    levels: u32,
    storage: &Storage,
    bands: &dyn Fn(usize, usize) -> usize,
) -> Result<(Vec<Images<'a>>, f64)> {
    let t = Instant::now();
    let mut pyramid = vec![images];
    for _ in 1..levels {
        let finer = pyramid.last().expect("level 0 is there");
        let coarser = finer.reduce(storage, bands(finer.left.width(), memory::REDUCE_BYTES_PER_PX))?;
        pyramid.push(coarser);
    }
    Ok((pyramid, t.elapsed().as_secs_f64()))
}

/// Where step `index` searches: the whole range (first step), or around `previous` (the
/// previous step's disparity and level).
pub(super) fn step_search<'a>(config: &MatchConfig, index: usize, previous: Option<(&'a Grid<'static, i32>, u32)>) -> Search<'a> {
    let step = &config.steps[index];
    let range = level_range(config.disp_min, config.disp_max, step.level);
    match previous {
        None => Search::Range(range),
        Some((coarse, prev_level)) => Search::Around { coarse, factor: 1 << (prev_level - step.level), propagation: step.propagation, range },
    }
}

/// What step `index`'s tiles share; `products`: the sink wants the confidence products.
pub(super) fn step_context<'a>(
    config: &'a MatchConfig,
    index: usize,
    images: &'a Images<'a>,
    search: &'a Search<'a>,
    backends: &[&'a dyn Similarity],
    products: bool,
) -> TileContext<'a> {
    let step = &config.steps[index];
    let last = index == config.steps.len() - 1;
    TileContext {
        images,
        search,
        backend: backends[step.similarity],
        regularizer: &step.regularizer,
        lr_check_px: if last { config.lr_check_px } else { check_for_next(config, index).then_some(COARSE_LR_TOLERANCE_PX) },
        lr_check_mode: config.lr_check_mode,
        level: step.level,
        products: last && products,
    }
}

/// The maps step `index` keeps; `products`: the sink wants the confidence products.
pub(super) fn step_keep(config: &MatchConfig, index: usize, products: bool, regularizer: &Regularizer) -> Keep {
    let last = index == config.steps.len() - 1;
    let with_mask = matches!(regularizer, Regularizer::Micmac(LineParams { mask: Some(_), .. }));
    Keep {
        confidence: last || config.keep_steps,
        masked: with_mask && (last || config.keep_steps),
        last,
        rejected: last || check_for_next(config, index),
        products: last && products,
    }
}

/// Whether step `index` runs a left-right check for the next step, which searches the whole
/// range around its rejections ([`crate::pyramid::Propagation::uncertain_full_range`]).
fn check_for_next(config: &MatchConfig, index: usize) -> bool {
    config.steps.get(index + 1).is_some_and(|next| next.propagation.uncertain_full_range)
}

/// Writes [`UNCERTAIN_DISPARITY`] into `disparity` where `rejected`: the next step (here or on
/// the workers of a distributed run, which get this grid) searches the whole range there.
fn mark_uncertain(disparity: &mut Grid<'static, i32>, rejected: &Grid<'static, bool>) -> Result<()> {
    let (w, h) = (disparity.width(), disparity.height());
    for y0 in (0..h).step_by(256) {
        let rows = Region { x0: 0, y0, x1: w, y1: (y0 + 256).min(h) };
        let mut values = disparity.read(rows)?.into_owned();
        let flags = rejected.read(rows)?;
        ndarray::Zip::from(&mut values).and(&flags).for_each(|d, &r| if r { *d = UNCERTAIN_DISPARITY });
        disparity.write(0, y0, values.view())?;
    }
    Ok(())
}

/// [`run_streamed`] with the rows per band given by `bands(width, bytes per pixel)`, each
/// step's tiles matched here or by `runner`.
#[allow(clippy::too_many_arguments)]
fn run_in_bands(
    images: Images<'_>,
    config: &MatchConfig,
    backends: &[&dyn Similarity],
    storage: &Storage,
    progress: &dyn Progress,
    sink: &mut dyn RowSink,
    bands: &dyn Fn(usize, usize) -> usize,
    runner: Option<&dyn TileRunner>,
) -> Result<RunSummary> {
    let start = Instant::now();
    let mut times = StageTimes::default();
    let budget = config.memory_budget.map(memory::Budget::new);

    let levels = config.levels();
    progress.stage(levels - 1, "pyramid");
    let (pyramid, seconds) = build_pyramid(images, levels, storage, bands)?;
    times.pyramid = seconds;

    let step_pixels: Vec<f64> = config
        .steps
        .iter()
        .map(|step| {
            let level = &pyramid[step.level as usize].left;
            (level.width() * level.height()) as f64
        })
        .collect();
    let all_pixels: f64 = step_pixels.iter().sum();
    let mut pixels_done = 0.0;

    let mut reports = Vec::new();
    let mut kept = Vec::new();
    // The previous step's disparity and level.
    let mut previous: Option<(Grid<'static, i32>, u32)> = None;
    let last_step = config.steps.len() - 1;
    for (index, step) in config.steps.iter().enumerate() {
        let level = step.level;
        let images = &pyramid[level as usize];
        let (w, h) = (images.left.width(), images.left.height());
        let search = step_search(config, index, previous.as_ref().map(|(grid, level)| (grid, *level)));
        let backend = backends[step.similarity];
        let last = index == last_step;
        let products = last && sink.wants_products();
        let keep = step_keep(config, index, products, &step.regularizer);
        let mut result = StepGrids::new(w, h, keep, storage)?;
        let context = step_context(config, index, images, &search, backends, products);
        let advance = |core_pixels: usize| progress.done((pixels_done + core_pixels as f64) / all_pixels);
        let tiles = match runner {
            None => match_level(&context, config.tiles, budget, &mut result, progress, &advance, &mut times)?,
            Some(runner) => match_level_remote(runner, index, &context, config, &mut result, &advance, &mut times)?,
        };
        pixels_done += step_pixels[index];

        reports.push(StepReport {
            level,
            width: w,
            height: h,
            similarity: backend.name(),
            cost_volume_entries: result.entries,
            mean_candidates: result.entries as f64 / (w * h) as f64,
            disparity_span: result.span,
            masked_pixels: result.masked_count,
            tiles,
        });
        if !last {
            let rejected = result.rejected.take();
            let mut disparity = if config.keep_steps {
                let maps = result.maps(level, storage)?;
                let copy = copy_grid(&maps.disparity, storage)?;
                kept.push(maps);
                copy
            } else {
                result.disparity
            };
            if let Some(rejected) = rejected {
                mark_uncertain(&mut disparity, &rejected)?;
            }
            previous = Some((disparity, level));
            continue;
        }

        progress.stage(0, "filters");
        let t = Instant::now();
        let post_bytes = memory::POST_BYTES_PER_PX + if products { memory::POST_PRODUCTS_BYTES_PER_PX } else { 0 };
        let band = bands(w, post_bytes).min(h);
        let stats = post::finish(&result, &images.left_valid, config, band, sink)?;
        times.post += t.elapsed().as_secs_f64();
        if config.keep_steps {
            kept.push(result.maps(level, storage)?);
        }
        times.total = start.elapsed().as_secs_f64();
        return Ok(RunSummary {
            reports,
            steps: kept,
            times,
            lr_rejected: stats.lr_rejected,
            small_regions_removed: stats.small_regions_removed,
            filled: stats.filled,
            with_value: stats.with_value,
        });
    }
    unreachable!("validate() guarantees at least one step")
}

/// Tolerance (px at the coarser level) of the left-right check that marks where the next step
/// searches the whole range ([`crate::pyramid::Propagation::uncertain_full_range`]).
const COARSE_LR_TOLERANCE_PX: f32 = 1.0;

/// A copy of `grid` in `storage`, band by band.
fn copy_grid<T: Sample>(grid: &Grid<'_, T>, storage: &Storage) -> Result<Grid<'static, T>> {
    let (w, h) = (grid.width(), grid.height());
    let mut copy = Grid::new(w, h, storage)?;
    for y0 in (0..h).step_by(256) {
        let rows = Region { x0: 0, y0, x1: w, y1: (y0 + 256).min(h) };
        copy.write(0, y0, grid.read(rows)?.view())?;
    }
    Ok(copy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{pyramid_steps, Fill, NoProgress, MIN_BUDGET};
    use crate::pyramid::Propagation;
    use crate::sgm::SgmParams;
    use crate::similarity::Census;
    use crate::tiles::TileParams;

    /// A textured pair with a disparity step: left (x, y) = right (x − d, y).
    fn pair(w: usize, h: usize) -> Pair {
        let texture = |x: f32, y: f32| 0.5 + 0.25 * (0.9 * x).sin() * (0.7 * y).cos() + 0.2 * ((x * 12.9898 + y * 78.233).sin() * 43758.547).fract();
        let d = |x: usize, y: usize| if (x / 17 + y / 13).is_multiple_of(3) { 9.0 } else { 4.0 };
        Pair {
            left: Array2::from_shape_fn((h, w), |(y, x)| texture(x as f32 - d(x, y), y as f32)),
            right: Array2::from_shape_fn((h, w), |(y, x)| texture(x as f32, y as f32)),
            left_valid: Array2::from_shape_fn((h, w), |(y, x)| (x + 3 * y) % 97 != 0),
            right_valid: Array2::from_elem((h, w), true),
        }
    }

    fn sgm() -> Regularizer {
        Regularizer::Sgm(SgmParams { directions: 8, penalty: crate::sgm::Penalty::Classic { p1: 0.2, p2: 0.8, p2_adapt: None } })
    }

    fn config(regularizer: Regularizer) -> MatchConfig {
        let propagation = Propagation { dilate_alti_px: 2, dilate_plani_px: 1, uncertain_full_range: true };
        MatchConfig {
            disp_min: 0,
            disp_max: 15,
            steps: pyramid_steps(2, regularizer, propagation, |_| 0),
            subpixel: true,
            lr_check_px: Some(1.0),
            lr_check_mode: Default::default(),
            median: true,
            // Regions are found before the left-right check: 40 px catches the occlusion slivers.
            min_region_px: 40,
            fill: Fill::Background,
            keep_steps: true,
            tiles: Some(TileParams { size_px: 40, overlap_px: 8 }),
            memory_budget: None,
        }
    }

    /// Narrow bands and scratch files change nothing: the same bits as one in-memory pass.
    #[test]
    fn bands_and_scratch_files_give_the_same_result_as_memory() {
        let pair = pair(97, 83);
        let census = Census::new(5, 5).unwrap();
        let micmac = Regularizer::Micmac(LineParams {
            orientations: 5,
            weight: 0.05,
            max_slope: 2.0,
            mask: Some(crate::sgm::lines::MaskLabel { cost: 0.5, transition: 0.3 }),
        });
        for regularizer in [sgm(), micmac] {
            let cfg = config(regularizer);
            let whole = run_with_products(&pair, &cfg, &[&census], &NoProgress).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let scratch = Storage::Scratch(dir.path().to_path_buf());
            let mut sink = Collect::new(pair.left.dim(), true);
            let summary = run_in_bands(Images::borrowed(&pair), &cfg, &[&census], &scratch, &NoProgress, &mut sink, &|_, _| 7, None).unwrap();
            let same = |a: &Array2<f32>, b: &Array2<f32>| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same(&whole.disparity, &sink.disparity), "{regularizer:?}: disparity");
            assert!(same(&whole.confidence, &sink.confidence), "{regularizer:?}: confidence");
            let (a, b) = (whole.products.as_ref().unwrap(), sink.products.as_ref().unwrap());
            for (x, y) in a.maps().into_iter().zip(b.maps()) {
                assert!(same(x, y), "{regularizer:?}: confidence products");
            }
            assert_eq!(a.validity, b.validity, "{regularizer:?}: validity");
            assert_eq!(
                (whole.lr_rejected, whole.small_regions_removed, whole.filled),
                (summary.lr_rejected, summary.small_regions_removed, summary.filled)
            );
            assert!(whole.small_regions_removed > 0 && whole.filled > 0, "the filters had work to do");
            for (a, b) in whole.steps.iter().zip(summary.steps) {
                assert!(b.disparity.on_disk());
                assert_eq!(a.disparity, b.disparity.into_array().unwrap());
                assert_eq!(a.masked, b.masked.map(|m| m.into_array().unwrap()));
            }
        }
    }

    /// A budget too small for a tile splits it (more tiles, same pixels covered), and one too
    /// small for the smallest tile is an error naming the budget.
    #[test]
    fn tiles_split_to_fit_the_budget() {
        let pair = pair(300, 260);
        let census = Census::new(5, 5).unwrap();
        let mut cfg = config(sgm());
        cfg.disp_max = 127;
        cfg.tiles = None;
        // The fast check: the accurate one's right volume spans the tile's width plus the range
        // (128 here), and the smallest split tile would not fit a 128 MB budget.
        cfg.lr_check_mode = super::super::config::LrCheckMode::Fast;
        cfg.steps = pyramid_steps(1, sgm(), Propagation { dilate_alti_px: 2, dilate_plani_px: 1, uncertain_full_range: true }, |_| 0);
        let free = run(&pair, &cfg, &[&census], &NoProgress).unwrap();
        assert_eq!(free.reports[0].tiles, 1);
        // 300 × 260 × 128 candidates × 6 B ≈ 60 MB: a 128 MB budget gives a tile 32 MB.
        cfg.memory_budget = Some(MIN_BUDGET);
        let split = run(&pair, &cfg, &[&census], &NoProgress).unwrap();
        assert!(split.reports[0].tiles >= 4, "{} tiles", split.reports[0].tiles);
        let agree = free.disparity.iter().zip(&split.disparity).filter(|(a, b)| (*a - *b).abs() < 0.25 || (a.is_nan() && b.is_nan())).count();
        assert!(agree as f64 > 0.97 * free.disparity.len() as f64, "{agree} of {}", free.disparity.len());
    }
}
