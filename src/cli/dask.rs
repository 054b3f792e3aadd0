//! `deepsim match … --dask SCHEDULER_ADDRESS`: the run is driven by the Python package's
//! `deepsim.distributed`, which this forwards the command line to.
//!
//! Why a second process: a Dask cluster is reached through the `distributed` Python client
//! (its protocol, serialisation and worker code are Python); the engine's side of a
//! distributed run (plan, one tile, assembly and outputs) is in the library
//! ([`deepsim::pipeline::TileRunner`]) and reaches Python through the package's native module.
//! The Python is `$DEEPSIM_PYTHON`, else `python3`; it needs `deepsim` (`pip install .`) and
//! `dask[distributed]`.

use anyhow::{Context, bail};
use std::process::Command;

/// Runs `$DEEPSIM_PYTHON -m deepsim.distributed` with this process's arguments and exits
/// with its status (its errors are already printed).
pub fn forward() -> anyhow::Result<()> {
    let python = std::env::var_os("DEEPSIM_PYTHON").unwrap_or_else(|| "python3".into());
    let shown = python.to_string_lossy().into_owned();
    let check = Command::new(&python)
        .args(["-c", "import deepsim.distributed"])
        .output()
        .with_context(|| format!("--dask: cannot run {shown} (set DEEPSIM_PYTHON to a Python with deepsim and dask[distributed])"))?;
    if !check.status.success() {
        bail!(
            "--dask: {shown} cannot import deepsim.distributed ({}): install the package (`pip install .` in this repository, \
             and `pip install 'dask[distributed]'`) or set DEEPSIM_PYTHON to a Python that has them",
            String::from_utf8_lossy(&check.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or("no message")
        );
    }
    let status = Command::new(&python)
        .args(["-m", "deepsim.distributed"])
        .args(std::env::args_os().skip(1))
        .status()
        .with_context(|| format!("--dask: cannot run {shown}"))?;
    std::process::exit(status.code().unwrap_or(1));
}
