//! deepsim: dense stereo matching of epipolar image pairs with learned or classical similarity.
//!
//! # The disparity convention
//!
//! Everywhere in this crate, its files and its command line: **left pixel `(x, y)` matches right
//! pixel `(x − d, y)`**; `d` is the disparity of the left pixel. Formats with another convention
//! are converted at their boundary (MicMac's Px1 uses `x_right = x_left + Px1`, so `Px1 = −d`).
//!
//! # Structure
//!
//! - [`io`]: rasters in and out;
//! - [`similarity`]: the backend traits and the classical measures (census, NCC);
//! - [`plugin`]: similarity measures loaded at run time from shared libraries (a C ABI);
//! - [`cost`]: the cost volume with per-pixel disparity intervals;
//! - [`sgm`]: the semi-global regulariser (classical P1/P2 and MicMac's linear model);
//! - [`grid`]: whole-level rasters in memory or in scratch files (bounded memory);
//! - [`pyramid`]: image reduction and interval propagation between levels;
//! - [`disparity`]: winner-take-all, sub-pixel, left-right check, filters;
//! - [`pipeline`]: all of the above in order;
//! - [`eval`]: accuracy against ground truth;
//! - [`synth`]: synthetic aerial pairs with exact ground truth;
//! - [`mmvii`]: MicMac's external cost-cube command (`MMVII DM4FillCubeCost`).
#![deny(missing_docs)]

// First: the macro is used by the modules below.
#[macro_use]
mod simd;

mod buffer;
pub mod cost;
pub mod disparity;
pub mod error;
pub mod engine_xml;
pub mod eval;
pub mod grid;
pub mod io;
pub mod micmac;
pub mod mmvii;
pub mod model;
pub mod pipeline;
pub mod plugin;
pub mod pyramid;
pub mod report;
pub mod runtime;
pub mod sgm;
pub mod similarity;
pub mod synth;
pub mod tiles;

pub use error::{Error, ErrorKind, Result};
