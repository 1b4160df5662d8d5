"""Opening a Milvus connection (the adapter functions take any ``MilvusClient``; this is a convenience)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def connect(uri: str | Path = "./m3.db", *, token: str | None = None, timeout: float = 10) -> Any:
    """A ``MilvusClient`` for a server URI (``http://host:19530``) or a milvus-lite file (``./m3.db``).

    Raises ``ConnectionError`` naming the URI when it cannot be reached.
    """
    from pymilvus import MilvusClient

    kwargs: dict[str, Any] = {"uri": str(uri), "timeout": timeout}
    if token:
        kwargs["token"] = token
    try:
        return MilvusClient(**kwargs)
    except Exception as exc:
        raise ConnectionError(f"cannot reach Milvus at {uri}: {exc}") from exc
