"""Nothing lost across reconnects (docs/history.md), through the local gateway: the gateway drops
every socket after seconds (max lifetime and idle limits), two senders broadcast numbered
messages with send_to_channel, and every client ends with all of them, in order, exactly once."""

import json
import threading
import time

import pytest
from django.db import connections
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from django_aws_api_gateway_websockets.history import send_to_channel
from django_aws_api_gateway_websockets.models import ApiGateway, ChannelMessage

from .conftest import ORIGIN

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SENDERS, PER_SENDER, CLIENTS = 2, 150, 4  # 300 messages
CHANNEL = "ticker"


class ResumingClient:
    """What the browser client does, in Python: order and de-duplicate by seq, resume on every
    reconnect, ask again when a gap stays open."""

    def __init__(self, url):
        self.url = f"{url}?channel={CHANNEL}"
        self.last = None
        self.pending = {}
        self.pending_since = None
        self.delivered = []  # the application's view: (sender, k) in delivery order
        self.seqs = []
        self.opens = 0
        self.gaps = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                with connect(self.url, origin=ORIGIN, open_timeout=5) as ws:
                    self.opens += 1
                    # Always: with no starting point yet, "after": null asks where the stream is.
                    ws.send(json.dumps({"handler": "resume", "channel": CHANNEL, "after": self.last}))
                    self._receive(ws)
            except (ConnectionClosed, InvalidStatus, InvalidHandshake, OSError, TimeoutError):
                time.sleep(0.05)

    def _receive(self, ws):
        while not self.stop.is_set():
            try:
                frame = json.loads(ws.recv(timeout=0.2))
            except TimeoutError:
                frame = None
            if frame is not None:
                if frame.get("type") == "replay":
                    for message in frame["messages"]:
                        self._sequenced(message)
                elif frame.get("type") == "resume_gap":
                    self.gaps.append(frame)
                elif frame.get("type") == "resumed":
                    if self.last is None:
                        self.last = frame["streams"][CHANNEL]
                elif "seq" in frame:
                    self._sequenced(frame)
            if self.pending and time.monotonic() - self.pending_since > 1.0:
                self.pending_since = time.monotonic()
                ws.send(json.dumps({"handler": "resume", "channel": CHANNEL, "after": self.last}))

    def _sequenced(self, message):
        seq = message["seq"]
        if self.last is None:
            self.last = seq - 1
        if seq <= self.last or seq in self.pending:
            return
        if not self.pending:
            self.pending_since = time.monotonic()
        self.pending[seq] = message
        while self.last + 1 in self.pending:
            self.last += 1
            delivered = self.pending.pop(self.last)
            self.delivered.append((delivered["sender"], delivered["k"]))
            self.seqs.append(self.last)


def test_every_client_gets_every_broadcast_once_in_order_across_forced_drops(
    django_db_setup, start_gateway, e2e_gateway, live_server, settings
):
    # django_db_setup first: the session-wide live server must start on the test database file
    # (each request thread its own connection), not on the ":memory:" one it would share.
    settings.WEBSOCKETS = {"rate_limit_max_attempts": 10_000}  # the clients reconnect every second
    ApiGateway.objects.filter(pk=e2e_gateway.pk).update(target_base_endpoint=f"{live_server.url}/history/")
    e2e_gateway.refresh_from_db()
    gateway = start_gateway(max_lifetime=1.5, idle_timeout=0.8)
    clients = [ResumingClient(gateway.ws_url) for _ in range(CLIENTS)]
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30  # a loaded 2-core machine: each connect waits its turn
        while time.monotonic() < deadline and any(c.last is None for c in clients):
            time.sleep(0.05)
        assert all(c.last == 0 for c in clients)  # each knows where the channel starts

        def sender(i):
            try:
                for k in range(PER_SENDER):
                    send_to_channel(CHANNEL, {"type": "tick", "sender": i, "k": k})
                    time.sleep(0.02)
            finally:
                connections.close_all()

        senders = [threading.Thread(target=sender, args=(i,)) for i in range(SENDERS)]
        started = time.monotonic()
        for t in senders:
            t.start()
        for t in senders:
            t.join(timeout=60)
        total = SENDERS * PER_SENDER
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(len(c.delivered) < total for c in clients):
            time.sleep(0.1)
        time.sleep(0.5)  # a late duplicate would be delivered now
        for c in clients:
            c.stop.set()
        for t in threads:
            t.join(timeout=5)
        elapsed = time.monotonic() - started

        stored = [
            (json.loads(p)["sender"], json.loads(p)["k"])
            for p in ChannelMessage.objects.filter(stream=CHANNEL).order_by("seq").values_list("payload", flat=True)
        ]
        assert len(stored) == total
        assert elapsed < 30
        for c in clients:
            assert c.gaps == []
            assert c.opens >= 3, "the gateway dropped the sockets several times"
            assert c.seqs == list(range(1, total + 1))  # all, in order, exactly once
            assert c.delivered == stored
            for i in range(SENDERS):  # each sender's messages in the order it sent them
                assert [k for s, k in c.delivered if s == i] == list(range(PER_SENDER))
    finally:  # a failure must not leave clients reconnecting into the next tests
        for c in clients:
            c.stop.set()
        for t in threads:
            t.join(timeout=5)


def test_a_near_limit_message_and_a_long_history_replay_through_the_gateway_page_by_page(
    django_db_setup, start_gateway, e2e_gateway, live_server, settings
):
    """The local gateway enforces API Gateway's 128 KB: a replay frame over it would be refused
    there. A ~128 KB message replays as first delivered; 250 more come in pages of 100."""
    settings.WEBSOCKETS = {"resume_page_messages": 100}
    ApiGateway.objects.filter(pk=e2e_gateway.pk).update(target_base_endpoint=f"{live_server.url}/history/")
    e2e_gateway.refresh_from_db()
    gateway = start_gateway()
    head = len('{"type":"big","blob":"","stream":"ticker","seq":1}')
    big = send_to_channel(CHANNEL, {"type": "big", "blob": "x" * (128 * 1024 - head - 20)})
    for k in range(250):
        send_to_channel(CHANNEL, {"type": "tick", "k": k})
    seqs, requests = [], 0
    with connect(f"{gateway.ws_url}?channel={CHANNEL}", origin=ORIGIN, open_timeout=5, max_size=None) as ws:
        after = 0
        while after is not None:
            ws.send(json.dumps({"handler": "resume", "channel": CHANNEL, "after": after}))
            requests += 1
            while True:
                raw = ws.recv(timeout=10)
                assert len(raw.encode()) <= 128 * 1024
                frame = json.loads(raw)
                if frame["type"] == "replay":
                    seqs.extend(m["seq"] for m in frame["messages"])
                elif frame["type"] == "resumed":
                    after = frame.get("more", {}).get(CHANNEL)
                    break
                else:
                    assert frame["type"] == "big" and frame["seq"] == big.seq  # alone, as first delivered
                    assert len(frame["blob"]) == 128 * 1024 - head - 20
                    seqs.append(frame["seq"])
    assert seqs == list(range(1, 252))  # all, in order, exactly once
    assert requests == 3
