"""Opening a Milvus connection (the adapter functions take any ``MilvusClient``; this is a convenience)."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from .._store_lock import acquire_shared

LOCK_SUFFIX = ".m3.lock"
"""The lock of a milvus-lite file ``x.db`` is ``x.db.m3.lock`` next to it (milvus-lite 2.x stores a file,
3.x a directory that it creates itself, so the lock cannot live inside it before the first open)."""


def is_lite(uri: str | Path) -> bool:
    """Whether ``uri`` names a milvus-lite database (a local path ending in ``.db``, as pymilvus decides)."""
    return str(uri).endswith(".db") and "://" not in str(uri)


def _stop_lite_server(path: Path) -> None:
    """Stop milvus-lite's server for ``path`` in this process, which releases the file (milvus-lite keeps it
    until the process exits otherwise, so closing the last client would not free it for another process)."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    release = getattr(server_manager_instance, "release_server", None)
    if release is not None:
        release(str(path))


def connect(uri: str | Path = "./m3.db", *, token: str | None = None, timeout: float = 10, wait: float = 0.0
            ) -> Any:
    """A ``MilvusClient`` for a server URI (``http://host:19530``) or a milvus-lite file (``./m3.db``).

    A milvus-lite file is locked for this process until the client is closed (or the process ends): a
    second process gets ``StoreLockedError`` naming the file and the holder's pid, after waiting up to
    ``wait`` seconds. (milvus-lite's own lock only lets the second process fail with
    ``ConnectionConfigException: Open local milvus failed``.) Clients of one process share the file;
    closing the last one stops milvus-lite's server for it, so another process can open it.
    Raises ``ConnectionError`` naming the URI when it cannot be reached.
    """
    from pymilvus import MilvusClient

    release = None
    if is_lite(uri):
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        release = acquire_shared(path, lock_file=f"{path}{LOCK_SUFFIX}", wait=wait, what="milvus-lite database",
                                 on_last_release=lambda: _stop_lite_server(path))
    kwargs: dict[str, Any] = {"uri": str(uri), "timeout": timeout}
    if token:
        kwargs["token"] = token
    try:
        client = MilvusClient(**kwargs)
    except Exception as exc:
        if release is not None:
            release()
        raise ConnectionError(f"cannot reach Milvus at {uri}: {exc}") from exc
    if release is not None:
        close = client.close

        def close_and_unlock() -> None:
            try:
                close()
            finally:
                release()

        client.close = close_and_unlock
        weakref.finalize(client, release)  # a client dropped without close() frees the file
    return client
