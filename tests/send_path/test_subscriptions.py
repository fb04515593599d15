"""One socket, many channels (issue #25, docs/channels.md): subscribe and unsubscribe with an
answer per channel, sends reaching every subscribed connection, resume with a cursor per channel,
presence per channel with member info, client events (whisper), and the 4.x model API."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_aws_api_gateway_websockets import presence, protocol
from django_aws_api_gateway_websockets.history import send_to_channel
from django_aws_api_gateway_websockets.models import (
    ChannelMessage,
    ChannelPermission,
    Subscription,
    WebSocketSession,
)
from django_aws_api_gateway_websockets.testing import ManagementAPICapture, integration_headers
from django_aws_api_gateway_websockets.testing.client import new_connection_id
from tests.views import HistoryView

PATH = "/history/"


@pytest.fixture
def capture():
    with ManagementAPICapture() as cap:
        yield cap


@pytest.fixture
def call(client, presence_gateway, django_capture_on_commit_callbacks):
    """POST as API Gateway would, through HistoryView (BROADCAST_PRESENCE, no token); what runs
    after the commit runs."""

    def post(connection_id, body=None, *, route="default", query=""):
        headers = integration_headers(presence_gateway, connection_id, route=route)
        url = f"{PATH}{route}" + (f"?{query}" if query else "")
        with django_capture_on_commit_callbacks(execute=True):
            if body is None:
                return client.post(url, headers=headers)
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
            return client.post(url, data, content_type="application/json", headers=headers)

    return post


@pytest.fixture
def connect(call):
    def connect(channel="room-1", **query):
        cid = new_connection_id()
        response = call(cid, route="connect", query=f"channel={channel}" if channel else "")
        assert response.status_code == 200, response.content
        return cid

    return connect


def frames(capture, cid, kind=None):
    found = [json.loads(raw) for raw in capture.raw.get(cid, [])]
    return [frame for frame in found if kind is None or frame.get("type") == kind]


def held(cid):
    return sorted(Subscription.objects.filter(connection__connection_id=cid).values_list("channel", flat=True))


# --- subscribe / unsubscribe --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_connect_query_channel_is_the_first_subscription(connect):
    cid = connect("room-1")
    assert held(cid) == ["room-1"]
    assert WebSocketSession.objects.get(connection_id=cid).channel_name == "room-1"
    assert held(connect(None)) == []


@pytest.mark.django_db
def test_one_socket_on_three_channels_receives_each_channels_messages(call, connect, capture):
    me, other = connect("room-1"), connect("room-2")
    for channel, seq in (("room-2", 0), ("notifications", 0)):
        response = call(me, {"handler": "subscribe", "channel": channel})
        assert response.status_code == 200, response.content
        assert response.json() == {"type": "subscribed", "channel": channel, "seq": seq}
        assert frames(capture, me, "subscribed")[-1] == response.json()  # posted: any route reads it
    assert held(me) == ["notifications", "room-1", "room-2"]
    for channel in ("room-1", "room-2", "notifications"):
        send_to_channel(channel, {"type": "note", "on": channel})
    notes = frames(capture, me, "note")
    assert [(n["stream"], n["seq"]) for n in notes] == [("room-1", 1), ("room-2", 1), ("notifications", 1)]
    assert [n["stream"] for n in frames(capture, other, "note")] == ["room-2"]
    # The 4.x queryset API reaches the same connections.
    assert set(WebSocketSession.objects.in_channel("room-2").values_list("connection_id", flat=True)) == {me, other}


@pytest.mark.django_db
def test_subscribe_answers_the_channels_current_number(call, connect, capture):
    for n in range(3):
        send_to_channel("room-9", {"n": n})
    me = connect()
    assert call(me, {"handler": "subscribe", "channel": "room-9"}).json()["seq"] == 3


@pytest.mark.django_db
def test_subscribing_twice_changes_nothing_and_answers_again(call, connect, capture):
    me = connect()
    first = call(me, {"handler": "subscribe", "channel": "room-2"})
    again = call(me, {"handler": "subscribe", "channel": "room-2"})
    assert first.json() == again.json()
    assert held(me) == ["room-1", "room-2"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"handler": "subscribe"}, 400, "invalid_channel"),
        ({"handler": "subscribe", "channel": ""}, 400, "invalid_channel"),
        ({"handler": "subscribe", "channel": "bad name"}, 400, "invalid_channel"),
        ({"handler": "subscribe", "channel": "x" * 129}, 400, "invalid_channel"),
        ({"handler": "subscribe", "channel": ["room-2"]}, 400, "invalid_channel"),
        ({"handler": "subscribe", "channel": {"a": 1}}, 400, "invalid_channel"),
        ({"handler": "subscribe", "channel": 42}, 400, "invalid_channel"),
        ({"handler": "subscribe", "channel": "room-2", "after": -1}, 400, "invalid_after"),
        ({"handler": "subscribe", "channel": "room-2", "after": "3"}, 400, "invalid_after"),
        ({"handler": "subscribe", "channel": "room-2", "after": True}, 400, "invalid_after"),
        ({"handler": "subscribe", "channel": "room-2", "after": 1.5}, 400, "invalid_after"),
    ],
)
@pytest.mark.django_db
def test_a_malformed_subscribe_is_refused_with_a_frame_and_changes_nothing(
    call, connect, capture, body, status, reason
):
    me = connect()
    response = call(me, body)
    assert response.status_code == status
    [frame] = frames(capture, me, "subscribe_error")
    assert (frame["status"], frame["reason"]) == (status, reason)
    sent = body.get("channel")
    assert frame["channel"] == (sent if isinstance(sent, str) and len(sent) <= 128 else None)  # echoed when short
    assert response.json()["reason"] == reason
    assert held(me) == ["room-1"]


@pytest.mark.django_db
def test_subscribe_asks_the_channel_rules(call, connect, capture):
    ChannelPermission.objects.create(channel_name="staff-room", access=ChannelPermission.Access.STAFF_ONLY)
    me = connect()
    response = call(me, {"handler": "subscribe", "channel": "staff-room"})
    assert response.status_code == 403
    assert frames(capture, me, "subscribe_error")[0]["reason"] == "not_allowed"
    assert held(me) == ["room-1"]


@pytest.mark.django_db
def test_subscribe_asks_the_views_can_join_channel(call, connect, capture, monkeypatch):
    monkeypatch.setattr(HistoryView, "can_join_channel", lambda self, request, name: name != "secret")
    me = connect()
    assert call(me, {"handler": "subscribe", "channel": "secret"}).status_code == 403
    assert call(me, {"handler": "subscribe", "channel": "open"}).status_code == 200


@pytest.mark.django_db
def test_subscriptions_are_limited_per_connection(call, connect, capture, settings):
    settings.WEBSOCKETS = {"max_subscriptions": 3}
    me = connect()
    assert call(me, {"handler": "subscribe", "channel": "a"}).status_code == 200
    assert call(me, {"handler": "subscribe", "channel": "b"}).status_code == 200
    refused = call(me, {"handler": "subscribe", "channel": "c"})
    assert refused.status_code == 409
    assert frames(capture, me, "subscribe_error")[-1]["reason"] == "too_many"
    assert held(me) == ["a", "b", "room-1"]
    # At the limit, one already held still answers "subscribed"; one left makes room.
    assert call(me, {"handler": "subscribe", "channel": "a"}).status_code == 200
    assert call(me, {"handler": "unsubscribe", "channel": "a"}).status_code == 200
    assert call(me, {"handler": "subscribe", "channel": "c"}).status_code == 200


@pytest.mark.django_db
def test_unsubscribe_stops_the_channels_messages_and_is_idempotent(call, connect, capture):
    me = connect()
    call(me, {"handler": "subscribe", "channel": "room-2"})
    for _ in range(2):
        response = call(me, {"handler": "unsubscribe", "channel": "room-2"})
        assert response.status_code == 200
        assert response.json() == {"type": "unsubscribed", "channel": "room-2"}
    assert len(frames(capture, me, "unsubscribed")) == 2
    send_to_channel("room-2", {"type": "note"})
    assert frames(capture, me, "note") == []
    assert call(me, {"handler": "unsubscribe", "channel": "no such!"}).status_code == 400
    assert frames(capture, me, "unsubscribe_error")[0]["reason"] == "invalid_channel"


@pytest.mark.django_db
def test_unsubscribing_the_first_channel_clears_channel_name_and_keeps_the_socket(call, connect, capture):
    me = connect("room-1")
    call(me, {"handler": "subscribe", "channel": "room-2"})
    call(me, {"handler": "unsubscribe", "channel": "room-1"})
    row = WebSocketSession.objects.get(connection_id=me)
    assert (row.channel_name, row.connected, held(me)) == ("", True, ["room-2"])
    call(me, {"handler": "unsubscribe", "channel": "room-2"})
    assert held(me) == [] and WebSocketSession.objects.get(connection_id=me).connected


@pytest.mark.django_db
def test_change_channel_leaves_every_channel_and_joins_one(call, connect, capture):
    me = connect("room-1")
    call(me, {"handler": "subscribe", "channel": "room-2"})
    call(me, {"handler": "subscribe", "channel": "room-3"})
    response = call(me, {"handler": "change_channel", "channel": "room-4"})
    assert response.json() == {"type": "channel_changed", "channel": "room-4"}
    assert held(me) == ["room-4"]
    assert WebSocketSession.objects.get(connection_id=me).channel_name == "room-4"


# --- statements ---------------------------------------------------------------------------------


def _own_statements(call, cid, body):
    with CaptureQueriesContext(connection) as context:
        assert call(cid, body).status_code == 200
    return [
        q["sql"]
        for q in context.captured_queries
        if not q["sql"].upper().startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE", "ROLLBACK"))
    ]


@pytest.mark.django_db
def test_subscribe_and_unsubscribe_cost_at_most_two_statements_beyond_a_message(call, connect, capture, monkeypatch):
    # No presence (its announcement is the view's choice, after the commit): the handlers' own work.
    monkeypatch.setattr(HistoryView, "BROADCAST_PRESENCE", False)
    me = connect()
    call(me, {"handler": "ping"})  # warm
    message = len(_own_statements(call, me, {"handler": "ping"}))
    subscribe = _own_statements(call, me, {"handler": "subscribe", "channel": "room-2"})
    unsubscribe = _own_statements(call, me, {"handler": "unsubscribe", "channel": "room-2"})
    unsubscribe_first = _own_statements(call, me, {"handler": "unsubscribe", "channel": "room-1"})
    assert len(subscribe) - message <= 2, subscribe
    assert len(unsubscribe) - message <= 2, unsubscribe
    assert len(unsubscribe_first) - message <= 2, unsubscribe_first


@pytest.mark.django_db
def test_a_broadcast_finds_the_channels_connections_in_one_query(connect, capture):
    for _ in range(3):
        connect("room-1")
    with CaptureQueriesContext(connection) as context:
        result = WebSocketSession.objects.in_channel("room-1").send_message({"type": "x"})
    assert len(result.delivered) == 3
    selects = [q["sql"] for q in context.captured_queries if q["sql"].startswith("SELECT")]
    # The connections (one JOIN on the subscriptions), then their gateways' records.
    assert len([s for s in selects if "subscription" in s]) == 1, selects


# --- history per channel ------------------------------------------------------------------------


@pytest.mark.django_db
def test_subscribe_with_after_replays_what_was_missed_then_answers(call, connect, capture):
    me = connect()
    for n in range(5):
        send_to_channel("room-2", {"type": "note", "n": n})
    response = call(me, {"handler": "subscribe", "channel": "room-2", "after": 2})
    assert response.json() == {"type": "subscribed", "channel": "room-2", "seq": 5}
    posted = frames(capture, me)
    replay = next(f for f in posted if f["type"] == "replay")
    assert [json.loads(m)["seq"] if isinstance(m, str) else m["seq"] for m in replay["messages"]] == [3, 4, 5]
    assert posted.index(replay) < posted.index(frames(capture, me, "subscribed")[-1])  # replay first
    assert frames(capture, me, "resumed") == []  # the "subscribed" frame is the answer


@pytest.mark.django_db
def test_subscribe_with_after_is_bounded_and_says_where_to_go_on(call, connect, capture, settings):
    settings.WEBSOCKETS = {"resume_page_messages": 2}
    me = connect()
    for n in range(5):
        send_to_channel("room-2", {"n": n})
    answer = call(me, {"handler": "subscribe", "channel": "room-2", "after": 0}).json()
    assert answer == {"type": "subscribed", "channel": "room-2", "seq": 5, "more": 2}
    more = call(me, {"handler": "resume", "channels": {"room-2": 2}}).json()
    assert more == {"type": "resumed", "streams": {"room-2": 5}, "more": {"room-2": 4}}


@pytest.mark.django_db
def test_resume_takes_a_cursor_per_channel(call, connect, capture):
    me = connect("room-1")
    call(me, {"handler": "subscribe", "channel": "room-2"})
    call(me, {"handler": "subscribe", "channel": "room-3"})
    for channel, n in (("room-1", 3), ("room-2", 2), ("room-3", 1)):
        for i in range(n):
            send_to_channel(channel, {"type": "note", "i": i})
    capture.raw.clear()
    answer = call(me, {"handler": "resume", "channels": {"room-1": 1, "room-2": 0, "room-3": None}}).json()
    assert answer == {"type": "resumed", "streams": {"room-1": 3, "room-2": 2, "room-3": 1}}
    replays = {f["stream"]: len(f["messages"]) for f in frames(capture, me, "replay")}
    assert replays == {"room-1": 2, "room-2": 2}


@pytest.mark.parametrize(
    ("channels", "status"),
    [
        ({"room-9": 0}, 409),  # not subscribed
        ({"bad name": 0}, 400),
        (["room-1"], 400),
        ("room-1", 400),
        ({"room-1": -1}, 400),
        ({"room-1": "1"}, 400),
        ({f"c{i}": 0 for i in range(40)}, 400),  # more than a connection may hold
    ],
)
@pytest.mark.django_db
def test_resume_refuses_channels_it_cannot_resume(call, connect, capture, channels, status):
    me = connect("room-1")
    assert call(me, {"handler": "resume", "channels": channels}).status_code == status


@pytest.mark.django_db
def test_the_single_channel_resume_works_for_any_subscribed_channel(call, connect, capture):
    me = connect("room-1")
    call(me, {"handler": "subscribe", "channel": "room-2"})
    send_to_channel("room-2", {"n": 1})
    assert call(me, {"handler": "resume", "channel": "room-2", "after": 0}).json()["streams"] == {"room-2": 1}
    assert call(me, {"handler": "resume", "channel": "room-9", "after": 0}).status_code == 409


# --- presence per channel -----------------------------------------------------------------------


@pytest.mark.django_db
def test_subscribe_and_unsubscribe_announce_to_that_channel_only(call, connect, capture, user, client):
    in_two, in_one = connect("room-2"), connect("room-1")
    client.force_login(user)
    me = connect("room-1")
    capture.raw.clear()
    call(me, {"handler": "subscribe", "channel": "room-2"})
    [join] = frames(capture, in_two, "presence")
    assert (join["event"], join["channel"], join["user"]) == ("join", "room-2", {"id": user.pk, "username": "alice"})
    assert frames(capture, in_one, "presence") == []
    call(me, {"handler": "unsubscribe", "channel": "room-2"})
    assert [f["event"] for f in frames(capture, in_two, "presence")] == ["join", "leave"]
    # $disconnect: a leave in every channel still held.
    call(me, {"handler": "subscribe", "channel": "room-2"})
    capture.raw.clear()
    call(me, route="disconnect")
    assert [f["channel"] for f in frames(capture, in_two, "presence")] == ["room-2"]
    assert [f["channel"] for f in frames(capture, in_one, "presence")] == ["room-1"]


@pytest.mark.django_db
def test_member_pages_for_any_subscribed_channel(call, connect, capture, user, client):
    client.force_login(user)
    me = connect("room-1")
    call(me, {"handler": "subscribe", "channel": "room-2"})
    page = call(me, {"handler": "presence", "channel": "room-2"}).json()
    assert (page["channel"], page["users"]) == ("room-2", [{"id": user.pk, "username": "alice"}])
    assert call(me, {"handler": "presence", "channel": "room-3"}).status_code == 409
    assert call(me, {"handler": "presence"}).json()["channel"] == "room-1"  # the first channel


def display_info(user):
    return {"username": user.get_username(), "name": f"{user.get_username().title()} Smith", "id": "ignored"}


@pytest.mark.django_db
def test_member_info_from_the_settings_hook(call, connect, capture, user, client, settings):
    settings.WEBSOCKETS = {"presence_info": "tests.send_path.test_subscriptions.display_info"}
    watcher = connect("room-1")
    client.force_login(user)
    me = connect("room-1")
    expected = {"id": user.pk, "username": "alice", "name": "Alice Smith"}
    assert frames(capture, watcher, "presence")[-1]["user"] == expected
    assert call(me, {"handler": "presence"}).json()["users"] == [expected]


@pytest.mark.django_db
def test_member_info_from_the_views_method_wins(call, connect, capture, user, client, settings, monkeypatch):
    settings.WEBSOCKETS = {"presence_info": "tests.send_path.test_subscriptions.display_info"}
    monkeypatch.setattr(HistoryView, "presence_info", lambda self, u: {"avatar": f"/a/{u.pk}.png"}, raising=False)
    watcher = connect("room-1")
    client.force_login(user)
    connect("room-1")
    assert frames(capture, watcher, "presence")[-1]["user"] == {"avatar": f"/a/{user.pk}.png", "id": user.pk}


@pytest.mark.parametrize(
    "hook",
    [
        lambda self, u: {"bio": "x" * 5000},  # too large for the frame budget
        lambda self, u: ["not", "a", "dict"],
        lambda self, u: 1 / 0,
        lambda self, u: {"when": object()},  # not JSON
    ],
)
@pytest.mark.django_db
def test_member_info_falls_back_to_id_and_username(call, connect, capture, user, client, monkeypatch, hook):
    monkeypatch.setattr(HistoryView, "presence_info", hook, raising=False)
    watcher = connect("room-1")
    client.force_login(user)
    me = connect("room-1")
    frame = frames(capture, watcher, "presence")[-1]
    assert frame["user"] == {"id": user.pk, "username": "alice"}
    assert call(me, {"handler": "presence"}).json()["users"] == [{"id": user.pk, "username": "alice"}]


def test_member_info_stays_within_its_budget():
    class Big:
        pk = 1

        def get_username(self):
            return "b"

    info = presence.member_info(Big(), hook=lambda u: {"bio": "é" * 300})  # escapes: 6 bytes each
    assert info == {"id": 1, "username": "b"}


# --- client events (whisper) --------------------------------------------------------------------


def whisper(call, cid, channel="room-1", event="typing", data=None):
    return call(cid, {"handler": "whisper", "channel": channel, "event": event, "data": data or {"on": True}})


@pytest.mark.django_db
def test_client_events_are_off_by_default(call, connect, capture):
    me, other = connect(), connect()
    response = whisper(call, me)
    assert response.status_code == 403
    [refusal] = frames(capture, me, "whisper_error")
    assert (refusal["reason"], refusal["channel"], refusal["event"]) == ("not_allowed", "room-1", "typing")
    assert frames(capture, other, "whisper") == []


@pytest.mark.django_db
def test_a_whisper_reaches_the_channels_other_subscribers_only_and_is_not_stored(
    call, connect, capture, settings, user, client
):
    settings.WEBSOCKETS = {"client_events_channels": ["room-*"]}
    other, elsewhere = connect("room-1"), connect("room-2")
    client.force_login(user)
    me = connect("room-1")
    capture.raw.clear()
    response = whisper(call, me, data={"typing": True})
    assert response.status_code == 200
    assert response.json() == {"type": "whispered", "channel": "room-1", "event": "typing", "sent": 1}
    [relayed] = frames(capture, other, "whisper")
    assert relayed == {
        "type": "whisper",
        "channel": "room-1",
        "event": "typing",
        "data": {"typing": True},
        "user": {"id": user.pk, "username": "alice"},
    }
    assert frames(capture, me) == [] and frames(capture, elsewhere) == []  # sender excluded
    assert not ChannelMessage.objects.exists()  # never in history


@pytest.mark.django_db
def test_a_whisper_needs_the_channel_to_be_subscribed_and_allowed(call, connect, capture, settings):
    settings.WEBSOCKETS = {"client_events_channels": ["room-*"]}
    me = connect("room-1")
    connect("room-2")
    assert whisper(call, me, channel="room-2").status_code == 409
    assert frames(capture, me, "whisper_error")[-1]["reason"] == "not_subscribed"
    call(me, {"handler": "subscribe", "channel": "lobby"})
    assert whisper(call, me, channel="lobby").status_code == 403  # not matched by the setting


@pytest.mark.django_db
def test_the_view_decides_client_events_per_channel(call, connect, capture, monkeypatch):
    monkeypatch.setattr(HistoryView, "allow_client_events", lambda self, request, name: name == "room-1")
    me = connect("room-1")
    connect("room-1")
    assert whisper(call, me).json()["sent"] == 1


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"channel": "room-1", "event": ""}, 400, "invalid_event"),
        ({"channel": "room-1", "event": "x" * 65}, 400, "invalid_event"),
        ({"channel": "room-1", "event": "with space"}, 400, "invalid_event"),
        ({"channel": "room-1", "event": ["typing"]}, 400, "invalid_event"),
        ({"channel": "room-1"}, 400, "invalid_event"),
        ({"channel": None, "event": "typing"}, 400, "invalid_channel"),
        ({"channel": "room 1", "event": "typing"}, 400, "invalid_channel"),
        ({"channel": "room-1", "event": "typing", "data": "x" * protocol.MAX_FRAME_BYTES}, 413, "too_large"),
    ],
)
@pytest.mark.django_db
def test_a_malformed_whisper_is_refused(call, connect, capture, settings, body, status, reason):
    settings.WEBSOCKETS = {"client_events_channels": ["*"]}
    me, other = connect(), connect()
    assert call(me, {"handler": "whisper", **body}).status_code == status
    assert frames(capture, me, "whisper_error")[-1]["reason"] == reason
    assert frames(capture, other, "whisper") == []


@pytest.mark.django_db
def test_whispers_meet_the_connections_message_rate_limit(call, connect, capture, settings):
    settings.WEBSOCKETS = {"client_events_channels": ["*"], "message_rate_limit": 1.0, "message_rate_burst": 2}
    me, other = connect(), connect()
    statuses = [whisper(call, me).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]
    assert len(frames(capture, other, "whisper")) == 2


@pytest.mark.django_db
def test_a_whisper_with_nested_data_within_the_json_depth_is_relayed(call, connect, capture, settings):
    settings.WEBSOCKETS = {"client_events_channels": ["*"]}
    me, other = connect(), connect()
    nested: object = 1
    for _ in range(50):
        nested = [nested]
    assert whisper(call, me, data=nested).status_code == 200
    assert frames(capture, other, "whisper")[0]["data"] == nested


# --- access re-checked ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_access_taken_away_drops_that_subscription_and_keeps_the_socket(connect, call, capture):
    me = connect("room-1")
    call(me, {"handler": "subscribe", "channel": "vip"})
    alone = connect("vip")
    ChannelPermission.objects.create(channel_name="vip", access=ChannelPermission.Access.STAFF_ONLY)
    row = WebSocketSession.objects.get(connection_id=me)
    assert row.connected and held(me) == ["room-1"]
    assert frames(capture, me, "channel_access_revoked")[0]["channel"] == "vip"
    # A connection whose only channel was taken away is closed, as before.
    assert not WebSocketSession.objects.get(connection_id=alone).connected
    assert capture.deleted == [alone] or alone in getattr(capture, "deleted", [alone])


# --- the 4.x model API --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_4x_model_api_keeps_working(gateway, capture):
    row = WebSocketSession.objects.create(connection_id=new_connection_id(), channel_name="room-1", api_gateway=gateway)
    assert list(WebSocketSession.objects.in_channel("room-1")) == [row]
    row.channel_name = "room-2"
    row.save()
    assert held(row.connection_id) == ["room-2"]
    assert list(WebSocketSession.objects.in_channel("room-1")) == []
    fetched = WebSocketSession.objects.get(pk=row.pk)
    fetched.channel_name = "room-3"
    fetched.save(update_fields=["channel_name"])
    assert held(row.connection_id) == ["room-3"]
    assert WebSocketSession.objects.in_channel("room-3").send_message({"hi": 1}).delivered == [row.connection_id]
    assert fetched.send_message({"hi": 2}) is not None


@pytest.mark.django_db
def test_a_presence_info_path_that_does_not_import_gives_the_default(call, connect, capture, user, client, settings):
    settings.WEBSOCKETS = {"presence_info": "no.such.module.info"}
    client.force_login(user)
    me = connect("room-1")
    assert call(me, {"handler": "presence"}).json()["users"] == [{"id": user.pk, "username": "alice"}]


@pytest.mark.parametrize(
    ("key", "value", "ok"),
    [
        ("client_events_channels", ["room-*", "doc"], True),
        ("client_events_channels", ("room-*",), True),
        ("client_events_channels", "room-*", False),  # a string is not a list of patterns
        ("client_events_channels", ["room-*", ""], False),
        ("client_events_channels", [1], False),
        ("max_subscriptions", 0, False),
        ("max_subscriptions", True, False),
        ("max_subscriptions", 1, True),
        ("presence_info", "", True),
        ("presence_info", 3, False),
    ],
)
def test_the_subscription_settings_are_validated(key, value, ok):
    from django_aws_api_gateway_websockets.conf import validate_settings

    errors, unknown = validate_settings({key: value})
    assert unknown == [] and (errors == []) is ok, errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_subscribes_of_one_connection_keep_the_limit(presence_gateway, settings):
    """Frames of one socket may be handled at once (several web processes): the limit holds."""
    from django.test import Client

    from tests.concurrency import in_threads

    settings.WEBSOCKETS = {"max_subscriptions": 4, "message_rate_limit": 0}
    row = WebSocketSession.objects.create(
        connection_id=new_connection_id(), channel_name="room-1", api_gateway=presence_gateway
    )

    def subscribe(i):
        with ManagementAPICapture():
            return (
                Client()
                .post(
                    f"{PATH}default",
                    json.dumps({"handler": "subscribe", "channel": f"c{i}"}),
                    content_type="application/json",
                    headers=integration_headers(presence_gateway, row.connection_id),
                )
                .status_code
            )

    statuses = in_threads(10, subscribe)
    assert sorted(statuses) == [200] * 3 + [409] * 7, statuses
    assert Subscription.objects.filter(connection=row).count() == 4
