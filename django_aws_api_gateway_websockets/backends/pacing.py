"""Pacing: the call-rate limiters that keep a process's (or every process's) ``@connections``
calls under ``WEBSOCKETS["send_max_calls_per_second"]``."""

import os
import threading
import time

# A call due less than this many seconds from now goes at once: the calls of a process may run
# up to 2 ms ahead of their slots (20 calls at 10,000/s), far inside AWS's burst of 5,000;
# the long-run rate is unchanged (the slots still advance by one interval per call).
SLEEP_THRESHOLD = 0.002


class RateLimiter:
    """Spaces calls so that every sender of this process together stays under ``rate`` per second.

    Thread-safe; one per (region, rate) per process (``limiter_for``), shared by concurrent sends.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = time.monotonic()
        self.lock = threading.Lock()

    def delay(self) -> float:
        """Seconds the caller must wait before its call (0 when under the ceiling)."""
        if not self.interval:
            return 0.0
        with self.lock:
            now = time.monotonic()
            slot = max(self.next_slot, now)
            self.next_slot = slot + self.interval
        return max(0.0, slot - now)


class CacheRateLimiter:
    """One call budget shared by every process through a Django cache (Redis, Memcached).

    Time is cut into windows of ``WINDOW`` seconds, each allowed ``rate * WINDOW`` calls; a
    process takes calls from the window's counter (an atomic ``incr`` of the cache) in blocks, so
    the cache is asked once per block, not once per call. A window used up: wait for the next.
    """

    WINDOW = 0.1

    def __init__(self, rate: float, alias: str, key: str) -> None:
        from django.core.cache import caches

        self.rate, self.cache, self.key = rate, caches[alias], f"ws-send-rate:{key}"
        self.allowance = max(1, int(rate * self.WINDOW))
        self.block = max(1, self.allowance // 20)
        self.lock = threading.Lock()
        self.window: int | None = None
        self.left = 0

    def delay(self) -> float:
        """Seconds to wait before the call; the call is counted (reserved) in that window."""
        if not self.rate:
            return 0.0
        with self.lock:
            now = time.time()
            current = int(now / self.WINDOW)
            if self.left > 0 and self.window is not None and self.window >= current:
                self.left -= 1
                return max(0.0, self.window * self.WINDOW - now)
            first = current if self.window is None else max(current, self.window)
            for window in range(first, first + 600):  # at most a minute ahead
                key = f"{self.key}:{window}"
                self.cache.add(key, 0, timeout=int(window * self.WINDOW - now) + 5)
                try:
                    taken = self.cache.incr(key, self.block)
                except ValueError:  # expired between add and incr: count from zero
                    self.cache.add(key, self.block, timeout=5)
                    taken = self.block
                granted = min(self.block, self.allowance - (taken - self.block))
                if granted > 0:
                    self.window, self.left = window, granted - 1
                    return max(0.0, window * self.WINDOW - now)
            self.window, self.left = window, 0
            return max(0.0, window * self.WINDOW - now)


Limiter = RateLimiter | CacheRateLimiter

_limiters: dict[tuple[str, float, int, str], Limiter] = {}
_limiters_lock = threading.Lock()


def limiter_for(region: str, rate: float, processes: int = 1, cache_alias: str = "") -> Limiter:
    """The process's limiter for ``region`` (AWS's throttle is per account and region)."""
    share = rate / processes if rate else 0
    key = (region, rate, processes, cache_alias)
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = CacheRateLimiter(rate, cache_alias, region) if cache_alias and rate else RateLimiter(share)
            _limiters[key] = limiter
        return limiter


def _forget_after_fork() -> None:
    # A lock another thread held at the fork stays held in the child: new ones.
    global _limiters_lock
    _limiters.clear()
    _limiters_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
