#!/usr/bin/env python3
"""Image statistics of real aerial pairs and of `deepsim synth` pairs, side by side.

Why: the synthetic domain should look like the real one to a matcher, so the sensor defaults
(`--noise`, `--blur`, `--jpeg-quality`) and the view-to-view differences are judged by numbers
measured the same way on both. Per image (grey, 8 bits):

- noise: Immerkaer's estimator (convolution with the 3x3 second-difference mask) per 16x16
  block, 10th percentile over blocks, so that texture does not count as noise;
- hf: share of the spectral power above 0.25 cycles/px among that above 0.02 cycles/px
  (sharpness + noise + fine texture, per pixel as the matcher sees it);
- grad: median |gradient| / standard deviation (texture density, scale-free);
- std: standard deviation of the grey values;
- lr_mean, lr_std: |mean(L) - mean(R)| / mean and |std(L)/std(R) - 1| between the two views
  (exposure / radiometric difference of the pair; the views overlap by most of their area).

Usage (numpy and Pillow, e.g. the training venv):
    python docs/synth/measure_realism.py --real ../shared/data/aerial-unlabeled \
        --synth DATASET_DIR [--synth OTHER_DIR ...]
Prints one row per source (mean over its pairs). Never writes anything.
"""

import argparse
import pathlib

import numpy as np
from PIL import Image


def grey(path):
    return np.asarray(Image.open(path).convert("L"), dtype=np.float64)


def noise_sigma(img, block=16):
    m = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    h, w = img.shape
    conv = np.zeros((h - 2, w - 2))
    for dy in range(3):
        for dx in range(3):
            conv += m[dy, dx] * img[dy : dy + h - 2, dx : dx + w - 2]
    a = np.abs(conv)
    hb, wb = (h - 2) // block, (w - 2) // block
    a = a[: hb * block, : wb * block].reshape(hb, block, wb, block).mean(axis=(1, 3))
    sig = np.sqrt(np.pi / 2.0) * a / 6.0
    return float(np.percentile(sig, 10))


def hf_share(img):
    c = img - img.mean()
    p = np.abs(np.fft.fft2(c)) ** 2
    fy = np.fft.fftfreq(img.shape[0])[:, None]
    fx = np.fft.fftfreq(img.shape[1])[None, :]
    r = np.sqrt(fx * fx + fy * fy)
    return float(p[(r > 0.25)].sum() / p[(r > 0.02)].sum())


def grad_ratio(img):
    gx = img[1:-1, 2:] - img[1:-1, :-2]
    gy = img[2:, 1:-1] - img[:-2, 1:-1]
    return float(np.median(np.hypot(gx, gy) / 2.0) / max(img.std(), 1e-9))


def stats(left, right):
    s = {
        "noise": (noise_sigma(left) + noise_sigma(right)) / 2,
        "hf": (hf_share(left) + hf_share(right)) / 2,
        "grad": (grad_ratio(left) + grad_ratio(right)) / 2,
        "std": (left.std() + right.std()) / 2,
        "lr_mean": abs(left.mean() - right.mean()) / max(left.mean(), 1e-9),
        "lr_std": abs(left.std() / max(right.std(), 1e-9) - 1),
    }
    return s


def pairs(root):
    return sorted(p for p in pathlib.Path(root).iterdir() if (p / "left.png").exists() and (p / "right.png").exists())


def show(name, rows):
    keys = ["noise", "hf", "grad", "std", "lr_mean", "lr_std"]
    mean = {k: np.mean([r[k] for r in rows]) for k in keys}
    print(f"{name:28s} " + " ".join(f"{mean[k]:8.3f}" for k in keys) + f"   ({len(rows)} pairs)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", required=True, help="folder of real pairs (DIR/NAME/{left,right}.png)")
    ap.add_argument("--synth", action="append", default=[], help="a deepsim synth dataset folder (repeatable)")
    ap.add_argument("--per-pair", action="store_true", help="also print each real pair")
    args = ap.parse_args()
    print(f"{'source':28s} " + " ".join(f"{k:>8s}" for k in ["noise", "hf", "grad", "std", "lr_mean", "lr_std"]))
    real = []
    for p in pairs(args.real):
        s = stats(grey(p / "left.png"), grey(p / "right.png"))
        real.append(s)
        if args.per_pair:
            show("  " + p.name, [s])
    show("real (" + pathlib.Path(args.real).name + ")", real)
    for d in args.synth:
        rows = [stats(grey(p / "left.png"), grey(p / "right.png")) for p in pairs(d)]
        if not rows:
            raise SystemExit(f"{d}: no pair folders with left.png and right.png")
        show("synth " + pathlib.Path(d).name, rows)


if __name__ == "__main__":
    main()
