"""A tiny conv feature extractor (2 convs, C = 8) for tests and engine golden files."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import FeatureExtractor
from .registry import register_model


class TinyConv(FeatureExtractor):
    """``(x - mean)/std -> conv3x3 (1 -> 8) -> ReLU -> conv3x3 (8 -> 8)``, with biases.

    ``pad_multiple`` is 8 although the graph itself accepts any size: it lets the engine's
    padding/cropping logic be tested against a model whose numbers are easy to reproduce.
    """

    arch = "tiny_conv"
    pad_multiple = 8

    def __init__(self, *, embedding_dim: int = 8, hidden: int = 8, **norm):
        super().__init__(embedding_dim, **norm)
        self.conv1 = nn.Conv2d(1, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, embedding_dim, 3, padding=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x)))


@register_model
def tiny_conv(**kwargs) -> TinyConv:
    """Two 3x3 convs, C = 8 (engine tests)."""
    return TinyConv(**kwargs)
