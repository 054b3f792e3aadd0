"""The Joint Probability (JP) and companion separability measures of a similarity.

Given, for every evaluated pixel, ``s+`` (similarity at the true disparity) and ``s-``
(similarity at the true disparity +- u), all in ``[0, 1]``:

* **JP** — build the 200 x 200 histogram of the points ``(s-, s+)`` on ``[0, 1]^2`` (values
  outside are clipped; 1.0 falls in the last bin) and return the share of points in bins on or
  above the diagonal, i.e. whose ``s+`` bin index >= ``s-`` bin index (about ``P(s+ >= s-)``).
  ``s+ == 1, s- == 0`` everywhere gives 100 %; identical distributions give 50 % plus the mass
  on the diagonal bins.
* **overlap** — ``sum_b min(p+(b), p-(b))`` of the two normalised 200-bin histograms (0 = fully
  separated, 1 = identical; lower is better).
* **ROC AUC** — ``P(s+ > s-) + P(s+ = s-) / 2`` over all (positive, negative) pairs, computed
  exactly from tie-averaged ranks (Mann-Whitney U), no sampling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

JP_BINS = 200


def _check(s_pos: np.ndarray, s_neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s_pos = np.asarray(s_pos, dtype=np.float64).ravel()
    s_neg = np.asarray(s_neg, dtype=np.float64).ravel()
    if s_pos.shape != s_neg.shape:
        raise ValueError(f"s+ and s- must pair up: {s_pos.shape} vs {s_neg.shape}")
    if s_pos.size == 0:
        raise ValueError("no samples")
    if not (np.isfinite(s_pos).all() and np.isfinite(s_neg).all()):
        raise ValueError("similarities must be finite")
    return s_pos, s_neg


def joint_histogram(s_pos: np.ndarray, s_neg: np.ndarray, bins: int = JP_BINS) -> np.ndarray:
    """``H[i, j]`` = number of points with ``s-`` in bin ``i`` and ``s+`` in bin ``j``."""
    s_pos, s_neg = _check(s_pos, s_neg)
    h, _, _ = np.histogram2d(np.clip(s_neg, 0, 1), np.clip(s_pos, 0, 1), bins=bins, range=[[0, 1], [0, 1]])
    return h


def joint_probability(s_pos: np.ndarray, s_neg: np.ndarray, bins: int = JP_BINS) -> float:
    """JP in ``[0, 1]`` (multiply by 100 for %): share of ``(s-, s+)`` on/above the diagonal."""
    h = joint_histogram(s_pos, s_neg, bins)
    return float(np.triu(h).sum() / h.sum())


def histogram_overlap(s_pos: np.ndarray, s_neg: np.ndarray, bins: int = JP_BINS) -> float:
    s_pos, s_neg = _check(s_pos, s_neg)
    hp, _ = np.histogram(np.clip(s_pos, 0, 1), bins=bins, range=(0, 1))
    hn, _ = np.histogram(np.clip(s_neg, 0, 1), bins=bins, range=(0, 1))
    return float(np.minimum(hp / hp.sum(), hn / hn.sum()).sum())


def _rankdata(a: np.ndarray) -> np.ndarray:
    """1-based ranks, ties get their average rank."""
    order = np.argsort(a, kind="mergesort")
    s = a[order]
    ranks = np.empty(a.size, dtype=np.float64)
    # boundaries of runs of equal values
    change = np.concatenate([[True], s[1:] != s[:-1], [True]])
    idx = np.flatnonzero(change)
    for start, stop in zip(idx[:-1], idx[1:]):
        ranks[order[start:stop]] = 0.5 * (start + 1 + stop)
    return ranks


def roc_auc(s_pos: np.ndarray, s_neg: np.ndarray) -> float:
    """Exact ROC AUC of positives vs negatives (Mann-Whitney), ties count one half."""
    s_pos, s_neg = _check(s_pos, s_neg)
    n_p, n_n = s_pos.size, s_neg.size
    r = _rankdata(np.concatenate([s_pos, s_neg]))
    u = r[:n_p].sum() - n_p * (n_p + 1) / 2.0
    return float(u / (n_p * n_n))


def summarize(s_pos: np.ndarray, s_neg: np.ndarray) -> dict[str, float]:
    """JP (%), overlap, ROC AUC, and the means of s+ and s-."""
    s_pos, s_neg = _check(s_pos, s_neg)
    return {
        "jp_percent": 100.0 * joint_probability(s_pos, s_neg),
        "overlap": histogram_overlap(s_pos, s_neg),
        "roc_auc": roc_auc(s_pos, s_neg),
        "mean_s_pos": float(s_pos.mean()),
        "mean_s_neg": float(s_neg.mean()),
        "num_samples": int(s_pos.size),
    }


def plot_joint_histogram(s_pos: np.ndarray, s_neg: np.ndarray, path: str | Path, *, title: str = "") -> Path:
    """PNG of the 200x200 joint histogram (log counts) with the diagonal; JP in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = joint_histogram(s_pos, s_neg)
    jp = 100.0 * np.triu(h).sum() / h.sum()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.imshow(np.log1p(h.T), origin="lower", extent=(0, 1, 0, 1), cmap="viridis", aspect="equal")
    ax.plot([0, 1], [0, 1], "w--", lw=1)
    ax.set_xlabel("s- (similarity at a wrong disparity)")
    ax.set_ylabel("s+ (similarity at the true disparity)")
    ax.set_title(f"{title} JP = {jp:.1f} %".strip())
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_densities(s_pos: np.ndarray, s_neg: np.ndarray, path: str | Path, *, title: str = "") -> Path:
    """PNG of the s+ and s- densities (200 bins on [0, 1]); overlap in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ov = histogram_overlap(s_pos, s_neg)
    edges = np.linspace(0, 1, JP_BINS + 1)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.hist(np.clip(s_pos, 0, 1), bins=edges, density=True, alpha=0.6, label="s+ (true disparity)", color="tab:green")
    ax.hist(np.clip(s_neg, 0, 1), bins=edges, density=True, alpha=0.6, label="s- (true disparity ± u)", color="tab:red")
    ax.set_xlabel("similarity")
    ax.set_ylabel("density")
    ax.set_title(f"{title} overlap = {ov:.3f}".strip())
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
