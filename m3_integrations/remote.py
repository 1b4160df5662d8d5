"""``RemoteEncoder``: the encoder API over HTTP, served by ``m3 serve`` (``m3_integrations.serve``).

It has the methods and attributes the store adapters, the LangChain and LlamaIndex classes and the
CLI use on an ``M3Encoder`` (``encode``, ``encode_queries``, ``encode_documents``, their async
twins, ``dim``, ``tokenize``, ``count_tokens``, ``tokenizer``, the output cache, ``stats``), so it
goes wherever an ``M3Encoder`` goes. Outputs are the service's float32 values, unrounded (dense and
ColBERT travel as base64 float32). Needs ``httpx`` (the ``remote`` extra), imported on first use;
never torch or transformers (an application machine need not have them loaded to use the service).
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._text import check_texts
from .encoder._cache import OutputCache
from .encoder._variants import EncodeVariants
from .encoder.types import M3Output

ENV_URL = "M3_ENCODER_URL"
"""Environment variable the CLI reads the service URL from."""

ENV_API_KEY = "M3_ENCODER_API_KEY"
"""Environment variable ``RemoteEncoder`` reads the API key from when none is passed."""

_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class RemoteEncoderError(RuntimeError):
    """The service refused a request or could not be reached; ``status`` is the HTTP status (``None``: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RemoteStats:
    """What this client asked of the service (``forward_passes``: encode requests, as ``EncoderStats``)."""

    forward_passes: int = 0
    texts: int = 0
    tokens: int = 0


class RemoteTokenizer:
    """The service's tokenizer, run here: the part of a transformers tokenizer the package uses.

    Attributes:
        backend_tokenizer: a ``tokenizers.Tokenizer`` (no truncation, no padding), as
            ``M3Encoder.tokenizer.backend_tokenizer``.
    """

    def __init__(self, backend: Any) -> None:
        self.backend_tokenizer = backend

    def convert_ids_to_tokens(self, ids: int | list[int]) -> str | list[str]:
        """The piece of each token id."""
        if isinstance(ids, int):
            return self.backend_tokenizer.id_to_token(ids)
        return [self.backend_tokenizer.id_to_token(i) for i in ids]

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size()


class _TooLargeError(ValueError):
    """The service answered 413: the request is over one of its limits."""


class RemoteEncoder(EncodeVariants):
    """An encoder whose model runs in an ``m3 serve`` service.

    Args:
        url: the service, e.g. ``"http://encoder:8080"``.
        api_key: its Bearer key (default: the ``M3_ENCODER_API_KEY`` environment variable, if set).
        timeout: seconds to wait for one answer.
        retries: further attempts after a transient failure (connection refused or reset, timeout, 429,
            5xx), with exponential backoff (``backoff`` * 2^attempt, jittered, or the ``Retry-After`` the
            service sends). Other failures raise at once: bad input as ``ValueError`` / ``TypeError``,
            a wrong key as ``PermissionError``, anything else as ``RemoteEncoderError``.
        max_texts_per_request: texts per HTTP request (default: the service's limit, at most 256);
            longer lists are split and sent one after another.

    The service's settings (``dim``, ``model_name``, truncation lengths) are read once, here; an
    unreachable service fails now rather than at the first encode.
    """

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 120.0, retries: int = 4,
                 backoff: float = 0.25, max_texts_per_request: int | None = None) -> None:
        import httpx

        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http:// or https:// URL of an m3 serve service, got {url!r}")
        if retries < 0 or backoff < 0:
            raise ValueError("retries and backoff must be >= 0")
        self.url = url.rstrip("/")
        api_key = api_key if api_key is not None else os.environ.get(ENV_API_KEY) or None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._httpx = httpx
        self._client = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self.retries, self.backoff = retries, backoff
        info = self._request("GET", "/info")
        self.info: dict[str, Any] = info
        self.model_name: str = info["model"]
        self.dim: int = int(info["dim"])
        self.device: str = info["device"]
        self.dtype: str = info["dtype"]
        self.max_length: int = int(info["max_length"])
        self.query_max_length: int = int(info["query_max_length"])
        self.document_max_length: int = int(info["document_max_length"])
        self.outputs: tuple[str, ...] = tuple(info["outputs"])
        limits = info.get("limits", {})
        server_max = int(limits.get("max_texts_per_request", 256))
        self.max_texts_per_request = min(server_max, max_texts_per_request or 256)
        self.max_batch_tokens: int = int(info.get("max_batch_tokens", 8192))
        self.stats = RemoteStats()
        self._cache: OutputCache | None = None
        self._tokenizer = None
        self._tokenizer_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RemoteEncoder({self.url!r}, model={self.model_name!r}, dim={self.dim})"

    # ------------------------------------------------------------------------------------------- HTTP
    def _request(self, method: str, path: str, body: Any = None, raw: bool = False) -> Any:
        httpx = self._httpx
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._client.request(method, path, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if last:
                    raise RemoteEncoderError(
                        f"cannot reach the encoder service at {self.url} ({type(exc).__name__}: {exc}) after "
                        f"{self.retries + 1} attempts; is `m3 serve` running there?") from None
                self._sleep(attempt, None)
                continue
            if response.status_code < 400:
                return response.text if raw else response.json()
            if response.status_code in _TRANSIENT_STATUS and not last:
                self._sleep(attempt, response.headers.get("retry-after"))
                continue
            raise self._error(response, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff * (2 ** attempt) * (0.5 + random.random())
        if retry_after:
            try:
                delay = max(delay, min(float(retry_after), 30.0))
            except ValueError:
                pass
        time.sleep(delay)

    def _error(self, response, path: str) -> Exception:
        try:
            message = response.json()["error"]["message"]
        except Exception:
            message = response.text[:500] or response.reason_phrase
        status = response.status_code
        text = f"encoder service {self.url}{path} answered {status}: {message}"
        if status in (401, 403):
            return PermissionError(text + " (pass api_key= or set M3_ENCODER_API_KEY)")
        if status == 413:
            return _TooLargeError(text)
        if status in (400, 422):
            return ValueError(text)
        return RemoteEncoderError(text, status)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> RemoteEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------------------- tokens
    @property
    def tokenizer(self) -> RemoteTokenizer:
        """The service's tokenizer, fetched once from ``/tokenizer.json`` and run here."""
        with self._tokenizer_lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                backend = Tokenizer.from_str(self._request("GET", "/tokenizer.json", raw=True))
                backend.no_truncation()
                backend.no_padding()
                self._tokenizer = RemoteTokenizer(backend)
            return self._tokenizer

    def tokenize(self, texts: str | Iterable[str]) -> list[list[int]]:
        """Token ids of each text with ``<s>``/``</s>``, untruncated (the service's tokenizer, run here)."""
        texts = check_texts(texts)
        return [e.ids for e in self.tokenizer.backend_tokenizer.encode_batch(texts)] if texts else []

    def count_tokens(self, texts: str | Iterable[str]) -> list[int]:
        """Number of tokens of each text, special tokens included, untruncated."""
        return [len(ids) for ids in self.tokenize(texts)]

    # ---------------------------------------------------------------------------------------- encode
    def encode(self, texts: str | Iterable[str], max_length: int | None = None, return_dense: bool = True,
               return_sparse: bool = True, return_colbert: bool = True) -> M3Output:
        """Encode texts on the service; the same arguments and output as ``M3Encoder.encode``."""
        texts = check_texts(texts)
        max_length = self._check_max_length(self.document_max_length if max_length is None else max_length)
        if not (return_dense or return_sparse or return_colbert):
            raise ValueError("ask for at least one of return_dense, return_sparse, return_colbert")
        for wanted, name in ((return_sparse, "sparse"), (return_colbert, "colbert")):
            if wanted and name not in self.outputs:
                raise ValueError(f"the model served at {self.url} has no {name} head; pass return_{name}=False")
        want = (return_dense, return_sparse, return_colbert)
        if self._cache is None:
            return self._encode_uncached(texts, max_length, *want)
        cache = self._cache
        found = {t: cache.get((t, max_length)) for t in dict.fromkeys(texts)}
        missing = [t for t, out in found.items() if out is None]
        if missing:
            fresh = self._encode_uncached(missing, max_length, True, "sparse" in self.outputs,
                                          "colbert" in self.outputs)
            for i, text in enumerate(missing):
                found[text] = fresh[i]
                cache.put((text, max_length), fresh[i])
        rows = [found[t] for t in texts]
        return M3Output(
            dense=(np.concatenate([r.dense for r in rows]) if rows else np.zeros((0, self.dim), np.float32))
            if return_dense else None,
            sparse=[r.sparse[0] for r in rows] if return_sparse else None,
            colbert=[r.colbert[0] for r in rows] if return_colbert else None,
        )

    def _check_max_length(self, max_length: int) -> int:
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise TypeError(f"max_length must be an int, got {max_length!r}")
        if not 2 <= max_length <= self.max_length:
            raise ValueError(
                f"max_length must be between 2 and {self.max_length} (the model's limit), got {max_length}")
        return max_length

    def _encode_uncached(self, texts: list[str], max_length: int, dense: bool, sparse: bool,
                         colbert: bool) -> M3Output:
        outputs = [name for name, on in (("dense", dense), ("sparse", sparse), ("colbert", colbert)) if on]
        parts = []
        for start in range(0, len(texts), self.max_texts_per_request):
            chunk = texts[start:start + self.max_texts_per_request]
            parts.append(self._post_encode(chunk, max_length, outputs))
        if not parts:
            return M3Output(dense=np.zeros((0, self.dim), np.float32) if dense else None,
                            sparse=[] if sparse else None, colbert=[] if colbert else None)
        return M3Output.concat(parts)

    def _post_encode(self, texts: list[str], max_length: int, outputs: list[str]) -> M3Output:
        body = {"input": texts, "max_length": max_length, "outputs": outputs, "encoding_format": "base64",
                "colbert_format": "base64", "colbert_dtype": "float32"}
        try:
            answer = self._request("POST", "/encode", body)
        except _TooLargeError:  # over a token / body limit: send halves (a single text is never split)
            if len(texts) > 1:
                half = len(texts) // 2
                return M3Output.concat([self._post_encode(texts[:half], max_length, outputs),
                                        self._post_encode(texts[half:], max_length, outputs)])
            raise
        rows = answer["data"]
        self.stats.forward_passes += 1
        self.stats.texts += len(texts)
        self.stats.tokens += int(answer.get("usage", {}).get("prompt_tokens", 0))
        dense = sparse = colbert = None
        if "dense" in outputs:
            dense = np.frombuffer(b"".join(base64.b64decode(r["dense"]) for r in rows), dtype="<f4").astype(
                np.float32).reshape(len(rows), self.dim)
        if "sparse" in outputs:
            sparse = [dict(zip(r["sparse"]["indices"], r["sparse"]["values"], strict=True)) for r in rows]
        if "colbert" in outputs:
            colbert = [np.frombuffer(base64.b64decode(r["colbert"]["data"]), dtype="<f4").astype(np.float32)
                       .reshape(r["colbert"]["shape"]) for r in rows]
        return M3Output(dense=dense, sparse=sparse, colbert=colbert)

def encoder_from_url(url: str | None = None, api_key: str | None = None, **kwargs: Any) -> RemoteEncoder | None:
    """A ``RemoteEncoder`` for ``url`` (or the ``M3_ENCODER_URL`` environment variable); ``None`` if neither."""
    url = url or os.environ.get(ENV_URL) or None
    return None if url is None else RemoteEncoder(url, api_key, **kwargs)
