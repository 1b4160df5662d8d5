"""Opening a Qdrant server connection (the adapter functions take any client; this is a convenience)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def connect(url: str | None = None, *, path: str | Path | None = None, api_key: str | None = None,
            timeout: int = 10, wait: float = 0.0) -> Any:
    """A client for ``url`` (a Qdrant server or cloud cluster), or the embedded ``QdrantEdgeStore`` at ``path``.

    The server is probed once, so an unreachable URL fails here with a clear ``ConnectionError``. An embedded
    store open in another process raises ``StoreLockedError`` (after waiting up to ``wait`` seconds).
    """
    if (url is None) == (path is None):
        raise ValueError("pass exactly one of url= (a Qdrant server) or path= (the embedded Qdrant Edge store)")
    if path is not None:
        from .edge import QdrantEdgeStore

        return QdrantEdgeStore(path, wait=wait)
    from qdrant_client import QdrantClient

    client = QdrantClient(url=url, api_key=api_key, timeout=timeout, check_compatibility=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.get_collections()
    except Exception as exc:
        client.close()
        raise ConnectionError(f"cannot reach the Qdrant server at {url}: {exc}") from exc
    return client
