"""Scoring helpers, batch planning, the output type, and the shared ingest / query helpers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from m3_integrations import (
    M3Output,
    colbert_maxsim,
    colbert_query_length,
    colbert_score,
    sparse_score,
    validate_weights,
    weighted_score,
)
from m3_integrations._ingest import Document, IngestError, iter_documents, point_id, run_ingest, to_document
from m3_integrations._query import AllOf, Condition, make_plan
from m3_integrations.encoder._batcher import plan_batches


def test_sparse_score_sums_shared_tokens():
    assert sparse_score({1: 0.5, 2: 2.0, 9: 1.0}, {2: 0.25, 9: 3.0, 7: 4.0}) == pytest.approx(0.5 + 3.0)
    assert sparse_score({}, {1: 1.0}) == 0.0


def test_colbert_score_is_maxsim_over_query_tokens():
    q = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    d = np.array([[1.0, 0.0], [0.8, 0.6]], dtype=np.float32)
    maxsim = 1.0 + 0.6 + max(0.6, 0.48 + 0.48)
    assert colbert_maxsim(q, d) == pytest.approx(maxsim)
    assert colbert_query_length(q) == 3
    assert colbert_score(q, d) == pytest.approx(maxsim / 3)
    with pytest.raises(ValueError, match="empty"):
        colbert_query_length(np.zeros((0, 2)))


def test_weighted_score_and_weight_validation():
    assert weighted_score(1.0, 0.5, 0.25, (0.4, 0.2, 0.4)) == pytest.approx((0.4 + 0.1 + 0.1) / 1.0)
    assert weighted_score(1.0, 0.5, 0.25, (2, 0, 0)) == pytest.approx(1.0)
    for bad, message in [((-1, 1, 1), "negative"), ((0, 0, 0), "all be zero"), ((1, 1), "three"),
                         ((1, float("nan"), 1), "finite")]:
        with pytest.raises(ValueError, match=message):
            validate_weights(bad)


def test_plan_batches_respects_the_token_budget_and_sorts_longest_first():
    lengths = [5, 100, 7, 50, 50, 3, 400]
    batches = plan_batches(lengths, max_batch_tokens=120, max_batch_size=8)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert batches[0] == [6]  # longer than the budget: alone
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 120
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
    assert all(len(b) <= 2 for b in plan_batches(lengths, 10_000, 2))


def test_output_indexing_and_concat():
    out = M3Output(dense=np.eye(3, dtype=np.float32), sparse=[{1: 1.0}, {2: 2.0}, {3: 3.0}],
                   colbert=[np.ones((i + 1, 3), np.float32) for i in range(3)])
    picked = out[[2, 0]]
    assert picked.sparse == [{3: 3.0}, {1: 1.0}] and picked.dense.shape == (2, 3)
    assert len(out[1:]) == 2 and out[1].colbert[0].shape == (2, 3)
    both = M3Output.concat([out[0], out[1:]])
    assert np.array_equal(both.dense, out.dense) and both.sparse == out.sparse
    assert M3Output.sparse_to_arrays({9: 0.5, 2: 1.5}) == ([2, 9], [1.5, 0.5])


def test_documents_normalisation_and_deterministic_ids():
    a = to_document({"text": "hello", "id": 7, "metadata": {"lang": "en"}}, 0)
    assert a.id == "7" and a.metadata == {"lang": "en"} and a.key == "7"
    b = to_document("hello", 1)
    assert b.key == point_id(b) == point_id(Document("hello"))
    assert point_id(Document("hello")) != point_id(Document("hello", id="1"))
    with pytest.raises(ValueError, match=r"docs\[0\] has no 'text'"):
        to_document({"body": "x"}, 0)
    with pytest.raises(TypeError, match=r"docs\[3\] is int"):
        to_document(5, 3)
    with pytest.raises(ValueError, match="empty"):
        list(iter_documents([]))
    with pytest.raises(TypeError, match="iterable of documents"):
        list(iter_documents("just a string"))


def _fake_encode(texts):
    return M3Output(dense=np.zeros((len(texts), 2), np.float32), sparse=[{}] * len(texts),
                    colbert=[np.zeros((1, 2), np.float32)] * len(texts))


def test_run_ingest_streams_generators_in_batches_and_dedups():
    written: list[list[str]] = []
    keys = run_ingest((f"doc {i % 5}" for i in range(12)), _fake_encode,
                      lambda docs, out: written.append([d.text for d in docs]), batch_size=4, show_progress=False)
    assert [len(b) for b in written] == [4, 4, 4]
    assert written[0] == ["doc 0", "doc 1", "doc 2", "doc 3"]
    assert len(keys) == 12 and len(set(keys)) == 5


def test_run_ingest_retries_transient_errors_then_reports_what_was_not_stored():
    calls = {"n": 0}
    stored: set[str] = set()

    def flaky(docs, out):
        calls["n"] += 1
        if docs[0].text == "bad":
            raise ConnectionError("server went away")
        if calls["n"] == 1:
            raise TimeoutError("slow")
        stored.update(d.key for d in docs)

    with pytest.raises(IngestError) as info:
        run_ingest(["a", "b", "bad", "c"], _fake_encode, flaky, batch_size=2, show_progress=False, backoff=0.001)
    err = info.value
    assert len(err.failed_ids) == 2 and set(err.stored_ids) == stored and len(stored) == 2
    assert "re-run" in str(err)


def test_run_ingest_skips_unchanged_documents_keeps_order_and_reports_only_attempted_failures():
    encoded: list[str] = []

    def encode(texts):
        encoded.extend(texts)
        return _fake_encode(texts)

    def write(docs, out):
        if any(d.text == "bad" for d in docs):
            raise ConnectionError("server went away")

    already = {"a", "c"}  # keys (derived from the text) of documents stored as they are
    with pytest.raises(IngestError) as info:
        run_ingest(["a", "b", "c", "bad"], encode, write, batch_size=2, show_progress=False, backoff=0.001,
                   unchanged=lambda batch: {d.key for d in batch if d.text in already})
    err = info.value
    assert encoded == ["b", "bad"]  # the unchanged ones were not encoded
    texts = {key: text for text in ("a", "b", "c", "bad") for key in [point_id(Document(text=text))]}
    assert [texts[k] for k in err.stored_ids] == ["a", "b", "c"]  # input order; "c" was stored already
    assert [texts[k] for k in err.failed_ids] == ["bad"]
    keys = run_ingest(["a", "b"], encode, lambda d, o: None, show_progress=False,
                      unchanged=lambda batch: {d.key for d in batch})
    assert [texts[k] for k in keys] == ["a", "b"] and encoded == ["b", "bad"]  # nothing new encoded


def test_run_ingest_surfaces_encoder_errors_and_stops_the_worker():
    def broken(texts):
        raise RuntimeError("encoder exploded")

    before = threading.active_count()
    with pytest.raises(RuntimeError, match="exploded"):
        run_ingest(["a", "b"], broken, lambda d, o: None, show_progress=False)
    assert threading.active_count() <= before + 1


def test_make_plan_validation():
    plan = make_plan("hybrid", "rrf", (1, 1, 0), limit=5, prefetch_limit=2)
    assert plan.prefetch_limit == 5 and "colbert" in plan.uses
    assert make_plan(weights=(1, 1, 0)).uses == ("dense", "sparse")
    for kwargs, message in [({"mode": "bm25"}, "mode must be"), ({"fusion": "max"}, "fusion must be"),
                            ({"limit": 0}, "limit must be positive"), ({"weights": (0, 0, 0)}, "zero")]:
        with pytest.raises(ValueError, match=message):
            make_plan(**kwargs)
    with pytest.raises(TypeError, match="limit must be an int"):
        make_plan(limit=2.5)


def test_neutral_filters_validate():
    AllOf((Condition("lang", "eq", "en"), Condition("year", "gte", 2020)))
    with pytest.raises(ValueError, match="operator"):
        Condition("lang", "like", "en")
    with pytest.raises(ValueError, match="list of values"):
        Condition("lang", "in", "en")


def test_weighted_hybrid_re_scores_the_best_15_candidates_by_default():
    from m3_integrations._query import DEFAULT_RESCORE_LIMIT, make_plan

    assert make_plan().rescore_limit == DEFAULT_RESCORE_LIMIT == 15  # limit 10 + 5 (default_rescore_limit)
    assert make_plan(limit=20).rescore_limit == 30
    assert make_plan(rescore_limit="all").rescore_limit is None  # every candidate: the exact reference ranking
    assert make_plan(rescore_limit=5, limit=20).rescore_limit == 20  # never fewer than the hits asked for
    with pytest.raises(ValueError, match="rescore_limit must be a positive int or 'all'"):
        make_plan(rescore_limit="every")
