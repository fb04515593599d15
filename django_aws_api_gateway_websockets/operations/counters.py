"""Per-minute counters, fed by the package's signals (signals.py).

Every event costs at most one UPDATE (``count = count + n``; an INSERT for the first event of a
minute), run after the event's transaction commits (``on_commit``): a connect that is rolled back
counts nothing, and the counter row is never locked for the length of a connect. A counter that
cannot be written is logged and dropped: statistics never fail a request.
"""

import json
import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .. import signals

logger = logging.getLogger("django_aws_api_gateway_websockets.operations")

THROTTLED = ("LimitExceeded", "TooManyRequests", "Throttl", "429")
RETENTION_MINUTES = 24 * 60  # rows older than this are deleted now and then (see prune)


def this_minute(now=None):
    return (now or timezone.now()).replace(second=0, microsecond=0)


def _write(minute, metric, label, n):
    from .models import MinuteCounter

    try:
        rows = MinuteCounter.objects.filter(minute=minute, metric=metric, label=label)
        if rows.update(count=F("count") + n):
            return
        try:
            with transaction.atomic():
                MinuteCounter.objects.create(minute=minute, metric=metric, label=label, count=n)
        except IntegrityError:  # another process created it meanwhile
            rows.update(count=F("count") + n)
        if metric == "connect":  # once per minute and label at most: keep the table small
            prune(minute)
    except Exception:
        logger.warning("could not count %s %s", metric, label, exc_info=True)


def bump(metric, label="", n=1):
    """Count ``n`` events of ``metric`` in this minute, once the current transaction commits."""
    if n <= 0:
        return
    minute = this_minute()
    label = str(label)[:200]
    try:
        transaction.on_commit(lambda: _write(minute, metric, label, n))
    except Exception:
        logger.warning("could not count %s %s", metric, label, exc_info=True)


def prune(now=None):
    from .models import MinuteCounter

    cutoff = this_minute(now) - timedelta(minutes=RETENTION_MINUTES)
    MinuteCounter.objects.filter(minute__lt=cutoff).delete()


def session_label(session):
    return f"{session.api_gateway_id or '-'}|{session.channel_name}"


def on_connected(sender, session, **kwargs):
    bump("connect", session_label(session))


def on_disconnected(sender, session, **kwargs):
    bump("disconnect", session_label(session))


def on_message(sender, request=None, session=None, handler=None, **kwargs):
    bump("message")
    if handler == "change_channel" and session is not None:
        # The channel a connection moves to: its open-connection line follows it. Counted after
        # commit, so a refused move (the message's transaction rolls back) counts nothing.
        try:
            channel = json.loads(request.body).get("channel")
        except Exception:
            return
        if isinstance(channel, str) and channel != session.channel_name:
            bump("move_out", session_label(session))
            bump("move_in", f"{session.api_gateway_id or '-'}|{channel}")
    elif handler in ("subscribe", "unsubscribe") and session is not None:
        # A subscription added or removed (issue #25): the channel's open line follows it (a
        # repeated subscribe or unsubscribe counts again: the line is an estimate between reads).
        try:
            channel = json.loads(request.body).get("channel")
        except Exception:
            return
        if isinstance(channel, str) and channel:
            bump("move_in" if handler == "subscribe" else "move_out", f"{session.api_gateway_id or '-'}|{channel}")


def on_rejected(sender, reason, **kwargs):
    bump("rejected", reason)


def on_gone(sender, connection_ids, **kwargs):
    bump("send_gone", n=len(connection_ids))


def on_send_failed(sender, error, **kwargs):
    bump("send_throttled" if any(mark in str(error) for mark in THROTTLED) else "send_failed")


def on_send_completed(sender, result, **kwargs):
    """A send's ``SendResult``: delivered (gone and failed come from their own signals)."""
    bump("send_delivered", n=len(result.delivered))


def connect_receivers():
    uid = "aws_websockets_operations_"
    signals.connected.connect(on_connected, dispatch_uid=uid + "connected")
    signals.disconnected.connect(on_disconnected, dispatch_uid=uid + "disconnected")
    signals.message_received.connect(on_message, dispatch_uid=uid + "message")
    signals.connection_rejected.connect(on_rejected, dispatch_uid=uid + "rejected")
    signals.connection_gone.connect(on_gone, dispatch_uid=uid + "gone")
    signals.send_failed.connect(on_send_failed, dispatch_uid=uid + "send_failed")
    signals.send_completed.connect(on_send_completed, dispatch_uid=uid + "send_completed")
