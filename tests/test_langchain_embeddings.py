"""M3Embeddings / M3SparseEmbeddings: values, LangChain conventions, and QdrantVectorStore hybrid mode."""

from __future__ import annotations

import asyncio
import importlib
import sys
import threading

import numpy as np
import pytest

from m3_integrations import M3Encoder
from m3_integrations.langchain import M3Embeddings, M3SparseEmbeddings

TEXTS = [
    "BGE-M3 gives dense, sparse and multi-vector representations of a text.",
    "Hybrid retrieval combines lexical matching with semantic similarity.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Le renard brun rapide saute par-dessus le chien paresseux.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Vector databases such as Qdrant and Milvus store dense and sparse vectors.",
]


@pytest.fixture
def fresh_encoder(tiny_model_dir) -> M3Encoder:
    """An encoder of its own, so that its counters and cache start empty (the tiny model loads fast)."""
    return M3Encoder(tiny_model_dir, device="cpu")


def test_dense_values_are_the_encoder_outputs(encoder):
    emb = M3Embeddings(encoder=encoder, cache_size=0)
    docs = emb.embed_documents(TEXTS[:3])
    assert isinstance(docs, list) and len(docs) == 3
    assert all(isinstance(v, list) and len(v) == encoder.dim and isinstance(v[0], float) for v in docs)
    np.testing.assert_allclose(docs, encoder.encode_documents(TEXTS[:3]).dense, rtol=0, atol=1e-6)
    query = emb.embed_query(TEXTS[1])
    np.testing.assert_allclose(query, encoder.encode_queries([TEXTS[1]]).dense[0], rtol=0, atol=1e-6)
    assert emb.embed_documents([]) == []


def test_cached_values_equal_uncached(encoder):
    cached = M3Embeddings(encoder=encoder)
    uncached = M3Embeddings(encoder=encoder, cache_size=0)
    assert cached.embed_documents(TEXTS) == uncached.embed_documents(TEXTS)
    assert cached.embed_documents(TEXTS) == uncached.embed_documents(TEXTS)  # the second read is from the cache
    assert cached.embed_query(TEXTS[0]) == uncached.embed_query(TEXTS[0])


def test_query_and_documents_use_their_own_truncation(tiny_model_dir):
    enc = M3Encoder(tiny_model_dir, device="cpu", query_max_length=6)
    emb = M3Embeddings(encoder=enc)
    long_text = TEXTS[0]
    with pytest.warns(UserWarning, match="truncated"):
        query = emb.embed_query(long_text)
    document = emb.embed_documents([long_text])[0]
    np.testing.assert_allclose(query, enc.encode_queries([long_text]).dense[0], atol=1e-6)
    np.testing.assert_allclose(document, enc.encode_documents([long_text]).dense[0], atol=1e-6)
    assert not np.allclose(query, document)  # the query was cut to 6 tokens, the document was not


def test_sparse_values_are_the_encoder_outputs(encoder):
    sparse = M3SparseEmbeddings(encoder=encoder, cache_size=0)
    vectors = sparse.embed_documents(TEXTS[:3])
    reference = encoder.encode_documents(TEXTS[:3], return_dense=False, return_colbert=False).sparse
    for vector, weights in zip(vectors, reference, strict=True):
        assert vector.indices == sorted(weights)
        np.testing.assert_allclose(vector.values, [weights[i] for i in vector.indices], rtol=0, atol=1e-7)
    query = M3SparseEmbeddings(encoder=encoder).embed_query(TEXTS[2])
    assert dict(zip(query.indices, query.values, strict=True)) == pytest.approx(
        encoder.encode_queries([TEXTS[2]]).sparse[0])


def test_lazy_load_by_model_name_shares_one_encoder(tiny_model_dir):
    dense = M3Embeddings(model_name=tiny_model_dir, device="cpu")  # a Path is accepted
    sparse = M3SparseEmbeddings(model_name=str(tiny_model_dir), device="cpu")
    assert dense.encoder is None  # nothing is loaded until first use
    dense.embed_documents(TEXTS[:2])
    sparse.embed_documents(TEXTS[:2])
    assert dense.get_encoder() is sparse.get_encoder()
    assert dense.get_encoder().stats.forward_passes == 1  # the second call was served from the cache
    assert M3SparseEmbeddings.from_embeddings(dense).get_encoder() is dense.get_encoder()


def test_default_model_is_bge_m3_and_missing_model_is_a_clear_error(tmp_path):
    assert M3Embeddings().model_name == "BAAI/bge-m3"  # constructing does not load anything
    missing = M3Embeddings(model_name=str(tmp_path / "nope"))
    with pytest.raises(Exception, match="nope"):
        missing.embed_query("x")


def test_bad_arguments(encoder):
    with pytest.raises(ValueError, match="either encoder= or model_name="):
        M3Embeddings(encoder=encoder, model_name="BAAI/bge-m3")
    with pytest.raises(ValueError):
        M3Embeddings(encoder=encoder, cache_size=-1)
    with pytest.raises(ValueError, match="unexpected|extra|not permitted"):
        M3Embeddings(encoder=encoder, modelname="x")
    with pytest.raises(ValueError):
        M3Embeddings(encoder="not an encoder")
    emb = M3Embeddings(encoder=encoder)
    with pytest.raises(TypeError, match="single str"):
        emb.embed_documents("one text")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        emb.embed_documents(["a", 3])
    with pytest.raises(TypeError, match="embed_query takes a str"):
        emb.embed_query(["a"])
    with pytest.raises(TypeError, match="M3Embeddings"):
        M3SparseEmbeddings.from_embeddings(object())


async def test_async_runs_the_model_off_the_event_loop(fresh_encoder, monkeypatch):
    threads: list[int] = []
    real_encode = fresh_encoder.encode

    def spy(*args, **kwargs):  # records where the real encoder runs
        threads.append(threading.get_ident())
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(fresh_encoder, "encode", spy)
    dense = M3Embeddings(encoder=fresh_encoder)
    sparse = M3SparseEmbeddings(encoder=fresh_encoder, cache_size=0)
    docs, query, sparse_docs = await asyncio.gather(
        dense.aembed_documents(TEXTS[:2]), dense.aembed_query("a query"), sparse.aembed_documents(TEXTS[2:4]))
    assert len(docs) == 2 and len(query) == fresh_encoder.dim and len(sparse_docs) == 2
    assert (await sparse.aembed_query("a query")).indices
    assert len(threads) == 4 and threading.get_ident() not in threads
    assert docs == dense.embed_documents(TEXTS[:2])


def test_importing_without_langchain_qdrant(monkeypatch):
    """Only M3SparseEmbeddings needs langchain-qdrant; the rest of the package imports without it."""
    import m3_integrations

    for name in [m for m in sys.modules if m.startswith("m3_integrations.langchain")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "langchain_qdrant", None)  # makes `import langchain_qdrant` fail
    monkeypatch.setattr(m3_integrations, "langchain", None, raising=False)
    module = importlib.import_module("m3_integrations.langchain")
    assert module.M3Embeddings and module.M3HybridRetriever
    with pytest.raises(ImportError, match="pip install"):
        module.M3SparseEmbeddings  # noqa: B018


# ------------------------------------------------------------------ langchain-qdrant QdrantVectorStore
def _hybrid_store(dense, sparse, texts, **kwargs):
    from langchain_qdrant import QdrantVectorStore, RetrievalMode

    return QdrantVectorStore.from_texts(
        texts, embedding=dense, sparse_embedding=sparse, location=":memory:", collection_name="lc",
        retrieval_mode=RetrievalMode.HYBRID, **kwargs)


def test_qdrant_vector_store_hybrid_end_to_end(fresh_encoder):
    dense = M3Embeddings(encoder=fresh_encoder)
    sparse = M3SparseEmbeddings.from_embeddings(dense)
    metadatas = [{"n": i} for i in range(len(TEXTS))]
    store = _hybrid_store(dense, sparse, TEXTS, metadatas=metadatas)
    for i in (1, 3):
        top = store.similarity_search(TEXTS[i], k=2)
        assert top[0].page_content == TEXTS[i] and top[0].metadata["n"] == i

    # what Qdrant stored is the encoder's output, sparse included
    points, _ = store.client.scroll("lc", limit=100, with_vectors=True, with_payload=True)
    assert len(points) == len(TEXTS)
    reference = fresh_encoder.encode_documents(TEXTS)
    for point in points:
        i = TEXTS.index(point.payload["page_content"])
        stored = point.vector[store.sparse_vector_name]
        assert dict(zip(stored.indices, stored.values, strict=True)) == pytest.approx(reference.sparse[i], abs=1e-6)
        np.testing.assert_allclose(point.vector[store.vector_name], reference.dense[i], atol=1e-6)


def test_dense_and_sparse_of_the_same_texts_run_the_model_once(fresh_encoder):
    """QdrantVectorStore calls the dense and then the sparse embeddings on each batch; one pass serves both."""
    stats = fresh_encoder.stats
    dense = M3Embeddings(encoder=fresh_encoder)
    store = _hybrid_store(dense, M3SparseEmbeddings.from_embeddings(dense), ["warm up"])
    passes, texts = stats.forward_passes, stats.texts
    store.add_texts(TEXTS)  # all six fit one batch of the encoder
    assert stats.forward_passes - passes == 1
    assert stats.texts - texts == len(TEXTS)  # each text went through the model once
    passes = stats.forward_passes
    store.similarity_search("a brand new query", k=2)  # dense + sparse query embeddings
    assert stats.forward_passes - passes == 1

    # without the cache the same work takes two passes each time (so the assertions above can fail)
    uncached_encoder = M3Encoder(fresh_encoder.model_dir, device="cpu")
    dense0 = M3Embeddings(encoder=uncached_encoder, cache_size=0)
    store0 = _hybrid_store(dense0, M3SparseEmbeddings(encoder=uncached_encoder, cache_size=0), ["warm up"])
    passes = uncached_encoder.stats.forward_passes
    store0.add_texts(TEXTS)
    assert uncached_encoder.stats.forward_passes - passes == 2


def test_works_in_a_langchain_vector_store(encoder):
    from langchain_core.vectorstores import InMemoryVectorStore

    store = InMemoryVectorStore.from_texts(TEXTS, M3Embeddings(encoder=encoder))
    assert store.similarity_search(TEXTS[2], k=1)[0].page_content == TEXTS[2]
