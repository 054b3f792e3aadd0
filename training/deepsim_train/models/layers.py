"""Layers shared by the feature extractors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# One set of normalisation constants, applied inside every model after the [0, 1] mapping.
# (Grey level statistics of aerial 8-bit tiles; the engine never sees them except in metadata.)
DEFAULT_MEAN = 0.434
DEFAULT_STD = 0.195


def check_shape(x: torch.Tensor, expected: str, name: str = "input") -> None:
    """Raise ``ValueError`` with expected vs actual if ``x`` does not match, e.g. ``"B,1,H,W"``.

    Integer entries are checked exactly; letters only fix the rank. Skipped while tracing.
    """
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return
    dims = expected.split(",")
    ok = x.dim() == len(dims)
    if ok:
        for d, s in zip(dims, x.shape):
            if d.strip().isdigit() and int(d) != s:
                ok = False
    if not ok:
        raise ValueError(f"{name}: expected shape [{expected}], got {list(x.shape)}")


class Normalize(nn.Module):
    """``(x - mean) / std`` with the constants stored as buffers (exported into the graph)."""

    def __init__(self, mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD):
        super().__init__()
        if std <= 0:
            raise ValueError(f"std must be > 0, got {std}")
        self.register_buffer("mean", torch.tensor(float(mean)).reshape(1, 1, 1, 1))
        self.register_buffer("std", torch.tensor(float(std)).reshape(1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def describe(self) -> str:
        return f"x/255 (8-bit) or 2-98% stretch (other types), then (x-{self.mean.item():.3f})/{self.std.item():.3f}"


class ConvBNReLU(nn.Sequential):
    """conv k x k (no bias) - BatchNorm - ReLU, 'same' padding."""

    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__(
            nn.Conv2d(cin, cout, k, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class DoubleConv(nn.Sequential):
    """Two ConvBNReLU 3x3 (one U-Net stage)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(ConvBNReLU(cin, cout), ConvBNReLU(cout, cout))


class ResidualBlock(nn.Module):
    """Basic residual block: conv-BN-ReLU-conv-BN + shortcut (1x1 conv-BN when widths differ), ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (
            nn.Identity()
            if cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class MSCAM(nn.Module):
    """Multi-scale channel attention (AFF, Dai et al. 2021) giving fusion weights in (0, 1).

    Two bottleneck branches ``C -> C/r -> C`` (1x1 conv-BN-ReLU-1x1 conv-BN) on ``X + Y``;
    their sum through a sigmoid is ``w``. With ``global_pool=False`` (the default, as in the
    released DeepSim-Nets training code) both branches are pointwise on the full map; with
    ``global_pool=True`` the second branch first global-average-pools (the paper's MS-CAM).
    """

    def __init__(self, channels: int, reduction: int = 4, *, global_pool: bool = False):
        super().__init__()
        mid = max(1, channels // reduction)

        def branch() -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(channels, mid, 1, bias=False),
                nn.BatchNorm2d(mid),
                nn.ReLU(inplace=True),
                nn.Conv2d(mid, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
            )

        self.local_a = branch()
        self.local_b = branch()
        self.global_pool = global_pool

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = x + y
        a = self.local_a(s)
        b = self.local_b(s.mean(dim=(2, 3), keepdim=True) if self.global_pool else s)
        w = torch.sigmoid(a + b)
        return w * x + (1.0 - w) * y


class AttentionGate(nn.Module):
    """Additive attention gate (Attention U-Net, Oktay et al. 2018).

    ``theta``: conv k2 s2 on the skip ``x`` (to the gating resolution); ``phi``: 1x1 on the gating
    signal ``g``; ReLU(theta + phi); ``psi``: 1x1 -> 1 channel, sigmoid, upsampled (bilinear) to
    the skip resolution; output = ``W(alpha * x)`` with ``W`` a 1x1 conv-BN projection.
    Requires ``x`` at exactly twice the resolution of ``g``.
    """

    def __init__(self, skip_ch: int, gate_ch: int, inter_ch: int | None = None):
        super().__init__()
        inter = inter_ch or skip_ch
        self.theta = nn.Conv2d(skip_ch, inter, 2, stride=2, bias=False)
        self.phi = nn.Conv2d(gate_ch, inter, 1, bias=True)
        self.psi = nn.Conv2d(inter, 1, 1, bias=True)
        self.out = nn.Sequential(nn.Conv2d(skip_ch, skip_ch, 1, bias=False), nn.BatchNorm2d(skip_ch))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        f = F.relu(self.theta(x) + self.phi(g))
        alpha = torch.sigmoid(self.psi(f))
        alpha = F.interpolate(alpha, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.out(alpha * x)


class MultiGate(nn.Module):
    """``n`` independent :class:`AttentionGate` on the same skip; with ``n > 1`` their outputs
    are concatenated and merged by a 1x1 conv-BN-ReLU (the Attention U-Net "multi-attention" block)."""

    def __init__(self, skip_ch: int, gate_ch: int, n: int = 2):
        super().__init__()
        if n < 1:
            raise ValueError(f"need at least one gate, got {n}")
        self.gates = nn.ModuleList(AttentionGate(skip_ch, gate_ch) for _ in range(n))
        self.combine = (
            nn.Sequential(nn.Conv2d(n * skip_ch, skip_ch, 1, bias=False), nn.BatchNorm2d(skip_ch), nn.ReLU(inplace=True))
            if n > 1
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        outs = [gate(x, g) for gate in self.gates]
        return self.combine(torch.cat(outs, dim=1) if len(outs) > 1 else outs[0])


def upsample2(x: torch.Tensor) -> torch.Tensor:
    """Bilinear x2 (half-pixel centres, ONNX ``Resize`` with scales)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear resize by ``1/factor`` (half-pixel centres, no antialias; ONNX ``Resize``)."""
    return F.interpolate(x, scale_factor=1.0 / factor, mode="bilinear", align_corners=False)


def count_parameters(module: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
