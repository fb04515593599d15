"""Test helpers for projects that use the package (see docs/testing.md).

``WebSocketTestClient`` drives a ``WebSocketView`` the way API Gateway does (same headers,
same route selection, token handled), and ``ManagementAPICapture`` installs the in-memory send
backend (``InMemoryBackend``) so that what your code sends can be asserted on.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what __getattr__ below imports on first use
    from .capture import InMemoryBackend, ManagementAPICapture, default_capture
    from .client import WebSocketTestClient, integration_headers
    from .lambda_events import keep_database_connections, lambda_event

__all__ = [
    "InMemoryBackend",
    "ManagementAPICapture",
    "WebSocketTestClient",
    "default_capture",
    "integration_headers",
    "keep_database_connections",
    "lambda_event",
]


def __getattr__(name: str) -> Any:
    # Lazy: the pytest plugin in this package loads before Django is set up.
    if name in ("ManagementAPICapture", "InMemoryBackend", "default_capture"):
        from . import capture

        return getattr(capture, name)
    if name in ("WebSocketTestClient", "integration_headers"):
        from . import client

        return getattr(client, name)
    if name in ("lambda_event", "keep_database_connections"):
        from . import lambda_events

        return getattr(lambda_events, name)
    raise AttributeError(name)
