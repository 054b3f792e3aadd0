#!/usr/bin/env python3
"""End to end, census + SGM defaults against OpenCV StereoSGBM MODE_HH on a 2048² synthetic
aerial pair with 128 disparities (0..127), in the same run: the whole `deepsim match` command
(reading, pyramid, costs, SGM, checks, filters, writing; wall time of the process) against
OpenCV's compute() alone (images already in memory), and the accuracy of both on that pair
(non-occluded bad-2 with invalid = bad, density; also on the columns x >= 128 where OpenCV
answers). Prints the ratio OpenCV time / deepsim time (> 1: deepsim faster) and deepsim's
stage times from run.json. The machine may be loaded: only the ratio of one run means anything.

The pair: `deepsim synth --size 2048 --count 1 --seed 4243 --style urban --gsd 0.2:0.25 --base-to-height 0.25:0.3`
(a seed no training uses), kept in --cache; its ground truth must lie in 0..127.

Usage (peers venv for cv2): python bench/sgbm_2048.py [--runs 3] [-- deepsim match options]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "peers"))
from metrics import bad2_nonocc  # noqa: E402
import run_opencv_sgbm as ro  # noqa: E402

SYNTH = ["--size", "2048", "--count", "1", "--seed", "4243", "--style", "urban", "--gsd", "0.2:0.25", "--base-to-height", "0.25:0.3"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=str(ROOT / "target/release/deepsim"))
    p.add_argument("--cache", type=Path, default=Path.home() / ".cache/deepsim/synth-aerial/bench-2048")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("options", nargs="*")
    args = p.parse_args()
    if not (args.cache / "manifest.json").exists():
        subprocess.run([args.bin, "synth", "--out", str(args.cache), "-q", *SYNTH], check=True)
    pair = args.cache / "000000"
    gt = tifffile.imread(pair / "disp_left.tif").astype(np.float32)
    nonocc = cv2.imread(str(pair / "mask_nonocc.png"), cv2.IMREAD_GRAYSCALE) > 127
    if np.nanmax(gt) > 127:
        print(f"the pair's ground truth reaches {np.nanmax(gt):.0f} px: outside 0..127, change SYNTH", file=sys.stderr)
        return 1
    left = cv2.imread(str(pair / "left.png"), cv2.IMREAD_GRAYSCALE)
    right = cv2.imread(str(pair / "right.png"), cv2.IMREAD_GRAYSCALE)
    sgbm = ro.make_sgbm(num_disp=128, min_disp=0, block_size=5)
    sgbm.compute(left, right)  # warm-up
    cv_times, ds_times, stages = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        for _ in range(args.runs):  # interleaved, so that a load change hits both
            t = time.perf_counter()
            raw = sgbm.compute(left, right)
            cv_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run([args.bin, "-q", "match", "--left", str(pair / "left.png"), "--right", str(pair / "right.png"),
                            "--out", str(out), "--disp-min", "0", "--disp-max", "127", *args.options], check=True)
            ds_times.append(time.perf_counter() - t)
            stages.append(json.load(open(out / "run.json"))["timings_s"])
        ours = tifffile.imread(out / "disparity.tif").astype(np.float32)
    theirs = ro.to_float_disparity(raw, 0)
    cols = np.arange(gt.shape[1])[None, :] >= 128
    tc, td = statistics.median(cv_times), statistics.median(ds_times)
    for name, d in (("deepsim census + SGM", ours), ("OpenCV SGBM MODE_HH", theirs)):
        bad, dens = bad2_nonocc(d, gt, nonocc)
        print(f"{name:<22} bad-2 nonocc {bad:6.2f} %  density {dens:5.1f} %  (x >= 128: bad-2 {bad2_nonocc(d, gt, nonocc & cols)[0]:6.2f} %)")
    print(f"time, median of {args.runs}: deepsim whole command {td:.2f} s, OpenCV compute() {tc:.2f} s "
          f"-> OpenCV / deepsim = {tc / td:.2f}x")
    mid = stages[ds_times.index(sorted(ds_times)[len(ds_times) // 2])]
    print("deepsim stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in mid.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
