"""BGE-M3 dense + sparse + ColBERT in Milvus (milvus-lite, Milvus servers), over ``pymilvus``.

The same functions and keywords as ``m3_integrations.qdrant``: switch databases by switching the client::

    from pymilvus import MilvusClient
    from m3_integrations import M3Encoder
    from m3_integrations.milvus import upsert_documents, hybrid_search

    client = MilvusClient("./m3.db")          # milvus-lite: an embedded database in one file
    enc = M3Encoder()
    upsert_documents(client, ["BGE-M3 does dense, sparse and ColBERT."], encoder=enc)
    hits = hybrid_search(client, "what does BGE-M3 do?", encoder=enc)

See ``docs/milvus-lite.md`` for the storage layout and the milvus-lite versions.
"""

from .._errors import FilterError
from .._ingest import Document, IngestError
from .._query import AllOf, AnyOf, Condition, Hit
from .._store_lock import StoreLockedError
from ._filters import to_expr
from ._schema import CollectionNotFoundError, SchemaMismatchError
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
from .fields import MilvusFields
from .search import ahybrid_search, hybrid_search

__all__ = [
    "connect",
    "FilterError", "StoreLockedError",
    "AllOf", "AnyOf", "CollectionNotFoundError", "Condition", "Document", "Hit", "IngestError", "MilvusFields",
    "SchemaMismatchError", "acount_documents", "adelete_by_filter", "adelete_documents", "adrop_collection",
    "aget_documents", "ahybrid_search", "aupsert_documents", "count_documents", "delete_by_filter",
    "delete_documents", "drop_collection", "get_documents", "hybrid_search", "to_expr", "upsert_documents",
]
