"""Collection layout of one corpus, and the check that an existing collection matches it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .._errors import CollectionNotFoundError, SchemaMismatchError  # noqa: F401 (re-exported)
from ..encoder.pooling import check_pool_factor

COLBERT_STORAGES = {"float32": "float32", "float16": "float16", "8bit": "turbo8", "4bit": "turbo4"}
"""ColBERT storage settings and the Qdrant vector datatype each one maps to (Qdrant >= 1.19, Qdrant Edge >= 0.9:
TurboQuant codes stored in place of the floats, scored against the float query; no float copy is kept).
``uint8`` is not offered: Qdrant Edge casts the float query to uint8 as well, so no mapping back to the
reference scale holds; ``1bit`` neither: Qdrant has no 1-bit storage datatype (binary quantization keeps the
float originals beside the codes, so it saves no disk)."""

DEFAULT_COLBERT_STORAGE = "4bit"
"""New collections store ColBERT rows as 4-bit codes: 516 B per row (float16: 2,048), ColBERT score error
<= 0.004 on the reference scale and the same top-10 (docs/benchmarks.md, "ColBERT storage")."""

DENSE_QUANTIZATIONS = ("int8", None)
M3_METADATA_KEY = "m3_integrations"
"""Key of the settings this package records with a collection (Qdrant collection metadata; Edge: a file)."""


def check_colbert_storage(storage: object) -> str:
    """``storage`` if it is a ColBERT storage setting this adapter offers, else a ``ValueError`` naming the options."""
    if storage in COLBERT_STORAGES:
        return storage  # type: ignore[return-value]
    why = {
        "1bit": "Qdrant has no 1-bit storage datatype (binary quantization keeps the float originals too)",
        "uint8": "Qdrant Edge casts the float query to uint8 too, so scores leave the reference scale",
    }.get(storage if isinstance(storage, str) else "", "")
    raise ValueError(f"colbert_storage={storage!r} is not supported on Qdrant{': ' + why if why else ''}; "
                     f"choose one of {', '.join(COLBERT_STORAGES)} (default {DEFAULT_COLBERT_STORAGE!r})")


def storage_of_datatype(datatype: str) -> str | None:
    """The ColBERT storage setting of a Qdrant vector datatype (``None``: not one this package writes)."""
    return next((k for k, v in COLBERT_STORAGES.items() if v == datatype), None)


@dataclass(frozen=True)
class QdrantSchema:
    """Names and storage choices of a BGE-M3 collection.

    Attributes:
        dense: name of the dense vector (cosine, size = encoder dim).
        sparse: name of the native sparse vector (token ids -> lexical weights).
        colbert: name of the ColBERT multivector (MAX_SIM, re-score only: HNSW ``m=0``, kept on disk).
        colbert_storage: how ColBERT rows are stored: ``"4bit"`` (default for new collections), ``"8bit"``,
            ``"float16"`` or ``"float32"`` (exact); see ``COLBERT_STORAGES``. ``None`` (the default) means: what
            an existing collection uses, and ``DEFAULT_COLBERT_STORAGE`` for a new one. An explicit value must
            match an existing collection.
        colbert_pool_factor: token pooling of documents' ColBERT rows at ingest (``encoder.pooling``): keep
            ``n_rows // factor`` rows; 1 = off. Recorded with the collection, so queries need no flag; ``None``
            (the default) means: what the collection records, and 1 for a new one. An explicit value must match
            an existing collection.
        with_colbert: whether the collection has the ColBERT multivector. ``None`` (the default): what an existing
            collection has (one this package made without ColBERT records it), and ColBERT for a new one;
            ``False``: dense + sparse only: ingest computes no ColBERT, ``hybrid`` fuses dense + sparse (the ColBERT
            weight is dropped) and ``mode="colbert"`` is refused; ``True``: ColBERT required. An explicit value
            must match an existing collection.
        dense_quantization: ``"int8"`` (default): the dense HNSW search walks int8 scalar-quantized copies
            kept in RAM (~1 KiB per point) and re-scores with the float32 originals, so scores stay exact
            (about twice as fast at 100k points, measured on Qdrant Edge); ``None``: no quantization.
        text_key, metadata_key, id_key: payload keys of the text, the user metadata and the user's id.
    """

    dense: str = "dense"
    sparse: str = "sparse"
    colbert: str = "colbert"
    colbert_storage: str | None = None
    colbert_pool_factor: int | None = None
    with_colbert: bool | None = None
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
        if self.with_colbert not in (None, True, False):
            raise ValueError(f"with_colbert must be True, False or None (the collection's), got {self.with_colbert!r}")
        if self.with_colbert is False and (self.colbert_storage is not None or self.colbert_pool_factor is not None):
            raise ValueError("colbert_storage / colbert_pool_factor set with with_colbert=False: a collection without "
                             "ColBERT stores no ColBERT rows; leave them out")
        if self.colbert_storage is not None:
            check_colbert_storage(self.colbert_storage)
        if self.colbert_pool_factor is not None:
            check_pool_factor(self.colbert_pool_factor)
        if self.dense_quantization not in DENSE_QUANTIZATIONS:
            raise ValueError(f"dense_quantization must be 'int8' or None; got {self.dense_quantization!r}")
        keys = (self.text_key, self.metadata_key, self.id_key)
        if len(set(keys)) != 3 or not all(isinstance(k, str) and k for k in keys):
            raise ValueError(f"payload keys must be three different non-empty strings, got {keys}")

    def for_new_collection(self) -> QdrantSchema:
        """The schema with the defaults a new collection gets in place of ``None``."""
        if self.with_colbert is False:
            return self
        return replace(self, colbert_storage=self.colbert_storage or DEFAULT_COLBERT_STORAGE,
                       colbert_pool_factor=self.colbert_pool_factor or 1)

    def record(self) -> dict[str, object]:
        """The settings recorded with a new collection (``M3_METADATA_KEY``)."""
        if self.with_colbert is False:
            return {"colbert": False}
        new = self.for_new_collection()
        return {"colbert_storage": new.colbert_storage, "colbert_pool_factor": new.colbert_pool_factor}


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
    sparse_modifiers: dict[str, str] = field(default_factory=dict)
    """Sparse vectors with a modifier (``"idf"``) and that modifier (BGE-M3 weights need none)."""
    points: int | None = None
    recorded: dict[str, object] = field(default_factory=dict)
    """What this package recorded when it created the collection (empty for older or foreign collections)."""

    @property
    def colbert_pool_factor(self) -> int:
        """The pool factor documents were stored with (1 when none was recorded)."""
        return int(self.recorded.get("colbert_pool_factor") or 1)

    @property
    def made_without_colbert(self) -> bool:
        """Whether this package recorded making the collection without ColBERT vectors."""
        return self.recorded.get("colbert") is False


def stores_colbert(info: CollectionInfo, schema: QdrantSchema) -> bool:
    """Whether documents of a collection that passed ``problems(info, schema, ...)`` get ColBERT rows."""
    return schema.with_colbert is not False and schema.colbert in info.vectors


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
    if colbert is not None and schema.with_colbert is False:
        found.append(f"the collection stores ColBERT vectors in {schema.colbert!r}, the schema asks for "
                     "with_colbert=False (pass with_colbert=None to use the collection's)")
    elif colbert is None:
        if schema.with_colbert is True:
            found.append(f"ColBERT multivector {schema.colbert!r} is missing, the schema asks for with_colbert=True"
                         + (" (the collection was made without ColBERT; pass with_colbert=None to use it as it is)"
                            if info.made_without_colbert else ""))
        elif schema.with_colbert is None and not info.made_without_colbert:
            found.append(f"ColBERT multivector {schema.colbert!r} is missing "
                         f"(named vectors: {sorted(info.vectors) or 'none'}; for dense + sparse only pass "
                         "QdrantSchema(with_colbert=False))")
    else:
        if dim is not None and colbert.size != dim:
            found.append(f"ColBERT multivector {schema.colbert!r} has size {colbert.size}, the encoder gives {dim}")
        if not colbert.multivector:
            found.append(f"vector {schema.colbert!r} is not a MAX_SIM multivector")
        if colbert.distance != "cosine":
            found.append(f"ColBERT multivector {schema.colbert!r} uses {colbert.distance} distance, expected cosine")
        storage = storage_of_datatype(colbert.datatype)
        if storage is None:
            found.append(f"ColBERT multivector {schema.colbert!r} is stored as {colbert.datatype}, "
                         f"expected one of {', '.join(COLBERT_STORAGES.values())}")
        elif schema.colbert_storage is not None and storage != schema.colbert_storage:
            found.append(f"ColBERT rows are stored as {storage!r}, the schema asks for "
                         f"colbert_storage={schema.colbert_storage!r} (pass colbert_storage=None to use the "
                         "collection's)")
    if (schema.colbert_pool_factor is not None and colbert is not None
            and schema.colbert_pool_factor != info.colbert_pool_factor):
        found.append(f"documents were stored with colbert_pool_factor={info.colbert_pool_factor}, the schema asks "
                     f"for {schema.colbert_pool_factor} (pass colbert_pool_factor=None to use the collection's)")
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
