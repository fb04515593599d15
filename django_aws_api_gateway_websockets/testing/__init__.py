"""Test helpers for projects that use the package (see docs/testing.md).

``WebSocketTestClient`` drives a ``WebSocketView`` the way API Gateway does (same headers,
same route selection, token handled), and ``ManagementAPICapture`` installs the in-memory send
backend (``InMemoryBackend``) so that what your code sends can be asserted on.
"""

__all__ = ["InMemoryBackend", "ManagementAPICapture", "WebSocketTestClient", "default_capture", "integration_headers"]


def __getattr__(name):
    # Lazy: the pytest plugin in this package loads before Django is set up.
    if name in ("ManagementAPICapture", "InMemoryBackend", "default_capture"):
        from . import capture

        return getattr(capture, name)
    if name in ("WebSocketTestClient", "integration_headers"):
        from . import client

        return getattr(client, name)
    raise AttributeError(name)
