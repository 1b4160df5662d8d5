"""PDF: the text of each page (pypdf), one section per page."""

from __future__ import annotations

import logging

from ._assemble import assemble, need
from ._types import InputError, Record, SourceFile


def read_pdf(file: SourceFile) -> list[Record]:
    """The text of each page (pypdf), located by 1-based page number."""
    pypdf = need("pypdf", "pypdf")
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
