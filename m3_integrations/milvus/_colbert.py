"""ColBERT storage in Milvus and the exact MaxSim re-score.

Portable "companion" layout (every milvus-lite, any server): collection ``<name>__colbert`` holds
each document's token matrix as **codec bytes** (``colbert_storage``: float32, float16, or 8 / 4-bit
scalar codes with a per-row offset and scale, see ``_codecs``), base64-encoded, in one or more VARCHAR
``blob`` rows (``part`` 0, 1, ...), keyed by ``doc_pk`` and ``doc_gen``; a row's primary key is
``"<doc_gen>:<part>"``, so the parts of a candidate are fetched by primary key (its ``n_tokens`` and the
storage give the number of parts). The collection is only ever *fetched from*, never searched; its 2-d
``_v`` vector is a constant that Milvus requires every collection to have.

Why not one FLOAT_VECTOR row per token? Measured here: milvus-lite 3.x returned 6,400 token rows
(100 candidates x 64 tokens x 1024-d) in 6-9 s, because every float crosses its Python engine one by
one, and it has no float16 vectors; the same tokens as float16 blobs came back in 0.13 s, and writes
are 2-3x faster.

The fetched rows of all candidates are decoded in one vectorized step per fetch group and scored with
one matrix product; a group holds at most ``MAX_DECODED_BYTES`` of float32 rows, so the memory of a query
is bounded by the group, not by the number of candidates.

Native layout (Milvus server >= 2.6.4): an Array-of-Structs field ``colbert[vec]`` in the main
collection, indexed with ``MAX_SIM_IP``; the re-score is a server-side search restricted to the
candidates (``pk in [...]``) and returns the MaxSim sum, divided here by the query length.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._codecs import LEGACY_STORAGE, decode_rows, encode_rows, row_nbytes, similarities
from ._driver import Program, call
from ._filters import in_list
from ._schema import (
    BLOB,
    COLBERT_STRUCT,
    DOC_GEN,
    DOC_PK,
    NATIVE_MAX_TOKENS,
    PART,
    PK,
    PLACEHOLDER,
    VEC,
    CollectionInfo,
)

PART_BYTES = 49149  # 3 * 16383: base64 of a part is 65532 chars, under VARCHAR's 65535
MAX_FETCH_BYTES = 48 * 1024 * 1024  # stored (codec) bytes per fetch query
MAX_DECODED_BYTES = 64 * 1024 * 1024  # float32 rows decoded and scored at once
MAX_QUERY_ROWS = 16384  # Milvus' query window (offset + limit)


def generation(text: str, n_tokens: int) -> str:
    """Content generation of a document's ColBERT rows: changes whenever the token matrix can change."""
    return hashlib.sha1(f"{n_tokens}\x00{text}".encode()).hexdigest()[:16]


def doc_gen(pk: str, gen: str) -> str:
    """The key of one generation of one document's token rows."""
    return f"{pk}:{gen}"


def n_parts(n_tokens: int, dim: int, storage: str = LEGACY_STORAGE) -> int:
    """Blob rows a document of ``n_tokens`` token vectors takes."""
    return max(1, -(-(n_tokens * row_nbytes(storage, dim)) // PART_BYTES))


class _Blob(str):
    """A base64 part. pymilvus 3.0 checks a VARCHAR value of a row with ``for s in value``, i.e. one Python
    step per character (~1.5 MB/s of blobs, 70% of a milvus-lite ingest at 256 rows per chunk); iterating
    a ``_Blob`` yields nothing, so that check costs nothing. Its length is bounded here (PART_BYTES)."""

    __slots__ = ()

    def __iter__(self) -> Any:
        return iter(())


def companion_rows(pk: str, gen: str, matrix: np.ndarray, storage: str = LEGACY_STORAGE) -> list[dict[str, Any]]:
    """The companion rows of one document (codec bytes, base64, split in parts)."""
    raw = encode_rows(matrix, storage)
    key = doc_gen(pk, gen)
    chunks = [raw[i:i + PART_BYTES] for i in range(0, len(raw), PART_BYTES)] or [b""]
    return [
        {PK: f"{key}:{part}", DOC_PK: pk, DOC_GEN: key, PART: part,
         BLOB: _Blob(base64.b64encode(chunk).decode("ascii")), PLACEHOLDER: [1.0, 0.0]}
        for part, chunk in enumerate(chunks)
    ]


def native_value(matrix: np.ndarray, key: str) -> list[dict[str, Any]]:
    """The Array-of-Structs value of one document (native layout)."""
    if len(matrix) > NATIVE_MAX_TOKENS:
        raise ValueError(
            f"document {key!r} has {len(matrix)} ColBERT vectors; Milvus arrays hold at most {NATIVE_MAX_TOKENS}. "
            "Split long documents into chunks, or use colbert_layout='companion' (no limit)"
        )
    return [{VEC: np.asarray(row, dtype=np.float32)} for row in matrix]


def _fetch_groups(n_tokens: Sequence[int], dim: int, storage: str) -> list[list[int]]:
    """Group candidate indices so one fetch stays under the byte, decoded-size and row limits."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = decoded = rows = 0
    stride = row_nbytes(storage, dim)
    for i, n in enumerate(n_tokens):
        nbytes, nfloat, nrows = n * stride, n * dim * 4, n_parts(n, dim, storage)
        if current and (size + nbytes > MAX_FETCH_BYTES or decoded + nfloat > MAX_DECODED_BYTES
                        or rows + nrows > MAX_QUERY_ROWS):
            groups.append(current)
            current, size, decoded, rows = [], 0, 0, 0
        current.append(i)
        size += nbytes
        decoded += nfloat
        rows += nrows
    if current:
        groups.append(current)
    return groups


def _segment_maxsim(sims: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """MaxSim sums from ``sims`` (``[q, rows]``) over consecutive segments of ``sizes`` rows (0 allowed)."""
    out = np.zeros(len(sizes), dtype=np.float64)
    present = np.flatnonzero(sizes > 0)
    if present.size == 0:
        return out
    starts = np.concatenate(([0], np.cumsum(sizes[present])[:-1]))
    per_doc_max = np.maximum.reduceat(sims, starts, axis=1)  # [q, docs]
    out[present] = per_doc_max.sum(axis=0, dtype=np.float64)
    return out


def maxsim_sums(query: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim sums of one query against several documents, in one matrix product.

    ``query`` is ``[q, dim]``; returns one sum per matrix (0.0 for an empty matrix).
    """
    sizes = np.array([len(m) for m in matrices], dtype=np.int64)
    if not (sizes > 0).any():
        return np.zeros(len(matrices), dtype=np.float64)
    tokens = np.concatenate([np.asarray(m, dtype=np.float32) for m in matrices if len(m)], axis=0)
    return _segment_maxsim(np.asarray(query, dtype=np.float32) @ tokens.T, sizes)


def _part_keys(keys: Sequence[str], n_tokens: Sequence[int], dim: int, storage: str) -> list[str]:
    return [f"{keys[i]}:{p}" for i in range(len(keys)) for p in range(n_parts(n_tokens[i], dim, storage))]


def _fetch_group(info: CollectionInfo, keys: Sequence[str], n_tokens: Sequence[int]) -> Program:
    """The stored rows of ``keys`` (one fetch by primary key) as one byte string, and each key's row count
    (0 for a key whose rows are missing or incomplete)."""
    dim, storage = info.dim, info.storage
    wanted = _part_keys(keys, n_tokens, dim, storage)
    rows = yield call("query", info.colbert_name, filter=in_list(PK, wanted), output_fields=[PK, BLOB],
                      limit=len(wanted))
    blobs = {row[PK]: row[BLOB] for row in rows}
    stride = row_nbytes(storage, dim)
    raw: list[bytes] = []
    sizes = np.zeros(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        parts = [blobs.get(f"{key}:{p}") for p in range(n_parts(n_tokens[i], dim, storage))]
        if any(b is None for b in parts):
            continue
        data = b"".join(base64.b64decode(b) for b in parts)
        if len(data) != n_tokens[i] * stride:
            continue  # not this generation's rows: never decode bytes as something they are not
        raw.append(data)
        sizes[i] = n_tokens[i]
    return b"".join(raw), sizes


def fetch_matrices(info: CollectionInfo, keys: Sequence[str], n_tokens: Sequence[int]) -> Program:
    """The decoded float32 token matrices of ``keys`` (``doc_gen`` values) from the companion collection."""
    dim = info.dim
    matrices: list[np.ndarray] = [np.zeros((0, dim), np.float32)] * len(keys)
    for group in _fetch_groups(n_tokens, dim, info.storage):
        raw, sizes = yield from _fetch_group(info, [keys[i] for i in group], [n_tokens[i] for i in group])
        tokens = decode_rows(raw, info.storage, dim)
        for i, part in zip(group, np.split(tokens, np.cumsum(sizes)[:-1]), strict=True):
            matrices[i] = part
    return matrices


def companion_scores(info: CollectionInfo, query: np.ndarray, keys: Sequence[str],
                     n_tokens: Sequence[int]) -> Program:
    """Reference ColBERT scores (MaxSim sum / query length) of the candidates, portable layout."""
    if not keys:
        return np.zeros(0)
    out = np.zeros(len(keys), dtype=np.float64)
    for group in _fetch_groups(n_tokens, info.dim, info.storage):
        raw, sizes = yield from _fetch_group(info, [keys[i] for i in group], [n_tokens[i] for i in group])
        out[group] = _segment_maxsim(similarities(query, raw, info.storage, info.dim), sizes)
    return out / len(query)


def native_scores(info: CollectionInfo, query: np.ndarray, pks: Sequence[str]) -> Program:
    """Reference ColBERT scores of the candidates, computed by the server (native layout)."""
    if not pks:
        return np.zeros(0)
    from pymilvus.client.embedding_list import EmbeddingList

    result = yield call(
        "search", info.name, data=[EmbeddingList(np.asarray(query, dtype=np.float32))],
        anns_field=f"{COLBERT_STRUCT}[{VEC}]", filter=in_list(PK, list(pks)), limit=len(pks),
        output_fields=[PK], search_params={"metric_type": "MAX_SIM_IP"},
    )
    by_pk = {hit["entity"][PK]: float(hit["distance"]) for hit in result[0]}
    return np.array([by_pk.get(pk, 0.0) for pk in pks]) / len(query)
