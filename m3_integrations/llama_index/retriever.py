"""``M3HybridRetriever``: a LlamaIndex retriever straight over an M3 collection (no index needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llama_index.core.callbacks import CallbackManager
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from .._query import make_plan
from .._store_options import check_takes
from ..encoder import DEFAULT_WEIGHTS, M3Encoder
from ._common import adapter_for_client, hit_to_node, resolve_encoder
from ._filters import to_neutral_filter
from .vector_store import _check_names

__all__ = ["M3HybridRetriever"]


class M3HybridRetriever(BaseRetriever):
    """Hybrid BGE-M3 retrieval (dense + sparse + ColBERT, fused in the database) as a LlamaIndex retriever.

    Works on any collection written by the M3 store adapters (``upsert_documents``, the LlamaIndex
    vector stores, LangChain): nodes stored by the LlamaIndex stores come back as they were, others as
    ``TextNode(id_=id, text=text, metadata=metadata)``. Each query runs the model once; every
    ``NodeWithScore`` carries the fused score, and ``node.metadata["m3_scores"]`` the per-mode scores
    (kept out of the LLM and embed text).

    Args:
        client: a ``QdrantClient``, an ``m3_integrations.qdrant.QdrantEdgeStore`` or a ``MilvusClient``.
        collection_name: the collection to search.
        encoder: an ``M3Encoder``, an ``M3Embedding`` or a model name.
        k: number of results (alias: ``similarity_top_k``).
        mode: ``"hybrid"``, ``"dense"``, ``"sparse"`` or ``"colbert"``.
        fusion: ``"weighted"`` (reference BGE-M3 score), ``"rrf"`` or ``"dbsf"``.
        weights: (dense, sparse, colbert) weights.
        filter: LlamaIndex ``MetadataFilters``, a neutral filter (``Condition`` / ``AllOf`` / ``AnyOf``)
            or the database's native filter.
        prefetch_limit: candidates per representation in hybrid mode.
        rrf_k: k of reciprocal rank fusion.
        rescore_limit: ``weighted`` with a ColBERT weight: ColBERT re-scores only this many candidates, the
            best by weighted dense + sparse (``None``, the default: every candidate; faster when set).
        schema / fields: the collection's names (``QdrantSchema``: Qdrant, this package's layout; ``QdrantFields``
            / ``MilvusFields``: a collection made elsewhere, searched as dense + sparse).
        filter_params: Milvus only: the values of a Milvus expression ``filter``'s ``{name}`` placeholders.
        consistency_level: Milvus only: the level searches read at.
    """

    def __init__(
        self,
        client: Any,
        collection_name: str = "docs",
        encoder: Any = None,
        k: int | None = None,
        mode: str = "hybrid",
        fusion: str = "weighted",
        weights: Sequence[float] = DEFAULT_WEIGHTS,
        filter: Any = None,  # noqa: A002 - the knob's public name, as in the LangChain retriever
        *,
        similarity_top_k: int | None = None,
        prefetch_limit: int = 100,
        rrf_k: int = 60,
        rescore_limit: int | str | None = None,
        schema: Any = None,
        fields: Any = None,
        filter_params: dict[str, Any] | None = None,
        consistency_level: str | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        if k is not None and similarity_top_k is not None and k != similarity_top_k:
            raise ValueError(f"k={k} and similarity_top_k={similarity_top_k} disagree; give one of them")
        k = k if k is not None else (similarity_top_k if similarity_top_k is not None else 4)
        if not isinstance(collection_name, str) or not collection_name:
            raise ValueError(f"collection_name must be a non-empty string, got {collection_name!r}")
        self._plan = make_plan(mode, fusion, weights, k, prefetch_limit, rrf_k, rescore_limit)  # validates
        self._adapter = adapter_for_client(client)
        self._names = _check_names(self._adapter, schema, fields)
        check_takes(self._adapter.hybrid_search, filter_params=filter_params, consistency_level=consistency_level)
        extra = {"filter_params": filter_params, "consistency_level": consistency_level}
        self._names.update({key: value for key, value in extra.items() if value is not None})
        self._client = client
        self._encoder: M3Encoder = resolve_encoder(encoder)
        self.collection_name = collection_name
        if isinstance(filter, (MetadataFilters, MetadataFilter)):
            filter = to_neutral_filter(filter)
        self._filter = filter
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def k(self) -> int:
        """Number of results per query."""
        return self._plan.limit

    @property
    def similarity_top_k(self) -> int:
        """Alias of ``k``."""
        return self._plan.limit

    @property
    def encoder(self) -> M3Encoder:
        """The ``M3Encoder`` that encodes queries."""
        return self._encoder

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        plan = self._plan
        query = query_bundle.query_str
        query_output = self._encoder.encode_queries([query])  # one forward pass per query
        hits = self._adapter.hybrid_search(
            self._client, query, self.collection_name, self._encoder, limit=plan.limit, mode=plan.mode,
            fusion=plan.fusion, weights=plan.weights, prefetch_limit=plan.prefetch_limit,
            query_filter=self._filter, rrf_k=plan.rrf_k, rescore_limit=plan.rescore_limit, query_output=query_output,
            **self._names,
        )
        return [NodeWithScore(node=hit_to_node(h), score=float(h.score)) for h in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
