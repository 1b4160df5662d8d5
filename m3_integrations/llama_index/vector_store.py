"""LlamaIndex vector stores over the M3 store adapters: dense + sparse + ColBERT per node, fused in the database.

``M3QdrantVectorStore`` (a ``QdrantClient`` or the embedded ``QdrantEdgeStore``) and
``M3MilvusVectorStore`` (a ``MilvusClient``) share one implementation, ``M3VectorStoreBase``; they
differ only in the store adapter they call (``m3_integrations.qdrant`` / ``m3_integrations.milvus``).

Query modes: ``DEFAULT`` -> dense, ``SPARSE`` -> sparse (lexical), ``HYBRID`` -> the adapter's
``hybrid_search`` (dense + sparse candidates, ColBERT re-score, fused inside the database).

``alpha`` (``HYBRID`` only; LlamaIndex's convention: 0 = lexical only, 1 = vector only) is the dense
share of the dense + sparse weight; the ColBERT weight and the dense + sparse total stay as set in
``hybrid_weights`` = ``(w_d, w_s, w_c)``::

    weights(alpha) = (alpha * (w_d + w_s), (1 - alpha) * (w_d + w_s), w_c)

With the default ``(0.4, 0.2, 0.4)``: ``alpha=None`` -> ``(0.4, 0.2, 0.4)`` (the same as alpha = 2/3),
``alpha=1`` -> ``(0.6, 0, 0.4)``, ``alpha=0.5`` -> ``(0.3, 0.3, 0.4)``, ``alpha=0`` -> ``(0, 0.6, 0.4)``.
Since the sum of the weights does not change, weighted-fusion scores stay on the same scale for every alpha.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.schema import BaseNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)

from .._errors import CollectionNotFoundError
from .._query import AllOf, Condition, make_plan
from .._store_options import check_takes, names_for, with_colbert_names
from ..encoder import DEFAULT_WEIGHTS, M3Encoder, validate_weights
from ._common import (
    DEFAULT_CACHE_SIZE,
    NODE_ID_KEY,
    adapter_for_client,
    ensure_cache,
    hit_to_node,
    node_to_document,
    resolve_encoder,
    to_node,
)
from ._filters import combine, to_neutral_filter

__all__ = ["M3MilvusVectorStore", "M3QdrantVectorStore", "M3VectorStoreBase", "alpha_to_weights"]

logger = logging.getLogger(__name__)

_MODES = {
    VectorStoreQueryMode.DEFAULT: "dense",
    VectorStoreQueryMode.SPARSE: "sparse",
    VectorStoreQueryMode.HYBRID: "hybrid",
}
_QUERY_KWARGS = ("mode", "fusion", "weights", "prefetch_limit", "rrf_k", "rescore_limit", "native_filter",
                 "filter_params")
_SERIALIZED_FIELDS = ("stores_text", "is_embedding_query", "flat_metadata")  # what to_dict() gives back


def alpha_to_weights(alpha: float | None, weights: Sequence[float] = DEFAULT_WEIGHTS) -> tuple[float, float, float]:
    """Fusion weights for LlamaIndex's ``alpha``: ``(alpha*(w_d+w_s), (1-alpha)*(w_d+w_s), w_c)``.

    ``alpha`` is the dense share of the dense + sparse weight (0 = sparse only, 1 = dense only); the
    ColBERT weight and the total are kept. ``None`` returns ``weights`` unchanged.
    """
    w_d, w_s, w_c = validate_weights(weights)
    if alpha is None:
        return (w_d, w_s, w_c)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number between 0 (sparse only) and 1 (dense only), got {alpha!r}")
    total = w_d + w_s
    if total <= 0:
        raise ValueError(f"alpha splits the dense + sparse weight, but hybrid_weights {weights!r} give it 0")
    alpha = float(alpha)
    return (alpha * total, (1.0 - alpha) * total, w_c)


def _from_dict(adapter: ModuleType, value: Any) -> Any:
    """A ``schema`` / ``fields`` as ``to_dict()`` writes it (``{"class": ..., attributes}``) back as the object."""
    if not isinstance(value, dict) or "class" not in value:
        return value
    data = dict(value)
    kind = getattr(adapter, str(data.pop("class")), None)
    if kind not in (getattr(adapter, "QdrantSchema", None), getattr(adapter, "QdrantFields", None),
                    getattr(adapter, "MilvusFields", None)) or kind is None:
        raise TypeError(f"{value['class']!r} is not a collection layout of {adapter.__name__}")
    return kind(**data)


def _check_names(adapter: ModuleType, schema: Any, fields: Any) -> dict[str, Any]:
    """The names keywords of the store functions: ``schema`` (Qdrant) or ``fields``, checked against the adapter."""
    schema, fields = _from_dict(adapter, schema), _from_dict(adapter, fields)
    if fields is not None:
        kind = getattr(adapter, "QdrantFields", None) or getattr(adapter, "MilvusFields", None)
        if not isinstance(fields, kind):
            raise TypeError(f"fields must be a {kind.__name__} for this client, got {type(fields).__name__}")
        if schema is not None:
            raise ValueError("pass schema= (a collection this package made, other names) or fields= (a collection "
                             "made elsewhere), not both")
        return {"fields": fields}
    if schema is None:
        return {}
    kind = getattr(adapter, "QdrantSchema", None)
    if kind is None:
        raise TypeError("schema= names the vectors of a Qdrant collection; for a Milvus collection made elsewhere pass "
                        "fields=MilvusFields(...)")
    if not isinstance(schema, kind):
        raise TypeError(f"schema must be a QdrantSchema, got {type(schema).__name__}")
    return {"schema": schema}


class M3VectorStoreBase(BasePydanticVectorStore):
    """What the M3 vector stores share; use ``M3QdrantVectorStore`` or ``M3MilvusVectorStore``.

    The store encodes nodes itself (all three representations) with its encoder and stores the text
    LlamaIndex embeds, ``node.get_content(metadata_mode=MetadataMode.EMBED)``; with the encoder's
    output cache on (default) and the same encoder in ``M3Embedding``, the texts the index just
    embedded are not run through the model again. ``node.embedding`` itself is not used.
    Queries are encoded by the store too (``is_embedding_query=False``), once per query.
    """

    stores_text: bool = True
    is_embedding_query: bool = False
    flat_metadata: bool = False

    collection_name: str = Field(default="docs", description="Collection the nodes are stored in.")
    fusion: str = Field(default="weighted", description="Hybrid fusion: weighted, rrf or dbsf.")
    hybrid_weights: tuple[float, float, float] = Field(
        default=DEFAULT_WEIGHTS, description="(dense, sparse, colbert) weights of HYBRID queries (alpha=None).")
    prefetch_limit: int = Field(default=100, description="Candidates per representation in HYBRID queries.")
    rrf_k: int = Field(default=60, description="k of reciprocal rank fusion.")
    rescore_limit: int | str | None = Field(
        default=None, description="Weighted HYBRID queries: ColBERT re-scores only this many candidates, the best "
                                  "by weighted dense + sparse (None: 50; 'all': every candidate).")
    batch_size: int = Field(default=64, description="Nodes per encode / upsert batch in add().")
    with_colbert: bool | None = Field(
        default=None, description="False: a new collection without ColBERT vectors (dense + sparse); None: the "
                                  "collection's choice.")
    consistency_level: str | None = Field(
        default=None, description="Milvus only: the level a new collection is created with and reads use.")

    _adapter_kind: ClassVar[str] = ""
    _client: Any = PrivateAttr()
    _encoder: M3Encoder = PrivateAttr()
    _adapter: ModuleType = PrivateAttr()
    _names: dict[str, Any] = PrivateAttr(default_factory=dict)
    _write_names: dict[str, Any] = PrivateAttr(default_factory=dict)
    _fields: Any = PrivateAttr(default=None)

    def __init__(
        self,
        client: Any,
        collection_name: str = "docs",
        encoder: Any = None,
        *,
        fusion: str = "weighted",
        hybrid_weights: Sequence[float] = DEFAULT_WEIGHTS,
        prefetch_limit: int = 100,
        rrf_k: int = 60,
        rescore_limit: int | str | None = None,
        batch_size: int = 64,
        cache_size: int | None = DEFAULT_CACHE_SIZE,
        schema: Any = None,
        fields: Any = None,
        with_colbert: bool | None = None,
        consistency_level: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(collection_name, str) or not collection_name:
            raise ValueError(f"collection_name must be a non-empty string, got {collection_name!r}")
        if client is None:
            raise ValueError("client is required")
        unknown = sorted(set(kwargs) - set(_SERIALIZED_FIELDS))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword argument(s) {unknown}; it takes client, "
                            "collection_name, encoder, fusion, hybrid_weights, prefetch_limit, rrf_k, rescore_limit, "
                            "batch_size, cache_size, schema, fields, with_colbert and consistency_level")
        adapter = adapter_for_client(client, self._adapter_kind or None)
        names = _check_names(adapter, schema, fields)
        write_names = with_colbert_names(adapter, names, with_colbert)
        check_takes(adapter.hybrid_search, consistency_level=consistency_level)
        if consistency_level is not None:
            if fields is None:  # a collection made elsewhere keeps its own: the level is for the reads here
                write_names["consistency_level"] = consistency_level
        enc = resolve_encoder(encoder)
        plan = make_plan("hybrid", fusion, hybrid_weights, 1, prefetch_limit, rrf_k, rescore_limit)  # validates
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        super().__init__(collection_name=collection_name, fusion=plan.fusion, hybrid_weights=plan.weights,
                         prefetch_limit=prefetch_limit, rrf_k=rrf_k, rescore_limit=rescore_limit,
                         batch_size=batch_size, with_colbert=with_colbert, consistency_level=consistency_level,
                         **kwargs)
        self._client = client
        self._encoder = enc
        self._adapter = adapter
        self._names = names
        self._write_names = write_names
        self._fields = fields
        ensure_cache(enc, cache_size)

    def _names_for(self, function: str) -> dict[str, Any]:
        """The collection's names (``schema`` / ``fields``) for the adapter's ``function`` (and Milvus'
        ``consistency_level`` for the reads that take it; ``with_colbert`` for the writes)."""
        if function == "upsert_documents":
            return names_for(self._adapter.upsert_documents, self._write_names)
        names = dict(self._names)
        if self.consistency_level is not None:
            names["consistency_level"] = self.consistency_level
        return names_for(getattr(self._adapter, function), names)

    @property
    def client(self) -> Any:
        """The database client."""
        return self._client

    @property
    def encoder(self) -> M3Encoder:
        """The ``M3Encoder`` that encodes nodes and queries."""
        return self._encoder

    # ------------------------------------------------------------------------------------ serialization
    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The store's settings (and ``encoder_model``, the encoder's model name when it is a local one, and the
        collection's ``schema`` / ``fields``). The client is not in it: pass it again to ``from_dict`` /
        ``from_json`` / ``from_params``."""
        data = super().to_dict(**kwargs)
        for key, value in self._names.items():  # the collection's names: rebuilt by from_dict
            data[key] = {"class": type(value).__name__, **dataclasses.asdict(value)}
        model = getattr(self._encoder, "model_name", None) if isinstance(self._encoder, M3Encoder) else None
        if model is not None:
            data["encoder_model"] = str(model)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> M3VectorStoreBase:
        """Rebuild a store from ``to_dict()``; give ``client=`` (and ``encoder=``, unless the dict names
        ``encoder_model``, which is then loaded)."""
        data = dict(data)
        data.update(kwargs)
        data.pop("class_name", None)
        model = data.pop("encoder_model", None)
        if data.get("client") is None:
            raise ValueError(
                f"{cls.__name__}.from_dict needs client=...: a database client (a network connection or an open "
                "embedded database) cannot be serialized, so to_dict() leaves it out; pass the client again, e.g. "
                f"{cls.__name__}.from_dict(data, client=client, encoder=encoder)")
        if data.get("encoder") is None:
            if model is None:
                raise ValueError(f"{cls.__name__}.from_dict needs encoder=... (the dict names no encoder_model)")
            data["encoder"] = model
        return cls(**data)

    @classmethod
    def from_params(cls, params: dict[str, Any], *, client: Any, encoder: Any = None) -> M3VectorStoreBase:
        """``from_dict`` with the client (and encoder) as keywords: ``from_params(store.to_dict(), client=c)``."""
        return cls.from_dict(params, client=client, encoder=encoder)

    # ------------------------------------------------------------------------------------ writes
    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        """Store nodes (dense, sparse and ColBERT of their embed text); returns their node ids.

        Re-adding a node id replaces it. Extra keyword arguments are rejected.
        """
        if add_kwargs:
            raise TypeError(f"unexpected keyword arguments for add(): {sorted(add_kwargs)}")
        nodes = list(nodes)
        if not nodes:
            return []
        # one record per node id (the last one wins, as a later add would), written newest-first: the
        # texts the index embedded last are the ones an LRU cache smaller than the batch still holds
        docs = list({n.node_id: node_to_document(n, self.flat_metadata) for n in nodes}.values())[::-1]
        before = self._encoder.stats.forward_passes
        self._adapter.upsert_documents(self._client, docs, self.collection_name, self._encoder,
                                       batch_size=self.batch_size, show_progress=False,
                                       **self._names_for("upsert_documents"))
        extra = self._encoder.stats.forward_passes - before
        if extra and any(n.embedding is not None for n in nodes):
            logger.warning(
                "the store re-ran the model (%d forward passes) for %d nodes that were already embedded: the "
                "encoder's output cache was too small or off, or M3Embedding uses another encoder. Share one "
                "encoder and keep insert_batch_size (VectorStoreIndex) <= cache_size", extra, len(nodes))
        return [n.node_id for n in nodes]

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """``add`` in a worker thread."""
        return await asyncio.to_thread(self.add, nodes, **kwargs)

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        if delete_kwargs:
            raise TypeError(f"unexpected keyword arguments for delete(): {sorted(delete_kwargs)}")
        if not isinstance(ref_doc_id, str) or not ref_doc_id:
            raise ValueError(f"ref_doc_id must be a non-empty string, got {ref_doc_id!r}")
        try:
            self._adapter.delete_by_filter(self._client, Condition("ref_doc_id", "eq", ref_doc_id),
                                           self.collection_name, **self._names_for("delete_by_filter"))
        except CollectionNotFoundError:
            pass  # nothing stored (yet, or since clear()): nothing to delete

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """``delete`` in a worker thread."""
        await asyncio.to_thread(self.delete, ref_doc_id, **delete_kwargs)

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes with these ids and/or matching ``filters`` (both given: nodes matching both)."""
        if delete_kwargs:
            raise TypeError(f"unexpected keyword arguments for delete_nodes(): {sorted(delete_kwargs)}")
        neutral = to_neutral_filter(filters)
        if node_ids is None and neutral is None:
            raise ValueError("delete_nodes needs node_ids and/or filters; use clear() to delete every node")
        if node_ids is not None:
            node_ids = [str(i) for i in node_ids]
            if not node_ids:
                return
            if neutral is not None:
                neutral = combine(Condition(NODE_ID_KEY, "in", node_ids), neutral)
        if node_ids is not None and self._fields is not None:
            neutral = combine(self._by_node_id(node_ids), neutral) if neutral is None else neutral
        try:
            if neutral is None:
                self._adapter.delete_documents(self._client, node_ids, self.collection_name,
                                               **self._names_for("delete_documents"))
            else:
                self._adapter.delete_by_filter(self._client, neutral, self.collection_name,
                                               **self._names_for("delete_by_filter"))
        except CollectionNotFoundError:
            pass

    @staticmethod
    def _by_node_id(node_ids: list[str]) -> Any:
        """Nodes by id in a collection made elsewhere: by the node id kept in their metadata (the row key there may
        be the collection's own, e.g. an auto-id primary key)."""
        return Condition(NODE_ID_KEY, "in", node_ids)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """``delete_nodes`` in a worker thread."""
        await asyncio.to_thread(self.delete_nodes, node_ids, filters, **delete_kwargs)

    def clear(self) -> None:
        """Delete the whole collection (a later ``add`` creates it again). Refused on a collection made elsewhere
        (``fields=``): it may hold more than this store's nodes, and this package would not create it again."""
        if self._fields is not None:
            raise ValueError("clear() would drop a collection made elsewhere (fields=...) with everything in it; "
                             "delete this store's nodes with delete_nodes() / delete(ref_doc_id) instead")
        self._adapter.drop_collection(self._client, self.collection_name)

    async def aclear(self) -> None:
        """``clear`` in a worker thread."""
        await asyncio.to_thread(self.clear)

    # ------------------------------------------------------------------------------------- reads
    def get_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """The stored nodes with these ids and/or matching ``filters`` (all nodes if neither is given)."""
        neutral = to_neutral_filter(filters)
        if node_ids is not None:
            node_ids = [str(i) for i in node_ids]
            if not node_ids:
                return []
        wanted = None
        if node_ids is not None and self._fields is not None:  # see _by_node_id
            neutral, wanted, node_ids = combine(self._by_node_id(node_ids), neutral), node_ids, None
        try:
            docs = self._adapter.get_documents(self._client, self.collection_name, ids=node_ids,
                                               query_filter=neutral, **self._names_for("get_documents"))
        except CollectionNotFoundError:
            return []
        nodes = [to_node(d.key, d.text, d.metadata or {}) for d in docs]
        if wanted is not None:  # in the order asked, as by ids
            by_id = {n.node_id: n for n in nodes}
            nodes = [by_id[i] for i in dict.fromkeys(wanted) if i in by_id]
        return nodes

    async def aget_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """``get_nodes`` in a worker thread."""
        return await asyncio.to_thread(self.get_nodes, node_ids, filters)

    def count(self, filters: MetadataFilters | None = None) -> int:
        """Number of stored nodes (matching ``filters``)."""
        neutral = to_neutral_filter(filters)
        try:
            return self._adapter.count_documents(self._client, self.collection_name, query_filter=neutral,
                                                 **self._names_for("count_documents"))
        except CollectionNotFoundError:
            return 0

    def collection_exists(self) -> bool:
        """Whether the collection exists (it is created by the first ``add``)."""
        missing = getattr(self._adapter, "CollectionNotFoundError", LookupError)
        try:
            self._adapter.count_documents(self._client, self.collection_name)
        except missing:
            return False
        return True

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Search: ``DEFAULT`` (dense), ``SPARSE`` or ``HYBRID`` (fused in the database).

        Honours ``similarity_top_k`` (``hybrid_top_k`` if set in HYBRID), ``alpha`` (HYBRID; see the
        module docs), ``filters``, ``doc_ids`` and ``node_ids``. Per-mode scores of every hit are in
        ``node.metadata["m3_scores"]``. Keyword overrides (e.g. ``vector_store_kwargs`` of a retriever):
        ``mode`` (dense, sparse, colbert, hybrid), ``fusion``, ``weights``, ``prefetch_limit``, ``rrf_k``,
        ``rescore_limit``, ``native_filter`` (the database's own filter: a qdrant ``models.Filter`` or a Milvus
        boolean expression, applied together with ``filters``), ``filter_params`` (Milvus: the values of
        ``native_filter``'s ``{name}`` placeholders). After ``clear()`` the result is empty.
        """
        search = self._search_kwargs(query, kwargs)
        query_output = self._encoder.encode_queries([query.query_str])  # the one forward pass of this query
        try:
            hits = self._adapter.hybrid_search(self._client, query.query_str, self.collection_name, self._encoder,
                                               query_output=query_output, **search,
                                               **self._names_for("hybrid_search"))
        except CollectionNotFoundError:
            hits = []  # nothing stored (yet, or since clear())
        nodes = [hit_to_node(h) for h in hits]
        return VectorStoreQueryResult(nodes=nodes, similarities=[float(h.score) for h in hits],
                                      ids=[n.node_id for n in nodes])

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """``query`` in a worker thread."""
        return await asyncio.to_thread(self.query, query, **kwargs)

    def _search_kwargs(self, query: VectorStoreQuery, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - set(_QUERY_KWARGS))
        if unknown:
            raise TypeError(f"unexpected keyword arguments for query(): {unknown}; accepted: {list(_QUERY_KWARGS)}")
        mode = _MODES.get(VectorStoreQueryMode(query.mode))
        if mode is None:
            raise ValueError(
                f"query mode {query.mode!r} is not supported by {type(self).__name__}; use "
                "VectorStoreQueryMode.DEFAULT (dense), SPARSE or HYBRID"
            )
        if query.query_str is None:
            raise ValueError(
                f"{type(self).__name__} encodes the query text itself and needs VectorStoreQuery.query_str "
                "(a query_embedding alone is not enough for the sparse and ColBERT parts)"
            )
        mode = overrides.get("mode", mode)
        weights = overrides.get("weights")
        if weights is None:
            weights = alpha_to_weights(query.alpha if mode == "hybrid" else None, self.hybrid_weights)
        limit = query.similarity_top_k
        if mode == "hybrid" and query.hybrid_top_k:
            limit = query.hybrid_top_k
        prefetch = overrides.get("prefetch_limit", max(self.prefetch_limit, query.similarity_top_k,
                                                       query.sparse_top_k or 0))
        fusion = overrides.get("fusion", self.fusion)
        rrf_k = overrides.get("rrf_k", self.rrf_k)
        rescore_limit = overrides.get("rescore_limit", self.rescore_limit)
        plan = make_plan(mode, fusion, weights, limit, prefetch, rrf_k, rescore_limit)  # a clear error before any work
        restrict = None
        if query.doc_ids:
            restrict = combine(restrict, Condition("ref_doc_id", "in", [str(i) for i in query.doc_ids]))
        if query.node_ids:
            restrict = combine(restrict, Condition(NODE_ID_KEY, "in", [str(i) for i in query.node_ids]))
        query_filter = combine(to_neutral_filter(query.filters), restrict)
        native = overrides.get("native_filter")
        if native is not None:
            query_filter = native if query_filter is None else AllOf((query_filter, native))
        search = {
            "limit": limit, "mode": mode, "fusion": fusion,
            "weights": tuple(weights), "prefetch_limit": prefetch,
            "query_filter": query_filter, "rrf_k": rrf_k,
            "rescore_limit": plan.rescore_limit,
        }
        if overrides.get("filter_params") is not None:
            check_takes(self._adapter.hybrid_search, filter_params=overrides["filter_params"])
            search["filter_params"] = overrides["filter_params"]
        return search


class M3QdrantVectorStore(M3VectorStoreBase):
    """BGE-M3 dense + sparse + ColBERT LlamaIndex vector store on Qdrant.

    Args:
        client: a ``qdrant_client.QdrantClient`` (server, ``path=`` or ``":memory:"``) or an
            ``m3_integrations.qdrant.QdrantEdgeStore`` (embedded Qdrant engine).
        collection_name: the collection (created on the first ``add``; an existing one is reused).
        encoder: an ``M3Encoder`` (share it with ``M3Embedding``), an ``M3Embedding`` or a model name.
        fusion, hybrid_weights, prefetch_limit, rrf_k, rescore_limit: HYBRID query settings (see the module
            docs for ``alpha``).
        batch_size: nodes per encode / upsert batch.
        cache_size: entries of the encoder output cache to turn on (if off); ``0`` / ``None`` leaves it.
        schema: Qdrant only: a ``QdrantSchema`` with the vector names and payload keys of the collection.
        fields: ``QdrantFields`` / ``MilvusFields``: a collection made elsewhere (dense + sparse, no ColBERT; e.g.
            by langchain-qdrant or Milvus' BGE-M3 tutorial): nodes are written in its layout and searched as
            dense + sparse; ``clear()`` is refused (it would drop their collection).
        with_colbert: ``False``: a new collection without ColBERT vectors (dense + sparse; ColBERT modes refused);
            ``None``: the existing collection's choice, ColBERT for a new one.
        consistency_level: Milvus only: ``Strong`` / ``Bounded`` / ``Session`` / ``Eventually``, the level a new
            collection is created with and the one queries and reads use.

    Example:
        >>> enc = M3Encoder("BAAI/bge-m3")
        >>> store = M3QdrantVectorStore(client=QdrantClient(":memory:"), collection_name="docs", encoder=enc)
        >>> index = VectorStoreIndex.from_documents(
        ...     docs, storage_context=StorageContext.from_defaults(vector_store=store),
        ...     embed_model=M3Embedding(encoder=enc))
        >>> index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=5).retrieve("question")
    """

    _adapter_kind: ClassVar[str] = "qdrant"

    @classmethod
    def class_name(cls) -> str:
        return "M3QdrantVectorStore"


class M3MilvusVectorStore(M3VectorStoreBase):
    """BGE-M3 dense + sparse + ColBERT LlamaIndex vector store on Milvus (server or milvus-lite).

    Args:
        client: a ``pymilvus.MilvusClient`` (``MilvusClient("./milvus.db")`` for milvus-lite).
        collection_name: the collection (created on the first ``add``; an existing one is reused).
        encoder: an ``M3Encoder`` (share it with ``M3Embedding``), an ``M3Embedding`` or a model name.
        fusion, hybrid_weights, prefetch_limit, rrf_k, rescore_limit: HYBRID query settings (see the module
            docs for ``alpha``).
        batch_size: nodes per encode / upsert batch.
        cache_size: entries of the encoder output cache to turn on (if off); ``0`` / ``None`` leaves it.
        schema: Qdrant only: a ``QdrantSchema`` with the vector names and payload keys of the collection.
        fields: ``QdrantFields`` / ``MilvusFields``: a collection made elsewhere (dense + sparse, no ColBERT; e.g.
            by langchain-qdrant or Milvus' BGE-M3 tutorial): nodes are written in its layout and searched as
            dense + sparse; ``clear()`` is refused (it would drop their collection).
        with_colbert: ``False``: a new collection without ColBERT vectors (dense + sparse; ColBERT modes refused);
            ``None``: the existing collection's choice, ColBERT for a new one.
        consistency_level: Milvus only: ``Strong`` / ``Bounded`` / ``Session`` / ``Eventually``, the level a new
            collection is created with and the one queries and reads use.
    """

    _adapter_kind: ClassVar[str] = "milvus"

    @classmethod
    def class_name(cls) -> str:
        return "M3MilvusVectorStore"

