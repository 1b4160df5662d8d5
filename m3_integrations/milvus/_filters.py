"""Neutral metadata filters -> Milvus boolean expressions over the JSON ``metadata`` field, as filter templates.

``Condition("lang", "eq", "en")`` becomes the template ``metadata["lang"] == {m3_0}`` with
``filter_params={"m3_0": "en"}``. Dotted keys address nested objects (``"a.b"`` -> ``metadata["a"]["b"]``),
as in Qdrant payload paths. A caller's own expression may be a template too: ``query_filter='lang == {lang}'``
with ``filter_params={"lang": "en"}``.

How a template reaches the engine (``Filter``): a Milvus server that takes filter templates (>= 2.5) gets the
template and ``filter_params`` as they are (pymilvus sends the values typed: nothing is quoted, nothing can
escape). milvus-lite (3.2.2: ``unexpected character '{'``) and older servers get one expression in which
each placeholder is replaced by ``literal(value)``, the one literal encoder: strings double-quoted with
backslash, double quote, newline, carriage return and tab escaped (every other character, control characters
and any Unicode included, is taken verbatim inside the quotes by both engines; hex and Unicode escapes are
not: milvus-lite rejects them), ints, finite floats, ``true`` / ``false``, and lists of these. Placeholders
inside string literals are left alone.

Semantics (the same as the Qdrant adapter's ``must`` / ``must_not``):

- ``eq gt gte lt lte in``: the key must exist and match;
- ``ne nin``: a document *without* the key matches too (``not (K == v)``, or on milvus-lite 3.x,
  whose logic is three-valued, ``not exists K or not (K == v)``);
- ``in []`` matches nothing, ``nin []`` everything; ``AllOf(())`` everything, ``AnyOf(())`` nothing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from .._query import AllOf, AnyOf, Condition

METADATA_FIELD = "metadata"
# constant expressions: the primary key is never the empty string
TRUE_EXPR = 'pk != ""'
FALSE_EXPR = 'pk == ""'

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


PARAM_PREFIX = "m3_"  # placeholders of neutral filters: m3_0, m3_1, ... (a caller's own names are kept)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ESCAPE_RE = re.compile(r'[\\"\n\r\t]')


def quote(value: str) -> str:
    """A Milvus string literal for ``value`` (double-quoted; backslash, double quote, \\n, \\r, \\t escaped)."""
    return '"' + _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], value) + '"'


def literal(value: Any, *, key: str) -> str:
    """The Milvus literal of a filter value: str, bool, int, finite float, or a list / tuple of these."""
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
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v, key=key) for v in value) + "]"
    raise TypeError(
        f"filter value for {key!r} must be a str, bool, int, float or a list of them, got "
        f"{type(value).__name__}: {value!r}"
    )


def _check_value(value: Any, key: str) -> None:
    literal(value, key=key)  # the same types and checks on both paths


def _scan(template: str) -> list[tuple[int, int, str]]:
    """``(start, end, name)`` of each placeholder outside string literals (``"..."`` / ``'...'``)."""
    found = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch in "\"'":
            j = i + 1
            while j < n and template[j] != ch:
                j += 2 if template[j] == "\\" else 1
            i = j + 1
            continue
        if ch == "{":
            match = _PLACEHOLDER.match(template, i)
            if match:
                found.append((i, match.end(), match.group(1)))
                i = match.end()
                continue
        i += 1
    return found


@dataclass(frozen=True)
class Filter:
    """A filter expression: a template and its values, sent as the engine takes them.

    ``templates``: the engine takes ``filter_params`` (Milvus servers >= 2.5); otherwise the values are rendered
    into the expression by ``literal``.
    """

    template: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    templates: bool = False

    def __bool__(self) -> bool:
        return bool(self.template)

    def rendered(self) -> str:
        """The expression with every placeholder replaced by its value's literal."""
        out, last = [], 0
        for start, end, name in _scan(self.template):
            out.append(self.template[last:start])
            out.append(literal(self.params[name], key=name))
            last = end
        return "".join(out) + self.template[last:]

    def kwargs(self) -> dict[str, Any]:
        """``filter=`` (and ``filter_params=``) of a search, query or delete."""
        if self.templates and self.params:
            return {"filter": self.template, "filter_params": dict(self.params)}
        return {"filter": self.rendered()}

    def ann_kwargs(self) -> dict[str, Any]:
        """``expr=`` (and ``expr_params=``) of an ``AnnSearchRequest``."""
        if not self.template:
            return {"expr": None}
        if self.templates and self.params:
            return {"expr": self.template, "expr_params": dict(self.params)}
        return {"expr": self.rendered()}

    def and_(self, *expressions: str) -> Filter:
        """This filter AND plain expressions (no placeholders: the package's own ``pk in [...]``)."""
        template = and_expr(self.template, *expressions)
        return Filter(template, self.params, self.templates)

    def and_in(self, field_name: str, values: list[Any]) -> Filter:
        """This filter AND ``field in values`` (a parameter too, so a long list is not parsed on a server)."""
        name = _free_name(self.params)
        return Filter(and_expr(self.template, f"{field_name} in {{{name}}}"), {**self.params, name: list(values)},
                      self.templates)


def _free_name(taken: dict[str, Any]) -> str:
    i = len(taken)
    while f"{PARAM_PREFIX}{i}" in taken:
        i += 1
    return f"{PARAM_PREFIX}{i}"


def check_params(template: str, params: Any) -> dict[str, Any]:
    """Validate a caller's ``filter_params`` against the placeholders of ``template`` (before any call)."""
    if params is None:
        params = {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise TypeError(f"filter_params must be a dict of placeholder name -> value, got {params!r}")
    used = {name for _, _, name in _scan(template)}
    missing = sorted(used - set(params))
    if missing:
        raise ValueError(f"the filter {template!r} uses {', '.join('{' + m + '}' for m in missing)}, which "
                         "filter_params does not give")
    unused = sorted(set(params) - used)
    if unused:
        raise ValueError(f"filter_params gives {unused}, which the filter {template!r} does not use (placeholders "
                         "are written {name}, outside quotes)")
    for name, value in params.items():
        _check_value(value, name)
    return dict(params)


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


class _Params:
    """The values of a neutral filter's template, named ``m3_<i>`` around the names a caller already uses."""

    def __init__(self, taken: dict[str, Any]) -> None:
        self.values: dict[str, Any] = dict(taken)

    def add(self, value: Any, key: str) -> str:
        if isinstance(value, (list, tuple)):  # a neutral condition's value is a scalar (lists: in / nin)
            raise TypeError(f"filter value for {key!r} must be a str, bool, int or float, got {value!r}")
        _check_value(value, key)
        name = _free_name(self.values)
        self.values[name] = value
        return "{" + name + "}"


def _number(value: Any, key: str, op: str, params: _Params) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"filter operator {op!r} on {key!r} needs a number, got {value!r}")
    return params.add(value, key)


def _missing_or(path: str, expr: str, exists: bool) -> str:
    """``expr`` OR the key is missing."""
    if exists:  # milvus-lite 3.x: three-valued logic, `not (K == v)` is null for a missing key
        return f"(not exists {path} or {expr})"
    return expr  # servers and milvus-lite 2.5: no `exists`; a missing key makes `K == v` false


def _condition(cond: Condition, exists: bool, root: str | None, params: _Params) -> str:
    path = key_path(cond.key, root)
    op, value = cond.op, cond.value
    if op == "eq":
        return f"{path} == {params.add(value, cond.key)}"
    if op == "ne":
        return _missing_or(path, f"not ({path} == {params.add(value, cond.key)})", exists)
    if op in ("gt", "gte", "lt", "lte"):
        symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        return f"{path} {symbol} {_number(value, cond.key, op, params)}"
    values = [params.add(v, cond.key) for v in value]
    if op == "in":
        # `json_field in [...]` is not supported by every engine (milvus-lite 3.x): OR of equalities
        return "(" + " or ".join(f"{path} == {v}" for v in values) + ")" if values else FALSE_EXPR
    # nin
    if not values:
        return TRUE_EXPR
    return _missing_or(path, "not (" + " or ".join(f"{path} == {v}" for v in values) + ")", exists)


def _translate(flt: Any, exists: bool, root: str | None, params: _Params) -> str:
    if isinstance(flt, Condition):
        return _condition(flt, exists, root, params)
    if isinstance(flt, str) and flt.strip():  # a native expression (or template) inside AllOf / AnyOf
        return f"({flt.strip()})"
    if isinstance(flt, (AllOf, AnyOf)):
        conditions = tuple(flt.conditions)
        if not conditions:
            return TRUE_EXPR if isinstance(flt, AllOf) else FALSE_EXPR
        joiner = " and " if isinstance(flt, AllOf) else " or "
        return "(" + joiner.join(_translate(c, exists, root, params) for c in conditions) + ")"
    raise TypeError(
        f"filter must be a Condition, AllOf, AnyOf or a Milvus boolean expression string, got {type(flt).__name__}"
    )


def compile_filter(query_filter: Any, filter_params: Any = None, *, exists: bool = True,
                   root: str | None = METADATA_FIELD, templates: bool = False) -> Filter:
    """``query_filter`` (neutral filter, Milvus expression or template string, or ``None``) as a ``Filter``.

    A string is the caller's own expression (it may reference ``metadata[...]``, ``doc_id`` or ``text``), and
    may hold ``{name}`` placeholders given by ``filter_params``; a neutral filter becomes a template whose
    values are parameters. ``exists``: the engine has the ``exists`` operator and three-valued logic
    (milvus-lite 3.x); ``templates``: it takes ``filter_params`` (see ``ServerCaps``).
    """
    if query_filter is None:
        if filter_params:
            raise ValueError("filter_params were given without a filter (query_filter) that uses them")
        return Filter("", {}, templates)
    user = dict(filter_params or {}) if isinstance(filter_params, dict) else filter_params
    if isinstance(query_filter, str):
        template = query_filter.strip()
        return Filter(template, check_params(template, user), templates)
    if isinstance(user, dict):
        for name, value in user.items():
            _check_value(value, name)
    params = _Params(check_params("", {}) if user is None else _user_params(user))
    template = _translate(query_filter, exists, root, params)
    return Filter(template, check_params(template, params.values), templates)


def _user_params(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise TypeError(f"filter_params must be a dict of placeholder name -> value, got {params!r}")
    return dict(params)


def to_expr(query_filter: Any, *, exists: bool = True, root: str | None = METADATA_FIELD,
            filter_params: dict[str, Any] | None = None) -> str:
    """``query_filter`` (neutral filter, Milvus expression string or ``None``) as one literal expression.

    Returns ``""`` for no filter. A string is passed through unchanged (it is the caller's native
    Milvus expression; it may reference ``metadata[...]``, ``doc_id`` or ``text``), its ``{name}``
    placeholders replaced by the literals of ``filter_params``. ``exists``: as in ``compile_filter``.
    """
    return compile_filter(query_filter, filter_params, exists=exists, root=root).rendered()


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
