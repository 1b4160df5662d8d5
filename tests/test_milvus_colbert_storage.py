"""ColBERT storage settings of the Milvus adapter (colbert_storage, colbert_pool_factor), on real milvus-lite."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from pymilvus import MilvusClient  # noqa: E402

from m3_integrations import colbert_score  # noqa: E402
from m3_integrations.encoder.pooling import pool_colbert, pooled_length  # noqa: E402
from m3_integrations.milvus import (  # noqa: E402
    SchemaMismatchError,
    count_documents,
    hybrid_search,
    upsert_documents,
)
from m3_integrations.milvus._codecs import (  # noqa: E402
    RECORD_KEY,
    STORAGES,
    check_native,
    decode_rows,
    encode_rows,
    for_new,
    row_nbytes,
    similarities,
)
from m3_integrations.milvus._colbert import companion_rows, doc_gen, generation  # noqa: E402
from m3_integrations.milvus._driver import run_sync  # noqa: E402
from m3_integrations.milvus._schema import _colbert_schema, _create_one, _main_schema  # noqa: E402

WORDS = ("river fox dog hybrid search vector sparse dense lexical semantic quick lazy brown bank sunny "
         "model embedding database token matching").split()
DOCS = [{"text": " ".join(np.random.default_rng(i).choice(WORDS, size=6 + i % 9)) + f" {i}", "id": f"d{i}"}
        for i in range(12)]
QUERIES = ["quick fox near the river", "hybrid lexical search", "vector database embedding"]

# Score error bounds of each storage on the tiny model (32-d rows, where 8 / 4-bit codes are coarsest; at
# 1024-d the errors are ~10x smaller, see docs/benchmarks.md). Measured maxima here: float32 1.1e-7,
# float16 5.0e-5, 8bit 5.9e-4, 4bit 1.2e-2.
BOUND = {"float32": 1e-6, "float16": 5e-4, "8bit": 3e-3, "4bit": 5e-2}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    c = MilvusClient(str(tmp_path_factory.mktemp("milvus_cs") / "m3.db"))
    yield c
    c.close()


def _blob_bytes(client, name: str) -> int:
    import base64

    rows = client.query(name + "__colbert", filter='pk != ""', output_fields=["blob"], limit=16384)
    return sum(len(base64.b64decode(r["blob"])) for r in rows)


def _stored_tokens(client, name: str) -> dict[str, int]:
    rows = client.query(name, filter='pk != ""', output_fields=["doc_id", "n_tokens"], limit=16384)
    return {r["doc_id"]: int(r["n_tokens"]) for r in rows}


def _record(client, name: str) -> dict:
    return json.loads(client.describe_collection(name)["properties"][RECORD_KEY])


# ------------------------------------------------------------------------------------------- codecs
@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("dim", [1024, 33])
def test_codec_round_trip_within_its_bound(storage, dim):
    rng = np.random.default_rng(dim)
    doc = rng.standard_normal((40, dim)).astype(np.float32)
    doc /= np.linalg.norm(doc, axis=1, keepdims=True)
    doc[3] = 0.25  # a constant row decodes exactly
    raw = encode_rows(doc, storage)
    assert len(raw) == 40 * row_nbytes(storage, dim)
    back = decode_rows(raw, storage, dim)
    assert back.shape == doc.shape and back.dtype == np.float32
    np.testing.assert_allclose(back[3], doc[3], atol=1e-6)
    # the guaranteed bound of a rounding code: half a step per value
    if storage in ("8bit", "4bit"):
        half_step = (doc.max(axis=1) - doc.min(axis=1)) / (255 if storage == "8bit" else 15) / 2
        assert (np.abs(back - doc) <= half_step[:, None] * (1 + 1e-5) + 1e-7).all()
    else:
        assert (np.abs(back - doc) <= (2.0**-11 if storage == "float16" else 0) * np.abs(doc) + 1e-7).all()
    q = rng.standard_normal((8, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    # the scoring path (codes multiplied without decoding them) equals the decoded rows' products
    np.testing.assert_allclose(similarities(q, raw, storage, dim), q @ back.T, atol=2e-6)
    err = abs(colbert_score(q, back) - colbert_score(q, doc))
    assert err <= {"float32": 1e-6, "float16": 1e-3, "8bit": 5e-3, "4bit": 6e-2}[storage]
    # many documents joined decode in one step
    both = decode_rows(raw + encode_rows(doc[:5], storage), storage, dim)
    np.testing.assert_array_equal(both[:40], back)
    with pytest.raises(ValueError, match="not whole"):
        decode_rows(raw[:-1], storage, dim)


def test_compact_codes_are_smaller():
    assert [row_nbytes(s, 1024) for s in STORAGES] == [4096, 2048, 1032, 520]


def test_codec_refuses_bad_matrices():
    with pytest.raises(ValueError, match="2-d"):
        encode_rows(np.zeros(4, np.float32), "8bit")
    with pytest.raises(ValueError, match="NaN"):
        encode_rows(np.full((2, 4), np.nan, np.float32), "4bit")


# ------------------------------------------------------------------------------ settings through Milvus
@pytest.mark.parametrize("storage", STORAGES)
def test_each_storage_round_trips_with_its_bound(client, encoder, storage):
    name = f"st_{storage}"
    upsert_documents(client, DOCS, name, encoder, colbert_storage=storage, batch_size=5)
    assert _record(client, name) == {"version": 1, "storage": storage, "pool_factor": 1}
    outs = encoder.encode_documents([d["text"] for d in DOCS])
    # stored in the codec's size, not as float16 relabelled
    assert _blob_bytes(client, name) == sum(len(m) for m in outs.colbert) * row_nbytes(storage, encoder.dim)
    ref = {d["id"]: outs.colbert[i] for i, d in enumerate(DOCS)}
    worst = 0.0
    for query in QUERIES:
        q = encoder.encode_queries([query]).colbert[0]
        # queries need no storage flag: the collection's record says how to decode
        hits = hybrid_search(client, query, name, encoder, limit=len(DOCS), mode="colbert", prefetch_limit=len(DOCS))
        assert len(hits) == len(DOCS)
        for hit in hits:
            worst = max(worst, abs(hit.scores["colbert"] - colbert_score(q, ref[hit.id])))
    assert worst <= BOUND[storage]
    if storage != "float32":
        assert worst > 0  # the codes really are what was scored


def test_pool_factor_recorded_and_applied(client, encoder):
    name = "pooled"
    upsert_documents(client, DOCS[:8], name, encoder, colbert_pool_factor=2, colbert_storage="float32")
    assert _record(client, name)["pool_factor"] == 2
    full = encoder.encode_documents([d["text"] for d in DOCS])
    stored = _stored_tokens(client, name)
    assert all(stored[d["id"]] == pooled_length(len(full.colbert[i]), 2) for i, d in enumerate(DOCS[:8]))
    assert sum(stored.values()) < sum(len(m) for m in full.colbert[:8])  # fewer rows stored
    # a later upsert without the flag pools with the recorded factor too
    upsert_documents(client, DOCS[8:], name, encoder)
    stored = _stored_tokens(client, name)
    assert all(stored[d["id"]] == pooled_length(len(full.colbert[i]), 2) for i, d in enumerate(DOCS) if i >= 8)
    assert count_documents(client, name) == len(DOCS)
    pooled = dict(zip([d["id"] for d in DOCS], pool_colbert(full.colbert, 2), strict=True))
    q = encoder.encode_queries([QUERIES[0]]).colbert[0]
    hits = hybrid_search(client, QUERIES[0], name, encoder, limit=len(DOCS), mode="colbert",
                         prefetch_limit=len(DOCS))  # no pool flag on the query
    assert len(hits) == len(DOCS)
    for hit in hits:
        assert hit.scores["colbert"] == pytest.approx(colbert_score(q, pooled[hit.id]), abs=1e-5)


def test_settings_that_differ_from_the_record_raise(client, encoder, recording):
    name = "mismatch"
    upsert_documents(client, DOCS[:3], name, encoder, colbert_storage="8bit", colbert_pool_factor=2)
    blobs = _blob_bytes(client, name)
    with pytest.raises(SchemaMismatchError) as err:
        upsert_documents(client, DOCS[3:5], name, recording, colbert_storage="4bit")
    text = str(err.value)
    assert "colbert_storage='4bit'" in text and "'8bit'" in text and "recreate=True" in text
    with pytest.raises(SchemaMismatchError, match=r"colbert_pool_factor=1 was asked.*pooled with 2"):
        upsert_documents(client, DOCS[3:5], name, recording, colbert_pool_factor=1)
    assert recording.seen == []  # refused before encoding anything
    assert count_documents(client, name) == 3 and _blob_bytes(client, name) == blobs  # nothing changed
    # the same settings, or none, are accepted; recreate=True rebuilds with new ones
    upsert_documents(client, DOCS[3:4], name, encoder, colbert_storage="8bit", colbert_pool_factor=2)
    upsert_documents(client, DOCS[4:5], name, encoder)
    assert count_documents(client, name) == 5
    upsert_documents(client, DOCS[:2], name, encoder, colbert_storage="4bit", recreate=True)
    assert _record(client, name) == {"version": 1, "storage": "4bit", "pool_factor": 1}
    assert count_documents(client, name) == 2


def test_unsupported_settings_are_refused_clearly(client, encoder, recording):
    with pytest.raises(ValueError, match=r"'1bit' is not offered on Milvus.*'4bit'"):
        upsert_documents(client, DOCS[:2], "bad", recording, colbert_storage="1bit")
    with pytest.raises(ValueError, match=r"colbert_storage must be one of 'float32', 'float16', '8bit', '4bit'"):
        upsert_documents(client, DOCS[:2], "bad", recording, colbert_storage="int8")
    for factor in (0, 1.5, True, "2"):
        with pytest.raises(ValueError, match="colbert_pool_factor must be an int >= 1"):
            upsert_documents(client, DOCS[:2], "bad", recording, colbert_pool_factor=factor)
    with pytest.raises(ValueError, match=r"colbert_storage='8bit' is not available with the native.*"
                                         r"colbert_layout='companion'"):
        upsert_documents(client, DOCS[:2], "bad", recording, colbert_storage="8bit", colbert_layout="native")
    assert recording.seen == [] and not client.has_collection("bad")
    assert for_new("native", None, None).storage == "float32"
    check_native("float32")
    with pytest.raises(ValueError, match="'float16' is not available with the native"):
        for_new("native", "float16", 2)


def test_collection_made_before_the_settings_still_reads_as_float16(client, encoder):
    """A collection written by the previous version: no record, float16 blobs, nothing pooled."""
    name, dim = "legacy", encoder.dim
    schema, index = _main_schema(dim, native=False, lite=True)
    cschema, cindex = _colbert_schema()
    run_sync(client, _create_one(name + "__colbert", cschema, cindex))
    run_sync(client, _create_one(name, schema, index))
    assert RECORD_KEY not in (client.describe_collection(name).get("properties") or {})
    outs = encoder.encode_documents([d["text"] for d in DOCS[:6]])
    from m3_integrations._ingest import Document, point_id

    rows, crows = [], []
    for i, d in enumerate(DOCS[:6]):
        pk, m = point_id(Document(text=d["text"], id=d["id"])), outs.colbert[i]
        gen = generation(d["text"], len(m))
        raw = np.asarray(m, np.float16).tobytes()  # the old format, written independently of the codecs
        assert companion_rows(pk, gen, m)[0]["blob"].startswith(__import__("base64").b64encode(raw[:48]).decode())
        crows += companion_rows(pk, gen, m)
        rows.append({"pk": pk, "doc_id": d["id"], "text": d["text"], "metadata": {}, "dense": outs.dense[i],
                     "sparse": {int(t): float(w) for t, w in outs.sparse[i].items()} or {1: 1e-30},
                     "n_tokens": len(m), "gen": gen})
        assert doc_gen(pk, gen) == crows[-1]["doc_gen"]
    client.insert(name + "__colbert", crows)
    client.insert(name, rows)
    q = encoder.encode_queries([QUERIES[1]]).colbert[0]
    hits = hybrid_search(client, QUERIES[1], name, encoder, limit=6, mode="colbert", prefetch_limit=6)
    ref = {d["id"]: outs.colbert[i] for i, d in enumerate(DOCS[:6])}
    assert len(hits) == 6
    for hit in hits:
        assert hit.scores["colbert"] == pytest.approx(colbert_score(q, ref[hit.id]), abs=BOUND["float16"])
    # it keeps working as float16 / pool 1: appends without flags, refuses other settings
    upsert_documents(client, DOCS[6:8], name, encoder)
    assert count_documents(client, name) == 8
    assert _blob_bytes(client, name) == sum(_stored_tokens(client, name).values()) * row_nbytes("float16", dim)
    upsert_documents(client, DOCS[8:9], name, encoder, colbert_storage="float16", colbert_pool_factor=1)
    with pytest.raises(SchemaMismatchError, match="stores 'float16'"):
        upsert_documents(client, DOCS[9:10], name, encoder, colbert_storage="4bit")


async def test_async_ingest_records_and_applies_the_settings(encoder, tmp_path):
    from pymilvus import AsyncMilvusClient

    from m3_integrations.milvus import ahybrid_search, aupsert_documents

    path = str(tmp_path / "async.db")
    aclient = AsyncMilvusClient(path)
    try:
        await aupsert_documents(aclient, DOCS[:6], "async_st", encoder, colbert_storage="4bit", colbert_pool_factor=2)
        with pytest.raises(SchemaMismatchError, match="'4bit'"):
            await aupsert_documents(aclient, DOCS[6:8], "async_st", encoder, colbert_storage="8bit")
        await aupsert_documents(aclient, DOCS[6:8], "async_st", encoder)  # the recorded settings
        hits = await ahybrid_search(aclient, QUERIES[0], "async_st", encoder, limit=8, mode="colbert",
                                    prefetch_limit=8)
    finally:
        await aclient.close()
    sync = MilvusClient(path)
    try:
        assert _record(sync, "async_st") == {"version": 1, "storage": "4bit", "pool_factor": 2}
        full = encoder.encode_documents([d["text"] for d in DOCS[:8]])
        assert _stored_tokens(sync, "async_st") == {
            d["id"]: pooled_length(len(full.colbert[i]), 2) for i, d in enumerate(DOCS[:8])}
    finally:
        sync.close()
    pooled = dict(zip([d["id"] for d in DOCS[:8]], pool_colbert(full.colbert, 2), strict=True))
    q = encoder.encode_queries([QUERIES[0]]).colbert[0]
    assert len(hits) == 8
    for hit in hits:
        assert hit.scores["colbert"] == pytest.approx(colbert_score(q, pooled[hit.id]), abs=BOUND["4bit"])


def test_reingest_replaces_the_previous_generation_found_by_primary_key(client, encoder):
    name = "regen"
    long_text = " ".join(WORDS) * 20  # several blob parts
    upsert_documents(client, [{"text": long_text, "id": "a"}, {"text": "short", "id": "b"}], name, encoder,
                     colbert_storage="float32")
    parts = client.query(name + "__colbert", filter='doc_pk != ""', output_fields=["doc_gen"], limit=100)
    assert len(parts) > 2
    upsert_documents(client, [{"text": "now short", "id": "a"}], name, encoder)
    parts = client.query(name + "__colbert", filter='doc_pk != ""', output_fields=["doc_gen"], limit=100)
    stored = client.query(name, filter='pk != ""', output_fields=["pk", "gen"], limit=10)
    assert sorted(p["doc_gen"] for p in parts) == sorted(doc_gen(r["pk"], r["gen"]) for r in stored)
    assert _blob_bytes(client, name) == sum(_stored_tokens(client, name).values()) * row_nbytes("float32", encoder.dim)


def test_new_collections_store_4bit_by_default(client, encoder, monkeypatch):
    from m3_integrations.milvus import _codecs

    monkeypatch.setattr(_codecs, "DEFAULT_STORAGE", "4bit")  # the suite pins float16 (conftest); this is the default
    upsert_documents(client, DOCS[:4], "default_storage", encoder)
    assert _record(client, "default_storage")["storage"] == "4bit"
    full = encoder.encode_documents([d["text"] for d in DOCS[:4]])
    dim = full.colbert[0].shape[1]
    rows = sum(len(m) for m in full.colbert)
    assert _blob_bytes(client, "default_storage") == rows * (dim // 2 + 8)  # nibbles + offset and scale per row
