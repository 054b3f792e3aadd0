"""Reading stereo pairs with ground truth, in the three layouts this project meets.

Every reader returns a :class:`StereoPair` in the project convention: the left pixel ``(x, y)``
matches the right pixel ``(x - d, y)``; ``disp`` is float32 with NaN where undefined; images are
float32 in ``[0, 1]`` by :func:`deepsim_train.imageio.to_unit`.

Layouts
-------
* ``synth`` — written by the Rust ``deepsim synth`` command (and :mod:`.fake` for tests)::

      DATASET/manifest.json   {"format": "deepsim-synth", "version": 1,
                               "pairs": [{"id": "000000", "dir": "000000"}, ...]}
      DATASET/000000/left.png, right.png            (8-bit grey; 16-bit PNG or .tif accepted)
                    disp_left.tif                   (float32, NaN = undefined)
                    mask_defined.png, mask_nonocc.png   (u8, 0/255)
                    scene.json
      (optional) disp_right.tif — enables the left/right-swapping horizontal flip.

* ``middlebury`` — ``im0.png``, ``im1.png``, ``disp0.pfm`` (``inf`` = unknown), optional
  ``mask0nocc.png`` (255 = non-occluded). Colour is converted to grey (RGB2GRAY weights).
  Without the mask, non-occlusion is derived from the GT (:func:`derive_nonocc`).
* ``motorcycle`` — the shared evaluation pair: ``left.png``, ``right.png``, ``gt.npy``
  (NaN = unknown), ``nonocc.npy`` (bool). **Evaluation only**: training refuses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from ..imageio import find_file, read_image, read_pfm, to_unit

FORMATS = ("synth", "middlebury", "motorcycle")
EVAL_ONLY_FORMATS = ("motorcycle",)


@dataclass
class StereoPair:
    left: np.ndarray  # float32 [H, W] in [0, 1]
    right: np.ndarray  # float32 [H, W] in [0, 1]
    disp: np.ndarray  # float32 [H, W], NaN = undefined; left (x, y) <-> right (x - d, y)
    defined: np.ndarray  # bool [H, W]
    nonocc: np.ndarray  # bool [H, W], subset of defined
    name: str = ""
    disp_right: np.ndarray | None = None  # float32, right (x, y) <-> left (x + d, y)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        shapes = {k: getattr(self, k).shape for k in ("left", "right", "disp", "defined", "nonocc")}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"pair {self.name!r}: arrays differ in shape: {shapes}")
        self.defined = self.defined & np.isfinite(self.disp)
        self.nonocc = self.nonocc & self.defined

    @property
    def shape(self) -> tuple[int, int]:
        return self.left.shape  # type: ignore[return-value]


def _read_mask(folder: Path, stem: str) -> np.ndarray | None:
    try:
        p = find_file(folder, stem)
    except FileNotFoundError:
        return None
    m = read_image(p)
    if m.ndim == 3:
        m = m[..., 0]
    return m > 0


def derive_nonocc(disp: np.ndarray, *, tol_px: float = 1.0) -> np.ndarray:
    """Non-occlusion from a left disparity map alone (forward warping with a z-buffer rule).

    A defined left pixel ``x`` (target ``t = x - d``) is occluded when ``t < 0`` or some pixel
    ``x' > x`` of the same row lands at ``t' = x' - d' <= t - tol_px`` in the right image (such a
    pixel necessarily has a larger disparity, i.e. is in front).
    """
    h, w = disp.shape
    xs = np.arange(w, dtype=np.float64)[None, :]
    t = xs - disp.astype(np.float64)
    t_ok = np.where(np.isfinite(t), t, np.inf)
    # suffix minimum over x' > x: shift by one column, then reverse cumulative minimum.
    shifted = np.concatenate([t_ok[:, 1:], np.full((h, 1), np.inf)], axis=1)
    suffix_min = np.minimum.accumulate(shifted[:, ::-1], axis=1)[:, ::-1]
    return np.isfinite(t) & (t >= 0) & ~(suffix_min <= t - tol_px)


def read_synth_pair(folder: str | Path, *, name: str | None = None) -> StereoPair:
    folder = Path(folder)
    left_raw = read_image(find_file(folder, "left"))
    right_raw = read_image(find_file(folder, "right"))
    disp = read_image(find_file(folder, "disp_left", (".tif", ".tiff", ".pfm", ".npy"))).astype(np.float32)
    if disp.ndim != 2:
        raise ValueError(f"{folder}/disp_left: expected a 2-D float map, got shape {disp.shape}")
    defined = _read_mask(folder, "mask_defined")
    if defined is None:
        defined = np.isfinite(disp)
    nonocc = _read_mask(folder, "mask_nonocc")
    if nonocc is None:
        nonocc = derive_nonocc(disp)
    disp_right = None
    for ext in (".tif", ".tiff"):
        p = folder / f"disp_right{ext}"
        if p.exists():
            disp_right = read_image(p).astype(np.float32)
    meta = {}
    if (folder / "scene.json").exists():
        meta = json.loads((folder / "scene.json").read_text())
    return StereoPair(
        left=to_unit(left_raw),
        right=to_unit(right_raw),
        disp=np.where(defined, disp, np.nan).astype(np.float32),
        defined=defined,
        nonocc=nonocc,
        name=name or folder.name,
        disp_right=disp_right,
        meta=meta,
    )


def synth_pair_dirs(root: str | Path) -> list[Path]:
    """The pair folders listed by ``root/manifest.json`` (checked: format and version)."""
    root = Path(root)
    mpath = root / "manifest.json"
    if not mpath.exists():
        raise FileNotFoundError(f"{root}: no manifest.json (expected a deepsim-synth dataset)")
    manifest = json.loads(mpath.read_text())
    if manifest.get("format") != "deepsim-synth":
        raise ValueError(f"{mpath}: format is {manifest.get('format')!r}, expected 'deepsim-synth'")
    if manifest.get("version") != 1:
        raise ValueError(f"{mpath}: version {manifest.get('version')!r} unsupported; this reader supports 1")
    pairs = manifest.get("pairs") or []
    if not pairs:
        raise ValueError(f"{mpath}: no pairs")
    return [root / str(p.get("dir", p.get("id"))) for p in pairs]


def read_middlebury_pair(folder: str | Path) -> StereoPair:
    folder = Path(folder)
    left = read_image(find_file(folder, "im0"))
    right = read_image(find_file(folder, "im1"))
    disp = read_pfm(folder / "disp0.pfm")
    disp = np.where(np.isfinite(disp) & (disp > 0), disp, np.nan).astype(np.float32)
    defined = np.isfinite(disp)
    mask = folder / "mask0nocc.png"
    if mask.exists():
        m = read_image(mask)
        nonocc = (m[..., 0] if m.ndim == 3 else m) == 255
    else:
        nonocc = derive_nonocc(disp)
    return StereoPair(to_unit(left), to_unit(right), disp, defined, nonocc, name=folder.name)


def read_motorcycle(folder: str | Path) -> StereoPair:
    folder = Path(folder)
    disp = np.load(folder / "gt.npy").astype(np.float32)
    disp = np.where(np.isfinite(disp), disp, np.nan).astype(np.float32)
    nonocc = np.load(folder / "nonocc.npy").astype(bool)
    left = read_image(find_file(folder, "left"))
    right = read_image(find_file(folder, "right"))
    return StereoPair(to_unit(left), to_unit(right), disp, np.isfinite(disp), nonocc, name=folder.name)


def detect_format(path: str | Path) -> str:
    p = Path(path)
    if (p / "manifest.json").exists():
        return "synth"
    if (p / "gt.npy").exists():
        return "motorcycle"
    if (p / "disp0.pfm").exists() or any(q.is_dir() and (q / "disp0.pfm").exists() for q in p.iterdir()):
        return "middlebury"
    if (p / "disp_left.tif").exists():
        return "synth"
    raise ValueError(f"{p}: cannot tell the layout; give format explicitly (one of {', '.join(FORMATS)})")


def pair_loaders(path: str | Path, *, format: str = "auto", purpose: str = "eval") -> list[Callable[[], StereoPair]]:
    """One loader per pair of a dataset, reading the pair only when called (a training set of
    hundreds of pairs does not fit in memory). ``purpose="train"`` refuses evaluation-only formats."""
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise ValueError(f"unknown dataset format {fmt!r}; valid choices: auto, {', '.join(FORMATS)}")
    if purpose == "train" and fmt in EVAL_ONLY_FORMATS:
        raise ValueError(f"{path}: format {fmt!r} is evaluation-only and must never be used for training")
    if fmt == "synth":
        if (path / "manifest.json").exists():
            return [partial(read_synth_pair, d) for d in synth_pair_dirs(path)]
        return [partial(read_synth_pair, path)]
    if fmt == "middlebury":
        if (path / "disp0.pfm").exists():
            return [partial(read_middlebury_pair, path)]
        return [partial(read_middlebury_pair, q) for q in sorted(path.iterdir()) if (q / "disp0.pfm").exists()]
    return [partial(read_motorcycle, path)]


def load_pairs(path: str | Path, *, format: str = "auto", purpose: str = "eval") -> list[StereoPair]:
    """Load every pair of a dataset. ``purpose="train"`` refuses evaluation-only formats."""
    return [load() for load in pair_loaders(path, format=format, purpose=purpose)]
