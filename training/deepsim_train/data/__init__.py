"""Stereo data: readers (synth / Middlebury / motorcycle), crops, augmentations, fake data."""

from .crops import AugmentConfig, random_crop
from .dataset import CropDataset
from .pairs import StereoPair, derive_nonocc, load_pairs, read_middlebury_pair, read_motorcycle, read_synth_pair

__all__ = [
    "AugmentConfig",
    "CropDataset",
    "StereoPair",
    "derive_nonocc",
    "load_pairs",
    "random_crop",
    "read_middlebury_pair",
    "read_motorcycle",
    "read_synth_pair",
]
