"""Service metrics in the Prometheus text exposition format (version 0.0.4), without a client library."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == math.inf:
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    """A monotonically increasing count per label set."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        if not items and not self.label_names:
            items = [((), 0.0)]
        lines += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]
        return lines


class Gauge(Counter):
    """A value that goes up and down."""

    def set(self, value: float, *labels: str) -> None:
        with self._lock:
            self._values[labels] = value

    def render(self) -> list[str]:
        lines = super().render()
        lines[1] = f"# TYPE {self.name} gauge"
        return lines


class Histogram:
    """Observations counted into cumulative buckets, with their sum and count."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name, self.help = name, help_text
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        self._counts = [0] * len(self.buckets)
        self._sum = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._sum += value
            self._count += 1
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1
                    break

    @property
    def count(self) -> int:
        return self._count

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            counts, total, count = list(self._counts), self._sum, self._count
        running = 0
        for bound, n in zip(self.buckets, counts, strict=True):
            running += n
            lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {running}')
        lines += [f"{self.name}_sum {_number(total)}", f"{self.name}_count {count}"]
        return lines


_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """What ``GET /metrics`` reports: requests, batch sizes, tokens, queue wait and encode time."""

    def __init__(self) -> None:
        self.requests = Counter("m3_requests_total", "HTTP requests by endpoint and status code.",
                                ("endpoint", "status"))
        self.request_seconds = Histogram("m3_request_duration_seconds", "Time to answer a request.", _SECONDS)
        self.texts = Counter("m3_texts_total", "Texts encoded.")
        self.tokens = Counter("m3_tokens_total", "Tokens encoded (after truncation, special tokens included).")
        self.batches = Counter("m3_batches_total", "Encoder calls made by the batcher.")
        self.batch_texts = Histogram("m3_batch_texts", "Texts per encoder call.",
                                     (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048))
        self.batch_requests = Histogram("m3_batch_requests", "Requests merged into one encoder call.",
                                        (1, 2, 4, 8, 16, 32, 64, 128))
        self.batch_tokens = Histogram("m3_batch_tokens", "Tokens per encoder call.",
                                      (64, 256, 1024, 4096, 16384, 65536, 262144, 1048576))
        self.queue_seconds = Histogram("m3_queue_wait_seconds", "Time a request waited for its encoder call.",
                                       _SECONDS)
        self.encode_seconds = Histogram("m3_encode_seconds", "Time of one encoder call.", _SECONDS)
        self.encode_seconds_total = Counter("m3_encode_seconds_total", "Time spent in encoder calls.")
        self.queue_depth = Gauge("m3_queue_requests", "Requests waiting for the encoder now.")
        self.in_flight = Gauge("m3_requests_in_flight", "Requests being answered now.")

    def render(self) -> str:
        """The metrics in the Prometheus text format; tokens/s is ``rate(m3_tokens_total[1m])``."""
        lines: list[str] = []
        for metric in (self.requests, self.request_seconds, self.texts, self.tokens, self.batches,
                       self.batch_texts, self.batch_requests, self.batch_tokens, self.queue_seconds,
                       self.encode_seconds, self.encode_seconds_total, self.queue_depth, self.in_flight):
            lines += metric.render()
        return "\n".join(lines) + "\n"
