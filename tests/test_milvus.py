"""Milvus adapter against real milvus-lite (one database file for the module; it starts a server thread)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytest.importorskip("pymilvus")
pytest.importorskip("milvus_lite")

from pymilvus import DataType, MilvusClient  # noqa: E402

from m3_integrations import colbert_maxsim, colbert_score, dense_score, sparse_score  # noqa: E402
from m3_integrations._fusion import dbsf_normalize  # noqa: E402
from m3_integrations._ingest import IngestError, point_id  # noqa: E402
from m3_integrations.milvus import (  # noqa: E402
    AllOf,
    AnyOf,
    CollectionNotFoundError,
    Condition,
    Document,
    SchemaMismatchError,
    ahybrid_search,
    aupsert_documents,
    count_documents,
    delete_by_filter,
    delete_documents,
    drop_collection,
    get_documents,
    hybrid_search,
    to_expr,
    upsert_documents,
)
from m3_integrations.milvus._colbert import PART_BYTES, companion_rows, fetch_matrices, maxsim_sums  # noqa: E402
from m3_integrations.milvus._driver import run_sync  # noqa: E402
from m3_integrations.milvus._filters import quote  # noqa: E402
from m3_integrations.milvus._schema import CollectionInfo  # noqa: E402

WORDS = ("river fox dog hybrid search vector sparse dense lexical semantic quick lazy brown bank sunny "
         "model embedding database token matching").split()
QUERIES = ["quick fox near the river", "hybrid lexical search", "vector database embedding", "sunny"]


def _corpus(n: int = 30) -> list[dict]:
    rng = np.random.default_rng(7)
    docs = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 14))))
        meta = {"n": i, "lang": ("en", "fr", "de")[i % 3]}
        if i % 4 == 0:
            meta["tag"] = "x" if i % 8 == 0 else "y"
        docs.append({"text": f"{words} {i}", "id": f"doc-{i}", "metadata": meta})
    return docs


CORPUS = _corpus()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    path = tmp_path_factory.mktemp("milvus") / "m3.db"
    c = MilvusClient(str(path))
    c._m3_path = str(path)
    yield c
    c.close()


@pytest.fixture(scope="module")
def loaded(client, encoder):
    upsert_documents(client, CORPUS, "corpus", encoder, batch_size=8)
    return client


@pytest.fixture(scope="module")
def reference(encoder):
    out = encoder.encode_documents([d["text"] for d in CORPUS])
    return {d["id"]: out[i] for i, d in enumerate(CORPUS)}


def _ref_scores(encoder, reference, query, ids=None):
    q = encoder.encode_queries([query])
    rows = {}
    for key, doc in reference.items():
        if ids is not None and key not in ids:
            continue
        rows[key] = {"dense": dense_score(q.dense[0], doc.dense[0]),
                     "sparse": sparse_score(q.sparse[0], doc.sparse[0]),
                     "colbert": colbert_score(q.colbert[0], doc.colbert[0])}
    return rows


def _weighted(s, w):
    return (w[0] * s["dense"] + w[1] * s["sparse"] + w[2] * s["colbert"]) / sum(w)


def _matches(meta, flt) -> bool:
    return meta["lang"] == "en" and meta["n"] >= 3


FILTER = AllOf((Condition("lang", "eq", "en"), Condition("n", "gte", 3)))


# ------------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("weights", [(0.4, 0.2, 0.4), (1.0, 0.3, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)])
def test_weighted_equals_brute_force_reference(loaded, encoder, reference, weights):
    for query in QUERIES[:3]:
        ref = _ref_scores(encoder, reference, query)
        expected = sorted(((_weighted(s, weights), k) for k, s in ref.items()), reverse=True)[:5]
        hits = hybrid_search(loaded, query, "corpus", encoder, limit=5, weights=weights, prefetch_limit=len(CORPUS))
        assert [round(h.score, 3) for h in hits] == pytest.approx([e[0] for e in expected], abs=2e-3)
        for hit in hits:
            assert hit.score == pytest.approx(_weighted(ref[hit.id], weights), abs=2e-3)
            assert hit.scores["dense"] == pytest.approx(ref[hit.id]["dense"], abs=1e-4)
            assert hit.scores["sparse"] == pytest.approx(ref[hit.id]["sparse"], abs=1e-3)
            if weights[2] > 0:
                assert hit.scores["colbert"] == pytest.approx(ref[hit.id]["colbert"], abs=2e-3)
        assert len({h.id for h in hits} ^ {e[1] for e in expected}) <= 2  # near-ties may swap at the edge


def test_candidate_from_one_search_gets_true_scores(loaded, encoder, reference):
    """With a small prefetch, a candidate found only by dense (or only by sparse) still gets both true scores."""
    query = QUERIES[0]
    ref = _ref_scores(encoder, reference, query)
    top_dense = {k for _, k in sorted(((s["dense"], k) for k, s in ref.items()), reverse=True)[:3]}
    top_sparse = {k for _, k in sorted(((s["sparse"], k) for k, s in ref.items()), reverse=True)[:3]}
    assert top_dense ^ top_sparse, "test corpus should give different dense and sparse top lists"
    union = top_dense | top_sparse
    hits = hybrid_search(loaded, query, "corpus", encoder, limit=3, prefetch_limit=3)
    expected = sorted(((_weighted(ref[k], (0.4, 0.2, 0.4)), k) for k in union), reverse=True)[:3]
    assert [h.score for h in hits] == pytest.approx([e[0] for e in expected], abs=2e-3)
    for hit in hits:
        assert hit.scores["dense"] == pytest.approx(ref[hit.id]["dense"], abs=1e-4)
        assert hit.scores["sparse"] == pytest.approx(ref[hit.id]["sparse"], abs=1e-3)
        assert hit.score == pytest.approx(_weighted(ref[hit.id], (0.4, 0.2, 0.4)), abs=2e-3)


def test_rescore_limit_re_scores_the_best_dense_sparse_candidates(loaded, encoder, reference):
    """``rescore_limit=K``: ColBERT scores only the K best candidates by weighted dense + sparse; same cut as
    the Qdrant adapter's."""
    narrowed = tested = 0
    for query, weights in [(QUERIES[0], (0.4, 0.2, 0.4))] + [(q, (1.0, 0.0, 1.0)) for q in QUERIES]:
        ref = _ref_scores(encoder, reference, query)
        partial = {k: weights[0] * s["dense"] + weights[1] * s["sparse"] for k, s in ref.items()}
        first_phase = sorted(ref, key=lambda k: -partial[k])
        exact = sorted(ref, key=lambda k: -_weighted(ref[k], weights))[:3]
        for k in (3, 5, 8, 12):
            if partial[first_phase[k - 1]] - partial[first_phase[k]] < 2e-3:
                continue  # a near tie at the cut: float rounding may keep the other one
            tested += 1
            kept = first_phase[:k]
            expected = sorted(kept, key=lambda d: -_weighted(ref[d], weights))[:3]
            hits = hybrid_search(loaded, query, "corpus", encoder, limit=3, weights=weights,
                                 prefetch_limit=len(CORPUS), rescore_limit=k)
            assert [h.id for h in hits] == expected, (query, k)
            for hit in hits:
                assert hit.score == pytest.approx(_weighted(ref[hit.id], weights), abs=2e-3)
            narrowed += expected != exact
    assert tested and narrowed  # the case under test occurs: a narrower re-score changes the answer
    with pytest.raises(ValueError, match="rescore_limit"):
        hybrid_search(loaded, QUERIES[0], "corpus", encoder, rescore_limit=0)


def _ranked(ref, mode, keep=lambda s: True):
    return [k for _, k in sorted(((s[mode], k) for k, s in ref.items() if keep(s)), reverse=True)]


@pytest.mark.parametrize("weights", [(0.4, 0.2, 0.4), (1.0, 1.0, 1.0), (0.0, 1.0, 2.0)])
def test_rrf_equals_reference_fusion(loaded, encoder, reference, weights):
    """(1, 1, 1) runs Milvus' RRFRanker; unequal dense/sparse weights fuse the two lists client side."""
    k = 60
    for query in QUERIES[:3]:
        ref = _ref_scores(encoder, reference, query)
        lists = [_ranked(ref, "dense"), _ranked(ref, "sparse", lambda s: s["sparse"] > 0), _ranked(ref, "colbert")]
        fused = {key: sum(w / (k + lst.index(key) + 1) for w, lst in zip(weights, lists, strict=True) if key in lst)
                 for key in ref}
        hits = hybrid_search(loaded, query, "corpus", encoder, limit=8, fusion="rrf", prefetch_limit=len(CORPUS),
                             rrf_k=k, weights=weights)
        for hit in hits:
            assert hit.score == pytest.approx(fused[hit.id], abs=2e-4)  # float16 ColBERT may swap near-ties
        expected = sorted(fused.values(), reverse=True)[:8]
        assert [h.score for h in hits] == pytest.approx(expected, abs=2e-4)


@pytest.mark.parametrize("weights", [(0.4, 0.2, 0.4), (1.0, 0.0, 1.0)])
def test_dbsf_equals_reference_fusion(loaded, encoder, reference, weights):
    for query in QUERIES[:3]:
        ref = _ref_scores(encoder, reference, query)
        fused = dict.fromkeys(ref, 0.0)
        for w, mode, keep in ((weights[0], "dense", lambda s: True), (weights[1], "sparse", lambda s: s["sparse"] > 0),
                              (weights[2], "colbert", lambda s: True)):
            if w == 0:
                continue
            keys = _ranked(ref, mode, keep)
            for key, norm in zip(keys, dbsf_normalize([ref[x][mode] for x in keys]), strict=True):
                fused[key] += norm
        hits = hybrid_search(loaded, query, "corpus", encoder, limit=8, fusion="dbsf", prefetch_limit=len(CORPUS),
                             weights=weights)
        for hit in hits:
            assert hit.score == pytest.approx(fused[hit.id], abs=5e-3)
        assert [h.score for h in hits] == pytest.approx(sorted(fused.values(), reverse=True)[:8], abs=5e-3)


@pytest.mark.parametrize("mode", ["dense", "sparse", "colbert"])
def test_single_modes_equal_reference(loaded, encoder, reference, mode):
    ref = _ref_scores(encoder, reference, QUERIES[1])
    hits = hybrid_search(loaded, QUERIES[1], "corpus", encoder, limit=4, mode=mode, prefetch_limit=len(CORPUS))
    expected = sorted((s[mode] for s in ref.values()), reverse=True)[:4]
    assert [h.score for h in hits] == pytest.approx(expected, abs=2e-3)
    for hit in hits:
        assert hit.scores[mode] == pytest.approx(ref[hit.id][mode], abs=2e-3)


def test_query_output_skips_encoder(loaded, encoder):
    q = encoder.encode_queries([QUERIES[0]])
    a = hybrid_search(loaded, QUERIES[0], "corpus", encoder, limit=3)
    b = hybrid_search(loaded, "ignored", "corpus", None, limit=3, query_output=q)
    assert [(h.id, h.score) for h in a] == [(h.id, h.score) for h in b]


# --------------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize("mode,fusion", [("dense", "weighted"), ("sparse", "weighted"), ("colbert", "weighted"),
                                         ("hybrid", "weighted"), ("hybrid", "rrf"), ("hybrid", "dbsf")])
def test_filters_hold_in_every_mode(loaded, encoder, reference, mode, fusion):
    allowed = {d["id"] for d in CORPUS if _matches(d["metadata"], FILTER)}
    for flt in (FILTER, 'metadata["lang"] == "en" and metadata["n"] >= 3'):
        hits = hybrid_search(loaded, QUERIES[0], "corpus", encoder, limit=30, mode=mode, fusion=fusion,
                             query_filter=flt, prefetch_limit=30)
        assert hits and {h.id for h in hits} <= allowed
        if mode in ("dense", "colbert", "hybrid"):
            assert {h.id for h in hits} == allowed


def _filter_ids(client, flt):
    return {d.id for d in get_documents(client, "corpus", query_filter=flt)}


def test_neutral_filter_semantics(loaded):
    by = {d["id"]: d["metadata"] for d in CORPUS}
    cases = [
        (Condition("lang", "ne", "en"), lambda m: m["lang"] != "en"),
        (Condition("tag", "ne", "x"), lambda m: m.get("tag") != "x"),  # no key -> matches, like Qdrant must_not
        (Condition("tag", "nin", ("x", "y")), lambda m: "tag" not in m),
        (Condition("n", "in", [1, 2, 29]), lambda m: m["n"] in (1, 2, 29)),
        (Condition("n", "lt", 4), lambda m: m["n"] < 4),
        (Condition("n", "in", []), lambda m: False),
        (Condition("n", "nin", []), lambda m: True),
        (AnyOf((Condition("n", "lte", 1), Condition("tag", "eq", "y"))), lambda m: m["n"] <= 1 or m.get("tag") == "y"),
        (AllOf(()), lambda m: True),
    ]
    for flt, pred in cases:
        assert _filter_ids(loaded, flt) == {k for k, m in by.items() if pred(m)}, flt


def test_filter_quoting_is_safe(client, encoder):
    tricky = 'it\'s "quoted" \\ back\nslash) or pk != "'
    upsert_documents(client, [{"text": "alpha", "id": "q1", "metadata": {"s": tricky, "we\"ird": 1}},
                              {"text": "beta", "id": "q2", "metadata": {"s": "other"}}], "quotes", encoder)
    assert [d.id for d in get_documents(client, "quotes", query_filter=Condition("s", "eq", tricky))] == ["q1"]
    assert [d.id for d in get_documents(client, "quotes", query_filter=Condition('we"ird', "eq", 1))] == ["q1"]
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert to_expr(Condition("a.b", "eq", True)) == 'metadata["a"]["b"] == true'
    with pytest.raises(TypeError):
        to_expr(Condition("n", "gt", "3"))
    with pytest.raises(TypeError):
        to_expr({"lang": "en"})
    drop_collection(client, "quotes")


# --------------------------------------------------------------------------- consistency and ingest
def _rows(client, name):
    return client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]


def test_idempotent_and_reingest_keeps_collections_consistent(client, encoder):
    docs = [{"text": f"{w} text number {i} " * (1 + i % 3), "id": f"r{i}"} for i, w in enumerate(WORDS[:10])]
    docs.append("a document without an id")
    upsert_documents(client, docs, "idem", encoder, batch_size=4)
    counts = (count_documents(client, "idem"), _rows(client, "idem__colbert"))
    upsert_documents(client, iter(docs), "idem", encoder, batch_size=3)
    assert (count_documents(client, "idem"), _rows(client, "idem__colbert")) == counts == (11, 11)
    # r0 becomes much longer (several blob parts), then shorter: no stale rows either way
    long_text = " ".join(WORDS) * 20
    upsert_documents(client, [{"text": long_text, "id": "r0"}], "idem", encoder)
    pk = point_id(Document(text="", id="r0"))
    parts = client.query("idem__colbert", filter=f'doc_pk == "{pk}"', output_fields=["doc_gen", "part"])
    assert len(parts) > 1 and len({p["doc_gen"] for p in parts}) == 1
    upsert_documents(client, [{"text": "short", "id": "r0"}], "idem", encoder)
    parts = client.query("idem__colbert", filter=f'doc_pk == "{pk}"', output_fields=["doc_gen"])
    assert len(parts) == 1
    assert get_documents(client, "idem", ids=["r0"])[0].text == "short"
    # the re-score sees the new text's vectors
    hits = hybrid_search(client, "short", "idem", encoder, limit=11, prefetch_limit=11)
    want = encoder.encode_queries(["short"]).colbert[0]
    r0 = next(h for h in hits if h.id == "r0")
    assert r0.scores["colbert"] == pytest.approx(
        colbert_score(want, encoder.encode_documents(["short"]).colbert[0]), abs=2e-3)
    # a document without an id comes back with its derived key (as on Qdrant); re-upserting it updates it in place
    anonymous = [d for d in get_documents(client, "idem") if d.text == "a document without an id"]
    assert [d.id for d in anonymous] == [point_id(Document("a document without an id"))]
    upsert_documents(client, anonymous, "idem", encoder)
    assert count_documents(client, "idem") == 11


def test_delete_keeps_both_collections_consistent(client, encoder):
    docs = [{"text": f"{w} {i}", "id": f"x{i}", "metadata": {"n": i}} for i, w in enumerate(WORDS[:8])]
    upsert_documents(client, docs, "dele", encoder)
    delete_documents(client, ["x0", "x1", "missing"], "dele")
    assert count_documents(client, "dele") == 6 and _rows(client, "dele__colbert") == 6
    delete_by_filter(client, Condition("n", "gte", 6), "dele")
    assert count_documents(client, "dele") == 4 and _rows(client, "dele__colbert") == 4
    assert count_documents(client, "dele", Condition("n", "lt", 4)) == 2
    with pytest.raises(ValueError, match="needs a filter"):
        delete_by_filter(client, None, "dele")
    drop_collection(client, "dele")
    assert not client.has_collection("dele") and not client.has_collection("dele__colbert")
    drop_collection(client, "dele")  # idempotent


class FlakyClient:
    """Wraps the real client and fails the first ``fail`` upserts with a connection error."""

    def __init__(self, real, fail):
        self.real, self.fail = real, fail

    def upsert(self, *args, **kwargs):
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("injected: connection reset")
        return self.real.upsert(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_ingest_retries_reports_and_resumes(client, encoder):
    docs = [{"text": f"{w} retry {i}", "id": f"t{i}"} for i, w in enumerate(WORDS[:9])]
    flaky = FlakyClient(client, fail=2)  # first batch: two failures, third attempt succeeds
    import m3_integrations._ingest as ingest

    original = ingest.with_retries.__defaults__
    keys = upsert_documents(flaky, (d for d in docs), "flaky", encoder, batch_size=3, show_progress=True)
    assert keys == [d["id"] for d in docs] and count_documents(client, "flaky") == 9
    assert ingest.with_retries.__defaults__ == original
    # a client that keeps failing: everything reported, nothing half-stored, re-run stores all once
    drop_collection(client, "flaky")
    broken = FlakyClient(client, fail=10**6)
    with pytest.raises(IngestError) as err:
        upsert_documents(broken, docs, "flaky", encoder, batch_size=3)
    assert sorted(err.value.failed_ids) == sorted(d["id"] for d in docs) and err.value.stored_ids == []
    assert upsert_documents(client, docs, "flaky", encoder) == [d["id"] for d in docs]
    assert count_documents(client, "flaky") == 9 and _rows(client, "flaky__colbert") == 9
    drop_collection(client, "flaky")


def test_rerun_encodes_only_new_and_changed_documents(client, recording):
    docs = [{"text": f"{w} rerun {i}", "id": f"r{i}", "metadata": {"n": i}} for i, w in enumerate(WORDS[:9])]
    upsert_documents(client, docs[:6], "rerun", recording, batch_size=4)
    recording.seen.clear()
    edited = dict(docs[0], text=docs[0]["text"] + " (edited)")
    retagged = dict(docs[1], metadata={"n": 99})
    again = [edited, retagged] + docs[2:9]
    assert upsert_documents(client, again, "rerun", recording, batch_size=4) == [d["id"] for d in again]
    assert sorted(recording.seen) == sorted([edited["text"], retagged["text"]] + [d["text"] for d in docs[6:9]])
    assert count_documents(client, "rerun") == 9 and _rows(client, "rerun__colbert") == 9
    got = {d.id: d for d in get_documents(client, "rerun", ids=["r0", "r1"])}
    assert got["r0"].text == edited["text"] and got["r1"].metadata == {"n": 99}
    hits = hybrid_search(client, edited["text"], "rerun", recording.inner, limit=1)
    assert hits[0].id == "r0" and hits[0].scores["colbert"] > 0.99  # the edited text's ColBERT rows
    recording.seen.clear()
    upsert_documents(client, docs[2:4], "rerun", recording, skip_unchanged=False)
    assert recording.seen == [docs[2]["text"], docs[3]["text"]]
    drop_collection(client, "rerun")


# ---------------------------------------------------------------------------------------- bad input
def test_bad_input_gives_clear_errors_and_keeps_data(loaded, encoder):
    before = count_documents(loaded, "corpus")
    # an empty batch is a no-op, even with recreate=True (nothing is dropped)
    assert upsert_documents(loaded, [], "corpus", encoder) == []
    assert upsert_documents(loaded, (d for d in []), "corpus", encoder, recreate=True) == []
    assert count_documents(loaded, "corpus") == before
    with pytest.raises(ValueError, match="encoder is required"):
        upsert_documents(loaded, ["x"], "corpus")
    with pytest.raises(CollectionNotFoundError, match="nope"):
        hybrid_search(loaded, "q", "nope", encoder)
    for weights in ((-1, 1, 1), (0, 0, 0)):
        with pytest.raises(ValueError, match="weights"):
            hybrid_search(loaded, "q", "corpus", encoder, weights=weights)
    for limit in (0, -3):
        with pytest.raises(ValueError, match="limit"):
            hybrid_search(loaded, "q", "corpus", encoder, limit=limit)
    with pytest.raises(ValueError, match="mode"):
        hybrid_search(loaded, "q", "corpus", encoder, mode="bm25")
    with pytest.raises(ValueError, match="encoder is required"):
        hybrid_search(loaded, "q", "corpus")
    with pytest.raises(ValueError, match="dimension"):
        hybrid_search(loaded, "q", "corpus", query_output=type(encoder.encode_queries(["q"]))(
            dense=np.ones((1, 8), np.float32), sparse=[{5: 1.0}], colbert=[np.ones((2, 8), np.float32)]))
    assert count_documents(loaded, "corpus") == before


def _foreign(client, name, dim, extra=False):
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
    schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
    index = MilvusClient.prepare_index_params()
    index.add_index("dense", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index)
    client.insert(name, [{"pk": "keep-me", "dense": [1.0] * dim}])


def test_incompatible_collection_is_reported_not_replaced(client, encoder):
    _foreign(client, "foreign", 8)
    with pytest.raises(SchemaMismatchError, match="missing") as err:
        upsert_documents(client, ["text"], "foreign", encoder)
    assert "recreate=True" in str(err.value)
    assert client.query("foreign", filter='pk == "keep-me"', output_fields=["pk"])  # untouched
    with pytest.raises(SchemaMismatchError):
        hybrid_search(client, "q", "foreign", encoder)
    # a compatible layout with another dimension
    upsert_documents(client, ["one", "two"], "dims", encoder)
    from m3_integrations.milvus._schema import create, drop

    run_sync(client, drop(client, "dims"))
    run_sync(client, create(client, "dims", encoder.dim + 8))
    with pytest.raises(SchemaMismatchError, match="dimension"):
        upsert_documents(client, ["three"], "dims", encoder)
    # recreate=True replaces it
    assert len(upsert_documents(client, ["three"], "foreign", encoder, recreate=True)) == 1
    assert count_documents(client, "foreign") == 1
    for name in ("foreign", "dims"):
        drop_collection(client, name)


# --------------------------------------------------------------------------------- reopen and async
def test_reopen_file_loads_before_search(loaded, encoder):
    expected = [(h.id, round(h.score, 5)) for h in hybrid_search(loaded, QUERIES[0], "corpus", encoder, limit=3)]
    other = MilvusClient(loaded._m3_path)
    other.release_collection("corpus")  # as after a restart: not loaded
    other.release_collection("corpus__colbert")
    got = [(h.id, round(h.score, 5)) for h in hybrid_search(other, QUERIES[0], "corpus", encoder, limit=3)]
    assert got == expected


async def test_async_twins_match_sync(loaded, encoder):
    from pymilvus import AsyncMilvusClient

    aclient = AsyncMilvusClient(loaded._m3_path)
    try:
        keys = await aupsert_documents(aclient, CORPUS[:5], "async_docs", encoder, batch_size=2)
        assert keys == [d["id"] for d in CORPUS[:5]]
        assert count_documents(loaded, "async_docs") == 5
        for fusion in ("weighted", "rrf", "dbsf"):
            a = await ahybrid_search(aclient, QUERIES[0], "async_docs", encoder, limit=3, fusion=fusion)
            s = hybrid_search(loaded, QUERIES[0], "async_docs", encoder, limit=3, fusion=fusion)
            assert [(h.id, round(h.score, 5)) for h in a] == [(h.id, round(h.score, 5)) for h in s]
        both = await asyncio.gather(*(ahybrid_search(aclient, q, "async_docs", encoder, limit=2) for q in QUERIES))
        assert all(len(r) == 2 for r in both)
    finally:
        await aclient.close()
        drop_collection(loaded, "async_docs")


# ------------------------------------------------------------------------------------------- pieces
def test_companion_blob_roundtrip_and_vectorized_maxsim(client):
    rng = np.random.default_rng(1)
    mats = [rng.standard_normal((n, 64)).astype(np.float32) for n in (1, 700, 5)]
    mats = [m / np.linalg.norm(m, axis=1, keepdims=True) for m in mats]
    rows = companion_rows("pk1", "g1", mats[1])
    assert len(rows) == -(-700 * 64 * 2 // PART_BYTES) > 1
    q = rng.standard_normal((7, 64)).astype(np.float32)
    sums = maxsim_sums(q, mats + [np.zeros((0, 64), np.float32)])
    for got, m in zip(sums, mats, strict=False):
        assert got == pytest.approx(colbert_maxsim(q, m), abs=1e-4)
    assert sums[-1] == 0.0
    # fetch through a real companion collection, with tiny fetch groups
    from m3_integrations.milvus import _colbert
    from m3_integrations.milvus._schema import create, drop

    info = run_sync(client, create(client, "blobs", 64))
    client.insert(info.colbert_name, [r for i, m in enumerate(mats) for r in companion_rows(f"p{i}", "g", m)])
    old = _colbert.MAX_FETCH_BYTES
    _colbert.MAX_FETCH_BYTES = 1000
    try:
        info = CollectionInfo("blobs", 64, "companion", info.colbert_name)
        got = run_sync(client, fetch_matrices(info, ["p0:g", "p1:g", "p2:g", "absent:g"], [1, 700, 5, 3]))
    finally:
        _colbert.MAX_FETCH_BYTES = old
    for g, m in zip(got, mats, strict=False):
        np.testing.assert_array_equal(g, m.astype(np.float16))
    assert got[3].shape == (0, 64)
    run_sync(client, drop(client, "blobs"))


def test_dbsf_normalize():
    assert dbsf_normalize([1.0, 1.0]).tolist() == [0.5, 0.5]
    out = dbsf_normalize([0.0, 1.0, 2.0])
    assert out[1] == pytest.approx(0.5) and 0 < out[0] < out[1] < out[2] < 1


def test_upsert_seals_its_writes_on_milvus_lite(tmp_path, encoder):
    """milvus-lite searches unsealed rows ~10x slower, so an ingest ends with a flush of both collections.

    A spy records the calls on a real MilvusClient (milvus-lite keeps no public "unsealed rows" counter).
    """
    calls: list[tuple[str, str]] = []

    class Spy(MilvusClient):
        def flush(self, collection_name, *args, **kwargs):
            calls.append(("flush", collection_name))
            return super().flush(collection_name, *args, **kwargs)

    spy = Spy(str(tmp_path / "seal.db"))
    upsert_documents(spy, ["one", "two"], collection_name="sealed", encoder=encoder, show_progress=False)
    assert ("flush", "sealed") in calls and ("flush", "sealed__colbert") in calls
    assert len(hybrid_search(spy, "one", collection_name="sealed", encoder=encoder, limit=2)) == 2
    spy.close()
