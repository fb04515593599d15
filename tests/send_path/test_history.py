"""Channel history (history.py): sequence numbers, concurrent senders, retention, resume, presence."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from django_aws_api_gateway_websockets import conf, history, presence, protocol
from django_aws_api_gateway_websockets.models import ChannelMessage, ChannelSequence, WebSocketSession
from django_aws_api_gateway_websockets.testing import ManagementAPICapture, integration_headers
from django_aws_api_gateway_websockets.testing.client import new_connection_id
from tests.concurrency import in_threads


def make_session(gateway, channel="room-1", user=None, **extra):
    return WebSocketSession.objects.create(
        connection_id=new_connection_id(), channel_name=channel, user=user, api_gateway=gateway, **extra
    )


@pytest.fixture
def capture():
    with ManagementAPICapture() as cap:
        yield cap


@pytest.fixture
def post(post_as_gateway, django_capture_on_commit_callbacks):
    """post_as_gateway, running what the request deferred to its commit (as production would)."""

    def run(*args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return post_as_gateway(*args, **kwargs)

    return run


# --- sequence numbers and the envelope --------------------------------------------------------


@pytest.mark.django_db
def test_send_to_channel_stamps_gap_free_numbers_and_keeps_the_payload(gateway, capture):
    a, b = make_session(gateway), make_session(gateway)
    other = make_session(gateway, channel="room-2")
    sent = [history.send_to_channel("room-1", {"type": "chat", "n": i}) for i in range(3)]
    assert [s.seq for s in sent] == [1, 2, 3]
    assert sorted(sent[0].result.delivered) == sorted([a.connection_id, b.connection_id])
    assert capture.sent_to(a.connection_id) == [
        {"type": "chat", "n": i, "stream": "room-1", "seq": i + 1} for i in range(3)
    ]
    assert capture.sent_to(other.connection_id) == []
    assert list(ChannelMessage.objects.filter(stream="room-1").order_by("seq").values_list("seq", flat=True)) == [
        1,
        2,
        3,
    ]
    assert json.loads(ChannelMessage.objects.get(stream="room-1", seq=2).payload) == capture.sent_to(b.connection_id)[1]
    # Another channel counts on its own.
    assert history.send_to_channel("room-2", "plain").seq == 1
    assert capture.sent_to(other.connection_id) == [{"data": "plain", "stream": "room-2", "seq": 1}]
    # The package's keys win over the application's.
    history.send_to_channel("room-2", {"seq": "mine", "stream": "mine", "x": 1})
    assert capture.raw[other.connection_id][-1] == b'{"x":1,"stream":"room-2","seq":2}'


@pytest.mark.django_db
def test_queryset_form_narrows_the_recipients_but_not_the_history(gateway, capture):
    a, b = make_session(gateway), make_session(gateway)
    sent = WebSocketSession.objects.exclude(pk=a.pk).send_to_channel("room-1", {"type": "x"})
    assert sent.seq == 1 and sent.result.delivered == [b.connection_id]
    assert capture.sent_to(a.connection_id) == []
    assert history.replay("room-1", 0).payloads == [ChannelMessage.objects.get().payload]


@pytest.mark.django_db
def test_history_costs_two_writes_per_broadcast_whatever_the_audience(gateway, capture, django_assert_num_queries):
    for _ in range(50):
        make_session(gateway)
    history.send_to_channel("room-1", {"warm": 1})
    # sessions + gateways (as send_message), plus on PostgreSQL one statement (the counter
    # upsert and the INSERT in one CTE); elsewhere the upsert and the INSERT in a savepoint.
    with django_assert_num_queries(3 if connection.vendor == "postgresql" else 6):
        history.send_to_channel("room-1", {"n": 1})


@pytest.mark.django_db
def test_an_outer_rollback_gives_the_number_back_and_sends_nothing(gateway, capture):
    a = make_session(gateway)
    history.send_to_channel("room-1", {"n": 1})
    with pytest.raises(RuntimeError), transaction.atomic():
        sent = history.send_to_channel("room-1", {"n": 2})
        assert sent.seq == 2 and sent.result is None  # waits for the commit
        raise RuntimeError
    assert [m["n"] for m in capture.sent_to(a.connection_id)] == [1]
    assert history.send_to_channel("room-1", {"n": 3}).seq == 2


@pytest.mark.django_db
def test_history_off_sends_without_numbers(gateway, capture, settings):
    settings.WEBSOCKETS = {"history_enabled": False}
    a = make_session(gateway)
    assert history.send_to_channel("room-1", {"n": 1}).seq is None
    assert capture.sent_to(a.connection_id) == [{"n": 1}]
    assert not ChannelMessage.objects.exists()


def test_history_settings_are_validated():
    errors, _ = conf.validate_settings(
        {
            "history_max_messages": 0,
            "history_max_age_seconds": "1",
            "history_enabled": 1,
            "presence_cleanup_broadcast": True,
        }
    )
    assert len(errors) == 3, errors


# --- concurrent senders (several processes' worth of connections) ----------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_senders_get_distinct_gap_free_numbers(gateway, capture):
    listener = make_session(gateway)
    senders, each = 8, 15

    def work(i):
        return [history.send_to_channel("busy", {"sender": i, "k": k}).seq for k in range(each)] + [
            history.send_to_user(1, {"sender": i}).seq
        ]

    listener_in_busy = make_session(gateway, channel="busy")
    results = in_threads(senders, work)
    assert not [r for r in results if isinstance(r, Exception)], results
    channel_seqs = sorted(seq for r in results for seq in r[:-1])
    assert channel_seqs == list(range(1, senders * each + 1))
    assert sorted(r[-1] for r in results) == list(range(1, senders + 1))  # the user stream counts too
    # Each sender's own numbers increase (a sender's messages stay in its order).
    assert all(r[:-1] == sorted(r[:-1]) for r in results)
    assert ChannelSequence.objects.get(stream="busy").last_seq == senders * each
    stored = list(ChannelMessage.objects.filter(stream="busy").order_by("seq").values_list("seq", "payload"))
    assert [seq for seq, _ in stored] == channel_seqs
    assert all(json.loads(payload)["seq"] == seq for seq, payload in stored)
    received = sorted(m["seq"] for m in capture.sent_to(listener_in_busy.connection_id))
    assert received == channel_seqs
    assert capture.sent_to(listener.connection_id) == []


# --- replay and retention --------------------------------------------------------------------


@pytest.mark.django_db
def test_replay_whole_and_past_the_retention(gateway, capture, settings):
    settings.WEBSOCKETS = {"history_max_messages": 5}
    for i in range(8):
        history.send_to_channel("room-1", {"n": i})
    found = history.replay("room-1", 5)
    assert not found.gap and [json.loads(p)["seq"] for p in found.payloads] == [6, 7, 8]
    assert history.replay("room-1", 3).payloads and not history.replay("room-1", 3).gap  # 4..8 kept
    past = history.replay("room-1", 2)  # 3 is past the count bound (even before any pruning)
    assert past.gap and past.payloads == [] and past.last == 8
    assert history.replay("room-1", 8).payloads == [] and not history.replay("room-1", 8).gap
    assert history.replay("room-1", 9).gap  # ahead of the stream: the history was reset
    ChannelMessage.objects.filter(seq=7).update(created_on=timezone.now() - timedelta(days=2))
    assert history.replay("room-1", 5).gap  # 7 is past the age bound


@pytest.mark.django_db
def test_cleanup_command_prunes_by_count_and_age(gateway, capture, settings):
    settings.WEBSOCKETS = {"history_max_messages": 3}
    for i in range(6):
        history.send_to_channel("room-1", {"n": i})
    history.send_to_channel("room-2", {"n": 0})
    ChannelMessage.objects.filter(stream="room-2").update(created_on=timezone.now() - timedelta(days=2))
    call_command("clearWebSocketSessions", stdout=io.StringIO())
    assert list(ChannelMessage.objects.order_by("stream", "seq").values_list("stream", "seq")) == [
        ("room-1", 4),
        ("room-1", 5),
        ("room-1", 6),
    ]
    assert history.send_to_channel("room-2", {}).seq == 2  # numbering continues after pruning


def test_replay_frames_stay_below_the_frame_limit():
    payloads = [json.dumps({"seq": i, "stream": "r", "blob": "x" * 20_000}) for i in range(1, 13)]
    frames = history.replay_frames(history.Replay("r", 0, 12, payloads))
    assert len(frames) > 1 and all(len(f) <= history.REPLAY_FRAME_BYTES for f in frames)
    assert [m["seq"] for f in frames for m in json.loads(f)["messages"]] == list(range(1, 13))


# --- the resume handler ----------------------------------------------------------------------


@pytest.mark.django_db
def test_resume_replays_channel_and_user_stream_after_commit(post, gateway, user, capture):
    me = make_session(gateway, user=user)
    for i in range(4):
        history.send_to_channel("room-1", {"n": i})
    history.send_to_user(user, {"type": "dm", "text": "hi"})
    capture.clear()
    response = post(
        "/ws/", me.connection_id, body={"handler": "resume", "channel": "room-1", "after": 2, "user_after": 0}
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"type": "resumed", "streams": {"room-1": 4, "@user": 1}}
    frames = capture.sent_to(me.connection_id)
    assert frames[0]["type"] == "replay" and [m["seq"] for m in frames[0]["messages"]] == [3, 4]
    assert frames[1] == {
        "type": "replay",
        "stream": "@user",
        "messages": [{"type": "dm", "text": "hi", "stream": "@user", "seq": 1}],
    }
    assert frames[2] == {"type": "resumed", "streams": {"room-1": 4, "@user": 1}}


@pytest.mark.django_db
def test_resume_past_the_window_says_so(post, gateway, user, capture, settings):
    settings.WEBSOCKETS = {"history_max_messages": 2}
    me = make_session(gateway, user=user)
    for i in range(5):
        history.send_to_channel("room-1", {"n": i})
    capture.clear()
    assert post("/ws/", me.connection_id, body={"handler": "resume", "after": 1}).status_code == 200
    assert capture.sent_to(me.connection_id) == [
        {"type": "resume_gap", "stream": "room-1", "after": 1, "seq": 5, "first_kept": 4},
        {"type": "resumed", "streams": {"room-1": 5}},
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, status",
    [
        ({"after": -1}, 400),
        ({"after": "3"}, 400),
        ({"after": True}, 400),
        ({"user_after": 1.5}, 400),
        ({"after": 0, "channel": "room-2"}, 409),
    ],
)
def test_resume_validates(post, gateway, user, capture, body, status):
    me = make_session(gateway, user=user)
    assert post("/ws/", me.connection_id, body={"handler": "resume", **body}).status_code == status
    assert capture.sent_to(me.connection_id) == []


@pytest.mark.django_db
def test_resume_with_nothing_missed_posts_nothing(post, gateway, user, capture):
    me = make_session(gateway, user=user)
    history.send_to_channel("room-1", {})
    capture.clear()
    assert post("/ws/", me.connection_id, body={"handler": "resume", "after": 1}).json()["streams"] == {"room-1": 1}
    assert capture.sent_to(me.connection_id) == [{"type": "resumed", "streams": {"room-1": 1}}]


@pytest.mark.django_db
def test_resume_with_null_gives_the_starting_point(post, gateway, user, capture):
    me = make_session(gateway, user=user)
    history.send_to_channel("room-1", {})
    history.send_to_channel("room-1", {})
    capture.clear()
    body = {"handler": "resume", "channel": "room-1", "after": None, "user_after": None}
    assert post("/ws/", me.connection_id, body=body).status_code == 200
    assert capture.sent_to(me.connection_id) == [{"type": "resumed", "streams": {"room-1": 2, "@user": 0}}]
    anonymous = make_session(gateway)
    capture.clear()
    post("/history/", anonymous.connection_id, body={"handler": "resume", "user_after": None})
    assert capture.sent_to(anonymous.connection_id) == []  # no user stream, no channel asked: nothing


@pytest.mark.django_db
def test_resume_in_a_channel_restricted_since_the_connection_joined_is_refused(
    post, gateway, user, django_user_model, capture
):
    from django_aws_api_gateway_websockets.models import ChannelPermission

    me = make_session(gateway, channel="board", user=user)
    staff = make_session(gateway, channel="board", user=django_user_model.objects.create_user("s", is_staff=True))
    history.send_to_channel("board", {"n": 1})
    # Made staff-only without the connection being closed (a QuerySet.update, or the re-check
    # after the commit not run yet): the rules are asked again.
    ChannelPermission.objects.create(channel_name="board", access=ChannelPermission.Access.STAFF_ONLY)
    history.send_to_channel("board", {"n": 2})
    history.send_to_user(user, {"type": "dm"})
    capture.clear()
    for body in ({"after": 0}, {"channel": "board", "after": None}, {"user_after": 0}):
        response = post("/ws/", me.connection_id, body={"handler": "resume", **body})
        assert response.status_code == 403, body
        assert response.json() == {"error": "Channel not allowed."}
    assert capture.sent_to(me.connection_id) == []
    assert post("/ws/", staff.connection_id, body={"handler": "resume", "after": 0}).status_code == 200
    assert [m["n"] for m in capture.sent_to(staff.connection_id)[0]["messages"]] == [1, 2]


def near_limit_payload(stream="room-1"):
    """The largest message send_to_channel accepts on ``stream``, give or take a few bytes."""
    head = history._envelope_head({"type": "big", "blob": ""}, stream)
    return {"type": "big", "blob": "x" * (protocol.MAX_PAYLOAD_BYTES - len(head) - 20)}


def follow_resume(post, session, capture, body):
    """Resume as the browser client does: again from each ``resumed`` frame's ``more`` until
    caught up. Returns the frames posted per request."""
    pages = []
    while True:
        capture.clear()
        response = post("/ws/", session.connection_id, body={"handler": "resume", **body})
        assert response.status_code == 200, response.content
        raw = capture.raw[session.connection_id]
        assert all(len(frame) <= protocol.MAX_PAYLOAD_BYTES for frame in raw)
        frames = [json.loads(frame) for frame in raw]
        pages.append(frames)
        assert frames[-1]["type"] == "resumed"
        more = frames[-1].get("more")
        assert more == response.json().get("more")
        if not more:
            return pages
        body = {"after": more["room-1"]} if "room-1" in more else {}
        if "@user" in more:
            body["user_after"] = more["@user"]


def delivered(frames):
    """The numbered messages the frames carry, as the browser client reads them."""
    out = []
    for frame in frames:
        if frame.get("type") == "replay":
            out.extend(frame["messages"])
        elif "seq" in frame and frame.get("type") not in ("resume_gap", "resumed"):
            out.append(frame)
    return out


@pytest.mark.django_db
def test_resume_replays_a_message_sent_near_the_payload_limit(post, gateway, capture):
    me = make_session(gateway)
    history.send_to_channel("room-1", {"type": "small"})
    big = history.send_to_channel("room-1", near_limit_payload())
    assert len(capture.raw[me.connection_id][-1]) > protocol.MAX_PAYLOAD_BYTES - 100  # it was sent
    history.send_to_channel("room-1", {"type": "small"})
    (frames,) = follow_resume(post, me, capture, {"after": 0})
    # The large one goes alone, exactly as first delivered (it carries stream and seq).
    assert capture.raw[me.connection_id][1] == ChannelMessage.objects.get(seq=big.seq).payload.encode()
    assert [m["seq"] for m in delivered(frames)] == [1, 2, 3]
    assert frames[-1] == {"type": "resumed", "streams": {"room-1": 3}}


@pytest.mark.django_db
def test_a_stored_message_over_the_limit_replays_as_a_visible_gap(post, gateway, capture, settings):
    settings.WEBSOCKETS = {"max_message_bytes": 256 * 1024}  # lowered since it was stored
    me = make_session(gateway)
    for i in range(3):
        history.send_to_channel("room-1", {"n": i})
    # Stored by other means (a row written by hand, an older release): it cannot be posted.
    ChannelMessage.objects.filter(seq=2).update(
        payload=json.dumps({"blob": "é" * 70_000, "stream": "room-1", "seq": 2})
    )
    (frames,) = follow_resume(post, me, capture, {"after": 0})
    assert [m["seq"] for m in delivered(frames)] == [1, 3]
    assert {
        "type": "resume_gap",
        "stream": "room-1",
        "after": 1,
        "seq": 2,
        "first_kept": None,
        "reason": "too_large",
    } in frames
    assert [f.get("seq") for f in frames if f["type"] != "resumed"] == [None, 2, None]  # in order


@pytest.mark.django_db
def test_resume_of_a_thousand_messages_goes_page_by_page_exactly_once(post, gateway, capture, settings):
    settings.WEBSOCKETS = {"history_max_messages": 1000}
    me = make_session(gateway)
    now = timezone.now()
    ChannelSequence.objects.create(stream="room-1", last_seq=1000)
    ChannelMessage.objects.bulk_create(
        ChannelMessage(stream="room-1", seq=n, payload=history._envelope({"n": n}, "room-1", n), created_on=now)
        for n in range(1, 1001)
    )
    pages = follow_resume(post, me, capture, {"after": 0})
    assert len(pages) == 10
    for page in pages:
        assert len(delivered(page)) <= conf.DEFAULTS["resume_page_messages"]
    assert pages[0][-1] == {"type": "resumed", "streams": {"room-1": 1000}, "more": {"room-1": 100}}
    assert [m["seq"] for page in pages for m in delivered(page)] == list(range(1, 1001))


@pytest.mark.django_db
def test_a_resume_page_keeps_to_its_byte_budget(post, gateway, user, capture, settings):
    settings.WEBSOCKETS = {"resume_page_bytes": 64 * 1024}
    me = make_session(gateway, user=user)
    for n in range(20):
        history.send_to_channel("room-1", {"n": n, "blob": "x" * 10_000})
    history.send_to_user(user, {"type": "dm", "blob": "x" * 8_000})  # more than a full page has left
    sizes = {
        (p.stream.replace(f"user:{user.pk}", "@user"), p.seq): len(p.payload.encode())
        for p in ChannelMessage.objects.all()
    }
    pages = follow_resume(post, me, capture, {"after": 0, "user_after": 0})
    for page in pages:
        assert sum(sizes[m["stream"], m["seq"]] for m in delivered(page)) <= 64 * 1024
    assert len(pages) == 4
    # The channel filled the first pages; the user stream waited for its turn, not skipped.
    assert pages[0][-1]["more"] == {"room-1": 6, "@user": 0}
    assert [m["seq"] for page in pages for m in delivered(page) if m["stream"] == "room-1"] == list(range(1, 21))
    assert [m["seq"] for page in pages for m in delivered(page) if m["stream"] == "@user"] == [1]


@pytest.mark.django_db
def test_a_message_larger_than_the_byte_budget_still_moves_the_page_on(post, gateway, capture, settings):
    settings.WEBSOCKETS = {"resume_page_bytes": 1024}
    me = make_session(gateway)
    for n in range(3):
        history.send_to_channel("room-1", {"n": n, "blob": "x" * 5_000})
    pages = follow_resume(post, me, capture, {"after": 0})
    assert [[m["seq"] for m in delivered(page)] for page in pages] == [[1], [2], [3]]


def test_resume_page_settings_are_validated():
    assert conf.value_problem("resume_page_messages", 0)
    assert conf.value_problem("resume_page_bytes", 10)
    assert conf.value_problem("resume_page_bytes", "1MB")
    assert conf.value_problem("resume_page_messages", 50) is None


# --- presence --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_presence_counts_users_once_and_anonymous_and_skips_dead_rows(gateway, user, other_user):
    make_session(gateway, user=user)
    make_session(gateway, user=user)  # a second tab
    make_session(gateway, user=other_user)
    make_session(gateway)
    make_session(gateway, user=other_user, channel="room-2")
    make_session(gateway, connected=False)
    stale = make_session(gateway)
    WebSocketSession.objects.filter(pk=stale.pk).update(created_on=timezone.now() - timedelta(hours=3))
    assert presence.presence("room-1") == {
        "channel": "room-1",
        "users": [{"id": user.pk, "username": "alice"}, {"id": other_user.pk, "username": "bob"}],
        "anonymous": 1,
        "connections": 4,
    }


@pytest.mark.django_db
def test_broadcast_presence_on_connect_change_channel_and_disconnect(post, presence_gateway, capture):
    def as_presence_gateway(connection_id, **kwargs):
        headers = integration_headers(presence_gateway, connection_id, route=kwargs.get("route", "default"))
        return post("/history/", connection_id, headers=headers, **kwargs)

    watcher = make_session(presence_gateway)
    newcomer = new_connection_id()
    assert as_presence_gateway(newcomer, route="connect", query="channel=room-1").status_code == 200
    join = capture.sent_to(watcher.connection_id)[-1]
    assert (join["type"], join["event"], join["user"], join["anonymous"]) == ("presence", "join", None, 2)
    assert capture.sent_to(newcomer) == []  # never posted to during its own $connect
    capture.clear()
    assert as_presence_gateway(newcomer, body={"handler": "change_channel", "channel": "room-2"}).status_code == 200
    leave = capture.sent_to(watcher.connection_id)
    assert [(m["event"], m["connections"]) for m in leave] == [("leave", 1)]
    assert [(m["event"], m["channel"]) for m in capture.sent_to(newcomer)] == [("join", "room-2")]
    capture.clear()
    as_presence_gateway(watcher.connection_id, route="disconnect")
    assert [(m["event"], m["connections"]) for m in capture.sent_to(newcomer)] == []  # another channel
    assert presence.presence("room-1")["connections"] == 0


@pytest.mark.django_db
def test_no_presence_broadcast_unless_the_view_asks(post, gateway, capture):
    watcher = make_session(gateway, channel="")
    assert post("/open/", new_connection_id(), route="connect").status_code == 200
    assert capture.sent_to(watcher.connection_id) == []


@pytest.mark.django_db
def test_stale_cleanup_reconciles_presence(presence_gateway, user, capture, settings):
    settings.WEBSOCKETS = {"presence_cleanup_broadcast": True}
    alive = make_session(presence_gateway)
    dead = make_session(presence_gateway, user=user)
    WebSocketSession.objects.filter(pk=dead.pk).update(created_on=timezone.now() - timedelta(hours=3))
    call_command("clearWebSocketSessions", "--stale", stdout=io.StringIO())
    synced = [(m["event"], m["user_count"], m["anonymous"]) for m in capture.sent_to(alive.connection_id)]
    assert synced == [("sync", 0, 1)]


@pytest.mark.django_db
def test_a_send_that_finds_a_connection_gone_announces_its_leave(post, presence_gateway, user, capture):
    watcher = make_session(presence_gateway)
    dead = make_session(presence_gateway, user=user)
    elsewhere = make_session(presence_gateway, channel="room-2")
    capture.mark_gone(dead.connection_id)
    result = history.send_to_channel("room-1", {"type": "chat"})
    assert result.result.gone == [dead.connection_id]
    chat, leave = capture.sent_to(watcher.connection_id)
    assert chat["seq"] == 1
    assert (leave["type"], leave["event"], leave["channel"]) == ("presence", "leave", "room-1")
    assert (leave["user"], leave["user_count"], leave["connections"]) == ({"id": user.pk, "username": "alice"}, 0, 1)
    assert "users" not in leave  # the member who changed and the counts, never the list
    assert capture.sent_to(elsewhere.connection_id) == []
    assert capture.sent_to(dead.connection_id) == []
    # API Gateway's $disconnect for it arrives later: the leave is not announced twice.
    capture.clear()
    headers = integration_headers(presence_gateway, dead.connection_id, route="disconnect")
    assert post("/history/", dead.connection_id, route="disconnect", headers=headers).status_code == 200
    assert capture.sent_to(watcher.connection_id) == []


@pytest.mark.django_db
def test_leave_on_gone_waits_for_the_commit_and_follows_the_gateways_view(
    presence_gateway, gateway, capture, django_capture_on_commit_callbacks
):
    watcher = make_session(presence_gateway)
    dead = make_session(presence_gateway)
    capture.mark_gone(dead.connection_id)
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        WebSocketSession.objects.filter(pk=dead.pk).send_message({"n": 1})  # a plain send finds it too
        assert capture.sent_to(watcher.connection_id) == []
    assert [m["event"] for m in capture.sent_to(watcher.connection_id)] == ["leave"]
    # The fixture gateway's integrations are ChatView's (no BROADCAST_PRESENCE): no event.
    quiet_watcher, quiet_dead = make_session(gateway, channel="room-9"), make_session(gateway, channel="room-9")
    capture.mark_gone(quiet_dead.connection_id)
    WebSocketSession.objects.in_channel("room-9").send_message({"n": 2})
    assert capture.sent_to(quiet_watcher.connection_id) == [{"n": 2}]


@pytest.mark.django_db
def test_without_a_resolvable_target_and_several_served_views_no_presence_is_announced(presence_gateway):
    # The test project serves several WebSocketViews: which one serves the gateway is unknown,
    # and a channel of another view must not get presence events.
    presence_gateway.target_base_endpoint = None
    presence_gateway.save()
    assert not presence.gateway_broadcasts_presence(presence_gateway)


@pytest.mark.django_db
def test_without_a_resolvable_target_the_one_served_view_decides(presence_gateway, settings):
    settings.ROOT_URLCONF = "tests.urls_presence_only"
    presence_gateway.target_base_endpoint = None
    presence_gateway.save()
    assert presence.gateway_broadcasts_presence(presence_gateway)


@pytest.mark.django_db
def test_leave_on_gone_with_many_leavers_is_one_sync(presence_gateway, capture, django_user_model):
    assert presence.gateway_broadcasts_presence(presence_gateway)
    watcher = make_session(presence_gateway)
    users = [django_user_model.objects.create_user(f"u{i}") for i in range(presence.LEAVE_EVENTS_PER_CHANNEL + 1)]
    for u in users:
        capture.mark_gone(make_session(presence_gateway, user=u).connection_id)
    anonymous = [make_session(presence_gateway) for _ in range(2)]
    for row in anonymous:
        capture.mark_gone(row.connection_id)
    WebSocketSession.objects.in_channel("room-1").send_message({"n": 1})
    # Twelve distinct leavers (eleven users, the anonymous as one): one sync, not twelve leaves.
    events = [(m["event"], m["connections"]) for m in capture.sent_to(watcher.connection_id) if "event" in m]
    assert events == [("sync", 1)]
    capture.clear()
    few = [make_session(presence_gateway) for _ in range(3)]
    for row in few:
        capture.mark_gone(row.connection_id)
    WebSocketSession.objects.in_channel("room-1").send_message({"n": 2})
    assert [m["event"] for m in capture.sent_to(watcher.connection_id) if "event" in m] == ["leave"]  # anonymous: one
