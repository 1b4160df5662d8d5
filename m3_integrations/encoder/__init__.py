"""The core BGE-M3 encoder: model loading, token-budget batching, the output type and reference scoring.

Names are imported on first use (PEP 562), so ``m3_integrations.encoder.types`` / ``.scoring`` and the
store adapters that use them load without torch or transformers; ``M3Encoder`` brings those in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DEFAULT_MODEL": "._loading", "ModelLoadError": "._loading",
    "EncoderStats": ".encoder", "M3Encoder": ".encoder",
    "DEFAULT_WEIGHTS": ".scoring", "colbert_maxsim": ".scoring", "colbert_query_length": ".scoring",
    "colbert_score": ".scoring", "compute_scores": ".scoring", "dense_score": ".scoring",
    "sparse_score": ".scoring", "validate_weights": ".scoring", "weighted_score": ".scoring",
    "M3Output": ".types", "SparseVector": ".types",
}

if TYPE_CHECKING:  # pragma: no cover
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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
