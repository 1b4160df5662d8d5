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
  With ``rescore_limit`` K, a first phase keeps the K best candidates by ``w_d*dense + w_s*sparse`` (the
  weighted score without its ColBERT term), and the three re-scores (and the formula) run over those K
  only: ColBERT, the costly part, scores K points. K >= the number of candidates gives the exact plan.
* ``hybrid`` + ``rrf`` / ``dbsf``: sources dense top-P, sparse top-P and the ColBERT re-score of their union
  (those with a non-zero weight), fused by ``RrfQuery(k, weights)`` or DBSF (which Qdrant does not weight).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qdrant_client import models

from .._query import QueryPlan, first_phase_weights
from ..encoder.scoring import colbert_query_length
from ..encoder.types import M3Output
from ._schema import QdrantSchema

APPROXIMATE = "colbert_approx"
"""The kind of a ColBERT scoring from the quantized codes (an estimate that picks the exact shortlist)."""


@dataclass
class Nearest:
    """Nearest search (or re-score of prefetched candidates) by one named vector.

    Kind ``colbert`` scores from the stored rows (a quantized index, if any, is ignored); ``APPROXIMATE``
    scores the same vector from its quantized codes only (no re-scoring from the stored rows).
    """

    using: str
    kind: str  # "dense" | "sparse" | "colbert" | APPROXIMATE
    vector: Any  # 1-d float32 array | (indices, values) | 2-d float32 array
    rendered: Any = field(default=None, repr=False, compare=False)  # an engine's cached rendering
    base: Nearest | None = field(default=None, repr=False, compare=False)  # the same vector, exact (its rendering)


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


def has_sparse_tokens(query: M3Output) -> bool:
    """Whether the one-row encoding ``query`` has lexical weights (without them sparse matches nothing)."""
    return query.sparse is not None and len(query.sparse[0]) > 0


def _cached_vector(query: M3Output, kind: str, schema: QdrantSchema, cache: dict[str, Nearest]) -> Nearest:
    """The query's nearest search by one representation, one object per kind in ``cache``, so an engine
    renders each vector once however many stages (and requests) use it."""
    if kind not in cache:
        cache[kind] = _new_vector(query, kind, schema, cache)
    return cache[kind]


def _new_vector(query: M3Output, kind: str, schema: QdrantSchema, cache: dict[str, Nearest]) -> Nearest:
    if kind == APPROXIMATE:
        exact = _cached_vector(query, "colbert", schema, cache)
        return Nearest(exact.using, APPROXIMATE, exact.vector, base=exact)
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


def build_request(plan: QueryPlan, query: M3Output, schema: QdrantSchema, native_filter: models.Filter | None,
                  vectors: dict[str, Nearest] | None = None, approximate: float | None = None) -> Request:
    """The one Query API request answering ``plan`` for the one-row encoding ``query``.

    ``vectors``: a cache of the query's ``Nearest`` objects, shared with ``score_requests``.
    ``approximate``: the collection's ColBERT vector has a quantized index whose MaxSim estimates are about
    ``approximate`` times the exact ones; the ColBERT phases then score their candidates from the codes and only
    ``plan.shortlist`` of them, the best by that estimate, exactly (``None``: every candidate exactly).
    """
    p = plan.prefetch_limit
    cache: dict[str, Nearest] = {} if vectors is None else vectors

    def vector(kind: str) -> Nearest:
        return _cached_vector(query, kind, schema, cache)

    has_sparse = has_sparse_tokens(query)

    def leaf(kind: str) -> Stage:
        return Stage(vector(kind), p, filter=native_filter)

    if plan.mode == "dense":
        return Request(Stage(vector("dense"), plan.limit, filter=native_filter), score_mode="dense")
    if plan.mode == "sparse":
        if not has_sparse:
            return Request(None)
        return Request(Stage(vector("sparse"), plan.limit, filter=native_filter), score_mode="sparse")

    candidates = [leaf("dense")] + ([leaf("sparse")] if has_sparse else [])
    pool = len(candidates) * p  # the union is never larger

    if plan.mode == "colbert":  # the ColBERT ranking itself: every candidate scored exactly
        colbert = vector("colbert")
        return Request(Stage(colbert, plan.limit, prefetch=candidates), score_divisor=len(colbert.vector),
                       score_mode="colbert")

    w_d, w_s, w_c = plan.weights
    if not has_sparse:
        w_s = 0.0
        if w_d == 0 and w_c == 0:  # only sparse was weighted and the query has no sparse tokens
            return Request(None)
    if plan.fusion == "weighted":
        total = sum(plan.weights)  # the reference divides by the sum of all three weights
        if w_c > 0 and plan.rescore_limit is not None and plan.rescore_limit < pool:
            # first phase: the K best candidates by w_d*dense + w_s*sparse (equal weights if both are 0)
            first_d, first_s = first_phase_weights(w_d, w_s)
            candidates = [_weighted_sum(vector, {"dense": first_d, "sparse": first_s if has_sparse else 0.0},
                                        candidates, pool, plan.rescore_limit)]
            pool = plan.rescore_limit
        n_colbert = len(vector("colbert").vector) if w_c > 0 else 1
        coefficients = {"dense": w_d / total, "sparse": w_s / total, "colbert": w_c / (total * n_colbert)}
        shortlist = plan.shortlist if approximate else None
        if w_c > 0 and shortlist is not None and shortlist < pool:
            # the weighted score with ColBERT estimated from the codes picks the candidates scored exactly
            estimate = {"dense": coefficients["dense"], "sparse": coefficients["sparse"],
                        APPROXIMATE: coefficients["colbert"] / approximate}
            candidates = [_weighted_sum(vector, estimate, candidates, pool, shortlist)]
            pool = shortlist
        return Request(_weighted_sum(vector, coefficients, candidates, pool, plan.limit))

    sources: list[Stage] = []
    weights: list[float] = []
    if w_d > 0:
        sources.append(candidates[0])
        weights.append(w_d)
    if w_s > 0:
        sources.append(candidates[1])
        weights.append(w_s)
    if w_c > 0:
        sources.append(Stage(vector("colbert"), pool, prefetch=candidates))
        weights.append(w_c)
    fusion: Rrf | Dbsf = Rrf(plan.rrf_k, weights) if plan.fusion == "rrf" else Dbsf()
    return Request(Stage(fusion, plan.limit, prefetch=sources))


def _weighted_sum(vector: Callable[[str], Nearest], coefficients: dict[str, float], candidates: list[Stage],
                  pool: int, limit: int) -> Stage:
    """``sum coefficient * score`` over the candidates, each re-scored by every representation with a
    non-zero coefficient; a candidate sharing no token with the query has sparse score 0 (the default)."""
    prefetches: list[Stage] = []
    factors: list[float] = []
    defaults: dict[int, float] = {}
    for kind, coefficient in coefficients.items():
        if coefficient == 0:
            continue
        if kind == "sparse":
            defaults[len(prefetches)] = 0.0
        prefetches.append(Stage(vector(kind), pool, prefetch=candidates))
        factors.append(coefficient)
    return Stage(WeightedSum(factors, defaults), limit, prefetch=prefetches)


def score_requests(query: M3Output, kinds: tuple[str, ...], schema: QdrantSchema, ids_filter: models.Filter,
                   n_ids: int, vectors: dict[str, Nearest] | None = None) -> list[tuple[str, Stage]]:
    """Per-mode score look-ups restricted to the returned point ids (one batch, no vectors transferred)."""
    vectors = {} if vectors is None else vectors
    out = []
    for kind in kinds:
        if kind == "sparse" and not has_sparse_tokens(query):
            continue
        out.append((kind, Stage(_cached_vector(query, kind, schema, vectors), n_ids, filter=ids_filter)))
    return out


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


def quantization_params(query: Any) -> str | None:
    """How a stage's search treats quantized vectors: ``"rescore"`` (dense: see ``rescores_quantized``),
    ``"approximate"`` (ColBERT estimated from its quantized codes, not re-scored), ``"ignore"`` (ColBERT from the
    stored rows: a quantized index, if the collection has one, would only add work), else ``None``."""
    if not isinstance(query, Nearest):
        return None
    if query.kind == "dense":
        return "rescore"
    if query.kind == APPROXIMATE:
        return "approximate"
    return "ignore" if query.kind == "colbert" else None


def rescores_quantized(query: Any) -> bool:
    """Whether a stage's search must ask for float32 re-scoring: a dense search may walk int8-quantized
    copies (``QdrantSchema.dense_quantization``), and its scores must be the exact cosine similarities.
    Asked in every dense stage, re-scoring ones included (the engine re-scores prefetched points with the
    quantized copies too unless asked not to; measured on Qdrant Edge); harmless without quantization."""
    return isinstance(query, Nearest) and query.kind == "dense"


_PARAMS = {"rescore": models.SearchParams(quantization=models.QuantizationSearchParams(rescore=True)),
           "approximate": models.SearchParams(quantization=models.QuantizationSearchParams(rescore=False)),
           "ignore": models.SearchParams(quantization=models.QuantizationSearchParams(ignore=True))}


def _model_params(query: Any, params: bool) -> models.SearchParams | None:
    kind = quantization_params(query)
    return _PARAMS[kind] if params and kind else None


def to_prefetch(stage: Stage, params: bool = True) -> models.Prefetch:
    """Render a stage as a qdrant-client ``Prefetch`` (``params=False``: no search params, which qdrant-client
    local mode, always exact, warns about)."""
    query, using = _model_query(stage.query)
    return models.Prefetch(prefetch=[to_prefetch(s, params) for s in stage.prefetch] or None, query=query,
                           using=using, filter=stage.filter, limit=stage.limit,
                           params=_model_params(stage.query, params))


def to_query_kwargs(stage: Stage, params: bool = True) -> dict[str, Any]:
    """Keyword arguments of ``QdrantClient.query_points`` for a top-level stage."""
    query, using = _model_query(stage.query)
    return {"prefetch": [to_prefetch(s, params) for s in stage.prefetch] or None, "query": query, "using": using,
            "query_filter": stage.filter, "limit": stage.limit, "search_params": _model_params(stage.query, params)}


def to_query_request(stage: Stage, params: bool = True) -> models.QueryRequest:
    """A top-level stage as a ``models.QueryRequest`` (for ``query_batch_points``)."""
    query, using = _model_query(stage.query)
    return models.QueryRequest(prefetch=[to_prefetch(s, params) for s in stage.prefetch] or None, query=query,
                               using=using, filter=stage.filter, limit=stage.limit,
                               params=_model_params(stage.query, params), with_payload=False)
