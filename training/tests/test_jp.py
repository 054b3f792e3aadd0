from __future__ import annotations

import numpy as np
import pytest
import torch

from deepsim_train.data.pairs import StereoPair
from deepsim_train.eval import (
    TorchSimilarity,
    evaluate,
    histogram_overlap,
    joint_histogram,
    joint_probability,
    ncc_similarity,
    pair_samples,
    roc_auc,
    summarize,
)


def test_jp_perfect_and_worst():
    n = 1000
    assert joint_probability(np.ones(n), np.zeros(n)) == 1.0
    assert joint_probability(np.zeros(n), np.ones(n)) == 0.0
    h = joint_histogram(np.ones(n), np.zeros(n))
    assert h.shape == (200, 200) and h[0, 199] == n  # s- = 0 -> first bin, s+ = 1 -> last bin


def test_jp_identical_distributions_is_about_half():
    rng = np.random.default_rng(0)
    a, b = rng.random(200_000), rng.random(200_000)
    jp = joint_probability(a, b)
    # 50 % plus the diagonal bins' mass (~1/200 for uniform)
    assert 0.49 < jp < 0.515
    assert joint_probability(a, a) == 1.0  # equal values are on the diagonal


def test_jp_known_shift():
    rng = np.random.default_rng(1)
    s_neg = rng.uniform(0.0, 0.5, 100_000)
    s_pos = s_neg + 0.25  # always above
    assert joint_probability(s_pos, s_neg) == 1.0
    # P(U[0,1] >= U[0,1]) for independent draws, with half of them swapped below
    s_pos2 = np.where(np.arange(100_000) % 4 == 0, s_neg - 0.3, s_neg + 0.3)
    assert abs(joint_probability(np.clip(s_pos2, 0, 1), s_neg) - 0.75) < 0.01


def test_roc_auc_matches_brute_force_with_ties():
    rng = np.random.default_rng(2)
    p = np.round(rng.normal(0.6, 0.2, 300), 2)
    n = np.round(rng.normal(0.4, 0.2, 300), 2)
    brute = ((p[:, None] > n[None]).sum() + 0.5 * (p[:, None] == n[None]).sum()) / (p.size * n.size)
    assert abs(roc_auc(p, n) - brute) < 1e-12
    assert roc_auc(np.ones(10), np.zeros(10)) == 1.0
    assert roc_auc(np.full(10, 0.3), np.full(10, 0.3)) == 0.5


def test_overlap():
    assert histogram_overlap(np.ones(100), np.zeros(100)) == 0.0
    rng = np.random.default_rng(3)
    x = rng.random(1000)
    assert histogram_overlap(x, x) == pytest.approx(1.0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="pair up"):
        joint_probability(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        summarize(np.array([np.nan]), np.array([0.5]))


def _shifted_pair(d: int = 5, h: int = 24, w: int = 64) -> StereoPair:
    rng = np.random.default_rng(4)
    img = rng.random((h, w + d)).astype(np.float32)
    left, right = img[:, :w].copy(), img[:, d:].copy()  # right[x'] = img[x' + d] -> left x <-> right x - d
    disp = np.full((h, w), float(d), dtype=np.float32)
    nonocc = np.zeros((h, w), dtype=bool)
    nonocc[:, d:] = True
    return StereoPair(left, right, disp, np.ones((h, w), bool), nonocc, name="shifted")


def test_ncc_on_exact_shift_gives_perfect_positives(tmp_path):
    pair = _shifted_pair()
    sim = ncc_similarity(5)
    s_pos, s_neg = pair_samples(sim, pair, seed=0)
    # away from the top/bottom border rows (zero padding) the positive NCC is exactly 1
    assert np.median(s_pos) > 0.999
    assert joint_probability(s_pos, s_neg) > 0.97
    rep = evaluate([sim], [pair], out_dir=tmp_path, seed=0)
    row = rep["rows"][0]
    assert row["u_range"] == [2.0, 6.0] and row["jp_percent"] > 97
    assert (tmp_path / "jp.json").exists()
    for p in row["plots"]:
        assert (tmp_path / p).stat().st_size > 1000


def test_ncc_matches_direct_computation():
    pair = _shifted_pair()
    sim = ncc_similarity(3)
    fl, fr = sim.features(pair.left), sim.features(pair.right)
    y, x = 10, 30
    a = pair.left[y - 1 : y + 2, x - 1 : x + 2].ravel()
    b = pair.right[y - 1 : y + 2, x - 3 - 1 : x - 3 + 2].ravel()  # a wrong disparity (3 instead of 5)
    ncc = np.dot(a - a.mean(), b - b.mean()) / (np.linalg.norm(a - a.mean()) * np.linalg.norm(b - b.mean()))
    s = sim.score(fl[:, y, x][None], fr[:, y, x - 3][None]).item()
    assert s == pytest.approx((1 + ncc) / 2, abs=1e-5)


def test_mlp_mode_uses_wide_u_range():
    from deepsim_train.models import build_feature_extractor, build_mlp

    torch.manual_seed(0)
    sim = TorchSimilarity(build_feature_extractor("tiny_conv"), build_mlp(8, hidden=16), name="t")
    assert sim.mode == "mlp"
    s_pos, s_neg = pair_samples(sim, _shifted_pair(w=96), seed=0)
    assert s_pos.size == s_neg.size > 0 and ((s_pos >= 0) & (s_pos <= 1)).all()
