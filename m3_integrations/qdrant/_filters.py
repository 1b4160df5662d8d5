"""Neutral metadata filters (``Condition``/``AllOf``/``AnyOf``) -> ``qdrant_client.models.Filter``."""

from __future__ import annotations

from typing import Any

from qdrant_client import models

from .._query import AllOf, AnyOf, Condition
from ._schema import QdrantSchema

_RANGE_OPS = {"gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}


def _match_value(value: Any) -> bool:
    return isinstance(value, (str, bool, int))


def _condition(cond: Condition, prefix: str) -> tuple[str, Any]:
    """One neutral condition -> ("must" | "must_not", qdrant condition)."""
    key = f"{prefix}.{cond.key}" if prefix else cond.key  # no prefix: top-level payload keys
    op, value = cond.op, cond.value
    if op in ("eq", "ne"):
        if _match_value(value):
            inner = models.FieldCondition(key=key, match=models.MatchValue(value=value))
        elif isinstance(value, float):
            inner = models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
        else:
            raise TypeError(f"filter {cond.key!r} {op}: value must be a str, int, float or bool, got {value!r}")
        return ("must" if op == "eq" else "must_not"), inner
    if op in _RANGE_OPS:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"filter {cond.key!r} {op}: value must be a number, got {value!r}")
        return "must", models.FieldCondition(key=key, range=models.Range(**{_RANGE_OPS[op]: value}))
    values = list(value)
    if not values:
        raise ValueError(f"filter {cond.key!r} {op}: the list of values is empty")
    if all(isinstance(v, str) for v in values) or all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        inner = models.FieldCondition(key=key, match=models.MatchAny(any=values))
    else:
        raise TypeError(f"filter {cond.key!r} {op}: values must be all strings or all ints, got {values!r}")
    # "nin" (like "ne") also matches documents that do not have the key
    return ("must" if op == "in" else "must_not"), inner


def _node(node: Any, prefix: str) -> Any:
    """A neutral node -> a qdrant condition (a Filter for groups)."""
    if isinstance(node, Condition):
        kind, inner = _condition(node, prefix)
        return inner if kind == "must" else models.Filter(must_not=[inner])
    if isinstance(node, (AllOf, AnyOf)):
        if not node.conditions:
            raise ValueError(f"{type(node).__name__} needs at least one condition")
        children = [_node(c, prefix) for c in node.conditions]
        return models.Filter(must=children) if isinstance(node, AllOf) else models.Filter(should=children)
    if isinstance(node, models.Filter):
        return node
    raise TypeError(
        f"unsupported filter element {type(node).__name__}: use Condition, AllOf, AnyOf or a qdrant models.Filter"
    )


def to_qdrant_filter(query_filter: Any, schema: QdrantSchema) -> models.Filter | None:
    """Translate a neutral filter (over user metadata keys) or pass a native ``models.Filter`` through."""
    if query_filter is None or isinstance(query_filter, models.Filter):
        return query_filter
    if isinstance(query_filter, Condition):
        kind, inner = _condition(query_filter, schema.metadata_key)
        return models.Filter(**{kind: [inner]})
    if isinstance(query_filter, (AllOf, AnyOf)):
        return _node(query_filter, schema.metadata_key)
    raise TypeError(
        f"query_filter must be a Condition, AllOf, AnyOf or qdrant_client.models.Filter, "
        f"got {type(query_filter).__name__}"
    )


def has_id_filter(point_ids: list[str]) -> models.Filter:
    """A filter selecting exactly these point ids."""
    return models.Filter(must=[models.HasIdCondition(has_id=list(point_ids))])


def and_filters(*filters: models.Filter | None) -> models.Filter | None:
    """Combine filters with AND (``None`` entries are skipped)."""
    present = [f for f in filters if f is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return models.Filter(must=present)
