"""ColBERT storage settings and token pooling on Qdrant Edge (the real engine) and qdrant-client local mode.

Vectors are BGE-M3-sized (1024-d) so that the quantization error is the one users get; they come from a
deterministic stand-in encoder (no model weights are involved in storage fidelity)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from m3_integrations import M3Output
from m3_integrations.encoder.pooling import pool_colbert
from m3_integrations.qdrant import (
    QdrantEdgeStore,
    QdrantSchema,
    SchemaMismatchError,
    count_documents,
    hybrid_search,
    upsert_documents,
)
from m3_integrations.qdrant._schema import DEFAULT_COLBERT_STORAGE

DIM = 1024


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _vectors(i: int, rows: int = 24) -> tuple[np.ndarray, dict[int, float], np.ndarray]:
    rng = np.random.default_rng(i)
    return _unit(rng.standard_normal(DIM)), {int(t): 0.1 for t in rng.choice(5000, 8, replace=False)}, \
        _unit(rng.standard_normal((rows, DIM)))


class StandIn:
    """Encodes ``"doc <i>"`` to fixed 1024-d vectors (dense, sparse, ColBERT)."""

    dim = DIM

    def encode_documents(self, texts: list[str]) -> M3Output:
        rows = [_vectors(int(t.split()[1])) for t in texts]
        return M3Output(dense=np.stack([r[0] for r in rows]), sparse=[r[1] for r in rows],
                        colbert=[r[2] for r in rows])


def _query(i: int) -> M3Output:
    dense, sparse, colbert = _vectors(i)
    rng = np.random.default_rng(1000 + i)
    q = _unit(colbert[:8] + 0.5 * rng.standard_normal((8, DIM)) / np.sqrt(DIM) * 10)
    return M3Output(dense=dense[None], sparse=[sparse], colbert=[q])


DOCS = [{"id": str(i), "text": f"doc {i}"} for i in range(30)]


def _exact_colbert(q: M3Output, doc: int, pool: int = 1) -> float:
    rows = _vectors(doc)[2]
    if pool > 1:
        rows = pool_colbert([rows], pool)[0]
    return float((q.colbert[0] @ rows.T).max(axis=1).mean())


@pytest.mark.parametrize(("storage", "bound"), [("float32", 1e-5), ("float16", 1e-4), ("8bit", 1e-3), ("4bit", 6e-3)])
def test_each_storage_scores_on_the_reference_scale(tmp_path, storage, bound):
    store = QdrantEdgeStore(tmp_path / "s")
    schema = QdrantSchema(colbert_storage=storage)
    upsert_documents(store, DOCS, "c", StandIn(), schema=schema)
    assert store.describe("c").vectors["colbert"].datatype == {"8bit": "turbo8", "4bit": "turbo4"}.get(storage, storage)
    errors = []
    for i in range(6):
        q = _query(i)
        hits = hybrid_search(store, "", "c", None, limit=10, mode="colbert", query_output=q, prefetch_limit=30)
        errors += [abs(h.score - _exact_colbert(q, int(h.id))) for h in hits]
        assert hits[0].id == str(i)  # the query's source document ranks first
    assert max(errors) <= bound, (storage, max(errors))
    store.close()


def test_the_default_is_4bit_and_meets_its_documented_bound(tmp_path, monkeypatch):
    from m3_integrations.qdrant import _schema

    monkeypatch.setattr(_schema, "DEFAULT_COLBERT_STORAGE", "4bit")  # the suite pins float16 (conftest)
    assert DEFAULT_COLBERT_STORAGE == "4bit"
    store = QdrantEdgeStore(tmp_path / "s")
    upsert_documents(store, DOCS, "c", StandIn())
    info = store.describe("c")
    assert info.vectors["colbert"].datatype == "turbo4"
    assert info.recorded == {"colbert_storage": "4bit", "colbert_pool_factor": 1}


def _stored_colbert_rows(store: QdrantEdgeStore, name: str) -> list[int]:
    import qdrant_edge

    records, _ = store._shard(name).scroll(qdrant_edge.ScrollRequest(limit=100, with_vector=True))
    return [len(r.vector["colbert"]) for r in records]


def test_pool_factor_is_recorded_applied_and_needs_no_flag_at_query_time(tmp_path):
    store = QdrantEdgeStore(tmp_path / "s")
    upsert_documents(store, DOCS, "pooled", StandIn(), schema=QdrantSchema(colbert_storage="float32",
                                                                             colbert_pool_factor=2))
    assert store.describe("pooled").recorded["colbert_pool_factor"] == 2
    assert set(_stored_colbert_rows(store, "pooled")) == {12}  # 24 rows pooled by 2
    q = _query(3)
    hits = hybrid_search(store, "", "pooled", None, limit=5, mode="colbert", query_output=q)  # no flag
    assert hits[0].id == "3"
    for h in hits:
        assert h.score == pytest.approx(_exact_colbert(q, int(h.id), pool=2), abs=1e-5)
    # a later ingest with the default schema pools too: the collection says how
    upsert_documents(store, [{"id": "99", "text": "doc 7"}], "pooled", StandIn())
    assert set(_stored_colbert_rows(store, "pooled")) == {12}
    hits = hybrid_search(store, "", "pooled", None, limit=2, mode="colbert", query_output=_query(7))
    assert {h.id for h in hits} == {"7", "99"}
    assert hits[0].score == pytest.approx(hits[1].score, abs=1e-6)  # same text, same pooled rows
    store.close()


def test_an_existing_collection_is_validated_never_reinterpreted(tmp_path):
    store = QdrantEdgeStore(tmp_path / "s")
    upsert_documents(store, DOCS[:3], "c", StandIn(), schema=QdrantSchema(colbert_storage="8bit"))
    with pytest.raises(SchemaMismatchError, match=r"stored as '8bit'.*colbert_storage='float16'"):
        upsert_documents(store, DOCS[3:6], "c", StandIn(), schema=QdrantSchema(colbert_storage="float16"))
    with pytest.raises(SchemaMismatchError, match="colbert_pool_factor=1, the schema asks for 2"):
        upsert_documents(store, DOCS[3:6], "c", StandIn(), schema=QdrantSchema(colbert_pool_factor=2))
    assert count_documents(store, "c") == 3  # nothing was written by the refused calls
    upsert_documents(store, DOCS[3:6], "c", StandIn())  # None = the collection's own settings
    assert count_documents(store, "c") == 6
    store.close()


def test_unsupported_storage_names_the_alternatives():
    with pytest.raises(ValueError, match=r"colbert_storage='1bit'.*no 1-bit.*float32, float16, 8bit, 4bit"):
        QdrantSchema(colbert_storage="1bit")
    with pytest.raises(ValueError, match="colbert_pool_factor"):
        QdrantSchema(colbert_pool_factor=0)


def test_a_collection_from_before_the_settings_still_works(tmp_path):
    """Collections created before this change: float16 rows, a WAL, no record of settings."""
    store = QdrantEdgeStore(tmp_path / "s", wal=True)
    upsert_documents(store, DOCS[:4], "old", StandIn(), schema=QdrantSchema(colbert_storage="float16"))
    store.close()
    (tmp_path / "s" / "old" / "m3_collection.json").unlink()
    store = QdrantEdgeStore(tmp_path / "s")
    assert store.describe("old").colbert_pool_factor == 1
    upsert_documents(store, DOCS[4:8], "old", StandIn())  # default schema: float16, pool 1, as the collection is
    hits = hybrid_search(store, "", "old", None, limit=1, mode="colbert", query_output=_query(5))
    assert hits[0].id == "5" and hits[0].score == pytest.approx(_exact_colbert(_query(5), 5), abs=1e-4)
    store.close()


def test_no_second_copy_in_a_write_ahead_log(tmp_path):
    """The engine's WAL keeps upsert batches again as float32; collections are created without it."""
    sizes = {}
    for wal in (True, False):
        store = QdrantEdgeStore(tmp_path / f"wal{wal}", wal=wal)
        upsert_documents(store, DOCS, "c", StandIn(), schema=QdrantSchema(colbert_storage="4bit"))
        store.close()
        out = subprocess.run(["du", "-s", "-B1", str(tmp_path / f"wal{wal}")], capture_output=True, text=True,
                             check=True)  # allocated bytes: the engine's preallocated files are sparse
        sizes[wal] = int(out.stdout.split()[0])
    data = len(DOCS) * 24 * 516  # 4-bit ColBERT rows
    assert sizes[True] > sizes[False] + len(DOCS) * 24 * DIM * 4 * 0.9  # the WAL holds the float32 rows
    assert sizes[False] < 6 * data + 2**20, sizes


def test_qdrant_client_collections_record_the_settings():
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    upsert_documents(client, DOCS[:3], "c", StandIn(), schema=QdrantSchema(colbert_storage="8bit",
                                                                          colbert_pool_factor=2))
    config = client.get_collection("c").config
    assert config.params.vectors["colbert"].datatype.value == "turbo8"
    assert config.params.vectors["colbert"].on_disk is True
    assert config.metadata["m3_integrations"] == {"colbert_storage": "8bit", "colbert_pool_factor": 2}
    with pytest.raises(SchemaMismatchError, match="colbert_pool_factor=2"):
        upsert_documents(client, DOCS[3:4], "c", StandIn(), schema=QdrantSchema(colbert_pool_factor=1))



def test_vectors_reach_the_engine_as_float32_buffers_and_round_trip_exactly(tmp_path, monkeypatch):
    """No Python float per value on the way in (memoryviews of float32 rows); any layout or dtype converts."""
    from m3_integrations.qdrant import edge

    e = edge._edge()
    seen, real = [], e.Point

    def point(**kwargs):
        seen.append(kwargs["vector"])
        return real(**kwargs)

    monkeypatch.setattr(e, "Point", point)
    store = QdrantEdgeStore(tmp_path / "s")
    upsert_documents(store, DOCS[:3], "c", StandIn(), schema=QdrantSchema(colbert_storage="float32"))
    assert all(isinstance(v["dense"], memoryview) and all(isinstance(r, memoryview) for r in v["colbert"])
               for v in seen)
    odd = [(7, _vectors(5)[0].astype(np.float64), ([1], [0.5]), np.asfortranarray(_vectors(5)[2]), {"k": 1})]
    store.upsert("c", odd, QdrantSchema())  # float64 dense, column-major ColBERT rows
    import qdrant_edge

    records, _ = store._shard("c").scroll(qdrant_edge.ScrollRequest(limit=10, with_vector=True))
    stored = {r.id: r.vector for r in records}
    assert np.array_equal(np.asarray(stored[7]["colbert"], np.float32), _vectors(5)[2])
    assert np.array_equal(np.asarray(stored[7]["dense"], np.float32), _vectors(5)[0])
    store.close()
