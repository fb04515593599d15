"""The in-memory send backend (SPEC §4's Management API, kept in the test process).

``InMemoryBackend`` is a send backend like the others (``WEBSOCKETS["send_backend"] =
"django_aws_api_gateway_websockets.testing.InMemoryBackend"`` in test settings, as Django's
locmem ``EMAIL_BACKEND``): every ``@connections`` call is recorded, nothing leaves the process.
``ManagementAPICapture`` installs it for a block (what ``WebSocketTestClient`` and the
``ws_capture`` fixture do) and is where the calls are recorded; outside any capture they go to
``default_capture``.
"""

import json
import threading
from collections import defaultdict

from ..backends import BaseSendBackend, use_backend
from ..transport import GONE


def _decoded(payload):
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload


class ManagementAPICapture:
    """Records every ``@connections`` call; use as a context manager.

    ``messages[connection_id]`` lists the decoded messages posted to a connection (JSON
    decoded when possible). Connections marked gone (``mark_gone``, or closed with DELETE)
    answer 410 (``GoneException``) like AWS; ``fail(connection_id, code)`` makes its calls fail
    with ``code`` (``"LimitExceededException"``, ``"ForbiddenException"``...).
    """

    active = None  # the capture installed now, shared by every WebSocketTestClient

    def __init__(self):
        self.messages = defaultdict(list)
        self.raw = defaultdict(list)  # connection id -> payload bytes, as posted
        self.endpoints = defaultdict(list)  # connection id -> endpoint URLs posted through
        self.gone = set()
        self.failures = {}
        self.deleted = []
        self.lock = threading.Lock()
        self._previous = None
        self._installed = None

    def __enter__(self):
        self._previous = ManagementAPICapture.active
        ManagementAPICapture.active = self
        self._installed = use_backend(InMemoryBackend(self))
        self._installed.__enter__()
        return self

    def __exit__(self, *exc_info):
        self._installed.__exit__(*exc_info)
        ManagementAPICapture.active = self._previous

    def mark_gone(self, connection_id):
        self.gone.add(connection_id)

    def fail(self, connection_id, code):
        self.failures[connection_id] = code

    def sent_to(self, connection_id):
        return list(self.messages.get(connection_id, []))

    def clear(self):
        with self.lock:
            self.messages.clear()
            self.raw.clear()
            self.endpoints.clear()
            self.deleted.clear()

    # What InMemoryBackend calls.
    def post(self, endpoint, connection_id, payload):
        with self.lock:
            if connection_id in self.gone:
                return GONE
            if connection_id in self.failures:
                return self.failures[connection_id]
            self.raw[connection_id].append(payload)
            self.endpoints[connection_id].append(endpoint.url)
            self.messages[connection_id].append(_decoded(payload))
            return None

    def delete(self, endpoint, connection_id):
        with self.lock:
            if connection_id in self.gone:
                return GONE
            self.deleted.append(connection_id)
            self.gone.add(connection_id)
            return None


default_capture = ManagementAPICapture()  # where InMemoryBackend records outside any capture


class InMemoryBackend(BaseSendBackend):
    """A send backend that records into a ``ManagementAPICapture`` (the active one by default)."""

    def __init__(self, capture=None):
        self.capture = capture

    def _target(self):
        return self.capture or ManagementAPICapture.active or default_capture

    def post_many(self, jobs, payload, options):
        capture = self._target()
        return {connection_id: capture.post(endpoint, connection_id, payload) for connection_id, endpoint in jobs}

    def delete(self, endpoint, connection_id, options):
        return self._target().delete(endpoint, connection_id)
