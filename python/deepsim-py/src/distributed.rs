//! The native side of `deepsim.distributed`: a tiled run whose tiles a Dask cluster matches.
//!
//! Two halves of the engine's [`deepsim::pipeline::TileRunner`] protocol, nothing of the
//! pipeline itself: [`TileWorker`] (on each Dask worker: the pair read by path, its pyramid and
//! the backends, matching one tile of the plan and returning its core as bytes) and
//! [`run_tiled`] (the driver, in the caller's process: the CLI's `match` with each step's tiles
//! handed to a Python callable that submits them to the cluster and yields the results as they
//! arrive). Everything else (plan, search, assembly, filters, atomic outputs, run.json) is the
//! code of `deepsim match`, which is why the result is the same bit for bit.

use crate::cli::match_cmd::{self, RemoteRun};
use crate::errors;
use crate::{in_pool, parse_match};
use deepsim::pipeline::{NoProgress, StepRequest, TileRunner, TileTask};
use deepsim::similarity::Similarity;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A worker's share of a distributed run: built once per worker process from the run's
/// argument list (`deepsim.distributed` caches it), then asked for tiles.
#[pyclass(frozen, module = "deepsim._deepsim")]
pub struct TileWorker {
    worker: deepsim::pipeline::TileWorker,
    backends: Vec<Box<dyn Similarity>>,
    /// The engine's threads (`--threads`), kept for all the tiles: threads and their buffers
    /// are not started again for each tile.
    pool: Option<rayon::ThreadPool>,
}

#[pymethods]
impl TileWorker {
    /// Reads the pair of a `deepsim match` argument list (which must carry the driver's
    /// `--max-memory`) and builds its pyramid.
    #[new]
    fn new(py: Python<'_>, argv: Vec<String>) -> PyResult<Self> {
        let e = |err| errors::to_py(py, err);
        let (args, quiet, threads) = parse_match(&argv).map_err(e)?;
        let pool = threads.map(crate::pool).transpose().map_err(e)?;
        let built = py.detach(|| match &pool {
            Some(pool) => pool.install(|| match_cmd::tile_worker(&args, quiet)),
            None => match_cmd::tile_worker(&args, quiet),
        });
        let (worker, backends) = built.map_err(e)?;
        Ok(TileWorker {
            worker,
            backends,
            pool,
        })
    }

    /// The plan: per step (coarsest first), the cores `(x0, y0, x1, y1)` of its tiles.
    fn plan(&self) -> Vec<Vec<(usize, usize, usize, usize)>> {
        let plan = self.worker.plan();
        plan.iter()
            .map(|tiles| {
                tiles
                    .iter()
                    .map(|t| (t.core.x0, t.core.y0, t.core.x1, t.core.y1))
                    .collect()
            })
            .collect()
    }

    /// Matches tile `tile` of step `step` (`coarse`: the previous step's disparity file;
    /// `products`: the confidence products) and returns its encoded core.
    #[pyo3(signature = (step, tile, coarse=None, products=false))]
    fn run_tile<'py>(
        &self,
        py: Python<'py>,
        step: usize,
        tile: usize,
        coarse: Option<PathBuf>,
        products: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let task = TileTask {
            step,
            tile,
            coarse: coarse.as_deref(),
            products,
        };
        let backends: Vec<&dyn Similarity> = self.backends.iter().map(|b| b.as_ref()).collect();
        let run = || self.worker.run_tile(&backends, &task, &NoProgress).map(|out| out.encode());
        let bytes = py.detach(|| match &self.pool {
            Some(pool) => pool.install(run),
            None => run(),
        });
        let bytes = bytes.map_err(|err| errors::to_py(py, err.into()))?;
        Ok(PyBytes::new(py, &bytes))
    }
}

/// The driver's [`TileRunner`]: each step's tiles go to `submit`, a Python callable taking
/// the step's request (a dict) and returning an iterable of `(tile index, bytes)`.
struct PyRunner {
    submit: Py<PyAny>,
    /// The driver's argument list for the workers (budget fixed, quiet).
    worker_argv: Vec<String>,
    shared: tempfile::TempDir,
    /// The Python exception that stopped the run, re-raised as it was.
    error: Arc<Mutex<Option<PyErr>>>,
    description: serde_json::Value,
    steps: Mutex<Vec<serde_json::Value>>,
}

impl TileRunner for PyRunner {
    fn shared_dir(&self) -> &Path {
        self.shared.path()
    }

    fn run_step(
        &self,
        request: &StepRequest,
        receive: &mut dyn FnMut(usize, &[u8]) -> deepsim::Result<()>,
    ) -> deepsim::Result<()> {
        let start = Instant::now();
        let run = Python::attach(|py| -> PyResult<deepsim::Result<()>> {
            let dict = PyDict::new(py);
            dict.set_item("step", request.step)?;
            dict.set_item("level", request.level)?;
            let cores: Vec<_> = request
                .tiles
                .iter()
                .map(|t| (t.core.x0, t.core.y0, t.core.x1, t.core.y1))
                .collect();
            dict.set_item("tiles", cores)?;
            dict.set_item(
                "coarse",
                request.coarse.map(|p| p.to_string_lossy().into_owned()),
            )?;
            dict.set_item("products", request.products)?;
            dict.set_item("argv", &self.worker_argv)?;
            let results = self.submit.bind(py).call1((dict,))?;
            for item in results.try_iter()? {
                // Pasting a core takes milliseconds: done with the GIL held (`receive` is
                // not `Send`).
                let item = item?;
                let (tile, bytes): (usize, Bound<PyBytes>) = item.extract()?;
                if let Err(err) = receive(tile, bytes.as_bytes()) {
                    return Ok(Err(err));
                }
            }
            Ok(Ok(()))
        });
        let seconds = start.elapsed().as_secs_f64();
        self.steps.lock().expect("not poisoned").push(serde_json::json!({
            "step": request.step, "level": request.level, "tiles": request.tiles.len(), "wall_s": seconds,
        }));
        match run {
            Ok(result) => result,
            Err(err) => {
                let message = Python::attach(|py| err.value(py).to_string());
                *self.error.lock().expect("not poisoned") = Some(err);
                Err(deepsim::Error::new(
                    deepsim::ErrorKind::Backend,
                    format!("distributed run: {message}"),
                ))
            }
        }
    }
}

impl RemoteRun for PyRunner {
    fn report(&self) -> serde_json::Value {
        let mut report = self.description.clone();
        report["steps"] = serde_json::json!(*self.steps.lock().expect("not poisoned"));
        report
    }
}

/// Runs `deepsim match` (argument list `argv`) with each step's tiles submitted by `submit`
/// (see [`PyRunner`]); `description` (JSON) goes into run.json's `distributed`. An exception
/// raised by `submit` or its results stops the run and is raised again here, as it was.
/// Returns the output folder.
#[pyfunction]
pub fn run_tiled(
    py: Python<'_>,
    argv: Vec<String>,
    submit: Py<PyAny>,
    description: String,
) -> PyResult<String> {
    let e = |err| errors::to_py(py, err);
    let (args, quiet, threads) = parse_match(&argv).map_err(e)?;
    let description: serde_json::Value = serde_json::from_str(&description).map_err(|err| {
        e(anyhow::anyhow!(errors::InvalidInput(format!(
            "description: not JSON: {err}"
        ))))
    })?;
    let error = Arc::new(Mutex::new(None));
    let factory = |shared_in: &Path,
                   config: &deepsim::pipeline::MatchConfig|
     -> anyhow::Result<Box<dyn RemoteRun>> {
        let shared = tempfile::Builder::new()
            .prefix(".deepsim-tiles-")
            .tempdir_in(shared_in)
            .map_err(|err| deepsim::Error::io(shared_in, err))?;
        // The workers run quiet, with the driver's budget (it decides how tiles split).
        let mut worker_argv = vec![argv[0].clone(), "--quiet".to_string()];
        if let Some(n) = threads {
            worker_argv.push(format!("--threads={n}"));
        }
        let at = argv
            .iter()
            .position(|a| a == "match")
            .expect("parse_match found the match command");
        let mut skip_value = false;
        for arg in &argv[at..] {
            if std::mem::take(&mut skip_value) {
                continue;
            }
            match arg.as_str() {
                "--dask" | "--max-memory" => skip_value = true,
                a if a.starts_with("--dask=") || a.starts_with("--max-memory=") => {}
                a => worker_argv.push(a.to_string()),
            }
        }
        if let Some(budget) = config.memory_budget {
            worker_argv.push(format!("--max-memory={budget}"));
        }
        Ok(Box::new(PyRunner {
            submit: Python::attach(|py| submit.clone_ref(py)),
            worker_argv,
            shared,
            error: error.clone(),
            description: description.clone(),
            steps: Mutex::new(Vec::new()),
        }))
    };
    let run = py.detach(|| in_pool(threads, || match_cmd::run_remote(&args, quiet, &factory))?);
    match run {
        Ok(out) => Ok(out.to_string_lossy().into_owned()),
        Err(err) => match error.lock().expect("not poisoned").take() {
            Some(raised) => Err(raised),
            None => Err(e(err)),
        },
    }
}
