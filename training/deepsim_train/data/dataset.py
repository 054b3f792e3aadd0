"""Torch datasets: random crops for training, whole pairs for evaluation."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .crops import AugmentConfig, random_crop
from .pairs import StereoPair, pair_loaders


class CropDataset(Dataset):
    """``samples_per_epoch`` random crops drawn from ``sources`` (dataset folders).

    Sample ``i`` of epoch ``e`` is generated from ``numpy.random.default_rng([seed, e, i])``,
    so it is reproducible and independent of the worker/rank that produces it. Call
    :meth:`set_epoch` at the start of each epoch. Pairs are read when a crop needs them; the
    ``cache_pairs`` most recently used stay in memory (per worker), so the dataset may be far
    larger than the memory (800 synthetic pairs of 768 x 768 take ~8.5 GB decoded).
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
        cache_pairs: int = 32,
    ):
        self.sources = [s if isinstance(s, dict) else {"path": str(s)} for s in sources]
        if not self.sources:
            raise ValueError("CropDataset needs at least one source")
        self.crop_height, self.crop_width, self.right_extra = crop_height, crop_width, right_extra
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = 0
        self.augment = augment
        self.cache_pairs = max(1, int(cache_pairs))
        self._loaders: list[Callable[[], StereoPair]] | None = None
        self._cache: OrderedDict[int, StereoPair] = OrderedDict()

    @property
    def loaders(self) -> list[Callable[[], StereoPair]]:
        if self._loaders is None:
            loaders: list[Callable[[], StereoPair]] = []
            for s in self.sources:
                loaders += pair_loaders(s["path"], format=s.get("format", "auto"), purpose="train")
            if not loaders:
                raise ValueError(f"no pairs found in {self.sources}")
            self._loaders = loaders
        return self._loaders

    def pair(self, index: int) -> StereoPair:
        """Pair ``index``, from the cache or read now."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        pair = self.loaders[index]()
        self._cache[index] = pair
        while len(self._cache) > self.cache_pairs:
            self._cache.popitem(last=False)
        return pair

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        pair = self.pair(int(rng.integers(len(self.loaders))))
        return random_crop(
            pair,
            height=self.crop_height,
            width=self.crop_width,
            right_extra=self.right_extra,
            rng=rng,
            augment=self.augment,
        )
