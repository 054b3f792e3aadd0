"""Evaluate similarities on pairs with GT: s+ / s- samples, JP table, plots, JSON."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.pairs import StereoPair
from ..sampling import sample_columns
from .jp import plot_densities, plot_joint_histogram, summarize
from .similarity import Similarity

# u ranges of the JP protocol (pixels)
U_RANGE_MLP = (2.0, 40.0)
U_RANGE_COSINE = (2.0, 6.0)


def pair_samples(
    sim: Similarity,
    pair: StereoPair,
    *,
    u_range: tuple[float, float] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(s+, s-)`` over the non-occluded pixels of ``pair``.

    ``s+`` is the similarity at the right column ``x - d`` (sub-pixel, bilinear on the right
    embeddings); ``s-`` at ``x - (d + s u)``, ``u ~ U[u_range]``, ``s = +-1`` drawn with ``seed``;
    when that column leaves the image the other sign is used, and a pixel whose negative is out
    on both sides is dropped. ``u_range`` defaults to the protocol's range for the mode.
    """
    if u_range is None:
        u_range = U_RANGE_MLP if sim.mode == "mlp" else U_RANGE_COSINE
    h, w = pair.shape
    fl = sim.features(pair.left).float()
    fr = sim.features(pair.right).float()
    ys, xs = np.nonzero(pair.nonocc)
    d = pair.disp[ys, xs].astype(np.float64)
    x_pos = xs - d
    rng = np.random.default_rng(seed)
    u = rng.uniform(u_range[0], u_range[1], size=xs.size)
    sgn = rng.choice([-1.0, 1.0], size=xs.size)
    x_neg = x_pos - sgn * u
    out = (x_neg < 0) | (x_neg > w - 1)
    x_neg = np.where(out, x_pos + sgn * u, x_neg)
    keep = (x_pos >= 0) & (x_pos <= w - 1) & (x_neg >= 0) & (x_neg <= w - 1)
    ys, xs, x_pos, x_neg = ys[keep], xs[keep], x_pos[keep], x_neg[keep]

    def sample_at(cols: np.ndarray) -> torch.Tensor:
        grid = torch.full((h, w), -10.0, dtype=torch.float32)  # out-of-range placeholder
        grid[ys, xs] = torch.from_numpy(cols.astype(np.float32))
        f = sample_columns(fr[None], grid[None])[0]  # [C, H, W]
        return f[:, ys, xs].T.contiguous()

    left = fl[:, ys, xs].T.contiguous()
    s_pos = sim.score(left, sample_at(x_pos)).numpy()
    s_neg = sim.score(left, sample_at(x_neg)).numpy()
    return s_pos.astype(np.float64), s_neg.astype(np.float64)


def evaluate(
    sims: Sequence[Similarity],
    pairs: Sequence[StereoPair],
    *,
    out_dir: str | Path | None = None,
    seed: int = 0,
    dataset_name: str = "",
) -> dict:
    """One row per similarity (pooled over all pairs); writes ``jp.json`` and plots to ``out_dir``."""
    rows = []
    for sim in sims:
        t0 = time.perf_counter()
        sp, sn = [], []
        for i, p in enumerate(pairs):
            a, b = pair_samples(sim, p, seed=seed + i)
            sp.append(a)
            sn.append(b)
        s_pos, s_neg = np.concatenate(sp), np.concatenate(sn)
        row = {"name": sim.name, "mode": sim.mode, **summarize(s_pos, s_neg)}
        row["u_range"] = list(U_RANGE_MLP if sim.mode == "mlp" else U_RANGE_COSINE)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        if out_dir is not None:
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", sim.name).strip("_")
            row["plots"] = [
                plot_joint_histogram(s_pos, s_neg, out / f"{stem}_joint.png", title=sim.name).name,
                plot_densities(s_pos, s_neg, out / f"{stem}_densities.png", title=sim.name).name,
            ]
        rows.append(row)
    report = {"dataset": dataset_name, "pairs": [p.name for p in pairs], "seed": seed, "rows": rows}
    if out_dir is not None:
        (Path(out_dir) / "jp.json").write_text(json.dumps(report, indent=1))
    return report


def format_table(report: dict) -> str:
    lines = [f"{'similarity':<28} {'mode':<7} {'JP %':>7} {'overlap':>8} {'AUC':>7} {'n':>9}"]
    for r in report["rows"]:
        lines.append(
            f"{r['name']:<28} {r['mode']:<7} {r['jp_percent']:7.2f} {r['overlap']:8.3f} {r['roc_auc']:7.4f} {r['num_samples']:9d}"
        )
    return "\n".join(lines)
