"""Losses: BCE-with-logits for the decision MLP, masked hinge (triplet) on cosine, jointly.

* MLP: for every defined pixel whose positive lies inside the right map, the logit at the true
  disparity has target 1 when the pixel is non-occluded and 0 when occluded (its true match is
  hidden); every defined pixel with an in-range negative has a negative logit with target 0.
  Both terms are averaged together over the valid samples.
* Cosine: ``max(0, cos(a, n) - cos(a, p) + margin)`` averaged over non-occluded pixels whose
  positive and negative are both in range (margin 0.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .sampling import cosine_map


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp(min=1.0)


def bce_pos_neg(
    logit_pos: torch.Tensor,
    logit_neg: torch.Tensor,
    *,
    nonocc: torch.Tensor,
    valid_pos: torch.Tensor,
    valid_neg: torch.Tensor,
) -> torch.Tensor:
    """BCE-with-logits: positives target ``nonocc`` (1/0) where ``valid_pos``, negatives target 0
    where ``valid_neg``; one mean over all valid samples."""
    lp = F.binary_cross_entropy_with_logits(logit_pos.float(), nonocc.float(), reduction="none")
    ln = F.binary_cross_entropy_with_logits(logit_neg.float(), torch.zeros_like(logit_neg, dtype=torch.float32), reduction="none")
    mp, mn = valid_pos.float(), valid_neg.float()
    return ((lp * mp).sum() + (ln * mn).sum()) / (mp.sum() + mn.sum()).clamp(min=1.0)


def hinge_cosine(cos_pos: torch.Tensor, cos_neg: torch.Tensor, mask: torch.Tensor, *, margin: float = 0.3) -> torch.Tensor:
    """Masked triplet/hinge ``max(0, cos_neg - cos_pos + margin)``."""
    return masked_mean(F.relu(cos_neg.float() - cos_pos.float() + margin), mask)


@dataclass
class LossConfig:
    bce_weight: float = 1.0  # MLP (learned similarity) term; 0 disables the MLP
    hinge_weight: float = 1.0  # cosine term
    margin: float = 0.3

    def __post_init__(self) -> None:
        if self.bce_weight < 0 or self.hinge_weight < 0 or self.bce_weight + self.hinge_weight <= 0:
            raise ValueError(
                f"loss: weights must be >= 0 and not both 0, got bce_weight={self.bce_weight}, hinge_weight={self.hinge_weight}"
            )


def joint_loss(
    cfg: LossConfig,
    *,
    feat_left: torch.Tensor,
    feat_pos: torch.Tensor,
    feat_neg: torch.Tensor,
    defined: torch.Tensor,
    nonocc: torch.Tensor,
    in_pos: torch.Tensor,
    in_neg: torch.Tensor,
    mlp: torch.nn.Module | None,
) -> dict[str, torch.Tensor]:
    """Weighted sum of the two losses plus diagnostics (``loss`` is what to minimise)."""
    out: dict[str, torch.Tensor] = {}
    total = feat_left.new_zeros((), dtype=torch.float32)
    cos_p = cosine_map(feat_left, feat_pos)
    cos_n = cosine_map(feat_left, feat_neg)
    tri_mask = nonocc & in_pos & in_neg
    if cfg.hinge_weight > 0:
        h = hinge_cosine(cos_p, cos_n, tri_mask, margin=cfg.margin)
        out["hinge"] = h
        total = total + cfg.hinge_weight * h
    with torch.no_grad():
        out["cos_rank_acc"] = masked_mean((cos_p > cos_n).float(), tri_mask)
    if cfg.bce_weight > 0:
        if mlp is None:
            raise ValueError("bce_weight > 0 needs the MLP")
        lp = mlp.forward_maps(feat_left, feat_pos)
        ln = mlp.forward_maps(feat_left, feat_neg)
        b = bce_pos_neg(lp, ln, nonocc=nonocc, valid_pos=defined & in_pos, valid_neg=defined & in_neg)
        out["bce"] = b
        total = total + cfg.bce_weight * b
        with torch.no_grad():
            out["mlp_rank_acc"] = masked_mean((lp > ln).float(), tri_mask)
    out["loss"] = total
    return out
