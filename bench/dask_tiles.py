"""A large pair through a Dask LocalCluster against `deepsim match` on one machine, same tiles.

    python bench/dask_tiles.py --left L.tif --right R.tif --disp-min 0 --disp-max 127 [--tile 1024]

Runs, one after the other (niced by the caller), with census (the default similarity):
  1. `deepsim match` (the binary, --threads CORES) on this machine, then the same tiles through
     the distributed path matched in this process (no Dask: the tile protocol's own cost);
  2. `deepsim.distributed.match_tiled` on a LocalCluster of 1 worker (engine threads CORES);
  3. the same on 2 workers (engine threads CORES / 2 each);
  4. 2 workers again, one of them killed (SIGKILL) when the first full-resolution tile is in;
then compares the disparity and confidence files bit for bit with run 1 and prints wall times
and the scheduler's overhead per tile: (a) a no-op task of the same descriptor, round trip on
the same cluster; (b) per run, (sum of the steps' wall times - engine seconds) / tiles, where
engine seconds are the workers' stage times in run.json. Needs `pip install . 'dask[distributed]'`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]


def same_files(a: Path, b: Path) -> bool:
    for name in ("disparity.tif", "confidence.tif"):
        x, y = tifffile.imread(a / name), tifffile.imread(b / name)
        if not (np.array_equal(np.isnan(x), np.isnan(y)) and np.array_equal(x.view(np.uint32), y.view(np.uint32))):
            return False
    return True


def engine_seconds(report: dict) -> float:
    t = report["timings_s"]
    return t["prepare"] + t["cost"] + t["regularize"] + t["wta"] + t["post"]


def noop(argv: list, run_id: str, step: int, tile: int, coarse, products: bool) -> bytes:
    return b""


def main() -> None:
    import deepsim.distributed
    from distributed import Client, LocalCluster

    p = argparse.ArgumentParser()
    p.add_argument("--left", required=True)
    p.add_argument("--right", required=True)
    p.add_argument("--disp-min", type=int, required=True)
    p.add_argument("--disp-max", type=int, required=True)
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--out", default="/tmp/deepsim-dask-bench")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    p.add_argument("--binary", default=str(ROOT / "target/release/deepsim"))
    a = p.parse_args()
    out = Path(a.out)
    opts = dict(disp_min=a.disp_min, disp_max=a.disp_max, tile=a.tile)
    results = {}

    t = time.perf_counter()
    cmd = [a.binary, "-q", f"--threads={a.cores}", "match", "--left", a.left, "--right", a.right, "--out", str(out / "single"),
           f"--disp-min={a.disp_min}", f"--disp-max={a.disp_max}", f"--tile={a.tile}"]
    subprocess.run(cmd, check=True)
    results["single"] = {"wall_s": time.perf_counter() - t}
    single = json.loads((out / "single/run.json").read_text())
    results["single"]["engine_s"] = engine_seconds(single)
    results["single"]["tiles"] = [s["tiles"] for s in single["steps"]]
    print(json.dumps({"single": results["single"]}), flush=True)

    # The same distributed run with the tiles matched in this process, without Dask: what the
    # tile protocol itself costs (plan, encoded cores, assembly).
    from deepsim import _deepsim

    cache = {}

    def submit_here(request: dict):
        worker = cache.get("worker") or cache.setdefault("worker", _deepsim.TileWorker(request["argv"]))
        for i in range(len(request["tiles"])):
            yield i, worker.run_tile(request["step"], i, request["coarse"], request["products"])

    t = time.perf_counter()
    argv = ["deepsim", "-q", f"--threads={a.cores}", *cmd[3:]]
    argv[argv.index(str(out / "single"))] = str(out / "here")
    _deepsim.run_tiled(argv, submit_here, "{}")
    here = json.loads((out / "here/run.json").read_text())
    results["in_process"] = {
        "wall_s": time.perf_counter() - t,
        "identical_to_single": same_files(out / "single", out / "here"),
        "engine_s": engine_seconds(here),
    }
    print(json.dumps({"in_process": results["in_process"]}), flush=True)

    for workers, kill in ((1, False), (2, False), (2, True)):
        name = f"{workers}w" + ("-killed" if kill else "")
        threads = max(1, a.cores // workers)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
            pids = client.run(os.getpid)
            killed = {}

            def progress(level: int, done: int, total: int) -> None:
                if kill and level == 0 and done == 1 and not killed:
                    busy = [w for w, keys in client.processing().items() if keys]
                    killed["worker"] = busy[0]
                    os.kill(pids[busy[0]], signal.SIGKILL)

            t = time.perf_counter()
            report = deepsim.distributed.match_tiled(a.left, a.right, out / name, client=client, threads=threads, progress=progress, **opts)
            wall = time.perf_counter() - t
            steps = report["distributed"]["steps"]
            tiles = sum(s["tiles"] for s in steps)
            step_wall = sum(s["wall_s"] for s in steps)
            r = {
                "wall_s": wall,
                "identical_to_single": same_files(out / "single", out / name),
                "engine_s": engine_seconds(report),
                "steps_wall_s": step_wall,
                "tiles": tiles,
                "killed": bool(killed),
            }
            if workers == 1:  # serial: what each tile costs beyond the engine
                r["overhead_per_tile_s"] = (step_wall - r["engine_s"]) / tiles
            if not kill:
                client.wait_for_workers(workers)
                argv = ["deepsim", "match", "--left", a.left, "--right", a.right, "--out", str(out / "x")]
                n = 50
                t = time.perf_counter()
                for i in range(n):  # one after the other: the round trip of one task
                    client.submit(noop, argv, "bench", 2, i, None, False, pure=False).result()
                r["noop_round_trip_s"] = (time.perf_counter() - t) / n
                t = time.perf_counter()
                futures = [client.submit(noop, argv, "bench", 2, i, None, False, pure=False) for i in range(500)]
                client.gather(futures)
                r["noop_throughput_s_per_task"] = (time.perf_counter() - t) / 500
            results[name] = r
            print(json.dumps({name: r}), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
