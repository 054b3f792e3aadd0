"""Torch datasets: random crops for training, whole pairs for evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .crops import AugmentConfig, random_crop
from .pairs import StereoPair, load_pairs


class CropDataset(Dataset):
    """``samples_per_epoch`` random crops drawn from ``sources`` (dataset folders).

    Sample ``i`` of epoch ``e`` is generated from ``numpy.random.default_rng([seed, e, i])``,
    so it is reproducible and independent of the worker/rank that produces it. Call
    :meth:`set_epoch` at the start of each epoch. Pairs are read lazily and cached per worker.
    """

    def __init__(
        self,
        sources: Sequence[str | Path | dict],
        *,
        crop_height: int,
        crop_width: int,
        right_extra: int,
        samples_per_epoch: int,
        seed: int = 0,
        augment: AugmentConfig | None = None,
    ):
        self.sources = [s if isinstance(s, dict) else {"path": str(s)} for s in sources]
        if not self.sources:
            raise ValueError("CropDataset needs at least one source")
        self.crop_height, self.crop_width, self.right_extra = crop_height, crop_width, right_extra
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = 0
        self.augment = augment
        self._pairs: list[StereoPair] | None = None

    @property
    def pairs(self) -> list[StereoPair]:
        if self._pairs is None:
            pairs: list[StereoPair] = []
            for s in self.sources:
                pairs += load_pairs(s["path"], format=s.get("format", "auto"), purpose="train")
            if not pairs:
                raise ValueError(f"no pairs found in {self.sources}")
            self._pairs = pairs
        return self._pairs

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        pair = self.pairs[int(rng.integers(len(self.pairs)))]
        return random_crop(
            pair,
            height=self.crop_height,
            width=self.crop_width,
            right_extra=self.right_extra,
            rng=rng,
            augment=self.augment,
        )
