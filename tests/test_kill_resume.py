"""A child process ingesting into an embedded store is SIGKILLed in the middle of a write; a new process
reopens the store and re-runs the same ingest: the count is exact, nothing is duplicated, and every
document has its dense, sparse and ColBERT vectors.

The child (``sys.executable -c``) runs the real ingest with the tiny model; its store's ``upsert`` is
wrapped so that the third write stops after the engine took the data and before the adapter finished
(Qdrant Edge: before the flush; milvus-lite: between the ColBERT rows and the main rows), prints a line and
sleeps there until the test kills it. Nothing else is mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

N_DOCS = 40
BATCH = 8
WORDS = "river fox dog hybrid vector sparse dense lexical semantic quick lazy brown bank sunny token".split()


def corpus() -> list[dict]:
    return [{"id": f"k{i}", "metadata": {"i": i},
             "text": " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(4 + i % 5)) + f" number {i}"}
            for i in range(N_DOCS)]


CHILD = """
import sys, time
kind, path, model_dir = sys.argv[1:4]
sys.path.insert(0, sys.argv[4])
from test_kill_resume import BATCH, corpus
from m3_integrations import M3Encoder
encoder = M3Encoder(model_dir, device="cpu")
if kind == "edge":
    from m3_integrations import qdrant as module
    client = module.QdrantEdgeStore(path)
else:
    from m3_integrations import milvus as module
    client = module.connect(path)
original, calls = client.upsert, [0]

def upsert(*args, **kwargs):
    original(*args, **kwargs)
    calls[0] += 1
    if calls[0] == 3:
        print("mid-write", flush=True)
        time.sleep(600)

client.upsert = upsert
module.upsert_documents(client, corpus(), "docs", encoder, batch_size=BATCH)
print("finished", flush=True)
"""


def _kill_mid_write(kind: str, path: str, tiny_model_dir) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind, path, str(tiny_model_dir),
                              os.path.dirname(__file__)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
    try:
        line = child.stdout.readline().strip()
        assert line == "mid-write", child.stderr.read()[-3000:] if child.poll() is not None else line
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()


def _check_complete(module, client, encoder) -> None:
    docs = corpus()
    assert module.count_documents(client, "docs") == N_DOCS
    stored = module.get_documents(client, "docs")
    assert sorted(d.id for d in stored) == sorted(d["id"] for d in docs)  # no duplicate, none missing
    by_id = {d.id: d for d in stored}
    queries = encoder.encode([d["text"] for d in docs])  # one batch, then one search per document
    for i, doc in enumerate(docs):
        assert by_id[doc["id"]].text == doc["text"] and by_id[doc["id"]].metadata == doc["metadata"]
        # every representation is stored: searched with its own text, the document scores 1 on dense and ColBERT
        hits = module.hybrid_search(client, None, "docs", query_output=queries[i], limit=N_DOCS, weights=(1, 1, 1))
        hit = next(h for h in hits if h.id == doc["id"])
        assert hit.scores["dense"] == pytest.approx(1.0, abs=1e-3)
        assert hit.scores["colbert"] == pytest.approx(1.0, abs=2e-2)
        assert hit.scores["sparse"] > 0


@pytest.mark.parametrize("kind", ["edge", "lite"])
def test_sigkill_mid_write_then_resume(kind, tmp_path, tiny_model_dir, recording):
    if kind == "edge":
        from m3_integrations import qdrant as module

        path = str(tmp_path / "edge")
    else:
        pytest.importorskip("milvus_lite")
        from m3_integrations import milvus as module

        path = str(tmp_path / "m3.db")
    _kill_mid_write(kind, path, tiny_model_dir)

    # a new process (this one): the dead child's lock is gone, the store opens without waiting
    client = module.QdrantEdgeStore(path) if kind == "edge" else module.connect(path)
    try:
        before = module.count_documents(client, "docs")
        assert BATCH <= before <= 3 * BATCH  # two batches done, the third one cut in the middle
        keys = module.upsert_documents(client, corpus(), "docs", recording, batch_size=BATCH, skip_unchanged=True)
        assert keys == [d["id"] for d in corpus()]
        # resumed: what was fully stored was not encoded again (a half-written document is)
        assert N_DOCS - before <= len(recording.seen) < N_DOCS
        _check_complete(module, client, recording.inner)
    finally:
        client.close()
    # and once more from scratch: reopening finds the same complete store
    client = module.QdrantEdgeStore(path) if kind == "edge" else module.connect(path)
    try:
        assert module.count_documents(client, "docs") == N_DOCS
    finally:
        client.close()
