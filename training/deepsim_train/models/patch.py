"""Fixed "patch" features: the zero-mean k x k neighbourhood of each pixel (no parameters).

``features[c, y, x] = I(y + dy_c, x + dx_c) - mean_{k x k}(I around (y, x))`` for the ``k*k``
offsets ``(dy, dx)`` in raster order (``c = (dy + r) * k + (dx + r)``, ``r = k // 2``), with zero
padding outside the image (the engine pads to the multiple first, so only true borders are
affected). Because every vector is zero-mean, the cosine between a left and a right feature is
exactly the normalised cross-correlation (NCC) of the two k x k windows. Cosine of a flat window
(zero vector) is undefined: implementations use ``dot / max(|a| |b|, eps)`` and get 0.

No mean/std normalisation is applied (NCC is invariant to it); ``pad_multiple`` is 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import check_shape
from .registry import register_model


class PatchFeatures(nn.Module):
    arch = "patch"
    pad_multiple = 1

    def __init__(self, window: int = 5):
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be odd and >= 1, got {window}")
        self.window = window
        self.embedding_dim = window * window
        eye = torch.eye(window * window).reshape(window * window, 1, window, window)
        self.register_buffer("kernel", eye)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, "B,1,H,W", "image")
        p = F.conv2d(x, self.kernel, padding=self.window // 2)
        return p - p.mean(dim=1, keepdim=True)

    def normalization_string(self) -> str:
        return f"none (zero-mean {self.window}x{self.window} window; cosine == NCC)"


@register_model(trainable=False)
def patch3(**kwargs) -> PatchFeatures:
    """Zero-mean 3x3 neighbourhood (C = 9): cosine == 3x3 NCC."""
    return PatchFeatures(3, **kwargs)


@register_model(trainable=False)
def patch5(**kwargs) -> PatchFeatures:
    """Zero-mean 5x5 neighbourhood (C = 25): cosine == 5x5 NCC."""
    return PatchFeatures(5, **kwargs)


@register_model(trainable=False)
def patch7(**kwargs) -> PatchFeatures:
    """Zero-mean 7x7 neighbourhood (C = 49): cosine == 7x7 NCC (MicMac's coarse levels)."""
    return PatchFeatures(7, **kwargs)
