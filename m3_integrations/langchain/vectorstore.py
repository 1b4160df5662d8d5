"""``M3VectorStore``: a LangChain ``VectorStore`` over the package's store functions (Qdrant, Qdrant Edge, Milvus).

Every call goes through the store adapter picked from the client's type (``m3_integrations.qdrant`` or
``m3_integrations.milvus``): documents are encoded once into dense, sparse and ColBERT vectors, and a
search runs the candidate searches and the fusion inside the database (weighted hybrid by default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from .._errors import CollectionNotFoundError
from .._query import DEFAULT_RRF_K, Hit, make_plan
from .._store_options import check_takes, with_colbert_names
from ..encoder import DEFAULT_WEIGHTS, M3Output
from ._shared import derived_id, names_for
from .embeddings import M3Embeddings, M3EncoderSettings
from .retriever import _adapter_for, _check_k, _is_async

SEARCH_KWARGS = ("filter", "filter_params", "mode", "fusion", "weights", "prefetch_limit", "rrf_k", "rescore_limit")
"""What a search takes besides the query and ``k`` (per call, or in ``as_retriever(search_kwargs=...)``)."""


class M3VectorStore(VectorStore):
    """BGE-M3 dense + sparse + ColBERT documents in Qdrant, Qdrant Edge or Milvus, as a LangChain ``VectorStore``.

    Examples:
        ```python
        from qdrant_client import QdrantClient
        from m3_integrations import M3Encoder
        from m3_integrations.langchain import M3VectorStore

        store = M3VectorStore(client=QdrantClient(path="./qdrant"), collection_name="docs", encoder=M3Encoder())
        store.add_texts(["BGE-M3 gives dense, sparse and ColBERT vectors."], metadatas=[{"lang": "en"}])
        store.similarity_search("what does BGE-M3 give?", k=3, filter=Condition("lang", "eq", "en"))
        retriever = store.as_retriever(search_kwargs={"k": 5, "fusion": "rrf"})
        ```

    Args:
        client: a qdrant-client ``QdrantClient`` / ``AsyncQdrantClient``, an ``m3_integrations.qdrant.QdrantEdgeStore``,
            or a pymilvus ``MilvusClient`` / ``AsyncMilvusClient`` (an async client serves the ``a*`` methods only).
        collection_name: created with the BGE-M3 layout on the first ``add_*``.
        encoder: the ``M3Encoder`` (or pass ``embedding=M3Embeddings(...)``, whose encoder is used).
        embedding: the ``M3Embeddings`` returned by ``embeddings`` (built on ``encoder`` if not given).
        k, mode, fusion, weights, prefetch_limit, rrf_k, rescore_limit, filter: search defaults, as in
            ``M3HybridRetriever`` (hybrid weighted fusion inside the database by default); each search call
            may override them.
        batch_size: documents per encode + write batch in ``add_*``.
        schema: the names of a collection of this package's layout (``QdrantSchema``; Qdrant only), e.g.
            ``QdrantSchema(with_colbert=False)`` for dense + sparse only.
        fields: the names of a collection made elsewhere (``QdrantFields`` / ``MilvusFields``: e.g. one made by
            langchain-qdrant's ``QdrantVectorStore`` or like Milvus' BGE-M3 tutorial): added documents go into its
            dense and sparse vectors and its text / metadata keys (no ColBERT; the collection must exist), and
            searches fuse dense + sparse.
        filter_params: Milvus only: the values of a ``filter`` expression's ``{name}`` placeholders (pymilvus'
            ``filter_params``; rendered safely on milvus-lite); per call too.
        with_colbert: ``False``: a new collection without ColBERT vectors (dense + sparse; ColBERT modes refused),
            ``True``: with them; ``None`` (default): the existing collection's choice, ColBERT for a new one. Put
            where the database takes it (``QdrantSchema(with_colbert=...)``, Milvus' ``with_colbert=``).
        consistency_level: Milvus only: ``Strong`` / ``Bounded`` / ``Session`` / ``Eventually``, the level a new
            collection is created with and the one searches and ``get_by_ids`` read at.
        store_kwargs: more keywords for the store functions (e.g. the ColBERT storage settings of a new
            collection); ``schema`` / ``fields`` may be given here too.

    Documents added without an id get a deterministic one: from their text, and from their metadata too when
    they have some (two documents with the same text and different metadata are two documents; adding the
    same document again replaces it). ``similarity_search`` returns the metadata exactly as it was added.
    """

    def __init__(
        self,
        client: Any,
        collection_name: str = "docs",
        encoder: Any = None,
        *,
        embedding: M3Embeddings | None = None,
        k: int = 4,
        mode: str = "hybrid",
        fusion: str = "weighted",
        weights: Sequence[float] = DEFAULT_WEIGHTS,
        prefetch_limit: int = 100,
        rrf_k: int = DEFAULT_RRF_K,
        rescore_limit: int | str | None = None,
        filter: Any = None,  # noqa: A002 (LangChain's name)
        filter_params: dict[str, Any] | None = None,
        batch_size: int = 64,
        schema: Any = None,
        fields: Any = None,
        with_colbert: bool | None = None,
        consistency_level: str | None = None,
        store_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.adapter: ModuleType = _adapter_for(client)
        self.client = client
        if embedding is not None and not isinstance(embedding, M3EncoderSettings):
            raise TypeError(f"embedding must be an M3Embeddings (the store needs BGE-M3's sparse and ColBERT "
                            f"outputs too), got {type(embedding).__name__}")
        if encoder is None and embedding is None:
            raise ValueError("M3VectorStore needs encoder=M3Encoder(...) or embedding=M3Embeddings(...)")
        if encoder is not None and embedding is not None and embedding.encoder is not None \
                and embedding.encoder is not encoder:
            raise ValueError("encoder= and embedding= use different encoders; pass one of them")
        self._embedding = embedding if embedding is not None else M3Embeddings(encoder=encoder)
        self._encoder = encoder
        if not isinstance(collection_name, str) or not collection_name:
            raise ValueError(f"collection_name must be a non-empty string, got {collection_name!r}")
        self.collection_name = collection_name
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.batch_size = batch_size
        self.store_kwargs = dict(store_kwargs or {})
        for key, value in (("schema", schema), ("fields", fields)):
            if value is not None:
                if self.store_kwargs.get(key) not in (None, value):
                    raise ValueError(f"{key}= is given twice, differently (as an argument and in store_kwargs)")
                self.store_kwargs[key] = value
        if self.store_kwargs.get("schema") is not None and self.store_kwargs.get("fields") is not None:
            raise ValueError("pass schema= (a collection of this package's layout) or fields= (a collection made "
                             "elsewhere), not both")
        self.store_kwargs = with_colbert_names(self.adapter, self.store_kwargs, with_colbert)
        check_takes(self.adapter.hybrid_search, consistency_level=consistency_level, filter_params=filter_params)
        if consistency_level is not None:
            if self.store_kwargs.get("consistency_level") not in (None, consistency_level):
                raise ValueError("consistency_level= is given twice, differently (as an argument and in store_kwargs)")
            self.store_kwargs["consistency_level"] = consistency_level
        self.defaults = {"k": k, "filter": filter, "filter_params": filter_params, "mode": mode, "fusion": fusion,
                         "weights": tuple(weights), "prefetch_limit": prefetch_limit, "rrf_k": rrf_k,
                         "rescore_limit": rescore_limit}
        self._plan(self.defaults)  # bad defaults fail here, not at the first search

    # ------------------------------------------------------------------------------------ plumbing
    @property
    def embeddings(self) -> Embeddings:
        """The ``M3Embeddings`` (dense BGE-M3) on this store's encoder."""
        return self._embedding

    @property
    def encoder(self) -> Any:
        """The ``M3Encoder`` that encodes documents and queries."""
        if self._encoder is None:
            self._encoder = self._embedding.get_encoder()
        return self._encoder

    def _require_sync(self, method: str) -> None:
        if _is_async(self.client):
            raise TypeError(f"{type(self.client).__name__} is asynchronous: use `await store.a{method}(...)`")

    @staticmethod
    def _plan(settings: dict[str, Any]) -> Any:
        _check_k(settings["k"])
        return make_plan(settings["mode"], settings["fusion"], settings["weights"], settings["k"],
                         settings["prefetch_limit"], settings["rrf_k"], settings["rescore_limit"])

    def _search_args(self, k: int | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(kwargs) - set(SEARCH_KWARGS))
        if unknown:
            raise TypeError(f"M3VectorStore search got unexpected argument(s) {unknown}; it takes k and "
                            f"{', '.join(SEARCH_KWARGS)}")
        settings = dict(self.defaults)
        settings.update({key: value for key, value in kwargs.items() if value is not None})
        if k is not None:
            settings["k"] = k
        plan = self._plan(settings)
        args = {"limit": plan.limit, "mode": plan.mode, "fusion": plan.fusion, "weights": plan.weights,
                "prefetch_limit": plan.prefetch_limit, "query_filter": settings["filter"], "rrf_k": plan.rrf_k,
                "rescore_limit": plan.rescore_limit}
        if settings["filter_params"] is not None:
            check_takes(self.adapter.hybrid_search, filter_params=settings["filter_params"])
            args["filter_params"] = settings["filter_params"]
        return args

    def _documents(self, texts: Iterable[str], metadatas: Any, ids: Any) -> list[dict[str, Any]]:
        if isinstance(texts, str) or not isinstance(texts, Iterable):
            raise TypeError(f"texts must be a list of strings, got {type(texts).__name__}")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        metadatas = [{}] * len(texts) if metadatas is None else list(metadatas)
        ids = [None] * len(texts) if ids is None else list(ids)
        if len(metadatas) != len(texts):
            raise ValueError(f"got {len(texts)} texts and {len(metadatas)} metadatas; pass one metadata per text")
        if len(ids) != len(texts):
            raise ValueError(f"got {len(texts)} texts and {len(ids)} ids; pass one id per text (None: derived)")
        docs = []
        for i, (text, metadata, doc_id) in enumerate(zip(texts, metadatas, ids, strict=True)):
            if metadata is not None and not isinstance(metadata, dict):
                raise TypeError(f"metadatas[{i}] is {type(metadata).__name__}, expected a dict")
            metadata = dict(metadata or {})
            if doc_id is not None and (not isinstance(doc_id, str) or not doc_id):
                raise ValueError(f"ids[{i}] must be a non-empty string or None, got {doc_id!r}")
            docs.append({"text": text, "metadata": metadata,
                         "id": doc_id if doc_id is not None else derived_id(text, metadata)})
        return docs

    def _add_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``batch_size`` (LangChain's ``index()`` passes one) overrides the store's for this call."""
        unknown = sorted(set(kwargs) - {"batch_size"})
        if unknown:
            raise TypeError(f"add_texts got unexpected argument(s) {unknown}; it takes batch_size")
        batch_size = kwargs.get("batch_size", self.batch_size)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        options = {"batch_size": batch_size, "show_progress": False, **self.store_kwargs}
        if options.get("fields") is not None:
            # a collection made elsewhere keeps the level it was made with: consistency_level is for the reads here
            options.pop("consistency_level", None)
        return options

    @staticmethod
    def _to_pairs(hits: list[Hit]) -> list[tuple[Document, float]]:
        return [(Document(page_content=hit.text, metadata=dict(hit.metadata or {}), id=hit.id), float(hit.score))
                for hit in hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # the fused scores are already "higher is better" on BGE-M3's reference scale (cosine-like, ~[0, 1])
        return lambda score: score

    # ------------------------------------------------------------------------------------ writing
    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Encode and store texts; returns one id per text, in order (the given id, or the derived one)."""
        self._require_sync("add_texts")
        options = self._add_kwargs(kwargs)
        docs = self._documents(texts, metadatas, ids)
        if not docs:
            return []
        return self.adapter.upsert_documents(self.client, docs, self.collection_name, self.encoder, **options)

    async def aadd_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                         ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """``add_texts`` for async code (native on an async client, in a worker thread otherwise)."""
        if not _is_async(self.client):
            return await asyncio.to_thread(self.add_texts, texts, metadatas, ids=ids, **kwargs)
        options = self._add_kwargs(kwargs)
        docs = self._documents(texts, metadatas, ids)
        if not docs:
            return []
        encoder = await asyncio.to_thread(lambda: self.encoder)
        return await self.adapter.aupsert_documents(self.client, docs, self.collection_name, encoder, **options)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete documents by id (unknown ids are ignored). ``ids=None`` is refused: use ``delete_collection``."""
        self._require_sync("delete")
        keys = self._delete_ids(ids, kwargs)
        try:
            self.adapter.delete_documents(self.client, keys, self.collection_name,
                                          **self._read_kwargs("delete_documents"))
        except CollectionNotFoundError:
            pass  # nothing stored yet: nothing to delete
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """``delete`` for async code."""
        if not _is_async(self.client):
            return await asyncio.to_thread(self.delete, ids, **kwargs)
        keys = self._delete_ids(ids, kwargs)
        try:
            await self.adapter.adelete_documents(self.client, keys, self.collection_name,
                                                 **self._read_kwargs("adelete_documents"))
        except CollectionNotFoundError:
            pass
        return True

    @staticmethod
    def _delete_ids(ids: Any, kwargs: dict[str, Any]) -> list[str]:
        if kwargs:
            raise TypeError(f"delete got unexpected argument(s) {sorted(kwargs)}")
        if ids is None:
            raise ValueError("delete needs the ids to delete; to delete everything use delete_collection()")
        if isinstance(ids, str) or not isinstance(ids, Iterable):
            raise TypeError(f"ids must be a list of ids, got {type(ids).__name__}")
        return [str(i) for i in ids]

    def delete_collection(self) -> None:
        """Drop the whole collection (every document in it)."""
        self._require_sync("delete_collection")
        self.adapter.drop_collection(self.client, self.collection_name)

    async def adelete_collection(self) -> None:
        """``delete_collection`` for async code."""
        if not _is_async(self.client):
            return await asyncio.to_thread(self.delete_collection)
        await self.adapter.adrop_collection(self.client, self.collection_name)

    def _read_kwargs(self, function: str) -> dict[str, Any]:
        """The store keywords the adapter's read / delete ``function`` takes (the collection's names; not the
        write-only ones)."""
        return names_for(getattr(self.adapter, function), self.store_kwargs, also=("consistency_level",))

    def _query_kwargs(self, function: str = "hybrid_search") -> dict[str, Any]:
        """The store keywords ``hybrid_search`` takes: the schema or ``fields``, Milvus' ``consistency_level``."""
        return names_for(getattr(self.adapter, function), self.store_kwargs, also=("consistency_level",))

    # ------------------------------------------------------------------------------------ reading
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Stored documents by id, in the order given (unknown ids are skipped)."""
        self._require_sync("get_by_ids")
        try:
            docs = self.adapter.get_documents(self.client, self.collection_name, [str(i) for i in ids],
                                              **self._read_kwargs("get_documents"))
        except CollectionNotFoundError:
            return []
        return [Document(page_content=d.text, metadata=d.metadata, id=d.id) for d in docs]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """``get_by_ids`` for async code."""
        if not _is_async(self.client):
            return await asyncio.to_thread(self.get_by_ids, ids)
        try:
            docs = await self.adapter.aget_documents(self.client, self.collection_name, [str(i) for i in ids],
                                                     **self._read_kwargs("aget_documents"))
        except CollectionNotFoundError:
            return []
        return [Document(page_content=d.text, metadata=d.metadata, id=d.id) for d in docs]

    # ------------------------------------------------------------------------------------ search
    def _search(self, query: str | None, k: int | None, kwargs: dict[str, Any],
                query_output: M3Output | None = None) -> list[Hit]:
        self._require_sync("similarity_search")
        args = self._search_args(k, kwargs)
        if query_output is not None:
            args["mode"] = "dense"
        elif not isinstance(query, str):
            raise TypeError(f"the query must be a str, got {type(query).__name__}")
        try:
            return self.adapter.hybrid_search(self.client, query or "", self.collection_name, self.encoder,
                                              query_output=query_output, **args, **self._query_kwargs())
        except CollectionNotFoundError:
            return []  # nothing added yet

    async def _asearch(self, query: str | None, k: int | None, kwargs: dict[str, Any],
                       query_output: M3Output | None = None) -> list[Hit]:
        if not _is_async(self.client):
            return await asyncio.to_thread(self._search, query, k, kwargs, query_output)
        args = self._search_args(k, kwargs)
        if query_output is not None:
            args["mode"] = "dense"
        elif not isinstance(query, str):
            raise TypeError(f"the query must be a str, got {type(query).__name__}")
        encoder = await asyncio.to_thread(lambda: self.encoder)
        try:
            return await self.adapter.ahybrid_search(self.client, query or "", self.collection_name, encoder,
                                                     query_output=query_output, **args,
                                                     **self._query_kwargs("ahybrid_search"))
        except CollectionNotFoundError:
            return []

    def similarity_search_with_score(self, query: str, k: int | None = None, **kwargs: Any
                                     ) -> list[tuple[Document, float]]:
        """Documents most similar to ``query`` with their fused scores (higher is better).

        Keywords (each overrides the store's default for this call): ``filter`` (a neutral ``Condition`` /
        ``AllOf`` / ``AnyOf`` or the database's native filter), ``filter_params`` (Milvus: the values of the
        expression's ``{name}`` placeholders), ``mode``, ``fusion``, ``weights``,
        ``prefetch_limit``, ``rrf_k``, ``rescore_limit``.
        """
        return self._to_pairs(self._search(query, k, kwargs))

    async def asimilarity_search_with_score(self, query: str, k: int | None = None, **kwargs: Any
                                            ) -> list[tuple[Document, float]]:
        """``similarity_search_with_score`` for async code."""
        return self._to_pairs(await self._asearch(query, k, kwargs))

    def similarity_search(self, query: str, k: int | None = None, **kwargs: Any) -> list[Document]:
        """Documents most similar to ``query`` (see ``similarity_search_with_score``)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    async def asimilarity_search(self, query: str, k: int | None = None, **kwargs: Any) -> list[Document]:
        """``similarity_search`` for async code."""
        return [doc for doc, _ in await self.asimilarity_search_with_score(query, k, **kwargs)]

    def _similarity_search_with_relevance_scores(self, query: str, k: int = 4, **kwargs: Any
                                                 ) -> list[tuple[Document, float]]:
        return self.similarity_search_with_score(query, k, **kwargs)

    async def _asimilarity_search_with_relevance_scores(self, query: str, k: int = 4, **kwargs: Any
                                                        ) -> list[tuple[Document, float]]:
        return await self.asimilarity_search_with_score(query, k, **kwargs)

    @staticmethod
    def _vector_output(embedding: Sequence[float]) -> M3Output:
        vector = np.asarray(embedding, dtype=np.float32)
        if vector.ndim != 1 or vector.size == 0:
            raise ValueError(f"embedding must be one dense vector (a list of floats), got shape {vector.shape}")
        return M3Output(dense=vector[None, :])

    def similarity_search_by_vector(self, embedding: list[float], k: int | None = None, **kwargs: Any
                                    ) -> list[Document]:
        """Documents nearest to a dense vector (dense mode: a vector carries no sparse or ColBERT part)."""
        return [doc for doc, _ in self._to_pairs(self._search(None, k, kwargs, self._vector_output(embedding)))]

    async def asimilarity_search_by_vector(self, embedding: list[float], k: int | None = None, **kwargs: Any
                                           ) -> list[Document]:
        """``similarity_search_by_vector`` for async code."""
        hits = await self._asearch(None, k, kwargs, self._vector_output(embedding))
        return [doc for doc, _ in self._to_pairs(hits)]

    def _mmr(self, query_vector: list[float], hits: list[Hit], k: int, lambda_mult: float) -> list[Document]:
        if not hits:
            return []
        # the stores return no vectors: the candidates' dense vectors come from the (cached) encoder
        vectors = self._embedding.embed_documents([hit.text for hit in hits])
        chosen = maximal_marginal_relevance(np.asarray(query_vector, dtype=np.float32), vectors, lambda_mult, k)
        return [doc for doc, _ in self._to_pairs([hits[i] for i in chosen])]

    def max_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
                                      **kwargs: Any) -> list[Document]:
        """``k`` documents among the ``fetch_k`` best for ``query``, picked for relevance and diversity (dense
        cosine between candidates; ``lambda_mult`` 1: relevance only, 0: diversity only)."""
        _check_k(k)
        hits = self._search(query, max(fetch_k, k), kwargs)
        return self._mmr(self._embedding.embed_query(query), hits, k, lambda_mult)

    async def amax_marginal_relevance_search(self, query: str, k: int = 4, fetch_k: int = 20,
                                             lambda_mult: float = 0.5, **kwargs: Any) -> list[Document]:
        """``max_marginal_relevance_search`` for async code."""
        _check_k(k)
        hits = await self._asearch(query, max(fetch_k, k), kwargs)
        query_vector = await self._embedding.aembed_query(query)
        return await asyncio.to_thread(self._mmr, query_vector, hits, k, lambda_mult)

    def max_marginal_relevance_search_by_vector(self, embedding: list[float], k: int = 4, fetch_k: int = 20,
                                                lambda_mult: float = 0.5, **kwargs: Any) -> list[Document]:
        """MMR from a dense vector (dense candidates)."""
        _check_k(k)
        hits = self._search(None, max(fetch_k, k), kwargs, self._vector_output(embedding))
        return self._mmr(list(embedding), hits, k, lambda_mult)

    # ------------------------------------------------------------------------------------ construction
    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, client: Any = None, collection_name: str = "docs",
                   **kwargs: Any) -> M3VectorStore:
        """A store on ``client`` holding ``texts``; ``embedding`` must be an ``M3Embeddings``."""
        if client is None:
            raise ValueError("from_texts needs client= (a QdrantClient, QdrantEdgeStore or MilvusClient)")
        if not isinstance(embedding, M3EncoderSettings):
            raise TypeError(f"embedding must be an M3Embeddings (the store needs BGE-M3's sparse and ColBERT "
                            f"outputs too), got {type(embedding).__name__}")
        store = cls(client, collection_name, embedding=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    async def afrom_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                          ids: list[str] | None = None, client: Any = None, collection_name: str = "docs",
                          **kwargs: Any) -> M3VectorStore:
        """``from_texts`` for async code."""
        if client is None:
            raise ValueError("afrom_texts needs client= (an AsyncQdrantClient, QdrantClient, QdrantEdgeStore, "
                             "MilvusClient or AsyncMilvusClient)")
        if not isinstance(embedding, M3EncoderSettings):
            raise TypeError(f"embedding must be an M3Embeddings, got {type(embedding).__name__}")
        store = cls(client, collection_name, embedding=embedding, **kwargs)
        await store.aadd_texts(texts, metadatas, ids=ids)
        return store
