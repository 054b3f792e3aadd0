"""A small synthetic stereo generator writing the ``deepsim synth`` layout (tests, smoke runs).

Scenes are layered: a slanted textured background plane ``d = a + b x + c y`` and a few
fronto-parallel textured objects (rectangles, ellipses) at larger disparities (closer). The
right image is rendered exactly (each right pixel looks up the front-most layer that covers it
and samples that layer's texture at the corresponding left coordinate, bilinearly), so the GT
is exact to sub-pixel precision; non-occlusion is computed from layer visibility. Convention:
left ``(x, y)`` matches right ``(x - d, y)``.

This is a stand-in for the Rust ``deepsim synth`` command, not a replacement.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _bilinear(grid: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Sample ``grid`` at float grid coordinates (clamped to the border)."""
    h, w = grid.shape
    gx = np.clip(gx, 0, w - 1.000001)
    gy = np.clip(gy, 0, h - 1.000001)
    x0 = np.floor(gx).astype(np.int64)
    y0 = np.floor(gy).astype(np.int64)
    fx, fy = gx - x0, gy - y0
    a = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    b = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return a * (1 - fy) + b * fy


class _Texture:
    """Multi-octave value noise plus a few sharp stripes, defined on a continuous plane."""

    def __init__(self, rng: np.random.Generator, x_range: tuple[float, float], height: int):
        self.x0 = x_range[0] - 4
        self.octaves = []
        width = x_range[1] - x_range[0] + 8
        for cell, amp in ((1.5, 0.35), (3.0, 0.3), (7.0, 0.25), (17.0, 0.2)):
            gw = int(np.ceil(width / cell)) + 3
            gh = int(np.ceil((height + 8) / cell)) + 3
            self.octaves.append((cell, amp, rng.standard_normal((gh, gw))))
        self.stripes = [
            (rng.uniform(0, 2 * np.pi), rng.uniform(3, 20), rng.uniform(0.1, 0.3)) for _ in range(2)
        ]
        self.base = rng.uniform(0.3, 0.7)
        self.contrast = rng.uniform(0.08, 0.2)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        v = np.zeros_like(x, dtype=np.float64)
        for cell, amp, grid in self.octaves:
            v += amp * _bilinear(grid, (x - self.x0) / cell + 1, (y + 4) / cell + 1)
        for theta, period, amp in self.stripes:
            v += amp * np.sign(np.sin((np.cos(theta) * x + np.sin(theta) * y) * 2 * np.pi / period))
        return self.base + self.contrast * v


def _shape_mask(shape: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    cx, cy, rx, ry = shape["cx"], shape["cy"], shape["rx"], shape["ry"]
    if shape["kind"] == "rect":
        return (np.abs(x - cx) <= rx) & (np.abs(y - cy) <= ry)
    return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0


def render_scene(
    height: int,
    width: int,
    *,
    seed: int,
    disp_range: tuple[float, float] = (2.0, 24.0),
    num_objects: int = 4,
    undefined_blob: bool = True,
) -> dict:
    """Render one layered scene; returns left/right uint8, disp_left float32, masks, scene."""
    rng = np.random.default_rng(seed)
    dmin, dmax = disp_range
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    # background plane, in the lower half of the range
    d_lo = rng.uniform(dmin, dmin + 0.3 * (dmax - dmin))
    d_hi = rng.uniform(d_lo, dmin + 0.5 * (dmax - dmin))
    b = (d_hi - d_lo) / max(width - 1, 1) * rng.choice([-1.0, 1.0])
    c = rng.uniform(-0.3, 0.3) * (d_hi - d_lo) / max(height - 1, 1)
    a = d_lo - min(0.0, b * (width - 1)) - min(0.0, c * (height - 1))
    layers = [{"kind": "plane", "a": a, "b": b, "c": c}]
    obj_disps = np.sort(rng.uniform(dmin + 0.55 * (dmax - dmin), dmax, size=num_objects))
    for d in obj_disps:
        layers.append(
            {
                "kind": str(rng.choice(["rect", "ellipse"])),
                "d": float(d),
                "cx": float(rng.uniform(0, width)),
                "cy": float(rng.uniform(0, height)),
                "rx": float(rng.uniform(0.08, 0.3) * width),
                "ry": float(rng.uniform(0.08, 0.3) * height),
            }
        )
    textures = [_Texture(rng, (-dmax - 8, width + dmax + 8), height) for _ in layers]

    def layer_disp(k: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        L = layers[k]
        if L["kind"] == "plane":
            return L["a"] + L["b"] * x + L["c"] * y
        return np.full_like(x, L["d"])

    # left: front-most (largest disparity = last) layer covering the pixel
    top = np.zeros((height, width), dtype=np.int64)
    for k in range(1, len(layers)):
        top[_shape_mask(layers[k], xs, ys)] = k
    disp = np.zeros((height, width))
    left = np.zeros((height, width))
    for k in range(len(layers)):
        m = top == k
        disp[m] = layer_disp(k, xs[m], ys[m])
        left[m] = textures[k](xs[m], ys[m])

    # right: for right pixel xr, layer k is seen at left coordinate xl with xl - d_k(xl) = xr
    right = np.full((height, width), np.nan)
    for k in range(len(layers) - 1, -1, -1):
        L = layers[k]
        if L["kind"] == "plane":
            xl = (xs + L["a"] + L["c"] * ys) / (1.0 - L["b"])
            cover = np.ones_like(xs, dtype=bool)
        else:
            xl = xs + L["d"]
            cover = _shape_mask(L, xl, ys)
        todo = cover & np.isnan(right)
        right[todo] = textures[k](xl[todo], ys[todo])

    # non-occlusion: the left pixel's match is inside the right image and no closer layer covers it
    xr = xs - disp
    nonocc = xr >= 0
    for k in range(1, len(layers)):
        closer = obj_disps[k - 1] > disp + 1e-9
        hidden = closer & _shape_mask(layers[k], xr + layers[k]["d"], ys)
        nonocc &= ~hidden

    defined = np.ones((height, width), dtype=bool)
    if undefined_blob:
        L = {"kind": "ellipse", "cx": rng.uniform(0, width), "cy": rng.uniform(0, height),
             "rx": 0.06 * width, "ry": 0.06 * height}
        defined &= ~_shape_mask(L, xs, ys)
    nonocc &= defined

    # radiometry: independent gain/offset and noise per image, 8-bit quantisation
    def to_u8(img: np.ndarray) -> np.ndarray:
        g, o = rng.uniform(0.9, 1.1), rng.uniform(-0.03, 0.03)
        img = g * img + o + rng.normal(0, 0.01, img.shape)
        return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)

    return {
        "left": to_u8(left),
        "right": to_u8(right),
        "disp_left": np.where(defined, disp, np.nan).astype(np.float32),
        "mask_defined": defined,
        "mask_nonocc": nonocc,
        "scene": {
            "generator": "deepsim_train.data.fake",
            "seed": seed,
            "width": width,
            "height": height,
            "disp_range": [dmin, dmax],
            "convention": "left (x, y) matches right (x - d, y)",
            "layers": [{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in L.items()} for L in layers],
        },
    }


def make_fake_synth(
    root: str | Path,
    *,
    num_pairs: int = 4,
    height: int = 96,
    width: int = 128,
    seed: int = 0,
    disp_range: tuple[float, float] = (2.0, 24.0),
    image_ext: str = ".png",
) -> Path:
    """Write a dataset in the ``deepsim synth`` layout under ``root``; returns ``root``."""
    import tifffile
    from PIL import Image

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(num_pairs):
        pid = f"{i:06d}"
        d = root / pid
        d.mkdir(exist_ok=True)
        s = render_scene(height, width, seed=seed * 100_003 + i, disp_range=disp_range)
        for name in ("left", "right"):
            if image_ext == ".png":
                Image.fromarray(s[name], mode="L").save(d / f"{name}.png")
            else:
                tifffile.imwrite(d / f"{name}{image_ext}", s[name])
        tifffile.imwrite(d / "disp_left.tif", s["disp_left"])
        for name in ("mask_defined", "mask_nonocc"):
            Image.fromarray((s[name] * 255).astype(np.uint8), mode="L").save(d / f"{name}.png")
        (d / "scene.json").write_text(json.dumps(s["scene"], indent=1))
        pairs.append({"id": pid, "dir": pid})
    (root / "manifest.json").write_text(
        json.dumps({"format": "deepsim-synth", "version": 1, "pairs": pairs}, indent=1)
    )
    return root
