"""``QdrantEdgeStore``: the embedded Qdrant engine (``qdrant_edge``), one ``EdgeShard`` per collection.

The Rust Qdrant engine runs inside this process; each collection is a shard directory ``path/<collection>``
(WAL + segments), so data survives a restart and reopening the same path finds it again. It takes the same
schema and answers the same Query API requests as a Qdrant server, so the adapter's functions accept it
wherever they accept a ``QdrantClient``. Only one ``QdrantEdgeStore`` may open a given path at a time: the
store holds an advisory lock on ``path/.m3-store.lock`` from its construction to ``close()`` (taken before the
engine touches any file; the OS drops it when the process dies), and a second opener gets ``StoreLockedError``.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import models

from .. import _store_lock
from .._store_lock import StoreLockedError
from . import _evaluate, _plans
from ._backends import Row, Scored
from ._schema import (
    COLBERT_STORAGES,
    M3_METADATA_KEY,
    CollectionInfo,
    CollectionNotFoundError,
    QdrantSchema,
    VectorInfo,
    check_collection_name,
)

logger = logging.getLogger(__name__)

__all__ = ["QdrantEdgeStore", "StoreLockedError", "to_edge_filter"]

CONFIG_FILE = "edge_config.json"
RECORD_FILE = "m3_collection.json"  # the settings this package records with a collection


def _edge():
    import qdrant_edge

    return qdrant_edge


# ------------------------------------------------------------------------------- models.Filter -> Edge Filter
def _match(match: Any) -> Any:
    e = _edge()
    if isinstance(match, models.MatchValue):
        return e.MatchValue(match.value)
    if isinstance(match, models.MatchAny):
        return e.MatchAny(list(match.any))
    if isinstance(match, models.MatchExcept):
        return e.MatchExcept(list(match.except_))
    if isinstance(match, models.MatchText):
        return e.MatchText(match.text)
    if isinstance(match, models.MatchPhrase):
        return e.MatchPhrase(match.phrase)
    raise TypeError(f"Qdrant Edge filters do not support the match {type(match).__name__}")


def _range(rng: Any) -> Any:
    e = _edge()
    if isinstance(rng, models.Range):
        return e.RangeFloat(gte=rng.gte, gt=rng.gt, lte=rng.lte, lt=rng.lt)
    if isinstance(rng, models.DatetimeRange):
        def iso(v: Any) -> str | None:
            return None if v is None else (v if isinstance(v, str) else v.isoformat())
        return e.RangeDateTime(gte=iso(rng.gte), gt=iso(rng.gt), lte=iso(rng.lte), lt=iso(rng.lt))
    raise TypeError(f"Qdrant Edge filters do not support the range {type(rng).__name__}")


def _condition(cond: Any) -> Any:
    e = _edge()
    if isinstance(cond, models.Filter):
        return to_edge_filter(cond)
    if isinstance(cond, models.FieldCondition):
        if cond.geo_bounding_box or cond.geo_radius or cond.geo_polygon:
            raise TypeError("geo conditions are not translated for Qdrant Edge by this adapter")
        values_count = None
        if cond.values_count is not None:
            vc = cond.values_count
            values_count = e.ValuesCount(lt=vc.lt, gt=vc.gt, lte=vc.lte, gte=vc.gte)
        return e.FieldCondition(
            key=cond.key, match=None if cond.match is None else _match(cond.match),
            range=None if cond.range is None else _range(cond.range), values_count=values_count,
            is_empty=cond.is_empty, is_null=cond.is_null,
        )
    if isinstance(cond, models.HasIdCondition):
        return e.HasIdCondition(set(cond.has_id))
    if isinstance(cond, models.IsEmptyCondition):
        return e.IsEmptyCondition(cond.is_empty.key)
    if isinstance(cond, models.IsNullCondition):
        return e.IsNullCondition(cond.is_null.key)
    if isinstance(cond, models.HasVectorCondition):
        return e.HasVectorCondition(cond.has_vector)
    if isinstance(cond, models.NestedCondition):
        return e.NestedCondition(cond.nested.key, to_edge_filter(cond.nested.filter))
    raise TypeError(f"Qdrant Edge filters do not support the condition {type(cond).__name__}")


def _conditions(conds: Any) -> list[Any] | None:
    if conds is None:
        return None
    if not isinstance(conds, list):
        conds = [conds]
    return [_condition(c) for c in conds]


def to_edge_filter(flt: models.Filter | None) -> Any:
    """Translate a qdrant-client ``models.Filter`` into a ``qdrant_edge.Filter`` (which passes through)."""
    if flt is None:
        return None
    e = _edge()
    if isinstance(flt, e.Filter):
        return flt
    min_should = None
    if flt.min_should is not None:
        min_should = e.MinShould(_conditions(flt.min_should.conditions), flt.min_should.min_count)
    return e.Filter(must=_conditions(flt.must), should=_conditions(flt.should), must_not=_conditions(flt.must_not),
                    min_should=min_should)


# ------------------------------------------------------------------------------------ plan -> Edge request
def _edge_query(query: Any) -> Any:
    e = _edge()
    if isinstance(query, _plans.Nearest):
        if query.base is not None:  # the same vector scored another way: the same rendering
            return _edge_query(query.base)
        if query.rendered is None:  # rendered once per query vector, however many stages use it
            if query.kind == "sparse":
                indices, values = query.vector
                vector = e.SparseVector(indices=indices, values=values)
            else:
                vector = query.vector.tolist()
            query.rendered = e.Query.Nearest(vector, using=query.using)
        return query.rendered
    if isinstance(query, _plans.Rrf):
        return e.Fusion.Rrf(k=query.k, weights=query.weights)
    if isinstance(query, _plans.Dbsf):
        return e.Fusion.Dbsf()
    ex = e.Expression
    terms = [ex.Mult([ex.Constant(c), ex.Variable(f"$score[{i}]")]) for i, c in enumerate(query.coefficients)]
    formula = terms[0] if len(terms) == 1 else ex.Sum(terms)
    return e.Formula(formula, defaults={f"$score[{i}]": v for i, v in query.defaults.items()})


def _edge_params(query: Any) -> Any:
    kind = _plans.quantization_params(query)
    if kind is None:
        return None
    e = _edge()
    quantization = {"rescore": lambda: e.QuantizationSearchParams(rescore=True),
                    "approximate": lambda: e.QuantizationSearchParams(rescore=False),
                    "ignore": lambda: e.QuantizationSearchParams(ignore=True)}[kind]()
    return e.SearchParams(quantization=quantization)


def _edge_prefetch(stage: _plans.Stage) -> Any:
    return _edge().Prefetch(limit=stage.limit, query=_edge_query(stage.query),
                            prefetches=[_edge_prefetch(s) for s in stage.prefetch] or None,
                            filter=to_edge_filter(stage.filter), params=_edge_params(stage.query))


def _edge_request(stage: _plans.Stage, with_payload: bool) -> Any:
    return _edge().QueryRequest(limit=stage.limit, query=_edge_query(stage.query),
                                prefetches=[_edge_prefetch(s) for s in stage.prefetch] or None,
                                filter=to_edge_filter(stage.filter), params=_edge_params(stage.query),
                                with_payload=with_payload, with_vector=False)


def _restrict(ids: list[Any], flt: models.Filter | None) -> Any:
    e = _edge()
    conditions = [e.HasIdCondition(set(ids))]
    if flt is not None:
        conditions.append(to_edge_filter(flt))
    return e.Filter(must=conditions)


COLBERT_INDEX: str | None = None
"""A quantized copy of the ColBERT rows for new collections (``"binary"``: 1 bit per dimension, 128 B per row at
1024 dimensions), whose MaxSim estimates pick the few candidates scored exactly (``QueryPlan.shortlist``).
Off: measured on qdrant-edge 0.9 it is no faster than scoring the best dense + sparse candidates exactly (the
engine estimates a candidate at 0.4x the cost of scoring it exactly; docs/benchmarks.md), and it adds 128 B per
row. Collections made with it keep using it."""

_ESTIMATE_SLOPES = {"binary": 1024 * 2 / np.pi}
"""Quantized index -> how its MaxSim estimates scale with the exact ones, per dimension of the vector (a
binary code's dot product is ``dim - 2 * hamming``, about ``2 / pi * dim`` times the cosine for the small
cosines that decide which candidates make the shortlist; fitted slope: docs/benchmarks.md)."""


def _rows(matrix: Any) -> list[memoryview]:
    """A matrix as the engine's list of rows, each a memoryview of float32 (no Python float per value until the
    engine reads it: 3-4x faster than ``ndarray.tolist()``, which the engine's conversion then walks again)."""
    return [memoryview(row) for row in np.ascontiguousarray(matrix, dtype=np.float32)]


def _points(e: Any, rows: list[Row], schema: Any) -> list[Any]:
    """Rows as the engine's points."""
    points = []
    for pid, dense, (indices, values), colbert, payload in rows:
        vector = {schema.dense: memoryview(np.ascontiguousarray(dense, dtype=np.float32)),
                  schema.sparse: e.SparseVector(indices=indices, values=values)}
        if colbert is not None:
            vector[schema.colbert] = _rows(colbert)
        points.append(e.Point(id=pid, payload=payload, vector=vector))
    return points


def _colbert_index(e: Any) -> Any:
    if COLBERT_INDEX is None:  # no index: every re-scored candidate is scored exactly (benchmarks compare)
        return None
    if COLBERT_INDEX == "binary":
        return e.BinaryQuantizationConfig(memory=e.Memory.Cold)
    raise ValueError(f"unknown ColBERT index {COLBERT_INDEX!r}")


def colbert_estimate_slope(vector_config: dict[str, Any]) -> float | None:
    """How the MaxSim estimates of a ColBERT vector's quantized index scale with the exact scores (``None``: the
    vector has no quantized index this package knows: every candidate is scored exactly)."""
    quantization = vector_config.get("quantization_config") or {}
    if set(quantization) != {"binary"} or (quantization["binary"] or {}).get("encoding") not in (None, "one_bit"):
        return None
    return _ESTIMATE_SLOPES["binary"] * int(vector_config["size"]) / 1024


def _edge_config(schema: QdrantSchema, dim: int, **options: Any) -> Any:
    """The shard configuration of a new BGE-M3 collection (``options``: other ``EdgeConfig`` fields).

    ColBERT rows are stored as ``schema.colbert_storage`` and kept on disk (memory-mapped, ``Memory.Cold``):
    a re-score reads only its candidates' rows, so memory does not grow with the collection.
    """
    e = _edge()
    with_colbert = schema.with_colbert is not False
    schema = schema.for_new_collection()
    datatypes = {"float32": e.VectorStorageDatatype.Float32, "float16": e.VectorStorageDatatype.Float16,
                 "turbo8": e.VectorStorageDatatype.Turbo8, "turbo4": e.VectorStorageDatatype.Turbo4}
    vectors = {
        schema.dense: e.EdgeVectorParams(
            size=dim, distance=e.Distance.Cosine,
            quantization_config=e.ScalarQuantizationConfig(type=e.ScalarType.Int8, always_ram=True)
            if schema.dense_quantization else None,
        ),
    }
    if with_colbert:
        vectors[schema.colbert] = e.EdgeVectorParams(
            size=dim, distance=e.Distance.Cosine,
            multivector_config=e.MultiVectorConfig(comparator=e.MultiVectorComparator.MaxSim),
            datatype=datatypes[COLBERT_STORAGES[schema.colbert_storage]],
            memory=e.Memory.Cold,
            hnsw_config=e.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10000),
            quantization_config=_colbert_index(e),
        )
    return e.EdgeConfig(vectors=vectors, sparse_vectors={schema.sparse: e.EdgeSparseVectorParams()}, **options)


# ----------------------------------------------------------------------------------------------- the store
class QdrantEdgeStore:
    """Embedded, persistent Qdrant (Qdrant Edge): one shard per collection under ``path/<collection>``.

    Pass it as ``client`` to every function of ``m3_integrations.qdrant``. Large writes are indexed with
    ``EdgeShard.optimize()`` after the upsert that made them (``optimize_after`` points or more) and, for
    smaller writes that piled up, lazily before the next search.

    Args:
        path: directory holding the collections (created if missing).
        optimize_after: run the optimizer once this many points were written since the last run.
        max_search_threads: search threads per shard (``None``: from the number of CPUs).
        wait: seconds to wait for another process that has the store open (0: fail at once).
        wal: give collections this store creates a write-ahead log. Off by default: the engine's WAL keeps the
            last upsert batches again, as float32, whatever the ColBERT storage (a second copy of a small corpus;
            flush and reopen never shrink it). Without it every upsert is flushed before it returns, so a
            killed ingest loses at most the batch in flight, and re-running it resumes (tested with SIGKILL).
            Fixed per collection at creation; existing collections keep theirs.

    Raises:
        StoreLockedError: the store is open in another process (or by another ``QdrantEdgeStore`` of this one);
            the message names the path and the holder's pid.
    """

    def __init__(self, path: str | Path, *, optimize_after: int = 2000, max_search_threads: int | None = None,
                 wait: float = 0.0, wal: bool = False) -> None:
        self.path = Path(path)
        self.wal = bool(wal)
        self.wait = _store_lock.check_wait(wait)
        self.path.mkdir(parents=True, exist_ok=True)
        self._store_lock = _store_lock.StoreLock(self.path / _store_lock.LOCK_NAME, self.path, "Qdrant Edge store")
        self._store_lock.acquire(self.wait)
        weakref.finalize(self, self._store_lock.release)  # a store dropped without close() frees the path
        self.optimize_after = optimize_after
        self.max_search_threads = max_search_threads
        self._shards: dict[str, Any] = {}
        self._pending: dict[str, int] = {}
        self._wal: dict[str, bool] = {}
        self._estimates: dict[tuple[str, str], float | None] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"QdrantEdgeStore({str(self.path)!r})"

    def __enter__(self) -> QdrantEdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------- shards
    def _dir(self, name: str) -> Path:
        return self.path / check_collection_name(name)

    def _locked(self) -> None:
        """Take the store lock again after ``close()`` (another process may have the store meanwhile)."""
        if not self._store_lock.held:
            self._store_lock.acquire(self.wait)

    def _shard(self, name: str) -> Any:
        with self._lock:
            shard = self._shards.get(name)
            if shard is None:
                self._locked()
                if not self.exists(name):
                    raise CollectionNotFoundError(
                        f"collection {name!r} does not exist in {str(self.path)!r}; create it with upsert_documents"
                    )
                shard = _edge().EdgeShard.load(str(self._dir(name)))
                self._shards[name] = shard
            return shard

    def list_collections(self) -> list[str]:
        """Names of the collections stored under ``path``."""
        return sorted(p.name for p in self.path.iterdir() if (p / CONFIG_FILE).is_file())

    def exists(self, name: str) -> bool:
        """Whether the collection exists."""
        return (self._dir(name) / CONFIG_FILE).is_file()

    def describe(self, name: str) -> CollectionInfo:
        """Neutral description of the collection's vectors (read from the shard's persisted config)."""
        if not self.exists(name):
            raise CollectionNotFoundError(f"collection {name!r} does not exist in {str(self.path)!r}")
        config = json.loads((self._dir(name) / CONFIG_FILE).read_text())
        info = CollectionInfo()
        for vname, vp in (config.get("vectors") or {}).items():
            info.vectors[vname] = VectorInfo(size=int(vp["size"]), distance=str(vp["distance"]).lower(),
                                             multivector=vp.get("multivector_config") is not None,
                                             datatype=str(vp.get("datatype") or "float32").lower())
        info.sparse = set(config.get("sparse_vectors") or {})
        info.sparse_modifiers = {n: str(sp["modifier"]).lower()
                                 for n, sp in (config.get("sparse_vectors") or {}).items()
                                 if isinstance(sp, dict) and sp.get("modifier") not in (None, "none", "None")}
        record = self._dir(name) / RECORD_FILE
        if record.is_file():
            info.recorded = json.loads(record.read_text()).get(M3_METADATA_KEY, {})
        if name in self._shards or self.exists(name):
            info.points = self.count(name, None)
        return info

    def create(self, name: str, schema: QdrantSchema, dim: int) -> None:
        """Create the collection's shard with the BGE-M3 layout of ``schema``."""
        e = _edge()
        config = _edge_config(schema, dim, max_search_threads=self.max_search_threads, wal_enabled=self.wal)
        with self._lock:
            self._locked()
            directory = self._dir(name)
            # the record goes first: a shard never exists without it (a crash in between leaves no collection)
            directory.mkdir(parents=True, exist_ok=True)
            record = directory / RECORD_FILE
            record.with_suffix(".tmp").write_text(json.dumps({M3_METADATA_KEY: schema.record()}))
            record.with_suffix(".tmp").replace(record)
            shard = e.EdgeShard.create(str(directory), config)
            shard.update(e.UpdateOperation.create_field_index(schema.id_key, e.PayloadSchemaType.Keyword))
            self._shards[name] = shard

    def drop(self, name: str) -> None:
        """Delete the collection and its files."""
        with self._lock:
            self._locked()
            shard = self._shards.pop(name, None)
            self._pending.pop(name, None)
            self._wal.pop(name, None)
            self._estimates = {k: v for k, v in self._estimates.items() if k[0] != name}
            if shard is not None:
                shard.close()
            directory = self._dir(name)
            if directory.exists():
                shutil.rmtree(directory)

    def close(self) -> None:
        """Flush and close every open shard and release the store for other processes (the store locks the path
        and reopens the shards on the next use)."""
        with self._lock:
            try:
                for shard in self._shards.values():
                    shard.flush()
                    shard.close()
            finally:
                self._shards.clear()
                self._store_lock.release()


    def optimize(self, name: str) -> bool:
        """Build indexes and merge segments now; returns whether anything changed."""
        with self._lock:
            self._pending[name] = 0
            return bool(self._shard(name).optimize())

    # ------------------------------------------------------------------------------------------- writes
    def upsert(self, name: str, rows: list[Row], schema: Any) -> None:
        """Insert or replace points (``schema`` names the vectors; a row without ColBERT rows writes none)."""
        e = _edge()
        points = _points(e, rows, schema)
        shard = self._shard(name)
        shard.update(e.UpdateOperation.upsert_points(points))
        if not self._has_wal(name):
            shard.flush()  # without a WAL, only flushed points survive a crash
        with self._lock:
            self._pending[name] = self._pending.get(name, 0) + len(points)

    def colbert_estimates(self, name: str, vector: str) -> float | None:
        """Whether the collection's ColBERT ``vector`` has a quantized index to pick the candidates it scores
        exactly: the slope of its estimates over the exact scores, or ``None`` (read from the shard's config)."""
        key = (name, vector)
        if key not in self._estimates:
            path = self._dir(name) / CONFIG_FILE
            config = json.loads(path.read_text()) if path.is_file() else {}
            vector_config = (config.get("vectors") or {}).get(vector)
            slope = None if vector_config is None else colbert_estimate_slope(vector_config)
            if not path.is_file():
                return slope  # not cached: the collection may be created later
            self._estimates[key] = slope
        return self._estimates[key]

    def _has_wal(self, name: str) -> bool:
        wal = self._wal.get(name)
        if wal is None:
            config = json.loads((self._dir(name) / CONFIG_FILE).read_text())
            wal = self._wal[name] = config.get("wal_enabled") is not False
        return wal

    def after_upsert(self, name: str, written: int) -> None:
        """Flush, and optimize when enough was written since the last run."""
        shard = self._shard(name)
        shard.flush()
        if self._pending.get(name, 0) >= self.optimize_after:
            self.optimize(name)

    def _before_search(self, name: str) -> Any:
        shard = self._shard(name)
        if self._pending.get(name, 0) >= self.optimize_after:
            self.optimize(name)
        return shard

    def delete_ids(self, name: str, ids: list[Any]) -> None:
        """Delete points by id."""
        shard = self._shard(name)
        shard.update(_edge().UpdateOperation.delete_points(list(ids)))
        shard.flush()

    def delete_filter(self, name: str, flt: models.Filter) -> None:
        """Delete the points matching a filter."""
        shard = self._shard(name)
        shard.update(_edge().UpdateOperation.delete_points_by_filter(to_edge_filter(flt)))
        shard.flush()

    # -------------------------------------------------------------------------------------------- reads
    def query(self, name: str, stage: _plans.Stage) -> list[Scored]:
        """Run one request tree (payload included)."""
        return self.query_with_mode_scores(name, stage)[0]

    def query_with_mode_scores(self, name: str, stage: _plans.Stage
                               ) -> tuple[list[Scored], dict[str, dict[Any, float | None]] | None]:
        """Run one request tree (payload included), with the per-representation scores met on the way.

        Trees of nearest searches and weighted sums are evaluated stage by stage (``_evaluate``): each
        candidate search runs once and each re-scoring stage scores only the candidates whose score it does
        not know yet. The answer is the one-request tree's; RRF / DBSF trees run as one request (scores:
        ``None``).
        """
        shard = self._before_search(name)
        if not _evaluate.can_evaluate(stage):
            return [(p.id, p.score, p.payload) for p in shard.query(_edge_request(stage, True))], None

        def search(node: _plans.Stage) -> list[tuple[Any, float]]:
            return [(p.id, p.score) for p in shard.query(_edge_request(node, False))]

        result = _evaluate.evaluate(stage, search, _restrict)
        payloads = {r.id: r.payload for r in shard.retrieve([pid for pid, _ in result.ranked], True, False)}
        return [(pid, score, payloads.get(pid)) for pid, score in result.ranked], result.scores

    def query_batch(self, name: str, stages: list[_plans.Stage]) -> list[list[Scored]]:
        """Run several request trees as one batch (no payload)."""
        shard = self._before_search(name)
        batch = _edge().QueryBatchRequest([_edge_request(s, False) for s in stages])
        return [[(p.id, p.score, None) for p in res] for res in shard.query_batch(batch)]

    def count(self, name: str, flt: models.Filter | None) -> int:
        """Number of points (matching the filter)."""
        return int(self._shard(name).count(_edge().CountRequest(exact=True, filter=to_edge_filter(flt))))

    def retrieve(self, name: str, ids: list[Any]) -> list[tuple[Any, dict]]:
        """Points by id (missing ids are skipped)."""
        return [(r.id, r.payload) for r in self._shard(name).retrieve(list(ids), True, False)]

    def scroll(self, name: str, flt: models.Filter | None, limit: int | None) -> list[tuple[Any, dict]]:
        """Points in id order (matching the filter), at most ``limit``."""
        e = _edge()
        shard = self._shard(name)
        edge_filter = to_edge_filter(flt)
        out: list[tuple[Any, dict]] = []
        offset = None
        while limit is None or len(out) < limit:
            page = 256 if limit is None else min(256, limit - len(out))
            records, offset = shard.scroll(e.ScrollRequest(offset=offset, limit=page, filter=edge_filter,
                                                           with_payload=True, with_vector=False))
            out.extend((r.id, r.payload) for r in records)
            if offset is None:
                break
        return out
