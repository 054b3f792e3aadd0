//! A progress bar over the pipeline's stages, drawn only on a terminal.

use deepsim::pipeline::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Positions of the bar (the pipeline reports the share of pixels matched).
const LENGTH: u64 = 1000;

pub struct Bar(ProgressBar);

impl Bar {
    pub fn new(quiet: bool) -> Self {
        let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        let bar = ProgressBar::with_draw_target(Some(LENGTH), target);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {percent:>3} % (eta {eta}) {msg}")
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
        self.0.set_message(format!("level {level} (1/{}): {stage}", 1u32 << level));
    }

    fn done(&self, fraction: f64) {
        self.0.set_position((fraction.clamp(0.0, 1.0) * LENGTH as f64) as u64);
    }
}
