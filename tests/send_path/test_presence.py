"""Presence (presence.py): events that fit a frame in a channel of any size, the member list by
pages, after-commit failures that cannot undo a committed request, and one API's presence
kept from another's sockets (issue #21: 21.1, 21.6)."""

import json
import logging

import pytest
from django.contrib.auth.hashers import make_password

from django_aws_api_gateway_websockets import presence, protocol, signals
from django_aws_api_gateway_websockets.models import ApiGateway, WebSocketSession
from django_aws_api_gateway_websockets.testing import ManagementAPICapture, integration_headers
from django_aws_api_gateway_websockets.testing.client import new_connection_id

BIG_CHANNEL = 4000
LONG_NAME = 140  # characters; Django's username field holds 150


@pytest.fixture
def capture():
    with ManagementAPICapture() as cap:
        yield cap


@pytest.fixture
def public_gateway(db):
    """A gateway whose integrations are OpenView's (no presence)."""
    return ApiGateway.objects.create(
        api_name="public",
        api_id="public1234",
        region="eu-west-1",
        target_base_endpoint="https://www.example.com/open/",
    )


def call(client, gateway, path, connection_id, *, route="default", body=None, query=""):
    """POST as API Gateway would, through ``gateway``'s integration (on_commit runs for real:
    these tests commit)."""
    headers = integration_headers(gateway, connection_id, route=route)
    url = f"{path}{route}" + (f"?{query}" if query else "")
    if body is None:
        return client.post(url, headers=headers)
    return client.post(url, json.dumps(body), content_type="application/json", headers=headers)


def move(client, gateway, connection_id, channel):
    return call(client, gateway, "/history/", connection_id, body={"handler": "change_channel", "channel": channel})


def crowd(gateway, django_user_model, channel="room-1", n=BIG_CHANNEL):
    """``n`` users with long names, each with a live connection in ``channel``."""
    password = make_password(None)
    users = django_user_model.objects.bulk_create(
        django_user_model(username=f"{i:06d}" + "x" * (LONG_NAME - 6), password=password) for i in range(n)
    )
    if not all(u.pk for u in users):  # backends that return no pks from bulk_create
        users = list(django_user_model.objects.filter(username__endswith="x" * 10).order_by("username"))
    WebSocketSession.objects.bulk_create(
        WebSocketSession(connection_id=new_connection_id(), channel_name=channel, user=u, api_gateway=gateway)
        for u in users
    )
    return users


def presence_frames(capture):
    """Every presence frame posted, as ``(connection id, raw bytes, decoded)``."""
    return [
        (cid, raw, json.loads(raw))
        for cid, payloads in capture.raw.items()
        for raw in payloads
        if json.loads(raw).get("type") == "presence"
    ]


# --- 21.1: a channel of any size ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_join_switch_and_leave_in_a_big_channel_answer_200_with_frames_within_32kb(
    client, presence_gateway, django_user_model, capture
):
    crowd(presence_gateway, django_user_model)
    client.force_login(django_user_model.objects.create_user("newcomer-" + "n" * 140))
    me = new_connection_id()
    assert call(client, presence_gateway, "/history/", me, route="connect", query="channel=room-1").status_code == 200
    assert move(client, presence_gateway, me, "room-2").status_code == 200
    assert move(client, presence_gateway, me, "room-1").status_code == 200
    assert call(client, presence_gateway, "/history/", me, route="disconnect").status_code == 200
    assert not WebSocketSession.objects.get(connection_id=me).connected
    frames = presence_frames(capture)
    # join, leave (room-1 -> room-2), join (back), leave: each to the whole crowd; and the two
    # joins of change_channel to the mover too.
    assert len(frames) == 4 * BIG_CHANNEL + 2
    assert max(len(raw) for _, raw, _ in frames) < protocol.MAX_FRAME_BYTES
    first = next(message for cid, _, message in frames)
    assert set(first) == {"type", "event", "channel", "user", "user_count", "anonymous", "connections"}
    assert (first["event"], first["user_count"], first["connections"]) == ("join", BIG_CHANNEL + 1, BIG_CHANNEL + 1)
    assert first["user"]["username"].startswith("newcomer-")


@pytest.mark.django_db
def test_member_pages_list_everyone_once_each_within_a_frame(
    post_as_gateway, presence_gateway, django_user_model, capture, django_capture_on_commit_callbacks
):
    users = crowd(presence_gateway, django_user_model, n=1500)
    anonymous = WebSocketSession.objects.create(
        connection_id=new_connection_id(), channel_name="room-1", api_gateway=presence_gateway
    )
    seen, after, pages = [], None, 0
    while True:
        body = {"handler": "presence", "channel": "room-1", "after": after}
        headers = integration_headers(presence_gateway, anonymous.connection_id)
        with django_capture_on_commit_callbacks(execute=True):
            response = post_as_gateway("/history/", anonymous.connection_id, body=body, headers=headers)
        assert response.status_code == 200, response.content
        raw = capture.raw[anonymous.connection_id][-1]
        assert len(raw) <= protocol.MAX_FRAME_BYTES
        page = json.loads(raw)
        assert page == response.json()
        assert (page["type"], page["event"], page["channel"]) == ("presence", "members", "room-1")
        assert (page["user_count"], page["anonymous"], page["connections"]) == (1500, 1, 1501)
        assert 0 < len(page["users"]) <= presence.PAGE_MAX_USERS
        seen.extend(page["users"])
        pages += 1
        after = page["next"]
        if after is None:
            break
    assert pages > 1  # 1,500 long names do not fit one frame
    assert [u["id"] for u in seen] == sorted(u.pk for u in users)  # everyone, once, in order
    assert {u["username"] for u in seen} == {u.username for u in users}


@pytest.mark.django_db
def test_presence_page_function_and_its_limit(presence_gateway, django_user_model):
    users = crowd(presence_gateway, django_user_model, n=5)
    first = presence.presence_page("room-1", limit=2)
    assert [u["id"] for u in first["users"]] == [users[0].pk, users[1].pk]
    assert first["next"] == users[1].pk
    rest = presence.presence_page("room-1", after=first["next"], limit=10)
    assert [u["id"] for u in rest["users"]] == [u.pk for u in users[2:]] and rest["next"] is None
    assert presence.presence_page("room-9") == {
        "channel": "room-9",
        "users": [],
        "next": None,
        "user_count": 0,
        "anonymous": 0,
        "connections": 0,
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, status",
    [
        ({"after": "not-a-pk"}, 400),
        ({"after": True}, 400),
        ({"after": [1]}, 400),
        ({"channel": "room-2"}, 409),
    ],
)
def test_member_page_request_is_validated(post_as_gateway, presence_gateway, capture, body, status):
    me = WebSocketSession.objects.create(
        connection_id=new_connection_id(), channel_name="room-1", api_gateway=presence_gateway
    )
    headers = integration_headers(presence_gateway, me.connection_id)
    response = post_as_gateway("/history/", me.connection_id, body={"handler": "presence", **body}, headers=headers)
    assert response.status_code == status
    assert capture.sent_to(me.connection_id) == []


@pytest.mark.django_db
def test_member_list_is_not_a_handler_of_views_without_presence(post_as_gateway, session_row, capture):
    # ChatView has no BROADCAST_PRESENCE: the message goes to its default handler, as before.
    response = post_as_gateway("/ws/", session_row.connection_id, body={"handler": "presence"})
    assert response.json() == {"type": "default", "user": "alice"}
    assert capture.sent_to(session_row.connection_id) == []


# --- after the commit: logged, never a 500 -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_failing_presence_send_after_the_commit_keeps_the_answer_and_the_row(
    client, presence_gateway, capture, caplog, mailoutbox
):
    watcher = WebSocketSession.objects.create(
        connection_id=new_connection_id(), channel_name="room-1", api_gateway=presence_gateway
    )

    def broken_receiver(sender, result, **kwargs):  # a project's receiver with a bug
        raise RuntimeError("receiver bug")

    signals.send_completed.connect(broken_receiver)
    try:
        me = new_connection_id()
        with caplog.at_level(logging.ERROR):
            connected = call(client, presence_gateway, "/history/", me, route="connect", query="channel=room-1")
            moved = move(client, presence_gateway, me, "room-2")
            row = WebSocketSession.objects.get(connection_id=me)
            assert (row.connected, row.channel_name) == (True, "room-2")
            left = call(client, presence_gateway, "/history/", me, route="disconnect")
    finally:
        signals.send_completed.disconnect(broken_receiver)
    assert (connected.status_code, moved.status_code, left.status_code) == (200, 200, 200)
    assert moved.json() == {"type": "channel_changed", "channel": "room-2"}
    assert not WebSocketSession.objects.get(connection_id=me).connected
    assert [m["event"] for m in capture.sent_to(watcher.connection_id)] == ["join", "leave"]  # sent, then the receiver
    failures = [r for r in caplog.records if "after the commit" in r.getMessage()]
    # join; leave + join (the mover hears it in room-2); the leave of an empty room-2 sends nothing.
    assert len(failures) == 3 and all(r.exc_info for r in failures)
    assert mailoutbox == []


# --- 21.6: one API's presence stays with it ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_presence_reaches_only_sockets_of_gateways_that_broadcast_it(
    client, presence_gateway, public_gateway, user, capture
):
    def socket(gateway, user=None):
        return WebSocketSession.objects.create(
            connection_id=new_connection_id(), channel_name="lobby", user=user, api_gateway=gateway
        )

    member, public = socket(presence_gateway), socket(public_gateway)
    client.force_login(user)
    me = new_connection_id()
    assert call(client, presence_gateway, "/history/", me, route="connect", query="channel=lobby").status_code == 200
    assert move(client, presence_gateway, me, "hall").status_code == 200
    assert move(client, presence_gateway, me, "lobby").status_code == 200
    assert call(client, presence_gateway, "/history/", me, route="disconnect").status_code == 200
    assert [(m["event"], m["user"]["username"]) for m in capture.sent_to(member.connection_id)] == [
        ("join", "alice"),
        ("leave", "alice"),
        ("join", "alice"),
        ("leave", "alice"),
    ]
    assert capture.sent_to(public.connection_id) == []
    # A send that finds the member's socket gone (410) follows the same rule.
    gone = socket(presence_gateway, user)
    capture.clear()
    capture.mark_gone(gone.connection_id)
    WebSocketSession.objects.in_channel("lobby").send_message({"type": "chat"})
    assert [m.get("event") for m in capture.sent_to(member.connection_id)] == [None, "leave"]
    assert capture.sent_to(public.connection_id) == [{"type": "chat"}]


def test_a_views_own_presence_handler_stays_its_own():
    from django_aws_api_gateway_websockets.views import WebSocketView, handler

    class OwnPresence(WebSocketView):  # as the demo's view: its own handler, no BROADCAST_PRESENCE
        @handler
        def presence(self, request, *args, **kwargs):
            return {"type": "mine"}

    class Listed(WebSocketView):
        ALLOWED_HANDLERS = ["ping"]
        BROADCAST_PRESENCE = True

    class Broadcasting(WebSocketView):
        BROADCAST_PRESENCE = True

    assert "presence" in OwnPresence.get_allowed_handlers()
    assert "presence" not in WebSocketView.get_allowed_handlers()
    assert "presence" not in Listed.get_allowed_handlers()  # ALLOWED_HANDLERS: exactly those
    assert "presence" in Broadcasting.get_allowed_handlers()


@pytest.mark.django_db
def test_member_page_of_a_channel_restricted_since_the_connection_joined_is_refused(
    post_as_gateway, presence_gateway, django_user_model, capture, django_capture_on_commit_callbacks
):
    """As ``resume``: the rules are asked again, so a connection the re-check has not closed
    (a QuerySet.update, another process's cached rules, a view's own rule) learns no member
    names of a channel it may no longer join."""
    from django_aws_api_gateway_websockets.models import ChannelPermission

    crowd(presence_gateway, django_user_model, channel="board", n=3)
    me = WebSocketSession.objects.create(
        connection_id=new_connection_id(), channel_name="board", api_gateway=presence_gateway
    )
    ChannelPermission.objects.create(channel_name="board", access=ChannelPermission.Access.STAFF_ONLY)
    headers = integration_headers(presence_gateway, me.connection_id)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_as_gateway("/history/", me.connection_id, body={"handler": "presence"}, headers=headers)
    assert (response.status_code, response.json()) == (403, {"error": "Channel not allowed."})
    assert capture.sent_to(me.connection_id) == []


@pytest.mark.django_db
def test_connections_ended_by_the_server_announce_their_leave(
    presence_gateway, django_user_model, capture, django_capture_on_commit_callbacks
):
    """A connection closed by the package (deactivation, password change, logout, channel
    access revoked, an ended session) is marked disconnected before its $disconnect arrives,
    which then announces nothing: the leave must be announced where it is closed, or the
    others' member lists keep a user who is gone."""
    alice = django_user_model.objects.create_user("alice", password="pw")
    gone = WebSocketSession.objects.create(
        connection_id=new_connection_id(), channel_name="room-1", user=alice, api_gateway=presence_gateway
    )
    watcher = WebSocketSession.objects.create(
        connection_id=new_connection_id(), channel_name="room-1", api_gateway=presence_gateway
    )
    with django_capture_on_commit_callbacks(execute=True):
        alice.is_active = False
        alice.save()
    assert gone.connection_id in capture.deleted
    events = [m for m in capture.sent_to(watcher.connection_id) if m.get("type") == "presence"]
    assert [(m["event"], m["user"], m["user_count"], m["connections"]) for m in events] == [
        ("leave", {"id": alice.pk, "username": "alice"}, 0, 1)
    ]
