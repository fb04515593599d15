"""Channel history: sequence-numbered messages that a reconnecting client can replay (docs/history.md).

``send_to_channel(channel, data)`` (and ``send_to_user(user, data)``) store the message in a
bounded per-stream log and send it, stamped, to the stream's connected sessions::

    {"type": "chat", "text": "hi", "stream": "room-1", "seq": 42}

* A stream is a channel name, or ``user:<pk>`` for a user's direct messages (``"@user"`` on
  the wire: the client does not need to know its user id).
* Sequence numbers are per stream, start at 1, increase by one and have no gaps: one atomic
  upsert of the stream's ``ChannelSequence`` row (``INSERT … ON CONFLICT DO UPDATE SET
  last_seq = last_seq + 1 RETURNING last_seq``) and the message's INSERT run in one
  transaction; the row lock orders concurrent senders (any number of processes), a rollback
  gives the number back. Sending happens after the commit (``on_commit`` inside an outer
  transaction), so a replay can always find what a connection was sent.
* Retention: the last ``WEBSOCKETS["history_max_messages"]`` messages of a stream, none older
  than ``history_max_age_seconds``. Replays apply both bounds exactly, whenever the rows are
  pruned (``clear_websocket_sessions`` prunes them).
* ``replay(stream, after)`` gives the payloads after ``after`` in order, or says that part of
  the gap is gone (the client must reload its state). The view's built-in ``resume`` handler
  uses it one page at a time (``resume_page``: ``WEBSOCKETS["resume_page_*"]``); the
  ``resumed`` frame's ``more`` says where the next request continues.
"""

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, router, transaction
from django.db.models import BigIntegerField, Func, Max, Min, OuterRef, Subquery
from django.utils import timezone

from .conf import get_setting
from .db import sequences as sequence_sql
from .history_models import ChannelMessage, ChannelSequence
from .models import WebSocketSession

if TYPE_CHECKING:
    from django.contrib.auth.models import _User  # the AUTH_USER_MODEL, for django-stubs' plugin
    from django.db.models import QuerySet

logger = logging.getLogger(__name__)

USER_STREAM = "@user"  # the wire name of a user's direct-message stream
REPLAY_FRAME_BYTES = 96 * 1024  # a replay frame (UTF-8 bytes) stays well below API Gateway's 128 KB


@dataclass
class ChannelSendResult:
    """``seq``: the number the message got (``None`` with history off); ``result``: the
    ``SendResult`` of the fan-out (``None`` while it waits for the outer transaction's commit)."""

    stream: str
    seq: int | None
    result: object = None


def user_stream(user_or_pk):
    pk = getattr(user_or_pk, "pk", user_or_pk)
    return f"user:{pk}"


def _envelope_head(data, wire_stream):
    """The message as clients receive it, up to its sequence number: ``head + str(seq) + "}"``
    is the payload. A dict gains ``stream`` and ``seq`` (its own keys of those names are
    replaced); anything else goes under ``data``."""
    if isinstance(data, dict):
        message = {key: value for key, value in data.items() if key not in ("stream", "seq")}
    else:
        message = {"data": data}
    message["stream"] = wire_stream
    text = json.dumps(message, cls=DjangoJSONEncoder, separators=(",", ":"))
    return text[:-1] + ("," if len(message) else "") + '"seq":'


def _envelope(data, wire_stream, seq):
    return f"{_envelope_head(data, wire_stream)}{seq}}}"


def next_seq(stream, using=None):
    """Give out ``stream``'s next sequence number; call inside a transaction (the row stays
    locked until it ends, which orders concurrent senders)."""
    db = using or router.db_for_write(ChannelSequence)
    connection = connections[db]
    sql = sequence_sql.next_seq_sql(connection)
    if sql is not None:
        with connection.cursor() as cursor:
            cursor.execute(sql, [stream])
            return cursor.fetchone()[0]
    # Other databases: lock the row (created first if needed), then count up.
    ChannelSequence.objects.using(db).get_or_create(stream=stream)
    row = ChannelSequence.objects.using(db).select_for_update().get(stream=stream)
    row.last_seq += 1
    row.save(update_fields=["last_seq"])
    return row.last_seq


def record(stream, data, wire_stream=None):
    """Store ``data`` as ``stream``'s next message: one INSERT and the counter's bump, whatever
    the audience. Returns ``(seq, payload text)``."""
    head = _envelope_head(data, wire_stream or stream)
    if 4 * len(head) + 20 > get_setting("max_message_bytes"):  # may be too large (UTF-8: <= 4 bytes a character)
        from .sending import check_size  # refuses it over max_message_bytes before anything is stored

        check_size(len(head.encode("utf-8")) + 20)  # with the largest number a BigIntegerField holds
    db = router.db_for_write(ChannelMessage)
    connection = connections[db]
    sql = sequence_sql.record_sql(connection)  # built once per database alias
    created_on = connection.ops.adapt_datetimefield_value(timezone.now())
    if sql is None:
        with transaction.atomic(using=db):
            seq = next_seq(stream, db)
            payload = f"{head}{seq}}}"
            ChannelMessage.objects.using(db).create(stream=stream, seq=seq, payload=payload, created_on=timezone.now())
        return seq, payload
    if len(sql) == 1:
        with connection.cursor() as cursor:
            cursor.execute(sql[0], [stream, stream, head, created_on])
            seq = cursor.fetchone()[0]
        return seq, f"{head}{seq}}}"
    with transaction.atomic(using=db), connection.cursor() as cursor:
        cursor.execute(sql[0], [stream])
        seq = cursor.fetchone()[0]
        payload = f"{head}{seq}}}"
        cursor.execute(sql[1], [stream, seq, payload, created_on])
    return seq, payload


def _send(sessions, stream, data, wire_stream):
    from .sending import send_to_sessions

    if not get_setting("history_enabled"):
        return ChannelSendResult(wire_stream, None, send_to_sessions(sessions, data))
    seq, payload = record(stream, data, wire_stream)
    outcome = ChannelSendResult(wire_stream, seq)
    db = router.db_for_write(ChannelMessage)
    if in_transaction(db):
        # Inside the caller's transaction: send once it commits (never a message that may roll back).
        after_commit(lambda: send_to_sessions(sessions, payload), db, "A channel send")
    else:
        outcome.result = send_to_sessions(sessions, payload)
    return outcome


def after_commit(func, db, what):
    """Run ``func`` once the transaction on ``db`` commits (at once outside one). A failure
    then is logged and swallowed: what committed stays done, and a request that committed
    must not answer 500 (API Gateway would refuse a connect whose row is stored) because a
    send that follows it failed."""

    def run():
        try:
            func()
        except Exception:
            logger.exception("%s failed after the commit", what)

    if in_transaction(db):
        transaction.on_commit(run, using=db)
    else:
        run()


def in_transaction(db):
    """Whether a transaction of the caller's is open on ``db`` (the one a ``TestCase`` wraps
    every test in does not count: a test sees what production code outside one would)."""
    return any(not getattr(block, "_from_testcase", False) for block in connections[db].atomic_blocks)


def send_to_channel(
    channel: str, data: object, sessions: "QuerySet[WebSocketSession] | None" = None
) -> ChannelSendResult:
    """Store ``data`` in ``channel``'s history and send it to the channel's connected sessions
    (``sessions``: a ``WebSocketSession`` queryset to narrow them): every connection subscribed
    to it, found in one query (docs/channels.md). Returns a ``ChannelSendResult``."""
    base = WebSocketSession.objects.all() if sessions is None else sessions
    return _send(base.filter(subscriptions__channel=channel, connected=True), channel, data, channel)


def send_to_user(user: "_User | int", data: object) -> ChannelSendResult:
    """Store ``data`` in ``user``'s direct stream and send it to every connection of the user."""
    sessions = WebSocketSession.objects.filter(user=user, connected=True)
    return _send(sessions, user_stream(user), data, USER_STREAM)


@dataclass
class Replay:
    """What ``replay`` found: ``payloads`` (JSON texts, in order) after ``after``, up to
    ``last``; ``gap`` is True when messages after ``after`` are no longer kept (or ``after``
    is ahead of the stream: the history was reset). A paged replay (``max_messages``) also says
    where it stopped: ``cursor``, the number of its last payload (``after`` when none), and
    ``more``, whether the stream has messages after it; ``size`` is the payloads' bytes."""

    stream: str
    after: int
    last: int
    payloads: list
    gap: bool = False
    first_kept: int | None = None
    more: bool = False
    cursor: int | None = None
    size: int = 0


class _ByteLength(Func):
    """The length of a text column in bytes (UTF-8), as the database stores it: a page's byte
    budget is chosen from the lengths before any payload is read."""

    function = "OCTET_LENGTH"
    output_field = BigIntegerField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="LENGTH(CAST(%(expressions)s AS BLOB))", **extra_context)

    def as_oracle(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, function="LENGTHB", **extra_context)


def _retention_floor(last):
    """The oldest sequence number the count bound keeps (messages below it count as gone)."""
    return last - get_setting("history_max_messages") + 1


def replay(stream, after, max_messages=None, max_bytes=None, *, at_least_one=True):
    """The messages of ``stream`` after ``after`` within the retention window: all of them (2
    queries), or with ``max_messages`` one page (3 queries: the counter, the lengths, the
    payloads) of at most ``max_messages`` messages and ``max_bytes`` bytes (``at_least_one``:
    the first message however large, so that a page always moves on)."""
    db = router.db_for_read(ChannelMessage)
    last = ChannelSequence.objects.using(db).filter(stream=stream).values_list("last_seq", flat=True).first() or 0
    if after >= last:
        return Replay(stream, after, last, [], gap=after > last, cursor=after)
    cutoff = timezone.now() - timedelta(seconds=get_setting("history_max_age_seconds"))
    floor = max(after + 1, _retention_floor(last))
    kept = (
        ChannelMessage.objects.using(db)
        .filter(stream=stream, seq__gte=floor, seq__lte=last, created_on__gte=cutoff)
        .order_by("seq")
    )
    if max_messages is None:
        rows = list(kept.values_list("seq", "payload"))
        first_kept = rows[0][0] if rows else None
        # Whole: the first kept message is the one right after ``after``, and nothing is missing.
        whole = first_kept is not None and first_kept == after + 1 and rows[-1][0] - first_kept + 1 == len(rows)
        if not whole:
            return Replay(stream, after, last, [], gap=True, first_kept=first_kept)
        payloads = [payload for _, payload in rows]
        return Replay(stream, after, last, payloads, first_kept=first_kept, cursor=last)
    sizes = list(kept.annotate(size=_ByteLength("payload")).values_list("seq", "size")[:max_messages])
    first_kept = sizes[0][0] if sizes else None
    if first_kept != after + 1:
        return Replay(stream, after, last, [], gap=True, first_kept=first_kept)
    count, total = 0, 0
    for i, (seq, size) in enumerate(sizes):
        if seq != after + 1 + i:
            break  # a hole ends the page (the next one starts there and reports the gap)
        if max_bytes is not None and total + size > max_bytes and (count or not at_least_one):
            break
        count, total = count + 1, total + size
    payloads = list(kept.filter(seq__lte=after + count).values_list("payload", flat=True)) if count else []
    if len(payloads) != count:  # pruned meanwhile: past the window now
        return Replay(stream, after, last, [], gap=True, first_kept=first_kept)
    cursor = after + count
    return Replay(stream, after, last, payloads, first_kept=first_kept, more=cursor < last, cursor=cursor, size=total)


def _gap_frame(wire, after, seq, first_kept, reason=None):
    frame = {"type": "resume_gap", "stream": wire, "after": after, "seq": seq, "first_kept": first_kept}
    if reason:
        frame["reason"] = reason
    return json.dumps(frame, separators=(",", ":"))


def replay_frames(replay_result):
    """The frames that carry a replay to a connection, each at most ``REPLAY_FRAME_BYTES``
    (UTF-8 bytes): ``{"type": "replay", "stream": ..., "messages": [...]}`` (the stored
    payloads verbatim). A payload too large to be wrapped goes alone, exactly as it was first
    delivered (it carries ``stream`` and ``seq``: the client takes it as a live message; one
    larger than a post goes as parts, docs/large-messages.md), so whatever ``send_to_channel``
    accepted replays; one larger than ``max_message_bytes`` (stored by other means, or before
    the setting was lowered) is a ``resume_gap`` with ``"reason": "too_large"``, never an error."""
    wire = _wire(replay_result.stream)
    head = '{"type":"replay","stream":' + json.dumps(wire) + ',"messages":['
    empty = len(head.encode()) + 2
    frames: list[str] = []
    batch: list[str] = []
    size = empty

    def flush():
        nonlocal batch, size
        if batch:
            frames.append(head + ",".join(batch) + "]}")
        batch, size = [], empty

    for i, payload in enumerate(replay_result.payloads):
        n = len(payload.encode("utf-8"))
        if empty + n > REPLAY_FRAME_BYTES:
            flush()
            if n <= get_setting("max_message_bytes"):
                frames.append(payload)
            else:
                seq = replay_result.after + 1 + i
                frames.append(_gap_frame(wire, seq - 1, seq, None, "too_large"))
            continue
        if batch and size + n + 1 > REPLAY_FRAME_BYTES:
            flush()
        batch.append(payload)
        size += n + 1
    flush()
    return frames


def _wire(stream):
    return USER_STREAM if stream.startswith("user:") else stream


def prune(now=None):
    """Delete messages past the retention bounds; returns how many were deleted."""
    now = now or timezone.now()
    removed, _ = ChannelMessage.objects.filter(
        created_on__lt=now - timedelta(seconds=get_setting("history_max_age_seconds"))
    ).delete()
    keep = get_setting("history_max_messages")
    # One statement for every stream: rows at or below their stream's last number minus ``keep``.
    last = ChannelSequence.objects.filter(stream=OuterRef("stream")).values("last_seq")[:1]
    deleted, _ = ChannelMessage.objects.filter(seq__lte=Subquery(last) - keep).delete()
    return removed + deleted


def stats():
    """``{stream: (oldest kept seq, last seq)}`` for the admin and websocket_stats."""
    kept = dict(
        ChannelMessage.objects.values("stream")
        .annotate(first=Min("seq"), last=Max("seq"))
        .values_list("stream", "first")
    )
    return {
        stream: (kept.get(stream), last) for stream, last in ChannelSequence.objects.values_list("stream", "last_seq")
    }


@dataclass
class ResumePage:
    """What one ``resume`` request sent: ``streams`` {wire stream: last seq}, and ``more``
    {wire stream: the last seq this page sent} for the streams not replayed to their end yet
    (the client continues with ``after`` = that number)."""

    streams: dict
    more: dict


def resume_session(session, channel=None, after=None, user_after=None, *, channel_position=False, user_position=False):
    """Replay to ``session`` what it missed on its channel (after ``after``) and on its user's
    direct stream (after ``user_after``), then a ``{"type": "resumed", "streams": {wire stream:
    last seq}}`` frame; ``*_position`` asks only for a stream's last number (a client without
    a starting point yet). The posts go out once the caller's transaction commits. Returns the
    ``streams`` mapping (``resume_page`` says where a paged replay stopped, too)."""
    return resume_page(
        session, channel, after, user_after, channel_position=channel_position, user_position=user_position
    ).streams


def resume_page(
    session,
    channel=None,
    after=None,
    user_after=None,
    *,
    channel_position=False,
    user_position=False,
    announce=True,
):
    """``resume_session``, one page at a time: the streams together replay at most
    ``WEBSOCKETS["resume_page_messages"]`` messages and ``["resume_page_bytes"]`` bytes (at
    least one message), so one small request never reads or posts a whole history. The
    ``resumed`` frame then carries ``"more": {wire stream: last seq sent}`` for each stream
    with more to come (``announce=False``: no ``resumed`` frame, the caller answers; the
    ``subscribe`` handler's ``subscribed``). Returns a ``ResumePage``."""
    cursors = {channel: after} if channel and (after is not None or channel_position) else {}
    return resume_channels(session, cursors, user_after, user_position=user_position, announce=announce)


def resume_channels(session, cursors, user_after=None, *, user_position=False, announce=True):
    """``resume_page`` for several channels: ``cursors`` {channel: the last number the client
    delivered, or ``None`` for only where the stream is}; one page for all of them and the
    user stream together (docs/channels.md#resume-per-channel)."""
    from .sending import send_to_sessions

    wanted = list(cursors.items())
    if session.user_id is not None and (user_after is not None or user_position):
        wanted.append((user_stream(session.user_id), user_after))
    frames, answer, more = [], {}, {}
    page_messages = messages_left = get_setting("resume_page_messages")
    bytes_left = get_setting("resume_page_bytes")
    for stream, since in wanted:
        wire = _wire(stream)
        if since is None or messages_left <= 0 or bytes_left <= 0:
            answer[wire] = ChannelSequence.objects.filter(stream=stream).values_list("last_seq", flat=True).first() or 0
            if since is not None and since < answer[wire]:
                more[wire] = since  # this page is full: the next request starts this stream
            continue
        found = replay(stream, since, messages_left, bytes_left, at_least_one=messages_left == page_messages)
        answer[wire] = found.last
        if found.gap:
            frames.append(_gap_frame(wire, since, found.last, found.first_kept))
            continue
        frames.extend(replay_frames(found))
        messages_left -= len(found.payloads)
        bytes_left -= found.size
        if found.more:
            more[wire] = found.cursor
    if not wanted:
        return ResumePage(answer, more)
    if announce:
        resumed: dict = {"type": "resumed", "streams": answer}
        if more:
            resumed["more"] = more
        frames.append(json.dumps(resumed, separators=(",", ":")))
    if not frames:
        return ResumePage(answer, more)

    def post():
        for frame in frames:
            result = send_to_sessions([session], frame)
            if not result.delivered:
                break  # gone (or failing): the next connection will resume again

    db = router.db_for_write(ChannelMessage)
    if in_transaction(db):
        after_commit(post, db, "A resume")
    else:
        post()
    return ResumePage(answer, more)
