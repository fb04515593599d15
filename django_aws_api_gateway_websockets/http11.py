"""A small keep-alive HTTP/1.1 client for one job: many small POSTs to a few hosts.

The fan-out engine spends nearly all its CPU building requests; a general-purpose client
(aiohttp) costs about 360 µs of CPU per ``@connections`` call, this one about 65 µs (measured
with ``bench/``), which is what lets one process approach API Gateway's 10,000 calls/s.
It does only what the Management API needs: requests with a body, responses framed by
Content-Length, chunked encoding or connection close, TLS with the system's trust store,
idle connections reused per host.
"""

import asyncio
import ssl
from collections import defaultdict

HEADER_END = b"\r\n\r\n"


class ResponseError(ConnectionError):
    """The server sent something that is not an HTTP/1.1 response."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one request in flight at a time."""

    def __init__(self):
        self.transport = None
        self.buffer = bytearray()
        self.waiter = None
        self.head = None  # (status, headers) once the header block has arrived
        self.reusable = True
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport

    def send(self, data, loop):
        if self.closed or self.transport.is_closing():
            raise ConnectionError("connection closed by the server")
        self.buffer.clear()
        self.head = None
        self.waiter = loop.create_future()
        self.transport.write(data)
        return self.waiter

    def data_received(self, data):
        try:
            self._receive(data)
        except ResponseError as exc:
            self.reusable = False
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_exception(exc)

    def _receive(self, data):
        self.buffer += data
        if self.head is None:
            end = self.buffer.find(HEADER_END)
            if end < 0:
                return
            self.head = self._parse_head(bytes(self.buffer[:end]))
            del self.buffer[: end + len(HEADER_END)]
        status, headers = self.head
        if "content-length" in headers:
            if len(self.buffer) >= int(headers["content-length"]):
                self._finish()
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            if self.buffer.endswith(b"0\r\n\r\n"):  # the last chunk (bodies here are tiny)
                self._finish()
        elif status in (204, 304) or 100 <= status < 200:
            self._finish()
        else:
            self.reusable = False  # framed by the connection closing

    def _parse_head(self, raw):
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ResponseError(f"not an HTTP response: {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
            self.reusable = False
        return int(parts[1]), headers

    def _finish(self):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.head)

    def connection_lost(self, exc):
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self.head is not None and not self.reusable:
                self.waiter.set_result(self.head)  # the close ended the body
            else:
                self.waiter.set_exception(ConnectionError("connection closed by the server"))


class HTTP11Client:
    """Idle connections per (scheme, host, port); callers bound the concurrency themselves."""

    def __init__(self, loop, timeout=30.0):
        self.loop = loop
        self.timeout = timeout
        self.idle = defaultdict(list)
        self.ssl_context = ssl.create_default_context()

    async def post(self, scheme, host, port, path, headers, body):
        """``(status, headers)`` of ``POST path``; retried once on a stale keep-alive connection."""
        key = (scheme, host, port)
        host_header = host if port in (80, 443) else f"{host}:{port}"
        lines = [f"POST {path} HTTP/1.1", f"Host: {host_header}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items() if name.lower() not in ("host", "content-length")]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        for attempt in (0, 1):
            connection = self._idle_connection(key) if attempt == 0 else None
            reused = connection is not None
            if connection is None:
                connection = await self._connect(scheme, host, port)
            try:
                waiter = connection.send(request, self.loop)
                status, response_headers = await asyncio.wait_for(waiter, self.timeout)
            except ConnectionError:
                connection.transport.close()
                if reused:
                    continue  # the server had closed this idle connection: once more on a new one
                raise
            except BaseException:
                connection.transport.close()
                raise
            if connection.reusable and not connection.closed:
                self.idle[key].append(connection)
            else:
                connection.transport.close()
            return status, response_headers

    def _idle_connection(self, key):
        """An idle connection still open, or ``None``; closed ones are dropped on the way."""
        idle = self.idle[key]
        while idle:
            connection = idle.pop()
            if not connection.closed and not connection.transport.is_closing():
                return connection
        return None

    async def _connect(self, scheme, host, port):
        tls = self.ssl_context if scheme == "https" else None
        _transport, connection = await self.loop.create_connection(
            _Connection, host, port, ssl=tls, server_hostname=host if tls else None
        )
        return connection

    def close(self):
        for connections in self.idle.values():
            for connection in connections:
                connection.transport.close()
        self.idle.clear()
