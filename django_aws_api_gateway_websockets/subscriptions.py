"""One socket, many channels (docs/channels.md): the ``Subscription`` rows of a connection.

The connect query's ``channel`` is the first subscription (``WebSocketSession.channel_name``
keeps it for the 4.x API); the built-in ``subscribe`` / ``unsubscribe`` handlers add and remove
more, up to ``WEBSOCKETS["max_subscriptions"]``; ``change_channel`` leaves them all and joins
one. Sending to a channel (``in_channel``, ``send_to_channel``) reaches every connection
subscribed to it, in one query on the subscription's channel index.

Client events (``whisper``) are relayed here too: to the channel's other subscribers, only
where ``client_events_allowed`` says so, never stored.
"""

import fnmatch
import json
import re
from typing import Any, NamedTuple

from django.core.serializers.json import DjangoJSONEncoder
from django.db import router

from . import protocol
from .conf import get_setting
from .db import subscriptions as subscription_sql
from .history import after_commit
from .models import Subscription, WebSocketSession

#: Client event names: short, plain (they become a key clients switch on).
EVENT_NAME_MAX_LENGTH = 64
EVENT_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]+")


class Subscribed(NamedTuple):
    ok: bool  # False: the connection holds max_subscriptions channels already
    seq: int  # the channel's current sequence number (0: nothing sent yet)
    added: bool  # a new subscription (False: it was held already, or refused)


def max_subscriptions() -> int:
    return int(get_setting("max_subscriptions"))


def subscribe(session: WebSocketSession, channel: str) -> Subscribed:
    """Subscribe ``session`` to ``channel`` (valid, access checked by the caller): at most two
    statements (what the connection holds and the channel's number, then the insert)."""
    found = subscription_sql.held(session.pk, channel, channel)
    if found.holds:
        return Subscribed(True, found.last_seq, False)
    limit = max_subscriptions()
    if found.held_count >= limit:
        return Subscribed(False, found.last_seq, False)
    if subscription_sql.insert(session.pk, channel, limit):
        return Subscribed(True, found.last_seq, True)
    # Nothing inserted: a concurrent subscribe of this connection won the row, or the limit.
    again = subscription_sql.held(session.pk, channel, channel)
    return Subscribed(again.holds, again.last_seq, False)


def unsubscribe(session: WebSocketSession, channel: str) -> bool:
    """Remove ``session``'s subscription to ``channel``; returns whether it held it. The first
    channel (``channel_name``) is cleared with it: two statements at most."""
    removed = subscription_sql.delete(session.pk, channel) > 0
    if session.channel_name == channel:
        WebSocketSession.objects.filter(pk=session.pk).update(channel_name="")
        session.channel_name = ""
    return removed


def replace(session: WebSocketSession, channel: str) -> list[str]:
    """``change_channel``: leave every channel, join ``channel`` (also the new
    ``channel_name``); returns the channels left."""
    left = [name for name in channels_of(session) if name != channel]
    subscription_sql.delete(session.pk)
    Subscription.objects.create(connection_id=session.pk, channel=channel)
    WebSocketSession.objects.filter(pk=session.pk).update(channel_name=channel)
    session.channel_name = channel
    return left


def channels_of(session: WebSocketSession) -> list[str]:
    """The channels ``session`` holds, oldest subscription first (one query)."""
    return list(
        Subscription.objects.filter(connection_id=session.pk)
        .order_by("created_on", "pk")
        .values_list("channel", flat=True)
    )


def holds(session: WebSocketSession, channel: str) -> bool:
    return Subscription.objects.filter(connection_id=session.pk, channel=channel).exists()


def post_after_commit(session: WebSocketSession, frame: dict[str, Any]) -> None:
    """Post ``frame`` to ``session`` once the handler's transaction commits (an answer every
    client reads, whether or not the route is two-way)."""
    from .sending import send_to_sessions

    after_commit(
        lambda: send_to_sessions([session], frame), router.db_for_write(WebSocketSession), f"A {frame['type']} frame"
    )


def post_now(session: WebSocketSession, frame: dict[str, Any]) -> None:
    """Post ``frame`` at once: a refusal's, whose transaction rolls back (on_commit would drop it)."""
    from .sending import send_to_sessions

    try:
        send_to_sessions([session], frame)
    except Exception:  # the HTTP answer still says it
        import logging

        logging.getLogger(__name__).warning("Could not post %s", frame.get("type"), exc_info=True)


# --- client events ------------------------------------------------------------------------------


def client_events_allowed(channel: str) -> bool:
    """Whether ``WEBSOCKETS["client_events_channels"]`` (shell-style patterns) names ``channel``."""
    return any(fnmatch.fnmatchcase(channel, pattern) for pattern in get_setting("client_events_channels"))


def is_valid_event_name(name: object) -> bool:
    return (
        isinstance(name, str) and 0 < len(name) <= EVENT_NAME_MAX_LENGTH and EVENT_NAME_RE.fullmatch(name) is not None
    )


def whisper_frame(channel: str, event: object, data: Any, user_info: dict[str, Any] | None) -> str | None:
    """The relayed frame, encoded once; ``None`` when it would not fit one WebSocket frame."""
    text = json.dumps(
        {"type": "whisper", "channel": channel, "event": event, "data": data, "user": user_info},
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
    )
    return text if len(text.encode()) <= protocol.MAX_FRAME_BYTES else None


def relay(session: WebSocketSession, channel: str, frame: str) -> int | None:
    """Post ``frame`` to ``channel``'s other live subscribers once the handler's transaction
    ends (no post while it is open); returns how many, or ``None`` when ``session`` does not
    hold ``channel``. One query finds the subscribers (the sender among them says it holds it)."""
    from .sending import send_to_sessions

    targets = list(
        WebSocketSession.objects.in_channel(channel)
        .filter(connected=True)
        .values_list("pk", "connection_id", "api_gateway_id")
    )
    if not any(pk == session.pk for pk, _, _ in targets):
        return None
    others = [_Target(pk, cid, gw) for pk, cid, gw in targets if pk != session.pk]
    if others:
        gateway = session.api_gateway if session.api_gateway_id is not None else None
        after_commit(
            lambda: send_to_sessions(others, frame, known_gateways=[gateway] if gateway else ()),  # type: ignore[arg-type]  # reads pk, connection_id, api_gateway_id
            router.db_for_write(WebSocketSession),
            "A client event",
        )
    return len(others)


class _Target(NamedTuple):
    """What ``send_to_sessions`` reads of a row (pk, connection id, gateway), without a model instance."""

    pk: int
    connection_id: str
    api_gateway_id: int | None
