"""Where the in-memory send backend records (the Management API, kept in the test process; docs/testing.md).

``InMemoryBackend`` (``backends.memory``, also importable from here and from ``testing``) is a
send backend like the others: every ``@connections`` call is recorded, nothing leaves the process.
``ManagementAPICapture`` installs it for a block (what ``WebSocketTestClient`` and the
``ws_capture`` fixture do) and is where the calls are recorded; outside any capture they go to
``default_capture``.
"""

import json
import threading
from collections import defaultdict
from typing import Any, ClassVar, Self

from .. import parts
from ..backends.base import GONE, Code, Endpoint, use_backend
from ..backends.memory import InMemoryBackend

__all__ = ["InMemoryBackend", "ManagementAPICapture", "default_capture"]


def _decoded(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload


class ManagementAPICapture:
    """Records every ``@connections`` call; use as a context manager.

    ``messages[connection_id]`` lists the decoded messages posted to a connection (JSON
    decoded when possible); a message sent as parts (docs/large-messages.md) is listed once,
    whole, when its last part was posted (``raw`` has the parts as posted). Connections marked gone (``mark_gone``, or closed with DELETE)
    answer 410 (``GoneException``) like AWS; ``fail(connection_id, code)`` makes its calls fail
    with ``code`` (``"LimitExceededException"``, ``"ForbiddenException"``...).
    """

    # The capture installed now, shared by every WebSocketTestClient.
    active: ClassVar["ManagementAPICapture | None"] = None

    def __init__(self) -> None:
        self.messages: defaultdict[str, list[Any]] = defaultdict(list)
        self.raw: defaultdict[str, list[bytes]] = defaultdict(list)  # connection id -> payload bytes, as posted
        self.endpoints: defaultdict[str, list[str]] = defaultdict(list)  # connection id -> endpoint URLs posted through
        self.gone: set[str] = set()
        self.failures: dict[str, str] = {}
        self._fail_after: dict[str, tuple[int, str]] = {}
        self.deleted: list[str] = []
        self.assemblers: defaultdict[str, parts.Assembler] = defaultdict(parts.Assembler)
        self.lock = threading.Lock()
        self._previous: ManagementAPICapture | None = None
        self._installed: use_backend[InMemoryBackend] | None = None

    def __enter__(self) -> Self:
        self._previous = ManagementAPICapture.active
        ManagementAPICapture.active = self
        self._installed = use_backend(InMemoryBackend(self))
        self._installed.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._installed is not None, "__exit__ without __enter__"
        self._installed.__exit__(*exc_info)
        ManagementAPICapture.active = self._previous

    def mark_gone(self, connection_id: str) -> None:
        self.gone.add(connection_id)

    def fail(self, connection_id: str, code: str) -> None:
        self.failures[connection_id] = code

    def fail_after(self, connection_id: str, posts: int, code: str = GONE) -> None:
        """Accept ``posts`` more posts to ``connection_id``, then answer ``code`` (a connection
        dropped mid-message: ``GONE`` marks it gone as AWS would)."""
        self._fail_after[connection_id] = (posts, code)

    def sent_to(self, connection_id: str) -> list[Any]:
        return list(self.messages.get(connection_id, []))

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.raw.clear()
            self.endpoints.clear()
            self.deleted.clear()
            self.assemblers.clear()

    # What InMemoryBackend calls.
    def post(self, endpoint: Endpoint, connection_id: str, payload: bytes) -> Code:
        with self.lock:
            if connection_id in self.gone:
                return GONE
            if connection_id in self.failures:
                return self.failures[connection_id]
            if connection_id in self._fail_after:
                left, code = self._fail_after[connection_id]
                if left <= 0:
                    del self._fail_after[connection_id]
                    if code == GONE:
                        self.gone.add(connection_id)
                    else:
                        self.failures[connection_id] = code
                    return code
                self._fail_after[connection_id] = (left - 1, code)
            self.raw[connection_id].append(payload)
            self.endpoints[connection_id].append(endpoint.url)
            if parts.is_part(payload):
                whole = self.assemblers[connection_id].add(payload)
                if whole is not None:
                    self.messages[connection_id].append(_decoded(whole))
            else:
                self.messages[connection_id].append(_decoded(payload))
            return None

    def delete(self, endpoint: Endpoint, connection_id: str) -> Code:
        with self.lock:
            if connection_id in self.gone:
                return GONE
            self.deleted.append(connection_id)
            self.gone.add(connection_id)
            return None


default_capture = ManagementAPICapture()  # where InMemoryBackend records outside any capture
