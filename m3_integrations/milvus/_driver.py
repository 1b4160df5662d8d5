"""One implementation for ``MilvusClient`` and ``AsyncMilvusClient``.

Adapter logic is written as generator "programs" that ``yield call("method", *args, **kwargs)`` and
receive the result (or the raised exception). ``run_sync`` executes a program on a ``MilvusClient``,
``run_async`` awaits each call on an ``AsyncMilvusClient``; the logic itself exists once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Program = Generator["Call", Any, Any]


@dataclass
class Call:
    """One client method call requested by a program."""

    method: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    quiet: bool = False  # a probe that may fail: keep pymilvus from logging its error


def call(method: str, *args: Any, **kwargs: Any) -> Call:
    """Request ``client.<method>(*args, **kwargs)``."""
    return Call(method, args, kwargs)


def probe(method: str, *args: Any, **kwargs: Any) -> Call:
    """Like ``call`` for a request that is expected to fail on some engines (no error log)."""
    return Call(method, args, kwargs, quiet=True)


def _not_an_unimplemented_method(record: logging.LogRecord) -> bool:
    """False for a gRPC server's log of a method it does not implement (milvus-lite serves in this process)."""
    return not (record.exc_info and isinstance(record.exc_info[1], NotImplementedError))


@contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    logs = [logging.getLogger(name) for name in ("pymilvus.decorators", "pymilvus.client.grpc_handler",
                                                 "pymilvus.client.async_grpc_handler")]
    previous = [log.disabled for log in logs]
    for log in logs:
        log.disabled = True
    server_log = logging.getLogger("grpc._server")
    server_log.addFilter(_not_an_unimplemented_method)
    try:
        yield
    finally:
        server_log.removeFilter(_not_an_unimplemented_method)
        for log, was in zip(logs, previous, strict=True):
            log.disabled = was


_FILTER_PROBLEM = re.compile(r"expr|pars|column \d+", re.IGNORECASE)


def _filter_error(step: Call, exc: Exception) -> Exception:
    """A ``FilterError`` (server message + filter text) for a call whose ``filter=`` the engine could not parse."""
    expression = step.kwargs.get("filter")
    if not expression:  # hybrid_search: the filter is in its search requests
        requests = step.kwargs.get("reqs", step.args[1] if len(step.args) > 1 else None)
        if isinstance(requests, (list, tuple)):
            expression = next((r.expr for r in requests if getattr(r, "expr", None)), None)
    if not expression or type(exc).__name__ != "MilvusException":
        return exc
    message = str(getattr(exc, "message", "") or exc)
    if not _FILTER_PROBLEM.search(message):
        return exc
    from .._errors import FilterError

    error = FilterError(f"Milvus could not run the filter {expression!r}: {message}", expression)
    error.__cause__ = exc
    return error


def run_sync(client: Any, program: Program) -> Any:
    """Run ``program`` against a synchronous client; returns the program's return value."""
    try:
        step = next(program)
        while True:
            try:
                with _quiet(step.quiet):
                    result = getattr(client, step.method)(*step.args, **step.kwargs)
            except Exception as exc:  # handed to the program, which may handle it
                step = program.throw(_filter_error(step, exc))
                continue
            step = program.send(result)
    except StopIteration as stop:
        return stop.value


async def run_async(client: Any, program: Program) -> Any:
    """Run ``program`` against an ``AsyncMilvusClient`` (methods may be coroutines or plain)."""
    try:
        step = next(program)
        while True:
            try:
                with _quiet(step.quiet):
                    result = getattr(client, step.method)(*step.args, **step.kwargs)
                    if inspect.isawaitable(result):
                        result = await result
            except Exception as exc:
                step = program.throw(_filter_error(step, exc))
                continue
            step = program.send(result)
    except StopIteration as stop:
        return stop.value


def is_async_client(client: Any) -> bool:
    """True for an ``AsyncMilvusClient`` (its ``search`` is a coroutine function)."""
    return inspect.iscoroutinefunction(getattr(client, "search", None))


_QDRANT_MODULES = ("qdrant_client", "qdrant_edge", "m3_integrations.qdrant")


def _is_qdrant(client: Any) -> bool:
    modules = [getattr(cls, "__module__", "") or "" for cls in type(client).__mro__]
    return any(m == p or m.startswith(p + ".") for m in modules for p in _QDRANT_MODULES)


def _check_milvus(client: Any, function: str) -> None:
    if client is None or _is_qdrant(client) or not callable(getattr(client, "query", None)):
        raise TypeError(f"{function} takes a pymilvus MilvusClient or AsyncMilvusClient, got "
                        f"{type(client).__module__}.{type(client).__qualname__}"
                        + (" (use m3_integrations.qdrant for Qdrant clients)" if _is_qdrant(client) else ""))


def check_sync_client(client: Any, function: str) -> None:
    """A clear ``TypeError`` unless ``client`` is a synchronous Milvus client."""
    _check_milvus(client, function)
    if is_async_client(client):
        raise TypeError(f"{function} got an AsyncMilvusClient; use `await a{function}(...)` (the async twin) "
                        "or a MilvusClient")


def check_async_client(client: Any, function: str) -> None:
    """A clear ``TypeError`` unless ``client`` is a Milvus client (sync or async)."""
    _check_milvus(client, function)


async def run_any(client: Any, program: Program) -> Any:
    """Await ``program`` on an ``AsyncMilvusClient``; on a ``MilvusClient`` run it in a worker thread."""
    if is_async_client(client):
        return await run_async(client, program)
    return await asyncio.to_thread(run_sync, client, program)
