"""Shared helpers of the LlamaIndex classes: encoder resolution, the adapter of a client, node <-> document."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from .._ingest import Document
from .._query import Hit
from ..encoder import M3Encoder
from ..remote import RemoteEncoder

DEFAULT_CACHE_SIZE = 1024
"""Entries of the encoder's output cache turned on by the LlamaIndex classes.

``VectorStoreIndex`` embeds a batch of nodes (``insert_batch_size``, default 2048), then hands the
same batch to the store, which finds the texts in the cache and stores all three representations
without running the model again. A batch larger than the cache re-encodes only the part that fell
out (the store reads the batch newest-first); pass ``insert_batch_size=1024`` (or less than your
``cache_size``) to the index for exactly one pass. Each entry holds a text's ColBERT rows
(tokens x 1024 floats for BGE-M3: ~1 MB for 256 tokens), so size the cache to your memory.
"""

SCORES_KEY = "m3_scores"
"""Node-metadata key of the per-mode scores of a search hit (excluded from the LLM and embed text)."""

NODE_ID_KEY = "_node_id"
"""Stored-metadata key holding the LlamaIndex node id (so queries can be restricted to node ids)."""

NODE_CONTENT_KEY = "_node_content"


def resolve_encoder(encoder: Any, what: str = "encoder") -> M3Encoder:
    """An ``M3Encoder`` (or ``RemoteEncoder``) from an encoder, an ``M3Embedding`` (its encoder) or a model name."""
    if isinstance(encoder, (M3Encoder, RemoteEncoder)):
        return encoder
    inner = getattr(encoder, "encoder", None)
    if isinstance(inner, (M3Encoder, RemoteEncoder)):  # an M3Embedding
        return inner
    if isinstance(encoder, (str, os.PathLike)):
        return M3Encoder(encoder)
    if encoder is None:
        raise ValueError(f"{what} is required: pass an M3Encoder, a RemoteEncoder, an M3Embedding or a model name / "
                         "directory")
    raise TypeError(f"{what} must be an M3Encoder, a RemoteEncoder, an M3Embedding or a model name, got "
                    f"{type(encoder).__name__}")


def ensure_cache(encoder: M3Encoder, cache_size: int | None) -> None:
    """Turn the encoder's output cache on (``cache_size`` entries) unless it is already on or ``cache_size`` is falsy.

    An already enabled cache is kept as it is (its size was the user's choice).
    """
    if not cache_size:
        return
    if encoder.cache_size is None:
        encoder.enable_cache(cache_size)


def adapter_for_client(client: Any, expected: str | None = None) -> ModuleType:
    """The store adapter module (``m3_integrations.qdrant`` / ``.milvus``) serving ``client``.

    Decided by the module name of the client's class (or a base class), so no database client is imported here.
    """
    cls = type(client)
    modules = [c.__module__ or "" for c in cls.__mro__]  # a subclass of a client is served as that client
    if any(m.startswith(("qdrant_client", "qdrant_edge", "m3_integrations.qdrant")) for m in modules):
        kind = "qdrant"
    elif any(m.startswith(("pymilvus", "milvus_lite", "m3_integrations.milvus")) for m in modules):
        kind = "milvus"
    else:
        raise TypeError(
            f"unsupported client {cls.__module__}.{cls.__name__}: pass a qdrant_client.QdrantClient, an "
            "m3_integrations.qdrant.QdrantEdgeStore or a pymilvus.MilvusClient"
        )
    if expected is not None and kind != expected:
        raise TypeError(f"this store needs a {expected} client, got {cls.__module__}.{cls.__name__}")
    if cls.__name__.startswith("Async"):
        raise TypeError(
            f"{cls.__name__} is an async client; pass the synchronous client (the async methods of these "
            "classes run the synchronous calls in a worker thread, so they do not block the event loop)"
        )
    try:
        return importlib.import_module(f"m3_integrations.{kind}")
    except ImportError as exc:
        raise ImportError(
            f"m3_integrations.{kind} could not be imported ({exc}); install m3-integrations[{kind}]"
        ) from exc


def node_to_document(node: BaseNode, flat_metadata: bool = False) -> Document:
    """The stored form of a node.

    The text is ``node.get_content(metadata_mode=MetadataMode.EMBED)`` -- the very string
    ``VectorStoreIndex`` gave the embedding model, so the encoder's cache serves it. The node itself
    (text, metadata, relationships) is kept in the metadata by LlamaIndex's ``node_to_metadata_dict``
    and comes back unchanged; ``ref_doc_id`` / ``doc_id`` and ``_node_id`` are top-level, filterable keys.
    """
    metadata = node_to_metadata_dict(node, remove_text=False, flat_metadata=flat_metadata)
    metadata[NODE_ID_KEY] = node.node_id
    return Document(text=node.get_content(metadata_mode=MetadataMode.EMBED), id=node.node_id, metadata=metadata)


def to_node(doc_id: str, text: str, metadata: dict[str, Any], scores: dict[str, float] | None = None) -> BaseNode:
    """A node from a stored record: the LlamaIndex node if it was stored by these classes, else a ``TextNode``.

    Collections written by ``upsert_documents`` or LangChain come back as ``TextNode(id_=id, text=text,
    metadata=metadata)``. ``scores`` (per-mode scores of a hit) go to ``metadata["m3_scores"]``.
    """
    if NODE_CONTENT_KEY in metadata:
        node = metadata_dict_to_node(metadata)
    else:
        node = TextNode(id_=str(doc_id), text=text, metadata=dict(metadata))
    if scores:
        node.metadata[SCORES_KEY] = {k: float(v) for k, v in scores.items()}
        for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            if SCORES_KEY not in excluded:
                excluded.append(SCORES_KEY)
    return node


def hit_to_node(hit: Hit) -> BaseNode:
    """A search ``Hit`` as a node with its per-mode scores in ``metadata["m3_scores"]``."""
    return to_node(hit.id, hit.text, hit.metadata or {}, hit.scores)
