"""Compact, committable checkpoints: float16 weights (+ optional bfloat16 optimizer moments).

Why: nothing in a home cache survives from one session (or machine) to the next, and a full
Lightning checkpoint of MS-AFF + MLP is ~16 MB of float32 weights and AdamW moments. The compact
file keeps what a later run needs to continue from git: the architecture and its options, the
MLP sizes, the weights in float16 (~2.6 MB for MS-AFF + MLP), whether BatchNorm is folded
(then it must stay frozen, see :mod:`deepsim_train.bundle_import`), the step count, the time
spent and a free-form history; the AdamW moments only on request (bfloat16, keeps the range of
the tiny second moments that float16 would flush to zero; ~5 MB more for MS-AFF + MLP).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .models import build_feature_extractor, build_mlp

FORMAT = "deepsim-compact-v1"


def _half(sd: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach().clone()) for k, v in sd.items()}


def _optimizer_compact(opt: torch.optim.Optimizer) -> dict:
    sd = opt.state_dict()
    state = {}
    for k, s in sd["state"].items():
        state[k] = {n: (v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point() and v.dim() > 0 else v) for n, v in s.items()}
    return {"state": state, "param_groups": sd["param_groups"]}


def save_compact(path: str | Path, *, net: nn.Module, mlp: nn.Module | None, arch: str, options: dict | None = None,
                 bn_folded: bool = False, step: int = 0, seconds: float = 0.0, optimizer: torch.optim.Optimizer | None = None,
                 extra: dict | None = None) -> Path:
    """Write a compact checkpoint atomically (``.partial`` then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT,
        "arch": arch,
        "options": dict(options or {}),
        "embedding_dim": int(net.embedding_dim),
        "mlp": None if mlp is None else {
            "hidden": int(mlp.net[0].out_features),
            "depth": sum(1 for m in mlp.net if isinstance(m, nn.Linear)) - 1,
        },
        "bn_folded": bool(bn_folded),
        "net": _half(net.state_dict(), torch.float16),
        "mlp_state": None if mlp is None else _half(mlp.state_dict(), torch.float16),
        "optimizer": None if optimizer is None else _optimizer_compact(optimizer),
        "step": int(step),
        "seconds": float(seconds),
        "extra": dict(extra or {}),
    }
    tmp = path.with_name(path.name + ".partial")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


def load_compact(path: str | Path) -> tuple[nn.Module, nn.Module | None, dict]:
    """``(net, mlp or None, blob)``; weights back in float32. ``blob["optimizer"]`` (or None)
    can be given to :func:`restore_optimizer`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"compact checkpoint {path} does not exist")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not a compact checkpoint ({FORMAT}); a Lightning .ckpt goes to `deepsim-train train --resume`")
    net = build_feature_extractor(blob["arch"], **blob["options"])
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["net"].items()})
    mlp = None
    if blob["mlp"] is not None:
        mlp = build_mlp(blob["embedding_dim"], hidden=blob["mlp"]["hidden"], depth=blob["mlp"]["depth"])
        mlp.load_state_dict({k: v.float() for k, v in blob["mlp_state"].items()})
    return net, mlp, blob


def load_compact_into(path: str | Path, net: nn.Module, mlp: nn.Module | None) -> dict:
    """Load a compact checkpoint's weights into existing modules (same shapes); returns the blob."""
    path = Path(path)
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not a compact checkpoint ({FORMAT})")
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["net"].items()})
    if mlp is not None:
        if blob.get("mlp_state") is None:
            raise ValueError(f"{path}: has no MLP weights but the model has an MLP")
        mlp.load_state_dict({k: v.float() for k, v in blob["mlp_state"].items()})
    return blob


def restore_optimizer(opt: torch.optim.Optimizer, state: dict | None) -> bool:
    """Load compact optimizer moments into ``opt`` (cast back to float32); False when absent."""
    if not state:
        return False
    full = {
        "state": {k: {n: (v.float() if torch.is_tensor(v) and v.is_floating_point() and v.dim() > 0 else v) for n, v in s.items()}
                  for k, s in state["state"].items()},
        "param_groups": state["param_groups"],
    }
    opt.load_state_dict(full)
    return True
