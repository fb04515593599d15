"""Sending to connections through the API Gateway Management API (docs/sending.md).

``send_to_sessions`` is the one fan-out engine behind ``WebSocketSession.send_message`` and
``WebSocketSession.objects....send_message``:

* the payload is encoded once (JSON via ``DjangoJSONEncoder``) and refused before any HTTP
  call when it exceeds ``WEBSOCKETS["max_message_bytes"]``; one larger than a post (128 KB)
  is split once into parts (``parts``, docs/large-messages.md) posted in order to each
  connection, which counts as delivered only when every part was;
* each connection is posted to through its own gateway's endpoint by the configured send
  backend (``WEBSOCKETS["send_backend"]``, see ``backends``): one pool per endpoint per
  process, reused across sends;
* 410 Gone marks the rows disconnected (one UPDATE per batch of ids); 429 is retried with
  jittered exponential backoff; a call that may have been delivered is never re-sent
  (``Uncertain:<reason>``); any other error is reported for that connection only;
* calls per second stay under ``WEBSOCKETS["send_max_calls_per_second"]`` (divided by
  ``send_rate_processes``, or shared through ``send_rate_limit_cache``).
"""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet

from . import aws, backends, parts, protocol, signals
from .backends.base import Outcome, throttled_retries
from .conf import get_setting
from .exceptions import WebSocketsError
from .log_context import log_context
from .models import ApiGateway, WebSocketSession

logger = logging.getLogger(__name__)

GONE = backends.GONE
UPDATE_BATCH = 500  # ids per UPDATE ... WHERE id IN (...), below SQLite's variable limit


class MessageTooLarge(WebSocketsError, ValueError):
    """The encoded message is larger than ``WEBSOCKETS["max_message_bytes"]`` (1 MB by default)."""


@dataclass
class SendResult:
    """What happened to each connection a send was addressed to."""

    delivered: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # connection id -> error code
    throttled_retries: int = 0  # 429/503 answers retried (this process's, while the send ran)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def uncertain(self) -> list[str]:
        """Ids whose call may or may not have been delivered (never re-sent: no duplicates)."""
        return [cid for cid, code in self.failed.items() if Outcome.of(code) is Outcome.UNCERTAIN]

    def __len__(self) -> int:
        return len(self.delivered) + len(self.gone) + len(self.failed)


def encode_message(data: object) -> bytes:
    """Bytes to post: ``str``/``bytes`` as given, anything else as JSON."""
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        payload = json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")).encode("utf-8")
    check_size(len(payload))
    return payload


def check_size(size: int) -> None:
    """``MessageTooLarge`` for a message of ``size`` bytes over ``max_message_bytes``."""
    limit = get_setting("max_message_bytes")
    if size > limit:
        raise MessageTooLarge(
            f"Message is {size} bytes; WEBSOCKETS['max_message_bytes'] allows at most {limit} bytes "
            f"(API Gateway takes {protocol.MAX_PAYLOAD_BYTES} in one post: larger messages go as parts)."
        )


def wire_frames(payload: bytes) -> list[bytes]:
    """What is posted for ``payload``: itself when it fits one post (exactly as before parts
    existed), else its parts (docs/large-messages.md). A payload starting with the parts mark
    is always enveloped, so that a frame starting with it is always a part."""
    if len(payload) <= protocol.MAX_PAYLOAD_BYTES and not parts.is_part(payload):
        return [payload]
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageTooLarge(
            f"Message is {len(payload)} bytes of binary data; only text (UTF-8) goes as parts, "
            f"binary messages must fit one post ({protocol.MAX_PAYLOAD_BYTES} bytes)."
        ) from None
    return parts.split(payload, parts.SERVER_PART_BYTES)


def management_client(gateway: ApiGateway, max_pool_connections: int | None = None) -> Any:
    """A boto3 Management API client for ``gateway``'s endpoint and region (for your own calls)."""
    return aws.get_client(
        "apigatewaymanagementapi",
        region=gateway.region_name,
        endpoint_url=gateway.management_endpoint,
        max_pool_connections=max_pool_connections,
    )


def _targets(
    sessions: "QuerySet[WebSocketSession] | Iterable[WebSocketSession]",
) -> list[tuple[int, str, int | None]]:
    """``[(pk, connection_id, gateway_id)]`` without building model instances."""
    if isinstance(sessions, QuerySet):
        return list(sessions.values_list("pk", "connection_id", "api_gateway_id"))
    return [(s.pk, s.connection_id, s.api_gateway_id) for s in sessions]


def send_to_sessions(
    sessions: "QuerySet[WebSocketSession] | Iterable[WebSocketSession]",
    data: object,
    *,
    max_workers: int | None = None,
    known_gateways: "Iterable[ApiGateway]" = (),
) -> SendResult:
    """Post ``data`` to every session in ``sessions`` (a queryset or an iterable of rows).
    ``known_gateways``: records the caller has at hand (a handler's ``view.api_gateway``), not
    read again."""
    frames = wire_frames(encode_message(data))
    targets = _targets(sessions)
    result = SendResult()
    if not targets:
        return result
    backend = backends.get_backend()
    options = backends.SendOptions.from_settings(max_workers)
    # Rows loaded with their gateway (a handler's own connection) need no query for it.
    gateways: dict[Any, ApiGateway] = {gateway.pk: gateway for gateway in known_gateways}
    if not isinstance(sessions, QuerySet):
        for session in sessions:
            cached = getattr(getattr(session, "_state", None), "fields_cache", {}).get("api_gateway")
            if isinstance(cached, ApiGateway):
                gateways[cached.pk] = cached
    missing = {gw for _, _, gw in targets if gw is not None and gw not in gateways}
    if missing:
        gateways.update(ApiGateway.objects.in_bulk(missing))
    # gateway id -> Endpoint, or the configuration error for its rows
    endpoints: dict[int | None, backends.Endpoint | str] = {}
    for gateway_id, gateway in gateways.items():
        try:
            endpoints[gateway_id] = backends.Endpoint.for_gateway(gateway)
        except Exception as exc:
            endpoints[gateway_id] = type(exc).__name__
    pks, jobs = {}, []
    for pk, connection_id, gateway_id in targets:
        endpoint = endpoints.get(gateway_id, "NoGateway")
        if isinstance(endpoint, str):
            result.failed[connection_id] = endpoint
            continue
        pks[connection_id] = pk
        jobs.append((connection_id, endpoint))
    retries_before = throttled_retries()
    codes = _post_frames(backend, jobs, frames, options) if jobs else {}
    result.throttled_retries = throttled_retries() - retries_before
    for connection_id, code in codes.items():
        if code is None:
            result.delivered.append(connection_id)
        elif code == Outcome.GONE:
            result.gone.append(connection_id)
        else:
            result.failed[connection_id] = code
    _mark_gone([pks[cid] for cid in result.gone], result.gone)
    for connection_id, error in result.failed.items():
        logger.warning(
            "post_to_connection failed: %s",
            error,
            extra=log_context(connection_id, reason=error),
        )
        signals.send_failed.send(sender=send_to_sessions, connection_id=connection_id, error=error)
    signals.send_completed.send(sender=send_to_sessions, result=result)
    return result


def _post_frames(backend, jobs, frames, options):
    """Post ``frames`` in order to every job: frame ``i + 1`` only to the connections that took
    frame ``i`` (a connection that missed a part gets no more of them, and its code is the
    failed part's). Parts are posted to all connections at once, so a message of ``n`` parts
    costs ``n`` fan-outs, not ``n`` times the connections' round trips in a row."""
    if len(frames) == 1:
        return backend.post_many(jobs, frames[0], options)
    codes: dict[str, Any] = {}
    for index, frame in enumerate(frames):
        answered = backend.post_many(jobs, frame, options)
        still, aborted = [], []
        for connection_id, endpoint in jobs:
            code = answered.get(connection_id)
            if code is None:
                still.append((connection_id, endpoint))
                continue
            codes[connection_id] = code
            if code != Outcome.GONE:
                aborted.append((connection_id, endpoint))
        if aborted:
            # Best-effort: tell a client still there that this message will not complete.
            head = parts.parse(frame)
            backend.post_many(aborted, parts.abort_frame(head.message_id, index, head.count, head.total), options)
        jobs = still
        if not jobs:
            break
    codes.update({connection_id: None for connection_id, _ in jobs})
    return codes


def _mark_gone(pks: list[int], connection_ids: list[str]) -> None:
    from . import presence

    leaving = presence.leaving(pks)  # BROADCAST_PRESENCE views: a leave, as on $disconnect
    for start in range(0, len(pks), UPDATE_BATCH):
        WebSocketSession.objects.filter(pk__in=pks[start : start + UPDATE_BATCH]).update(connected=False)
    presence.announce_leaves(leaving)
    if connection_ids:
        logger.info(
            "%d connection(s) gone; marked disconnected",
            len(connection_ids),
            extra=log_context(
                connection_ids[0] if len(connection_ids) == 1 else "",
                reason=GONE,
                connection_ids=list(connection_ids),
            ),
        )
        signals.connection_gone.send(sender=send_to_sessions, connection_ids=list(connection_ids))


class CloseFailed(WebSocketsError):
    """API Gateway did not close the connection; ``code`` says why (an AWS error code)."""

    def __init__(self, connection_id: str, code: str) -> None:
        super().__init__(f"Could not close {connection_id}: {code}")
        self.connection_id, self.code = connection_id, code


def close_connection(session: WebSocketSession) -> bool:
    """Ask API Gateway to close ``session``'s socket. True when it was open, False when gone.

    Raises ``CloseFailed`` for any other answer.
    """
    if session.api_gateway is None:
        raise ValueError(f"Session {session.connection_id} has no ApiGateway to close it through.")
    endpoint = backends.Endpoint.for_gateway(session.api_gateway)
    code = backends.get_backend().delete(endpoint, session.connection_id, backends.SendOptions.from_settings())
    if code == GONE:
        _mark_gone([session.pk], [session.connection_id])
        session.connected = False
        return False
    if code is not None:
        raise CloseFailed(session.connection_id, code)
    return True
