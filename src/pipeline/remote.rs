//! A tiled run whose tiles are matched by other processes (a Dask cluster, through the Python
//! package's `deepsim.distributed`): the same run, split where the single-machine run already
//! splits it.
//!
//! Why this shape: the driver's step loop stays the only place that orders the steps, builds
//! each step's search and assembles its grids, and [`match_tile`](super::tile) stays the only
//! place a tile is matched. A distributed run swaps one thing, who matches a step's tiles: the
//! driver hands a [`TileRunner`] the step's plan (the tiles of [`crate::tiles::tiles`] at the
//! step's level, the ones the single-machine run matches) and the previous step's disparity as
//! a file on shared storage; each worker holds a [`TileWorker`] (the pair read from its files
//! by path, its pyramid, the run's configuration and backends) and matches one tile of the plan
//! as the single-machine run does (split further when the memory budget says so), returning
//! the tile's core as a [`TileOutput`]; the driver pastes the cores into the step's grids and
//! goes on (next step, then the filters and the sink, in this process). The result is the
//! single-machine run's, bit for bit: the same tiles, the same inputs for each, the same code.
//!
//! A tile's output travels as bytes ([`TileOutput::encode`]): the core's maps as little-endian
//! samples, the counts, and the tile's stage times, so that the caller's run.json adds them up.

use super::config::MatchConfig;
use super::driver::{build_pyramid, step_context, step_keep, step_search};
use super::images::Images;
use super::level::{Keep, Search, StepGrids, TileContext, TileResult, match_tiles};
use super::memory;
use super::products::Products;
use super::progress::Progress;
use super::report::StageTimes;
use crate::error::{Error, ErrorKind, Result};
use crate::grid::{Grid, Sample, Storage};
use crate::similarity::Similarity;
use crate::tiles::{Region, Tile, tiles};
use ndarray::{Array2, s};
use std::path::{Path, PathBuf};

/// What a [`TileRunner`] is asked to match: the tiles of one step.
#[derive(Debug, Clone)]
pub struct StepRequest<'a> {
    /// The step (index into [`MatchConfig::steps`]).
    pub step: usize,
    /// Its pyramid level (0 = full resolution).
    pub level: u32,
    /// The step's tiles ([`crate::tiles::tiles`] at its level): a task per tile, by index.
    pub tiles: &'a [Tile],
    /// The previous step's disparity, saved by [`Grid::save`] where the workers can read it
    /// (none for the first step).
    pub coarse: Option<&'a Path>,
    /// Compute the confidence products (the last step of a `--confidence` run).
    pub products: bool,
}

/// Matches the tiles of a step elsewhere: each tile `i` of the request by
/// [`TileWorker::run_tile`] on a worker, its encoded [`TileOutput`] handed to `receive(i, bytes)`
/// as it arrives (any order, each tile once).
pub trait TileRunner {
    /// A folder this process and the workers share (the previous step's disparity goes there).
    fn shared_dir(&self) -> &Path;

    /// Matches the tiles of `request`; an error stops the run.
    fn run_step(
        &self,
        request: &StepRequest,
        receive: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
    ) -> Result<()>;
}

/// The core of one matched tile, in the level's coordinates: what [`StepGrids`] keeps of it.
#[derive(Debug, Clone)]
pub struct TilePart {
    /// Where it goes in the level.
    pub core: Region,
    /// Integer disparity of the winner.
    pub disparity: Array2<i32>,
    /// Sub-pixel disparity (the last step).
    pub subpixel: Option<Array2<f32>>,
    /// Confidence of the winner (when the step keeps it).
    pub confidence: Option<Array2<f32>>,
    /// Pixels in the occlusion label (when the step keeps them).
    pub masked: Option<Array2<bool>>,
    /// Rejected by the left-right check (the last step).
    pub rejected: Option<Array2<bool>>,
    /// The confidence products (when asked).
    pub products: Option<Products>,
    /// Cost-volume entries of the tile (its outer rectangle).
    pub entries: usize,
    /// Disparity span searched by the tile.
    pub span: (i32, i32),
    /// Pixels of the core in the occlusion label.
    pub masked_count: usize,
}

impl TilePart {
    /// The core of `tile` from `matched` (which covers `tile.outer`), with the maps `keep` asks.
    pub(super) fn cut(matched: &TileResult, tile: &Tile, keep: Wanted) -> TilePart {
        let (c, o) = (tile.core, tile.outer);
        let inner = s![c.y0 - o.y0..c.y1 - o.y0, c.x0 - o.x0..c.x1 - o.x0];
        let masked_core = matched.masked.as_ref().map(|m| m.slice(inner));
        TilePart {
            core: c,
            disparity: matched.winner.disparity.slice(inner).to_owned(),
            subpixel: keep
                .subpixel
                .then(|| matched.winner.subpixel.slice(inner).to_owned()),
            confidence: keep
                .confidence
                .then(|| matched.winner.confidence.slice(inner).to_owned()),
            masked: masked_core.filter(|_| keep.masked).map(|m| m.to_owned()),
            rejected: keep
                .rejected
                .then(|| matched.rejected.slice(inner).to_owned()),
            products: matched
                .products
                .as_ref()
                .filter(|_| keep.products)
                .map(|p| {
                    let inner = Region {
                        x0: c.x0 - o.x0,
                        y0: c.y0 - o.y0,
                        x1: c.x1 - o.x0,
                        y1: c.y1 - o.y0,
                    };
                    p.crop(inner)
                }),
            entries: matched.entries,
            span: matched.span,
            masked_count: masked_core.map_or(0, |m| m.iter().filter(|&&m| m).count()),
        }
    }
}

/// The maps a step keeps of each tile besides the integer disparity: those its [`StepGrids`]
/// hold. Read from the grids (not from [`Keep`]) so that the rule stays in one place,
/// [`StepGrids::new`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Wanted {
    subpixel: bool,
    confidence: bool,
    masked: bool,
    rejected: bool,
    products: bool,
}

impl Wanted {
    /// The maps a step with `keep` keeps (those [`StepGrids::new`] allocates for it).
    fn of(keep: Keep) -> Result<Wanted> {
        Ok(StepGrids::new(0, 0, keep, &Storage::Memory)?.keeps())
    }
}

impl StepGrids {
    /// The maps these grids keep.
    pub(super) fn keeps(&self) -> Wanted {
        Wanted {
            subpixel: self.subpixel.is_some(),
            confidence: self.confidence.is_some(),
            masked: self.masked.is_some(),
            rejected: self.rejected.is_some(),
            products: self.products.is_some(),
        }
    }

    /// Writes `part` at its core and adds up its counts.
    pub(super) fn write_part(&mut self, part: &TilePart) -> Result<()> {
        let (x0, y0) = (part.core.x0, part.core.y0);
        self.disparity.write(x0, y0, part.disparity.view())?;
        write_optional(&mut self.subpixel, &part.subpixel, x0, y0)?;
        write_optional(&mut self.confidence, &part.confidence, x0, y0)?;
        write_optional(&mut self.masked, &part.masked, x0, y0)?;
        write_optional(&mut self.rejected, &part.rejected, x0, y0)?;
        if let (Some(grids), Some(products)) = (&mut self.products, &part.products) {
            grids.write(
                x0,
                y0,
                products,
                Region::full(part.core.width(), part.core.height()),
            )?;
        }
        self.masked_count += part.masked_count;
        self.entries += part.entries;
        self.span = (self.span.0.min(part.span.0), self.span.1.max(part.span.1));
        Ok(())
    }
}

fn write_optional<T: Sample>(
    grid: &mut Option<Grid<'static, T>>,
    values: &Option<Array2<T>>,
    x0: usize,
    y0: usize,
) -> Result<()> {
    match (grid, values) {
        (Some(grid), Some(values)) => grid.write(x0, y0, values.view()),
        _ => Ok(()),
    }
}

/// What a worker returns for one tile of the plan: its parts (one, or more when the memory
/// budget split it) and the time each stage took.
#[derive(Debug, Clone)]
pub struct TileOutput {
    /// The matched cores; together they cover the planned tile's core.
    pub parts: Vec<TilePart>,
    /// Seconds per stage on the worker (features, costs, regularisation, winner, left-right).
    pub times: StageTimes,
}

/// First bytes of an encoded [`TileOutput`] (the format's version is the last byte).
const MAGIC: &[u8; 8] = b"DSTILE\x00\x01";

impl TileOutput {
    /// The bytes that travel back to the driver (see [`TileOutput::decode`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Encoder(MAGIC.to_vec());
        let t = &self.times;
        for v in [
            t.pyramid,
            t.prepare,
            t.cost,
            t.regularize,
            t.wta,
            t.post,
            t.total,
        ] {
            out.u64(v.to_bits());
        }
        out.u64(self.parts.len() as u64);
        for part in &self.parts {
            let c = part.core;
            for v in [c.x0, c.y0, c.x1, c.y1, part.entries, part.masked_count] {
                out.u64(v as u64);
            }
            out.u64(part.span.0 as u32 as u64);
            out.u64(part.span.1 as u32 as u64);
            out.array(&part.disparity);
            out.optional(&part.subpixel);
            out.optional(&part.confidence);
            out.optional(&part.masked);
            out.optional(&part.rejected);
            match &part.products {
                None => out.u64(0),
                Some(p) => {
                    // The number of float maps: a product set of another build is refused.
                    let maps = p.maps();
                    out.u64(maps.len() as u64);
                    maps.into_iter().for_each(|m| out.array(m));
                    out.array(&p.validity);
                }
            }
        }
        out.0
    }

    /// Reads bytes of [`TileOutput::encode`]; anything else is a [`ErrorKind::Decode`] error.
    pub fn decode(bytes: &[u8]) -> Result<TileOutput> {
        let mut d = Decoder { bytes, at: 0 };
        if d.take(MAGIC.len())? != MAGIC {
            return Err(decode_error("not a tile result of this deepsim version"));
        }
        let mut f = || d.u64().map(f64::from_bits);
        let times = StageTimes {
            pyramid: f()?,
            prepare: f()?,
            cost: f()?,
            regularize: f()?,
            wta: f()?,
            post: f()?,
            total: f()?,
        };
        let count = d.u64()? as usize;
        let mut parts = Vec::new();
        for _ in 0..count {
            let [x0, y0, x1, y1, entries, masked_count] =
                [(); 6].map(|()| d.u64().map(|v| v as usize));
            let core = Region {
                x0: x0?,
                y0: y0?,
                x1: x1?,
                y1: y1?,
            };
            if core.x1 < core.x0 || core.y1 < core.y0 {
                return Err(decode_error("an empty core"));
            }
            let span = (d.u64()? as u32 as i32, d.u64()? as u32 as i32);
            let dim = (core.height(), core.width());
            let disparity = d.array(dim)?;
            let (subpixel, confidence, masked, rejected) = (
                d.optional(dim)?,
                d.optional(dim)?,
                d.optional(dim)?,
                d.optional(dim)?,
            );
            let products = match d.u64()? {
                0 => None,
                maps => {
                    let mut p = Products::empty(dim);
                    let mut floats = p.float_maps_mut();
                    if maps != floats.len() as u64 {
                        return Err(decode_error("confidence products of another kind"));
                    }
                    for map in floats.iter_mut() {
                        **map = d.array(dim)?;
                    }
                    p.validity = d.array(dim)?;
                    Some(p)
                }
            };
            let (entries, masked_count) = (entries?, masked_count?);
            parts.push(TilePart {
                core,
                disparity,
                subpixel,
                confidence,
                masked,
                rejected,
                products,
                entries,
                span,
                masked_count,
            });
        }
        if d.at != bytes.len() {
            return Err(decode_error("bytes after the end"));
        }
        Ok(TileOutput { parts, times })
    }
}

fn decode_error(what: &str) -> Error {
    Error::new(
        ErrorKind::Decode,
        format!("tile result: {what} (a worker running another deepsim version?)"),
    )
}

struct Encoder(Vec<u8>);

impl Encoder {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn array<T: Sample>(&mut self, a: &Array2<T>) {
        let start = self.0.len();
        self.0.resize(start + a.len() * T::BYTES, 0);
        for (chunk, &v) in self.0[start..].chunks_exact_mut(T::BYTES).zip(a.iter()) {
            v.put(chunk);
        }
    }

    fn optional<T: Sample>(&mut self, a: &Option<Array2<T>>) {
        self.u64(u64::from(a.is_some()));
        if let Some(a) = a {
            self.array(a);
        }
    }
}

struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| decode_error("truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn array<T: Sample>(&mut self, (h, w): (usize, usize)) -> Result<Array2<T>> {
        let n = h
            .checked_mul(w)
            .and_then(|n| n.checked_mul(T::BYTES))
            .ok_or_else(|| decode_error("a core too large"))?;
        let values = self.take(n)?.chunks_exact(T::BYTES).map(T::get).collect();
        Ok(Array2::from_shape_vec((h, w), values).expect("h × w values"))
    }

    fn optional<T: Sample>(&mut self, dim: (usize, usize)) -> Result<Option<Array2<T>>> {
        match self.u64()? {
            0 => Ok(None),
            _ => self.array(dim).map(Some),
        }
    }
}

/// One tile of a step's plan to match on a worker.
#[derive(Debug, Clone)]
pub struct TileTask<'a> {
    /// The step (index into [`MatchConfig::steps`]).
    pub step: usize,
    /// The tile (index into [`StepRequest::tiles`]).
    pub tile: usize,
    /// [`StepRequest::coarse`].
    pub coarse: Option<&'a Path>,
    /// [`StepRequest::products`].
    pub products: bool,
}

/// A worker's side of a distributed run: the pair (read by the worker from the input files,
/// as the driver reads them), its pyramid and the run's configuration, kept for the tiles the
/// worker is given.
pub struct TileWorker {
    pyramid: Vec<Images<'static>>,
    config: MatchConfig,
}

impl TileWorker {
    /// Builds the pyramid of `images` for `config` (whose memory budget, if any, must be the
    /// driver's: it decides how tiles split), keeping the levels in `storage`.
    pub fn new(
        images: Images<'static>,
        config: MatchConfig,
        storage: &Storage,
        backends: usize,
    ) -> Result<Self> {
        let sizes = (
            (images.left.width(), images.left.height()),
            (images.right.width(), images.right.height()),
        );
        config.validate_sizes(sizes.0, sizes.1, backends)?;
        let budget = config.memory_budget.map(memory::Budget::new);
        let bands = |width: usize, bytes_per_px: usize| {
            budget.map_or(usize::MAX, |b| b.band_rows(width, bytes_per_px))
        };
        let (pyramid, _) = build_pyramid(images, config.levels(), storage, &bands)?;
        Ok(TileWorker { pyramid, config })
    }

    /// The tiles of each step, coarsest step first: the plan a [`TileRunner`] is given.
    pub fn plan(&self) -> Vec<Vec<Tile>> {
        self.config
            .steps
            .iter()
            .map(|step| step_tiles(&self.config, &self.pyramid[step.level as usize]))
            .collect()
    }

    /// Matches tile `task.tile` of step `task.step` with `backends` (the driver's, in the same
    /// order), as the single-machine run matches it.
    pub fn run_tile(
        &self,
        backends: &[&dyn Similarity],
        task: &TileTask,
        progress: &dyn Progress,
    ) -> Result<TileOutput> {
        let config = &self.config;
        let Some(step) = config.steps.get(task.step) else {
            return Err(Error::invalid_parameter(format!(
                "step {}: the run has {} step(s)",
                task.step,
                config.steps.len()
            )));
        };
        let images = &self.pyramid[step.level as usize];
        let plan = step_tiles(config, images);
        let Some(&tile) = plan.get(task.tile) else {
            return Err(Error::invalid_parameter(format!(
                "tile {} of step {}: the step has {} tile(s)",
                task.tile,
                task.step,
                plan.len()
            )));
        };
        let coarse = match (task.step.checked_sub(1), task.coarse) {
            (None, _) => None,
            (Some(previous), Some(path)) => {
                let level = &self.pyramid[config.steps[previous].level as usize].left;
                Some((
                    Grid::open(path, level.width(), level.height())?,
                    config.steps[previous].level,
                ))
            }
            (Some(_), None) => {
                return Err(Error::invalid_parameter(format!(
                    "step {}: give the previous step's disparity file",
                    task.step
                )));
            }
        };
        let search = step_search(
            config,
            task.step,
            coarse.as_ref().map(|(grid, level)| (grid, *level)),
        );
        let context: TileContext =
            step_context(config, task.step, images, &search, backends, task.products);
        let keep = Wanted::of(step_keep(
            config,
            task.step,
            task.products,
            &step.regularizer,
        ))?;
        let mut times = StageTimes::default();
        let mut parts = Vec::new();
        let budget = config.memory_budget.map(memory::Budget::new);
        let mut paste = |matched: &TileResult, tile: &Tile| {
            parts.push(TilePart::cut(matched, tile, keep));
            Ok(())
        };
        let t = std::time::Instant::now();
        match_tiles(
            &context,
            vec![tile],
            config.tiles,
            budget,
            &mut paste,
            progress,
            &|_| {},
            &mut times,
        )?;
        times.total = t.elapsed().as_secs_f64();
        Ok(TileOutput { parts, times })
    }
}

/// The plan of a step at `images`' level.
fn step_tiles(config: &MatchConfig, images: &Images) -> Vec<Tile> {
    tiles(images.left.width(), images.left.height(), config.tiles)
}

/// Matches step `index`'s tiles through `runner` into `result` (the driver's step loop, for
/// [`super::run_streamed_remote`]); returns the number of tiles matched (budget splits
/// counted, as [`super::level::match_level`] counts them).
pub(super) fn match_level_remote(
    runner: &dyn TileRunner,
    index: usize,
    context: &TileContext,
    config: &MatchConfig,
    result: &mut StepGrids,
    advance: &dyn Fn(usize),
    times: &mut StageTimes,
) -> Result<usize> {
    let plan = step_tiles(config, context.images);
    let coarse: Option<PathBuf> = match context.search {
        Search::Around { coarse: grid, .. } => {
            let path = runner.shared_dir().join(format!("step{index}-coarse.i32"));
            grid.save(&path)?;
            Some(path)
        }
        Search::Range(_) => None,
    };
    let request = StepRequest {
        step: index,
        level: context.level,
        tiles: &plan,
        coarse: coarse.as_deref(),
        products: context.products,
    };
    let mut done = vec![false; plan.len()];
    let (mut matched, mut core_pixels) = (0, 0);
    let mut receive = |tile: usize, bytes: &[u8]| -> Result<()> {
        let Some(core) = plan.get(tile).map(|t| t.core) else {
            return Err(Error::invalid_input(format!(
                "tile runner: tile {tile} of a step of {} tiles",
                plan.len()
            )));
        };
        if std::mem::replace(&mut done[tile], true) {
            return Err(Error::invalid_input(format!(
                "tile runner: tile {tile} of step {index} delivered twice"
            )));
        }
        let output = TileOutput::decode(bytes)?;
        let inside =
            |r: Region| r.x0 >= core.x0 && r.y0 >= core.y0 && r.x1 <= core.x1 && r.y1 <= core.y1;
        let area: usize = output
            .parts
            .iter()
            .map(|p| p.core.width() * p.core.height())
            .sum();
        if !output.parts.iter().all(|p| inside(p.core)) || area != core.width() * core.height() {
            return Err(Error::invalid_input(format!(
                "tile runner: the result of tile {tile} of step {index} does not cover its core {core:?}"
            )));
        }
        for part in &output.parts {
            result.write_part(part)?;
        }
        times.add_tile(&output.times);
        matched += output.parts.len();
        core_pixels += area;
        advance(core_pixels);
        Ok(())
    };
    runner.run_step(&request, &mut receive)?;
    if let Some(path) = &coarse {
        let _ = std::fs::remove_file(path);
    }
    let missing = done.iter().filter(|d| !**d).count();
    if missing > 0 {
        return Err(Error::invalid_input(format!(
            "tile runner: {missing} of the {} tiles of step {index} never came back",
            plan.len()
        )));
    }
    Ok(matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{
        Fill, MIN_BUDGET, NoProgress, Pair, Regularizer, RowSink, pyramid_steps, run_streamed,
    };
    use crate::pyramid::Propagation;
    use crate::sgm::lines::{LineParams, MaskLabel};
    use crate::sgm::{Penalty, SgmParams};
    use crate::similarity::Census;
    use crate::tiles::TileParams;
    use ndarray::ArrayView2;

    /// A textured pair with a disparity step: left (x, y) = right (x − d, y).
    fn pair(w: usize, h: usize) -> Pair {
        let texture = |x: f32, y: f32| {
            0.5 + 0.25 * (0.9 * x).sin() * (0.7 * y).cos()
                + 0.2 * ((x * 12.9898 + y * 78.233).sin() * 43758.547).fract()
        };
        let d = |x: usize, y: usize| {
            if (x / 17 + y / 13).is_multiple_of(3) {
                9.0
            } else {
                4.0
            }
        };
        Pair {
            left: Array2::from_shape_fn((h, w), |(y, x)| texture(x as f32 - d(x, y), y as f32)),
            right: Array2::from_shape_fn((h, w), |(y, x)| texture(x as f32, y as f32)),
            left_valid: Array2::from_shape_fn((h, w), |(y, x)| (x + 3 * y) % 97 != 0),
            right_valid: Array2::from_elem((h, w), true),
        }
    }

    fn owned(pair: &Pair) -> Images<'static> {
        Images {
            left: Grid::from_array(pair.left.clone()),
            right: Grid::from_array(pair.right.clone()),
            left_valid: Grid::from_array(pair.left_valid.clone()),
            right_valid: Grid::from_array(pair.right_valid.clone()),
        }
    }

    /// Collects the rows and the products.
    struct Rows {
        disparity: Array2<f32>,
        confidence: Array2<f32>,
        products: Products,
    }

    impl RowSink for Rows {
        fn rows(
            &mut self,
            y0: usize,
            disparity: ArrayView2<f32>,
            confidence: ArrayView2<f32>,
        ) -> Result<()> {
            self.disparity
                .slice_mut(s![y0..y0 + disparity.nrows(), ..])
                .assign(&disparity);
            self.confidence
                .slice_mut(s![y0..y0 + confidence.nrows(), ..])
                .assign(&confidence);
            Ok(())
        }
        fn wants_products(&self) -> bool {
            true
        }
        fn product_rows(&mut self, y0: usize, products: &Products) -> Result<()> {
            self.products.assign_rows(y0, products);
            Ok(())
        }
    }

    /// Tiles matched by a [`TileWorker`] of its own, last tile first, through the bytes.
    struct InProcess<'a> {
        worker: TileWorker,
        backends: &'a [&'a dyn Similarity],
        dir: tempfile::TempDir,
    }

    impl TileRunner for InProcess<'_> {
        fn shared_dir(&self) -> &Path {
            self.dir.path()
        }

        fn run_step(
            &self,
            request: &StepRequest,
            receive: &mut dyn FnMut(usize, &[u8]) -> Result<()>,
        ) -> Result<()> {
            for tile in (0..request.tiles.len()).rev() {
                let task = TileTask {
                    step: request.step,
                    tile,
                    coarse: request.coarse,
                    products: request.products,
                };
                receive(
                    tile,
                    &self
                        .worker
                        .run_tile(self.backends, &task, &NoProgress)?
                        .encode(),
                )?;
            }
            Ok(())
        }
    }

    fn run_both(pair: &Pair, config: &MatchConfig) -> (Rows, Rows, Vec<usize>) {
        let census = Census::new(5, 5).unwrap();
        let backends: [&dyn Similarity; 1] = [&census];
        let rows = || Rows {
            disparity: Array2::zeros(pair.left.dim()),
            confidence: Array2::zeros(pair.left.dim()),
            products: Products::empty(pair.left.dim()),
        };
        let (mut here, mut there) = (rows(), rows());
        let local = run_streamed(
            owned(pair),
            config,
            &backends,
            &Storage::Memory,
            &NoProgress,
            &mut here,
        )
        .unwrap();
        let runner = InProcess {
            worker: TileWorker::new(owned(pair), config.clone(), &Storage::Memory, 1).unwrap(),
            backends: &backends,
            dir: tempfile::tempdir().unwrap(),
        };
        let remote = super::super::run_streamed_remote(
            owned(pair),
            config,
            &backends,
            &Storage::Memory,
            &NoProgress,
            &mut there,
            &runner,
        )
        .unwrap();
        assert_eq!(
            (
                local.lr_rejected,
                local.small_regions_removed,
                local.filled,
                local.with_value
            ),
            (
                remote.lr_rejected,
                remote.small_regions_removed,
                remote.filled,
                remote.with_value
            )
        );
        for (a, b) in local.reports.iter().zip(&remote.reports) {
            assert_eq!(
                (
                    a.tiles,
                    a.cost_volume_entries,
                    a.disparity_span,
                    a.masked_pixels
                ),
                (
                    b.tiles,
                    b.cost_volume_entries,
                    b.disparity_span,
                    b.masked_pixels
                )
            );
        }
        // The coarse disparities were removed once used.
        assert_eq!(std::fs::read_dir(runner.dir.path()).unwrap().count(), 0);
        (here, there, local.reports.iter().map(|r| r.tiles).collect())
    }

    fn assert_same(here: &Rows, there: &Rows) {
        let same = |a: &Array2<f32>, b: &Array2<f32>| {
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
        };
        assert!(same(&here.disparity, &there.disparity), "disparity");
        assert!(same(&here.confidence, &there.confidence), "confidence");
        for (a, b) in here.products.maps().into_iter().zip(there.products.maps()) {
            assert!(same(a, b), "products");
        }
        assert_eq!(here.products.validity, there.products.validity);
    }

    /// Tiles matched elsewhere (through the encoded bytes, in another order) give the
    /// single-machine run's bits: with MicMac's occlusion label and the products, and with
    /// tiles that the memory budget splits further.
    #[test]
    fn a_run_with_remote_tiles_is_the_single_machine_run() {
        let small = pair(131, 97);
        let propagation = Propagation {
            dilate_alti_px: 2,
            dilate_plani_px: 1,
            uncertain_full_range: true,
        };
        let micmac = Regularizer::Micmac(LineParams {
            orientations: 5,
            weight: 0.05,
            max_slope: 2.0,
            mask: Some(MaskLabel {
                cost: 0.5,
                transition: 0.3,
            }),
        });
        let mut config = MatchConfig {
            disp_min: 0,
            disp_max: 15,
            steps: pyramid_steps(3, micmac, propagation, |_| 0),
            subpixel: true,
            lr_check_px: Some(1.0),
            lr_check_mode: Default::default(),
            median: true,
            min_region_px: 6,
            fill: Fill::Background,
            keep_steps: false,
            tiles: Some(TileParams {
                size_px: 40,
                overlap_px: 8,
            }),
            memory_budget: None,
        };
        let (here, there, tiles) = run_both(&small, &config);
        assert_same(&here, &there);
        assert_eq!(tiles, [1, 4, 12]);
        assert!(here.disparity.iter().filter(|d| d.is_finite()).count() > small.left.len() / 2);

        // 300 × 260 × 128 candidates in one planned tile: the budget splits it.
        let large = pair(300, 260);
        let sgm = Regularizer::Sgm(SgmParams {
            directions: 8,
            penalty: Penalty::Classic {
                p1: 0.2,
                p2: 0.8,
                p2_adapt: None,
            },
        });
        config.steps = pyramid_steps(1, sgm, propagation, |_| 0);
        config.disp_max = 127;
        config.tiles = Some(TileParams {
            size_px: 512,
            overlap_px: 16,
        });
        config.memory_budget = Some(MIN_BUDGET);
        let (here, there, tiles) = run_both(&large, &config);
        assert_same(&here, &there);
        assert!(
            tiles[0] >= 4,
            "{tiles:?}: the budget split the one planned tile"
        );
    }

    #[test]
    fn a_tile_output_survives_encoding_and_a_truncated_one_is_refused() {
        let core = Region {
            x0: 3,
            y0: 5,
            x1: 7,
            y1: 6,
        };
        let dim = (core.height(), core.width());
        let part = TilePart {
            core,
            disparity: Array2::from_shape_fn(dim, |(_, x)| x as i32 - 2),
            subpixel: Some(Array2::from_elem(dim, f32::NAN)),
            confidence: None,
            masked: Some(Array2::from_shape_fn(dim, |(_, x)| x % 2 == 0)),
            rejected: None,
            products: Some(Products::empty(dim)),
            entries: 123,
            span: (-7, 9),
            masked_count: 2,
        };
        let output = TileOutput {
            parts: vec![part],
            times: StageTimes {
                cost: 1.5,
                ..Default::default()
            },
        };
        let bytes = output.encode();
        let back = TileOutput::decode(&bytes).unwrap();
        assert_eq!(back.parts[0].span, (-7, 9));
        assert!(
            back.parts[0]
                .subpixel
                .as_ref()
                .unwrap()
                .iter()
                .all(|v| v.is_nan())
        );
        assert_eq!(back.times.cost, 1.5);
        assert_eq!(back.encode(), bytes);
        for cut in [0, 10, bytes.len() - 1] {
            assert_eq!(
                TileOutput::decode(&bytes[..cut]).unwrap_err().kind(),
                ErrorKind::Decode
            );
        }
    }
}
