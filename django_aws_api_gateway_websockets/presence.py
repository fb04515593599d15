"""Presence: who is connected to a channel, from the ``WebSocketSession`` rows (docs/history.md).

``presence(channel)`` is one query. A row counts while it is ``connected`` and younger than
API Gateway's 2-hour connection cap, so a socket that died without a ``$disconnect`` stops
counting at the latest then (``clear_websocket_sessions --stale`` marks such rows; a send that
finds a connection gone marks it at once).

Views with ``BROADCAST_PRESENCE = True`` announce joins and leaves to the channel, after the
connect/disconnect/``change_channel`` commits::

    {"type": "presence", "event": "join", "channel": "room-1", "user": {"id": 3, "username": "bob"},
     "users": [{"id": 3, "username": "bob"}, ...], "anonymous": 2, "connections": 5}

(``user`` is ``null`` for an anonymous connection; ``event`` is ``"sync"`` when the cleanup
reconciled stale rows.) Presence events are state, not history: they carry no sequence number
and are not replayed; a client that reconnects asks for ``presence`` again.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import router, transaction
from django.utils import timezone

from . import protocol
from .models import WebSocketSession


def live_sessions(channel=None):
    """Connected rows younger than the 2-hour cap (in ``channel`` when given)."""
    rows = WebSocketSession.objects.filter(
        connected=True, created_on__gte=timezone.now() - timedelta(seconds=protocol.MAX_CONNECTION_SECONDS)
    )
    return rows if channel is None else rows.filter(channel_name=channel)


def presence(channel):
    """``{"channel", "users": [{"id", "username"}] (distinct, by username), "anonymous": n,
    "connections": n}`` for the channel's live connections (one query)."""
    username_field = f"user__{get_user_model().USERNAME_FIELD}"
    users, anonymous, connections = {}, 0, 0
    for user_id, username in live_sessions(channel).values_list("user_id", username_field):
        connections += 1
        if user_id is None:
            anonymous += 1
        else:
            users[user_id] = str(username)
    listed = [{"id": pk, "username": name} for pk, name in sorted(users.items(), key=lambda item: (item[1], item[0]))]
    return {"channel": channel, "users": listed, "anonymous": anonymous, "connections": connections}


def _user_info(session):
    if session.user_id is None:
        return None
    user = session.user
    return {"id": session.user_id, "username": user.get_username() if user is not None else ""}


def announce(channel, event, session=None, exclude=None):
    """Send a presence event to ``channel``'s live connections (but ``exclude``, a row pk)."""
    from .sending import send_to_sessions

    if not channel:
        return None
    message = {"type": "presence", "event": event, "user": _user_info(session) if session is not None else None}
    message.update(presence(channel))
    targets = live_sessions(channel)
    if exclude is not None:
        targets = targets.exclude(pk=exclude)
    return send_to_sessions(targets, message)


def announce_on_commit(channel, event, session=None, exclude=None):
    """``announce`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(
        lambda: announce(channel, event, session, exclude), using=router.db_for_write(WebSocketSession)
    )
