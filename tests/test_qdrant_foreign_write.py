"""Writing into Qdrant collections this package did not create (``upsert_documents(..., fields=QdrantFields(...))``):
a collection made by langchain-qdrant's ``QdrantVectorStore`` (hybrid, built with ``M3Embeddings`` +
``M3SparseEmbeddings``: FastEmbed cannot download here), one made with the raw client in another layout, and a
Qdrant Edge shard made with ``qdrant_edge`` directly. Each side finds the other's documents; a re-ingest adds
nothing; the collection is checked before anything is written; a point that is not ours is never replaced."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("langchain_qdrant")

from langchain_qdrant import QdrantVectorStore, RetrievalMode  # noqa: E402
from qdrant_client import AsyncQdrantClient, QdrantClient, models  # noqa: E402

from m3_integrations import dense_score, sparse_score  # noqa: E402
from m3_integrations._ingest import Document, point_id  # noqa: E402
from m3_integrations.langchain import M3Embeddings, M3SparseEmbeddings  # noqa: E402
from m3_integrations.qdrant import (  # noqa: E402
    CollectionNotFoundError,
    Condition,
    QdrantEdgeStore,
    QdrantFields,
    SchemaMismatchError,
    ahybrid_search,
    aupsert_documents,
    count_documents,
    delete_by_filter,
    delete_documents,
    get_documents,
    hybrid_search,
    upsert_documents,
)

THEIRS = ["Alan Turing was the first person to conduct substantial research in AI.",
          "The quick brown fox jumps over the lazy dog."]
OURS = [{"text": "Qdrant stores dense and sparse vectors for hybrid search.", "metadata": {"by": "m3", "n": 1}},
        {"text": "BGE-M3 gives dense, sparse and multi-vector representations.", "metadata": {"by": "m3", "n": 2}}]


@pytest.fixture
def langchain_store(encoder):
    """A hybrid collection made by langchain-qdrant itself (unnamed dense vector, sparse ``langchain-sparse``)."""
    dense = M3Embeddings(encoder=encoder)
    store = QdrantVectorStore.from_texts(
        THEIRS, embedding=dense, sparse_embedding=M3SparseEmbeddings.from_embeddings(dense),
        metadatas=[{"by": "langchain", "n": i} for i in range(len(THEIRS))], retrieval_mode=RetrievalMode.HYBRID,
        location=":memory:", collection_name="lc")
    yield store
    store.client.close()


def _reference(encoder, query: str, texts: list[str]) -> dict[str, tuple[float, float]]:
    q = encoder.encode_queries([query], return_colbert=False)
    d = encoder.encode_documents(texts, return_colbert=False)
    return {t: (dense_score(q.dense[0], d.dense[i]), sparse_score(q.sparse[0], d.sparse[i]))
            for i, t in enumerate(texts)}


def test_langchain_qdrant_and_the_package_find_each_others_documents(langchain_store, encoder):
    client, fields = langchain_store.client, QdrantFields()
    keys = upsert_documents(client, OURS, "lc", encoder, fields=fields)
    assert client.count("lc").count == 4
    assert all(str(uuid.UUID(k)) == k for k in keys)  # point ids: what searches return as Hit.id
    # langchain-qdrant's own search finds ours, with our metadata
    found = langchain_store.similarity_search(OURS[0]["text"], k=4)
    ours = [d for d in found if d.metadata.get("by") == "m3"]
    assert {d.page_content for d in ours} == {o["text"] for o in OURS}
    for doc in ours:
        assert doc.metadata["n"] == next(o["metadata"]["n"] for o in OURS if o["text"] == doc.page_content)
        assert doc.metadata["_id"] in keys  # langchain-qdrant names the point we wrote
    # ours finds theirs, weighted (the reference dense + sparse scores) and RRF
    texts = THEIRS + [o["text"] for o in OURS]
    ref = _reference(encoder, "Who did research on AI?", texts)
    hits = hybrid_search(client, "Who did research on AI?", "lc", encoder, limit=4, fields=fields)
    fused = {t: (0.4 * d + 0.2 * s) / 0.6 for t, (d, s) in ref.items()}
    assert [h.text for h in hits] == sorted(fused, key=lambda t: -fused[t])
    for h in hits:
        assert h.score == pytest.approx(fused[h.text], abs=1e-4)
    by_text = {h.text: h for h in hits}
    assert by_text[THEIRS[0]].metadata == {"by": "langchain", "n": 0}
    assert by_text[OURS[1]["text"]].metadata == OURS[1]["metadata"]
    rrf = hybrid_search(client, "Who did research on AI?", "lc", encoder, limit=4, fusion="rrf", fields=fields)
    assert {h.text for h in rrf} == set(texts)
    # a re-ingest duplicates nothing (and encodes nothing: unchanged documents are skipped)
    assert upsert_documents(client, OURS, "lc", encoder, fields=fields) == keys
    assert client.count("lc").count == 4
    # their document, read back and written with its id, updates their point (langchain-qdrant: metadata["_id"])
    theirs = langchain_store.similarity_search(THEIRS[1], k=1)[0]
    again = upsert_documents(client, [{"id": theirs.metadata["_id"], "text": THEIRS[1], "metadata": {"n": 9}}],
                             "lc", encoder, fields=fields)
    assert again == [theirs.metadata["_id"]] and client.count("lc").count == 4
    assert get_documents(client, "lc", again, fields=fields)[0].metadata == {"n": 9}
    # the other store functions take the fields too
    assert count_documents(client, "lc", Condition("by", "eq", "m3"), fields=fields) == 2
    assert [d.text for d in get_documents(client, "lc", keys[::-1], fields=fields)] == [OURS[1]["text"],
                                                                                       OURS[0]["text"]]
    delete_documents(client, keys[:1], "lc", fields=fields)
    delete_by_filter(client, Condition("n", "eq", 9), "lc", fields=fields)
    assert sorted(d.text for d in get_documents(client, "lc", fields=fields)) == sorted([THEIRS[0], OURS[1]["text"]])


async def test_async_client_writes_and_searches(encoder):
    client = AsyncQdrantClient(":memory:")
    await client.create_collection("lc", vectors_config=models.VectorParams(size=encoder.dim,
                                                                            distance=models.Distance.COSINE),
                                   sparse_vectors_config={"langchain-sparse": models.SparseVectorParams()})
    fields = QdrantFields()
    keys = await aupsert_documents(client, OURS, "lc", encoder, fields=fields)
    assert await aupsert_documents(client, OURS, "lc", encoder, fields=fields) == keys
    assert (await client.count("lc")).count == 2
    hits = await ahybrid_search(client, "dense and sparse vectors", "lc", encoder, limit=2, fields=fields)
    assert {h.id for h in hits} == set(keys) and all(h.metadata["by"] == "m3" for h in hits)
    with pytest.raises(SchemaMismatchError, match="'dense'.*missing"):
        await aupsert_documents(client, OURS, "lc", encoder, fields=QdrantFields(dense="dense"))
    await client.close()


def _collection(client: QdrantClient, name: str, size: int, **kwargs) -> None:
    vectors = kwargs.pop("vectors", models.VectorParams(size=size, distance=kwargs.pop("distance",
                                                                                        models.Distance.COSINE)))
    sparse = kwargs.pop("sparse", {"langchain-sparse": models.SparseVectorParams()})
    client.create_collection(name, vectors_config=vectors, sparse_vectors_config=sparse)


def test_the_collection_is_checked_before_anything_is_written(encoder):
    client = QdrantClient(":memory:")
    fields = QdrantFields()
    with pytest.raises(CollectionNotFoundError, match="fields= names the layout of an existing collection"):
        upsert_documents(client, OURS, "missing", encoder, fields=fields)
    assert not client.collection_exists("missing")
    _collection(client, "small", 8)
    with pytest.raises(SchemaMismatchError, match=r"has 8 dimensions, the encoder gives 32.*Nothing was changed"):
        upsert_documents(client, OURS, "small", encoder, fields=fields)
    _collection(client, "euclid", encoder.dim, distance=models.Distance.EUCLID)
    with pytest.raises(SchemaMismatchError, match="Euclid|euclid"):
        upsert_documents(client, OURS, "euclid", encoder, fields=fields)
    _collection(client, "named", encoder.dim, vectors={"text-dense": models.VectorParams(
        size=encoder.dim, distance=models.Distance.COSINE)})
    with pytest.raises(SchemaMismatchError, match=r"'' \(the unnamed vector\) is missing.*'text-dense'.*dense=NAME"):
        upsert_documents(client, OURS, "named", encoder, fields=fields)
    _collection(client, "idf", encoder.dim, sparse={"langchain-sparse": models.SparseVectorParams(
        modifier=models.Modifier.IDF)})
    with pytest.raises(SchemaMismatchError, match="idf modifier"):
        upsert_documents(client, OURS, "idf", encoder, fields=fields)
    _collection(client, "extra", encoder.dim, vectors={
        "": models.VectorParams(size=encoder.dim, distance=models.Distance.COSINE),
        "image": models.VectorParams(size=4, distance=models.Distance.COSINE)})
    with pytest.raises(SchemaMismatchError, match=r"also has the vectors \['image'\].*would lack them"):
        upsert_documents(client, OURS, "extra", encoder, fields=fields)
    upsert_documents(client, OURS, "ours", encoder)  # the package's own layout: written without fields=
    with pytest.raises(SchemaMismatchError, match="made by m3_integrations.*without fields="):
        upsert_documents(client, OURS, "ours", encoder, fields=QdrantFields(dense="dense", sparse="sparse"))
    with pytest.raises(ValueError, match="recreate=True with fields="):
        upsert_documents(client, OURS, "small", encoder, fields=fields, recreate=True)
    for name in ("small", "euclid", "named", "idf", "extra"):
        assert client.count(name).count == 0, name
    client.close()


def test_a_point_that_is_not_ours_is_never_replaced(encoder):
    client = QdrantClient(":memory:")
    _collection(client, "c", encoder.dim)
    text = "hello world"
    squatter = point_id(Document(text=text))  # the id our text would get, held by another document
    client.upsert("c", [models.PointStruct(id=squatter, vector={"": [1.0] + [0.0] * (encoder.dim - 1)},
                                           payload={"page_content": "someone else's text", "metadata": {"k": 1}})])
    with pytest.raises(ValueError, match=rf"point {squatter} .*holds another document.*not replaced"):
        upsert_documents(client, [text, "another text"], "c", encoder, fields=QdrantFields())
    stored = client.retrieve("c", [squatter], with_payload=True)[0].payload
    assert stored == {"page_content": "someone else's text", "metadata": {"k": 1}}
    assert client.count("c").count == 1  # nothing of the refused batch was written
    # named by its id, the same point is the caller's to replace
    upsert_documents(client, [{"id": squatter, "text": text}], "c", encoder, fields=QdrantFields())
    assert client.retrieve("c", [squatter], with_payload=True)[0].payload["page_content"] == text
    # ids: a UUID in any spelling and an unsigned integer are point ids themselves; other ids map to a UUID
    hex_id = uuid.uuid4().hex
    keys = upsert_documents(client, [{"id": hex_id, "text": "a"}, {"id": "7", "text": "b"},
                                     {"id": "doc-1", "text": "c"}], "c", encoder, fields=QdrantFields())
    assert keys == [str(uuid.UUID(hex_id)), "7", point_id(Document(text="", id="doc-1"))]
    assert {str(p.id) for p in client.retrieve("c", [str(uuid.UUID(hex_id)), 7], with_payload=False)} == \
        {str(uuid.UUID(hex_id)), "7"}
    client.close()


def test_named_vectors_top_level_metadata_and_a_payload_id(encoder):
    client = QdrantClient(":memory:")
    client.create_collection("docs", vectors_config={"d": models.VectorParams(size=encoder.dim,
                                                                              distance=models.Distance.DOT)},
                             sparse_vectors_config={"s": models.SparseVectorParams()})
    fields = QdrantFields(dense="d", sparse="s", text="body", metadata=None, id="key")
    docs = [{"id": "a", "text": "red apples", "metadata": {"color": "red"}},
            {"id": "b", "text": "green pears", "metadata": {"color": "green"}}]
    assert upsert_documents(client, docs, "docs", encoder, fields=fields) == ["a", "b"]
    payloads = {p.payload["key"]: p.payload for p in client.scroll("docs", with_payload=True)[0]}
    assert payloads["a"] == {"body": "red apples", "color": "red", "key": "a"}
    hits = hybrid_search(client, "apples", "docs", encoder, limit=2, fields=fields,
                         query_filter=Condition("color", "eq", "green"))
    assert [(h.id, h.metadata) for h in hits] == [("b", {"color": "green"})]
    assert [d.id for d in get_documents(client, "docs", ["b", "zzz", "a"], fields=fields)] == ["b", "a"]
    with pytest.raises(ValueError, match=r"metadata keys \['body'\]"):
        upsert_documents(client, [{"id": "c", "text": "x", "metadata": {"body": 1}}], "docs", encoder, fields=fields)
    delete_documents(client, ["a"], "docs", fields=fields)
    assert count_documents(client, "docs", fields=fields) == 1
    client.close()


def test_a_qdrant_edge_shard_made_elsewhere(tmp_path, encoder):
    import qdrant_edge as e

    # a shard made by user code with qdrant_edge directly: its own vector names, no m3_collection.json
    shard = e.EdgeShard.create(str(tmp_path / "store" / "theirs"), e.EdgeConfig(
        vectors={"text": e.EdgeVectorParams(size=encoder.dim, distance=e.Distance.Cosine)},
        sparse_vectors={"lexical": e.EdgeSparseVectorParams()}))
    out = encoder.encode_documents(THEIRS, return_colbert=False)
    shard.update(e.UpdateOperation.upsert_points([
        e.Point(id=i + 1, payload={"content": t, "meta": {"by": "them"}}, vector={
            "text": out.dense[i].tolist(), "lexical": e.SparseVector(indices=sorted(map(int, out.sparse[i])),
                                                                     values=[float(out.sparse[i][k]) for k in
                                                                             sorted(out.sparse[i])])})
        for i, t in enumerate(THEIRS)]))
    shard.flush()
    shard.close()
    fields = QdrantFields(dense="text", sparse="lexical", text="content", metadata="meta")
    store = QdrantEdgeStore(tmp_path / "store")
    assert "theirs" in store.list_collections()
    ref = _reference(encoder, "a fox and a dog", THEIRS)
    hits = hybrid_search(store, "a fox and a dog", "theirs", encoder, limit=2, fields=fields)
    fused = {t: (0.4 * d + 0.2 * s) / 0.6 for t, (d, s) in ref.items()}
    assert [h.text for h in hits] == sorted(fused, key=lambda t: -fused[t])
    assert [h.score for h in hits] == pytest.approx(sorted(fused.values(), reverse=True), abs=1e-4)
    assert {h.id for h in hits} == {"1", "2"} and hits[0].metadata == {"by": "them"}
    keys = upsert_documents(store, OURS, "theirs", encoder, fields=fields)
    assert upsert_documents(store, OURS, "theirs", encoder, fields=fields) == keys
    assert count_documents(store, "theirs", fields=fields) == 4
    rrf = hybrid_search(store, "dense and sparse vectors", "theirs", encoder, limit=4, fusion="rrf", fields=fields)
    assert {h.id for h in rrf} == {"1", "2", *keys}
    with pytest.raises(ValueError, match="ColBERT"):
        hybrid_search(store, "x", "theirs", encoder, mode="colbert", fields=fields)
    with pytest.raises(SchemaMismatchError, match="'dense'.*missing"):
        hybrid_search(store, "x", "theirs", encoder, fields=QdrantFields(dense="dense", sparse="lexical"))
    assert not (tmp_path / "store" / "theirs" / "m3_collection.json").exists()  # nothing of ours added to it
    store.close()
