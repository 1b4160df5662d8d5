"""``m3 serve``: the encoder as an HTTP service (all three outputs from one call; OpenAI / TEI routes)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ._common import CLIError, add_secret, load_encoder, normalise_model, note, positive

DEFAULT_KEY_ENV = "M3_ENCODER_API_KEY"


def _api_key(args: argparse.Namespace) -> str | None:
    """The Bearer key from the environment variable ``--api-key-env`` names (never from the command line,
    where other users of the machine could read it)."""
    name = args.api_key_env or DEFAULT_KEY_ENV
    key = os.environ.get(name) or None
    if key is None and args.api_key_env:
        raise CLIError(f"--api-key-env {name}: the environment variable {name} is not set (or empty)")
    if key is not None:
        add_secret(key)
    return key


def run(args: argparse.Namespace) -> int:
    """``m3 serve``: load the model and serve it until SIGINT / SIGTERM (in-flight requests are answered)."""
    try:
        from ..serve import M3Server, ServeSettings, create_app, is_loopback
    except ImportError as exc:
        raise CLIError(f"m3 serve needs FastAPI and uvicorn ({exc}): pip install 'm3-integrations[serve]'") from None
    key = _api_key(args)
    if args.max_batch_tokens is not None and args.max_batch_tokens < 16:
        raise CLIError(f"--max-batch-tokens must be at least 16, got {args.max_batch_tokens}")
    encoder = load_encoder(normalise_model(args.model) if args.model else None, args.device, args.dtype)
    if args.max_batch_tokens:
        encoder.max_batch_tokens = args.max_batch_tokens
    settings = ServeSettings(max_batch_tokens=args.max_batch_tokens, max_wait_ms=args.max_wait_ms,
                             max_texts_per_request=args.max_texts_per_request,
                             max_request_tokens=args.max_request_tokens, max_body_bytes=args.max_body_bytes,
                             api_key=key)
    app = create_app(encoder, settings)
    server = M3Server(app, host=args.host, port=args.port, log_level=args.log_level,
                      graceful_timeout=args.graceful_timeout, warn_without_key=False)
    if not is_loopback(args.host) and key is None:  # (M3Server logs the same warning for library users)
        note(f"serving on {args.host} without an API key: anyone who can reach port {args.port} can use it "
             f"(set {args.api_key_env or DEFAULT_KEY_ENV})")
    note(f"serving {encoder.model_name} ({encoder.device}, {str(encoder.dtype).replace('torch.', '')}, dim "
         f"{encoder.dim}) on http://{args.host}:{args.port}{' with an API key' if key else ''}")
    server.run()
    return 0


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``m3 serve`` (it takes the model options, not the index ones)."""
    p = sub.add_parser("serve", help="serve the encoder over HTTP (/encode, /v1/embeddings, /embed, /embed_sparse)",
                       description="Serve BGE-M3 over HTTP: POST /encode (dense, sparse and ColBERT from one call), "
                                   "/v1/embeddings (OpenAI), /embed and /embed_sparse (text-embeddings-inference), "
                                   "/tokenize; GET /health, /info, /metrics. Requests that arrive together are "
                                   "encoded in one batch. SIGTERM: new requests get 503, in-flight ones finish.")
    p.add_argument("--model", default=None, help="hub id or local directory of a BGE-M3 model (default: BAAI/bge-m3)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=("float32", "float16", "bfloat16"),
                   help="model dtype (default: bfloat16/float16 on GPU, float32 on CPU)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    p.add_argument("--max-batch-tokens", type=positive, default=None, metavar="N",
                   help="tokens encoded together, across requests (default: the encoder's max_batch_tokens, "
                        "2048 on CPU, 32768 on GPU)")
    p.add_argument("--max-wait-ms", type=float, default=2.0, metavar="MS",
                   help="longest an idle batcher waits for more requests (default: 2)")
    p.add_argument("--api-key-env", default=None, metavar="VAR",
                   help=f"environment variable holding the Bearer key every route but /health asks for "
                        f"(default: {DEFAULT_KEY_ENV}, when set; no key otherwise)")
    p.add_argument("--max-texts-per-request", type=positive, default=2048, metavar="N")
    p.add_argument("--max-request-tokens", type=positive, default=1 << 20, metavar="N")
    p.add_argument("--max-body-bytes", type=positive, default=16 << 20, metavar="N")
    p.add_argument("--graceful-timeout", type=float, default=30.0, metavar="S",
                   help="longest wait for in-flight requests on shutdown (default: 30)")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=run)
