"""``M3SparseEmbeddings``: BGE-M3 lexical weights as a langchain-qdrant ``SparseEmbeddings``.

Needs ``langchain-qdrant`` (``pip install 'm3-integrations[langchain]'``).
"""

from __future__ import annotations

import asyncio

from langchain_qdrant import SparseEmbeddings, SparseVector
from pydantic import Field

from ._shared import DEFAULT_CACHE_SIZE, check_texts, encode_dense_sparse
from .embeddings import M3Embeddings, M3EncoderSettings


class M3SparseEmbeddings(M3EncoderSettings, SparseEmbeddings):
    """BGE-M3 sparse (lexical) weights for ``QdrantVectorStore``'s sparse / hybrid retrieval modes.

    Each text gives a ``SparseVector`` with sorted token ids as ``indices`` and their weights as
    ``values``; the sparse score of a query and a document is the dot product of the two.

    Built on the same encoder as an ``M3Embeddings`` (``encoder=dense.get_encoder()``,
    ``M3SparseEmbeddings.from_embeddings(dense)``, or simply the same ``model_name``/``device``),
    the model runs once for both: whichever is called first computes the dense vector and the
    sparse weights of each text, and the other reads them from the shared cache.

    Examples:
        ```python
        from langchain_qdrant import QdrantVectorStore, RetrievalMode
        from m3_integrations.langchain import M3Embeddings, M3SparseEmbeddings

        dense = M3Embeddings()
        store = QdrantVectorStore.from_texts(
            texts, embedding=dense, sparse_embedding=M3SparseEmbeddings.from_embeddings(dense),
            retrieval_mode=RetrievalMode.HYBRID, location=":memory:", collection_name="docs",
        )
        ```

    Attributes:
        cache_size: texts whose dense and sparse outputs are kept per encoder; ``0`` turns it off.
    """

    cache_size: int = Field(default=DEFAULT_CACHE_SIZE, ge=0)

    @classmethod
    def from_embeddings(cls, embeddings: M3Embeddings) -> M3SparseEmbeddings:
        """A sparse twin of ``embeddings``: same encoder, same cache size."""
        if not isinstance(embeddings, M3EncoderSettings):
            raise TypeError(f"from_embeddings takes an M3Embeddings, got {type(embeddings).__name__}")
        return cls(encoder=embeddings.get_encoder(), cache_size=embeddings.cache_size)

    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Sparse vectors of documents."""
        texts = check_texts(texts, "embed_documents")
        _, sparse = encode_dense_sparse(self.get_encoder(), texts, query=False, need_sparse=True,
                                        cache_size=self.cache_size)
        return [_to_vector(s) for s in sparse]

    def embed_query(self, text: str) -> SparseVector:
        """Sparse vector of a query."""
        if not isinstance(text, str):
            raise TypeError(f"embed_query takes a str, got {type(text).__name__}")
        _, sparse = encode_dense_sparse(self.get_encoder(), [text], query=True, need_sparse=True,
                                        cache_size=self.cache_size)
        return _to_vector(sparse[0])

    async def aembed_documents(self, texts: list[str]) -> list[SparseVector]:
        """``embed_documents`` in a worker thread (the event loop is not blocked)."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> SparseVector:
        """``embed_query`` in a worker thread (the event loop is not blocked)."""
        return await asyncio.to_thread(self.embed_query, text)


def _to_vector(arrays) -> SparseVector:
    indices, values = arrays
    return SparseVector(indices=indices.tolist(), values=values.tolist())
