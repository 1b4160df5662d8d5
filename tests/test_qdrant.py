"""Qdrant adapter: the same suite on QdrantClient(":memory:"), QdrantEdgeStore and (opt-in) a real server.

A real server runs the suite when ``QDRANT_URL`` is set (skipped otherwise). Nothing is mocked except one
transient network failure, simulated by wrapping the client's ``upsert`` (no network here).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient, models

from m3_integrations import colbert_score, dense_score, sparse_score, weighted_score
from m3_integrations._query import make_plan
from m3_integrations.qdrant import (
    AllOf,
    AnyOf,
    CollectionNotFoundError,
    Condition,
    IngestError,
    QdrantEdgeStore,
    QdrantSchema,
    SchemaMismatchError,
    ahybrid_search,
    aupsert_documents,
    count_documents,
    delete_by_filter,
    delete_documents,
    drop_collection,
    get_documents,
    hybrid_search,
    upsert_documents,
)

TOL = 2e-3
TOPICS = ["cats", "dogs", "rivers", "mountains", "music", "databases"]
DOCS = [
    {"id": f"doc-{i}",
     "text": f"{TOPICS[i % 6]} note {i}: " + " ".join(TOPICS[(i * j) % 6] for j in range(1, 2 + i % 5)),
     "metadata": {"lang": "en" if i % 3 else "de", "year": 2000 + i, "topic": TOPICS[i % 6]}}
    for i in range(24)
]
QUERIES = ["cats and dogs", "mountain rivers music", "databases"]
SERVER = os.environ.get("QDRANT_URL")


def _make_client(kind: str, tmp_path):
    if kind == "memory":
        return QdrantClient(":memory:")
    if kind == "edge":
        return QdrantEdgeStore(tmp_path / "edge")
    if not SERVER:
        pytest.skip("QDRANT_URL is not set")
    return QdrantClient(url=SERVER)


KINDS = ["memory", "edge", pytest.param("server", marks=pytest.mark.qdrant_server)]


@pytest.fixture(params=KINDS)
def client(request, tmp_path):
    c = _make_client(request.param, tmp_path)
    yield c
    c.close()


@pytest.fixture
def name():
    return f"t_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module", params=KINDS)
def filled(request, encoder, tmp_path_factory):
    """A client with DOCS stored once (read-only tests share it)."""
    c = _make_client(request.param, tmp_path_factory.mktemp("filled"))
    coll = f"filled_{uuid.uuid4().hex[:8]}"
    upsert_documents(c, DOCS, coll, encoder)
    yield c, coll
    drop_collection(c, coll)
    c.close()


@pytest.fixture(scope="module")
def encoder(tiny_model_dir):
    """This module's own encoder over the tiny model, with the output cache on (re-ingests skip the model)."""
    from m3_integrations import M3Encoder

    enc = M3Encoder(tiny_model_dir, device="cpu")
    enc.enable_cache(4096)
    return enc


@pytest.fixture(scope="module")
def reference(encoder):
    """Per-document reference encodings."""
    return encoder.encode_documents([d["text"] for d in DOCS])


_QUERY_OUTPUTS: dict = {}


def _q(encoder, query):
    """The query's encoding, computed once (a forward pass is slow on this busy machine)."""
    if query not in _QUERY_OUTPUTS:
        _QUERY_OUTPUTS[query] = encoder.encode_queries([query])
    return _QUERY_OUTPUTS[query]


def search(client, query, coll, encoder, **kwargs):
    """``hybrid_search`` with the cached query encoding."""
    return hybrid_search(client, query, coll, None, query_output=_q(encoder, query), **kwargs)


def _ref_scores(encoder, reference, query, keep=None):
    q = _q(encoder, query)
    out = {}
    for i, d in enumerate(DOCS):
        if keep is not None and not keep(d):
            continue
        out[d["id"]] = {
            "dense": dense_score(q.dense[0], reference.dense[i]),
            "sparse": sparse_score(q.sparse[0], reference.sparse[i]),
            "colbert": colbert_score(q.colbert[0], reference.colbert[i]),
            "overlap": bool(set(q.sparse[0]) & set(reference.sparse[i])),
        }
    return out


def _ranking(scores, kind):
    items = [(k, v[kind]) for k, v in scores.items() if kind != "sparse" or v["overlap"]]
    return [k for k, _ in sorted(items, key=lambda kv: -kv[1])]


def _assert_ranked(hits, expected_ids, expected_scores):
    assert [h.id for h in hits] == expected_ids[: len(hits)]
    for h in hits:
        assert h.score == pytest.approx(expected_scores[h.id], abs=TOL)


# ----------------------------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("weights", [(0.4, 0.2, 0.4), (1.0, 0.3, 1.0), (0.0, 1.0, 2.0), (1.0, 0.0, 0.0)])
def test_weighted_equals_brute_force_reference(filled, encoder, reference, weights):
    client, coll = filled
    for query in QUERIES:
        ref = _ref_scores(encoder, reference, query)
        fused = {k: weighted_score(v["dense"], v["sparse"], v["colbert"], weights) for k, v in ref.items()}
        expected = sorted(fused, key=lambda k: -fused[k])
        hits = search(client, query, coll, encoder, limit=8, weights=weights, prefetch_limit=100)
        assert len(hits) == 8
        _assert_ranked(hits, expected, fused)
        for h in hits:  # per-mode scores on the reference scale
            for kind in ("dense", "sparse"):
                assert h.scores[kind] == pytest.approx(ref[h.id][kind], abs=TOL)
            if weights[2] > 0:
                assert h.scores["colbert"] == pytest.approx(ref[h.id]["colbert"], abs=TOL)
            assert h.text == DOCS[int(h.id.split("-")[1])]["text"]
            assert h.metadata == DOCS[int(h.id.split("-")[1])]["metadata"]


def test_weighted_candidate_missing_from_one_prefetch_gets_true_score(filled, encoder, reference):
    """With a small prefetch, dense-only and sparse-only candidates are fused with all three true scores."""
    from m3_integrations._query import make_plan
    from m3_integrations.qdrant._plans import build_request
    from m3_integrations.qdrant.documents import backend_for

    client, coll = filled
    p = 3
    for query in QUERIES:
        ref = _ref_scores(encoder, reference, query)
        top_dense = set(_ranking(ref, "dense")[:p])
        top_sparse = set(_ranking(ref, "sparse")[:p])
        union = top_dense | top_sparse
        assert union - top_dense and union - top_sparse  # the case under test occurs on both sides
        fused = {k: weighted_score(ref[k]["dense"], ref[k]["sparse"], ref[k]["colbert"]) for k in union}
        expected = sorted(fused, key=lambda k: -fused[k])
        hits = search(client, query, coll, encoder, limit=p, prefetch_limit=p)
        _assert_ranked(hits, expected, fused)
        # the whole fused candidate set (the public API caps it at `limit`)
        request = build_request(make_plan(limit=p, prefetch_limit=p), _q(encoder, query),
                                QdrantSchema(), None)
        request.stage.limit = 20
        scored = backend_for(client).query(coll, request.stage)
        got = {payload["doc_id"]: score for _, score, payload in scored}
        assert sorted(got) == sorted(union)
        for k in union:
            assert got[k] == pytest.approx(fused[k], abs=TOL)


def test_rescore_limit_re_scores_the_best_dense_sparse_candidates(filled, encoder, reference):
    """``rescore_limit=K``: the K best candidates by weighted dense + sparse are re-scored and fused exactly."""
    client, coll = filled
    p = 4
    narrowed, tested = False, 0
    for query, weights in itertools.product(QUERIES, [(0.4, 0.2, 0.4), (1.0, 0.0, 1.0), (0.1, 0.1, 1.0)]):
        ref = _ref_scores(encoder, reference, query)
        union = set(_ranking(ref, "dense")[:p]) | set(_ranking(ref, "sparse")[:p])
        partial = {k: weights[0] * ref[k]["dense"] + weights[1] * ref[k]["sparse"] for k in union}
        first_phase = sorted(union, key=lambda d: -partial[d])
        fused = {k: weighted_score(ref[k]["dense"], ref[k]["sparse"], ref[k]["colbert"], weights) for k in union}
        for k in range(2, len(union)):
            kept = first_phase[:k]
            if abs(partial[kept[-1]] - partial[first_phase[k]]) < 1e-4:
                continue  # a near tie at the cut: float32 rounding may keep the other one
            tested += 1
            expected = sorted(kept, key=lambda d: -fused[d])
            hits = search(client, query, coll, encoder, limit=2, weights=weights, prefetch_limit=p, rescore_limit=k)
            _assert_ranked(hits, expected, fused)
            narrowed |= [h.id for h in hits] != sorted(union, key=lambda d: -fused[d])[:2]
        every = search(client, query, coll, encoder, limit=3, weights=weights, prefetch_limit=p, rescore_limit=2 * p)
        _assert_ranked(every, sorted(union, key=lambda d: -fused[d]), fused)  # K >= candidates: exact
    assert tested and narrowed  # the case under test occurs: a narrower re-score changes the answer
    with pytest.raises(ValueError, match="rescore_limit"):
        search(client, QUERIES[0], coll, encoder, rescore_limit=0)
    with pytest.raises(TypeError, match="rescore_limit"):
        search(client, QUERIES[0], coll, encoder, rescore_limit=2.5)


@pytest.mark.parametrize("mode", ["dense", "sparse", "colbert"])
def test_single_modes_equal_reference(filled, encoder, reference, mode):
    client, coll = filled
    for query in QUERIES:
        ref = _ref_scores(encoder, reference, query)
        hits = search(client, query, coll, encoder, limit=6, mode=mode)
        _assert_ranked(hits, _ranking(ref, mode), {k: v[mode] for k, v in ref.items()})
        assert all(set(h.scores) == {mode} and h.scores[mode] == h.score for h in hits)


def _rrf_reference(rankings, weights, k):
    """Qdrant's weighted RRF: sum over lists of 1 / ((rank + 1) / w + k - 1), ranks from 0 (w=1: 1/(k+rank))."""
    out: dict[str, float] = {}
    for ranking, w in zip(rankings, weights, strict=True):
        for rank, doc in enumerate(ranking):
            out[doc] = out.get(doc, 0.0) + 1.0 / ((rank + 1) / w + k - 1)
    return out


def _dbsf_reference(score_lists):
    """Qdrant's DBSF: each list mapped by (s - (mean - 3 std)) / (6 std) (sample std), then summed."""
    out: dict[str, float] = {}
    for scores in score_lists:
        values = np.array(list(scores.values()), dtype=np.float64)
        mean, std = values.mean(), values.std(ddof=1)
        for doc, s in scores.items():
            out[doc] = out.get(doc, 0.0) + ((s - (mean - 3 * std)) / (6 * std) if std > 0 else 0.5)
    return out


@pytest.mark.parametrize("fusion,weights,rrf_k", [("rrf", (1.0, 1.0, 1.0), 60), ("rrf", (0.4, 0.2, 0.4), 10),
                                                   ("rrf", (1.0, 2.0, 0.0), 2), ("dbsf", (1.0, 1.0, 1.0), 60),
                                                   ("dbsf", (1.0, 1.0, 0.0), 60)])
def test_rrf_and_dbsf_equal_reference_fusion(filled, encoder, reference, fusion, weights, rrf_k):
    client, coll = filled
    kinds = [k for k, w in zip(("dense", "sparse", "colbert"), weights, strict=True) if w > 0]
    for query in QUERIES:
        ref = _ref_scores(encoder, reference, query)
        if fusion == "rrf":
            fused = _rrf_reference([_ranking(ref, k) for k in kinds], [w for w in weights if w > 0], rrf_k)
        else:
            fused = _dbsf_reference([{d: ref[d][k] for d in _ranking(ref, k)} for k in kinds])
        expected = sorted(fused, key=lambda d: -fused[d])
        hits = search(client, query, coll, encoder, limit=8, fusion=fusion, weights=weights, rrf_k=rrf_k)
        # ties in fused scores may swap places: compare scores position by position, then membership
        assert [h.score for h in hits] == pytest.approx([fused[d] for d in expected[:8]], abs=TOL)
        for h in hits:
            assert h.score == pytest.approx(fused[h.id], abs=TOL)


FILTERS = [
    (Condition("lang", "eq", "de"), lambda m: m["lang"] == "de"),
    (Condition("year", "gte", 2015), lambda m: m["year"] >= 2015),
    (AllOf((Condition("lang", "ne", "de"), Condition("topic", "in", ["cats", "music"]))),
     lambda m: m["lang"] != "de" and m["topic"] in ("cats", "music")),
    (AnyOf((Condition("year", "lt", 2003), Condition("topic", "nin", ["cats", "dogs", "rivers", "mountains"]))),
     lambda m: m["year"] < 2003 or m["topic"] not in ("cats", "dogs", "rivers", "mountains")),
    (models.Filter(must=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="dogs"))]),
     lambda m: m["topic"] == "dogs"),
]


@pytest.mark.parametrize("flt,keep", FILTERS)
def test_filters_hold_in_every_mode(filled, encoder, reference, flt, keep):
    client, coll = filled
    query = QUERIES[0]
    ref = _ref_scores(encoder, reference, query, keep=lambda d: keep(d["metadata"]))
    assert 0 < len(ref) < len(DOCS)
    for mode in ("dense", "sparse", "colbert"):
        hits = search(client, query, coll, encoder, limit=30, mode=mode, query_filter=flt)
        assert [h.id for h in hits] == _ranking(ref, mode)
    fused = {k: weighted_score(v["dense"], v["sparse"], v["colbert"]) for k, v in ref.items()}
    for fusion in ("weighted", "rrf", "dbsf"):
        hits = search(client, query, coll, encoder, limit=30, fusion=fusion, query_filter=flt)
        assert sorted(h.id for h in hits) == sorted(ref)
        assert all(keep(h.metadata) for h in hits)
        if fusion == "weighted":
            _assert_ranked(hits, sorted(fused, key=lambda k: -fused[k]), fused)
    assert count_documents(client, coll, flt) == len(ref)


def test_filter_matching_nothing_returns_no_hits_in_every_mode(filled, encoder):
    client, coll = filled
    nothing = Condition("year", "gt", 3000)
    for mode in ("dense", "sparse", "colbert"):
        assert search(client, QUERIES[0], coll, encoder, mode=mode, query_filter=nothing) == []
    for fusion in ("weighted", "rrf", "dbsf"):
        assert search(client, QUERIES[0], coll, encoder, fusion=fusion, query_filter=nothing) == []


def _assert_same_ranking(got, expected, context):
    """Same scores rank by rank and the same point for each score; points tied on a score may swap."""
    assert np.allclose([s for _, s in got], [s for _, s in expected], atol=1e-5), context
    expected_scores = dict(expected)
    cut = expected[-1][1] if expected else None
    for pid, score in got:
        if pid in expected_scores:
            assert score == pytest.approx(expected_scores[pid], abs=1e-5), context
        else:  # only a point tied with the last one can take its place
            assert score == pytest.approx(cut, abs=1e-5), context
    strict = [pid for pid, score in expected if all(abs(score - o) > 1e-5 for q, o in expected if q != pid)]
    assert [pid for pid, _ in got if pid in strict] == [pid for pid in strict if pid in dict(got)], context


def test_edge_evaluates_stage_by_stage_with_the_one_request_answer(tmp_path, encoder, reference):
    """Qdrant Edge runs each candidate search once and re-scores only unknown scores: same answer, fewer
    scored points, and ``Hit.scores`` without a look-up."""
    from m3_integrations.qdrant import edge as edge_module
    from m3_integrations.qdrant._evaluate import can_evaluate
    from m3_integrations.qdrant._filters import to_qdrant_filter
    from m3_integrations.qdrant._plans import build_request

    store = QdrantEdgeStore(tmp_path / "edge")
    upsert_documents(store, DOCS, "c", encoder)
    shard = store._shard("c")
    searched: list = []
    real_query = shard.query

    class CountingShard:  # the real shard; counts the requests the store sends it
        def __getattr__(self, attr):
            return getattr(shard, attr)

        def query(self, request):
            searched.append(request)
            return real_query(request)

    store._shards["c"] = CountingShard()
    flt = to_qdrant_filter(FILTERS[0][0], QdrantSchema())
    cases = [dict(fusion="weighted"), dict(fusion="weighted", weights=(1.0, 0.0, 0.0)),
             dict(fusion="weighted", rescore_limit=3), dict(mode="colbert"), dict(fusion="rrf"), dict(fusion="dbsf")]
    for query, kwargs, native in itertools.product(QUERIES[:3], cases, [None, flt]):
        plan = make_plan(limit=4, prefetch_limit=3, **kwargs)
        stage = build_request(plan, _q(encoder, query), QdrantSchema(), native).stage
        one_request = [(p.id, p.score) for p in real_query(edge_module._edge_request(stage, False))]
        searched.clear()
        got = [(pid, score) for pid, score, _ in store.query("c", stage)]
        _assert_same_ranking(got, one_request, (query, kwargs))
        # weighted: the dense and the sparse candidate search, the dense / sparse re-scores of only the other
        # side's candidates (when there are any), one ColBERT re-score (of the K kept with rescore_limit);
        # trees sharing no stage (ColBERT re-rank, a lone dense weight) and RRF / DBSF: one request
        expected = {"rrf": 1, "dbsf": 1}.get(kwargs.get("fusion"), 1 if kwargs.get("mode") == "colbert" else 5)
        if kwargs.get("weights") == (1.0, 0.0, 0.0):  # one dense re-score of dense+sparse: nothing shared
            expected = 1
        if native is None:  # unfiltered, each side has candidates the other lacks (asserted in another test)
            assert len(searched) == expected, kwargs
        else:
            assert 1 <= len(searched) <= expected, kwargs
        assert can_evaluate(stage) == (expected == 5)
    # the per-mode scores of a weighted search are found on the way: no look-up, reference values
    searched.clear()
    hits = search(store, QUERIES[0], "c", encoder, limit=3, prefetch_limit=3)
    assert len(searched) == 5 and len(hits) == 3
    ref = _ref_scores(encoder, reference, QUERIES[0])
    for h in hits:
        for kind in ("dense", "sparse", "colbert"):
            assert h.scores[kind] == pytest.approx(ref[h.id][kind], abs=TOL)
    store._shards["c"] = shard
    store.close()


def test_query_output_skips_encoder(filled, encoder):
    client, coll = filled
    q = encoder.encode_queries([QUERIES[1]])
    before = encoder.stats.forward_passes
    hits = hybrid_search(client, "ignored", coll, None, limit=5, query_output=q)
    assert encoder.stats.forward_passes == before
    assert [h.id for h in hits] == [h.id for h in hybrid_search(client, QUERIES[1], coll, encoder, limit=5)]


# ------------------------------------------------------------------------------------- writes and helpers
def test_upsert_is_idempotent_and_helpers_work(client, name, encoder):
    docs = DOCS[:10] + ["a text without id", {"text": "another without id"}]
    keys = upsert_documents(client, docs, name, encoder)
    assert keys[:10] == [d["id"] for d in DOCS[:10]] and len(keys) == 12
    assert count_documents(client, name) == 12
    assert upsert_documents(client, iter(docs), name, encoder, batch_size=5) == keys  # a generator, again
    assert count_documents(client, name) == 12
    got = get_documents(client, name, ids=[keys[11], "doc-3", "missing"])
    assert [d.text for d in got] == ["another without id", DOCS[3]["text"]]
    assert got[1].id == "doc-3" and got[1].metadata == DOCS[3]["metadata"] and got[0].id == keys[11]
    assert len(get_documents(client, name, query_filter=Condition("lang", "eq", "de"))) == 4
    assert len(get_documents(client, name, limit=3)) == 3
    delete_documents(client, ["doc-0", keys[10], "missing"], name)
    assert count_documents(client, name) == 10
    assert not get_documents(client, name, ids=["doc-0", keys[10]])
    delete_by_filter(client, Condition("lang", "eq", "de"), name)
    assert count_documents(client, name) == 7
    assert count_documents(client, name, Condition("lang", "eq", "de")) == 0
    drop_collection(client, name)
    with pytest.raises(CollectionNotFoundError):
        count_documents(client, name)


def test_bad_input_leaves_data_untouched(client, name, encoder):
    upsert_documents(client, DOCS[:6], name, encoder)
    snapshot = sorted((d.id, d.text) for d in get_documents(client, name))

    def unchanged():
        assert count_documents(client, name) == 6
        assert sorted((d.id, d.text) for d in get_documents(client, name)) == snapshot

    assert upsert_documents(client, [], name, encoder, recreate=True) == []  # a no-op: nothing dropped
    unchanged()
    with pytest.raises(ValueError, match="encoder"):
        upsert_documents(client, DOCS[:2], name, None)
    with pytest.raises(ValueError, match="no 'text'"):
        upsert_documents(client, [{"id": "x"}], name, encoder, recreate=True)
    unchanged()
    with pytest.raises(SchemaMismatchError, match="'dense_v' is missing.*recreate=True"):
        upsert_documents(client, DOCS[6:8], name, encoder, schema=QdrantSchema(dense="dense_v"))
    unchanged()
    for bad in [dict(weights=(0.5, -0.1, 0.5)), dict(weights=(0, 0, 0)), dict(limit=0), dict(limit=-3),
                dict(mode="bm25"), dict(fusion="max"), dict(prefetch_limit=0)]:
        with pytest.raises(ValueError):
            hybrid_search(client, "cats", name, encoder, **bad)
    with pytest.raises(ValueError, match="encoder"):
        hybrid_search(client, "cats", name, None)
    with pytest.raises(CollectionNotFoundError, match="does not exist"):
        hybrid_search(client, "cats", "no_such_collection", encoder)
    with pytest.raises(CollectionNotFoundError):
        get_documents(client, "no_such_collection")
    with pytest.raises(ValueError, match="needs a filter"):
        delete_by_filter(client, None, name)
    unchanged()


def test_wrong_dimension_or_layout_is_reported(client, name, encoder):
    from m3_integrations.qdrant.documents import backend_for

    backend = backend_for(client)
    backend.create(name, QdrantSchema(), encoder.dim + 8)  # as if made with another model
    with pytest.raises(SchemaMismatchError, match=rf"size {encoder.dim + 8}, the encoder gives {encoder.dim}"):
        upsert_documents(client, DOCS[:3], name, encoder)
    assert count_documents(client, name) == 0
    with pytest.raises(SchemaMismatchError, match="size"):
        hybrid_search(client, "cats", name, encoder)
    keys = upsert_documents(client, DOCS[:3], name, encoder, recreate=True)  # only when asked
    assert count_documents(client, name) == 3 and keys == ["doc-0", "doc-1", "doc-2"]
    # a collection without the sparse vector
    other = name + "_nosparse"
    schema = QdrantSchema(sparse="lexical")
    backend.create(other, schema, encoder.dim)
    with pytest.raises(SchemaMismatchError, match="sparse vector 'sparse' is missing"):
        upsert_documents(client, DOCS[:3], other, encoder)
    upsert_documents(client, DOCS[:3], other, encoder, schema=schema)  # the names it uses
    assert [h.id for h in hybrid_search(client, "cats", other, encoder, limit=3, schema=schema)]
    drop_collection(client, other)


def test_float32_colbert_storage(client, name, encoder, reference):
    schema = QdrantSchema(colbert_storage="float32")
    upsert_documents(client, DOCS, name, encoder, schema=schema)
    ref = _ref_scores(encoder, reference, QUERIES[0])
    hits = search(client, QUERIES[0], name, encoder, limit=5, mode="colbert", schema=schema)
    for h in hits:
        assert h.score == pytest.approx(ref[h.id]["colbert"], abs=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        QdrantSchema(colbert_storage="uint8")


def test_rerun_encodes_only_new_and_changed_documents(client, name, recording):
    upsert_documents(client, DOCS[:6], name, recording, batch_size=4)
    recording.seen.clear()
    edited = dict(DOCS[0], text=DOCS[0]["text"] + " (edited)")
    retagged = dict(DOCS[1], metadata={**DOCS[1]["metadata"], "year": 1999})
    docs = [edited, retagged] + DOCS[2:9]
    assert upsert_documents(client, docs, name, recording, batch_size=4) == [d["id"] for d in docs]
    assert sorted(recording.seen) == sorted([edited["text"], retagged["text"]] + [d["text"] for d in DOCS[6:9]])
    assert count_documents(client, name) == 9
    got = get_documents(client, name, ids=["doc-0", "doc-1"])
    assert got[0].text == edited["text"] and got[1].metadata["year"] == 1999
    recording.seen.clear()
    upsert_documents(client, DOCS[2:4], name, recording, skip_unchanged=False)
    assert recording.seen == [DOCS[2]["text"], DOCS[3]["text"]]


def test_transient_upload_error_is_retried_and_reported(name, encoder, recording, monkeypatch):
    client = QdrantClient(":memory:")
    real = QdrantClient.upsert
    calls = {"n": 0}

    def flaky(self, *args, **kwargs):  # simulates a network failure (no network here)
        calls["n"] += 1
        if calls["n"] in (1, 4, 5, 6):
            raise ConnectionError("connection reset")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(QdrantClient, "upsert", flaky)
    monkeypatch.setattr("m3_integrations._ingest.time.sleep", lambda s: None)
    with pytest.raises(IngestError) as info:
        upsert_documents(client, DOCS[:9], name, encoder, batch_size=3)
    # batch 1: fail then ok; batch 2: ok; batch 3: three failures -> reported
    assert info.value.failed_ids == [d["id"] for d in DOCS[6:9]]
    assert count_documents(client, name) == 6
    assert upsert_documents(client, DOCS[:9], name, recording, batch_size=3) == [d["id"] for d in DOCS[:9]]
    assert count_documents(client, name) == 9  # the re-run stored the rest, no duplicates
    assert recording.seen == [d["text"] for d in DOCS[6:9]]  # and encoded only what was missing


def test_edge_store_persists_and_reopens(tmp_path, encoder):
    path = tmp_path / "m3"
    with QdrantEdgeStore(path) as store:
        upsert_documents(store, DOCS, "persist", encoder)
        before = [(h.id, h.score) for h in search(store, QUERIES[0], "persist", encoder, limit=5)]
    store = QdrantEdgeStore(path)
    assert store.list_collections() == ["persist"]
    assert count_documents(store, "persist") == len(DOCS)
    after = [(h.id, h.score) for h in search(store, QUERIES[0], "persist", encoder, limit=5)]
    assert [i for i, _ in after] == [i for i, _ in before]
    assert [s for _, s in after] == pytest.approx([s for _, s in before], abs=1e-6)
    store.optimize("persist")
    assert [h.id for h in search(store, QUERIES[0], "persist", encoder, limit=5)] == [i for i, _ in before]
    store.close()


def test_edge_quantized_dense_search_keeps_exact_scores(tmp_path, encoder, reference):
    """Dense vectors are int8-quantized by default; searches re-score with the float32 originals, so dense and
    weighted scores stay the reference's (while the quantized scores alone are measurably off)."""
    import qdrant_edge

    from m3_integrations.qdrant import edge as edge_module
    from m3_integrations.qdrant._plans import Nearest, Stage

    path = tmp_path / "m3"
    with QdrantEdgeStore(path) as store:
        upsert_documents(store, DOCS, "q", encoder)
    # index this small collection (as a large one is): HNSW and the quantized copies get built
    config = edge_module._edge_config(QdrantSchema(), encoder.dim,
                                      optimizers=qdrant_edge.EdgeOptimizersConfig(indexing_threshold=1))
    shard = qdrant_edge.EdgeShard.load(str(path / "q"), config)
    shard.optimize()
    shard.close()
    assert list(path.glob("q/segments/*/vector_storage-dense/quantized*"))
    store = QdrantEdgeStore(path)
    query = _q(encoder, QUERIES[1])
    ref = _ref_scores(encoder, reference, QUERIES[1])
    bare = edge_module._edge().QueryRequest(  # no re-score asked: the int8 scores
        limit=len(DOCS), query=edge_module._edge_query(Nearest("dense", "dense", query.dense[0])),
        with_payload=True, with_vector=False)
    quantized = {p.payload["doc_id"]: p.score for p in store._shard("q").query(bare)}
    assert max(abs(quantized[k] - ref[k]["dense"]) for k in quantized) > 1e-4
    for mode in ("dense", "hybrid"):
        hits = search(store, QUERIES[1], "q", encoder, limit=len(DOCS), mode=mode, prefetch_limit=len(DOCS))
        assert len(hits) == len(DOCS)
        for h in hits:
            assert h.scores["dense"] == pytest.approx(ref[h.id]["dense"], abs=1e-5)
    one_request = store._shard("q").query(edge_module._edge_request(
        Stage(Nearest("dense", "dense", query.dense[0]), 5, prefetch=[Stage(Nearest("dense", "dense",
                                                                                    query.dense[0]), 10)]), True))
    for p in one_request:  # a re-scoring stage asks for the originals too
        assert p.score == pytest.approx(ref[p.payload["doc_id"]]["dense"], abs=1e-5)
    store.close()


async def test_async_client_twins(encoder, tmp_path):
    aclient = AsyncQdrantClient(":memory:")
    keys = await aupsert_documents(aclient, DOCS, "adocs", encoder, batch_size=7)
    assert keys == [d["id"] for d in DOCS]
    assert (await aclient.count("adocs")).count == len(DOCS)
    sync = QdrantEdgeStore(tmp_path / "e")
    upsert_documents(sync, DOCS, "docs", encoder)
    for kw in (dict(), dict(fusion="rrf"), dict(mode="colbert")):
        a = await ahybrid_search(aclient, QUERIES[2], "adocs", encoder, limit=5, **kw)  # encodes (cached)
        b = search(sync, QUERIES[2], "docs", encoder, limit=5, **kw)
        assert [h.id for h in a] == [h.id for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=TOL)
    # the twins also take sync clients (run in a worker thread)
    assert len(await ahybrid_search(sync, QUERIES[2], "docs", encoder, limit=3)) == 3
    with pytest.raises(TypeError, match="ahybrid_search"):
        hybrid_search(aclient, "x", "adocs", encoder)
    await aclient.close()
    await asyncio.sleep(0)


def test_edge_weighted_sum_adds_defaults_in_formula_order_and_refuses_a_missing_term():
    """The stage-by-stage weighted sum: a point missing from a prefetch takes that term's default (whichever
    prefetch it first appears in), the sum runs term by term in the formula's order, points keep the order they
    were first met in, and a missing term without a default is an error naming the point."""
    from m3_integrations.qdrant._evaluate import _weighted_sum
    from m3_integrations.qdrant._plans import WeightedSum

    ids = [uuid.UUID(int=n + 1) for n in range(4)]
    query = WeightedSum([0.5, 0.3, 0.2], defaults={0: 0.05, 1: -1.0, 2: 0.25})
    prefetched = [{0: 0.9, 1: 0.4}, {1: 0.7, 2: 0.6}, {3: 0.1, 0: 0.8}]
    got = _weighted_sum(query, prefetched, ids)
    assert [pid for pid, _ in got] == [0, 1, 2, 3]
    want = {0: 0.0 + 0.5 * 0.9 + 0.3 * -1.0 + 0.2 * 0.8, 1: 0.0 + 0.5 * 0.4 + 0.3 * 0.7 + 0.2 * 0.25,
            2: 0.0 + 0.5 * 0.05 + 0.3 * 0.6 + 0.2 * 0.25, 3: 0.0 + 0.5 * 0.05 + 0.3 * -1.0 + 0.2 * 0.1}
    assert dict(got) == want  # bit for bit: the same additions in the same order
    with pytest.raises(ValueError, match=rf"{ids[2]} has no \$score\[0\]"):  # point 2 is not in prefetch 0
        _weighted_sum(WeightedSum([0.5, 0.3, 0.2], defaults={1: 0.0, 2: 0.0}), prefetched, ids)
