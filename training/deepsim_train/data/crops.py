"""Random training crops and GT-consistent augmentations.

A training sample is a left crop ``h x w`` at ``(x0, y0)`` and a right crop of the same rows that
extends ``right_extra`` columns further left: right crop columns ``[x0 - right_extra, x0 + w)``.
So the left crop pixel ``x`` (crop coordinates) matches the right crop column
``x + offset - d`` with ``offset = right_extra`` (the original trained 768-px left crops against
full-width right rows; ``right_extra`` >= the largest disparity plus the negative range keeps
every positive and negative inside the right crop). Right columns outside the source image are
zero-filled and reported by ``right_valid`` (``[lo, hi)`` in right-crop columns).

Augmentations (all keep the GT consistent):

* ``vflip``: flips rows of both images, disparity and masks (always safe);
* ``hflip``: swaps the images (mirrored) and uses the *right* disparity map; only applied when the
  pair has ``disp_right`` (otherwise skipped: a mirrored pair needs the right view's GT);
* ``scale``: resizes both images by ``s`` and multiplies disparities by ``s`` (masks: nearest);
* photometric jitter per image (brightness, contrast, gamma, noise), clipped to ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .pairs import StereoPair


@dataclass
class AugmentConfig:
    vflip: float = 0.5  # probability
    hflip: float = 0.0  # probability, only used when the pair has disp_right
    scale_prob: float = 0.0
    scale_min: float = 0.8
    scale_max: float = 1.0
    brightness: float = 0.05  # +- additive
    contrast: float = 0.1  # +- relative
    gamma: float = 0.1  # +- relative exponent
    noise: float = 0.01  # std of additive gaussian noise

    def __post_init__(self) -> None:
        for k in ("vflip", "hflip", "scale_prob"):
            v = getattr(self, k)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"augment.{k} must be a probability in [0, 1], got {v}")
        if not 0 < self.scale_min <= self.scale_max:
            raise ValueError(f"augment: need 0 < scale_min <= scale_max, got {self.scale_min}, {self.scale_max}")


def _resize(arr: np.ndarray, s: float, mode: str) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None]
    h, w = arr.shape
    size = (max(1, round(h * s)), max(1, round(w * s)))
    if mode == "nearest":
        out = F.interpolate(t, size=size, mode="nearest")
    else:
        out = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=s < 1)
    return out[0, 0].numpy()


def scale_pair(p: StereoPair, s: float) -> StereoPair:
    """Resize a pair by ``s``; disparities are multiplied by ``s``."""
    disp = _resize(np.nan_to_num(p.disp, nan=0.0), s, "nearest") * s
    defined = _resize(p.defined.astype(np.float32), s, "nearest") > 0.5
    nonocc = _resize(p.nonocc.astype(np.float32), s, "nearest") > 0.5
    dr = None if p.disp_right is None else _resize(np.nan_to_num(p.disp_right, nan=0.0), s, "nearest") * s
    return StereoPair(
        np.clip(_resize(p.left, s, "bilinear"), 0, 1),
        np.clip(_resize(p.right, s, "bilinear"), 0, 1),
        np.where(defined, disp, np.nan).astype(np.float32),
        defined,
        nonocc,
        name=p.name,
        disp_right=dr,
    )


def hflip_pair(p: StereoPair) -> StereoPair:
    """Mirror a pair: new left = mirrored right, its disparity = mirrored right disparity.

    With the right GT ``dR`` (right ``(x, y)`` <-> left ``(x + dR, y)``), after mirroring
    (``x -> W-1-x``) the new left pixel ``x'`` matches new right ``x' - dR``: the same convention.
    Non-occlusion of the new left is derived from its own disparity.
    """
    from .pairs import derive_nonocc

    if p.disp_right is None:
        raise ValueError(f"pair {p.name!r}: horizontal flip needs disp_right")
    disp = np.ascontiguousarray(p.disp_right[:, ::-1]).astype(np.float32)
    defined = np.isfinite(disp)
    return StereoPair(
        np.ascontiguousarray(p.right[:, ::-1]),
        np.ascontiguousarray(p.left[:, ::-1]),
        disp,
        defined,
        derive_nonocc(disp),
        name=p.name + ":hflip",
        disp_right=np.ascontiguousarray(p.disp[:, ::-1]),
    )


def _photometric(img: np.ndarray, rng: np.random.Generator, a: AugmentConfig) -> np.ndarray:
    out = img
    if a.gamma > 0:
        out = np.power(np.clip(out, 0, 1), np.exp(rng.uniform(-a.gamma, a.gamma)))
    if a.contrast > 0:
        out = (out - 0.5) * (1.0 + rng.uniform(-a.contrast, a.contrast)) + 0.5
    if a.brightness > 0:
        out = out + rng.uniform(-a.brightness, a.brightness)
    if a.noise > 0:
        out = out + rng.normal(0.0, a.noise, out.shape)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def random_crop(
    pair: StereoPair,
    *,
    height: int,
    width: int,
    right_extra: int,
    rng: np.random.Generator,
    augment: AugmentConfig | None = None,
) -> dict[str, torch.Tensor]:
    """One training sample (tensors) from ``pair``; see the module docstring for the layout."""
    p = pair
    if augment is not None:
        if augment.scale_prob > 0 and rng.random() < augment.scale_prob:
            p = scale_pair(p, float(rng.uniform(augment.scale_min, augment.scale_max)))
        if augment.hflip > 0 and p.disp_right is not None and rng.random() < augment.hflip:
            p = hflip_pair(p)
    H, W = p.shape
    # pad too-small images (padding is undefined GT)
    ph, pw = max(0, height - H), max(0, width - W)
    left, right, disp, defined, nonocc = p.left, p.right, p.disp, p.defined, p.nonocc
    if ph or pw:
        pad = ((0, ph), (0, pw))
        left, right = np.pad(left, pad), np.pad(right, pad)
        disp = np.pad(disp, pad, constant_values=np.nan)
        defined, nonocc = np.pad(defined, pad), np.pad(nonocc, pad)
        H, W = left.shape
    y0 = int(rng.integers(0, H - height + 1))
    x_lo = min(right_extra, W - width)
    x0 = int(rng.integers(x_lo, W - width + 1))
    sl = (slice(y0, y0 + height), slice(x0, x0 + width))
    rx0 = x0 - right_extra
    rcrop = np.zeros((height, width + right_extra), dtype=np.float32)
    src_lo = max(rx0, 0)
    rcrop[:, src_lo - rx0 :] = right[y0 : y0 + height, src_lo : x0 + width]
    out_l = left[sl].astype(np.float32)
    d = disp[sl]
    dfn = defined[sl] & np.isfinite(d)
    nocc = nonocc[sl] & dfn
    if augment is not None:
        out_l = _photometric(out_l, rng, augment)
        rcrop = _photometric(rcrop, rng, augment)
        rcrop[:, : src_lo - rx0] = 0.0
        if augment.vflip > 0 and rng.random() < augment.vflip:
            out_l, rcrop, d, dfn, nocc = (a[::-1] for a in (out_l, rcrop, d, dfn, nocc))
    return {
        "left": torch.from_numpy(np.ascontiguousarray(out_l))[None],
        "right": torch.from_numpy(np.ascontiguousarray(rcrop))[None],
        "disp": torch.from_numpy(np.ascontiguousarray(np.nan_to_num(d, nan=0.0)).astype(np.float32)),
        "defined": torch.from_numpy(np.ascontiguousarray(dfn)),
        "nonocc": torch.from_numpy(np.ascontiguousarray(nocc)),
        "offset": torch.tensor(float(right_extra)),
        "right_valid": torch.tensor([float(src_lo - rx0), float(width + right_extra)]),
    }
