"""Word and PowerPoint: DOCX paragraphs and tables under their heading path, PPTX slides (python-docx,
python-pptx)."""

from __future__ import annotations

import re

from ._assemble import assemble, by_headings, need
from ._types import InputError, Record, SourceFile


def _heading_level(style_name: str) -> int | None:
    match = re.match(r"(?i)^(heading|überschrift|titre|título)\s*(\d)", style_name or "")
    if match:
        return int(match.group(2))
    return 0 if (style_name or "").lower() == "title" else None


def read_docx(file: SourceFile) -> list[Record]:
    """Paragraphs and table cells of a Word document (python-docx), grouped under their heading path."""
    docx = need("docx", "python-docx")
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
    return assemble(by_headings(blocks), file)


def read_pptx(file: SourceFile) -> list[Record]:
    """The text of each slide (python-pptx; notes included), located by 1-based slide number as ``page``."""
    pptx = need("pptx", "python-pptx")
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
