"""`deepsim.distributed` on a real `dask.distributed.LocalCluster` (2 worker processes).

Each distributed run is compared with the single-machine tiled run of the same options
(`deepsim.match_files`, i.e. `deepsim match`, in this process): the same tiles must give the
same files bit for bit, also when a worker process is killed during the run. Small images
(512² and a 128-px tile: 1 + 4 + 16 tiles over 3 levels) keep the module under a minute
on two busy cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import deepsim
import deepsim.distributed

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]
SIZE = 512
# One engine thread per tile: the two workers share the machine's cores.
OPTIONS = dict(disp_min=0, disp_max=31, tile=128, tile_overlap=32, threads=1)
# GeoTIFF tags of the left image (pixel scale, tie point, key directory), carried to the maps.
GEO = [
    (33550, "d", 3, (0.5, 0.5, 0.0), True),
    (33922, "d", 6, (0.0, 0.0, 0.0, 650000.0, 6860000.0, 0.0), True),
    (34735, "H", 8, (1, 1, 0, 1, 1024, 0, 1, 1), True),
]
PRODUCTS = ["ambiguity.tif", "risk_min.tif", "risk_max.tif", "disparity_min.tif", "disparity_max.tif", "validity.tif"]


@pytest.fixture(scope="module")
def pair_paths(tmp_path_factory) -> tuple[Path, Path]:
    """A textured 512² pair, left (x, y) = right (x - d, y) with d from 4 to 20 px; uint16,
    the left one georeferenced."""
    rng = np.random.default_rng(18)
    noise = rng.random((SIZE, SIZE + 64))
    kernel = np.ones(3) / 3
    texture = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, noise)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    disparity = (4 + 8 * (1 + np.sin(xx / 60.0) * np.cos(yy / 45.0))).astype(int)
    right = texture[:, 32 : 32 + SIZE]
    left = texture[yy, np.clip(xx + 32 - disparity, 0, SIZE + 63)]
    folder = tmp_path_factory.mktemp("pair")
    to16 = lambda a: (a * 60000 + 1000).astype(np.uint16)  # noqa: E731
    tifffile.imwrite(folder / "left.tif", to16(left), extratags=GEO)
    tifffile.imwrite(folder / "right.tif", to16(right))
    return folder / "left.tif", folder / "right.tif"


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield cluster, client


@pytest.fixture(scope="module")
def reference(pair_paths, tmp_path_factory) -> Path:
    """The single-machine tiled run, with the confidence products."""
    out = tmp_path_factory.mktemp("reference")
    deepsim.match_files(*pair_paths, out, confidence=True, **OPTIONS)
    return out


def assert_same_file(a: Path, b: Path) -> None:
    x, y = tifffile.imread(a), tifffile.imread(b)
    assert x.dtype == y.dtype and x.shape == y.shape, a.name
    if x.dtype == np.float32:
        assert np.array_equal(np.isnan(x), np.isnan(y)), f"{a.name}: NaNs differ"
        x, y = x.view(np.uint32), y.view(np.uint32)
    assert np.array_equal(x, y), f"{a.name}: not bit-identical"


def assert_same_run(reference: Path, out: Path, products: bool = True) -> dict:
    names = ["disparity.tif", "confidence.tif"] + (PRODUCTS if products else [])
    for name in names:
        assert_same_file(reference / name, out / name)
    ours, theirs = (json.loads((d / "run.json").read_text()) for d in (out, reference))
    for key in ("parameters", "stats", "steps", "georeferenced", "confidence_products"):
        assert ours[key] == theirs[key], key
    assert sorted(ours["outputs"]) == sorted(theirs["outputs"])
    return ours


def geotags(path: Path) -> dict:
    with tifffile.TiffFile(path) as f:
        tags = f.pages[0].tags
        return {code: tags[code].value for code in (33550, 33922, 34735) if code in tags}


def test_tiles_on_two_workers_give_the_single_machine_files(pair_paths, cluster, reference, tmp_path):
    _, client = cluster
    out = tmp_path / "out"
    seen = []
    report = deepsim.distributed.match_tiled(
        *pair_paths, out, client=client, confidence=True, progress=lambda *a: seen.append(a), **OPTIONS
    )
    ours = assert_same_run(reference, out)
    assert report["stats"] == ours["stats"]
    # The plan: 1 + 4 + 16 tiles, all through the cluster, progress for each.
    assert [s["tiles"] for s in report["steps"]] == [1, 4, 16]
    assert [(s["level"], s["tiles"]) for s in report["distributed"]["steps"]] == [(2, 1), (1, 4), (0, 16)]
    assert report["distributed"]["workers"] == 2
    assert len(seen) == 21 and seen[-1] == (0, 16, 16)
    # Georeferenced as the single-machine maps; no scratch files left behind.
    assert ours["georeferenced"] is True
    assert geotags(out / "disparity.tif") == geotags(reference / "disparity.tif") != {}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    # The dashboard's task stream: the tiles were tasks of the scheduler.
    prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert "deepsim-tile" in prefixes


def test_a_worker_killed_during_the_run_costs_only_its_tiles(pair_paths, cluster, reference, tmp_path):
    _, client = cluster
    client.wait_for_workers(2)
    pids = client.run(os.getpid)
    killed = {}

    def kill_one(level: int, done: int, total: int) -> None:
        if level == 0 and done == 1 and not killed:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            victim = next(iter(busy))  # a worker with full-resolution tiles to do
            killed["worker"], killed["tiles"] = victim, len(busy[victim])
            os.kill(pids[victim], signal.SIGKILL)

    out = tmp_path / "out"
    deepsim.distributed.match_tiled(*pair_paths, out, client=client, confidence=True, progress=kill_one, **OPTIONS)
    assert killed and killed["tiles"] >= 1, "the worker was killed with tiles to do"
    assert_same_run(reference, out)
    # The nanny started a new process in its place.
    client.wait_for_workers(2, timeout=60)
    assert pids[killed["worker"]] not in client.run(os.getpid).values()


def test_a_failure_raises_the_engine_error_and_leaves_nothing_that_looks_complete(pair_paths, cluster, tmp_path):
    _, client = cluster
    client.wait_for_workers(2, timeout=60)
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text("{}")  # a previous run's outputs
    (out / "disparity.tif").write_bytes(b"old")
    with pytest.raises(deepsim.DeepsimIOError, match="missing.tif"):
        deepsim.distributed.match_tiled(pair_paths[0], tmp_path / "missing.tif", out, client=client, **OPTIONS)
    assert sorted(p.name for p in out.iterdir()) == []

    # A failure on a worker (the shared file of the previous level's disparity gone while its
    # tiles wait): raised as the worker raised it, and nothing left either.
    def remove_coarse(level: int, done: int, total: int) -> None:
        if level == 0 and done == 1:
            for coarse in out.glob(".deepsim-tiles-*/step*-coarse.i32"):
                coarse.unlink()

    with pytest.raises(deepsim.DeepsimIOError, match=r"step2-coarse\.i32"):
        deepsim.distributed.match_tiled(*pair_paths, out, client=client, progress=remove_coarse, **OPTIONS)
    assert sorted(p.name for p in out.iterdir()) == []


def test_the_command_line_runs_on_the_scheduler_and_prints_progress(pair_paths, cluster, reference, tmp_path):
    cluster_, client = cluster
    client.wait_for_workers(2, timeout=60)
    address = cluster_.scheduler_address
    out = tmp_path / "out"
    files = ["--left", str(pair_paths[0]), "--right", str(pair_paths[1]), "--out", str(out)]
    options = ["--disp-min=0", "--disp-max=31", "--tile=128", "--tile-overlap=32", "--confidence"]
    command = [sys.executable, "-m", "deepsim", "--threads=1", "match", *files, *options, "--dask", address]
    binary = ROOT / "target/release/deepsim"
    if binary.exists():  # the engine's own binary forwards to the package (DEEPSIM_PYTHON)
        command = [str(binary), *command[3:]]
    env = dict(os.environ, DEEPSIM_PYTHON=sys.executable)
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "level 0 (1/1): 16/16 tiles" in run.stderr
    assert_same_run(reference, out)
    report = json.loads((out / "run.json").read_text())
    assert report["distributed"]["scheduler"] == address

    # Without a reachable scheduler: a clear error, exit code 1.
    env["DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"] = "2s"
    bad = subprocess.run([*command[:-1], "tcp://127.0.0.1:9"], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 1 and "cannot reach the Dask scheduler" in bad.stderr, bad.stderr
