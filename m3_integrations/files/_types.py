"""The types of the file layer: a found file, an extracted record with its sections, the input error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """A problem with the user's input files or options (reported as one line by the CLI)."""


@dataclass(frozen=True)
class Section:
    """A structural part of a record's text: ``text[start:end]``, where it came from, and whether line
    numbers of the record's text are meaningful (they are for text, code and Markdown read as is)."""

    start: int
    end: int
    location: dict[str, Any] = field(default_factory=dict)  # e.g. {"page": 2} or {"heading": "Install > Linux"}
    lines: bool = False


@dataclass
class Record:
    """One text to index: the extracted text of a file, or one record of a .jsonl/.json/.csv/.tsv file.

    ``sections`` cover the parts of ``text`` that hold content, in order; chunks never cross a section
    and are exact slices of ``text``. Without sections the whole text is one section.
    """

    text: str
    doc_id: str
    record: int | None = None  # 1-based line (jsonl) / row (csv) / item (json) number
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)

    def spans(self) -> list[Section]:
        """The sections, or one section over the whole text."""
        return self.sections or [Section(0, len(self.text))]


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
