"""Base class of the feature extractors: the contract every registered model follows."""

from __future__ import annotations

import torch
from torch import nn

from .layers import DEFAULT_MEAN, DEFAULT_STD, Normalize, check_shape


class FeatureExtractor(nn.Module):
    """``[B, 1, H, W]`` grey in ``[0, 1]`` -> ``[B, C, H, W]`` embeddings.

    ``H`` and ``W`` must be multiples of :attr:`pad_multiple`; padding (reflect) and cropping
    back is the caller's job (``deepsim_train.sampling.pad_to_multiple`` or the engine).
    The mean/std normalisation happens inside (:attr:`normalize`), so that exactly one set of
    constants exists and is exported with the model.
    """

    arch: str = "?"
    pad_multiple: int = 1

    def __init__(self, embedding_dim: int, *, mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.normalize = Normalize(mean, std)

    def check_input(self, x: torch.Tensor) -> None:
        check_shape(x, "B,1,H,W", "image")
        if torch.jit.is_tracing() or torch.jit.is_scripting():
            return
        h, w = x.shape[-2:]
        m = self.pad_multiple
        if h % m or w % m:
            raise ValueError(
                f"{self.arch}: H and W must be multiples of {m}, got {h} x {w}; pad first (reflect)"
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_features(self.normalize(x))

    def normalization_string(self) -> str:
        return self.normalize.describe()
