"""MS-AFF: multi-scale features fused by attentional feature fusion (~0.97 M parameters).

Structure (DeepSim-Nets' lightest extractor):

* a shared stem, 3 x conv3x3-BN-ReLU (1 -> 32 -> 32 -> 32), applied to the tile and to its
  bilinear resizes at 1/2, 1/4 and 1/8;
* one branch per scale (no weight sharing): 3 residual blocks, 64 channels;
* coarse-to-fine fusion: the coarser result is upsampled x2 (bilinear) and fused with the finer
  branch by MS-CAM: ``w = sigmoid(A(X+Y) + B(X+Y))``, ``out = w * X + (1 - w) * Y`` with ``X`` the
  finer branch and ``Y`` the upsampled coarser result;
* head: 2 x conv3x3-BN-ReLU + conv3x3 (no BN) -> 64.

**MS-CAM variant.** By default (``global_pool=False``) both MS-CAM branches are pointwise
(1x1 bottlenecks 64 -> 16 -> 64 on the full map), as in the released DeepSim-Nets training code;
``global_pool=True`` builds the paper's variant whose second branch works on the globally
average-pooled map. The parameter count is the same; the pointwise variant is translation
invariant, so a tile's features do not depend on the tile's extent (what a tiled engine wants).

Input sides must be multiples of 8.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import FeatureExtractor
from .layers import ConvBNReLU, MSCAM, ResidualBlock, downsample, upsample2
from .registry import register_model


class MSAFF(FeatureExtractor):
    arch = "msaff"
    pad_multiple = 8

    def __init__(
        self,
        *,
        stem_width: int = 32,
        width: int = 64,
        embedding_dim: int = 64,
        blocks: int = 3,
        num_scales: int = 4,
        reduction: int = 4,
        global_pool: bool = False,
        **norm,
    ):
        super().__init__(embedding_dim, **norm)
        self.num_scales = num_scales
        self.pad_multiple = 2 ** (num_scales - 1)
        self.global_pool = global_pool
        self.stem = nn.Sequential(
            ConvBNReLU(1, stem_width), ConvBNReLU(stem_width, stem_width), ConvBNReLU(stem_width, stem_width)
        )
        self.branches = nn.ModuleList(
            nn.Sequential(
                ResidualBlock(stem_width, width), *[ResidualBlock(width, width) for _ in range(blocks - 1)]
            )
            for _ in range(num_scales)
        )
        # fusions[i] fuses scale i (finer, X) with the upsampled result from scale i+1 (Y).
        self.fusions = nn.ModuleList(
            MSCAM(width, reduction, global_pool=global_pool) for _ in range(num_scales - 1)
        )
        self.head = nn.Sequential(
            ConvBNReLU(width, width), ConvBNReLU(width, width), nn.Conv2d(width, embedding_dim, 3, padding=1)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for s, branch in enumerate(self.branches):
            xs = x if s == 0 else downsample(x, 2**s)
            feats.append(branch(self.stem(xs)))
        y = feats[-1]
        for s in range(self.num_scales - 2, -1, -1):
            y = self.fusions[s](feats[s], upsample2(y))
        return self.head(y)


@register_model
def msaff(**kwargs) -> MSAFF:
    """MS-AFF as in DeepSim-Nets (pointwise MS-CAM; ``global_pool=True`` for the paper's)."""
    return MSAFF(**kwargs)


@register_model
def msaff_global(**kwargs) -> MSAFF:
    """MS-AFF with the paper's MS-CAM (second branch on the global average-pooled map)."""
    kwargs.setdefault("global_pool", True)
    return MSAFF(**kwargs)


@register_model
def msaff_tiny(**kwargs) -> MSAFF:
    """A narrow MS-AFF (stem 4, width 8, C = 8) for tests and engine golden files."""
    kwargs.setdefault("stem_width", 4)
    kwargs.setdefault("width", 8)
    kwargs.setdefault("embedding_dim", 8)
    kwargs.setdefault("blocks", 1)
    kwargs.setdefault("reduction", 2)
    return MSAFF(**kwargs)
