"""Pseudo-labels from the engine: confident, left-right consistent matches of each real pair.

Sources (``--pseudo``):

* ``census``: census 7x7 + SGM with the engine's left-right check (1 px): the classical matcher,
  independent of the model being adapted, so its labels bring information the model lacks;
* ``model``: the bundle itself (cosine head) + SGM with the left-right check: self-training;
* ``agree``: census pixels where the bundle's disparity is within ``--agree-px`` (1 px): fewer,
  cleaner labels.

The engine writes ``disparity.tif`` (NaN = no value: failed the left-right check, small region,
outside) and ``confidence.tif`` (``1 - best / second-best`` aggregated cost, 0..1). A pixel is
kept when its disparity is finite and its confidence is at least ``--min-confidence``. The
label is the census (sub-pixel) disparity, the model's for ``model``. Threshold and coverage are
reported per pair (``pseudo.json``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .pairs import PairFiles

SOURCES = ("census", "model", "agree")


def find_engine(explicit: str | None = None) -> Path:
    """The ``deepsim`` binary: ``--engine``, ``$DEEPSIM_BIN``, ``deepsim`` on PATH, or the
    repository's ``target/release/deepsim``; raises ``FileNotFoundError`` naming the fix."""
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return Path(explicit)
        raise FileNotFoundError(f"--engine {explicit}: no executable deepsim engine binary there")
    cands = [os.environ.get("DEEPSIM_BIN"), shutil.which("deepsim")]
    repo = Path(__file__).resolve().parents[3]
    cands.append(str(repo / "target" / "release" / "deepsim"))
    for c in cands:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    raise FileNotFoundError(
        "the deepsim engine binary was not found: build it (`cargo build --release`) or pass --engine PATH "
        "(or set DEEPSIM_BIN)"
    )


def run_match(engine: Path, pair: PairFiles, out_dir: Path, *, model: Path | None = None, head: str = "cosine",
              threads: int = 1, extra: list[str] | None = None, log=print) -> Path:
    """Run ``deepsim match`` on ``pair`` into ``out_dir`` unless a finished result is there
    (``run.json`` + ``disparity.tif``); returns ``out_dir``. Raises ``RuntimeError`` on failure."""
    done = out_dir / "done.json"
    args = [str(engine), "--threads", str(threads), "--quiet", "match", "--left", str(pair.left), "--right", str(pair.right),
            "--out", str(out_dir), "--disp-min", str(pair.disp_min), "--disp-max", str(pair.disp_max)]
    if model is not None:
        args += ["--model", str(model), "--head", head]
    args += list(extra or [])
    if done.is_file() and json.loads(done.read_text()).get("args") == args and (out_dir / "disparity.tif").is_file():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"engine failed on {pair.folder} (rc {r.returncode}): {' '.join(args)}\n{r.stderr.strip()[-2000:]}")
    for f in ("disparity.tif", "confidence.tif"):
        if not (out_dir / f).is_file():
            raise RuntimeError(f"engine run on {pair.folder} did not write {out_dir / f}")
    secs = time.time() - t0
    done.write_text(json.dumps({"args": args, "seconds": round(secs, 1)}))
    log(f"  engine {'model ' + model.name if model else 'census'} on {pair.name}: {secs:.0f} s")
    return out_dir


def read_tif(path: Path) -> np.ndarray:
    import tifffile

    return np.asarray(tifffile.imread(str(path)), dtype=np.float32)


@dataclass
class LabelStats:
    pair: str
    source: str
    min_confidence: float
    agree_px: float | None
    disp_range: list[int]
    census_density: float | None  # share of pixels with a census value (after the LR check)
    model_density: float | None
    agreement: float | None  # share of census pixels where the model is within agree_px
    coverage: float  # share of pixels kept as pseudo-labels
    label_p5_p50_p95: list[float]


def make_labels(census: np.ndarray | None, confidence: np.ndarray | None, model: np.ndarray | None, *, source: str,
                min_confidence: float, agree_px: float = 1.0, model_confidence: np.ndarray | None = None) -> np.ndarray:
    """The pseudo-label map (NaN = no label) from the engine's maps (module docstring)."""
    if source not in SOURCES:
        raise ValueError(f"--pseudo {source!r}; valid choices: {', '.join(SOURCES)}")
    if source in ("census", "agree") and (census is None or confidence is None):
        raise ValueError(f"--pseudo {source} needs the census disparity and confidence")
    if source in ("model", "agree") and model is None:
        raise ValueError(f"--pseudo {source} needs the model's disparity")
    if source == "model":
        conf = model_confidence if model_confidence is not None else np.ones_like(model)
        keep = np.isfinite(model) & (conf >= min_confidence)
        return np.where(keep, model, np.nan).astype(np.float32)
    keep = np.isfinite(census) & (confidence >= min_confidence)
    if source == "agree":
        keep &= np.isfinite(model) & (np.abs(np.nan_to_num(census) - np.nan_to_num(model)) <= agree_px)
    return np.where(keep, census, np.nan).astype(np.float32)


def pseudo_labels(engine: Path, pair: PairFiles, work: Path, bundle: Path, *, source: str, min_confidence: float,
                  agree_px: float = 1.0, threads: int = 1, log=print) -> tuple[np.ndarray, LabelStats]:
    """Run what ``source`` needs on ``pair`` (cached in ``work/pseudo/NAME``), build the labels."""
    base = work / "pseudo" / pair.name
    census = conf = model = mconf = None
    if source in ("census", "agree"):
        d = run_match(engine, pair, base / "census", threads=threads, log=log)
        census, conf = read_tif(d / "disparity.tif"), read_tif(d / "confidence.tif")
    if source in ("model", "agree"):
        d = run_match(engine, pair, base / "model", model=bundle, threads=threads, log=log)
        model, mconf = read_tif(d / "disparity.tif"), read_tif(d / "confidence.tif")
    labels = make_labels(census, conf, model, source=source, min_confidence=min_confidence, agree_px=agree_px,
                         model_confidence=mconf)
    n = labels.size
    fin = labels[np.isfinite(labels)]
    agreement = None
    if census is not None and model is not None:
        both = np.isfinite(census)
        agreement = float((np.abs(np.nan_to_num(census) - np.nan_to_num(model, nan=1e9)) <= agree_px)[both].mean()) if both.any() else 0.0
    stats = LabelStats(
        pair=pair.name,
        source=source,
        min_confidence=float(min_confidence),
        agree_px=float(agree_px) if source == "agree" else None,
        disp_range=[pair.disp_min, pair.disp_max],
        census_density=None if census is None else float(np.isfinite(census).mean()),
        model_density=None if model is None else float(np.isfinite(model).mean()),
        agreement=agreement,
        coverage=float(fin.size / n),
        label_p5_p50_p95=[round(float(v), 2) for v in np.percentile(fin, [5, 50, 95])] if fin.size else [],
    )
    return labels, stats


def stats_dict(stats: list[LabelStats]) -> list[dict]:
    return [asdict(s) for s in stats]
