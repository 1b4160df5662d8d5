"""LlamaIndex end to end on real databases: Qdrant (":memory:" client and the embedded Qdrant Edge) and milvus-lite.

Real llama-index-core objects throughout (VectorStoreIndex, StorageContext, retrievers, query engine);
the only stand-in is ``MockLLM`` for the LLM (no model or network can run here).
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from _milvus_layouts import make_tutorial_collection
from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.schema import MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from m3_integrations import M3Encoder, colbert_score, dense_score, sparse_score
from m3_integrations.llama_index import (
    SCORES_KEY,
    M3Embedding,
    M3HybridRetriever,
    M3MilvusVectorStore,
    M3QdrantVectorStore,
    UnsupportedFilterError,
)

TOPICS = ["search", "animals", "databases", "ml"]
TEXTS = [
    "Hybrid retrieval combines lexical matching with semantic similarity.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Vector databases such as Qdrant and Milvus store dense and sparse vectors.",
    "Machine learning models encode documents into embeddings.",
    "La recherche hybride combine la correspondance lexicale et la similarité sémantique.",
    "Le renard brun rapide saute par-dessus le chien paresseux.",
    "Die hybride Suche verbindet lexikalische Treffer mit semantischer Ähnlichkeit.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "BGE-M3 gives dense, sparse and multi-vector representations from one forward pass.",
    "Numbers like 2024 and 3.14 appear in tables, code and logs.",
]
LANGS = ["en", "en", "en", "en", "fr", "fr", "de", "de", "en", "en"]


def make_docs() -> list[Document]:
    return [
        Document(text=t, id_=f"doc-{i}", metadata={"lang": LANGS[i], "year": 2015 + i, "topic": TOPICS[i % 4]})
        for i, t in enumerate(TEXTS)
    ]


META = {f"doc-{i}": {"lang": LANGS[i], "year": 2015 + i, "topic": TOPICS[i % 4]} for i in range(len(TEXTS))}
ALL_IDS = set(META)


class Backend:
    """Opens (and reopens) one database of a kind in a temp dir."""

    def __init__(self, kind: str, path) -> None:
        self.kind = kind
        self.path = path
        self.client = None

    def open(self):
        if self.client is None:
            if self.kind == "qdrant-memory":
                from qdrant_client import QdrantClient

                self.client = QdrantClient(":memory:")
            elif self.kind == "qdrant-edge":
                from m3_integrations.qdrant import QdrantEdgeStore

                self.client = QdrantEdgeStore(self.path / "edge")
            else:
                from pymilvus import MilvusClient

                self.client = MilvusClient(str(self.path / "x.db"))
        return self.client

    def reopen(self):
        """A new client on the same data (the ":memory:" client cannot be reopened: it is kept)."""
        if self.kind != "qdrant-memory":
            self.client.close()
            self.client = None
            gc.collect()
        return self.open()

    def store(self, collection: str, encoder, **kwargs):
        cls = M3MilvusVectorStore if self.kind == "milvus" else M3QdrantVectorStore
        return cls(client=self.open(), collection_name=collection, encoder=encoder, **kwargs)


KINDS = ["qdrant-memory", "qdrant-edge", "milvus"]


@pytest.fixture(autouse=True)
def _mock_llm():
    """No OpenAI anywhere: the LLM is LlamaIndex's MockLLM (the one stand-in of these tests)."""
    previous = Settings._llm
    Settings.llm = MockLLM()
    yield
    Settings._llm = previous


@pytest.fixture(scope="module")
def enc(tiny_model_dir):
    """A module-owned encoder (its cache and counters are this module's alone)."""
    return M3Encoder(tiny_model_dir, device="cpu")


@pytest.fixture(scope="module", params=KINDS)
def built(request, enc, tmp_path_factory):
    """One index per database, built once with ``from_documents`` and shared by the read-only tests."""
    backend = Backend(request.param, tmp_path_factory.mktemp(request.param))
    store = backend.store("shared", enc)
    index = VectorStoreIndex.from_documents(
        make_docs(), storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=M3Embedding(encoder=enc))
    yield backend, store, index
    if backend.client is not None and backend.kind != "qdrant-memory":
        backend.client.close()


def ids_of(results) -> list[str]:
    return [r.node.ref_doc_id for r in results]


# ------------------------------------------------------------------------------------------- ingest
@pytest.mark.parametrize("kind", KINDS)
def test_from_documents_runs_the_model_once(kind, tiny_model_dir, tmp_path):
    enc = M3Encoder(tiny_model_dir, device="cpu")
    reference = M3Encoder(tiny_model_dir, device="cpu")
    backend = Backend(kind, tmp_path)
    store = backend.store("once", enc)
    index = VectorStoreIndex.from_documents(
        make_docs(), storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=M3Embedding(encoder=enc))
    # what embedding the texts alone costs: the store added no forward pass of its own
    nodes = SentenceSplitter().get_nodes_from_documents(make_docs())
    reference.encode_documents([n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes])
    assert enc.stats.forward_passes == reference.stats.forward_passes >= 1
    assert enc.stats.texts == len(nodes)
    assert store.count() == len(nodes) == len(TEXTS)
    # ... and every node has its dense, sparse and ColBERT parts stored (reference scores for every hit)
    query = "hybrid lexical semantic search"
    hits = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=len(TEXTS)).retrieve(query)
    assert len(hits) == len(TEXTS)
    q = reference.encode_queries([query])
    by_doc = {n.ref_doc_id: n for n in nodes}  # one node per document; node ids are random
    for hit in hits:
        d = reference.encode_documents([by_doc[hit.node.ref_doc_id].get_content(metadata_mode=MetadataMode.EMBED)])
        scores = hit.node.metadata[SCORES_KEY]
        assert scores["dense"] == pytest.approx(dense_score(q.dense[0], d.dense[0]), abs=1e-4)
        assert scores["sparse"] == pytest.approx(sparse_score(q.sparse[0], d.sparse[0]), rel=1e-3, abs=1e-4)
        assert scores["colbert"] == pytest.approx(colbert_score(q.colbert[0], d.colbert[0]), abs=5e-3)
    if backend.kind != "qdrant-memory":
        backend.client.close()


def test_without_the_cache_the_store_runs_the_model_again(tiny_model_dir, tmp_path, caplog):
    """The control of the test above: with the cache off, the same ingest costs a second pass (and says so)."""
    enc = M3Encoder(tiny_model_dir, device="cpu")
    store = Backend("qdrant-memory", tmp_path).store("nocache", enc, cache_size=0)
    VectorStoreIndex.from_documents(make_docs(), storage_context=StorageContext.from_defaults(vector_store=store),
                                    embed_model=M3Embedding(encoder=enc, cache_size=0))
    assert enc.stats.forward_passes >= 2
    assert enc.stats.texts == 2 * len(TEXTS)
    assert "re-ran the model" in caplog.text


@pytest.mark.parametrize("kind", ["qdrant-memory", "milvus"])
def test_nodes_round_trip(kind, enc, tmp_path):
    docs = make_docs()
    docs[0].excluded_llm_metadata_keys = ["year"]
    nodes = SentenceSplitter(chunk_size=24, chunk_overlap=0).get_nodes_from_documents(docs)
    assert len(nodes) > len(docs)  # several nodes per document, with prev/next relationships
    store = Backend(kind, tmp_path).store("roundtrip", enc)
    VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(vector_store=store),
                     embed_model=M3Embedding(encoder=enc))
    want = {n.node_id: n.model_dump(exclude={"embedding"}) for n in nodes}
    got = store.get_nodes(node_ids=[n.node_id for n in nodes[:5]])
    assert [n.node_id for n in got] == [n.node_id for n in nodes[:5]]
    for node in got:
        assert node.model_dump(exclude={"embedding"}) == want[node.node_id]
    assert len(store.get_nodes()) == len(nodes)
    french = store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="lang", value="fr")]))
    assert {n.ref_doc_id for n in french} == {"doc-4", "doc-5"}
    assert store.get_nodes(node_ids=[]) == []


# -------------------------------------------------------------------------------------------- query
def test_retriever_modes(built):
    _, _, index = built
    query = TEXTS[1]
    results = {}
    for mode in ("default", "sparse", "hybrid"):
        results[mode] = index.as_retriever(vector_store_query_mode=mode, similarity_top_k=3).retrieve(query)
        assert len(results[mode]) == 3
        scores = [r.score for r in results[mode]]
        assert scores == sorted(scores, reverse=True)
        assert all(r.node.get_content() in TEXTS for r in results[mode])
    assert set(results["default"][0].node.metadata[SCORES_KEY]) == {"dense"}
    assert set(results["sparse"][0].node.metadata[SCORES_KEY]) == {"sparse"}
    top = results["hybrid"][0]
    assert set(top.node.metadata[SCORES_KEY]) == {"dense", "sparse", "colbert"}
    s = top.node.metadata[SCORES_KEY]
    assert top.score == pytest.approx(0.4 * s["dense"] + 0.2 * s["sparse"] + 0.4 * s["colbert"], rel=1e-3)
    # the exact text wins on its own tokens
    assert results["sparse"][0].node.ref_doc_id == "doc-1"
    assert results["hybrid"][0].node.ref_doc_id == "doc-1"
    # the per-mode scores never reach the LLM or the embedding text
    assert SCORES_KEY not in top.node.get_content(metadata_mode=MetadataMode.LLM)


def test_alpha_maps_onto_the_fusion_weights(built):
    _, _, index = built
    for alpha, (w_d, w_s, w_c) in [(1.0, (0.6, 0.0, 0.4)), (0.0, (0.0, 0.6, 0.4)), (0.5, (0.3, 0.3, 0.4))]:
        hits = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=4, alpha=alpha).retrieve(
            "brown fox and the lazy dog")
        assert hits
        for hit in hits:
            s = hit.node.metadata[SCORES_KEY]
            assert hit.score == pytest.approx(w_d * s["dense"] + w_s * s["sparse"] + w_c * s["colbert"],
                                              rel=1e-3, abs=1e-4)
    dense_only = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=3, alpha=1.0)
    sparse_heavy = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=3, alpha=0.0)
    assert [h.score for h in dense_only.retrieve(TEXTS[2])] != [h.score for h in sparse_heavy.retrieve(TEXTS[2])]


def _f(key, value, op=FilterOperator.EQ):
    return MetadataFilter(key=key, value=value, operator=op)


FILTER_CASES = [
    (MetadataFilters(filters=[_f("lang", "en")]), lambda m: m["lang"] == "en"),
    (MetadataFilters(filters=[_f("lang", "en", FilterOperator.NE)]), lambda m: m["lang"] != "en"),
    (MetadataFilters(filters=[_f("year", 2020, FilterOperator.GT)]), lambda m: m["year"] > 2020),
    (MetadataFilters(filters=[_f("year", 2018, FilterOperator.LT)]), lambda m: m["year"] < 2018),
    (MetadataFilters(filters=[_f("topic", ["ml", "animals"], FilterOperator.IN)]),
     lambda m: m["topic"] in ("ml", "animals")),
    (MetadataFilters(filters=[_f("lang", "en"), _f("year", 2017, FilterOperator.GT)]),
     lambda m: m["lang"] == "en" and m["year"] > 2017),
    (MetadataFilters(filters=[_f("lang", "fr"), _f("lang", "de")], condition=FilterCondition.OR),
     lambda m: m["lang"] in ("fr", "de")),
    (MetadataFilters(filters=[
        _f("lang", "de"),
        MetadataFilters(filters=[_f("year", 2017, FilterOperator.LT), _f("topic", ["ml"], FilterOperator.IN)],
                        condition=FilterCondition.AND),
    ], condition=FilterCondition.OR), lambda m: m["lang"] == "de" or (m["year"] < 2017 and m["topic"] == "ml")),
]


def test_metadata_filters(built):
    _, _, index = built
    for filters, predicate in FILTER_CASES:
        want = {k for k, m in META.items() if predicate(m)}
        assert want and want != ALL_IDS  # every case selects something, and not everything
        for mode in ("default", "hybrid"):
            got = index.as_retriever(vector_store_query_mode=mode, similarity_top_k=len(TEXTS),
                                     filters=filters).retrieve("hybrid search")
            assert set(ids_of(got)) == want, (filters, mode)
    restricted = index.as_retriever(similarity_top_k=5, doc_ids=["doc-3", "doc-7"]).retrieve("fox")
    assert set(ids_of(restricted)) == {"doc-3", "doc-7"}


def test_unsupported_filters_and_modes_are_errors(built):
    _, store, index = built
    bad = MetadataFilters(filters=[_f("lang", "e", FilterOperator.TEXT_MATCH)])
    with pytest.raises(UnsupportedFilterError, match="TEXT_MATCH"):
        index.as_retriever(filters=bad).retrieve("x")
    with pytest.raises(UnsupportedFilterError, match="NOT"):
        index.as_retriever(filters=MetadataFilters(filters=[_f("lang", "en")], condition=FilterCondition.NOT)
                           ).retrieve("x")
    with pytest.raises(ValueError, match="mmr"):
        index.as_retriever(vector_store_query_mode="mmr").retrieve("x")
    with pytest.raises(ValueError, match="query_str"):
        store.query(VectorStoreQuery(query_embedding=[0.1] * 32, similarity_top_k=2))
    with pytest.raises(ValueError, match="alpha"):
        index.as_retriever(vector_store_query_mode="hybrid", alpha=2.0).retrieve("x")
    with pytest.raises(TypeError, match="unexpected keyword"):
        store.query(VectorStoreQuery(query_str="x"), colour="red")


def test_query_overrides_and_node_ids(built):
    _, store, _ = built
    res = store.query(VectorStoreQuery(query_str=TEXTS[3], similarity_top_k=2, mode=VectorStoreQueryMode.HYBRID),
                      fusion="rrf")
    assert len(res.nodes) == 2 and res.similarities[0] <= 1.0  # RRF scores, not the weighted scale
    colbert = store.query(VectorStoreQuery(query_str=TEXTS[3], similarity_top_k=2), mode="colbert")
    assert [set(n.metadata[SCORES_KEY]) for n in colbert.nodes] == [{"colbert"}] * 2
    assert colbert.similarities == pytest.approx([n.metadata[SCORES_KEY]["colbert"] for n in colbert.nodes])
    assert 0 < colbert.similarities[1] <= colbert.similarities[0] <= 1.0 + 5e-3  # reference scale (/ n tokens)
    some = store.get_nodes(filters=MetadataFilters(filters=[_f("lang", "de")]))
    only = store.query(VectorStoreQuery(query_str="fox", similarity_top_k=5, node_ids=[n.node_id for n in some]))
    assert {n.node_id for n in only.nodes} == {n.node_id for n in some}


def test_rescore_limit_reaches_the_store(built, enc):
    """``rescore_limit`` on the vector store, per query and on the retriever gives the adapter's answer for
    that limit, which differs from re-scoring every candidate for some query."""
    backend, store, _ = built
    adapter = store._adapter
    w = (1.0, 0.0, 1.0)  # first phase by dense alone: its best often is not the fused best on this corpus
    narrow_store = backend.store("shared", enc, rescore_limit=1, hybrid_weights=w)
    retriever = M3HybridRetriever(backend.client, "shared", enc, k=1, weights=w, rescore_limit=1)
    changed = 0
    for query in ("fox", "vectors", "search", "model", "river", "database", "quick", "semantic", "lexical", "dog"):
        narrow, every = ([h.id for h in adapter.hybrid_search(backend.client, query, "shared", enc, limit=1,
                                                              weights=w, rescore_limit=r)] for r in (1, None))
        hybrid = VectorStoreQuery(query_str=query, similarity_top_k=1, mode=VectorStoreQueryMode.HYBRID)
        assert [n.node_id for n in narrow_store.query(hybrid).nodes] == narrow
        assert [n.node_id for n in store.query(hybrid, weights=w, rescore_limit=1).nodes] == narrow
        assert [n.node_id for n in store.query(hybrid, weights=w).nodes] == every
        assert [r.node.node_id for r in retriever.retrieve(query)] == narrow
        changed += narrow != every
    assert changed
    with pytest.raises(ValueError, match="rescore_limit"):
        M3HybridRetriever(backend.client, "shared", enc, rescore_limit=0)


def test_query_engine_with_mock_llm(built):
    _, _, index = built
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=2, vector_store_query_mode="hybrid")
    response = engine.query("brown fox")
    assert len(response.source_nodes) == 2
    assert response.source_nodes[0].node.get_content() in str(response)  # MockLLM echoes its prompt


async def test_async_retrieval_matches_sync(built):
    _, _, index = built
    retriever = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=3)
    sync = retriever.retrieve("vector databases")
    got = await retriever.aretrieve("vector databases")
    assert ids_of(got) == ids_of(sync)
    assert [r.score for r in got] == pytest.approx([r.score for r in sync])


# ---------------------------------------------------------------------------------- delete / reopen
@pytest.mark.parametrize("kind", KINDS)
def test_delete_and_clear(kind, enc, tmp_path):
    backend = Backend(kind, tmp_path)
    store = backend.store("mutable", enc)
    index = VectorStoreIndex.from_documents(make_docs(), storage_context=StorageContext.from_defaults(
        vector_store=store), embed_model=M3Embedding(encoder=enc))
    n = len(TEXTS)
    index.delete_ref_doc("doc-1")
    assert store.count() == n - 1
    assert "doc-1" not in ids_of(index.as_retriever(similarity_top_k=n).retrieve(TEXTS[1]))

    node_of = {nd.ref_doc_id: nd.node_id for nd in store.get_nodes()}
    index.delete_nodes([node_of["doc-2"]])
    assert store.count() == n - 2 and "doc-2" not in {nd.ref_doc_id for nd in store.get_nodes()}
    # ids and filters together: only the ids that match the filter go
    store.delete_nodes(node_ids=[node_of["doc-3"], node_of["doc-4"]],
                       filters=MetadataFilters(filters=[_f("lang", "fr")]))
    left = {nd.ref_doc_id for nd in store.get_nodes()}
    assert "doc-4" not in left and "doc-3" in left
    store.delete_nodes(filters=MetadataFilters(filters=[_f("lang", "de")]))
    assert {nd.ref_doc_id for nd in store.get_nodes()} == ALL_IDS - {"doc-1", "doc-2", "doc-4", "doc-6", "doc-7"}
    with pytest.raises(ValueError, match="clear"):
        store.delete_nodes()

    index.insert(Document(text="A freshly inserted document about foxes.", id_="doc-new", metadata={"lang": "en"}))
    assert store.count() == 6
    assert "doc-new" in ids_of(index.as_retriever(vector_store_query_mode="sparse", similarity_top_k=2).retrieve(
        "freshly inserted document about foxes"))

    assert store.collection_exists()
    store.clear()
    assert "mutable" not in _collections(backend) and not store.collection_exists()
    store.add([TextNode(text="after clear", id_="n1")])  # the collection is created again
    assert store.count() == 1
    if backend.kind != "qdrant-memory":
        backend.client.close()


def _collections(backend) -> list[str]:
    client = backend.client
    if backend.kind == "qdrant-memory":
        return [c.name for c in client.get_collections().collections]
    if backend.kind == "qdrant-edge":
        return client.list_collections()
    return client.list_collections()


@pytest.mark.parametrize("kind", KINDS)
def test_reopen_without_reingest(kind, tiny_model_dir, tmp_path):
    enc = M3Encoder(tiny_model_dir, device="cpu")
    backend = Backend(kind, tmp_path)
    store = backend.store("persist", enc)
    VectorStoreIndex.from_documents(make_docs(), storage_context=StorageContext.from_defaults(vector_store=store),
                                    embed_model=M3Embedding(encoder=enc))
    client = backend.reopen()
    fresh = M3Encoder(tiny_model_dir, device="cpu")
    cls = M3MilvusVectorStore if kind == "milvus" else M3QdrantVectorStore
    reopened = cls(client=client, collection_name="persist", encoder=fresh)
    index = VectorStoreIndex.from_vector_store(reopened, embed_model=M3Embedding(encoder=fresh))
    assert fresh.stats.texts == 0  # nothing re-ingested
    hits = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=2).retrieve(TEXTS[5])
    assert hits[0].node.ref_doc_id == "doc-5"
    assert hits[0].node.metadata["lang"] == "fr"
    assert fresh.stats.texts == 1  # the query only
    assert reopened.count() == len(TEXTS)
    if backend.kind != "qdrant-memory":
        backend.client.close()


# ----------------------------------------------------------------------------------- M3HybridRetriever
def test_hybrid_retriever(built, tiny_model_dir):
    backend, store, _ = built
    fresh = M3Encoder(tiny_model_dir, device="cpu")  # no cache: every query is a real forward pass
    retriever = M3HybridRetriever(client=backend.client, collection_name="shared", encoder=fresh)
    hits = retriever.retrieve(TEXTS[7])
    assert fresh.stats.forward_passes == 1
    assert len(hits) == 4 and retriever.similarity_top_k == 4
    assert hits[0].node.ref_doc_id == "doc-7"
    assert set(hits[0].node.metadata[SCORES_KEY]) == {"dense", "sparse", "colbert"}
    assert hits[0].node.metadata["lang"] == "de"
    s = hits[0].node.metadata[SCORES_KEY]
    assert hits[0].score == pytest.approx(0.4 * s["dense"] + 0.2 * s["sparse"] + 0.4 * s["colbert"], rel=1e-3)

    filtered = M3HybridRetriever(backend.client, "shared", fresh, k=10, mode="dense",
                                 filter=MetadataFilters(filters=[_f("year", 2021, FilterOperator.GT)]))
    assert set(ids_of(filtered.retrieve("hybrid"))) == {"doc-7", "doc-8", "doc-9"}
    dense = M3HybridRetriever(backend.client, "shared", fresh, similarity_top_k=2, mode="dense")
    assert len(dense.retrieve("fox")) == 2
    rrf = M3HybridRetriever(backend.client, "shared", fresh, k=3, fusion="rrf", weights=(1, 1, 1))
    assert len(rrf.retrieve("fox")) == 3
    with pytest.raises(ValueError, match="mode"):
        M3HybridRetriever(backend.client, "shared", fresh, mode="bm25")
    with pytest.raises(ValueError, match="disagree"):
        M3HybridRetriever(backend.client, "shared", fresh, k=3, similarity_top_k=5)
    with pytest.raises(ValueError, match="encoder"):
        M3HybridRetriever(backend.client, "shared")


async def test_hybrid_retriever_async_and_plain_collections(built, enc):
    backend, _, _ = built
    adapter = __import__(f"m3_integrations.{'milvus' if backend.kind == 'milvus' else 'qdrant'}",
                         fromlist=["upsert_documents"])
    adapter.upsert_documents(backend.client, [{"text": t, "id": f"p{i}", "metadata": {"n": i}}
                                              for i, t in enumerate(TEXTS[:4])], "plain", enc, show_progress=False)
    retriever = M3HybridRetriever(backend.client, "plain", enc, k=2)
    hits = await retriever.aretrieve(TEXTS[2])
    assert hits[0].node.node_id == "p2" and hits[0].node.get_content() == TEXTS[2]
    assert isinstance(hits[0].node, TextNode) and hits[0].node.metadata["n"] == 2
    assert np.isfinite(hits[0].score)


def test_small_cache_re_encodes_only_what_fell_out(tiny_model_dir, tmp_path):
    """A batch larger than the cache: the store reads it newest-first, so only the evicted texts run again."""
    enc = M3Encoder(tiny_model_dir, device="cpu")
    store = Backend("qdrant-memory", tmp_path).store("small", enc, cache_size=4, batch_size=2)
    VectorStoreIndex.from_documents(make_docs(), storage_context=StorageContext.from_defaults(vector_store=store),
                                    embed_model=M3Embedding(encoder=enc))
    assert enc.stats.texts == len(TEXTS) + (len(TEXTS) - 4)  # oldest-first would miss all 10 (LRU scan)
    assert store.count() == len(TEXTS)


# ------------------------------------------------------------------------ issue 15: strictness, round trip, clear
@pytest.mark.parametrize("kind", KINDS)
def test_unknown_keywords_are_rejected_by_name(kind, tmp_path, enc):
    backend = Backend(kind, tmp_path)
    for bad in ({"colection_name": "x"}, {"schema": object()}):
        with pytest.raises(TypeError, match=next(iter(bad))):
            backend.store("strict", enc, **bad)
    backend.client.close()


@pytest.mark.parametrize("kind", KINDS)
def test_to_dict_round_trip_and_clear_error_without_client(kind, tmp_path, enc):
    backend = Backend(kind, tmp_path)
    store = backend.store("round", enc, fusion="rrf", prefetch_limit=33, rescore_limit=7)
    store.add([TextNode(text="round trip", id_="n1", metadata={"k": 1})])
    data = store.to_dict()
    cls = type(store)
    with pytest.raises(ValueError, match="client"):
        cls.from_dict(data)
    with pytest.raises(ValueError, match="client"):
        cls.from_json(store.to_json())
    again = cls.from_params(data, client=backend.client, encoder=enc)
    assert (again.fusion, again.prefetch_limit, again.rescore_limit, again.collection_name) == ("rrf", 33, 7, "round")
    loaded = cls.from_json(store.to_json(), client=backend.client)  # encoder rebuilt from encoder_model
    assert loaded.encoder.model_name == enc.model_name
    assert [n.node_id for n in again.get_nodes(["n1"])] == ["n1"]
    store.clear()
    backend.client.close()


@pytest.mark.parametrize("kind", KINDS)
def test_after_clear_reads_return_nothing(kind, tmp_path, enc):
    backend = Backend(kind, tmp_path)
    store = backend.store("cleared", enc)
    store.add([TextNode(text="soon gone", id_="g1", metadata={"k": 1})])
    store.clear()
    q = VectorStoreQuery(query_str="soon gone", similarity_top_k=3, mode=VectorStoreQueryMode.HYBRID)
    result = store.query(q)
    assert result.nodes == [] and result.ids == []
    assert store.get_nodes(["g1"]) == [] and store.count() == 0
    store.delete("g1")
    store.delete_nodes(["g1"])
    backend.client.close()


@pytest.mark.parametrize("kind", KINDS)
def test_native_filter_passes_through(kind, tmp_path, enc):
    backend = Backend(kind, tmp_path)
    store = backend.store("native", enc)
    store.add([TextNode(text=f"native filter text {i}", id_=f"n{i}", metadata={"k": i}) for i in range(4)])
    if kind == "milvus":
        native = 'metadata["k"] >= 2'
    else:
        from qdrant_client import models

        native = models.Filter(must=[models.FieldCondition(key="metadata.k", range=models.Range(gte=2))])
    q = VectorStoreQuery(query_str="native filter", similarity_top_k=4, mode=VectorStoreQueryMode.HYBRID)
    assert sorted(store.query(q, native_filter=native).ids) == ["n2", "n3"]
    q.filters = MetadataFilters(filters=[MetadataFilter(key="k", value=3, operator=FilterOperator.NE)])
    assert store.query(q, native_filter=native).ids == ["n2"]  # native AND the LlamaIndex filter
    store.clear()
    backend.client.close()


# ------------------------------------------------------ Milvus settings, collections without ColBERT / made elsewhere
def _spy_milvus(path):
    """A real milvus-lite ``MilvusClient`` that records the keywords of its reads (to see what reaches them)."""
    from pymilvus import MilvusClient

    class Spy(MilvusClient):
        reads: list = []

        def query(self, *args, **kwargs):
            self.reads.append(kwargs)
            return super().query(*args, **kwargs)

        def search(self, *args, **kwargs):
            self.reads.append(kwargs)
            return super().search(*args, **kwargs)

        def hybrid_search(self, *args, **kwargs):
            self.reads.append(kwargs)
            return super().hybrid_search(*args, **kwargs)

    return Spy(str(path))


def test_milvus_with_colbert_consistency_and_filter_params(tmp_path, enc):
    client = _spy_milvus(tmp_path / "s.db")
    store = M3MilvusVectorStore(client=client, collection_name="plain", encoder=enc, with_colbert=False,
                                consistency_level="Bounded")
    store.add([TextNode(text=f"filter params text {i}", id_=f"n{i}", metadata={"k": i, "lang": "it's"})
               for i in range(4)])
    assert client.list_collections() == ["plain"]  # no ColBERT companion collection
    q = VectorStoreQuery(query_str="filter params", similarity_top_k=4, mode=VectorStoreQueryMode.HYBRID)
    client.reads.clear()
    native = 'metadata["k"] >= {low} and metadata["lang"] == {lang}'
    assert sorted(store.query(q, native_filter=native, filter_params={"low": 2, "lang": "it's"}).ids) == ["n2", "n3"]
    assert set(store.query(q).nodes[0].metadata[SCORES_KEY]) == {"dense", "sparse"}
    assert [n.node_id for n in store.get_nodes(["n1"])] == ["n1"] and store.count() == 4
    assert client.reads and all(kw.get("consistency_level") == "Bounded" for kw in client.reads)
    with pytest.raises(ValueError, match="ColBERT"):
        store.query(q, mode="colbert")
    again = M3MilvusVectorStore.from_params(store.to_dict(), client=client, encoder=enc)
    assert (again.with_colbert, again.consistency_level) == (False, "Bounded")

    retriever = M3HybridRetriever(client, "plain", enc, k=4, filter='metadata["k"] < {high}',
                                  filter_params={"high": 1}, consistency_level="Session")
    client.reads.clear()
    assert [h.node.node_id for h in retriever.retrieve("text")] == ["n0"]
    assert all(kw.get("consistency_level") == "Session" for kw in client.reads)
    client.close()


def test_qdrant_with_colbert_and_milvus_only_settings(tmp_path, enc):
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    store = M3QdrantVectorStore(client=client, collection_name="plain", encoder=enc, with_colbert=False)
    store.add([TextNode(text="no colbert here", id_="a")])
    assert set(client.get_collection("plain").config.params.vectors) == {"dense"}
    q = VectorStoreQuery(query_str="colbert", similarity_top_k=1, mode=VectorStoreQueryMode.HYBRID)
    assert set(store.query(q).nodes[0].metadata[SCORES_KEY]) == {"dense", "sparse"}
    with pytest.raises(ValueError, match="consistency_level= is not a setting of m3_integrations.qdrant"):
        M3QdrantVectorStore(client=client, collection_name="plain", encoder=enc, consistency_level="Strong")
    with pytest.raises(ValueError, match="filter_params= is not a setting"):
        store.query(q, filter_params={"a": 1})
    with pytest.raises(ValueError, match="filter_params= is not a setting"):
        M3HybridRetriever(client, "plain", enc, filter_params={"a": 1})


def test_milvus_collection_made_elsewhere_nodes_read_and_deleted(tmp_path, enc):
    """A collection made like Milvus' BGE-M3 tutorial (auto-id key) with a dynamic field: nodes are written, found
    by their node ids, deleted by node id and by ref_doc_id, and searched by the LlamaIndex retriever too."""
    from pymilvus import MilvusClient

    from m3_integrations.milvus import MilvusFields

    client = MilvusClient(str(tmp_path / "t.db"))
    make_tutorial_collection(client, "theirs", enc.dim, text_max=4096, dynamic=True)
    fields = MilvusFields(dense="dense_vector", sparse="sparse_vector")
    store = M3MilvusVectorStore(client=client, collection_name="theirs", encoder=enc, fields=fields)
    index = VectorStoreIndex.from_documents(make_docs()[:4], storage_context=StorageContext.from_defaults(
        vector_store=store), embed_model=M3Embedding(encoder=enc))
    assert store.count() == 4
    ids = [n.node_id for n in store.get_nodes()]
    got = store.get_nodes([ids[2], "nope", ids[0]])
    assert [n.node_id for n in got] == [ids[2], ids[0]] and got[0].ref_doc_id is not None
    store.delete_nodes([ids[2]])
    store.delete(got[1].ref_doc_id)
    assert store.count() == 2 and not store.get_nodes([ids[0], ids[2]])
    hits = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=4).retrieve(TEXTS[1])
    assert len(hits) == 2 and {h.node.node_id for h in hits} == set(ids) - {ids[0], ids[2]}
    retriever = M3HybridRetriever(client, "theirs", enc, k=4, fields=fields)
    assert {h.node.node_id for h in retriever.retrieve("fox")} == set(ids) - {ids[0], ids[2]}
    client.close()
