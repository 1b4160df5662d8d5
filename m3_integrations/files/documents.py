"""Documents: PDF (one section per page), DOCX (heading sections), PPTX (one section per slide),
HTML (heading sections) and Jupyter notebooks (one section per cell).

Each reader turns a file into one ``Record`` whose text is the extracted text and whose sections say
where each part came from. The parsing libraries (the ``files`` extra) are imported when a file of
their kind is read; a file that cannot be parsed raises ``InputError`` with the reason.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from ._types import InputError, Record, Section, SourceFile

EXTRA = "pip install 'm3-integrations[files]'"


def _need(module: str, package: str) -> Any:
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


def read_pdf(file: SourceFile) -> list[Record]:
    """The text of each page (pypdf), located by 1-based page number."""
    pypdf = _need("pypdf", "pypdf")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # per-object repair warnings; failures raise below
    try:
        reader = pypdf.PdfReader(str(file.path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise InputError(f"{file.path}: encrypted PDF") from None
        pages = [(page.extract_text() or "", {"page": n}) for n, page in enumerate(reader.pages, start=1)]
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{file.path}: cannot read PDF ({type(exc).__name__}: {exc})") from None
    return assemble(pages, file)


def _heading_level(style_name: str) -> int | None:
    match = re.match(r"(?i)^(heading|überschrift|titre|título)\s*(\d)", style_name or "")
    if match:
        return int(match.group(2))
    return 0 if (style_name or "").lower() == "title" else None


def _by_headings(blocks: Iterable[tuple[int | None, str]]) -> list[tuple[str, dict[str, Any]]]:
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


def read_docx(file: SourceFile) -> list[Record]:
    """Paragraphs and table cells of a Word document (python-docx), grouped under their heading path."""
    docx = _need("docx", "python-docx")
    try:
        document = docx.Document(str(file.path))
        blocks: list[tuple[int | None, str]] = []
        for paragraph in document.paragraphs:
            blocks.append((_heading_level(paragraph.style.name if paragraph.style else ""), paragraph.text))
        for table in document.tables:
            for row in table.rows:
                cells = [c.text.strip() for c in row.cells]
                blocks.append((None, " | ".join(dict.fromkeys(c for c in cells if c))))
    except Exception as exc:
        raise InputError(f"{file.path}: cannot read DOCX ({type(exc).__name__}: {exc})") from None
    return assemble(_by_headings(blocks), file)


def read_pptx(file: SourceFile) -> list[Record]:
    """The text of each slide (python-pptx; notes included), located by 1-based slide number as ``page``."""
    pptx = _need("pptx", "python-pptx")
    try:
        presentation = pptx.Presentation(str(file.path))
        parts = []
        for n, slide in enumerate(presentation.slides, start=1):
            texts = [shape.text_frame.text for shape in slide.shapes if shape.has_text_frame]
            for shape in slide.shapes:
                if getattr(shape, "has_table", False) and shape.has_table:
                    texts += [" | ".join(c.text for c in row.cells) for row in shape.table.rows]
            if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
                texts.append(slide.notes_slide.notes_text_frame.text)
            parts.append(("\n".join(t for t in texts if t.strip()), {"page": n}))
    except Exception as exc:
        raise InputError(f"{file.path}: cannot read PPTX ({type(exc).__name__}: {exc})") from None
    return assemble(parts, file)


_BLOCKS = ("p", "li", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption", "caption")


def read_html(file: SourceFile) -> list[Record]:
    """The visible text of an HTML page (BeautifulSoup), grouped under its h1-h6 heading path."""
    from .text import decode

    bs4 = _need("bs4", "beautifulsoup4")
    html = decode(file.path.read_bytes(), file.path)
    try:
        soup = bs4.BeautifulSoup(html, "html.parser")
        for tag in soup(["script", "style", "noscript", "template", "svg", "head"]):
            tag.decompose()
        blocks: list[tuple[int | None, str]] = []
        title = soup.title.get_text(" ", strip=True) if soup.title else ""
        for element in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6", *_BLOCKS]):
            if element.find_parent(_BLOCKS) is not None:
                continue  # its text is part of the enclosing block
            text = element.get_text(" ", strip=True)
            level = int(element.name[1]) if element.name[0] == "h" and element.name[1:].isdigit() else None
            blocks.append((level, text))
        if not blocks:  # no block markup: all the visible text
            blocks = [(None, soup.get_text("\n", strip=True))]
        if title and not any(level is not None for level, _ in blocks):
            blocks.insert(0, (None, title))
    except Exception as exc:
        raise InputError(f"{file.path}: cannot read HTML ({type(exc).__name__}: {exc})") from None
    return assemble(_by_headings(blocks), file)


def read_notebook(file: SourceFile) -> list[Record]:
    """The source of each Markdown and code cell of a Jupyter notebook, located by 1-based cell number."""
    from .text import decode

    try:
        data = json.loads(decode(file.path.read_bytes(), file.path))
        cells = data["cells"] if isinstance(data, dict) else None
        if not isinstance(cells, list):
            raise ValueError("no 'cells' list")
        parts = []
        for n, cell in enumerate(cells, start=1):
            source = cell.get("source", "") if isinstance(cell, dict) else ""
            text = "".join(source) if isinstance(source, list) else str(source)
            parts.append((text, {"cell": n}))
    except InputError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{file.path}: not a Jupyter notebook ({exc})") from None
    return assemble(parts, file)
