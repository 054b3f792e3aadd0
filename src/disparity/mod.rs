//! From aggregated costs to a disparity map: winner-take-all with sub-pixel refinement and a
//! confidence, the left-right consistency check, and the clean-up filters.

mod ambiguity;
mod filters;
mod lrcheck;
pub mod right_volume;
mod wta;

pub use ambiguity::{cost_curves, flat_costs, CurveMeasures, ETA_COUNT, ETA_STEP};
pub use filters::{fill_background, median3, remove_small_regions};
pub use lrcheck::{left_right_check, left_right_check_accurate};
pub use wta::{winner_take_all, Winner};
