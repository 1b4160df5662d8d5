"""Searching a Qdrant collection this package did not create: ``QdrantFields`` names its vectors and payload keys.

The defaults are those of langchain-qdrant's ``QdrantVectorStore`` (hybrid mode): the unnamed dense vector, the
sparse vector ``langchain-sparse``, the text under ``page_content`` and the metadata under ``metadata``; such a
collection (built with ``M3Embeddings`` + ``M3SparseEmbeddings``) is searched by passing ``fields=QdrantFields()``
to ``hybrid_search``. No ColBERT vectors:

- ``dense`` / ``sparse``: one Query API request on that vector.
- ``hybrid``: the dense top-P and the sparse top-P; a candidate found by only one of them gets its exact score on
  the other side from one request restricted to those candidates (``HasId``), then ``weighted``
  ``(w_d * dense + w_s * sparse) / (w_d + w_s)`` (the ColBERT weight is dropped), ``rrf`` or ``dbsf`` fusion
  (``m3_integrations._fusion``).
- ``colbert`` is refused with a clear error.

Works with a ``QdrantClient`` (``hybrid_search``) and an ``AsyncQdrantClient`` (``ahybrid_search``).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from qdrant_client import models

from .._errors import CollectionNotFoundError, SchemaMismatchError
from .._fusion import fuse_dense_sparse, gather_candidates, refuse_colbert
from .._query import Hit, QueryPlan
from ._filters import and_filters, has_id_filter, to_qdrant_filter

Program = Generator[tuple, Any, Any]


@dataclass(frozen=True)
class QdrantFields:
    """Vector names and payload keys of an existing Qdrant collection (one this package did not create).

    Attributes:
        dense: the dense vector's name (``""``: the collection's unnamed vector); cosine or dot distance.
        sparse: the sparse vector's name (no IDF modifier: BGE-M3 weights are the scores).
        text: the payload key of the text.
        metadata: the payload key of the metadata (``None``: the whole payload but the text; filters then
            need a qdrant ``models.Filter``).
        id: the payload key returned as ``Hit.id`` (``None``: the point id).
    """

    dense: str = ""
    sparse: str = "langchain-sparse"
    text: str = "page_content"
    metadata: str | None = "metadata"
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.dense, str):
            raise ValueError(f"QdrantFields.dense must be a vector name ('' for the unnamed one), got {self.dense!r}")
        for attr in ("sparse", "text", "metadata", "id"):
            value = getattr(self, attr)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"QdrantFields.{attr} must be a non-empty name, got {value!r}")


@dataclass(frozen=True)
class _Keys:
    metadata_key: str  # what ``to_qdrant_filter`` reads


def _call(method: str, **kwargs: Any) -> tuple:
    return (method, kwargs)


def run(client: Any, program: Program) -> Any:
    """Run a program on a ``QdrantClient``."""
    try:
        step = next(program)
        while True:
            step = program.send(getattr(client, step[0])(**step[1]))
    except StopIteration as stop:
        return stop.value


async def arun(client: Any, program: Program) -> Any:
    """Await a program on an ``AsyncQdrantClient``."""
    try:
        step = next(program)
        while True:
            step = program.send(await getattr(client, step[0])(**step[1]))
    except StopIteration as stop:
        return stop.value


def _check(name: str, params: models.CollectionParams, fields: QdrantFields) -> None:
    """A ``SchemaMismatchError`` naming what the collection lacks for ``fields``."""
    vectors = params.vectors
    named = {"": vectors} if isinstance(vectors, models.VectorParams) else dict(vectors or {})
    sparse = dict(params.sparse_vectors or {})
    problems = []
    dense = named.get(fields.dense)
    if dense is None:
        problems.append(f"dense vector {fields.dense or '(unnamed)'!r} is missing "
                        f"(dense vectors: {sorted(named) or 'none'})")
    elif dense.distance not in (models.Distance.COSINE, models.Distance.DOT):
        problems.append(f"dense vector {fields.dense!r} uses {dense.distance} distance; BGE-M3 needs cosine or dot")
    elif dense.multivector_config is not None:
        problems.append(f"vector {fields.dense!r} is a multivector, expected a single dense vector")
    sp = sparse.get(fields.sparse)
    if sp is None:
        problems.append(f"sparse vector {fields.sparse!r} is missing (sparse vectors: {sorted(sparse) or 'none'})")
    elif sp.modifier is not None and sp.modifier != models.Modifier.NONE:
        problems.append(f"sparse vector {fields.sparse!r} has the {sp.modifier} modifier: its scores are not BGE-M3 "
                        "lexical scores")
    if problems:
        raise SchemaMismatchError(f"collection {name!r} cannot be searched with {fields}: " + "; ".join(problems)
                                  + ". Nothing was changed.")


def search_program(name: str, plan: QueryPlan, q: Any, query_filter: Any, fields: QdrantFields) -> Program:
    """The search of a collection made elsewhere (see the module docstring)."""
    refuse_colbert(plan, name)
    if not (yield _call("collection_exists", collection_name=name)):
        raise CollectionNotFoundError(f"collection {name!r} does not exist")
    info = yield _call("get_collection", collection_name=name)
    _check(name, info.config.params, fields)
    if query_filter is not None and not isinstance(query_filter, models.Filter) and fields.metadata is None:
        raise ValueError("a neutral filter needs QdrantFields.metadata (the payload key of the metadata); "
                         "pass a qdrant models.Filter instead")
    native = to_qdrant_filter(query_filter, _Keys(fields.metadata or "metadata"))
    qs = None if q.sparse is None else {int(t): float(w) for t, w in q.sparse[0].items() if w > 0}
    queries = {"dense": None if q.dense is None else [float(x) for x in q.dense[0]],
               "sparse": None if not qs else models.SparseVector(indices=list(qs), values=list(qs.values()))}
    using = {"dense": fields.dense or None, "sparse": fields.sparse}

    def search(mode: str, limit: int, ids: list[Any] | None = None) -> Program:
        flt = and_filters(native, has_id_filter(ids)) if ids is not None else native
        res = yield _call("query_points", collection_name=name, query=queries[mode], using=using[mode], limit=limit,
                          query_filter=flt, with_payload=True)
        return [(p.id, p.payload or {}, float(p.score)) for p in res.points]

    if plan.mode in ("dense", "sparse"):
        if queries[plan.mode] is None:
            return []
        found = yield from search(plan.mode, plan.limit)
        return [_hit(fields, pid, payload, score, {plan.mode: score}) for pid, payload, score in found]
    modes = ["dense"] + (["sparse"] if queries["sparse"] is not None else [])
    payloads, scores, lists = yield from gather_candidates(search, modes, plan.prefetch_limit, lambda ids: ids)
    if not payloads:
        return []
    return [_hit(fields, pid, payloads[pid], score, scores[pid])
            for pid, score in fuse_dense_sparse(plan, lists, scores, name)]


def _hit(fields: QdrantFields, pid: Any, payload: dict, score: float, scores: dict[str, float]) -> Hit:
    if fields.metadata is not None:
        metadata = dict(payload.get(fields.metadata) or {})
    else:
        metadata = {k: v for k, v in payload.items() if k != fields.text}
    doc_id = payload.get(fields.id) if fields.id is not None else pid
    return Hit(id=str(doc_id), score=float(score), text=payload.get(fields.text) or "", metadata=metadata,
               scores={k: float(v) for k, v in scores.items()})
