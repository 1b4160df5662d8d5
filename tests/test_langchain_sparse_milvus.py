"""M3MilvusSparseEmbedding in langchain-milvus' own ``Milvus`` vector store (milvus-lite), hybrid dense + sparse."""

from __future__ import annotations

import pytest

langchain_milvus = pytest.importorskip("langchain_milvus")

from langchain_milvus.utils.sparse import BaseSparseEmbedding  # noqa: E402

from m3_integrations.langchain import M3Embeddings, M3MilvusSparseEmbedding  # noqa: E402


def test_weights_match_the_encoder_and_share_its_forward_pass(encoder):
    dense = M3Embeddings(encoder=encoder)
    sparse = M3MilvusSparseEmbedding.from_embeddings(dense)
    assert isinstance(sparse, BaseSparseEmbedding)
    texts = ["sparse weights for milvus", "another text"]
    dense.embed_documents(texts)
    before = encoder.stats.forward_passes
    got = sparse.embed_documents(texts)  # served from the shared dense + sparse cache
    assert encoder.stats.forward_passes == before
    ref = encoder.encode_documents(texts, return_dense=False, return_colbert=False).sparse
    for g, r in zip(got, ref, strict=True):
        assert g.keys() == {int(k) for k in r} and all(abs(g[int(k)] - v) < 1e-5 for k, v in r.items())
    q = sparse.embed_query("milvus")
    assert q and all(isinstance(k, int) and isinstance(v, float) for k, v in q.items())
    with pytest.raises(TypeError, match="list of strings"):
        sparse.embed_documents("one string")


def test_langchain_milvus_hybrid_store(tmp_path, encoder):
    from langchain_core.documents import Document
    from langchain_milvus import Milvus

    dense = M3Embeddings(encoder=encoder)
    store = Milvus(embedding_function=[dense, M3MilvusSparseEmbedding.from_embeddings(dense)],
                   vector_field=["dense", "sparse"], connection_args={"uri": str(tmp_path / "lc.db")},
                   collection_name="lc_hybrid", auto_id=True, drop_old=True)
    texts = ["Qdrant and Milvus store vectors.", "The fox jumps over the dog.", "Sparse lexical weights."]
    store.add_documents([Document(page_content=t, metadata={"n": i}) for i, t in enumerate(texts)])
    hits = store.similarity_search("The fox jumps over the dog.", k=3, ranker_type="weighted",
                                   ranker_params={"weights": [0.5, 0.5]},
                                   # langchain-milvus' default sparse search params carry drop_ratio_build=0.2,
                                   # which milvus-lite refuses
                                   param=[{"metric_type": "IP", "params": {}}, {"metric_type": "IP", "params": {}}])
    assert len(hits) == 3 and hits[0].page_content == texts[1]
