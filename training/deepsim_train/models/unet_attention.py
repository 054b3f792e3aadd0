"""U-Net Attention: U-Net with attention gates and a multi-level output head (~9.5 M parameters).

* Encoder as :mod:`unet32` (32/64/128/256, bottleneck 512 at 1/16).
* The gating signal of the deepest gate is the bottleneck through a 1x1 conv-BN-ReLU.
* Attention gates (:class:`~deepsim_train.models.layers.AttentionGate`: theta conv k2 s2 on the
  skip, phi 1x1 on the gating signal, ReLU, psi 1x1 -> 1, sigmoid, multiply the skip, 1x1 conv-BN
  projection) on the three deeper skips (1/8, 1/4, 1/2), driven by the decoder output one level
  coarser. Each of those skips gets ``gates_per_skip`` (default 2) independent gates whose outputs
  are merged by a 1x1 conv-BN-ReLU (:class:`~deepsim_train.models.layers.MultiGate`); with two
  gates the count lands on the published ~9.5 M (one gate: ~8.7 M). The full-resolution skip is
  not gated.
* Decoder: transposed conv x2, concatenate the (gated) skip, 2 x conv3x3-BN-ReLU.
* Output: 1x1 projections (16 channels each) of the four decoder levels (1/8, 1/4, 1/2, 1),
  upsampled bilinearly to full size, concatenated to 64, then conv3x3-BN-ReLU + conv3x3 -> 64.

Input sides must be multiples of 16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import FeatureExtractor
from .layers import ConvBNReLU, MultiGate
from .registry import register_model
from .unet32 import Encoder, UpStage


class UNetAttention(FeatureExtractor):
    arch = "unet_attention"

    def __init__(
        self,
        *,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        bottleneck: int = 512,
        proj: int = 16,
        gates_per_skip: int = 2,
        embedding_dim: int = 64,
        **norm,
    ):
        super().__init__(embedding_dim, **norm)
        widths = tuple(widths)
        n = len(widths)
        self.pad_multiple = 2**n
        self.encoder = Encoder(widths, bottleneck)
        self.gating = ConvBNReLU(bottleneck, bottleneck, k=1)
        # Decoder level i (0 = coarsest) upsamples to the resolution of skip widths[n-1-i].
        ups, gates, cin = [], [], bottleneck
        for i, w in enumerate(reversed(widths)):
            ups.append(UpStage(cin, w, w))
            # gate the deeper skips only (all but the full-resolution one)
            gates.append(MultiGate(w, cin, gates_per_skip) if i < n - 1 else nn.Identity())
            cin = w
        self.decoder = nn.ModuleList(ups)
        self.gates = nn.ModuleList(gates)
        self.projections = nn.ModuleList(nn.Conv2d(w, proj, 1) for w in reversed(widths))
        self.head = nn.Sequential(
            ConvBNReLU(proj * n, proj * n), nn.Conv2d(proj * n, embedding_dim, 3, padding=1)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        skips, y = self.encoder(x)
        g = self.gating(y)
        outs = []
        n = len(self.decoder)
        for i, (up, gate, skip) in enumerate(zip(self.decoder, self.gates, reversed(skips))):
            if i < n - 1:
                skip = gate(skip, g)
            y = up(y, skip)
            g = y
            scale = 2 ** (n - 1 - i)
            p = self.projections[i](y)
            if scale > 1:
                p = F.interpolate(p, scale_factor=float(scale), mode="bilinear", align_corners=False)
            outs.append(p)
        return self.head(torch.cat(outs, dim=1))


@register_model
def unet_attention(**kwargs) -> UNetAttention:
    """Attention U-Net with a four-level output head, as in DeepSim-Nets."""
    return UNetAttention(**kwargs)


@register_model
def unet_attention_tiny(**kwargs) -> UNetAttention:
    """A narrow attention U-Net (4/8/8/8, bottleneck 8, projections 2, C = 8) for tests."""
    kwargs.setdefault("widths", (4, 8, 8, 8))
    kwargs.setdefault("bottleneck", 8)
    kwargs.setdefault("proj", 2)
    kwargs.setdefault("gates_per_skip", 2)
    kwargs.setdefault("embedding_dim", 8)
    return UNetAttention(**kwargs)
