"""Evaluation: the Joint Probability (JP), overlap, ROC AUC, plots, similarity backends."""

from .evaluate import U_RANGE_COSINE, U_RANGE_MLP, evaluate, format_table, pair_samples
from .jp import histogram_overlap, joint_histogram, joint_probability, plot_densities, plot_joint_histogram, roc_auc, summarize
from .similarity import OnnxSimilarity, Similarity, TorchSimilarity, ncc_similarity

__all__ = [
    "U_RANGE_COSINE",
    "U_RANGE_MLP",
    "OnnxSimilarity",
    "Similarity",
    "TorchSimilarity",
    "evaluate",
    "format_table",
    "histogram_overlap",
    "joint_histogram",
    "joint_probability",
    "ncc_similarity",
    "pair_samples",
    "plot_densities",
    "plot_joint_histogram",
    "roc_auc",
    "summarize",
]
