"""m3_integrations: BGE-M3's dense, sparse and ColBERT representations in Qdrant, Milvus, LangChain and LlamaIndex.

``import m3_integrations`` needs neither a database client nor a framework; those are imported only by
their subpackages (``m3_integrations.qdrant``, ``.milvus``, ``.langchain``, ``.llama_index``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from .encoder import (
        DEFAULT_MODEL,
        DEFAULT_WEIGHTS,
        EncoderStats,
        M3Encoder,
        M3Output,
        ModelLoadError,
        SparseVector,
        colbert_maxsim,
        colbert_query_length,
        colbert_score,
        compute_scores,
        dense_score,
        sparse_score,
        validate_weights,
        weighted_score,
    )

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL", "DEFAULT_WEIGHTS", "EncoderStats", "M3Encoder", "M3Output", "ModelLoadError", "SparseVector",
    "__version__", "colbert_maxsim", "colbert_query_length", "colbert_score", "compute_scores", "dense_score",
    "sparse_score", "validate_weights", "weighted_score",
]


def __getattr__(name: str) -> Any:
    # imported on first use, so `import m3_integrations` (and the `m3` CLI) does not load torch
    if name in __all__ and name != "__version__":
        from . import encoder

        value = getattr(encoder, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
