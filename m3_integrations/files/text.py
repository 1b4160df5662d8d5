"""Plain text, Markdown, source code and markup: decoding any common encoding, Markdown heading sections.

Decoding order: a byte-order mark (UTF-8/16/32), BOM-less UTF-16 (NUL bytes on one side of most
pairs), strict UTF-8, then Windows-1252 when every non-ASCII letter it gives is one that French, German,
Spanish, Portuguese, Italian, Dutch or the Nordic languages use (and they are a minority of the
letters), then charset-normalizer's guess.
The Windows-1252 step exists because charset-normalizer alone reads Latin-1 French as Windows-1250
("crème" became "crčme"); text in a Central European code page gives letters such as š, ž or ¹
under Windows-1252 and still goes to charset-normalizer.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from ._types import InputError, Record, Section, SourceFile

WESTERN = set("àâäáãåæçèéêëìíîïñòóôöõøùúûüýÿßœÀÂÄÁÃÅÆÇÈÉÊËÌÍÎÏÑÒÓÔÖÕØÙÚÛÜÝŸŒðÐþÞ"
              "«»¿¡°€£§©®–—‘’‚“”„…·×÷±¼½¾¹²³µ¶¢¥¤¦¨ª¬¯´¸º\u00a0\u00ad")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def bom_less_utf16(data: bytes) -> str | None:
    """``utf-16-le``/``utf-16-be`` when NUL bytes sit on one side of most byte pairs (ASCII-heavy UTF-16)."""
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    odd = sum(1 for i in range(1, 2 * pairs, 2) if sample[i] == 0)
    even = sum(1 for i in range(0, 2 * pairs, 2) if sample[i] == 0)
    if odd >= 0.3 * pairs and even <= 0.05 * pairs:
        return "utf-16-le"
    if even >= 0.3 * pairs and odd <= 0.05 * pairs:
        return "utf-16-be"
    return None


def _looks_western(text: str) -> bool:
    """Every non-ASCII character is one Western European languages use, and they are a minority of the
    letters (text in another single-byte script read as Windows-1252 is mostly accented letters)."""
    high = [c for c in text if ord(c) > 127]
    if not all(c in WESTERN for c in high):
        return False
    letters = sum(1 for c in text if c.isalpha())
    return sum(1 for c in high if c.isalpha()) <= 0.3 * max(letters, 1)


def detect_encoding(data: bytes) -> str | None:
    """The encoding of ``data`` as text, or ``None`` when it does not look like text."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    if b"\0" in data:  # NUL bytes: UTF-16 without a BOM (ASCII-only UTF-16 is valid UTF-8 too), else binary
        return bom_less_utf16(data)
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and _looks_western(western):
        return "cp1252"
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    return best.encoding if best is not None else None


def decode(data: bytes, path: Path | str) -> str:
    """``data`` as text (see the module docs for the order); raises ``InputError`` when it is not text."""
    encoding = detect_encoding(data)
    if encoding is None:
        raise InputError(f"{path}: not text in any known encoding (binary?)")
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:  # pragma: no cover - detect_encoding checked it
        raise InputError(f"{path}: cannot decode as {encoding} ({exc})") from None
    return text.lstrip("\ufeff")


_FENCE = re.compile(r"^(```|~~~)")
_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")


def markdown_sections(text: str) -> list[Section]:
    """One section per Markdown heading (ATX ``#`` headings outside code fences), with its heading path."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    start, fenced, position = 0, False, 0
    location: dict[str, str] = {}
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if _FENCE.match(stripped):
            fenced = not fenced
        match = None if fenced else _ATX.match(stripped)
        if match:
            if text[start:position].strip():
                sections.append(Section(start, position, dict(location), lines=True))
            level = len(match.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, match.group(2).strip())]
            location = {"heading": " > ".join(title for _, title in path)}
            start = position
        position += len(line)
    if text[start:].strip():
        sections.append(Section(start, len(text), dict(location), lines=True))
    return sections


def read_text(file: SourceFile) -> list[Record]:
    """A text, code or markup file as one record: its decoded text, with line numbers kept
    (and heading sections for Markdown)."""
    text = decode(file.path.read_bytes(), file.path)
    if not text.strip():
        return []
    if file.path.suffix.lower() in (".md", ".markdown", ".mdx"):
        sections = markdown_sections(text)
    else:
        sections = [Section(0, len(text), lines=True)]
    return [Record(text=text, doc_id=file.relative, sections=sections)]
