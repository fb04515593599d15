"""A client's message larger than a frame, put back together before the handler runs
(docs/large-messages.md#client-to-server).

Each part is one request; parts may arrive in any order and at once (API Gateway calls the
integration concurrently). They are held in the database (``MessagePart``) with the
connection; the request that stores the last missing one takes them all (a ``DELETE`` of their
rows: of two requests that both saw the message complete, exactly one deletes them) and its
handler runs once, on the whole message. Anything wrong ends the message with a
``message_error`` frame posted to the connection and ``PartRefused`` (the request path
answers its status); nothing runs.
"""

from datetime import timedelta
from typing import NoReturn

from django.db import IntegrityError, connections, router, transaction
from django.db.models import Sum
from django.utils import timezone

from . import parts
from .conf import get_setting
from .exceptions import WebSocketsError
from .models import MessagePart, WebSocketSession

BAD_PART, TOO_LARGE, TOO_MANY_PENDING, EXPIRED = "bad_part", "too_large", "too_many_pending", "expired"
STATUS = {BAD_PART: 400, TOO_LARGE: 413, TOO_MANY_PENDING: 429, EXPIRED: 408}


class PartRefused(WebSocketsError):
    """A part ended its message; ``frame`` is the ``message_error`` the client was posted."""

    def __init__(self, frame: dict) -> None:
        super().__init__(frame["message"])
        self.frame = frame
        self.status = frame["status"]


def error_frame(message_id: str | None, error: str, message: str) -> dict:
    return {"type": "message_error", "p": message_id, "status": STATUS[error], "error": error, "message": message}


def _post(session: WebSocketSession, frame: dict) -> None:
    from .subscriptions import post_now

    post_now(session, frame)


def fail(session: WebSocketSession, message_id: str | None, error: str, message: str) -> NoReturn:
    """End ``message_id``: forget its parts, tell the client, raise ``PartRefused``."""
    if message_id is not None:
        MessagePart.objects.filter(connection=session, message_id=message_id).delete()
    frame = error_frame(message_id, error, message)
    _post(session, frame)
    raise PartRefused(frame)


def expire(connection_ids=None, now=None) -> int:
    """Drop the held messages whose first part is older than ``message_parts_timeout_seconds``
    (``connection_ids``: of these connections only), telling each client (``expired``).
    Returns how many messages were dropped."""
    cutoff = (now or timezone.now()) - timedelta(seconds=get_setting("message_parts_timeout_seconds"))
    old = MessagePart.objects.filter(created_on__lt=cutoff)
    if connection_ids is not None:
        old = old.filter(connection_id__in=connection_ids)
    found = set(old.values_list("connection_id", "message_id"))
    if not found:
        return 0
    sessions = WebSocketSession.objects.in_bulk({pk for pk, _ in found})
    for pk, message_id in found:
        MessagePart.objects.filter(connection_id=pk, message_id=message_id).delete()
        session = sessions.get(pk)
        if session is not None and session.connected:
            seconds = get_setting("message_parts_timeout_seconds")
            _post(session, error_frame(message_id, EXPIRED, f"The message's parts did not all arrive in {seconds} s."))
    return len(found)


def receive(session: WebSocketSession, body: bytes) -> bytes | None:
    """Hold one part; the whole message's bytes once this part completed it, else ``None``.
    Refuses (``message_error``) a malformed, over-limit or expired part."""
    try:
        part = parts.parse(body)
    except parts.BadPart as exc:
        fail(session, None, BAD_PART, f"Malformed message part: {exc}.")
    if part.abort:  # the client gave the message up
        MessagePart.objects.filter(connection=session, message_id=part.message_id).delete()
        return None
    limit = get_setting("max_message_bytes")
    if part.total > limit:
        fail(session, part.message_id, TOO_LARGE, f"Message too large: {part.total} bytes; the limit is {limit}.")
    if part.count > part.total + 1:  # every part but an empty message's carries at least one byte
        fail(session, part.message_id, BAD_PART, "More parts than the message has bytes.")
    db = router.db_for_write(MessagePart)
    if connections[db].in_atomic_block:
        # Inside the request's transaction (ATOMIC_REQUESTS) the parts stored by concurrent
        # requests are not visible until they commit, and two last parts could each miss the
        # other's: the connection's row lock (held to the commit) takes its parts one at a time.
        list(WebSocketSession.objects.using(db).select_for_update().filter(pk=session.pk).values_list("pk"))
    expire([session.pk])
    held = MessagePart.objects.filter(connection=session, message_id=part.message_id)
    first = held.values_list("count", "total", "created_on").first()
    if first is not None and first[:2] != (part.count, part.total):
        fail(session, part.message_id, BAD_PART, "The parts of one message disagree on its count or size.")
    cap = get_setting("message_parts_max_pending_bytes")
    pending = MessagePart.objects.filter(connection=session).aggregate(n=Sum("size"))["n"] or 0
    if pending + len(part.chunk) > cap:
        fail(
            session,
            part.message_id,
            TOO_MANY_PENDING,
            f"This connection holds {pending} bytes of unfinished messages; at most {cap}.",
        )
    try:
        with transaction.atomic(using=db):  # a savepoint when inside one: the duplicate rolls back alone
            MessagePart.objects.using(db).create(
                connection=session,
                message_id=part.message_id,
                index=part.index,
                count=part.count,
                total=part.total,
                size=len(part.chunk),
                chunk=part.chunk,
                created_on=first[2] if first is not None else timezone.now(),
            )
    except IntegrityError:
        return None  # this index is already held (a repeated frame)
    if held.count() < part.count:
        return None
    rows = list(held.order_by("index").values_list("pk", "chunk"))
    deleted, _ = MessagePart.objects.filter(pk__in=[pk for pk, _ in rows]).delete()
    if deleted != part.count:
        return None  # another request completed it at the same moment and runs its handler
    whole = b"".join(bytes(chunk) for _, chunk in rows)
    if len(whole) != part.total:
        fail(session, part.message_id, BAD_PART, f"The parts add up to {len(whole)} bytes, not {part.total}.")
    return whole
