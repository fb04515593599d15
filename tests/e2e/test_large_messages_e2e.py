"""Messages of any size both ways through the local gateway, which enforces AWS's limits (32 KB
a client frame, 128 KB a message and a POST): issue #26, docs/large-messages.md."""

import json
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from django_aws_api_gateway_websockets import parts, signals
from django_aws_api_gateway_websockets.history import send_to_channel
from django_aws_api_gateway_websockets.models import ApiGateway, ChannelMessage, MessagePart, WebSocketSession
from django_aws_api_gateway_websockets.testing.parts import PartsSocket, client_frames

from ..helpers import wait_for
from .conftest import ORIGIN

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MB = 1024 * 1024
CHANNEL = "big"


@pytest.fixture
def large_gateway(e2e_gateway, live_server, start_gateway, settings):
    settings.WEBSOCKETS = {"message_rate_limit": 0}
    ApiGateway.objects.filter(pk=e2e_gateway.pk).update(target_base_endpoint=f"{live_server.url}/large/")
    e2e_gateway.refresh_from_db()
    return start_gateway


@pytest.fixture
def handled():
    seen = []

    def receiver(sender, handler, **kwargs):
        seen.append(handler)

    signals.message_received.connect(receiver)
    yield seen
    signals.message_received.disconnect(receiver)


def open_socket(thread):
    # compression=None: API Gateway negotiates no permessage-deflate, so frames are as sent.
    return connect(f"{thread.ws_url}?channel={CHANNEL}", origin=ORIGIN, open_timeout=5, max_size=None, compression=None)


def upload(size, reply_bytes):
    """A message of exactly ``size`` encoded bytes asking for a reply of ``reply_bytes``."""
    head = {"handler": "upload", "reply_bytes": reply_bytes, "blob": ""}
    return {**head, "blob": "x" * (size - len(json.dumps(head, separators=(",", ":"))))}


@pytest.mark.parametrize("size", [200 * 1024, MB - 64, MB], ids=["200KB", "1MB", "max"])
def test_a_large_message_goes_both_ways_whole(large_gateway, handled, size):
    thread = large_gateway()
    with open_socket(thread) as ws:
        sock = PartsSocket(ws)
        frames = client_frames(upload(size, size))
        assert len(frames) > 1 and all(len(f.encode()) <= 32 * 1024 for f in frames)
        assert sock.send(upload(size, size)) == len(frames)
        raw = []
        while True:  # the reply, as it arrives: parts, each within one post
            frame = ws.recv(timeout=20)
            raw.append(frame)
            whole = sock.reassembler.feed(frame)
            if whole is not None:
                break
        echo = json.loads(whole)
        assert echo["type"] == "echo" and echo["received"] == size
        assert len(whole.encode()) == size
        assert all(len(f.encode()) <= 128 * 1024 for f in raw) and all(parts.is_part(f) for f in raw)
    assert handled == ["upload"]  # once, on the whole message
    assert not MessagePart.objects.exists()


def test_a_message_over_the_limit_is_refused_to_the_client_and_nothing_runs(large_gateway, handled, settings):
    settings.WEBSOCKETS = {"message_rate_limit": 0, "max_message_bytes": 100_000}
    thread = large_gateway()
    with open_socket(thread) as ws:
        sock = PartsSocket(ws)
        sock.send(upload(100_001, 10))
        errors = []
        while not errors:
            frame = sock.recv(timeout=10)
            if frame.get("type") == "message_error":
                errors.append(frame)
        assert (errors[0]["error"], errors[0]["status"]) == ("too_large", 413)
    assert handled == []


def test_a_client_that_drops_mid_message_runs_nothing_and_its_parts_expire(large_gateway, handled):
    thread = large_gateway()
    frames = client_frames(upload(MB - 64, 10), "halfway")
    with open_socket(thread) as ws:
        for frame in frames[: len(frames) // 2]:
            ws.send(frame)
        # Still connected: a part that never comes ends in an "expired" error frame.
        ws.send(json.dumps({"handler": "upload", "reply_bytes": 10}))  # a small message goes through
        assert json.loads(ws.recv(timeout=10))["type"] == "echo"
        MessagePart.objects.update(created_on=timezone.now() - timedelta(seconds=61))
        ws.send(client_frames(upload(50_000, 10), "next")[0])
        error = json.loads(ws.recv(timeout=10))
        assert (error["type"], error["p"], error["error"]) == ("message_error", "halfway", "expired")
        for frame in frames[: len(frames) // 2]:  # and again, then the socket drops
            ws.send(frame)
    assert handled == ["upload"]  # the small one only

    # The gateway may still be relaying those parts after the socket closed: a part stored
    # after a cleanup is fresh and stays until it expires too, so age and clean until none is left.
    def cleaned():
        MessagePart.objects.update(created_on=timezone.now() - timedelta(seconds=61))
        call_command("clear_websocket_sessions", verbosity=0)
        return not MessagePart.objects.exists()

    assert wait_for(cleaned, 30)


def test_a_socket_dropped_mid_message_gets_no_half_and_resume_replays_it_whole(large_gateway):
    """The gateway answers each POST after 100 ms, so the 9 parts of 1 MB take a second: the
    client reads two of them and closes. The send reports it gone (not delivered); the client
    never saw half a message; after reconnecting, resume replays the stored message whole."""
    thread = large_gateway(management_latency_ms=100)
    blob = {"type": "report", "blob": "r" * (MB - 100)}
    with open_socket(thread) as ws:
        connection_id = WebSocketSession.objects.get().connection_id
        sock = PartsSocket(ws)
        sent = {}
        sender = threading.Thread(target=lambda: sent.update(result=send_to_channel(CHANNEL, blob)))
        sender.start()
        for _ in range(2):
            assert sock.reassembler.feed(ws.recv(timeout=10)) is None  # a part, never a message
    sender.join(30)
    result = sent["result"].result
    assert connection_id in result.gone and connection_id not in result.delivered
    stored = ChannelMessage.objects.get(stream=CHANNEL).payload
    with open_socket(thread) as ws:
        sock = PartsSocket(ws)
        ws.send(json.dumps({"handler": "resume", "channel": CHANNEL, "after": 0}))
        whole = sock.recv_text(timeout=20)
        assert whole == stored
        message = json.loads(whole)
        assert (message["type"], message["seq"], len(message["blob"])) == ("report", 1, MB - 100)
        assert sock.recv(timeout=10) == {"type": "resumed", "streams": {CHANNEL: 1}}


def test_a_large_message_sent_without_parts_is_closed_by_the_gateway_as_aws_would(large_gateway):
    thread = large_gateway()
    with open_socket(thread) as ws:
        ws.send(json.dumps(upload(40_000, 10)))  # one frame over 32 KB
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1009
