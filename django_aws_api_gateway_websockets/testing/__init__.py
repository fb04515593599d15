"""Test helpers for projects that use the package (see docs/testing.md).

``WebSocketTestClient`` drives a ``WebSocketView`` the way API Gateway does (same headers,
same route selection, token handled), and ``ManagementAPICapture`` stands in for the
Management API so that what your code sends can be asserted on, through the real boto3 client.
"""

__all__ = ["ManagementAPICapture", "WebSocketTestClient", "integration_headers"]


def __getattr__(name):
    # Lazy: the pytest plugin in this package loads before Django is set up.
    if name == "ManagementAPICapture":
        from .capture import ManagementAPICapture

        return ManagementAPICapture
    if name in ("WebSocketTestClient", "integration_headers"):
        from . import client

        return getattr(client, name)
    raise AttributeError(name)
