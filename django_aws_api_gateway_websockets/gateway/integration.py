"""Integration requests: what the local gateway POSTs to Django (docs/local-gateway.md)."""

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from multidict import CIMultiDict

from .. import protocol

if TYPE_CHECKING:
    from .config import GatewayConfig
    from .connections import Connection

logger = logging.getLogger("django_aws_api_gateway_websockets.gateway")

# Handshake headers that are not passed through: hop-by-hop, or set by the gateway itself.
# (Mapped headers such as X-Gateway-Secret are dropped separately: a client must not forge them.)
NOT_FORWARDED = {
    "host",
    "connection",
    "upgrade",
    "content-length",
    "transfer-encoding",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-amzn-trace-id",
    "x-amzn-apigateway-api-id",
}

EVENT_TYPES = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}

# Statuses the gateway reports when Django gives no answer.
TIMED_OUT = 504
UNREACHABLE = 502


@dataclass
class IntegrationResult:
    status: int
    body: bytes = b""
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    timed_out: bool = False
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def failed(self) -> bool:
        """No usable answer: Django down, timed out, or a server error."""
        return self.status >= 500


def new_request_id() -> str:
    return str(uuid.uuid4())


def request_context(
    config: "GatewayConfig", connection: "Connection", route_key: str, request_id: str
) -> dict[str, str | int]:
    """The ``context.*`` variables of one request, as API Gateway names them."""
    return {
        "connectionId": connection.connection_id,
        "identity.sourceIp": connection.source_ip,
        "identity.userAgent": connection.user_agent,
        "requestId": request_id,
        "extendedRequestId": request_id,
        "apiId": config.api_id,
        "stage": config.stage,
        "routeKey": route_key,
        "eventType": EVENT_TYPES.get(route_key, "MESSAGE"),
        "connectedAt": int(connection.connected_at * 1000),
        "requestTimeEpoch": int(connection.last_active_at * 1000),
    }


def build_headers(
    config: "GatewayConfig",
    connection: "Connection",
    route_key: str,
    request_id: str,
    browser_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of one integration request for ``connection`` on ``route_key``.

    ``browser_headers`` (``$connect`` only) are the handshake's; other events carry API
    Gateway's own User-Agent and nothing from the browser.
    """
    headers: dict[str, str] = {}
    forwarded_for = None
    if browser_headers is not None:
        mapped = {target.rsplit(".", 1)[1].lower() for target in protocol.request_parameters("x")}
        for name, value in browser_headers.items():
            lowered = name.lower()
            if lowered == "x-forwarded-for":
                # API Gateway keeps what the client sent and appends the address it saw.
                forwarded_for = f"{value}, {connection.source_ip}"
            elif lowered not in NOT_FORWARDED and lowered not in mapped:
                headers[name] = value
    context = request_context(config, connection, route_key, request_id)
    headers.update(
        protocol.integration_headers(
            config.api_id, config.secret, context, connect=browser_headers is not None, forwarded_for=forwarded_for
        )
    )
    return headers


async def post(
    http: aiohttp.ClientSession, url: str, headers: Mapping[str, str], body: bytes, timeout: float
) -> IntegrationResult:
    """POST one integration request. Django down gives 502, no whole answer in ``timeout`` 504.

    ``timeout`` bounds the call as a whole (connect, send, the status and every byte of the
    body), as AWS's 29 s integration timeout does: a backend trickling bytes cannot hold it
    longer. ``http`` must not queue requests for a pooled connection (``LocalGateway`` bounds
    the calls in flight itself): that wait is the gateway's, it would eat into Django's time.
    """
    limits = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
    try:
        async with http.post(url, data=body, headers=headers, timeout=limits) as response:
            return IntegrationResult(response.status, await response.read(), CIMultiDict(response.headers))
    except TimeoutError:
        logger.warning("integration timed out after %ss: %s", timeout, url)
        return IntegrationResult(TIMED_OUT, timed_out=True)
    except aiohttp.ClientError as exc:
        logger.warning("integration failed: %s: %s", url, exc)
        return IntegrationResult(UNREACHABLE)
