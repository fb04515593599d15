"""Lifetimes of what the send backends keep (docs/sending.md): one pool per endpoint per process, reused
across sends of any size; fork-safe; every wait bounded; one call budget per process or per account."""

import asyncio
import os
import threading
import time

import pytest

from django_aws_api_gateway_websockets import aws, backends
from django_aws_api_gateway_websockets.backends import Endpoint, SendOptions, pacing
from django_aws_api_gateway_websockets.eventloop import BackgroundLoop
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession

from ..management_server import ManagementServer

PAYLOAD = b'{"x":1}'


def options(**overrides):
    values = dict(
        workers=128, retries=2, base_delay=0.001, timeout=5.0, connect_timeout=2.0, rate=0, processes=1, rate_cache=""
    )
    values.update(overrides)
    return SendOptions(**values)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def server():
    with ManagementServer() as server:
        yield server


def test_one_aiohttp_pool_per_endpoint_across_sends_of_every_size(server):
    backend = backends.AiohttpBackend()
    endpoint = Endpoint(server.url, "eu-west-1")
    try:
        # Warm: the pool at its largest (128 connections; the test server's threads too, as it
        # runs in this process), so what follows measures what sends keep, not the first ones.
        warm = backend.post_many([(f"warm-{i}", endpoint) for i in range(128)], PAYLOAD, options())
        assert set(warm.values()) == {None}
        before = rss_bytes()
        for size in range(1, 129):
            outcome = backend.post_many([(f"s{size}-{i}", endpoint) for i in range(size)], PAYLOAD, options())
            assert set(outcome.values()) == {None}
        growth = rss_bytes() - before
        assert backend.pool_count() == 1
        assert growth < 8 * 2**20, f"RSS grew {growth / 2**20:.1f} MB"
        assert sum(len(v) for v in server.received.values()) == 128 + sum(range(1, 129))
    finally:
        backend.close()


def test_one_boto3_client_per_endpoint_across_sends_of_every_size(server):
    backend = backends.Boto3Backend()
    endpoint = Endpoint(server.url, "eu-west-1")
    aws.clear_clients()
    for size in (1, 2, 7, 33, 64):
        outcome = backend.post_many([(f"b{size}-{i}", endpoint) for i in range(size)], PAYLOAD, options(workers=16))
        assert set(outcome.values()) == {None}
    assert [key for key in aws._clients if key[2] == server.url] == [
        ("apigatewaymanagementapi", "eu-west-1", server.url, 16, (2.0, 5.0))
    ]


@pytest.mark.django_db
def test_sends_through_the_engine_reuse_the_process_backend(server, settings):
    gateway = ApiGateway.objects.create(api_name="local", api_id="local1", management_endpoint_url=server.url)
    backend = backends.get_backend()
    for size in (1, 5, 17):
        WebSocketSession.objects.all().delete()
        WebSocketSession.objects.bulk_create(
            [WebSocketSession(connection_id=f"e{size}-{i}", api_gateway=gateway) for i in range(size)]
        )
        assert len(WebSocketSession.objects.send_message({"n": size}).delivered) == size
        assert backends.get_backend() is backend
    assert backend.pool_count(Endpoint.for_gateway(gateway)) == 1


def test_a_forked_child_sends_with_its_own_loop(server):
    """The parent's loop thread does not exist in a child: the child must start its own, not hang."""
    backend = backends.AiohttpBackend()
    endpoint = Endpoint(server.url, "eu-west-1")
    assert backend.post_many([("parent-1", endpoint)], PAYLOAD, options()) == {"parent-1": None}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running pytest's teardown
        try:
            outcome = backend.post_many([("child-1", endpoint), ("child-2", endpoint)], PAYLOAD, options())
            os.write(write, repr(sorted(outcome.items())).encode())
        except BaseException as exc:  # pragma: no cover - reported to the parent
            os.write(write, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:  # pragma: no cover - the bug this test is for
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's send hung")
    report = os.read(read, 4096).decode()
    os.close(read)
    assert report == "[('child-1', None), ('child-2', None)]"
    # And the parent's pool still works after the fork.
    assert backend.post_many([("parent-2", endpoint)], PAYLOAD, options()) == {"parent-2": None}
    backend.close()


def test_every_wait_on_the_loop_is_bounded():
    loop = BackgroundLoop("test-loop")
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        loop.run(asyncio.sleep(30), timeout=0.2)
    assert time.monotonic() - start < 2
    assert loop.run(asyncio.sleep(0, result=7), timeout=5) == 7


def test_a_send_past_its_deadline_reports_uncertain(monkeypatch):
    """The backstop: whatever was still in flight when the send's deadline passed."""
    from ..faulty_server import FaultyServer

    monkeypatch.setattr(SendOptions, "deadline", lambda self, calls: 0.5)
    backend = backends.AiohttpBackend()
    try:
        with FaultyServer() as faulty:
            endpoint = Endpoint(faulty.url, "eu-west-1")
            start = time.monotonic()
            outcome = backend.post_many([("stall-1", endpoint), ("ok-1", endpoint)], PAYLOAD, options(timeout=30))
            assert time.monotonic() - start < 3
    finally:
        backend.close()
    assert outcome == {"stall-1": "Uncertain:SendDeadline", "ok-1": None}


def test_concurrent_sends_share_the_process_limit(server):
    """Two sends at once in one process: together under the limit, not each at the full limit."""
    backend = backends.AiohttpBackend()
    endpoint = Endpoint(server.url, "eu-west-1")
    pacing._limiters.clear()
    opts = options(rate=100)
    assert opts.limiter("eu-west-1") is opts.limiter("eu-west-1")
    results = []

    def send(prefix):
        results.append(backend.post_many([(f"{prefix}-{i}", endpoint) for i in range(20)], PAYLOAD, opts))

    start = time.monotonic()
    threads = [threading.Thread(target=send, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - start
    backend.close()
    assert all(set(r.values()) == {None} for r in results) and len(results) == 2
    assert elapsed >= 0.38, elapsed  # 40 calls at 100/s


def test_rate_processes_divides_the_limit():
    pacing._limiters.clear()
    limiter = options(rate=10_000, processes=4).limiter("eu-west-1")
    assert limiter.rate == 2_500


def test_cache_limiter_shares_one_budget_between_processes(settings):
    """Two limiters on one cache (as two processes on Redis): at most rate x window calls per window."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "default"},
        "send-rate": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "send-rate"},
    }
    from django.core.cache import caches

    caches["send-rate"].clear()
    first = pacing.CacheRateLimiter(1_000, "send-rate", "eu-west-1")
    second = pacing.CacheRateLimiter(1_000, "send-rate", "eu-west-1")
    per_window = {}
    for i in range(600):  # 600 calls at 1,000/s: about 0.6 s of budget
        limiter = first if i % 2 else second
        wait = limiter.delay()
        at = time.time() + wait + 1e-6
        window = int(at / pacing.CacheRateLimiter.WINDOW)
        per_window[window] = per_window.get(window, 0) + 1
    assert max(per_window.values()) <= 100  # 1,000/s x 0.1 s, whichever limiter took them
    assert len(per_window) >= 6
