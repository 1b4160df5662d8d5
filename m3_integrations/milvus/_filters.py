"""Neutral metadata filters -> Milvus boolean expressions over the JSON ``metadata`` field.

``Condition("lang", "eq", "en")`` becomes ``metadata["lang"] == "en"``. Dotted keys address nested
objects (``"a.b"`` -> ``metadata["a"]["b"]``), as in Qdrant payload paths. Strings are quoted with
every backslash, double quote and control character escaped, so a value can never end the literal.

Semantics (the same as the Qdrant adapter's ``must`` / ``must_not``):

- ``eq gt gte lt lte in``: the key must exist and match;
- ``ne nin``: a document *without* the key matches too (``not (K == v)``, or on milvus-lite 3.x,
  whose logic is three-valued, ``not exists K or not (K == v)``);
- ``in []`` matches nothing, ``nin []`` everything; ``AllOf(())`` everything, ``AnyOf(())`` nothing.
"""

from __future__ import annotations

import math
from typing import Any

from .._query import AllOf, AnyOf, Condition

METADATA_FIELD = "metadata"
# constant expressions: the primary key is never the empty string
TRUE_EXPR = 'pk != ""'
FALSE_EXPR = 'pk == ""'

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(value: str) -> str:
    """A Milvus string literal for ``value`` (double-quoted, escaped)."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:
            raise ValueError(f"control character {ch!r} cannot appear in a Milvus filter string: {value!r}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def literal(value: Any, *, key: str) -> str:
    """A Milvus literal for a scalar filter value (str, bool, int, finite float)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"filter value for {key!r} must be finite, got {value!r}")
        return repr(value)
    if isinstance(value, str):
        return quote(value)
    raise TypeError(
        f"filter value for {key!r} must be a str, bool, int or float, got {type(value).__name__}: {value!r}"
    )


def key_path(key: str, root: str | None = METADATA_FIELD) -> str:
    """``metadata["a"]["b"]`` for the key ``"a.b"``; with ``root=None`` (scalar fields of a collection this package
    did not create) the first segment is a field name: ``a["b"]``."""
    parts = key.split(".")
    if any(not p for p in parts):
        raise ValueError(f"filter key {key!r} has an empty path segment")
    if root is None:
        if not parts[0].replace("_", "a").isalnum():
            raise ValueError(f"filter key {key!r}: {parts[0]!r} is not a Milvus field name")
        return parts[0] + "".join(f"[{quote(p)}]" for p in parts[1:])
    return root + "".join(f"[{quote(p)}]" for p in parts)


def _number(value: Any, key: str, op: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"filter operator {op!r} on {key!r} needs a number, got {value!r}")
    return literal(value, key=key)


def _missing_or(path: str, expr: str, exists: bool) -> str:
    """``expr`` OR the key is missing."""
    if exists:  # milvus-lite 3.x: three-valued logic, `not (K == v)` is null for a missing key
        return f"(not exists {path} or {expr})"
    return expr  # servers and milvus-lite 2.5: no `exists`; a missing key makes `K == v` false


def _condition(cond: Condition, exists: bool, root: str | None = METADATA_FIELD) -> str:
    path = key_path(cond.key, root)
    op, value = cond.op, cond.value
    if op == "eq":
        return f"{path} == {literal(value, key=cond.key)}"
    if op == "ne":
        return _missing_or(path, f"not ({path} == {literal(value, key=cond.key)})", exists)
    if op in ("gt", "gte", "lt", "lte"):
        symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        return f"{path} {symbol} {_number(value, cond.key, op)}"
    values = [literal(v, key=cond.key) for v in value]
    if op == "in":
        # `json_field in [...]` is not supported by every engine (milvus-lite 3.x): OR of equalities
        return "(" + " or ".join(f"{path} == {v}" for v in values) + ")" if values else FALSE_EXPR
    # nin
    if not values:
        return TRUE_EXPR
    return _missing_or(path, "not (" + " or ".join(f"{path} == {v}" for v in values) + ")", exists)


def _translate(flt: Any, exists: bool, root: str | None = METADATA_FIELD) -> str:
    if isinstance(flt, Condition):
        return _condition(flt, exists, root)
    if isinstance(flt, str) and flt.strip():  # a native expression inside AllOf / AnyOf
        return f"({flt.strip()})"
    if isinstance(flt, (AllOf, AnyOf)):
        conditions = tuple(flt.conditions)
        if not conditions:
            return TRUE_EXPR if isinstance(flt, AllOf) else FALSE_EXPR
        joiner = " and " if isinstance(flt, AllOf) else " or "
        return "(" + joiner.join(_translate(c, exists, root) for c in conditions) + ")"
    raise TypeError(
        f"filter must be a Condition, AllOf, AnyOf or a Milvus boolean expression string, got {type(flt).__name__}"
    )


def to_expr(query_filter: Any, *, exists: bool = True, root: str | None = METADATA_FIELD) -> str:
    """Translate ``query_filter`` (neutral filter, Milvus expression string or ``None``) to an expression.

    Returns ``""`` for no filter. A string is passed through unchanged (it is the caller's native
    Milvus expression; it may reference ``metadata[...]``, ``doc_id`` or ``text``). ``exists``: the
    engine has the ``exists`` operator and three-valued logic (milvus-lite 3.x); see ``ServerCaps``.
    """
    if query_filter is None:
        return ""
    if isinstance(query_filter, str):
        return query_filter.strip()
    return _translate(query_filter, exists, root)


def and_expr(*parts: str) -> str:
    """Join non-empty expressions with ``and``."""
    parts = tuple(p for p in parts if p)
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return " and ".join(f"({p})" for p in parts)


def in_list(field: str, values: list[str]) -> str:
    """``field in ["a", "b"]`` with quoted strings."""
    return f"{field} in [" + ", ".join(quote(v) for v in values) + "]"
