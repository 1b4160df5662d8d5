"""Reading one file into records, by its type."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from . import documents
from ._types import InputError, Record, SourceFile
from .records import read_record_file
from .text import read_text

READERS: dict[str, Callable[[SourceFile], list[Record]]] = {
    ".pdf": documents.read_pdf, ".docx": documents.read_docx, ".pptx": documents.read_pptx,
    ".html": documents.read_html, ".htm": documents.read_html, ".xhtml": documents.read_html,
    ".ipynb": documents.read_notebook,
}
RECORD_FILES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv")


def read_records(file: SourceFile, text_field: str = "text") -> tuple[list[Record], list[str]]:
    """Read one file into records; returns ``(records, notes)``.

    Documents (PDF, DOCX, PPTX, HTML, notebooks) give one record with page / slide / heading / cell
    sections; record files (.jsonl, .json, .csv, .tsv) one record per line / item / row; anything else
    is read as text in whatever encoding it has (one record, line numbers kept; Markdown by heading).
    Raises ``InputError`` naming the file and the reason when it cannot be read.
    """
    suffix = file.path.suffix.lower()
    try:
        if suffix in RECORD_FILES:
            return read_record_file(file, text_field)
        reader = READERS.get(suffix, read_text)
        return reader(file), []
    except OSError as exc:
        raise InputError(f"{file.path}: cannot read ({exc.strerror or exc})") from None


def file_hash(path: Path, settings: str) -> str:
    """SHA-256 of the file bytes and the settings that shape its chunks (changing either re-indexes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(b"\0" + settings.encode())
    return digest.hexdigest()
