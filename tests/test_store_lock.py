"""One process per embedded store: a second process gets ``StoreLockedError`` and never harms the first.

Real second processes (``subprocess`` + ``sys.executable -c``) open the store the test process holds.

What the engines do without the package's lock (measured 2026-12-01, qdrant-edge-py 0.9.0, milvus-lite 3.2.2):

- Qdrant Edge: the second opener fails with ``Service runtime error: failed to open WAL ...: Can't init WAL:
  Kind(WouldBlock)``, but it has already touched the holder's files: the holder then fails to flush
  (``Tracker journal .../tracker_journal.dat is shorter than expected``), cannot close, and loses its writes.
- milvus-lite 3.x takes its own ``flock`` on ``x.db/LOCK``: the second process gets
  ``ConnectionConfigException: (code=1, message=Open local milvus failed)`` after 0.2 s (the cause,
  ``DataDirLockedError``, is only logged), and the holder is unaffected. The package's answer names the
  file, the holder's pid and what to do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from m3_integrations._store_lock import StoreLock, StoreLockedError, acquire, acquire_shared
from m3_integrations.qdrant import QdrantEdgeStore, count_documents, get_documents, upsert_documents

DOCS = [{"id": f"d{i}", "text": f"document number {i} about rivers and foxes", "metadata": {"i": i}}
        for i in range(20)]

OPEN_EDGE = """
import json, sys, time
from m3_integrations.qdrant import QdrantEdgeStore, StoreLockedError, count_documents
path, wait = sys.argv[1], float(sys.argv[2])
print("opening", flush=True)
start = time.monotonic()
try:
    store = QdrantEdgeStore(path, wait=wait)
except StoreLockedError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc), "pid": exc.pid, "path": exc.path,
                      "waited": time.monotonic() - start}))
    sys.exit(0)
print(json.dumps({"opened": True, "count": count_documents(store, "docs"), "waited": time.monotonic() - start}))
store.close()
"""

OPEN_LITE = """
import json, sys, time
from m3_integrations.milvus import StoreLockedError, connect, count_documents
path, wait = sys.argv[1], float(sys.argv[2])
start = time.monotonic()
try:
    client = connect(path, wait=wait)
except StoreLockedError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc), "pid": exc.pid, "path": exc.path,
                      "waited": time.monotonic() - start}))
    sys.exit(0)
print(json.dumps({"opened": True, "count": count_documents(client, "docs"), "waited": time.monotonic() - start}))
client.close()
"""


def _run(code: str, *args: str, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter; its last stdout line is JSON."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _start(code: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _assert_names_holder(answer: dict, path: Path) -> None:
    assert answer.get("error") == "StoreLockedError", answer
    assert answer["pid"] == os.getpid()
    message = answer["message"]
    assert str(path) in message and f"pid {os.getpid()}" in message and "another process" in message
    assert "close it" in message and "wait" in message and "server" in message


# ------------------------------------------------------------------------------------------------- Qdrant Edge
def test_edge_second_process_fails_clearly_and_the_holder_keeps_writing(tmp_path, encoder):
    path = tmp_path / "edge"
    store = QdrantEdgeStore(path)
    upsert_documents(store, DOCS[:10], "docs", encoder)

    # the scenario of the issue: count_documents in a second process (here after waiting 1 s in vain)
    answer = _run(OPEN_EDGE, str(path), "1.0")
    _assert_names_holder(answer, path)
    assert 1.0 <= answer["waited"] < 60 and "after waiting 1." in answer["message"]

    # A is unaffected: it writes, reads and closes cleanly, and every write is on disk afterwards
    upsert_documents(store, DOCS[10:], "docs", encoder)
    assert count_documents(store, "docs") == len(DOCS)
    store.close()
    with QdrantEdgeStore(path) as reopened:
        assert count_documents(reopened, "docs") == len(DOCS)
        assert sorted(d.id for d in get_documents(reopened, "docs", [d["id"] for d in DOCS])) == sorted(
            d["id"] for d in DOCS)
    # closed: another process opens it now
    assert _run(OPEN_EDGE, str(path), "0") == pytest.approx({"opened": True, "count": len(DOCS), "waited": 0},
                                                            abs=60)


def test_edge_wait_opens_once_the_holder_closes(tmp_path, encoder):
    path = tmp_path / "edge"
    store = QdrantEdgeStore(path)
    upsert_documents(store, DOCS[:5], "docs", encoder)
    child = _start(OPEN_EDGE, str(path), "60")
    assert child.stdout.readline().strip() == "opening"
    # the child is waiting (its answer is not in yet); then A closes and the child opens
    time.sleep(2.0)
    assert child.poll() is None
    store.close()
    out, err = child.communicate(timeout=120)
    answer = json.loads(out.strip().splitlines()[-1])
    assert answer["opened"] is True and answer["count"] == 5, err[-2000:]
    assert answer["waited"] >= 0.2


def test_edge_store_is_locked_in_this_process_too_and_reuses_after_close(tmp_path, encoder):
    path = tmp_path / "edge"
    first = QdrantEdgeStore(path)
    with pytest.raises(StoreLockedError, match="this process") as info:
        QdrantEdgeStore(path)
    assert info.value.pid == os.getpid() and info.value.path == str(path)
    upsert_documents(first, DOCS[:3], "docs", encoder)
    first.close()
    second = QdrantEdgeStore(path)
    # the closed store takes the lock again on its next use: here the path is held by `second`
    with pytest.raises(StoreLockedError):
        count_documents(first, "docs")
    assert count_documents(second, "docs") == 3
    second.close()
    assert count_documents(first, "docs") == 3  # reopens and relocks
    first.close()


def test_bad_wait_is_rejected(tmp_path):
    for wait in (-1, "5", float("nan"), True):
        with pytest.raises(ValueError, match="wait must be a number of seconds"):
            QdrantEdgeStore(tmp_path / "edge", wait=wait)


# ------------------------------------------------------------------------------------------------- milvus-lite
def test_milvus_lite_second_process_fails_clearly_and_the_holder_keeps_writing(tmp_path, encoder):
    pytest.importorskip("milvus_lite")
    from m3_integrations import milvus

    path = tmp_path / "m3.db"
    client = milvus.connect(path)
    milvus.upsert_documents(client, DOCS[:10], "docs", encoder)

    answer = _run(OPEN_LITE, str(path), "0")
    _assert_names_holder(answer, path)
    assert "milvus-lite database" in answer["message"]

    # clients of this process share the file: a second one opens, and the lock stays until both are closed
    other = milvus.connect(path)
    milvus.upsert_documents(client, DOCS[10:], "docs", encoder)
    assert milvus.count_documents(other, "docs") == len(DOCS)
    client.close()
    with pytest.raises(StoreLockedError):  # `other` still holds it
        StoreLock(Path(f"{path}.m3.lock"), path, "x").acquire()
    other.close()

    answer = _run(OPEN_LITE, str(path), "0")
    assert answer["opened"] is True and answer["count"] == len(DOCS)


# ------------------------------------------------------------------------------------------- the lock itself
def test_lock_is_released_when_the_holder_dies(tmp_path):
    """The OS drops a ``flock`` with its process: a SIGKILLed holder leaves no stale lock."""
    code = ("import importlib.util, sys, time\n"  # the module alone: no package import, a fast start
            "spec = importlib.util.spec_from_file_location('lock', sys.argv[2])\n"
            "lock = importlib.util.module_from_spec(spec)\nspec.loader.exec_module(lock)\n"
            "lock.acquire(sys.argv[1])\nprint('held', flush=True)\ntime.sleep(120)\n")
    holder = _start(code, str(tmp_path), str(Path(acquire.__code__.co_filename)))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLockedError) as info:
            acquire(tmp_path)
        assert info.value.pid == holder.pid
        assert f"pid {holder.pid}" in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    lock = acquire(tmp_path)
    assert lock.held
    assert (tmp_path / ".m3-store.lock").read_text().strip() == str(os.getpid())
    lock.release()
    assert not lock.held


def test_shared_lock_counts_clients_and_waits(tmp_path):
    lock_file = tmp_path / "x.db.m3.lock"
    release_a = acquire_shared(tmp_path / "x.db", lock_file=lock_file)
    release_b = acquire_shared(tmp_path / "x.db", lock_file=lock_file)
    outsider = StoreLock(lock_file, tmp_path / "x.db", "store")
    release_a()
    release_a()  # twice is harmless
    with pytest.raises(StoreLockedError):
        outsider.acquire()
    threading.Timer(0.3, release_b).start()
    outsider.acquire(wait=30)  # the last client's release frees it
    assert outsider.held
    outsider.release()


# ---------------------------------------------------------------------------------------------------- the CLI
def _m3(*argv: object) -> subprocess.Popen:
    """``m3 ARGS`` in a second process, as a user runs it in a second terminal."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "m3_integrations.cli", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _config(tmp_path: Path, tiny_model_dir, store: str) -> Path:
    """An index directory as ``m3 index`` leaves it (its config), for a store this test holds open."""
    from m3_integrations.cli._store import IndexConfig, save_config

    (tmp_path / "q.tsv").write_text("q1\trivers\n", encoding="utf-8")
    (tmp_path / "qrels.tsv").write_text("q1\ta.txt\t1\n", encoding="utf-8")
    db = tmp_path / "index"
    save_config(db, IndexConfig(store=store, collections={"docs": {"model": str(tiny_model_dir)}}))
    return db


def test_cli_commands_name_the_holder_and_wait(tmp_path, tiny_model_dir, encoder):
    db = _config(tmp_path, tiny_model_dir, "qdrant-edge")
    store = QdrantEdgeStore(db / "qdrant-edge")
    upsert_documents(store, DOCS[:3], "docs", encoder)
    commands = {"search": ("search", "rivers", "--db", db),
                "eval": ("eval", "--db", db, "--queries", tmp_path / "q.tsv", "--qrels", tmp_path / "qrels.tsv")}
    children = {name: _m3(*argv) for name, argv in commands.items()}
    waiting = _m3("info", "--db", db, "--json", "--wait", "120")
    for name, child in children.items():
        out, err = child.communicate(timeout=180)
        assert child.returncode == 1, (name, out, err)
        assert str(db / "qdrant-edge") in err and f"another process (pid {os.getpid()})" in err, (name, err)
        assert "--wait SECONDS" in err and "Traceback" not in err, (name, err)
    assert waiting.poll() is None  # `m3 info --wait 120` is still waiting for this process
    store.close()
    out, err = waiting.communicate(timeout=180)
    assert waiting.returncode == 0, err
    assert json.loads(out)["collections"][0]["count"] == 3


def test_cli_milvus_lite_names_the_holder(tmp_path, tiny_model_dir):
    pytest.importorskip("milvus_lite")
    from m3_integrations import milvus

    db = _config(tmp_path, tiny_model_dir, "milvus")
    client = milvus.connect(db / "milvus.db")
    try:
        child = _m3("search", "rivers", "--db", db)
        out, err = child.communicate(timeout=180)
    finally:
        client.close()
    assert child.returncode == 1, err
    assert str(db / "milvus.db") in err and f"another process (pid {os.getpid()})" in err and "--wait" in err, err
