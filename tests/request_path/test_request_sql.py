"""The request path's SQL (db/): each outcome must be the ORM's / the general path's. Found in
the adversarial review of the request path SQL."""

import datetime
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import signals as model_signals
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_aws_api_gateway_websockets import tokens
from django_aws_api_gateway_websockets.db import sessions as session_sql
from django_aws_api_gateway_websockets.db.rows import column_name
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ConnectionRateCounter,
    ConnectionRateLimit,
    WebSocketSession,
    WebSocketToken,
)

from ..helpers import break_connect_statement, connect, run_pytest_with_settings

ONE_STATEMENT = connection.vendor == "postgresql"


def one_statement_used(queries):
    return any(q["sql"].startswith("WITH ") and "spent AS (UPDATE" in q["sql"] for q in queries)


def _fields(instance):
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def _assert_same_as_orm(connection_id):
    orm = WebSocketSession.objects.select_related("api_gateway", "user").get(connection_id=connection_id)
    raw = session_sql.load_connection(connection_id)
    assert _fields(raw) == _fields(orm)
    assert raw._state.db == orm._state.db and raw._state.adding is orm._state.adding is False
    for name in ("api_gateway", "user"):
        a, b = getattr(raw, name), getattr(orm, name)
        assert (a is None) == (b is None)
        if a is not None:
            assert _fields(a) == _fields(b)
            assert {k: type(v) for k, v in _fields(a).items()} == {k: type(v) for k, v in _fields(b).items()}
            assert a._state.db == b._state.db
    assert {k: type(v) for k, v in _fields(raw).items()} == {k: type(v) for k, v in _fields(orm).items()}


def _rows(user, gateway, rotated_at=datetime.datetime(2026, 3, 29, 1, 30, tzinfo=datetime.UTC)):
    ApiGateway.objects.filter(pk=gateway.pk).update(
        tags={"env": "prod", "n": [1, 2.5, None], "nested": {"ok": True}},
        previous_integration_secret="old-secret",
        secret_rotated_at=rotated_at,
    )
    WebSocketSession.objects.create(connection_id="with-user=", user=user, api_gateway=gateway, channel_name="c")
    WebSocketSession.objects.create(connection_id="anonymous=", api_gateway=gateway)
    WebSocketSession.objects.create(connection_id="no-gateway=", user=user)


CIDS = ["with-user=", "anonymous=", "no-gateway="]


@pytest.mark.django_db
@pytest.mark.parametrize("cid", CIDS)
def test_load_connection_is_the_orm_select_related(user, gateway, cid):
    _rows(user, gateway)
    _assert_same_as_orm(cid)


@pytest.mark.django_db
@pytest.mark.parametrize("cid", CIDS)
def test_load_connection_with_a_non_utc_time_zone(user, gateway, cid):
    with override_settings(TIME_ZONE="America/New_York"):
        _rows(user, gateway)
        _assert_same_as_orm(cid)


@pytest.mark.django_db
@pytest.mark.parametrize("cid", CIDS)
def test_load_connection_without_use_tz(user, gateway, cid):
    with override_settings(USE_TZ=False, TIME_ZONE="Asia/Kolkata"):
        _rows(user, gateway, datetime.datetime(2026, 3, 29, 1, 30))
        _assert_same_as_orm(cid)


# --- $connect: the one statement against the general path ------------------------------------


def _counts():
    return dict(ConnectionRateCounter.objects.values_list("key", "count"))


@pytest.fixture
def locmem_limiter(settings):
    import uuid

    settings.CACHES = {
        **settings.CACHES,
        "review-rl": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex},
    }
    settings.WEBSOCKETS = {"rate_limit_cache": "review-rl"}
    from django.core.cache import caches

    return caches["review-rl"]


@pytest.mark.django_db(transaction=True)
def test_duplicate_connection_id_with_a_cache_limiter_counts_the_attempt_once(
    locmem_limiter, client, user, post_as_gateway, token
):
    from django_aws_api_gateway_websockets import ratelimit

    cid, response = connect(post_as_gateway, f"ws_token={token}")
    assert response.status_code == 200
    second = tokens.issue_token(user, client.session.session_key)
    with CaptureQueriesContext(connection) as ctx:
        assert connect(post_as_gateway, f"ws_token={second}", connection_id=cid)[1].status_code == 409
    assert one_statement_used(ctx.captured_queries) is ONE_STATEMENT
    # two attempts, each counted once (the general path counts before its transaction)
    keys = ratelimit.counter_keys("127.0.0.1", user.pk, 60)
    found = locmem_limiter.get_many([ratelimit.CACHE_KEY_PREFIX + k for k in keys])
    assert sorted(found.values()) == [2, 2], found
    assert WebSocketToken.objects.get(token=tokens.hash_token(second)).used is False


def _break_the_connect_write(monkeypatch):
    """A database error where the connect writes: inside the one statement on PostgreSQL, in
    the connection row's INSERT on the general path."""
    from django.db import DatabaseError

    if ONE_STATEMENT:
        break_connect_statement(monkeypatch, "1 / 0")
        return

    def broken_insert(**values):
        raise DatabaseError("injected")

    monkeypatch.setattr(session_sql, "insert_session", broken_insert)


@pytest.mark.django_db(transaction=True)
def test_a_database_error_counts_the_attempt_as_the_general_path(monkeypatch, post_as_gateway, token):
    _break_the_connect_write(monkeypatch)
    with CaptureQueriesContext(connection) as ctx:
        response = connect(post_as_gateway, f"ws_token={token}")[1]
    assert response.status_code == 500
    if ONE_STATEMENT:
        assert any("1 / 0" in q["sql"] for q in ctx.captured_queries)
    assert WebSocketToken.objects.get().used is False
    assert not WebSocketSession.objects.exists()
    assert ConnectionRateLimit.objects.get().reason == "error"
    # counted before anything else, as the general path does
    assert set(_counts().values()) == {1}


@pytest.mark.django_db(transaction=True)
def test_a_database_error_past_the_limit_is_429_as_the_general_path(
    settings, monkeypatch, client, user, post_as_gateway
):
    settings.WEBSOCKETS = {"rate_limit_max_attempts": 1}
    client.force_login(user)
    first = tokens.issue_token(user, client.session.session_key)
    assert connect(post_as_gateway, f"ws_token={first}")[1].status_code == 200
    _break_the_connect_write(monkeypatch)
    second = tokens.issue_token(user, client.session.session_key)
    assert connect(post_as_gateway, f"ws_token={second}")[1].status_code == 429
    assert set(_counts().values()) == {2}


# --- custom user models (their own settings modules: a subprocess each) -----------------------


@pytest.mark.parametrize("settings_module", ["tests.settings_custom_user", "tests.settings_child_user"])
def test_request_path_with_a_custom_user_model(settings_module):
    """tests/user_models/: a UUID pk that is not the first column (the first may be
    NULL), a table and columns that need quoting or look like the statement's own, and a
    multi-table-inheritance user (its columns in two tables)."""
    run_pytest_with_settings(settings_module, "tests/user_models", "users")


@pytest.mark.django_db(transaction=True)
def test_a_save_receiver_connected_after_the_statements_were_cached_fires(client, user, post_as_gateway, token):
    assert connect(post_as_gateway, f"ws_token={token}")[1].status_code == 200  # the SQL is cached now
    saved = []

    def receiver(sender, instance, created, **kwargs):
        saved.append((instance.connection_id, created))

    model_signals.post_save.connect(receiver, sender=WebSocketSession)
    try:
        second = tokens.issue_token(user, client.session.session_key)
        with CaptureQueriesContext(connection) as ctx:
            cid, response = connect(post_as_gateway, f"ws_token={second}")
    finally:
        model_signals.post_save.disconnect(receiver, sender=WebSocketSession)
    assert response.status_code == 200
    assert saved == [(cid, True)]
    assert not one_statement_used(ctx.captured_queries)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.cached_db",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.signed_cookies",
    ],
)
def test_other_session_engines_connect_as_the_default_one(settings, engine, user, gateway):
    from django.test import Client

    from django_aws_api_gateway_websockets.testing import integration_headers
    from django_aws_api_gateway_websockets.testing.client import new_connection_id

    settings.SESSION_ENGINE = engine
    browser = Client()
    browser.force_login(user)
    raw = tokens.issue_token(user, browser.session.session_key)
    cid = new_connection_id()
    response = browser.post(f"/ws/connect?ws_token={raw}", headers=integration_headers(gateway, cid, route="connect"))
    assert response.status_code == 200, response.content
    assert WebSocketSession.objects.get(connection_id=cid).user == user
    other = tokens.issue_token(user, "not-this-login")
    response = browser.post(
        f"/ws/connect?ws_token={other}", headers=integration_headers(gateway, new_connection_id(), route="connect")
    )
    assert response.status_code == 401


def test_column_name_of_a_concrete_field_and_of_a_field_without_one():
    """Found by type-checking the whole package (mypy with django-stubs, issue #14)."""
    assert column_name(ApiGateway._meta.pk) == "id"
    assert column_name(User._meta.get_field("username")) == "username"
    with pytest.raises(ValueError):  # e.g. a ForeignObject, whose columns are other fields'
        column_name(SimpleNamespace(column=None))
