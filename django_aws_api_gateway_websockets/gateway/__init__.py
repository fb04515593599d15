"""The local gateway: a real WebSocket server that plays AWS API Gateway (SPEC §5).

Free of the Django ORM on purpose: ``GatewayConfig`` is plain data (the management command
builds it from an ``ApiGateway`` record), so tests, benchmarks and the demo can run it
in-process: ``await LocalGateway(config).start(host, port)`` on a running loop, or
``GatewayThread(config).start()`` from sync code. Needs aiohttp (the ``local`` extra).
"""

from .config import GatewayConfig, Route
from .server import GatewayThread, LocalGateway

__all__ = ["GatewayConfig", "GatewayThread", "LocalGateway", "Route"]
