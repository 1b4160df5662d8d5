"""The HTTP routes: OpenAI-compatible, TEI-compatible and the BGE-M3 ``/encode`` API over one batcher."""

from __future__ import annotations

import base64
import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from .. import __version__
from .auth import BearerAuth
from .batcher import DynamicBatcher, ServiceClosedError
from .metrics import CONTENT_TYPE, ServiceMetrics
from .schemas import EmbeddingsRequest, EmbedRequest, EmbedSparseRequest, EncodeRequest, TokenizeRequest

logger = logging.getLogger(__name__)

try:  # orjson writes numpy arrays directly and is several times faster than json on float lists
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
except ImportError:  # pragma: no cover - orjson is present wherever pymilvus or langsmith is
    orjson = None

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, default=lambda v: v.tolist(), separators=(",", ":")).encode()


@dataclass
class ServeSettings:
    """Limits and batching of the service.

    Attributes:
        max_batch_tokens: tokens merged into one encoder call by the batcher (``None``: the encoder's
            ``max_batch_tokens``).
        max_wait_ms: the longest an idle batcher waits for more requests to join a call.
        max_texts_per_request: texts in one request (OpenAI's limit is 2048).
        max_request_tokens: tokens in one request, after truncation.
        max_body_bytes: size of a request body.
        api_key: the Bearer key every route but ``/health`` asks for (``None``: no key).
    """

    max_batch_tokens: int | None = None
    max_wait_ms: float = 2.0
    max_texts_per_request: int = 2048
    max_request_tokens: int = 1 << 20
    max_body_bytes: int = 16 << 20
    api_key: str | None = None

    def limits(self) -> dict[str, int]:
        return {"max_texts_per_request": self.max_texts_per_request, "max_request_tokens": self.max_request_tokens,
                "max_body_bytes": self.max_body_bytes}


class ServiceError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code


def _error_body(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                code: str | None = None) -> bytes:
    return _dumps({"error": {"message": message, "type": kind, "param": param, "code": code or str(status)}})


class _JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else _dumps(content)


@dataclass
class _State:
    encoder: Any
    settings: ServeSettings
    batcher: DynamicBatcher
    metrics: ServiceMetrics
    auth: BearerAuth
    draining: bool = False


_OPEN_PATHS = frozenset({"/health"})
_ROUTES = frozenset({"/health", "/info", "/metrics", "/tokenizer.json", "/v1/embeddings", "/v1/models", "/encode",
                     "/embed", "/embed_sparse", "/tokenize", "/docs", "/openapi.json"})


class _Gate:
    """ASGI middleware in front of every route: shutdown (503), API key (401), body size (413), metrics.

    Runs before the body is read, so a refused request costs no parsing.
    """

    def __init__(self, app, state: _State) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in _ROUTES else "other"
        metrics = self.state.metrics
        started = time.perf_counter()
        status_box = [500]

        async def send_recording(message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        metrics.in_flight.inc(1)
        try:
            refusal = self._refuse(scope, path)
            if refusal is None and scope["method"] in ("POST", "PUT"):
                body = await self._read_body(scope, receive)
                if isinstance(body, tuple):
                    refusal = body
                else:
                    receive = _replay(body)
            if refusal is not None:
                status, message, headers = refusal
                await _send_error(send_recording, status, message, headers)
            else:
                await self.app(scope, receive, send_recording)
        finally:
            metrics.in_flight.inc(-1)
            metrics.requests.inc(1, endpoint, str(status_box[0]))
            metrics.request_seconds.observe(time.perf_counter() - started)

    def _refuse(self, scope, path: str) -> tuple[int, str, list] | None:
        if self.state.draining:
            return 503, "the encoder service is shutting down; retry on another instance", [
                (b"retry-after", b"1"), (b"connection", b"close")]
        if path in _OPEN_PATHS:
            return None
        headers = dict(scope["headers"])
        reason = self.state.auth.check(headers.get(b"authorization", b"").decode("latin-1") or None)
        if reason is not None:
            return 401, reason, [(b"www-authenticate", b"Bearer")]
        return None

    async def _read_body(self, scope, receive) -> bytes | tuple[int, str, list]:
        limit = self.state.settings.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = (413, f"request body over max_body_bytes={limit}: split the texts over several requests", [])
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_big
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return too_big
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _send_error(send, status: int, message: str, headers: list) -> None:
    kind = {401: "authentication_error", 413: "request_too_large", 503: "service_unavailable"}.get(
        status, "invalid_request_error")
    body = _error_body(status, message, kind)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    messages = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", "")
            return 400, f"malformed JSON body: {detail}".rstrip(": ")
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if err.get("type") == "missing" and not loc:
            return 400, "malformed JSON body: the request has no body (send a JSON object)"
        if err.get("type") == "missing":
            messages.append(f"{'.'.join(loc)} is required")
            continue
        if err.get("type") == "model_attributes_type":
            return 422, "the body must be a JSON object"
        where = ".".join(loc)
        messages.append(msg if msg.startswith(where) or not where else f"{where}: {msg}")
    return 422, "; ".join(messages) or "invalid request"


def create_app(encoder: Any, settings: ServeSettings | None = None) -> FastAPI:
    """The FastAPI application serving ``encoder`` (an ``M3Encoder``).

    Routes: ``POST /v1/embeddings`` (OpenAI), ``POST /encode`` (dense, sparse and ColBERT in one pass),
    ``POST /embed`` and ``POST /embed_sparse`` (text-embeddings-inference), ``POST /tokenize``,
    ``GET /health``, ``GET /info``, ``GET /metrics`` (Prometheus) and ``GET /tokenizer.json`` (what
    ``RemoteEncoder`` tokenizes with, locally). Start it with ``m3 serve`` or :class:`M3Server`.
    """
    settings = settings or ServeSettings()
    for name in ("max_texts_per_request", "max_request_tokens", "max_body_bytes"):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be positive, got {getattr(settings, name)}")
    metrics = ServiceMetrics()
    batcher = DynamicBatcher(encoder, max_batch_tokens=settings.max_batch_tokens or encoder.max_batch_tokens,
                             max_wait_ms=settings.max_wait_ms, metrics=metrics)
    state = _State(encoder, settings, batcher, metrics, BearerAuth(settings.api_key))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        try:
            yield
        finally:
            state.draining = True
            await batcher.stop()  # whatever is queued is encoded and answered first

    app = FastAPI(title="m3 encoder service", version=__version__, lifespan=lifespan, default_response_class=_JSON)
    app.state.m3 = state
    app.add_middleware(_Gate, state=state)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> Response:
        return Response(_error_body(exc.status, exc.message, exc.kind, exc.param, exc.code), exc.status,
                        media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        status, message = _validation_message(exc)
        return Response(_error_body(status, message), status, media_type="application/json")

    dim = encoder.dim

    def _check_limits(texts: list[str], max_length: int, *, field: str, truncate: bool = True) -> int:
        """Tokens of the request after truncation, or a 413 naming the limit it is over."""
        if len(texts) > settings.max_texts_per_request:
            raise ServiceError(413, f"{len(texts)} texts in one request, over max_texts_per_request="
                                    f"{settings.max_texts_per_request}: split them over several requests",
                               kind="request_too_large", param=field)
        counts = encoder.count_tokens(texts)
        if not truncate:
            for i, n in enumerate(counts):
                if n > max_length:
                    raise ServiceError(413, f"{field}[{i}] has {n} tokens, over max_input_length={max_length}: "
                                            "send truncate=true to cut it", kind="request_too_large", param=field)
        tokens = sum(min(n, max_length) for n in counts)
        if tokens > settings.max_request_tokens:
            raise ServiceError(413, f"{tokens} tokens in one request, over max_request_tokens="
                                    f"{settings.max_request_tokens}: split the texts over several requests",
                               kind="request_too_large", param=field)
        return tokens

    async def _encode(texts: list[str], max_length: int, tokens: int, **want: bool):
        try:
            return await batcher.submit(texts, max_length=max_length, tokens=tokens, **want)
        except ServiceClosedError as exc:
            raise ServiceError(503, str(exc), kind="service_unavailable") from None
        except Exception as exc:  # the model failed on this batch: say so, keep serving
            logger.exception("encoding failed")
            raise ServiceError(500, f"encoding failed: {type(exc).__name__}: {exc}", kind="server_error") from None

    def _check_dimensions(dimensions: int | None) -> None:
        if dimensions is not None and dimensions != dim:
            raise ServiceError(422, f"dimensions={dimensions} is not available: this model gives {dim}",
                               param="dimensions")

    def _b64(array: np.ndarray, dtype: str = "<f4") -> str:
        return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")

    @app.get("/health")
    async def health() -> Response:
        """200 while serving (503 while shutting down, from the gate)."""
        return _JSON({"status": "ok"})

    @app.get("/info")
    async def info() -> Response:
        """Model, dimension, device, dtype, outputs, truncation lengths and limits."""
        return _JSON({
            "model": encoder.model_name, "dim": dim, "device": str(encoder.device),
            "dtype": str(encoder.dtype).replace("torch.", ""), "version": __version__,
            "outputs": _available_outputs(encoder), "max_length": encoder.max_length,
            "query_max_length": encoder.query_max_length, "document_max_length": encoder.document_max_length,
            "max_batch_tokens": batcher.max_batch_tokens, "max_wait_ms": settings.max_wait_ms,
            "limits": settings.limits(), "auth": state.auth.enabled,
        })

    @app.get("/metrics")
    async def metrics_text() -> Response:
        """Prometheus text format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/tokenizer.json")
    async def tokenizer_json() -> Response:
        """The tokenizer (``tokenizers`` JSON, no truncation or padding) the service encodes with."""
        return Response(encoder.tokenizer.backend_tokenizer.to_str(), media_type="application/json")

    @app.get("/v1/models")
    async def models() -> Response:
        """OpenAI's model list: the one model served."""
        return _JSON({"object": "list", "data": [{"id": encoder.model_name, "object": "model", "owned_by": "m3"}]})

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingsRequest) -> Response:
        """OpenAI-compatible dense embeddings (``encoding_format``: float or base64 little-endian float32)."""
        _check_dimensions(body.dimensions)
        max_length = encoder.document_max_length
        tokens = _check_limits(body.input, max_length, field="input")
        out = await _encode(body.input, max_length, tokens, dense=True, sparse=False, colbert=False)
        as_b64 = body.encoding_format == "base64"
        data = [{"object": "embedding", "index": i, "embedding": _b64(row) if as_b64 else row}
                for i, row in enumerate(out.dense)]
        return _JSON({"object": "list", "data": data, "model": body.model or encoder.model_name,
                      "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.post("/encode")
    async def encode(body: EncodeRequest) -> Response:
        """Dense, sparse and ColBERT outputs of one forward pass (see ``EncodeRequest``)."""
        want = set(body.outputs)
        missing = [o for o in want if o not in _available_outputs(encoder)]
        if missing:
            raise ServiceError(422, f"this model has no {missing[0]} head: ask for outputs in "
                                    f"{_available_outputs(encoder)}", param="outputs")
        limit = encoder.max_length
        if body.max_length is not None and body.max_length > limit:
            raise ServiceError(422, f"max_length={body.max_length} is over the model's limit of {limit} tokens",
                               param="max_length")
        default = encoder.query_max_length if body.kind == "query" else encoder.document_max_length
        max_length = body.max_length or default
        tokens = _check_limits(body.input, max_length, field="input")
        out = await _encode(body.input, max_length, tokens, dense="dense" in want, sparse="sparse" in want,
                            colbert="colbert" in want)
        dense_b64 = body.encoding_format == "base64"
        colbert_b64 = body.colbert_format == "base64"
        colbert_dtype = "<f2" if body.colbert_dtype == "float16" else "<f4"
        data = []
        for i in range(len(body.input)):
            row: dict[str, Any] = {"index": i}
            if out.dense is not None:
                row["dense"] = _b64(out.dense[i]) if dense_b64 else out.dense[i]
            if out.sparse is not None:
                weights = out.sparse[i]
                indices = sorted(weights)
                row["sparse"] = {"indices": indices, "values": [weights[t] for t in indices]}
            if out.colbert is not None:
                matrix = out.colbert[i]
                row["colbert"] = ({"shape": list(matrix.shape), "dtype": body.colbert_dtype,
                                   "data": _b64(matrix, colbert_dtype)} if colbert_b64 else matrix)
            data.append(row)
        return _JSON({"object": "list", "model": encoder.model_name, "kind": body.kind, "max_length": max_length,
                      "dim": dim, "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    @app.post("/embed")
    async def embed(body: EmbedRequest) -> Response:
        """text-embeddings-inference ``/embed``: L2-normalized dense vectors as a list of lists."""
        if not body.normalize:
            raise ServiceError(422, "normalize=false is not available: BGE-M3's dense vectors are served "
                                    "L2-normalized", param="normalize")
        _check_dimensions(body.dimensions)
        max_length = encoder.document_max_length
        tokens = _check_limits(body.inputs, max_length, field="inputs", truncate=body.truncate)
        out = await _encode(body.inputs, max_length, tokens, dense=True, sparse=False, colbert=False)
        return _JSON(out.dense)

    @app.post("/embed_sparse")
    async def embed_sparse(body: EmbedSparseRequest) -> Response:
        """text-embeddings-inference ``/embed_sparse``: ``[{"index", "value"}]`` per text (BGE-M3's lexical weights)."""
        if "sparse" not in _available_outputs(encoder):
            raise ServiceError(422, "this model has no sparse head", param="inputs")
        max_length = encoder.document_max_length
        tokens = _check_limits(body.inputs, max_length, field="inputs", truncate=body.truncate)
        out = await _encode(body.inputs, max_length, tokens, dense=False, sparse=True, colbert=False)
        return _JSON([[{"index": t, "value": w[t]} for t in sorted(w)] for w in out.sparse])

    @app.post("/tokenize")
    async def tokenize(body: TokenizeRequest) -> Response:
        """text-embeddings-inference ``/tokenize``: ids, pieces, special flags and character offsets."""
        if len(body.inputs) > settings.max_texts_per_request:
            raise ServiceError(413, f"{len(body.inputs)} texts in one request, over max_texts_per_request="
                                    f"{settings.max_texts_per_request}", kind="request_too_large", param="inputs")
        backend = encoder.tokenizer.backend_tokenizer
        encodings = backend.encode_batch(body.inputs, add_special_tokens=body.add_special_tokens)
        return _JSON([[{"id": i, "text": tok, "special": bool(s), "start": a, "stop": b}
                       for i, tok, s, (a, b) in zip(e.ids, e.tokens, e.special_tokens_mask, e.offsets, strict=True)]
                      for e in encodings])

    return app


def _available_outputs(encoder: Any) -> list[str]:
    outputs = ["dense"]
    if getattr(encoder, "_sparse_head", True) is not None:
        outputs.append("sparse")
    if getattr(encoder, "_colbert_head", True) is not None:
        outputs.append("colbert")
    return outputs


def begin_drain(app: FastAPI) -> None:
    """From now on new requests get 503 (in-flight ones finish); called on SIGTERM / SIGINT."""
    app.state.m3.draining = True


def settings_of(app: FastAPI) -> dict[str, Any]:
    """The settings an app was built with (for logs and tests)."""
    return asdict(app.state.m3.settings) | {"api_key": "***" if app.state.m3.settings.api_key else None}
