"""Store logic written once as generator "programs" over the backend interface, run on a sync or async driver.

A program yields ``(method, *args)`` backend calls (``exists``, ``describe``, ``query``, ``retrieve``, ``scroll``,
``count``, ``delete_ids``, ``delete_filter``, ...) and receives each result; ``run`` executes it on a sync
driver (``ClientBackend``, ``QdrantEdgeStore``), ``arun`` awaits it on an async one (``AsyncClientBackend``).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

Program = Generator[tuple, Any, Any]


def run(backend: Any, program: Program) -> Any:
    """Run a program on a synchronous driver."""
    try:
        step = next(program)
        while True:
            step = program.send(getattr(backend, step[0])(*step[1:]))
    except StopIteration as stop:
        return stop.value


async def arun(backend: Any, program: Program) -> Any:
    """Await a program on an asynchronous driver."""
    try:
        step = next(program)
        while True:
            step = program.send(await getattr(backend, step[0])(*step[1:]))
    except StopIteration as stop:
        return stop.value
