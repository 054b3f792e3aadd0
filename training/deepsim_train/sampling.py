"""Dense positive / negative sampling of right embeddings, hard-negative mining.

Convention: the left pixel at column ``x`` matches the right column ``x + offset - d`` where
``offset`` is how many columns the right map extends further left than the left map (0 when both
images are the same window; ``right_extra`` for training crops, see :mod:`.data.crops`).
Right embeddings are sampled bilinearly at sub-pixel columns (``grid_sample``), so positives are
exact for fractional disparities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int, *, mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``[B, C, H, W]`` at the bottom/right to multiples of ``multiple`` (reflect, as the
    engine does). Returns the padded tensor and the original ``(H, W)`` to crop back to."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        if mode == "reflect" and (ph >= h or pw >= w):
            mode = "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def embed(net: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Run a feature extractor on an image of any size: pad to its multiple, crop back."""
    multiple = int(getattr(net, "pad_multiple", 1))
    x, (h, w) = pad_to_multiple(image, multiple)
    return net(x)[..., :h, :w]


def sample_columns(feat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``feat [B, C, H, Wr]`` at columns ``x [B, H, W]`` (same rows).

    Returns ``[B, C, H, W]``; columns outside ``[0, Wr - 1]`` read zeros (mask them).
    """
    b, c, h, wr = feat.shape
    if x.shape[0] != b or x.shape[1] != h:
        raise ValueError(f"sample_columns: feat {list(feat.shape)} vs columns {list(x.shape)}: B and H must match")
    w = x.shape[2]
    gx = 2.0 * x / max(wr - 1, 1) - 1.0
    ys = torch.arange(h, device=x.device, dtype=x.dtype)
    gy = (2.0 * ys / max(h - 1, 1) - 1.0).view(1, h, 1).expand(b, h, w)
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(feat, grid.to(feat.dtype), mode="bilinear", padding_mode="zeros", align_corners=True)


def inside(x: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float) -> torch.Tensor:
    """``lo <= x <= hi - 1`` (both neighbours of a bilinear sample exist); lo/hi per batch item."""
    if isinstance(lo, torch.Tensor):
        lo = lo.view(-1, 1, 1)
    if isinstance(hi, torch.Tensor):
        hi = hi.view(-1, 1, 1)
    return (x >= lo) & (x <= hi - 1)


def positive_columns(disp: torch.Tensor, offset: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Right columns of the true matches: ``x + offset - d`` for ``disp [B, H, W]``."""
    b, h, w = disp.shape
    xs = torch.arange(w, device=disp.device, dtype=disp.dtype).view(1, 1, w)
    off = offset.view(-1, 1, 1).to(disp.dtype) if isinstance(offset, torch.Tensor) else offset
    return xs + off - disp


def random_offsets(
    shape: torch.Size | tuple[int, ...],
    u_min: float,
    u_max: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Signed offsets ``s * u``, ``u ~ U[u_min, u_max]``, ``s = +-1`` equiprobable."""
    u = torch.rand(shape, generator=generator, device=device) * (u_max - u_min) + u_min
    s = torch.randint(0, 2, shape, generator=generator, device=device) * 2 - 1
    return u * s


def negative_columns(
    x_pos: torch.Tensor,
    lo: torch.Tensor | float,
    hi: torch.Tensor | float,
    u_min: float,
    u_max: float,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Columns ``x - (d +- u)`` = ``x_pos -+ u``; when the drawn side falls outside the right map
    the other side is used (the sample is still checked by :func:`inside` afterwards)."""
    off = random_offsets(x_pos.shape, u_min, u_max, generator=generator, device=x_pos.device).to(x_pos.dtype)
    x_neg = x_pos - off
    flipped = x_pos + off
    return torch.where(inside(x_neg, lo, hi), x_neg, flipped)


@dataclass
class MiningSchedule:
    """Hard-negative mining that grows over training: at epoch ``e`` (``t = min(1, e/ramp_epochs)``)
    ``K = round(k_start + t (k_end - k_start))`` candidates are drawn with ``u`` in
    ``[u_min, u_max_start + t (u_max_end - u_max_start)]`` and the most similar one is kept."""

    u_min: float = 1.0
    u_max_start: float = 4.0
    u_max_end: float = 4.0
    k_start: int = 1
    k_end: int = 1
    ramp_epochs: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.u_min <= self.u_max_start or self.u_max_end < self.u_min:
            raise ValueError(
                f"sampling: need 0 < u_min <= u_max_start and u_max_end >= u_min, got "
                f"u_min={self.u_min}, u_max_start={self.u_max_start}, u_max_end={self.u_max_end}"
            )
        if self.k_start < 1 or self.k_end < 1:
            raise ValueError(f"sampling: K must be >= 1, got k_start={self.k_start}, k_end={self.k_end}")

    def at(self, epoch: int) -> tuple[int, float, float]:
        t = min(1.0, max(0.0, epoch / max(self.ramp_epochs, 1)))
        k = int(round(self.k_start + t * (self.k_end - self.k_start)))
        u_max = self.u_max_start + t * (self.u_max_end - self.u_max_start)
        return k, self.u_min, u_max


def mine_negatives(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    feat_left: torch.Tensor,
    feat_right: torch.Tensor,
    x_pos: torch.Tensor,
    lo: torch.Tensor | float,
    hi: torch.Tensor | float,
    *,
    k: int,
    u_min: float,
    u_max: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hardest of ``k`` random negatives per pixel: the candidate column with the highest
    ``score(feat_left, sampled_right) -> [B, H, W]``. Chosen without gradient; the caller samples
    again at the returned columns (with gradient). ``k = 1`` is plain random sampling."""
    first = negative_columns(x_pos, lo, hi, u_min, u_max, generator=generator)
    if k <= 1:
        return first
    best_x = first
    with torch.no_grad():
        fl, fr = feat_left.detach(), feat_right.detach()
        best_s = torch.where(inside(first, lo, hi), score(fl, sample_columns(fr, first)).float(), -torch.inf)
        for _ in range(k - 1):
            cand = negative_columns(x_pos, lo, hi, u_min, u_max, generator=generator)
            s = torch.where(inside(cand, lo, hi), score(fl, sample_columns(fr, cand)).float(), -torch.inf)
            better = s > best_s
            best_x = torch.where(better, cand, best_x)
            best_s = torch.where(better, s, best_s)
    return best_x


def cosine_map(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Cosine between ``[B, C, H, W]`` maps along ``C`` -> ``[B, H, W]``."""
    return F.cosine_similarity(a, b, dim=1, eps=eps)
