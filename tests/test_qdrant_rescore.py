"""How many candidates the weighted hybrid re-scores by ColBERT on Qdrant Edge: the default tied to ``limit``, and
the opt-in shortlist (a binary index of the ColBERT rows picks the few candidates scored exactly; off by default,
measured no faster on qdrant-edge 0.9). The real engine, BGE-M3-sized 1024-d vectors from a deterministic
stand-in encoder (a binary code's fidelity depends on the dimension, so the tiny model's would not tell)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from m3_integrations import M3Output, weighted_score
from m3_integrations._query import default_rescore_limit, default_shortlist, make_plan
from m3_integrations.qdrant import QdrantEdgeStore, QdrantSchema, hybrid_search, upsert_documents
from m3_integrations.qdrant import edge as edge_module
from m3_integrations.qdrant._plans import APPROXIMATE, WeightedSum, build_request

DIM = 1024
N_DOCS = 40


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _vectors(i: int, rows: int = 24) -> tuple[np.ndarray, dict[int, float], np.ndarray]:
    rng = np.random.default_rng(i)
    shared = rng.standard_normal(DIM)  # chunks 2k and 2k+1 share a topic: ColBERT scores that differ
    topic = np.random.default_rng(10_000 + i // 2).standard_normal(DIM)
    colbert = _unit(rng.standard_normal((rows, DIM)) + topic * rng.uniform(0, 1.5))
    return _unit(shared + topic), {int(t): 0.1 for t in rng.choice(300, 12, replace=False)}, colbert


class StandIn:
    """Encodes ``"doc <i>"`` to fixed 1024-d vectors (dense, sparse, ColBERT)."""

    dim = DIM

    def encode_documents(self, texts: list[str]) -> M3Output:
        rows = [_vectors(int(t.split()[1])) for t in texts]
        return M3Output(dense=np.stack([r[0] for r in rows]), sparse=[r[1] for r in rows],
                        colbert=[r[2] for r in rows])


def _query(i: int) -> M3Output:
    rng = np.random.default_rng(5000 + i)
    dense, sparse, colbert = _vectors(i)
    q = _unit(colbert[rng.integers(len(colbert), size=32)] + 0.02 * rng.standard_normal((32, DIM)))
    return M3Output(dense=_unit(dense + 0.5 * rng.standard_normal(DIM) / np.sqrt(DIM) * 10)[None],
                    sparse=[dict(list(sparse.items())[:4])], colbert=[q])


def _exact(q: M3Output, doc: int) -> dict[str, float]:
    dense, sparse, colbert = _vectors(doc)
    return {"dense": float(q.dense[0] @ dense),
            "sparse": sum(w * sparse[t] for t, w in q.sparse[0].items() if t in sparse),
            "colbert": float((q.colbert[0] @ colbert.T).max(axis=1).mean())}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A collection made with the binary ColBERT index (opt-in: ``edge.COLBERT_INDEX``)."""
    path = tmp_path_factory.mktemp("rescore")
    saved, edge_module.COLBERT_INDEX = edge_module.COLBERT_INDEX, "binary"
    try:
        with QdrantEdgeStore(path / "m3") as s:
            upsert_documents(s, [{"id": str(i), "text": f"doc {i}"} for i in range(N_DOCS)], "c", StandIn(),
                             schema=QdrantSchema(colbert_storage="4bit"), show_progress=False)
            edge_module.COLBERT_INDEX = saved  # the collection keeps its index
            yield s
    finally:
        edge_module.COLBERT_INDEX = saved


def test_the_default_rescore_limit_follows_the_limit():
    assert make_plan(limit=10).rescore_limit == default_rescore_limit(10) == 15
    assert make_plan(limit=3).rescore_limit == 8 and make_plan(limit=40).rescore_limit == 60
    assert make_plan(limit=10, rescore_limit=30).rescore_limit == 30
    assert make_plan(limit=10, rescore_limit="all").rescore_limit is None


def test_the_default_scores_the_best_dense_sparse_candidates_exactly(tmp_path):
    """New collections have no ColBERT index: ColBERT scores the best ``default_rescore_limit`` candidates by
    dense + sparse exactly, in one engine request, and only those."""
    with QdrantEdgeStore(tmp_path / "m3") as s:
        upsert_documents(s, [{"id": str(i), "text": f"doc {i}"} for i in range(N_DOCS)], "new", StandIn(),
                         show_progress=False)
        config = json.loads((s.path / "new" / edge_module.CONFIG_FILE).read_text())
        assert "quantization_config" not in config["vectors"]["colbert"]
        shard = s._shard("new")
        recording = Recording(shard)
        s._shards["new"] = recording
        for i in range(0, N_DOCS, 8):
            recording.calls.clear()
            q = _query(i)
            hits = hybrid_search(s, "", "new", None, limit=3, prefetch_limit=20, query_output=q)
            colbert = [(r, n) for r, n in recording.calls if _mode(r)]
            assert len(colbert) == 1 and colbert[0][1] == default_rescore_limit(3) == 8
            assert len(colbert[0][0].filter.must[0].point_ids) == 8
            exact = {str(d): _exact(q, d) for d in range(N_DOCS)}
            for h in hits:
                assert h.score == pytest.approx(weighted_score(**exact[h.id]), abs=1e-5)  # float16 storage
        s._shards["new"] = shard


class Recording:
    """The real shard; records each request the store sends it and the number of points it answered."""

    def __init__(self, shard) -> None:
        self.shard, self.calls = shard, []

    def __getattr__(self, attr):
        return getattr(self.shard, attr)

    def query(self, request):
        points = self.shard.query(request)
        self.calls.append((request, len(points)))
        return points


def _mode(request) -> str | None:
    """How a request scores ColBERT: "estimate" (codes only), "exact" (stored rows, codes ignored), or None."""
    if 'using="colbert"' not in repr(request.query):
        return None
    quantization = request.params.quantization if request.params is not None else None
    if quantization is not None and quantization.ignore:
        return "exact"
    assert quantization is not None and quantization.rescore is False, "a ColBERT request without a mode"
    return "estimate"


def test_collections_made_with_the_index_keep_it(store):
    config = json.loads((store.path / "c" / edge_module.CONFIG_FILE).read_text())
    assert config["vectors"]["colbert"]["quantization_config"] == {"binary": {"memory": "cold"}}
    assert config["vectors"]["colbert"]["datatype"] == "turbo4"  # the stored rows keep the chosen storage
    assert store.colbert_estimates("c", "colbert") == pytest.approx(DIM * 2 / np.pi)


def test_shortlist_tracks_the_limit_and_all_turns_it_off():
    assert make_plan(limit=10).shortlist == default_shortlist(10) == 15
    assert make_plan(limit=2).shortlist == 7
    assert make_plan(limit=40).shortlist == 60
    assert make_plan(limit=10, rescore_limit="all").shortlist is None
    q = _query(0)
    plan = make_plan(limit=3, prefetch_limit=20, rescore_limit=30)
    without = build_request(plan, q, QdrantSchema(), None).stage  # a store without a ColBERT index

    def kinds(stage):
        return [getattr(stage.query, "kind", None)] + [k for s in stage.prefetch for k in kinds(s)]

    assert APPROXIMATE not in kinds(without)
    with_index = build_request(plan, q, QdrantSchema(), None, approximate=650.0).stage
    assert APPROXIMATE in kinds(with_index)
    picked = with_index.prefetch[0].prefetch[0]  # what every final re-score runs over: the shortlist
    assert isinstance(picked.query, WeightedSum) and picked.limit == plan.shortlist
    assert APPROXIMATE not in kinds(build_request(make_plan(limit=3, rescore_limit="all"), q, QdrantSchema(), None,
                                                  approximate=650.0).stage)


def test_with_the_index_only_the_shortlist_is_scored_exactly(store):
    shard = store._shard("c")
    recording = Recording(shard)
    store._shards["c"] = recording
    try:
        for i in range(0, N_DOCS, 4):
            q = _query(i)
            recording.calls.clear()
            hits = hybrid_search(store, "", "c", None, limit=3, prefetch_limit=20, query_output=q, rescore_limit=30)
            modes = [(_mode(r), n) for r, n in recording.calls if _mode(r)]
            # ColBERT estimated from the codes over the candidates, then computed exactly for the shortlist only
            assert [m for m, _ in modes] == ["estimate", "exact"], modes
            assert modes[0][1] > modes[1][1] and modes[1][1] <= default_shortlist(3)
            exact = {str(d): _exact(q, d) for d in range(N_DOCS)}
            for h in hits:  # scores stay exact, on the reference scale
                assert h.scores["colbert"] == pytest.approx(exact[h.id]["colbert"], abs=5e-3)  # 4-bit storage
                assert h.score == pytest.approx(weighted_score(**exact[h.id]), abs=5e-3)
            every = hybrid_search(store, "", "c", None, limit=3, prefetch_limit=20, query_output=q,
                                  rescore_limit="all")
            assert [h.id for h in hits] == [h.id for h in every]  # the shortlist held the exact top 3
    finally:
        store._shards["c"] = shard


def test_all_scores_every_candidate_exactly(store):
    shard = store._shard("c")
    recording = Recording(shard)
    store._shards["c"] = recording
    try:
        hybrid_search(store, "", "c", None, limit=3, prefetch_limit=20, query_output=_query(1), rescore_limit="all")
        assert [_mode(r) for r, _ in recording.calls if _mode(r)] == ["exact"]
    finally:
        store._shards["c"] = shard


def test_a_collection_without_the_index_scores_every_kept_candidate_exactly(tmp_path):
    with QdrantEdgeStore(tmp_path / "m3") as s:
        upsert_documents(s, [{"id": str(i), "text": f"doc {i}"} for i in range(12)], "old", StandIn(),
                         show_progress=False)
        config = json.loads((s.path / "old" / edge_module.CONFIG_FILE).read_text())
        assert "quantization_config" not in config["vectors"]["colbert"]
        assert s.colbert_estimates("old", "colbert") is None
        shard = s._shard("old")
        recording = Recording(shard)
        s._shards["old"] = recording
        hits = hybrid_search(s, "", "old", None, limit=3, prefetch_limit=12, query_output=_query(2),
                             rescore_limit=12)
        assert [_mode(r) for r, _ in recording.calls if _mode(r)] == ["exact"] and len(hits) == 3
        s._shards["old"] = shard
