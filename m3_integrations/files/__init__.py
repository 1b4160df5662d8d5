"""File discovery, readers and the token-counted chunker behind ``m3 index``.

Nothing here knows about databases or the model: the chunker takes a ``tokenizers.Tokenizer``
(``M3Encoder.tokenizer.backend_tokenizer``), so chunk texts depend only on the file content, the
tokenizer and the chunk settings. That makes the chunk ids deterministic and re-indexing idempotent.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
RECORD_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv")
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + RECORD_SUFFIXES
ID_FIELDS = ("id", "_id", "doc_id", "docid")
RESERVED_KEYS = frozenset({"source", "doc_id", "record", "chunk", "file_chunks", "content_hash"})


class InputError(ValueError):
    """A problem with the user's input files or options (reported as one line by the CLI)."""


@dataclass
class Record:
    """One text to index: a whole .txt/.md file, or one record of a .jsonl/.json/.csv file."""

    text: str
    doc_id: str
    record: int | None = None  # 1-based line (jsonl) / row (csv) / item (json) number
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SourceFile:
    """A file found under one of the paths given to ``m3 index``."""

    path: Path  # absolute, resolved
    root: Path  # the path argument it was found under (a directory, or the file itself)

    @property
    def source(self) -> str:
        """The ``source`` metadata value: the absolute POSIX path."""
        return self.path.as_posix()

    @property
    def relative(self) -> str:
        """Path relative to the argument it was found under (the file name for a file argument)."""
        if self.root == self.path:
            return self.path.name
        return self.path.relative_to(self.root).as_posix()


def discover(paths: Iterable[str | os.PathLike], exclude: Iterable[Path] = ()) -> tuple[list[SourceFile],
                                                                                         list[tuple[Path, str]]]:
    """Walk the given files and folders; returns ``(supported files, [(skipped path, reason), ...])``.

    Hidden files and folders (names starting with ``.``) and the ``exclude`` folders (the index
    itself) are not entered. Raises ``InputError`` for a path that does not exist.
    """
    excluded = [Path(p).resolve() for p in exclude]
    found: dict[Path, SourceFile] = {}
    skipped: list[tuple[Path, str]] = []

    def consider(file: Path, root: Path) -> None:
        if file.suffix.lower() in SUPPORTED_SUFFIXES:
            found.setdefault(file, SourceFile(file, root))
        else:
            skipped.append((file, f"unsupported file type {file.suffix or '(no extension)'!r}"))

    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise InputError(f"no such file or directory: {str(raw)!r}")
        path = path.resolve()
        if path.is_file():
            consider(path, path)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                 and not any((here / d).resolve() == e for e in excluded))
            for name in sorted(filenames):
                if not name.startswith("."):
                    consider(here / name, path)
    return sorted(found.values(), key=lambda f: f.path), skipped


def file_hash(path: Path, settings: str) -> str:
    """SHA-256 of the file bytes and the settings that shape its chunks (changing either re-indexes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(b"\0" + settings.encode())
    return digest.hexdigest()


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


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


def read_records(file: SourceFile, text_field: str = "text") -> tuple[list[Record], list[str]]:
    """Read one file into records; returns ``(records, notes)``.

    ``.txt``/``.md``: the whole file is one record. ``.jsonl``: one JSON object per line with a
    ``text_field`` string (``id``/``_id`` becomes the document id, other scalar fields metadata).
    ``.json``: a list of such objects (or strings), or one object. ``.csv``: a header row with a
    ``text_field`` column. Records without the text field are skipped with a note. Raises
    ``InputError`` for a file that cannot be parsed at all.
    """
    path = file.path
    text = _decode(path.read_bytes(), path)
    suffix = path.suffix.lower()
    notes: list[str] = []
    if suffix in TEXT_SUFFIXES:
        return ([Record(text=text, doc_id=file.relative)] if text.strip() else []), notes
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
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None:
            return [], notes
        if text_field not in reader.fieldnames:
            raise InputError(f"{path}: no {text_field!r} column (columns: {', '.join(reader.fieldnames)}); "
                             "pass --text-field NAME")
        items = list(enumerate(reader, start=1))
    else:  # pragma: no cover - discover() filters suffixes
        raise InputError(f"{path}: unsupported file type {suffix!r}")
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


def chunk_text(text: str, tokenizer: Any, chunk_tokens: int = 512, overlap: int = 64) -> list[str]:
    """Split ``text`` into pieces of at most ``chunk_tokens`` tokens (``<s>``/``</s>`` included).

    Pieces are exact substrings of ``text`` that start and end on word boundaries (whitespace, as
    XLM-R's pre-tokenizer sees it), found through the token offsets; consecutive pieces share at
    least ``overlap`` tokens (rounded back to a word start). A single word longer than a chunk is
    cut between tokens. Empty or whitespace-only text gives no chunks. The result depends only on
    the text, the tokenizer and the two settings.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` (``M3Encoder.tokenizer.backend_tokenizer``).
    """
    if chunk_tokens < 8:
        raise ValueError(f"chunk_tokens must be at least 8, got {chunk_tokens}")
    if not 0 <= overlap <= (chunk_tokens - 2) // 2:
        raise ValueError(f"chunk overlap must be between 0 and half the chunk ({(chunk_tokens - 2) // 2}), "
                         f"got {overlap}")
    encoding = tokenizer.encode(text, add_special_tokens=False)
    offsets = encoding.offsets
    words = encoding.word_ids
    n = len(offsets)
    if n == 0:
        return []
    body = chunk_tokens - 2
    starts = [i for i in range(n) if i == 0 or words[i] is None or words[i] != words[i - 1]]
    pieces: list[str] = []
    s = 0
    while True:
        if n - s <= body:
            e = n
        else:
            k = bisect.bisect_right(starts, s + body) - 1  # last word start <= s + body
            e = starts[k] if starts[k] > s else s + body
        piece = text[offsets[s][0]:offsets[e - 1][1]]
        if piece.strip():
            pieces.append(piece)
        if e >= n:
            return pieces
        # the next chunk starts at the word holding the token ``overlap`` tokens back (so at least
        # ``overlap`` tokens are shared), or mid-word where one word is longer than the chunk
        target = max(e - overlap, s + 1)
        k = bisect.bisect_right(starts, target) - 1
        s = starts[k] if starts[k] > s else target


def iter_chunks(records: list[Record], tokenizer: Any, chunk_tokens: int, overlap: int) -> Iterator[tuple[Record,
                                                                                                           int, str]]:
    """``(record, chunk number, chunk text)`` for every chunk of every record, in order."""
    for record in records:
        for number, piece in enumerate(chunk_text(record.text, tokenizer, chunk_tokens, overlap)):
            yield record, number, piece
