"""The Management API of the local gateway (docs/local-gateway.md), driven by boto3 as project code drives it."""

import asyncio
import datetime
import time

import pytest
from botocore.exceptions import ClientError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from django_aws_api_gateway_websockets import aws, protocol


def client_for(gateway, url=None):
    return aws.get_client("apigatewaymanagementapi", region="us-east-1", endpoint_url=url or gateway.management_url)


async def call(gateway, operation, url=None, **params):
    """One boto3 call, off the event loop the gateway runs on."""
    client = client_for(gateway, url)
    return await asyncio.to_thread(getattr(client, operation), **params)


async def error_of(gateway, operation, url=None, **params):
    with pytest.raises(ClientError) as info:
        await call(gateway, operation, url, **params)
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], info.value


async def open_socket(backend, gateway, **kwargs):
    ws = await connect(gateway.ws_url, **kwargs)
    (request,) = await backend.wait_for("/ws/connect")
    return ws, request.headers["connectionId"]


async def test_post_to_connection_reaches_the_client(backend, make_gateway):
    gateway = await make_gateway()
    ws, connection_id = await open_socket(backend, gateway)
    await call(gateway, "post_to_connection", ConnectionId=connection_id, Data=b'{"type": "hello"}')
    assert await asyncio.wait_for(ws.recv(), 5) == '{"type": "hello"}'
    await call(gateway, "post_to_connection", ConnectionId=connection_id, Data=b"\xff\x00")
    assert await asyncio.wait_for(ws.recv(), 5) == b"\xff\x00"  # not UTF-8: a binary frame
    await ws.close()


async def test_get_connection_describes_it(backend, make_gateway):
    gateway = await make_gateway()
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
    ws, connection_id = await open_socket(backend, gateway, user_agent_header="Mozilla/5.0 unit")
    await ws.send("activity")
    await backend.wait_for("/ws/default")
    info = await call(gateway, "get_connection", ConnectionId=connection_id)
    assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "Mozilla/5.0 unit"}
    assert before < info["ConnectedAt"] <= info["LastActiveAt"] <= datetime.datetime.now(datetime.UTC)
    await ws.close()


async def test_delete_closes_the_socket_and_sends_disconnect(backend, make_gateway):
    gateway = await make_gateway()
    ws, connection_id = await open_socket(backend, gateway)
    response = await call(gateway, "delete_connection", ConnectionId=connection_id)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1001
    (disconnect,) = await backend.wait_for("/ws/disconnect")
    assert disconnect.headers["connectionId"] == connection_id


@pytest.mark.parametrize("operation", ["post_to_connection", "get_connection", "delete_connection"])
async def test_gone_after_the_client_left(backend, make_gateway, operation):
    gateway = await make_gateway()
    ws, connection_id = await open_socket(backend, gateway)
    await ws.close()
    await backend.wait_for("/ws/disconnect")
    params = {"Data": b"{}"} if operation == "post_to_connection" else {}
    code, status, error = await error_of(gateway, operation, ConnectionId=connection_id, **params)
    assert (code, status) == ("GoneException", 410)
    assert isinstance(error, client_for(gateway).exceptions.GoneException)  # the modeled exception


async def test_payload_too_large(backend, make_gateway):
    gateway = await make_gateway()
    ws, connection_id = await open_socket(backend, gateway, max_size=None)
    await call(gateway, "post_to_connection", ConnectionId=connection_id, Data=b"x" * protocol.MAX_PAYLOAD_BYTES)
    assert len(await asyncio.wait_for(ws.recv(), 5)) == protocol.MAX_PAYLOAD_BYTES
    code, status, error = await error_of(
        gateway, "post_to_connection", ConnectionId=connection_id, Data=b"x" * (protocol.MAX_PAYLOAD_BYTES + 1)
    )
    assert (code, status) == ("PayloadTooLargeException", 413)
    assert isinstance(error, client_for(gateway).exceptions.PayloadTooLargeException)
    assert ws.state.name == "OPEN"  # the socket stays up
    await ws.close()


async def test_wrong_stage_is_forbidden(make_gateway):
    gateway = await make_gateway()
    code, status, error = await error_of(
        gateway, "get_connection", url=f"http://127.0.0.1:{gateway.port}/prod", ConnectionId="L0SM9cOFvHcCIhw="
    )
    assert (code, status) == ("ForbiddenException", 403)
    assert isinstance(error, client_for(gateway).exceptions.ForbiddenException)


async def test_malformed_connection_id_is_a_bad_request(make_gateway):
    gateway = await make_gateway()
    code, status, _ = await error_of(gateway, "get_connection", ConnectionId="not an id!")
    assert (code, status) == ("BadRequestException", 400)


async def test_throttle_answers_limit_exceeded(backend, make_gateway):
    gateway = await make_gateway(management_rate_limit=1, management_burst_limit=3)
    ws, connection_id = await open_socket(backend, gateway)
    for _ in range(3):
        await call(gateway, "post_to_connection", ConnectionId=connection_id, Data=b"{}")
    code, status, error = await error_of(gateway, "post_to_connection", ConnectionId=connection_id, Data=b"{}")
    assert (code, status) == ("LimitExceededException", 429)
    assert isinstance(error, client_for(gateway).exceptions.LimitExceededException)
    await ws.close()


async def test_management_latency_delays_each_call(backend, make_gateway):
    gateway = await make_gateway(management_latency_ms=300)
    ws, connection_id = await open_socket(backend, gateway)
    started = time.monotonic()
    await call(gateway, "get_connection", ConnectionId=connection_id)
    assert time.monotonic() - started >= 0.3
    await ws.close()
