"""One contrastive training step on a batch of crops (shared by ``train`` and ``adapt``).

The batch layout is :func:`deepsim_train.data.crops.random_crop`'s: left crop, wider right crop
(``offset`` columns further left), disparity with ``defined`` / ``nonocc`` masks, and the valid
right columns. Positives at ``x + offset - d`` (sub-pixel), negatives mined at ``x_pos -+ u``
(hardest of ``k``), then the joint loss (MLP BCE + cosine hinge) of :mod:`deepsim_train.losses`.
"""

from __future__ import annotations

import torch

from .losses import LossConfig, joint_loss
from .sampling import inside, mine_negatives, positive_columns, sample_columns


def contrastive_step(net: torch.nn.Module, mlp: torch.nn.Module | None, batch: dict, loss_cfg: LossConfig, *,
                     k: int, u_min: float, u_max: float) -> dict[str, torch.Tensor]:
    """Loss terms and diagnostics for ``batch`` (``out["loss"]`` is what to minimise)."""
    fl = net(batch["left"])
    fr = net(batch["right"])
    disp, defined, nonocc = batch["disp"], batch["defined"], batch["nonocc"]
    lo, hi = batch["right_valid"][:, 0], batch["right_valid"][:, 1]
    x_pos = positive_columns(disp, batch["offset"])
    in_pos = inside(x_pos, lo, hi)
    if mlp is not None:

        def score(a, b):
            return mlp.forward_maps(a, b)

    else:

        def score(a, b):
            return torch.nn.functional.cosine_similarity(a, b, dim=1)

    x_neg = mine_negatives(score, fl, fr, x_pos, lo, hi, k=k, u_min=u_min, u_max=u_max)
    in_neg = inside(x_neg, lo, hi)
    out = joint_loss(
        loss_cfg,
        feat_left=fl,
        feat_pos=sample_columns(fr, x_pos),
        feat_neg=sample_columns(fr, x_neg),
        defined=defined,
        nonocc=nonocc,
        in_pos=in_pos,
        in_neg=in_neg,
        mlp=mlp,
    )
    out["mining_k"] = torch.tensor(float(k))
    out["u_max"] = torch.tensor(float(u_max))
    return out
