"""Jupyter notebooks: the source of each Markdown and code cell, one section per cell."""

from __future__ import annotations

import json

from ._assemble import assemble
from ._types import InputError, Record, SourceFile
from .text import decode


def read_notebook(file: SourceFile) -> list[Record]:
    """The source of each Markdown and code cell of a Jupyter notebook, located by 1-based cell number."""
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
