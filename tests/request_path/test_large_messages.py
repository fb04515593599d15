"""Client -> server messages larger than a frame (issue #26, docs/large-messages.md): the view
holds the parts and runs the handler once, on the whole message; anything wrong ends in a
``message_error`` frame and no handler runs."""

import json
import random
from datetime import timedelta

import pytest
from django.utils import timezone

from django_aws_api_gateway_websockets import message_parts, parts, signals
from django_aws_api_gateway_websockets.models import MessagePart, WebSocketSession
from django_aws_api_gateway_websockets.testing import ManagementAPICapture
from tests.concurrency import in_threads

MB = 1024 * 1024


@pytest.fixture
def capture():
    with ManagementAPICapture() as cap:
        yield cap


@pytest.fixture(autouse=True)
def no_rate_limit(settings):
    settings.WEBSOCKETS = {"message_rate_limit": 0}


@pytest.fixture
def handled():
    """The handler names the message_received signal saw (each handler run)."""
    seen = []

    def receiver(sender, handler, **kwargs):
        seen.append(handler)

    signals.message_received.connect(receiver)
    yield seen
    signals.message_received.disconnect(receiver)


def chat(size):
    head = json.dumps({"handler": "send_chat", "text": ""}, separators=(",", ":"))
    return {"handler": "send_chat", "text": "y" * (size - len(head))}


def client_parts(data, message_id="c-1"):
    payload = json.dumps(data, separators=(",", ":")).encode()
    return parts.split(payload, parts.CLIENT_PART_BYTES, message_id)


@pytest.mark.django_db
@pytest.mark.parametrize("size", [200 * 1024, MB - 64])  # the echo adds its own keys
def test_parts_in_any_order_run_the_handler_once_on_the_whole_message(
    post_as_gateway, session_row, capture, handled, size
):
    frames = client_parts(chat(size))
    assert all(len(frame) <= 32 * 1024 for frame in frames)
    random.Random(size).shuffle(frames)
    answers = [post_as_gateway("/ws/", session_row.connection_id, body=frame) for frame in frames]
    assert [a.status_code for a in answers] == [200] * len(frames)
    assert [a.json()["type"] for a in answers[:-1]] == ["part_received"] * (len(frames) - 1)
    assert answers[-1].json() == {"type": "sent"}
    assert handled == ["send_chat"]
    (echo,) = capture.sent_to(session_row.connection_id)  # the handler's broadcast, itself split
    assert echo["text"] == chat(size)["text"]
    assert not MessagePart.objects.exists()


@pytest.mark.django_db
def test_a_repeated_part_is_ignored(post_as_gateway, session_row, capture, handled):
    frames = client_parts(chat(100_000))
    for frame in [frames[0], frames[0], *frames[1:]]:
        assert post_as_gateway("/ws/", session_row.connection_id, body=frame).status_code == 200
    assert handled == ["send_chat"]


@pytest.mark.django_db
def test_a_message_over_the_limit_is_refused_with_an_error_frame_and_nothing_runs(
    post_as_gateway, session_row, capture, handled, settings
):
    settings.WEBSOCKETS = {"message_rate_limit": 0, "max_message_bytes": 100_000}
    frames = client_parts(chat(100_001), "big-1")
    response = post_as_gateway("/ws/", session_row.connection_id, body=frames[0])
    assert response.status_code == 413
    (frame,) = capture.sent_to(session_row.connection_id)
    assert frame["type"] == "message_error"
    assert (frame["p"], frame["error"], frame["status"]) == ("big-1", "too_large", 413)
    assert handled == []
    assert not MessagePart.objects.exists()


@pytest.mark.django_db
def test_held_parts_past_the_connection_cap_are_refused(post_as_gateway, session_row, capture, handled, settings):
    settings.WEBSOCKETS = {"message_rate_limit": 0, "message_parts_max_pending_bytes": 64 * 1024}
    frames = client_parts(chat(200_000), "m")
    statuses = [post_as_gateway("/ws/", session_row.connection_id, body=f).status_code for f in frames[:3]]
    assert statuses == [200, 200, 429]
    assert capture.sent_to(session_row.connection_id)[-1]["error"] == "too_many_pending"
    assert not MessagePart.objects.filter(message_id="m").exists()
    assert handled == []


@pytest.mark.django_db
def test_a_part_that_never_comes_ends_in_an_expired_error_and_nothing_runs(
    post_as_gateway, session_row, capture, handled
):
    frames = client_parts(chat(100_000), "slow")
    for frame in frames[:-1]:
        post_as_gateway("/ws/", session_row.connection_id, body=frame)
    MessagePart.objects.update(created_on=timezone.now() - timedelta(seconds=61))
    # The next part of the connection finds it expired: the client is told, the last part
    # starts a new message that never completes either.
    post_as_gateway("/ws/", session_row.connection_id, body=frames[-1])
    errors = [m for m in capture.sent_to(session_row.connection_id) if m.get("type") == "message_error"]
    assert [(e["p"], e["error"], e["status"]) for e in errors] == [("slow", "expired", 408)]
    assert handled == []


@pytest.mark.django_db
def test_cleanup_expires_parts_and_tells_the_client(post_as_gateway, session_row, capture, handled):
    from django.core.management import call_command

    post_as_gateway("/ws/", session_row.connection_id, body=client_parts(chat(100_000), "left")[0])
    MessagePart.objects.update(created_on=timezone.now() - timedelta(seconds=61))
    call_command("clear_websocket_sessions", verbosity=0)
    assert not MessagePart.objects.exists()
    assert capture.sent_to(session_row.connection_id)[-1]["error"] == "expired"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "frame",
    [
        b"\x1e{nope}\nabc",
        b'\x1e{"p":"x","i":5,"n":2,"b":10}\nabc',
        b'\x1e{"p":"x","i":0,"n":1,"b":1}\nabc',
        b'\x1e{"p":"x","i":0,"n":50,"b":3}\nabc',
        b'\x1e{"p":"x","i":0,"n":1,"b":3}\n\xff\xfe\xfd',  # whole, but not UTF-8 JSON
    ],
)
def test_malformed_parts_are_refused_and_nothing_runs(post_as_gateway, session_row, capture, handled, frame):
    response = post_as_gateway("/ws/", session_row.connection_id, body=frame)
    assert response.status_code == 400
    assert handled == []


@pytest.mark.django_db
def test_parts_that_disagree_on_the_size_end_the_message(post_as_gateway, session_row, capture, handled):
    one = parts.header("d", 0, 2, 10) + b"abcde"
    other = parts.header("d", 1, 2, 11) + b"fghijk"
    assert post_as_gateway("/ws/", session_row.connection_id, body=one).status_code == 200
    assert post_as_gateway("/ws/", session_row.connection_id, body=other).status_code == 400
    assert capture.sent_to(session_row.connection_id)[-1]["error"] == "bad_part"
    assert not MessagePart.objects.exists()


@pytest.mark.django_db
def test_an_abort_part_forgets_the_message(post_as_gateway, session_row, capture, handled):
    frames = client_parts(chat(100_000), "gone")
    post_as_gateway("/ws/", session_row.connection_id, body=frames[0])
    post_as_gateway("/ws/", session_row.connection_id, body=parts.abort_frame("gone", 1, len(frames), 0))
    assert not MessagePart.objects.exists()
    assert handled == []


@pytest.mark.django_db(transaction=True)
def test_the_last_parts_arriving_at_once_run_the_handler_exactly_once(gateway, user, handled, capture, settings):
    """Two requests that both see the message complete: exactly one takes the parts."""
    session = WebSocketSession.objects.create(connection_id="Conc1", channel_name="room-1", api_gateway=gateway)
    frames = client_parts({"handler": "echo", "x": "z" * 100_000}, "race")
    for frame in frames[:-2]:
        message_parts.receive(session, frame)
    last = frames[-2:]
    results = in_threads(2, lambda i: message_parts.receive(session, last[i]))
    assert not [r for r in results if isinstance(r, Exception)], results
    wholes = [r for r in results if r is not None]
    assert len(wholes) == 1
    assert json.loads(wholes[0])["x"] == "z" * 100_000


@pytest.mark.django_db
def test_the_test_client_sends_a_large_message_as_parts_and_gets_the_handler_s_answer(gateway, settings):
    from django_aws_api_gateway_websockets.testing import WebSocketTestClient

    with WebSocketTestClient("/open/") as ws:
        assert ws.connect().status_code == 200
        response = ws.send({"handler": "echo", "blob": "b" * 300_000})
        assert response.status_code == 200
        assert response.json()["body"]["blob"] == "b" * 300_000


@pytest.mark.django_db(transaction=True)
def test_under_atomic_requests_the_last_parts_at_once_still_complete_exactly_once(gateway, monkeypatch):
    """Each part inside its request's transaction (ATOMIC_REQUESTS): uncommitted parts are
    invisible to the other request, so the connection's row lock takes them one at a time.
    Both requests are made to count the held parts only once both stored theirs (or after 2 s:
    with the lock, the second waits for the first's commit)."""
    import threading

    from django.db import connection, transaction
    from django.db.models import QuerySet

    if connection.vendor != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time anyway (the test database is in memory)")
    session = WebSocketSession.objects.create(connection_id="Atomic1", channel_name="room-1", api_gateway=gateway)
    frames = client_parts({"handler": "echo", "x": "z" * 100_000}, "tx")
    for frame in frames[:-2]:
        message_parts.receive(session, frame)
    last = frames[-2:]
    both_stored = threading.Barrier(2, timeout=2)
    count = QuerySet.count

    def count_after_both(self):
        if self.model is MessagePart:
            try:
                both_stored.wait()
            except threading.BrokenBarrierError:
                pass
        return count(self)

    monkeypatch.setattr(QuerySet, "count", count_after_both)

    def in_request(i):
        with transaction.atomic():
            return message_parts.receive(session, last[i])

    results = in_threads(2, in_request)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len([r for r in results if r is not None]) == 1


@pytest.mark.django_db(transaction=True)
def test_a_part_stored_as_its_connection_is_deleted_fails_no_cleanup_and_expires(session_row):
    """A part may be stored while a cleanup deletes its connection's row (CI caught it: the
    cleanup's COMMIT failed on the foreign key). The part holds no database constraint: the
    delete commits, the orphan part goes when it expires."""
    from django.db import transaction

    with transaction.atomic():
        WebSocketSession.objects.filter(pk=session_row.pk).delete()  # collects its parts: none yet
        # What a concurrent request commits meanwhile: a part of that connection.
        MessagePart.objects.create(
            connection_id=session_row.pk,
            message_id="late",
            index=0,
            count=2,
            total=10,
            size=5,
            chunk=b"hello",
            created_on=timezone.now() - timedelta(days=1),
        )
    assert not WebSocketSession.objects.filter(pk=session_row.pk).exists()
    assert message_parts.expire() == 1 and not MessagePart.objects.exists()
