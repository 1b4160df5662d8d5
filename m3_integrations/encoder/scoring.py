"""Reference scoring, equal to FlagEmbedding's ``BGEM3FlagModel`` (``compute_score`` / ``colbert_score``).

Scores are computed on unpadded vectors, which is what a vector database computes. (The reference's
batched ``compute_score`` pads passage ColBERT vectors with zeros, which floors each per-token max at 0;
for a single pair, or any pair whose per-token maxima are positive, the two agree.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .types import M3Output

DEFAULT_WEIGHTS: tuple[float, float, float] = (0.4, 0.2, 0.4)
"""Dense, sparse, ColBERT weights from the BGE-M3 README example."""


def dense_score(query: np.ndarray, document: np.ndarray) -> float:
    """Inner product of two L2-normalized dense vectors (cosine)."""
    return float(np.dot(np.asarray(query, dtype=np.float32), np.asarray(document, dtype=np.float32)))


def sparse_score(query: Mapping[int, float], document: Mapping[int, float]) -> float:
    """Lexical matching score: sum over shared token ids of ``q_w * d_w``."""
    if len(document) < len(query):
        query, document = document, query
    return float(sum(w * document[t] for t, w in query.items() if t in document))


def colbert_query_length(query_colbert: np.ndarray) -> int:
    """Number of query token vectors a ColBERT score is divided by.

    Qdrant's ``MAX_SIM`` and Milvus' ``MAX_SIM_*`` return the *sum* over query tokens; divide by this
    (or weight the ColBERT term by ``w_c / colbert_query_length(q)``) to get the reference score.
    """
    n = int(np.asarray(query_colbert).shape[0])
    if n == 0:
        raise ValueError("query ColBERT vectors are empty: a query always has at least one token vector")
    return n


def colbert_maxsim(query_colbert: np.ndarray, document_colbert: np.ndarray) -> float:
    """Sum over query tokens of the max inner product with any document token (what databases return)."""
    q = np.asarray(query_colbert, dtype=np.float32)
    d = np.asarray(document_colbert, dtype=np.float32)
    if d.shape[0] == 0:
        return 0.0
    return float((q @ d.T).max(axis=1).sum())


def colbert_score(query_colbert: np.ndarray, document_colbert: np.ndarray) -> float:
    """Reference ColBERT score: MaxSim sum divided by the number of query tokens."""
    return colbert_maxsim(query_colbert, document_colbert) / colbert_query_length(query_colbert)


def validate_weights(weights: Sequence[float] | str) -> tuple[float, float, float]:
    """Check a ``(dense, sparse, colbert)`` weight triple: three finite non-negative numbers, not all zero.

    A string of three comma-separated numbers (``"0.4,0.2,0.4"``, as on the command line) is parsed.
    """
    if isinstance(weights, str):
        parts = [p.strip() for p in weights.split(",")]
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            raise ValueError(f"weights must be three comma-separated numbers (dense,sparse,colbert) such as "
                             f"'0.4,0.2,0.4', got {weights!r}") from None
    else:
        try:
            values = tuple(float(w) for w in weights)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"weights must be three numbers (dense, sparse, colbert), got {weights!r}") from exc
    if len(values) != 3:
        raise ValueError(f"weights must be three numbers (dense, sparse, colbert), got {len(values)}: {weights!r}")
    if any(not np.isfinite(w) for w in values):
        raise ValueError(f"weights must be finite, got {weights!r}")
    if any(w < 0 for w in values):
        raise ValueError(f"weights must not be negative, got {weights!r}")
    if sum(values) == 0:
        raise ValueError(f"weights must not all be zero, got {weights!r}")
    return values  # type: ignore[return-value]


def weighted_score(
    dense: float, sparse: float, colbert: float, weights: Sequence[float] = DEFAULT_WEIGHTS
) -> float:
    """Reference weighted hybrid: ``(w_d*dense + w_s*sparse + w_c*colbert) / (w_d + w_s + w_c)``."""
    w_d, w_s, w_c = validate_weights(weights)
    return (w_d * dense + w_s * sparse + w_c * colbert) / (w_d + w_s + w_c)


def compute_scores(
    query: M3Output, document: M3Output, weights: Sequence[float] = DEFAULT_WEIGHTS
) -> dict[str, float]:
    """All reference scores of one (query, document) pair of one-row outputs.

    Returns the keys of the reference ``compute_score``: ``dense``, ``sparse``, ``colbert``,
    ``sparse+dense`` and ``colbert+sparse+dense``.
    """
    w_d, w_s, w_c = validate_weights(weights)
    d = dense_score(query.dense[0], document.dense[0])
    s = sparse_score(query.sparse[0], document.sparse[0])
    c = colbert_score(query.colbert[0], document.colbert[0])
    return {
        "dense": d,
        "sparse": s,
        "colbert": c,
        "sparse+dense": (w_s * s + w_d * d) / (w_s + w_d) if (w_s + w_d) else 0.0,
        "colbert+sparse+dense": weighted_score(d, s, c, (w_d, w_s, w_c)),
    }
