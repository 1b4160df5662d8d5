"""Qdrant collections this package did not create: ``QdrantFields`` names their vectors and payload keys.

The defaults are those of langchain-qdrant's ``QdrantVectorStore`` (hybrid mode): the unnamed dense vector, the
sparse vector ``langchain-sparse``, the text under ``page_content`` and the metadata under ``metadata``; such a
collection (built with ``M3Embeddings`` + ``M3SparseEmbeddings``) is used by passing ``fields=QdrantFields()`` to
the store functions. Works with a ``QdrantClient``, an ``AsyncQdrantClient`` (the ``a*`` twins) and a
``QdrantEdgeStore`` (a shard made with ``qdrant_edge`` under the store's path). No ColBERT vectors:

- ``dense`` / ``sparse``: one Query API request on that vector.
- ``hybrid``: the dense top-P and the sparse top-P; a candidate found by only one of them gets its exact score on
  the other side from one request restricted to those candidates (``HasId``), then ``weighted``
  ``(w_d * dense + w_s * sparse) / (w_d + w_s)`` (the ColBERT weight is dropped), ``rrf`` or ``dbsf`` fusion
  (``m3_integrations._fusion``).
- ``colbert`` is refused with a clear error.
- ``upsert_documents(..., fields=...)`` writes dense and sparse vectors and the payload in the collection's own
  layout (see ``point_id_for`` and ``guard`` for which point a document goes to and when a stored point is
  replaced); ``get_documents`` / ``delete_documents`` / ``count_documents`` / ``delete_by_filter`` read and delete
  by the same ids and payload keys.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from qdrant_client import models

from .._errors import CollectionNotFoundError, SchemaMismatchError
from .._fusion import fuse_dense_sparse, gather_candidates, refuse_colbert
from .._ingest import Document, point_id
from .._query import Hit, QueryPlan
from ..encoder.types import M3Output
from ._filters import and_filters, has_id_filter, to_qdrant_filter
from ._plans import Nearest, Stage
from ._programs import Program
from ._schema import CollectionInfo


@dataclass(frozen=True)
class QdrantFields:
    """Vector names and payload keys of an existing Qdrant collection (one this package did not create).

    Attributes:
        dense: the dense vector's name (``""``: the collection's unnamed vector); cosine or dot distance.
        sparse: the sparse vector's name (no IDF modifier: BGE-M3 weights are the scores).
        text: the payload key of the text.
        metadata: the payload key of the metadata (``None``: the whole payload but the text (and ``id``) is the
            metadata, and a neutral filter's keys are top-level payload keys).
        id: the payload key of the document's id, returned as ``Hit.id`` / ``Document.id`` (``None``: the point
            id is the document's id).
    """

    dense: str = ""
    sparse: str = "langchain-sparse"
    text: str = "page_content"
    metadata: str | None = "metadata"
    id: str | None = None

    colbert: ClassVar[None] = None  # what the drivers read: these collections have no ColBERT vector

    def __post_init__(self) -> None:
        if not isinstance(self.dense, str):
            raise ValueError(f"QdrantFields.dense must be a vector name ('' for the unnamed one), got {self.dense!r}")
        for attr in ("sparse", "text", "metadata", "id"):
            value = getattr(self, attr)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"QdrantFields.{attr} must be a non-empty name, got {value!r}")
        keys = [k for k in (self.text, self.metadata, self.id) if k is not None]
        if len(set(keys)) != len(keys):
            raise ValueError(f"QdrantFields.text, .metadata and .id must be different payload keys, got {keys}")


def check_fields(name: str, info: CollectionInfo, fields: QdrantFields, dim: int | None = None, *,
                 writing: bool = False) -> None:
    """A ``SchemaMismatchError`` naming what the collection lacks for ``fields`` and how to fix it.

    ``dim``: the encoder's dense size (checked when given). ``writing``: also refuse a collection with vectors this
    package would not fill (points written here would lack them) and one this package made (its own layout).
    """
    problems = []
    dense = info.vectors.get(fields.dense)
    shown = repr(fields.dense) if fields.dense else "'' (the unnamed vector)"
    if dense is None:
        problems.append(f"dense vector {shown} is missing (dense vectors: {sorted(info.vectors) or 'none'}; "
                        "pass QdrantFields(dense=NAME), '' for the unnamed one)")
    elif dense.multivector:
        problems.append(f"vector {shown} is a multivector, expected a single dense vector")
    elif dense.distance not in ("cosine", "dot"):
        problems.append(f"dense vector {shown} uses {dense.distance} distance; BGE-M3 needs cosine or dot")
    elif dim is not None and dense.size != dim:
        problems.append(f"dense vector {shown} has {dense.size} dimensions, the encoder gives {dim} (the collection "
                        "was filled by another model: use a collection made with this one)")
    if fields.sparse not in info.sparse:
        problems.append(f"sparse vector {fields.sparse!r} is missing (sparse vectors: {sorted(info.sparse) or 'none'};"
                        " pass QdrantFields(sparse=NAME))")
    elif fields.sparse in info.sparse_modifiers:
        problems.append(f"sparse vector {fields.sparse!r} has the {info.sparse_modifiers[fields.sparse]} modifier: its"
                        " scores are not BGE-M3 lexical scores")
    if writing and not problems:
        if info.recorded:
            problems.append("it was made by m3_integrations (its own layout, with its own payload keys): write it "
                            "without fields=, passing schema=QdrantSchema(...) if it uses other names")
        others = sorted(set(info.vectors) - {fields.dense}) + sorted(info.sparse - {fields.sparse})
        if others and not info.recorded:
            problems.append(f"it also has the vectors {others}, which this package does not compute for it: points "
                            "written here would lack them (write it with the code that made it)")
    if problems:
        verb = "written" if writing else "searched"
        raise SchemaMismatchError(f"collection {name!r} cannot be {verb} with {fields}: " + "; ".join(problems)
                                  + ". Nothing was changed.")


def not_found(name: str) -> CollectionNotFoundError:
    """The error for a missing collection with ``fields=`` (this package never creates one in another layout)."""
    return CollectionNotFoundError(
        f"collection {name!r} does not exist; fields= names the layout of an existing collection made elsewhere "
        "(create it first, e.g. with langchain-qdrant), or leave out fields= to create one in this package's layout")


# ------------------------------------------------------------------------------------------------- ids
_UINT = re.compile(r"0|[1-9][0-9]{0,19}")


def point_id_for(key: str) -> str | int:
    """The point of a document key in a collection made elsewhere.

    A UUID (any spelling: langchain-qdrant writes ``uuid4().hex``) or an unsigned integer is the point id itself,
    so the ids other code wrote and this package reads back (``Hit.id``, ``Document.id``) name the same point; any
    other key maps to a deterministic UUID (as in this package's own collections).
    """
    try:
        return str(uuid.UUID(key))
    except ValueError:
        pass
    if _UINT.fullmatch(key) and int(key) < 2**64:
        return int(key)
    return point_id(Document(text="", id=key))


def document_key(doc: Document, fields: QdrantFields) -> str:
    """The key ``upsert_documents`` returns for a document: its id (``fields.id`` set), else its point id."""
    if fields.id is not None:
        return doc.key
    return str(point_id_for(doc.key))


def payload_for(doc: Document, fields: QdrantFields) -> dict[str, Any]:
    """The payload of a document in the collection's layout."""
    if fields.metadata is None:
        clash = sorted({fields.text, fields.id} & set(doc.metadata))
        if clash:
            raise ValueError(f"document {doc.key!r} has the metadata keys {clash}, which are the payload keys of the "
                             f"text / id in this collection (QdrantFields.metadata is None); rename them")
        payload = dict(doc.metadata)
    else:
        payload = {fields.metadata: doc.metadata}
    payload[fields.text] = doc.text
    if fields.id is not None:
        payload[fields.id] = doc.key
    return payload


def _metadata_of(payload: dict[str, Any], fields: QdrantFields) -> dict[str, Any]:
    if fields.metadata is not None:
        value = payload.get(fields.metadata)
        return dict(value) if isinstance(value, dict) else {}
    return {k: v for k, v in payload.items() if k not in (fields.text, fields.id)}


def rows(batch: list[Document], output: M3Output, fields: QdrantFields) -> list[tuple]:
    """Driver rows (no ColBERT) of an encoded batch."""
    return [(point_id_for(doc.key), output.dense[i], M3Output.sparse_to_arrays(output.sparse[i]), None,
             payload_for(doc, fields)) for i, doc in enumerate(batch)]


def guard(name: str, batch: list[Document], found: list[tuple[Any, dict]], fields: QdrantFields) -> set[str]:
    """Check the points the batch would write over; returns the keys of documents stored exactly as they are.

    Stored data is never silently replaced: a point that already exists is replaced only when it holds the same
    document: the document has an id (a point named by id is the document the caller means to update; with
    ``fields.id``, the point must also carry that id, or none), or it has none and the point holds the same text.
    Anything else (a text-derived id whose point holds another text, or no text under ``fields.text``: a point
    this package did not write) raises ``ValueError`` before the batch is encoded or written.
    """
    stored = {str(pid): payload or {} for pid, payload in found}
    same = set()
    for doc in batch:
        payload_for(doc, fields)  # a metadata key clashing with the text / id key fails before anything is written
        pid = str(point_id_for(doc.key))
        payload = stored.get(pid)
        if payload is None:
            continue
        if doc.id is None and payload.get(fields.text) != doc.text:
            raise ValueError(
                f"point {pid} of collection {name!r} holds another document (text {str(payload.get(fields.text))!r:.60}"
                f"), not one with this text ({doc.text!r:.60}); it is not replaced. Give the document an id of its "
                "own (or the point's id, to replace that point on purpose)")
        if fields.id is not None and payload.get(fields.id) not in (None, doc.key):
            raise ValueError(f"point {pid} of collection {name!r} holds the document {payload.get(fields.id)!r} "
                             f"(payload key {fields.id!r}), not {doc.key!r}; it is not replaced")
        if payload.get(fields.text) == doc.text and _metadata_of(payload, fields) == doc.metadata:
            same.add(doc.key)
    return same


# ------------------------------------------------------------------------------------------------ filters
@dataclass(frozen=True)
class _Keys:
    metadata_key: str  # what ``to_qdrant_filter`` reads ("": top-level payload keys)


def native_filter(query_filter: Any, fields: QdrantFields) -> models.Filter | None:
    """A neutral filter over the documents' metadata (or a ``models.Filter``) in the collection's payload keys."""
    return to_qdrant_filter(query_filter, _Keys(fields.metadata or ""))


def _ids_filter(keys: list[str], fields: QdrantFields) -> models.Filter:
    if fields.id is not None:
        return models.Filter(must=[models.FieldCondition(key=fields.id, match=models.MatchAny(any=keys))])
    return has_id_filter(list(dict.fromkeys(point_id_for(k) for k in keys)))


def _key_of(pid: Any, payload: dict[str, Any], fields: QdrantFields) -> str:
    return str(payload.get(fields.id)) if fields.id is not None else str(pid)


def to_document(pid: Any, payload: dict[str, Any] | None, fields: QdrantFields) -> Document:
    """A stored point as a ``Document`` (its id: the document key, as ``upsert_documents`` returned it)."""
    payload = payload or {}
    text = payload.get(fields.text)
    return Document(text=text if isinstance(text, str) else "", id=_key_of(pid, payload, fields),
                    metadata=_metadata_of(payload, fields))


# ----------------------------------------------------------------------------------------------- programs
def _described(name: str, fields: QdrantFields) -> Program:
    if not (yield ("exists", name)):
        raise not_found(name)
    info = yield ("describe", name)
    check_fields(name, info, fields)
    return info


def get_program(name: str, keys: list[str] | None, native: Any, limit: int | None, fields: QdrantFields) -> Program:
    """``get_documents`` of a collection made elsewhere."""
    if not (yield ("exists", name)):
        raise not_found(name)
    if keys is None:
        return [to_document(pid, p, fields) for pid, p in (yield ("scroll", name, native, limit))]
    if not keys:
        return []
    found = yield ("scroll", name, and_filters(_ids_filter(keys, fields), native), None)
    by_key = {_key_of(pid, p or {}, fields): (pid, p) for pid, p in found}
    wanted = {k: (k if fields.id is not None else str(point_id_for(k))) for k in dict.fromkeys(keys)}
    docs = [to_document(*by_key[key], fields) for key in wanted.values() if key in by_key]
    return docs if limit is None else docs[:limit]


def delete_program(name: str, keys: list[str], fields: QdrantFields) -> Program:
    """``delete_documents`` of a collection made elsewhere (unknown keys are ignored)."""
    if not (yield ("exists", name)):
        raise not_found(name)
    if not keys:
        return
    found = yield ("scroll", name, _ids_filter(keys, fields), None)
    if found:
        yield ("delete_ids", name, [pid for pid, _ in found])


def search_program(name: str, plan: QueryPlan, q: M3Output, query_filter: Any, fields: QdrantFields) -> Program:
    """The search of a collection made elsewhere (see the module docstring)."""
    refuse_colbert(plan, name)
    yield from _described(name, fields)
    native = native_filter(query_filter, fields)
    qs = None if q.sparse is None else {int(t): float(w) for t, w in q.sparse[0].items() if w > 0}
    queries = {
        # the unnamed vector is asked for without a name (``using=None``), as qdrant-client's own calls do
        "dense": None if q.dense is None else Nearest(fields.dense or None, "dense",
                                                      np.asarray(q.dense[0], dtype=np.float32)),
        "sparse": None if not qs else Nearest(fields.sparse, "sparse", (list(qs), list(qs.values()))),
    }

    def search(mode: str, limit: int, ids: list[Any] | None = None) -> Program:
        flt = and_filters(native, has_id_filter(ids)) if ids is not None else native
        found = yield ("query", name, Stage(queries[mode], limit, filter=flt))
        return [(pid, payload or {}, float(score)) for pid, score, payload in found]

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
    doc = to_document(pid, payload, fields)
    return Hit(id=doc.key, score=float(score), text=doc.text, metadata=doc.metadata,
               scores={k: float(v) for k, v in scores.items()})


def checked_info(call: Callable[..., Any], name: str, fields: QdrantFields, dim: int) -> CollectionInfo:
    """Describe the collection through ``call(method, *args)`` and check it can be written with ``fields``."""
    if not call("exists", name):
        raise not_found(name)
    info = call("describe", name)
    check_fields(name, info, fields, dim, writing=True)
    return info
