"""Collections of dense + sparse only (``QdrantSchema(with_colbert=False)``) on Qdrant local mode, Qdrant Edge and
an ``AsyncQdrantClient``: made without a ColBERT vector, ingest computes no ColBERT, hybrid fuses dense + sparse
(``(w_d * dense + w_s * sparse) / (w_d + w_s)``, the ColBERT weight dropped), ColBERT mode is refused, and the
choice is recorded with the collection, so later opens need no flag; explicit mismatches are
``SchemaMismatchError``."""

from __future__ import annotations

import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient

from m3_integrations import dense_score, sparse_score
from m3_integrations.qdrant import (
    QdrantEdgeStore,
    QdrantSchema,
    SchemaMismatchError,
    ahybrid_search,
    aupsert_documents,
    count_documents,
    hybrid_search,
    upsert_documents,
)

TEXTS = ["Alan Turing was the first person to conduct substantial research in AI.",
         "Qdrant stores dense and sparse vectors for hybrid search.",
         "The quick brown fox jumps over the lazy dog.",
         "BGE-M3 gives dense, sparse and multi-vector representations."]
NO_COLBERT = QdrantSchema(with_colbert=False)


class Recording:
    """The real encoder, recording whether each document batch asked for ColBERT rows."""

    def __init__(self, inner) -> None:
        self.inner, self.dim, self.colbert_asked = inner, inner.dim, []

    def encode_documents(self, texts, **kwargs):
        self.colbert_asked.append(kwargs.get("return_colbert", True))
        return self.inner.encode_documents(texts, **kwargs)

    def encode_queries(self, texts, **kwargs):
        return self.inner.encode_queries(texts, **kwargs)


@pytest.fixture(params=["local", "edge"])
def client(request, tmp_path):
    c = QdrantClient(":memory:") if request.param == "local" else QdrantEdgeStore(tmp_path / "edge")
    yield c
    c.close()


def _vectors(client, name: str) -> set[str]:
    if isinstance(client, QdrantEdgeStore):
        return set(client.describe(name).vectors)
    return set(client.get_collection(name).config.params.vectors)


def _recorded(client, name: str) -> dict:
    if isinstance(client, QdrantEdgeStore):
        return client.describe(name).recorded
    return client.get_collection(name).config.metadata["m3_integrations"]


def test_made_without_colbert_searched_as_dense_plus_sparse(client, encoder):
    enc = Recording(encoder)
    upsert_documents(client, TEXTS, "nc", enc, schema=NO_COLBERT)
    assert _vectors(client, "nc") == {"dense"} and _recorded(client, "nc") == {"colbert": False}
    assert enc.colbert_asked == [False]
    q = encoder.encode_queries(["Who did research on AI?"], return_colbert=False)
    d = encoder.encode_documents(TEXTS, return_colbert=False)
    ref = {t: (dense_score(q.dense[0], d.dense[i]), sparse_score(q.sparse[0], d.sparse[i]))
           for i, t in enumerate(TEXTS)}
    for schema in (NO_COLBERT, None):  # None: the collection's own record says there is no ColBERT
        hits = hybrid_search(client, "Who did research on AI?", "nc", encoder, limit=4, schema=schema)
        fused = {t: (0.4 * dn + 0.2 * sp) / 0.6 for t, (dn, sp) in ref.items()}
        assert [h.text for h in hits] == sorted(fused, key=lambda t: -fused[t])
        for h in hits:
            assert h.score == pytest.approx(fused[h.text], abs=1e-4)
            assert set(h.scores) == {"dense", "sparse"}
            assert h.scores["dense"] == pytest.approx(ref[h.text][0], abs=1e-4)
        rrf = hybrid_search(client, "Who did research on AI?", "nc", encoder, limit=4, fusion="rrf", schema=schema)
        assert {h.text for h in rrf} == set(TEXTS)
        with pytest.raises(ValueError, match="mode='colbert' needs ColBERT vectors.*'nc'"):
            hybrid_search(client, "Who did research on AI?", "nc", encoder, mode="colbert", schema=schema)
    with pytest.raises(ValueError, match="no weight"):
        hybrid_search(client, "AI", "nc", encoder, weights=(0, 0, 1))


def test_later_opens_know_it_and_mismatches_are_errors(client, encoder):
    upsert_documents(client, TEXTS[:2], "nc", encoder, schema=NO_COLBERT)
    enc = Recording(encoder)
    upsert_documents(client, TEXTS[2:], "nc", enc)  # no flag: the collection records it
    assert enc.colbert_asked == [False] and count_documents(client, "nc") == 4
    assert _vectors(client, "nc") == {"dense"}
    with pytest.raises(SchemaMismatchError, match="ColBERT multivector 'colbert' is missing.*with_colbert=True"):
        upsert_documents(client, ["more"], "nc", encoder, schema=QdrantSchema(with_colbert=True))
    with pytest.raises(SchemaMismatchError, match="with_colbert=True"):
        hybrid_search(client, "AI", "nc", encoder, schema=QdrantSchema(with_colbert=True))
    upsert_documents(client, TEXTS, "full", encoder)  # with ColBERT
    with pytest.raises(SchemaMismatchError, match="stores ColBERT vectors in 'colbert'.*with_colbert=False"):
        upsert_documents(client, ["more"], "full", encoder, schema=NO_COLBERT)
    assert count_documents(client, "nc") == 4 and count_documents(client, "full") == 4
    with pytest.raises(ValueError, match="colbert_storage / colbert_pool_factor set with with_colbert=False"):
        QdrantSchema(with_colbert=False, colbert_storage="8bit")


def test_a_collection_without_colbert_not_recorded_names_the_fix(encoder):
    client = QdrantClient(":memory:")
    upsert_documents(client, TEXTS, "nc", encoder, schema=NO_COLBERT)
    client.update_collection("nc", metadata={"m3_integrations": {}})  # as if made elsewhere, or before the record
    with pytest.raises(SchemaMismatchError, match=r"'colbert' is missing.*QdrantSchema\(with_colbert=False\)"):
        upsert_documents(client, ["more"], "nc", encoder)
    upsert_documents(client, ["more"], "nc", encoder, schema=NO_COLBERT)
    assert hybrid_search(client, "more", "nc", encoder, limit=1, schema=NO_COLBERT)[0].text == "more"
    client.close()


async def test_async_client(encoder):
    client = AsyncQdrantClient(":memory:")
    enc = Recording(encoder)
    await aupsert_documents(client, TEXTS, "nc", enc, schema=NO_COLBERT)
    await aupsert_documents(client, ["one more text"], "nc", enc)
    assert enc.colbert_asked == [False, False]
    assert set((await client.get_collection("nc")).config.params.vectors) == {"dense"}
    hits = await ahybrid_search(client, "one more text", "nc", encoder, limit=2)
    assert hits[0].text == "one more text" and set(hits[0].scores) == {"dense", "sparse"}
    with pytest.raises(ValueError, match="needs ColBERT vectors"):
        await ahybrid_search(client, "x", "nc", encoder, mode="colbert")
    await client.close()


def test_encoded_writer_writes_no_colbert(tmp_path, encoder):
    """The writer of encoded batches (Ray ingest) on such a collection: pool factor 1, no ColBERT rows written."""
    from m3_integrations._ingest import Document
    from m3_integrations.qdrant.documents import EncodedWriter

    store = QdrantEdgeStore(tmp_path / "edge")
    writer = EncodedWriter(store, "nc", encoder.dim, schema=NO_COLBERT)
    assert writer.prepare() == 1
    docs = [Document(text=t) for t in TEXTS]
    writer.write(docs, encoder.encode_documents(TEXTS))  # ColBERT rows given are not written
    writer.finish()
    assert set(store.describe("nc").vectors) == {"dense"} and count_documents(store, "nc") == 4
    again = EncodedWriter(store, "nc", encoder.dim)  # no flag: the collection records it
    assert again.prepare() == 1 and again.colbert is False
    store.close()
