"""What the document readers share: importing a parser of the ``files`` extra, joining located parts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._types import InputError, Record, Section, SourceFile

EXTRA = "pip install 'm3-integrations[files]'"


def need(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise InputError(f"reading this file type needs {package} ({EXTRA})") from None


def assemble(parts: Iterable[tuple[str, dict[str, Any]]], file: SourceFile) -> list[Record]:
    """One record from ``(text, location)`` parts: texts joined by blank lines, one section per part."""
    chunks: list[str] = []
    sections: list[Section] = []
    position = 0
    for text, location in parts:
        text = text.strip()
        if not text:
            continue
        if chunks:
            chunks.append("\n\n")
            position += 2
        sections.append(Section(position, position + len(text), dict(location)))
        chunks.append(text)
        position += len(text)
    if not sections:
        return []
    return [Record(text="".join(chunks), doc_id=file.relative, sections=sections)]


def by_headings(blocks: Iterable[tuple[int | None, str]]) -> list[tuple[str, dict[str, Any]]]:
    """``(heading level or None, text)`` blocks grouped under their heading path."""
    parts: list[tuple[str, dict[str, Any]]] = []
    path: list[tuple[int, str]] = []
    current: list[str] = []

    def flush() -> None:
        if any(t.strip() for t in current):
            location = {"heading": " > ".join(t for _, t in path)} if path else {}
            parts.append(("\n".join(current), location))
        current.clear()

    for level, text in blocks:
        if level is not None and text.strip():
            flush()
            path[:] = [(lvl, t) for lvl, t in path if lvl < level] + [(level, text.strip())]
        current.append(text)
    flush()
    return parts


