"""Running the app under uvicorn with a graceful shutdown: in-flight requests finish, new ones get 503."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI

from .app import begin_drain

logger = logging.getLogger(__name__)


class _DrainingServer(uvicorn.Server):
    """uvicorn's server, which marks the app draining the moment a shutdown signal arrives."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: Any) -> None:
        begin_drain(self._app)
        super().handle_exit(sig, frame)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class M3Server:
    """The service on ``host:port`` (``port=0``: a free port, see ``port`` once started).

    ``run()`` blocks until SIGINT / SIGTERM; ``start()`` / ``stop()`` run it on a background thread
    (tests, benchmarks, notebooks). Shutting down: new requests get 503, requests in flight are
    answered, the batcher encodes what it holds, then the process exits (after at most
    ``graceful_timeout`` seconds).
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8080, *, log_level: str = "info",
                 graceful_timeout: float = 30.0, warn_without_key: bool = True, **uvicorn_kwargs: Any) -> None:
        if warn_without_key and not is_loopback(host) and not app.state.m3.auth.enabled:
            logger.warning("serving on %s without an API key: anyone who can reach this port can use the encoder",
                           host)
        self.app = app
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on",
                                timeout_graceful_shutdown=graceful_timeout, **uvicorn_kwargs)
        self._server = _DrainingServer(config, app)
        self._thread: threading.Thread | None = None
        self.host = host

    @property
    def port(self) -> int:
        """The bound port (meaningful once started)."""
        for server in getattr(self._server, "servers", []):
            for sock in server.sockets:
                return sock.getsockname()[1]
        return self._server.config.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve until interrupted (signals handled: SIGINT, SIGTERM)."""
        self._server.run()

    def start(self, timeout: float = 60.0) -> M3Server:
        """Serve on a background thread; returns once the port accepts connections."""
        self._thread = threading.Thread(target=self._server.run, name="m3-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"the encoder service did not start on {self.host}:{self._server.config.port}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the encoder service did not start within {timeout} s")
            time.sleep(0.01)
        return self

    def begin_shutdown(self) -> None:
        """What SIGTERM does: new requests get 503 at once, the server exits once in-flight ones are answered."""
        begin_drain(self.app)
        self._server.should_exit = True

    def stop(self, timeout: float = 60.0) -> None:
        """``begin_shutdown`` and wait for the background thread to end."""
        self.begin_shutdown()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the encoder service did not stop within {timeout} s")
            self._thread = None

    def __enter__(self) -> M3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
