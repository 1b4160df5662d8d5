"""Progress of ``m3 index`` phase by phase (scan, extract, encode + store) on stderr, with rates."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Phase:
    """One phase: a bar over ``total`` items (files or chunks), with tokens per second when known."""

    def __init__(self, bar: Any) -> None:
        self.bar, self.tokens, self.started = bar, 0, time.perf_counter()

    def update(self, n: int = 1, tokens: int = 0) -> None:
        self.tokens += tokens
        if self.bar is not None:
            self.bar.update(n)
            if self.tokens:
                elapsed = max(time.perf_counter() - self.started, 1e-9)
                self.bar.set_postfix_str(f"{self.tokens / elapsed:,.0f} tokens/s", refresh=False)


class Progress:
    """Bars on stderr when ``enabled`` (default: when stderr is a terminal); phase times either way."""

    def __init__(self, enabled: bool | None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str, total: int, unit: str) -> Iterator[Phase]:
        bar = None
        if self.enabled and total:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, desc=f"{name:<8}", unit=f" {unit}", file=sys.stderr, dynamic_ncols=True)
        phase = Phase(bar)
        try:
            yield phase
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - phase.started
            if bar is not None:
                bar.close()
