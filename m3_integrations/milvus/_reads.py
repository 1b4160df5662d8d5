"""The consistency level of reads (searches and queries): Milvus' own levels, chosen per call.

Collections are created with ``Strong`` (a read sees every write acknowledged before it) unless
``upsert_documents(consistency_level=...)`` chose another level. A read may ask for another:
``Bounded`` (staleness of a few seconds), ``Session`` (this client's own writes) or ``Eventually``, which serve
faster on a busy server. milvus-lite accepts every level.
"""

from __future__ import annotations

from typing import Any

from ._driver import Call, Program

CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")
_READS = ("search", "query", "hybrid_search")


def check_consistency(level: Any) -> str | None:
    """``level`` if it is ``None`` or one of ``CONSISTENCY_LEVELS``, else a ``ValueError`` naming them."""
    if level is None or level in CONSISTENCY_LEVELS:
        return level
    raise ValueError(f"consistency_level must be one of {', '.join(CONSISTENCY_LEVELS)} (or None: the "
                     f"collection's, Strong), got {level!r}")


def with_consistency(program: Program, level: str | None) -> Program:
    """``program`` with ``consistency_level=level`` added to each of its reads (unchanged when ``level`` is None)."""
    if level is None:
        return (yield from program)
    try:
        step = next(program)
    except StopIteration as stop:
        return stop.value
    while True:
        if step.method in _READS:
            step = Call(step.method, step.args, {**step.kwargs, "consistency_level": level}, step.quiet)
        try:
            result = yield step
        except Exception as exc:  # the call failed: the program may handle it
            try:
                step = program.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        try:
            step = program.send(result)
        except StopIteration as stop:
            return stop.value
