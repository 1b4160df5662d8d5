"""Record files: JSON Lines, JSON, CSV and TSV, one record per line / item / row."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from ._types import InputError, Record, SourceFile
from .text import decode

ID_FIELDS = ("id", "_id", "doc_id", "docid")
RESERVED_KEYS = frozenset({"source", "doc_id", "record", "chunk", "file_chunks", "content_hash", "page",
                           "line_start", "line_end", "heading", "cell"})


def _scalar_metadata(item: dict[str, Any], skip: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        if key in skip or not isinstance(key, str) or not key:
            continue
        if isinstance(value, (str, int, float, bool)):
            out[f"user_{key}" if key in RESERVED_KEYS else key] = value
    return out


def _record_from_item(item: Any, number: int, text_field: str, file: SourceFile) -> Record | None:
    if isinstance(item, str):
        return Record(text=item, doc_id=f"{file.relative}:{number}", record=number)
    if not isinstance(item, dict):
        return None
    text = item.get(text_field)
    if not isinstance(text, str):
        return None
    doc_id = next((str(item[k]) for k in ID_FIELDS if item.get(k) not in (None, "")), f"{file.relative}:{number}")
    skip = {text_field, *ID_FIELDS}
    return Record(text=text, doc_id=doc_id, record=number, metadata=_scalar_metadata(item, skip))


def read_record_file(file: SourceFile, text_field: str = "text") -> tuple[list[Record], list[str]]:
    """Records of a .jsonl/.ndjson, .json, .csv or .tsv file; returns ``(records, notes)``.

    ``.jsonl``: one JSON object per line with a ``text_field`` string (``id``/``_id`` becomes the
    document id, other scalar fields metadata). ``.json``: a list of such objects (or strings), or one
    object. ``.csv``/``.tsv``: a header row with a ``text_field`` column. Records without the text field
    are skipped with a note. Raises ``InputError`` for a file that cannot be parsed at all.
    """
    path = file.path
    text = decode(path.read_bytes(), path)
    suffix = path.suffix.lower()
    notes: list[str] = []
    items: list[tuple[int, Any]] = []
    if suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
    elif suffix == ".json":
        try:
            data = json.loads(text) if text.strip() else []
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        items = list(enumerate(data if isinstance(data, list) else [data], start=1))
    elif suffix in (".csv", ".tsv"):
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        if reader.fieldnames is None:
            return [], notes
        if text_field not in reader.fieldnames:
            raise InputError(f"{path}: no {text_field!r} column (columns: {', '.join(reader.fieldnames)}); "
                             "pass --text-field NAME")
        items = list(enumerate(reader, start=1))
    else:
        raise InputError(f"{path}: not a record file ({suffix!r})")
    records: list[Record] = []
    missing = 0
    for number, item in items:
        record = _record_from_item(item, number, text_field, file)
        if record is None:
            missing += 1
        elif record.text.strip():
            records.append(record)
    if missing:
        notes.append(f"{missing} record(s) without a string {text_field!r} field skipped")
    return records, notes
