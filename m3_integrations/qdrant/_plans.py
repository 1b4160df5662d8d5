"""Query API requests for each mode and fusion, as a small engine-neutral tree.

``build_request`` turns a validated ``QueryPlan`` and the query's encoding into a ``Stage`` tree;
``to_models`` renders it as qdrant-client ``models`` (``edge.py`` renders the same tree for Qdrant Edge).

Request shapes (P = prefetch_limit, F = the user's filter, applied in the leaf prefetches):

* ``dense`` / ``sparse``: one nearest search with F.
* ``colbert``: candidates = dense top-P ∪ sparse top-P (with F), re-scored by ColBERT MaxSim.
* ``hybrid`` + ``weighted``: three prefetches that each re-score the same candidate set (dense top-P ∪
  sparse top-P) by one representation, then a ``FormulaQuery``
  ``(w_d/W)*$score[0] + (w_s/W)*$score[1] + (w_c/(W*n))*$score[2]`` with ``W = w_d+w_s+w_c`` and ``n`` the
  number of query token vectors. Every candidate is re-scored by every representation, so a document found
  only by sparse still gets its true dense score. Sparse re-scoring returns no point for a candidate that
  shares no token with the query; its true sparse score is 0, which is the formula's default.
* ``hybrid`` + ``rrf`` / ``dbsf``: sources dense top-P, sparse top-P and the ColBERT re-score of their union
  (those with a non-zero weight), fused by ``RrfQuery(k, weights)`` or DBSF (which Qdrant does not weight).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from qdrant_client import models

from .._query import QueryPlan
from ..encoder.scoring import colbert_query_length
from ..encoder.types import M3Output
from ._schema import QdrantSchema


@dataclass
class Nearest:
    """Nearest search (or re-score of prefetched candidates) by one named vector."""

    using: str
    kind: str  # "dense" | "sparse" | "colbert"
    vector: Any  # 1-d float32 array | (indices, values) | 2-d float32 array


@dataclass
class Rrf:
    """Reciprocal rank fusion of the prefetches (Qdrant: ``sum_i 1 / ((rank_i + 1) / w_i + k - 1)``)."""

    k: int
    weights: list[float] | None = None


@dataclass
class Dbsf:
    """Distribution-based score fusion of the prefetches."""


@dataclass
class WeightedSum:
    """``sum_i coefficients[i] * $score[i]``; a point missing from prefetch i scores ``defaults[i]`` there."""

    coefficients: list[float]
    defaults: dict[int, float] = field(default_factory=dict)


@dataclass
class Stage:
    """One request or prefetch: a scoring query over the union of ``prefetch`` results (or the collection)."""

    query: Nearest | Rrf | Dbsf | WeightedSum
    limit: int
    prefetch: list[Stage] = field(default_factory=list)
    filter: models.Filter | None = None


@dataclass
class Request:
    """A built request and how to read its scores back."""

    stage: Stage | None  # None: nothing can match (e.g. a sparse query without tokens)
    score_divisor: float = 1.0  # single-mode ColBERT: MaxSim sum -> reference scale
    score_mode: str | None = None  # the mode the returned score is a per-mode score of, if any


def _vector(query: M3Output, kind: str, schema: QdrantSchema) -> Nearest:
    if kind == "dense":
        if query.dense is None:
            raise ValueError("query_output has no dense vector, which this search needs")
        return Nearest(schema.dense, "dense", np.asarray(query.dense[0], dtype=np.float32))
    if kind == "sparse":
        if query.sparse is None:
            raise ValueError("query_output has no sparse weights, which this search needs")
        return Nearest(schema.sparse, "sparse", M3Output.sparse_to_arrays(query.sparse[0]))
    if query.colbert is None:
        raise ValueError("query_output has no ColBERT vectors, which this search needs")
    rows = np.asarray(query.colbert[0], dtype=np.float32)
    colbert_query_length(rows)  # raises on an empty query
    return Nearest(schema.colbert, "colbert", rows)


def build_request(plan: QueryPlan, query: M3Output, schema: QdrantSchema, native_filter: models.Filter | None
                  ) -> Request:
    """The one Query API request answering ``plan`` for the one-row encoding ``query``."""
    p = plan.prefetch_limit
    has_sparse = query.sparse is not None and len(query.sparse[0]) > 0

    def leaf(kind: str) -> Stage:
        return Stage(_vector(query, kind, schema), p, filter=native_filter)

    if plan.mode == "dense":
        return Request(Stage(_vector(query, "dense", schema), plan.limit, filter=native_filter), score_mode="dense")
    if plan.mode == "sparse":
        if not has_sparse:
            return Request(None)
        return Request(Stage(_vector(query, "sparse", schema), plan.limit, filter=native_filter), score_mode="sparse")

    candidates = [leaf("dense")] + ([leaf("sparse")] if has_sparse else [])
    pool = len(candidates) * p  # the union is never larger

    if plan.mode == "colbert":
        colbert = _vector(query, "colbert", schema)
        return Request(Stage(colbert, plan.limit, prefetch=candidates), score_divisor=len(colbert.vector),
                       score_mode="colbert")

    w_d, w_s, w_c = plan.weights
    if not has_sparse:
        w_s = 0.0
        if w_d == 0 and w_c == 0:  # only sparse was weighted and the query has no sparse tokens
            return Request(None)
    if plan.fusion == "weighted":
        total = sum(plan.weights)  # the reference divides by the sum of all three weights
        prefetches: list[Stage] = []
        coefficients: list[float] = []
        defaults: dict[int, float] = {}
        for kind, weight in (("dense", w_d), ("sparse", w_s), ("colbert", w_c)):
            if weight == 0:
                continue
            vec = _vector(query, kind, schema)
            coefficient = weight / total
            if kind == "colbert":
                coefficient /= len(vec.vector)
            if kind == "sparse":
                defaults[len(prefetches)] = 0.0  # no shared token: the true sparse score is 0
            prefetches.append(Stage(vec, pool, prefetch=candidates))
            coefficients.append(coefficient)
        return Request(Stage(WeightedSum(coefficients, defaults), plan.limit, prefetch=prefetches))

    sources: list[Stage] = []
    weights: list[float] = []
    if w_d > 0:
        sources.append(candidates[0])
        weights.append(w_d)
    if w_s > 0:
        sources.append(candidates[1])
        weights.append(w_s)
    if w_c > 0:
        sources.append(Stage(_vector(query, "colbert", schema), pool, prefetch=candidates))
        weights.append(w_c)
    fusion: Rrf | Dbsf = Rrf(plan.rrf_k, weights) if plan.fusion == "rrf" else Dbsf()
    return Request(Stage(fusion, plan.limit, prefetch=sources))


def score_requests(query: M3Output, kinds: tuple[str, ...], schema: QdrantSchema, ids_filter: models.Filter,
                   n_ids: int) -> list[tuple[str, Stage]]:
    """Per-mode score look-ups restricted to the returned point ids (one batch, no vectors transferred)."""
    out = []
    for kind in kinds:
        if kind == "sparse" and (query.sparse is None or not query.sparse[0]):
            continue
        out.append((kind, Stage(_vector(query, kind, schema), n_ids, filter=ids_filter)))
    return out


def candidate_leaves(stage: Stage) -> list[Stage]:
    """The candidate searches of a tree: leaf nearest searches that a re-scoring stage takes as prefetches.

    A one-request plan repeats them in every branch that re-scores the same candidates (the Query API has no
    way to share a prefetch); an embedded engine, with no round trip to save, runs each once instead.
    """
    found: dict[int, Stage] = {}

    def walk(node: Stage) -> None:
        rescoring = isinstance(node.query, Nearest)
        for child in node.prefetch:
            if rescoring and not child.prefetch and isinstance(child.query, Nearest):
                found[id(child)] = child
            else:
                walk(child)

    walk(stage)
    return list(found.values())


def with_known_candidates(stage: Stage, known: dict[int, list[Any]], ids_filter: Callable[[list[Any]], Any]
                          ) -> Stage:
    """``stage`` with the candidate searches in ``known`` (``id(leaf)`` -> the point ids it returned) replaced.

    A re-scoring stage over known candidates becomes the same nearest query restricted to their union (exact
    scores of exactly those points); a known leaf used on its own (an RRF/DBSF source) becomes its query
    restricted to its ids, which returns the same points with the same scores.
    """
    if stage.prefetch and isinstance(stage.query, Nearest) and all(id(c) in known for c in stage.prefetch):
        union = list(dict.fromkeys(pid for c in stage.prefetch for pid in known[id(c)]))
        return replace(stage, prefetch=[], filter=_and(ids_filter(union), stage.filter))
    children = []
    for child in stage.prefetch:
        if id(child) in known:
            ids = known[id(child)]
            children.append(replace(child, limit=max(len(ids), 1), filter=ids_filter(ids)))
        else:
            children.append(with_known_candidates(child, known, ids_filter))
    return replace(stage, prefetch=children)


def _and(first: Any, second: Any) -> Any:
    return first if second is None else models.Filter(must=[first, second])


# ---------------------------------------------------------------------------------- qdrant-client rendering
def _model_query(query: Any) -> tuple[Any, str | None]:
    if isinstance(query, Nearest):
        if query.kind == "sparse":
            indices, values = query.vector
            return models.SparseVector(indices=indices, values=values), query.using
        return query.vector.tolist(), query.using
    if isinstance(query, Rrf):
        return models.RrfQuery(rrf=models.Rrf(k=query.k, weights=query.weights)), None
    if isinstance(query, Dbsf):
        return models.FusionQuery(fusion=models.Fusion.DBSF), None
    terms = [models.MultExpression(mult=[c, f"$score[{i}]"]) for i, c in enumerate(query.coefficients)]
    formula = terms[0] if len(terms) == 1 else models.SumExpression(sum=terms)
    defaults = {f"$score[{i}]": v for i, v in query.defaults.items()}
    return models.FormulaQuery(formula=formula, defaults=defaults), None


def to_prefetch(stage: Stage) -> models.Prefetch:
    """Render a stage as a qdrant-client ``Prefetch``."""
    query, using = _model_query(stage.query)
    return models.Prefetch(prefetch=[to_prefetch(s) for s in stage.prefetch] or None, query=query, using=using,
                           filter=stage.filter, limit=stage.limit)


def to_query_kwargs(stage: Stage) -> dict[str, Any]:
    """Keyword arguments of ``QdrantClient.query_points`` for a top-level stage."""
    query, using = _model_query(stage.query)
    return {"prefetch": [to_prefetch(s) for s in stage.prefetch] or None, "query": query, "using": using,
            "query_filter": stage.filter, "limit": stage.limit}


def to_query_request(stage: Stage) -> models.QueryRequest:
    """A top-level stage as a ``models.QueryRequest`` (for ``query_batch_points``)."""
    query, using = _model_query(stage.query)
    return models.QueryRequest(prefetch=[to_prefetch(s) for s in stage.prefetch] or None, query=query, using=using,
                               filter=stage.filter, limit=stage.limit, with_payload=False)
