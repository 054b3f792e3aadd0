"""Unlabeled pair folders: which files are the left and right images, and the search range.

Accepted layouts (first match wins): ``left.EXT`` / ``right.EXT`` (the shared aerial-unlabeled
layout), ``im0.EXT`` / ``im1.EXT``, ``Epip1.EXT`` / ``Epip2.EXT``, with EXT one of png, tif, tiff,
jpg, jpeg, pgm. Folders holding ground truth (``disp0.pfm``, ``gt.npy``, ``disp_left.tif``) are
refused: adaptation is for unlabeled pairs, and the labelled real pairs of this project are
validation data that must never be trained on.

Default search range: ``[-W/16, W/8]`` for an image ``W`` pixels wide (``[-64, 128]`` at 1024 px).
It covers the shared aerial pairs (95th percentiles of 38-81 px, see their README) with margin;
give ``--disp-range`` when your pairs have larger disparities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NAME_PAIRS = (("left", "right"), ("im0", "im1"), ("Epip1", "Epip2"))
EXTS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".pgm")
GT_FILES = ("disp0.pfm", "gt.npy", "disp_left.tif", "disp_noc.png", "disp_occ.png")


@dataclass
class PairFiles:
    name: str
    folder: Path
    left: Path
    right: Path
    width: int
    height: int
    disp_min: int
    disp_max: int


def _find(folder: Path, stem: str) -> Path | None:
    for ext in EXTS:
        for cand in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if cand.is_file():
                return cand
    return None


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` without decoding the pixels."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(str(path)) as t:
            shape = t.pages[0].shape
        return int(shape[1]), int(shape[0])
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def default_range(width: int) -> tuple[int, int]:
    """``(-W/16, W/8)`` rounded: the default search range of an image ``width`` pixels wide."""
    return -max(1, round(width / 16)), max(1, round(width / 8))


def parse_range(text: str) -> tuple[int, int]:
    """``"MIN:MAX"`` -> ``(MIN, MAX)`` with MIN < MAX."""
    try:
        lo, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"--disp-range expects MIN:MAX in pixels (e.g. -64:128), got {text!r}") from None
    if lo >= hi:
        raise ValueError(f"--disp-range: MIN must be < MAX, got {text!r}")
    return lo, hi


def find_pair(folder: str | Path, *, disp_range: tuple[int, int] | None = None) -> PairFiles:
    """The pair in ``folder`` (module docstring); raises ``ValueError`` naming the fix."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--pairs: {folder} is not a folder; give folders that each hold a left and a right image")
    gt = [g for g in GT_FILES if (folder / g).exists()]
    if gt:
        raise ValueError(
            f"--pairs: {folder} holds ground truth ({', '.join(gt)}): labelled pairs are validation data here and "
            "must not be adapted on; give unlabeled pairs"
        )
    for ls, rs in NAME_PAIRS:
        left, right = _find(folder, ls), _find(folder, rs)
        if left and right:
            break
    else:
        found = sorted(p.name for p in folder.iterdir())[:12]
        names = ", ".join(f"{a}.EXT/{b}.EXT" for a, b in NAME_PAIRS)
        raise ValueError(f"--pairs: {folder} has no image pair named {names} (EXT in {', '.join(e[1:] for e in EXTS)}); found: {found}")
    wl, hl = image_size(left)
    wr, hr = image_size(right)
    if (wl, hl) != (wr, hr):
        raise ValueError(f"--pairs: {folder}: left is {wl}x{hl} but right is {wr}x{hr}; an epipolar pair has equal sizes")
    lo, hi = disp_range if disp_range is not None else default_range(wl)
    return PairFiles(folder.name, folder, left, right, wl, hl, lo, hi)


def find_pairs(folders: list[str | Path], *, disp_range: tuple[int, int] | None = None, log=print) -> list[PairFiles]:
    """Every pair folder, with unique names (``name``, ``name-2``, ... on collisions). Plain files
    among the arguments (a README caught by a shell glob such as ``DIR/*``) are skipped with a
    note; missing paths are errors."""
    files = [f for f in folders if Path(f).is_file()]
    for f in files:
        log(f"--pairs: skipping {f} (a file, not a pair folder)")
    folders = [f for f in folders if not Path(f).is_file()]
    if not folders:
        raise ValueError("--pairs: give at least one pair folder")
    out, seen = [], {}
    for f in folders:
        p = find_pair(f, disp_range=disp_range)
        n = seen.get(p.name, 0)
        seen[p.name] = n + 1
        if n:
            p.name = f"{p.name}-{n + 1}"
        out.append(p)
    return out
