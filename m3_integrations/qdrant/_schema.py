"""Collection layout of one corpus, and the check that an existing collection matches it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .._errors import CollectionNotFoundError, SchemaMismatchError  # noqa: F401 (re-exported)

COLBERT_DATATYPES = ("float16", "float32")
"""``uint8`` is refused: Qdrant Edge 0.9 casts the float query to uint8 as well (a MaxSim of 0.0 was measured
where qdrant-client gives the true value), so no mapping back to the reference scale holds on both engines."""


DENSE_QUANTIZATIONS = ("int8", None)


@dataclass(frozen=True)
class QdrantSchema:
    """Names and storage choices of a BGE-M3 collection.

    Attributes:
        dense: name of the dense vector (cosine, size = encoder dim).
        sparse: name of the native sparse vector (token ids -> lexical weights).
        colbert: name of the ColBERT multivector (MAX_SIM, re-score only: HNSW ``m=0``).
        colbert_datatype: storage of ColBERT rows: ``float16`` (default: half the memory, scores within
            ~1e-3 of the reference) or ``float32`` (exact). ``uint8`` is not offered (see ``COLBERT_DATATYPES``).
        dense_quantization: ``"int8"`` (default): the dense HNSW search walks int8 scalar-quantized copies
            kept in RAM (~1 KiB per point) and re-scores with the float32 originals, so scores stay exact
            (about twice as fast at 100k points, measured on Qdrant Edge); ``None``: no quantization.
        text_key, metadata_key, id_key: payload keys of the text, the user metadata and the user's id.
    """

    dense: str = "dense"
    sparse: str = "sparse"
    colbert: str = "colbert"
    colbert_datatype: str = "float16"
    dense_quantization: str | None = "int8"
    text_key: str = "text"
    metadata_key: str = "metadata"
    id_key: str = "doc_id"

    def __post_init__(self) -> None:
        names = (self.dense, self.sparse, self.colbert)
        for name in names:
            if not isinstance(name, str) or not name:
                raise ValueError(f"vector names must be non-empty strings, got {name!r}")
        if len(set(names)) != 3:
            raise ValueError(f"dense, sparse and colbert vector names must differ, got {names}")
        if self.colbert_datatype == "uint8":
            raise ValueError(
                "colbert_datatype='uint8' is not supported: Qdrant Edge casts the float query to uint8 too, "
                "so MaxSim scores cannot be mapped back to the reference scale; use 'float16' (default) or 'float32'"
            )
        if self.colbert_datatype not in COLBERT_DATATYPES:
            raise ValueError(
                f"colbert_datatype must be one of {', '.join(COLBERT_DATATYPES)}; got {self.colbert_datatype!r}"
            )
        if self.dense_quantization not in DENSE_QUANTIZATIONS:
            raise ValueError(f"dense_quantization must be 'int8' or None; got {self.dense_quantization!r}")
        keys = (self.text_key, self.metadata_key, self.id_key)
        if len(set(keys)) != 3 or not all(isinstance(k, str) and k for k in keys):
            raise ValueError(f"payload keys must be three different non-empty strings, got {keys}")


DEFAULT_SCHEMA = QdrantSchema()


@dataclass
class VectorInfo:
    """What a collection says about one dense or multi vector (database-neutral)."""

    size: int
    distance: str  # "cosine", "dot", "euclid", "manhattan"
    multivector: bool = False
    datatype: str = "float32"


@dataclass
class CollectionInfo:
    """Database-neutral description of an existing collection."""

    vectors: dict[str, VectorInfo] = field(default_factory=dict)
    sparse: set[str] = field(default_factory=set)
    points: int | None = None

    def colbert_datatype(self, schema: QdrantSchema) -> str:
        """The datatype the ColBERT vector is stored with (``float32`` if unknown)."""
        info = self.vectors.get(schema.colbert)
        return info.datatype if info is not None else schema.colbert_datatype


def check_collection_name(name: str) -> str:
    """A collection name must be a non-empty string usable as a directory name."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"collection_name must be a non-empty string, got {name!r}")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name) or name in (".", ".."):
        raise ValueError(f"collection_name may use letters, digits, '_', '-' and '.' only, got {name!r}")
    return name


def problems(info: CollectionInfo, schema: QdrantSchema, dim: int | None) -> list[str]:
    """What makes ``info`` unusable with ``schema`` at vector size ``dim`` (empty if compatible)."""
    found: list[str] = []
    dense = info.vectors.get(schema.dense)
    if dense is None:
        found.append(f"dense vector {schema.dense!r} is missing (named vectors: {sorted(info.vectors) or 'none'})")
    else:
        if dim is not None and dense.size != dim:
            found.append(f"dense vector {schema.dense!r} has size {dense.size}, the encoder gives {dim}")
        if dense.distance != "cosine":
            found.append(f"dense vector {schema.dense!r} uses {dense.distance} distance, expected cosine")
        if dense.multivector:
            found.append(f"dense vector {schema.dense!r} is a multivector, expected a single vector")
    colbert = info.vectors.get(schema.colbert)
    if colbert is None:
        found.append(f"ColBERT multivector {schema.colbert!r} is missing "
                     f"(named vectors: {sorted(info.vectors) or 'none'})")
    else:
        if dim is not None and colbert.size != dim:
            found.append(f"ColBERT multivector {schema.colbert!r} has size {colbert.size}, the encoder gives {dim}")
        if not colbert.multivector:
            found.append(f"vector {schema.colbert!r} is not a MAX_SIM multivector")
        if colbert.distance != "cosine":
            found.append(f"ColBERT multivector {schema.colbert!r} uses {colbert.distance} distance, expected cosine")
        if colbert.datatype not in COLBERT_DATATYPES:
            found.append(f"ColBERT multivector {schema.colbert!r} is stored as {colbert.datatype}, "
                         f"expected one of {', '.join(COLBERT_DATATYPES)}")
    if schema.sparse not in info.sparse:
        found.append(f"sparse vector {schema.sparse!r} is missing (sparse vectors: {sorted(info.sparse) or 'none'})")
    return found


def mismatch_error(name: str, found: list[str], points: int | None) -> SchemaMismatchError:
    """The error for an incompatible collection: what differs and how to fix it."""
    held = f" (it holds {points} points)" if points is not None else ""
    details = "; ".join(found)
    return SchemaMismatchError(
        f"collection {name!r} exists with an incompatible configuration{held}: {details}. "
        "Fix: use another collection_name, pass schema=QdrantSchema(...) with the names the collection uses, "
        "or pass recreate=True to delete the collection and create it anew (this deletes its points)."
    )
