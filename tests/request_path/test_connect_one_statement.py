"""$connect as one statement (pipeline/one_statement.py, db/connect.py): outside a transaction, on PostgreSQL, a view
with nothing of its own between the checks and the commit connects with one SQL statement
after the session read and the rate-limit count, and every outcome is the general path's.

These tests commit (``transaction=True``): the one-statement path is never taken inside a
transaction, so the rest of the suite (run in test transactions) covers the general path.
On SQLite the same assertions hold through the general path.
"""

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import include, path

from django_aws_api_gateway_websockets import login, signals, tokens
from django_aws_api_gateway_websockets.models import (
    ChannelPermission,
    ConnectionRateCounter,
    ConnectionRateLimit,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.testing import integration_headers
from django_aws_api_gateway_websockets.testing.client import new_connection_id
from tests.views import ChatView

from ..concurrency import in_threads
from ..helpers import break_connect_statement, connect

pytestmark = pytest.mark.django_db(transaction=True)
ONE_STATEMENT = connection.vendor == "postgresql"


def one_statement_used(queries):
    return any(q["sql"].startswith("WITH ") and "spent AS (UPDATE" in q["sql"] for q in queries)


def test_connect_is_one_statement_after_the_session_read_and_the_count(client, post_as_gateway, token, user, gateway):
    # a first connect fills the process caches (the gateway record, the channel rules)
    warm = tokens.issue_token(user, client.session.session_key)
    assert connect(post_as_gateway, f"ws_token={warm}")[1].status_code == 200
    with CaptureQueriesContext(connection) as ctx:
        cid, response = connect(post_as_gateway, f"ws_token={token}&channel=room-1")
    assert response.status_code == 200, response.content
    session = WebSocketSession.objects.get(connection_id=cid)
    assert (session.user, session.channel_name, session.api_gateway, session.connected, session.request_count) == (
        user,
        "room-1",
        gateway,
        True,
        1,
    )
    assert session.session_key_hash == login.hash_session_key(client.session.session_key)
    assert session.auth_hash == login.auth_hash(user)
    # The connect query's channel is the first subscription (issue #25), in the same statement.
    assert list(session.subscriptions.values_list("channel", flat=True)) == ["room-1"]
    assert WebSocketToken.objects.get(token=tokens.hash_token(token)).used is True
    attempt = ConnectionRateLimit.objects.latest("pk")
    assert (attempt.successful, attempt.user_id, attempt.reason) == (True, user.pk, "")
    if ONE_STATEMENT:
        assert one_statement_used(ctx.captured_queries)
        # the browser's session row, then the count and the connect in one statement
        assert len(ctx.captured_queries) == 2, [q["sql"] for q in ctx.captured_queries]


def test_spent_token_is_refused_and_nothing_is_kept(post_as_gateway, token):
    assert connect(post_as_gateway, f"ws_token={token}")[1].status_code == 200
    cid, response = connect(post_as_gateway, f"ws_token={token}")
    assert response.status_code == 401
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()
    assert list(ConnectionRateLimit.objects.order_by("pk").values_list("successful", "reason")) == [
        (True, ""),
        (False, "token"),
    ]


def test_duplicate_connection_id_is_409_and_the_token_stays_unspent(client, user, post_as_gateway, token):
    cid, response = connect(post_as_gateway, f"ws_token={token}")
    assert response.status_code == 200
    second = tokens.issue_token(user, client.session.session_key)
    assert connect(post_as_gateway, f"ws_token={second}", connection_id=cid)[1].status_code == 409
    assert WebSocketSession.objects.count() == 1
    # the refused attempt still counts (IP and user)
    assert set(ConnectionRateCounter.objects.values_list("count", flat=True)) == {2}
    assert WebSocketToken.objects.get(token=tokens.hash_token(second)).used is False
    assert connect(post_as_gateway, f"ws_token={second}")[1].status_code == 200


def test_token_of_another_login_is_refused_and_stays_unspent(client, user, other_user, post_as_gateway):
    client.force_login(other_user)
    raw = tokens.issue_token(user, client.session.session_key)
    assert connect(post_as_gateway, f"ws_token={raw}")[1].status_code == 401
    assert WebSocketToken.objects.get().used is False
    assert not WebSocketSession.objects.exists()


def test_inactive_user_is_refused_and_the_token_stays_unspent(user, post_as_gateway, token):
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert connect(post_as_gateway, f"ws_token={token}")[1].status_code == 401
    assert WebSocketToken.objects.get().used is False
    assert not WebSocketSession.objects.exists()


def test_password_changed_without_signals_stores_the_current_login_hash(user, post_as_gateway, token):
    # The session still holds the old hash; the row must carry the user's current one, so
    # that the next message sees the login as it is (login.connection_outlived_login).
    user.set_password("changed-behind-the-signals")
    type(user).objects.filter(pk=user.pk).update(password=user.password)
    cid, response = connect(post_as_gateway, f"ws_token={token}")
    assert response.status_code == 200
    assert WebSocketSession.objects.get(connection_id=cid).auth_hash == login.auth_hash(user)


def test_past_the_limit_the_statement_counts_and_changes_nothing_else(settings, client, user, post_as_gateway):
    settings.WEBSOCKETS = {"rate_limit_max_attempts": 2}
    raws = [tokens.issue_token(user, client.session.session_key) for _ in range(4)]
    statuses = [connect(post_as_gateway, f"ws_token={raw}")[1].status_code for raw in raws]
    assert statuses == [200, 200, 429, 429]
    assert WebSocketSession.objects.count() == 2
    assert WebSocketToken.objects.filter(used=True).count() == 2
    # one audit row per accepted connect, one for the first refusal only; counters capped
    assert list(ConnectionRateLimit.objects.order_by("pk").values_list("successful", "reason")) == [
        (True, ""),
        (True, ""),
        (False, "rate_limit"),
    ]
    assert set(ConnectionRateCounter.objects.values_list("count", flat=True)) == {3}


@pytest.mark.parametrize("mode, rows", [("refusals", 0), ("off", 0), ("all", 1)])
def test_audit_setting_governs_the_accepted_attempt_row(settings, post_as_gateway, token, mode, rows):
    settings.WEBSOCKETS = {"rate_limit_audit": mode}
    assert connect(post_as_gateway, f"ws_token={token}")[1].status_code == 200
    assert ConnectionRateLimit.objects.count() == rows


def test_one_token_used_at_once_by_eight_requests_opens_one_connection(client, user, gateway, token):
    from django.test import Client

    cookie = client.cookies["sessionid"].value

    def attempt(i):
        browser = Client()
        browser.cookies["sessionid"] = cookie
        cid = new_connection_id()
        headers = integration_headers(gateway, cid, route="connect", source_ip=f"203.0.113.{i + 1}")
        return browser.post(f"/ws/connect?ws_token={token}", headers=headers).status_code

    statuses = in_threads(8, attempt)
    assert sorted(statuses) == [200] + [401] * 7, statuses
    assert WebSocketSession.objects.count() == 1


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, sender, **kwargs):
        self.calls.append(kwargs["session"].connection_id)


def test_a_connected_receiver_gets_the_general_path(post_as_gateway, token):
    recorder = Recorder()
    signals.connected.connect(recorder)
    try:
        with CaptureQueriesContext(connection) as ctx:
            cid, response = connect(post_as_gateway, f"ws_token={token}")
    finally:
        signals.connected.disconnect(recorder)
    assert response.status_code == 200
    assert recorder.calls == [cid]
    assert not one_statement_used(ctx.captured_queries)


def test_a_restricted_channel_gets_the_general_path(post_as_gateway, token):
    ChannelPermission.objects.create(channel_name="staff-room", access=ChannelPermission.Access.STAFF_ONLY)
    with CaptureQueriesContext(connection) as ctx:
        response = connect(post_as_gateway, f"ws_token={token}&channel=staff-room")[1]
    assert response.status_code == 403
    assert not one_statement_used(ctx.captured_queries)
    assert WebSocketToken.objects.get().used is False


def test_an_open_channel_rule_keeps_one_statement(post_as_gateway, token):
    ChannelPermission.objects.create(channel_name="lobby", access=ChannelPermission.Access.ALLOW_ALL)
    with CaptureQueriesContext(connection) as ctx:
        response = connect(post_as_gateway, f"ws_token={token}&channel=lobby")[1]
    assert response.status_code == 200
    assert one_statement_used(ctx.captured_queries) is ONE_STATEMENT


@pytest.mark.parametrize(
    "query, status",
    [("channel=bad%20name&ws_token={t}", 400), ("ws_token={t}&ws_token={t}", 400), ("ws_token=short", 401)],
)
def test_bad_queries_get_the_general_paths_answers(post_as_gateway, token, query, status):
    assert connect(post_as_gateway, query.format(t=token))[1].status_code == status
    assert WebSocketToken.objects.get().used is False


def test_a_view_with_a_connect_hook_gets_the_general_path(post_as_gateway, token):
    # /explicit/ (tests/views.py ExplicitView) overrides connect
    with CaptureQueriesContext(connection) as ctx:
        response = connect(post_as_gateway, f"ws_token={token}", path="/explicit/")[1]
    assert response.status_code in (200, 403)
    assert not one_statement_used(ctx.captured_queries)


@override_settings(ATOMIC_REQUESTS=True)
def test_atomic_requests_get_the_general_path(settings, post_as_gateway, token):
    settings.DATABASES["default"]["ATOMIC_REQUESTS"] = True
    try:
        with CaptureQueriesContext(connection) as ctx:
            response = connect(post_as_gateway, f"ws_token={token}")[1]
    finally:
        settings.DATABASES["default"]["ATOMIC_REQUESTS"] = False
    assert response.status_code == 200
    assert not one_statement_used(ctx.captured_queries)


def test_a_database_error_is_a_500_and_keeps_nothing(monkeypatch, post_as_gateway, token):
    break_connect_statement(monkeypatch, "no_such_column")
    response = connect(post_as_gateway, f"ws_token={token}")[1]
    if ONE_STATEMENT:
        assert response.status_code == 500
        assert WebSocketToken.objects.get().used is False
        assert not WebSocketSession.objects.exists()
        assert ConnectionRateLimit.objects.get().reason == "error"
        assert set(ConnectionRateCounter.objects.values_list("count", flat=True)) == {1}  # counted by itself
    else:
        assert response.status_code == 200


# --- a hook given to as_view() (a URLconf's ChatView.as_view(can_join_channel=...)) ---------------


def _deny_channel(request, channel_name):
    return False


def _deny_check(request, *args, **kwargs):
    return False, "closed for maintenance"


def _deny_permissions(request):
    return False


urlpatterns = [
    path("deny-channel/<slug:route>", ChatView.as_view(can_join_channel=_deny_channel)),
    path("deny-check/<slug:route>", ChatView.as_view(_additional_connection_checks=_deny_check)),
    path("deny-permissions/<slug:route>", ChatView.as_view(has_required_permissions=_deny_permissions)),
    path("", include("tests.urls")),
]


@pytest.mark.parametrize("prefix", ["deny-channel", "deny-check", "deny-permissions"])
def test_a_hook_given_to_as_view_is_called_on_every_path(client, post_as_gateway, token, settings, prefix):
    """A hook passed to ``as_view()`` runs on the instance: the plan must see it, or the one
    statement connects without calling it (the refusal was skipped on PostgreSQL)."""
    settings.ROOT_URLCONF = __name__
    cid, response = connect(post_as_gateway, f"ws_token={token}&channel=room-1", path=f"/{prefix}/")
    assert response.status_code == 403, response.content
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()
    assert WebSocketToken.objects.get(token=tokens.hash_token(token)).used is False
