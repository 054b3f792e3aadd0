//! `deepsim._deepsim`: the native module of the `deepsim` Python package.
//!
//! Why it compiles the command line's own source (`src/cli`, through `#[path]`): the Python API
//! takes the CLI's options (`disp_min=0` is `--disp-min 0`), and the one way to guarantee the
//! CLI's defaults, checks, backends and configuration — hence a disparity bit-identical to
//! `deepsim match` — is to run the very code that resolves them. The Python side turns keyword
//! options into a `deepsim match` argument list; this module parses it with the CLI's parser
//! and then either runs the CLI (`match_files`, `python -m deepsim`) or builds the CLI's job
//! and runs it on arrays in memory (`match`, `cost_volume`). No step of the pipeline is
//! repeated here.
//!
//! The engine works with the GIL released ([`Python::detach`]); every error reaches Python as
//! a `deepsim.errors.DeepsimError` subclass chosen by the engine's [`deepsim::ErrorKind`].
#![deny(missing_docs)]

// The CLI's `note!` / `say!`, which its modules use.
#[macro_use]
#[path = "../../../src/cli/macros.rs"]
mod macros;

#[path = "../../../src/cli/mod.rs"]
#[allow(missing_docs, dead_code)]
mod cli;

mod arrays;
mod distributed;
mod errors;

use clap::Parser as _;
use cli::args::{Cli, Command, MatchArgs};
use deepsim::pipeline::Pair;
use deepsim::similarity::{LevelPair, PairCosts, Similarity};
use ndarray::Array3;
use numpy::{IntoPyArray, PyArray2, PyArray3};
use pyo3::prelude::*;
use std::sync::Arc;

/// Parses a `deepsim match …` argument list (first item: the program name) with the CLI's
/// parser; a `--help`/`--version` request or a parse error becomes an error with clap's text.
fn parse_match(argv: &[String]) -> anyhow::Result<(MatchArgs, bool, Option<usize>)> {
    let cli = Cli::try_parse_from(argv)
        .map_err(|e| anyhow::anyhow!(errors::ClapMessage(e.to_string())))?;
    match cli.command {
        Command::Match(args) => Ok((*args, cli.quiet, cli.threads)),
        _ => anyhow::bail!("internal: expected a `match` argument list"),
    }
}

/// Runs `f` in a pool of `threads` workers (the global pool when `None`).
fn in_pool<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    match threads {
        None => Ok(f()),
        Some(n) => Ok(pool(n)?.install(f)),
    }
}

/// A pool of `n` worker threads.
fn pool(n: usize) -> anyhow::Result<rayon::ThreadPool> {
    if !(1..=1024).contains(&n) {
        anyhow::bail!("threads={n}: give 1 to 1024 worker threads (default: all cores)");
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| anyhow::anyhow!("threads={n}: cannot start that many worker threads: {e}"))
}

/// A learned backend loaded once (`deepsim.Model`), shared by the runs that use it.
#[pyclass(frozen, module = "deepsim._deepsim")]
struct NativeModel {
    backend: Arc<dyn Similarity>,
    /// The report entry of the model (bundle, runtime, head, runtime choice), JSON.
    report: serde_json::Value,
    /// The model options it was built with (`--feature-tile …`), which a run may not change.
    options: Vec<String>,
}

#[pymethods]
impl NativeModel {
    /// Loads the bundle of a `deepsim match … --model DIR [--head …] [--runtime …]` argument list.
    #[new]
    fn new(py: Python<'_>, argv: Vec<String>, options: Vec<String>) -> PyResult<Self> {
        let (args, quiet, _) = parse_match(&argv).map_err(|e| errors::to_py(py, e))?;
        let Some(dir) = args.model.clone() else {
            return Err(errors::to_py(
                py,
                anyhow::anyhow!(errors::ClapMessage("Model: give the bundle folder".into())),
            ));
        };
        let built = py.detach(|| cli::match_cmd::build_model(&dir, &args, quiet));
        let (backend, report) = built.map_err(|e| errors::to_py(py, e))?;
        Ok(NativeModel {
            backend: Arc::from(backend),
            report,
            options,
        })
    }

    /// The model's description (as in run.json's `models`), a JSON string.
    #[getter]
    fn report_json(&self) -> String {
        self.report.to_string()
    }

    /// The model options it was built with, as CLI arguments.
    #[getter]
    fn options(&self) -> Vec<String> {
        self.options.clone()
    }

    /// The backend's name ("msaff+cosine", …).
    #[getter]
    fn name(&self) -> String {
        self.backend.name()
    }
}

/// A shared learned backend seen as an owned one (the CLI's job owns its backends).
struct Shared(Arc<dyn Similarity>);

impl Similarity for Shared {
    fn name(&self) -> String {
        self.0.name()
    }

    fn prepare<'a>(&'a self, pair: LevelPair<'a>) -> deepsim::Result<Box<dyn PairCosts + 'a>> {
        self.0.prepare(pair)
    }

    fn bytes_per_pixel(&self) -> usize {
        self.0.bytes_per_pixel()
    }
}

/// The CLI's job for `argv`, with `model`'s backend instead of loading `--model` again.
fn job<'a>(
    args: &'a MatchArgs,
    quiet: bool,
    model: Option<&NativeModel>,
) -> anyhow::Result<cli::match_cmd::Job<'a>> {
    let prebuilt = model.map(|m| {
        (
            Box::new(Shared(m.backend.clone())) as Box<dyn Similarity>,
            m.report.clone(),
        )
    });
    cli::match_cmd::job_with_model(args, quiet, prebuilt)
}

/// Matches arrays as `deepsim match` would match files holding them: returns the disparity,
/// the confidence and the report (run.json's content, JSON).
#[pyfunction]
#[pyo3(signature = (argv, left, right, left_mask=None, right_mask=None, model=None))]
#[allow(clippy::type_complexity)]
fn match_arrays<'py>(
    py: Python<'py>,
    argv: Vec<String>,
    left: &Bound<'py, PyAny>,
    right: &Bound<'py, PyAny>,
    left_mask: Option<&Bound<'py, PyAny>>,
    right_mask: Option<&Bound<'py, PyAny>>,
    model: Option<PyRef<'py, NativeModel>>,
) -> PyResult<(Bound<'py, PyArray2<f32>>, Bound<'py, PyArray2<f32>>, String)> {
    let e = |err| errors::to_py(py, err);
    let (args, quiet, threads) = parse_match(&argv).map_err(e)?;
    let nodata = args.nodata;
    let left = arrays::input("left", left, left_mask, nodata).map_err(e)?;
    let right = arrays::input("right", right, right_mask, nodata).map_err(e)?;
    let job = job(&args, quiet, model.as_deref()).map_err(e)?;
    // The configuration closure is not Send: resolved here, with the GIL (it is quick).
    let config = (job.config)((left.size(), right.size())).map_err(e)?;
    let run = arrays::Run {
        config,
        backends: job.backends,
        models: job.models,
        plugin: job.plugin,
        nodata: job.nodata,
    };
    let run = py.detach(move || in_pool(threads, move || arrays::run_job(run, left, right))?);
    let (disparity, confidence, report) = run.map_err(e)?;
    Ok((
        disparity.into_pyarray(py),
        confidence.into_pyarray(py),
        report.to_string(),
    ))
}

/// The cost volume of the backend `deepsim match` would use at full resolution (the learned
/// one, blended as on its learned levels, when there is a model; else the classical one):
/// float32 `(rows, cols, disparities)`, costs in [0, 1], NaN where the right pixel `x − d`
/// falls outside the right image or on an invalid pixel, and for every disparity of an invalid
/// left pixel.
#[pyfunction]
#[pyo3(signature = (argv, left, right, left_mask=None, right_mask=None, model=None))]
fn cost_volume<'py>(
    py: Python<'py>,
    argv: Vec<String>,
    left: &Bound<'py, PyAny>,
    right: &Bound<'py, PyAny>,
    left_mask: Option<&Bound<'py, PyAny>>,
    right_mask: Option<&Bound<'py, PyAny>>,
    model: Option<PyRef<'py, NativeModel>>,
) -> PyResult<Bound<'py, PyArray3<f32>>> {
    let e = |err| errors::to_py(py, err);
    let (args, quiet, threads) = parse_match(&argv).map_err(e)?;
    let (Some(disp_min), Some(disp_max)) = (args.disp_min, args.disp_max) else {
        return Err(e(anyhow::anyhow!(errors::ClapMessage(
            "cost_volume: give disp_min and disp_max".into()
        ))));
    };
    let nodata = args.nodata;
    let left = arrays::input("left", left, left_mask, nodata).map_err(e)?;
    let right = arrays::input("right", right, right_mask, nodata).map_err(e)?;
    let job = job(&args, quiet, model.as_deref()).map_err(e)?;
    let backend = job
        .backends
        .into_iter()
        .last()
        .expect("the classical backend is always there");
    let run = py.detach(move || {
        in_pool(threads, move || -> anyhow::Result<Array3<f32>> {
            let pair = arrays::unit_pair(left, right)?;
            Ok(volume(&pair, backend.as_ref(), disp_min, disp_max)?)
        })?
    });
    Ok(run.map_err(e)?.into_pyarray(py))
}

/// Fills the full-range cost volume of `pair` with `backend` (see [`cost_volume`]).
fn volume(
    pair: &Pair,
    backend: &dyn Similarity,
    disp_min: i32,
    disp_max: i32,
) -> deepsim::Result<Array3<f32>> {
    use deepsim::cost::{COST_ONE, Intervals, fill_volume};
    if disp_min > disp_max {
        return Err(deepsim::Error::invalid_parameter(format!(
            "disp_min {disp_min} > disp_max {disp_max}: give disp_min <= disp_max"
        )));
    }
    let (h, w) = pair.left.dim();
    let (_, right_width) = pair.right.dim();
    let intervals = Intervals::uniform(w, h, disp_min, disp_max)?;
    let level = LevelPair {
        left: &pair.left,
        right: &pair.right,
        left_valid: &pair.left_valid,
        right_valid: &pair.right_valid,
    };
    let costs = fill_volume(backend.prepare(level)?.as_ref(), &intervals)?;
    let n = (disp_max - disp_min + 1) as usize;
    let mut out = Array3::from_elem((h, w, n), f32::NAN);
    for y in 0..h {
        for x in 0..w {
            if !pair.left_valid[(y, x)] {
                continue;
            }
            let entries = intervals.entries(x, y);
            let inside = intervals.inside_right(x, y, right_width);
            for k in inside {
                let xr = x as i64 - (disp_min as i64 + k as i64);
                if pair.right_valid[(y, xr as usize)] {
                    out[(y, x, k)] = costs[entries.start + k] as f32 / COST_ONE as f32;
                }
            }
        }
    }
    Ok(out)
}

/// Runs a `deepsim …` command line in this process (`match_files`, `python -m deepsim`).
/// With `raise_errors`, an error is raised as a `DeepsimError`; else it is printed as the CLI
/// prints it and the exit code returned (clap's help and usage errors too).
#[pyfunction]
#[pyo3(signature = (argv, raise_errors=true))]
fn run_cli(py: Python<'_>, argv: Vec<String>, raise_errors: bool) -> PyResult<i32> {
    let parsed = Cli::try_parse_from(&argv);
    let cli = match parsed {
        Ok(cli) => cli,
        Err(err) if raise_errors && err.use_stderr() => {
            return Err(errors::to_py(
                py,
                anyhow::anyhow!(errors::ClapMessage(err.to_string())),
            ));
        }
        Err(err) => {
            let _ = err.print();
            return Ok(err.exit_code());
        }
    };
    // The CLI's --threads sets the global pool, which a process can do once: the binding
    // runs in a local pool instead.
    let threads = cli.threads;
    let cli = Cli {
        threads: None,
        ..cli
    };
    let result = py.detach(move || in_pool(threads, move || cli::run_parsed(cli))?);
    match result {
        Ok(()) => Ok(0),
        Err(err) if raise_errors => Err(errors::to_py(py, err)),
        Err(err) => {
            note!("deepsim: error: {err:#}");
            Ok(1)
        }
    }
}

/// The native part of the `deepsim` package (use the package, not this module).
#[pymodule]
fn _deepsim(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<NativeModel>()?;
    m.add_function(wrap_pyfunction!(match_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(cost_volume, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_class::<distributed::TileWorker>()?;
    m.add_function(wrap_pyfunction!(distributed::run_tiled, m)?)?;
    Ok(())
}
