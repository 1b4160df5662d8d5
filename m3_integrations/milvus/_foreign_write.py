"""Writing documents into a Milvus collection this package did not create (``upsert_documents(..., fields=...)``).

See ``m3_integrations.milvus.fields`` for what is checked and how a repeated ingest is kept from adding a row twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import SchemaMismatchError
from .._ingest import Document, IngestError, nonempty_documents, point_id, run_ingest
from ..encoder.types import M3Output
from ._colbert import MAX_QUERY_ROWS
from ._driver import Program, call, run_async, run_sync
from ._filters import Filter, literal
from ._schema import server_caps
from .fields import _VECTOR_TYPES, ForeignInfo, MilvusFields, metadata_of, open_foreign

logger = logging.getLogger(__name__)

EMPTY_SPARSE = {1: 1e-30}  # as the package's own rows: Milvus rejects an empty sparse vector; <pad> adds 0
MAX_LOOKUP_CHARS = 256 * 1024  # literal characters per identity look-up query
_INT_TYPES = {"INT8": 8, "INT16": 16, "INT32": 32, "INT64": 64}


@dataclass(frozen=True)
class WriteInfo:
    """A foreign collection validated for writing: where each part of a document goes."""

    info: ForeignInfo
    auto_id: bool
    identity: str  # the field that identifies a stored document: the primary key, the id field or the text
    pk_max: int | None  # VARCHAR primary key: its max_length
    text_max: int
    id_max: int | None
    scalars: dict[str, dict]  # writable metadata fields (when fields.metadata is None)
    required: tuple[str, ...]  # scalar fields every row must give (not nullable, no default)
    dynamic: bool
    templates: bool = False  # the engine takes filter_params (a long list of texts is not parsed)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def fields(self) -> MilvusFields:
        return self.info.fields


def _type(field: dict) -> str:
    value = field.get("type")
    return getattr(value, "name", str(value))


def _max_length(field: dict) -> int | None:
    value = (field.get("params") or {}).get("max_length")
    return None if value is None else int(value)


def open_for_write(client: Any, name: str, fields: MilvusFields, dim: int) -> Program:
    """Validate a foreign collection for writing the encoder's outputs; returns its ``WriteInfo``."""
    info = yield from open_foreign(client, name, fields)
    desc = yield call("describe_collection", name)
    by_name = {f["name"]: f for f in desc.get("fields", [])}
    pk = by_name[info.pk]
    problems = []
    if info.dim and info.dim != dim:
        problems.append(f"field {fields.dense!r} has dimension {info.dim}, the encoder gives {dim} (use the "
                        "encoder the collection was built with, or another collection)")
    auto_id = bool(pk.get("auto_id") or desc.get("auto_id"))
    if _type(pk) not in ("VARCHAR", "INT64"):
        problems.append(f"primary key {info.pk!r} is {_type(pk)}; only VARCHAR and INT64 keys can be written")
    id_field = fields.id if fields.id not in (None, info.pk) else None
    if id_field is not None and _type(by_name[id_field]) != "VARCHAR":
        problems.append(f"id field {id_field!r} is {_type(by_name[id_field])}; the document keys written there are "
                        "strings, so it must be VARCHAR")
    ours = {fields.dense, fields.sparse, fields.text, info.pk, id_field, fields.metadata}
    scalars: dict[str, dict] = {}
    required = []
    for field_name, field in by_name.items():
        if field_name in ours or field.get("is_function_output"):
            continue
        optional = field.get("nullable") or field.get("default_value") is not None
        if _type(field) in _VECTOR_TYPES:
            if not optional:
                problems.append(f"vector field {field_name!r} ({_type(field)}) is neither fields.dense nor "
                                "fields.sparse, and this package cannot fill it")
            continue
        if fields.metadata is not None:
            if not optional:
                problems.append(f"field {field_name!r} ({_type(field)}) must be given in every row, but documents' "
                                f"metadata goes to the JSON field {fields.metadata!r} (name it in MilvusFields, or "
                                "pass metadata=None to write metadata keys to fields of the same name)")
            continue
        scalars[field_name] = field
        if not optional:
            required.append(field_name)
    if problems:
        raise SchemaMismatchError(
            f"cannot write into collection {name!r} with {fields}: " + "; ".join(problems)
            + f". Its fields: {', '.join(f'{n} ({_type(f)})' for n, f in by_name.items())}. Nothing was written.")
    identity = info.pk if not auto_id else (id_field or fields.text)
    return WriteInfo(info=info, auto_id=auto_id, identity=identity,
                     pk_max=_max_length(pk) if _type(pk) == "VARCHAR" else None,
                     text_max=_max_length(by_name[fields.text]) or 65535,
                     id_max=_max_length(by_name[id_field]) if id_field else None,
                     scalars=scalars, required=tuple(required), dynamic=bool(desc.get("enable_dynamic_field")),
                     templates=(yield from server_caps(client)).filter_templates)


def check_text(w: WriteInfo, text: str) -> None:
    """A clear error for a text the collection's VARCHAR text field cannot hold (before it is encoded)."""
    size = len(text.encode("utf-8"))
    if size > w.text_max:
        raise ValueError(
            f"a text of {size} bytes (UTF-8) does not fit field {w.fields.text!r} of collection {w.name!r}, a VARCHAR "
            f"of max_length {w.text_max}: {text[:60]!r}... Split the documents into chunks of at most "
            f"{w.text_max} bytes, or write into a collection whose text field is longer. Nothing of this batch "
            "was written")


def pk_value(w: WriteInfo, doc: Document) -> Any:
    """The primary key of a document in a collection whose keys are set by the writer: the document's key for a
    VARCHAR key (what ``upsert_documents`` returns), 63 bits of its deterministic UUID for an INT64 key."""
    if w.pk_max is None:
        return uuid.UUID(point_id(doc)).int >> 65
    return doc.key


def _check_value(w: WriteInfo, doc: Document, key: str, value: Any) -> None:
    field = w.scalars[key]
    kind = _type(field)
    if value is None:
        if not field.get("nullable"):
            raise ValueError(f"document {doc.key!r}: metadata {key!r} is None, but field {key!r} is not nullable")
        return
    ok = {"VARCHAR": isinstance(value, str), "BOOL": isinstance(value, bool),
          "FLOAT": isinstance(value, (int, float)) and not isinstance(value, bool),
          "DOUBLE": isinstance(value, (int, float)) and not isinstance(value, bool),
          "JSON": True, "ARRAY": isinstance(value, (list, tuple))}.get(kind)
    if kind in _INT_TYPES:
        bits = _INT_TYPES[kind]
        ok = isinstance(value, int) and not isinstance(value, bool) and -(1 << bits - 1) <= value < (1 << bits - 1)
    if ok is False:
        raise ValueError(f"document {doc.key!r}: metadata {key!r}={value!r} cannot be stored in field {key!r} "
                         f"({kind}) of collection {w.name!r}")
    limit = _max_length(field)
    if kind == "VARCHAR" and limit is not None and len(value.encode("utf-8")) > limit:
        raise ValueError(f"document {doc.key!r}: metadata {key!r} is {len(value.encode('utf-8'))} bytes, field {key!r} "
                         f"of collection {w.name!r} holds at most {limit}")


def make_row(w: WriteInfo, doc: Document, output: M3Output, i: int) -> dict[str, Any]:
    """The row of one document in the collection's layout (checked: a clear error names what does not fit)."""
    f = w.fields
    check_text(w, doc.text)
    dense = np.asarray(output.dense[i], dtype=np.float32)
    sparse = {int(t): float(v) for t, v in output.sparse[i].items() if v > 0 and math.isfinite(v)} or EMPTY_SPARSE
    row: dict[str, Any] = {f.dense: dense, f.sparse: sparse, f.text: doc.text}
    key_bytes = len(doc.key.encode("utf-8"))
    if not w.auto_id:
        if w.pk_max is not None and key_bytes > w.pk_max:
            raise ValueError(f"document id {doc.key[:60]!r} is {key_bytes} bytes; primary key {w.info.pk!r} of "
                             f"collection {w.name!r} holds at most {w.pk_max} (VARCHAR max_length). Use shorter ids")
        row[w.info.pk] = pk_value(w, doc)
    if f.id not in (None, w.info.pk):
        if w.id_max is not None and key_bytes > w.id_max:
            raise ValueError(f"document id {doc.key[:60]!r} is {key_bytes} bytes; id field {f.id!r} of collection "
                             f"{w.name!r} holds at most {w.id_max}. Use shorter ids")
        row[f.id] = doc.key
    if f.metadata is not None:
        row[f.metadata] = doc.metadata
        return row
    for key, value in doc.metadata.items():
        if key in w.scalars:
            _check_value(w, doc, key, value)
            row[key] = value
        elif key in row or not w.dynamic:
            raise ValueError(
                f"document {doc.key!r}: metadata key {key!r} is not a field of collection {w.name!r} "
                + (f"(its metadata fields: {sorted(w.scalars)}); " if key not in row else "(it names a field this "
                   "package writes); ")
                + "remove it, or name a JSON field for the metadata with MilvusFields(metadata=...)")
        else:
            row[key] = value  # the collection's dynamic field keeps it
    missing = [k for k in w.required if k not in row]
    if missing:
        raise ValueError(f"document {doc.key!r}: collection {w.name!r} needs a value for {missing} in every row; "
                         "give them as metadata keys")
    return row


def _stored_metadata(w: WriteInfo, row: dict[str, Any]) -> dict[str, Any]:
    return metadata_of(w.info, row)  # what get_documents and searches give back


def _same(w: WriteInfo, doc: Document, row: dict[str, Any]) -> bool:
    wanted = doc.metadata if w.fields.metadata is not None else \
        {k: v for k, v in doc.metadata.items() if v is not None}
    return row.get(w.fields.text) == doc.text and _stored_metadata(w, row) == wanted


def lookup(w: WriteInfo, values: list[Any]) -> Program:
    """The stored rows whose identity field is one of ``values``, by value (several rows where a value repeats)."""
    outputs = list(dict.fromkeys([w.info.pk, w.identity, w.fields.text,
                                  *([w.fields.metadata] if w.fields.metadata else w.scalars),
                                  *(["$meta"] if w.info.dynamic else [])]))
    found: dict[Any, list[dict[str, Any]]] = {}
    chunk: list[Any] = []
    size = 0
    unique = list(dict.fromkeys(values))
    for i, value in enumerate(unique):
        chunk.append(value)
        size += len(literal(value, key=w.identity)) + 2
        if size < MAX_LOOKUP_CHARS and i < len(unique) - 1:
            continue
        flt = Filter("", {}, w.templates).and_in(w.identity, chunk)
        # Strong: a collection made elsewhere may default to Bounded, whose reads can miss the previous batch
        rows = yield call("query", w.name, output_fields=outputs, limit=MAX_QUERY_ROWS, consistency_level="Strong",
                          **flt.kwargs())
        for row in rows:
            found.setdefault(row[w.identity], []).append(row)
        chunk, size = [], 0
    return found


def _identity(w: WriteInfo, doc: Document) -> Any:
    if w.identity == w.fields.text:
        return doc.text
    if w.identity == w.info.pk:
        return pk_value(w, doc)
    return doc.key


def _warn_kept(w: WriteInfo, kept: list[Document]) -> None:
    if kept:
        logger.warning(
            "%d document(s) of this batch were not written: collection %r (auto-id primary key, no id field) already "
            "stores their texts, with other metadata; the stored rows are kept as they are. Name an id field "
            "(MilvusFields(id=...)) to replace a document's row when its metadata changes. First: %r",
            len(kept), w.name, kept[0].key)


def key_of(w: WriteInfo, doc: Document) -> str | None:
    """The key ``upsert_documents`` returns for a document, where it follows from the document: the value of the
    key field (``fields.id``, else the primary key) that ``Hit.id`` and ``get_documents`` give back. ``None``: an
    auto-id primary key, known once the row is stored."""
    if w.fields.id not in (None, w.info.pk) or (not w.auto_id and w.pk_max is not None):
        return doc.key
    if not w.auto_id:
        return str(pk_value(w, doc))
    return None


def unchanged_program(w: WriteInfo, batch: list[Document], assigned: dict[str, str] | None = None) -> Program:
    """Keys of the batch's documents already stored as they are (not encoded again). Where the text is the only
    identity, every document whose text is stored counts (its row is kept; see ``write_program``). ``assigned``
    gets the stored primary key of each such document (its key, for a collection without an id field)."""
    found = yield from lookup(w, [_identity(w, d) for d in batch])
    same, kept = set(), []
    for doc in batch:
        rows = found.get(_identity(w, doc), [])
        if w.identity == w.fields.text and rows:
            same.add(doc.key)
            if assigned is not None:
                assigned[doc.key] = str(rows[0][w.info.pk])
            if not any(_same(w, doc, r) for r in rows):
                kept.append(doc)
        elif len(rows) == 1 and _same(w, doc, rows[0]):
            same.add(doc.key)
    _warn_kept(w, kept)
    return same


def write_program(w: WriteInfo, batch: list[Document], output: M3Output, assigned: dict[str, str] | None = None
                  ) -> Program:
    """Write one encoded batch (see the ``fields`` module docstring for the three identities); ``assigned`` gets the
    primary key of each document where the text is its only identity (Milvus gives it on insert)."""
    rows = [make_row(w, doc, output, i) for i, doc in enumerate(batch)]
    if not w.auto_id:  # the writer sets the primary key: an upsert replaces the previous row
        yield call("upsert", w.name, data=rows)
        return
    idents = [_identity(w, doc) for doc in batch]
    found = yield from lookup(w, idents)
    if w.identity == w.fields.text:
        new: dict[str, dict[str, Any]] = {}
        kept = []
        pks: dict[str, str] = {}
        for doc, ident, row in zip(batch, idents, rows, strict=True):
            if ident in found:
                pks[ident] = str(found[ident][0][w.info.pk])
                if not any(_same(w, doc, r) for r in found[ident]):
                    kept.append(doc)
            else:
                new[ident] = row  # the same text twice in one batch: one row (the last, as a re-run would do)
        _warn_kept(w, kept)
        if new:
            result = yield call("insert", w.name, data=list(new.values()))
            pks.update(zip(new, (str(i) for i in _inserted_ids(result)), strict=False))
        if assigned is not None:
            assigned.update({doc.key: pks[ident] for doc, ident in zip(batch, idents, strict=True) if ident in pks})
        return
    # an id field: the new row first, then the id's previous rows (an interrupted write leaves an extra row,
    # which the next run of the same ingest removes; never a document without a row)
    yield call("insert", w.name, data=rows)
    old = [r[w.info.pk] for ident in dict.fromkeys(idents) for r in found.get(ident, [])]
    if old:
        yield call("delete", w.name, **Filter("", {}, w.templates).and_in(w.info.pk, old).kwargs())


def _inserted_ids(result: Any) -> list[Any]:
    try:
        return list(result["ids"])
    except (KeyError, TypeError):  # an engine that does not say: the keys stay the documents' own
        return []


def finish_program(client: Any, w: WriteInfo) -> Program:
    """After the last batch, on milvus-lite: seal what was written (its searches over unsealed rows are slower)."""
    if (yield from server_caps(client)).is_lite:
        yield call("flush", w.name)


def _check_foreign_encoder(encoder: Any, fields: Any) -> None:
    if encoder is None:
        raise ValueError("encoder is required: pass encoder=M3Encoder(...) (the model the collection was built with)")
    if not isinstance(fields, MilvusFields):
        raise TypeError(f"fields must be a MilvusFields, got {type(fields).__name__}")


def _ingest(w: WriteInfo, docs: Iterable[Document], encoder: Any, run: Callable[[Program], Any], *,
            batch_size: int, show_progress: bool | None, skip_unchanged: bool, transient: tuple) -> list[str]:
    def encode(texts: list[str]) -> M3Output:
        for text in texts:
            check_text(w, text)
        return encoder.encode_documents(texts, return_colbert=False)

    assigned: dict[str, str] = {}  # document key -> the auto-id primary key its row got

    def key(doc_key: str) -> str:
        return assigned.get(doc_key, doc_key)

    def write(batch: list[Document], out: M3Output) -> None:
        for doc in batch:
            if (k := key_of(w, doc)) is not None:
                assigned[doc.key] = k
        run(write_program(w, batch, out, assigned))

    def unchanged(batch: list[Document]) -> set[str]:
        for doc in batch:
            if (k := key_of(w, doc)) is not None:
                assigned[doc.key] = k
        return run(unchanged_program(w, batch, assigned)) if skip_unchanged else set()

    try:
        keys = run_ingest(docs, encode, write, batch_size=batch_size, show_progress=show_progress,
                          transient=transient, unchanged=unchanged)
    except IngestError as exc:
        raise IngestError(str(exc), [key(k) for k in exc.failed_ids], [key(k) for k in exc.stored_ids]) from exc
    return [key(k) for k in keys]


def upsert_foreign(client: Any, docs: Iterable[Any], name: str, encoder: Any, fields: MilvusFields, *,
                   batch_size: int, show_progress: bool | None, skip_unchanged: bool, transient: tuple
                   ) -> list[str]:
    """``upsert_documents(..., fields=...)`` on a ``MilvusClient``."""
    _check_foreign_encoder(encoder, fields)
    docs = nonempty_documents(docs)
    if docs is None:
        return []
    w = run_sync(client, open_for_write(client, name, fields, encoder.dim))
    try:
        return _ingest(w, docs, encoder, lambda program: run_sync(client, program), batch_size=batch_size,
                       show_progress=show_progress, skip_unchanged=skip_unchanged, transient=transient)
    finally:
        run_sync(client, finish_program(client, w))


async def aupsert_foreign(client: Any, docs: Iterable[Any], name: str, encoder: Any, fields: MilvusFields, *,
                          batch_size: int, show_progress: bool | None, skip_unchanged: bool, transient: tuple
                          ) -> list[str]:
    """``aupsert_documents(..., fields=...)``: each call awaited on this loop, encoding in a worker thread."""
    _check_foreign_encoder(encoder, fields)
    docs = nonempty_documents(docs)
    if docs is None:
        return []
    w = await run_async(client, open_for_write(client, name, fields, encoder.dim))
    loop = asyncio.get_running_loop()

    def run(program: Program) -> Any:
        return asyncio.run_coroutine_threadsafe(run_async(client, program), loop).result()

    try:
        return await asyncio.to_thread(_ingest, w, docs, encoder, run, batch_size=batch_size,
                                       show_progress=show_progress, skip_unchanged=skip_unchanged,
                                       transient=transient)
    finally:
        await run_async(client, finish_program(client, w))
