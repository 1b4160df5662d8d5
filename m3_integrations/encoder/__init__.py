"""The core BGE-M3 encoder: model loading, token-budget batching, the output type and reference scoring."""

from ._loading import DEFAULT_MODEL, ModelLoadError
from .encoder import EncoderStats, M3Encoder
from .scoring import (
    DEFAULT_WEIGHTS,
    colbert_maxsim,
    colbert_query_length,
    colbert_score,
    compute_scores,
    dense_score,
    sparse_score,
    validate_weights,
    weighted_score,
)
from .types import M3Output, SparseVector

__all__ = [
    "DEFAULT_MODEL", "DEFAULT_WEIGHTS", "EncoderStats", "M3Encoder", "M3Output", "ModelLoadError", "SparseVector",
    "colbert_maxsim", "colbert_query_length", "colbert_score", "compute_scores", "dense_score", "sparse_score",
    "validate_weights", "weighted_score",
]
