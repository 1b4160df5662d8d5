"""M3HybridRetriever and add_documents on real stores: local Qdrant, Qdrant Edge and milvus-lite."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from m3_integrations import compute_scores
from m3_integrations.langchain import (
    AllOf,
    Condition,
    M3HybridRetriever,
    aadd_documents,
    add_documents,
)

CORPUS = [
    Document(page_content="BGE-M3 gives dense, sparse and multi-vector representations of a text.", id="m3",
             metadata={"topic": "models", "year": 2024}),
    Document(page_content="Hybrid retrieval combines lexical matching with semantic similarity.", id="hybrid",
             metadata={"topic": "search", "year": 2023}),
    Document(page_content="Qdrant and Milvus store dense vectors, sparse vectors and multivectors.", id="dbs",
             metadata={"topic": "databases", "year": 2024}),
    Document(page_content="The quick brown fox jumps over the lazy dog near the river bank.", id="fox",
             metadata={"topic": "animals", "year": 2020}),
    Document(page_content="Le renard brun rapide saute par-dessus le chien paresseux.", id="renard",
             metadata={"topic": "animals", "year": 2021}),
    Document(page_content="Die hybride Suche verbindet lexikalische Treffer mit semantischer Ähnlichkeit.",
             id="suche", metadata={"topic": "search", "year": 2022}),
]
BY_ID = {d.id: d for d in CORPUS}
BACKENDS = ["qdrant-memory", "qdrant-edge", "milvus-lite"]


@pytest.fixture(autouse=True)
def no_output_cache(encoder):
    """The forward-pass counts below need the shared encoder without the output cache that other test files (the
    LlamaIndex stores) turn on: a query another parameter asked before would then cost no pass at all."""
    size = encoder.cache_size
    encoder.disable_cache()
    yield
    if size is not None:
        encoder.enable_cache(size)


def make_client(kind: str, directory):
    if kind == "qdrant-memory":
        from qdrant_client import QdrantClient

        return QdrantClient(":memory:")
    if kind == "qdrant-edge":
        from m3_integrations.qdrant import QdrantEdgeStore

        return QdrantEdgeStore(directory / "edge")
    from pymilvus import MilvusClient

    return MilvusClient(str(directory / "milvus.db"))


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory, encoder):
    """(client, collection) holding CORPUS, one per backend."""
    client = make_client(request.param, tmp_path_factory.mktemp(request.param))
    keys = add_documents(client, CORPUS, collection_name="corpus", encoder=encoder)
    assert keys == [d.id for d in CORPUS]
    yield client, "corpus"
    client.close()


def test_round_trip_keeps_text_metadata_and_id(store, encoder):
    client, name = store
    retriever = M3HybridRetriever(client=client, collection_name=name, encoder=encoder, k=len(CORPUS))
    docs = retriever.invoke("hybrid lexical and semantic search")
    assert sorted(d.id for d in docs) == sorted(BY_ID)
    for doc in docs:
        original = BY_ID[doc.id]
        assert doc.page_content == original.page_content
        assert {k: v for k, v in doc.metadata.items() if k != "m3"} == original.metadata  # exactly the user's
        assert set(doc.metadata["m3"]["scores"]) == {"dense", "sparse", "colbert"}
        assert isinstance(doc.metadata["m3"]["score"], float)
    fused = [d.metadata["m3"]["score"] for d in docs]
    assert fused == sorted(fused, reverse=True)


def test_scores_are_the_reference_bge_m3_scores(store, encoder):
    client, name = store
    query = "dense and sparse vectors in a database"
    weights = (0.5, 0.3, 0.2)
    docs = M3HybridRetriever(client=client, collection_name=name, encoder=encoder, k=3, weights=weights).invoke(query)
    q = encoder.encode_queries([query])
    for doc in docs:
        ref = compute_scores(q, encoder.encode_documents([doc.page_content]), weights=weights)
        for mode in ("dense", "sparse", "colbert"):
            assert doc.metadata["m3"]["scores"][mode] == pytest.approx(ref[mode], abs=1e-4)
        assert doc.metadata["m3"]["score"] == pytest.approx(ref["colbert+sparse+dense"], abs=1e-4)


def test_one_forward_pass_per_query(store, encoder):
    client, name = store
    retriever = M3HybridRetriever(client=client, collection_name=name, encoder=encoder)
    for query in ("first query about foxes", "second query about vectors"):
        before = encoder.stats.forward_passes
        assert len(retriever.invoke(query)) == 4
        assert encoder.stats.forward_passes - before == 1


async def test_async_one_forward_pass(store, encoder):
    client, name = store
    retriever = M3HybridRetriever(client=client, collection_name=name, encoder=encoder, k=2)
    before = encoder.stats.forward_passes
    docs = await retriever.ainvoke("an async query about dogs")
    assert encoder.stats.forward_passes - before == 1
    assert len(docs) == 2 and all(d.id in BY_ID for d in docs)
    assert [d.id for d in docs] == [d.id for d in retriever.invoke("an async query about dogs")]


def test_k_per_call_and_filters(store, encoder):
    client, name = store
    retriever = M3HybridRetriever(client=client, collection_name=name, encoder=encoder, k=4)
    assert len(retriever.invoke("fox", k=2)) == 2
    assert len(retriever.invoke("fox")) == 4  # the per-call k did not stick
    animals = M3HybridRetriever(client=client, collection_name=name, encoder=encoder,
                                filter=Condition("topic", "eq", "animals"))
    assert sorted(d.id for d in animals.invoke("a dog")) == ["fox", "renard"]
    recent = retriever.invoke("search", filter=AllOf((Condition("year", "gte", 2022),
                                                      Condition("topic", "ne", "models"))))
    assert sorted(d.id for d in recent) == ["dbs", "hybrid", "suche"]


RESCORE_QUERIES = ["fox", "vectors", "search engines", "a model", "hybrid lexical", "dogs and rivers", "databases"]


def test_rescore_limit_reaches_the_store(store, encoder):
    """``rescore_limit`` (setting and per call) gives the store adapter's answer for that limit, which differs
    from re-scoring every candidate for some query (so the setting really arrives)."""
    client, name = store
    retriever = M3HybridRetriever(client=client, collection_name=name, encoder=encoder, k=1, rescore_limit=1)
    adapter = retriever.adapter
    changed = 0
    for query in RESCORE_QUERIES:
        narrow = adapter.hybrid_search(client, query, name, encoder, limit=1, rescore_limit=1)
        assert [d.id for d in retriever.invoke(query)] == [h.id for h in narrow]
        every = M3HybridRetriever(client=client, collection_name=name, encoder=encoder, k=1).invoke(query)
        assert [d.id for d in retriever.invoke(query, rescore_limit=len(CORPUS))] == [d.id for d in every]
        changed += [h.id for h in narrow] != [d.id for d in every]
    assert changed
    with pytest.raises(ValueError, match="rescore_limit"):
        M3HybridRetriever(client=client, collection_name=name, encoder=encoder, rescore_limit=0)


@pytest.mark.parametrize("mode", ["dense", "sparse", "colbert"])
def test_single_modes_and_fusions(store, encoder, mode):
    client, name = store
    retriever = M3HybridRetriever(client=client, collection_name=name, encoder=encoder, mode=mode, k=3)
    text = BY_ID["fox"].page_content
    docs = retriever.invoke(text)
    assert len(docs) == 3
    if mode != "sparse":  # a text is its own nearest neighbour in dense and ColBERT space
        assert docs[0].id == "fox"
    rrf = retriever.invoke(text, mode="hybrid", fusion="rrf", k=2)
    assert len(rrf) == 2 and rrf[0].id == "fox"


@pytest.mark.parametrize("kind", BACKENDS)
def test_documents_without_id_and_replacement(kind, tmp_path, encoder):
    client = make_client(kind, tmp_path)
    retriever = M3HybridRetriever(client=client, collection_name="notes", encoder=encoder, k=10)
    keys = retriever.add_documents([Document(page_content="a note without an id", metadata={"n": 1}),
                                    Document(page_content="a note with an id", id="mine")])
    assert keys[1] == "mine" and keys[0]  # a derived id for the first one
    docs = {d.id: d for d in retriever.invoke("note")}
    assert set(docs) == set(keys) and docs[keys[0]].metadata["n"] == 1
    retriever.add_documents([Document(page_content="the new text of mine", id="mine", metadata={"v": 2})])
    docs = {d.id: d for d in retriever.invoke("note")}
    assert len(docs) == 2 and docs["mine"].page_content == "the new text of mine" and docs["mine"].metadata["v"] == 2
    client.close()


@pytest.mark.parametrize("kind", ["qdrant", "milvus"])
async def test_async_clients(kind, encoder, tmp_path):
    if kind == "qdrant":
        from qdrant_client import AsyncQdrantClient

        client = AsyncQdrantClient(":memory:")
    else:
        from pymilvus import AsyncMilvusClient, MilvusClient

        path = str(tmp_path / "async.db")
        starter = MilvusClient(path)  # milvus-lite: the sync client starts the embedded server for this file
        client = AsyncMilvusClient(path)
    try:
        keys = await aadd_documents(client, CORPUS[:3], collection_name="async", encoder=encoder)
        assert keys == ["m3", "hybrid", "dbs"]
        retriever = M3HybridRetriever(client=client, collection_name="async", encoder=encoder, k=2)
        before = encoder.stats.forward_passes
        docs = await retriever.ainvoke(CORPUS[1].page_content)
        assert encoder.stats.forward_passes - before == 1
        assert docs[0].id == "hybrid" and docs[0].page_content == CORPUS[1].page_content
        assert docs[0].metadata["topic"] == "search" and set(docs[0].metadata["m3"]["scores"]) == {"dense", "sparse",
                                                                                              "colbert"}
        with pytest.raises(TypeError, match="ainvoke"):
            retriever.invoke("sync call on an async client")
        with pytest.raises(TypeError, match="aadd_documents"):
            add_documents(client, CORPUS, collection_name="async", encoder=encoder)
    finally:
        await client.close()
        if kind == "milvus":
            starter.close()


def test_in_a_chain_and_lazy_encoder(tiny_model_dir, encoder):
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    add_documents(client, CORPUS, collection_name="c", encoder=encoder)
    retriever = M3HybridRetriever(client=client, collection_name="c", model_name=tiny_model_dir, device="cpu", k=1)
    assert retriever.encoder is None
    chain = retriever | RunnableLambda(lambda docs: [d.id for d in docs])
    assert chain.invoke(BY_ID["renard"].page_content) == ["renard"]


def test_bad_input_is_a_clear_error(encoder):
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    with pytest.raises(TypeError, match="QdrantClient.*MilvusClient"):
        M3HybridRetriever(client=object(), encoder=encoder)
    with pytest.raises(ValueError, match="mode"):
        M3HybridRetriever(client=client, encoder=encoder, mode="bm25")
    with pytest.raises(ValueError, match="weights"):
        M3HybridRetriever(client=client, encoder=encoder, weights=(-1, 0, 0))
    with pytest.raises(ValueError, match="k"):
        M3HybridRetriever(client=client, encoder=encoder, k=0)
    retriever = M3HybridRetriever(client=client, collection_name="missing", encoder=encoder)
    with pytest.raises(TypeError, match="unexpected argument"):
        retriever.invoke("q", top_k=3)
    with pytest.raises(Exception, match="missing"):
        retriever.invoke("q")
    with pytest.raises(TypeError, match="Document"):
        add_documents(client, ["plain text"], collection_name="x", encoder=encoder)
    with pytest.raises(ValueError, match="encoder"):
        add_documents(client, CORPUS, collection_name="x")
