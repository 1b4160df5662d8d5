"""LangChain integration: BGE-M3 embeddings, sparse embeddings and a hybrid retriever.

- ``M3Embeddings``: dense vectors as a LangChain ``Embeddings``.
- ``M3SparseEmbeddings``: lexical weights as a langchain-qdrant ``SparseEmbeddings`` (imported on
  first access; needs ``langchain-qdrant``).
- ``M3MilvusSparseEmbedding``: the same weights as langchain-milvus' ``BaseSparseEmbedding`` (needs
  ``langchain-milvus``).
- ``M3HybridRetriever``: dense + sparse + ColBERT retrieval fused inside Qdrant (client, or the
  embedded ``QdrantEdgeStore``) or Milvus, one forward pass per query.
- ``M3VectorStore``: a LangChain ``VectorStore`` (add / search / MMR / delete / get_by_ids, sync and
  async; ``index()`` with a record manager) over Qdrant, Qdrant Edge or Milvus.
- ``add_documents`` / ``aadd_documents``: store LangChain ``Document`` s (text, metadata, id) for
  the retriever.
- ``Condition`` / ``AllOf`` / ``AnyOf``: database-neutral metadata filters for the retriever.

Install with ``pip install 'm3-integrations[langchain]'`` plus the database extra you use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._query import AllOf, AnyOf, Condition
from .embeddings import M3Embeddings, M3EncoderSettings
from .retriever import M3HybridRetriever, aadd_documents, add_documents
from .vectorstore import M3VectorStore

if TYPE_CHECKING:
    from .sparse import M3SparseEmbeddings
    from .sparse_milvus import M3MilvusSparseEmbedding

__all__ = [
    "AllOf", "AnyOf", "Condition", "M3Embeddings", "M3EncoderSettings", "M3HybridRetriever",
    "M3MilvusSparseEmbedding", "M3SparseEmbeddings",
    "M3VectorStore",
    "aadd_documents", "add_documents",
]


def __getattr__(name: str) -> Any:
    if name == "M3SparseEmbeddings":
        try:
            from .sparse import M3SparseEmbeddings
        except ImportError as exc:
            raise ImportError(
                "M3SparseEmbeddings needs langchain-qdrant (its SparseEmbeddings interface): "
                "pip install 'm3-integrations[langchain]' or pip install langchain-qdrant"
            ) from exc
        return M3SparseEmbeddings
    if name == "M3MilvusSparseEmbedding":
        try:
            from .sparse_milvus import M3MilvusSparseEmbedding
        except ImportError as exc:
            raise ImportError(
                "M3MilvusSparseEmbedding needs langchain-milvus (its BaseSparseEmbedding interface): "
                "pip install 'm3-integrations[langchain]' or pip install langchain-milvus"
            ) from exc
        return M3MilvusSparseEmbedding
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
