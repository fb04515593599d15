"""Monitoring: websocket_stats, the CleanupRun record, and the structured log records (docs/monitoring.md)."""

import json
import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_aws_api_gateway_websockets import ratelimit, tokens
from django_aws_api_gateway_websockets.models import ApiGateway, CleanupRun, WebSocketSession
from tests.management_server import ManagementServer

pytestmark = pytest.mark.django_db

LOG_FIELDS = ("connection_id", "route", "reason", "user_id")


def stats(*args):
    out = StringIO()
    call_command("websocket_stats", *args, stdout=out)
    return out.getvalue()


def sessions(gateway, *specs, connected=True):
    for connection_id, channel in specs:
        WebSocketSession.objects.create(
            connection_id=connection_id, channel_name=channel, api_gateway=gateway, connected=connected
        )


def age(connection_id, hours):
    WebSocketSession.objects.filter(connection_id=connection_id).update(
        created_on=timezone.now() - timedelta(hours=hours)
    )


# --- websocketStats ----------------------------------------------------------------------


def test_stats_json_per_gateway_and_channel(gateway, user):
    other = ApiGateway.objects.create(api_name="alerts", api_id="alerts0001")
    idle = ApiGateway.objects.create(api_name="idle", api_id="idle000001")
    sessions(gateway, ("a", "room"), ("b", "room"), ("c", "lobby"))
    sessions(other, ("d", "room"))
    WebSocketSession.objects.create(connection_id="orphan")  # its gateway record was deleted
    sessions(gateway, ("e", "room"), connected=False)
    age("c", 3)
    tokens.issue_token(user, "s1")
    ratelimit.record_connect_attempt("192.0.2.1", user, successful=True)
    call_command("cleanupWebSocketTokens", "--token-age=300", stdout=StringIO())

    data = json.loads(stats("--json"))

    assert (data["connected"], data["stale"], data["disconnected_rows"]) == (5, 1, 1)
    by_name = {g["name"]: g for g in data["gateways"]}
    assert by_name["chat"] == {
        "pk": gateway.pk,
        "name": "chat",
        "connected": 3,
        "stale": 1,
        "channels_total": 2,
        "channels": {"room": 2, "lobby": 1},
    }
    assert by_name["alerts"]["channels"] == {"room": 1}  # channels are per gateway
    assert by_name["idle"] == {
        "pk": idle.pk,
        "name": "idle",
        "connected": 0,
        "stale": 0,
        "channels_total": 0,
        "channels": {},
    }
    assert by_name["(no gateway)"]["pk"] is None and by_name["(no gateway)"]["channels"] == {"": 1}
    assert (data["tokens"], data["connection_attempts"]) == (1, 1)
    assert data["last_cleanup"]["cleanup_websocket_tokens"]["removed"] == {"tokens": 0, "rate_limits": 0}
    assert data["last_cleanup"]["clear_websocket_sessions"] is None


def test_busiest_channels_first_and_a_cap_per_gateway(gateway):
    sessions(gateway, ("a", "quiet"), ("b", "busy"), ("c", "busy"), ("d", "busy"))
    data = json.loads(stats("--json", "--channels=1"))
    assert data["gateways"][0]["channels"] == {"busy": 3}
    assert data["gateways"][0]["channels_total"] == 2
    assert "    busy: 3\n    ... 1 more channel(s)" in stats("--channels=1")


def test_stats_cost_a_fixed_number_of_queries(gateway, django_assert_max_num_queries):
    sessions(gateway, *((f"c{i}", f"channel-{i}") for i in range(50)))
    # Two more than before subscriptions (issue #25): connections per gateway, then channels
    # from the subscriptions and the connections holding none; fixed, whatever the channels.
    with django_assert_max_num_queries(9):
        data = json.loads(stats("--json"))
    assert data["gateways"][0]["channels_total"] == 50 and len(data["gateways"][0]["channels"]) == 20


def test_stats_text_warns_about_stale_sessions_until_cleared(gateway):
    sessions(gateway, ("a", ""))
    age("a", 3)
    text = stats()
    assert (
        f"Connected sessions: 1\n  chat (pk {gateway.pk}): 1 connected, 1 stale, 1 channel(s)\n    (no channel): 1"
        in text
    )
    assert (
        "Stale sessions (connected for more than 2 hours, API Gateway's cap): 1 - run clear_websocket_sessions --stale"
        in text
    )
    assert "Last clear_websocket_sessions: never" in text

    call_command("clear_websocket_sessions", "--stale", "--older-than=1", stdout=StringIO())

    text = stats()
    assert "Stale sessions (connected for more than 2 hours, API Gateway's cap): 0\n" in text
    assert '"sessions": 0, "stale_marked": 1}' in text  # marked, kept for a day


def test_negative_channel_cap_is_refused():
    with pytest.raises(CommandError, match="--channels"):
        stats("--channels=-1")


# --- CleanupRun ----------------------------------------------------------------------------


def test_cleanup_runs_are_recorded_and_pruned_after_30_days():
    call_command("clearWebSocketSessions", stdout=StringIO())
    first = CleanupRun.objects.get()
    assert (first.command, first.removed) == (
        "clear_websocket_sessions",
        {"sessions": 0, "history_messages": 0, "expired_message_parts": 0},
    )
    CleanupRun.objects.filter(pk=first.pk).update(ran_at=timezone.now() - timedelta(days=31))
    call_command("cleanupWebSocketTokens", stdout=StringIO())
    assert list(CleanupRun.objects.values_list("command", flat=True)) == ["cleanup_websocket_tokens"]


# --- structured logs ---------------------------------------------------------------------


@pytest.fixture
def package_logs(caplog):
    caplog.set_level(logging.DEBUG, logger="django_aws_api_gateway_websockets")
    return caplog


def package_records(caplog):
    return [r for r in caplog.records if r.name.startswith("django_aws_api_gateway_websockets.")]


def test_every_event_is_logged_once_with_the_structured_fields(package_logs, ws_client, user):
    bad = ws_client("/ws/", user=user)
    assert bad.connect(query={"ws_token": "forged"}).status_code == 401
    client = ws_client("/ws/", user=user)
    assert client.connect(channel="room").status_code == 200
    client.send({"handler": "ping"})
    client.disconnect()
    call_command("cleanupWebSocketTokens", stdout=StringIO())

    messages = [r.getMessage() for r in package_records(package_logs)]
    records = dict(zip(messages, package_records(package_logs), strict=False))
    assert all(messages.count(m) == 1 for m in ("WebSocket connected", "WebSocket disconnected"))
    rejected = next(r for m, r in records.items() if m.startswith("WebSocket connect rejected"))
    assert (rejected.connection_id, rejected.route, rejected.reason) == (bad.connection_id, "connect", "token")
    for message, level in (
        ("WebSocket connected", "INFO"),
        ("WebSocket message for ping", "DEBUG"),
        ("WebSocket disconnected", "INFO"),
    ):
        record = records[message]
        assert (record.levelname, record.connection_id, record.user_id) == (level, client.connection_id, user.pk)
    cleanup = records["Cleanup cleanup_websocket_tokens removed {'tokens': 1, 'rate_limits': 0}"]  # the used token
    assert (cleanup.name, cleanup.command) == ("django_aws_api_gateway_websockets.cleanup", "cleanup_websocket_tokens")
    assert_formattable(package_logs)


def test_send_failures_and_gone_connections_are_logged(package_logs, gateway):
    with ManagementServer() as server:
        ApiGateway.objects.filter(pk=gateway.pk).update(management_endpoint_url=server.url)
        sessions(gateway, ("forbidden-1", "room"), ("gone-1", "room"), ("ok-1", "room"))
        WebSocketSession.objects.in_channel("room").send_message({"n": 1})
    failed = next(r for r in package_records(package_logs) if r.levelname == "WARNING")
    assert (failed.name, failed.connection_id, failed.reason) == (
        "django_aws_api_gateway_websockets.sending",
        "forbidden-1",
        "ForbiddenException",
    )
    gone = next(r for r in package_records(package_logs) if "gone" in r.getMessage())
    assert (gone.connection_id, gone.connection_ids, gone.reason) == ("gone-1", ["gone-1"], "GoneException")
    assert_formattable(package_logs)


def assert_formattable(caplog):
    """The formatter docs/monitoring.md shows works on every record the package logs."""
    formatter = logging.Formatter(" ".join(f"{name}=%({name})s" for name in LOG_FIELDS) + " %(message)s")
    for record in package_records(caplog):
        assert all(hasattr(record, name) for name in LOG_FIELDS), record.getMessage()
        formatter.format(record)


def test_stats_count_a_connection_in_every_channel_it_holds_and_once_in_the_total(gateway):
    from django_aws_api_gateway_websockets.models import Subscription, WebSocketSession

    sessions(gateway, ("a", "room-1"), ("b", "room-1"))
    row = WebSocketSession.objects.get(connection_id="a")
    Subscription.objects.create(connection=row, channel="notifications")
    data = json.loads(stats("--json"))
    assert data["connected"] == 2
    assert data["gateways"][0]["channels"] == {"room-1": 2, "notifications": 1}
