"""The output cache of an encoder (local or remote): an LRU of one-row outputs, without torch."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


class OutputCache:
    """A thread-safe LRU of one-row ``M3Output``s keyed by (text, max_length)."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
