"""LlamaIndex integration: BGE-M3 dense + sparse + ColBERT in Qdrant and Milvus, fused in the database.

- ``M3Embedding``: the dense vectors as a LlamaIndex embedding model.
- ``M3QdrantVectorStore`` / ``M3MilvusVectorStore``: ``BasePydanticVectorStore``s (``stores_text=True``)
  that store all three representations of every node; ``DEFAULT`` / ``SPARSE`` / ``HYBRID`` queries,
  ``alpha`` -> fusion weights (see ``vector_store``), ``MetadataFilters`` -> native filters.
- ``M3HybridRetriever``: a retriever over any M3 collection, no index needed.

Needs ``llama-index-core`` (``pip install m3-integrations[llama-index]``) and the database extra.
"""

from ._common import DEFAULT_CACHE_SIZE, SCORES_KEY
from ._filters import UnsupportedFilterError, to_neutral_filter
from .embedding import M3Embedding
from .retriever import M3HybridRetriever
from .vector_store import M3MilvusVectorStore, M3QdrantVectorStore, M3VectorStoreBase, alpha_to_weights

__all__ = [
    "DEFAULT_CACHE_SIZE", "SCORES_KEY", "M3Embedding", "M3HybridRetriever", "M3MilvusVectorStore",
    "M3QdrantVectorStore", "M3VectorStoreBase", "UnsupportedFilterError", "alpha_to_weights", "to_neutral_filter",
]
