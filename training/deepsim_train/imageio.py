"""Image reading and the one intensity rule shared with the Rust engine.

The rule (:func:`to_unit`), which the engine implements identically:

* ``uint8``: ``x / 255``.
* anything else (``uint16``, ``int*``, ``float*``): a robust stretch. ``lo`` and ``hi`` are the
  2nd and 98th percentiles of the *valid* pixels (finite, and inside the optional mask), computed
  with linear interpolation between order statistics (numpy's default: rank ``p/100 * (n-1)``
  of the sorted values). The output is ``clip((x - lo) / (hi - lo), 0, 1)``; invalid pixels
  (NaN/inf or outside the mask) become 0. If ``hi <= lo`` (flat image) or there is no valid pixel,
  the output is all 0.
* Colour images are converted to grey first with ``0.299 R + 0.587 G + 0.114 B`` (OpenCV's
  ``RGB2GRAY``), rounded back to the input dtype for integer inputs.

The mean/std normalisation is *not* part of this rule: it lives inside each model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STRETCH_LOW_PERCENTILE = 2.0
STRETCH_HIGH_PERCENTILE = 98.0


def to_grey(img: np.ndarray) -> np.ndarray:
    """Convert ``H x W x {3,4}`` to ``H x W`` (OpenCV RGB2GRAY weights); pass 2-D through."""
    if img.ndim == 2:
        return img
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W or H x W x 3/4 image, got shape {img.shape}")
    rgb = img[..., :3].astype(np.float64)
    g = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        return np.clip(np.rint(g), info.min, info.max).astype(img.dtype)
    return g.astype(img.dtype)


def to_unit(img: np.ndarray, *, valid: np.ndarray | None = None) -> np.ndarray:
    """Map a grey image to float32 in ``[0, 1]`` with the shared rule (module docstring)."""
    img = to_grey(np.asarray(img))
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255.0)
    x = img.astype(np.float64)
    ok = np.isfinite(x)
    if valid is not None:
        if valid.shape != x.shape:
            raise ValueError(f"mask shape {valid.shape} != image shape {x.shape}")
        ok &= valid.astype(bool)
    out = np.zeros(x.shape, dtype=np.float32)
    if not ok.any():
        return out
    lo, hi = np.percentile(x[ok], [STRETCH_LOW_PERCENTILE, STRETCH_HIGH_PERCENTILE])
    if not hi > lo:
        return out
    y = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    out[ok] = y[ok].astype(np.float32)
    return out


def read_image(path: str | Path) -> np.ndarray:
    """Read a PNG/TIFF/other image as a numpy array in its stored dtype (no conversion)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        arr = tifffile.imread(str(path))
    elif suffix == ".npy":
        arr = np.load(path)
    else:
        from PIL import Image

        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L"):
                arr = np.array(im, dtype=np.uint16)
            elif im.mode == "I":
                arr = np.array(im)
                if arr.min() >= 0 and arr.max() <= 65535:
                    arr = arr.astype(np.uint16)
            elif im.mode in ("P", "LA", "PA", "1"):
                arr = np.array(im.convert("RGBA" if "A" in im.mode else "L"))
            else:
                arr = np.array(im)
    arr = np.asarray(arr)
    # Multi-page / channel-first TIFFs with a singleton leading axis.
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    return arr


def find_file(folder: Path, stem: str, exts=(".png", ".tif", ".tiff", ".pgm", ".jpg")) -> Path:
    """Return ``folder/stem.EXT`` for the first extension that exists (tolerant of .tif/.png)."""
    for ext in exts:
        p = folder / f"{stem}{ext}"
        if p.exists():
            return p
    raise FileNotFoundError(
        f"no {stem}{{{','.join(exts)}}} in {folder} (found: {sorted(p.name for p in folder.iterdir())})"
    )


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file (``Pf`` grey or ``PF`` colour) into float32, top row first.

    PFM stores rows bottom-to-top; a negative scale means little-endian. Middlebury uses ``inf``
    for unknown disparities; they are returned as they are (callers turn them into NaN).
    """
    with open(path, "rb") as f:
        header = f.readline().strip()
        if header not in (b"Pf", b"PF"):
            raise ValueError(f"{path}: not a PFM file (header {header!r}, expected b'Pf' or b'PF')")
        channels = 1 if header == b"Pf" else 3
        dims = f.readline()
        while dims.startswith(b"#"):
            dims = f.readline()
        w, h = (int(v) for v in dims.split())
        scale = float(f.readline().strip())
        endian = "<" if scale < 0 else ">"
        data = np.frombuffer(f.read(), dtype=f"{endian}f4")
    n = w * h * channels
    if data.size < n:
        raise ValueError(f"{path}: truncated PFM ({data.size} floats, expected {n})")
    arr = data[:n].reshape(h, w, channels) if channels == 3 else data[:n].reshape(h, w)
    return np.ascontiguousarray(np.flipud(arr)).astype(np.float32)


def write_pfm(path: str | Path, arr: np.ndarray) -> None:
    """Write a grey (H x W) or colour (H x W x 3) float32 PFM, little-endian."""
    arr = np.asarray(arr, dtype=np.float32)
    colour = arr.ndim == 3
    with open(path, "wb") as f:
        f.write(b"PF\n" if colour else b"Pf\n")
        f.write(f"{arr.shape[1]} {arr.shape[0]}\n".encode())
        f.write(b"-1.0\n")
        f.write(np.ascontiguousarray(np.flipud(arr)).astype("<f4").tobytes())
