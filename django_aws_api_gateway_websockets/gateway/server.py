"""The aiohttp server: WebSocket side and Management API on one port (docs/local-gateway.md)."""

import asyncio
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import cast
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from .. import protocol
from ..eventloop import new_event_loop
from . import integration
from .config import GatewayConfig, is_loopback_host
from .connections import Connection
from .limits import MESSAGE_TOO_BIG_REASON, LimitedWebSocketResponse
from .management_api import ManagementApi, forbidden

logger = logging.getLogger("django_aws_api_gateway_websockets.gateway")

GOING_AWAY = 1001  # what API Gateway closes with on idle timeout, max lifetime and DELETE
# On stop, the last $disconnect calls get one integration timeout plus this.
STOP_GRACE_SECONDS = 5
# Integration calls in flight at once (keep-alive connections to Django); more wait their turn
# before their integration timeout starts.
MAX_INTEGRATIONS = 100


REASON_MAX_CHARS = 200


def refusal_reason(result: integration.IntegrationResult, config: GatewayConfig, query_string: str | None = "") -> str:
    """Why Django refused a ``$connect``, for the log line: ``': "Origin not allowed."'``.

    The ``error``/``message``/``detail`` of a JSON answer, else the ``<title>`` of an HTML page
    (Django's debug page carries settings: never more than its title), else the start of the text;
    collapsed to one line, at most REASON_MAX_CHARS, with the record's secret and the query
    string's values (the single-use token) blanked out should Django have echoed them.
    """
    body = result.body or b""
    if not body:
        return ""
    text = body[:4096].decode("utf-8", errors="replace")
    content_type = result.headers.get("Content-Type", "")
    reason = ""
    if "json" in content_type:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            reason = next((str(data[key]) for key in ("error", "message", "detail", "reason") if data.get(key)), "")
    elif "html" in content_type:
        start, end = text.lower().find("<title>"), text.lower().find("</title>")
        reason = text[start + 7 : end] if 0 <= start < end else ""
    else:
        reason = text
    reason = " ".join(reason.split())
    secrets = [getattr(config, "secret", "") or "", *(getattr(config, "previous_secrets", None) or ())]
    secrets += [value for _key, value in parse_qsl(query_string or "") if len(value) >= 8]
    for secret in secrets:
        if secret and len(secret) >= 8:
            reason = reason.replace(secret, "[redacted]")
    if len(reason) > REASON_MAX_CHARS:
        reason = reason[: REASON_MAX_CHARS - 1] + "…"
    return f': "{reason}"' if reason else ""


class LocalGateway:
    """Plays API Gateway for one API: ``ws://host:port/<stage>`` and ``/<stage>/@connections/{id}``."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.connections: dict[str, Connection] = {}  # connection id -> Connection, open sockets only
        self.http: aiohttp.ClientSession | None = None
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.host = "127.0.0.1"
        # Futures, done once a socket's $disconnect has been sent.
        self._finishing: set[asyncio.Future[None]] = set()
        # In-flight message integrations (kept: the loop holds weak refs).
        self._messages: set[asyncio.Future[None]] = set()
        self._stopping = False
        # Here, not in the connector's pool: the wait for a turn must not count against the
        # integration timeout, a total (aiohttp's counts a pool wait).
        self._integration_slots = asyncio.Semaphore(MAX_INTEGRATIONS)
        # One byte over the payload limit: a bigger @connections body is a 413 of ours, not aiohttp's.
        self.app = web.Application(client_max_size=config.max_payload + 1)
        stage = f"/{config.stage}"
        self.app.router.add_get(stage, self.handle_websocket)
        self.app.router.add_get(stage + "/", self.handle_websocket)
        ManagementApi(self).add_routes(self.app.router, stage)
        self.app.router.add_route("*", "/{path:.*}", self.not_served)

    # --- lifecycle ------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 8001) -> int:
        """Listen; returns the bound port (``port=0`` picks a free one)."""
        # Keep-alive connections to Django, like API Gateway's integration pool; at most
        # MAX_INTEGRATIONS in use (the slots), so the connector itself never queues.
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, backlog=2048)
        try:
            await site.start()
        except OSError:
            await self.runner.cleanup()
            await self.http.close()
            raise
        self.port = port = cast(asyncio.Server, site._server).sockets[0].getsockname()[1]
        self.host = host  # the events' domainName in --lambda mode (the Host Django checks)
        if not is_loopback_host(host):
            logger.warning(
                "The local gateway listens on %s: its Management API has no authentication, anyone who can "
                "reach port %s can send to or close any connection.",
                host,
                self.port,
            )
        logger.info("Local gateway for API %s on ws://%s:%s/%s", self.config.api_id, host, self.port, self.config.stage)
        return port

    async def stop(self) -> None:
        """Close every socket (1001), send their $disconnect events, then stop listening."""
        self._stopping = True
        finishing = list(self._finishing)
        await asyncio.gather(
            *(self.close(conn, reason="gateway shutting down") for conn in list(self.connections.values())),
            return_exceptions=True,
        )
        if finishing:
            await asyncio.wait(finishing, timeout=self.config.integration_timeout + STOP_GRACE_SECONDS)
        for task in list(self._messages):
            task.cancel()
        await asyncio.gather(*self._messages, return_exceptions=True)
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self.http is not None:
            await self.http.close()
            self.http = None

    # --- the WebSocket side ---------------------------------------------------------

    async def handle_websocket(self, request: web.Request) -> web.StreamResponse:
        if not web.WebSocketResponse().can_prepare(request).ok:
            return web.Response(status=426, text="Upgrade Required: this URL takes WebSocket connections.")
        if self._stopping:
            return web.Response(status=503, text="The local gateway is shutting down.")
        conn = Connection(
            protocol.new_connection_id(), request.remote or "127.0.0.1", request.headers.get("User-Agent", "")
        )
        url = self.config.integration_for("$connect")[0]
        if request.query_string:
            url += "?" + request.query_string
        result = await self._integrate(conn, "$connect", url, b"", browser_headers=request.headers)
        if not result.ok:
            status = result.status if result.status >= 400 else 500
            origin = request.headers.get("Origin")
            logger.info(
                "connect rejected %s from %s%s: Django answered %s%s",
                conn.connection_id,
                conn.source_ip,
                f" (Origin {origin[:200]!r})" if origin else "",  # what to trust, when that is why
                result.status,
                refusal_reason(result, self.config, request.query_string),
            )
            return web.Response(status=status, text=f"WebSocket connection rejected ({status})")
        # Django picks a subprotocol the way API Gateway expects: the header on its $connect answer.
        subprotocol = result.headers.get("Sec-WebSocket-Protocol")
        conn.ws = LimitedWebSocketResponse(
            # aiohttp refuses a fragmented message that reaches max_msg_size: one more byte
            # makes the limit AWS's (at most max_payload bytes taken).
            max_msg_size=self.config.max_payload + 1,
            frame_limit=self.config.max_frame,
            protocols=(subprotocol,) if subprotocol else (),
            # API Gateway negotiates no permessage-deflate: with it, the 32 KB frame limit would
            # measure compressed bytes and pass frames AWS refuses.
            compress=False,
        )
        await conn.ws.prepare(request)
        self.connections[conn.connection_id] = conn
        finished = asyncio.get_running_loop().create_future()
        self._finishing.add(finished)
        logger.info("connect accepted %s from %s", conn.connection_id, conn.source_ip)
        try:
            await self._receive_loop(conn)
        finally:
            try:
                await self._finish(conn)
            finally:
                finished.set_result(None)
                self._finishing.discard(finished)
        return conn.ws

    async def _receive_loop(self, conn: Connection) -> None:
        ws = conn.ws
        assert ws is not None  # accepted: the handshake is done
        deadline = conn.connected_at + self.config.max_lifetime
        while True:
            now = time.time()
            idle_left = conn.last_active_at + self.config.idle_timeout - now
            life_left = deadline - now
            try:
                # (aiohttp reads a timeout of 0 as "none": keep it positive.)
                msg = await ws.receive(timeout=max(0.001, min(idle_left, life_left)))
            except TimeoutError:
                reason = "max lifetime" if life_left <= idle_left else "idle timeout"
                await self.close(conn, reason=reason)
                return
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                conn.touch()
                data = msg.data.encode() if msg.type == WSMsgType.TEXT else msg.data
                if len(data) > self.config.max_payload:  # aiohttp's own check lets one more byte by
                    await self.close(conn, WSCloseCode.MESSAGE_TOO_BIG, MESSAGE_TOO_BIG_REASON)
                    conn.close_reason = "message over the payload limit (1009)"
                    return
                # One task per frame: a slow handler must not hold up the sender's next frame.
                task = asyncio.ensure_future(self._route_message(conn, data))
                self._messages.add(task)
                task.add_done_callback(self._messages.discard)
            elif msg.type == WSMsgType.ERROR:
                # aiohttp reports an oversized frame as ERROR after closing with 1009.
                conn.close_reason = conn.close_reason or f"error: {ws.exception()}"
                return
            else:  # CLOSE, CLOSING, CLOSED
                conn.close_reason = conn.close_reason or f"client closed ({ws.close_code})"
                return

    def _select_route(self, data: bytes) -> str:
        """The frame's route key; a frame that cannot be evaluated goes to ``$default`` (as on AWS)."""
        try:
            text = data.decode("utf-8", errors="replace")
            return protocol.select_route(text, self.config.selection_key, self.config.routes)
        except Exception:  # never lose a frame to a parser bug: API Gateway would forward it
            logger.warning("route selection failed for a %s-byte frame: sent to $default", len(data), exc_info=True)
            return "$default"

    async def _route_message(self, conn: Connection, data: bytes) -> None:
        try:
            await self._forward_message(conn, data)
        except Exception:
            # A task's exception would only surface as "Task exception was never retrieved".
            logger.exception("message from %s could not be forwarded", conn.connection_id)

    async def _forward_message(self, conn: Connection, data: bytes) -> None:
        route_key = self._select_route(data)
        url, two_way = self.config.integration_for(route_key)
        result = await self._integrate(conn, route_key, url, data)
        logger.info("message %s -> route %s: Django answered %s", conn.connection_id, route_key, result.status)
        if not conn.is_open:
            return
        if result.failed:
            # The frame API Gateway sends the client when the integration fails or times out.
            message = "Endpoint request timed out" if result.timed_out else "Internal server error"
            frame = {"message": message, "connectionId": conn.connection_id, "requestId": result.request_id}
            await self.send(conn, json.dumps(frame))
        elif two_way and result.body:
            await self.send(conn, result.body)

    async def _integrate(
        self,
        conn: Connection,
        route_key: str,
        url: str,
        body: bytes,
        browser_headers: Mapping[str, str] | None = None,
    ) -> integration.IntegrationResult:
        assert self.http is not None  # started
        request_id = integration.new_request_id()
        if self.config.lambda_handler is not None:
            async with self._integration_slots:
                result = await self._invoke_lambda(conn, route_key, url, body, browser_headers, request_id)
            result.request_id = request_id
            return result
        headers = integration.build_headers(self.config, conn, route_key, request_id, browser_headers)
        async with self._integration_slots:
            result = await integration.post(self.http, url, headers, body, self.config.integration_timeout)
        result.request_id = request_id
        return result

    async def _invoke_lambda(
        self,
        conn: Connection,
        route_key: str,
        url: str,
        body: bytes,
        browser_headers: Mapping[str, str] | None,
        request_id: str,
    ) -> integration.IntegrationResult:
        """``--lambda``: the route's event to the handler, in-process, as an AWS_PROXY integration."""
        from . import lambda_invoke

        assert self.config.lambda_handler is not None
        return await lambda_invoke.invoke(
            self.config.lambda_handler,
            route_key,
            api_id=self.config.api_id,
            connection_id=conn.connection_id,
            stage=self.config.stage,
            domain_name=self.host,
            source_ip=conn.source_ip,
            user_agent=conn.user_agent,
            connected_at_ms=int(conn.connected_at * 1000),
            timeout=self.config.integration_timeout,
            browser_headers=browser_headers,
            query_string=url.partition("?")[2],
            body=body,
            request_id=request_id,
        )

    async def send(self, conn: Connection, data: str | bytes | bytearray) -> None:
        """One frame to the client: text when it is UTF-8 (as API Gateway relays JSON), else binary."""
        assert conn.ws is not None  # callers check conn.is_open
        if isinstance(data, (bytes, bytearray)):
            raw = data
            try:
                data = raw.decode("utf-8")
            except UnicodeDecodeError:
                await conn.ws.send_bytes(bytes(raw))
                return
        await conn.ws.send_str(data)

    async def close(self, conn: Connection, code: int = GOING_AWAY, reason: str = "closed") -> None:
        conn.close_reason = conn.close_reason or reason
        if conn.is_open and conn.ws is not None:
            await conn.ws.close(code=code, message=reason.encode()[:120])

    async def _finish(self, conn: Connection) -> None:
        """The socket is gone: forget it and tell Django ($disconnect)."""
        self.connections.pop(conn.connection_id, None)
        assert conn.ws is not None  # accepted: the handshake is done
        if conn.ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
            too_big = "frame over the frame" if getattr(conn.ws, "frame_too_big", False) else "message over the payload"
            conn.close_reason = f"{too_big} limit (1009)"
        url = self.config.integration_for("$disconnect")[0]
        result = await self._integrate(conn, "$disconnect", url, b"")
        logger.info(
            "disconnect %s: %s; Django answered %s", conn.connection_id, conn.close_reason or "closed", result.status
        )

    async def not_served(self, request: web.Request) -> web.Response:
        return forbidden()


class GatewayThread:
    """Runs a ``LocalGateway`` on its own event loop in a daemon thread (sync tests, demo, bench)."""

    def __init__(self, config: GatewayConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.gateway = LocalGateway(config)
        self.host = host
        self.requested_port = port
        self.loop = new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="local-gateway", daemon=True)

    def start(self) -> int:
        """Start listening; returns the bound port."""
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(self.gateway.start(self.host, self.requested_port), self.loop)
        try:
            return future.result(timeout=10)
        except BaseException:
            self._stop_loop()
            raise

    @property
    def port(self) -> int | None:
        return self.gateway.port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/{self.gateway.config.stage}"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.gateway.config.stage}"

    def stop(self) -> None:
        """Close the sockets, send their $disconnect events, stop the thread."""
        try:
            asyncio.run_coroutine_threadsafe(self.gateway.stop(), self.loop).result(
                timeout=self.gateway.config.integration_timeout + 2 * STOP_GRACE_SECONDS
            )
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
