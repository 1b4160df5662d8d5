"""``M3HybridRetriever``: BGE-M3 dense + sparse + ColBERT retrieval, fused inside the database.

The retriever encodes the query once and hands that one encoding to the store adapter
(``m3_integrations.qdrant`` or ``m3_integrations.milvus``, picked from the client's type), which runs
the candidate searches and the fusion in the database. Documents go in with ``add_documents``.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, model_validator

from .._query import DEFAULT_RRF_K, Hit, make_plan
from .._store_options import check_takes, with_colbert_names
from ..encoder import DEFAULT_WEIGHTS, M3Encoder, M3Output
from ._shared import derived_id, names_for
from .embeddings import M3EncoderSettings

SCORE_KEY = "m3"
"""The one ``Document.metadata`` key under which the retriever puts ``{"score": ..., "scores": {...}}``."""

_PER_CALL = ("k", "filter", "filter_params", "mode", "fusion", "weights", "prefetch_limit", "rrf_k", "rescore_limit")

# module prefixes of a client's class (or a base class) -> the store adapter for it
_ADAPTERS = (
    (("qdrant_client", "qdrant_edge", "m3_integrations.qdrant"), "m3_integrations.qdrant"),
    (("pymilvus", "milvus_lite", "m3_integrations.milvus"), "m3_integrations.milvus"),
)


def _adapter_for(client: Any) -> ModuleType:
    """The store adapter module for ``client``, found from its type (no database package is imported
    unless the client already comes from it)."""
    modules = [getattr(cls, "__module__", "") or "" for cls in type(client).__mro__]
    for prefixes, adapter in _ADAPTERS:
        if any(m == p or m.startswith(p + ".") for m in modules for p in prefixes):
            return importlib.import_module(adapter)
    raise TypeError(
        "client must be a qdrant_client QdrantClient / AsyncQdrantClient, an m3_integrations.qdrant "
        f"QdrantEdgeStore, or a pymilvus MilvusClient / AsyncMilvusClient; got {type(client).__module__}."
        f"{type(client).__qualname__}"
    )


def _check_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k (the number of documents to return) must be a positive int, got {k!r}")


def _is_async(client: Any) -> bool:
    return type(client).__name__.startswith("Async")


def _to_mappings(documents: Iterable[Document]) -> Iterator[dict[str, Any]]:
    if documents is None or isinstance(documents, (str, Document)):
        raise TypeError("documents must be an iterable of langchain_core Document objects (e.g. a list)")
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise TypeError(f"documents[{i}] is {type(doc).__name__}, expected a langchain_core Document")
        metadata = dict(doc.metadata or {})
        doc_id = doc.id if doc.id is not None else derived_id(doc.page_content, metadata)
        yield {"text": doc.page_content, "id": doc_id, "metadata": metadata}


def add_documents(
    client: Any,
    documents: Iterable[Document],
    collection_name: str = "docs",
    encoder: M3Encoder | None = None,
    *,
    batch_size: int = 64,
    show_progress: bool | None = None,
    recreate: bool = False,
    schema: Any = None,
    fields: Any = None,
    with_colbert: bool | None = None,
    consistency_level: str | None = None,
) -> list[str]:
    """Encode and store LangChain ``Document`` s so that ``M3HybridRetriever`` can find them.

    ``page_content`` becomes the stored text, ``metadata`` the stored metadata (filterable), and
    ``Document.id`` the document's id: storing a document with the same id again replaces it.
    Documents without an id get a deterministic id derived from their text and metadata: two documents
    with the same text and different metadata are both kept, the same document added again replaces itself.

    Args:
        client: a Qdrant client, an ``m3_integrations.qdrant.QdrantEdgeStore`` or a pymilvus
            ``MilvusClient`` (an async client needs ``aadd_documents``).
        documents: the documents (a list or any iterable; generators are streamed).
        collection_name: created on first use with the encoder's dimension.
        encoder: the ``M3Encoder`` (required).
        batch_size, show_progress, recreate: as in the store adapter's ``upsert_documents``.
        schema, fields: the collection's names, as in the store adapter's ``upsert_documents`` (``fields``: a
            collection made elsewhere, written in its own layout).
        with_colbert: ``False``: a new collection without ColBERT vectors (dense + sparse); ``None``: the
            collection's choice (see ``M3VectorStore``).
        consistency_level: Milvus only: the level a new collection is created with.

    Returns:
        The id of each stored document (``Document.id``, or the derived id; with ``fields`` and no id key: the
        point / primary key the adapter stored it under).
    """
    if _is_async(client):
        raise TypeError(f"{type(client).__name__} is asynchronous: use `await aadd_documents(...)`")
    adapter = _adapter_for(client)
    names = _write_names(adapter, adapter.upsert_documents, schema, fields, with_colbert, consistency_level)
    return adapter.upsert_documents(client, _to_mappings(documents), collection_name, encoder,
                                    batch_size=batch_size, show_progress=show_progress, recreate=recreate, **names)


async def aadd_documents(
    client: Any,
    documents: Iterable[Document],
    collection_name: str = "docs",
    encoder: M3Encoder | None = None,
    *,
    batch_size: int = 64,
    show_progress: bool | None = None,
    recreate: bool = False,
    schema: Any = None,
    fields: Any = None,
    with_colbert: bool | None = None,
    consistency_level: str | None = None,
) -> list[str]:
    """``add_documents`` for async code: native for an async client, in a worker thread otherwise."""
    adapter = _adapter_for(client)
    if _is_async(client):
        names = _write_names(adapter, adapter.aupsert_documents, schema, fields, with_colbert, consistency_level)
        return await adapter.aupsert_documents(client, _to_mappings(documents), collection_name, encoder,
                                               batch_size=batch_size, show_progress=show_progress,
                                               recreate=recreate, **names)
    return await asyncio.to_thread(add_documents, client, documents, collection_name, encoder,
                                   batch_size=batch_size, show_progress=show_progress, recreate=recreate,
                                   schema=schema, fields=fields, with_colbert=with_colbert,
                                   consistency_level=consistency_level)


def _write_names(adapter: ModuleType, function: Any, schema: Any, fields: Any, with_colbert: bool | None,
                 consistency_level: str | None) -> dict[str, Any]:
    """The keywords of an ``upsert_documents`` call: the collection's names, ``with_colbert`` where the database
    takes it, Milvus' ``consistency_level`` (a collection made elsewhere keeps its own)."""
    check_takes(function, consistency_level=consistency_level)
    names = with_colbert_names(adapter, {"schema": schema, "fields": fields}, with_colbert)
    if fields is None:
        names["consistency_level"] = consistency_level
    return names_for(function, names, also=("with_colbert", "consistency_level"))


def hit_to_document(hit: Hit, score_key: str | None = SCORE_KEY) -> Document:
    """A LangChain ``Document`` from a search hit: the text, ``Document.id``, and the user's metadata
    exactly as stored, plus (unless ``score_key`` is ``None``) ``metadata[score_key] = {"score": fused,
    "scores": {mode: score}}``. A user key equal to ``score_key`` is never overwritten: it is an error."""
    metadata = dict(hit.metadata or {})
    if score_key is not None:
        if score_key in metadata:
            raise ValueError(
                f"document {hit.id!r} has its own metadata key {score_key!r}, where the retriever puts the scores; "
                "pass score_key='<another name>' (or None for no scores) to M3HybridRetriever"
            )
        metadata[score_key] = {"score": float(hit.score),
                               "scores": {k: float(v) for k, v in (hit.scores or {}).items()}}
    return Document(page_content=hit.text, metadata=metadata, id=hit.id)


class M3HybridRetriever(M3EncoderSettings, BaseRetriever):
    """Hybrid BGE-M3 retriever over Qdrant (client or embedded ``QdrantEdgeStore``) or Milvus.

    One forward pass per query gives its dense, sparse and ColBERT representations; the database
    finds candidates by dense and sparse similarity and fuses them (``weighted``: the reference
    BGE-M3 weighted score with ColBERT re-scoring; ``rrf``; ``dbsf``), all server-side.

    Each returned ``Document`` has the stored text as ``page_content``, the stored id as
    ``Document.id``, and the user's metadata exactly as stored plus one namespaced key,
    ``metadata["m3"] = {"score": <fused>, "scores": {"dense": ..., "sparse": ..., "colbert": ...}}``
    (per-mode scores on the reference scale; the key is ``score_key``).

    Attributes:
        client: ``QdrantClient`` / ``AsyncQdrantClient``, ``QdrantEdgeStore``, or pymilvus
            ``MilvusClient`` / ``AsyncMilvusClient`` (an async client is used by ``ainvoke`` only).
        collection_name: the collection written by ``add_documents``.
        encoder / model_name / device / encoder_kwargs: the BGE-M3 encoder (see ``M3EncoderSettings``);
            use the same model that indexed the collection.
        k: number of documents returned (overridable per call: ``retriever.invoke(q, k=2)``).
        mode: ``"hybrid"`` (default), ``"dense"``, ``"sparse"`` or ``"colbert"``.
        fusion: ``"weighted"`` (default), ``"rrf"`` or ``"dbsf"``.
        weights: dense, sparse, ColBERT weights of the weighted fusion (default 0.4, 0.2, 0.4).
        filter: a neutral filter over the user's metadata (``Condition`` / ``AllOf`` / ``AnyOf``,
            exported by ``m3_integrations.langchain``) or the database's native filter (a qdrant
            ``models.Filter``, a Milvus boolean expression); overridable per call.
        prefetch_limit: candidates fetched per mode before fusion.
        rrf_k: the RRF constant.
        rescore_limit: ``weighted`` with a ColBERT weight: ColBERT re-scores only this many candidates,
            the best by weighted dense + sparse (``None``, the default: every candidate; faster when set).
        score_key: the metadata key of the scores (default ``"m3"``; ``None``: no scores added). A stored
            document whose own metadata has this key raises ``ValueError`` instead of being overwritten.
        schema: the names of a collection of this package's layout (``QdrantSchema``; Qdrant only); kept as
            ``collection_schema`` (pydantic's ``BaseModel.schema`` owns the name).
        fields: the names of a collection made elsewhere (``QdrantFields`` / ``MilvusFields``; e.g. one made by
            langchain-qdrant): searched as dense + sparse, and ``add_documents`` writes in its layout.
        filter_params: Milvus only: the values of ``filter``'s ``{name}`` placeholders (overridable per call).
        with_colbert: ``False``: ``add_documents`` makes a collection without ColBERT vectors (dense + sparse;
            ColBERT modes refused); ``None``: the collection's choice.
        consistency_level: Milvus only: the level searches read at (and a new collection is created with).

    Per call, ``invoke(query, k=..., filter=..., filter_params=..., mode=..., fusion=..., weights=...,
    prefetch_limit=..., rrf_k=..., rescore_limit=...)`` overrides these settings for that call only
    (``None`` keeps the retriever's setting).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    client: Any
    collection_name: str = "docs"
    k: int = 4
    mode: str = "hybrid"
    fusion: str = "weighted"
    weights: tuple[float, float, float] = DEFAULT_WEIGHTS
    filter: Any = None
    prefetch_limit: int = 100
    rrf_k: int = DEFAULT_RRF_K
    rescore_limit: int | str | None = None
    score_key: str | None = SCORE_KEY
    collection_schema: Any = None
    fields: Any = None
    filter_params: dict[str, Any] | None = None
    with_colbert: bool | None = None
    consistency_level: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _schema_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "schema" in data:
            data = dict(data)
            if data.get("collection_schema") is not None:
                raise ValueError("pass schema= or collection_schema=, not both")
            data["collection_schema"] = data.pop("schema")
        return data

    @model_validator(mode="after")
    def _check_settings(self) -> M3HybridRetriever:
        _check_k(self.k)
        make_plan(self.mode, self.fusion, self.weights, self.k, self.prefetch_limit, self.rrf_k,
                  self.rescore_limit)
        adapter = _adapter_for(self.client)  # a wrong client type fails here, not at the first query
        if self.collection_schema is not None and self.fields is not None:
            raise ValueError("pass schema= (a collection of this package's layout) or fields= (a collection made "
                             "elsewhere), not both")
        names = self._names(adapter.hybrid_search)
        kinds = {"schema": getattr(adapter, "QdrantSchema", None),
                 "fields": getattr(adapter, "QdrantFields", None) or getattr(adapter, "MilvusFields", None)}
        for key, value in names.items():
            if key not in kinds:
                continue
            if kinds[key] is None or not isinstance(value, kinds[key]):
                raise TypeError(f"{key}= must be a {getattr(kinds[key], '__name__', 'name set of this database')} "
                                f"for {type(self.client).__name__}, got {type(value).__name__}")
        if self.collection_schema is not None and "schema" not in names:
            raise TypeError(f"schema= names the vectors of a Qdrant collection; {type(self.client).__name__} takes "
                            "fields= for a collection made elsewhere")
        check_takes(adapter.hybrid_search, consistency_level=self.consistency_level, filter_params=self.filter_params)
        with_colbert_names(adapter, {"schema": self.collection_schema, "fields": self.fields}, self.with_colbert)
        return self

    def _names(self, function: Any) -> dict[str, Any]:
        return names_for(function, {"schema": self.collection_schema, "fields": self.fields,
                                    "consistency_level": self.consistency_level}, also=("consistency_level",))

    @property
    def adapter(self) -> ModuleType:
        """The store adapter module for this retriever's client."""
        return _adapter_for(self.client)

    # ------------------------------------------------------------------------------------ search
    def _search_args(self, overrides: dict[str, Any]) -> dict[str, Any]:
        overrides = {key: value for key, value in overrides.items() if key != "verbose"}
        unknown = sorted(set(overrides) - set(_PER_CALL))
        if unknown:
            raise TypeError(f"M3HybridRetriever got unexpected argument(s) {unknown}; per call it takes {_PER_CALL}")
        settings = {name: getattr(self, name) for name in _PER_CALL}
        settings.update({key: value for key, value in overrides.items() if value is not None})
        _check_k(settings["k"])
        plan = make_plan(settings["mode"], settings["fusion"], settings["weights"], settings["k"],
                         settings["prefetch_limit"], settings["rrf_k"], settings["rescore_limit"])
        args = {
            "collection_name": self.collection_name, "limit": plan.limit, "mode": plan.mode,
            "fusion": plan.fusion, "weights": plan.weights, "prefetch_limit": plan.prefetch_limit,
            "query_filter": settings["filter"], "rrf_k": plan.rrf_k, "rescore_limit": plan.rescore_limit,
            "uses": plan.uses,
        }
        if settings["filter_params"] is not None:
            check_takes(self.adapter.hybrid_search, filter_params=settings["filter_params"])
            args["filter_params"] = settings["filter_params"]
        return args

    @staticmethod
    def _encode_kwargs(uses: tuple[str, ...]) -> dict[str, bool]:
        return {"return_dense": "dense" in uses, "return_sparse": "sparse" in uses,
                "return_colbert": "colbert" in uses}

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if _is_async(self.client):
            raise TypeError(f"{type(self.client).__name__} is asynchronous: use `await retriever.ainvoke(...)`")
        args = self._search_args(kwargs)
        output = self._encode_query(query, args.pop("uses"))
        encoder = self.get_encoder()
        hits = self.adapter.hybrid_search(self.client, query, encoder=encoder, query_output=output, **args,
                                          **self._names(self.adapter.hybrid_search))
        return [hit_to_document(hit, self.score_key) for hit in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        args = self._search_args(kwargs)
        uses = args.pop("uses")
        self._check_query(query)
        encoder = await asyncio.to_thread(self.get_encoder)
        output = await encoder.aencode_queries([query], **self._encode_kwargs(uses))
        if _is_async(self.client):
            hits = await self.adapter.ahybrid_search(self.client, query, encoder=encoder, query_output=output, **args,
                                                     **self._names(self.adapter.ahybrid_search))
        else:
            hits = await asyncio.to_thread(self.adapter.hybrid_search, self.client, query, encoder=encoder,
                                           query_output=output, **args, **self._names(self.adapter.hybrid_search))
        return [hit_to_document(hit, self.score_key) for hit in hits]

    @staticmethod
    def _check_query(query: Any) -> None:
        if not isinstance(query, str):
            raise TypeError(f"the query must be a str, got {type(query).__name__}")

    def _encode_query(self, query: str, uses: tuple[str, ...]) -> M3Output:
        self._check_query(query)
        return self.get_encoder().encode_queries([query], **self._encode_kwargs(uses))

    # ------------------------------------------------------------------------------------ ingest
    def add_documents(self, documents: Iterable[Document], *, batch_size: int = 64,
                      show_progress: bool | None = None, recreate: bool = False) -> list[str]:
        """Store LangChain ``Document`` s in this retriever's collection (see module ``add_documents``)."""
        return add_documents(self.client, documents, self.collection_name, self.get_encoder(),
                             batch_size=batch_size, show_progress=show_progress, recreate=recreate,
                             schema=self.collection_schema, fields=self.fields, with_colbert=self.with_colbert,
                             consistency_level=self.consistency_level)

    async def aadd_documents(self, documents: Iterable[Document], *, batch_size: int = 64,
                             show_progress: bool | None = None, recreate: bool = False) -> list[str]:
        """``add_documents`` for async code."""
        encoder = await asyncio.to_thread(self.get_encoder)
        return await aadd_documents(self.client, documents, self.collection_name, encoder,
                                    batch_size=batch_size, show_progress=show_progress, recreate=recreate,
                                    schema=self.collection_schema, fields=self.fields,
                                    with_colbert=self.with_colbert, consistency_level=self.consistency_level)
