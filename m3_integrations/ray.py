"""Ray Data ingest: encode a corpus on a pool of ``M3Encoder`` actors and store it in Qdrant or Milvus.

Each actor loads the model once, encodes the batches Ray gives it (split into token-budgeted forward passes
by the encoder), pools ColBERT rows as the target collection stores them, and then either writes them itself
(a Qdrant server URL or a Milvus server URI: every actor is a writer) or hands them back to the driver,
which writes them (Qdrant Edge and milvus-lite files have one writer). Either way the rows, ids and checks
are those of ``upsert_documents`` (``EncodedWriter`` of each adapter), so the result is the same collection.

Failures: Ray restarts an actor that dies and retries its batch (its defaults; writes are idempotent upserts
by deterministic id, so a batch written twice is stored once). Nothing here sets
``DataContext.max_errored_blocks``: with it, failed blocks would be dropped silently. An error in the data
(a row without text, metadata that is not JSON) fails the job with a message naming the row; re-running the
same job after fixing it adds nothing twice.

Requires the ``ray`` extra (``pip install "m3-integrations[ray]"``); ``import m3_integrations`` never imports Ray.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from ._ingest import Document, point_id, to_document, with_retries
from .encoder.types import M3Output

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

    from .qdrant import QdrantSchema

logger = logging.getLogger(__name__)

DEFAULT_CPU_ACTOR_CPUS = 0.5
"""CPUs reserved per CPU actor: whole CPUs per actor plus Ray Data's read tasks can leave a 2-CPU machine
waiting forever for a free CPU; half a CPU cannot (the encoder still uses the threads torch gives it)."""


# ------------------------------------------------------------------------------------------------ targets
@dataclass(frozen=True)
class QdrantTarget:
    """Where to store: a Qdrant server (``url``; the actors write) or a Qdrant Edge store (``path``; the
    driver writes), or an open ``client`` (a ``QdrantClient`` or ``QdrantEdgeStore``; the driver writes).

    ``schema``: as ``upsert_documents``' (vector names, ColBERT storage, payload keys).
    """

    url: str | None = None
    path: str | os.PathLike | None = None
    api_key: str | None = field(default=None, repr=False)
    collection_name: str = "docs"
    schema: QdrantSchema | None = None
    client: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.url, self.path, self.client)) != 1:
            raise ValueError("QdrantTarget needs exactly one of url= (a server: the actors write), path= (a Qdrant "
                             "Edge store: the driver writes) or client= (an open client: the driver writes)")

    @property
    def driver_writes(self) -> bool:
        """Whether the driver writes (an embedded store or an open client) instead of the actors."""
        return self.url is None

    def open(self) -> Any:
        """The client (``connect``), or the one given."""
        if self.client is not None:
            return self.client
        from .qdrant.connect import connect

        return connect(self.url, path=self.path, api_key=self.api_key)

    def writer(self, client: Any, dim: int) -> Any:
        """The adapter's ``EncodedWriter`` for this collection."""
        from .qdrant.documents import EncodedWriter

        return EncodedWriter(client, self.collection_name, dim, schema=self.schema)


@dataclass(frozen=True)
class MilvusTarget:
    """Where to store: a Milvus server (``uri="http://host:19530"``; the actors write), a milvus-lite file
    (``uri="./m3.db"``; the driver writes) or an open ``client`` (a ``MilvusClient``; the driver writes).

    The ColBERT settings, ``with_colbert`` and ``consistency_level`` are those of ``upsert_documents`` (used when
    the collection is created).
    """

    uri: str | os.PathLike | None = None
    token: str | None = field(default=None, repr=False)
    collection_name: str = "docs"
    colbert_layout: str = "auto"
    colbert_storage: str | None = None
    colbert_pool_factor: int | None = None
    client: Any = field(default=None, repr=False, compare=False)
    with_colbert: bool | None = None
    consistency_level: str | None = None

    def __post_init__(self) -> None:
        if (self.uri is None) == (self.client is None):
            raise ValueError("MilvusTarget needs exactly one of uri= (a server URI: the actors write; a milvus-lite "
                             "file: the driver writes) or client= (an open MilvusClient: the driver writes)")

    @property
    def driver_writes(self) -> bool:
        """Whether the driver writes (a milvus-lite file or an open client) instead of the actors."""
        from .milvus.connect import is_lite

        return self.client is not None or is_lite(self.uri)

    def open(self) -> Any:
        """The client (``connect``), or the one given."""
        if self.client is not None:
            return self.client
        from .milvus.connect import connect

        return connect(self.uri, token=self.token)

    def writer(self, client: Any, dim: int) -> Any:
        """The adapter's ``EncodedWriter`` for this collection."""
        from .milvus.documents import EncodedWriter

        return EncodedWriter(client, self.collection_name, dim, colbert_layout=self.colbert_layout,
                             colbert_storage=self.colbert_storage, colbert_pool_factor=self.colbert_pool_factor,
                             with_colbert=self.with_colbert, consistency_level=self.consistency_level)


@dataclass
class RayIngestReport:
    """What ``ingest_dataset`` did: documents handled (a document repeated within one batch counts once),
    written, and found stored unchanged (not encoded again), and who wrote (``"actors"`` or ``"driver"``)."""

    rows: int = 0
    written: int = 0
    unchanged: int = 0
    writer: str = "actors"


# ------------------------------------------------------------------------------------------- the actors
@dataclass(frozen=True)
class _Columns:
    text: str
    id: str | None
    metadata: str | None


def _documents(batch: pa.Table, columns: _Columns) -> list[Document]:
    """The batch's rows as validated ``Document``s (the checks of ``upsert_documents``)."""
    texts = batch.column(columns.text).to_pylist()
    ids = batch.column(columns.id).to_pylist() if columns.id else [None] * len(texts)
    metas = batch.column(columns.metadata).to_pylist() if columns.metadata else [None] * len(texts)
    docs = []
    for i, (text, doc_id, meta) in enumerate(zip(texts, ids, metas, strict=True)):
        where = f"row with {columns.id} {doc_id!r}" if doc_id is not None else f"row with text {str(text)[:60]!r}"
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except ValueError as exc:
                raise ValueError(f"{where}: column {columns.metadata!r} is not JSON ({exc})") from None
        try:
            docs.append(to_document({"text": text, "id": doc_id, "metadata": meta or {}}, i))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
    return docs


def _unique(docs: list[Document]) -> list[Document]:
    """The same id twice in one batch: the last one wins, as in ``upsert_documents``."""
    return list({point_id(d): d for d in docs}.values())


def _encoded_table(docs: list[Document], output: M3Output) -> pa.Table:
    import pyarrow as pa

    dense = np.asarray(output.dense, dtype=np.float32)
    dim = dense.shape[1] if dense.ndim == 2 else 0
    sparse = [M3Output.sparse_to_arrays(s) for s in output.sparse]
    colbert = [np.ascontiguousarray(c, dtype=np.float32) for c in output.colbert]
    return pa.table({
        "id": pa.array([d.key for d in docs], pa.string()),
        "point_id": pa.array([point_id(d) for d in docs], pa.string()),
        "text": pa.array([d.text for d in docs], pa.string()),
        "metadata": pa.array([json.dumps(d.metadata, ensure_ascii=False) for d in docs], pa.string()),
        "dense": pa.FixedSizeListArray.from_arrays(pa.array(dense.reshape(-1), pa.float32()), dim),
        "sparse_indices": pa.array([s[0] for s in sparse], pa.list_(pa.int64())),
        "sparse_values": pa.array([s[1] for s in sparse], pa.list_(pa.float64())),
        "colbert": pa.array([c.tobytes() for c in colbert], pa.binary()),
        "colbert_rows": pa.array([len(c) for c in colbert], pa.int32()),
    })


def decode_encoded(batch: pa.Table) -> tuple[list[Document], M3Output]:
    """An ``encode_dataset`` batch (a ``pyarrow.Table``) back as documents and their ``M3Output``."""
    docs = [Document(text=t, id=k, metadata=json.loads(m)) for k, t, m in
            zip(batch.column("id").to_pylist(), batch.column("text").to_pylist(),
                batch.column("metadata").to_pylist(), strict=True)]
    dense_col = batch.column("dense").combine_chunks()
    dim = dense_col.type.list_size
    dense = dense_col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
    sparse = [dict(zip(i, v, strict=True)) for i, v in zip(batch.column("sparse_indices").to_pylist(),
                                                          batch.column("sparse_values").to_pylist(), strict=True)]
    colbert = [np.frombuffer(b, dtype=np.float32).reshape(n, dim).copy() for b, n in
               zip(batch.column("colbert").to_pylist(), batch.column("colbert_rows").to_pylist(), strict=True)]
    return docs, M3Output(dense=dense, sparse=sparse, colbert=colbert)


@dataclass(frozen=True)
class _ActorSpec:
    model: Any
    encoder_kwargs: dict
    pool_factor: int
    columns: _Columns
    target: QdrantTarget | MilvusTarget | None  # set: this actor writes
    dim: int
    skip_unchanged: bool
    attempts: int
    backoff: float
    colbert: bool = True  # False: the collection stores no ColBERT vectors, so the actors compute none


class _EncodeActor:
    """One Ray actor: one encoder (and, for a server target, one client) for the actor's lifetime."""

    def __init__(self, spec: _ActorSpec) -> None:
        self.spec = spec
        if callable(spec.model):
            self.encoder = spec.model()
        else:
            from .encoder import M3Encoder

            self.encoder = M3Encoder(spec.model, **spec.encoder_kwargs)
        self.writer = None
        if spec.target is not None:
            self.writer = spec.target.writer(spec.target.open(), spec.dim)
            if hasattr(self.writer, "colbert"):  # what the driver's prepare() found (the actors do not prepare)
                self.writer.colbert = spec.colbert

    def _encode(self, texts: list[str]) -> M3Output:
        if not self.spec.colbert:
            output = self.encoder.encode_documents(texts, return_colbert=False)
            dim = np.asarray(output.dense).shape[-1]
            return M3Output(dense=output.dense, sparse=output.sparse,
                            colbert=[np.zeros((0, dim), np.float32) for _ in texts])  # no rows: nothing to store
        output = self.encoder.encode_documents(texts)
        if self.spec.pool_factor == 1:
            return output
        from .encoder.pooling import pool_output

        device = getattr(self.encoder, "device", None)
        return pool_output(output, self.spec.pool_factor, device=device if type(device).__name__ == "device" else None)

    def _retry(self, call: Callable[[], Any]) -> Any:
        return with_retries(call, attempts=self.spec.attempts, backoff=self.spec.backoff,
                            transient=self.writer.transient)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        docs = _unique(_documents(batch, self.spec.columns))
        if self.writer is None:
            return _encoded_table(docs, self._encode([d.text for d in docs]))
        same = self._retry(partial(self.writer.unchanged, docs)) if self.spec.skip_unchanged else set()
        todo = [d for d in docs if d.key not in same]
        if todo:
            output = self._encode([d.text for d in todo])
            self._retry(partial(self.writer.write, todo, output))
        return pa.table({"rows": [len(docs)], "written": [len(todo)], "unchanged": [len(docs) - len(todo)]})


# ------------------------------------------------------------------------------------------- the driver
def _model_dim(model: Any, dim: int | None) -> int:
    if dim is not None:
        return dim
    if callable(model):
        raise ValueError("pass dim= (the encoder's output dimension) when model is a factory callable")
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(str(model)).hidden_size)


def _columns(dataset: ray.data.Dataset, text_column: str, id_column: str | None, metadata_column: str | None
             ) -> _Columns:
    names = set(dataset.schema().names)
    if text_column not in names:
        raise ValueError(f"the dataset has no {text_column!r} column (columns: {sorted(names)}); pass text_column=")

    def optional(name: str | None, default: str, what: str) -> str | None:
        if name is None or name in names:
            return name
        if name == default:
            return None  # the default column is used when present
        raise ValueError(f"the dataset has no {name!r} column for the {what} (columns: {sorted(names)})")

    return _Columns(text_column, optional(id_column, "id", "ids"), optional(metadata_column, "metadata", "metadata"))


def _check_pool(concurrency: Any, num_gpus: Any, num_cpus: Any, batch_size: Any) -> float:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency (actors) must be an int >= 1, got {concurrency!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(num_gpus, (int, float)) or num_gpus < 0:
        raise ValueError(f"num_gpus (per actor) must be >= 0, got {num_gpus!r}")
    if num_cpus is None:
        return 1.0 if num_gpus else DEFAULT_CPU_ACTOR_CPUS
    if not isinstance(num_cpus, (int, float)) or num_cpus <= 0:
        raise ValueError(f"num_cpus (per actor) must be > 0, got {num_cpus!r}")
    return float(num_cpus)


def _map(dataset: ray.data.Dataset, spec: _ActorSpec, concurrency: int, num_gpus: float, num_cpus: float,
         batch_size: int) -> ray.data.Dataset:
    from ray.data import ActorPoolStrategy

    resources: dict[str, Any] = {"num_cpus": num_cpus}
    if num_gpus:
        resources["num_gpus"] = num_gpus
    return dataset.map_batches(_EncodeActor, fn_constructor_args=(spec,), compute=ActorPoolStrategy(size=concurrency),
                               batch_size=batch_size, batch_format="pyarrow", **resources)


def encode_dataset(
    dataset: ray.data.Dataset,
    model: str | os.PathLike | Callable[[], Any] = "BAAI/bge-m3",
    *,
    text_column: str = "text",
    id_column: str | None = "id",
    metadata_column: str | None = "metadata",
    colbert_pool_factor: int = 1,
    concurrency: int = 1,
    num_gpus: float = 0,
    num_cpus: float | None = None,
    batch_size: int = 256,
    encoder_kwargs: dict | None = None,
) -> ray.data.Dataset:
    """A Ray Dataset of encoded documents (lazy), encoded by ``concurrency`` actors of ``M3Encoder``.

    Args:
        dataset: rows with a text column, and optionally an id column and a metadata column (a mapping or a
            JSON string per row; Arrow gives every row of a mapping column the same keys, filling the
            missing ones with ``None``, so JSON strings keep heterogeneous metadata exactly).
        model: a hub id or local directory for ``M3Encoder(model, **encoder_kwargs)``, or a picklable callable
            returning an encoder (anything with ``encode_documents``).
        id_column, metadata_column: used when present (``None``: never).
        colbert_pool_factor: ColBERT token pooling applied in the actor (1 = none).
        concurrency: number of actors; num_gpus / num_cpus: resources per actor (``num_cpus`` default: 1 with
            GPUs, else 0.5 so that the actors and Ray's read tasks fit on any machine).
        batch_size: rows per Ray batch; the encoder splits each into token-budgeted forward passes.

    Returns:
        One row per distinct document of each batch: ``id`` (its key), ``point_id``, ``text``, ``metadata``
        (JSON), ``dense``, ``sparse_indices`` / ``sparse_values``, ``colbert`` (float32 bytes) and
        ``colbert_rows``; ``decode_encoded`` turns a ``pyarrow`` batch of it back into documents and an ``M3Output``.
    """
    from .encoder.pooling import check_pool_factor

    cpus = _check_pool(concurrency, num_gpus, num_cpus, batch_size)
    spec = _ActorSpec(model, dict(encoder_kwargs or {}), check_pool_factor(colbert_pool_factor),
                      _columns(dataset, text_column, id_column, metadata_column), None, 0, False, 3, 0.5)
    return _map(dataset, spec, concurrency, num_gpus, cpus, batch_size)


def ingest_dataset(
    dataset: ray.data.Dataset,
    target: QdrantTarget | MilvusTarget,
    model: str | os.PathLike | Callable[[], Any] = "BAAI/bge-m3",
    *,
    text_column: str = "text",
    id_column: str | None = "id",
    metadata_column: str | None = "metadata",
    concurrency: int = 1,
    num_gpus: float = 0,
    num_cpus: float | None = None,
    batch_size: int = 256,
    encoder_kwargs: dict | None = None,
    dim: int | None = None,
    recreate: bool = False,
    skip_unchanged: bool = True,
    attempts: int = 3,
    backoff: float = 0.5,
) -> RayIngestReport:
    """Encode a Ray Dataset on an actor pool and store it as ``upsert_documents`` would (same collection
    layout, ColBERT settings, deterministic ids and checks).

    The collection is checked or created once by the driver before anything is encoded, and its ColBERT pool
    factor is applied in the actors. A server target is written by the actors (each batch right after it is
    encoded; with ``skip_unchanged`` the actor first looks up which documents are stored unchanged and
    encodes only the others, so a re-run resumes); an embedded store (Qdrant Edge, milvus-lite) or an open
    ``client`` is written by the driver as encoded batches arrive (a re-run re-encodes and rewrites the same
    points: nothing is added). Other arguments: as ``encode_dataset``; ``dim`` is needed only when ``model``
    is a callable; ``attempts`` / ``backoff``: retries of transient database errors per batch.

    Raises:
        ValueError: a missing column or a bad setting (before anything runs), or a bad row (the job stops;
        what was written stays, and re-running after fixing the row adds nothing twice).
    """
    import ray

    from .encoder.pooling import check_pool_factor

    if not isinstance(target, (QdrantTarget, MilvusTarget)):
        raise TypeError(f"target must be a QdrantTarget or a MilvusTarget, got {type(target).__name__}")
    cpus = _check_pool(concurrency, num_gpus, num_cpus, batch_size)
    columns = _columns(dataset, text_column, id_column, metadata_column)
    dim = _model_dim(model, dim)
    if not ray.is_initialized():
        ray.init()  # before an embedded store opens: the other order can time the node start out
    client = target.open()
    try:
        writer = target.writer(client, dim)
        pool_factor = check_pool_factor(writer.prepare(recreate=recreate))
        driver = target.driver_writes
        spec = _ActorSpec(model, dict(encoder_kwargs or {}), pool_factor, columns,
                          None if driver else replace(target, client=None), dim, skip_unchanged, attempts, backoff,
                          colbert=getattr(writer, "colbert", True))
        mapped = _map(dataset, spec, concurrency, num_gpus, cpus, batch_size)
        report = RayIngestReport(writer="driver" if driver else "actors")
        for batch in mapped.iter_batches(batch_size=None, batch_format="pyarrow"):
            if driver:
                docs, output = decode_encoded(batch)
                with_retries(partial(writer.write, docs, output), attempts=attempts, backoff=backoff,
                             transient=writer.transient)
                report.rows += len(docs)
                report.written += len(docs)
            else:
                report.rows += sum(batch.column("rows").to_pylist())
                report.written += sum(batch.column("written").to_pylist())
                report.unchanged += sum(batch.column("unchanged").to_pylist())
        writer.finish()  # what follows an ingest, as in upsert_documents (milvus-lite: seal the segments)
        logger.info("Ray ingest into %r: %d rows, %d written, %d unchanged (written by the %s)",
                    target.collection_name, report.rows, report.written, report.unchanged, report.writer)
        return report
    finally:
        if client is not None and target.client is None:
            client.close()


__all__ = ["MilvusTarget", "QdrantTarget", "RayIngestReport", "decode_encoded", "encode_dataset", "ingest_dataset"]
