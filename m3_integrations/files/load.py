"""Files to chunks with ids and metadata: what ``m3 index`` stores, for any loader (LangChain, LlamaIndex, Ray).

A chunk's id is ``SOURCE#N`` (``SOURCE:RECORD#N`` for a record of a .jsonl/.json/.csv/.tsv file) and its
metadata holds ``source`` (absolute POSIX path), ``doc_id``, ``chunk``, ``file_chunks``, ``record`` (for
records), the location (``page``, ``line_start``, ``line_end``, ``heading``, ``cell``) and the record's own
scalar fields; ``content_hash`` when one is given. The same file, tokenizer and settings always give the same
chunks and ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._types import InputError, Record, SourceFile
from .chunking import chunk_record
from .discover import discover
from .read import read_records


@dataclass(frozen=True)
class FileChunk:
    """One chunk of a file, ready to store: its id, text, metadata and token count (without <s> and </s>)."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0


def file_chunks(file: SourceFile, records: Sequence[Record], tokenizer: Any, chunk_tokens: int = 512,
                overlap: int = 64, content_hash: str | None = None) -> list[FileChunk]:
    """The chunks of a file's records (from ``read_records``), with ids and metadata."""
    pieces = [(record, chunk) for record in records
              for chunk in chunk_record(record, tokenizer, chunk_tokens, overlap)]
    out = []
    for record, chunk in pieces:
        metadata = dict(record.metadata)
        metadata.update(source=file.source, doc_id=record.doc_id, chunk=chunk.number, file_chunks=len(pieces),
                        **chunk.location)
        if content_hash is not None:
            metadata["content_hash"] = content_hash
        if record.record is None:
            key = f"{file.source}#{chunk.number}"
        else:
            metadata["record"] = record.record
            key = f"{file.source}:{record.record}#{chunk.number}"
        out.append(FileChunk(key, chunk.text, metadata, chunk.tokens))
    return out


def load_chunks(paths: Iterable[str | os.PathLike], tokenizer: Any, chunk_tokens: int = 512, overlap: int = 64,
                *, text_field: str = "text", errors: list[tuple[str, str]] | None = None,
                **discover_options: Any) -> Iterator[FileChunk]:
    """Discover, read and chunk the files under ``paths`` (``discover_options`` go to ``discover``).

    A file that cannot be read is left out; with ``errors`` given, ``(source, reason)`` is appended to it
    (skipped binary or excluded files are not errors). ``tokenizer`` is a ``tokenizers.Tokenizer``
    (``M3Encoder.tokenizer.backend_tokenizer``).
    """
    files, _ = discover(paths, **discover_options)
    for file in files:
        try:
            records, _ = read_records(file, text_field)
        except InputError as exc:
            if errors is not None:
                errors.append((file.source, str(exc)))
            continue
        yield from file_chunks(file, records, tokenizer, chunk_tokens, overlap)
