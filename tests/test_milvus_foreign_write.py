"""Writing into Milvus collections this package did not create (``upsert_documents(..., fields=MilvusFields(...))``),
on milvus-lite: a collection made like Milvus' BGE-M3 hybrid-search tutorial, collections with settable keys, the
checks made before anything is written, and re-runs that never duplicate a row."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("milvus_lite")

from _milvus_layouts import TUTORIAL_TEXTS, make_tutorial_collection  # noqa: E402
from pymilvus import AnnSearchRequest, AsyncMilvusClient, DataType, MilvusClient, WeightedRanker  # noqa: E402

from m3_integrations import dense_score, sparse_score  # noqa: E402
from m3_integrations.milvus import (  # noqa: E402
    MilvusFields,
    SchemaMismatchError,
    aupsert_documents,
    hybrid_search,
    upsert_documents,
)

TEXTS = TUTORIAL_TEXTS
FIELDS = MilvusFields(dense="dense_vector", sparse="sparse_vector")


_make = make_tutorial_collection


def _rows(client, name, fields=("pk", "text")):
    return client.query(name, filter="", output_fields=list(fields), limit=1000)


@pytest.fixture
def client(tmp_path):
    c = MilvusClient(str(tmp_path / "t.db"))
    yield c
    c.close()


def test_tutorial_collection_written_searched_and_read_by_plain_pymilvus(client, encoder, recording):
    _make(client, "hybrid_demo", encoder.dim)
    keys = upsert_documents(client, TEXTS + [TEXTS[0]], "hybrid_demo", encoder, fields=FIELDS)
    assert len(keys) == len(TEXTS) + 1 and keys[0] == keys[-1]
    assert sorted(r["text"] for r in _rows(client, "hybrid_demo")) == sorted(TEXTS)
    # a repeated ingest adds no row and encodes nothing (the text is the only identity an auto-id row has)
    upsert_documents(client, TEXTS, "hybrid_demo", recording, fields=FIELDS)
    assert recording.seen == [] and len(_rows(client, "hybrid_demo")) == len(TEXTS)
    # also without the look-up of unchanged documents, and with new ids for the same texts
    upsert_documents(client, [{"id": f"x{i}", "text": t} for i, t in enumerate(TEXTS)], "hybrid_demo", encoder,
                     fields=FIELDS, skip_unchanged=False)
    assert len(_rows(client, "hybrid_demo")) == len(TEXTS)

    out = encoder.encode_documents(TEXTS, return_colbert=False)
    query = "Who started AI research?"
    q = encoder.encode_queries([query], return_colbert=False)
    ref = {t: (dense_score(q.dense[0], out.dense[i]), sparse_score(q.sparse[0], out.sparse[i]))
           for i, t in enumerate(TEXTS)}
    hits = hybrid_search(client, query, "hybrid_demo", encoder, limit=6, fields=FIELDS)
    fused = {t: (0.4 * d + 0.2 * s) / 0.6 for t, (d, s) in ref.items()}
    assert [h.text for h in hits] == sorted(fused, key=lambda t: -fused[t])
    for h in hits:
        assert h.scores["dense"] == pytest.approx(ref[h.text][0], abs=1e-4)
        assert h.scores["sparse"] == pytest.approx(ref[h.text][1], abs=1e-4)
    rrf = hybrid_search(client, query, "hybrid_demo", encoder, limit=6, fusion="rrf", fields=FIELDS)
    dense_rank = sorted(TEXTS, key=lambda t: -ref[t][0])
    sparse_rank = sorted((t for t in TEXTS if ref[t][1] > 0), key=lambda t: -ref[t][1])
    expected = {t: 0.4 / (61 + dense_rank.index(t)) + (0.2 / (61 + sparse_rank.index(t)) if t in sparse_rank else 0)
                for t in TEXTS}
    assert [h.text for h in rrf] == sorted(expected, key=lambda t: -expected[t])

    # the tutorial's own reads: a dense search and a weighted hybrid_search with output_fields=["text"]
    dense = client.search("hybrid_demo", data=[q.dense[0].tolist()], anns_field="dense_vector", limit=2,
                          output_fields=["text"], search_params={"metric_type": "IP", "params": {}})
    assert [h["entity"]["text"] for h in dense[0]] == dense_rank[:2]
    assert dense[0][0]["distance"] == pytest.approx(ref[dense_rank[0]][0], abs=1e-4)
    sparse_q = {int(k): float(v) for k, v in q.sparse[0].items()}
    both = client.hybrid_search(
        "hybrid_demo",
        [AnnSearchRequest([sparse_q], "sparse_vector", {"metric_type": "IP", "params": {}}, limit=6),
         AnnSearchRequest([q.dense[0].tolist()], "dense_vector", {"metric_type": "IP", "params": {}}, limit=6)],
        WeightedRanker(0.7, 1.0), limit=6, output_fields=["text"])
    assert sorted(h["entity"]["text"] for h in both[0]) == sorted(TEXTS)


def test_text_identity_keeps_stored_rows_and_says_so(client, encoder, caplog):
    _make(client, "meta", encoder.dim, extra=[("lang", DataType.VARCHAR, {"max_length": 8})])
    upsert_documents(client, [{"text": TEXTS[0], "metadata": {"lang": "en"}}], "meta", encoder, fields=FIELDS)
    with caplog.at_level(logging.WARNING, logger="m3_integrations.milvus._foreign_write"):
        upsert_documents(client, [{"text": TEXTS[0], "metadata": {"lang": "de"}}], "meta", encoder, fields=FIELDS)
    assert [r["lang"] for r in _rows(client, "meta", ("lang",))] == ["en"]  # never silently replaced
    assert "already stores their texts, with other metadata" in caplog.text and "MilvusFields(id=" in caplog.text


def test_id_field_replaces_a_changed_document(client, encoder):
    _make(client, "ids", encoder.dim, extra=[("doc_id", DataType.VARCHAR, {"max_length": 64}),
                                              ("meta", DataType.JSON, {})])
    fields = MilvusFields(dense="dense_vector", sparse="sparse_vector", id="doc_id", metadata="meta")
    docs = [{"id": f"d{i}", "text": t, "metadata": {"n": i}} for i, t in enumerate(TEXTS)]
    assert upsert_documents(client, docs, "ids", encoder, fields=fields) == [f"d{i}" for i in range(len(TEXTS))]
    upsert_documents(client, [{"id": "d1", "text": "Turing, revised.", "metadata": {"n": 10}}], "ids", encoder,
                     fields=fields)
    rows = _rows(client, "ids", ("doc_id", "text", "meta"))
    assert len(rows) == len(TEXTS)
    assert [(r["text"], r["meta"]) for r in rows if r["doc_id"] == "d1"] == [("Turing, revised.", {"n": 10})]
    hit = hybrid_search(client, "Turing, revised.", "ids", encoder, limit=1, fields=fields)[0]
    assert (hit.id, hit.metadata) == ("d1", {"n": 10})
    upsert_documents(client, docs[2:], "ids", encoder, fields=fields)
    assert len(_rows(client, "ids")) == len(TEXTS)


@pytest.mark.parametrize("pk", [DataType.VARCHAR, DataType.INT64], ids=["varchar", "int64"])
def test_settable_primary_key_uses_deterministic_ids(client, encoder, pk):
    _make(client, "keyed", encoder.dim, pk=pk, auto_id=False)
    docs = [{"id": f"k{i}", "text": t} for i, t in enumerate(TEXTS[:3])]
    upsert_documents(client, docs, "keyed", encoder, fields=FIELDS)
    first = {r["text"]: r["pk"] for r in _rows(client, "keyed")}
    upsert_documents(client, docs + [{"id": "k0", "text": "k0 rewritten"}], "keyed", encoder, fields=FIELDS)
    rows = {r["pk"]: r["text"] for r in _rows(client, "keyed")}
    assert len(rows) == 3 and rows[first[TEXTS[0]]] == "k0 rewritten"
    hits = hybrid_search(client, "k0 rewritten", "keyed", encoder, limit=1, fields=FIELDS)
    assert hits[0].text == "k0 rewritten"
    if pk == DataType.VARCHAR:
        assert set(rows) == {"k0", "k1", "k2"} and hits[0].id == "k0"  # the keys upsert_documents returns


async def test_async_client_writes_the_same_rows(tmp_path, encoder):
    path = str(tmp_path / "a.db")
    sync = MilvusClient(path)
    try:
        _make(sync, "demo", encoder.dim)
        aclient = AsyncMilvusClient(path)
        try:
            await aupsert_documents(aclient, TEXTS, "demo", encoder, fields=FIELDS)
            await aupsert_documents(aclient, TEXTS, "demo", encoder, fields=FIELDS)
        finally:
            await aclient.close()
        assert sorted(r["text"] for r in _rows(sync, "demo")) == sorted(TEXTS)
    finally:
        sync.close()


def test_collection_is_validated_before_anything_is_written(client, encoder, recording):
    _make(client, "short", encoder.dim, text_max=20)
    _make(client, "l2", encoder.dim, metric="L2")
    _make(client, "wide", encoder.dim + 1)
    _make(client, "strict", encoder.dim, extra=[("lang", DataType.VARCHAR, {"max_length": 4})])
    with pytest.raises(SchemaMismatchError, match=r"'dense' \(FLOAT_VECTOR\) is missing.*Nothing was changed"):
        upsert_documents(client, TEXTS, "short", encoder, fields=MilvusFields(dense="dense"))
    with pytest.raises(SchemaMismatchError, match="metric L2"):
        upsert_documents(client, TEXTS, "l2", encoder, fields=FIELDS)
    with pytest.raises(SchemaMismatchError, match=f"dimension {encoder.dim + 1}, the encoder gives {encoder.dim}"):
        upsert_documents(client, TEXTS, "wide", encoder, fields=FIELDS)
    with pytest.raises(ValueError, match="does not fit field 'text'.*max_length 20.*chunks of at most 20 bytes"):
        upsert_documents(client, ["short", TEXTS[0]], "short", recording, fields=FIELDS)
    assert recording.seen == []  # refused before encoding
    with pytest.raises(ValueError, match="metadata key 'tag' is not a field of collection 'strict'"):
        upsert_documents(client, [{"text": "x", "metadata": {"lang": "en", "tag": 1}}], "strict", encoder,
                         fields=FIELDS)
    with pytest.raises(ValueError, match=r"needs a value for \['lang'\]"):
        upsert_documents(client, ["x"], "strict", encoder, fields=FIELDS)
    with pytest.raises(ValueError, match="metadata 'lang' is 7 bytes"):
        upsert_documents(client, [{"text": "x", "metadata": {"lang": "english"}}], "strict", encoder, fields=FIELDS)
    with pytest.raises(ValueError, match="recreate=True, with_colbert=False cannot apply"):
        upsert_documents(client, TEXTS, "short", encoder, fields=FIELDS, recreate=True, with_colbert=False)
    for name in ("short", "l2", "wide", "strict"):
        assert _rows(client, name) == []
    assert upsert_documents(client, [], "short", encoder, fields=FIELDS) == []
