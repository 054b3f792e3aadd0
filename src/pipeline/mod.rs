//! The matching pipeline: pyramid → per level (costs over per-pixel intervals → regularisation
//! → winner-take-all → intervals of the next level) → at full resolution, sub-pixel,
//! left-right check and filters.
//!
//! Files by concept: `config` (what a run is asked to do, validated before anything runs),
//! `images` (the pair and its pyramid), `driver` (the run end to end, [`run`] and
//! [`run_streamed`]), `level` (one step over its level, tile by tile), `tile` (one tile: the
//! only place a cost volume exists), `post` (filters at full resolution, band by band), `remote` (a run whose tiles other
//! processes match: a Dask cluster), `products` (the confidence
//! products: ambiguity, risks, disparity interval, validity bits),
//! `report` (what a run returns), `progress`, `memory` (the budget) and `input` (reading
//! the images).

mod config;
mod driver;
mod images;
mod input;
mod level;
mod memory;
mod post;
mod products;
mod progress;
mod remote;
mod report;
mod tile;

pub use config::{auto_levels, max_levels, pyramid_steps, Fill, LrCheckMode, MatchConfig, Regularizer, Step, MIN_TILE_OVERLAP_PX};
pub use driver::{run, run_streamed, run_streamed_remote, run_with_products, RowSink};
pub use remote::{StepRequest, TileOutput, TilePart, TileRunner, TileTask, TileWorker};
pub use images::{Images, Pair};
pub use input::{load_pair, InputImage, InputReport};
pub use memory::{backend_working_share, default_budget, input_band_rows, parse_size, storage_for, storage_for_run, MIN_BUDGET};
pub use products::{validity, Products, PRODUCT_FILES};
pub use progress::{NoProgress, Progress};
pub use report::{MatchOutput, RunSummary, StageTimes, StepMaps, StepOutput, StepReport};
