from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_aws_api_gateway_websockets import signals, tokens
from django_aws_api_gateway_websockets.models import ConnectionRateLimit, WebSocketSession, WebSocketToken

pytestmark = pytest.mark.django_db


def run(*args, **kwargs):
    out = StringIO()
    call_command(*args, stdout=out, **kwargs)
    return out.getvalue()


def make_session(gateway, cid, connected, age_days=0, created_hours=0):
    row = WebSocketSession.objects.create(connection_id=cid, api_gateway=gateway, connected=connected)
    WebSocketSession.objects.filter(pk=row.pk).update(
        updated_on=timezone.now() - timedelta(days=age_days),
        created_on=timezone.now() - timedelta(hours=created_hours),
    )


def test_clear_sessions_deletes_disconnected_only(gateway):
    make_session(gateway, "a", True)
    make_session(gateway, "b", False)
    assert "Deleted 1 disconnected session(s)." in run("clear_websocket_sessions")
    assert list(WebSocketSession.objects.values_list("connection_id", flat=True)) == ["a"]


def test_clear_sessions_older_than(gateway):
    make_session(gateway, "recent", False, age_days=1)
    make_session(gateway, "old", False, age_days=10)
    assert "Deleted 1" in run("clearWebSocketSessions", "--older-than", "7")
    assert list(WebSocketSession.objects.values_list("connection_id", flat=True)) == ["recent"]


def test_clear_sessions_stale(gateway):
    make_session(gateway, "fresh", True, created_hours=1)
    make_session(gateway, "stale", True, created_hours=3)
    out = run("clearWebSocketSessions", "--stale", "--older-than", "1")
    assert "Marked 1 stale session(s) disconnected." in out
    assert WebSocketSession.objects.get(connection_id="stale").connected is False
    assert WebSocketSession.objects.get(connection_id="fresh").connected is True


def test_clear_sessions_rejects_negative_age():
    with pytest.raises(CommandError):
        run("clearWebSocketSessions", "--older-than", "-1")


def test_cleanup_tokens_and_rate_limits(user):
    tokens.issue_token(user, "s")
    old = WebSocketToken.objects.get()
    WebSocketToken.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(seconds=400))
    tokens.issue_token(user, "s")
    attempt = ConnectionRateLimit.objects.create(ip_address="1.1.1.1")
    ConnectionRateLimit.objects.filter(pk=attempt.pk).update(attempt_time=timezone.now() - timedelta(days=8))
    ConnectionRateLimit.objects.create(ip_address="2.2.2.2")
    seen = []
    receiver = lambda sender, command, removed, **kw: seen.append((command, removed))  # noqa: E731
    signals.cleanup_run.connect(receiver)
    try:
        out = run("cleanup_websocket_tokens", "--token-age=300", "--rate-limit-age=7")
    finally:
        signals.cleanup_run.disconnect(receiver)
    assert "Deleted 1 WebSocket token(s)." in out
    assert "Deleted 1 connection attempt record(s)." in out
    assert WebSocketToken.objects.count() == 1 and ConnectionRateLimit.objects.count() == 1
    assert seen == [("cleanup_websocket_tokens", {"tokens": 1, "rate_limits": 1})]


def test_clear_sessions_counts_connections_not_their_subscriptions(gateway):
    from django_aws_api_gateway_websockets.models import Subscription

    row = WebSocketSession.objects.create(
        connection_id="gone", channel_name="room-1", api_gateway=gateway, connected=False
    )
    Subscription.objects.create(connection=row, channel="notifications")
    assert "Deleted 1 disconnected session(s)." in run("clear_websocket_sessions")
    assert not Subscription.objects.exists()  # gone with their connection
