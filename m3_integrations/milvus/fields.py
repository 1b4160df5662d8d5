"""Searching a Milvus collection this package did not create: ``MilvusFields`` names its fields.

A collection made elsewhere (for example like Milvus' BGE-M3 hybrid-search tutorial: a primary key, a ``text``
VARCHAR, a ``dense_vector`` FLOAT_VECTOR and a ``sparse_vector`` SPARSE_FLOAT_VECTOR, no ColBERT) is searched by
passing ``fields=MilvusFields(dense="dense_vector", sparse="sparse_vector")`` to ``hybrid_search``:

- ``dense`` / ``sparse``: one Milvus search on that field (metric IP, or COSINE for the dense field).
- ``hybrid``: the dense top-P and the sparse top-P; a candidate found by only one of them gets its exact score on
  the other side from one search restricted to those candidates. ``weighted`` fuses
  ``(w_d * dense + w_s * sparse) / (w_d + w_s)`` (the ColBERT weight is dropped: the collection has no ColBERT
  vectors), ``rrf`` and ``dbsf`` fuse the two lists as for the package's own collections.
- ``colbert`` is refused with a clear error.

Hits: ``Hit.id`` is the ``id`` field (default: the primary key), ``Hit.text`` the ``text`` field, and
``Hit.metadata`` the ``metadata`` JSON field if named, else every other scalar field (a null one is left out) and
the keys of the dynamic field. A neutral filter's keys are those metadata keys (JSON keys, or field names).

Reading and deleting: ``get_documents`` / ``count_documents`` / ``delete_documents`` / ``delete_by_filter`` (and the
async twins) take the same ``fields=``. A document's key is ``Hit.id`` (the ``id`` field, else the primary key),
which ``upsert_documents(..., fields=...)`` returns too (for an auto-id primary key: the key Milvus gave the row);
an INT64 key is also found by the id the document was written with.

Writing: ``upsert_documents(client, docs, name, encoder, fields=...)`` (and ``aupsert_documents``) writes dense +
sparse rows (the encoder computes no ColBERT) into the collection's fields. Before anything is encoded or written the
collection is checked: the named fields exist with their types, the dense field has the encoder's dimension and an
IP / COSINE index, the sparse one an IP index, no other vector or required field is left that the package cannot
fill; each text must fit the text field's ``max_length`` (counted in UTF-8 bytes, which fits an engine counting
bytes as well as one counting characters, as milvus-lite does),
each id the key / id field's, each metadata value its field. An error names what differs and what to do; nothing of
the batch is written. Metadata goes to the ``metadata`` JSON field, else each key to the scalar field of that name
(or the dynamic field, if the collection has one). The package never creates, drops or alters such a collection.

A repeated ingest never adds a row twice. How a stored document is recognised depends on the primary key:

- set by the writer (``auto_id=False``): it is the document's key for a VARCHAR key (what ``upsert_documents``
  returns, so ``Hit.id`` is that key), 63 bits of the package's deterministic UUID for an INT64 key; Milvus'
  upsert replaces the row.
- ``auto_id=True`` with an ``id`` field: the document's key is written there; a changed document gets its new row,
  then its previous rows are deleted (an interrupted write leaves an extra row, which a re-run removes).
- ``auto_id=True`` without an ``id`` field (the tutorial's layout): the text is the only identity such a row has, so
  a document whose text is already stored is not written again (exact-match look-ups of the batch's texts, in
  chunks, with ``Strong`` reads because such collections often default to ``Bounded``); the same text twice in one
  batch is written once. A stored row is never rewritten: new metadata for a stored text is not applied, and a
  warning says so. Refusing auto-id collections would leave the most common layout unwritable; replacing rows by
  text would delete rows the package cannot tell from the user's own. Name an ``id`` field to get replacement.
  Milvus has no unique constraint: two writers ingesting the same new text at the same moment can both insert it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import CollectionNotFoundError, SchemaMismatchError
from .._fusion import fuse_dense_sparse, gather_candidates, refuse_colbert
from .._query import Hit, QueryPlan
from ._driver import Program, call, probe
from ._filters import compile_filter, quote
from ._schema import server_caps, state

_VECTOR_TYPES = {"FLOAT_VECTOR", "SPARSE_FLOAT_VECTOR", "FLOAT16_VECTOR", "BFLOAT16_VECTOR", "BINARY_VECTOR",
                 "INT8_VECTOR"}


@dataclass(frozen=True)
class MilvusFields:
    """Field names of an existing Milvus collection (one this package did not create).

    Attributes:
        dense: the FLOAT_VECTOR field of the BGE-M3 dense vectors (indexed with metric IP or COSINE).
        sparse: the SPARSE_FLOAT_VECTOR field of the BGE-M3 lexical weights (metric IP).
        text: the VARCHAR field of the text.
        id: the field returned as ``Hit.id`` (``None``: the primary key).
        metadata: a JSON field returned as ``Hit.metadata`` and filtered on (``None``: every other scalar field).
    """

    dense: str = "dense_vector"
    sparse: str = "sparse_vector"
    text: str = "text"
    id: str | None = None
    metadata: str | None = None

    def __post_init__(self) -> None:
        for attr in ("dense", "sparse", "text", "id", "metadata"):
            value = getattr(self, attr)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"MilvusFields.{attr} must be a non-empty field name, got {value!r}")
        if self.dense == self.sparse:
            raise ValueError(f"MilvusFields.dense and .sparse must differ, got {self.dense!r} twice")


@dataclass(frozen=True)
class ForeignInfo:
    """A validated foreign collection: its fields and how to read them."""

    name: str
    fields: MilvusFields
    pk: str
    pk_is_str: bool
    dim: int
    dense_metric: str
    outputs: tuple[str, ...]
    scalars: tuple[str, ...]  # metadata fields when ``fields.metadata`` is None
    dynamic: bool = False  # metadata keys without a field of their own live in the dynamic field
    key_is_str: bool = True  # the field of ``Hit.id`` (the id field, else the primary key) is a VARCHAR

    @property
    def key_field(self) -> str:
        """The field whose value is a document's key (``Hit.id``, ``Document.id``)."""
        return self.fields.id or self.pk


def _type(field: dict) -> str:
    value = field.get("type")
    return getattr(value, "name", str(value))


def _metric(client: Any, name: str, field: str) -> Program:
    """The metric of the index on ``field`` (``None`` if the engine cannot say)."""
    try:
        indexes = yield probe("list_indexes", name, field_name=field)
        for index_name in indexes or [field]:
            described = yield probe("describe_index", name, index_name=index_name)
            metric = (described or {}).get("metric_type")
            if metric:
                return str(metric).upper()
    except Exception:  # engines that cannot describe indexes: searches say IP
        pass
    return None


def open_foreign(client: Any, name: str, fields: MilvusFields) -> Program:
    """Validate a foreign collection against ``fields`` and load it (once per client)."""
    cache = state(client).ready
    key = (name, fields)
    info = cache.get(key)
    if info is not None:
        return info
    existing = yield call("list_collections")
    if name not in existing:
        raise CollectionNotFoundError(f"collection {name!r} does not exist (collections here: {sorted(existing)})")
    desc = yield call("describe_collection", name)
    by_name = {f["name"]: f for f in desc.get("fields", [])}
    problems = []
    expected = {fields.dense: "FLOAT_VECTOR", fields.sparse: "SPARSE_FLOAT_VECTOR", fields.text: "VARCHAR"}
    if fields.metadata is not None:
        expected[fields.metadata] = "JSON"
    for field, kind in expected.items():
        if field not in by_name:
            problems.append(f"field {field!r} ({kind}) is missing")
        elif _type(by_name[field]) != kind:
            problems.append(f"field {field!r} is {_type(by_name[field])}, expected {kind}")
    primary = [f["name"] for f in desc.get("fields", []) if f.get("is_primary")]
    if fields.id is not None and fields.id not in by_name:
        problems.append(f"id field {fields.id!r} is missing")
    dense_metric = None
    if not problems:
        dense_metric = (yield from _metric(client, name, fields.dense)) or "IP"
        if dense_metric not in ("IP", "COSINE"):
            problems.append(f"field {fields.dense!r} is indexed with metric {dense_metric}; BGE-M3 dense scores "
                            "need IP or COSINE")
        sparse_metric = yield from _metric(client, name, fields.sparse)
        if sparse_metric not in (None, "IP"):
            problems.append(f"field {fields.sparse!r} is indexed with metric {sparse_metric}, expected IP")
    if problems or not primary:
        problems += [] if primary else ["it has no primary key"]
        raise SchemaMismatchError(
            f"collection {name!r} cannot be searched with {fields}: " + "; ".join(problems)
            + f". Its fields: {', '.join(f'{n} ({_type(f)})' for n, f in by_name.items())}. Nothing was changed.")
    pk = primary[0]
    used = {fields.dense, fields.sparse, fields.text, pk, fields.id}
    scalars = tuple(n for n, f in by_name.items() if n not in used and _type(f) not in _VECTOR_TYPES) \
        if fields.metadata is None else ()
    dynamic = bool(desc.get("enable_dynamic_field")) and fields.metadata is None
    outputs = tuple(dict.fromkeys([pk, fields.id or pk, fields.text, *(
        [fields.metadata] if fields.metadata else scalars), *(["$meta"] if dynamic else [])]))
    dim = int((by_name[fields.dense].get("params") or {}).get("dim") or 0)
    yield call("load_collection", name)
    info = ForeignInfo(name=name, fields=fields, pk=pk, pk_is_str=_type(by_name[pk]) == "VARCHAR", dim=dim,
                       dense_metric=dense_metric, outputs=outputs, scalars=scalars, dynamic=dynamic,
                       key_is_str=_type(by_name[fields.id or pk]) == "VARCHAR")
    cache[key] = info
    return info


def _pk_in(info: ForeignInfo, pks: list[Any]) -> str:
    values = ", ".join(quote(str(p)) if info.pk_is_str else str(int(p)) for p in pks)
    return f"{info.pk} in [{values}]"


def metadata_of(info: ForeignInfo, entity: dict[str, Any]) -> dict[str, Any]:
    """A stored row's metadata: its ``metadata`` JSON field, else its other scalar fields (a null one is a key the
    document did not have) and the keys of the dynamic field."""
    f = info.fields
    if f.metadata:
        return dict(entity.get(f.metadata) or {})
    out = {k: entity[k] for k in info.scalars if entity.get(k) is not None}
    if info.dynamic:
        known = {info.pk, f.id, f.text, f.dense, f.sparse, "$meta"}
        out.update({k: v for k, v in entity.items() if k not in known and k not in out and k not in info.scalars})
    return out


def _hit(info: ForeignInfo, entity: dict[str, Any], score: float, scores: dict[str, float]) -> Hit:
    f = info.fields
    return Hit(id=str(entity.get(f.id or info.pk)), score=float(score), text=entity.get(f.text) or "",
               metadata=metadata_of(info, entity), scores={k: float(v) for k, v in scores.items()})


def foreign_search_program(client: Any, name: str, plan: QueryPlan, q: Any, query_filter: Any,
                           fields: MilvusFields, filter_params: Any = None) -> Program:
    """The search of a foreign collection (see the module docstring)."""
    refuse_colbert(plan, name)
    info = yield from open_foreign(client, name, fields)
    caps = yield from server_caps(client)
    # scalar fields always exist: `exists` (a JSON-key test) applies only to a metadata JSON field
    expr = compile_filter(query_filter, filter_params, exists=caps.json_exists and fields.metadata is not None,
                          root=fields.metadata, templates=caps.filter_templates)
    qd = None if q.dense is None else np.asarray(q.dense[0], dtype=np.float32)
    if qd is not None and info.dim and qd.shape != (info.dim,):
        raise ValueError(f"the query's dense vector has dimension {qd.shape[-1]}; field {fields.dense!r} of "
                         f"collection {name!r} stores {info.dim}")
    qs = None if q.sparse is None else {int(t): float(w) for t, w in q.sparse[0].items() if w > 0}
    params = {"dense": {"metric_type": info.dense_metric}, "sparse": {"metric_type": "IP"}}
    anns = {"dense": fields.dense, "sparse": fields.sparse}
    data = {"dense": qd, "sparse": qs}
    outputs = list(info.outputs)

    def search(mode: str, limit: int, restrict: str = "") -> Program:
        res = yield call("search", name, data=[data[mode]], anns_field=anns[mode], limit=limit,
                         output_fields=outputs, search_params=params[mode], **expr.and_(restrict).kwargs())
        return [(h.get("id", (h.get("entity") or {}).get(info.pk)), dict(h.get("entity") or {}), float(h["distance"]))
                for h in res[0]]

    if plan.mode in ("dense", "sparse"):
        if plan.mode == "sparse" and not qs:
            return []
        found = yield from search(plan.mode, plan.limit)
        return [_hit(info, ent, score, {plan.mode: score}) for _, ent, score in found]

    modes = ["dense"] + (["sparse"] if qs else [])
    entities, scores, lists = yield from gather_candidates(search, modes, plan.prefetch_limit,
                                                           lambda pks: _pk_in(info, pks))
    if not entities:
        return []
    return [_hit(info, entities[pk], score, scores[pk]) for pk, score in fuse_dense_sparse(plan, lists, scores, name)]
