"""The operations app: counters fed by the signals, the dashboard's numbers, staff only.
Run with --ds tests.settings_operations (tests/monitoring/test_operations_app.py does)."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

pytestmark = [
    pytest.mark.skipif(
        not apps.is_installed("django_aws_api_gateway_websockets.operations"),
        reason="needs --ds tests.settings_operations",
    ),
    pytest.mark.django_db(transaction=True),
]


def counts(metric=None):
    from django_aws_api_gateway_websockets.operations.models import MinuteCounter

    rows = MinuteCounter.objects.all() if metric is None else MinuteCounter.objects.filter(metric=metric)
    return {(row.metric, row.label): row.count for row in rows}


def test_one_update_per_event_after_commit_and_nothing_on_rollback():
    from django_aws_api_gateway_websockets.operations.counters import bump

    bump("message")  # autocommit: written at once (UPDATE finds nothing, INSERT)
    with CaptureQueriesContext(connection) as queries:
        bump("message")
    assert len(queries) == 1 and queries[0]["sql"].startswith("UPDATE")
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            bump("message")
        assert len(queries) == 0  # deferred to the commit: never holds the row during a request
    with pytest.raises(RuntimeError), transaction.atomic():
        bump("message")
        raise RuntimeError
    assert counts() == {("message", ""): 3}


def test_signals_feed_the_counters(ws_client, django_user_model):
    from django_aws_api_gateway_websockets import signals

    alice = django_user_model.objects.create_user("alice")
    ws = ws_client("/ws/", user=alice)
    assert ws.connect(channel="room-1").status_code == 200
    ws.send({"handler": "ping"})
    ws.send({"handler": "change_channel", "channel": "room-2"})
    ws.disconnect()
    assert ws_client("/ws/", user=alice).connect(token=False).status_code == 401
    signals.send_failed.send(sender=None, connection_id="x", error="LimitExceededException")
    signals.send_failed.send(sender=None, connection_id="y", error="ForbiddenException")
    signals.connection_gone.send(sender=None, connection_ids=["a", "b"])
    from django_aws_api_gateway_websockets.sending import SendResult

    signals.send_completed.send(sender=None, result=SendResult(delivered=["c1", "c2", "c3"]))
    gateway = ws.gateway.pk
    assert counts() == {
        ("connect", f"{gateway}|room-1"): 1,
        ("message", ""): 2,
        ("move_out", f"{gateway}|room-1"): 1,
        ("move_in", f"{gateway}|room-2"): 1,
        ("disconnect", f"{gateway}|room-2"): 1,
        ("rejected", "token"): 1,
        ("send_throttled", ""): 1,
        ("send_failed", ""): 1,
        ("send_gone", ""): 2,
        ("send_delivered", ""): 3,
    }


def test_dashboard_walks_open_connections_back_from_the_rows(django_user_model):
    from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
    from django_aws_api_gateway_websockets.operations.counters import this_minute
    from django_aws_api_gateway_websockets.operations.dashboard import snapshot
    from django_aws_api_gateway_websockets.operations.models import MinuteCounter

    gateway = ApiGateway.objects.create(
        api_name="chat", api_id="abc123", target_base_endpoint="https://x.example.com/ws/"
    )
    user = django_user_model.objects.create_user("bob")
    for i in range(3):
        WebSocketSession.objects.create(connection_id=f"c{i}", channel_name="lobby", user=user, api_gateway=gateway)
    now = timezone.now()
    minute = this_minute(now)
    label = f"{gateway.pk}|lobby"
    MinuteCounter.objects.create(minute=minute - timedelta(minutes=10), metric="connect", label=label, count=2)
    MinuteCounter.objects.create(minute=minute - timedelta(minutes=5), metric="connect", label=label, count=2)
    MinuteCounter.objects.create(minute=minute - timedelta(minutes=2), metric="disconnect", label=label, count=1)
    MinuteCounter.objects.create(minute=minute - timedelta(minutes=2), metric="rejected", label="origin", count=4)
    MinuteCounter.objects.create(minute=minute - timedelta(minutes=90), metric="message", count=99)  # not this hour
    data = snapshot(now=now)
    [line] = data["open"]
    assert line["label"] == "chat / lobby"
    series = line["data"]
    assert series[-1] == 3 and series[-3] == 3 and series[-4] == 4  # before the disconnect: 4
    assert series[-6] == 4 and series[-7] == 2 and series[-11] == 2 and series[-12] == 0
    assert data["open_now"] == [{"gateway_channel": "chat / lobby", "open": 3}] and data["open_total"] == 3
    assert data["rejected"] == {"origin": [0] * 57 + [4, 0, 0]}
    assert data["totals"]["message"] == 0 and data["totals"]["connect"] == 4
    assert len(data["minutes"]) == 60 and data["minutes"][-1] == int(minute.timestamp())


def test_the_page_and_its_data_are_for_staff_only(client, django_user_model):
    url = "/admin/aws_websockets_operations/minutecounter/"
    user = django_user_model.objects.create_user("carol", password="pw")
    client.force_login(user)
    assert client.get(url + "data/").status_code == 302  # to the admin's login page
    user.is_staff = True
    user.save()
    page = client.get(url)
    assert page.status_code == 200 and b"chart-open" in page.content and b"uPlot.iife.min.js" in page.content
    data = client.get(url + "data/").json()
    assert set(data) >= {"minutes", "open", "events", "sends", "rejected", "totals"}


def test_the_operations_page_has_no_action_a_forged_post_could_run(client, django_user_model):
    """The dashboard is read-only for every staff user: Django's delete action is not there,
    and a forged POST of it deletes no counter."""
    from django.contrib import admin
    from django.test import RequestFactory

    from django_aws_api_gateway_websockets.operations.models import MinuteCounter

    row = MinuteCounter.objects.create(minute=timezone.now(), metric="connect", count=3)
    staff = django_user_model.objects.create_superuser("dora", password="pw")
    request = RequestFactory().get("/admin/")
    request.user = staff
    assert admin.site._registry[MinuteCounter].get_actions(request) == {}
    client.force_login(staff)
    url = "/admin/aws_websockets_operations/minutecounter/"
    response = client.post(url, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert response.status_code == 200
    assert MinuteCounter.objects.filter(pk=row.pk).exists()


def test_dashboard_counts_open_connections_per_channel_from_subscriptions(django_user_model):
    from django_aws_api_gateway_websockets.models import ApiGateway, Subscription, WebSocketSession
    from django_aws_api_gateway_websockets.operations.dashboard import snapshot

    gateway = ApiGateway.objects.create(
        api_name="chat", api_id="abc123", target_base_endpoint="https://x.example.com/ws/"
    )
    rows = [
        WebSocketSession.objects.create(connection_id=f"c{i}", channel_name="lobby", api_gateway=gateway)
        for i in range(2)
    ]
    Subscription.objects.create(connection=rows[0], channel="notifications")  # one socket, two channels
    WebSocketSession.objects.create(connection_id="none", api_gateway=gateway)  # no channel at all
    data = snapshot()
    assert {item["gateway_channel"]: item["open"] for item in data["open_now"]} == {
        "chat / lobby": 2,
        "chat / notifications": 1,
        "chat / (default)": 1,
    }
    assert data["open_total"] == 3  # connections, each once
