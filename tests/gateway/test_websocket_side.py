"""The socket side of the local gateway (docs/local-gateway.md) against a real recording backend."""

import asyncio
import json
import time
from unittest.mock import ANY

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from django_aws_api_gateway_websockets import protocol
from django_aws_api_gateway_websockets.gateway import Route, server

from .conftest import Answer

ORIGIN = "https://www.example.com"


async def test_connect_forwards_the_handshake_and_query_string(backend, make_gateway):
    gateway = await make_gateway()
    headers = {
        "Cookie": "sessionid=abc",
        "User-Agent": "Mozilla/5.0 test",
        "X-Forwarded-For": "6.6.6.6",
        "X-Gateway-Secret": "forged",
    }
    async with connect(
        f"{gateway.ws_url}?ws_token=t1&channel=room-1",
        origin=ORIGIN,
        additional_headers=headers,
        user_agent_header=None,
    ):
        (request,) = await backend.wait_for("/ws/connect")
    assert request.query == "ws_token=t1&channel=room-1"
    assert request.body == b""
    h = request.headers
    assert h["Host"] == backend.url.removeprefix("http://")  # the target's, not the gateway's
    assert (h["Cookie"], h["Origin"], h["User-Agent"]) == ("sessionid=abc", ORIGIN, "Mozilla/5.0 test")
    assert h["Sec-WebSocket-Version"] == "13" and h["Sec-WebSocket-Key"]
    assert h["X-Forwarded-For"] == "6.6.6.6, 127.0.0.1"  # the address the gateway saw comes last
    assert (h["X-Forwarded-Proto"], h["X-Forwarded-Port"]) == ("https", "443")
    assert h["X-Amzn-Apigateway-Api-Id"] == "unit0api01" and h["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert h["X-Gateway-Secret"] == "s3cr3t"  # the record's, never the client's
    assert h["X-Source-Ip"] == "127.0.0.1"
    assert protocol.is_valid_connection_id(h["connectionId"]) and len(h["connectionId"]) == 16


@pytest.mark.parametrize("status", [401, 403, 429])
async def test_connect_rejected_with_djangos_status(backend, make_gateway, status):
    gateway = await make_gateway()
    backend.answers["/ws/connect"] = Answer(status)
    with pytest.raises(InvalidStatus) as info:
        await connect(gateway.ws_url, open_timeout=5)
    assert info.value.response.status_code == status
    assert gateway.connections == {}
    await asyncio.sleep(0.1)
    assert backend.paths() == ["/ws/connect"]  # a rejected socket never had a $disconnect


async def test_an_origin_refusal_is_logged_with_the_origin_refused(backend, make_gateway, caplog):
    """Issue #23: the log said "Origin not allowed." without the origin to trust."""
    gateway = await make_gateway()
    backend.answers["/ws/connect"] = Answer(
        403, b'{"error": "Origin not allowed."}', {"Content-Type": "application/json"}
    )
    with caplog.at_level("INFO", logger="django_aws_api_gateway_websockets.gateway"), pytest.raises(InvalidStatus):
        await connect(gateway.ws_url, origin="http://localhost:8000", open_timeout=5)
    [line] = [r.getMessage() for r in caplog.records if "connect rejected" in r.getMessage()]
    assert line.endswith(
        " from 127.0.0.1 (Origin 'http://localhost:8000'): Django answered 403: \"Origin not allowed.\""
    )


async def test_the_gateway_log_never_shows_the_connect_token_when_django_is_down(make_gateway, caplog):
    """The integration's failure line logs the $connect URL: its ws_token is blanked."""
    gateway = await make_gateway(target_base_endpoint="http://127.0.0.1:9/ws/")  # nothing listens
    with caplog.at_level("INFO", logger="django_aws_api_gateway_websockets.gateway"), pytest.raises(InvalidStatus):
        await connect(f"{gateway.ws_url}?ws_token=tok-Secret-123&channel=a", open_timeout=10)
    failed = [r.getMessage() for r in caplog.records if "integration failed" in r.getMessage()]
    assert failed and "ws_token=[redacted]&channel=a" in failed[0]
    assert "tok-Secret-123" not in caplog.text


async def test_connect_when_django_is_down_or_slow(make_gateway):
    down = await make_gateway(target_base_endpoint="http://127.0.0.1:9/ws/")
    with pytest.raises(InvalidStatus) as info:
        await connect(down.ws_url, open_timeout=5)
    assert info.value.response.status_code == 502


async def test_connect_timeout_is_a_504(backend, make_gateway):
    gateway = await make_gateway(integration_timeout=0.2)
    backend.answers["/ws/connect"] = Answer(delay=2)
    with pytest.raises(InvalidStatus) as info:
        await connect(gateway.ws_url, open_timeout=5)
    assert info.value.response.status_code == 504


async def test_a_plain_http_get_is_not_a_connect(backend, make_gateway):
    gateway = await make_gateway()
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.management_url) as response:
            assert response.status == 426
        async with http.get(f"http://127.0.0.1:{gateway.port}/otherstage") as response:
            assert response.status == 403
    assert backend.requests == []


async def test_subprotocol_chosen_by_django(backend, make_gateway):
    gateway = await make_gateway()
    backend.answers["/ws/connect"] = Answer(headers={"Sec-WebSocket-Protocol": "chat.v2"})
    async with connect(gateway.ws_url, subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"


async def test_messages_are_routed_and_carry_gateway_headers(backend, make_gateway):
    gateway = await make_gateway()
    async with connect(gateway.ws_url, additional_headers={"Cookie": "sessionid=abc"}) as ws:
        await ws.send('{"action": "chat", "text": "hi"}')
        (chat,) = await backend.wait_for("/chat/in")
        await ws.send('{"action": "unknown"}')
        await ws.send("not json")
        defaults = await backend.wait_for("/ws/default", count=2)
    connect_request = backend.requests[0]
    assert chat.body == b'{"action": "chat", "text": "hi"}'  # the frame's text, unchanged
    assert {r.body for r in defaults} == {b'{"action": "unknown"}', b"not json"}
    for request in [chat, *defaults]:
        assert request.headers["User-Agent"] == "AmazonAPIGateway_unit0api01"
        assert "Cookie" not in request.headers
        assert request.headers["connectionId"] == connect_request.headers["connectionId"]
        assert request.headers["X-Gateway-Secret"] == "s3cr3t"
        assert request.headers["X-Forwarded-For"] == "127.0.0.1"
        assert request.query == ""
    (disconnect,) = await backend.wait_for("/ws/disconnect")
    assert disconnect.headers["User-Agent"] == "AmazonAPIGateway_unit0api01"
    assert disconnect.headers["connectionId"] == connect_request.headers["connectionId"]


async def test_route_selection_expression_of_the_record(backend, make_gateway):
    gateway = await make_gateway(route_selection_expression="$request.body.meta.kind")
    async with connect(gateway.ws_url) as ws:
        await ws.send('{"action": "chat"}')
        await backend.wait_for("/ws/default")
        await ws.send('{"meta": {"kind": "chat"}}')
        await backend.wait_for("/chat/in")


async def test_one_way_routes_drop_the_answer_two_way_routes_relay_it(backend, make_gateway):
    gateway = await make_gateway(routes={"chat": Route(f"{backend.url}/chat/in", two_way=True)})
    backend.answers["/chat/in"] = Answer(body=b'{"echo": 1}')
    backend.answers["/ws/default"] = Answer(body=b'{"dropped": true}')
    async with connect(gateway.ws_url) as ws:
        await ws.send('{"action": "other"}')
        await backend.wait_for("/ws/default")
        await ws.send('{"action": "chat"}')
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"echo": 1}  # and not the dropped one


async def test_two_way_flag_relays_every_route(backend, make_gateway):
    gateway = await make_gateway(two_way=True)
    backend.answers["/ws/default"] = Answer(body=b"pong")
    async with connect(gateway.ws_url) as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 5) == "pong"


async def test_failing_integration_gives_the_client_aws_error_frame(backend, make_gateway):
    gateway = await make_gateway(routes={"down": Route("http://127.0.0.1:9/x")})
    backend.answers["/ws/default"] = Answer(500)
    async with connect(gateway.ws_url) as ws:
        await ws.send("boom")
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["message"] == "Internal server error"
        assert frame["connectionId"] in gateway.connections and frame["requestId"]
        await ws.send('{"action": "down"}')  # Django unreachable
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["message"] == "Internal server error"


async def test_integration_timeout_gives_the_timeout_frame(backend, make_gateway):
    gateway = await make_gateway(integration_timeout=0.3)
    backend.answers["/ws/default"] = Answer(delay=3)
    async with connect(gateway.ws_url) as ws:
        await ws.send("slow")
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert frame["message"] == "Endpoint request timed out"


# A backend that trickles a byte every 0.3 s for 5 s: each read is quick, the call is not.
TRICKLE = (0.3, 5)


async def test_connect_timeout_is_a_total_not_per_read(backend, make_gateway):
    gateway = await make_gateway(integration_timeout=1)
    backend.answers["/ws/connect"] = Answer(trickle=TRICKLE)
    started = time.monotonic()
    with pytest.raises(InvalidStatus) as info:
        await connect(gateway.ws_url, open_timeout=10)
    elapsed = time.monotonic() - started
    assert info.value.response.status_code == 504  # the handshake is refused, as AWS does
    assert 0.9 <= elapsed < 3, elapsed
    assert gateway.connections == {}


async def test_message_timeout_is_a_total_not_per_read(backend, make_gateway):
    gateway = await make_gateway(integration_timeout=1)
    backend.answers["/ws/default"] = Answer(trickle=TRICKLE)
    async with connect(gateway.ws_url) as ws:
        started = time.monotonic()
        await ws.send("slow")
        frame = json.loads(await asyncio.wait_for(ws.recv(), 4))
        elapsed = time.monotonic() - started
        (connection_id,) = gateway.connections
    assert frame == {"message": "Endpoint request timed out", "connectionId": connection_id, "requestId": ANY}
    assert frame["requestId"]
    assert 0.9 <= elapsed < 3, elapsed


async def test_waiting_for_an_integration_slot_does_not_count_against_the_timeout(backend, make_gateway, monkeypatch):
    monkeypatch.setattr(server, "MAX_INTEGRATIONS", 1)  # the second frame waits for the first's call
    gateway = await make_gateway(integration_timeout=1.5, default_route_two_way=True)
    backend.answers["/ws/default"] = Answer(body=b'{"ok": true}', delay=1)
    async with connect(gateway.ws_url) as ws:
        await ws.send("one")
        await ws.send("two")
        frames = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(2)]
    assert frames == [{"ok": True}, {"ok": True}]  # 2 s after the second frame, yet 1 s of Django's


async def test_idle_timeout_closes_with_1001_and_sends_disconnect(backend, make_gateway):
    gateway = await make_gateway(idle_timeout=0.3)
    async with connect(gateway.ws_url) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1001 and ws.close_reason == "idle timeout"
    await backend.wait_for("/ws/disconnect")
    assert gateway.connections == {}


async def test_activity_postpones_the_idle_timeout_but_not_the_max_lifetime(backend, make_gateway):
    gateway = await make_gateway(idle_timeout=0.4, max_lifetime=1.2)
    async with connect(gateway.ws_url) as ws:
        loop = asyncio.get_running_loop()
        opened = loop.time()
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.send("keepalive")
                await asyncio.sleep(0.1)
        assert ws.close_code == 1001 and ws.close_reason == "max lifetime"
        assert 1.0 < loop.time() - opened < 3


def fragments(text, size=protocol.MAX_FRAME_BYTES):
    """``text`` as one message in frames of ``size`` bytes (websockets sends an iterable so)."""
    return (text[i : i + size] for i in range(0, len(text), size))


async def test_a_message_of_128_kb_in_32_kb_frames_is_taken(backend, make_gateway):
    gateway = await make_gateway()
    async with connect(gateway.ws_url, max_size=None, compression=None) as ws:
        await ws.send(fragments("x" * protocol.MAX_PAYLOAD_BYTES))  # both limits, exactly
        await ws.send("y" * protocol.MAX_FRAME_BYTES)  # one frame at the frame limit
        (first, second) = await backend.wait_for("/ws/default", count=2)
        assert {len(first.body), len(second.body)} == {protocol.MAX_PAYLOAD_BYTES, protocol.MAX_FRAME_BYTES}


async def test_a_frame_over_32_kb_closes_with_1009_and_is_not_forwarded(backend, make_gateway):
    """API Gateway's frame quota: a larger frame closes the socket with 1009, even inside a
    message that is within the 128 KB message limit."""
    gateway = await make_gateway()
    async with connect(gateway.ws_url, max_size=None, compression=None) as ws:
        await ws.send("ok")
        await backend.wait_for("/ws/default")
        await ws.send("x" * (protocol.MAX_FRAME_BYTES + 1))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009
        assert ws.close_reason == "Frame size limit exceeded"
    await backend.wait_for("/ws/disconnect")
    assert len(await backend.wait_for("/ws/default")) == 1


async def test_no_compression_is_negotiated_so_the_frame_limit_counts_what_was_sent(backend, make_gateway):
    """A browser offers permessage-deflate; API Gateway accepts no extension. Negotiated, the
    32 KB check would see a compressible 40 KB frame as a few hundred bytes and pass it."""
    gateway = await make_gateway()
    async with connect(gateway.ws_url, max_size=None) as ws:  # websockets offers permessage-deflate
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send("x" * 40_000)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009


async def test_a_message_over_128_kb_in_small_frames_closes_with_1009(backend, make_gateway):
    gateway = await make_gateway()
    async with connect(gateway.ws_url, max_size=None, compression=None) as ws:
        await ws.send(fragments("x" * (protocol.MAX_PAYLOAD_BYTES + 1)))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009
        assert ws.close_reason == "Message size limit exceeded"
    await backend.wait_for("/ws/disconnect")
    assert [r for r in backend.requests if r.path == "/ws/default"] == []


def test_the_frame_guard_reads_headers_split_across_reads():
    from django_aws_api_gateway_websockets.gateway.limits import FrameGuard

    class Parser:
        fed = b""

        def feed_data(self, data):
            self.fed += data
            return False, b""

    def frame(length):  # a masked text frame with a 16-bit length
        return bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big") + b"mask" + b"x" * length

    tripped = []
    parser = Parser()
    guard = FrameGuard(parser, 1000, lambda: tripped.append(True))
    stream = frame(1000) + frame(10) + frame(1001) + frame(5)
    for i in range(0, len(stream), 3):  # three bytes a read: headers cut everywhere
        guard.feed_data(stream[i : i + 3])
    assert tripped == [True]
    assert (
        parser.fed.startswith(frame(1000) + frame(10)) and len(parser.fed) < len(frame(1000) + frame(10)) + 8
    )  # the bad header, at most


async def test_stop_closes_every_socket_and_sends_each_disconnect(backend, make_gateway):
    gateway = await make_gateway()
    clients = [await connect(gateway.ws_url) for _ in range(5)]
    await backend.wait_for("/ws/connect", count=5)
    await gateway.stop()  # Ctrl-C in runwsgateway
    assert {c.close_code for c in clients} == {1001}
    disconnects = [r for r in backend.requests if r.path == "/ws/disconnect"]  # already sent, not pending
    connects = [r for r in backend.requests if r.path == "/ws/connect"]
    assert {r.headers["connectionId"] for r in disconnects} == {r.headers["connectionId"] for r in connects}
    for client in clients:
        await client.close()
