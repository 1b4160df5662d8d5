"""API keys reach the server and appear nowhere in the output.

The Qdrant server is a small real HTTP server on 127.0.0.1 that records each request's headers and answers
like a Qdrant server without collections (a real secured Qdrant cannot run here). The CLI talks to it through
the real qdrant-client.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from m3_integrations.cli import main
from m3_integrations.cli._common import redact, resolve_secret

SECRET = "s3cr3t-KEY-0123456789"


def run(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def fake_qdrant():
    """A Qdrant-like HTTP server with no collections; yields (url, list of (method, path, headers))."""
    seen: list[tuple[str, str, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            path = self.path.split("?")[0]
            if path == "/collections":
                status, body = 200, {"result": {"collections": []}, "status": "ok", "time": 0.0}
            elif path.endswith("/exists"):
                status, body = 200, {"result": {"exists": False}, "status": "ok", "time": 0.0}
            else:
                status, body = 404, {"status": {"error": "Not found: Collection `docs` doesn't exist!"}, "time": 0.0}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_api_key_reaches_qdrant_and_is_never_printed(how, fake_qdrant, tmp_path, monkeypatch):
    url, seen = fake_qdrant
    monkeypatch.delenv("QDRANT_API_KEY", raising=False)
    key = ["--api-key", SECRET] if how == "option" else []
    if how == "environment":
        monkeypatch.setenv("QDRANT_API_KEY", SECRET)
    code, out, err = run(["search", "hello", "--store", "qdrant", "--url", url, "--db", tmp_path / "none", *key])
    assert code == 1 and "'docs'" in err and "empty or missing" in err
    assert seen and all(headers.get("api-key") == SECRET for _, _, headers in seen)
    assert SECRET not in out + err

    seen.clear()
    code, out, err = run(["info", "--store", "qdrant", "--url", url, "--db", tmp_path / "none", "--json", *key])
    assert code == 0, err
    assert seen and all(headers.get("api-key") == SECRET for _, _, headers in seen)
    assert SECRET not in out + err
    assert json.loads(out)["location"] == url
    assert not (tmp_path / "none").exists()  # nothing written, so no key on disk either


def test_index_against_a_secured_server_keeps_the_key_out_of_the_config(fake_qdrant, tmp_path, tiny_model_dir):
    url, seen = fake_qdrant
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.txt").write_text("Tides follow the moon.", encoding="utf-8")
    db = tmp_path / "db"
    code, out, err = run(["index", folder, "--store", "qdrant", "--url", url, "--api-key", SECRET, "--db", db,
                          "--model", tiny_model_dir, "--no-progress"])
    # the fake server cannot create collections: the run fails, with the key in no message and on no disk
    assert code == 1
    assert seen and all(headers.get("api-key") == SECRET for _, _, headers in seen)
    assert SECRET not in out + err
    for file in db.rglob("*") if db.exists() else []:
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes()


@pytest.mark.parametrize("argv", [
    ["search", "x", "--api-kye", SECRET],  # a mistyped option: argparse would print the value after it
    ["search", "x", f"--api-kye={SECRET}"],
    ["index", "folder", "--apikey", SECRET, "--url", "http://127.0.0.1:9"],
])
def test_usage_errors_do_not_echo_values(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err
    assert "--api" in captured.err and "values not shown" in captured.err


def test_milvus_token_from_the_environment(monkeypatch):
    args = argparse.Namespace(api_key=None)
    for name in ("MILVUS_TOKEN", "MILVUS_USER", "MILVUS_PASSWORD", "QDRANT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_secret(args, "milvus", "http://h:19530") is None
    monkeypatch.setenv("MILVUS_USER", "root")
    monkeypatch.setenv("MILVUS_PASSWORD", "pw-" + SECRET)
    assert resolve_secret(args, "milvus", "http://h:19530") == f"root:pw-{SECRET}"
    assert SECRET not in redact(f"failed with root:pw-{SECRET} and pw-{SECRET}")
    monkeypatch.setenv("MILVUS_TOKEN", "tok-" + SECRET)
    assert resolve_secret(args, "milvus", "http://h:19530") == f"tok-{SECRET}"
    assert resolve_secret(args, "milvus", None) is None  # milvus-lite: no token
    assert resolve_secret(argparse.Namespace(api_key="explicit-key"), "qdrant", "http://h:6333") == "explicit-key"
