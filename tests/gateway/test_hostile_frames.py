"""Frames the gateway cannot parse never crash it: they go to $default, as on API Gateway."""

import asyncio
import json
import logging

import pytest
from websockets.asyncio.client import connect

from django_aws_api_gateway_websockets import protocol
from django_aws_api_gateway_websockets.gateway import LocalGateway

# A few KB each, nested deeper than the json module's recursion limit.
DEEP_ARRAY = "[" * 5000
DEEP_OBJECT = '{"a":' * 1500 + "1" + "}" * 1500
DEEP_ACTION = '{"action": "chat", "x": ' + "[" * 5000 + "]" * 5000 + "}"


@pytest.mark.parametrize("frame", [DEEP_ARRAY, DEEP_OBJECT, DEEP_ACTION], ids=["array", "object", "action"])
def test_select_route_sends_deeply_nested_json_to_default(frame):
    assert protocol.select_route(frame, "action", {"chat"}) == "$default"


def test_route_selection_refuses_depth_any_python_parses():
    # 200 levels: every Python's json parses it (3.13's gives up far later than 3.11's); the
    # depth limit, not the parser, sends it to $default on every version.
    frame = '{"action": "chat", "x": ' + "[" * 200 + "]" * 200 + "}"
    assert protocol.select_route(frame, "action", {"chat"}) == "$default"
    shallow = '{"action": "chat", "x": ' + "[" * 100 + "]" * 100 + "}"
    assert protocol.select_route(shallow, "action", {"chat"}) == "chat"


async def test_deeply_nested_frames_are_forwarded_to_default(backend, make_gateway, caplog):
    gateway = await make_gateway()
    loop = asyncio.get_running_loop()
    unhandled = []
    loop.set_exception_handler(lambda loop, context: unhandled.append(context))
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            async with connect(gateway.ws_url) as ws:
                for frame in (DEEP_ARRAY, DEEP_OBJECT, DEEP_ACTION):
                    await ws.send(frame)
                forwarded = await backend.wait_for("/ws/default", count=3)
                # The socket still works after them.
                await ws.send('{"action": "chat"}')
                await backend.wait_for("/chat/in")
    finally:
        loop.set_exception_handler(None)
    # Forwarded unchanged (Django answers 400 for bodies it cannot parse).
    assert sorted(r.body for r in forwarded) == sorted(f.encode() for f in (DEEP_ARRAY, DEEP_OBJECT, DEEP_ACTION))
    assert unhandled == []
    assert "Task exception was never retrieved" not in caplog.text


async def test_a_failing_route_selection_still_forwards_the_frame(backend, make_gateway, monkeypatch):
    """Whatever select_route raises, the frame reaches $default and the socket stays open."""
    gateway = await make_gateway()

    def broken(*args):
        raise ValueError("boom")

    monkeypatch.setattr(protocol, "select_route", broken)
    async with connect(gateway.ws_url) as ws:
        await ws.send(json.dumps({"action": "chat"}))
        (request,) = await backend.wait_for("/ws/default")
        assert request.body == b'{"action": "chat"}'
        assert len(gateway.connections) == 1


async def test_listening_beyond_loopback_logs_a_warning(make_gateway, caplog):
    with caplog.at_level(logging.WARNING, logger="django_aws_api_gateway_websockets.gateway"):
        gateway = await make_gateway()
        assert "no authentication" not in caplog.text
        exposed = LocalGateway(gateway.config)
        await exposed.start("0.0.0.0", 0)
        await exposed.stop()
    assert "listens on 0.0.0.0" in caplog.text and "no authentication" in caplog.text
