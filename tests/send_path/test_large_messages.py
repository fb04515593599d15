"""Server -> client messages larger than one post (issue #26, docs/large-messages.md): split once,
posted in order, delivered whole or reported as not delivered; stored whole, replayed as parts."""

import json

import pytest

from django_aws_api_gateway_websockets import history, parts, protocol
from django_aws_api_gateway_websockets.models import ChannelMessage, WebSocketSession
from django_aws_api_gateway_websockets.sending import MessageTooLarge, send_to_sessions, wire_frames
from django_aws_api_gateway_websockets.testing import ManagementAPICapture
from django_aws_api_gateway_websockets.testing.client import new_connection_id

MB = 1024 * 1024


def make_session(gateway, channel="room-1"):
    return WebSocketSession.objects.create(connection_id=new_connection_id(), channel_name=channel, api_gateway=gateway)


def big(size, char="x"):
    """A JSON object of exactly ``size`` encoded bytes."""
    text = json.dumps({"blob": ""}, separators=(",", ":"))
    return {"blob": char * (size - len(text))}


@pytest.fixture
def capture():
    with ManagementAPICapture() as cap:
        yield cap


# --- the envelope -------------------------------------------------------------------------


def test_a_message_that_fits_one_post_is_sent_as_before_without_an_envelope():
    payload = b"x" * protocol.MAX_PAYLOAD_BYTES
    assert wire_frames(payload) == [payload]


def test_a_larger_message_becomes_parts_that_each_fit_one_post_and_join_to_the_message():
    payload = json.dumps(big(MB), separators=(",", ":")).encode()
    frames = wire_frames(payload)
    assert len(frames) == 9
    assert all(len(frame) <= protocol.MAX_PAYLOAD_BYTES for frame in frames)
    heads = [parts.parse(frame) for frame in frames]
    assert [h.index for h in heads] == list(range(9))
    assert {(h.message_id, h.count, h.total) for h in heads} == {(heads[0].message_id, 9, MB)}
    assert b"".join(h.chunk for h in heads) == payload
    assert sum(map(len, frames)) / len(payload) <= 1.02


def test_parts_never_cut_a_character_so_each_part_is_valid_text():
    payload = json.dumps(big(300_000, "é"), ensure_ascii=False, separators=(",", ":")).encode()
    for frame in wire_frames(payload):
        frame.decode("utf-8")  # raises if a character was cut
    assert parts.Assembler().add(wire_frames(payload)[0]) is None


def test_a_small_message_starting_with_the_parts_mark_is_enveloped_so_the_mark_is_unambiguous():
    (frame,) = wire_frames(b"\x1enot a part")
    assert parts.parse(frame).chunk == b"\x1enot a part"


def test_binary_larger_than_a_post_is_refused_clearly():
    with pytest.raises(MessageTooLarge, match="binary"):
        wire_frames(b"\xff" * (protocol.MAX_PAYLOAD_BYTES + 1))


@pytest.mark.parametrize(
    "frame",
    [
        b"\x1e",
        b"\x1e{}\n",
        b'\x1e{"p":"a","i":1,"n":1,"b":3}\nabc',
        b'\x1e{"p":"a","i":0,"n":1,"b":2}\nabc',
        b'\x1e{"p":"a b","i":0,"n":1,"b":3}\nabc',
        b'\x1e{"p":"a","i":true,"n":1,"b":3}\nabc',
        b'\x1e["p"]\nabc',
        b"\x1e" + b"x" * 1000 + b"\nabc",
    ],
)
def test_malformed_parts_are_refused(frame):
    with pytest.raises(parts.BadPart):
        parts.parse(frame)


# --- the send engine ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("size", [200 * 1024, MB])
def test_a_large_send_reaches_every_connection_whole_and_in_order(gateway, capture, size):
    a, b = make_session(gateway), make_session(gateway)
    data = big(size)
    result = WebSocketSession.objects.send_message(data)
    assert sorted(result.delivered) == sorted([a.connection_id, b.connection_id])
    for session in (a, b):
        assert capture.sent_to(session.connection_id) == [data]
        indexes = [parts.parse(raw).index for raw in capture.raw[session.connection_id]]
        assert indexes == sorted(indexes)


@pytest.mark.django_db
def test_the_largest_allowed_message_goes_and_one_byte_more_is_refused_before_any_call(gateway, capture, settings):
    settings.WEBSOCKETS = {"max_message_bytes": 300_000}
    session = make_session(gateway)
    assert WebSocketSession.objects.send_message(big(300_000)).delivered == [session.connection_id]
    with pytest.raises(MessageTooLarge, match="max_message_bytes"):
        WebSocketSession.objects.send_message(big(300_001))
    assert len(capture.sent_to(session.connection_id)) == 1


@pytest.mark.django_db
def test_a_connection_dropped_mid_message_is_gone_not_delivered_and_gets_no_more_parts(gateway, capture):
    fine, dropped = make_session(gateway), make_session(gateway)
    capture.fail_after(dropped.connection_id, 3)
    result = WebSocketSession.objects.send_message(big(MB))
    assert result.delivered == [fine.connection_id]
    assert result.gone == [dropped.connection_id]
    assert len(capture.raw[dropped.connection_id]) == 3
    assert capture.sent_to(dropped.connection_id) == []  # never half a message
    dropped.refresh_from_db()
    assert dropped.connected is False


@pytest.mark.django_db
def test_a_part_that_fails_reports_the_connection_failed_and_the_client_is_told_to_drop_it(gateway, capture):
    session = make_session(gateway)
    capture.fail_after(session.connection_id, 2, "LimitExceededException")
    result = send_to_sessions([session], big(MB))
    assert result.delivered == []
    assert result.failed == {session.connection_id: "LimitExceededException"}
    assert capture.sent_to(session.connection_id) == []


@pytest.mark.django_db
def test_an_uncertain_part_is_never_reported_delivered(gateway, capture):
    session = make_session(gateway)
    capture.fail_after(session.connection_id, 1, "Uncertain:timeout")
    result = send_to_sessions([session], big(MB))
    assert result.uncertain == [session.connection_id]
    assert not result.delivered


# --- history ----------------------------------------------------------------------------------


@pytest.fixture
def post(post_as_gateway, django_capture_on_commit_callbacks):
    def run(*args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return post_as_gateway(*args, **kwargs)

    return run


@pytest.mark.django_db
def test_history_stores_a_large_message_whole_and_resume_replays_it_as_parts(gateway, capture, post):
    me = make_session(gateway)
    history.send_to_channel("room-1", {"type": "small"})
    sent = history.send_to_channel("room-1", {"type": "big", **big(600_000)})
    history.send_to_channel("room-1", {"type": "small"})
    stored = ChannelMessage.objects.get(seq=sent.seq).payload
    assert len(stored.encode()) > 600_000
    capture.clear()
    response = post("/ws/", me.connection_id, body={"handler": "resume", "after": 0})
    assert response.status_code == 200, response.content
    assert all(len(raw) <= protocol.MAX_PAYLOAD_BYTES for raw in capture.raw[me.connection_id])
    frames = capture.sent_to(me.connection_id)
    delivered = []
    for frame in frames:
        delivered.extend(frame["messages"] if frame.get("type") == "replay" else [frame])
    numbered = [m for m in delivered if "seq" in m and m.get("type") != "resumed"]
    assert [m["seq"] for m in numbered] == [1, 2, 3]
    assert json.dumps(numbered[1], separators=(",", ":")) == stored
    assert frames[-1] == {"type": "resumed", "streams": {"room-1": 3}}


@pytest.mark.django_db
def test_a_channel_send_over_the_limit_stores_nothing(gateway, capture, settings):
    settings.WEBSOCKETS = {"max_message_bytes": 200_000}
    make_session(gateway)
    with pytest.raises(MessageTooLarge):
        history.send_to_channel("room-1", big(200_001))
    assert not ChannelMessage.objects.exists()
