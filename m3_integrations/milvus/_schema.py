"""Collection layout, creation, validation and loading.

Main collection ``<name>``: one row per document

====================  =====================  ==================================================
field                 type                   content
====================  =====================  ==================================================
``pk``                VARCHAR(64), primary   ``_ingest.point_id(doc)`` (deterministic UUID)
``doc_id``            VARCHAR                the user's id, or the id derived from the text
``text``              VARCHAR(65535)         the text
``metadata``          JSON                   the user's metadata
``dense``             FLOAT_VECTOR(dim)      index FLAT (lite) / AUTOINDEX (server), metric IP
``sparse``            SPARSE_FLOAT_VECTOR    index SPARSE_INVERTED_INDEX, metric IP
``n_tokens``          INT64                  number of ColBERT token vectors
``gen``               VARCHAR(32)            content generation of the ColBERT rows (see below)
====================  =====================  ==================================================

ColBERT, portable "companion" layout (milvus-lite, servers < 2.6.4): collection ``<name>__colbert``
with each document's token matrix as codec bytes (``colbert_storage``) in base64 VARCHAR parts (see ``_colbert``):
``pk`` = ``"<doc pk>:<gen>:<part>"``, ``doc_pk``, ``doc_gen`` = ``"<doc pk>:<gen>"``, ``part``, ``blob``.
``gen`` hashes the text and token count, so a re-ingested document writes its new rows first, then
its main row (which now points at the new generation), then deletes the previous generation's rows:
a search never sees a mix, and a shorter text leaves no stale rows.

ColBERT, "native" layout (Milvus server >= 2.6.4): an Array-of-Structs field ``colbert`` with a
``vec`` FLOAT_VECTOR sub-field indexed with ``MAX_SIM_IP``, in the main collection.

The ColBERT storage settings (``colbert_storage``, ``colbert_pool_factor``) are recorded as the main
collection's property ``m3_integrations.colbert`` and checked whenever it is opened (see ``_codecs``).

Without ColBERT (``with_colbert=False`` at creation, layout ``"none"``): the main collection only, without
``n_tokens`` and ``gen``; the property records ``"colbert": false``. Hybrid search is dense + sparse.

Consistency level: the collections are created with ``consistency_level`` (default ``Strong``), which Milvus
records itself (``describe_collection``). milvus-lite accepts every level and serves them all as ``Strong``
(one process: every write is visible to the next read), and reports ``Strong``.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import Any

from .._errors import CollectionNotFoundError, SchemaMismatchError  # noqa: F401 (re-exported)
from ._codecs import (
    NO_COLBERT_RECORD,
    RECORD_KEY,
    ColbertSettings,
    for_new,
    mismatches,
    parse_record,
    records_no_colbert,
)
from ._driver import Program, call, probe

PK, DOC_ID, TEXT, METADATA, DENSE, SPARSE, N_TOKENS, GEN = (
    "pk", "doc_id", "text", "metadata", "dense", "sparse", "n_tokens", "gen")
DOC_PK, DOC_GEN, PART, BLOB, PLACEHOLDER = "doc_pk", "doc_gen", "part", "blob", "_v"
VEC = "vec"  # the vector sub-field of the native Array-of-Structs field
COLBERT_STRUCT = "colbert"
COLBERT_SUFFIX = "__colbert"
MAX_VARCHAR = 65535
NATIVE_MAX_TOKENS = 4096  # Milvus' largest array capacity
NATIVE_MIN_VERSION = (2, 6, 4)
FILTER_TEMPLATES_MIN = (2, 5, 0)  # filter templating is documented from Milvus 2.5
LAYOUTS = ("auto", "companion", "native")
NO_COLBERT = "none"  # the layout of a collection made with with_colbert=False
DEFAULT_CONSISTENCY = "Strong"




@dataclass(frozen=True)
class ServerCaps:
    """What the connected engine supports (detected once per client)."""

    version: str
    is_lite: bool
    native_multivector: bool
    json_exists: bool = False  # `exists metadata[...]` and three-valued NOT (milvus-lite 3.x)
    filter_templates: bool = False  # `filter_params` (servers >= 2.5; milvus-lite 3.2.2 rejects `{`)


@dataclass(frozen=True)
class CollectionInfo:
    """A validated collection: its name, dense dimension, ColBERT layout and ColBERT storage settings."""

    name: str
    dim: int
    layout: str  # "companion" | "native" | "none" (no ColBERT vectors)
    colbert_name: str | None = None
    storage: str = "float16"  # ``_codecs.STORAGES``
    pool_factor: int = 1

    @property
    def has_colbert(self) -> bool:
        """Whether the collection stores ColBERT vectors (``with_colbert=False`` at creation: no)."""
        return self.layout != NO_COLBERT


def colbert_collection(name: str) -> str:
    """Name of the companion ColBERT collection of ``name``."""
    return name + COLBERT_SUFFIX


# ----------------------------------------------------------------------------------- per-client cache
class _ClientState:
    def __init__(self) -> None:
        self.caps: ServerCaps | None = None
        self.ready: dict[str, CollectionInfo] = {}


_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STATES_BY_ID: dict[int, _ClientState] = {}


def state(client: Any) -> _ClientState:
    """The cached capabilities and loaded collections of one client object."""
    try:
        found = _STATES.get(client)
        if found is None:
            found = _STATES[client] = _ClientState()
        return found
    except TypeError:  # not weak-referenceable
        return _STATES_BY_ID.setdefault(id(client), _ClientState())


def forget(client: Any, name: str) -> None:
    """Drop the cached info of ``name`` (after a drop or recreate)."""
    state(client).ready.pop(name, None)


def _parse_version(text: str) -> tuple[int, ...] | None:
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(x) for x in match.groups()) if match else None


def exists(name: str) -> Program:
    """Whether a collection exists (``list_collections``: every client version has it)."""
    return name in (yield call("list_collections"))


def filter_expr(client: Any, query_filter: Any, filter_params: Any = None) -> Program:
    """The ``Filter`` of a neutral filter (or a native expression / template string) for this engine."""
    from ._filters import compile_filter

    caps = yield from server_caps(client)
    return compile_filter(query_filter, filter_params, exists=caps.json_exists, templates=caps.filter_templates)


def server_caps(client: Any) -> Program:
    """Detect the engine: milvus-lite or a server, and whether native multi-vector exists (>= 2.6.4)."""
    st = state(client)
    if st.caps is not None:
        return st.caps
    try:
        version = str((yield probe("get_server_version")) or "")
    except Exception:  # milvus-lite 2.5 does not implement it
        version = ""
    is_lite = not version or "lite" in version.lower()
    parsed = _parse_version(version)
    native = (not is_lite) and parsed is not None and parsed >= NATIVE_MIN_VERSION
    st.caps = ServerCaps(version=version or "milvus-lite (version unknown)", is_lite=is_lite,
                         native_multivector=native, json_exists=is_lite and (parsed or (0,)) >= (3,),
                         filter_templates=not is_lite and parsed is not None and parsed >= FILTER_TEMPLATES_MIN)
    return st.caps


# ------------------------------------------------------------------------------------------ schemas
def _main_schema(dim: int, native: bool, lite: bool, colbert: bool = True) -> tuple[Any, Any]:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                        description="m3_integrations: BGE-M3 dense + sparse (+ ColBERT)")
    schema.add_field(PK, DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field(DOC_ID, DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field(TEXT, DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field(METADATA, DataType.JSON)
    schema.add_field(DENSE, DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
    if colbert:
        schema.add_field(N_TOKENS, DataType.INT64)
        schema.add_field(GEN, DataType.VARCHAR, max_length=32)
    index = MilvusClient.prepare_index_params()
    # exact FLAT on milvus-lite (its only dense index in 2.5); the server picks its ANN index
    index.add_index(DENSE, index_type="FLAT" if lite else "AUTOINDEX", metric_type="IP")
    index.add_index(SPARSE, index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    if native:
        struct = MilvusClient.create_struct_field_schema()
        struct.add_field(VEC, DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field(COLBERT_STRUCT, DataType.ARRAY, element_type=DataType.STRUCT, struct_schema=struct,
                         max_capacity=NATIVE_MAX_TOKENS)
        index.add_index(f"{COLBERT_STRUCT}[{VEC}]", index_type="HNSW", metric_type="MAX_SIM_IP")
    return schema, index


def _colbert_schema() -> tuple[Any, Any]:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                        description="m3_integrations: ColBERT token matrices (float16, base64)")
    schema.add_field(PK, DataType.VARCHAR, is_primary=True, max_length=128)
    schema.add_field(DOC_PK, DataType.VARCHAR, max_length=64)
    schema.add_field(DOC_GEN, DataType.VARCHAR, max_length=128)
    schema.add_field(PART, DataType.INT64)
    schema.add_field(BLOB, DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field(PLACEHOLDER, DataType.FLOAT_VECTOR, dim=2)  # Milvus requires a vector field
    index = MilvusClient.prepare_index_params()
    index.add_index(PLACEHOLDER, index_type="FLAT", metric_type="IP")
    return schema, index


def _create_one(name: str, schema: Any, index: Any, properties: dict[str, str] | None = None,
                consistency: str | None = None) -> Program:
    extra = {"properties": properties} if properties else {}
    yield call("create_collection", name, schema=schema, consistency_level=consistency or DEFAULT_CONSISTENCY,
               **extra)
    # The collection is empty, so its indexes are built at once: do not wait for them. Waiting asks the
    # server for a timestamp (AllocTimestamp), which milvus-lite does not implement and logs as a traceback.
    # AsyncMilvusClient always waits; on milvus-lite that wait fails once the index exists. One call per
    # index, so that a failed wait does not skip the next index.
    for param in index:
        try:
            yield probe("create_index", name, type(index)([param]), sync=False)
        except Exception:
            if (param.index_name or param.field_name) not in (yield call("list_indexes", name)):
                raise
    yield call("load_collection", name)


def create(client: Any, name: str, dim: int, layout: str = "auto", storage: str | None = None,
           pool_factor: int | None = None, colbert: bool = True, consistency: str | None = None) -> Program:
    """Create the collection(s) for ``name``; returns the ``CollectionInfo``.

    ``storage`` / ``pool_factor``: validated ColBERT settings (``None``: the layout's default), recorded
    with the main collection. ``with_colbert=False``: no ColBERT vectors (the main collection only).
    ``consistency``: the collections' consistency level (``None``: ``Strong``).
    """
    caps = yield from server_caps(client)
    if not colbert:
        schema, index = _main_schema(dim, False, caps.is_lite, colbert=False)
        yield from _create_one(name, schema, index, {RECORD_KEY: NO_COLBERT_RECORD}, consistency)
        return CollectionInfo(name=name, dim=dim, layout=NO_COLBERT)
    if layout not in LAYOUTS:
        raise ValueError(f"colbert_layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    if layout == "native" and not caps.native_multivector:
        raise ValueError(
            f"colbert_layout='native' needs a Milvus server >= 2.6.4 (Array of Structs with MAX_SIM); "
            f"this is {caps.version}. Use colbert_layout='auto' or 'companion'"
        )
    native = layout == "native" or (layout == "auto" and caps.native_multivector)
    settings = for_new("native" if native else "companion", storage, pool_factor)
    schema, index = _main_schema(dim, native, caps.is_lite)
    record = {RECORD_KEY: settings.record()}
    if native:
        yield from _create_one(name, schema, index, record, consistency)
        return CollectionInfo(name=name, dim=dim, layout="native", storage=settings.storage,
                              pool_factor=settings.pool_factor)
    companion = colbert_collection(name)
    cschema, cindex = _colbert_schema()
    yield from _create_one(companion, cschema, cindex, consistency=consistency)
    yield from _create_one(name, schema, index, record, consistency)
    return CollectionInfo(name=name, dim=dim, layout="companion", colbert_name=companion,
                          storage=settings.storage, pool_factor=settings.pool_factor)


# ----------------------------------------------------------------------------------------- validate
def _type_name(value: Any) -> str:
    return getattr(value, "name", str(value))


def _fields(description: dict) -> dict[str, dict]:
    return {f["name"]: f for f in description.get("fields", [])}


_MAIN_TYPES = {PK: "VARCHAR", DOC_ID: "VARCHAR", TEXT: "VARCHAR", METADATA: "JSON", DENSE: "FLOAT_VECTOR",
               SPARSE: "SPARSE_FLOAT_VECTOR", N_TOKENS: "INT64", GEN: "VARCHAR"}
_COLBERT_TYPES = {PK: "VARCHAR", DOC_PK: "VARCHAR", DOC_GEN: "VARCHAR", PART: "INT64", BLOB: "VARCHAR",
                  PLACEHOLDER: "FLOAT_VECTOR"}


def _check_fields(name: str, fields: dict[str, dict], expected: dict[str, str]) -> list[str]:
    problems = []
    for field_name, type_name in expected.items():
        if field_name not in fields:
            problems.append(f"field {field_name!r} ({type_name}) is missing")
        elif _type_name(fields[field_name].get("type")) != type_name:
            problems.append(f"field {field_name!r} is {_type_name(fields[field_name].get('type'))}, "
                            f"expected {type_name}")
    return problems


def _dim(field: dict) -> int | None:
    params = field.get("params") or {}
    dim = params.get("dim")
    return None if dim is None else int(dim)


def _recorded_consistency(desc: dict) -> str | None:
    """The consistency level Milvus recorded for a collection (``None`` if it does not say)."""
    level = desc.get("consistency_level_name")
    if level:
        return str(level)
    level = desc.get("consistency_level")
    try:
        from pymilvus.client.types import ConsistencyLevel

        return ConsistencyLevel.Name(int(level)) if level is not None else None
    except (ImportError, ValueError, TypeError):
        return None


def describe(client: Any, name: str, dim: int | None = None, storage: str | None = None,
             pool_factor: int | None = None, colbert: bool | None = None, consistency: str | None = None
             ) -> Program:
    """Validate an existing collection; returns its ``CollectionInfo`` or raises ``SchemaMismatchError``.

    ``dim``: the encoder's dimension, when known (ingest); searches check the query's dimension.
    ``storage`` / ``pool_factor``: ColBERT settings a caller asked for (``None``: whatever is recorded);
    a difference from the recorded ones raises ``SchemaMismatchError`` saying what differs. So do ``colbert``
    (with or without ColBERT vectors) and ``consistency`` (the level Milvus recorded; milvus-lite records
    none: it serves every level as ``Strong``).
    """
    desc = yield call("describe_collection", name)
    fields = _fields(desc)
    no_colbert = records_no_colbert(desc.get("properties"))
    expected = {k: v for k, v in _MAIN_TYPES.items() if k not in (N_TOKENS, GEN)} if no_colbert else _MAIN_TYPES
    problems = _check_fields(name, fields, expected)
    pk = fields.get(PK)
    if pk is not None and not pk.get("is_primary"):
        problems.append(f"field {PK!r} is not the primary key")
    stored_dim = _dim(fields[DENSE]) if DENSE in fields else None
    if dim is not None and stored_dim is not None and stored_dim != dim:
        problems.append(f"field {DENSE!r} has dimension {stored_dim}, the encoder gives {dim}")
    struct_names = {s.get("name") for s in desc.get("struct_fields", []) or []}
    native = COLBERT_STRUCT in struct_names or COLBERT_STRUCT in fields
    settings, record_problems = (ColbertSettings(), []) if no_colbert else \
        parse_record(name, desc.get("properties"), "native" if native else "companion")
    problems += record_problems
    info: CollectionInfo | None = None
    if not problems:
        try:
            dense_index = yield probe("describe_index", name, index_name=DENSE)
            metric = (dense_index or {}).get("metric_type")
            if metric and str(metric).upper() != "IP":
                problems.append(f"field {DENSE!r} is indexed with metric {metric}, expected IP "
                                "(BGE-M3 vectors are normalized; scores are inner products)")
        except Exception:  # engines that cannot describe indexes: skip this check
            pass
    if not problems and no_colbert:
        info = CollectionInfo(name=name, dim=stored_dim or 0, layout=NO_COLBERT)
    elif not problems and native:
        info = CollectionInfo(name=name, dim=stored_dim or 0, layout="native", storage=settings.storage,
                              pool_factor=settings.pool_factor)
    elif not problems:
        companion = colbert_collection(name)
        if not (yield from exists(companion)):
            problems.append(f"its ColBERT companion collection {companion!r} is missing")
        else:
            cdesc = yield call("describe_collection", companion)
            cfields = _fields(cdesc)
            problems += [f"{companion!r}: {p}" for p in _check_fields(companion, cfields, _COLBERT_TYPES)]
            if not problems:
                info = CollectionInfo(name=name, dim=stored_dim or 0, layout="companion", colbert_name=companion,
                                      storage=settings.storage, pool_factor=settings.pool_factor)
    if problems:
        raise SchemaMismatchError(
            f"collection {name!r} exists but is not an m3_integrations BGE-M3 collection of the expected shape: "
            + "; ".join(problems)
            + ". Nothing was changed. Pass recreate=True to drop and recreate it (this deletes its data), "
            "or use another collection_name."
        )
    assert info is not None
    if colbert is not None and colbert != info.has_colbert:
        raise SchemaMismatchError(
            f"collection {name!r} " + ("stores no ColBERT vectors (it was made with with_colbert=False)" if colbert else
                                      "stores ColBERT vectors") + f", with_colbert={colbert} was asked. Nothing was "
            "changed. Leave with_colbert unset to use the collection as it is, pass recreate=True to rebuild it (this "
            "deletes its data), or use another collection_name.")
    if not info.has_colbert and (storage is not None or pool_factor is not None):
        raise SchemaMismatchError(
            f"collection {name!r} stores no ColBERT vectors (it was made with with_colbert=False), so "
            "colbert_storage / colbert_pool_factor do not apply; leave them unset, or pass recreate=True to rebuild "
            "it with ColBERT (this deletes its data)")
    differ = mismatches(name, ColbertSettings(info.storage, info.pool_factor), storage, pool_factor) \
        if info.has_colbert else None
    if differ:
        raise SchemaMismatchError(differ)
    if consistency is not None and not (yield from server_caps(client)).is_lite:
        recorded = _recorded_consistency(desc)
        if recorded is not None and recorded != consistency:
            raise SchemaMismatchError(
                f"collection {name!r} was created with consistency_level={recorded!r}, {consistency!r} was asked. "
                "Nothing was changed. Leave consistency_level unset to keep the collection's (each read can still "
                "ask for another level), or pass recreate=True to rebuild it (this deletes its data).")
    return info


def open_collection(client: Any, name: str) -> Program:
    """Validate and load ``name`` once per client (reopened milvus-lite files need a load before searching)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"collection_name must be a non-empty string, got {name!r}")
    st = state(client)
    info = st.ready.get(name)
    if info is not None:
        return info
    existing = yield call("list_collections")
    if name not in existing:
        visible = sorted(c for c in existing if not c.endswith(COLBERT_SUFFIX))
        raise CollectionNotFoundError(
            f"collection {name!r} does not exist (collections here: {visible}); upsert documents first"
        )
    info = yield from describe(client, name)
    yield call("load_collection", name)
    if info.colbert_name:
        yield call("load_collection", info.colbert_name)
    st.ready[name] = info
    return info


def drop(client: Any, name: str) -> Program:
    """Drop ``name`` and its companion collection (missing ones are skipped)."""
    forget(client, name)
    for target in (name, colbert_collection(name)):
        if (yield from exists(target)):
            yield call("drop_collection", target)
