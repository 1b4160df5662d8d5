"""Text checks shared by the encoders (local and remote) and the ingest path: a text must be encodable Unicode."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(text: str) -> tuple[int, str] | None:
    """``(position, "U+D800")`` of the first lone surrogate in ``text`` (it cannot be encoded as UTF-8 and
    tokenizers refuse it), or ``None``."""
    match = _SURROGATE.search(text)
    return None if match is None else (match.start(), f"U+{ord(match.group()):04X}")


def replace_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate replaced by U+FFFD (one character for one: offsets stay valid)."""
    return _SURROGATE.sub("\ufffd", text)


def check_text(text: str, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` (e.g. ``"docs[3] (id 'a')"``), the position and the code point of a
    lone surrogate in ``text``."""
    found = lone_surrogate(text)
    if found is not None:
        position, code_point = found
        raise ValueError(
            f"{where} has a lone surrogate {code_point} at character {position}: not valid Unicode text "
            "(often a file decoded with errors='surrogateescape' or a broken JSON escape); fix or drop it, "
            "e.g. text.encode('utf-8', 'replace').decode('utf-8')"
        )


def check_texts(texts: Any) -> list[str]:
    """``texts`` (a string, or an iterable of strings) as a list, each checked by ``check_text``; a ``TypeError``
    names the first item that is not a string."""
    if isinstance(texts, str):
        check_text(texts, "the text")
        return [texts]
    if texts is None or not isinstance(texts, Iterable):
        raise TypeError(f"texts must be a string or an iterable of strings, got {type(texts).__name__}")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
        check_text(text, f"texts[{i}]")
    return texts
