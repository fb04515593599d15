"""API Gateway's WebSocket events for the Lambda proxy integration (``AWS_PROXY``), built as
AWS builds them (the samples of AWS's "Set up WebSocket API integrations" and Lambda's
"Using Lambda with API Gateway" pages): the local gateway's ``--lambda`` mode and
``testing.lambda_event`` use them; plain data, no Django.

``$connect`` carries the handshake's headers (``headers``: the last value of each name,
``multiValueHeaders``: every value) and its query string (both forms, only when there is
one); a message carries the frame as ``body`` (base64 with ``isBase64Encoded`` for a binary
frame) and no headers; ``$disconnect`` a few headers of API Gateway's own and the close's
status in ``requestContext``.
"""

import base64
import time
import uuid
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from typing import Any

EVENT_TYPES = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}


def request_time(epoch_ms: int) -> str:
    """``requestTime`` as API Gateway writes it: ``09/Feb/2019:11:03:13 +0000``."""
    parts = formatdate(epoch_ms / 1000, usegmt=True).split()  # Sat, 09 Feb 2019 11:03:13 GMT
    return f"{parts[1]}/{parts[2]}/{parts[3]}:{parts[4]} +0000"


def _short_id() -> str:
    """An id shaped like ``extendedRequestId`` / ``messageId`` (``XfGLwFTktjMFsLg=``)."""
    return base64.b64encode(uuid.uuid4().bytes[:11]).decode()


def _multi(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _pairs(values: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> list[tuple[str, str]]:
    if values is None:
        return []
    if isinstance(values, Mapping):
        return list(values.items())
    return list(values)


def build_event(
    route_key: str,
    *,
    api_id: str,
    connection_id: str,
    stage: str = "production",
    domain_name: str = "",
    region: str = "us-east-1",
    source_ip: str = "127.0.0.1",
    user_agent: str = "",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    query: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: str | bytes | None = None,
    connected_at_ms: int | None = None,
    request_id: str | None = None,
    disconnect_status_code: int = 1001,
    disconnect_reason: str = "",
) -> dict[str, Any]:
    """One event of ``route_key`` (``$connect``, ``$disconnect``, ``$default`` or a custom key).

    ``headers`` and ``query`` (``$connect``): a mapping or ``(name, value)`` pairs, a name given
    twice keeping both values in the ``multiValue*`` forms. ``body``: a message's frame (``bytes``
    that are not UTF-8 are sent base64, as a binary frame). ``domain_name`` defaults to the API's
    ``execute-api`` host.
    """
    now_ms = int(time.time() * 1000)
    domain_name = domain_name or f"{api_id}.execute-api.{region}.amazonaws.com"
    event_type = EVENT_TYPES.get(route_key, "MESSAGE")
    request_id = request_id or _short_id()
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(now_ms),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": connected_at_ms if connected_at_ms is not None else now_ms,
        "requestTimeEpoch": now_ms,
        "identity": {"sourceIp": source_ip, "userAgent": user_agent} if user_agent else {"sourceIp": source_ip},
        "requestId": request_id,
        "domainName": domain_name,
        "connectionId": connection_id,
        "apiId": api_id,
    }
    event: dict[str, Any] = {}
    if event_type == "CONNECT":
        given = [(name, value) for name, value in _pairs(headers) if name.lower() != "host"]
        forwarded = [value for name, value in given if name.lower() == "x-forwarded-for"]
        own = {"x-forwarded-for", "x-forwarded-port", "x-forwarded-proto", "x-amzn-trace-id"}
        header_pairs = [("Host", domain_name), *((n, v) for n, v in given if n.lower() not in own)]
        header_pairs += [
            ("X-Amzn-Trace-Id", f"Root=1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}"),
            # API Gateway keeps what the client sent and appends the address it saw.
            ("X-Forwarded-For", ", ".join([*forwarded, source_ip])),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Proto", "https"),
        ]
        event["headers"], event["multiValueHeaders"] = _multi(header_pairs)
        query_pairs = _pairs(query)
        if query_pairs:
            event["queryStringParameters"], event["multiValueQueryStringParameters"] = _multi(query_pairs)
        context.update(disconnectStatusCode=None, messageId=None, disconnectReason=None)
    elif event_type == "DISCONNECT":
        event["headers"], event["multiValueHeaders"] = _multi(
            [("Host", domain_name), ("x-api-key", ""), ("X-Forwarded-For", ""), ("x-restapi", "")]
        )
        context.update(disconnectStatusCode=disconnect_status_code, disconnectReason=disconnect_reason, messageId=None)
    else:
        context["messageId"] = _short_id()
    event["requestContext"] = context
    if event_type == "MESSAGE":
        raw = body if body is not None else ""
        if isinstance(raw, bytes):
            try:
                event["body"], event["isBase64Encoded"] = raw.decode("utf-8"), False
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
        else:
            event["body"], event["isBase64Encoded"] = raw, False
    else:
        event["isBase64Encoded"] = False
    return event
