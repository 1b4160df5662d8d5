"""Reading one file into records, by its type."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path

from .._text import lone_surrogate, replace_lone_surrogates
from ._types import InputError, Record, SourceFile
from .html import read_html
from .notebooks import read_notebook
from .office import read_docx, read_pptx
from .pdf import read_pdf
from .records import read_record_file
from .text import read_text

READERS: dict[str, Callable[[SourceFile], list[Record]]] = {
    ".pdf": read_pdf, ".docx": read_docx, ".pptx": read_pptx,
    ".html": read_html, ".htm": read_html, ".xhtml": read_html, ".ipynb": read_notebook,
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
            return _valid_unicode(*read_record_file(file, text_field), per_record=True)
        reader = READERS.get(suffix, read_text)
        return _valid_unicode(reader(file), [], per_record=False)
    except OSError as exc:
        raise InputError(f"{file.path}: cannot read ({exc.strerror or exc})") from None


def _valid_unicode(records: list[Record], notes: list[str], *, per_record: bool) -> tuple[list[Record], list[str]]:
    """Records whose text, id and metadata the stores can take: a record (of a record file) whose text or id
    has a lone surrogate (e.g. a ``"\\ud800"`` JSON escape) is skipped, a document's lone surrogates become
    U+FFFD; a metadata field with a lone surrogate or a non-finite number is left out. Each case is noted."""
    kept = []
    for record in records:
        where = f"record {record.record}" if record.record is not None else "the text"
        found = lone_surrogate(record.text) or lone_surrogate(record.doc_id)
        if found is not None:
            position, code_point = found
            part = "text" if lone_surrogate(record.text) else "id"
            if per_record:
                notes.append(f"{where} skipped: its {part} has a lone surrogate {code_point} at character "
                             f"{position} (not valid Unicode)")
                continue
            record.text = replace_lone_surrogates(record.text)  # one character for one: sections stay valid
            record.doc_id = replace_lone_surrogates(record.doc_id)
            notes.append(f"lone surrogate(s) in the {part} (first: {code_point} at character {position}) "
                         "replaced by U+FFFD")
        for key, value in list(record.metadata.items()):
            if isinstance(value, float) and not math.isfinite(value):
                problem = f"is {value!r} (metadata numbers must be finite)"
            elif isinstance(value, str) and lone_surrogate(value) is not None:
                problem = f"has a lone surrogate {lone_surrogate(value)[1]}"
            else:
                continue
            del record.metadata[key]
            notes.append(f"{where}: field {key!r} {problem}; the field is not stored")
        kept.append(record)
    return kept, notes


def file_hash(path: Path, settings: str) -> str:
    """SHA-256 of the file bytes and the settings that shape its chunks (changing either re-indexes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    digest.update(b"\0" + settings.encode())
    return digest.hexdigest()
