#!/usr/bin/env python3
"""Where the pixels go: per-stage accounting of census + SGM on aerial scenes, and accuracy
against OpenCV StereoSGBM MODE_HH measured in the same run.

Pairs:
* synthetic aerial validation scenes with ground truth (a `deepsim synth` dataset; build it with
  --make-synth: dense urban blocks and towers, disparity spans of 100-250 px, cast shadows;
  seed 4242, which no training uses), search 0 .. --disp-max (256 candidates by default).
  Pairs whose ground truth passes the search range are skipped (named);
* the unlabelled real aerial pairs of ../shared/data/aerial-unlabeled (no ground truth: counts
  only), search 0 .. --aerial-max.

For each pair deepsim runs three times with the options given after `--` (default: none, i.e.
the defaults):
  A  as given, with --confidence: the result, validity.tif (left-right rejected, small region,
     filled bits) and search_min/search_max.tif (the interval the last step searched);
  B  as given + --lr-check -1 --min-region 0 --no-median: the last step's raw winner (the
     checks and filters run only at the last step, so the intervals are A's);
  C  as given + --no-median: the result before the median;
and once more with --fill background (D) to count what filling would add.
Per stage, over the non-occluded pixels with ground truth: how many pixels the stage
invalidates (or changes) and how many of those were right (|d - gt| <= 2 px) before it:
  interval  GT outside the searched interval (coarse-level error carried by the dilation);
            "right" = the raw winner is still within 2 px (at the interval's bound);
  lr-check  rejected by the left-right check;
  regions   removed as a small region;
  median    changed from right to wrong / wrong to right;
  fill      (--fill background, off by default) pixels filled, and how many of them right.
Then bad-2 (invalid = bad) and density of deepsim (A) and of OpenCV SGBM HH.

Usage (peers venv for cv2):
  python bench/aerial_stages.py --make-synth [--synth DIR] [-- deepsim options ...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "peers"))
from metrics import bad2_nonocc  # noqa: E402

SHARED = Path(os.environ.get("DEEPSIM_SHARED", ROOT.parent / "shared"))
if not SHARED.exists():
    SHARED = Path("/work/shared")
AERIAL = ["enschede", "toulouse-0032", "toulouse-0051", "vaihingen"]
SYNTH_DEFAULT = Path.home() / ".cache/deepsim/synth-aerial/aerial-4242"
# The validation scenes: dense urban blocks and towers, large base (spans of 100-250 px).
SYNTH_ARGS = ["--count", "8", "--size", "512", "--seed", "4242", "--style", "urban",
              "--gsd", "0.06:0.09", "--base-to-height", "0.35:0.5"]
LR_REJECTED, SMALL_REGION, FILLED = 1 << 4, 1 << 5, 1 << 6


def deepsim(bin_path: str, left: Path, right: Path, dmax: int, out: Path, args: list[str]) -> dict:
    cmd = [bin_path, "-q", "match", "--left", str(left), "--right", str(right), "--out", str(out),
           "--disp-min", "0", "--disp-max", str(dmax), *args]
    subprocess.run(cmd, check=True)
    maps = {"disparity": tifffile.imread(out / "disparity.tif").astype(np.float32)}
    for name in ("validity", "search_min", "search_max"):
        if (out / f"{name}.tif").exists():
            maps[name] = tifffile.imread(out / f"{name}.tif")
    maps["run"] = json.load(open(out / "run.json"))
    return maps


def sgbm(left: Path, right: Path, dmax: int) -> np.ndarray:
    import run_opencv_sgbm as ro

    l, r = (cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in (left, right))
    num = -(-(dmax + 1) // 16) * 16
    raw = ro.make_sgbm(num_disp=num, min_disp=0, block_size=5).compute(l, r)
    return ro.to_float_disparity(raw, 0)


def stages(a: dict, b: dict, c: dict, d: dict, gt: np.ndarray | None, region: np.ndarray) -> dict:
    """Counts per stage over `region` (and how many were right, with ground truth)."""
    bits = a["validity"].astype(np.int64)
    raw, before_median, final, filled = b["disparity"], c["disparity"], a["disparity"], d["disparity"]
    right = (lambda v: np.isfinite(v) & (np.abs(np.nan_to_num(v) - gt) <= 2.0)) if gt is not None else None
    out: dict = {"pixels": int(region.sum())}

    def put(name: str, mask: np.ndarray, was_right: np.ndarray | None):
        m = mask & region
        out[name] = [int(m.sum()), None if was_right is None else int((m & was_right).sum())]

    if gt is not None:
        lo, hi = a["search_min"].astype(np.float32), a["search_max"].astype(np.float32)
        put("interval", (gt < lo - 0.5) | (gt > hi + 0.5), right(raw))
        out["raw_right"] = int((right(raw) & region).sum())
    put("lr-check", (bits & LR_REJECTED) != 0, right(raw) if gt is not None else None)
    put("regions", (bits & SMALL_REGION) != 0, right(raw) if gt is not None else None)
    if gt is not None:
        both = np.isfinite(before_median) & np.isfinite(final)
        out["median-broke"] = int((both & right(before_median) & ~right(final) & region).sum())
        out["median-fixed"] = int((both & ~right(before_median) & right(final) & region).sum())
    else:
        changed = np.isfinite(before_median) & (np.abs(np.nan_to_num(before_median - final)) > 1.0)
        out["median-changed"] = int((changed & region).sum())
    newly = ~np.isfinite(final) & np.isfinite(filled)
    put("fill", newly, right(filled) if gt is not None else None)
    out["with_value"] = int((np.isfinite(final) & region).sum())
    return out


def without(options: list[str], *names: str) -> list[str]:
    """`options` without `NAME VALUE` pairs of `names` (the runs that set them themselves)."""
    out, skip = [], False
    for o in options:
        if skip:
            skip = False
        elif o in names:
            skip = True
        else:
            out.append(o)
    return out


def bad2_of_valid(d: np.ndarray, gt: np.ndarray, nonocc: np.ndarray) -> float:
    """bad-2 % among the non-occluded pixels that have a value (what a user keeps)."""
    m = nonocc & np.isfinite(gt) & np.isfinite(d)
    return 100.0 * float((np.abs(d[m] - gt[m]) > 2.0).mean()) if m.any() else float("nan")


def make_synth(bin_path: str, out: Path) -> None:
    if (out / "manifest.json").exists():
        return
    subprocess.run([bin_path, "synth", "--out", str(out), "-q", *SYNTH_ARGS], check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default=str(ROOT / "target/release/deepsim"))
    p.add_argument("--synth", type=Path, default=SYNTH_DEFAULT)
    p.add_argument("--make-synth", action="store_true", help="build the validation scenes if missing")
    p.add_argument("--disp-max", type=int, default=255)
    p.add_argument("--aerial-max", type=int, default=127)
    p.add_argument("--no-aerial", action="store_true")
    p.add_argument("--real", action="store_true",
                   help="also the shared labelled pairs (motorcycle, teddy, venus, tsukuba; search 0..63): "
                        "report only, never tune on them")
    p.add_argument("--no-sgbm", action="store_true")
    p.add_argument("--json", type=Path)
    p.add_argument("--accuracy-only", action="store_true", help="one deepsim run per pair, no stage accounting")
    p.add_argument("options", nargs="*", help="deepsim match options (after --)")
    args = p.parse_args()
    if args.make_synth:
        make_synth(args.bin, args.synth)
    pairs = []
    for d in sorted(args.synth.glob("[0-9]*/")):
        gt = tifffile.imread(d / "disp_left.tif").astype(np.float32)
        if np.nanmax(gt) > args.disp_max:
            print(f"skipped synth/{d.name}: ground truth up to {np.nanmax(gt):.0f} px > {args.disp_max}")
            continue
        nonocc = cv2.imread(str(d / "mask_nonocc.png"), cv2.IMREAD_GRAYSCALE) > 127
        pairs.append((f"synth/{d.name}", d / "left.png", d / "right.png", args.disp_max, gt, nonocc))
    if args.real:
        for name, sub in (("motorcycle", "motorcycle"), ("teddy", "middlebury-v2/teddy"),
                          ("venus", "middlebury-v2/venus"), ("tsukuba", "middlebury-v2/tsukuba")):
            d = SHARED / "data" / sub
            gt = np.load(d / "gt.npy").astype(np.float32)
            pairs.append((name, d / "left.png", d / "right.png", 63, gt, np.load(d / "nonocc.npy").astype(bool)))
    if not args.no_aerial:
        for name in AERIAL:
            d = SHARED / "data/aerial-unlabeled" / name
            pairs.append((name, d / "left.png", d / "right.png", args.aerial_max, None, None))
    rows, summary = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, left, right, dmax, gt, nonocc in pairs:
            w = Path(tmp) / name.replace("/", "_")
            opts = args.options
            a = deepsim(args.bin, left, right, dmax, w / "a", [*opts, "--confidence"])
            region = (nonocc & np.isfinite(gt)) if gt is not None else np.ones(a["disparity"].shape, bool)
            if args.accuracy_only:
                row = {"pair": name, "pixels": int(region.sum()), "with_value": int((np.isfinite(a["disparity"]) & region).sum())}
            else:
                b = deepsim(args.bin, left, right, dmax, w / "b", [*without(opts, "--lr-check", "--min-region"),
                                                                   "--lr-check", "-1", "--min-region", "0", "--no-median"])
                c = deepsim(args.bin, left, right, dmax, w / "c", [*opts, "--no-median"])
                d = deepsim(args.bin, left, right, dmax, w / "d", [*without(opts, "--fill"), "--fill", "background"])
                row = {"pair": name, **stages(a, b, c, d, gt, region)}
            row["time_s"] = a["run"]["timings_s"]["total"]
            group = "synthetic" if name.startswith("synth/") else "shared real"
            if gt is not None:
                row["bad2"], row["density"] = bad2_nonocc(a["disparity"], gt, nonocc)
                row["bad2_of_valid"] = bad2_of_valid(a["disparity"], gt, nonocc)
                summary.setdefault(f"deepsim, {group}", []).append((row["bad2"], row["density"], row["bad2_of_valid"]))
                if not args.no_sgbm:
                    theirs = sgbm(left, right, dmax)
                    row["sgbm_bad2"], row["sgbm_density"] = bad2_nonocc(theirs, gt, nonocc)
                    # OpenCV leaves the first numDisparities columns without a value: also both
                    # on the columns where it answers.
                    cols = np.arange(gt.shape[1])[None, :] >= -(-(dmax + 1) // 16) * 16
                    row["bad2_right_part"] = bad2_nonocc(a["disparity"], gt, nonocc & cols)[0]
                    row["sgbm_bad2_right_part"] = bad2_nonocc(theirs, gt, nonocc & cols)[0]
                    summary.setdefault(f"right_part, {group}", []).append((row["bad2_right_part"], row["sgbm_bad2_right_part"]))
                    summary.setdefault(f"sgbm, {group}", []).append((row["sgbm_bad2"], row["sgbm_density"]))
            else:
                row["density"] = 100.0 * row["with_value"] / row["pixels"]
            rows.append(row)
            print(format_row(row), flush=True)
    for k, v in summary.items():
        if k.startswith("right_part"):
            print(f"  {k.split(', ')[1]}, on the columns x >= numDisparities only (where OpenCV answers): deepsim bad-2 "
                  f"{np.mean([x[0] for x in v]):.2f} %, sgbm {np.mean([x[1] for x in v]):.2f} %")
            continue
        if v:
            extra = f", bad-2 of the pixels with a value {np.mean([x[2] for x in v]):.2f} %" if len(v[0]) > 2 else ""
            print(f"mean over {len(v)} pairs with ground truth, {k}: bad-2 nonocc {np.mean([x[0] for x in v]):.2f} %, "
                  f"density {np.mean([x[1] for x in v]):.1f} %{extra}")
    if args.json:
        args.json.write_text(json.dumps({"options": args.options, "rows": rows}, indent=1))
    return 0


def format_row(r: dict) -> str:
    def pair(k):
        v = r.get(k)
        if v is None:
            return "-"
        return f"{v[0]}" if v[1] is None else f"{v[0]} ({v[1]} right)"

    s = f"{r['pair']:<14} px {r['pixels']:>7}"
    if "lr-check" in r:
        if "interval" in r:
            s += f" | GT outside interval {pair('interval')}"
        s += f" | lr-check {pair('lr-check')} | regions {pair('regions')}"
        if "median-broke" in r:
            s += f" | median right->wrong {r['median-broke']}, wrong->right {r['median-fixed']}"
        else:
            s += f" | median changed >1px {r['median-changed']}"
        s += f" | fill {pair('fill')}"
    if "bad2" in r:
        s += f" || bad-2 {r['bad2']:.2f} dens {r['density']:.1f} (bad-2 of valid {r['bad2_of_valid']:.2f})"
        if "sgbm_bad2" in r:
            s += f" | SGBM {r['sgbm_bad2']:.2f} dens {r['sgbm_density']:.1f}"
    else:
        s += f" || density {r['density']:.1f}"
    return s


if __name__ == "__main__":
    sys.exit(main())
