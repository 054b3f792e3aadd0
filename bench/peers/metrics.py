#!/usr/bin/env python3
"""Disparity-map metrics shared by the peer benchmarks.

Convention: positive disparities, left pixel (x, y) matches right pixel (x - d, y).

Metrics (all in %, except EPE in px) are computed over a *region* of pixels:
  - "all":    pixels where the ground truth is finite;
  - "nonocc": pixels where the ground truth is finite AND the non-occlusion mask is true.

An invalid prediction (NaN/inf, or flagged invalid by an optional validity mask) counts
as BAD for every bad-x threshold and is EXCLUDED from EPE; density (% of the region with
a valid prediction) is reported separately.  bad-x uses a strict ``|d - gt| > x``.

Reusable API:  load_disparity(path), load_gt(path), load_mask(path),
               evaluate(pred, gt, nonocc=None, valid=None) -> dict
CLI:           python metrics.py --disparity D.(tif|tiff|npy|pfm|png) --gt gt.npy --mask nonocc.npy
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

THRESHOLDS = (0.5, 1.0, 2.0, 4.0)


# --------------------------------------------------------------------------- I/O
def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file (Middlebury convention: rows stored bottom-to-top, inf = unknown)."""
    with open(path, "rb") as fh:
        header = fh.readline().decode("ascii").strip()
        if header not in ("Pf", "PF"):
            raise ValueError(f"{path}: not a PFM file (header {header!r})")
        channels = 3 if header == "PF" else 1
        line = fh.readline().decode("ascii")
        while line.startswith("#"):
            line = fh.readline().decode("ascii")
        width, height = (int(v) for v in line.split())
        scale = float(fh.readline().decode("ascii").strip())
        dtype = "<f4" if scale < 0 else ">f4"
        data = np.frombuffer(fh.read(width * height * channels * 4), dtype=dtype)
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)


def _read_tiff(path: Path) -> np.ndarray:
    try:
        import tifffile  # type: ignore

        return np.asarray(tifffile.imread(str(path)))
    except ImportError:
        pass
    try:
        import rasterio  # type: ignore

        with rasterio.open(str(path)) as ds:
            return ds.read(1)
    except ImportError:
        pass
    import cv2  # type: ignore

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise IOError(f"cannot read {path}")
    return arr


def load_disparity(path: str | Path, png_scale: float = 1.0) -> np.ndarray:
    """Load a disparity map as float32 (NaN / inf kept as-is)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".npy":
        arr = np.load(path)
    elif ext == ".pfm":
        arr = read_pfm(path)
    elif ext in (".tif", ".tiff"):
        arr = _read_tiff(path)
    elif ext == ".png":
        import cv2  # type: ignore

        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise IOError(f"cannot read {path}")
        arr = raw.astype(np.float32) / png_scale
        arr[raw == 0] = np.nan  # KITTI/Middlebury-style PNG: 0 = invalid
    else:
        raise ValueError(f"unsupported disparity format: {path}")
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D disparity map, got shape {arr.shape}")
    return arr


def load_gt(path: str | Path) -> np.ndarray:
    """Ground-truth disparity (float32, NaN/inf = unknown)."""
    return load_disparity(path)


def load_mask(path: str | Path) -> np.ndarray:
    path = Path(path)
    if path.suffix.lower() == ".npy":
        m = np.load(path)
    else:
        import cv2  # type: ignore

        m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise IOError(f"cannot read {path}")
        m = m > 127  # Middlebury mask0nocc.png: 255 = non-occluded
    return np.asarray(m).astype(bool)


# ------------------------------------------------------------------------ metrics
def bad2_nonocc(d: np.ndarray, gt: np.ndarray, nonocc: np.ndarray) -> tuple[float, float]:
    """Non-occluded bad-2 % with missing predictions counted as bad, and density % (the rule of
    bench/real.py's table)."""
    region = nonocc & np.isfinite(gt)
    valid = np.isfinite(d) & region
    bad = region & ~(valid & (np.abs(np.where(valid, d, 0) - gt) <= 2.0))
    return 100.0 * bad.sum() / region.sum(), 100.0 * valid.sum() / region.sum()


def region_metrics(pred: np.ndarray, gt: np.ndarray, region: np.ndarray, valid: np.ndarray) -> dict:
    """Metrics on the pixels of ``region`` (bool).  ``valid``: bool, prediction usable."""
    n = int(region.sum())
    out: dict = {"pixels": n}
    if n == 0:
        out.update({f"bad{t:g}": None for t in THRESHOLDS})
        out.update({"epe": None, "density": None})
        return out
    ok = region & valid
    err = np.abs(pred[ok].astype(np.float64) - gt[ok].astype(np.float64))
    for t in THRESHOLDS:
        good = int((err <= t).sum())
        out[f"bad{t:g}"] = 100.0 * (n - good) / n  # invalid predictions count as bad
    out["epe"] = float(err.mean()) if err.size else None
    out["density"] = 100.0 * int(ok.sum()) / n
    return out


def evaluate(
    pred: np.ndarray,
    gt: np.ndarray,
    nonocc: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> dict:
    """Evaluate ``pred`` (positive convention) against ``gt``.

    ``valid`` (optional bool array) marks predictions the method itself declares valid;
    the prediction is also invalid wherever it is not finite.
    Returns {"all": {...}, "nonocc": {...}, "image_density": %}.
    """
    pred = np.asarray(pred, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    if pred.shape != gt.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs gt {gt.shape}")
    pvalid = np.isfinite(pred)
    if valid is not None:
        pvalid &= np.asarray(valid, dtype=bool)
    gvalid = np.isfinite(gt)
    res = {"all": region_metrics(pred, gt, gvalid, pvalid)}
    if nonocc is not None:
        res["nonocc"] = region_metrics(pred, gt, gvalid & np.asarray(nonocc, dtype=bool), pvalid)
    res["image_density"] = 100.0 * float(pvalid.mean())
    return res


def photometric_error(left: np.ndarray, right: np.ndarray, disp: np.ndarray) -> float:
    """Mean |L(x,y) - R(x-d,y)| (nearest pixel) over valid, in-bounds pixels.

    A cheap sign check: small for the right convention, large for the opposite one."""
    h, w = disp.shape
    xs = np.arange(w)[None, :] - np.rint(np.nan_to_num(disp, nan=-1e6)).astype(np.int64)
    ys = np.broadcast_to(np.arange(h)[:, None], (h, w))
    ok = np.isfinite(disp) & (xs >= 0) & (xs < w)
    return float(np.abs(left[ok].astype(np.float64) - right[ys[ok], xs[ok]].astype(np.float64)).mean())


def format_row(name: str, res: dict, runtime_s: float | None = None) -> str:
    """One markdown table row: bad0.5/1/2/4 nonocc | same all | EPE nonocc/all | density."""
    n, a = res["nonocc"], res["all"]
    cells = [name]
    cells += [f"{n[f'bad{t:g}']:.2f}" for t in THRESHOLDS]
    cells += [f"{a[f'bad{t:g}']:.2f}" for t in THRESHOLDS]
    cells += [f"{n['epe']:.3f}", f"{a['epe']:.3f}", f"{n['density']:.1f}", f"{a['density']:.1f}"]
    cells.append("" if runtime_s is None else f"{runtime_s:.3f}")
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--disparity", required=True, help="predicted disparity (.npy/.tif/.pfm/.png)")
    ap.add_argument("--gt", required=True, help="ground truth disparity (.npy/.pfm/...)")
    ap.add_argument("--mask", help="non-occlusion mask (.npy bool or .png 255=nonocc)")
    ap.add_argument("--negate", action="store_true", help="negate the prediction (Pandora sign convention)")
    ap.add_argument("--invalid-value", type=float, action="append", default=[],
                    help="extra value(s) in the prediction meaning 'invalid' (e.g. -1, 0)")
    ap.add_argument("--png-scale", type=float, default=1.0, help="divisor for 16-bit PNG disparities")
    args = ap.parse_args(argv)

    pred = load_disparity(args.disparity, png_scale=args.png_scale)
    valid = np.ones(pred.shape, bool)
    for v in args.invalid_value:  # raw values, before any negation
        valid &= pred != v
    if args.negate:
        pred = -pred
    gt = load_gt(args.gt)
    mask = load_mask(args.mask) if args.mask else None
    res = evaluate(pred, gt, mask, valid)
    json.dump(res, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
