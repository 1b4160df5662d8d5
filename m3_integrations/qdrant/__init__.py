"""BGE-M3 dense + sparse + ColBERT in Qdrant: one collection per corpus, fusion in the Query API.

Works with any ``QdrantClient`` (":memory:", ``path=``, ``url=``), ``AsyncQdrantClient`` (through the ``a*``
twins) and ``QdrantEdgeStore`` (embedded, persistent Qdrant engine; the default for local use).
"""

from .._errors import FilterError
from .._ingest import Document, IngestError
from .._query import AllOf, AnyOf, Condition, Hit
from .._store_lock import StoreLockedError
from ._schema import CollectionNotFoundError, QdrantSchema, SchemaMismatchError
from .connect import connect
from .documents import (
    acount_documents,
    adelete_by_filter,
    adelete_documents,
    adrop_collection,
    aget_documents,
    aupsert_documents,
    count_documents,
    delete_by_filter,
    delete_documents,
    drop_collection,
    get_documents,
    upsert_documents,
)
from .edge import QdrantEdgeStore
from .fields import QdrantFields
from .search import ahybrid_search, hybrid_search

__all__ = [
    "connect",
    "FilterError", "StoreLockedError",
    "AllOf", "AnyOf", "CollectionNotFoundError", "Condition", "Document", "Hit", "IngestError", "QdrantEdgeStore",
    "QdrantFields",
    "QdrantSchema", "SchemaMismatchError", "acount_documents", "adelete_by_filter", "adelete_documents",
    "adrop_collection", "aget_documents", "ahybrid_search", "aupsert_documents", "count_documents",
    "delete_by_filter", "delete_documents", "drop_collection", "get_documents", "hybrid_search",
    "upsert_documents",
]
