//! A progress bar over the pipeline's stages, drawn only on a terminal.

use deepsim::pipeline::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Stages reported per step by the pipeline, plus the pyramid and the final filters.
const STAGES_PER_STEP: u64 = 4;

pub struct Bar(ProgressBar);

impl Bar {
    pub fn new(steps: usize, quiet: bool) -> Self {
        let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        let bar = ProgressBar::with_draw_target(Some(steps as u64 * STAGES_PER_STEP + 2), target);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                .expect("valid template"),
        );
        Bar(bar)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn stage(&self, level: u32, stage: &str) {
        self.0.inc(1);
        self.0.set_message(format!("level {level} (1/{}): {stage}", 1u32 << level));
    }
}
