"""Thin drivers that give the adapter one interface over ``QdrantClient`` and ``AsyncQdrantClient``.

``QdrantEdgeStore`` (``edge.py``) implements the same methods natively. Everything the adapter sends is
built once (``_plans``/``_filters``); the drivers only render and execute it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from . import _plans
from ._schema import (
    COLBERT_STORAGES,
    M3_METADATA_KEY,
    CollectionInfo,
    CollectionNotFoundError,
    QdrantSchema,
    VectorInfo,
)

Row = tuple[str | int, np.ndarray, tuple[list[int], list[float]], np.ndarray | None, dict[str, Any]]
"""(point id, dense vector, (sparse indices, values), ColBERT rows (``None``: none), payload)."""

Scored = tuple[Any, float, dict[str, Any] | None]
"""(point id, score, payload)."""

_DISTANCES = {models.Distance.COSINE: "cosine", models.Distance.DOT: "dot", models.Distance.EUCLID: "euclid",
              models.Distance.MANHATTAN: "manhattan"}

SCROLL_PAGE = 256


def _transient_errors() -> tuple[type[BaseException], ...]:
    import httpx

    return (ConnectionError, TimeoutError, ResponseHandlingException, httpx.TransportError)


TRANSIENT_ERRORS = _transient_errors()
"""Errors retried with backoff during ingest (network trouble, timeouts)."""


def describe_models(config: models.CollectionConfig, points: int | None) -> CollectionInfo:
    """Neutral description of a qdrant-client collection config."""
    params = config.params
    info = CollectionInfo(points=points, recorded=recorded_settings(getattr(config, "metadata", None)))
    vectors = params.vectors
    if isinstance(vectors, models.VectorParams):
        vectors = {"": vectors}
    for name, vp in (vectors or {}).items():
        datatype = vp.datatype.value if vp.datatype is not None else "float32"
        info.vectors[name] = VectorInfo(size=vp.size, distance=_DISTANCES.get(vp.distance, str(vp.distance)),
                                        multivector=vp.multivector_config is not None, datatype=datatype)
    info.sparse = set(params.sparse_vectors or {})
    info.sparse_modifiers = {name: str(getattr(sp.modifier, "value", sp.modifier)).lower()
                             for name, sp in (params.sparse_vectors or {}).items()
                             if sp.modifier is not None and sp.modifier != models.Modifier.NONE}
    return info


def recorded_settings(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """What this package recorded in a collection's metadata (empty when nothing was)."""
    return dict((metadata or {}).get(M3_METADATA_KEY) or {})


def create_kwargs(name: str, schema: QdrantSchema, dim: int) -> dict[str, Any]:
    """``create_collection`` arguments of a BGE-M3 collection (ColBERT rows on disk, in ``colbert_storage``)."""
    record = schema.record()
    schema = schema.for_new_collection()
    vectors = {
        schema.dense: models.VectorParams(
            size=dim, distance=models.Distance.COSINE,
            quantization_config=models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, always_ram=True)) if schema.dense_quantization else None,
        ),
    }
    if schema.with_colbert is not False:
        vectors[schema.colbert] = models.VectorParams(
            size=dim, distance=models.Distance.COSINE,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
            hnsw_config=models.HnswConfigDiff(m=0),  # re-score only: no graph to build or store
            datatype=models.Datatype(COLBERT_STORAGES[schema.colbert_storage]),
            on_disk=True,
        )
    return {
        "collection_name": name,
        "vectors_config": vectors,
        "sparse_vectors_config": {schema.sparse: models.SparseVectorParams()},
        "metadata": {M3_METADATA_KEY: record},
    }


def to_points(rows: list[Row], schema: Any) -> list[models.PointStruct]:
    """Rows as qdrant-client points (``schema``: anything naming ``dense`` / ``sparse`` / ``colbert``; a row
    without ColBERT rows writes no ColBERT vector; ``dense`` ``""`` is the collection's unnamed vector)."""
    points = []
    for pid, dense, (indices, values), colbert, payload in rows:
        vector = {schema.dense: dense.tolist(), schema.sparse: models.SparseVector(indices=indices, values=values)}
        if colbert is not None:
            vector[schema.colbert] = colbert.tolist()
        points.append(models.PointStruct(id=pid, payload=payload, vector=vector))
    return points


def _scored(points: list[Any]) -> list[Scored]:
    return [(p.id, p.score, p.payload) for p in points]


def _is_local(client: Any) -> bool:
    from qdrant_client.local.async_qdrant_local import AsyncQdrantLocal
    from qdrant_client.local.qdrant_local import QdrantLocal

    return isinstance(getattr(client, "_client", None), (QdrantLocal, AsyncQdrantLocal))


def _not_found(name: str) -> CollectionNotFoundError:
    return CollectionNotFoundError(f"collection {name!r} does not exist; create it with upsert_documents first")


class ClientBackend:
    """Synchronous driver over a ``QdrantClient`` (":memory:", ``path=`` or ``url=``)."""

    def __init__(self, client: QdrantClient) -> None:
        self.client = client
        self.params = not _is_local(client)  # local mode is exact and warns about search params

    def exists(self, name: str) -> bool:
        return self.client.collection_exists(name)

    def describe(self, name: str) -> CollectionInfo:
        if not self.client.collection_exists(name):
            raise _not_found(name)
        info = self.client.get_collection(name)
        return describe_models(info.config, info.points_count)

    def create(self, name: str, schema: QdrantSchema, dim: int) -> None:
        self.client.create_collection(**create_kwargs(name, schema, dim))
        if not _is_local(self.client):  # local mode ignores payload indexes (and warns)
            self.client.create_payload_index(name, schema.id_key, models.PayloadSchemaType.KEYWORD)

    def drop(self, name: str) -> None:
        self.client.delete_collection(name)

    def upsert(self, name: str, rows: list[Row], schema: QdrantSchema) -> None:
        self.client.upsert(name, points=to_points(rows, schema), wait=True)

    def after_upsert(self, name: str, written: int) -> None:
        """Nothing to do: a server indexes in the background."""

    def query(self, name: str, stage: _plans.Stage) -> list[Scored]:
        res = self.client.query_points(name, **_plans.to_query_kwargs(stage, self.params), with_payload=True)
        return _scored(res.points)

    def query_batch(self, name: str, stages: list[_plans.Stage]) -> list[list[Scored]]:
        requests = [_plans.to_query_request(s, self.params) for s in stages]
        res = self.client.query_batch_points(name, requests=requests)
        return [_scored(r.points) for r in res]

    def count(self, name: str, flt: models.Filter | None) -> int:
        return self.client.count(name, count_filter=flt, exact=True).count

    def retrieve(self, name: str, ids: list[str]) -> list[tuple[Any, dict]]:
        return [(r.id, r.payload) for r in self.client.retrieve(name, ids=ids, with_payload=True)]

    def scroll(self, name: str, flt: models.Filter | None, limit: int | None) -> list[tuple[Any, dict]]:
        out: list[tuple[Any, dict]] = []
        offset = None
        while limit is None or len(out) < limit:
            page = SCROLL_PAGE if limit is None else min(SCROLL_PAGE, limit - len(out))
            records, offset = self.client.scroll(name, scroll_filter=flt, limit=page, offset=offset,
                                                 with_payload=True)
            out.extend((r.id, r.payload) for r in records)
            if offset is None:
                break
        return out

    def delete_ids(self, name: str, ids: list[Any]) -> None:
        self.client.delete(name, points_selector=models.PointIdsList(points=ids), wait=True)

    def delete_filter(self, name: str, flt: models.Filter) -> None:
        self.client.delete(name, points_selector=models.FilterSelector(filter=flt), wait=True)


class AsyncClientBackend:
    """The same driver over an ``AsyncQdrantClient`` (every method is a coroutine)."""

    def __init__(self, client: AsyncQdrantClient) -> None:
        self.client = client
        self.params = not _is_local(client)

    async def exists(self, name: str) -> bool:
        return await self.client.collection_exists(name)

    async def describe(self, name: str) -> CollectionInfo:
        if not await self.client.collection_exists(name):
            raise _not_found(name)
        info = await self.client.get_collection(name)
        return describe_models(info.config, info.points_count)

    async def create(self, name: str, schema: QdrantSchema, dim: int) -> None:
        await self.client.create_collection(**create_kwargs(name, schema, dim))
        if not _is_local(self.client):
            await self.client.create_payload_index(name, schema.id_key, models.PayloadSchemaType.KEYWORD)

    async def drop(self, name: str) -> None:
        await self.client.delete_collection(name)

    async def upsert(self, name: str, rows: list[Row], schema: QdrantSchema) -> None:
        await self.client.upsert(name, points=to_points(rows, schema), wait=True)

    async def after_upsert(self, name: str, written: int) -> None:
        """Nothing to do: a server indexes in the background."""

    async def query(self, name: str, stage: _plans.Stage) -> list[Scored]:
        res = await self.client.query_points(name, **_plans.to_query_kwargs(stage, self.params),
                                             with_payload=True)
        return _scored(res.points)

    async def query_batch(self, name: str, stages: list[_plans.Stage]) -> list[list[Scored]]:
        requests = [_plans.to_query_request(s, self.params) for s in stages]
        res = await self.client.query_batch_points(name, requests=requests)
        return [_scored(r.points) for r in res]

    async def count(self, name: str, flt: models.Filter | None) -> int:
        return (await self.client.count(name, count_filter=flt, exact=True)).count

    async def retrieve(self, name: str, ids: list[str]) -> list[tuple[Any, dict]]:
        return [(r.id, r.payload) for r in await self.client.retrieve(name, ids=ids, with_payload=True)]

    async def scroll(self, name: str, flt: models.Filter | None, limit: int | None) -> list[tuple[Any, dict]]:
        out: list[tuple[Any, dict]] = []
        offset = None
        while limit is None or len(out) < limit:
            page = SCROLL_PAGE if limit is None else min(SCROLL_PAGE, limit - len(out))
            records, offset = await self.client.scroll(name, scroll_filter=flt, limit=page, offset=offset,
                                                       with_payload=True)
            out.extend((r.id, r.payload) for r in records)
            if offset is None:
                break
        return out

    async def delete_ids(self, name: str, ids: list[Any]) -> None:
        await self.client.delete(name, points_selector=models.PointIdsList(points=ids), wait=True)

    async def delete_filter(self, name: str, flt: models.Filter) -> None:
        await self.client.delete(name, points_selector=models.FilterSelector(filter=flt), wait=True)


def is_not_found(exc: BaseException) -> bool:
    """Whether a client error means "collection not found"."""
    if isinstance(exc, UnexpectedResponse) and exc.status_code == 404:
        return True
    return "not found" in str(exc).lower()
