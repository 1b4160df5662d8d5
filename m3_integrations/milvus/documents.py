"""Writing, reading, counting and deleting documents in a Milvus collection (sync and async)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._ingest import Document, nonempty_documents, point_id, run_ingest
from ..encoder.types import M3Output
from . import _foreign_read as _foreign
from ._codecs import check_native, for_new, requested
from ._colbert import MAX_QUERY_ROWS, companion_rows, doc_gen, generation, n_parts, native_value
from ._driver import Program, call, check_async_client, check_sync_client, run_any, run_async, run_sync
from ._filters import compile_filter, in_list
from ._foreign_write import aupsert_foreign, upsert_foreign
from ._reads import check_consistency, with_consistency
from ._schema import (
    COLBERT_STRUCT,
    DENSE,
    DOC_ID,
    DOC_PK,
    GEN,
    MAX_VARCHAR,
    METADATA,
    N_TOKENS,
    PK,
    SPARSE,
    TEXT,
    CollectionInfo,
    create,
    describe,
    drop,
    exists,
    filter_expr,
    open_collection,
    server_caps,
    state,
)
from .fields import MilvusFields

EMPTY_SPARSE = {1: 1e-30}
"""Stored for a text with no lexical weights (Milvus rejects empty sparse vectors): token id 1 is
``<pad>``, which never appears in a query's sparse vector, so it adds exactly 0 to any score."""

MAX_WRITE_BYTES = 32 * 1024 * 1024  # companion payload per upsert call


def _transient() -> tuple[type[BaseException], ...]:
    from pymilvus.exceptions import MilvusUnavailableException

    return (ConnectionError, TimeoutError, OSError, MilvusUnavailableException)


def _require_encoder(encoder: Any) -> Any:
    if encoder is None:
        raise ValueError("encoder is required: pass encoder=M3Encoder(...) (the same model for documents and queries)")
    return encoder


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"collection_name must be a non-empty string, got {name!r}")
    return name


# ------------------------------------------------------------------------------------------- writing
def _main_row(doc: Document, output: M3Output, i: int, info: CollectionInfo) -> tuple[dict[str, Any], str]:
    key = doc.key
    if len(doc.text.encode("utf-8")) > MAX_VARCHAR:
        raise ValueError(
            f"document {key!r}: its text is {len(doc.text.encode('utf-8'))} bytes in UTF-8; a Milvus VARCHAR "
            f"holds at most {MAX_VARCHAR}. Split it into chunks before upserting"
        )
    if len(key.encode("utf-8")) > MAX_VARCHAR:
        raise ValueError(f"document id {key[:40]!r}... is longer than {MAX_VARCHAR} bytes")
    dense = np.asarray(output.dense[i], dtype=np.float32)
    if dense.shape != (info.dim,):
        raise ValueError(f"dense vector has dimension {dense.shape[-1]}; collection {info.name!r} stores {info.dim}")
    sparse = {int(t): float(w) for t, w in output.sparse[i].items() if w > 0 and math.isfinite(w)} or EMPTY_SPARSE
    row = {PK: point_id(doc), DOC_ID: key, TEXT: doc.text, METADATA: doc.metadata, DENSE: dense, SPARSE: sparse}
    if not info.has_colbert:
        return row, ""
    colbert = np.asarray(output.colbert[i], dtype=np.float32)
    gen = generation(doc.text, len(colbert))
    row[N_TOKENS], row[GEN] = len(colbert), gen
    if info.layout == "native":
        row[COLBERT_STRUCT] = native_value(colbert, key)
    return row, gen


def write_program(info: CollectionInfo, batch: list[Document], output: M3Output) -> Program:
    """Upsert one encoded batch, keeping the companion ColBERT collection consistent.

    Order: new ColBERT rows, then the main rows (which point at the new generation), then delete the
    previous generation's ColBERT rows of these documents. Every step is idempotent, so a retry or a
    re-run repairs a write that stopped half-way.
    """
    rows, gens = [], []
    for i, doc in enumerate(batch):
        row, gen = _main_row(doc, output, i, info)
        rows.append(row)
        gens.append(gen)
    if info.layout == "companion":
        # the generation each main row points at now: its ColBERT rows' primary keys follow from it
        # (a look-up by primary key; a `doc_pk in [...]` filter scans the whole companion collection)
        previous = yield call("query", info.name, filter=in_list(PK, [r[PK] for r in rows]),
                              output_fields=[PK, GEN, N_TOKENS], limit=len(rows))
        pending: list[dict[str, Any]] = []
        size = 0
        for row, i in zip(rows, range(len(batch)), strict=True):
            for crow in companion_rows(row[PK], row[GEN], output.colbert[i], info.storage):
                pending.append(crow)
                size += len(crow["blob"])
                if size >= MAX_WRITE_BYTES:
                    yield call("upsert", info.colbert_name, data=pending)
                    pending, size = [], 0
        if pending:
            yield call("upsert", info.colbert_name, data=pending)
    yield call("upsert", info.name, data=rows)
    if info.layout == "companion":
        current = {(r[PK], r[GEN]) for r in rows}
        stale = [f"{doc_gen(r[PK], r[GEN])}:{part}" for r in previous if (r[PK], r[GEN]) not in current
                 for part in range(n_parts(int(r[N_TOKENS]), info.dim, info.storage))]
        if stale:
            yield call("delete", info.colbert_name, filter=in_list(PK, stale))


@dataclass(frozen=True)
class _Options:
    """What a caller asked of the collection: used to create it, checked against an existing one (``None``:
    whatever the collection has; for a new one the default)."""

    layout: str = "auto"
    storage: str | None = None
    pool_factor: int | None = None
    colbert: bool | None = None
    consistency: str | None = None

    def check(self) -> Any:
        """``describe``'s keyword arguments."""
        return {"storage": self.storage, "pool_factor": self.pool_factor, "colbert": self.colbert,
                "consistency": self.consistency}


def _ensure_program(client: Any, name: str, dim: int, recreate: bool, options: _Options) -> Program:
    if recreate:
        yield from drop(client, name)
    if (yield from exists(name)):
        info = yield from describe(client, name, dim, **options.check())
    else:
        yield from drop(client, name)  # an orphan companion collection, if any
        info = yield from create(client, name, dim, options.layout, options.storage, options.pool_factor,
                                 options.colbert is not False, options.consistency)
    yield call("load_collection", name)
    if info.colbert_name:
        yield call("load_collection", info.colbert_name)
    state(client).ready[name] = info
    return info


def _validate_program(client: Any, name: str, dim: int, recreate: bool, options: _Options) -> Program:
    """Fail early (before encoding anything) when an existing collection is incompatible or a setting
    cannot be stored; returns the ColBERT pool factor the documents get (the collection's, if it exists;
    ``0``: the collection stores no ColBERT vectors)."""
    if not recreate and (yield from exists(name)):
        info = yield from describe(client, name, dim, **options.check())
        return info.pool_factor if info.has_colbert else 0
    if options.colbert is False:
        return 0
    layout = options.layout
    native = layout == "native" or (layout == "auto" and (yield from server_caps(client)).native_multivector)
    return for_new("native" if native else "companion", options.storage, options.pool_factor).pool_factor


def _pooled_encode(encoder: Any, pool_factor: int) -> Any:
    """``encoder.encode_documents``, with the documents' ColBERT rows pooled when ``pool_factor > 1``
    (``0``: the collection stores no ColBERT vectors, so none are computed)."""
    if pool_factor == 0:
        return lambda texts: encoder.encode_documents(texts, return_colbert=False)
    if pool_factor == 1:
        return encoder.encode_documents
    from ..encoder.pooling import pool_output

    device = getattr(encoder, "device", None)
    device = device if type(device).__name__ == "device" else None  # a local encoder's torch device

    def encode(texts: list[str]) -> M3Output:
        return pool_output(encoder.encode_documents(texts), pool_factor, device=device)

    return encode


def _check_settings(colbert_layout: str, colbert_storage: Any, colbert_pool_factor: Any
                    ) -> tuple[str | None, int | None]:
    settings = requested(colbert_storage, colbert_pool_factor)
    if colbert_layout == "native" and settings[0] is not None:
        check_native(settings[0])
    return settings


def _check_options(colbert_layout: str, colbert_storage: Any, colbert_pool_factor: Any, colbert: Any,
                   consistency_level: Any) -> _Options:
    """Validate the creation options before anything is encoded or touched (``colbert``: ``with_colbert``)."""
    storage, pool_factor = _check_settings(colbert_layout, colbert_storage, colbert_pool_factor)
    if colbert not in (None, True, False):
        raise TypeError(f"with_colbert must be True, False or None (the collection's), got {colbert!r}")
    if colbert is False:
        given = [f"{k}={v!r}" for k, v in (("colbert_layout", colbert_layout), ("colbert_storage", colbert_storage),
                                            ("colbert_pool_factor", colbert_pool_factor))
                 if v is not None and not (k == "colbert_layout" and v == "auto")]
        if given:
            raise ValueError(f"with_colbert=False stores no ColBERT vectors, so {', '.join(given)} cannot apply; "
                             "leave them unset")
    return _Options(colbert_layout, storage, pool_factor, colbert, check_consistency(consistency_level))


def _refuse_creation_options(recreate: bool, options: _Options, colbert_layout: str) -> None:
    """``fields=`` writes into a collection made elsewhere: options that create or rebuild one do not apply."""
    given = [f"{k}={v!r}" for k, v in (("recreate", recreate), ("colbert_layout", colbert_layout),
                                        ("colbert_storage", options.storage),
                                        ("colbert_pool_factor", options.pool_factor), ("with_colbert", options.colbert),
                                        ("consistency_level", options.consistency))
             if v not in (None, "auto") and not (k == "recreate" and v is False)]
    if given:
        raise ValueError(f"fields= writes into an existing collection made elsewhere (dense + sparse, no ColBERT), "
                         f"which this package never creates, drops or changes; {', '.join(given)} cannot apply")


class _Writer:
    """Creates / recreates the collection on the first batch (never before the input is known non-empty)."""

    def __init__(self, client: Any, name: str, dim: int, recreate: bool, options: _Options) -> None:
        self.client, self.name, self.dim, self.recreate, self.options = client, name, dim, recreate, options
        self.info: CollectionInfo | None = None

    def program(self, batch: list[Document], output: M3Output) -> Program:
        if self.info is None:
            self.info = yield from _ensure_program(self.client, self.name, self.dim, self.recreate, self.options)
        yield from write_program(self.info, batch, output)

    def unchanged(self, batch: list[Document]) -> Program:
        """Keys of the batch's documents stored with the same key, text and metadata. The main row is
        written after the document's ColBERT rows, so a stored main row means a complete document."""
        if self.info is None:
            if not (yield from exists(self.name)):
                return set()
            self.info = yield from _ensure_program(self.client, self.name, self.dim, False, self.options)
        pks = [point_id(doc) for doc in batch]
        found = yield call("query", self.name, filter=in_list(PK, pks), output_fields=[PK, DOC_ID, TEXT, METADATA],
                           limit=len(pks))
        stored = {row[PK]: row for row in found}
        same = set()
        for doc, pk in zip(batch, pks, strict=True):
            row = stored.get(pk)
            if row is not None and row[DOC_ID] == doc.key and row[TEXT] == doc.text \
                    and (row[METADATA] or {}) == doc.metadata:
                same.add(doc.key)
        return same

    def finish(self) -> Program:
        """Seal what was written on milvus-lite: its searches over unsealed rows are ~10x slower (2.7 s vs
        0.25 s per hybrid query at 3,000 chunks, measured). Servers seal on their own schedule."""
        if self.info is None or not (yield from server_caps(self.client)).is_lite:
            return
        yield call("flush", self.info.name)
        if self.info.colbert_name:
            yield call("flush", self.info.colbert_name)


class EncodedWriter:
    """Writes documents encoded elsewhere (a Ray actor pool) exactly as ``upsert_documents`` does: same
    collection checks, same rows (ColBERT layout and storage), same deterministic ids.

    ``prepare`` (once, before any encoding) checks or creates the collection and returns the ColBERT pool
    factor the encoder must apply; ``unchanged`` names the keys already stored as they are; ``write``
    upserts one encoded batch (idempotent); ``finish`` seals milvus-lite segments. ``transient`` lists the
    errors worth a retry. The ColBERT settings apply when ``prepare`` creates the collection.
    """

    def __init__(self, client: Any, collection_name: str = "docs", dim: int = 1024, *, colbert_layout: str = "auto",
                 colbert_storage: str | None = None, colbert_pool_factor: int | None = None,
                 with_colbert: bool | None = None, consistency_level: str | None = None) -> None:
        check_sync_client(client, "EncodedWriter")
        self.client = client
        self.options = _check_options(colbert_layout, colbert_storage, colbert_pool_factor, with_colbert,
                                      consistency_level)
        self.settings = (self.options.storage, self.options.pool_factor)
        self._writer = _Writer(client, _check_name(collection_name), dim, False, self.options)
        self.transient = _transient()
        self.colbert = with_colbert is not False  # after prepare(): whether the collection stores ColBERT vectors

    def prepare(self, *, recreate: bool = False) -> int:
        """Check (or create, or with ``recreate`` replace) the collection; returns its ColBERT pool factor
        (1 for a collection without ColBERT vectors: the rows the encoder gives are not stored)."""
        w = self._writer
        w.info = run_sync(self.client, _ensure_program(self.client, w.name, w.dim, recreate, self.options))
        self.colbert = w.info.has_colbert
        return w.info.pool_factor

    def unchanged(self, batch: list[Document]) -> set[str]:
        """Keys of the batch's documents stored with the same key, text and metadata."""
        return run_sync(self.client, self._writer.unchanged(batch))

    def write(self, batch: list[Document], output: M3Output) -> None:
        """Upsert one encoded batch (``output`` row i is ``batch[i]``, ColBERT rows already pooled)."""
        if len(output) != len(batch):
            raise ValueError(f"{len(batch)} documents but {len(output)} encoded rows")
        run_sync(self.client, self._writer.program(batch, output))

    def finish(self) -> None:
        """After the last batch (milvus-lite: seal what was written)."""
        run_sync(self.client, self._writer.finish())


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
    colbert_layout: str = "auto",
    colbert_storage: str | None = None,
    colbert_pool_factor: int | None = None,
    with_colbert: bool | None = None,
    consistency_level: str | None = None,
    fields: MilvusFields | None = None,
) -> list[str]:
    """Encode documents with BGE-M3 and upsert dense, sparse and ColBERT vectors into Milvus.

    Args:
        client: a ``pymilvus.MilvusClient`` (``MilvusClient("./m3.db")`` runs milvus-lite).
        docs: strings, ``Document``s or mappings with ``text`` (+ ``id``, ``metadata``); a generator streams.
        collection_name: created on first use (plus ``<name>__colbert`` in the portable layout).
        encoder: the ``M3Encoder`` (required).
        batch_size: documents per encode + write batch.
        show_progress: progress bar (default: when stderr is a terminal).
        recreate: drop and recreate the collection first (deletes its data). Without it, an existing
            collection with another schema or dimension raises ``SchemaMismatchError``.
        skip_unchanged: documents already stored with the same key, text and metadata are not encoded or
            written again, so re-running an ingest only does the new and changed ones. ``False``
            re-encodes everything (e.g. after changing the model).
        colbert_layout: ``"auto"`` (native Array-of-Structs on Milvus >= 2.6.4, else companion),
            ``"companion"`` or ``"native"``; used only when the collection is created.
        colbert_storage: how ColBERT rows are stored: ``"float32"``, ``"float16"`` (the companion
            default), ``"8bit"`` or ``"4bit"`` (scalar codes, decoded before the exact MaxSim; 2x / 4x
            smaller than float16, see docs/benchmarks.md for the score error). The native layout stores
            ``"float32"`` only. ``None``: the existing collection's setting, or the default for a new one.
        colbert_pool_factor: ColBERT token pooling at ingest (documents only): each document keeps
            ``rows // factor`` mean-pooled rows; 1 = off (the default for a new collection). Recorded
            with the collection; queries need no flag. ``None``: the collection's setting.
            Both settings are recorded when the collection is created; asking an existing collection
            for other ones raises ``SchemaMismatchError`` (stored rows are never re-interpreted).
        with_colbert: ``False`` creates a collection without ColBERT vectors (dense + sparse only: smaller, faster
            ingest; the encoder computes no ColBERT rows; hybrid search fuses dense + sparse and
            ``mode="colbert"`` is refused). Recorded with the collection. ``None`` (default): the existing
            collection's choice, ColBERT for a new one. Asking an existing collection for the other raises
            ``SchemaMismatchError``.
        consistency_level: the consistency level the collection is created with: ``Strong`` (default),
            ``Bounded``, ``Session`` or ``Eventually``; Milvus records it and uses it for reads that do not
            ask for one. On a server, asking an existing collection for another level raises
            ``SchemaMismatchError`` (milvus-lite serves every level as ``Strong`` and records none).
        fields: write into a collection this package did not create, in its layout (``MilvusFields``: dense +
            sparse, no ColBERT); see ``m3_integrations.milvus.fields`` for the checks and how a repeated
            ingest is kept from duplicating rows. The creation options above do not apply.

    Returns:
        Each input document's key (the user's id, or the id derived from the text), in input order, one
        per document (a repeated one included; it is stored once). Upserting the same documents again
        stores nothing twice. Empty ``docs``: ``[]``, nothing is touched. A batch that fails after retries is
        reported at the end in an ``IngestError`` (``failed_ids``, ``stored_ids``).
    """
    check_sync_client(client, "upsert_documents")
    encoder = _require_encoder(encoder)
    name = _check_name(collection_name)
    options = _check_options(colbert_layout, colbert_storage, colbert_pool_factor, with_colbert,
                             consistency_level)
    if fields is not None:
        _refuse_creation_options(recreate, options, colbert_layout)
        return upsert_foreign(client, docs, name, encoder, fields, batch_size=batch_size,
                              show_progress=show_progress, skip_unchanged=skip_unchanged, transient=_transient())
    docs = nonempty_documents(docs)
    if docs is None:
        return []  # an empty batch is a no-op: nothing is created, recreated or written
    pool_factor = run_sync(client, _validate_program(client, name, encoder.dim, recreate, options))
    writer = _Writer(client, name, encoder.dim, recreate, options)
    try:
        return run_ingest(
            docs, _pooled_encode(encoder, pool_factor), lambda batch, out: run_sync(client, writer.program(batch, out)),
            batch_size=batch_size, show_progress=show_progress, transient=_transient(),
            unchanged=(lambda batch: run_sync(client, writer.unchanged(batch))) if skip_unchanged and not recreate
            else None,
        )
    finally:
        run_sync(client, writer.finish())


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
    colbert_layout: str = "auto",
    colbert_storage: str | None = None,
    colbert_pool_factor: int | None = None,
    with_colbert: bool | None = None,
    consistency_level: str | None = None,
    fields: MilvusFields | None = None,
) -> list[str]:
    """``upsert_documents`` over a ``pymilvus.AsyncMilvusClient`` (a ``MilvusClient`` works too), ``fields=`` too.

    Encoding runs in a worker thread; each write is awaited on this event loop.
    """
    check_async_client(client, "aupsert_documents")
    encoder = _require_encoder(encoder)
    name = _check_name(collection_name)
    options = _check_options(colbert_layout, colbert_storage, colbert_pool_factor, with_colbert,
                             consistency_level)
    if fields is not None:
        _refuse_creation_options(recreate, options, colbert_layout)
        return await aupsert_foreign(client, docs, name, encoder, fields, batch_size=batch_size,
                                     show_progress=show_progress, skip_unchanged=skip_unchanged,
                                     transient=_transient())
    docs = nonempty_documents(docs)
    if docs is None:
        return []
    pool_factor = await run_async(client, _validate_program(client, name, encoder.dim, recreate, options))
    writer = _Writer(client, name, encoder.dim, recreate, options)
    loop = asyncio.get_running_loop()

    def write(batch: list[Document], output: M3Output) -> None:
        asyncio.run_coroutine_threadsafe(run_async(client, writer.program(batch, output)), loop).result()

    def unchanged(batch: list[Document]) -> set[str]:
        return asyncio.run_coroutine_threadsafe(run_async(client, writer.unchanged(batch)), loop).result()

    try:
        return await asyncio.to_thread(
            run_ingest, docs, _pooled_encode(encoder, pool_factor), write,
            batch_size=batch_size, show_progress=show_progress, transient=_transient(),
            unchanged=unchanged if skip_unchanged and not recreate else None,
        )
    finally:
        await run_async(client, writer.finish())


# ------------------------------------------------------------------------------------ reading / deleting
def _keys(ids: Any) -> list[str]:
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be a list of document ids, got {ids!r}")
    return [str(i) for i in ids]


def _delete_pks(info: CollectionInfo, pks: list[str]) -> Program:
    # main rows first: an interrupted delete leaves unreferenced ColBERT rows, never a document without them
    yield call("delete", info.name, filter=in_list(PK, pks))
    if info.colbert_name:
        yield call("delete", info.colbert_name, filter=in_list(DOC_PK, pks))


def _delete_where(client: Any, name: str, query_filter: Any, filter_params: Any = None,
                  keys: list[str] | None = None, fields: MilvusFields | None = None) -> Program:
    if fields is not None:
        return (yield from _foreign.delete_filter_program(client, name, fields, query_filter, filter_params))
    info = yield from open_collection(client, name)
    flt = yield from filter_expr(client, query_filter, filter_params)
    if keys is not None:
        flt = flt.and_in(DOC_ID, keys)  # a parameter: a long list of keys is not parsed by a server
    seen: set[str] = set()
    while True:
        rows = yield call("query", name, output_fields=[PK], limit=MAX_QUERY_ROWS, **flt.kwargs())
        pks = [r[PK] for r in rows]
        if not pks or seen.issuperset(pks):
            return
        seen.update(pks)
        yield from _delete_pks(info, pks)


def _check_fields(fields: Any) -> MilvusFields | None:
    if fields is not None and not isinstance(fields, MilvusFields):
        raise TypeError(f"fields must be a MilvusFields, got {type(fields).__name__}")
    return fields


def _delete_ids_program(client: Any, name: str, keys: list[str], fields: MilvusFields | None = None) -> Program:
    if fields is not None:
        yield from _foreign.delete_ids_program(client, name, fields, keys)
    elif keys:
        yield from _delete_where(client, name, None, keys=keys)
    else:
        yield from open_collection(client, name)


def delete_documents(client: Any, ids: Iterable[str], collection_name: str = "docs", *,
                     fields: MilvusFields | None = None) -> None:
    """Delete documents by the keys ``upsert_documents`` returned (their ColBERT rows too; unknown keys are
    ignored). ``fields``: a collection made elsewhere, its rows named by ``fields.id`` (else the primary key)."""
    check_sync_client(client, "delete_documents")
    run_sync(client, _delete_ids_program(client, _check_name(collection_name), _keys(ids), _check_fields(fields)))


def _filter_expr(query_filter: Any, filter_params: Any = None) -> Any:
    if not compile_filter(query_filter, filter_params):
        raise ValueError("delete_by_filter needs a filter; to delete everything use drop_collection")
    return query_filter


def delete_by_filter(client: Any, query_filter: Any, collection_name: str = "docs", *,
                     filter_params: dict[str, Any] | None = None, fields: MilvusFields | None = None) -> None:
    """Delete every document matching ``query_filter`` (neutral filter, or Milvus expression whose ``{name}``
    placeholders ``filter_params`` gives, as in ``hybrid_search``); ``fields``: a collection made elsewhere."""
    check_sync_client(client, "delete_by_filter")
    run_sync(client, _delete_where(client, _check_name(collection_name), _filter_expr(query_filter, filter_params),
                                   filter_params, fields=_check_fields(fields)))


def _get_program(client: Any, name: str, ids: list[str] | None, query_filter: Any, limit: int | None,
                 filter_params: Any = None, fields: MilvusFields | None = None) -> Program:
    if fields is not None:
        return (yield from _foreign.get_program(client, name, fields, ids, query_filter, limit, filter_params))
    yield from open_collection(client, name)
    if ids is not None and not ids:
        return []
    flt = yield from filter_expr(client, query_filter, filter_params)
    if ids is not None:
        flt = flt.and_in(DOC_ID, ids)
    window = min(limit or MAX_QUERY_ROWS, MAX_QUERY_ROWS)
    rows = yield call("query", name, output_fields=[PK, DOC_ID, TEXT, METADATA], limit=window,
                      **(flt.kwargs() if flt else {"filter": f'{PK} != ""'}))
    docs = {r[DOC_ID]: Document(text=r[TEXT], id=r[DOC_ID], metadata=dict(r[METADATA] or {})) for r in rows}
    ordered = [docs[k] for k in dict.fromkeys(ids) if k in docs] if ids is not None else list(docs.values())
    return ordered[:limit] if limit else ordered


def _check_limit(limit: Any) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")


def get_documents(client: Any, collection_name: str = "docs", ids: Iterable[str] | None = None,
                  query_filter: Any = None, limit: int | None = None, *,
                  consistency_level: str | None = None, filter_params: dict[str, Any] | None = None,
                  fields: MilvusFields | None = None) -> list[Document]:
    """Fetch stored documents by key and/or filter (in ``ids`` order when given).

    Each ``Document.id`` is the document's key (the user's id, or the id derived from its text), as on
    Qdrant. Without ``ids``, at most ``limit`` documents (default and cap: Milvus' query window of
    16,384) are returned. ``consistency_level`` and ``filter_params``: as in ``hybrid_search``.
    ``fields``: a collection made elsewhere (``MilvusFields``): ``Document.id`` is ``fields.id`` (else the
    primary key), as ``Hit.id`` and ``upsert_documents(..., fields=...)`` give it; the metadata is the
    ``fields.metadata`` JSON field, else the other scalar fields and the dynamic field's keys.
    """
    check_sync_client(client, "get_documents")
    _check_limit(limit)
    keys = None if ids is None else _keys(ids)
    compile_filter(query_filter, filter_params)  # a clear error before any call
    program = _get_program(client, _check_name(collection_name), keys, query_filter, limit, filter_params,
                           _check_fields(fields))
    return run_sync(client, with_consistency(program, check_consistency(consistency_level)))


def _count_program(client: Any, name: str, query_filter: Any, filter_params: Any = None,
                   fields: MilvusFields | None = None) -> Program:
    if fields is not None:
        return (yield from _foreign.count_program(client, name, fields, query_filter, filter_params))
    yield from open_collection(client, name)
    flt = yield from filter_expr(client, query_filter, filter_params)
    rows = yield call("query", name, output_fields=["count(*)"], **flt.kwargs())
    return int(rows[0]["count(*)"]) if rows else 0


def count_documents(client: Any, collection_name: str = "docs", query_filter: Any = None, *,
                    consistency_level: str | None = None, filter_params: dict[str, Any] | None = None,
                    fields: MilvusFields | None = None) -> int:
    """Number of documents (optionally matching ``query_filter``); ``consistency_level`` and ``filter_params``
    as in ``hybrid_search``; ``fields``: a collection made elsewhere (its rows)."""
    check_sync_client(client, "count_documents")
    compile_filter(query_filter, filter_params)
    program = _count_program(client, _check_name(collection_name), query_filter, filter_params,
                             _check_fields(fields))
    return run_sync(client, with_consistency(program, check_consistency(consistency_level)))


def drop_collection(client: Any, collection_name: str = "docs") -> None:
    """Drop the collection and its ColBERT companion (no error if it does not exist)."""
    check_sync_client(client, "drop_collection")
    run_sync(client, drop(client, _check_name(collection_name)))


# ---------------------------------------------------------------------------------------- async twins
async def aget_documents(client: Any, collection_name: str = "docs", ids: Iterable[str] | None = None,
                         query_filter: Any = None, limit: int | None = None, *,
                         consistency_level: str | None = None, filter_params: dict[str, Any] | None = None,
                         fields: MilvusFields | None = None) -> list[Document]:
    """Async twin of ``get_documents`` (``AsyncMilvusClient``; a ``MilvusClient`` runs in a worker thread)."""
    check_async_client(client, "aget_documents")
    _check_limit(limit)
    keys = None if ids is None else _keys(ids)
    compile_filter(query_filter, filter_params)
    program = _get_program(client, _check_name(collection_name), keys, query_filter, limit, filter_params,
                           _check_fields(fields))
    return await run_any(client, with_consistency(program, check_consistency(consistency_level)))


async def adelete_documents(client: Any, ids: Iterable[str], collection_name: str = "docs", *,
                            fields: MilvusFields | None = None) -> None:
    """Async twin of ``delete_documents``."""
    check_async_client(client, "adelete_documents")
    await run_any(client, _delete_ids_program(client, _check_name(collection_name), _keys(ids),
                                              _check_fields(fields)))


async def adelete_by_filter(client: Any, query_filter: Any, collection_name: str = "docs", *,
                            filter_params: dict[str, Any] | None = None, fields: MilvusFields | None = None) -> None:
    """Async twin of ``delete_by_filter``."""
    check_async_client(client, "adelete_by_filter")
    await run_any(client, _delete_where(client, _check_name(collection_name),
                                        _filter_expr(query_filter, filter_params), filter_params,
                                        fields=_check_fields(fields)))


async def acount_documents(client: Any, collection_name: str = "docs", query_filter: Any = None, *,
                           consistency_level: str | None = None, filter_params: dict[str, Any] | None = None,
                           fields: MilvusFields | None = None) -> int:
    """Async twin of ``count_documents``."""
    check_async_client(client, "acount_documents")
    compile_filter(query_filter, filter_params)
    program = _count_program(client, _check_name(collection_name), query_filter, filter_params,
                             _check_fields(fields))
    return await run_any(client, with_consistency(program, check_consistency(consistency_level)))


async def adrop_collection(client: Any, collection_name: str = "docs") -> None:
    """Async twin of ``drop_collection``."""
    check_async_client(client, "adrop_collection")
    await run_any(client, drop(client, _check_name(collection_name)))
