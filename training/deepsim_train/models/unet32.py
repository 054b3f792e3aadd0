"""Unet32: a plain U-Net feature extractor (~7.8 M parameters).

Encoder stages 32/64/128/256 (2 x conv3x3-BN-ReLU each, maxpool 2 between), bottleneck 512 at
1/16, decoder by transposed convs (k2 s2) with skip concatenation and 2 x conv3x3-BN-ReLU per
stage, last conv3x3 32 -> 64 (no BN, no ReLU). Input sides must be multiples of 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import FeatureExtractor
from .layers import DoubleConv
from .registry import register_model


class Encoder(nn.Module):
    """U-Net encoder: returns the skips (full, 1/2, 1/4, 1/8) and the bottleneck (1/16)."""

    def __init__(self, widths: tuple[int, ...], bottleneck: int):
        super().__init__()
        chans = (1,) + tuple(widths)
        self.stages = nn.ModuleList(DoubleConv(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.bottleneck = DoubleConv(widths[-1], bottleneck)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        return skips, self.bottleneck(x)


class UpStage(nn.Module):
    """Transposed conv x2, concatenate the skip, 2 x conv3x3-BN-ReLU."""

    def __init__(self, cin: int, skip: int, cout: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, skip, 2, stride=2)
        self.conv = DoubleConv(2 * skip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet32(FeatureExtractor):
    arch = "unet32"

    def __init__(
        self,
        *,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        bottleneck: int = 512,
        embedding_dim: int = 64,
        **norm,
    ):
        super().__init__(embedding_dim, **norm)
        self.pad_multiple = 2 ** len(widths)
        self.encoder = Encoder(tuple(widths), bottleneck)
        ups, cin = [], bottleneck
        for w in reversed(widths):
            ups.append(UpStage(cin, w, w))
            cin = w
        self.decoder = nn.ModuleList(ups)
        self.last = nn.Conv2d(widths[0], embedding_dim, 3, padding=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        skips, y = self.encoder(x)
        for up, skip in zip(self.decoder, reversed(skips)):
            y = up(y, skip)
        return self.last(y)


@register_model
def unet32(**kwargs) -> UNet32:
    """U-Net 32/64/128/256/512 as in DeepSim-Nets."""
    return UNet32(**kwargs)


@register_model
def unet32_tiny(**kwargs) -> UNet32:
    """A narrow U-Net (4/8/8/8, bottleneck 8, C = 8) for tests and engine golden files."""
    kwargs.setdefault("widths", (4, 8, 8, 8))
    kwargs.setdefault("bottleneck", 8)
    kwargs.setdefault("embedding_dim", 8)
    return UNet32(**kwargs)
