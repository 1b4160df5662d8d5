"""What the LangChain classes share: one encoder per model, and one dense+sparse cache per encoder.

``M3Embeddings`` (dense) and ``M3SparseEmbeddings`` (sparse) are separate objects to LangChain, and a
``QdrantVectorStore`` in hybrid mode calls both on the same texts, one after the other. BGE-M3 gives
both from one forward pass, so the first call keeps both results here and the second one is served
from this cache. Only the dense vector and the sparse weights are kept (a few KB per text); the
ColBERT vectors, which can weigh megabytes per text, are never computed on this path.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from .._ingest import ID_NAMESPACE
from .._store_options import names_for as shared_names_for
from ..encoder import DEFAULT_MODEL, M3Encoder, ModelLoadError

DEFAULT_CACHE_SIZE = 1024
"""Texts kept per encoder by default (dense + sparse only: about 4-8 KB per text for BGE-M3)."""

_encoders: weakref.WeakValueDictionary[tuple, M3Encoder] = weakref.WeakValueDictionary()
_encoders_lock = threading.Lock()


def shared_encoder(model_name: str | os.PathLike = DEFAULT_MODEL, device: str | None = None,
                   **encoder_kwargs: Any) -> M3Encoder:
    """The ``M3Encoder`` for these settings, loaded once per process while something still uses it.

    ``M3Embeddings()`` and ``M3SparseEmbeddings()`` built with the same settings get the same encoder,
    so the model is in memory once and their outputs are shared through one cache.
    """
    key = (str(model_name), None if device is None else str(device),
           tuple(sorted((k, repr(v)) for k, v in encoder_kwargs.items())))
    with _encoders_lock:
        encoder = _encoders.get(key)
        if encoder is None:
            encoder = M3Encoder(model_name, device=device, **encoder_kwargs)
            _encoders[key] = encoder
    return encoder


class _Entry:
    __slots__ = ("dense", "indices", "values")

    def __init__(self, dense: np.ndarray, indices: np.ndarray | None, values: np.ndarray | None) -> None:
        self.dense = dense
        self.indices = indices
        self.values = values


class DenseSparseCache:
    """Thread-safe LRU of (dense vector, sparse weights) per (text, max_length) for one encoder."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.sparse_available = True
        self._items: OrderedDict[tuple[str, int], _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[str, int]) -> _Entry | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is not None:
                self._items.move_to_end(key)
            return entry

    def put(self, key: tuple[str, int], entry: _Entry) -> None:
        with self._lock:
            self._items[key] = entry
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_caches: weakref.WeakKeyDictionary[M3Encoder, DenseSparseCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(encoder: M3Encoder, max_entries: int) -> DenseSparseCache:
    """The cache shared by every LangChain object on ``encoder`` (grown to ``max_entries`` if smaller)."""
    with _caches_lock:
        cache = _caches.get(encoder)
        if cache is None:
            cache = _caches[encoder] = DenseSparseCache(max_entries)
        elif cache.max_entries < max_entries:
            cache.max_entries = max_entries
        return cache


def check_texts(texts: Any, method: str) -> list[str]:
    """``texts`` as a list of strings, or a ``TypeError`` naming the problem."""
    if isinstance(texts, str):
        raise TypeError(f"{method} takes a list of strings, got a single str; use embed_query for one text")
    if texts is None or isinstance(texts, bytes | Mapping) or not isinstance(texts, Iterable):
        raise TypeError(f"{method} takes a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{method}: texts[{i}] is {type(text).__name__}, expected str")
    return texts


def encode_dense_sparse(
    encoder: M3Encoder, texts: list[str], *, query: bool, need_sparse: bool, cache_size: int,
) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray]] | None]:
    """Dense rows and (when available or needed) sorted sparse ``(indices, values)`` of each text.

    Queries use the encoder's query truncation length, documents its document length (as
    ``encode_queries`` / ``encode_documents`` do). With ``cache_size > 0`` both representations of
    every text are computed in the same pass and kept, so the other kind of call is free.
    """
    max_length = encoder.query_max_length if query else encoder.document_max_length
    if not texts:
        return [], ([] if need_sparse else None)
    if cache_size <= 0:
        out = encoder.encode(texts, max_length=max_length, return_dense=not need_sparse,
                             return_sparse=need_sparse, return_colbert=False)
        if need_sparse:
            return [], [_arrays(s) for s in out.sparse]
        return list(out.dense), None

    cache = cache_for(encoder, cache_size)
    found = {t: cache.get((t, max_length)) for t in dict.fromkeys(texts)}
    missing = [t for t, e in found.items() if e is None or (need_sparse and e.indices is None)]
    if missing:
        with_sparse = need_sparse or cache.sparse_available
        try:
            out = encoder.encode(missing, max_length=max_length, return_dense=True,
                                 return_sparse=with_sparse, return_colbert=False)
        except ModelLoadError:
            if need_sparse or not with_sparse:
                raise
            cache.sparse_available = False  # a dense-only checkpoint: stop asking for sparse
            out = encoder.encode(missing, max_length=max_length, return_dense=True,
                                 return_sparse=False, return_colbert=False)
        for i, text in enumerate(missing):
            indices, values = _arrays(out.sparse[i]) if out.sparse is not None else (None, None)
            entry = _Entry(np.array(out.dense[i], dtype=np.float32), indices, values)
            found[text] = entry
            cache.put((text, max_length), entry)
    entries = [found[t] for t in texts]
    dense = [e.dense for e in entries]
    if not need_sparse:
        return dense, None
    return dense, [(e.indices, e.values) for e in entries]


def _arrays(weights: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    indices = np.fromiter(sorted(weights), dtype=np.int64, count=len(weights))
    values = np.array([weights[int(i)] for i in indices], dtype=np.float32)
    return indices, values


def derived_id(text: str, metadata: Mapping[str, Any] | None) -> str | None:
    """The id of a LangChain document stored without one: ``None`` (the store derives it from the text, as
    it always has) when it has no metadata, else a UUID derived from the text *and* the metadata, so that
    two documents with the same text and different metadata are two documents, and re-adding the same
    document (same text, same metadata) replaces it instead of duplicating it."""
    if not metadata:
        return None
    canonical = json.dumps(metadata, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=repr)
    return str(uuid.uuid5(ID_NAMESPACE, f"text:{text}\nmetadata:{canonical}"))


NAME_KEYWORDS = ("schema", "fields")
"""The store keywords that name a collection's vectors and keys: the same for every call on a collection."""


def names_for(function: Callable[..., Any], store_kwargs: Mapping[str, Any], also: tuple[str, ...] = ()) -> dict:
    """The collection's names (``schema`` / ``fields``, and the ``also`` keywords) among ``store_kwargs`` that an
    adapter function takes (``m3_integrations._store_options.names_for``)."""
    return shared_names_for(function, store_kwargs, keys=NAME_KEYWORDS + also)

