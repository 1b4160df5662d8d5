"""A Qdrant collection this package did not create: made by langchain-qdrant's ``QdrantVectorStore`` in hybrid mode
(unnamed dense vector, sparse ``langchain-sparse``, payload ``page_content`` / ``metadata``, no ColBERT), built with
``M3Embeddings`` + ``M3SparseEmbeddings`` (FastEmbed cannot download here), searched through ``QdrantFields``."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_qdrant")

from langchain_qdrant import QdrantVectorStore, RetrievalMode  # noqa: E402
from qdrant_client import AsyncQdrantClient, models  # noqa: E402

from m3_integrations import dense_score, sparse_score  # noqa: E402
from m3_integrations.langchain import M3Embeddings, M3SparseEmbeddings, M3VectorStore  # noqa: E402
from m3_integrations.qdrant import (  # noqa: E402
    CollectionNotFoundError,
    Condition,
    QdrantEdgeStore,
    QdrantFields,
    QdrantSchema,
    SchemaMismatchError,
    ahybrid_search,
    hybrid_search,
)

TEXTS = [
    "Artificial intelligence was founded as an academic discipline in 1956.",
    "Alan Turing was the first person to conduct substantial research in AI.",
    "Qdrant stores dense and sparse vectors for hybrid search.",
    "The quick brown fox jumps over the lazy dog.",
    "BGE-M3 gives dense, sparse and multi-vector representations.",
]
LANGS = ["en", "en", "en", "en", "de"]


@pytest.fixture(scope="module")
def made_by_langchain(encoder):
    dense = M3Embeddings(encoder=encoder)
    store = QdrantVectorStore.from_texts(
        TEXTS, embedding=dense, sparse_embedding=M3SparseEmbeddings.from_embeddings(dense),
        metadatas=[{"lang": lang, "n": i} for i, lang in enumerate(LANGS)], retrieval_mode=RetrievalMode.HYBRID,
        location=":memory:", collection_name="lc_hybrid")
    assert set(store.client.get_collection("lc_hybrid").config.params.vectors) == {""}  # the default vector
    yield store
    store.client.close()


def _reference(encoder, query):
    q = encoder.encode_queries([query], return_colbert=False)
    d = encoder.encode_documents(TEXTS, return_colbert=False)
    return {t: (dense_score(q.dense[0], d.dense[i]), sparse_score(q.sparse[0], d.sparse[i]))
            for i, t in enumerate(TEXTS)}


@pytest.mark.parametrize("query", ["Who did early AI research?", "hybrid search with sparse vectors"])
def test_weighted_and_rrf_match_the_reference(made_by_langchain, encoder, query):
    client = made_by_langchain.client
    ref = _reference(encoder, query)
    hits = hybrid_search(client, query, "lc_hybrid", encoder, limit=5, fields=QdrantFields())
    fused = {t: (0.4 * d + 0.2 * s) / 0.6 for t, (d, s) in ref.items()}
    assert [h.text for h in hits] == sorted(fused, key=lambda t: -fused[t])
    for h in hits:
        assert h.score == pytest.approx(fused[h.text], abs=1e-4)
        assert h.scores["dense"] == pytest.approx(ref[h.text][0], abs=1e-4)
        assert h.scores["sparse"] == pytest.approx(ref[h.text][1], abs=1e-4)
        i = TEXTS.index(h.text)
        assert h.metadata == {"lang": LANGS[i], "n": i}
    rrf = hybrid_search(client, query, "lc_hybrid", encoder, limit=5, fusion="rrf", fields=QdrantFields())
    dense_rank = sorted(TEXTS, key=lambda t: -ref[t][0])
    sparse_rank = sorted((t for t in TEXTS if ref[t][1] > 0), key=lambda t: -ref[t][1])
    expected = {t: 0.4 / (60 + dense_rank.index(t) + 1)
                + (0.2 / (60 + sparse_rank.index(t) + 1) if t in sparse_rank else 0.0) for t in TEXTS}
    assert [h.text for h in rrf] == sorted(expected, key=lambda t: -expected[t])
    dense = hybrid_search(client, query, "lc_hybrid", encoder, limit=2, mode="dense", fields=QdrantFields())
    assert [h.text for h in dense] == dense_rank[:2]


async def test_filters_async_and_refusals(made_by_langchain, encoder, tmp_path):
    client = made_by_langchain.client
    f = QdrantFields()
    hits = hybrid_search(client, "vectors", "lc_hybrid", encoder, limit=5, fields=f,
                         query_filter=Condition("lang", "eq", "de"))
    assert [h.text for h in hits] == [TEXTS[4]]
    with pytest.raises(ValueError, match="ColBERT"):
        hybrid_search(client, "vectors", "lc_hybrid", encoder, mode="colbert", fields=f)
    with pytest.raises(SchemaMismatchError, match="'dense'.*missing"):
        hybrid_search(client, "vectors", "lc_hybrid", encoder, fields=QdrantFields(dense="dense"))
    with pytest.raises(SchemaMismatchError):  # without fields: the package's own layout is expected
        hybrid_search(client, "vectors", "lc_hybrid", encoder)
    edge = QdrantEdgeStore(tmp_path / "edge")  # Qdrant Edge takes fields too (tests/test_qdrant_foreign_write.py)
    with pytest.raises(CollectionNotFoundError, match="'lc_hybrid' does not exist"):
        hybrid_search(edge, "vectors", "lc_hybrid", encoder, fields=f)
    edge.close()
    # an AsyncQdrantClient (local mode cannot share one in-memory collection between two clients, so it gets a copy),
    # made with a single unnamed dense vector config (VectorParams, not a dict)
    aclient = AsyncQdrantClient(":memory:")
    info = client.get_collection("lc_hybrid").config.params
    await aclient.create_collection("copy", vectors_config=info.vectors[""], sparse_vectors_config=info.sparse_vectors)
    assert isinstance((await aclient.get_collection("copy")).config.params.vectors, models.VectorParams)
    points, _ = client.scroll("lc_hybrid", limit=10, with_vectors=True)
    await aclient.upsert("copy", [models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points])
    got = await ahybrid_search(aclient, "vectors", "copy", encoder, limit=3, fields=f)
    want = hybrid_search(client, "vectors", "lc_hybrid", encoder, limit=3, fields=f)
    assert [(h.id, round(h.score, 5)) for h in got] == [(h.id, round(h.score, 5)) for h in want]
    await aclient.close()


def test_langchain_m3_vector_store_searches_it(made_by_langchain, encoder):
    store = M3VectorStore(made_by_langchain.client, "lc_hybrid", encoder, store_kwargs={"fields": QdrantFields()})
    docs = store.similarity_search("Alan Turing", k=2)
    assert len(docs) == 2 and all(set(d.metadata) == {"lang", "n"} for d in docs)
    assert store.similarity_search("Alan Turing", k=2, fusion="rrf")


def test_langchain_classes_write_it_in_its_layout(made_by_langchain, encoder):
    from langchain_core.documents import Document

    from m3_integrations.langchain import M3HybridRetriever

    client = made_by_langchain.client
    store = M3VectorStore(client, "lc_hybrid", encoder, fields=QdrantFields())
    ids = store.add_texts(["Grace Hopper wrote the first compiler."], metadatas=[{"lang": "en", "n": 99}])
    assert store.add_texts(["Grace Hopper wrote the first compiler."], metadatas=[{"lang": "en", "n": 99}]) == ids
    assert client.count("lc_hybrid").count == len(TEXTS) + 1  # added once
    assert ids[0] in {d.metadata["_id"] for d in made_by_langchain.similarity_search("Grace Hopper", k=10)}
    assert store.get_by_ids(ids)[0].metadata == {"lang": "en", "n": 99}
    found = store.similarity_search("Grace Hopper compiler", k=len(TEXTS) + 1)
    assert ids[0] in [d.id for d in found]
    retriever = M3HybridRetriever(client=client, collection_name="lc_hybrid", encoder=encoder, k=3,
                                  fields=QdrantFields())
    retriever.add_documents([Document(page_content="Ada Lovelace wrote the first program.", id=None,
                                      metadata={"lang": "en", "n": 100})])
    assert client.count("lc_hybrid").count == len(TEXTS) + 2
    got = retriever.invoke("Ada Lovelace", k=len(TEXTS) + 2)
    assert "Ada Lovelace wrote the first program." in [d.page_content for d in got]
    assert all(set(d.metadata) == {"lang", "n", "m3"} for d in got)
    store.delete(ids)
    retriever_ids = [d.id for d in got if d.page_content.startswith("Ada")]
    store.delete(retriever_ids)
    assert client.count("lc_hybrid").count == len(TEXTS)
    with pytest.raises(TypeError, match="fields= must be a QdrantFields"):
        M3HybridRetriever(client=client, collection_name="lc_hybrid", encoder=encoder, fields={"dense": ""})
    with pytest.raises(ValueError, match="not both"):
        M3VectorStore(client, "lc_hybrid", encoder, fields=QdrantFields(), schema=QdrantSchema())


def test_llama_index_store_searches_it_and_takes_a_schema(made_by_langchain, encoder):
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
    from qdrant_client import QdrantClient

    from m3_integrations.llama_index import M3QdrantVectorStore

    store = M3QdrantVectorStore(made_by_langchain.client, "lc_hybrid", encoder, fields=QdrantFields())
    q = VectorStoreQuery(query_str="Alan Turing", similarity_top_k=2, mode=VectorStoreQueryMode.HYBRID)
    result = store.query(q)
    assert len(result.nodes) == 2 and all(set(n.metadata) >= {"lang", "n"} for n in result.nodes)
    # nodes are written in the collection's layout (langchain-qdrant's payload keys), found, read and deleted
    node_id = "6c8f3c1e-6a57-4f0e-9d1b-2f4f1d7e2a10"
    assert store.add([TextNode(text="Grace Hopper wrote the first compiler.", id_=node_id,
                               metadata={"lang": "en"})]) == [node_id]
    payload = made_by_langchain.client.retrieve("lc_hybrid", [node_id], with_payload=True)[0].payload
    # the text LlamaIndex embeds (its metadata included) under page_content, the node's metadata under metadata
    assert payload["page_content"].endswith("Grace Hopper wrote the first compiler.")
    assert payload["metadata"]["lang"] == "en"
    assert node_id in {d.metadata["_id"] for d in made_by_langchain.similarity_search("Grace Hopper", k=10)}
    hits = store.query(VectorStoreQuery(query_str="Grace Hopper compiler", similarity_top_k=1,
                                        mode=VectorStoreQueryMode.HYBRID))
    assert hits.ids == [node_id] and hits.nodes[0].metadata["lang"] == "en"
    assert [n.node_id for n in store.get_nodes([node_id])] == [node_id]
    store.delete_nodes([node_id])
    assert store.get_nodes([node_id]) == [] and store.count() == len(TEXTS)
    with pytest.raises(ValueError, match="clear.. would drop a collection made elsewhere"):
        store.clear()
    # the names survive to_dict / from_dict (a store rebuilt without them would read the wrong layout)
    again = M3QdrantVectorStore.from_dict(store.to_dict(), client=made_by_langchain.client, encoder=encoder)
    assert again.query(q).ids == result.ids
    # a collection of this package's layout under other names: the names reach every store call
    client = QdrantClient(":memory:")
    schema = QdrantSchema(dense="d", sparse="s", colbert="c", text_key="body", metadata_key="meta", id_key="key")
    named = M3QdrantVectorStore(client, "named", encoder, schema=schema)
    named.add([TextNode(text="named vectors", id_="n1", metadata={"k": 1})])
    assert set(client.get_collection("named").config.params.vectors) == {"d", "c"}
    assert [n.node_id for n in named.get_nodes(["n1"])] == ["n1"] and named.count() == 1
    assert named.query(VectorStoreQuery(query_str="named", similarity_top_k=1, mode=VectorStoreQueryMode.HYBRID)).ids
    assert M3QdrantVectorStore.from_params(named.to_dict(), client=client, encoder=encoder).count() == 1
    named.delete_nodes(["n1"])
    assert named.count() == 0
    with pytest.raises(TypeError, match="QdrantSchema"):
        M3QdrantVectorStore(client, "named", encoder, schema={"dense": "d"})
    client.close()
