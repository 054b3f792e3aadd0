#!/usr/bin/env python3
"""Accuracy on real imagery: deepsim (census, every bundle × head, variants) against the peers
(OpenCV StereoSGBM HH, Pandora census + libSGM, Pandora MC-CNN fast + libSGM), in one run.

Two kinds of pairs:
* labelled real pairs (validation only, never used to choose anything): motorcycle and
  middlebury-v2 teddy / venus / tsukuba, search 0..63 (their meta.json), non-occluded bad-2
  with invalid pixels counted as bad, and density;
* unlabelled real aerial pairs (aerial-unlabeled): no ground truth, so every method runs twice,
  on the pair and on the mirrored, swapped pair (left' = fliplr(right), right' = fliplr(left),
  which keeps the disparity convention and range), and we report the density and the
  **left-right consistency rate**: the share of all left pixels whose disparity is valid in both
  runs and agrees within 1 px. One generic range for every aerial pair (--aerial-range).
  A PNG montage of the left image and every method's disparity per pair is written too.

Run through bench/real.sh (which builds deepsim and sets up the peers' venv).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "peers"))
from metrics import bad2_nonocc  # noqa: E402  (the table's rule, shared with the Pandora plugin's bench)

LABELLED = {
    "motorcycle": "motorcycle",
    "teddy": "middlebury-v2/teddy",
    "venus": "middlebury-v2/venus",
    "tsukuba": "middlebury-v2/tsukuba",
}
AERIAL = ["enschede", "toulouse-0032", "toulouse-0051", "vaihingen"]


@dataclass
class Method:
    name: str
    kind: str  # deepsim | sgbm | pandora-census | pandora-mccnn
    args: list[str] = field(default_factory=list)


def deepsim_methods(bin_path: str, bundles: list[str], heads: list[str], runtime: str, variants: list[str]) -> list[Method]:
    out = [Method("deepsim census", "deepsim", [])]
    for b in bundles:
        for h in heads:
            if h == "mlp" and not (Path(b) / "mlp.onnx").exists():
                continue
            out.append(Method(f"{Path(b).name} {h}", "deepsim", ["--model", b, "--head", h, "--runtime", runtime]))
    for v in variants:  # "label=--model models/x --head cosine --learned-weight 0.5"
        label, _, rest = v.partition("=")
        out.append(Method(label, "deepsim", rest.split()))
    return out


def run_deepsim(bin_path: str, left: Path, right: Path, dmin: int, dmax: int, args: list[str], work: Path) -> tuple[np.ndarray, float]:
    out = work / "out"
    cmd = [bin_path, "-q", "match", "--left", str(left), "--right", str(right), "--out", str(out),
           "--disp-min", str(dmin), "--disp-max", str(dmax), *args]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return tifffile.imread(out / "disparity.tif").astype(np.float32), time.perf_counter() - t


def run_sgbm(left: Path, right: Path, dmin: int, dmax: int) -> tuple[np.ndarray, float]:
    # OpenCV's documented sample settings (block size 5, MODE_HH), as in peers/run_opencv_sgbm.py.
    import run_opencv_sgbm as ro

    lg, rg = cv2.imread(str(left), cv2.IMREAD_GRAYSCALE), cv2.imread(str(right), cv2.IMREAD_GRAYSCALE)
    sgbm = ro.make_sgbm(num_disp=((dmax - dmin + 1) + 15) // 16 * 16, min_disp=dmin)
    t = time.perf_counter()
    raw = sgbm.compute(lg, rg)
    return ro.to_float_disparity(raw, dmin), time.perf_counter() - t


def run_pandora(left: Path, right: Path, dmin: int, dmax: int, cost: str) -> tuple[np.ndarray, float]:
    import copy

    import run_pandora as rp
    from pandora.matching_cost.matching_cost import AbstractMatchingCost

    # The MC-CNN plugin's check_conf adds keys to the schema shared by every matching cost
    # (a class attribute, edited in place): restore it so census can run after MC-CNN.
    if not hasattr(run_pandora, "schema"):
        run_pandora.schema = copy.deepcopy(AbstractMatchingCost.schema)
    AbstractMatchingCost.schema.clear()
    AbstractMatchingCost.schema.update(copy.deepcopy(run_pandora.schema))

    cfg = (rp.census_sgm_config if cost == "census" else rp.mccnn_sgm_config)(str(left), str(right), dmax)
    cfg["input"]["left"]["disp"] = [-dmax, -dmin]  # Pandora: d = x_right − x_left
    left_ds, _, _, _, run_s = rp.run_once(cfg)
    return rp.our_disparity(left_ds), run_s


def run_method(m: Method, bin_path: str, left: Path, right: Path, dmin: int, dmax: int, work: Path) -> tuple[np.ndarray, float]:
    if m.kind == "deepsim":
        return run_deepsim(bin_path, left, right, dmin, dmax, m.args, work)
    if m.kind == "sgbm":
        return run_sgbm(left, right, dmin, dmax)
    return run_pandora(left, right, dmin, dmax, "census" if m.kind == "pandora-census" else "mccnn")


def grey_png(src: Path, dst: Path, flip: bool = False) -> Path:
    img = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
    if img.ndim == 3:  # BT.601 luma, the engine's own rule
        img = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY)
    if flip:
        img = img[:, ::-1]
    cv2.imwrite(str(dst), np.ascontiguousarray(img))
    return dst


def lr_consistency(d_left: np.ndarray, d_right_mirrored: np.ndarray) -> tuple[float, float]:
    """Share of left pixels valid in both runs and consistent within 1 px; density of the left run."""
    d_right = d_right_mirrored[:, ::-1]
    h, w = d_left.shape
    valid = np.isfinite(d_left)
    xs = np.arange(w)[None, :].repeat(h, 0)
    xr = np.rint(xs - np.where(valid, d_left, 0)).astype(np.int64)
    inside = valid & (xr >= 0) & (xr < w)
    back = np.full_like(d_left, np.nan)
    rows = np.arange(h)[:, None].repeat(w, 1)
    back[inside] = d_right[rows[inside], xr[inside]]
    ok = inside & np.isfinite(back) & (np.abs(back - d_left) <= 1.0)
    return 100.0 * ok.mean(), 100.0 * valid.mean()


def colorize(d: np.ndarray, lo: float, hi: float) -> np.ndarray:
    v = np.clip((np.nan_to_num(d, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = cv2.applyColorMap((v * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    rgb[~np.isfinite(d)] = 0
    return rgb


def montage(left: Path, maps: dict[str, np.ndarray], lo: float, hi: float, path: Path, side: int = 320) -> None:
    tiles = [cv2.cvtColor(cv2.imread(str(left), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR)]
    names = ["left"] + list(maps)
    tiles += [colorize(d, lo, hi) for d in maps.values()]
    out = []
    for name, t in zip(names, tiles):
        t = cv2.resize(t, (side, side * t.shape[0] // t.shape[1]), interpolation=cv2.INTER_AREA)
        cv2.putText(t, name, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(t, name, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        out.append(t)
    cols = 4
    while len(out) % cols:
        out.append(np.zeros_like(out[0]))
    rows = [np.hstack(out[i:i + cols]) for i in range(0, len(out), cols)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deepsim", default=str(ROOT / "target/release/deepsim"))
    ap.add_argument("--shared", default=str(ROOT.parent / "shared/data"))
    ap.add_argument("--bundles", nargs="*", default=sorted(str(p) for p in (ROOT / "models").iterdir() if (p / "features.onnx").exists()))
    ap.add_argument("--heads", nargs="*", default=["cosine", "mlp"])
    ap.add_argument("--runtime", default="ort", help="deepsim --runtime for the bundles (ort is fastest on CPU)")
    ap.add_argument("--variant", action="append", default=[], help='extra deepsim run: "label=--model DIR --head cosine ..."')
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--labelled", nargs="*", default=list(LABELLED))
    ap.add_argument("--aerial", nargs="*", default=AERIAL)
    ap.add_argument("--aerial-range", default="-8..151", help="one generic search range for every aerial pair")
    ap.add_argument("--out", default=str(ROOT / "bench/results/real"))
    a = ap.parse_args(argv)

    methods = deepsim_methods(a.deepsim, a.bundles, a.heads, a.runtime, a.variant)
    if not a.no_peers:
        methods += [Method("OpenCV SGBM HH", "sgbm"), Method("Pandora census+SGM", "pandora-census"),
                    Method("Pandora MC-CNN fast+SGM", "pandora-mccnn")]
    shared, out = Path(a.shared), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"labelled": {}, "aerial": {}, "methods": [m.name for m in methods]}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in a.labelled:
            folder = shared / LABELLED[name]
            gt, nonocc = np.load(folder / "gt.npy"), np.load(folder / "nonocc.npy").astype(bool)
            for m in methods:
                d, secs = run_method(m, a.deepsim, folder / "left.png", folder / "right.png", 0, 63, tmp)
                bad, dens = bad2_nonocc(d, gt, nonocc)
                results["labelled"].setdefault(m.name, {})[name] = {"bad2": bad, "density": dens, "seconds": secs}
                print(f"{name:>10} {m.name:<28} bad-2 {bad:6.2f}  density {dens:5.1f} %  {secs:7.2f} s", flush=True)
        lo, hi = (int(v) for v in a.aerial_range.split(".."))
        for name in a.aerial:
            folder = shared / "aerial-unlabeled" / name
            left, right = grey_png(folder / "left.png", tmp / "l.png"), grey_png(folder / "right.png", tmp / "r.png")
            left_m, right_m = grey_png(folder / "right.png", tmp / "lm.png", True), grey_png(folder / "left.png", tmp / "rm.png", True)
            maps = {}
            for m in methods:
                d, secs = run_method(m, a.deepsim, left, right, lo, hi, tmp)
                dm, _ = run_method(m, a.deepsim, left_m, right_m, lo, hi, tmp)
                cons, dens = lr_consistency(d, dm)
                maps[m.name] = d
                results["aerial"].setdefault(m.name, {})[name] = {"lr_consistent": cons, "density": dens, "seconds": secs}
                print(f"{name:>14} {m.name:<28} LR-consistent {cons:5.1f} %  density {dens:5.1f} %  {secs:7.2f} s", flush=True)
            montage(left, maps, lo, hi, out / f"montage-{name}.png")
    (out / "real.json").write_text(json.dumps(results, indent=1))
    print_table(results, a.labelled, a.aerial)
    return 0


def print_table(results: dict, labelled: list[str], aerial: list[str]) -> None:
    print()
    head = "| method | " + " | ".join(labelled) + " | mean bad-2 | " + " | ".join(f"{n} LR-cons. / dens." for n in aerial) + " | aerial mean LR-cons. |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for m in results["methods"]:
        lab = results["labelled"].get(m, {})
        aer = results["aerial"].get(m, {})
        cells = [f"{lab[n]['bad2']:.2f}" if n in lab else "–" for n in labelled]
        mean = f"{np.mean([lab[n]['bad2'] for n in labelled]):.2f}" if lab and all(n in lab for n in labelled) else "–"
        acells = [f"{aer[n]['lr_consistent']:.1f} / {aer[n]['density']:.1f}" if n in aer else "–" for n in aerial]
        amean = f"{np.mean([aer[n]['lr_consistent'] for n in aerial]):.1f}" if aer and all(n in aer for n in aerial) else "–"
        print(f"| {m} | " + " | ".join(cells) + f" | {mean} | " + " | ".join(acells) + f" | {amean} |")


if __name__ == "__main__":
    sys.exit(main())
