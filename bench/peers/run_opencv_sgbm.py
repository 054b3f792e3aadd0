#!/usr/bin/env python3
"""OpenCV StereoSGBM, MODE_HH (full 8-path SGM), on the shared test pair.

Parameters (fixed, NOT tuned on the ground truth) follow OpenCV's own sample
samples/cpp/stereo_match.cpp and the StereoSGBM documentation:
  minDisparity=0, numDisparities=64 (search 0..63), blockSize=5,
  P1 = 8*cn*blockSize^2, P2 = 32*cn*blockSize^2 (cn=1 for grey input),
  preFilterCap=63, uniquenessRatio=10, speckleWindowSize=100, speckleRange=32,
  disp12MaxDiff=1, mode=StereoSGBM_MODE_HH.
(The C++ sample's default window is 3; the brief asked for 5 - pass --block-size 3 for the other.)

Outputs <out>/opencv_sgbm_hh.npy (float32, positive disparities, NaN = invalid) and
<out>/opencv_sgbm_hh.json (parameters, metrics, runtime).
Runtime = median wall time of --runs calls to StereoSGBM.compute() (the disparity
computation only; image loading and the /16 conversion are excluded).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metrics  # noqa: E402

DATA = Path("/work/shared/data/motorcycle")
HERE = Path(__file__).resolve().parent


def make_sgbm(num_disp: int = 64, min_disp: int = 0, block_size: int = 5, channels: int = 1,
              mode: int = cv2.StereoSGBM_MODE_HH) -> "cv2.StereoSGBM":
    return cv2.StereoSGBM_create(
        minDisparity=min_disp,
        numDisparities=num_disp,
        blockSize=block_size,
        P1=8 * channels * block_size * block_size,
        P2=32 * channels * block_size * block_size,
        disp12MaxDiff=1,
        preFilterCap=63,
        uniquenessRatio=10,
        speckleWindowSize=100,
        speckleRange=32,
        mode=mode,
    )


def sgbm_params(sgbm) -> dict:
    return {
        "minDisparity": sgbm.getMinDisparity(),
        "numDisparities": sgbm.getNumDisparities(),
        "blockSize": sgbm.getBlockSize(),
        "P1": sgbm.getP1(),
        "P2": sgbm.getP2(),
        "disp12MaxDiff": sgbm.getDisp12MaxDiff(),
        "preFilterCap": sgbm.getPreFilterCap(),
        "uniquenessRatio": sgbm.getUniquenessRatio(),
        "speckleWindowSize": sgbm.getSpeckleWindowSize(),
        "speckleRange": sgbm.getSpeckleRange(),
        "mode": {0: "MODE_SGBM", 1: "MODE_HH", 2: "MODE_SGBM_3WAY", 3: "MODE_HH4"}.get(sgbm.getMode(), sgbm.getMode()),
    }


def to_float_disparity(raw: np.ndarray, min_disp: int) -> np.ndarray:
    """StereoSGBM returns int16 disparity*16; invalid = (minDisparity-1)*16."""
    disp = raw.astype(np.float32) / 16.0
    disp[raw < min_disp * 16] = np.nan
    return disp


def time_compute(sgbm, left: np.ndarray, right: np.ndarray, runs: int) -> tuple[np.ndarray, list[float]]:
    times = []
    raw = None
    for _ in range(runs):
        t0 = time.perf_counter()
        raw = sgbm.compute(left, right)
        times.append(time.perf_counter() - t0)
    return raw, times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--left", default=str(DATA / "left.png"))
    ap.add_argument("--right", default=str(DATA / "right.png"))
    ap.add_argument("--gt", default=str(DATA / "gt.npy"))
    ap.add_argument("--mask", default=str(DATA / "nonocc.npy"))
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--name", default="opencv_sgbm_hh")
    ap.add_argument("--block-size", type=int, default=5)
    ap.add_argument("--num-disp", type=int, default=64)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's own)")
    args = ap.parse_args(argv)

    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    left = cv2.imread(args.left, cv2.IMREAD_GRAYSCALE)
    right = cv2.imread(args.right, cv2.IMREAD_GRAYSCALE)
    if left is None or right is None:
        raise SystemExit("cannot read input images")
    sgbm = make_sgbm(num_disp=args.num_disp, block_size=args.block_size)
    raw, times = time_compute(sgbm, left, right, args.runs)
    disp = to_float_disparity(raw, sgbm.getMinDisparity())

    gt = metrics.load_gt(args.gt)
    mask = metrics.load_mask(args.mask)
    res = metrics.evaluate(disp, gt, mask)
    h, w = left.shape
    median = statistics.median(times)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / f"{args.name}.npy", disp)
    report = {
        "method": "OpenCV StereoSGBM " + sgbm_params(sgbm)["mode"],
        "date": _dt.date.today().isoformat(),
        "versions": {"opencv": cv2.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "cv2_num_threads": cv2.getNumThreads(),
        "cpu_count": __import__("os").cpu_count(),
        "inputs": {"left": args.left, "right": args.right, "width": w, "height": h},
        "params": sgbm_params(sgbm),
        "runtime_s": {"median": median, "runs": times},
        "throughput_cells_paths_per_s": w * h * args.num_disp * 8 / median,
        "photometric_error": metrics.photometric_error(left, right, disp),
        "metrics": res,
    }
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("method", "cv2_num_threads", "runtime_s")}, indent=2))
    print(metrics.format_row(args.name, res, median))
    return 0


if __name__ == "__main__":
    sys.exit(main())
