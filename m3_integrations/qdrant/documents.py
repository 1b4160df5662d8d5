"""Writing and reading documents: ``upsert_documents``, ``get_documents``, ``delete_*``, ``count_documents``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from qdrant_client import AsyncQdrantClient, QdrantClient

from .._ingest import Document, IngestError, nonempty_documents, point_id, run_ingest
from ..encoder.pooling import pool_output
from ..encoder.types import M3Output
from . import fields as _fields
from ._backends import TRANSIENT_ERRORS, AsyncClientBackend, ClientBackend, Row
from ._filters import and_filters, has_id_filter, to_qdrant_filter
from ._programs import Program
from ._programs import arun as _arun
from ._programs import run as _run
from ._schema import (
    DEFAULT_SCHEMA,
    CollectionNotFoundError,
    QdrantSchema,
    check_collection_name,
    mismatch_error,
    problems,
    stores_colbert,
)
from .edge import QdrantEdgeStore
from .fields import QdrantFields

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------ dispatch
def backend_for(client: Any) -> Any:
    """The driver for ``client``: a ``QdrantClient``, an ``AsyncQdrantClient`` or a ``QdrantEdgeStore``."""
    if isinstance(client, QdrantEdgeStore):
        return client
    if isinstance(client, QdrantClient):
        return ClientBackend(client)
    if isinstance(client, AsyncQdrantClient):
        return AsyncClientBackend(client)
    raise TypeError(
        f"client must be a QdrantClient, an AsyncQdrantClient or a QdrantEdgeStore, got {type(client).__name__}"
    )


def is_async(backend: Any) -> bool:
    """Whether the driver's methods are coroutines."""
    return isinstance(backend, AsyncClientBackend)


def _sync_backend(client: Any, function: str) -> Any:
    backend = backend_for(client)
    if is_async(backend):
        raise TypeError(f"{function} got an AsyncQdrantClient; use `await a{function}(...)` (the async twin) "
                        "or a QdrantClient")
    return backend


def _check_encoder(encoder: Any) -> None:
    if encoder is None:
        raise ValueError("encoder is required: pass encoder=M3Encoder(...) (it encodes the documents)")


def _schema(schema: QdrantSchema | None) -> QdrantSchema:
    if schema is None:
        return DEFAULT_SCHEMA
    if not isinstance(schema, QdrantSchema):
        raise TypeError(f"schema must be a QdrantSchema, got {type(schema).__name__}")
    return schema


def _check_fields(fields: Any, schema: Any = None) -> QdrantFields | None:
    """``fields`` checked: a ``QdrantFields`` (a collection made elsewhere) or ``None``; never with ``schema``."""
    if fields is None:
        return None
    if not isinstance(fields, QdrantFields):
        raise TypeError(f"fields must be a QdrantFields, got {type(fields).__name__}")
    if schema is not None:
        raise ValueError("pass schema= (a collection of this package's layout) or fields= (a collection made "
                         "elsewhere), not both")
    return fields


# -------------------------------------------------------------------------------------------------- ingest
def _rows(batch: list[Document], output: M3Output, schema: QdrantSchema, colbert: bool = True) -> list[Row]:
    rows = []
    for i, doc in enumerate(batch):
        payload = {schema.text_key: doc.text, schema.metadata_key: doc.metadata, schema.id_key: doc.key}
        rows.append((point_id(doc), output.dense[i], M3Output.sparse_to_arrays(output.sparse[i]),
                     output.colbert[i] if colbert else None, payload))
    return rows


def _same_as_stored(batch: list[Document], found: list[tuple[Any, dict]], schema: QdrantSchema) -> set[str]:
    """Keys of the batch's documents whose stored payload has the same key, text and metadata."""
    stored = {str(pid): payload or {} for pid, payload in found}
    same = set()
    for doc in batch:
        payload = stored.get(point_id(doc))
        if (payload is not None and payload.get(schema.id_key) == doc.key and payload.get(schema.text_key) == doc.text
                and (payload.get(schema.metadata_key) or {}) == doc.metadata):
            same.add(doc.key)
    return same


def _prepare_docs(docs: Iterable[Any]) -> Iterable[Document] | None:
    """Normalise lazily, but fail on bad input before any collection is touched; ``None`` when empty."""
    return nonempty_documents(docs)


def _ensure_checked(info: Any, name: str, schema: QdrantSchema, dim: int) -> None:
    found = problems(info, schema, dim)
    if found:
        raise mismatch_error(name, found, info.points)


def _ensure_collection(backend: Any, name: str, schema: QdrantSchema, dim: int, recreate: bool) -> tuple[int, bool]:
    """Check or create the collection; returns the ColBERT pool factor its documents are stored with and whether
    they get ColBERT rows at all."""
    if backend.exists(name):
        if not recreate:
            info = backend.describe(name)
            _ensure_checked(info, name, schema, dim)
            return info.colbert_pool_factor, stores_colbert(info, schema)
        logger.warning("recreate=True: deleting collection %r", name)
        backend.drop(name)
    backend.create(name, schema, dim)
    return schema.for_new_collection().colbert_pool_factor or 1, schema.with_colbert is not False


def _document_encoder(encoder: Any, pool_factor: int, colbert: bool = True) -> Callable[[list[str]], M3Output]:
    """The encode step of an ingest: documents' outputs, ColBERT rows pooled as the collection stores them (none
    computed for a collection without ColBERT)."""
    if not colbert:
        return lambda texts: encoder.encode_documents(texts, return_colbert=False)
    if pool_factor == 1:
        return encoder.encode_documents
    device = getattr(encoder, "device", None)  # pool where the encoder runs (a GPU when it has one)

    def encode(texts: list[str]) -> M3Output:
        return pool_output(encoder.encode_documents(texts), pool_factor, device=device)

    return encode


def upsert_documents(
    client: Any,
    docs: Iterable[Any],
    collection_name: str = "docs",
    encoder: Any = None,
    *,
    batch_size: int = 64,
    show_progress: bool | None = None,
    recreate: bool = False,
    skip_unchanged: bool = True,
    schema: QdrantSchema | None = None,
    fields: QdrantFields | None = None,
) -> list[str]:
    """Encode documents with BGE-M3 and store dense, sparse and ColBERT vectors in one Qdrant collection.

    Args:
        client: a ``QdrantClient`` (":memory:", ``path=``, ``url=``) or a ``QdrantEdgeStore``.
        docs: strings, or mappings with ``text`` and optional ``id`` and ``metadata`` (a list or a generator;
            generators stream).
        collection_name: created with the BGE-M3 layout if missing; an existing one must match it.
        encoder: an ``M3Encoder``.
        batch_size: documents per encode/upload batch (the next batch encodes while one uploads).
        show_progress: progress bar (default: when stderr is a terminal).
        recreate: delete and recreate the collection first (only when asked).
        skip_unchanged: documents already stored with the same key, text and metadata are not encoded or
            written again, so re-running an ingest (after a failure, or on a grown corpus) only does the
            new and changed ones. Pass ``False`` to re-encode everything, e.g. after changing the model.
        schema: vector names, ColBERT storage type and payload keys (default ``QdrantSchema()``);
            ``QdrantSchema(with_colbert=False)`` makes (or expects) a collection of dense + sparse only.
        fields: write into an existing collection this package did not create, in its layout
            (``QdrantFields``: e.g. one made by langchain-qdrant's ``QdrantVectorStore``): the dense vector into
            ``fields.dense`` (``""``: the unnamed one), the sparse one into ``fields.sparse``, the text under
            ``fields.text``, the metadata under ``fields.metadata``; no ColBERT is computed. The collection is
            checked first (vector names, dense size and distance, no vectors this package would leave empty);
            it is never created or recreated. Which point a document goes to: its id when that is a UUID or an
            unsigned integer (the point ids other code writes, and that ``Hit.id`` / ``get_documents`` give back,
            so a document read from the collection updates its own point), a UUID derived from any other id, or
            from its text when it has no id. Stored data is never silently replaced: an existing point is
            replaced only when it holds the same document (named by the document's id; without an id, a point
            holding the same text); a point at a text-derived id holding another text, or no text at all (not
            one this package wrote), raises ``ValueError`` and nothing of that batch is written. Replacing a
            point replaces its payload.

    Returns:
        Each input document's key, in input order (one per document, a repeated one included): its ``id``,
        or the deterministic id derived from its text (with ``fields`` and no ``fields.id``: the point id, which
        searches return as ``Hit.id``). Point ids are deterministic, so re-running an ingest replaces documents
        instead of duplicating them. Empty ``docs``: ``[]``, nothing is touched.

    Raises:
        ValueError: missing encoder; ``SchemaMismatchError`` when the collection exists with
        an incompatible configuration; ``IngestError`` listing documents not stored after retries.
    """
    backend = _sync_backend(client, "upsert_documents")
    _check_encoder(encoder)
    name = check_collection_name(collection_name)
    fields = _check_fields(fields, schema)
    schema = _schema(schema)
    if fields is not None and recreate:
        raise ValueError("recreate=True with fields=: this package never creates a collection in another layout")
    documents = _prepare_docs(docs)
    if documents is None:
        return []  # an empty batch is a no-op: nothing is created, recreated or written
    if fields is not None:
        def call(method: str, *args: Any) -> Any:
            return getattr(backend, method)(*args)

        _fields.checked_info(call, name, fields, encoder.dim)
        try:
            return _ingest_fields(call, documents, name, encoder, fields, batch_size, show_progress, skip_unchanged)
        finally:
            backend.after_upsert(name, 1)
    pool_factor, colbert = _ensure_collection(backend, name, schema, encoder.dim, recreate)
    written = 0

    def write(batch: list[Document], output: M3Output) -> None:
        nonlocal written
        backend.upsert(name, _rows(batch, output, schema, colbert), schema)
        written += len(batch)

    def unchanged(batch: list[Document]) -> set[str]:
        return _same_as_stored(batch, backend.retrieve(name, [point_id(d) for d in batch]), schema)

    try:
        return run_ingest(documents, _document_encoder(encoder, pool_factor, colbert), write, batch_size=batch_size,
                          show_progress=show_progress, transient=TRANSIENT_ERRORS,
                          unchanged=unchanged if skip_unchanged and not recreate else None)
    finally:
        if written:
            backend.after_upsert(name, written)


def _ingest_fields(call: Callable[..., Any], documents: Any, name: str, encoder: Any, fields: QdrantFields,
                   batch_size: int, show_progress: bool | None, skip_unchanged: bool) -> list[str]:
    """The ingest into a collection made elsewhere (checked already); ``call(method, *args)`` runs a driver
    method from the ingest's threads."""
    def write(batch: list[Document], output: M3Output) -> None:
        call("upsert", name, _fields.rows(batch, output, fields), fields)

    def unchanged(batch: list[Document]) -> set[str]:
        found = call("retrieve", name, list(dict.fromkeys(_fields.point_id_for(d.key) for d in batch)))
        same = _fields.guard(name, batch, found, fields)  # runs even without skip_unchanged: it protects
        return same if skip_unchanged else set()

    def key(k: str) -> str:
        return k if fields.id is not None else str(_fields.point_id_for(k))

    try:
        keys = run_ingest(documents, lambda texts: encoder.encode_documents(texts, return_colbert=False), write,
                          batch_size=batch_size, show_progress=show_progress, transient=TRANSIENT_ERRORS,
                          unchanged=unchanged)
    except IngestError as exc:
        raise IngestError(str(exc), [key(k) for k in exc.failed_ids], [key(k) for k in exc.stored_ids]) from exc
    return [key(k) for k in keys]


class EncodedWriter:
    """Writes documents encoded elsewhere (a Ray actor pool) exactly as ``upsert_documents`` does: same
    collection checks, same rows, same deterministic ids.

    ``prepare`` (once, before any encoding) checks or creates the collection and returns the ColBERT pool
    factor the encoder must apply; ``unchanged`` names the keys already stored as they are; ``write``
    upserts one encoded batch (idempotent); ``finish`` runs what follows an ingest (Qdrant Edge optimizes).
    ``transient`` lists the errors worth a retry.
    """

    transient = TRANSIENT_ERRORS

    def __init__(self, client: Any, collection_name: str = "docs", dim: int = 1024, *,
                 schema: QdrantSchema | None = None) -> None:
        self.backend = _sync_backend(client, "EncodedWriter")
        self.name = check_collection_name(collection_name)
        self.dim = dim
        self.schema = _schema(schema)
        self.written = 0
        self.colbert = True

    def prepare(self, *, recreate: bool = False) -> int:
        """Check (or create, or with ``recreate`` replace) the collection; returns its ColBERT pool factor."""
        pool_factor, self.colbert = _ensure_collection(self.backend, self.name, self.schema, self.dim, recreate)
        return pool_factor

    def unchanged(self, batch: list[Document]) -> set[str]:
        """Keys of the batch's documents stored with the same key, text and metadata."""
        return _same_as_stored(batch, self.backend.retrieve(self.name, [point_id(d) for d in batch]), self.schema)

    def write(self, batch: list[Document], output: M3Output) -> None:
        """Upsert one encoded batch (``output`` row i is ``batch[i]``, ColBERT rows already pooled)."""
        if len(output) != len(batch):
            raise ValueError(f"{len(batch)} documents but {len(output)} encoded rows")
        self.backend.upsert(self.name, _rows(batch, output, self.schema, self.colbert), self.schema)
        self.written += len(batch)

    def finish(self) -> None:
        """After the last batch (Qdrant Edge: optimize segments when enough was written)."""
        if self.written:
            self.backend.after_upsert(self.name, self.written)
            self.written = 0


async def aupsert_documents(
    client: Any,
    docs: Iterable[Any],
    collection_name: str = "docs",
    encoder: Any = None,
    *,
    batch_size: int = 64,
    show_progress: bool | None = None,
    recreate: bool = False,
    skip_unchanged: bool = True,
    schema: QdrantSchema | None = None,
    fields: QdrantFields | None = None,
) -> list[str]:
    """Async twin of ``upsert_documents`` (``AsyncQdrantClient``; other clients run in a worker thread).

    Encoding runs in a worker thread; uploads run on the event loop, which stays free.
    """
    backend = backend_for(client)
    if not is_async(backend):
        return await asyncio.to_thread(upsert_documents, client, docs, collection_name, encoder,
                                       batch_size=batch_size, show_progress=show_progress, recreate=recreate,
                                       skip_unchanged=skip_unchanged, schema=schema, fields=fields)
    _check_encoder(encoder)
    name = check_collection_name(collection_name)
    fields = _check_fields(fields, schema)
    schema = _schema(schema)
    if fields is not None and recreate:
        raise ValueError("recreate=True with fields=: this package never creates a collection in another layout")
    documents = _prepare_docs(docs)
    if documents is None:
        return []
    loop = asyncio.get_running_loop()
    if fields is not None:
        if not await backend.exists(name):
            raise _fields.not_found(name)
        _fields.check_fields(name, await backend.describe(name), fields, encoder.dim, writing=True)

        def call(method: str, *args: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(getattr(backend, method)(*args), loop).result()

        return await asyncio.to_thread(_ingest_fields, call, documents, name, encoder, fields, batch_size,
                                       show_progress, skip_unchanged)
    pool_factor, colbert = schema.for_new_collection().colbert_pool_factor or 1, schema.with_colbert is not False
    if await backend.exists(name):
        if recreate:
            logger.warning("recreate=True: deleting collection %r", name)
            await backend.drop(name)
            await backend.create(name, schema, encoder.dim)
        else:
            info = await backend.describe(name)
            _ensure_checked(info, name, schema, encoder.dim)
            pool_factor, colbert = info.colbert_pool_factor, stores_colbert(info, schema)
    else:
        await backend.create(name, schema, encoder.dim)

    def write(batch: list[Document], output: M3Output) -> None:
        future = asyncio.run_coroutine_threadsafe(backend.upsert(name, _rows(batch, output, schema, colbert), schema),
                                                  loop)
        future.result()

    def unchanged(batch: list[Document]) -> set[str]:
        found = asyncio.run_coroutine_threadsafe(backend.retrieve(name, [point_id(d) for d in batch]), loop).result()
        return _same_as_stored(batch, found, schema)

    return await asyncio.to_thread(run_ingest, documents, _document_encoder(encoder, pool_factor, colbert), write,
                                   batch_size=batch_size,
                                   show_progress=show_progress, transient=TRANSIENT_ERRORS,
                                   unchanged=unchanged if skip_unchanged and not recreate else None)


# ------------------------------------------------------------------------------------------------- helpers
def _keys(ids: Any) -> list[str]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be a list of document ids, got {type(ids).__name__}")
    keys = [str(k) for k in ids]
    return keys


def _candidate_point_ids(keys: list[str]) -> list[str]:
    """Point ids a key can have: from a user id, or the key itself when it is a derived (UUID) id."""
    out: dict[str, None] = {}
    for key in keys:
        out[point_id(Document(text="", id=key))] = None
        try:
            out[str(uuid.UUID(key))] = None
        except ValueError:
            pass
    return list(out)


def _to_document(payload: dict, schema: QdrantSchema) -> Document:
    return Document(text=payload.get(schema.text_key, ""), id=payload.get(schema.id_key),
                    metadata=dict(payload.get(schema.metadata_key) or {}))


def _check_limit(limit: Any) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")


# The read / delete logic is written once as programs (``_programs``) run on a sync or async driver.


def _require(name: str) -> Program:
    if not (yield ("exists", name)):
        raise CollectionNotFoundError(f"collection {name!r} does not exist")


def _get_program(name: str, keys: list[str] | None, native: Any, limit: int | None,
                 schema: QdrantSchema) -> Program:
    yield from _require(name)
    if keys is None:
        return [_to_document(p, schema) for _, p in (yield ("scroll", name, native, limit))]
    if not keys:
        return []
    found = yield ("scroll", name, and_filters(has_id_filter(_candidate_point_ids(keys)), native), None)
    by_key = {p.get(schema.id_key): p for _, p in found}
    docs = [_to_document(by_key[k], schema) for k in dict.fromkeys(keys) if k in by_key]
    return docs if limit is None else docs[:limit]


def _delete_program(name: str, keys: set[str], schema: QdrantSchema) -> Program:
    yield from _require(name)
    if not keys:
        return
    found = yield ("scroll", name, has_id_filter(_candidate_point_ids(list(keys))), None)
    doomed = [pid for pid, p in found if p.get(schema.id_key) in keys]
    if doomed:
        yield ("delete_ids", name, doomed)


def _delete_filter_program(name: str, native: Any) -> Program:
    yield from _require(name)
    yield ("delete_filter", name, native)


def _count_program(name: str, native: Any) -> Program:
    yield from _require(name)
    return (yield ("count", name, native))


def _drop_program(name: str) -> Program:
    if (yield ("exists", name)):
        yield ("drop", name)


def _native(query_filter: Any, schema: Any, fields: QdrantFields | None) -> Any:
    if fields is not None:
        return _fields.native_filter(query_filter, fields)
    return to_qdrant_filter(query_filter, _schema(schema))


def _get(collection_name: str, ids: Any, query_filter: Any, limit: Any, schema: Any, fields: Any) -> Program:
    name = check_collection_name(collection_name)
    fields = _check_fields(fields, schema)
    _check_limit(limit)
    native = _native(query_filter, schema, fields)
    keys = None if ids is None else _keys(ids)
    if fields is not None:
        return _fields.get_program(name, keys, native, limit, fields)
    return _get_program(name, keys, native, limit, _schema(schema))


def _delete(ids: Any, collection_name: str, schema: Any, fields: Any) -> Program:
    name = check_collection_name(collection_name)
    fields = _check_fields(fields, schema)
    if fields is not None:
        return _fields.delete_program(name, list(dict.fromkeys(_keys(ids))), fields)
    return _delete_program(name, set(_keys(ids)), _schema(schema))


def _delete_filter(query_filter: Any, collection_name: str, schema: Any, fields: Any) -> Program:
    name = check_collection_name(collection_name)
    fields = _check_fields(fields, schema)
    if query_filter is None:
        raise ValueError("delete_by_filter needs a filter; to delete everything use drop_collection")
    return _delete_filter_program(name, _native(query_filter, schema, fields))


def _count(collection_name: str, query_filter: Any, schema: Any, fields: Any) -> Program:
    name = check_collection_name(collection_name)
    fields = _check_fields(fields, schema)
    return _count_program(name, _native(query_filter, schema, fields))


def get_documents(
    client: Any,
    collection_name: str = "docs",
    ids: Iterable[str] | None = None,
    query_filter: Any = None,
    limit: int | None = None,
    *,
    schema: QdrantSchema | None = None,
    fields: QdrantFields | None = None,
) -> list[Document]:
    """Stored documents by key (in the order given; unknown keys are skipped) and/or by filter.

    Each ``Document.id`` is the document's key (the user's id, or the id derived from its text; with ``fields``,
    a collection made elsewhere: the payload id ``fields.id``, else the point id).
    """
    backend = _sync_backend(client, "get_documents")
    return _run(backend, _get(collection_name, ids, query_filter, limit, schema, fields))


def delete_documents(client: Any, ids: Iterable[str], collection_name: str = "docs", *,
                     schema: QdrantSchema | None = None, fields: QdrantFields | None = None) -> None:
    """Delete documents by the keys ``upsert_documents`` returned (unknown keys are ignored)."""
    backend = _sync_backend(client, "delete_documents")
    _run(backend, _delete(ids, collection_name, schema, fields))


def delete_by_filter(client: Any, query_filter: Any, collection_name: str = "docs", *,
                     schema: QdrantSchema | None = None, fields: QdrantFields | None = None) -> None:
    """Delete the documents matching a filter (a filter is required: use drop_collection to delete all)."""
    backend = _sync_backend(client, "delete_by_filter")
    _run(backend, _delete_filter(query_filter, collection_name, schema, fields))


def count_documents(client: Any, collection_name: str = "docs", query_filter: Any = None, *,
                    schema: QdrantSchema | None = None, fields: QdrantFields | None = None) -> int:
    """Number of stored documents (matching the filter)."""
    backend = _sync_backend(client, "count_documents")
    return _run(backend, _count(collection_name, query_filter, schema, fields))


def drop_collection(client: Any, collection_name: str = "docs") -> None:
    """Delete the collection and everything in it (nothing happens if it does not exist)."""
    backend = _sync_backend(client, "drop_collection")
    _run(backend, _drop_program(check_collection_name(collection_name)))


# ---------------------------------------------------------------------------------------- async twins
async def _arun_any(backend: Any, program: Program) -> Any:
    """An async driver runs on this event loop; a sync one (``QdrantClient``, Qdrant Edge) in a worker thread."""
    if is_async(backend):
        return await _arun(backend, program)
    return await asyncio.to_thread(_run, backend, program)


async def aget_documents(
    client: Any,
    collection_name: str = "docs",
    ids: Iterable[str] | None = None,
    query_filter: Any = None,
    limit: int | None = None,
    *,
    schema: QdrantSchema | None = None,
    fields: QdrantFields | None = None,
) -> list[Document]:
    """Async twin of ``get_documents`` (``AsyncQdrantClient``; other clients run in a worker thread)."""
    backend = backend_for(client)
    return await _arun_any(backend, _get(collection_name, ids, query_filter, limit, schema, fields))


async def adelete_documents(client: Any, ids: Iterable[str], collection_name: str = "docs", *,
                            schema: QdrantSchema | None = None, fields: QdrantFields | None = None) -> None:
    """Async twin of ``delete_documents``."""
    backend = backend_for(client)
    await _arun_any(backend, _delete(ids, collection_name, schema, fields))


async def adelete_by_filter(client: Any, query_filter: Any, collection_name: str = "docs", *,
                            schema: QdrantSchema | None = None, fields: QdrantFields | None = None) -> None:
    """Async twin of ``delete_by_filter``."""
    backend = backend_for(client)
    await _arun_any(backend, _delete_filter(query_filter, collection_name, schema, fields))


async def acount_documents(client: Any, collection_name: str = "docs", query_filter: Any = None, *,
                           schema: QdrantSchema | None = None, fields: QdrantFields | None = None) -> int:
    """Async twin of ``count_documents``."""
    backend = backend_for(client)
    return await _arun_any(backend, _count(collection_name, query_filter, schema, fields))


async def adrop_collection(client: Any, collection_name: str = "docs") -> None:
    """Async twin of ``drop_collection``."""
    backend = backend_for(client)
    await _arun_any(backend, _drop_program(check_collection_name(collection_name)))


__all__ = [
    "acount_documents", "adelete_by_filter", "adelete_documents", "adrop_collection", "aget_documents",
    "aupsert_documents", "count_documents", "delete_by_filter", "delete_documents", "drop_collection",
    "get_documents", "upsert_documents",
]
