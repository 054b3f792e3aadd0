"""Sampling picks the right pixels: a right image that is the left shifted by a known d."""

from __future__ import annotations

import pytest
import torch

from deepsim_train.losses import LossConfig, bce_pos_neg, hinge_cosine, joint_loss
from deepsim_train.models import build_mlp
from deepsim_train.sampling import (
    MiningSchedule,
    inside,
    mine_negatives,
    negative_columns,
    pad_to_multiple,
    positive_columns,
    sample_columns,
)


def _shifted_pair(d: float, h: int = 6, w: int = 40, c: int = 3):
    """Right(x) = Left(x + d) exactly for a linear-in-x "image", so sub-pixel d is exact too."""
    xs = torch.arange(w, dtype=torch.float32)
    ys = torch.arange(h, dtype=torch.float32)[:, None]
    left = torch.stack([xs + 100 * ys, 2 * xs - ys, xs * 0 + ys]).unsqueeze(0)[:, :c]  # [1,C,H,W]
    right = torch.stack([xs + d + 100 * ys, 2 * (xs + d) - ys, xs * 0 + ys]).unsqueeze(0)[:, :c]
    return left, right


@pytest.mark.parametrize("d", [0.0, 3.0, 5.25, 7.5])
def test_positive_sampling_recovers_left(d):
    left, right = _shifted_pair(d)
    disp = torch.full((1, 6, 40), d)
    xr = positive_columns(disp)
    got = sample_columns(right, xr)
    ok = inside(xr, 0.0, 40.0)
    assert ok[0, :, :int(d)].logical_not().all() or d == 0
    assert torch.allclose(got[..., ok[0]], left[..., ok[0]], atol=1e-4)


def test_offset_for_wider_right_map():
    # right map starts 8 columns further left: left x matches right column x + 8 - d
    torch.manual_seed(0)
    img = torch.rand(1, 1, 4, 60)
    left = img[..., 20:40]
    right = img[..., 12:40]  # starts 8 earlier
    d = 3.0
    # left[x] == img[20 + x]; true match in img coordinates 20 + x - d; in right: 20 + x - d - 12
    disp = torch.full((1, 4, 20), d)
    xr = positive_columns(disp, torch.tensor([8.0]))
    got = sample_columns(right, xr)
    expect = img[..., 17:37]
    assert torch.allclose(got, expect, atol=1e-6)


def test_integer_shift_on_random_texture():
    torch.manual_seed(0)
    img = torch.rand(2, 5, 8, 50)
    d = 4
    left = img
    right = torch.roll(left, shifts=-d, dims=-1)  # right[x'] = left[x' + d]: left x <-> right x - d
    disp = torch.full((2, 8, left.shape[-1]), float(d))
    xr = positive_columns(disp)
    got = sample_columns(right, xr)
    m = inside(xr, 0.0, float(left.shape[-1]))
    assert torch.allclose(got.permute(0, 2, 3, 1)[m], left.permute(0, 2, 3, 1)[m], atol=1e-5)
    assert m.sum() == 2 * 8 * (50 - d)


def test_negative_columns_range_and_sides():
    g = torch.Generator().manual_seed(0)
    x_pos = torch.full((1, 10, 200), 100.0)
    x_neg = negative_columns(x_pos, 0.0, 1000.0, 2.0, 6.0, generator=g)
    dist = (x_neg - x_pos).abs()
    assert (dist >= 2.0).all() and (dist <= 6.0).all()
    assert (x_neg > x_pos).any() and (x_neg < x_pos).any()
    # near the left border, the other side is used
    x_pos = torch.full((1, 1, 500), 1.0)
    x_neg = negative_columns(x_pos, 0.0, 1000.0, 2.0, 6.0, generator=g)
    assert (x_neg >= 3.0).all()


def test_mining_picks_the_most_similar_candidate():
    g = torch.Generator().manual_seed(0)
    w = 64
    xs = torch.arange(w, dtype=torch.float32)
    # 1-channel "features" whose score against the left is highest at column 40
    fr = (-(xs - 40.0).abs()).view(1, 1, 1, w)
    fl = torch.zeros(1, 1, 1, 1)
    x_pos = torch.full((1, 1, 1), 36.0)

    def score(a, b):
        return b[:, 0]

    picks = [mine_negatives(score, fl, fr, x_pos, 0.0, float(w), k=k, u_min=1.0, u_max=8.0, generator=g).item() for k in (1, 32)]
    assert abs(picks[1] - 40.0) < 0.6  # 32 candidates: the best is close to the peak
    hard = [abs(mine_negatives(score, fl, fr, x_pos, 0.0, float(w), k=16, u_min=1.0, u_max=8.0, generator=g).item() - 40) for _ in range(20)]
    rand = [abs(mine_negatives(score, fl, fr, x_pos, 0.0, float(w), k=1, u_min=1.0, u_max=8.0, generator=g).item() - 40) for _ in range(20)]
    assert sum(hard) < sum(rand)


def test_mining_schedule_grows():
    s = MiningSchedule(u_min=1, u_max_start=4, u_max_end=20, k_start=1, k_end=5, ramp_epochs=4)
    assert s.at(0) == (1, 1, 4)
    assert s.at(2) == (3, 1, 12)
    assert s.at(10) == (5, 1, 20)
    with pytest.raises(ValueError, match="u_min"):
        MiningSchedule(u_min=5, u_max_start=4)


def test_pad_to_multiple():
    x = torch.rand(1, 1, 13, 30)
    y, hw = pad_to_multiple(x, 8)
    assert y.shape == (1, 1, 16, 32) and hw == (13, 30)
    assert torch.equal(y[..., :13, :30], x)


def test_losses_masks_and_values():
    lp = torch.tensor([[[10.0, 10.0, -10.0]]])
    ln = torch.tensor([[[-10.0, 5.0, -10.0]]])
    nonocc = torch.tensor([[[True, True, False]]])
    ok = torch.ones_like(nonocc)
    # pixel 1's negative is wrong (5 -> target 0) but masked out => near-zero loss
    b = bce_pos_neg(lp, ln, nonocc=nonocc, valid_pos=ok, valid_neg=torch.tensor([[[True, False, True]]]))
    assert b < 1e-3
    assert bce_pos_neg(lp, ln, nonocc=nonocc, valid_pos=ok, valid_neg=ok) > 0.5
    cp, cn = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.4])
    assert hinge_cosine(cp, cn, torch.tensor([True, False])) == 0
    assert torch.isclose(hinge_cosine(cp, cn, torch.tensor([False, True])), torch.tensor(0.2))


def test_joint_loss_gradients_flow_to_features_and_mlp():
    torch.manual_seed(0)
    fl = torch.randn(2, 8, 4, 6, requires_grad=True)
    fp = torch.randn(2, 8, 4, 6, requires_grad=True)
    fn = torch.randn(2, 8, 4, 6, requires_grad=True)
    mlp = build_mlp(8, hidden=16)
    m = torch.ones(2, 4, 6, dtype=torch.bool)
    out = joint_loss(LossConfig(bce_weight=1.0, hinge_weight=0.5), feat_left=fl, feat_pos=fp, feat_neg=fn,
                     defined=m, nonocc=m, in_pos=m, in_neg=m, mlp=mlp)
    out["loss"].backward()
    assert fl.grad is not None and fn.grad is not None
    assert all(p.grad is not None for p in mlp.parameters())
    assert set(out) >= {"loss", "bce", "hinge", "cos_rank_acc", "mlp_rank_acc"}
    with pytest.raises(ValueError, match="weights"):
        LossConfig(bce_weight=0, hinge_weight=0)
