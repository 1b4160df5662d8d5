"""Writing and reading documents: ``upsert_documents``, ``get_documents``, ``delete_*``, ``count_documents``."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from qdrant_client import AsyncQdrantClient, QdrantClient

from .._ingest import Document, iter_documents, point_id, run_ingest
from ..encoder.types import M3Output
from ._backends import TRANSIENT_ERRORS, AsyncClientBackend, ClientBackend, Row
from ._filters import and_filters, has_id_filter, to_qdrant_filter
from ._schema import (
    DEFAULT_SCHEMA,
    CollectionNotFoundError,
    QdrantSchema,
    check_collection_name,
    mismatch_error,
    problems,
)
from .edge import QdrantEdgeStore

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
        raise TypeError(f"{function} got an AsyncQdrantClient; use a{function} (the async twin) or a QdrantClient")
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


# -------------------------------------------------------------------------------------------------- ingest
def _rows(batch: list[Document], output: M3Output, schema: QdrantSchema) -> list[Row]:
    rows = []
    for i, doc in enumerate(batch):
        payload = {schema.text_key: doc.text, schema.metadata_key: doc.metadata, schema.id_key: doc.key}
        rows.append((point_id(doc), output.dense[i], M3Output.sparse_to_arrays(output.sparse[i]),
                     output.colbert[i], payload))
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


def _prepare_docs(docs: Iterable[Any]) -> Iterable[Document]:
    """Normalise lazily, but fail on bad or empty input before any collection is touched."""
    documents = iter_documents(docs)
    first = next(documents)  # ValueError("docs is empty ...") before anything is written or dropped

    def chain():
        yield first
        yield from documents

    return chain()


def _ensure_checked(info: Any, name: str, schema: QdrantSchema, dim: int) -> None:
    found = problems(info, schema, dim)
    if found:
        raise mismatch_error(name, found, info.points)


def _ensure_collection(backend: Any, name: str, schema: QdrantSchema, dim: int, recreate: bool) -> None:
    if backend.exists(name):
        if not recreate:
            _ensure_checked(backend.describe(name), name, schema, dim)
            return
        logger.warning("recreate=True: deleting collection %r", name)
        backend.drop(name)
    backend.create(name, schema, dim)


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
        schema: vector names, ColBERT storage type and payload keys (default ``QdrantSchema()``).

    Returns:
        Each document's key: its ``id``, or the deterministic id derived from its text. Point ids are
        deterministic, so re-running an ingest replaces documents instead of duplicating them.

    Raises:
        ValueError: empty ``docs``, missing encoder; ``SchemaMismatchError`` when the collection exists with
        an incompatible configuration; ``IngestError`` listing documents not stored after retries.
    """
    backend = _sync_backend(client, "upsert_documents")
    _check_encoder(encoder)
    name = check_collection_name(collection_name)
    schema = _schema(schema)
    documents = _prepare_docs(docs)
    _ensure_collection(backend, name, schema, encoder.dim, recreate)
    written = 0

    def write(batch: list[Document], output: M3Output) -> None:
        nonlocal written
        backend.upsert(name, _rows(batch, output, schema), schema)
        written += len(batch)

    def unchanged(batch: list[Document]) -> set[str]:
        return _same_as_stored(batch, backend.retrieve(name, [point_id(d) for d in batch]), schema)

    try:
        return run_ingest(documents, encoder.encode_documents, write, batch_size=batch_size,
                          show_progress=show_progress, transient=TRANSIENT_ERRORS,
                          unchanged=unchanged if skip_unchanged and not recreate else None)
    finally:
        if written:
            backend.after_upsert(name, written)


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
) -> list[str]:
    """Async twin of ``upsert_documents`` (``AsyncQdrantClient``; other clients run in a worker thread).

    Encoding runs in a worker thread; uploads run on the event loop, which stays free.
    """
    backend = backend_for(client)
    if not is_async(backend):
        return await asyncio.to_thread(upsert_documents, client, docs, collection_name, encoder,
                                       batch_size=batch_size, show_progress=show_progress, recreate=recreate,
                                       skip_unchanged=skip_unchanged, schema=schema)
    _check_encoder(encoder)
    name = check_collection_name(collection_name)
    schema = _schema(schema)
    documents = _prepare_docs(docs)
    if await backend.exists(name):
        if recreate:
            logger.warning("recreate=True: deleting collection %r", name)
            await backend.drop(name)
            await backend.create(name, schema, encoder.dim)
        else:
            _ensure_checked(await backend.describe(name), name, schema, encoder.dim)
    else:
        await backend.create(name, schema, encoder.dim)
    loop = asyncio.get_running_loop()

    def write(batch: list[Document], output: M3Output) -> None:
        future = asyncio.run_coroutine_threadsafe(backend.upsert(name, _rows(batch, output, schema), schema), loop)
        future.result()

    def unchanged(batch: list[Document]) -> set[str]:
        found = asyncio.run_coroutine_threadsafe(backend.retrieve(name, [point_id(d) for d in batch]), loop).result()
        return _same_as_stored(batch, found, schema)

    return await asyncio.to_thread(run_ingest, documents, encoder.encode_documents, write, batch_size=batch_size,
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


def _require(backend: Any, name: str) -> None:
    if not backend.exists(name):
        raise CollectionNotFoundError(f"collection {name!r} does not exist")


def _to_document(payload: dict, schema: QdrantSchema) -> Document:
    return Document(text=payload.get(schema.text_key, ""), id=payload.get(schema.id_key),
                    metadata=dict(payload.get(schema.metadata_key) or {}))


def get_documents(
    client: Any,
    collection_name: str = "docs",
    ids: Iterable[str] | None = None,
    query_filter: Any = None,
    limit: int | None = None,
    *,
    schema: QdrantSchema | None = None,
) -> list[Document]:
    """Stored documents by key (in the order given; unknown keys are skipped) and/or by filter."""
    backend = _sync_backend(client, "get_documents")
    name = check_collection_name(collection_name)
    schema = _schema(schema)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")
    native = to_qdrant_filter(query_filter, schema)
    _require(backend, name)
    if ids is None:
        return [_to_document(p, schema) for _, p in backend.scroll(name, native, limit)]
    keys = _keys(ids)
    if not keys:
        return []
    candidates = _candidate_point_ids(keys)
    found = backend.scroll(name, and_filters(has_id_filter(candidates), native), None)
    by_key = {p.get(schema.id_key): p for _, p in found}
    docs = [_to_document(by_key[k], schema) for k in dict.fromkeys(keys) if k in by_key]
    return docs if limit is None else docs[:limit]


def delete_documents(client: Any, ids: Iterable[str], collection_name: str = "docs", *,
                     schema: QdrantSchema | None = None) -> None:
    """Delete documents by the keys ``upsert_documents`` returned (unknown keys are ignored)."""
    backend = _sync_backend(client, "delete_documents")
    name = check_collection_name(collection_name)
    schema = _schema(schema)
    keys = set(_keys(ids))
    _require(backend, name)
    if not keys:
        return
    found = backend.scroll(name, has_id_filter(_candidate_point_ids(list(keys))), None)
    doomed = [pid for pid, p in found if p.get(schema.id_key) in keys]
    if doomed:
        backend.delete_ids(name, doomed)


def delete_by_filter(client: Any, query_filter: Any, collection_name: str = "docs", *,
                     schema: QdrantSchema | None = None) -> None:
    """Delete the documents matching a filter (a filter is required: use drop_collection to delete all)."""
    backend = _sync_backend(client, "delete_by_filter")
    name = check_collection_name(collection_name)
    schema = _schema(schema)
    if query_filter is None:
        raise ValueError("delete_by_filter needs a filter; to delete everything use drop_collection")
    native = to_qdrant_filter(query_filter, schema)
    _require(backend, name)
    backend.delete_filter(name, native)


def count_documents(client: Any, collection_name: str = "docs", query_filter: Any = None, *,
                    schema: QdrantSchema | None = None) -> int:
    """Number of stored documents (matching the filter)."""
    backend = _sync_backend(client, "count_documents")
    name = check_collection_name(collection_name)
    native = to_qdrant_filter(query_filter, _schema(schema))
    _require(backend, name)
    return backend.count(name, native)


def drop_collection(client: Any, collection_name: str = "docs") -> None:
    """Delete the collection and everything in it (nothing happens if it does not exist)."""
    backend = _sync_backend(client, "drop_collection")
    name = check_collection_name(collection_name)
    if backend.exists(name):
        backend.drop(name)


__all__ = [
    "aupsert_documents", "count_documents", "delete_by_filter", "delete_documents", "drop_collection",
    "get_documents", "upsert_documents",
]
