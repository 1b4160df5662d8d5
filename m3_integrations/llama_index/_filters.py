"""LlamaIndex ``MetadataFilters`` -> the database-neutral filter of ``m3_integrations._query``.

Each store adapter then turns the neutral filter into its database's native filter (a Qdrant
``Filter``, a Milvus boolean expression), so one translation serves every database.

Supported: ``EQ NE GT GTE LT LTE IN NIN`` combined with ``AND`` / ``OR``, nested to any depth.
Anything else (``ANY ALL CONTAINS TEXT_MATCH TEXT_MATCH_INSENSITIVE IS_EMPTY``, the ``NOT``
condition, a ``None`` value) raises ``UnsupportedFilterError``: a filter is never silently dropped.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from .._query import AllOf, AnyOf, Condition

__all__ = ["UnsupportedFilterError", "combine", "to_neutral_filter"]

_OPS = {
    FilterOperator.EQ: "eq",
    FilterOperator.NE: "ne",
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
    FilterOperator.IN: "in",
    FilterOperator.NIN: "nin",
}


class UnsupportedFilterError(ValueError):
    """A LlamaIndex metadata filter that these vector stores cannot apply."""


def _condition(flt: MetadataFilter) -> Condition:
    op = _OPS.get(flt.operator)
    if op is None:
        supported = ", ".join(o.name for o in _OPS)
        raise UnsupportedFilterError(
            f"filter operator {flt.operator.name} ({flt.operator.value!r}) on key {flt.key!r} is not supported "
            f"by the M3 vector stores; supported operators: {supported}"
        )
    value = flt.value
    if value is None:
        raise UnsupportedFilterError(f"filter on key {flt.key!r} has value None; None cannot be matched")
    if op in ("in", "nin"):
        if not isinstance(value, (list, tuple)):
            raise UnsupportedFilterError(
                f"filter operator {flt.operator.name} on key {flt.key!r} needs a list of values, got {value!r}"
            )
        if not value:
            raise UnsupportedFilterError(f"filter operator {flt.operator.name} on key {flt.key!r} has an empty list")
        value = list(value)
    elif isinstance(value, (list, tuple)):
        raise UnsupportedFilterError(
            f"filter operator {flt.operator.name} on key {flt.key!r} takes one value, got a list {value!r}; "
            "use IN / NIN for lists"
        )
    return Condition(flt.key, op, value)


def to_neutral_filter(filters: MetadataFilters | MetadataFilter | None) -> Any:
    """Translate LlamaIndex metadata filters to ``Condition`` / ``AllOf`` / ``AnyOf`` (``None`` if empty).

    Raises:
        UnsupportedFilterError: an operator or a condition that cannot be translated exactly.
    """
    if filters is None:
        return None
    if isinstance(filters, MetadataFilter):
        return _condition(filters)
    if not isinstance(filters, MetadataFilters):
        raise TypeError(f"filters must be llama_index MetadataFilters, got {type(filters).__name__}")
    condition = filters.condition or FilterCondition.AND
    if condition not in (FilterCondition.AND, FilterCondition.OR):
        raise UnsupportedFilterError(
            f"filter condition {condition.name} is not supported by the M3 vector stores; use AND / OR "
            "(negate single conditions with NE / NIN instead)"
        )
    parts = [to_neutral_filter(f) for f in filters.filters]
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return AllOf(tuple(parts)) if condition == FilterCondition.AND else AnyOf(tuple(parts))


def combine(*filters: Any) -> Any:
    """AND together the non-``None`` filters (``None`` if there are none)."""
    parts = [f for f in filters if f is not None]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return AllOf(tuple(parts))
