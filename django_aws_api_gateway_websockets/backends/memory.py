"""``InMemoryBackend``: nothing leaves the process; every call is recorded (tests, docs/testing.md).

A send backend like the others (``WEBSOCKETS["send_backend"] =
"django_aws_api_gateway_websockets.testing.InMemoryBackend"`` in test settings, as Django's
locmem ``EMAIL_BACKEND``). It records into a ``testing.ManagementAPICapture``: the one it was
given, else the active one, else ``testing.default_capture``.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import BaseSendBackend, Code, Endpoint, SendOptions

if TYPE_CHECKING:
    from ..testing.capture import ManagementAPICapture


class InMemoryBackend(BaseSendBackend):
    """A send backend that records into a ``ManagementAPICapture`` (the active one by default)."""

    def __init__(self, capture: "ManagementAPICapture | None" = None) -> None:
        self.capture = capture

    def _target(self) -> "ManagementAPICapture":
        if self.capture is not None:
            return self.capture
        # Lazily: the captures are test helpers, loaded only by a project that uses them.
        from ..testing.capture import ManagementAPICapture, default_capture

        return ManagementAPICapture.active or default_capture

    def post_many(self, jobs: Sequence[tuple[str, Endpoint]], payload: bytes, options: SendOptions) -> dict[str, Code]:
        capture = self._target()
        return {connection_id: capture.post(endpoint, connection_id, payload) for connection_id, endpoint in jobs}

    def delete(self, endpoint: Endpoint, connection_id: str, options: SendOptions) -> Code:
        return self._target().delete(endpoint, connection_id)
