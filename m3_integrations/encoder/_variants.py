"""The query / document / async forms of ``encode``, shared by every encoder (local and remote); no torch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class EncodeVariants:
    """``encode_queries``, ``encode_documents`` and the async twins, over the class's ``encode(texts,
    max_length, ...)`` and its ``query_max_length`` / ``document_max_length``."""

    query_max_length: int
    document_max_length: int

    def encode(self, texts: Any, max_length: int | None = None, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def encode_queries(self, queries: str | Iterable[str], max_length: int | None = None, **kwargs: Any) -> Any:
        """``encode`` with the query truncation length (``query_max_length``)."""
        return self.encode(queries, self.query_max_length if max_length is None else max_length, **kwargs)

    def encode_documents(self, documents: str | Iterable[str], max_length: int | None = None, **kwargs: Any) -> Any:
        """``encode`` with the document truncation length (``document_max_length``)."""
        return self.encode(documents, self.document_max_length if max_length is None else max_length, **kwargs)

    async def aencode(self, texts: str | Iterable[str], **kwargs: Any) -> Any:
        """``encode`` in a worker thread, so the event loop stays free."""
        return await asyncio.to_thread(self.encode, texts, **kwargs)

    async def aencode_queries(self, queries: str | Iterable[str], **kwargs: Any) -> Any:
        """``encode_queries`` in a worker thread."""
        return await asyncio.to_thread(self.encode_queries, queries, **kwargs)

    async def aencode_documents(self, documents: str | Iterable[str], **kwargs: Any) -> Any:
        """``encode_documents`` in a worker thread."""
        return await asyncio.to_thread(self.encode_documents, documents, **kwargs)
