"""Token-bounded chunking that prefers paragraph, then sentence or line, then word boundaries.

Chunks are exact slices of the record's text and never cross a section (a page, a slide, a heading
section), so their texts (and the ids derived from them) depend only on the text, its sections, the
tokenizer and the two settings. The tokenizer is a ``tokenizers.Tokenizer``
(``M3Encoder.tokenizer.backend_tokenizer``).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._types import Record, Section

_SENTENCE_END = tuple(".!?…。！？")
PARAGRAPH, SENTENCE, WORD = 3, 2, 1


@dataclass(frozen=True)
class Chunk:
    """One chunk of a record: its number in the record, its text (``record.text[start:end]``) and location."""

    number: int
    start: int
    end: int
    text: str
    location: dict[str, Any]
    tokens: int = 0  # without <s> and </s>


def _check(chunk_tokens: int, overlap: int) -> None:
    if chunk_tokens < 8:
        raise ValueError(f"chunk_tokens must be at least 8, got {chunk_tokens}")
    if not 0 <= overlap <= (chunk_tokens - 2) // 2:
        raise ValueError(f"chunk overlap must be between 0 and half the chunk ({(chunk_tokens - 2) // 2}), "
                         f"got {overlap}")


def chunk_spans(text: str, tokenizer: Any, chunk_tokens: int = 512, overlap: int = 64, start: int = 0,
                end: int | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the chunks of ``text[start:end]`` (see ``chunk_text``)."""
    return [(a, b) for a, b, _ in _spans(text, tokenizer, chunk_tokens, overlap, start, end)]


def _spans(text: str, tokenizer: Any, chunk_tokens: int, overlap: int, start: int = 0,
           end: int | None = None) -> list[tuple[int, int, int]]:
    _check(chunk_tokens, overlap)
    end = len(text) if end is None else end
    encoding = tokenizer.encode(text[start:end], add_special_tokens=False)
    offsets = [(a + start, b + start) for a, b in encoding.offsets]
    words = encoding.word_ids
    n = len(offsets)
    if n == 0:
        return []
    # priority of a break before token i (the chunk ends with token i - 1)
    priority = [0] * (n + 1)
    priority[n] = PARAGRAPH
    for i in range(1, n):
        if words[i] is not None and words[i] == words[i - 1]:
            continue
        gap = text[offsets[i - 1][1]:offsets[i][0]]
        if gap.count("\n") >= 2:
            priority[i] = PARAGRAPH
        elif "\n" in gap or (gap[:1].isspace() and text[offsets[i - 1][0]:offsets[i - 1][1]].endswith(_SENTENCE_END)):
            priority[i] = SENTENCE
        else:
            priority[i] = WORD
    word_starts = [i for i in range(n) if i == 0 or priority[i] > 0]
    body = chunk_tokens - 2
    spans: list[tuple[int, int, int]] = []
    s = 0
    while True:
        if n - s <= body:
            e = n
        else:
            e, best = s + body, 0
            for i in range(s + body, s + max(body // 2, 1), -1):  # latest break of the best kind in the 2nd half
                if priority[i] > best:
                    e, best = i, priority[i]
                    if best == PARAGRAPH:
                        break
            if best == 0:  # no boundary in the second half: the last word start, else mid-word
                k = bisect.bisect_right(word_starts, s + body) - 1
                e = word_starts[k] if word_starts[k] > s else s + body
        piece_start, piece_end = offsets[s][0], offsets[e - 1][1]
        if text[piece_start:piece_end].strip():
            spans.append((piece_start, piece_end, e - s))
        if e >= n:
            return spans
        if overlap == 0:
            s = e
            continue
        # start the next chunk at least `overlap` tokens back: at a sentence or paragraph start in the
        # window [e - 2 * overlap, e - overlap] when there is one, else at the word holding e - overlap
        target = max(e - overlap, s + 1)
        nxt = None
        for i in range(target, max(e - 2 * overlap, s + 1) - 1, -1):
            if priority[i] >= SENTENCE:
                nxt = i
                break
        if nxt is None:
            k = bisect.bisect_right(word_starts, target) - 1
            nxt = word_starts[k] if word_starts[k] > s else target
        s = nxt


def chunk_text(text: str, tokenizer: Any, chunk_tokens: int = 512, overlap: int = 64) -> list[str]:
    """Split ``text`` into pieces of at most ``chunk_tokens`` tokens (``<s>``/``</s>`` included).

    Pieces are exact substrings of ``text``. A piece ends at the last paragraph break in the second
    half of its token budget, else the last sentence end or line break there, else the last word
    boundary; a single word longer than a chunk is cut between tokens. Consecutive pieces share at
    least ``overlap`` tokens, starting at a sentence where one is near. Whitespace-only text gives no
    pieces. The result depends only on the text, the tokenizer and the two settings.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` (``M3Encoder.tokenizer.backend_tokenizer``).
    """
    return [text[a:b] for a, b in chunk_spans(text, tokenizer, chunk_tokens, overlap)]


def _newlines(text: str) -> list[int]:
    return [i for i, c in enumerate(text) if c == "\n"]


def chunk_record(record: Record, tokenizer: Any, chunk_tokens: int = 512, overlap: int = 64) -> list[Chunk]:
    """The chunks of a record, section by section, each with the section's location (plus its line
    range where the record's text keeps its lines)."""
    _check(chunk_tokens, overlap)
    newlines: list[int] | None = None
    chunks: list[Chunk] = []
    for section in record.spans():
        for a, b, tokens in _spans(record.text, tokenizer, chunk_tokens, overlap, section.start, section.end):
            location = dict(section.location)
            if section.lines:
                if newlines is None:
                    newlines = _newlines(record.text)
                location["line_start"] = bisect.bisect_left(newlines, a) + 1
                location["line_end"] = bisect.bisect_left(newlines, b - 1) + 1
            chunks.append(Chunk(len(chunks), a, b, record.text[a:b], location, tokens))
    return chunks


def iter_chunks(records: list[Record], tokenizer: Any, chunk_tokens: int, overlap: int) -> Iterator[tuple[Record,
                                                                                                           Chunk]]:
    """``(record, chunk)`` for every chunk of every record, in order."""
    for record in records:
        for chunk in chunk_record(record, tokenizer, chunk_tokens, overlap):
            yield record, chunk


__all__ = ["Chunk", "Section", "chunk_record", "chunk_spans", "chunk_text", "iter_chunks"]
