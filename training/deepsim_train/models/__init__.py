"""Feature extractors (one file per family) and the decision MLP.

>>> from deepsim_train.models import build_feature_extractor, list_models
>>> net = build_feature_extractor("msaff")
"""

from . import msaff, patch, tiny, unet32, unet_attention  # noqa: F401  (register the builders)
from .base import FeatureExtractor
from .layers import DEFAULT_MEAN, DEFAULT_STD, count_parameters
from .mlp import DecisionMLP, MLPSimilarity, build_mlp
from .patch import PatchFeatures
from .registry import build_feature_extractor, is_trainable, list_models, register_model

__all__ = [
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "DecisionMLP",
    "FeatureExtractor",
    "MLPSimilarity",
    "PatchFeatures",
    "build_feature_extractor",
    "build_mlp",
    "count_parameters",
    "is_trainable",
    "list_models",
    "register_model",
]
