"""``m3`` on collections made elsewhere: ``--dense-vector / --sparse-vector / --text-key / --metadata-key /
--id-key`` name their layout (recorded in m3.json, so later commands need no flag), and ``m3 index --no-colbert``
makes a dense + sparse collection. A Qdrant Edge shard made with ``qdrant_edge`` directly, and a milvus-lite
collection made like Milvus' BGE-M3 hybrid-search tutorial with pymilvus directly."""

from __future__ import annotations

import contextlib
import functools
import io
import json

import pytest
from _milvus_layouts import make_tutorial_collection

from m3_integrations.cli import main

THEIRS = ["Alan Turing was the first person to conduct substantial research in AI.",
          "The quick brown fox jumps over the lazy dog."]


def run(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tides.txt").write_text("Tides follow the moon and the sun around the earth every day.", encoding="utf-8")
    (folder / "bread.txt").write_text("Sourdough bread needs a starter, flour, water and patience.", encoding="utf-8")
    return folder


def _edge_shard(path, encoder) -> None:
    """A shard made by user code: vectors ``text`` / ``lexical``, payload ``content`` / ``meta``, int ids."""
    import qdrant_edge as e

    shard = e.EdgeShard.create(str(path), e.EdgeConfig(
        vectors={"text": e.EdgeVectorParams(size=encoder.dim, distance=e.Distance.Cosine)},
        sparse_vectors={"lexical": e.EdgeSparseVectorParams()}))
    out = encoder.encode_documents(THEIRS, return_colbert=False)
    points = []
    for i, text in enumerate(THEIRS):
        weights = {int(k): float(v) for k, v in out.sparse[i].items()}
        points.append(e.Point(id=i + 1, payload={"content": text, "meta": {"by": "them"}}, vector={
            "text": out.dense[i].tolist(), "lexical": e.SparseVector(indices=list(weights),
                                                                     values=list(weights.values()))}))
    shard.update(e.UpdateOperation.upsert_points(points))
    shard.flush()
    shard.close()


EDGE_FIELDS = ["--dense-vector", "text", "--sparse-vector", "lexical", "--text-key", "content",
               "--metadata-key", "meta"]


def test_qdrant_edge_shard_made_elsewhere(tmp_path, docs, encoder, tiny_model_dir):
    db = tmp_path / "idx"
    _edge_shard(db / "qdrant-edge" / "theirs", encoder)
    # searched before m3 ever indexed into it (no m3.json yet)
    code, out, err = run(["search", "fox and dog", "--db", db, "--collection", "theirs", "--model", tiny_model_dir,
                          "--json", "-k", "2", *EDGE_FIELDS])
    assert code == 0, err
    assert {h["text"] for h in json.loads(out)} == set(THEIRS)
    assert {h["id"] for h in json.loads(out)} == {"1", "2"}
    code, out, err = run(["index", docs, "--db", db, "--collection", "theirs", "--model", tiny_model_dir,
                          "--no-progress", "--json", *EDGE_FIELDS])
    assert code == 0, err
    assert json.loads(out)["chunks"]["stored"] == 2
    config = json.loads((db / "m3.json").read_text())
    assert config["collections"]["theirs"]["fields"] == {"dense": "text", "sparse": "lexical", "text": "content",
                                                         "metadata": "meta", "id": None}
    # later commands need no flag: m3.json records the layout
    code, out, err = run(["search", "moon tides", "--db", db, "--json", "-k", "4"])
    assert code == 0, err
    hits = json.loads(out)
    assert len(hits) == 4 and {h["text"] for h in hits} >= set(THEIRS)
    ours = [h for h in hits if h["source"]]
    assert {h["source"].rsplit("/", 1)[-1] for h in ours} == {"tides.txt", "bread.txt"}
    assert all(set(h["scores"]) == {"dense", "sparse"} for h in hits)
    code, out, err = run(["search", "moon tides", "--db", db, "--mode", "colbert"])
    assert code == 1 and "needs ColBERT vectors" in err
    (tmp_path / "q.tsv").write_text("q1\tfox and dog\n", encoding="utf-8")
    (tmp_path / "qrels.trec").write_text("q1 0 2 1\n", encoding="utf-8")  # point 2: their fox sentence
    code, out, err = run(["eval", "--db", db, "--queries", tmp_path / "q.tsv", "--qrels", tmp_path / "qrels.trec",
                          "--json"])
    assert code == 0, err
    settings = {r["setting"] for r in json.loads(out)["results"]}
    assert "dense" in settings and not any("colbert" == s for s in settings)
    assert "left out (a collection made elsewhere has no ColBERT vectors)" in err
    # re-running changes nothing; a changed file replaces its chunk, nothing is duplicated
    code, out, err = run(["index", docs, "--db", db, "--no-progress"])
    assert code == 0 and "nothing to do" in out, err
    (docs / "bread.txt").write_text("Rye bread is dense and keeps for a week.", encoding="utf-8")
    code, out, err = run(["index", docs, "--db", db, "--no-progress", "--json"])
    assert code == 0, err
    assert json.loads(out)["files"]["changed"] == 1
    code, out, err = run(["info", "--db", db, "--json"])
    assert code == 0, err
    [entry] = [c for c in json.loads(out)["collections"] if c["name"] == "theirs"]
    assert entry["count"] == 4 and entry["fields"]["dense"] == "text"
    code, out, err = run(["info", "--db", db])
    assert code == 0 and "made elsewhere: --dense-vector \"text\"" in out, err
    # options that differ from the record, and what does not apply to such a collection, are refused
    code, _, err = run(["search", "x", "--db", db, "--dense-vector", "other"])
    assert code == 1 and "was indexed with --dense-vector \"text\"" in err
    for extra in (["--no-colbert"], ["--colbert-storage", "8bit"]):
        code, _, err = run(["index", docs, "--db", db, "--no-progress", *extra])
        assert code == 1 and "does not apply to a collection made elsewhere" in err, err
    code, _, err = run(["index", docs, "--db", db, "--collection", "missing", "--model", tiny_model_dir,
                        "--no-progress", *EDGE_FIELDS])
    assert code == 1 and "'missing' does not exist" in err


@pytest.mark.parametrize("store", ["qdrant-edge", "milvus"])
def test_no_colbert_index(tmp_path, docs, tiny_model_dir, store):
    db = tmp_path / "idx"
    code, _, err = run(["index", docs, "--db", db, "--store", store, "--model", tiny_model_dir, "--no-colbert",
                        "--no-progress"])
    assert code == 0, err
    if store == "qdrant-edge":
        from m3_integrations.qdrant import QdrantEdgeStore

        edge = QdrantEdgeStore(db / "qdrant-edge")
        try:
            [name] = edge.list_collections()
            assert set(edge.describe(name).vectors) == {"dense"} and edge.describe(name).recorded == {"colbert": False}
        finally:
            edge.close()
    code, out, err = run(["search", "moon tides", "--db", db, "--json", "-k", "1"])
    assert code == 0, err
    assert "Tides" in json.loads(out)[0]["text"] and set(json.loads(out)[0]["scores"]) == {"dense", "sparse"}
    code, _, err = run(["search", "moon tides", "--db", db, "--mode", "colbert"])
    assert code == 1 and "ColBERT" in err
    code, _, err = run(["index", docs, "--db", db, "--no-colbert", "--colbert-storage", "8bit", "--no-progress"])
    assert code == 1 and "--no-colbert stores no ColBERT rows" in err


def _tutorial_collection(db, encoder, name, *, dynamic):
    """A milvus-lite collection made with pymilvus like Milvus' BGE-M3 tutorial (auto-id key, text, sparse, dense;
    ``dynamic``: keys without a field of their own are kept in the dynamic field), holding ``THEIRS``."""
    from pymilvus import MilvusClient

    db.mkdir(exist_ok=True)
    client = MilvusClient(str(db / "milvus.db"))
    make_tutorial_collection(client, name, encoder.dim, dynamic=dynamic)
    out = encoder.encode_documents(THEIRS, return_colbert=False)
    client.insert(name, [{"text": t, "dense_vector": out.dense[i].tolist(),
                          "sparse_vector": {int(k): float(v) for k, v in out.sparse[i].items()}}
                         for i, t in enumerate(THEIRS)])
    client.flush(name)
    client.close()


def _milvus_count(db, name) -> int:
    from pymilvus import MilvusClient

    client = MilvusClient(str(db / "milvus.db"))
    try:
        return client.query(name, output_fields=["count(*)"])[0]["count(*)"]
    finally:
        client.close()


MILVUS_FIELDS = ["--dense-vector", "dense_vector", "--sparse-vector", "sparse_vector", "--text-key", "text",
                 "--metadata-key", ""]


def test_milvus_collection_made_like_the_tutorial(tmp_path, docs, encoder, tiny_model_dir):
    db = tmp_path / "idx"
    _tutorial_collection(db, encoder, "hybrid_demo", dynamic=False)
    names = ["--store", "milvus", "--db", db, "--collection", "hybrid_demo", *MILVUS_FIELDS]
    code, out, err = run(["search", "fox and dog", "--model", tiny_model_dir, "--json", "-k", "2", *names])
    assert code == 0, err
    assert {h["text"] for h in json.loads(out)} == set(THEIRS)
    code, out, err = run(["search", "fox and dog", "--model", tiny_model_dir, "--json", "-k", "2", "--fusion", "rrf",
                          *names])
    assert code == 0 and {h["text"] for h in json.loads(out)} == set(THEIRS), err
    # no field and no dynamic field for the chunks' metadata (source, hashes): the error names the way out
    code, out, err = run(["index", docs, "--model", tiny_model_dir, "--no-progress", *names])
    assert code == 1 and "metadata key 'source' is not a field" in err and "MilvusFields(metadata=" in err
    assert _milvus_count(db, "hybrid_demo") == 2


def test_milvus_index_into_a_collection_made_elsewhere(tmp_path, docs, encoder, tiny_model_dir):
    db = tmp_path / "idx"
    _tutorial_collection(db, encoder, "theirs", dynamic=True)
    names = ["--store", "milvus", "--db", db, "--collection", "theirs", *MILVUS_FIELDS]
    code, out, err = run(["index", docs, "--model", tiny_model_dir, "--no-progress", "--json", *names])
    assert code == 0, err
    assert json.loads(out)["chunks"]["stored"] == 2 and _milvus_count(db, "theirs") == 4
    code, out, err = run(["index", docs, "--db", db, "--no-progress"])  # m3.json records the layout
    assert code == 0 and "nothing to do" in out, err
    (docs / "bread.txt").write_text("Rye bread is dense and keeps for a week.", encoding="utf-8")
    code, out, err = run(["index", docs, "--db", db, "--no-progress", "--json"])
    assert code == 0 and json.loads(out)["files"]["changed"] == 1, err
    assert _milvus_count(db, "theirs") == 4  # the changed file's chunk replaced, their rows kept
    code, out, err = run(["search", "rye bread", "--db", db, "--json", "-k", "4"])
    assert code == 0, err
    hits = json.loads(out)
    assert {h["text"] for h in hits} >= set(THEIRS) and any("Rye bread" in h["text"] for h in hits)
    assert {h["source"].rsplit("/", 1)[-1] for h in hits if h["source"]} == {"tides.txt", "bread.txt"}
    (docs / "tides.txt").unlink()
    code, out, err = run(["index", docs, "--db", db, "--no-progress", "--prune"])
    assert code == 0, err
    assert _milvus_count(db, "theirs") == 3
    code, out, err = run(["info", "--db", db, "--json"])
    assert code == 0, err
    [entry] = [c for c in json.loads(out)["collections"] if c["name"] == "theirs"]
    assert entry["count"] == 3 and not entry.get("count_unknown") and entry["fields"]["dense"] == "dense_vector"


def test_consistency_level_options(tmp_path, docs, tiny_model_dir, monkeypatch):
    """``--consistency-level``: Milvus' level at creation (``m3 index``) and for a search's reads; other stores
    refuse it by name."""
    from m3_integrations import milvus

    seen = {}
    for name in ("upsert_documents", "hybrid_search"):
        real = getattr(milvus, name)

        @functools.wraps(real)  # the same signature: the CLI passes what the function takes
        def spy(*args, _real=real, _name=name, **kwargs):
            seen[_name] = kwargs.get("consistency_level")
            return _real(*args, **kwargs)

        monkeypatch.setattr(milvus, name, spy)
    db = tmp_path / "m"
    code, _, err = run(["index", docs, "--db", db, "--store", "milvus", "--model", tiny_model_dir, "--no-progress",
                        "--consistency-level", "Bounded"])
    assert code == 0 and seen["upsert_documents"] == "Bounded", err
    code, out, err = run(["search", "moon tides", "--db", db, "--json", "--consistency-level", "Eventually"])
    assert code == 0 and seen["hybrid_search"] == "Eventually" and json.loads(out), err
    edge = tmp_path / "e"
    code, _, err = run(["index", docs, "--db", edge, "--model", tiny_model_dir, "--no-progress",
                        "--consistency-level", "Strong"])
    assert code == 1 and "--consistency-level is a Milvus setting" in err
    assert run(["index", docs, "--db", edge, "--model", tiny_model_dir, "--no-progress"])[0] == 0
    code, _, err = run(["search", "moon", "--db", edge, "--consistency-level", "Strong"])
    assert code == 1 and "--consistency-level is a Milvus setting" in err
