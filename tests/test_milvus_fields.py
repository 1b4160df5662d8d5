"""A Milvus collection this package did not create, made like Milvus' BGE-M3 hybrid-search tutorial (auto-id primary
key, text, sparse_vector, dense_vector; no ColBERT), searched through ``MilvusFields`` (milvus-lite)."""

from __future__ import annotations

import pytest

pytest.importorskip("milvus_lite")

from _milvus_layouts import TUTORIAL_TEXTS, make_tutorial_collection  # noqa: E402
from pymilvus import DataType, MilvusClient  # noqa: E402

from m3_integrations import dense_score, sparse_score  # noqa: E402
from m3_integrations.langchain import M3VectorStore  # noqa: E402
from m3_integrations.milvus import (  # noqa: E402
    Condition,
    MilvusFields,
    SchemaMismatchError,
    ahybrid_search,
    hybrid_search,
)

TEXTS = TUTORIAL_TEXTS
LANGS = ["en", "en", "en", "en", "en", "de"]
FIELDS = MilvusFields(dense="dense_vector", sparse="sparse_vector")


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory, encoder):
    client = MilvusClient(str(tmp_path_factory.mktemp("tutorial") / "t.db"))
    make_tutorial_collection(client, "hybrid_demo", encoder.dim,
                             extra=[("lang", DataType.VARCHAR, {"max_length": 8})])
    out = encoder.encode_documents(TEXTS, return_colbert=False)
    client.insert("hybrid_demo", [
        {"text": t, "lang": lang, "dense_vector": out.dense[i].tolist(),
         "sparse_vector": {int(k): float(v) for k, v in out.sparse[i].items()}}
        for i, (t, lang) in enumerate(zip(TEXTS, LANGS, strict=True))])
    client.flush("hybrid_demo")
    yield client, out
    client.close()


def _reference(encoder, out, query):
    q = encoder.encode_queries([query], return_colbert=False)
    return {t: (dense_score(q.dense[0], out.dense[i]), sparse_score(q.sparse[0], out.sparse[i]))
            for i, t in enumerate(TEXTS)}


@pytest.mark.parametrize("query", ["Who started AI research?", "hybrid search with sparse vectors"])
def test_weighted_and_rrf_match_the_reference(tutorial, encoder, query):
    client, out = tutorial
    ref = _reference(encoder, out, query)
    hits = hybrid_search(client, query, "hybrid_demo", encoder, limit=6, fields=FIELDS)  # weights 0.4/0.2(/0.4)
    fused = {t: (0.4 * d + 0.2 * s) / 0.6 for t, (d, s) in ref.items()}
    assert [h.text for h in hits] == sorted(fused, key=lambda t: -fused[t])
    for h in hits:
        assert h.score == pytest.approx(fused[h.text], abs=1e-4)
        assert h.scores["dense"] == pytest.approx(ref[h.text][0], abs=1e-4)
        assert h.scores["sparse"] == pytest.approx(ref[h.text][1], abs=1e-4)
        assert h.metadata == {"lang": LANGS[TEXTS.index(h.text)]} and h.id  # the auto-id primary key
    rrf = hybrid_search(client, query, "hybrid_demo", encoder, limit=6, fusion="rrf", fields=FIELDS)
    dense_rank = sorted(TEXTS, key=lambda t: -ref[t][0])
    sparse_rank = sorted((t for t in TEXTS if ref[t][1] > 0), key=lambda t: -ref[t][1])
    expected = {t: 0.4 / (60 + dense_rank.index(t) + 1)
                + (0.2 / (60 + sparse_rank.index(t) + 1) if t in sparse_rank else 0.0) for t in TEXTS}
    assert [h.text for h in rrf] == sorted(expected, key=lambda t: -expected[t])
    dense_only = hybrid_search(client, query, "hybrid_demo", encoder, limit=2, mode="dense", fields=FIELDS)
    assert [h.text for h in dense_only] == dense_rank[:2]


async def test_filters_async_and_refusals(tutorial, encoder):
    client, _ = tutorial
    hits = hybrid_search(client, "vectors", "hybrid_demo", encoder, limit=6, fields=FIELDS,
                         query_filter=Condition("lang", "eq", "de"))
    assert [h.text for h in hits] == [TEXTS[5]]
    native = hybrid_search(client, "vectors", "hybrid_demo", encoder, limit=6, fields=FIELDS,
                           query_filter='lang == "de"')
    assert [h.text for h in native] == [TEXTS[5]]
    same = await ahybrid_search(client, "vectors", "hybrid_demo", encoder, limit=3, fields=FIELDS)
    assert [h.text for h in same] == [h.text for h in hybrid_search(client, "vectors", "hybrid_demo", encoder,
                                                                     limit=3, fields=FIELDS)]
    with pytest.raises(ValueError, match="ColBERT"):
        hybrid_search(client, "vectors", "hybrid_demo", encoder, mode="colbert", fields=FIELDS)
    with pytest.raises(SchemaMismatchError, match="'dense' .*missing"):
        hybrid_search(client, "vectors", "hybrid_demo", encoder, fields=MilvusFields(dense="dense"))
    with pytest.raises(SchemaMismatchError, match="m3_integrations BGE-M3 collection"):
        hybrid_search(client, "vectors", "hybrid_demo", encoder)  # without fields: not the package's layout


def test_langchain_vector_store_searches_it(tutorial, encoder):
    client, _ = tutorial
    store = M3VectorStore(client, "hybrid_demo", encoder, store_kwargs={"fields": FIELDS})
    docs = store.similarity_search("Alan Turing", k=2)
    assert len(docs) == 2 and all(d.metadata.keys() == {"lang"} for d in docs)
    assert [d.page_content for d in store.similarity_search("Alan Turing", k=2, fusion="rrf")]


def test_llama_index_store_searches_it(tutorial, encoder):
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode

    from m3_integrations.llama_index import M3MilvusVectorStore

    client, _ = tutorial
    store = M3MilvusVectorStore(client, "hybrid_demo", encoder, fields=FIELDS)
    result = store.query(VectorStoreQuery(query_str="Alan Turing", similarity_top_k=2,
                                          mode=VectorStoreQueryMode.HYBRID))
    assert len(result.nodes) == 2 and all(n.metadata["lang"] in ("en", "de") for n in result.nodes)
    with pytest.raises(TypeError, match="MilvusFields"):
        M3MilvusVectorStore(client, "hybrid_demo", encoder, schema=object())
