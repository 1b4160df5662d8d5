"""What every encoder (local and remote) shares above ``encode``: its query / document / async forms and the
output cache's switches; no torch."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from ._cache import OutputCache


class EncodeVariants:
    """``encode_queries``, ``encode_documents`` and the async twins, over the class's ``encode(texts,
    max_length, ...)`` and its ``query_max_length`` / ``document_max_length``; the output cache switches
    (``encode`` consults ``self._cache``)."""

    query_max_length: int
    document_max_length: int
    _cache: OutputCache | None = None

    def enable_cache(self, max_entries: int = 1024) -> None:
        """Keep the outputs of the last ``max_entries`` distinct texts (all three representations).

        Framework adapters turn this on so that, for example, a dense embedding call followed by a
        store write of the same texts encodes once. ``stats`` counts only real forward work.
        """
        if self._cache is None or self._cache.max_entries != max_entries:
            self._cache = OutputCache(max_entries)

    @property
    def cache_size(self) -> int | None:
        """Capacity of the output cache, or ``None`` when it is off."""
        return None if self._cache is None else self._cache.max_entries

    def disable_cache(self) -> None:
        """Drop the output cache."""
        self._cache = None

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
