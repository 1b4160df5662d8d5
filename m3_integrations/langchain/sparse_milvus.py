"""``M3MilvusSparseEmbedding``: BGE-M3 lexical weights as langchain-milvus' ``BaseSparseEmbedding``.

langchain-qdrant's ``SparseEmbeddings`` and langchain-milvus' ``BaseSparseEmbedding`` name the same methods
(``embed_query`` / ``embed_documents``) but return different types (a ``SparseVector`` vs a ``{token id: weight}``
dict), so one class cannot serve both: this is the Milvus twin of ``M3SparseEmbeddings``, on the same encoder
and the same dense + sparse cache. Needs ``langchain-milvus``.
"""

from __future__ import annotations

import asyncio

from langchain_milvus.utils.sparse import BaseSparseEmbedding
from pydantic import Field

from ._shared import DEFAULT_CACHE_SIZE, check_texts, encode_dense_sparse
from .embeddings import M3EncoderSettings


class M3MilvusSparseEmbedding(M3EncoderSettings, BaseSparseEmbedding):
    """BGE-M3 sparse (lexical) weights for langchain-milvus' ``Milvus`` vector store (``SPARSE_FLOAT_VECTOR``).

    Examples:
        ```python
        from langchain_milvus import Milvus
        from m3_integrations.langchain import M3Embeddings, M3MilvusSparseEmbedding

        dense = M3Embeddings()
        store = Milvus(embedding_function=[dense, M3MilvusSparseEmbedding.from_embeddings(dense)],
                       vector_field=["dense", "sparse"], connection_args={"uri": "./milvus.db"})
        ```

    Attributes:
        cache_size: texts whose dense and sparse outputs are kept per encoder; ``0`` turns it off.
    """

    cache_size: int = Field(default=DEFAULT_CACHE_SIZE, ge=0)

    @classmethod
    def from_embeddings(cls, embeddings: M3EncoderSettings) -> M3MilvusSparseEmbedding:
        """A sparse twin of an ``M3Embeddings``: same encoder, same cache size."""
        if not isinstance(embeddings, M3EncoderSettings):
            raise TypeError(f"from_embeddings takes an M3Embeddings, got {type(embeddings).__name__}")
        return cls(encoder=embeddings.get_encoder(), cache_size=getattr(embeddings, "cache_size", DEFAULT_CACHE_SIZE))

    def embed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        """``{token id: weight}`` of each document."""
        texts = check_texts(texts, "embed_documents")
        _, sparse = encode_dense_sparse(self.get_encoder(), texts, query=False, need_sparse=True,
                                        cache_size=self.cache_size)
        return [_to_dict(s) for s in sparse]

    def embed_query(self, query: str) -> dict[int, float]:
        """``{token id: weight}`` of a query."""
        if not isinstance(query, str):
            raise TypeError(f"embed_query takes a str, got {type(query).__name__}")
        _, sparse = encode_dense_sparse(self.get_encoder(), [query], query=True, need_sparse=True,
                                        cache_size=self.cache_size)
        return _to_dict(sparse[0])

    async def aembed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        """``embed_documents`` in a worker thread."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, query: str) -> dict[int, float]:
        """``embed_query`` in a worker thread."""
        return await asyncio.to_thread(self.embed_query, query)


def _to_dict(arrays) -> dict[int, float]:
    indices, values = arrays
    return {int(i): float(v) for i, v in zip(indices.tolist(), values.tolist(), strict=True)}
