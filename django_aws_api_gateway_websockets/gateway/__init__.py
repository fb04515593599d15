"""The local gateway: a real WebSocket server that plays AWS API Gateway (docs/local-gateway.md).

The server is free of the Django ORM on purpose: ``GatewayConfig`` is plain data (the
management command builds it from an ``ApiGateway`` record), so tests, benchmarks and the demo
can run it in-process: ``await LocalGateway(config).start(host, port)`` on a running loop, or
``GatewayThread(config).start()`` from sync code. The server needs aiohttp (the ``local``
extra); ``config`` and ``records`` (which record ``runwsgateway`` may write to) do not, so
they can be imported without it.
"""

from typing import TYPE_CHECKING, Any

from .config import GatewayConfig, Route

if TYPE_CHECKING:  # what __getattr__ below imports on first use
    from .server import GatewayThread, LocalGateway

__all__ = ["GatewayConfig", "GatewayThread", "LocalGateway", "Route"]


def __getattr__(name: str) -> Any:
    # Imported on first use: importing the package must not need aiohttp.
    if name in ("GatewayThread", "LocalGateway"):
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
