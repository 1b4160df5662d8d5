"""The encoder service (m3_integrations.serve): a real uvicorn server on 127.0.0.1 over the tiny model.

Parity of /encode, /v1/embeddings, /embed and /embed_sparse with the in-process encoder; bad requests get a
4xx naming the problem and the service keeps serving; batching across requests; metrics; graceful shutdown.
The OpenAI client package is not installed here, so the OpenAI request is sent with httpx in exactly the
shape the ``openai`` package sends (body fields, Bearer header, base64 default).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from m3_integrations.serve import DynamicBatcher, M3Server, ServeSettings, begin_drain, create_app
from m3_integrations.serve.batcher import _Job

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXTS = ["BGE-M3 gives dense, sparse and multi-vector outputs.", "The quick brown fox jumps over the lazy dog.",
         "Быстрая коричневая лиса прыгает через ленивую собаку у реки.", "", "混合检索结合了词汇匹配和语义相似度。"]
LIMITS = dict(max_texts_per_request=16, max_request_tokens=2000, max_body_bytes=20_000)


@pytest.fixture(scope="module")
def service(encoder):
    # a 50 ms batching window (default 2 ms) so that requests sent together on a loaded machine still meet
    settings = ServeSettings(api_key=KEY, max_wait_ms=50, **LIMITS)
    server = M3Server(create_app(encoder, settings), port=0, log_level="warning")
    with server:
        yield server


@pytest.fixture
def client(service):
    with httpx.Client(base_url=service.url, headers=AUTH, timeout=60) as c:
        yield c


def _f32(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4")


def test_listens_on_loopback_by_default(service):
    assert service.host == "127.0.0.1" and service.port > 0
    assert M3Server.__init__.__defaults__[0] == "127.0.0.1"


def test_health_is_open_everything_else_needs_the_key(service, client, encoder):
    assert httpx.get(service.url + "/health").json() == {"status": "ok"}
    for path in ("/info", "/metrics"):
        r = httpx.get(service.url + path)
        assert r.status_code == 401 and "missing API key" in r.json()["error"]["message"]
    info = client.get("/info").json()
    assert info["dim"] == encoder.dim and info["device"] == "cpu" and info["dtype"] == "float32"
    assert info["outputs"] == ["dense", "sparse", "colbert"] and info["limits"] == LIMITS
    assert info["query_max_length"] == encoder.query_max_length and info["auth"] is True


def test_encode_parity_all_three_outputs(client, encoder):
    ref = encoder.encode_documents(TEXTS)
    data = client.post("/encode", json={"input": TEXTS, "colbert_format": "float"}).json()["data"]
    b64 = client.post("/encode", json={"input": TEXTS, "encoding_format": "base64", "colbert_dtype": "float32"}
                      ).json()["data"]
    f16 = client.post("/encode", json={"input": TEXTS}).json()["data"]
    for i, (row, row64, row16) in enumerate(zip(data, b64, f16, strict=True)):
        assert row["index"] == i
        np.testing.assert_allclose(row["dense"], ref.dense[i], atol=1e-6)
        np.testing.assert_array_equal(_f32(row64["dense"]), ref.dense[i])
        assert dict(zip(row["sparse"]["indices"], row["sparse"]["values"], strict=True)) == ref.sparse[i]
        assert row["sparse"]["indices"] == sorted(ref.sparse[i])
        np.testing.assert_allclose(np.array(row["colbert"]), ref.colbert[i], atol=1e-6)
        c32 = row64["colbert"]
        assert c32["dtype"] == "float32" and c32["shape"] == list(ref.colbert[i].shape)
        np.testing.assert_array_equal(_f32(c32["data"]).reshape(c32["shape"]), ref.colbert[i])
        c16 = row16["colbert"]  # the default: float16 with its shape
        assert c16["dtype"] == "float16" and c16["shape"] == list(ref.colbert[i].shape)
        half = np.frombuffer(base64.b64decode(c16["data"]), dtype="<f2").reshape(c16["shape"])
        np.testing.assert_allclose(half, ref.colbert[i], atol=1e-3)


def test_encode_kind_outputs_and_max_length(client, encoder):
    long_text = " ".join(["hybrid retrieval"] * 100)  # over the query length (512), under the document length
    assert encoder.count_tokens([long_text])[0] > encoder.query_max_length
    q = client.post("/encode", json={"input": long_text, "kind": "query", "outputs": ["colbert", "dense"],
                                     "colbert_format": "float"}).json()
    ref = encoder.encode_queries([long_text])
    row = q["data"][0]
    assert q["kind"] == "query" and q["max_length"] == encoder.query_max_length and "sparse" not in row
    assert np.array(row["colbert"]).shape == ref.colbert[0].shape == (encoder.query_max_length - 1, encoder.dim)
    np.testing.assert_allclose(row["dense"], ref.dense[0], atol=1e-6)
    doc = client.post("/encode", json={"input": [long_text], "outputs": ["sparse"]}).json()
    assert list(doc["data"][0]) == ["index", "sparse"]
    assert doc["usage"]["prompt_tokens"] == encoder.count_tokens([long_text])[0]
    short = client.post("/encode", json={"input": [long_text], "max_length": 16, "colbert_format": "float"}).json()
    assert np.array(short["data"][0]["colbert"]).shape == (15, encoder.dim)


def test_openai_embeddings_request_shape(service, encoder):
    """The request the ``openai`` package's ``client.embeddings.create`` sends (base64 is its default)."""
    ref = encoder.encode_documents(TEXTS)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", "User-Agent": "OpenAI/Python",
               "Accept": "application/json"}
    for fmt in ("base64", "float"):
        body = {"input": TEXTS, "model": "BAAI/bge-m3", "encoding_format": fmt}
        r = httpx.post(service.url + "/v1/embeddings", content=json.dumps(body), headers=headers)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["object"] == "list" and out["model"] == "BAAI/bge-m3"
        assert out["usage"] == {"prompt_tokens": sum(encoder.count_tokens(TEXTS)),
                                "total_tokens": sum(encoder.count_tokens(TEXTS))}
        assert [d["index"] for d in out["data"]] == list(range(len(TEXTS)))
        for d in out["data"]:
            assert d["object"] == "embedding"
            vec = _f32(d["embedding"]) if fmt == "base64" else np.array(d["embedding"])
            np.testing.assert_allclose(vec, ref.dense[d["index"]], atol=1e-6)
    one = httpx.post(service.url + "/v1/embeddings", json={"input": "one text", "model": "m"}, headers=headers).json()
    np.testing.assert_allclose(one["data"][0]["embedding"], encoder.encode(["one text"]).dense[0], atol=1e-6)


def test_tei_embed_and_embed_sparse(client, encoder):
    ref = encoder.encode_documents(TEXTS)
    dense = client.post("/embed", json={"inputs": TEXTS}).json()
    np.testing.assert_allclose(np.array(dense), ref.dense, atol=1e-6)
    sparse = client.post("/embed_sparse", json={"inputs": TEXTS}).json()
    for got, want in zip(sparse, ref.sparse, strict=True):
        assert {e["index"]: e["value"] for e in got} == want
        assert [e["index"] for e in got] == sorted(want)
    one = client.post("/embed_sparse", json={"inputs": "hybrid search"}).json()
    assert {e["index"]: e["value"] for e in one[0]} == encoder.encode(["hybrid search"]).sparse[0]


def test_tokenize(client, encoder):
    text = "The quick brown fox"
    tokens = client.post("/tokenize", json={"inputs": [text]}).json()[0]
    assert [t["id"] for t in tokens] == encoder.tokenize([text])[0]
    assert tokens[0]["special"] and tokens[-1]["special"] and not any(t["special"] for t in tokens[1:-1])
    reference = encoder.tokenizer.backend_tokenizer.encode(text)
    assert [(t["start"], t["stop"]) for t in tokens] == reference.offsets
    assert [t["text"] for t in tokens] == reference.tokens and tokens[-1]["stop"] <= len(text)
    bare = client.post("/tokenize", json={"inputs": text, "add_special_tokens": False}).json()[0]
    assert [t["id"] for t in bare] == encoder.tokenize([text])[0][1:-1]


BAD = [
    ("/encode", {"input": []}, 422, "input is empty"),
    ("/encode", {"input": None}, 422, "input is null"),
    ("/encode", {}, 422, "input is required"),
    ("/encode", {"input": ["ok", 3]}, 422, "input[1] is a number, expected a string"),
    ("/encode", {"input": ["ok", None]}, 422, "input[1] is null, expected a string"),
    ("/encode", {"input": ["ok", {"a": 1}]}, 422, "input[1] is an object"),
    ("/encode", {"input": "x", "outputs": ["dense", "bm25"]}, 422, "outputs.1"),
    ("/encode", {"input": "x", "outputs": []}, 422, "outputs"),
    ("/encode", {"input": "x", "max_length": 100_000}, 422, "max_length=100000 is over the model's limit"),
    ("/encode", {"input": "x", "kind": "passage"}, 422, "kind"),
    ("/encode", {"input": "x", "colour": 1}, 422, "colour"),
    ("/encode", {"input": ["t"] * 17}, 413, "max_texts_per_request=16"),
    ("/encode", {"input": ["hybrid search " * 60] * 15}, 413, "max_request_tokens=2000"),
    ("/encode", {"input": ["x" * 25_000]}, 413, "max_body_bytes=20000"),
    ("/v1/embeddings", {"input": [1, 2, 3], "model": "m"}, 422, "token ids"),
    ("/v1/embeddings", {"input": "x", "dimensions": 8}, 422, "dimensions=8"),
    ("/v1/embeddings", {"input": ""}, 200, ""),  # an empty string is a text, as for the local encoder
    ("/embed", {"inputs": "x", "normalize": False}, 422, "normalize=false"),
    ("/embed_sparse", {"inputs": [True]}, 422, "inputs[0] is a boolean"),
    ("/tokenize", {"inputs": []}, 422, "inputs is empty"),
]


@pytest.mark.parametrize("path, body, status, message", BAD, ids=[f"{p}-{m or s}" for p, _, s, m in BAD])
def test_bad_requests_get_a_clear_4xx_and_the_service_keeps_serving(client, encoder, path, body, status, message):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    if status >= 400:
        assert message in r.json()["error"]["message"]
    ok = client.post("/encode", json={"input": ["still serving"], "outputs": ["dense"], "encoding_format": "base64"})
    np.testing.assert_array_equal(_f32(ok.json()["data"][0]["dense"]), encoder.encode(["still serving"]).dense[0])


@pytest.mark.parametrize("content, message", [
    (b'{"input": ["a", }', "malformed JSON body"),
    (b"", "malformed JSON body"),
    (b'["a", "b"]', "the body must be a JSON object"),
    (b'"a"', "the body must be a JSON object"),
])
def test_malformed_json(client, content, message):
    r = client.post("/encode", content=content, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500 and message in r.json()["error"]["message"], r.text
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("headers, message", [
    ({}, "missing API key"),
    ({"Authorization": "Bearer wrong-key"}, "invalid API key"),
    ({"Authorization": f"Bearer {KEY}x"}, "invalid API key"),
    ({"Authorization": KEY}, "malformed Authorization header"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "malformed Authorization header"),
])
def test_wrong_api_key(service, client, headers, message):
    r = httpx.post(service.url + "/encode", json={"input": "x"}, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["message"].startswith(message)
    assert r.headers["www-authenticate"] == "Bearer" and KEY not in r.text
    assert client.post("/encode", json={"input": "x"}).status_code == 200


def test_body_size_is_checked_without_content_length(service, client):
    def chunks():
        for _ in range(30):
            yield b" " * 1000
        yield b'{"input": "x"}'

    r = httpx.post(service.url + "/encode", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413 and "max_body_bytes=20000" in r.json()["error"]["message"]


async def test_concurrent_requests_are_batched_together_and_each_gets_its_rows(service, encoder):
    texts = [f"request {i}: " + "hybrid retrieval " * (i % 7 + 1) for i in range(24)]
    ref = encoder.encode_documents(texts)

    def batches(c: httpx.Client) -> float:
        line = next(x for x in c.get("/metrics").text.splitlines() if x.startswith("m3_batches_total "))
        return float(line.split()[1])

    with httpx.Client(base_url=service.url, headers=AUTH) as c:
        before = batches(c)
    async with httpx.AsyncClient(base_url=service.url, headers=AUTH, timeout=60) as ac:
        answers = await asyncio.gather(*[
            ac.post("/encode", json={"input": [t], "encoding_format": "base64", "colbert_dtype": "float32"})
            for t in texts])
    for i, r in enumerate(answers):
        row = r.json()["data"][0]
        # merged with other requests, the matrix products run on other shapes: equal within float32 rounding
        np.testing.assert_allclose(_f32(row["dense"]), ref.dense[i], atol=1e-6)
        sparse = dict(zip(row["sparse"]["indices"], row["sparse"]["values"], strict=True))
        assert sparse.keys() == ref.sparse[i].keys()
        np.testing.assert_allclose([sparse[t] for t in sparse], [ref.sparse[i][t] for t in sparse], atol=1e-6)
        np.testing.assert_allclose(_f32(row["colbert"]["data"]).reshape(row["colbert"]["shape"]), ref.colbert[i],
                                   atol=1e-6)
    with httpx.Client(base_url=service.url, headers=AUTH) as c:
        used = batches(c) - before
    assert 1 <= used < len(texts)  # requests that arrived together shared encoder calls


def test_batcher_takes_the_oldest_first_and_never_starves_it(encoder):
    batcher = DynamicBatcher(encoder, max_batch_tokens=100)
    loop = asyncio.new_event_loop()
    try:
        def job(tokens, max_length=512):
            return _Job(["t"], max_length, True, True, True, tokens, loop.create_future())

        old_big, q1, doc, q2, q3 = job(150), job(10), job(10, 8192), job(60), job(20)
        batcher._queue.extend([old_big, q1, doc, q2, q3])
        batcher._queued_tokens = 250
        assert batcher._take() == [old_big]  # over the budget on its own, still taken first
        assert batcher._take() == [q1, q2, q3]  # same truncation length, within the budget, in order
        assert batcher._take() == [doc]  # skipped once, first in line next time
        assert not batcher._queue and batcher._queued_tokens == 0
    finally:
        loop.close()


def test_metrics_are_prometheus_text(client):
    client.post("/encode", json={"input": ["metrics"]})
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = r.text.splitlines()
    types = {ln.split()[2]: ln.split()[3] for ln in lines if ln.startswith("# TYPE")}
    assert types["m3_requests_total"] == "counter" and types["m3_queue_wait_seconds"] == "histogram"
    for name in ("m3_batch_texts", "m3_batch_tokens", "m3_batch_requests", "m3_encode_seconds"):
        assert types[name] == "histogram"
    samples = {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in lines if not ln.startswith("#")}
    assert samples['m3_requests_total{endpoint="/encode",status="200"}'] >= 1
    assert samples["m3_tokens_total"] > 0 and samples["m3_texts_total"] > 0
    assert samples['m3_queue_wait_seconds_bucket{le="+Inf"}'] == samples["m3_queue_wait_seconds_count"] > 0
    buckets = [v for k, v in samples.items() if k.startswith("m3_batch_tokens_bucket")]
    assert buckets == sorted(buckets)  # cumulative


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_drain_finishes_in_flight_requests_and_refuses_new_ones(encoder):
    # the batcher waits up to 3 s for company, so the first request is still in flight when the drain starts
    app = create_app(encoder, ServeSettings(max_wait_ms=3000, max_batch_tokens=10**6))
    server = M3Server(app, port=0, log_level="warning").start()
    url, result = server.url, {}
    first = threading.Thread(target=lambda: result.update(r=httpx.post(url + "/encode", json={"input": ["in flight"]},
                                                                       timeout=30)))
    first.start()
    _wait_for(lambda: len(app.state.m3.batcher._queue) == 1)  # the request waits in the batcher
    begin_drain(server.app)  # what SIGTERM does first
    refused = httpx.post(url + "/encode", json={"input": ["too late"]}, timeout=30)
    assert refused.status_code == 503 and "shutting down" in refused.json()["error"]["message"]
    assert refused.headers["retry-after"] == "1"
    assert httpx.get(url + "/health").status_code == 503  # load balancers stop sending work
    server.stop()
    first.join(30)
    assert result["r"].status_code == 200
    np.testing.assert_allclose(result["r"].json()["data"][0]["dense"], encoder.encode(["in flight"]).dense[0],
                               atol=1e-6)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/health")


_SERVE_SCRIPT = """
import sys
from m3_integrations import M3Encoder
from m3_integrations.serve import M3Server, ServeSettings, create_app
app = create_app(M3Encoder(sys.argv[1], device="cpu"), ServeSettings(max_wait_ms=2000, max_batch_tokens=10**6))
server = M3Server(app, port=0, log_level="warning")
import threading, time
def announce():
    while not server._server.started:
        time.sleep(0.01)
    print(server.url, flush=True)
threading.Thread(target=announce, daemon=True).start()
server.run()
"""


def test_sigterm_lets_in_flight_requests_finish(tiny_model_dir, encoder):
    proc = subprocess.Popen([sys.executable, "-c", _SERVE_SCRIPT, str(tiny_model_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
        result = {}
        first = threading.Thread(target=lambda: result.update(
            r=httpx.post(url + "/encode", json={"input": ["in flight"]}, timeout=30)))
        first.start()

        def queued() -> bool:  # the request waits in the batcher (max_wait_ms=2000)
            text = httpx.get(url + "/metrics").text
            return any(line == "m3_queue_requests 1" for line in text.splitlines())

        _wait_for(queued)
        proc.send_signal(signal.SIGTERM)
        first.join(30)
        assert result["r"].status_code == 200
        np.testing.assert_allclose(result["r"].json()["data"][0]["dense"], encoder.encode(["in flight"]).dense[0],
                                   atol=1e-6)
        # uvicorn re-raises the signal once shut down, so the exit status says "terminated by SIGTERM"
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_settings_are_checked(encoder):
    with pytest.raises(ValueError, match="max_texts_per_request must be positive"):
        create_app(encoder, ServeSettings(max_texts_per_request=0))
    with pytest.raises(ValueError, match="API key is empty"):
        create_app(encoder, ServeSettings(api_key=" "))
    with pytest.raises(ValueError, match="max_wait_ms"):
        create_app(encoder, ServeSettings(max_wait_ms=-1))


def test_importing_the_package_needs_no_web_stack():
    code = "import sys, m3_integrations, m3_integrations.remote; print(sorted({'fastapi', 'uvicorn', 'starlette'} & " \
           "{m.split('.')[0] for m in sys.modules}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "[]", done.stderr[-2000:]
