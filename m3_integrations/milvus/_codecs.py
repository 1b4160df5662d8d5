"""ColBERT storage settings of a Milvus collection and the byte codecs of the companion layout.

``colbert_storage`` says how each ColBERT row is kept:

==============  =====================================================  ====================
setting         companion blob, per row of ``dim`` values              native layout
==============  =====================================================  ====================
``float32``     ``4 * dim`` bytes                                      FLOAT_VECTOR
``float16``     ``2 * dim`` bytes (what collections made before had)   refused
``8bit``        float32 offset + scale, then ``dim`` uint8 codes        refused
``4bit``        float32 offset + scale, then ``dim / 2`` bytes          refused
==============  =====================================================  ====================

The scalar codes are per row: ``value ~= offset + scale * code`` with ``offset`` the row's minimum and
``scale = (max - min) / (2**bits - 1)``. Per-row and per-dimension (per document) statistics were measured
at the same code width on 256-row documents: per-row was as accurate at 8 bits (mean ColBERT error
3.5e-5 vs 3.2e-5 isotropic, 1.3e-4 vs 1.7e-4 with uneven dimension scales) and ~25% worse at 4 bits
(8.6e-4 vs 6.2e-4), but needs 8 bytes per row instead of 4 KB per document, and decodes every fetched row
in one vectorized step. Rows are decoded client side before the exact MaxSim, so scores stay on the
reference scale (the error is the rounding only: docs/benchmarks.md has the table).

``1bit`` is refused: one bit per value shrinks the ColBERT score by ~30% (mean error 0.084 on scores of
~0.27, measured on synthetic 256-row x 1024-d documents), which no longer is the reference scale.

``colbert_pool_factor`` (1 = off): the documents' rows were pooled at ingest
(``m3_integrations.encoder.pooling``); queries are never pooled, so they need no flag.

Both are recorded with the main collection as the property ``m3_integrations.colbert`` (JSON); a
collection without it was made before these settings existed: ``float16`` blobs (companion) or
``float32`` (native), pool factor 1. A collection made with ``with_colbert=False`` records
``{"version": 1, "colbert": false}`` (no storage, no pool factor): versions that predate it refuse to open it
instead of looking for ColBERT rows that were never written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..encoder.pooling import check_pool_factor

STORAGES = ("float32", "float16", "8bit", "4bit")
NATIVE_STORAGES = ("float32",)
DEFAULT_STORAGE = "4bit"
"""Companion layout default (the native layout stores float32): 4x smaller than float16 and scored 3.3x faster
without decoding, ColBERT score error <= 3.5e-3 (top-10 overlap 0.992); see docs/benchmarks.md."""
LEGACY_STORAGE = "float16"  # companion collections made before the settings were recorded
RECORD_KEY = "m3_integrations.colbert"
RECORD_VERSION = 1
HEADER_BYTES = 8  # float32 offset + float32 scale in front of each row of scalar codes
_BITS = {"8bit": 8, "4bit": 4}

_ONE_BIT = (
    "colbert_storage='1bit' is not offered on Milvus: ColBERT rows are decoded client side, and one bit per "
    "value moves the score off the reference scale (mean error 0.084 on scores of ~0.27 measured, a ~30% "
    "shrink). Use '4bit' (8x smaller than 'float32', error ~1e-3) or '8bit' (4x smaller, error ~1e-4)"
)


@dataclass(frozen=True)
class ColbertSettings:
    """How a collection keeps its ColBERT rows: ``storage`` codec and ingest ``pool_factor``."""

    storage: str = LEGACY_STORAGE
    pool_factor: int = 1

    def record(self) -> str:
        """The JSON recorded with the collection."""
        return json.dumps({"version": RECORD_VERSION, "storage": self.storage, "pool_factor": self.pool_factor})


def check_storage(storage: Any) -> str:
    """``storage`` if it is a known setting, else a ``ValueError`` naming the setting and the choices."""
    if storage == "1bit":
        raise ValueError(_ONE_BIT)
    if storage not in STORAGES:
        raise ValueError(f"colbert_storage must be one of {', '.join(map(repr, STORAGES))}; got {storage!r}")
    return storage


def check_native(storage: str) -> None:
    """Refuse a storage the native Array-of-Structs layout cannot keep, naming the alternatives."""
    if storage not in NATIVE_STORAGES:
        raise ValueError(
            f"colbert_storage={storage!r} is not available with the native ColBERT layout (its Array-of-Structs "
            f"field stores FLOAT_VECTOR rows, i.e. {', '.join(map(repr, NATIVE_STORAGES))}). Use "
            f"colbert_storage='float32', or colbert_layout='companion' for 'float16', '8bit' or '4bit'"
        )


def requested(storage: Any, pool_factor: Any) -> tuple[str | None, int | None]:
    """Validate the settings a caller asked for (``None``: whatever the collection records / the default)."""
    return (None if storage is None else check_storage(storage),
            None if pool_factor is None else check_pool_factor(pool_factor))


def for_new(layout: str, storage: str | None, pool_factor: int | None) -> ColbertSettings:
    """The settings a new collection of ``layout`` gets."""
    if layout == "native":
        storage = storage or "float32"
        check_native(storage)
    return ColbertSettings(storage or DEFAULT_STORAGE, pool_factor or 1)


NO_COLBERT_RECORD = json.dumps({"version": RECORD_VERSION, "colbert": False})


def records_no_colbert(properties: Any) -> bool:
    """Whether a collection's properties say it was made without ColBERT vectors (``with_colbert=False``)."""
    raw = (properties or {}).get(RECORD_KEY)
    try:
        return raw is not None and json.loads(raw).get("colbert") is False
    except (ValueError, AttributeError):
        return False


def parse_record(name: str, properties: Any, layout: str) -> tuple[ColbertSettings, list[str]]:
    """The settings recorded with collection ``name`` (legacy default when absent) and any problems."""
    raw = (properties or {}).get(RECORD_KEY)
    if raw is None:
        return ColbertSettings("float32" if layout == "native" else LEGACY_STORAGE, 1), []
    try:
        record = json.loads(raw)
        settings = ColbertSettings(check_storage(record["storage"]), check_pool_factor(record["pool_factor"]))
    except (ValueError, KeyError, TypeError) as exc:
        return ColbertSettings(), [f"its ColBERT storage record {RECORD_KEY}={raw!r} is not one this version "
                                   f"reads ({exc}); it may have been written by a newer m3_integrations"]
    return settings, []


def mismatches(name: str, stored: ColbertSettings, storage: str | None, pool_factor: int | None) -> str | None:
    """The message of a ``SchemaMismatchError`` when a caller's settings differ from the recorded ones."""
    differ = []
    if storage is not None and storage != stored.storage:
        differ.append(f"colbert_storage={storage!r} was asked, the collection stores {stored.storage!r}")
    if pool_factor is not None and pool_factor != stored.pool_factor:
        differ.append(f"colbert_pool_factor={pool_factor} was asked, its documents were pooled with "
                      f"{stored.pool_factor}")
    if not differ:
        return None
    return (f"collection {name!r} keeps its ColBERT rows differently: " + "; ".join(differ)
            + ". Stored rows are never re-interpreted. Pass the collection's settings (or leave colbert_storage / "
            "colbert_pool_factor unset to use what it records), recreate=True to rebuild it with the new ones "
            "(this deletes its data), or use another collection_name.")


# ------------------------------------------------------------------------------------------- codecs
def row_nbytes(storage: str, dim: int) -> int:
    """Bytes one ColBERT row of ``dim`` values takes in a companion blob."""
    if storage == "float32":
        return 4 * dim
    if storage == "float16":
        return 2 * dim
    return HEADER_BYTES + -(-dim * _BITS[storage] // 8)


def encode_rows(matrix: np.ndarray, storage: str) -> bytes:
    """The blob bytes of one document's ``[rows, dim]`` ColBERT matrix (little-endian)."""
    m = np.asarray(matrix, dtype=np.float32)
    if m.ndim != 2:
        raise ValueError(f"a ColBERT matrix must be 2-d [rows, dim], got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("ColBERT vectors contain NaN or infinite values")
    if storage == "float32":
        return m.astype("<f4", copy=False).tobytes()
    if storage == "float16":
        return m.astype("<f2").tobytes()
    bits = _BITS[storage]
    n, dim = m.shape
    if n == 0:
        return b""
    levels = (1 << bits) - 1
    lo = m.min(axis=1)
    scale = (m.max(axis=1) - lo) / levels
    scale[scale == 0] = 1.0  # a constant row: every code is 0
    codes = np.rint((m - lo[:, None]) / scale[:, None]).clip(0, levels).astype(np.uint8)
    if bits == 4:
        if dim % 2:
            codes = np.concatenate([codes, np.zeros((n, 1), np.uint8)], axis=1)
        codes = codes[:, 0::2] | (codes[:, 1::2] << 4)
    header = np.stack([lo, scale], axis=1).astype("<f4").view(np.uint8).reshape(n, HEADER_BYTES)
    return np.concatenate([header, codes], axis=1).tobytes()


def decode_rows(raw: bytes | np.ndarray, storage: str, dim: int) -> np.ndarray:
    """``[rows, dim]`` float32 rows of blob bytes (any number of whole rows, e.g. many documents joined)."""
    buf = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8).ravel()
    stride = row_nbytes(storage, dim)
    if buf.size % stride:
        raise ValueError(f"ColBERT blob of {buf.size} bytes is not whole {storage} rows of dimension {dim} "
                         f"({stride} bytes each): the collection's storage record does not match its rows")
    if storage == "float32":
        return buf.view("<f4").reshape(-1, dim).astype(np.float32, copy=False)
    if storage == "float16":
        return buf.view("<f2").reshape(-1, dim).astype(np.float32)
    rows = buf.reshape(-1, stride)
    header = np.ascontiguousarray(rows[:, :HEADER_BYTES]).view("<f4")  # [n, 2]: offset, scale
    codes = rows[:, HEADER_BYTES:]
    if _BITS[storage] == 4:
        unpacked = np.empty((len(rows), 2 * codes.shape[1]), dtype=np.uint8)
        np.bitwise_and(codes, 15, out=unpacked[:, 0::2])
        np.right_shift(codes, 4, out=unpacked[:, 1::2])
        codes = unpacked[:, :dim]
    out = codes.astype(np.float32)
    out *= header[:, 1:2]
    out += header[:, 0:1]
    return out


def similarities(query: np.ndarray, raw: bytes, storage: str, dim: int) -> np.ndarray:
    """``query @ decode_rows(raw).T`` (``[q, rows]``), without building the decoded rows for scalar codes:
    ``q . (offset + scale * codes) = (q . codes) * scale + sum(q) * offset``, and 4-bit codes stay in
    their two nibble planes (even and odd dimensions), each multiplied with that half of the query."""
    q = np.asarray(query, dtype=np.float32)
    if storage not in _BITS:
        return q @ decode_rows(raw, storage, dim).T
    buf = np.frombuffer(raw, dtype=np.uint8)
    stride = row_nbytes(storage, dim)
    if buf.size % stride:
        raise ValueError(f"ColBERT blob of {buf.size} bytes is not whole {storage} rows of dimension {dim} "
                         f"({stride} bytes each): the collection's storage record does not match its rows")
    rows = buf.reshape(-1, stride)
    header = np.ascontiguousarray(rows[:, :HEADER_BYTES]).view("<f4")  # [n, 2]: offset, scale
    codes = rows[:, HEADER_BYTES:]
    if _BITS[storage] == 8:
        sims = q @ codes.astype(np.float32).T
    else:
        even, odd = q[:, 0::2], q[:, 1::2]
        if odd.shape[1] < codes.shape[1]:  # odd dim: the last high nibble is padding (code 0)
            odd = np.concatenate([odd, np.zeros((len(q), 1), np.float32)], axis=1)
        sims = even @ (codes & 15).astype(np.float32).T
        sims += odd @ (codes >> 4).astype(np.float32).T
    sims *= header[:, 1]
    sims += q.sum(axis=1, keepdims=True) * header[:, 0]
    return sims
