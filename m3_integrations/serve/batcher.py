"""Dynamic batching across requests: texts of requests that arrive together are encoded in one call.

One worker owns the encoder (one device, one forward pass at a time). While it encodes, new requests
queue up; when it is free it takes the oldest request and, behind it in arrival order, every queued
request with the same truncation length while the total stays within the token budget. When the
queue holds less than the budget it waits at most ``max_wait_ms`` for more to arrive, so a lone
request pays at most that much extra latency. The oldest request is always in the next call, so
none starves, however many others arrive after it.
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..encoder.types import M3Output
from .metrics import ServiceMetrics


@dataclass
class _Job:
    texts: list[str]
    max_length: int
    dense: bool
    sparse: bool
    colbert: bool
    tokens: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class ServiceClosedError(RuntimeError):
    """The batcher is stopping and takes no new work."""


class DynamicBatcher:
    """Merges concurrent encode requests into token-budgeted encoder calls on one worker thread.

    Args:
        encoder: an ``M3Encoder`` (anything with its ``encode``).
        max_batch_tokens: tokens (after truncation) merged into one encoder call; a request larger than
            this is encoded alone (the encoder splits it into device batches itself).
        max_wait_ms: the longest an idle worker waits for more requests before encoding what it has.
        metrics: where batch sizes, queue wait and encode time are recorded.
    """

    def __init__(self, encoder: Any, *, max_batch_tokens: int, max_wait_ms: float = 2.0,
                 metrics: ServiceMetrics | None = None) -> None:
        if max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be positive, got {max_batch_tokens}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.encoder = encoder
        self.max_batch_tokens = max_batch_tokens
        self.max_wait = max_wait_ms / 1000.0
        self.metrics = metrics or ServiceMetrics()
        self._queue: collections.deque[_Job] = collections.deque()
        self._queued_tokens = 0
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        """Start the worker on the running event loop."""
        if self.running:
            return
        self._closing = False
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="m3-encode")
        self._worker = asyncio.create_task(self._run(), name="m3-batcher")

    async def stop(self) -> None:
        """Encode everything already queued, then stop the worker."""
        self._closing = True
        if self._arrived is not None:
            self._arrived.set()
        if self._worker is not None:
            await self._worker
            self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, texts: list[str], *, max_length: int, tokens: int, dense: bool = True,
                     sparse: bool = True, colbert: bool = True) -> M3Output:
        """Queue ``texts`` and wait for their outputs (in input order)."""
        if self._closing or not self.running:
            raise ServiceClosedError("the encoder service is shutting down")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(texts, max_length, dense, sparse, colbert, tokens, future))
        self._queued_tokens += tokens
        self.metrics.queue_depth.set(len(self._queue))
        self._arrived.set()
        return await future

    def _take(self) -> list[_Job]:
        """The oldest job, then later jobs with its truncation length, within the token budget."""
        head = self._queue.popleft()
        taken, kept, budget = [head], collections.deque(), self.max_batch_tokens - head.tokens
        while self._queue:
            job = self._queue.popleft()
            if job.max_length == head.max_length and job.tokens <= budget:
                taken.append(job)
                budget -= job.tokens
            else:
                kept.append(job)
                if budget <= 0:
                    break
        kept.extend(self._queue)
        self._queue = kept
        self._queued_tokens -= sum(j.tokens for j in taken)
        return taken

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            # an idle worker gives requests that are on their way a short, bounded time to join
            deadline = self._queue[0].enqueued + self.max_wait
            while self._queued_tokens < self.max_batch_tokens and not self._closing:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            jobs = [j for j in self._take() if not j.future.cancelled()]
            self.metrics.queue_depth.set(len(self._queue))
            if not jobs:
                continue
            await self._encode(loop, jobs)

    async def _encode(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        started = time.perf_counter()
        for job in jobs:
            self.metrics.queue_seconds.observe(started - job.enqueued)
        texts = [t for job in jobs for t in job.texts]
        want = dict(return_dense=any(j.dense for j in jobs), return_sparse=any(j.sparse for j in jobs),
                    return_colbert=any(j.colbert for j in jobs))
        try:
            out = await loop.run_in_executor(
                self._executor, lambda: self.encoder.encode(texts, max_length=jobs[0].max_length, **want))
        except Exception as exc:  # every waiting request gets the error; the worker keeps serving
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        elapsed = time.perf_counter() - started
        tokens = sum(j.tokens for j in jobs)
        m = self.metrics
        m.batches.inc()
        m.batch_texts.observe(len(texts))
        m.batch_requests.observe(len(jobs))
        m.batch_tokens.observe(tokens)
        m.encode_seconds.observe(elapsed)
        m.encode_seconds_total.inc(elapsed)
        m.texts.inc(len(texts))
        m.tokens.inc(tokens)
        start = 0
        for job in jobs:
            rows = out[start:start + len(job.texts)]
            start += len(job.texts)
            if not job.future.done():
                job.future.set_result(M3Output(dense=rows.dense if job.dense else None,
                                               sparse=rows.sparse if job.sparse else None,
                                               colbert=rows.colbert if job.colbert else None))
