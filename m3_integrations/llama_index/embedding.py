"""``M3Embedding``: BGE-M3 dense vectors as a LlamaIndex embedding model."""

from __future__ import annotations

import os
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from ..encoder import DEFAULT_MODEL, M3Encoder
from ._common import DEFAULT_CACHE_SIZE, ensure_cache, resolve_encoder

__all__ = ["M3Embedding"]


class M3Embedding(BaseEmbedding):
    """BGE-M3 as a LlamaIndex embedding model: query and text embeddings are the dense vectors.

    Queries go through ``encode_queries`` (``query_max_length``) and texts through
    ``encode_documents`` (``document_max_length``). The async methods run the encoder in a worker
    thread, so they never block the event loop.

    It turns on the encoder's output cache (``cache_size`` entries, unless a cache is already on), so
    an ``M3QdrantVectorStore`` / ``M3MilvusVectorStore`` sharing the same encoder stores the sparse and
    ColBERT parts of the texts embedded here without running the model again.

    Args:
        model_name: hub id or local directory, used when ``encoder`` is not given.
        encoder: an ``M3Encoder`` to share (recommended: give the same one to the vector store).
        cache_size: encoder output-cache entries; ``0`` / ``None`` leaves the cache off.
        embed_batch_size: texts per encoder call (the encoder batches by tokens inside a call).
        device: device of the encoder built from ``model_name``.
        **kwargs: other ``BaseEmbedding`` fields (``callback_manager``, ``num_workers`` ...).

    Example:
        >>> enc = M3Encoder("BAAI/bge-m3")
        >>> Settings.embed_model = M3Embedding(encoder=enc)
    """

    model_name: str = Field(default=DEFAULT_MODEL, description="BGE-M3 hub id or local directory.")
    embed_batch_size: int = Field(default=64, gt=0, le=2048, description="Texts per encoder call.")
    cache_size: int | None = Field(default=DEFAULT_CACHE_SIZE, description="Encoder output-cache entries.")

    _encoder: M3Encoder = PrivateAttr()

    def __init__(
        self,
        model_name: str | os.PathLike = DEFAULT_MODEL,
        *,
        encoder: M3Encoder | None = None,
        cache_size: int | None = DEFAULT_CACHE_SIZE,
        embed_batch_size: int = 64,
        device: str | None = None,
        **kwargs: Any,
    ) -> None:
        if encoder is None:
            encoder = M3Encoder(model_name, device=device)
        else:
            encoder = resolve_encoder(encoder)
        if cache_size is not None and (isinstance(cache_size, bool) or not isinstance(cache_size, int)
                                       or cache_size < 0):
            raise ValueError(f"cache_size must be a non-negative int or None, got {cache_size!r}")
        super().__init__(model_name=encoder.model_name, embed_batch_size=embed_batch_size, cache_size=cache_size,
                         **kwargs)
        self._encoder = encoder
        ensure_cache(encoder, cache_size)

    @classmethod
    def class_name(cls) -> str:
        return "M3Embedding"

    @property
    def encoder(self) -> M3Encoder:
        """The underlying ``M3Encoder``."""
        return self._encoder

    # ------------------------------------------------------------------------------------- sync
    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encoder.encode_queries([query], return_sparse=False, return_colbert=False).dense[0].tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        if not texts:
            return []
        out = self._encoder.encode_documents(texts, return_sparse=False, return_colbert=False)
        return out.dense.tolist()

    # ------------------------------------------------------------------------------------ async
    async def _aget_query_embedding(self, query: str) -> Embedding:
        out = await self._encoder.aencode_queries([query], return_sparse=False, return_colbert=False)
        return out.dense[0].tolist()

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self._aget_text_embeddings([text]))[0]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        if not texts:
            return []
        out = await self._encoder.aencode_documents(texts, return_sparse=False, return_colbert=False)
        return out.dense.tolist()
