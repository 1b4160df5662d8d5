"""`connect()` of each adapter: a working client, or one clear error naming the address."""

from __future__ import annotations

import pytest


def test_qdrant_connect_to_an_unreachable_server_names_it():
    from m3_integrations.qdrant import connect

    with pytest.raises(ConnectionError, match=r"http://127\.0\.0\.1:9"):
        connect("http://127.0.0.1:9", timeout=2)


def test_qdrant_connect_path_opens_the_embedded_store(tmp_path, encoder):
    from m3_integrations.qdrant import QdrantEdgeStore, connect, count_documents, upsert_documents

    store = connect(path=tmp_path / "edge")
    assert isinstance(store, QdrantEdgeStore)
    upsert_documents(store, ["a text", "another text"], encoder=encoder, show_progress=False)
    assert count_documents(store) == 2
    with pytest.raises(ValueError, match="exactly one"):
        connect()


def test_milvus_connect_opens_a_lite_file(tmp_path, encoder):
    from m3_integrations.milvus import connect, count_documents, upsert_documents

    client = connect(tmp_path / "m3.db")
    upsert_documents(client, ["a text", "another text"], encoder=encoder, show_progress=False)
    assert count_documents(client) == 2
    client.close()
