"""The index directory config of ``m3`` and the store behind it (through the store adapters only).

An index directory (``--db``, default ``./.m3``) holds ``m3.json``: which store the index lives in
(``qdrant-edge`` embedded under ``DIR/qdrant-edge``, a Qdrant server at a URL, a Milvus server at a
URL, or a milvus-lite file ``DIR/milvus.db``) and, per collection, the model and chunk settings it was
built with. ``m3 search`` / ``eval`` / ``info`` read it, so they need no repeated flags.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

CONFIG_NAME = "m3.json"
CONFIG_VERSION = 1
STORES = ("qdrant-edge", "qdrant", "milvus")
DEFAULT_COLLECTION = "docs"


class CLIError(RuntimeError):
    """An error the CLI reports as one line on stderr (exit code 1)."""


@dataclass
class IndexConfig:
    """Contents of ``DIR/m3.json``."""

    store: str = "qdrant-edge"
    url: str | None = None
    default_collection: str = DEFAULT_COLLECTION
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"version": CONFIG_VERSION, "store": self.store, "url": self.url,
                "default_collection": self.default_collection, "collections": self.collections}


def load_config(db: Path) -> IndexConfig | None:
    """Read ``db/m3.json``; ``None`` if there is none. Raises ``CLIError`` if it is unreadable."""
    file = db / CONFIG_NAME
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("store") not in STORES:
            raise ValueError("not an m3 index config")
        collections = data.get("collections") or {}
        if not isinstance(collections, dict):
            raise ValueError("'collections' is not an object")
        return IndexConfig(store=data["store"], url=data.get("url"),
                           default_collection=data.get("default_collection") or DEFAULT_COLLECTION,
                           collections=collections)
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read {file}: {exc}; fix or delete it") from None


def save_config(db: Path, config: IndexConfig) -> None:
    """Write ``db/m3.json`` atomically."""
    db.mkdir(parents=True, exist_ok=True)
    tmp = db / f".{CONFIG_NAME}.tmp"
    tmp.write_text(json.dumps(config.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, db / CONFIG_NAME)


def describe_location(store: str, db: Path, url: str | None) -> str:
    """Where the data lives, in words (a URL without any user:password in it)."""
    if url:
        scheme, sep, rest = url.partition("://")
        netloc, slash, path = rest.partition("/")
        if sep and "@" in netloc:
            return f"{scheme}://***@{netloc.rsplit('@', 1)[1]}{slash}{path}"
        return url
    if store == "milvus":
        return str(db / "milvus.db")
    return str(db / "qdrant-edge")


def adapter(store: str) -> ModuleType:
    """The store adapter module (``m3_integrations.qdrant`` or ``m3_integrations.milvus``)."""
    extra = "milvus" if store == "milvus" else "qdrant"
    try:
        if store == "milvus":
            from .. import milvus as module
        else:
            from .. import qdrant as module
    except ImportError as exc:
        raise CLIError(f"the {store} store is not available ({exc}); pip install 'm3-integrations[{extra}]'") from None
    return module


def open_client(store: str, db: Path, url: str | None, api_key: str | None = None, wait: float = 0.0) -> Any:
    """Open (and for servers, probe) the client of a store; raises ``CLIError`` if it cannot be reached.

    ``api_key`` is the Qdrant API key or the Milvus token (``TOKEN`` or ``USER:PASSWORD``) of a server.
    ``wait``: seconds to wait for another process that has the embedded store open (``--wait``).
    """
    from .._store_lock import StoreLockedError

    module = adapter(store)
    if store == "qdrant-edge":
        if url:
            raise CLIError("--url needs --store qdrant or --store milvus (qdrant-edge is embedded)")
        db.mkdir(parents=True, exist_ok=True)
        try:
            return module.QdrantEdgeStore(db / "qdrant-edge", wait=wait)
        except StoreLockedError as exc:  # its message names the holder and the way out (--wait)
            raise CLIError(str(exc)) from None
        except Exception as exc:
            raise CLIError(f"cannot open the Qdrant Edge store in {db / 'qdrant-edge'}: {exc}") from None
    if store == "qdrant":
        if not url:
            raise CLIError("--store qdrant needs --url (e.g. http://localhost:6333); "
                           "use the default --store qdrant-edge for an embedded index")
        try:
            client = _qdrant_client(url, api_key)
        except Exception as exc:
            raise CLIError(_unreachable(f"the Qdrant server at {url}", exc)) from None
        return client
    # milvus: a server URL, or a milvus-lite file inside the index directory
    uri = url or str(db / "milvus.db")
    if not url:
        db.mkdir(parents=True, exist_ok=True)
    try:
        return _milvus_client(uri, api_key if url else None, wait)
    except StoreLockedError as exc:
        raise CLIError(str(exc)) from None
    except Exception as exc:
        what = f"the Milvus server at {url}" if url else f"the milvus-lite file {uri}"
        raise CLIError(_unreachable(what, exc)) from None


def _qdrant_client(url: str, api_key: str | None = None) -> Any:
    import warnings

    from ..qdrant import connect

    with warnings.catch_warnings():  # "Api key is used with an insecure connection": the user chose the URL
        warnings.simplefilter("ignore", UserWarning)
        return connect(url, api_key=api_key)


def _milvus_client(uri: str, token: str | None = None, wait: float = 0.0) -> Any:
    from ..milvus import connect

    return connect(uri, token=token, wait=wait)


def close_client(client: Any) -> None:
    """Close a client if it has a ``close``; errors while closing are ignored."""
    close = getattr(client, "close", None)
    if callable(close):
        try:
            close()
        except Exception:
            pass


def list_collections(client: Any) -> list[str] | None:
    """Collection names the client knows, or ``None`` where the client cannot list them."""
    for attr in ("list_collections", "collection_names"):
        method = getattr(client, attr, None)
        if callable(method):
            try:
                return sorted(str(name) for name in method())
            except Exception:
                return None
    method = getattr(client, "get_collections", None)
    if callable(method):
        try:
            return sorted(c.name for c in method().collections)
        except Exception:
            return None
    return None


def _unreachable(what: str, exc: BaseException) -> str:
    text = _first_line(exc)
    if text.lower().startswith("cannot reach") and ": " in text:  # the adapter's connect() said it already
        text = text.split(": ", 1)[1]
    return f"cannot reach {what}: {text}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
