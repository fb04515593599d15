"""Presence: who is connected to a channel, from the ``WebSocketSession`` rows (docs/history.md).

``presence(channel)`` is one query. A row counts while it is ``connected`` and younger than
API Gateway's 2-hour connection cap, so a socket that died without a ``$disconnect`` stops
counting at the latest then (``clear_websocket_sessions --stale`` marks such rows; a send that
finds a connection gone marks it at once).

Views with ``BROADCAST_PRESENCE = True`` announce joins and leaves to the channel, after the
connect/disconnect/``change_channel`` commits::

    {"type": "presence", "event": "join", "channel": "room-1", "user": {"id": 3, "username": "bob"},
     "user_count": 41, "anonymous": 2, "connections": 45}

(``user`` is ``null`` for an anonymous connection; ``event`` is ``"sync"`` when the cleanup
reconciled stale rows.) An event names the member who changed and the counts, never the whole
list, so it fits one frame in a channel of any size; the list comes by pages (``presence_page``,
the built-in ``presence`` handler of such views: ``event`` ``"members"`` and a ``next`` cursor).
Only connections of gateways whose view broadcasts presence receive events
(``presence_gateway_ids``). A send that finds connections gone (410) announces their ``leave``
too (``leaving`` / ``announce_leaves``, called where sending.py marks them). Presence events are
state, not history: they carry no sequence number and are not replayed; a client that
reconnects asks for the member list again. A failing announcement after the commit is logged,
never raised (``history.after_commit``).
"""

import json
from collections.abc import Collection
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import router
from django.db.models import Count, Q
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, get_script_prefix, resolve
from django.utils import timezone
from django.utils.module_loading import import_string

from . import protocol
from .conf import get_setting
from .history import after_commit
from .models import ApiGateway, Subscription, WebSocketSession

#: A member page lists at most this many users (fewer when their names would not fit a frame).
PAGE_MAX_USERS = 1000
#: A member's info (the project's hook) larger than this, encoded, is sent as the default
#: ``{"id", "username"}``: every event and page stays within one frame.
MEMBER_INFO_MAX_BYTES = 1024
#: Names are cut to this many characters in presence frames: a frame's size must not depend on
#: how long a custom user model lets a name be (JSON escapes make a character up to 12 bytes).
USERNAME_MAX_CHARS = 256


def live_sessions(channel=None):
    """Connected rows younger than the 2-hour cap (in ``channel`` when given)."""
    rows = WebSocketSession.objects.filter(
        connected=True, created_on__gte=timezone.now() - timedelta(seconds=protocol.MAX_CONNECTION_SECONDS)
    )
    return rows if channel is None else rows.filter(subscriptions__channel=channel)


def _username_field():
    return f"user__{get_user_model().USERNAME_FIELD}"


def presence(channel: str) -> dict[str, Any]:
    """``{"channel", "users": [{"id", "username"}] (distinct, by username), "anonymous": n,
    "connections": n}`` for the channel's live connections (one query). Every member: for
    server-side use; to send the list, send it by pages (``presence_page``)."""
    users, anonymous, connections = {}, 0, 0
    for user_id, username in live_sessions(channel).values_list("user_id", _username_field()):
        connections += 1
        if user_id is None:
            anonymous += 1
        else:
            users[user_id] = str(username)
    listed = [{"id": pk, "username": name} for pk, name in sorted(users.items(), key=lambda item: (item[1], item[0]))]
    return {"channel": channel, "users": listed, "anonymous": anonymous, "connections": connections}


def _on_gateways(rows, gateway_ids):
    return rows if gateway_ids is None else rows.filter(api_gateway_id__in=gateway_ids)


def counts(channel: str, gateway_ids: Collection[int] | None = None) -> dict[str, int]:
    """``{"user_count": distinct signed-in users, "anonymous": n, "connections": n}`` (one
    query), of the connections through ``gateway_ids`` when given."""
    found = _on_gateways(live_sessions(channel), gateway_ids).aggregate(
        user_count=Count("user", distinct=True),
        anonymous=Count("pk", filter=Q(user__isnull=True)),
        connections=Count("pk"),
    )
    return {key: found[key] or 0 for key in ("user_count", "anonymous", "connections")}


def _encoded_size(value):
    """Bytes of ``value`` as sending.encode_message writes it."""
    return len(json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":")))  # ASCII: escapes, not UTF-8


def presence_page(
    channel: str,
    after: Any = None,
    limit: int = PAGE_MAX_USERS,
    gateway_ids: Collection[int] | None = None,
    view_class: Any = None,
) -> dict[str, Any]:
    """One page of ``channel``'s members: ``{"channel", "users": [{"id", "username"}] (by id,
    after the user pk ``after``), "next": the ``after`` of the next page or None, "user_count",
    "anonymous", "connections"}``. At most ``limit`` users (``PAGE_MAX_USERS`` at most), and
    only as many as fit one frame (``protocol.MAX_FRAME_BYTES``) as the ``presence`` handler
    sends it. Of the connections through ``gateway_ids`` when given. Two queries."""
    limit = max(1, min(limit, PAGE_MAX_USERS))
    rows = _on_gateways(live_sessions(channel), gateway_ids).filter(user__isnull=False)
    if after is not None:
        rows = rows.filter(user_id__gt=after)
    candidates = list(rows.order_by("user_id").values_list("user_id", _username_field()).distinct()[: limit + 1])
    more = len(candidates) > limit
    del candidates[limit:]
    page: dict[str, Any] = {"channel": channel, "users": [], "next": None, **counts(channel, gateway_ids)}
    # The frame without users, with the longest cursor this page could end on.
    budget = protocol.MAX_FRAME_BYTES - _encoded_size({"type": "presence", "event": "members", **page})
    budget -= max((_encoded_size(pk) for pk, _ in candidates), default=0)
    users: list[dict[str, Any]] = []
    hook = info_hook(view_class)
    # With a hook, the users themselves (one query more): the hook reads whatever it needs.
    loaded = get_user_model()._default_manager.in_bulk([pk for pk, _ in candidates]) if hook and candidates else {}
    for pk, username in candidates:
        entry = member_info(loaded[pk], pk=pk, hook=hook) if pk in loaded else {"id": pk, "username": _name(username)}
        size = _encoded_size(entry) + (1 if users else 0)  # the comma
        if size > budget:
            more = True
            break
        budget -= size
        users.append(entry)
    page["users"] = users
    page["next"] = users[-1]["id"] if more and users else None
    return page


def _name(username):
    return ("" if username is None else str(username))[:USERNAME_MAX_CHARS]


def _user_info(session, view_class=None):
    if session.user_id is None:
        return None
    return member_info(session.user, view_class, pk=session.user_id)


def _default_info(user, pk):
    return {"id": pk, "username": _name(user.get_username()) if user is not None else ""}


def info_hook(view_class=None):
    """The project's member info hook: the view's ``presence_info(user)`` method, else the
    function ``WEBSOCKETS["presence_info"]`` names, else ``None`` (id and username)."""
    method = getattr(view_class, "presence_info", None) if view_class is not None else None
    if method is not None:
        return lambda user: method(view_class(), user)
    path = get_setting("presence_info")
    if not path:
        return None
    try:
        return import_string(path)
    except ImportError:  # a typo must not break presence: the default info, and a warning each time
        import logging

        logging.getLogger(__name__).warning('WEBSOCKETS["presence_info"] %r does not import', path)
        return None


def member_info(user, view_class=None, *, pk=None, hook=None):
    """What presence frames say of ``user`` (docs/channels.md#member-info): the hook's JSON
    object with ``id`` set to the user's pk, or ``{"id", "username"}`` when there is no hook,
    it fails or returns something else, or its answer encodes to more than
    ``MEMBER_INFO_MAX_BYTES``."""
    pk = user.pk if pk is None and user is not None else pk
    hook = hook if hook is not None else info_hook(view_class)
    if hook is None or user is None:
        return _default_info(user, pk)
    try:
        info = hook(user)
        if isinstance(info, dict):
            info = {**info, "id": pk}
            if _encoded_size(info) <= MEMBER_INFO_MAX_BYTES:
                return info
    except Exception:
        import logging

        logging.getLogger(__name__).warning("The presence_info hook failed", exc_info=True)
    return _default_info(user, pk)


def announce(channel, event, session=None, exclude=None, view_class=None):
    """Send a presence event to ``channel``'s live connections (but ``exclude``, a row pk) of
    the gateways that broadcast presence (``presence_gateway_ids``). The event names the member
    who changed and the counts, never the list: it fits a frame whatever the channel's size."""
    from .sending import send_to_sessions

    if not channel:
        return None
    gateway_ids = channel_presence_gateway_ids(channel)
    if not gateway_ids:
        return send_to_sessions([], {})  # an empty result, nothing sent
    targets = live_sessions(channel).filter(api_gateway_id__in=gateway_ids)
    if exclude is not None:
        targets = targets.exclude(pk=exclude)
    message = {
        "type": "presence",
        "event": event,
        "channel": channel,
        "user": _user_info(session, view_class) if session is not None else None,
        **counts(channel, gateway_ids),
    }
    return send_to_sessions(targets, message)


def announce_on_commit(channel, event, session=None, exclude=None, view_class=None):
    """``announce`` once the current transaction commits (at once outside one); a failure then
    is logged, not raised (the request that committed still succeeds)."""
    after_commit(
        lambda: announce(channel, event, session, exclude, view_class),
        router.db_for_write(WebSocketSession),
        "A presence announcement",
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


def presence_gateway_ids(gateways) -> set[int]:
    """The pks of ``gateways`` (ApiGateway records) whose view broadcasts presence
    (``gateway_broadcasts_presence``): the only connections presence events may reach, whether a
    join, a leave or a send that found connections gone announces it; another API's sockets
    sharing a channel name hear nothing. No query unless a served view has BROADCAST_PRESENCE."""
    if not any(view.BROADCAST_PRESENCE for view in _served_websocket_views()):
        return set()
    return {gateway.pk for gateway in gateways if gateway is not None and gateway_broadcasts_presence(gateway)}


def channel_presence_gateway_ids(channel: str) -> set[int]:
    """``presence_gateway_ids`` of the gateways with live connections in ``channel`` (one query,
    none unless a served view has ``BROADCAST_PRESENCE``)."""
    return presence_gateway_ids(ApiGateway.objects.filter(pk__in=live_sessions(channel).values("api_gateway_id")))


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
            .filter(subscriptions__isnull=False)
            .distinct()
            .select_related("api_gateway", "user")
        )
    broadcasting = presence_gateway_ids({row.api_gateway_id: row.api_gateway for row in rows}.values())
    rows = [row for row in rows if row.api_gateway_id in broadcasting]
    held = subscribed_channels([row.pk for row in rows])
    for row in rows:
        row.left_channels = held.get(row.pk, [])  # type: ignore[attr-defined]  # read by announce_leaves
    return rows


def subscribed_channels(pks: list[int]) -> dict[int, list[str]]:
    """``{connection pk: [channel, ...]}`` of the rows ``pks`` (one query per GONE_BATCH)."""
    found: dict[int, list[str]] = {}
    for start in range(0, len(pks), GONE_BATCH):
        for pk, channel in Subscription.objects.filter(connection_id__in=pks[start : start + GONE_BATCH]).values_list(
            "connection_id", "channel"
        ):
            found.setdefault(pk, []).append(channel)
    return found


def announce_leaves(rows: list[WebSocketSession]) -> None:
    """Announce, once the transaction commits, that ``rows`` (from ``leaving``) left their
    channels: one ``leave`` per channel and user, as ``$disconnect`` does (a channel that lost
    more than ``LEAVE_EVENTS_PER_CHANNEL`` of them: one ``sync``). A failure is logged, not
    raised: the send that found them gone has done its work."""
    by_channel: dict[str, dict[int | None, WebSocketSession]] = {}
    for row in rows:
        channels = getattr(row, "left_channels", None)
        for channel in channels if channels is not None else [row.channel_name]:
            if channel:
                by_channel.setdefault(channel, {}).setdefault(row.user_id, row)
    if not by_channel:
        return
    events: list[tuple[str, str, WebSocketSession | None]] = []
    for channel, users in by_channel.items():
        if len(users) > LEAVE_EVENTS_PER_CHANNEL:
            events.append((channel, "sync", None))
        else:
            events.extend((channel, "leave", row) for row in users.values())

    views = {row.api_gateway_id: _integration_view(row.api_gateway) for row in rows if row.api_gateway is not None}

    def send():
        for channel, event, row in events:
            announce(channel, event, row, view_class=views.get(row.api_gateway_id) if row is not None else None)

    after_commit(send, router.db_for_write(WebSocketSession), "A presence announcement")
