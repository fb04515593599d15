"""A Python client's side of large messages (docs/large-messages.md#protocol): split what it
sends into parts that each fit a 32 KB frame, put what it receives back together.

Works with any WebSocket client that sends and receives text frames::

    from websockets.sync.client import connect
    from django_aws_api_gateway_websockets.testing.parts import PartsSocket

    with connect(url) as ws:
        sock = PartsSocket(ws)
        sock.send({"handler": "upload", "blob": "x" * 1_000_000})   # 32 parts
        message = sock.recv(timeout=10)                                # one whole message
"""

import json
import time
from typing import Any

from .. import parts
from ..protocol import MAX_FRAME_BYTES

__all__ = ["PartsSocket", "Reassembler", "client_frames"]

TIMEOUT_SECONDS = 30.0  # the browser client's: a message not complete by then is dropped


def _encode(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def client_frames(data: Any, message_id: str | None = None) -> list[str]:
    """The text frames a client sends for ``data``: itself when it fits one 32 KB frame (and
    does not start with the parts mark), else its parts."""
    payload = _encode(data)
    if len(payload) <= MAX_FRAME_BYTES and not parts.is_part(payload):
        return [payload.decode("utf-8")]
    return [frame.decode("utf-8") for frame in parts.split(payload, parts.CLIENT_PART_BYTES, message_id)]


class Reassembler:
    """Whole messages out of received frames, all-or-nothing. ``feed(frame)`` returns the
    message's text once whole (a frame that is not a part is whole already), else ``None``;
    ``dropped`` lists the ids of messages given up (aborted, inconsistent or timed out)."""

    def __init__(self, timeout: float = TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self.assembler = parts.Assembler()
        self.started: dict[str, float] = {}

    @property
    def dropped(self) -> list[str]:
        return self.assembler.dropped

    @property
    def pending(self) -> list[str]:
        return list(self.assembler.pending)

    def feed(self, frame: str | bytes) -> str | None:
        raw = frame.encode("utf-8") if isinstance(frame, str) else frame
        self.expire()
        if not parts.is_part(raw):
            return raw.decode("utf-8")
        try:
            head = parts.parse(raw)
        except parts.BadPart:
            return None  # never a half message: a frame that is not a valid part is ignored
        self.started.setdefault(head.message_id, time.monotonic())
        whole = self.assembler.add(raw)
        if head.message_id not in self.assembler.pending:
            self.started.pop(head.message_id, None)
        return None if whole is None else whole.decode("utf-8")

    def expire(self) -> None:
        now = time.monotonic()
        for message_id, started in list(self.started.items()):
            if now - started > self.timeout:
                self.assembler.drop(message_id)
                del self.started[message_id]


class PartsSocket:
    """A WebSocket connection (``websockets``' sync client, or anything with ``send(str)`` and
    ``recv(timeout=...)``) that sends and receives messages of any size."""

    def __init__(self, ws: Any, timeout: float = TIMEOUT_SECONDS) -> None:
        self.ws = ws
        self.reassembler = Reassembler(timeout)

    def send(self, data: Any) -> int:
        """Send ``data`` (a dict/list as JSON, a str as is); returns the number of frames."""
        frames = client_frames(data)
        for frame in frames:
            self.ws.send(frame)
        return len(frames)

    def recv_text(self, timeout: float | None = None) -> str:
        """The next whole message's text (parts are put together; ``TimeoutError`` past ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            whole = self.reassembler.feed(self.ws.recv(timeout=left))
            if whole is not None:
                return whole

    def recv(self, timeout: float | None = None) -> Any:
        """The next whole message, JSON-decoded."""
        return json.loads(self.recv_text(timeout))
