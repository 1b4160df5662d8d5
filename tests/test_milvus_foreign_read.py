"""Reading, counting and deleting documents of Milvus collections this package did not create
(``get_documents`` / ``count_documents`` / ``delete_documents`` / ``delete_by_filter`` and their async twins with
``fields=MilvusFields(...)``), on milvus-lite: the keys ``upsert_documents`` returns are the ``Hit.id`` of searches
and the ids ``get_documents`` takes and gives back, for each kind of primary key."""

from __future__ import annotations

import pytest

pytest.importorskip("milvus_lite")

from _milvus_layouts import TUTORIAL_TEXTS, make_tutorial_collection  # noqa: E402
from pymilvus import AsyncMilvusClient, DataType, MilvusClient  # noqa: E402

from m3_integrations._query import Condition  # noqa: E402
from m3_integrations.milvus import (  # noqa: E402
    CollectionNotFoundError,
    MilvusFields,
    acount_documents,
    adelete_by_filter,
    adelete_documents,
    aget_documents,
    count_documents,
    delete_by_filter,
    delete_documents,
    get_documents,
    hybrid_search,
    upsert_documents,
)

TEXTS = TUTORIAL_TEXTS[:4]
FIELDS = MilvusFields(dense="dense_vector", sparse="sparse_vector")


_make = make_tutorial_collection


def _docs():
    return [{"text": t, "metadata": {"topic": "ai" if i < 2 else "other", "n": i}} for i, t in enumerate(TEXTS)]


@pytest.fixture
def client(tmp_path):
    c = MilvusClient(str(tmp_path / "t.db"))
    yield c
    c.close()


def test_tutorial_layout_keys_are_the_auto_ids_searches_return(client, encoder):
    """Auto-id primary key, no id field, metadata in the dynamic field (the tutorial's layout plus dynamic keys)."""
    _make(client, "demo", encoder.dim, dynamic=True)
    keys = upsert_documents(client, _docs() + [_docs()[0]], "demo", encoder, fields=FIELDS)
    stored = {str(r["pk"]): r["text"] for r in client.query("demo", filter="", output_fields=["pk", "text"],
                                                            limit=100)}
    assert keys[:-1] == [k for t in TEXTS for k, s in stored.items() if s == t] and keys[-1] == keys[0]
    assert upsert_documents(client, _docs(), "demo", encoder, fields=FIELDS) == keys[:-1]  # unchanged: same keys
    hit = hybrid_search(client, TEXTS[1], "demo", encoder, limit=1, fields=FIELDS)[0]
    assert hit.id == keys[1] and hit.metadata == {"topic": "ai", "n": 1}

    docs = get_documents(client, "demo", ids=[keys[2], "404", keys[0]], fields=FIELDS)
    assert [(d.id, d.text, d.metadata) for d in docs] == [(keys[2], TEXTS[2], {"topic": "other", "n": 2}),
                                                           (keys[0], TEXTS[0], {"topic": "ai", "n": 0})]
    assert sorted(d.text for d in get_documents(client, "demo", fields=FIELDS)) == sorted(TEXTS)
    ai = get_documents(client, "demo", query_filter=Condition("topic", "eq", "ai"), fields=FIELDS)
    assert sorted(d.id for d in ai) == sorted(keys[:2])
    assert count_documents(client, "demo", fields=FIELDS) == 4
    assert count_documents(client, "demo", Condition("topic", "eq", "other"), fields=FIELDS) == 2
    assert count_documents(client, "demo", "n >= {low}", fields=FIELDS, filter_params={"low": 1}) == 3
    assert len(get_documents(client, "demo", fields=FIELDS, limit=3)) == 3

    delete_documents(client, [keys[0], "404"], "demo", fields=FIELDS)
    assert count_documents(client, "demo", fields=FIELDS) == 3 and not get_documents(client, "demo", [keys[0]],
                                                                                     fields=FIELDS)
    delete_by_filter(client, Condition("topic", "eq", "other"), "demo", fields=FIELDS)
    assert [d.text for d in get_documents(client, "demo", fields=FIELDS)] == [TEXTS[1]]


def test_id_field_and_metadata_json(client, encoder):
    _make(client, "ids", encoder.dim, extra=[("doc_id", DataType.VARCHAR, {"max_length": 64}),
                                              ("meta", DataType.JSON, {})])
    fields = MilvusFields(dense="dense_vector", sparse="sparse_vector", id="doc_id", metadata="meta")
    docs = [{"id": f"d{i}", **d} for i, d in enumerate(_docs())]
    assert upsert_documents(client, docs, "ids", encoder, fields=fields) == ["d0", "d1", "d2", "d3"]
    got = get_documents(client, "ids", ["d3", "d1"], fields=fields)
    assert [(d.id, d.text, d.metadata) for d in got] == [("d3", TEXTS[3], {"topic": "other", "n": 3}),
                                                         ("d1", TEXTS[1], {"topic": "ai", "n": 1})]
    assert count_documents(client, "ids", Condition("topic", "eq", "ai"), fields=fields) == 2
    delete_by_filter(client, 'meta["n"] == {n}', "ids", fields=fields, filter_params={"n": 2})
    delete_documents(client, ["d0"], "ids", fields=fields)
    assert sorted(d.id for d in get_documents(client, "ids", fields=fields)) == ["d1", "d3"]


@pytest.mark.parametrize("pk", [DataType.VARCHAR, DataType.INT64], ids=["varchar", "int64"])
def test_settable_primary_key(client, encoder, pk):
    _make(client, "keyed", encoder.dim, pk=pk, auto_id=False, dynamic=True)
    docs = [{"id": f"k{i}", **d} for i, d in enumerate(_docs())]
    keys = upsert_documents(client, docs, "keyed", encoder, fields=FIELDS)
    pks = [str(r["pk"]) for r in client.query("keyed", filter="", output_fields=["pk", "text"], limit=100)
           if r["text"] == TEXTS[1]]
    assert keys[1] == pks[0]
    assert hybrid_search(client, TEXTS[1], "keyed", encoder, limit=1, fields=FIELDS)[0].id == pks[0]
    if pk == DataType.VARCHAR:
        assert keys == ["k0", "k1", "k2", "k3"]
    # the stored key, and the id the document was written with, both name it
    assert [d.id for d in get_documents(client, "keyed", [keys[1], "k2"], fields=FIELDS)] == [keys[1], keys[2]]
    delete_documents(client, ["k0", keys[3]], "keyed", fields=FIELDS)
    assert sorted(d.text for d in get_documents(client, "keyed", fields=FIELDS)) == sorted(TEXTS[1:3])


def test_errors_name_the_problem(client, encoder):
    with pytest.raises(CollectionNotFoundError, match="'nowhere' does not exist"):
        get_documents(client, "nowhere", fields=FIELDS)
    with pytest.raises(CollectionNotFoundError):
        count_documents(client, "nowhere", fields=FIELDS)
    _make(client, "demo", encoder.dim)
    with pytest.raises(TypeError, match="fields must be a MilvusFields"):
        delete_documents(client, ["1"], "demo", fields={"dense": "dense_vector"})
    with pytest.raises(ValueError, match="needs a filter"):
        delete_by_filter(client, None, "demo", fields=FIELDS)


async def test_async_twins(tmp_path, encoder):
    path = str(tmp_path / "a.db")
    sync = MilvusClient(path)
    try:
        _make(sync, "demo", encoder.dim, dynamic=True)
        keys = upsert_documents(sync, _docs(), "demo", encoder, fields=FIELDS)
    finally:
        sync.close()
    aclient = AsyncMilvusClient(path)
    try:
        assert await acount_documents(aclient, "demo", fields=FIELDS) == 4
        got = await aget_documents(aclient, "demo", [keys[3]], fields=FIELDS)
        assert [(d.id, d.text) for d in got] == [(keys[3], TEXTS[3])]
        await adelete_documents(aclient, [keys[3]], "demo", fields=FIELDS)
        await adelete_by_filter(aclient, Condition("topic", "eq", "ai"), "demo", fields=FIELDS)
        assert [d.text for d in await aget_documents(aclient, "demo", fields=FIELDS)] == [TEXTS[2]]
    finally:
        await aclient.close()
