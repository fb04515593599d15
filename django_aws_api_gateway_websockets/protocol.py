"""The wire contract between API Gateway and Django (docs/architecture.md).

One place for header names, route keys, limits and the integration's request-parameter
mapping, shared by the view, the provisioning code, the local gateway and the test helpers.
"""

import base64
import json
import os
import re
import secrets
from collections.abc import Container, Mapping
from typing import Any, TypeGuard

# Integration routes: the last path segment of the Django URL ``ws/<slug:route>``.
CONNECT = "connect"
DISCONNECT = "disconnect"
DEFAULT = "default"

# API Gateway route keys of the three built-in routes, and their integration path.
ROUTE_KEYS = {"$connect": CONNECT, "$disconnect": DISCONNECT, "$default": DEFAULT}

# Headers API Gateway sets on every integration request.
HEADER_API_ID = "X-Amzn-Apigateway-Api-Id"
HEADER_TRACE_ID = "X-Amzn-Trace-Id"
# Headers our integrations map from the request context (provisioning sets these up).
HEADER_CONNECTION_ID = "connectionId"
HEADER_SECRET = "X-Gateway-Secret"
HEADER_SOURCE_IP = "X-Source-Ip"
# What the 4.1.0 release's integrations send the secret as (accepted until a re-sync).
HEADER_LEGACY_SECRET = "X-Ws-Gateway-Secret"

USER_AGENT_PREFIX = "AmazonAPIGateway_"
# The integration ``RequestParameters`` key of a header: this prefix and the header's name.
HEADER_PARAM_PREFIX = "integration.request.header."


def request_parameters(secret: str) -> dict[str, str]:
    """The integration ``RequestParameters``: header <- context variable or 'static' value."""
    params = {
        HEADER_PARAM_PREFIX + HEADER_CONNECTION_ID: "context.connectionId",
        HEADER_PARAM_PREFIX + HEADER_SOURCE_IP: "context.identity.sourceIp",
    }
    if secret:
        params[HEADER_PARAM_PREFIX + HEADER_SECRET] = f"'{secret}'"
    return params


def integration_url(base: str, route_key: str) -> str:
    """Where a built-in route's integration posts: the view's URL ``base``
    (``https://www.example.com/ws/``, or a path) and the route's segment (``connect``, ...)."""
    return f"{base.rstrip('/')}/{ROUTE_KEYS[route_key]}"


def evaluate_mapping(mapping: Mapping[str, str], context: Mapping[str, object]) -> dict[str, str]:
    """Apply ``RequestParameters``: ``integration.request.header.X`` <- context variable or 'static'.

    Only header targets are evaluated (the package maps nothing else); a context variable the
    request does not have leaves its header out, as API Gateway does for an empty value.

    >>> evaluate_mapping({"integration.request.header.a": "'s'", "integration.request.header.b": "context.connectionId"}, {"connectionId": "c1"})
    {'a': 's', 'b': 'c1'}
    """
    headers = {}
    for target, source in mapping.items():
        if not target.startswith(HEADER_PARAM_PREFIX):
            continue
        name = target.removeprefix(HEADER_PARAM_PREFIX)
        if len(source) >= 2 and source[0] == source[-1] == "'":
            headers[name] = source[1:-1]
        elif source.startswith("context."):
            value = context.get(source[len("context.") :])
            if value is not None:
                headers[name] = str(value)
    return headers


def integration_headers(
    api_id: str,
    secret: str,
    context: Mapping[str, object],
    *,
    connect: bool,
    forwarded_for: str | None = None,
) -> dict[str, str]:
    """The headers API Gateway sends on an integration request (the local gateway's and the
    test client's): its own (forwarding, trace id, api id; after ``$connect`` its User-Agent)
    and the integration's mapped ones, ``request_parameters(secret)`` evaluated on ``context``
    (the request's ``context.*`` variables: ``connectionId``, ``identity.sourceIp``, ...).
    ``$connect`` carries the browser's headers instead of the User-Agent: the caller adds them."""
    source_ip = str(context.get("identity.sourceIp", ""))
    headers = {} if connect else {"User-Agent": f"{USER_AGENT_PREFIX}{api_id}"}
    headers.update(
        {
            "X-Forwarded-For": forwarded_for or source_ip,
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Port": "443",
            HEADER_TRACE_ID: trace_id(),
            HEADER_API_ID: api_id,
        }
    )
    headers.update(evaluate_mapping(request_parameters(secret), context))
    return headers


def trace_id() -> str:
    """A fresh ``X-Amzn-Trace-Id`` value shaped like API Gateway's (``Root=1-<8 hex>-<24 hex>``)."""
    return f"Root=1-{secrets.token_hex(4)}-{secrets.token_hex(12)}"


def new_connection_id() -> str:
    """An id shaped like API Gateway's (16 characters, ``L0SM9cOFvHcCIhw=``), safe in URL paths."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode()


# AWS's limits.
MAX_PAYLOAD_BYTES = 128 * 1024
MAX_FRAME_BYTES = 32 * 1024  # one WebSocket frame: a message that must never need splitting stays below
# JSON nested deeper than this is hostile: far above any real message, far below what exhausts
# the stack when code walks it (json.dumps recurses). Whether the parser itself gives up first
# depends on the Python version (3.13's gives up much later), so the limit is checked explicitly.
MAX_JSON_DEPTH = 128
MAX_CONNECTION_SECONDS = 2 * 60 * 60
IDLE_TIMEOUT_SECONDS = 10 * 60
INTEGRATION_TIMEOUT_SECONDS = 29

# Client query parameters on the wss URL.
QUERY_TOKEN = "ws_token"
QUERY_CHANNEL = "channel"

# Channel names: letters, digits, "_", "-", "."; at most the DB column's length.
CHANNEL_NAME_MAX_LENGTH = 128
CHANNEL_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
# API Gateway connection ids are short base64-ish strings ("L0SM9cOFvHcCIhw=").
CONNECTION_ID_MAX_LENGTH = 128
CONNECTION_ID_RE = re.compile(r"[A-Za-z0-9_=+/-]+")


# API ids: AWS's are 10 lowercase letters and digits; local ones are longer. Never a NUL byte.
API_ID_MAX_LENGTH = 32
API_ID_RE = re.compile(r"[A-Za-z0-9_-]+")


def is_valid_api_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= API_ID_MAX_LENGTH and API_ID_RE.fullmatch(value) is not None


def is_valid_channel_name(name: object) -> TypeGuard[str]:
    return (
        isinstance(name, str)
        and 0 < len(name) <= CHANNEL_NAME_MAX_LENGTH
        and CHANNEL_NAME_RE.fullmatch(name) is not None
    )


def is_valid_connection_id(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= CONNECTION_ID_MAX_LENGTH
        and CONNECTION_ID_RE.fullmatch(value) is not None
    )


def management_endpoint(api_id: str, region: str, stage: str) -> str:
    """The Management API endpoint AWS serves for a deployed stage."""
    return f"https://{api_id}.execute-api.{region}.amazonaws.com/{stage}"


def nesting_exceeds(value: object, limit: int) -> bool:
    """Whether ``value`` nests lists/objects deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Any
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def select_route(body_text: str | bytes, selection_key: str | None, route_keys: Container[str]) -> str:
    """The route key API Gateway picks for a message frame.

    ``selection_key`` is the body key named by ``$request.body.<key>``; a matching custom
    route key wins, anything else (no match, non-JSON, non-object, JSON nested deeper than
    ``MAX_JSON_DEPTH``) goes to ``$default``.
    """
    if not selection_key:
        return "$default"
    try:
        data = json.loads(body_text)
    except (TypeError, ValueError, RecursionError):
        return "$default"
    if nesting_exceeds(data, MAX_JSON_DEPTH):
        return "$default"
    value: Any = data
    for part in selection_key.split("."):
        if not isinstance(value, dict) or part not in value:
            return "$default"
        value = value[part]
    if isinstance(value, str) and value in route_keys:
        return value
    return "$default"


def selection_key_from_expression(expression: str | None) -> str | None:
    """``$request.body.action`` -> ``action``; ``None`` for expressions we cannot evaluate."""
    prefix = "$request.body."
    if expression and expression.startswith(prefix):
        return expression[len(prefix) :]
    return None
