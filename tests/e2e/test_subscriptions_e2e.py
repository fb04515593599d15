"""One socket, three channels, through the local gateway (issue #25, docs/channels.md): messages
of each channel, the history of each after a forced drop, presence per channel, and a whisper,
with real WebSocket clients speaking the wire protocol as a non-browser client would."""

import json
import time

import pytest
from websockets.sync.client import connect

from django_aws_api_gateway_websockets.history import send_to_channel
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession

from .conftest import ORIGIN

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CHANNELS = ("room-1", "notifications", "doc")


class Socket:
    """A WebSocket to the local gateway, with every frame it received kept in order."""

    def __init__(self, url, cookie=None):
        headers = {"Cookie": cookie} if cookie else None
        self._opened = connect(url, origin=ORIGIN, open_timeout=10, additional_headers=headers)
        self.ws = self._opened.__enter__()
        self.frames = []

    def send(self, message):
        self.ws.send(json.dumps(message))

    def wait_for(self, predicate, timeout=15):
        """The first frame received (now or already) that ``predicate`` accepts."""
        seen = 0
        deadline = time.monotonic() + timeout
        while True:
            for frame in self.frames[seen:]:
                if predicate(frame):
                    return frame
            seen = len(self.frames)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no such frame; received {self.frames}")
            try:
                self.frames.append(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                continue

    def drain(self, seconds=0.5):
        try:
            while True:
                self.frames.append(json.loads(self.ws.recv(timeout=seconds)))
        except TimeoutError:
            pass

    def of_type(self, kind):
        return [f for f in self.frames if f.get("type") == kind]

    def close(self):
        self._opened.__exit__(None, None, None)


def typed(kind, **keys):
    return lambda f: f.get("type") == kind and all(f.get(k) == v for k, v in keys.items())


def test_one_socket_holds_three_channels_through_the_local_gateway(
    django_db_setup, start_gateway, e2e_gateway, live_server, settings, browser_login, django_user_model
):
    settings.WEBSOCKETS = {"client_events_channels": ["doc"], "rate_limit_max_attempts": 1000}
    ApiGateway.objects.filter(pk=e2e_gateway.pk).update(target_base_endpoint=f"{live_server.url}/history/")
    e2e_gateway.refresh_from_db()
    gateway = start_gateway()
    alice = django_user_model.objects.create_user("alice", password="pw")
    cookie, _ = browser_login(alice)

    watcher = Socket(f"{gateway.ws_url}?channel=doc")  # another page on the document
    me = Socket(f"{gateway.ws_url}?channel=room-1", cookie)
    for channel in CHANNELS[1:]:
        me.send({"handler": "subscribe", "channel": channel})
        assert me.wait_for(typed("subscribed", channel=channel))["seq"] == 0
    [row] = WebSocketSession.objects.filter(user=alice, connected=True)
    assert sorted(row.subscriptions.values_list("channel", flat=True)) == sorted(CHANNELS)

    # Presence: the watcher of "doc" sees alice join it, with her member info; she lists it.
    join = watcher.wait_for(typed("presence", event="join", channel="doc"))
    assert join["user"] == {"id": alice.pk, "username": "alice"}
    me.send({"handler": "presence", "channel": "doc"})
    members = me.wait_for(typed("presence", event="members", channel="doc"))
    assert members["users"] == [{"id": alice.pk, "username": "alice"}] and members["connections"] == 2

    # Messages of each channel reach the one socket, each naming its channel.
    for channel in CHANNELS:
        send_to_channel(channel, {"type": "note", "text": f"first on {channel}"})
    for channel in CHANNELS:
        assert me.wait_for(typed("note", stream=channel))["seq"] == 1
    assert watcher.wait_for(typed("note", stream="doc"))["seq"] == 1

    # A whisper on "doc": the watcher gets it, alice (the sender) does not; nothing stored.
    me.send({"handler": "whisper", "channel": "doc", "event": "typing", "data": {"typing": True}})
    whisper = watcher.wait_for(typed("whisper", channel="doc"))
    assert (whisper["event"], whisper["data"], whisper["user"]["username"]) == ("typing", {"typing": True}, "alice")
    # A whisper where the channel does not allow them is refused, to the sender only.
    me.send({"handler": "whisper", "channel": "room-1", "event": "typing"})
    assert me.wait_for(typed("whisper_error", channel="room-1"))["reason"] == "not_allowed"
    assert me.of_type("whisper") == []

    # A forced drop (the server closes the socket), messages sent meanwhile on every channel.
    row.close()
    watcher.wait_for(typed("presence", event="leave", channel="doc"))
    for channel in CHANNELS:
        for n in (2, 3):
            send_to_channel(channel, {"type": "note", "text": f"missed {n} on {channel}"})
    last = {channel: max(f["seq"] for f in me.of_type("note") if f["stream"] == channel) for channel in CHANNELS}
    assert last == dict.fromkeys(CHANNELS, 1)

    # Back: the first channel in the query and resumed, the others subscribed with their last number.
    again = Socket(f"{gateway.ws_url}?channel=room-1", cookie)
    again.send({"handler": "resume", "channels": {"room-1": last["room-1"]}})
    for channel in CHANNELS[1:]:
        again.send({"handler": "subscribe", "channel": channel, "after": last[channel]})
    resumed = again.wait_for(typed("resumed"))
    assert resumed["streams"]["room-1"] == 3
    for channel in CHANNELS[1:]:
        assert again.wait_for(typed("subscribed", channel=channel))["seq"] == 3
    replayed = {}
    for frame in again.of_type("replay"):
        replayed.setdefault(frame["stream"], []).extend(
            (json.loads(m) if isinstance(m, str) else m)["seq"] for m in frame["messages"]
        )
    assert replayed == dict.fromkeys(CHANNELS, [2, 3])
    watcher.wait_for(typed("presence", event="join", channel="doc"))
    watcher.drain()
    assert {f["stream"] for f in watcher.of_type("note")} == {"doc"}  # only its channel's messages
    watcher.close()
    again.close()
