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
reconciled stale rows.) A send that finds connections gone (410) announces their ``leave`` too
(``leaving`` / ``announce_leaves``, called where sending.py marks them): the view behind their
gateway decides, as on ``$disconnect``. Presence events are state, not history: they carry no
sequence number and are not replayed; a client that reconnects asks for ``presence`` again.
"""

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.db import router, transaction
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, get_script_prefix, resolve
from django.utils import timezone

from . import protocol
from .history import in_transaction
from .models import WebSocketSession


def live_sessions(channel=None):
    """Connected rows younger than the 2-hour cap (in ``channel`` when given)."""
    rows = WebSocketSession.objects.filter(
        connected=True, created_on__gte=timezone.now() - timedelta(seconds=protocol.MAX_CONNECTION_SECONDS)
    )
    return rows if channel is None else rows.filter(channel_name=channel)


def presence(channel: str) -> dict[str, Any]:
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


# --- connections found gone by a send (410) --------------------------------------------------

GONE_BATCH = 500  # ids per SELECT ... WHERE id IN (...), as sending.UPDATE_BATCH
#: A channel that lost more distinct users (anonymous counts as one) in one send gets a single
#: ``sync`` event instead of one ``leave`` each: a mass departure costs one broadcast.
LEAVE_EVENTS_PER_CHANNEL = 10


def _served_websocket_views(resolver=None):
    """The ``WebSocketView`` classes the URLconf serves."""
    from .views import WebSocketView

    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _served_websocket_views(entry)
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            if isinstance(view_class, type) and issubclass(view_class, WebSocketView):
                yield view_class


def _integration_view(gateway):
    """The view class ``gateway``'s ``$disconnect`` integration URL resolves to, else None."""
    from .views import WebSocketView

    if not gateway.target_base_endpoint:
        return None
    path = urlsplit(gateway.target_base_endpoint.rstrip("/") + "/" + protocol.DISCONNECT).path
    prefix = get_script_prefix()
    candidates = [path] + ([path[len(prefix) - 1 :]] if prefix != "/" and path.startswith(prefix) else [])
    for candidate in candidates:
        try:
            view_class = getattr(resolve(candidate).func, "view_class", None)
        except Resolver404:
            continue
        if isinstance(view_class, type) and issubclass(view_class, WebSocketView):
            return view_class
    return None


def gateway_broadcasts_presence(gateway):
    """Whether the view serving ``gateway``'s connections has ``BROADCAST_PRESENCE``: the one its
    integration URL (``target_base_endpoint`` + ``disconnect``) resolves to; when that resolves to
    no ``WebSocketView`` (no target set, a proxy's path prefix), the one served ``WebSocketView``
    that accepts the gateway's API id. With several candidates the view is unknown, and nothing
    is announced (a channel of another view must not get presence events)."""
    view_class = _integration_view(gateway)
    if view_class is not None:
        return bool(view_class.BROADCAST_PRESENCE)
    candidates = {view for view in _served_websocket_views() if view.aws_api_gateway_id in (None, "", gateway.api_id)}
    return len(candidates) == 1 and bool(candidates.pop().BROADCAST_PRESENCE)


def leaving(pks: list[int]) -> list[WebSocketSession]:
    """The rows among ``pks`` (about to be marked gone) that are still connected, in a channel,
    behind a view that broadcasts presence: what ``announce_leaves`` announces. Read before the
    UPDATE, so a row a ``$disconnect`` already closed (and announced) is left out. No query
    unless a served view has ``BROADCAST_PRESENCE``."""
    if not pks or not any(view.BROADCAST_PRESENCE for view in _served_websocket_views()):
        return []
    rows: list[WebSocketSession] = []
    for start in range(0, len(pks), GONE_BATCH):
        rows.extend(
            WebSocketSession.objects.filter(pk__in=pks[start : start + GONE_BATCH], connected=True)
            .exclude(channel_name="")
            .select_related("api_gateway", "user")
        )
    decided: dict[int | None, bool] = {}
    kept = []
    for row in rows:
        if row.api_gateway_id not in decided:
            decided[row.api_gateway_id] = row.api_gateway is not None and gateway_broadcasts_presence(row.api_gateway)
        if decided[row.api_gateway_id]:
            kept.append(row)
    return kept


def announce_leaves(rows: list[WebSocketSession]) -> None:
    """Announce, once the transaction commits, that ``rows`` (from ``leaving``) left their
    channels: one ``leave`` per channel and user, as ``$disconnect`` does (a channel that lost
    more than ``LEAVE_EVENTS_PER_CHANNEL`` of them: one ``sync``)."""
    by_channel: dict[str, dict[int | None, WebSocketSession]] = {}
    for row in rows:
        by_channel.setdefault(row.channel_name, {}).setdefault(row.user_id, row)
    if not by_channel:
        return
    events: list[tuple[str, str, WebSocketSession | None]] = []
    for channel, users in by_channel.items():
        if len(users) > LEAVE_EVENTS_PER_CHANNEL:
            events.append((channel, "sync", None))
        else:
            events.extend((channel, "leave", row) for row in users.values())

    def send():
        for channel, event, row in events:
            announce(channel, event, row)

    db = router.db_for_write(WebSocketSession)
    if in_transaction(db):
        transaction.on_commit(send, using=db)
    else:
        send()
