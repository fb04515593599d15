"""The event loops the package starts (the send backend's background loop, the local gateway)."""

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar

uvloop: ModuleType | None
try:
    import uvloop
except ImportError:  # Windows, or not installed: asyncio's own loop
    uvloop = None

T = TypeVar("T")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (much less CPU per request for aiohttp), else asyncio's."""
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


class BackgroundLoop:
    """One event loop in a daemon thread per process, started on first use.

    Fork-safe: a thread does not survive ``fork`` (a forked gunicorn or Celery worker would
    otherwise wait forever for a loop that is not running there), so the child forgets the
    parent's loop and starts its own on first use. ``run`` always waits with a timeout.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        self._on_new_loop: list[Callable[[], object]] = []
        os.register_at_fork(after_in_child=self._forget)

    def on_new_loop(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` whenever a new loop replaces an old one (fork, first use)."""
        self._on_new_loop.append(callback)

    def _forget(self) -> None:
        # In the child: the parent's loop thread does not exist here, and its lock may be held.
        self._lock = threading.Lock()
        self._loop, self._pid = None, None
        for callback in self._on_new_loop:
            callback()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                loop = new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=run, name=self.name, daemon=True).start()
                if not ready.wait(10):  # pragma: no cover - a thread that cannot start
                    raise RuntimeError(f"{self.name}: the event loop thread did not start")
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """A ``concurrent.futures.Future`` for ``coroutine`` run on the loop."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """The coroutine's result; ``TimeoutError`` (and the coroutine cancelled) after ``timeout`` s."""
        future = self.submit(coroutine)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise
