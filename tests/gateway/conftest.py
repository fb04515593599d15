"""A real HTTP backend that records what the gateway POSTs, and a gateway in front of it."""

import asyncio
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from django_aws_api_gateway_websockets.gateway import GatewayConfig, LocalGateway, Route


@dataclass
class Recorded:
    path: str
    query: str
    headers: dict
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    delay: float = 0
    # (interval, duration): the head at once, then one body byte every interval for duration
    # seconds; no read ever waits long, the answer as a whole does.
    trickle: tuple[float, float] | None = None


class RecordingBackend:
    """Stands in for Django: answers per path (``answers["/ws/connect"] = Answer(403)``)."""

    def __init__(self):
        self.requests = []
        self.answers = {}
        self.arrived = asyncio.Condition()
        self.app = web.Application()
        self.app.router.add_post("/{path:.*}", self.handle)
        self.runner = None
        self.url = None

    async def handle(self, request):
        body = await request.read()
        answer = self.answers.get(request.path, Answer())
        async with self.arrived:
            self.requests.append(Recorded(request.path, request.query_string, dict(request.headers), body))
            self.arrived.notify_all()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.trickle:
            interval, duration = answer.trickle
            response = web.StreamResponse(status=answer.status, headers=answer.headers)
            await response.prepare(request)
            try:
                for _ in range(round(duration / interval)):
                    await response.write(b" ")
                    await asyncio.sleep(interval)
                await response.write_eof()
            except ConnectionResetError:
                pass  # the gateway gave up and hung up: what a timeout does
            return response
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)

    async def wait_for(self, path, count=1, timeout=5):
        """The requests to ``path`` once ``count`` of them have arrived."""

        def matching():
            return [r for r in self.requests if r.path == path]

        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(matching()) >= count), timeout)
        return matching()

    def paths(self):
        return [r.path for r in self.requests]


@pytest.fixture
async def backend():
    backend = RecordingBackend()
    backend.runner = web.AppRunner(backend.app, access_log=None)
    await backend.runner.setup()
    site = web.TCPSite(backend.runner, "127.0.0.1", 0)
    await site.start()
    backend.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield backend
    await backend.runner.cleanup()


@pytest.fixture
async def make_gateway(backend):
    """Start a gateway in front of ``backend`` (options as ``GatewayConfig`` fields)."""
    started = []

    async def make(**options):
        values = dict(
            api_id="unit0api01",
            target_base_endpoint=f"{backend.url}/ws/",
            secret="s3cr3t",
            routes={"chat": Route(f"{backend.url}/chat/in")},
        )
        values.update(options)
        gateway = LocalGateway(GatewayConfig(**values))
        await gateway.start("127.0.0.1", 0)
        started.append(gateway)
        gateway.ws_url = f"ws://127.0.0.1:{gateway.port}/{gateway.config.stage}"
        gateway.management_url = f"http://127.0.0.1:{gateway.port}/{gateway.config.stage}"
        return gateway

    yield make
    for gateway in started:
        await gateway.stop()
