"""The connect rate limiter (ratelimit.py, docs/rate-limiting.md): one atomic operation decides, and the
limit holds under concurrency, on the database counter and on a shared cache (Redis).

The concurrency tests through the view need PostgreSQL (SQLite's test database serializes
every writer); the Redis tests need a server: ``REDIS_URL`` (default
``redis://127.0.0.1:6379/15``). Locally they skip when it does not answer; under CI (``CI`` set)
they fail instead, as ``.ci/run`` installs and starts ``redis-server``.
"""

import os
import uuid

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from django_aws_api_gateway_websockets import checks, ratelimit, signals, tokens
from django_aws_api_gateway_websockets.db import statements
from django_aws_api_gateway_websockets.models import ConnectionRateCounter, ConnectionRateLimit, WebSocketSession
from django_aws_api_gateway_websockets.testing.client import integration_headers, new_connection_id
from tests.concurrency import in_threads

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
ON_POSTGRES = os.environ.get("TEST_DB") == "postgres"
needs_postgres = pytest.mark.skipif(
    not ON_POSTGRES, reason="concurrent connects need PostgreSQL (TEST_DB=postgres): SQLite serializes writers"
)


def _redis_problem():
    try:
        import redis
    except ImportError:
        return "the redis package is not installed (pip install redis)"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no server to test against
        return f"no Redis server answers at {REDIS_URL} ({type(exc).__name__}); .ci/run starts one"
    return None


@pytest.fixture
def redis_cache(settings):
    problem = _redis_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Redis rate-limit tests: {problem}")
        pytest.skip(problem)
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}",  # each test its own counters
        },
    }
    settings.WEBSOCKETS = {"rate_limit_cache": "ratelimit"}
    from django.core.cache import caches

    cache = caches["ratelimit"]
    yield cache
    client = cache._cache.get_client(None, write=True)  # only this test's keys (no FLUSHDB)
    for key in client.scan_iter(match=cache.make_key("*")):
        client.delete(key)


@pytest.fixture
def locmem_cache(settings):
    settings.CACHES = {
        **settings.CACHES,
        "ratelimit": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex},
    }
    settings.WEBSOCKETS = {"rate_limit_cache": "ratelimit"}


def hits(n, ip="192.0.2.1", user=None, max_attempts=3, window_minutes=1):
    return [ratelimit.hit(ip, user, max_attempts, window_minutes) for _ in range(n)]


def assert_limit_semantics(decisions):
    assert [d.allowed for d in decisions] == [True, True, True, False, False, False]
    assert [d.first_refusal for d in decisions] == [False, False, False, True, False, False]
    assert [d.attempts for d in decisions] == [1, 2, 3, 4, 4, 4]


# --- the decision, per backend -----------------------------------------------------------------


@pytest.mark.django_db
def test_database_counter_limits_and_stops_writing_past_the_limit():
    decisions = hits(6)
    assert_limit_semantics(decisions)
    row = ConnectionRateCounter.objects.get()
    assert (row.key, row.count) == ("ip:192.0.2.1:60", 4)  # capped: a flood changes nothing more
    assert ratelimit.check_connect_rate("192.0.2.1", max_attempts=3) == (False, 4)
    assert ratelimit.check_connect_rate("192.0.2.9", max_attempts=3) == (True, 0)


@pytest.mark.django_db
def test_database_counter_is_one_statement_per_attempt(user):
    with CaptureQueriesContext(connection) as context:
        ratelimit.hit("192.0.2.1", user, 3, 1)
    assert len(context.captured_queries) == 1, context.captured_queries  # IP and user keys together
    assert sorted(ConnectionRateCounter.objects.values_list("key", flat=True)) == [
        "ip:192.0.2.1:60",
        f"user:{user.pk}:60",
    ]


@pytest.mark.django_db
def test_database_window_starts_again_after_it_ended(monkeypatch):
    now = ratelimit._now_ms()
    monkeypatch.setattr(ratelimit, "_now_ms", lambda: now)
    assert [d.allowed for d in hits(4, max_attempts=2)] == [True, True, False, False]
    monkeypatch.setattr(ratelimit, "_now_ms", lambda: now + 59_999)
    assert ratelimit.hit("192.0.2.1", None, 2, 1).allowed is False
    monkeypatch.setattr(ratelimit, "_now_ms", lambda: now + 60_000)
    assert [d.allowed for d in hits(3, max_attempts=2)] == [True, True, False]


@pytest.mark.django_db
def test_per_user_counter_across_ips(user):
    assert all(ratelimit.hit(f"192.0.2.{i}", user, 2, 1).allowed for i in (1, 2))
    decision = ratelimit.hit("192.0.2.3", user, 2, 1)
    assert not decision.allowed and decision.first_refusal


@pytest.mark.django_db
def test_window_zero_counts_nothing(settings):
    settings.WEBSOCKETS = {"rate_limit_window_minutes": 0}  # a view's 0 means the setting, as in 4.1.0
    assert all(d.allowed for d in hits(10, max_attempts=1, window_minutes=None))
    assert not ConnectionRateCounter.objects.exists()


@pytest.mark.django_db
def test_locmem_cache_backend(locmem_cache):
    assert_limit_semantics(hits(6))
    assert not ConnectionRateCounter.objects.exists()
    assert ratelimit.check_connect_rate("192.0.2.1", max_attempts=3) == (False, 4)


@pytest.mark.django_db
def test_redis_backend(redis_cache, user):
    assert_limit_semantics(hits(6))
    assert ratelimit.check_connect_rate("192.0.2.1", max_attempts=3) == (False, 4)
    ratelimit.hit("192.0.2.7", user, 3, 1)
    client = redis_cache._cache.get_client(None, write=True)
    key = redis_cache.make_and_validate_key(ratelimit.CACHE_KEY_PREFIX + f"user:{user.pk}:60")
    assert 0 < client.ttl(key) <= 60  # every counter carries its window as a TTL
    assert not ConnectionRateCounter.objects.exists()


def test_redis_counter_holds_under_concurrency(redis_cache):
    """48 threads at once against one IP key (limit 5): exactly 5 admitted."""
    results = in_threads(48, lambda i: ratelimit.hit("198.51.100.1", None, 5, 1).allowed)
    assert results.count(True) == 5, results


# --- compatibility: the 4.1.0 classmethods ----------------------------------------------------


@pytest.mark.django_db
def test_classmethods_count_and_record(user):
    for _ in range(2):
        ConnectionRateLimit.record_attempt("10.0.0.1", user, successful=True)
    assert ConnectionRateLimit.objects.filter(ip_address="10.0.0.1", successful=True).count() == 2
    assert ConnectionRateLimit.check_rate_limit("10.0.0.1", user, max_attempts=3, window_minutes=1) == (True, 2)
    assert ConnectionRateLimit.check_rate_limit("10.0.0.9", user, max_attempts=2, window_minutes=1) == (False, 2)


# --- the audit trail through the view ------------------------------------------------------------


@pytest.mark.django_db
def test_a_flood_adds_one_audit_row_not_one_per_refusal(post_as_gateway, settings):
    settings.WEBSOCKETS = {"rate_limit_max_attempts": 2}
    statuses = [post_as_gateway("/open/", new_connection_id(), route="connect").status_code for _ in range(30)]
    assert statuses == [200, 200] + [429] * 28
    assert list(ConnectionRateLimit.objects.order_by("pk").values_list("successful", "reason")) == [
        (True, ""),
        (True, ""),
        (False, signals.REASON_RATE_LIMIT),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "mode,rows", [("all", [(True, ""), (False, "rate_limit")]), ("refusals", [(False, "rate_limit")]), ("off", [])]
)
def test_audit_modes(post_as_gateway, settings, mode, rows):
    settings.WEBSOCKETS = {"rate_limit_max_attempts": 1, "rate_limit_audit": mode}
    for _ in range(3):
        post_as_gateway("/open/", new_connection_id(), route="connect")
    assert list(ConnectionRateLimit.objects.order_by("pk").values_list("successful", "reason")) == rows


@pytest.mark.django_db
def test_failed_audit_write_of_a_refusal_does_not_change_the_answer(post_as_gateway, monkeypatch, caplog):
    monkeypatch.setitem(
        statements.for_alias(connection.alias), "rate_audit_insert", "INSERT INTO no_such_table (a, b, c, d, e)"
    )
    assert (
        post_as_gateway(
            "/ws/", new_connection_id(), route="connect", query="ws_token=nope-nope-nope-nope-nope"
        ).status_code
        == 401
    )
    assert "Could not store the connect attempt" in caplog.text


@pytest.mark.django_db
def test_accepted_connect_commits_its_audit_row_with_the_session(post_as_gateway, monkeypatch):
    # The row is written in the connect's transaction: both are kept, or neither.
    monkeypatch.setitem(
        statements.for_alias(connection.alias), "rate_audit_insert", "INSERT INTO no_such_table (a, b, c, d, e)"
    )
    cid = new_connection_id()
    assert post_as_gateway("/open/", cid, route="connect").status_code == 500
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()


# --- the checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend,warned",
    [
        ("django.core.cache.backends.locmem.LocMemCache", True),
        ("django.core.cache.backends.db.DatabaseCache", True),
        ("django.core.cache.backends.dummy.DummyCache", True),
        ("django.core.cache.backends.redis.RedisCache", False),
        ("django.core.cache.backends.memcached.PyMemcacheCache", False),
    ],
)
def test_w053_warns_about_a_cache_that_cannot_hold_the_limit(settings, backend, warned):
    settings.CACHES = {**settings.CACHES, "rl": {"BACKEND": backend, "LOCATION": "x"}}
    settings.WEBSOCKETS = {"rate_limit_cache": "rl"}
    found = checks.check_deploy_rate_limit_cache(None)
    assert [m.id for m in found] == (["aws_websockets.W053"] if warned else [])
    assert checks.check_rate_limit_cache(None) == []


def test_w053_silent_for_the_database_default(settings):
    settings.WEBSOCKETS = {}
    assert checks.check_deploy_rate_limit_cache(None) == []


def test_e054_unknown_alias(settings):
    settings.WEBSOCKETS = {"rate_limit_cache": "nope"}
    assert [m.id for m in checks.check_rate_limit_cache(None)] == ["aws_websockets.E054"]


# --- concurrency through the view, on PostgreSQL ----------------------------------------------------


def _connect(gateway, path, ip, cookies=None, query=""):
    client = Client()
    if cookies:
        client.cookies.update(cookies)
    headers = integration_headers(gateway, new_connection_id(), route="connect", source_ip=ip)
    return client.post(f"{path}connect" + (f"?{query}" if query else ""), headers=headers).status_code


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["database", "redis"])
def test_simultaneous_connects_from_one_ip_admit_at_most_the_limit(gateway, settings, backend, request):
    if backend == "redis":
        request.getfixturevalue("redis_cache")
    settings.WEBSOCKETS = {**getattr(settings, "WEBSOCKETS", {}), "rate_limit_max_attempts": 3}
    statuses = in_threads(24, lambda i: _connect(gateway, "/open/", "203.0.113.5"))
    assert sorted(statuses) == [200] * 3 + [429] * 21, statuses
    assert WebSocketSession.objects.count() == 3
    assert ConnectionRateLimit.objects.filter(reason=signals.REASON_RATE_LIMIT).count() == 1


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["database", "redis"])
def test_simultaneous_connects_of_one_user_admit_at_most_the_limit(gateway, user, settings, backend, request):
    """One user, 24 source IPs, each with its own valid token, all at once: 3 admitted."""
    if backend == "redis":
        request.getfixturevalue("redis_cache")
    settings.WEBSOCKETS = {**getattr(settings, "WEBSOCKETS", {}), "rate_limit_max_attempts": 3}
    login = Client()
    login.force_login(user)
    session_key = login.session.session_key
    raws = [tokens.issue_token(user, session_key) for _ in range(24)]
    statuses = in_threads(
        24, lambda i: _connect(gateway, "/ws/", f"203.0.113.{i + 10}", login.cookies, f"ws_token={raws[i]}")
    )
    assert sorted(statuses) == [200] * 3 + [429] * 21, statuses
    assert WebSocketSession.objects.filter(user=user).count() == 3
    # The refused connects spent no token.
    from django_aws_api_gateway_websockets.models import WebSocketToken

    assert WebSocketToken.objects.filter(used=True).count() == 3


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_one_token_used_twice_at_once_admits_one(gateway, user, settings):
    settings.WEBSOCKETS = {**getattr(settings, "WEBSOCKETS", {}), "rate_limit_max_attempts": 100}
    raw = tokens.issue_token(user, "browser-session")
    statuses = in_threads(8, lambda i: _connect(gateway, "/ws/", f"203.0.113.{i + 50}", query=f"ws_token={raw}"))
    assert sorted(statuses) == [200] + [401] * 7, statuses


@pytest.mark.django_db
def test_spend_token_returns_the_user_in_one_statement(user):
    raw = tokens.issue_token(user, "s")
    with CaptureQueriesContext(connection) as context:
        token = tokens.spend_token(raw)
    assert token.user == user and token.user.get_username() == user.get_username()
    expected = 1 if connection.vendor == "postgresql" else 2  # SQLite's RETURNING cannot name the user's table
    assert len(context.captured_queries) == expected, context.captured_queries
    assert tokens.spend_token(raw) is None


@pytest.mark.django_db
def test_spend_token_refuses_an_inactive_user_without_spending(user):
    raw = tokens.issue_token(user, "s")
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert tokens.spend_token(raw) is None
    from django_aws_api_gateway_websockets.models import WebSocketToken

    assert WebSocketToken.objects.get().used is False


@override_settings(WEBSOCKETS={"rate_limit_cache": "nope"})
def test_conf_accepts_the_empty_default_and_strings():
    from django_aws_api_gateway_websockets import conf

    assert conf.value_problem("rate_limit_cache", "") is None
    assert conf.value_problem("rate_limit_audit", "sometimes").startswith(
        'WEBSOCKETS["rate_limit_audit"] must be one of'
    )
