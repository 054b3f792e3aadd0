//! Command-line front end: parses arguments, resolves them into the library's validated
//! configuration, runs, and writes outputs. Only this layer uses `anyhow`.

pub(crate) mod args;
mod check_model_cmd;
mod dask;
mod eval_cmd;
mod maps;
pub(crate) mod match_cmd;
mod micmac_cmd;
mod mmvii_cmd;
mod progress;
mod runtime;
mod synth_cmd;

use anyhow::Context as _;
use clap::Parser;

/// The most worker threads accepted: far above any machine's cores, far below what would take
/// many seconds to start and then fail.
const MAX_THREADS: usize = 1024;

/// Parses the command line and runs the chosen command.
pub fn run() -> anyhow::Result<()> {
    run_parsed(args::Cli::parse())
}

/// Runs a parsed command line (the Python binding parses its own argument list).
pub(crate) fn run_parsed(cli: args::Cli) -> anyhow::Result<()> {
    if let Some(threads) = cli.threads {
        if !(1..=MAX_THREADS).contains(&threads) {
            anyhow::bail!("--threads {threads} (or DEEPSIM_THREADS): give 1 to {MAX_THREADS} worker threads (default: all cores)");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global()
            .with_context(|| format!("--threads {threads}: cannot start that many worker threads"))?;
    }
    match cli.command {
        args::Command::Match(a) => match_cmd::run(*a, cli.quiet),
        args::Command::Eval(a) => eval_cmd::run(a),
        args::Command::CheckModel(a) => check_model_cmd::run(a),
        args::Command::Synth(a) => synth_cmd::run(a, cli.quiet),
        args::Command::Mmvii(a) => mmvii_cmd::run(a, cli.quiet),
    }
}
