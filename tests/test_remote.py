"""RemoteEncoder against a real uvicorn service on 127.0.0.1 (tiny model): parity with the local encoder,
retries, errors, and the LangChain / LlamaIndex classes and store adapters running on it.

The flaky upstream of the retry tests is a real HTTP server on 127.0.0.1 that answers 503 a few times and
then forwards to the service.
"""

from __future__ import annotations

import http.server
import threading

import httpx
import numpy as np
import pytest

from m3_integrations.remote import RemoteEncoder, RemoteEncoderError, encoder_from_url
from m3_integrations.serve import M3Server, ServeSettings, create_app

KEY = "remote-test-key"
TEXTS = ["BGE-M3 gives dense, sparse and multi-vector outputs.", "The quick brown fox jumps over the lazy dog.",
         "Быстрая коричневая лиса прыгает через ленивую собаку у реки.", "", "混合检索结合了词汇匹配和语义相似度。",
         "Hybrid retrieval combines lexical matching with semantic similarity."]


@pytest.fixture(scope="module")
def service(encoder):
    settings = ServeSettings(api_key=KEY, max_texts_per_request=4, max_request_tokens=1000)
    with M3Server(create_app(encoder, settings), port=0, log_level="warning") as server:
        yield server


@pytest.fixture
def remote(service):
    with RemoteEncoder(service.url, api_key=KEY) as enc:
        yield enc


def assert_same(a, b, atol=1e-6):
    """Same fields, values within ``atol`` (float32 model)."""
    for field in ("dense", "sparse", "colbert"):
        assert (getattr(a, field) is None) == (getattr(b, field) is None), field
    if a.dense is not None:
        assert a.dense.dtype == b.dense.dtype == np.float32
        np.testing.assert_allclose(a.dense, b.dense, atol=atol)
    if a.sparse is not None:
        assert len(a.sparse) == len(b.sparse)
        for x, y in zip(a.sparse, b.sparse, strict=True):
            assert x.keys() == y.keys()
            np.testing.assert_allclose([x[k] for k in x], [y[k] for k in x], atol=atol)
    if a.colbert is not None:
        assert len(a.colbert) == len(b.colbert)
        for x, y in zip(a.colbert, b.colbert, strict=True):
            assert x.shape == y.shape and x.dtype == y.dtype == np.float32
            np.testing.assert_allclose(x, y, atol=atol)


def test_attributes_come_from_the_service(remote, encoder, service):
    assert remote.dim == encoder.dim and remote.model_name == encoder.model_name
    assert remote.query_max_length == encoder.query_max_length
    assert remote.document_max_length == encoder.document_max_length and remote.max_length == encoder.max_length
    assert remote.device == "cpu" and remote.dtype == "float32" and remote.max_texts_per_request == 4
    assert repr(remote).startswith(f"RemoteEncoder('{service.url}'")


def test_encode_parity_with_the_local_encoder(remote, encoder):
    # 6 texts over a 4-text limit: two requests, outputs joined in order
    assert_same(remote.encode(TEXTS), encoder.encode(TEXTS))
    assert_same(remote.encode_documents(TEXTS), encoder.encode_documents(TEXTS))
    long_query = " ".join(["hybrid"] * 300)
    assert_same(remote.encode_queries([long_query, "fox"]), encoder.encode_queries([long_query, "fox"]))
    assert_same(remote.encode(TEXTS[:3], max_length=8), encoder.encode(TEXTS[:3], max_length=8))
    assert_same(remote.encode("one string"), encoder.encode("one string"))
    for want in ({"return_sparse": False}, {"return_dense": False, "return_colbert": False},
                 {"return_dense": False, "return_sparse": False}):
        assert_same(remote.encode(TEXTS, **want), encoder.encode(TEXTS, **want))
    empty = remote.encode([])
    assert empty.dense.shape == (0, encoder.dim) and empty.sparse == [] and empty.colbert == []


async def test_async_twins(remote, encoder):
    assert_same(await remote.aencode(TEXTS), encoder.encode(TEXTS))
    assert_same(await remote.aencode_queries(["a query"]), encoder.encode_queries(["a query"]))
    assert_same(await remote.aencode_documents(TEXTS[:2]), encoder.encode_documents(TEXTS[:2]))


def test_requests_over_the_token_limit_are_split(remote, encoder, service):
    texts = ["hybrid search " * 60] * 4  # 4 texts fit the text limit but not the 1000-token limit together
    assert sum(encoder.count_tokens(texts)) > 1000 > max(encoder.count_tokens(texts))
    before = remote.stats.forward_passes
    assert_same(remote.encode(texts), encoder.encode(texts))
    assert remote.stats.forward_passes - before >= 2
    with pytest.raises(ValueError, match="max_request_tokens=1000"):  # one text alone over it: a clear error
        remote.encode(["hybrid search " * 300])


def test_tokenize_count_tokens_and_tokenizer(remote, encoder):
    assert remote.tokenize(TEXTS) == encoder.tokenize(TEXTS)
    assert remote.count_tokens(TEXTS) == encoder.count_tokens(TEXTS)
    assert remote.tokenize("x") == encoder.tokenize("x") and remote.tokenize([]) == []
    ids = encoder.tokenize(["hybrid retrieval"])[0]
    assert remote.tokenizer.convert_ids_to_tokens(ids) == encoder.tokenizer.convert_ids_to_tokens(ids)
    long_text = "lexical " * 5000  # untruncated, as the local encoder
    assert remote.count_tokens([long_text]) == encoder.count_tokens([long_text])


def test_cache_and_stats(service, encoder):
    with RemoteEncoder(service.url, api_key=KEY) as remote:
        assert remote.cache_size is None
        remote.enable_cache(16)
        assert remote.cache_size == 16
        first = remote.encode(TEXTS[:3])
        passes = remote.stats.forward_passes
        again = remote.encode(TEXTS[:3], return_colbert=False)
        assert remote.stats.forward_passes == passes  # served from the cache
        assert_same(again, encoder.encode(TEXTS[:3], return_colbert=False))
        assert_same(first, encoder.encode(TEXTS[:3]))
        assert remote.stats.texts == 3 and remote.stats.tokens == sum(encoder.count_tokens(TEXTS[:3]))
        remote.disable_cache()
        remote.encode(TEXTS[:3])
        assert remote.stats.forward_passes == passes + 1


def test_bad_input_is_refused_here_with_the_local_messages(remote, encoder):
    for bad, error in (([1], TypeError), (None, TypeError), (["ok", b"bytes"], TypeError)):
        with pytest.raises(error) as remote_exc:
            remote.encode(bad)
        with pytest.raises(error) as local_exc:
            encoder.encode(bad)
        assert str(remote_exc.value) == str(local_exc.value)
    with pytest.raises(ValueError, match="between 2 and"):
        remote.encode(["x"], max_length=10**6)
    with pytest.raises(ValueError, match="at least one of"):
        remote.encode(["x"], return_dense=False, return_sparse=False, return_colbert=False)


def test_wrong_key_and_unreachable_service(service, monkeypatch):
    with pytest.raises(PermissionError, match="401: invalid API key"):
        RemoteEncoder(service.url, api_key="not-the-key")
    monkeypatch.delenv("M3_ENCODER_API_KEY", raising=False)
    with pytest.raises(PermissionError, match="missing API key"):
        RemoteEncoder(service.url)
    monkeypatch.setenv("M3_ENCODER_API_KEY", KEY)
    assert RemoteEncoder(service.url).dim > 0  # the key from the environment
    with pytest.raises(ValueError, match="http:// or https:// URL"):
        RemoteEncoder("localhost:8080")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: connection refused
        with pytest.raises(RemoteEncoderError, match=r"cannot reach the encoder service .* after 3 attempts"):
            RemoteEncoder(dead, retries=2, backoff=0.01)


class _Flaky(http.server.ThreadingHTTPServer):
    """Answers ``fail`` requests with ``status`` first, then forwards to the service."""

    def __init__(self, upstream: str, fail: int, status: int = 503) -> None:
        self.upstream, self.fail, self.status, self.seen = upstream, fail, status, []
        super().__init__(("127.0.0.1", 0), _FlakyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    def _handle(self) -> None:
        server: _Flaky = self.server
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        server.seen.append(self.path)
        if server.fail > 0:
            server.fail -= 1
            self.send_response(server.status)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        r = httpx.request(self.command, server.upstream + self.path, content=body,
                          headers={k: v for k, v in self.headers.items() if k.lower() in ("authorization",
                                                                                          "content-type")})
        self.send_response(r.status_code)
        self.send_header("Content-Type", r.headers.get("content-type", "application/json"))
        self.send_header("Content-Length", str(len(r.content)))
        self.end_headers()
        self.wfile.write(r.content)

    do_GET = do_POST = _handle

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def flaky(service):
    servers = []

    def make(fail: int, status: int = 503) -> _Flaky:
        server = _Flaky(service.url, fail, status)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def test_transient_failures_are_retried(flaky, encoder):
    proxy = flaky(fail=2)  # /info fails twice, then works
    remote = RemoteEncoder(proxy.url, api_key=KEY, retries=3, backoff=0.01)
    assert proxy.seen == ["/info"] * 3
    proxy.fail = 3  # /encode: 3 failures, the 4th attempt succeeds
    assert_same(remote.encode(TEXTS[:2]), encoder.encode(TEXTS[:2]))
    assert proxy.seen[3:] == ["/encode"] * 4
    proxy.fail = 10
    with pytest.raises(RemoteEncoderError, match="answered 503") as exc:
        remote.encode(["x"])
    assert exc.value.status == 503 and proxy.seen[7:] == ["/encode"] * 4  # 1 + 3 retries, then the error


def test_errors_that_are_not_transient_are_not_retried(flaky):
    proxy = flaky(fail=1, status=404)
    with pytest.raises(RemoteEncoderError, match="answered 404"):
        RemoteEncoder(proxy.url, api_key=KEY, retries=3, backoff=0.01)
    assert proxy.seen == ["/info"]


def test_encoder_from_url(service, monkeypatch):
    monkeypatch.delenv("M3_ENCODER_URL", raising=False)
    assert encoder_from_url() is None
    monkeypatch.setenv("M3_ENCODER_URL", service.url)
    assert encoder_from_url(api_key=KEY).url == service.url


# --------------------------------------------------------------------------- frameworks and stores on it
def test_store_adapters_ingest_and_search_through_the_service(remote, encoder):
    from qdrant_client import QdrantClient

    from m3_integrations import qdrant

    docs = [{"id": i, "text": t} for i, t in enumerate(TEXTS)]
    remote_client, local_client = QdrantClient(":memory:"), QdrantClient(":memory:")
    qdrant.upsert_documents(remote_client, docs, "docs", remote)
    qdrant.upsert_documents(local_client, docs, "docs", encoder)
    for query in ("hybrid lexical search", "a fox and a dog"):
        got = qdrant.hybrid_search(remote_client, query, "docs", encoder=remote, limit=3)
        want = qdrant.hybrid_search(local_client, query, "docs", encoder=encoder, limit=3)
        assert [h.id for h in got] == [h.id for h in want]
        assert [h.score for h in got] == pytest.approx([h.score for h in want], abs=1e-5)


def test_langchain_retriever_and_embeddings_on_the_service(remote, encoder):
    from langchain_core.documents import Document
    from qdrant_client import QdrantClient

    from m3_integrations.langchain import M3Embeddings, M3HybridRetriever, M3SparseEmbeddings, add_documents

    docs = [Document(page_content=t, id=f"d{i}", metadata={"n": i}) for i, t in enumerate(TEXTS) if t]
    client = QdrantClient(":memory:")
    assert add_documents(client, docs, collection_name="lc", encoder=remote) == [d.id for d in docs]
    retriever = M3HybridRetriever(client=client, collection_name="lc", encoder=remote, k=3)
    local = M3HybridRetriever(client=client, collection_name="lc", encoder=encoder, k=3)
    query = "hybrid retrieval with lexical matching"
    got, want = retriever.invoke(query), local.invoke(query)
    assert [d.id for d in got] == [d.id for d in want] and len(got) == 3
    for g, w in zip(got, want, strict=True):
        assert g.metadata["m3"]["score"] == pytest.approx(w.metadata["m3"]["score"], abs=1e-5)
    dense = M3Embeddings(encoder=remote)
    np.testing.assert_allclose(dense.embed_query("fox"), encoder.encode_queries(["fox"]).dense[0], atol=1e-6)
    sparse = M3SparseEmbeddings.from_embeddings(dense).embed_documents(["hybrid search"])[0]
    assert dict(zip(sparse.indices, sparse.values, strict=True)) == pytest.approx(
        encoder.encode_documents(["hybrid search"]).sparse[0], abs=1e-6)


def test_llama_index_store_on_the_service(remote, encoder):
    from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from qdrant_client import QdrantClient

    from m3_integrations.llama_index import M3Embedding, M3QdrantVectorStore

    previous = Settings._llm
    Settings.llm = MockLLM()  # no LLM is called; LlamaIndex wants one configured
    try:
        with RemoteEncoder(remote.url, api_key=KEY) as enc:
            store = M3QdrantVectorStore(QdrantClient(":memory:"), "li", encoder=enc)
            index = VectorStoreIndex.from_documents(
                [Document(text=t, doc_id=f"d{i}") for i, t in enumerate(TEXTS) if t],
                storage_context=StorageContext.from_defaults(vector_store=store), embed_model=M3Embedding(encoder=enc))
            passes = enc.stats.forward_passes
            assert store.count() == len([t for t in TEXTS if t])
            hits = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=2).retrieve(
                "the quick brown fox")
            assert hits[0].node.ref_doc_id == "d1"
            assert enc.stats.forward_passes - passes == 1  # the query: one call to the service
    finally:
        Settings._llm = previous


def test_the_client_side_loads_neither_torch_nor_transformers(service, encoder):
    import json
    import subprocess
    import sys

    code = (f"import json, sys\nfrom m3_integrations.remote import RemoteEncoder\n"
            f"enc = RemoteEncoder({service.url!r}, api_key={KEY!r})\n"
            "out = enc.encode(['hybrid search'])\nenc.tokenizer.backend_tokenizer.encode('x')\n"
            "print(json.dumps([out.dense[0].tolist(), sorted({'torch', 'transformers'} & set(sys.modules))]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    dense, heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert heavy == []
    np.testing.assert_allclose(dense, encoder.encode(["hybrid search"]).dense[0], atol=1e-6)


# ---------------------------------------------------------------------------------------------- CLI
def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    import contextlib
    import io

    from m3_integrations.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def _corpus(root):
    root.mkdir(parents=True, exist_ok=True)
    (root / "volcano.md").write_text("# Volcanoes\n\nShield volcanoes erupt runny basalt lava.\n", encoding="utf-8")
    (root / "tides.txt").write_text("Tides follow the moon and the sun.", encoding="utf-8")
    (root / "espresso.md").write_text("Espresso needs finely ground coffee and nine bars.", encoding="utf-8")
    return root


def test_cli_index_and_search_through_the_service(service, tiny_model_dir, tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("M3_ENCODER_API_KEY", KEY)
    monkeypatch.delenv("M3_ENCODER_URL", raising=False)
    corpus = _corpus(tmp_path / "docs")
    chunk = ["--chunk-tokens", "40", "--chunk-overlap", "8"]
    code, out, err = _run_cli(["index", corpus, "--db", tmp_path / "remote", "--encoder-url", service.url, *chunk])
    assert code == 0, err
    code, _, err = _run_cli(["index", corpus, "--db", tmp_path / "local", "--model", tiny_model_dir, *chunk])
    assert code == 0, err
    recorded = json.loads((tmp_path / "remote" / "m3.json").read_text())
    assert json.dumps(recorded).count(str(tiny_model_dir)) >= 1  # the service's model is the index's model
    query = "Espresso needs finely ground coffee and nine bars."
    monkeypatch.setenv("M3_ENCODER_URL", service.url)  # search: the service from the environment
    code, out, err = _run_cli(["search", query, "--db", tmp_path / "remote", "--json", "-k", "3"])
    assert code == 0, err
    monkeypatch.delenv("M3_ENCODER_URL")
    code, local_out, err = _run_cli(["search", query, "--db", tmp_path / "local", "--json", "-k", "3"])
    assert code == 0, err
    got, want = json.loads(out), json.loads(local_out)
    assert [h["text"] for h in got] == [h["text"] for h in want] and got[0]["source"].endswith("espresso.md")
    assert [h["score"] for h in got] == pytest.approx([h["score"] for h in want], abs=1e-5)
    code, out, err = _run_cli(["encode", "hybrid search", "--json", "--encoder-url", service.url])
    assert code == 0, err
    np.testing.assert_allclose(json.loads(out)[0]["dense"], RemoteEncoder(service.url).encode(
        ["hybrid search"]).dense[0], atol=1e-6)


def test_cli_encoder_url_errors_are_one_line(service, tmp_path, monkeypatch):
    monkeypatch.setenv("M3_ENCODER_API_KEY", "wrong-key")
    corpus = _corpus(tmp_path / "docs")
    code, out, err = _run_cli(["index", corpus, "--db", tmp_path / "db", "--encoder-url", service.url.replace(
        "127.0.0.1", "localhost") + "/"])
    assert code == 1 and "invalid API key" in err and "wrong-key" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "db").exists()  # nothing stored
    monkeypatch.setenv("M3_ENCODER_API_KEY", KEY)
    code, out, err = _run_cli(["index", corpus, "--db", tmp_path / "db", "--encoder-url", service.url,
                               "--model", "BAAI/bge-m3"])
    assert code == 1 and "serves model" in err and "not 'BAAI/bge-m3'" in err


def test_m3_serve_command(tiny_model_dir, encoder):
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MY_SERVE_KEY": "cli-key-123"}
    proc = subprocess.Popen([sys.executable, "-m", "m3_integrations.cli", "serve", "--model", str(tiny_model_dir),
                             "--device", "cpu", "--port", str(port), "--api-key-env", "MY_SERVE_KEY",
                             "--max-batch-tokens", "4096", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        remote = RemoteEncoder(url, api_key="cli-key-123")
        assert remote.info["max_batch_tokens"] == 4096 and remote.info["auth"] is True
        assert_same(remote.encode(TEXTS), encoder.encode(TEXTS))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) in (0, -signal.SIGTERM)
        err = proc.stderr.read()
        assert f"on http://127.0.0.1:{port} with an API key" in err and "cli-key-123" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
    missing = subprocess.run([sys.executable, "-m", "m3_integrations.cli", "serve", "--api-key-env", "NOPE_UNSET"],
                             capture_output=True, text=True, env={**env, "NOPE_UNSET": ""}, timeout=120)
    assert missing.returncode == 1 and "NOPE_UNSET is not set" in missing.stderr
