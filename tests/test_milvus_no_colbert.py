"""Package collections without ColBERT (``with_colbert=False``) and the consistency level chosen at creation
(milvus-lite; the server's own record of the level is checked on the request the package sends)."""

from __future__ import annotations

import pytest

pytest.importorskip("milvus_lite")

from pymilvus import MilvusClient  # noqa: E402

from m3_integrations import dense_score, sparse_score  # noqa: E402
from m3_integrations.milvus import (  # noqa: E402
    SchemaMismatchError,
    ahybrid_search,
    aupsert_documents,
    count_documents,
    get_documents,
    hybrid_search,
    upsert_documents,
)
from m3_integrations.milvus._schema import ServerCaps, state  # noqa: E402

TEXTS = [f"document {i} about {topic}" for i, topic in enumerate(
    ["dense retrieval", "sparse lexical weights", "Milvus collections", "hybrid search fusion", "ColBERT tokens",
     "reciprocal rank fusion", "vector databases", "BGE-M3 encoders"])]


class NoColbertEncoder:
    """The real encoder, refusing to compute ColBERT rows (a collection without ColBERT never needs them)."""

    def __init__(self, inner) -> None:
        self.inner, self.dim = inner, inner.dim

    def encode_documents(self, texts, **kwargs):
        assert kwargs.get("return_colbert") is False, "ingest into a collection without ColBERT computed ColBERT rows"
        return self.inner.encode_documents(texts, **kwargs)

    def encode_queries(self, texts, **kwargs):
        return self.inner.encode_queries(texts, **kwargs)


@pytest.fixture
def client(tmp_path):
    c = MilvusClient(str(tmp_path / "m.db"))
    yield c
    c.close()


def test_collection_without_colbert_ingests_searches_and_refuses_colbert(client, encoder):
    keys = upsert_documents(client, TEXTS, "plain", NoColbertEncoder(encoder), with_colbert=False)
    assert len(keys) == len(TEXTS) and count_documents(client, "plain") == len(TEXTS)
    assert client.list_collections() == ["plain"]  # no companion collection
    fields = {f["name"] for f in client.describe_collection("plain")["fields"]}
    assert "n_tokens" not in fields and "gen" not in fields
    # a repeated ingest adds nothing
    upsert_documents(client, TEXTS, "plain", NoColbertEncoder(encoder))
    assert count_documents(client, "plain") == len(TEXTS)

    out = encoder.encode_documents(TEXTS, return_colbert=False)
    query = "hybrid fusion of dense and sparse"
    q = encoder.encode_queries([query], return_colbert=False)
    ref = {t: (dense_score(q.dense[0], out.dense[i]), sparse_score(q.sparse[0], out.sparse[i]))
           for i, t in enumerate(TEXTS)}
    hits = hybrid_search(client, query, "plain", encoder, limit=8)  # default weights 0.4 / 0.2 / 0.4
    fused = {t: (0.4 * d + 0.2 * s) / 0.6 for t, (d, s) in ref.items()}
    assert [h.text for h in hits] == sorted(fused, key=lambda t: -fused[t])
    for h in hits:
        assert h.score == pytest.approx(fused[h.text], abs=1e-4)
        assert "colbert" not in h.scores
    rrf = hybrid_search(client, query, "plain", encoder, limit=8, fusion="rrf", weights=(1.0, 0.5, 1.0))
    dense_rank = sorted(TEXTS, key=lambda t: -ref[t][0])
    sparse_rank = sorted((t for t in TEXTS if ref[t][1] > 0), key=lambda t: -ref[t][1])
    expected = {t: 1.0 / (61 + dense_rank.index(t)) + (0.5 / (61 + sparse_rank.index(t)) if t in sparse_rank else 0)
                for t in TEXTS}
    assert [h.text for h in rrf] == sorted(expected, key=lambda t: -expected[t])
    assert [h.text for h in hybrid_search(client, query, "plain", encoder, limit=3, fusion="dbsf")]
    with pytest.raises(ValueError, match="mode='colbert' needs ColBERT vectors"):
        hybrid_search(client, query, "plain", encoder, mode="colbert")
    with pytest.raises(ValueError, match="no ColBERT vectors"):
        hybrid_search(client, query, "plain", encoder, weights=(0.0, 0.0, 1.0))


async def test_async_twins_and_recorded_choice(client, encoder, tmp_path):
    await aupsert_documents(client, TEXTS[:4], "plain_async", NoColbertEncoder(encoder), with_colbert=False)
    hits = await ahybrid_search(client, "Milvus collections", "plain_async", encoder, limit=2)
    assert [h.text for h in hits] == [h.text for h in hybrid_search(client, "Milvus collections", "plain_async",
                                                                    encoder, limit=2)]
    # recorded with the collection: another client (a reopened file) sees it too
    other = MilvusClient(str(tmp_path / "m.db"))
    try:
        assert len(get_documents(other, "plain_async")) == 4
        with pytest.raises(ValueError, match="needs ColBERT vectors"):
            hybrid_search(other, "x", "plain_async", encoder, mode="colbert")
    finally:
        other.close()


def test_mismatches_are_schema_errors_and_keep_data(client, encoder):
    upsert_documents(client, TEXTS[:3], "plain", encoder, with_colbert=False)
    upsert_documents(client, TEXTS[:3], "full", encoder)
    with pytest.raises(SchemaMismatchError, match="stores no ColBERT vectors"):
        upsert_documents(client, TEXTS[3:], "plain", encoder, with_colbert=True)
    with pytest.raises(SchemaMismatchError, match="stores no ColBERT vectors.*colbert_storage"):
        upsert_documents(client, TEXTS[3:], "plain", encoder, colbert_storage="8bit")
    with pytest.raises(SchemaMismatchError, match="stores ColBERT vectors, with_colbert=False was asked"):
        upsert_documents(client, TEXTS[3:], "full", encoder, with_colbert=False)
    with pytest.raises(ValueError, match="with_colbert=False stores no ColBERT vectors, so colbert_storage='4bit'"):
        upsert_documents(client, TEXTS, "new", encoder, with_colbert=False, colbert_storage="4bit")
    with pytest.raises(TypeError, match="with_colbert must be True, False or None"):
        upsert_documents(client, TEXTS, "new", encoder, with_colbert="no")
    assert count_documents(client, "plain") == 3 and count_documents(client, "full") == 3
    assert "new" not in client.list_collections()
    # recreate=True rebuilds it the other way (the documented way out)
    upsert_documents(client, TEXTS[:2], "plain", encoder, recreate=True, with_colbert=True)
    assert hybrid_search(client, TEXTS[0], "plain", encoder, mode="colbert", limit=1)[0].text == TEXTS[0]


def test_consistency_level_at_creation(client, encoder):
    with pytest.raises(ValueError, match="consistency_level must be one of Strong, Bounded, Session, Eventually"):
        upsert_documents(client, TEXTS, "c", encoder, consistency_level="strong")
    assert "c" not in client.list_collections()
    upsert_documents(client, TEXTS[:2], "c", encoder, consistency_level="Bounded")
    assert count_documents(client, "c") == 2
    # milvus-lite serves every level as Strong and says so; an existing lite collection accepts any level
    upsert_documents(client, TEXTS[2:4], "c", encoder, consistency_level="Eventually")
    assert count_documents(client, "c") == 4


class ServerLike:
    """A real milvus-lite client presented as a Milvus 2.5 server (mocked: no Milvus server can run here): it
    records the keyword arguments of ``create_collection`` and reports a collection's level as a server would."""

    def __init__(self, inner, levels) -> None:
        self.inner, self.levels, self.created = inner, levels, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def create_collection(self, name, **kwargs):
        self.created.append((name, kwargs.get("consistency_level")))
        self.levels[name] = kwargs.get("consistency_level")
        return self.inner.create_collection(name, **kwargs)

    def describe_collection(self, name, **kwargs):
        desc = self.inner.describe_collection(name, **kwargs)
        return {**desc, "consistency_level_name": self.levels.get(name, desc.get("consistency_level_name"))}


def test_consistency_level_is_sent_to_and_checked_against_the_server(client, encoder):
    server = ServerLike(client, {})
    state(server).caps = ServerCaps(version="v2.5.4", is_lite=False, native_multivector=False)
    upsert_documents(server, TEXTS[:2], "s", encoder, consistency_level="Session")
    assert server.created == [("s__colbert", "Session"), ("s", "Session")]
    upsert_documents(server, TEXTS[:2], "d", encoder, with_colbert=False)
    assert server.created[-1] == ("d", "Strong")  # the default stays Strong
    upsert_documents(server, TEXTS[2:3], "s", encoder, consistency_level="Session")  # the same level: fine
    upsert_documents(server, TEXTS[3:4], "s", encoder)  # none asked: the collection's
    with pytest.raises(SchemaMismatchError, match="created with consistency_level='Session', 'Bounded' was asked"):
        upsert_documents(server, TEXTS[4:], "s", encoder, consistency_level="Bounded")
    assert count_documents(client, "s") == 4
