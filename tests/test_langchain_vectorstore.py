"""M3VectorStore: LangChain's standard VectorStore suite and indexing API on Qdrant local mode, Qdrant Edge and
milvus-lite, plus what the suite does not check (no silent loss, search settings, MMR, async clients)."""

from __future__ import annotations

import itertools

import pytest
from _milvus_layouts import make_tutorial_collection
from langchain_core.documents import Document
from langchain_core.indexing import InMemoryRecordManager, index
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from m3_integrations.langchain import Condition, M3Embeddings, M3HybridRetriever, M3VectorStore, add_documents

_names = itertools.count()


def _client(kind: str, directory):
    if kind == "qdrant":
        from qdrant_client import QdrantClient

        return QdrantClient(":memory:")
    if kind == "edge":
        from m3_integrations.qdrant import QdrantEdgeStore

        return QdrantEdgeStore(directory / "edge")
    from pymilvus import MilvusClient

    return MilvusClient(str(directory / "milvus.db"))


class _Standard(VectorStoreIntegrationTests):
    kind = ""

    @pytest.fixture(scope="class")
    def shared_client(self, tmp_path_factory):
        client = _client(self.kind, tmp_path_factory.mktemp(self.kind))
        yield client
        client.close()

    @pytest.fixture
    def vectorstore(self, shared_client, encoder):
        store = M3VectorStore(shared_client, f"standard_{next(_names)}", encoder)
        yield store
        store.delete_collection()


class TestQdrantLocalStandard(_Standard):
    kind = "qdrant"


class TestQdrantEdgeStandard(_Standard):
    kind = "edge"


class TestMilvusLiteStandard(_Standard):
    kind = "milvus"


# ------------------------------------------------------------------------------------ beyond the suite
@pytest.fixture(scope="module", params=["qdrant", "edge", "milvus"])
def client(request, tmp_path_factory):
    c = _client(request.param, tmp_path_factory.mktemp(f"vs-{request.param}"))
    yield c
    c.close()


@pytest.fixture
def store(client, encoder):
    s = M3VectorStore(client, f"extra_{next(_names)}", encoder)
    yield s
    s.delete_collection()


def test_same_text_different_metadata_are_two_documents(store):
    docs = [Document(page_content="shared text", metadata={"source": "a.md"}),
            Document(page_content="shared text", metadata={"source": "b.md"}),
            Document(page_content="other text")]
    ids = store.add_documents(docs)
    assert len(set(ids)) == 3
    got = store.get_by_ids(ids)
    assert sorted(str(d.metadata) for d in got) == sorted(str(d.metadata) for d in docs)
    # the same documents again: replaced, never duplicated
    assert store.add_documents(docs) == ids
    assert len(store.similarity_search("shared text", k=10)) == 3


def test_metadata_comes_back_exactly(store):
    metadata = {"id": 7, "score": "mine", "scores": [1, 2], "m3": {"x": None}, "nested": {"a": [1.5, "b"]}}
    store.add_texts(["a text with awkward metadata"], [metadata], ids=["doc"])
    [doc] = store.similarity_search("awkward metadata", k=1)
    assert doc.metadata == metadata and doc.id == "doc"
    assert store.get_by_ids(["doc"])[0].metadata == metadata


def test_search_settings_filter_scores_and_mmr(store, encoder):
    texts = ["Qdrant stores vectors.", "Milvus stores vectors too.", "A fox jumps over a dog.",
             "Dense, sparse and ColBERT vectors.", "Rivers flow to the sea."]
    ids = store.add_texts(texts, [{"n": i, "kind": "db" if i < 2 else "other"} for i in range(5)])
    assert len(ids) == 5
    pairs = store.similarity_search_with_score("vectors", k=5)
    assert [s for _, s in pairs] == sorted((s for _, s in pairs), reverse=True)
    hits = store.similarity_search("vectors", k=5, filter=Condition("kind", "eq", "db"))
    assert sorted(d.metadata["n"] for d in hits) == [0, 1]
    for kwargs in ({"mode": "dense"}, {"mode": "sparse"}, {"fusion": "rrf"}, {"weights": (1, 0, 0)},
                   {"rescore_limit": 2}):
        assert store.similarity_search("vectors", k=2, **kwargs)
    dense = store.similarity_search("vectors", k=3, mode="dense")
    by_vector = store.similarity_search_by_vector(store.embeddings.embed_query("vectors"), k=3)
    assert [d.id for d in by_vector] == [d.id for d in dense]
    mmr = store.max_marginal_relevance_search("vectors", k=3, fetch_k=5)
    assert len(mmr) == 3 and len({d.id for d in mmr}) == 3
    retriever = store.as_retriever(search_kwargs={"k": 2, "filter": Condition("kind", "eq", "other"),
                                                  "fusion": "rrf"})
    got = retriever.invoke("vectors")
    assert len(got) == 2 and all(d.metadata["kind"] == "other" for d in got)
    with pytest.raises(TypeError, match="unexpected argument"):
        store.similarity_search("vectors", k=2, fusoin="rrf")
    with pytest.raises(ValueError, match="mode"):
        store.similarity_search("vectors", mode="bm25")
    assert isinstance(store.embeddings, M3Embeddings)


def test_bad_input_is_refused_and_keeps_data(store):
    store.add_texts(["kept"], ids=["k"])
    with pytest.raises(ValueError, match="2 texts and 1 ids"):
        store.add_texts(["a", "b"], ids=["x"])
    with pytest.raises(ValueError, match="metadatas"):
        store.add_texts(["a"], [{}, {}])
    with pytest.raises(ValueError, match="delete_collection"):
        store.delete()
    assert [d.id for d in store.get_by_ids(["k"])] == ["k"]
    assert store.add_texts([]) == []


def test_index_api_adds_skips_unchanged_and_cleans_up(store):
    manager = InMemoryRecordManager(namespace=f"m3/{store.collection_name}")
    manager.create_schema()
    docs = [Document(page_content=f"text number {i}", metadata={"source": f"s{i}"}) for i in range(3)]
    first = index(docs, manager, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert (first["num_added"], first["num_skipped"], first["num_deleted"]) == (3, 0, 0)
    again = index(docs, manager, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert (again["num_added"], again["num_skipped"], again["num_deleted"]) == (0, 3, 0)
    changed = [docs[0], Document(page_content="text number 1, edited", metadata={"source": "s1"})]
    third = index(changed, manager, store, cleanup="full", source_id_key="source", key_encoder="sha256")
    assert (third["num_added"], third["num_skipped"], third["num_deleted"]) == (1, 1, 2)
    texts = sorted(d.page_content for d in store.similarity_search("text number", k=10))
    assert texts == ["text number 0", "text number 1, edited"]


def test_from_texts_and_from_documents(client, encoder):
    embedding = M3Embeddings(encoder=encoder)
    name = f"from_{next(_names)}"
    store = M3VectorStore.from_texts(["one text", "two text"], embedding, [{"i": 1}, {"i": 2}], ids=["1", "2"],
                                     client=client, collection_name=name)
    assert [d.id for d in store.get_by_ids(["2", "1"])] == ["2", "1"]
    store2 = M3VectorStore.from_documents([Document(page_content="three", id="3")], embedding, client=client,
                                          collection_name=name)
    assert store2.get_by_ids(["3"])[0].page_content == "three"
    with pytest.raises(TypeError, match="M3Embeddings"):
        M3VectorStore.from_texts(["x"], object(), client=client)
    store.delete_collection()


def test_wrong_construction_is_refused(encoder):
    with pytest.raises(TypeError, match="client must be"):
        M3VectorStore(object(), "x", encoder)
    from qdrant_client import QdrantClient

    with pytest.raises(ValueError, match="encoder="):
        M3VectorStore(QdrantClient(":memory:"), "x")
    with pytest.raises(ValueError, match="weights"):
        M3VectorStore(QdrantClient(":memory:"), "x", encoder, weights=(0, 0, 0))


# ------------------------------------------------------------------------------------ async clients
async def test_async_qdrant_client_round_trip(encoder):
    from qdrant_client import AsyncQdrantClient

    client = AsyncQdrantClient(":memory:")
    store = M3VectorStore(client, "async_docs", encoder)
    assert await store.asimilarity_search("x") == []
    ids = await store.aadd_documents([Document(page_content="async one", metadata={"a": 1}, id="a1"),
                                      Document(page_content="async two", metadata={"a": 2})])
    assert ids[0] == "a1" and len(ids) == 2
    docs = await store.asimilarity_search("async one", k=2)
    assert {d.id for d in docs} == set(ids)
    assert [d.metadata for d in await store.aget_by_ids(ids)] == [{"a": 1}, {"a": 2}]
    await store.adelete(["a1"])
    assert [d.id for d in await store.aget_by_ids(ids)] == [ids[1]]
    with pytest.raises(TypeError, match="asynchronous"):
        store.similarity_search("x")
    await store.adelete_collection()
    await client.close()


# ------------------------------------------------------------------------------------ retriever: no silent loss
def test_retriever_keeps_user_metadata_and_namespaces_scores(client, encoder):
    name = f"retr_{next(_names)}"
    docs = [Document(page_content="same words here", metadata={"id": "user-id", "score": 1, "scores": "x"}),
            Document(page_content="same words here", metadata={"id": "other", "score": 2, "scores": "y"})]
    keys = add_documents(client, docs, name, encoder)
    assert len(set(keys)) == 2  # same text, different metadata: both kept
    retriever = M3HybridRetriever(client=client, collection_name=name, encoder=encoder, k=2)
    got = retriever.invoke("same words")
    assert sorted(d.metadata["score"] for d in got) == [1, 2]  # the user's keys, untouched
    for d in got:
        assert set(d.metadata["m3"]) == {"score", "scores"}
        assert set(d.metadata["m3"]["scores"]) == {"dense", "sparse", "colbert"}
    plain = M3HybridRetriever(client=client, collection_name=name, encoder=encoder, k=2, score_key=None)
    assert sorted(str(d.metadata) for d in plain.invoke("same words")) == sorted(str(d.metadata) for d in docs)
    add_documents(client, [Document(page_content="clash", metadata={"m3": 1}, id="clash")], name, encoder)
    with pytest.raises(ValueError, match="score_key"):
        retriever.invoke("clash", k=3)
    M3VectorStore(client, name, encoder).delete_collection()


def test_store_kwargs_reach_the_store_functions(encoder):
    from qdrant_client import QdrantClient

    from m3_integrations.qdrant import QdrantSchema

    schema = QdrantSchema(dense="d", sparse="s", colbert="c", text_key="body")
    client = QdrantClient(":memory:")
    store = M3VectorStore(client, "named", encoder, store_kwargs={"schema": schema})
    store.add_texts(["named vectors"], ids=["n"])
    info = client.get_collection("named")
    assert set(info.config.params.vectors) == {"d", "c"}
    assert store.similarity_search("named", k=1)[0].id == "n"
    assert store.get_by_ids(["n"])[0].page_content == "named vectors"


def test_names_reach_every_call_and_a_milvus_collection_made_elsewhere(tmp_path, encoder):
    """``fields=`` goes to each Milvus function (writes, searches, get_by_ids and delete of a collection made like
    Milvus' BGE-M3 tutorial)."""
    import inspect

    from pymilvus import MilvusClient

    from m3_integrations import milvus
    from m3_integrations.milvus import MilvusFields
    from m3_integrations.qdrant import QdrantSchema

    client = MilvusClient(str(tmp_path / "t.db"))
    make_tutorial_collection(client, "hybrid_demo", encoder.dim)
    store = M3VectorStore(client, "hybrid_demo", encoder, fields=MilvusFields(dense="dense_vector",
                                                                              sparse="sparse_vector"))
    texts = ["Tides follow the moon.", "Sourdough needs a starter."]
    store.add_texts(texts)
    store.add_texts(texts)  # again: nothing duplicated
    assert client.query("hybrid_demo", output_fields=["count(*)"])[0]["count(*)"] == 2
    assert {d.page_content for d in store.similarity_search("moon tides", k=2)} == set(texts)
    assert {d.page_content for d in store.similarity_search("moon tides", k=2, fusion="rrf")} == set(texts)
    # ids: the collection's auto-id primary keys, which searches give as Document.id and get_by_ids / delete take
    ids = store.add_texts(["Rye keeps for a week."], ids=["rye"])
    assert ids == [str(r["pk"]) for r in client.query("hybrid_demo", filter='text == "Rye keeps for a week."',
                                                      output_fields=["pk"])]
    assert [d.page_content for d in store.get_by_ids([ids[0], "404"])] == ["Rye keeps for a week."]
    store.delete(ids)
    assert store.get_by_ids(ids) == [] and client.query("hybrid_demo", output_fields=["count(*)"])[0]["count(*)"] == 2
    assert "fields" in inspect.signature(milvus.delete_documents).parameters
    with pytest.raises(TypeError, match="schema= names the vectors of a Qdrant collection"):
        M3HybridRetriever(client=client, collection_name="hybrid_demo", encoder=encoder, schema=QdrantSchema())
    client.close()


def _spy_milvus(path):
    """A real milvus-lite ``MilvusClient`` that records the keywords of its reads (to see what reaches them)."""
    from pymilvus import MilvusClient

    class Spy(MilvusClient):
        reads: list = []

        def query(self, *args, **kwargs):
            self.reads.append(("query", kwargs))
            return super().query(*args, **kwargs)

        def hybrid_search(self, *args, **kwargs):
            self.reads.append(("hybrid_search", kwargs))
            return super().hybrid_search(*args, **kwargs)

        def search(self, *args, **kwargs):
            self.reads.append(("search", kwargs))
            return super().search(*args, **kwargs)

    return Spy(str(path))


def test_milvus_filter_params_consistency_and_without_colbert(tmp_path, encoder):
    """``filter_params`` (per call, and in ``as_retriever(search_kwargs=...)``), ``consistency_level`` (searches and
    ``get_by_ids``) and ``with_colbert=False`` reach Milvus from ``M3VectorStore`` and ``M3HybridRetriever``."""
    client = _spy_milvus(tmp_path / "m.db")
    store = M3VectorStore(client, "lite", encoder, with_colbert=False, consistency_level="Bounded")
    store.add_texts(["Tides follow the moon.", "Sourdough needs a starter.", "The moon's phases repeat."],
                    metadatas=[{"lang": "en's"}, {"lang": "de"}, {"lang": "en's"}], ids=["t", "s", "p"])
    assert "lite__colbert" not in client.list_collections()
    expr = 'metadata["lang"] == {lang}'
    docs = store.similarity_search("moon", k=3, filter=expr, filter_params={"lang": "en's"})
    assert sorted(d.id for d in docs) == ["p", "t"]
    hits = store.as_retriever(search_kwargs={"k": 3, "filter": expr, "filter_params": {"lang": "de"}}).invoke("x")
    assert [d.id for d in hits] == ["s"]
    with pytest.raises(ValueError, match="ColBERT"):
        store.similarity_search("moon", mode="colbert")
    client.reads.clear()
    assert [d.id for d in store.get_by_ids(["s"])] == ["s"]
    store.similarity_search("moon", k=1)
    assert client.reads and all(kw.get("consistency_level") == "Bounded" for _, kw in client.reads), client.reads

    retriever = M3HybridRetriever(client=client, collection_name="lite2", encoder=encoder, with_colbert=False,
                                  consistency_level="Session", filter="metadata[\"n\"] >= {low}",
                                  filter_params={"low": 2})
    retriever.add_documents([Document(page_content=f"moon number {i}", metadata={"n": i}, id=f"m{i}")
                             for i in range(4)])
    assert "lite2__colbert" not in client.list_collections()
    client.reads.clear()
    assert sorted(d.id for d in retriever.invoke("moon", k=4)) == ["m2", "m3"]
    assert sorted(d.id for d in retriever.invoke("moon", k=4, filter_params={"low": 3})) == ["m3"]
    assert all(kw.get("consistency_level") == "Session" for _, kw in client.reads)
    client.close()


def test_qdrant_with_colbert_and_milvus_only_settings(encoder):
    from qdrant_client import QdrantClient

    from m3_integrations.qdrant import QdrantSchema

    client = QdrantClient(":memory:")
    store = M3VectorStore(client, "plain", encoder, with_colbert=False)
    store.add_texts(["Tides follow the moon."], ids=["t"])
    assert set(client.get_collection("plain").config.params.vectors) == {"dense"}
    assert set(store.as_retriever().invoke("moon")[0].metadata) == set()
    retriever = M3HybridRetriever(client=client, collection_name="plain2", encoder=encoder, with_colbert=False)
    retriever.add_documents([Document(page_content="Sourdough needs a starter.", id="s")])
    assert set(client.get_collection("plain2").config.params.vectors) == {"dense"}
    assert set(retriever.invoke("bread")[0].metadata["m3"]["scores"]) == {"dense", "sparse"}
    with pytest.raises(ValueError, match="disagree"):
        M3VectorStore(client, "x", encoder, with_colbert=False, schema=QdrantSchema(with_colbert=True))
    for kwargs in ({"consistency_level": "Strong"}, {"filter_params": {"a": 1}}):
        with pytest.raises(ValueError, match="is not a setting of m3_integrations.qdrant"):
            M3VectorStore(client, "x", encoder, **kwargs)
        with pytest.raises(ValueError, match="is not a setting of m3_integrations.qdrant"):
            M3HybridRetriever(client=client, collection_name="x", encoder=encoder, **kwargs)
    with pytest.raises(ValueError, match="filter_params= is not a setting"):
        store.similarity_search("moon", filter_params={"a": 1})
    client.close()
