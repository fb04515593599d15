"""Many requests at once, as several web processes would send them."""

import threading

from django.db import connections


def in_threads(n, work, timeout=120):
    """``work(i)`` in ``n`` threads released at once; a thread's exception is its result.
    Each thread closes its own database connections."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except Exception as exc:  # reported by the caller's assertion
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results
