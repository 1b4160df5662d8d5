"""Dense, sparse, ColBERT and hybrid search over a Milvus collection (sync and async).

How each request runs (P = ``prefetch_limit``):

- ``dense`` / ``sparse``: one Milvus search (metric IP); scores are the reference scores.
- ``hybrid`` + ``weighted``: Milvus ``hybrid_search`` of the dense top-P and the sparse top-P with
  ``WeightedRanker(norm_score=False)`` returns the union of both candidate lists; their dense and
  sparse vectors, fetched by primary key, then give every candidate its exact dense and sparse scores
  (also one that only one of the two searches found, which Milvus alone would score 0 on the other
  side), its exact ColBERT score
  (MaxSim sum / query tokens) when ``w_c > 0``, and the reference weighted score
  ``(w_d*dense + w_s*sparse + w_c*colbert) / (w_d + w_s + w_c)``.
- ``hybrid`` + ``rrf``: weighted reciprocal rank fusion ``sum_m w_m / (k + rank_m)`` (rank from 1, as
  Milvus' ``RRFRanker``) over the dense top-P, the sparse top-P and the ColBERT ranking of their union;
  a zero weight drops that list. When ``w_d == w_s`` Milvus ``hybrid_search`` with ``RRFRanker(k)``
  fuses dense and sparse (scaled by ``w_d``); otherwise (``RRFRanker`` has no weights) the two lists
  come from two searches and are fused here.
- ``hybrid`` + ``dbsf``: Milvus has no DBSF ranker, so the two lists come from two searches and are
  fused here with the ColBERT list: each list's scores are mapped to ``(s - (mu - 3 sigma)) / (6 sigma)``
  clipped to [0, 1] (0.5 when sigma is 0) and summed over the lists a candidate appears in
  (unweighted, as Qdrant's DBSF; a zero weight drops that list).
- ``colbert``: the candidates of the dense + sparse searches ranked by their exact ColBERT score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .._fusion import dbsf_normalize, refuse_colbert
from .._query import MILVUS_MAX_LIMIT, Hit, QueryPlan, first_phase_weights, make_plan
from ..encoder.scoring import DEFAULT_WEIGHTS
from ..encoder.types import M3Output
from ._colbert import MAX_QUERY_ROWS, companion_scores, doc_gen, native_scores
from ._driver import Program, call, check_async_client, check_sync_client, run_async, run_sync
from ._filters import compile_filter, in_list
from ._reads import check_consistency, with_consistency
from ._schema import (
    DENSE,
    DOC_ID,
    GEN,
    METADATA,
    N_TOKENS,
    PK,
    SPARSE,
    TEXT,
    CollectionInfo,
    filter_expr,
    open_collection,
    state,
)
from .fields import MilvusFields, foreign_search_program

_BASE_FIELDS = [PK, DOC_ID, TEXT, METADATA, N_TOKENS, GEN]
_IP = {"metric_type": "IP"}


@dataclass
class _Candidate:
    entity: dict[str, Any]
    scores: dict[str, float] = field(default_factory=dict)
    fused: float = 0.0


def _entity(hit: Any) -> dict[str, Any]:
    entity = hit["entity"] if "entity" in hit else hit
    return dict(entity)


def _needs(plan: QueryPlan) -> tuple[bool, bool, bool]:
    """Which query representations a plan needs: dense, sparse, colbert."""
    if plan.mode == "dense":
        return True, False, False
    if plan.mode == "sparse":
        return False, True, False
    if plan.mode == "colbert":
        return True, True, True
    return True, True, "colbert" in plan.uses


def _query_output(query: Any, encoder: Any, query_output: M3Output | None, plan: QueryPlan) -> tuple[M3Output, tuple]:
    want = _needs(plan)
    if query_output is None:
        if encoder is None:
            raise ValueError("encoder is required (or pass query_output=, a precomputed encoding of the query)")
        if not isinstance(query, str):
            raise TypeError(f"query must be a string, got {type(query).__name__}")
        return None, want  # encoded by the caller (sync or async)
    if len(query_output) != 1:
        raise ValueError(f"query_output must hold exactly one encoded query, got {len(query_output)}")
    for needed, value, name in zip(want, (query_output.dense, query_output.sparse, query_output.colbert),
                                   ("dense", "sparse", "colbert"), strict=True):
        if needed and value is None:
            raise ValueError(f"query_output has no {name} representation, which mode={plan.mode!r} needs")
    return query_output, want


def _encode_kwargs(want: tuple) -> dict[str, bool]:
    return {"return_dense": want[0], "return_sparse": want[1], "return_colbert": want[2]}


def _hit(entity: dict[str, Any], score: float, scores: dict[str, float]) -> Hit:
    return Hit(id=entity[DOC_ID], score=float(score), text=entity[TEXT], metadata=dict(entity.get(METADATA) or {}),
               scores={k: float(v) for k, v in scores.items()})


def _colbert_scores(info: CollectionInfo, q_colbert: np.ndarray, cands: list[_Candidate]) -> Program:
    entities = [c.entity for c in cands]
    if info.layout == "native":
        scores = yield from native_scores(info, q_colbert, [e[PK] for e in entities])
    else:
        scores = yield from companion_scores(info, q_colbert, [doc_gen(e[PK], e[GEN]) for e in entities],
                                             [int(e[N_TOKENS]) for e in entities])
    for cand, score in zip(cands, scores, strict=True):
        cand.scores["colbert"] = float(score)


def _exact_scores(name: str, cands: dict[str, _Candidate], qd: np.ndarray | None, qs: dict[int, float] | None
                  ) -> Program:
    """Set every candidate's exact dense and sparse score (0.0 for a candidate deleted meanwhile)."""
    pks = list(cands)
    rows = yield call("query", name, filter=in_list(PK, pks), output_fields=[PK, DENSE, SPARSE], limit=len(pks))
    found = [r for r in rows if r[PK] in cands]
    dense = np.asarray([r[DENSE] for r in found], dtype=np.float32).reshape(len(found), -1)
    dense_scores = dense @ qd if qd is not None and len(found) else np.zeros(len(found))
    for cand in cands.values():
        cand.scores["dense"] = cand.scores["sparse"] = 0.0
    for row, d in zip(found, dense_scores, strict=True):
        scores = cands[row[PK]].scores
        scores["dense"] = float(d)
        doc = row[SPARSE] or {}
        scores["sparse"] = float(sum(w * doc.get(t, 0.0) for t, w in qs.items())) if qs else 0.0


def _ranks(values: Sequence[float]) -> np.ndarray:
    """1-based rank of each value in descending order."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def search_program(client: Any, name: str, plan: QueryPlan, q: M3Output, query_filter: Any,
                   filter_params: Any = None) -> Program:
    """The whole search as one program (see the module docstring)."""
    from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

    info = yield from open_collection(client, name)
    base_fields = _BASE_FIELDS
    if not info.has_colbert:  # made with with_colbert=False: dense + sparse; the ColBERT weight is dropped
        refuse_colbert(plan, name)
        if plan.fusion == "weighted" and plan.weights[0] + plan.weights[1] <= 0:
            raise ValueError(f"weights {plan.weights} give dense and sparse no weight, and collection {name!r} has "
                             "no ColBERT vectors (it was made with with_colbert=False)")
        plan = replace(plan, weights=(plan.weights[0], plan.weights[1], 0.0))
        base_fields = [f for f in _BASE_FIELDS if f not in (N_TOKENS, GEN)]
    expr = yield from filter_expr(client, query_filter, filter_params)
    qd = None if q.dense is None else np.asarray(q.dense[0], dtype=np.float32)
    if qd is not None and qd.shape != (info.dim,):
        raise ValueError(f"the query's dense vector has dimension {qd.shape[-1]}; collection {name!r} stores "
                         f"{info.dim}. Use the encoder the collection was built with")
    qs = None if q.sparse is None else {int(t): float(w) for t, w in q.sparse[0].items() if w > 0}
    qc = None if q.colbert is None or not info.has_colbert else np.asarray(q.colbert[0], dtype=np.float32)
    if qc is not None and len(qc) == 0:
        raise ValueError("the query's ColBERT vectors are empty")

    if plan.mode in ("dense", "sparse"):
        if plan.mode == "sparse" and not qs:
            return []  # no lexical weight in the query: nothing can match
        data = [qd] if plan.mode == "dense" else [qs]
        res = yield call("search", name, data=data, anns_field=DENSE if plan.mode == "dense" else SPARSE,
                         limit=plan.limit, output_fields=base_fields, search_params=_IP, **expr.kwargs())
        return [_hit(_entity(h), h["distance"], {plan.mode: h["distance"]}) for h in res[0]]

    P = plan.prefetch_limit
    cands: dict[str, _Candidate] = {}
    weighted = plan.mode == "hybrid" and plan.fusion == "weighted"
    lists: dict[str, list[str]] = {}  # dbsf: per-list order of candidate pks
    w_d, w_s, w_c = plan.weights
    # per-list fusion here when Milvus' RRFRanker cannot express it (it has no weights)
    by_lists = plan.mode == "hybrid" and (plan.fusion == "dbsf" or (plan.fusion == "rrf" and not (w_d == w_s > 0)))
    if by_lists:
        searches = [("dense", DENSE, qd)] + ([("sparse", SPARSE, qs)] if qs else [])
        for mode, anns, data in searches:
            res = yield call("search", name, data=[data], anns_field=anns, limit=P, output_fields=base_fields,
                             search_params=_IP, **expr.kwargs())
            lists[mode] = []
            for h in res[0]:
                ent = _entity(h)
                cand = cands.setdefault(ent[PK], _Candidate(ent))
                cand.scores[mode] = float(h["distance"])
                lists[mode].append(ent[PK])
    else:
        fields = base_fields
        reqs = [AnnSearchRequest([qd], DENSE, _IP, limit=P, **expr.ann_kwargs())]
        if qs:
            reqs.append(AnnSearchRequest([qs], SPARSE, _IP, limit=P, **expr.ann_kwargs()))
        if len(reqs) == 1:  # no lexical weight in the query: the dense list alone
            res = yield call("search", name, data=[qd], anns_field=DENSE, limit=P, output_fields=fields,
                             search_params=_IP, **expr.kwargs())
            fused = [1.0 / (plan.rrf_k + rank) for rank in range(1, len(res[0]) + 1)]
        else:
            if weighted:
                total = w_d + w_s
                ranker = WeightedRanker(w_d / total, w_s / total, norm_score=False) if total > 0 else \
                    WeightedRanker(0.5, 0.5, norm_score=False)
            else:
                ranker = RRFRanker(plan.rrf_k)
            res = yield call("hybrid_search", name, reqs, ranker, limit=min(2 * P, MAX_QUERY_ROWS),
                             output_fields=fields)
            fused = [float(h["distance"]) for h in res[0]]
        for h, score in zip(res[0], fused, strict=True):
            ent = _entity(h)
            cands[ent[PK]] = _Candidate(ent, fused=score)
    if not cands:
        return []
    ordered = list(cands.values())

    if weighted:
        # exact dense and sparse scores of every candidate, whichever of the two searches found it, from
        # their vectors fetched by primary key: a point look-up per candidate, where a search restricted to
        # the candidates (`pk in [...]`) scans the whole collection (milvus-lite: 2 x ~50 ms at 10k chunks)
        yield from _exact_scores(name, cands, qd, qs)
    if weighted and w_c > 0 and plan.rescore_limit is not None and plan.rescore_limit < len(ordered):
        # first phase: the K best by w_d*dense + w_s*sparse (equal weights if both are 0) get a ColBERT score
        first_d, first_s = first_phase_weights(w_d, w_s)
        ordered.sort(key=lambda c: (-(first_d * c.scores["dense"] + first_s * c.scores["sparse"]), c.entity[DOC_ID]))
        ordered = ordered[: plan.rescore_limit]
    if qc is not None and not (weighted and w_c == 0):  # a query_output may carry unused ColBERT rows
        yield from _colbert_scores(info, qc, ordered)

    if plan.mode == "colbert":
        for cand in ordered:
            cand.fused = cand.scores["colbert"]
    elif weighted:
        for cand in ordered:
            s = cand.scores
            cand.fused = (w_d * s["dense"] + w_s * s["sparse"] + w_c * s.get("colbert", 0.0)) / (w_d + w_s + w_c)
    elif plan.fusion == "rrf" and not by_lists:  # Milvus fused dense + sparse with equal weights w_d == w_s
        ranks = _ranks([c.scores["colbert"] for c in ordered]) if w_c > 0 else [0] * len(ordered)
        for cand, rank in zip(ordered, ranks, strict=True):
            cand.fused = w_d * cand.fused + (w_c / (plan.rrf_k + int(rank)) if w_c > 0 else 0.0)
    else:  # rrf with unequal weights, dbsf: fuse the lists whose weight is not zero
        if qc is not None:
            lists["colbert"] = [c.entity[PK] for c in sorted(ordered, key=lambda c: -c.scores["colbert"])]
        weight = {"dense": w_d, "sparse": w_s, "colbert": w_c}
        for mode, pks in lists.items():
            if weight[mode] == 0:
                continue
            if plan.fusion == "rrf":
                for rank, pk in enumerate(pks, start=1):
                    cands[pk].fused += weight[mode] / (plan.rrf_k + rank)
            else:
                for pk, norm in zip(pks, dbsf_normalize([cands[pk].scores[mode] for pk in pks]), strict=True):
                    cands[pk].fused += float(norm)
    ordered.sort(key=lambda c: (-c.fused, c.entity[DOC_ID]))
    return [_hit(c.entity, c.fused, c.scores) for c in ordered[:plan.limit]]


def _program(client: Any, name: str, plan: QueryPlan, q: M3Output, query_filter: Any,
             fields: MilvusFields | None, filter_params: Any = None) -> Program:
    if fields is None:
        return search_program(client, name, plan, q, query_filter, filter_params)
    if not isinstance(fields, MilvusFields):
        raise TypeError(f"fields must be a MilvusFields, got {type(fields).__name__}")
    return foreign_search_program(client, name, plan, q, query_filter, fields, filter_params)


def _known_without_colbert(client: Any, name: str) -> bool:
    """Whether this client already opened ``name`` and found it made without ColBERT (its query needs none)."""
    info = state(client).ready.get(name)
    return isinstance(info, CollectionInfo) and not info.has_colbert


def _prepare(query: Any, collection_name: str, encoder: Any, limit: int, mode: str, fusion: str,
             weights: Sequence[float], prefetch_limit: int, query_filter: Any, rrf_k: int,
             query_output: M3Output | None, rescore_limit: int | str | None = None, filter_params: Any = None
             ) -> tuple[QueryPlan, M3Output | None, tuple, str]:
    if not isinstance(collection_name, str) or not collection_name:
        raise ValueError(f"collection_name must be a non-empty string, got {collection_name!r}")
    plan = make_plan(mode, fusion, weights, limit, prefetch_limit, rrf_k, rescore_limit,
                     max_limit=MILVUS_MAX_LIMIT, engine="Milvus")
    q, want = _query_output(query, encoder, query_output, plan)
    compile_filter(query_filter, filter_params)  # validate it before any database call
    return plan, q, want, query_filter


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
    fields: MilvusFields | None = None,
    consistency_level: str | None = None,
    filter_params: dict[str, Any] | None = None,
) -> list[Hit]:
    """Search a collection written by ``upsert_documents``.

    Args:
        client: ``pymilvus.MilvusClient``.
        query: the query text (encoded with ``encoder.encode_queries``), unless ``query_output`` is given.
        mode: ``dense``, ``sparse``, ``colbert`` or ``hybrid``.
        fusion: ``weighted`` (reference BGE-M3 weighted score), ``rrf`` or ``dbsf`` (hybrid only).
        weights: dense, sparse, ColBERT weights of ``weighted``.
        prefetch_limit: candidates taken from each of the dense and sparse searches.
        query_filter: a neutral filter (``Condition`` / ``AllOf`` / ``AnyOf``) or a Milvus boolean
            expression string (e.g. ``'metadata["lang"] == "en"'``, or the template
            ``'metadata["lang"] == {lang}'`` with ``filter_params``); applied in every search.
        rrf_k: the RRF constant.
        rescore_limit: ``weighted`` with a ColBERT weight: ColBERT re-scores only this many candidates, the
            best by their weighted dense + sparse score (``None``, the default: ``limit + max(5, limit // 2)``;
            ``"all"``: every candidate, the exact reference ranking of the candidates).
        query_output: a precomputed one-row ``M3Output`` of the query (skips the encoder).
        fields: the field names of a collection this package did not create (``MilvusFields``; see
            ``m3_integrations.milvus.fields``): dense + sparse, no ColBERT.
        consistency_level: ``Strong``, ``Bounded``, ``Session`` or ``Eventually`` for this search's reads
            (``None``: the collection's, ``Strong`` unless it was created with another level).
        filter_params: the values of the ``{name}`` placeholders of a ``query_filter`` string (pymilvus'
            ``filter_params``): sent as they are to a Milvus server >= 2.5, rendered into the expression by one
            tested literal encoder on milvus-lite and older servers (see ``m3_integrations.milvus._filters``).

    Returns:
        Up to ``limit`` hits, best first, with per-mode reference scores in ``Hit.scores``.
    """
    check_sync_client(client, "hybrid_search")
    check_consistency(consistency_level)
    plan, q, want, expr = _prepare(query, collection_name, encoder, limit, mode, fusion, weights, prefetch_limit,
                                   query_filter, rrf_k, query_output, rescore_limit, filter_params)
    if fields is not None or _known_without_colbert(client, collection_name):
        want = (want[0], want[1], False)  # no ColBERT vectors to compare the query's with
    if q is None:
        q = encoder.encode_queries([query], **_encode_kwargs(want))
    return run_sync(client, with_consistency(_program(client, collection_name, plan, q, expr, fields, filter_params),
                                             consistency_level))


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
    fields: MilvusFields | None = None,
    consistency_level: str | None = None,
    filter_params: dict[str, Any] | None = None,
) -> list[Hit]:
    """``hybrid_search`` over a ``pymilvus.AsyncMilvusClient`` (the query encodes in a worker thread)."""
    check_async_client(client, "ahybrid_search")
    check_consistency(consistency_level)
    plan, q, want, expr = _prepare(query, collection_name, encoder, limit, mode, fusion, weights, prefetch_limit,
                                   query_filter, rrf_k, query_output, rescore_limit, filter_params)
    if fields is not None or _known_without_colbert(client, collection_name):
        want = (want[0], want[1], False)
    if q is None:
        q = await encoder.aencode_queries([query], **_encode_kwargs(want))
    program = _program(client, collection_name, plan, q, expr, fields, filter_params)
    return await run_async(client, with_consistency(program, consistency_level))
