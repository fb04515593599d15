"""The whole stack on one machine: browser-like client -> local gateway -> Django -> boto3 -> gateway -> client."""

import asyncio
import json
import os
import time

import pytest
from botocore.exceptions import ClientError
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from django_aws_api_gateway_websockets.models import ApiGatewayAdditionalRoute, WebSocketSession
from django_aws_api_gateway_websockets.sending import management_client

from ..helpers import wait_for
from .conftest import ORIGIN

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def only_session():
    assert wait_for(lambda: WebSocketSession.objects.exists())
    return WebSocketSession.objects.get()


def open_chat(gateway_thread, browser_login, user, channel="room-1"):
    cookie, fetch_token = browser_login(user)
    url = f"{gateway_thread.ws_url}?ws_token={fetch_token()}&channel={channel}"
    return connect(url, origin=ORIGIN, additional_headers={"Cookie": cookie}, open_timeout=5)


def test_token_and_channel_connect_then_message_reply_through_boto3(gateway_thread, browser_login, user):
    with open_chat(gateway_thread, browser_login, user) as ws:
        session = only_session()
        assert (session.user, session.channel_name, session.connected) == (user, "room-1", True)
        ws.send(json.dumps({"handler": "send_chat", "text": "hello"}))
        reply = json.loads(ws.recv(timeout=5))
        assert reply == {"type": "chat", "text": "hello", "user": "alice"}
    assert wait_for(lambda: not WebSocketSession.objects.get().connected)


def test_connect_without_token_is_refused_at_the_handshake(gateway_thread):
    with pytest.raises(InvalidStatus) as info:
        connect(gateway_thread.ws_url, origin=ORIGIN, open_timeout=5)
    assert info.value.response.status_code == 401
    assert not WebSocketSession.objects.exists()


def test_reused_token_is_refused(gateway_thread, browser_login, user):
    cookie, fetch_token = browser_login(user)
    url = f"{gateway_thread.ws_url}?ws_token={fetch_token()}"
    with connect(url, origin=ORIGIN, additional_headers={"Cookie": cookie}, open_timeout=5):
        pass
    with pytest.raises(InvalidStatus) as info:
        connect(url, origin=ORIGIN, additional_headers={"Cookie": cookie}, open_timeout=5)
    assert info.value.response.status_code == 401


def test_custom_two_way_route(start_gateway, e2e_gateway, live_server, browser_login, user):
    ApiGatewayAdditionalRoute.objects.create(
        api_gateway=e2e_gateway,
        name="echo",
        route_key="echo",
        integration_url=f"{live_server.url}/open/echo",
        two_way=True,
    )
    thread = start_gateway()
    with open_chat(thread, browser_login, user) as ws:
        ws.send(json.dumps({"action": "echo", "handler": "echo", "n": 7}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "echo", "body": {"action": "echo", "handler": "echo", "n": 7}}
        # $default is one-way here: Django's answer is dropped, as on AWS.
        ws.send(json.dumps({"handler": "whoami"}))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.5)


def test_two_way_flag_relays_default_route(start_gateway, browser_login, user):
    thread = start_gateway(two_way=True)
    with open_chat(thread, browser_login, user) as ws:
        ws.send(json.dumps({"handler": "whoami"}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "whoami", "user": "alice"}


def test_server_side_close(gateway_thread, browser_login, user):
    with open_chat(gateway_thread, browser_login, user) as ws:
        session = only_session()
        assert session.close() is True
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1001
    assert wait_for(lambda: not WebSocketSession.objects.get().connected)


def test_idle_timeout_closes_and_disconnects(start_gateway, browser_login, user):
    thread = start_gateway(idle_timeout=0.5)
    with open_chat(thread, browser_login, user) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1001
    assert wait_for(lambda: not WebSocketSession.objects.get().connected)


def test_max_lifetime(start_gateway, browser_login, user):
    thread = start_gateway(max_lifetime=0.5, idle_timeout=60)
    with open_chat(thread, browser_login, user) as ws:
        ws.send(json.dumps({"handler": "ping"}))  # activity does not extend the lifetime
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    assert wait_for(lambda: not WebSocketSession.objects.get().connected)


def test_oversize_frame_closes_with_1009(gateway_thread, browser_login, user):
    with open_chat(gateway_thread, browser_login, user) as ws:
        ws.send("x" * (128 * 1024 + 1))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.close_code == 1009
    assert wait_for(lambda: not WebSocketSession.objects.get().connected)


def test_gone_after_close(gateway_thread, browser_login, user, e2e_gateway):
    with open_chat(gateway_thread, browser_login, user):
        session = only_session()
        info = management_client(e2e_gateway).get_connection(ConnectionId=session.connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"
    assert wait_for(lambda: not WebSocketSession.objects.get().connected)
    with pytest.raises(ClientError) as error:
        management_client(e2e_gateway).post_to_connection(ConnectionId=session.connection_id, Data=b"{}")
    assert error.value.response["Error"]["Code"] == "GoneException"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410
    # Marked connected again by hand: a send discovers it is gone and fixes the row.
    WebSocketSession.objects.update(connected=True)
    assert WebSocketSession.objects.send_message({"x": 1}).gone == [session.connection_id]
    assert not WebSocketSession.objects.get().connected


def test_payload_too_large_from_management_api(gateway_thread, browser_login, user, e2e_gateway):
    with open_chat(gateway_thread, browser_login, user):
        session = only_session()
        with pytest.raises(ClientError) as error:
            management_client(e2e_gateway).post_to_connection(
                ConnectionId=session.connection_id, Data=b"x" * (128 * 1024 + 1)
            )
        assert error.value.response["Error"]["Code"] == "PayloadTooLargeException"


@pytest.mark.skipif(
    os.environ.get("E2E_INTEGRATION") == "lambda",
    reason="no HTTP target with the Lambda integration (a failing function: tests/gateway/test_lambda_events.py)",
)
def test_django_down_gives_the_client_an_error(start_gateway, e2e_gateway):
    thread = start_gateway(target_base_endpoint="http://127.0.0.1:9/ws/")
    with pytest.raises(InvalidStatus) as info:
        connect(thread.ws_url, open_timeout=5)
    assert info.value.response.status_code == 502


def test_200_concurrent_clients_receive_a_channel_broadcast(gateway_thread, settings):
    # /open/ needs no token: 200 anonymous clients on one channel, all from 127.0.0.1.
    settings.WEBSOCKETS = {"rate_limit_max_attempts": 1000}
    thread_config = gateway_thread.gateway.config
    thread_config.target_base_endpoint = thread_config.target_base_endpoint.replace("/ws/", "/open/")
    from websockets.asyncio.client import connect as aconnect

    # The 200 sockets are held at once; their handshakes are opened 20 at a time, so a loaded
    # machine (CI runs the suites side by side) queues them instead of timing them out.
    opening = asyncio.Semaphore(20)

    async def open_client():
        async with opening:
            return await aconnect(f"{gateway_thread.ws_url}?channel=news", open_timeout=30)

    async def scenario():
        clients = await asyncio.gather(*(open_client() for _ in range(200)))
        try:
            assert await asyncio.to_thread(WebSocketSession.objects.filter(connected=True).count) == 200
            result = await asyncio.to_thread(
                lambda: WebSocketSession.objects.in_channel("news").send_message({"type": "news", "n": 1})
            )
            assert len(result.delivered) == 200 and result.ok
            frames = await asyncio.gather(*(asyncio.wait_for(c.recv(), 10) for c in clients))
            assert all(json.loads(frame) == {"type": "news", "n": 1} for frame in frames)
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    asyncio.run(scenario())
    assert wait_for(lambda: not WebSocketSession.objects.filter(connected=True).exists(), timeout=20)
