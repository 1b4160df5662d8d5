"""One implementation for ``MilvusClient`` and ``AsyncMilvusClient``.

Adapter logic is written as generator "programs" that ``yield call("method", *args, **kwargs)`` and
receive the result (or the raised exception). ``run_sync`` executes a program on a ``MilvusClient``,
``run_async`` awaits each call on an ``AsyncMilvusClient``; the logic itself exists once.
"""

from __future__ import annotations

import inspect
import logging
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


@contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    logs = [logging.getLogger(name) for name in ("pymilvus.decorators", "pymilvus.client.grpc_handler")]
    previous = [log.disabled for log in logs]
    for log in logs:
        log.disabled = True
    try:
        yield
    finally:
        for log, was in zip(logs, previous, strict=True):
            log.disabled = was


def run_sync(client: Any, program: Program) -> Any:
    """Run ``program`` against a synchronous client; returns the program's return value."""
    try:
        step = next(program)
        while True:
            try:
                with _quiet(step.quiet):
                    result = getattr(client, step.method)(*step.args, **step.kwargs)
            except Exception as exc:  # handed to the program, which may handle it
                step = program.throw(exc)
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
                step = program.throw(exc)
                continue
            step = program.send(result)
    except StopIteration as stop:
        return stop.value


def is_async_client(client: Any) -> bool:
    """True for an ``AsyncMilvusClient`` (its ``search`` is a coroutine function)."""
    return inspect.iscoroutinefunction(getattr(client, "search", None))
