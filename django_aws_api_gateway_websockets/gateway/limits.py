"""AWS's WebSocket size limits on the client side of the local gateway (docs/local-gateway.md).

API Gateway accepts a frame of at most 32 KB and a message (one frame, or a first frame and
its continuations) of at most 128 KB; past either it closes the socket with 1009 (AWS's
quotas page: "If a larger message (or larger frame size) is received, the connection is
closed with code 1009"). aiohttp limits the message (``max_msg_size``) but not a frame:
``FrameGuard`` reads the frame headers of the raw stream in front of aiohttp's parser and
refuses a data frame whose payload is over the frame limit.
"""

from collections.abc import Callable

from aiohttp import WSCloseCode, web
from aiohttp.http_websocket import WebSocketError

FRAME_TOO_BIG_REASON = "Frame size limit exceeded"
MESSAGE_TOO_BIG_REASON = "Message size limit exceeded"
DATA_OPCODES = (0x0, 0x1, 0x2)  # continuation, text, binary (control frames carry <= 125 bytes)


class FrameGuard:
    """Feeds ``parser`` the stream until a data frame's payload is over ``limit`` bytes; then
    ``on_oversize()`` and nothing more. Payload bytes are skipped in bulk: only headers are
    read byte by byte."""

    def __init__(self, parser: object, limit: int, on_oversize: Callable[[], None]) -> None:
        self.parser = parser
        self.limit = limit
        self.on_oversize = on_oversize
        self.head = bytearray()
        self.skip = 0  # payload bytes of the current frame still to come
        self.tripped = False

    def _header_size(self) -> int | None:
        if len(self.head) < 2:
            return None
        short = self.head[1] & 0x7F
        extended = 2 if short == 126 else 8 if short == 127 else 0
        return 2 + extended + (4 if self.head[1] & 0x80 else 0)

    def _length(self) -> int:
        short = self.head[1] & 0x7F
        if short == 126:
            return int.from_bytes(self.head[2:4], "big")
        if short == 127:
            return int.from_bytes(self.head[2:10], "big")
        return short

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if self.tripped:
            return False, b""
        pos, size = 0, len(data)
        while pos < size:
            if self.skip:
                taken = min(self.skip, size - pos)
                self.skip -= taken
                pos += taken
                continue
            self.head.append(data[pos])
            pos += 1
            need = self._header_size()
            if need is None or len(self.head) < need:
                continue
            length = self._length()
            if length > self.limit and self.head[0] & 0x0F in DATA_OPCODES:
                start = pos - len(self.head)  # the frame's first byte in this chunk (or before it)
                self.tripped = True
                if start > 0:
                    self.parser.feed_data(data[:start])  # type: ignore[attr-defined]
                self.on_oversize()
                return False, b""
            self.skip = length
            self.head.clear()
        return self.parser.feed_data(data)  # type: ignore[attr-defined,no-any-return]

    def feed_eof(self) -> None:
        self.parser.feed_eof()  # type: ignore[attr-defined]


class LimitedWebSocketResponse(web.WebSocketResponse):
    """A ``WebSocketResponse`` that closes a socket sending a frame over ``frame_limit`` with
    1009, as API Gateway does (its message limit is aiohttp's ``max_msg_size``)."""

    def __init__(self, *args: object, frame_limit: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.frame_limit = frame_limit
        self.frame_too_big = False

    def _post_start(self, request: web.BaseRequest, protocol: str | None, writer: object) -> None:
        super()._post_start(request, protocol, writer)  # type: ignore[arg-type]
        transport_protocol = request.protocol
        parser = transport_protocol._payload_parser  # set by super(): aiohttp's frame reader
        transport_protocol._payload_parser = FrameGuard(parser, self.frame_limit, self._frame_over_limit)

    def _frame_over_limit(self) -> None:
        self.frame_too_big = True
        reader = self._reader
        if reader is not None:  # receive() then closes with the error's code, as for a message
            reader.set_exception(
                WebSocketError(WSCloseCode.MESSAGE_TOO_BIG, f"{FRAME_TOO_BIG_REASON} ({self.frame_limit} bytes)")
            )

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"", drain: bool = True) -> bool:
        if code == WSCloseCode.MESSAGE_TOO_BIG and not message:
            message = (FRAME_TOO_BIG_REASON if self.frame_too_big else MESSAGE_TOO_BIG_REASON).encode()
        return await super().close(code=code, message=message, drain=drain)
