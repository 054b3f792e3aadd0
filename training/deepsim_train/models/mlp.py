"""The decision network ("learned similarity"): MLP on ``[f_left ; f_right]`` (~0.35 M parameters).

``Linear 2C -> 384, ReLU, 384 -> 384, ReLU, 384 -> 384, ReLU, 384 -> 1``. :meth:`forward` returns
the logit (what BCE-with-logits trains); :meth:`similarity` the sigmoid, in ``[0, 1]``.
The exported ``mlp.onnx`` has the sigmoid inside (``MLPSimilarity``).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import check_shape


class DecisionMLP(nn.Module):
    def __init__(self, embedding_dim: int = 64, hidden: int = 384, depth: int = 3):
        super().__init__()
        self.embedding_dim = embedding_dim
        layers: list[nn.Module] = []
        cin = 2 * embedding_dim
        for _ in range(depth):
            layers += [nn.Linear(cin, hidden), nn.ReLU(inplace=True)]
            cin = hidden
        layers.append(nn.Linear(cin, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """``left``, ``right``: ``[..., C]`` -> logits ``[...]``."""
        if not (torch.jit.is_tracing() or torch.jit.is_scripting()):
            if left.shape != right.shape or left.shape[-1] != self.embedding_dim:
                raise ValueError(
                    f"mlp: expected left and right of shape [..., {self.embedding_dim}], "
                    f"got {list(left.shape)} and {list(right.shape)}"
                )
        return self.net(torch.cat([left, right], dim=-1)).squeeze(-1)

    def similarity(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(left, right))

    def forward_maps(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Feature maps ``[B, C, H, W]`` x2 -> logits ``[B, H, W]`` (channels moved last)."""
        check_shape(left, f"B,{self.embedding_dim},H,W", "left")
        return self.forward(left.permute(0, 2, 3, 1), right.permute(0, 2, 3, 1))


class MLPSimilarity(nn.Module):
    """Export wrapper: ``left, right [M, C]`` -> ``similarity [M]`` (sigmoid included)."""

    def __init__(self, mlp: DecisionMLP):
        super().__init__()
        self.mlp = mlp

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(left, right))


def build_mlp(embedding_dim: int = 64, **kwargs) -> DecisionMLP:
    """The decision MLP for ``embedding_dim``-d features (``hidden``, ``depth`` optional)."""
    return DecisionMLP(embedding_dim, **kwargs)
