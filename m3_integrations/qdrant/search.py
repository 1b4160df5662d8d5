"""``hybrid_search``: dense, sparse, ColBERT or fused BGE-M3 retrieval in one Query API request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from .._fusion import refuse_colbert
from .._query import Hit, QueryPlan, make_plan
from ..encoder.scoring import DEFAULT_WEIGHTS
from ..encoder.types import M3Output
from . import _plans
from ._backends import is_not_found
from ._filters import has_id_filter, to_qdrant_filter
from ._programs import arun as run_program_async
from ._programs import run as run_program
from ._schema import (
    CollectionNotFoundError,
    QdrantSchema,
    check_collection_name,
    mismatch_error,
    problems,
    stores_colbert,
)
from .documents import _schema, backend_for, is_async
from .fields import QdrantFields
from .fields import search_program as fields_program


def needed(plan: QueryPlan) -> tuple[str, ...]:
    """Representations the request needs from the encoder (ColBERT re-scores dense+sparse candidates)."""
    if plan.mode in ("dense", "sparse"):
        return (plan.mode,)
    if plan.mode == "colbert":
        return ("dense", "sparse", "colbert")
    return ("dense", "sparse", "colbert") if plan.weights[2] > 0 else ("dense", "sparse")


def _check_output(output: Any, kinds: tuple[str, ...]) -> M3Output:
    if not isinstance(output, M3Output):
        raise TypeError(f"query_output must be an M3Output, got {type(output).__name__}")
    if len(output) != 1:
        raise ValueError(f"query_output must hold exactly one query, got {len(output)}")
    for kind in kinds:
        if getattr(output, kind) is None:
            raise ValueError(f"query_output has no {kind} part, which mode/fusion/weights need")
    return output


def _query_dim(output: M3Output) -> int | None:
    if output.dense is not None:
        return int(output.dense.shape[1])
    if output.colbert is not None:
        return int(output.colbert[0].shape[1])
    return None


class _Search:
    """Validated inputs of one search, and the conversion of results to ``Hit``s."""

    def __init__(self, client, query, collection_name, encoder, limit, mode, fusion, weights, prefetch_limit,
                 query_filter, rrf_k, query_output, schema, rescore_limit) -> None:
        self.backend = backend_for(client)
        self.plan = make_plan(mode, fusion, weights, limit, prefetch_limit, rrf_k, rescore_limit)
        self.name = check_collection_name(collection_name)
        self.schema = _schema(schema)
        if self.schema.with_colbert is False:
            self.plan = without_colbert(self.plan, self.name)
        self.native = to_qdrant_filter(query_filter, self.schema)
        self.kinds = needed(self.plan)
        self.output = None if query_output is None else _check_output(query_output, self.kinds)
        if self.output is None:
            if encoder is None:
                raise ValueError("encoder is required to encode the query: pass encoder=M3Encoder(...) "
                                 "or a precomputed query_output")
            if not isinstance(query, str):
                raise TypeError(f"query must be a string, got {type(query).__name__}")
        self.encoder = encoder
        self.query = query
        self.vectors: dict[str, _plans.Nearest] = {}  # the query's vectors, shared by every request

    def encode_kwargs(self) -> dict[str, bool]:
        return {"return_dense": "dense" in self.kinds, "return_sparse": "sparse" in self.kinds,
                "return_colbert": "colbert" in self.kinds}

    def request(self) -> _plans.Request:
        # a store that keeps a quantized copy of the ColBERT rows (Qdrant Edge) scores the ColBERT candidates
        # from it and only the shortlist exactly
        estimates = getattr(self.backend, "colbert_estimates", None)
        uses_colbert = self.plan.mode == "hybrid" and self.plan.fusion == "weighted" and self.plan.weights[2] > 0
        approximate = estimates(self.name, self.schema.colbert) if estimates and uses_colbert else None
        return _plans.build_request(self.plan, self.output, self.schema, self.native, self.vectors, approximate)

    def diagnose(self, exc: BaseException, exists: bool, info: Any) -> BaseException:
        """A clear error for a failed request (unknown collection, incompatible layout), else ``exc``."""
        if not exists:
            return CollectionNotFoundError(
                f"collection {self.name!r} does not exist; create it with upsert_documents first")
        if info is not None:
            found = problems(info, self.schema, _query_dim(self.output))
            if found:
                return mismatch_error(self.name, found, info.points)
        return exc

    def hits(self, request: _plans.Request, scored: list) -> list[Hit]:
        out = []
        key = self.schema
        for _pid, score, payload in scored:
            payload = payload or {}
            value = score / request.score_divisor
            out.append(Hit(id=str(payload.get(key.id_key)), score=value, text=payload.get(key.text_key, ""),
                           metadata=dict(payload.get(key.metadata_key) or {}),
                           scores={request.score_mode: value} if request.score_mode else {}))
        return out

    def score_stages(self, scored: list) -> list[tuple[str, _plans.Stage]]:
        ids = [pid for pid, _, _ in scored]
        return _plans.score_requests(self.output, self.kinds, self.schema, has_id_filter(ids), len(ids),
                                     self.vectors)

    def known_scores(self, scored: list, found: dict[str, dict[Any, float | None]] | None
                     ) -> dict[str, dict[Any, float | None]] | None:
        """The per-mode scores of the hits, if the engine's evaluation met every one of them (else ``None``)."""
        if found is None:
            return None
        for kind in self.kinds:
            if kind == "sparse" and not _plans.has_sparse_tokens(self.output):
                continue
            if any(pid not in found.get(kind, {}) for pid, _, _ in scored):
                return None
        return found

    def looked_up_scores(self, stages: list, results: list) -> dict[str, dict[Any, float | None]]:
        return {kind: {pid: score for pid, score, _ in points} for (kind, _), points in zip(stages, results,
                                                                                           strict=True)}

    def fill_scores(self, hits: list[Hit], scored: list, scores: dict[str, dict[Any, float | None]]) -> list[Hit]:
        """Set ``Hit.scores`` (reference scale) from raw engine scores by kind and point id."""
        n_colbert = len(self.output.colbert[0]) if self.output.colbert is not None else 1
        for hit, (pid, _, _) in zip(hits, scored, strict=True):
            hit.scores = {}
            for kind in self.kinds:
                raw = scores.get(kind, {}).get(pid)
                # a hit without a sparse score shares no token with the query: 0
                hit.scores[kind] = 0.0 if raw is None else (raw / n_colbert if kind == "colbert" else raw)
        return hits


def without_colbert(plan: QueryPlan, name: str) -> QueryPlan:
    """The plan on a collection without ColBERT vectors: ``hybrid`` fuses dense + sparse (the ColBERT weight is
    dropped: weighted = ``(w_d * dense + w_s * sparse) / (w_d + w_s)``); ``colbert`` is refused."""
    refuse_colbert(plan, name)
    w_d, w_s, _ = plan.weights
    if plan.mode == "hybrid" and w_d + w_s <= 0:
        raise ValueError(f"weights {plan.weights} give dense and sparse no weight, and collection {name!r} has no "
                         "ColBERT vectors")
    return replace(plan, weights=(w_d, w_s, 0.0))


def _no_colbert_schema(search: _Search, info: Any) -> QdrantSchema | None:
    """The schema to search again with when a request failed on a collection this package made without ColBERT
    (recorded with it) and the schema left ``with_colbert`` open; ``None`` otherwise."""
    if info is None or search.schema.with_colbert is not None or problems(info, search.schema, None):
        return None
    if stores_colbert(info, search.schema):
        return None
    return replace(search.schema, with_colbert=False, colbert_storage=None, colbert_pool_factor=None)


def _fields_query(query: Any, collection_name: str, encoder: Any, limit: int, mode: str, fusion: str,
                  weights: Sequence[float], prefetch_limit: int, rrf_k: int, rescore_limit: int | str | None,
                  query_output: M3Output | None, fields: Any, schema: Any = None) -> tuple[QueryPlan, M3Output | None]:
    if not isinstance(fields, QdrantFields):
        raise TypeError(f"fields must be a QdrantFields, got {type(fields).__name__}")
    if schema is not None:
        raise ValueError("pass schema= (a collection of this package's layout) or fields= (a collection made "
                         "elsewhere), not both")
    check_collection_name(collection_name)
    plan = make_plan(mode, fusion, weights, limit, prefetch_limit, rrf_k, rescore_limit)
    if query_output is not None:
        return plan, _check_output(query_output, ("dense", "sparse") if plan.mode == "hybrid" else (plan.mode,)
                                   if plan.mode != "colbert" else ())
    if encoder is None:
        raise ValueError("encoder is required to encode the query: pass encoder=M3Encoder(...) "
                         "or a precomputed query_output")
    if not isinstance(query, str):
        raise TypeError(f"query must be a string, got {type(query).__name__}")
    return plan, None


def hybrid_search(
    client: Any,
    query: str,
    collection_name: str = "docs",
    encoder: Any = None,
    limit: int = 10,
    mode: str = "hybrid",
    fusion: str = "weighted",
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    prefetch_limit: int = 100,
    query_filter: Any = None,
    *,
    rrf_k: int = 60,
    rescore_limit: int | str | None = None,
    query_output: M3Output | None = None,
    schema: QdrantSchema | None = None,
    fields: QdrantFields | None = None,
) -> list[Hit]:
    """Search a BGE-M3 collection with one Qdrant Query API request.

    Args:
        client: a ``QdrantClient`` or a ``QdrantEdgeStore`` (``ahybrid_search`` for ``AsyncQdrantClient``).
            On a collection without ColBERT vectors (``QdrantSchema(with_colbert=False)``, recorded with the
            collection) ``hybrid`` fuses dense + sparse (the ColBERT weight is dropped) and ``colbert`` is refused.
        query: the query text (ignored when ``query_output`` is given).
        collection_name: the collection ``upsert_documents`` filled.
        encoder: an ``M3Encoder`` (not needed with ``query_output``).
        limit: number of hits.
        mode: ``dense``, ``sparse``, ``colbert`` (dense+sparse candidates re-scored by ColBERT) or ``hybrid``.
        fusion: ``weighted`` (the reference BGE-M3 weighted score, computed in Qdrant by a formula), ``rrf``
            (weighted reciprocal rank fusion, ``rrf_k``) or ``dbsf`` (unweighted in Qdrant; a zero weight
            drops that representation).
        weights: (dense, sparse, colbert) weights.
        prefetch_limit: candidates taken from each of dense and sparse.
        query_filter: a neutral filter (``Condition``/``AllOf``/``AnyOf`` over metadata) or a ``models.Filter``;
            applied inside every prefetch.
        rrf_k: the RRF constant (Qdrant: ``1 / (k + rank)`` with ranks from 0).
        rescore_limit: ``weighted`` with a ColBERT weight: re-score and fuse only this many candidates, the
            best by their weighted dense + sparse score (ColBERT's cost grows with the candidates it
            re-scores). ``None`` (default): ``limit + max(5, limit // 2)``, 15 for 10 hits
            (``default_rescore_limit``: the same top-10 as re-scoring every candidate in 99.7-100% of the hits on
            the benchmarks, at a sixth of the cost); ``"all"`` re-scores every candidate: the exact reference
            ranking of the candidate set.
        query_output: a precomputed one-row encoding of the query (skips the encoder).
        schema: the collection's names (default ``QdrantSchema()``).
        fields: the names of a collection this package did not create (``QdrantFields``, e.g. one made by
            langchain-qdrant, or a Qdrant Edge shard made with ``qdrant_edge``; see
            ``m3_integrations.qdrant.fields``): dense + sparse, no ColBERT.

    Returns:
        Hits, best first. ``Hit.scores`` holds the dense / sparse / ColBERT scores (reference scale) of each
        hit; for ``hybrid`` they come from one extra batched look-up restricted to the returned ids (on Qdrant
        Edge a weighted search finds them on the way and needs no look-up).
    """
    if fields is not None:
        backend = backend_for(client)
        if is_async(backend):
            raise TypeError("hybrid_search got an AsyncQdrantClient; use ahybrid_search (the async twin)")
        plan, output = _fields_query(query, collection_name, encoder, limit, mode, fusion, weights, prefetch_limit,
                                     rrf_k, rescore_limit, query_output, fields, schema)
        if output is None:
            output = encoder.encode_queries([query], return_dense=True, return_sparse=True, return_colbert=False)
        return run_program(backend, fields_program(collection_name, plan, output, query_filter, fields))
    search = _Search(client, query, collection_name, encoder, limit, mode, fusion, weights, prefetch_limit,
                     query_filter, rrf_k, query_output, schema, rescore_limit)
    backend = search.backend
    if is_async(backend):
        raise TypeError("hybrid_search got an AsyncQdrantClient; use ahybrid_search (the async twin)")
    if search.output is None:
        search.output = encoder.encode_queries([query], **search.encode_kwargs())
    request = search.request()
    if request.stage is None:
        if not backend.exists(search.name):
            raise search.diagnose(LookupError(), False, None)
        return []
    run = getattr(backend, "query_with_mode_scores", None)  # Qdrant Edge: per-mode scores come along
    try:
        scored, found = run(search.name, request.stage) if run else (backend.query(search.name, request.stage), None)
    except CollectionNotFoundError:
        raise
    except Exception as exc:
        exists = backend.exists(search.name)
        info = backend.describe(search.name) if exists else None
        no_colbert = _no_colbert_schema(search, info)
        if no_colbert is not None:
            return hybrid_search(client, query, collection_name, encoder, limit, mode, fusion, weights, prefetch_limit,
                                 query_filter, rrf_k=rrf_k, rescore_limit=rescore_limit, query_output=search.output,
                                 schema=no_colbert)
        error = search.diagnose(exc, exists, info)
        if error is exc and not is_not_found(exc):
            raise
        raise error from exc
    hits = search.hits(request, scored)
    if search.plan.mode == "hybrid" and hits:
        scores = search.known_scores(scored, found)
        if scores is None:
            stages = search.score_stages(scored)
            scores = search.looked_up_scores(stages, backend.query_batch(search.name, [s for _, s in stages]))
        search.fill_scores(hits, scored, scores)
    return hits


async def ahybrid_search(
    client: Any,
    query: str,
    collection_name: str = "docs",
    encoder: Any = None,
    limit: int = 10,
    mode: str = "hybrid",
    fusion: str = "weighted",
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    prefetch_limit: int = 100,
    query_filter: Any = None,
    *,
    rrf_k: int = 60,
    rescore_limit: int | str | None = None,
    query_output: M3Output | None = None,
    schema: QdrantSchema | None = None,
    fields: QdrantFields | None = None,
) -> list[Hit]:
    """Async twin of ``hybrid_search`` (``AsyncQdrantClient``; other clients run in a worker thread)."""
    import asyncio

    if fields is not None and is_async(backend_for(client)):
        plan, output = _fields_query(query, collection_name, encoder, limit, mode, fusion, weights, prefetch_limit,
                                     rrf_k, rescore_limit, query_output, fields, schema)
        if output is None:
            output = await encoder.aencode_queries([query], return_dense=True, return_sparse=True,
                                                   return_colbert=False)
        return await run_program_async(backend_for(client),
                                       fields_program(collection_name, plan, output, query_filter, fields))
    search = _Search(client, query, collection_name, encoder, limit, mode, fusion, weights, prefetch_limit,
                     query_filter, rrf_k, query_output, schema, rescore_limit)
    backend = search.backend
    if not is_async(backend):
        return await asyncio.to_thread(
            hybrid_search, client, query, collection_name, encoder, limit, mode, fusion, weights, prefetch_limit,
            query_filter, rrf_k=rrf_k, rescore_limit=rescore_limit, query_output=query_output, schema=schema,
            fields=fields)
    if search.output is None:
        search.output = await encoder.aencode_queries([query], **search.encode_kwargs())
    request = search.request()
    if request.stage is None:
        if not await backend.exists(search.name):
            raise search.diagnose(LookupError(), False, None)
        return []
    try:
        scored = await backend.query(search.name, request.stage)
    except Exception as exc:
        exists = await backend.exists(search.name)
        info = await backend.describe(search.name) if exists else None
        no_colbert = _no_colbert_schema(search, info)
        if no_colbert is not None:
            return await ahybrid_search(client, query, collection_name, encoder, limit, mode, fusion, weights,
                                        prefetch_limit, query_filter, rrf_k=rrf_k, rescore_limit=rescore_limit,
                                        query_output=search.output, schema=no_colbert)
        error = search.diagnose(exc, exists, info)
        if error is exc and not is_not_found(exc):
            raise
        raise error from exc
    hits = search.hits(request, scored)
    if search.plan.mode == "hybrid" and hits:
        stages = search.score_stages(scored)
        results = await backend.query_batch(search.name, [s for _, s in stages])
        search.fill_scores(hits, scored, search.looked_up_scores(stages, results))
    return hits
