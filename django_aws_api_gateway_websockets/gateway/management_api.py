"""The Management API (``@connections``, docs/local-gateway.md) as API Gateway answers it.

Errors carry the ``x-amzn-ErrorType`` header and a JSON ``message``: botocore's rest-json parser
turns them into the modeled exceptions (``GoneException``, ``PayloadTooLargeException``,
``LimitExceededException``, ``ForbiddenException``), exactly as against AWS.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .. import protocol
from .connections import Connection, iso_timestamp

if TYPE_CHECKING:
    from .server import LocalGateway

#: One ``@connections`` operation on an open connection.
Operation = Callable[[web.Request, Connection], Awaitable[web.StreamResponse]]

logger = logging.getLogger("django_aws_api_gateway_websockets.gateway")


def aws_error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status, headers={"x-amzn-ErrorType": error_type})


def forbidden() -> web.Response:
    """What API Gateway answers for a path or stage it does not serve."""
    return aws_error(403, "ForbiddenException", "Forbidden")


class TokenBucket:
    """AWS's throttle: ``rate`` requests per second on average, bursts up to ``burst``. 0 = off."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        if not self.rate:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ManagementApi:
    """``POST | GET | DELETE /<stage>/@connections/{id}`` for a ``LocalGateway``."""

    def __init__(self, gateway: "LocalGateway") -> None:
        self.gateway = gateway
        self.config = gateway.config
        self.throttle = TokenBucket(self.config.management_rate_limit, self.config.management_burst_limit)

    def add_routes(self, router: web.UrlDispatcher, stage_path: str) -> None:
        path = stage_path + "/@connections/{connection_id}"
        router.add_post(path, self.call(self.post_to_connection))
        router.add_get(path, self.call(self.get_connection))
        router.add_delete(path, self.call(self.delete_connection))

    def call(self, operation: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Latency, throttling, id checks and one log line around an operation."""

        async def handler(request: web.Request) -> web.StreamResponse:
            if self.config.management_latency_ms:
                await asyncio.sleep(self.config.management_latency_ms / 1000)
            connection_id = request.match_info["connection_id"]
            response: web.StreamResponse
            if not self.throttle.take():
                response = aws_error(429, "LimitExceededException", "Rate exceeded")
            elif not protocol.is_valid_connection_id(connection_id):
                # Not one of AWS's modeled errors: botocore reports it as a plain ClientError.
                response = aws_error(400, "BadRequestException", f"Invalid connectionId: {connection_id}")
            else:
                conn = self.gateway.connections.get(connection_id)
                if conn is None or not conn.is_open:
                    response = aws_error(410, "GoneException", f"Connection {connection_id} is gone")
                else:
                    response = await operation(request, conn)
            logger.info("@connections %s %s -> %s", request.method, connection_id, response.status)
            return response

        return handler

    async def post_to_connection(self, request: web.Request, conn: Connection) -> web.Response:
        max_payload = self.config.max_payload
        if (request.content_length or 0) > max_payload:
            return aws_error(413, "PayloadTooLargeException", f"Message too long; max {max_payload} bytes")
        try:
            data = await request.read()
        except web.HTTPRequestEntityTooLarge:  # a chunked body over client_max_size
            data = None
        if data is None or len(data) > max_payload:
            return aws_error(413, "PayloadTooLargeException", f"Message too long; max {max_payload} bytes")
        try:
            await self.gateway.send(conn, data)
        except ConnectionError:
            return aws_error(410, "GoneException", f"Connection {conn.connection_id} is gone")
        return web.Response(status=200)

    async def get_connection(self, request: web.Request, conn: Connection) -> web.Response:
        return web.json_response(
            {
                # The wire names of botocore's GetConnection output shape.
                "connectedAt": iso_timestamp(conn.connected_at),
                "lastActiveAt": iso_timestamp(conn.last_active_at),
                "identity": {"sourceIp": conn.source_ip, "userAgent": conn.user_agent},
            }
        )

    async def delete_connection(self, request: web.Request, conn: Connection) -> web.Response:
        await self.gateway.close(conn, reason="closed by the server (DELETE @connections)")
        return web.Response(status=204)
