"""The parts envelope of messages larger than one post or frame (docs/large-messages.md#protocol).

A part is ``\\x1e`` + a one-line JSON header ``{"p":id,"i":index,"n":count,"b":total bytes}``
+ ``\\n`` + a piece of the message's text, verbatim (cut at UTF-8 character boundaries, so every
part is valid text: no escaping, no base64; the overhead is the header alone). Wire contract
only: no ORM, shared by the send engine, the request path, the local gateway's tests and the
Python client helper.
"""

import json
import re
import secrets
from dataclasses import dataclass

from . import protocol

MARK = b"\x1e"  # ASCII record separator: the first byte of a part, never of JSON
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
HEADER_MAX_BYTES = 160  # a header never needs more (an id of 64, three numbers); a longer one is malformed
SERVER_PART_BYTES = protocol.MAX_PAYLOAD_BYTES  # one POST @connections, envelope included
CLIENT_PART_BYTES = protocol.MAX_FRAME_BYTES  # one client frame, envelope included


class BadPart(ValueError):
    """A frame that starts like a part but is not a valid one."""


@dataclass(frozen=True)
class Part:
    message_id: str
    index: int
    count: int
    total: int  # the whole message's UTF-8 bytes
    chunk: bytes
    abort: bool = False


def is_part(data: bytes | str) -> bool:
    if isinstance(data, str):
        return data.startswith("\x1e")
    return data.startswith(MARK)


def new_id() -> str:
    return secrets.token_urlsafe(9)  # 12 characters


def header(message_id: str, index: int, count: int, total: int, abort: bool = False) -> bytes:
    extra = ',"x":1' if abort else ""
    return f'\x1e{{"p":"{message_id}","i":{index},"n":{count},"b":{total}{extra}}}\n'.encode()


def _cut(payload: bytes, start: int, size: int) -> int:
    """The end of the chunk starting at ``start``: at most ``size`` bytes, never inside a
    UTF-8 character (a continuation byte is ``0b10xxxxxx``)."""
    end = min(len(payload), start + size)
    if end < len(payload):
        while end > start and payload[end] & 0xC0 == 0x80:
            end -= 1
    return end


def split(payload: bytes, part_bytes: int, message_id: str | None = None) -> list[bytes]:
    """``payload`` as parts of at most ``part_bytes`` each, envelope included."""
    message_id = message_id or new_id()
    total = len(payload)
    # The header's size with the largest index and count this split could need.
    room = part_bytes - len(header(message_id, total, total, total))
    if room < 4:
        raise ValueError(f"{part_bytes} bytes leave no room for a part's chunk")
    bounds, start = [], 0
    while True:
        end = _cut(payload, start, room)
        bounds.append((start, end))
        start = end
        if start >= total:
            break
    count = len(bounds)
    return [header(message_id, i, count, total) + payload[a:b] for i, (a, b) in enumerate(bounds)]


def abort_frame(message_id: str, index: int, count: int, total: int) -> bytes:
    """Tells the receiver that ``message_id`` will not complete (best-effort: it may time out instead)."""
    return header(message_id, index, count, total, abort=True)


def parse(data: bytes) -> Part:
    """A part's header and chunk; ``BadPart`` for anything malformed."""
    if not data.startswith(MARK):
        raise BadPart("not a part")
    newline = data.find(b"\n", 0, HEADER_MAX_BYTES + 1)
    if newline < 0:
        raise BadPart("no header line")
    try:
        head = json.loads(data[1:newline].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadPart("the header is not JSON") from None
    if not isinstance(head, dict):
        raise BadPart("the header is not a JSON object")
    message_id, index, count, total = head.get("p"), head.get("i"), head.get("n"), head.get("b")
    if not (isinstance(message_id, str) and ID_RE.fullmatch(message_id)):
        raise BadPart("invalid id")
    numbers = (index, count, total)
    if not all(type(v) is int for v in numbers):
        raise BadPart("i, n and b must be integers")
    assert isinstance(index, int) and isinstance(count, int) and isinstance(total, int)
    if not (count >= 1 and 0 <= index < count and total >= 0):
        raise BadPart("index out of range")
    chunk = data[newline + 1 :]
    if len(chunk) > total:
        raise BadPart("chunk larger than the message")
    return Part(message_id, index, count, total, chunk, abort=head.get("x") == 1)


class Assembler:
    """Puts parts back together, all-or-nothing (the Python client helper's; the view holds
    parts in the database instead). ``add`` returns the whole message's bytes once complete."""

    def __init__(self) -> None:
        self.pending: dict[str, dict[int, Part]] = {}
        self.dropped: list[str] = []

    def add(self, data: bytes) -> bytes | None:
        part = parse(data)
        held = self.pending.setdefault(part.message_id, {})
        first = next(iter(held.values()), None)
        if part.abort or (first is not None and (first.count, first.total) != (part.count, part.total)):
            self.drop(part.message_id)
            return None
        held.setdefault(part.index, part)
        if len(held) < part.count:
            return None
        del self.pending[part.message_id]
        whole = b"".join(held[i].chunk for i in range(part.count))
        if len(whole) != part.total:
            self.dropped.append(part.message_id)
            return None
        return whole

    def drop(self, message_id: str) -> None:
        self.pending.pop(message_id, None)
        self.dropped.append(message_id)
