"""Large pairs as tiles on a Dask cluster: ``deepsim match`` with its tiles matched by workers.

A tiled run (``--tile``, ``--tile-overlap``) matches each pyramid level tile by tile, each
tile with its overlap and, below the coarsest level, the previous level's disparity as
context. :func:`match_tiled` runs the same run with the tiles of each level submitted to a
``dask.distributed`` client, one task per tile, and assembles them into the same output
files, written the same way (``disparity.tif``, ``confidence.tif``, ``disparity.png``,
``run.json`` and, with ``confidence=True``, the confidence products; each written under a
temporary name and renamed, ``run.json`` last; the left image's georeferencing kept). The
disparity is the single-machine run's with the same tiles, bit for bit: the plan, each tile's
matching, the assembly and the filters are the engine's own code (``deepsim._deepsim``), not a
copy of it in Python.

How the work is shared:

- the caller's process (the *driver*) reads the pair, plans the tiles, saves each level's
  disparity for the next level's tiles, assembles the tiles' cores, filters and writes;
- each worker process reads the pair itself **by path** (inputs, output folder and scratch
  folder must be on storage the workers share; no image goes through the scheduler), keeps
  it with its pyramid for the run's tiles, and sends back only its tiles' cores;
- a worker lost during the run costs only its tiles: Dask runs them again elsewhere, and the
  result is the same (each task reads its inputs and writes nothing);
- progress: the tasks (``deepsim-tile-…``) show in the Dask dashboard, and the driver prints
  ``tiles done/total`` per level on stderr unless ``quiet``.

>>> from dask.distributed import Client, LocalCluster               # doctest: +SKIP
>>> import deepsim.distributed
>>> with LocalCluster(n_workers=2, threads_per_worker=1) as cluster, Client(cluster) as client:  # doctest: +SKIP
...     report = deepsim.distributed.match_tiled("left.tif", "right.tif", "out", client=client,
...                                              tile=1024, disp_min=-64, disp_max=64)

A Slurm or PBS cluster is the same call with a ``dask_jobqueue`` cluster (README, "Large
pairs on a Dask cluster"). The command line: ``deepsim match … --dask SCHEDULER_ADDRESS``
(or ``python -m deepsim.distributed match … --dask SCHEDULER_ADDRESS``).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from typing import Any, Callable, Iterator, Optional, Union

from .. import _deepsim
from .. import Model, MODEL_OPTIONS, PathLike, _flags, _global_flags, _refuse
from ..errors import DeepsimError, OptionError

#: ``progress(level, done, total)``: called in the driver each time a tile of a level is in.
ProgressCallback = Callable[[int, int, int], None]

# A worker process's share of the current run, by run id (one run at a time): the pair read
# once, then reused by every tile of the run this process is given.
_WORKERS: dict = {}
_WORKERS_LOCK = threading.Lock()


def _run_tile(argv: list, run_id: str, step: int, tile: int, coarse: Optional[str], products: bool) -> bytes:
    """The task: tile ``tile`` of step ``step``, on a worker (reads the pair on first use)."""
    with _WORKERS_LOCK:
        worker = _WORKERS.get(run_id)
        if worker is None:
            _WORKERS.clear()  # a previous run's pair
            worker = _deepsim.TileWorker(argv)
            _WORKERS[run_id] = worker
    return worker.run_tile(step, tile, coarse, products)


def _forget(run_id: str) -> None:
    """Drops a finished run's pair from a worker process."""
    with _WORKERS_LOCK:
        _WORKERS.pop(run_id, None)


class _Progress:
    """``level L: tiles done/total`` on stderr (one updated line on a terminal)."""

    def __init__(self, quiet: bool, callback: Optional[ProgressCallback]) -> None:
        self.quiet = quiet
        self.callback = callback
        self.tty = sys.stderr.isatty()

    def __call__(self, level: int, done: int, total: int) -> None:
        if self.callback is not None:
            self.callback(level, done, total)
        if self.quiet:
            return
        text = f"deepsim: level {level} (1/{1 << level}): {done}/{total} tiles"
        if self.tty:
            print("\r" + text, end="\n" if done == total else "", file=sys.stderr, flush=True)
        elif total <= 50 or done == total or done % max(1, total // 20) == 0:
            print(text, file=sys.stderr, flush=True)


def _submitter(client: Any, run_id: str, progress: _Progress) -> Callable[[dict], Iterator[tuple]]:
    """The callable the engine hands each level's tiles to: one task per tile, results
    yielded as they complete (a task's exception is raised here, which stops the run)."""
    from distributed import as_completed

    def submit(request: dict) -> Iterator[tuple]:
        step, level, total = request["step"], request["level"], len(request["tiles"])
        futures = {}
        for index in range(total):
            future = client.submit(
                _run_tile,
                request["argv"],
                run_id,
                step,
                index,
                request["coarse"],
                request["products"],
                key=f"deepsim-tile-{run_id}-{step}-{index}",
                pure=False,
            )
            futures[future] = index
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                data = future.result()
                progress(level, done, total)
                yield futures[future], data
                future.release()
        finally:
            for future in futures:
                if future.status != "finished":
                    future.cancel()

    return submit


def run(argv: list, client: Any, *, progress: Optional[ProgressCallback] = None) -> dict:
    """Runs a ``deepsim match`` argument list (``["deepsim", ..., "match", ...]``, the CLI's
    options, ``--dask`` ignored) with its tiles on ``client``; returns run.json's content."""
    argv = [str(a) for a in argv]
    if "match" not in argv:
        raise OptionError("deepsim.distributed runs `deepsim match …` argument lists")
    before = argv[: argv.index("match")]
    quiet = "-q" in before or "--quiet" in before
    run_id = uuid.uuid4().hex
    nthreads = client.nthreads()  # worker address -> threads
    description = {
        "scheduler": getattr(client.scheduler, "address", None),
        "workers": len(nthreads),
        "worker_threads": sum(nthreads.values()),
        "dashboard": getattr(client, "dashboard_link", None),
        "run_id": run_id,
    }
    start = time.perf_counter()
    try:
        out = _deepsim.run_tiled(argv, _submitter(client, run_id, _Progress(quiet, progress)), json.dumps(description))
    finally:
        try:
            client.run(_forget, run_id)
        except Exception:  # a worker gone: its memory went with it
            pass
    with open(os.path.join(out, "run.json"), encoding="utf-8") as f:
        report = json.load(f)
    report.setdefault("distributed", {})["driver_wall_s"] = time.perf_counter() - start
    return report


def match_tiled(
    left_path: PathLike,
    right_path: PathLike,
    out_dir: PathLike,
    *,
    client: Any,
    tile: int = 2048,
    model: Union[None, PathLike, Model] = None,
    quiet: bool = True,
    threads: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    **options: Any,
) -> dict:
    """``deepsim match --left L --right R --out DIR --tile TILE [options]`` with the tiles
    matched on a ``dask.distributed`` ``client``; returns the report (run.json's content).

    The output is the single-machine run's with the same ``tile`` and ``tile_overlap`` (and the
    same ``max_memory``, which decides whether a tile is split further), bit for bit. Paths must
    be readable by the workers (shared storage): each worker reads the pair itself; only tile
    descriptors go out and tile cores come back. ``options``: any ``deepsim match`` option with
    underscores, as for :func:`deepsim.match_files`. ``threads``: engine threads per tile (default:
    all cores of the worker's machine; with several worker processes per machine, give
    cores / workers). ``progress(level, done, total)`` is called as tiles come in; unless
    ``quiet``, ``tiles done/total`` is printed on stderr. Errors are :class:`deepsim.DeepsimError`
    subclasses (a worker's error is raised as the worker raised it); a failed run leaves no
    ``run.json`` in ``out_dir``.
    """
    _refuse(options, frozenset({"left", "right", "out", "config", "dask"}), "give the files as left_path, right_path, out_dir and the cluster as client")
    if isinstance(model, Model):
        _refuse(options, MODEL_OPTIONS, "set when the deepsim.Model was loaded; give it to deepsim.Model(...)")
        model_argv = [f"--model={model.path}", *model._native.options]
    else:
        model_argv = [] if model is None else [f"--model={os.fspath(model)}"]
    files = {"left": left_path, "right": right_path, "out": out_dir, "tile": tile}
    argv = _global_flags(quiet, threads) + ["match", *_flags(files), *model_argv, *_flags(options)]
    return run(argv, client, progress=progress)


def _dask_address(argv: list) -> Optional[str]:
    for i, a in enumerate(argv):
        if a.startswith("--dask="):
            return a[len("--dask=") :]
        if a == "--dask" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def main(argv: Optional[list] = None) -> int:
    """``python -m deepsim.distributed [global options] match … --dask SCHEDULER_ADDRESS``
    (what ``deepsim match … --dask`` runs); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        return _deepsim.run_cli(["deepsim", *argv], raise_errors=False)
    address = _dask_address(argv)
    if address is None or "match" not in argv:
        print("deepsim: error: usage: python -m deepsim.distributed match … --dask SCHEDULER_ADDRESS (e.g. tcp://host:8786)", file=sys.stderr)
        return 2
    try:
        from distributed import Client
    except ImportError as e:
        print(f"deepsim: error: --dask needs the dask.distributed package ({e}): pip install 'dask[distributed]'", file=sys.stderr)
        return 1
    try:
        client = Client(address)  # timeout: distributed.comm.timeouts.connect (30 s)
    except (OSError, TimeoutError) as e:
        print(f"deepsim: error: --dask {address}: cannot reach the Dask scheduler ({e})", file=sys.stderr)
        return 1
    try:
        with client:
            run(["deepsim", *argv], client)
    except DeepsimError as e:
        print(f"deepsim: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # the cluster's (a task lost too often, a cancelled run)
        print(f"deepsim: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


__all__ = ["match_tiled", "run", "main", "ProgressCallback"]
