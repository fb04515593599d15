"""pytest fixtures (registered through the ``pytest11`` entry point).

* ``ws_capture``: an installed ``ManagementAPICapture`` (every send goes to the in-memory backend).
* ``ws_client``: a factory ``ws_client(path="/ws/", user=None, **kwargs)`` returning
  ``WebSocketTestClient`` objects that share ``ws_capture``; needs the ``db`` fixture.
"""

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported inside the fixtures: this plugin loads before Django is set up
    from .capture import ManagementAPICapture
    from .client import WebSocketTestClient


@pytest.fixture
def ws_capture() -> "Iterator[ManagementAPICapture]":
    from .capture import ManagementAPICapture

    with ManagementAPICapture() as capture:
        yield capture


@pytest.fixture
def ws_client(ws_capture: "ManagementAPICapture", db: None) -> "Iterator[Callable[..., WebSocketTestClient]]":
    from ..gateway_lookup import clear_gateway_cache
    from .client import WebSocketTestClient

    clear_gateway_cache()
    clients = []

    def make(path: str = "/ws/", **kwargs: Any) -> "WebSocketTestClient":
        client = WebSocketTestClient(path, **kwargs).__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
