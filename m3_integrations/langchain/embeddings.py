"""``M3Embeddings``: BGE-M3 dense vectors as a LangChain ``Embeddings``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..encoder import DEFAULT_MODEL, M3Encoder
from ..remote import RemoteEncoder
from ._shared import DEFAULT_CACHE_SIZE, check_texts, encode_dense_sparse, shared_encoder


class M3EncoderSettings(BaseModel):
    """Settings shared by the LangChain classes: which encoder to use and how to cache its outputs.

    Attributes:
        model_name: hub id or local directory of a BGE-M3 checkpoint (default ``"BAAI/bge-m3"``);
            loaded on first use. Ignored when ``encoder`` is given.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks CUDA when available.
        encoder_kwargs: more ``M3Encoder`` arguments (``dtype``, ``max_batch_tokens``,
            ``query_max_length``, ``document_max_length``, ``revision``, ``cache_dir``...).
        encoder: an existing ``M3Encoder`` (or a ``RemoteEncoder`` of an ``m3 serve`` service) to use
            instead of loading one.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", protected_namespaces=())

    model_name: str = DEFAULT_MODEL
    device: str | None = None
    encoder_kwargs: dict[str, Any] = Field(default_factory=dict)
    encoder: M3Encoder | RemoteEncoder | None = Field(default=None, exclude=True, repr=False)

    @field_validator("model_name", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("device", mode="before")
    @classmethod
    def _device_to_str(cls, value: Any) -> Any:
        return None if value is None else str(value)

    @model_validator(mode="after")
    def _check_encoder(self) -> M3EncoderSettings:
        if self.encoder is not None:
            clash = {"model_name", "device", "encoder_kwargs"} & self.model_fields_set
            if clash:
                raise ValueError(
                    f"pass either encoder= or {', '.join(sorted(clash))}=, not both: "
                    "the encoder is already loaded with its own settings"
                )
        elif "device" in self.encoder_kwargs or "model_name_or_path" in self.encoder_kwargs:
            raise ValueError("encoder_kwargs must not hold 'device' or 'model_name_or_path'; use device= / model_name=")
        return self

    def get_encoder(self) -> M3Encoder:
        """The ``M3Encoder`` in use; loads ``model_name`` on first call (shared with any other object
        built with the same settings, so the model is in memory once)."""
        if self.encoder is None:
            self.encoder = shared_encoder(self.model_name, self.device, **self.encoder_kwargs)
        return self.encoder


class M3Embeddings(M3EncoderSettings, Embeddings):
    """BGE-M3 dense embeddings for LangChain (vector stores, retrievers, chains).

    ``embed_documents`` encodes with the encoder's document settings (``encode_documents``) and
    ``embed_query`` with its query settings (``encode_queries``); vectors are L2-normalized, so use
    cosine or dot-product distance. The model runs in a worker thread for ``aembed_*``.

    Examples:
        ```python
        from m3_integrations.langchain import M3Embeddings, M3SparseEmbeddings

        dense = M3Embeddings()                       # BAAI/bge-m3, loaded on first use
        sparse = M3SparseEmbeddings(encoder=dense.get_encoder())
        # QdrantVectorStore(..., retrieval_mode=RetrievalMode.HYBRID, embedding=dense, sparse_embedding=sparse)
        ```

    The dense and sparse outputs of each text are cached per encoder (``cache_size``), so a
    ``M3SparseEmbeddings`` on the same encoder gets the sparse weights of texts embedded here
    without running the model again.

    Attributes:
        cache_size: texts whose dense and sparse outputs are kept per encoder, so that the dense and
            the sparse embeddings of the same texts cost one forward pass; ``0`` turns it off.
    """

    cache_size: int = Field(default=DEFAULT_CACHE_SIZE, ge=0)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Dense vectors of documents (one list of ``dim`` floats per text)."""
        texts = check_texts(texts, "embed_documents")
        dense, _ = encode_dense_sparse(self.get_encoder(), texts, query=False, need_sparse=False,
                                       cache_size=self.cache_size)
        return [row.tolist() for row in dense]

    def embed_query(self, text: str) -> list[float]:
        """Dense vector of a query."""
        if not isinstance(text, str):
            raise TypeError(f"embed_query takes a str, got {type(text).__name__}")
        dense, _ = encode_dense_sparse(self.get_encoder(), [text], query=True, need_sparse=False,
                                       cache_size=self.cache_size)
        return dense[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """``embed_documents`` in a worker thread (the event loop is not blocked)."""
        return await asyncio.to_thread(self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        """``embed_query`` in a worker thread (the event loop is not blocked)."""
        return await asyncio.to_thread(self.embed_query, text)
