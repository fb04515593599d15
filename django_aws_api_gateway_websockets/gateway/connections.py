"""One client socket as the local gateway tracks it."""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web


def iso_timestamp(timestamp: float) -> str:
    """``2026-11-24T17:00:00.123000Z``: the form botocore parses into a datetime."""
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Connection:
    connection_id: str
    source_ip: str
    user_agent: str
    ws: web.WebSocketResponse | None = None  # set once the handshake is accepted
    connected_at: float = field(default_factory=time.time)
    last_active_at: float = field(default_factory=time.time)
    close_reason: str = ""

    @property
    def is_open(self) -> bool:
        return self.ws is not None and not self.ws.closed

    def touch(self) -> None:
        self.last_active_at = time.time()
