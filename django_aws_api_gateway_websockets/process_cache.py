"""A small per-process cache for rows read on the hot path (gateway records, channel rules).

Values live for a time-to-live; ``clear()`` (called by ``post_save``/``post_delete``
receivers) drops them at once in this process. A value read while a clear happened is not
stored, so a save that lands during a read is never hidden behind a fresh expiry.
"""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class ProcessCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._generation = 0

    def get(self, key: Hashable, load: Callable[[], Any], ttl: float, *, fresh: bool = False) -> Any:
        """The cached value of ``key``, else ``load()`` (kept ``ttl`` seconds unless ``None``)."""
        now = time.monotonic()
        entry = None if fresh else self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        generation = self._generation
        value = load()
        if ttl > 0 and value is not None:
            with self._lock:
                if generation == self._generation:
                    self._entries[key] = (now + ttl, value)
        return value

    def clear(self, **kwargs: object) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1
