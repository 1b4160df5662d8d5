"""Ray Data ingest on a local Ray instance started here (own temp dir, no token auth, bound to 127.0.0.1, never
joining another head): the Ray path stores what ``upsert_documents`` stores, survives an actor killed
mid-run, and a re-run adds nothing. Qdrant Edge is written by the driver; a milvus-lite server on 127.0.0.1
by the actors."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("qdrant_edge")
pytest.importorskip("milvus_lite")

from m3_integrations.ray import (  # noqa: E402
    MilvusTarget,
    QdrantTarget,
    _Columns,
    _documents,
    _encoded_table,
    decode_encoded,
    encode_dataset,
    ingest_dataset,
)

N_DOCS = 36
QUERIES = ["river fox", "vector database search", "lexical token 7"]
WORDS = "river fox hybrid search vector database sparse lexical dense semantic quick brown lazy dog token".split()


def _rows() -> list[dict]:
    rows = []
    for i in range(N_DOCS):
        text = " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 4 + i % 9)) + f" token {i}"
        row = {"text": text, "metadata": {"n": i, "group": f"g{i % 3}"}}
        if i % 2:
            row["id"] = f"doc-{i}"
        rows.append(row)
    rows.append(dict(rows[5]))  # the same document twice: stored once
    return rows


def _dataset(rows: list[dict]):
    # ids as a column of strings or None, metadata as JSON strings (Arrow would align dict keys)
    import json

    return ray.data.from_items([{"text": r["text"], "id": r.get("id"), "metadata": json.dumps(r["metadata"])}
                                for r in rows], override_num_blocks=4)


class _DyingEncoder:
    """The real encoder; the first process to reach its ``kill_at``-th batch (while no marker file exists)
    writes the marker and dies with ``os._exit``, as a crashed or preempted actor would."""

    def __init__(self, inner, marker: str, kill_at: int) -> None:
        self.inner, self.marker, self.kill_at, self.calls = inner, marker, kill_at, 0
        self.dim, self.device = inner.dim, inner.device

    def encode_documents(self, texts):
        self.calls += 1
        if self.calls == self.kill_at:
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                os._exit(1)
        return self.inner.encode_documents(texts)


class KillOnce:
    """Picklable encoder factory for the actors (a Ray actor cannot be handed a loaded model)."""

    def __init__(self, model_dir: Path, marker: Path, kill_at: int = 2) -> None:
        self.model_dir, self.marker, self.kill_at = str(model_dir), str(marker), kill_at

    def __call__(self):
        from m3_integrations import M3Encoder

        return _DyingEncoder(M3Encoder(self.model_dir, device="cpu"), self.marker, self.kill_at)


@pytest.fixture(scope="module")
def local_ray():
    """A fresh single-node Ray: its own short temp dir (no stale head to join), token auth off, 127.0.0.1."""
    saved = {k: os.environ.get(k) for k in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp = tempfile.mkdtemp(prefix="m3ray", dir="/tmp")  # Ray's socket paths must stay short
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        shutil.rmtree(temp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _assert_same_search(search, ref, got, name_ref: str, name_got: str, encoder) -> None:
    for query in QUERIES:
        for mode in ("dense", "sparse", "colbert", "hybrid"):
            a = search(ref, query, name_ref, encoder, limit=5, mode=mode, prefetch_limit=N_DOCS)
            b = search(got, query, name_got, encoder, limit=5, mode=mode, prefetch_limit=N_DOCS)
            assert [h.id for h in b] == [h.id for h in a], (query, mode)
            assert [h.score for h in b] == pytest.approx([h.score for h in a], abs=1e-5), (query, mode)
            assert [h.metadata for h in b] == [h.metadata for h in a]


def _assert_same_edge_vectors(ref, got) -> None:
    ids = [pid for pid, _ in ref.scroll("docs", None, None)]
    want = {r.id: r.vector for r in ref._shard("docs").retrieve(ids, True, True)}
    have = {r.id: r.vector for r in got._shard("docs").retrieve(ids, True, True)}
    assert set(have) == set(want)
    for pid, vec in want.items():
        np.testing.assert_allclose(have[pid]["dense"], vec["dense"], atol=1e-6)
        np.testing.assert_allclose(have[pid]["colbert"], vec["colbert"], atol=1e-3)  # float16 storage, pooled
        assert have[pid]["sparse"].indices == vec["sparse"].indices
        np.testing.assert_allclose(have[pid]["sparse"].values, vec["sparse"].values, atol=1e-6)


def test_qdrant_edge_written_by_the_driver_matches_upsert_documents(local_ray, tmp_path, encoder, tiny_model_dir):
    from m3_integrations.qdrant import QdrantSchema, count_documents, get_documents, hybrid_search, upsert_documents
    from m3_integrations.qdrant.connect import connect

    rows = _rows()
    marker = tmp_path / "killed"
    pooled = QdrantSchema(colbert_pool_factor=2)  # recorded with the collection, applied in the actors
    with connect(path=tmp_path / "ref") as ref:
        keys = upsert_documents(ref, rows, "docs", encoder, schema=pooled)
        report = ingest_dataset(_dataset(rows), QdrantTarget(path=tmp_path / "ray", schema=pooled),
                                KillOnce(tiny_model_dir, marker), dim=encoder.dim, batch_size=8)
        assert marker.exists(), "the fault was not injected"
        assert report.writer == "driver" and report.written == N_DOCS + 1  # the repeat is written twice, stored once
        with connect(path=tmp_path / "ray") as got:
            assert count_documents(got, "docs") == N_DOCS  # 0 lost, 0 duplicated
            assert sorted(d.id for d in get_documents(got, "docs")) == sorted(set(keys))
            _assert_same_edge_vectors(ref, got)
            _assert_same_search(hybrid_search, ref, got, "docs", "docs", encoder)
        # no schema given: the collection's recorded pool factor still applies
        again = ingest_dataset(_dataset(rows), QdrantTarget(path=tmp_path / "ray"), tiny_model_dir, batch_size=64)
        assert again.written == N_DOCS  # one batch: the repeat is written once
        with connect(path=tmp_path / "ray") as got:
            assert count_documents(got, "docs") == N_DOCS  # re-running adds nothing
            _assert_same_edge_vectors(ref, got)


class _NoColbertEncoder:
    """The real encoder, which fails the job if asked for ColBERT rows (the collection stores none)."""

    def __init__(self, inner) -> None:
        self.inner, self.dim, self.device = inner, inner.dim, inner.device

    def encode_documents(self, texts, return_colbert=True, **kwargs):
        if return_colbert is not False:
            raise AssertionError("ColBERT computed for a collection without ColBERT vectors")
        return self.inner.encode_documents(texts, return_colbert=False, **kwargs)


class NoColbert:
    """Picklable factory of ``_NoColbertEncoder`` for the actors."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = str(model_dir)

    def __call__(self):
        from m3_integrations import M3Encoder

        return _NoColbertEncoder(M3Encoder(self.model_dir, device="cpu"))


def test_collections_without_colbert_get_no_colbert_computed(local_ray, tmp_path, encoder, tiny_model_dir):
    """Qdrant Edge (the driver writes) and a milvus-lite file (the driver writes): the actors compute no ColBERT rows
    for a collection without them (``NoColbert`` fails the job otherwise), and what is stored is searchable."""
    from m3_integrations import milvus, qdrant
    from m3_integrations.qdrant.connect import connect

    rows = _rows()
    schema = qdrant.QdrantSchema(with_colbert=False)
    report = ingest_dataset(_dataset(rows), QdrantTarget(path=tmp_path / "edge", schema=schema),
                            NoColbert(tiny_model_dir), dim=encoder.dim, batch_size=16)
    assert report.written == N_DOCS + 1
    with connect(path=tmp_path / "edge") as got:
        assert qdrant.count_documents(got, "docs") == N_DOCS
        hit = qdrant.hybrid_search(got, QUERIES[0], "docs", encoder, limit=1)[0]
        assert set(hit.scores) == {"dense", "sparse"}
    uri = str(tmp_path / "m.db")
    ingest_dataset(_dataset(rows), MilvusTarget(uri=uri, with_colbert=False), NoColbert(tiny_model_dir),
                   dim=encoder.dim, batch_size=16)
    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    try:
        assert client.list_collections() == ["docs"] and milvus.count_documents(client, "docs") == N_DOCS
        assert set(milvus.hybrid_search(client, QUERIES[0], "docs", encoder, limit=1)[0].scores) == {"dense", "sparse"}
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def milvus_server(tmp_path):
    """A milvus-lite server process on 127.0.0.1 (a server URI, so the actors write)."""
    from pymilvus import MilvusClient

    port = _free_port()
    log = open(tmp_path / "milvus.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "milvus"),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "milvus.log").read_text()[-2000:]
            try:
                MilvusClient(uri=uri, timeout=2).close()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_milvus_server_written_by_the_actors_matches_upsert_documents(local_ray, milvus_server, tmp_path, encoder,
                                                                       tiny_model_dir):
    from pymilvus import MilvusClient

    from m3_integrations.milvus import count_documents, hybrid_search, upsert_documents
    from m3_integrations.milvus._schema import DENSE, DOC_ID, PK, SPARSE

    rows = _rows()
    marker = tmp_path / "killed"
    client = MilvusClient(uri=milvus_server)
    try:
        keys = upsert_documents(client, rows, "ref", encoder)
        report = ingest_dataset(_dataset(rows), MilvusTarget(uri=milvus_server, collection_name="ray"),
                                KillOnce(tiny_model_dir, marker), dim=encoder.dim, concurrency=2, batch_size=8)
        assert marker.exists(), "the fault was not injected"
        assert report.writer == "actors" and report.rows == N_DOCS + 1
        assert count_documents(client, "ray", consistency_level="Strong") == N_DOCS  # 0 lost, 0 duplicated

        def stored(name: str) -> dict:
            found = client.query(name, filter=f'{PK} != ""', output_fields=[PK, DOC_ID, DENSE, SPARSE], limit=1000,
                                 consistency_level="Strong")
            return {r[PK]: r for r in found}

        want, have = stored("ref"), stored("ray")
        assert set(have) == set(want) and {r[DOC_ID] for r in have.values()} == set(keys)
        for pk, row in want.items():
            np.testing.assert_allclose(have[pk][DENSE], row[DENSE], atol=1e-6)
            assert sorted(have[pk][SPARSE]) == sorted(row[SPARSE])
            np.testing.assert_allclose([have[pk][SPARSE][k] for k in sorted(row[SPARSE])],
                                       [row[SPARSE][k] for k in sorted(row[SPARSE])], atol=1e-6)
        _assert_same_search(hybrid_search, client, client, "ref", "ray", encoder)  # ColBERT via its scores

        again = ingest_dataset(_dataset(rows), MilvusTarget(uri=milvus_server, collection_name="ray"), tiny_model_dir,
                               concurrency=2, batch_size=8)
        assert again.written == 0 and again.unchanged == N_DOCS + 1  # looked up, neither encoded nor written
        assert count_documents(client, "ray", consistency_level="Strong") == N_DOCS
    finally:
        client.close()


def test_bad_rows_and_columns_are_named(local_ray):
    import pyarrow as pa

    columns = _Columns("text", "id", "metadata")
    with pytest.raises(ValueError, match=r"row with id 'b'.*not JSON"):
        _documents(pa.table({"text": ["a", "b"], "id": ["a", "b"], "metadata": ["{}", "{oops"]}), columns)
    with pytest.raises(ValueError, match=r"row with text 'x'.*metadata\['v'\] is nan"):
        _documents(pa.table({"text": ["x"], "id": [None], "metadata": ['{"v": NaN}']}), columns)
    with pytest.raises(ValueError, match="no 'body' column"):
        ingest_dataset(ray.data.from_items([{"text": "a"}]), QdrantTarget(path="/nonexistent/never-opened"),
                       "unused-model", text_column="body", dim=32)
    with pytest.raises(ValueError, match="concurrency"):
        ingest_dataset(ray.data.from_items([{"text": "a"}]), QdrantTarget(path="/nonexistent/never-opened"),
                       "unused-model", concurrency=0, dim=32)
    with pytest.raises(ValueError, match="exactly one"):
        QdrantTarget(url="http://127.0.0.1:6333", path="x")


def test_encoded_rows_round_trip_exactly(encoder):
    from m3_integrations._ingest import Document, point_id

    docs = [Document(text="river fox", metadata={"a": [1, {"b": None}]}), Document(text="", id="empty"),
            Document(text="vector database " * 20, id="long")]
    output = encoder.encode_documents([d.text for d in docs])
    table = _encoded_table(docs, output)
    assert table.column("point_id").to_pylist() == [point_id(d) for d in docs]
    back, decoded = decode_encoded(table)
    assert [(d.key, d.text, d.metadata) for d in back] == [(d.key, d.text, d.metadata) for d in docs]
    assert np.array_equal(decoded.dense, output.dense) and decoded.sparse == output.sparse
    assert all(np.array_equal(a, b) for a, b in zip(decoded.colbert, output.colbert, strict=True))
    with pytest.raises(ValueError, match="no 'body' column"):
        encode_dataset(ray.data.from_items([{"text": "a"}]), "unused-model", text_column="body")


def test_import_m3_integrations_does_not_import_ray():
    done = subprocess.run([sys.executable, "-c", "import sys, m3_integrations; print('ray' in sys.modules)"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_m3_index_ray_stores_the_chunks_of_plain_m3_index(local_ray, tmp_path, tiny_model_dir, monkeypatch):
    import contextlib
    import io
    import json

    import m3_integrations.ray as m3_ray
    from m3_integrations.cli import main

    reports, real_ingest = [], m3_ray.ingest_dataset

    def recording_ingest(*args, **kwargs):  # the real ingest_dataset, recording that --ray went through it
        reports.append(real_ingest(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(m3_ray, "ingest_dataset", recording_ingest)
    from m3_integrations.qdrant import QdrantEdgeStore, get_documents

    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "notes.md").write_text("# Qdrant\n\nQdrant stores vectors.\n\n## Edge\n\nThe embedded engine.\n" * 6)
    (folder / "records.jsonl").write_text("".join(json.dumps({"text": f"record {i} about river foxes"}) + "\n"
                                                  for i in range(12)))
    (folder / "table.csv").write_text("text,n\n" + "".join(f"row {i} on vector search,{i}\n" for i in range(9)))

    def index(db: Path, *extra: str) -> dict:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["index", str(folder), "--db", str(db), "--model", str(tiny_model_dir), "--chunk-tokens", "32",
                         "--chunk-overlap", "4", "--no-progress", "--json", *extra])
        assert code == 0
        return json.loads(out.getvalue())

    def stored(db: Path) -> dict:
        with QdrantEdgeStore(db / "qdrant-edge") as store:
            return {d.id: (d.text, d.metadata) for d in get_documents(store)}

    plain = index(tmp_path / "plain")
    with_ray = index(tmp_path / "ray", "--ray", "--concurrency", "1", "--batch-size", "16")
    assert with_ray["chunks"]["stored"] == plain["chunks"]["stored"] > 20
    assert len(reports) == 1 and reports[0].written == with_ray["chunks"]["stored"] and reports[0].writer == "driver"
    assert stored(tmp_path / "ray") == stored(tmp_path / "plain")  # same chunks, ids, texts and metadata
    again = index(tmp_path / "ray", "--ray")
    assert again["files"]["unchanged"] == 3 and again["chunks"]["stored"] == 0 and not again["model_loaded"]
