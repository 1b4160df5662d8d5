"""Reading, counting and deleting documents of a Milvus collection this package did not create (``fields=``).

A document's key is the value of ``fields.id`` (else the primary key), as ``Hit.id`` and ``upsert_documents(...,
fields=...)`` give it. An INT64 key is also found by the id a document was written with (its 63-bit deterministic
key), so ``get_documents(ids=[...])`` takes either. Metadata and filters are read as in ``fields``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from .._ingest import Document, point_id
from ._colbert import MAX_QUERY_ROWS
from ._driver import Program, call
from ._filters import Filter, compile_filter
from ._schema import server_caps
from .fields import ForeignInfo, MilvusFields, metadata_of, open_foreign

_INT = re.compile(r"-?[0-9]{1,19}")


def _candidates(info: ForeignInfo, key: str) -> list[Any]:
    """The stored key values a document key can name."""
    if info.key_is_str:
        return [key]
    out: list[Any] = []
    if _INT.fullmatch(key) and -(1 << 63) <= int(key) < (1 << 63):
        out.append(int(key))
    if info.key_field == info.pk:  # the deterministic INT64 key of a document written with this id
        out.append(uuid.UUID(point_id(Document(text="", id=key))).int >> 65)
        try:
            out.append(uuid.UUID(key).int >> 65)  # a key derived from the text is the UUID itself
        except ValueError:
            pass
    return list(dict.fromkeys(out))


def to_document(info: ForeignInfo, row: dict[str, Any]) -> Document:
    """A stored row as a ``Document`` (``id``: its key, as ``Hit.id``)."""
    text = row.get(info.fields.text)
    return Document(text=text if isinstance(text, str) else "", id=str(row.get(info.key_field)),
                    metadata=metadata_of(info, row))


def _filter(client: Any, fields: MilvusFields, query_filter: Any, filter_params: Any) -> Program:
    caps = yield from server_caps(client)
    # scalar fields always exist: `exists` (a JSON-key test) applies only to a metadata JSON field
    return compile_filter(query_filter, filter_params, exists=caps.json_exists and fields.metadata is not None,
                          root=fields.metadata, templates=caps.filter_templates)


def _kwargs(flt: Filter) -> dict[str, Any]:
    return flt.kwargs() if flt else {"filter": ""}


def get_program(client: Any, name: str, fields: MilvusFields, keys: list[str] | None, query_filter: Any,
                limit: int | None, filter_params: Any = None) -> Program:
    """``get_documents(..., fields=...)``: in ``keys`` order when given (unknown keys are skipped)."""
    info = yield from open_foreign(client, name, fields)
    if keys is not None and not keys:
        return []
    flt = yield from _filter(client, fields, query_filter, filter_params)
    wanted: dict[str, list[Any]] = {}
    if keys is not None:
        wanted = {k: _candidates(info, k) for k in dict.fromkeys(keys)}
        flt = flt.and_in(info.key_field, list(dict.fromkeys(v for vs in wanted.values() for v in vs)))
    window = min(limit or MAX_QUERY_ROWS, MAX_QUERY_ROWS)
    rows = yield call("query", name, output_fields=list(info.outputs), limit=window, **_kwargs(flt))
    if keys is None:
        return [to_document(info, r) for r in rows]
    by_value: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        by_value.setdefault(row[info.key_field], []).append(row)
    docs, seen = [], set()
    for values in wanted.values():
        for value in values:
            for row in by_value.get(value, []):
                if row[info.pk] not in seen:
                    seen.add(row[info.pk])
                    docs.append(to_document(info, row))
    return docs[:limit] if limit else docs


def count_program(client: Any, name: str, fields: MilvusFields, query_filter: Any, filter_params: Any = None
                  ) -> Program:
    """``count_documents(..., fields=...)``."""
    yield from open_foreign(client, name, fields)
    flt = yield from _filter(client, fields, query_filter, filter_params)
    rows = yield call("query", name, output_fields=["count(*)"], **_kwargs(flt))
    return int(rows[0]["count(*)"]) if rows else 0


def _delete_matching(info: ForeignInfo, flt: Filter) -> Program:
    seen: set[Any] = set()
    while True:
        # Strong: a collection made elsewhere may default to Bounded, whose reads can return deleted rows
        rows = yield call("query", info.name, output_fields=[info.pk], limit=MAX_QUERY_ROWS,
                          consistency_level="Strong", **_kwargs(flt))
        pks = [r[info.pk] for r in rows]
        if not pks or seen.issuperset(pks):
            return
        seen.update(pks)
        yield call("delete", info.name, **Filter("", {}, flt.templates).and_in(info.pk, pks).kwargs())


def delete_ids_program(client: Any, name: str, fields: MilvusFields, keys: list[str]) -> Program:
    """``delete_documents(..., fields=...)``: the rows of these keys (unknown keys are ignored)."""
    info = yield from open_foreign(client, name, fields)
    if not keys:
        return
    caps = yield from server_caps(client)
    values = list(dict.fromkeys(v for k in dict.fromkeys(keys) for v in _candidates(info, k)))
    yield from _delete_matching(info, Filter("", {}, caps.filter_templates).and_in(info.key_field, values))


def delete_filter_program(client: Any, name: str, fields: MilvusFields, query_filter: Any,
                          filter_params: Any = None) -> Program:
    """``delete_by_filter(..., fields=...)``: every row matching the filter."""
    info = yield from open_foreign(client, name, fields)
    flt = yield from _filter(client, fields, query_filter, filter_params)
    yield from _delete_matching(info, flt)
