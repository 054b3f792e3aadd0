#!/usr/bin/env python3
"""SGM throughput: OpenCV StereoSGBM MODE_HH vs. deepsim.

Throughput is counted in path-updates per second:
    OpenCV:  W * H * numDisparities * 8 / t      (t = median wall time of StereoSGBM.compute())
    deepsim: stats.cost_volume_entries * 8 / timings_s.total        (from deepsim's run.json)
             and the same with timings_s.regularize alone (SGM aggregation only).
The ratio ours/OpenCV is printed when --deepsim is given.

OpenCV parameters are those of run_opencv_sgbm.py (blockSize 5, P1 8*bs^2, P2 32*bs^2,
uniqueness 10, speckle 100/32, disp12MaxDiff 1); numDisparities = (disp_max - disp_min + 1)
rounded up to a multiple of 16 (OpenCV's requirement).

Examples:
  python sgbm_throughput.py                                   # motorcycle 741x500, 0..63
  python sgbm_throughput.py --size 2048x2048 --disp-max 255   # synthetic large pair
  python sgbm_throughput.py --deepsim ../../target/release/deepsim
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_opencv_sgbm import make_sgbm  # noqa: E402

DATA = Path("/work/shared/data/motorcycle")


def synthesize(left: np.ndarray, right: np.ndarray, width: int, height: int, how: str):
    """Make a WxH pair from the source pair.

    resize: both images resized with the same factors (disparities scale by width/src_width);
    tile:   both images tiled identically (disparities unchanged; seams are wrong matches)."""
    if how == "resize":
        f = cv2.INTER_AREA if width < left.shape[1] else cv2.INTER_CUBIC
        return (cv2.resize(left, (width, height), interpolation=f),
                cv2.resize(right, (width, height), interpolation=f))
    reps = (-(-height // left.shape[0]), -(-width // left.shape[1]))
    return np.tile(left, reps)[:height, :width].copy(), np.tile(right, reps)[:height, :width].copy()


def bench_opencv(left, right, disp_min: int, disp_max: int, runs: int, block_size: int) -> dict:
    span = disp_max - disp_min + 1
    num_disp = -(-span // 16) * 16
    sgbm = make_sgbm(num_disp=num_disp, min_disp=disp_min, block_size=block_size)
    sgbm.compute(left, right)  # warm-up (allocations)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sgbm.compute(left, right)
        times.append(time.perf_counter() - t0)
    h, w = left.shape
    t = statistics.median(times)
    return {"seconds_median": t, "runs": times, "numDisparities": num_disp,
            "throughput": w * h * num_disp * 8 / t, "threads": cv2.getNumThreads()}


def bench_deepsim(binary: str, left_path: str, right_path: str, disp_min: int, disp_max: int,
                  runs: int, extra: list[str]) -> dict | None:
    exe = shutil.which(binary) or (binary if Path(binary).is_file() and os.access(binary, os.X_OK) else None)
    if exe is None:
        print(f"[deepsim] binary not found / not executable: {binary} - skipping", file=sys.stderr)
        return None
    totals, regs, walls, entries = [], [], [], None
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="deepsim-tp-") as tmp:
            cmd = [exe, "match", "--left", left_path, "--right", right_path, "--out", tmp,
                   "--similarity", "census", "--levels", "1", "--disp-min", str(disp_min),
                   "--disp-max", str(disp_max), "--directions", "8", *extra]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                print(f"[deepsim] failed (rc={proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}",
                      file=sys.stderr)
                return None
            try:
                run = json.loads((Path(tmp) / "run.json").read_text())
                entries = int(run["stats"]["cost_volume_entries"])
                totals.append(float(run["timings_s"]["total"]))
                regs.append(float(run["timings_s"].get("regularize", float("nan"))))
            except (OSError, KeyError, ValueError, TypeError) as exc:
                print(f"[deepsim] cannot read run.json fields ({exc!r}) - skipping", file=sys.stderr)
                return None
            walls.append(wall)
    t_total, t_reg = statistics.median(totals), statistics.median(regs)
    return {"cmd": " ".join(cmd), "cost_volume_entries": entries,
            "total_s_median": t_total, "regularize_s_median": t_reg, "wall_s_median": statistics.median(walls),
            "throughput_total": entries * 8 / t_total,
            "throughput_regularize": entries * 8 / t_reg if t_reg == t_reg and t_reg > 0 else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--left", default=str(DATA / "left.png"))
    ap.add_argument("--right", default=str(DATA / "right.png"))
    ap.add_argument("--disp-min", type=int, default=0)
    ap.add_argument("--disp-max", type=int, default=63)
    ap.add_argument("--size", help="WxH: synthesize a pair of this size from the inputs")
    ap.add_argument("--synth", choices=["resize", "tile"], default="resize")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--block-size", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's own)")
    ap.add_argument("--deepsim", metavar="BIN", help="deepsim binary to compare against")
    ap.add_argument("--deepsim-arg", action="append", default=[], help="extra argument for deepsim (repeatable)")
    ap.add_argument("--json", help="write the results to this JSON file")
    args = ap.parse_args(argv)

    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    left = cv2.imread(args.left, cv2.IMREAD_GRAYSCALE)
    right = cv2.imread(args.right, cv2.IMREAD_GRAYSCALE)
    if left is None or right is None:
        raise SystemExit("cannot read input images")
    with tempfile.TemporaryDirectory(prefix="sgbm-tp-") as tmp:
        left_path, right_path = args.left, args.right
        if args.size:
            w, h = (int(v) for v in args.size.lower().split("x"))
            left, right = synthesize(left, right, w, h, args.synth)
            left_path, right_path = str(Path(tmp) / "left.png"), str(Path(tmp) / "right.png")
            cv2.imwrite(left_path, left)
            cv2.imwrite(right_path, right)
        h, w = left.shape
        print(f"pair {w}x{h}, disparities {args.disp_min}..{args.disp_max}, runs {args.runs}, "
              f"opencv {cv2.__version__}, cv2 threads {cv2.getNumThreads()}, cpus {os.cpu_count()}")
        ocv = bench_opencv(left, right, args.disp_min, args.disp_max, args.runs, args.block_size)
        print(f"OpenCV SGBM MODE_HH: {ocv['seconds_median']:.4f} s median, numDisparities {ocv['numDisparities']}, "
              f"throughput {ocv['throughput'] / 1e6:.1f} M path-updates/s")
        result = {"width": w, "height": h, "disp_min": args.disp_min, "disp_max": args.disp_max,
                  "opencv_version": cv2.__version__, "opencv": ocv}
        if args.deepsim:
            ours = bench_deepsim(args.deepsim, left_path, right_path, args.disp_min, args.disp_max,
                                 args.runs, args.deepsim_arg)
            result["deepsim"] = ours
            if ours:
                print(f"deepsim: total {ours['total_s_median']:.4f} s -> {ours['throughput_total'] / 1e6:.1f} M/s "
                      f"(ratio ours/OpenCV {ours['throughput_total'] / ocv['throughput']:.2f})")
                if ours["throughput_regularize"]:
                    print(f"deepsim: regularize {ours['regularize_s_median']:.4f} s -> "
                          f"{ours['throughput_regularize'] / 1e6:.1f} M/s "
                          f"(ratio ours/OpenCV {ours['throughput_regularize'] / ocv['throughput']:.2f})")
            else:
                print("deepsim: not measured (see message above); OpenCV numbers only")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
