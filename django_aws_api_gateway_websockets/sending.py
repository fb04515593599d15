"""Sending to connections through the API Gateway Management API (SPEC §4, §7).

``send_to_sessions`` is the one fan-out engine behind ``WebSocketSession.send_message`` and
``WebSocketSession.objects....send_message``:

* the payload is encoded once (JSON via ``DjangoJSONEncoder``) and refused before any HTTP
  call when it exceeds API Gateway's 128 KB;
* each connection is posted to through its own gateway's endpoint, concurrently (see
  ``transport``), with one cached client per endpoint;
* 410 Gone marks the rows disconnected (one UPDATE per batch of ids); 429 is retried with
  jittered exponential backoff; any other error is reported for that connection only;
* calls per second stay under ``WEBSOCKETS["send_max_calls_per_second"]``.
"""

import json
import logging
from dataclasses import dataclass, field

from botocore.exceptions import ClientError
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet

from . import aws, protocol, signals, transport
from .conf import get_setting
from .models import ApiGateway, WebSocketSession

logger = logging.getLogger(__name__)

GONE = transport.GONE
UPDATE_BATCH = 500  # ids per UPDATE ... WHERE id IN (...), below SQLite's variable limit


class MessageTooLarge(ValueError):
    """The encoded message is larger than API Gateway accepts (128 KB)."""


@dataclass
class SendResult:
    """What happened to each connection a send was addressed to."""

    delivered: list = field(default_factory=list)
    gone: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)  # connection id -> error code

    @property
    def ok(self):
        return not self.failed

    def __len__(self):
        return len(self.delivered) + len(self.gone) + len(self.failed)


def encode_message(data):
    """Bytes to post: ``str``/``bytes`` as given, anything else as JSON."""
    if isinstance(data, bytes):
        payload = data
    elif isinstance(data, str):
        payload = data.encode("utf-8")
    else:
        payload = json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")).encode("utf-8")
    if len(payload) > protocol.MAX_PAYLOAD_BYTES:
        raise MessageTooLarge(
            f"Message is {len(payload)} bytes; API Gateway accepts at most "
            f"{protocol.MAX_PAYLOAD_BYTES} bytes."
        )
    return payload


def management_client(gateway, max_pool_connections=None):
    """The shared Management API client for ``gateway``'s endpoint and region."""
    return aws.get_client(
        "apigatewaymanagementapi",
        region=gateway.region_name,
        endpoint_url=gateway.management_endpoint,
        max_pool_connections=max_pool_connections,
    )


def _targets(sessions):
    """``[(pk, connection_id, gateway_id)]`` without building model instances."""
    if isinstance(sessions, QuerySet):
        return list(sessions.values_list("pk", "connection_id", "api_gateway_id"))
    return [(s.pk, s.connection_id, s.api_gateway_id) for s in sessions]


def send_to_sessions(sessions, data, *, max_workers=None):
    """Post ``data`` to every session in ``sessions`` (a queryset or an iterable of rows)."""
    payload = encode_message(data)
    targets = _targets(sessions)
    result = SendResult()
    if not targets:
        return result
    gateways = ApiGateway.objects.in_bulk({gw for _, _, gw in targets if gw is not None})
    workers = max(1, min(max_workers or get_setting("send_max_workers"), len(targets)))
    clients = {}  # gateway id -> client, or the configuration error for its rows
    for gateway_id, gateway in gateways.items():
        try:
            clients[gateway_id] = management_client(gateway, max_pool_connections=workers)
        except Exception as exc:
            clients[gateway_id] = type(exc).__name__
    pks, jobs = {}, []
    for pk, connection_id, gateway_id in targets:
        client = clients.get(gateway_id, "NoGateway")
        if isinstance(client, str):
            result.failed[connection_id] = client
            continue
        pks[connection_id] = pk
        jobs.append((connection_id, client))
    sender = transport.choose(
        get_setting("send_transport"),
        workers=workers,
        retries=get_setting("send_max_retries"),
        base_delay=get_setting("send_retry_base_delay"),
        limiter=transport.RateLimiter(get_setting("send_max_calls_per_second")),
    )
    for connection_id, error in sender.post_many(jobs, payload).items():
        if error is None:
            result.delivered.append(connection_id)
        elif error == GONE:
            result.gone.append(connection_id)
        else:
            result.failed[connection_id] = error
    _mark_gone([pks[cid] for cid in result.gone], result.gone)
    for connection_id, error in result.failed.items():
        logger.warning(
            "post_to_connection failed: %s",
            error,
            extra={"connection_id": connection_id, "route": "", "reason": error, "user_id": None},
        )
        signals.send_failed.send(sender=send_to_sessions, connection_id=connection_id, error=error)
    return result


def _mark_gone(pks, connection_ids):
    for start in range(0, len(pks), UPDATE_BATCH):
        WebSocketSession.objects.filter(pk__in=pks[start : start + UPDATE_BATCH]).update(connected=False)
    if connection_ids:
        logger.info(
            "%d connection(s) gone; marked disconnected",
            len(connection_ids),
            extra={
                "connection_id": connection_ids[0] if len(connection_ids) == 1 else "",
                "connection_ids": list(connection_ids),
                "route": "",
                "reason": GONE,
                "user_id": None,
            },
        )
        signals.connection_gone.send(sender=send_to_sessions, connection_ids=list(connection_ids))


def close_connection(session):
    """Ask API Gateway to close ``session``'s socket. True when it was open."""
    if session.api_gateway is None:
        raise ValueError(f"Session {session.connection_id} has no ApiGateway to close it through.")
    client = management_client(session.api_gateway)
    try:
        client.delete_connection(ConnectionId=session.connection_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != GONE:
            raise
        _mark_gone([session.pk], [session.connection_id])
        session.connected = False
        return False
    return True
