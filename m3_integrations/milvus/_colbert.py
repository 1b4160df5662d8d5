"""ColBERT storage in Milvus and the exact MaxSim re-score.

Portable "companion" layout (every milvus-lite, any server): collection ``<name>__colbert`` holds
each document's token matrix as **float16 bytes**, base64-encoded, in one or more VARCHAR ``blob``
rows (``part`` 0, 1, ...), keyed by ``doc_pk`` and ``doc_gen``. The collection is only ever
*fetched from* (``doc_gen in [...]``), never searched; its 2-d ``_v`` vector is a constant that
Milvus requires every collection to have.

Why not one FLOAT_VECTOR row per token? Measured here: milvus-lite 3.x returned 6,400 token rows
(100 candidates x 64 tokens x 1024-d) in 6-9 s, because every float crosses its Python engine one by
one, and it has no float16 vectors; the same tokens as float16 blobs came back in 0.13 s, and writes
are 2-3x faster. float16 keeps the ColBERT score within ~1e-3 of float32 (tested).

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
MAX_FETCH_BYTES = 48 * 1024 * 1024  # raw float16 bytes per fetch query
MAX_QUERY_ROWS = 16384  # Milvus' query window (offset + limit)


def generation(text: str, n_tokens: int) -> str:
    """Content generation of a document's ColBERT rows: changes whenever the token matrix can change."""
    return hashlib.sha1(f"{n_tokens}\x00{text}".encode()).hexdigest()[:16]


def doc_gen(pk: str, gen: str) -> str:
    """The key of one generation of one document's token rows."""
    return f"{pk}:{gen}"


def n_parts(n_tokens: int, dim: int) -> int:
    """Blob rows a document of ``n_tokens`` token vectors takes."""
    return max(1, -(-(n_tokens * dim * 2) // PART_BYTES))


def companion_rows(pk: str, gen: str, matrix: np.ndarray) -> list[dict[str, Any]]:
    """The companion rows of one document (float16 bytes, base64, split in parts)."""
    raw = np.ascontiguousarray(matrix, dtype=np.float16).tobytes()
    key = doc_gen(pk, gen)
    chunks = [raw[i:i + PART_BYTES] for i in range(0, len(raw), PART_BYTES)] or [b""]
    return [
        {PK: f"{key}:{part}", DOC_PK: pk, DOC_GEN: key, PART: part,
         BLOB: base64.b64encode(chunk).decode("ascii"), PLACEHOLDER: [1.0, 0.0]}
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


def _fetch_groups(keys: Sequence[str], n_tokens: Sequence[int], dim: int) -> list[list[int]]:
    """Group candidate indices so one fetch stays under the byte and row limits."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = rows = 0
    for i, n in enumerate(n_tokens):
        nbytes, nrows = n * dim * 2, n_parts(n, dim)
        if current and (size + nbytes > MAX_FETCH_BYTES or rows + nrows > MAX_QUERY_ROWS):
            groups.append(current)
            current, size, rows = [], 0, 0
        current.append(i)
        size += nbytes
        rows += nrows
    if current:
        groups.append(current)
    return groups


def maxsim_sums(query: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """MaxSim sums of one query against several documents, in one matrix product.

    ``query`` is ``[q, dim]``; returns one sum per matrix (0.0 for an empty matrix).
    """
    out = np.zeros(len(matrices), dtype=np.float64)
    sizes = np.array([len(m) for m in matrices], dtype=np.int64)
    present = np.flatnonzero(sizes > 0)
    if present.size == 0:
        return out
    tokens = np.concatenate([np.asarray(matrices[i], dtype=np.float32) for i in present], axis=0)
    sims = np.asarray(query, dtype=np.float32) @ tokens.T  # [q, total tokens]
    starts = np.concatenate(([0], np.cumsum(sizes[present])[:-1]))
    per_doc_max = np.maximum.reduceat(sims, starts, axis=1)  # [q, docs]
    out[present] = per_doc_max.sum(axis=0, dtype=np.float64)
    return out


def fetch_matrices(info: CollectionInfo, keys: Sequence[str], n_tokens: Sequence[int]) -> Program:
    """Fetch the float16 token matrices of ``keys`` (``doc_gen`` values) from the companion collection."""
    dim = info.dim
    matrices: list[np.ndarray] = [np.zeros((0, dim), np.float16)] * len(keys)
    for group in _fetch_groups(keys, n_tokens, dim):
        wanted = [keys[i] for i in group]
        rows = yield call(
            "query", info.colbert_name, filter=in_list(DOC_GEN, wanted),
            output_fields=[DOC_GEN, PART, BLOB], limit=sum(n_parts(n_tokens[i], dim) for i in group),
        )
        parts: dict[str, list[tuple[int, str]]] = {}
        for row in rows:
            parts.setdefault(row[DOC_GEN], []).append((int(row[PART]), row[BLOB]))
        for i in group:
            found = sorted(parts.get(keys[i], []))
            if not found:
                continue
            raw = b"".join(base64.b64decode(blob) for _, blob in found)
            matrices[i] = np.frombuffer(raw, dtype=np.float16).reshape(-1, dim)
    return matrices


def companion_scores(info: CollectionInfo, query: np.ndarray, keys: Sequence[str],
                     n_tokens: Sequence[int]) -> Program:
    """Reference ColBERT scores (MaxSim sum / query length) of the candidates, portable layout."""
    if not keys:
        return np.zeros(0)
    matrices = yield from fetch_matrices(info, keys, n_tokens)
    return maxsim_sums(query, matrices) / len(query)


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
