//! `deepsim synth`: turn the arguments into a checked configuration, generate the pairs in
//! parallel with a progress bar, report the rate.

use super::args::SynthArgs;
use deepsim::synth::{parse_size, write_dataset, Generator, Span, SynthConfig};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub fn run(args: SynthArgs, quiet: bool) -> anyhow::Result<()> {
    let (width, height) = parse_size(&args.size)?;
    let mut config = SynthConfig::new(width, height, args.seed);
    config.count = args.count;
    config.start_index = args.start_index;
    config.gsd_m = Span::parse(&args.gsd, "--gsd")?;
    config.base_to_height = Span::parse(&args.base_to_height, "--base-to-height")?;
    config.look_tan = Span::parse(&args.look_tan, "--look-tan")?;
    config.focal_px = args.focal_px;
    config.min_disparity_px = args.min_disparity;
    config.style = args.style;
    config.bits = args.bits;
    config.noise_dn = args.noise;
    config.blur_px = args.blur;
    config.radiometric = args.radiometric;
    config.jpeg_quality = args.jpeg_quality;
    config.right_disparity = args.right_disparity;
    config.previews = args.previews;
    config.supersample = args.supersample;
    config.textures = args.texture;
    config.texture_dir = args.texture_dir;
    config.time_gap = args.time_gap;
    config.wind = args.wind;
    let generator = Generator::new(config)?;

    let target = if quiet || !std::io::stderr().is_terminal() { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
    let bar = ProgressBar::with_draw_target(Some(args.count), target);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} pairs ({per_sec}, eta {eta})")
            .expect("valid template"),
    );
    let result = write_dataset(&generator, &args.out, &|_| bar.inc(1));
    bar.finish_and_clear();
    let summary = result?;
    if !quiet {
        note!(
            "deepsim synth: {} pair(s) of {width}×{height} px in {:.1} s ({:.2} pairs/s on {} thread(s)); manifest lists {} pair(s): {}",
            summary.pairs_written,
            summary.seconds,
            summary.pairs_written as f64 / summary.seconds.max(1e-9),
            rayon::current_num_threads(),
            summary.pairs_listed,
            args.out.join(deepsim::synth::MANIFEST_FILE).display()
        );
    }
    Ok(())
}
