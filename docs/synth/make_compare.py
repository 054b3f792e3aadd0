#!/usr/bin/env python3
"""Side-by-side figure of real and synthetic aerial pairs (docs/synth/compare.png).

Each tile is a left crop and the right crop that best matches it (the horizontal shift with
the highest normalised cross-correlation, searched over 0..120 px), at 1:1 pixel scale,
in grey. One row per source: the real pairs of ../shared/data/aerial-unlabeled, then each
synthetic dataset given. Crops are small (--crop, at most 256 px): the real images are not
redistributable and must never be committed whole.

Usage (numpy and Pillow, e.g. the training venv):
    python docs/synth/make_compare.py --real ../shared/data/aerial-unlabeled \
        --synth "default options" DIR1 --synth "--texture-dir" DIR2 --out docs/synth/compare.png
"""

import argparse
import pathlib

import numpy as np
from PIL import Image, ImageDraw


def grey(path):
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def best_shift(left, right, y, x, n, max_shift=120):
    a = left[y : y + n, x : x + n]
    a = (a - a.mean()) / (a.std() + 1e-9)
    best, arg = -2.0, 0
    for d in range(0, min(max_shift, x) + 1):
        b = right[y : y + n, x - d : x - d + n]
        b = (b - b.mean()) / (b.std() + 1e-9)
        c = float((a * b).mean())
        if c > best:
            best, arg = c, d
    return arg, best


def tile(left_path, right_path, n):
    left, right = grey(left_path), grey(right_path)
    h, w = left.shape
    # The central crop, moved right by up to 120 px so that the right crop fits.
    y = (h - n) // 2
    x = min(max((w - n) // 2, 120), w - n)
    d, _ = best_shift(left, right, y, x, n)
    gap = np.full((n, 4), 255.0)
    return np.hstack([left[y : y + n, x : x + n], gap, right[y : y + n, x - d : x - d + n]])


def pairs(root, limit):
    found = sorted(p for p in pathlib.Path(root).iterdir() if (p / "left.png").exists() and (p / "right.png").exists())
    return found[:limit]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", required=True, help="folder of real pairs (DIR/NAME/{left,right}.png)")
    ap.add_argument("--synth", nargs=2, action="append", default=[], metavar=("LABEL", "DIR"), help="a labelled deepsim synth dataset (repeatable)")
    ap.add_argument("--crop", type=int, default=160, help="crop side in px (at most 256)")
    ap.add_argument("--per-row", type=int, default=4)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not 32 <= args.crop <= 256:
        raise SystemExit(f"--crop {args.crop}: use 32 to 256 px (real crops must stay small)")
    n, k = args.crop, args.per_row
    rows = [("real pairs (" + ", ".join(p.name for p in pairs(args.real, k)) + ")", pairs(args.real, k))]
    for label, d in args.synth:
        found = pairs(d, k)
        if not found:
            raise SystemExit(f"{d}: no pair folders with left.png and right.png")
        rows.append((f"deepsim synth, {label}", found))
    tile_w, label_h, pad = 2 * n + 4, 18, 8
    width = k * tile_w + (k - 1) * pad
    height = len(rows) * (label_h + n + pad)
    canvas = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(canvas)
    for r, (label, found) in enumerate(rows):
        top = r * (label_h + n + pad)
        draw.text((2, top + 3), label + ": left | right (best-matching shift)", fill=0)
        for c, p in enumerate(found):
            t = tile(p / "left.png", p / "right.png", n)
            canvas.paste(Image.fromarray(np.clip(t, 0, 255).astype(np.uint8)), (c * (tile_w + pad), top + label_h))
    canvas.save(args.out, optimize=True)
    print(f"{args.out}: {width}×{height} px, {len(rows)} rows")


if __name__ == "__main__":
    main()
