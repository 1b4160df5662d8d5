"""The Qdrant and Milvus store functions agree: keys returned, ids read back, empty batches, async twins, and a
clear error for the wrong kind of client (real qdrant-client local mode, Qdrant Edge and milvus-lite)."""

from __future__ import annotations

import importlib

import pytest

from m3_integrations._ingest import Document, point_id
from m3_integrations.qdrant import Condition

TWINS = ("get_documents", "delete_documents", "delete_by_filter", "count_documents", "drop_collection")


def _client(kind: str, directory):
    if kind == "qdrant":
        from qdrant_client import QdrantClient

        return QdrantClient(":memory:")
    if kind == "edge":
        from m3_integrations.qdrant import QdrantEdgeStore

        return QdrantEdgeStore(directory / "edge")
    from pymilvus import MilvusClient

    client = MilvusClient(str(directory / "milvus.db"))
    client._m3_path = str(directory / "milvus.db")
    return client


@pytest.fixture(scope="module", params=["qdrant", "edge", "milvus"])
def backend(request, tmp_path_factory):
    client = _client(request.param, tmp_path_factory.mktemp(f"sf-{request.param}"))
    adapter = importlib.import_module("m3_integrations.milvus" if request.param == "milvus"
                                      else "m3_integrations.qdrant")
    yield request.param, client, adapter
    client.close()


def test_one_key_per_input_document_and_ids_read_back(backend, encoder):
    _, client, m = backend
    derived = point_id(Document("alpha"))
    docs = [{"text": "alpha"}, {"text": "beta", "id": "x"}, {"text": "alpha"}, {"text": "gamma", "id": "x"}]
    assert m.upsert_documents(client, docs, "keys", encoder) == [derived, "x", derived, "x"]
    assert m.count_documents(client, "keys") == 2
    got = {d.id: d.text for d in m.get_documents(client, "keys")}
    assert got == {derived: "alpha", "x": "gamma"}  # the derived id comes back (Milvus gave None)
    # a document read back and stored again is the same document, not a copy
    m.upsert_documents(client, m.get_documents(client, "keys"), "keys", encoder)
    assert m.count_documents(client, "keys") == 2
    assert [d.id for d in m.get_documents(client, "keys", ids=[derived, "x", derived])] == [derived, "x"]
    m.drop_collection(client, "keys")


def test_empty_batch_is_a_no_op(backend, encoder):
    _, client, m = backend
    assert m.upsert_documents(client, [], "never", encoder) == []
    assert m.upsert_documents(client, iter([]), "never", encoder, recreate=True) == []
    with pytest.raises(m.CollectionNotFoundError):
        m.count_documents(client, "never")  # nothing was created


async def test_async_twins_with_a_sync_client(backend, encoder):
    _, client, m = backend
    docs = [{"text": f"text {i}", "id": f"d{i}", "metadata": {"n": i}} for i in range(4)]
    assert await m.aupsert_documents(client, docs, "atwins", encoder) == [d["id"] for d in docs]
    assert await m.acount_documents(client, "atwins") == 4
    assert [d.id for d in await m.aget_documents(client, "atwins", ids=["d2", "d0"])] == ["d2", "d0"]
    await m.adelete_documents(client, ["d0"], "atwins")
    await m.adelete_by_filter(client, Condition("n", "eq", 1), "atwins")
    assert await m.acount_documents(client, "atwins", Condition("n", "gte", 0)) == 2
    await m.adrop_collection(client, "atwins")
    assert "atwins" not in _collections(client)
    await m.adrop_collection(client, "atwins")  # idempotent


def _collections(client):
    if hasattr(client, "list_collections") and not hasattr(client, "get_collections"):
        names = client.list_collections()
        return set(names)
    return {c.name for c in client.get_collections().collections}


async def test_async_qdrant_client_twins(encoder):
    from qdrant_client import AsyncQdrantClient

    from m3_integrations import qdrant as m

    client = AsyncQdrantClient(":memory:")
    try:
        await m.aupsert_documents(client, [{"text": "one", "id": "1"}, {"text": "two", "id": "2"}], "aq", encoder)
        assert await m.acount_documents(client, "aq") == 2
        assert [d.text for d in await m.aget_documents(client, "aq", ids=["2"])] == ["two"]
        await m.adelete_documents(client, ["2"], "aq")
        assert await m.acount_documents(client, "aq") == 1
        for name in TWINS:  # the sync functions name the async twin, which exists
            with pytest.raises(TypeError, match=f"await a{name}"):
                getattr(m, name)(client, *([["1"]] if name == "delete_documents" else
                                           [Condition("n", "eq", 1)] if name == "delete_by_filter" else []),
                                 collection_name="aq")
            assert callable(getattr(m, f"a{name}"))
        await m.adrop_collection(client, "aq")
    finally:
        await client.close()


async def test_async_milvus_client_twins(tmp_path, encoder):
    from pymilvus import AsyncMilvusClient, MilvusClient

    from m3_integrations import milvus as m

    path = str(tmp_path / "am.db")
    starter = MilvusClient(path)  # milvus-lite: the sync client starts the embedded server for this file
    client = AsyncMilvusClient(path)
    try:
        await m.aupsert_documents(client, [{"text": "one", "id": "1"}, {"text": "two"}], "am", encoder)
        assert await m.acount_documents(client, "am") == 2
        got = await m.aget_documents(client, "am")
        assert sorted(d.id for d in got) == sorted(["1", point_id(Document("two"))])
        await m.adelete_documents(client, ["1"], "am")
        assert await m.acount_documents(client, "am") == 1
        for name in TWINS + ("upsert_documents",):  # no "coroutine is not iterable": a clear error
            with pytest.raises(TypeError, match=f"await a{name}"):
                args = [["x"]] if name in ("delete_documents", "upsert_documents") else \
                    [Condition("n", "eq", 1)] if name == "delete_by_filter" else []
                getattr(m, name)(client, *args)
        with pytest.raises(TypeError, match="ahybrid_search"):
            m.hybrid_search(client, "q", "am", encoder)
        await m.adrop_collection(client, "am")
    finally:
        await client.close()
        starter.close()


def test_wrong_kind_of_client_is_named(tmp_path, encoder):
    from pymilvus import MilvusClient
    from qdrant_client import QdrantClient

    from m3_integrations import milvus, qdrant

    q = QdrantClient(":memory:")
    with pytest.raises(TypeError, match="MilvusClient.*m3_integrations.qdrant"):
        milvus.get_documents(q, "x")
    with pytest.raises(TypeError, match="MilvusClient"):
        milvus.upsert_documents(q, ["x"], "x", encoder)
    mc = MilvusClient(str(tmp_path / "w.db"))
    with pytest.raises(TypeError, match="QdrantClient"):
        qdrant.count_documents(mc, "x")
    mc.close()


def test_milvus_read_consistency_level(tmp_path, encoder):
    from pymilvus import MilvusClient

    from m3_integrations import milvus as m

    class Recording(MilvusClient):
        """The real client, recording the consistency level of each read."""

        levels: list = []

        def _record(self, kwargs):
            self.levels.append(kwargs.get("consistency_level"))

        def search(self, *args, **kwargs):
            self._record(kwargs)
            return super().search(*args, **kwargs)

        def query(self, *args, **kwargs):
            self._record(kwargs)
            return super().query(*args, **kwargs)

        def hybrid_search(self, *args, **kwargs):
            self._record(kwargs)
            return super().hybrid_search(*args, **kwargs)

    client = Recording(str(tmp_path / "c.db"))
    m.upsert_documents(client, [{"text": f"text {i}", "id": str(i)} for i in range(4)], "cl", encoder)
    strong = m.hybrid_search(client, "text 1", "cl", encoder, limit=3)
    client.levels.clear()
    for level in ("Eventually", "Bounded"):
        got = m.hybrid_search(client, "text 1", "cl", encoder, limit=3, consistency_level=level)
        assert [(h.id, round(h.score, 5)) for h in got] == [(h.id, round(h.score, 5)) for h in strong]
        assert m.count_documents(client, "cl", consistency_level=level) == 4
        assert [d.id for d in m.get_documents(client, "cl", ids=["2"], consistency_level=level)] == ["2"]
        assert client.levels and set(client.levels) == {level}  # every read of the call, none left out
        client.levels.clear()
    m.hybrid_search(client, "text 1", "cl", encoder, limit=3)
    assert set(client.levels) == {None}  # the collection's own (Strong) when not asked
    with pytest.raises(ValueError, match="Strong, Bounded, Session, Eventually"):
        m.count_documents(client, "cl", consistency_level="strong-ish")
    client.close()
