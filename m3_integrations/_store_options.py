"""Store settings the framework classes (LangChain, LlamaIndex) pass to the store adapters the same way:
``with_colbert`` put where each database takes it, and Milvus-only settings refused by name elsewhere."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any


def with_colbert_names(adapter: Any, names: Mapping[str, Any], with_colbert: bool | None) -> dict[str, Any]:
    """``names`` (the store keywords) with ``with_colbert`` put where the adapter takes it: in the
    ``QdrantSchema`` on Qdrant (``QdrantSchema(with_colbert=...)``), as ``upsert_documents(with_colbert=...)`` on
    Milvus. ``None``: unchanged (the collection's choice; ColBERT for a new one)."""
    out = dict(names)
    if with_colbert is None:
        return out
    if with_colbert not in (True, False):
        raise TypeError(f"with_colbert must be True, False or None (the collection's), got {with_colbert!r}")
    if out.get("fields") is not None:
        if with_colbert:
            raise ValueError("with_colbert=True: a collection made elsewhere (fields=) has no ColBERT vectors")
        return out  # dense + sparse already
    schema_type = getattr(adapter, "QdrantSchema", None)
    if schema_type is not None:
        schema = out.get("schema") or schema_type()
        if schema.with_colbert not in (None, with_colbert):
            raise ValueError(f"with_colbert={with_colbert} and schema=QdrantSchema(with_colbert="
                             f"{schema.with_colbert}) disagree; pass one of them")
        out["schema"] = dataclasses.replace(schema, with_colbert=with_colbert)
    else:
        if out.get("with_colbert") not in (None, with_colbert):
            raise ValueError("with_colbert= is given twice, differently")
        out["with_colbert"] = with_colbert
    return out


def check_takes(function: Callable[..., Any], **given: Any) -> None:
    """A clear error when a setting is given (not ``None``) that this database's store function does not take
    (``consistency_level`` / ``filter_params`` are Milvus settings)."""
    params = inspect.signature(function).parameters
    for key, value in given.items():
        if value is not None and key not in params:
            raise ValueError(f"{key}= is not a setting of {function.__module__}.{function.__name__} (this "
                             "database's adapter); leave it out")


def names_for(function: Callable[..., Any], names: Mapping[str, Any],
              keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The entries of ``names`` (only ``keys`` if given; ``None`` values left out) that the adapter ``function``
    takes. A ``fields=`` it does not take is an error naming the function, rather than a call that would read the
    collection (made elsewhere) in this package's layout."""
    params = inspect.signature(function).parameters
    out = {}
    for key, value in names.items():
        if value is None or (keys is not None and key not in keys):
            continue
        if key in params:
            out[key] = value
        elif key == "fields":
            raise ValueError(f"{function.__module__}.{function.__name__} does not take fields=: this database's "
                             "adapter cannot do that on a collection made elsewhere")
    return out
