"""Subscriptions on PostgreSQL (issue #25): what a subscribe and an unsubscribe cost in SQL, a
broadcast to a channel whose connections hold 4 channels each against today's single-channel
broadcast, and the CPU of one relayed client event (whisper), all measured in this run.

* ``subscribe_statements`` / ``unsubscribe_statements``: the handler's own statements, read on
  the wire (psycopg's protocol trace), beyond the message's own SELECT and counting UPDATE;
  ``*_on_the_wire``: every statement of the request, BEGIN/COMMIT included; the SQL is printed.
* ``broadcast_subscriptions_ratio_vs_single_channel``: seconds of ``in_channel(c).send_message``
  to 10,000 connections that hold 4 subscriptions each (40,000 subscription rows) over the
  seconds of today's broadcast (``filter(channel_name=...)`` on the connection rows, 10,000
  connections of one channel), the send backend in memory (``ManagementAPICapture``: no network,
  so the query and the fan-out's own work are all that is timed); interleaved rounds, medians.
* ``client_event_cpu_ms_per_event``: this process's CPU per ``whisper`` request through the
  whole Django stack to a channel of 10 other subscribers (in-memory backend), and
  ``client_event_cpu_ratio_vs_ping`` against a ``ping`` message measured the same way.

    python bench/subscriptions.py     # prints JSON; `make bench` records these keys
"""

import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

N_CONNECTIONS = int(os.environ.get("BENCH_N", 10_000))
CHANNELS_EACH = 4
ROUNDS = 7
EVENTS = 300
WHISPER_AUDIENCE = 10


def main():
    from bench.queries import scratch_database

    with scratch_database("ws_bench_subs"):
        results = {}
        results.update(statement_counts())
        results.update(broadcast_ratio())
        results.update(client_event_cpu())
        print(json.dumps(results), flush=True)


def _gateway():
    from django_aws_api_gateway_websockets.gateway_lookup import get_gateway
    from django_aws_api_gateway_websockets.models import ApiGateway

    record, _ = ApiGateway.objects.get_or_create(
        api_id="subs00001", defaults={"api_name": "subs", "region": "us-east-1"}
    )
    get_gateway(record.api_id)  # warm, as a server is
    return record


def _post(client, record, connection_id, body):
    from django_aws_api_gateway_websockets.testing import integration_headers

    return client.post(
        "/ws/default",
        json.dumps(body),
        content_type="application/json",
        headers=integration_headers(record, connection_id),
    )


def statement_counts():
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from django_aws_api_gateway_websockets.channel_access import channel_rules
    from django_aws_api_gateway_websockets.models import WebSocketSession
    from django_aws_api_gateway_websockets.testing import ManagementAPICapture
    from django_aws_api_gateway_websockets.testing.client import new_connection_id
    from tests.helpers import statements_on_the_wire

    setup_test_environment()
    record = _gateway()
    channel_rules()
    row = WebSocketSession.objects.create(connection_id=new_connection_id(), channel_name="first", api_gateway=record)
    client = Client()
    results, sql = {}, {}
    with ManagementAPICapture():
        _post(client, record, row.connection_id, {"handler": "ping"})  # warm
        steps = {
            "message": {"handler": "ping"},
            "subscribe": {"handler": "subscribe", "channel": "second"},
            "unsubscribe": {"handler": "unsubscribe", "channel": "second"},
        }
        for step, body in steps.items():
            with statements_on_the_wire(connection) as sent:
                response = _post(client, record, row.connection_id, body)
            assert response.status_code == 200, (step, response.content)
            sql[step] = [q[:160] for q in sent]
            results[f"{step}_statements_on_the_wire"] = len(sent)
    base = results.pop("message_statements_on_the_wire")
    for step in ("subscribe", "unsubscribe"):
        own = [q for q in sql[step] if q not in ("BEGIN", "COMMIT")]
        results[f"{step}_statements"] = len(own) - base  # beyond the message's SELECT and UPDATE
    results["subscribe_sql"] = sql
    return results


def _populate(record):
    """10,000 connections of channel "single" (today's shape: one channel, one subscription),
    and 10,000 of channel "all" that hold 3 more channels each."""
    from django.db import connection

    from django_aws_api_gateway_websockets.models import Subscription, WebSocketSession

    for channel in ("single", "all"):
        WebSocketSession.objects.bulk_create(
            (
                WebSocketSession(connection_id=f"{channel}-{i:06d}", channel_name=channel, api_gateway=record)
                for i in range(N_CONNECTIONS)
            ),
            batch_size=2000,
        )
    rows = WebSocketSession.objects.filter(channel_name="all").values_list("pk", flat=True)
    Subscription.objects.bulk_create(
        (
            Subscription(connection_id=pk, channel=channel)
            for i, pk in enumerate(rows)
            for channel in (f"room-{i % 100}", f"doc-{i % 1000}", f"user-{i}")[: CHANNELS_EACH - 1]
        ),
        batch_size=5000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def broadcast_ratio():
    from django_aws_api_gateway_websockets.models import Subscription, WebSocketSession
    from django_aws_api_gateway_websockets.sending import send_to_sessions
    from django_aws_api_gateway_websockets.testing import ManagementAPICapture

    record = _gateway()
    _populate(record)
    assert Subscription.objects.filter(connection__channel_name="all").count() == N_CONNECTIONS * CHANNELS_EACH
    payload = {"type": "bench", "text": "x" * 64}

    def single():  # today's broadcast: the connection rows of one channel
        return send_to_sessions(WebSocketSession.objects.filter(channel_name="single", connected=True), payload)

    def subscribed():  # every connection subscribed to "all", each holding 4 channels
        return send_to_sessions(WebSocketSession.objects.in_channel("all").filter(connected=True), payload)

    times = {"single": [], "subscribed": []}
    with ManagementAPICapture() as capture:
        for name, send in (("single", single), ("subscribed", subscribed)):  # warm
            assert len(send().delivered) == N_CONNECTIONS, name
        order = [("single", single), ("subscribed", subscribed)]
        for _ in range(ROUNDS):
            order.reverse()  # each goes first in turn: neither pays for the other's garbage
            for name, send in order:
                capture.clear()
                start = time.perf_counter()
                result = send()
                times[name].append(time.perf_counter() - start)
                assert len(result.delivered) == N_CONNECTIONS
    single_s, subscribed_s = statistics.median(times["single"]), statistics.median(times["subscribed"])
    # The query alone (what the join on the subscriptions changes): the rows the fan-out reads.
    queries = {"single": [], "subscribed": []}
    shapes = {
        "single": WebSocketSession.objects.filter(channel_name="single", connected=True),
        "subscribed": WebSocketSession.objects.in_channel("all").filter(connected=True),
    }
    for _ in range(ROUNDS):
        for name, rows in shapes.items():
            start = time.perf_counter()
            assert len(list(rows.values_list("pk", "connection_id", "api_gateway_id"))) == N_CONNECTIONS
            queries[name].append(time.perf_counter() - start)
    return {
        "broadcast_query_ratio_vs_single_channel": statistics.median(queries["subscribed"])
        / statistics.median(queries["single"]),
        "broadcast_query_subscriptions_seconds": statistics.median(queries["subscribed"]),
        "broadcast_query_single_channel_seconds": statistics.median(queries["single"]),
        "broadcast_subscriptions_ratio_vs_single_channel": subscribed_s / single_s,
        "broadcast_subscriptions_10000x4_seconds": subscribed_s,
        "broadcast_single_channel_10000_seconds": single_s,
    }


def client_event_cpu():
    from django.test import Client, override_settings

    from django_aws_api_gateway_websockets.models import Subscription, WebSocketSession
    from django_aws_api_gateway_websockets.testing import ManagementAPICapture

    record = _gateway()
    sender = WebSocketSession.objects.create(connection_id="whisperer", channel_name="typing", api_gateway=record)
    for i in range(WHISPER_AUDIENCE):
        WebSocketSession.objects.create(connection_id=f"listener-{i}", channel_name="typing", api_gateway=record)
    assert Subscription.objects.filter(channel="typing").count() == WHISPER_AUDIENCE + 1
    client = Client()
    whisper = {"handler": "whisper", "channel": "typing", "event": "typing", "data": {"typing": True}}
    cpu = {}
    with (
        override_settings(WEBSOCKETS={"client_events_channels": ["typing"], "message_rate_limit": 0}),
        ManagementAPICapture() as capture,
    ):
        for _name, body in (("ping", {"handler": "ping"}), ("whisper", whisper)):
            for _ in range(20):  # warm
                assert _post(client, record, sender.connection_id, body).status_code == 200
        for name, body in (("ping", {"handler": "ping"}), ("whisper", whisper)) * 2:
            start = time.process_time()
            for _ in range(EVENTS):
                _post(client, record, sender.connection_id, body)
            cpu.setdefault(name, []).append((time.process_time() - start) / EVENTS)
        assert len(capture.raw["listener-0"]) >= EVENTS
    whisper_ms, ping_ms = 1000 * min(cpu["whisper"]), 1000 * min(cpu["ping"])
    return {
        "client_event_cpu_ms_per_event": whisper_ms,
        "client_event_cpu_ratio_vs_ping": whisper_ms / ping_ms,
        "client_event_audience": WHISPER_AUDIENCE,
    }


if __name__ == "__main__":
    main()
