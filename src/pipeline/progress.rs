//! Progress events: the library reports stages and the share done; the CLI draws a bar.

/// Receives progress events (the CLI shows a bar; the library stays silent).
pub trait Progress: Sync {
    /// A stage `stage` of level `level` (0 = full resolution) starts.
    fn stage(&self, level: u32, stage: &str);

    /// The share of the matching done, in [0, 1] (steps weigh by their pixel counts).
    fn done(&self, _fraction: f64) {}
}

/// Ignores progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&self, _: u32, _: &str) {}
}
