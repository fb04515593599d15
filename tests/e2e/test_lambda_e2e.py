"""The Lambda path end to end (issue #27): real WebSocket clients -> the local gateway in its
``--lambda`` mode, which calls the Lambda handler in-process with API Gateway's proxy events ->
Django (the same views, rows and signals) -> the Management API -> the clients."""

import json
import sqlite3
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from django_aws_api_gateway_websockets.aws_lambda import make_handler
from django_aws_api_gateway_websockets.models import ApiGateway, IntegrationType, WebSocketSession

from ..helpers import wait_for
from .conftest import ORIGIN
from .test_runwsgateway_command import interrupt, run_gateway  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lambda_thread(start_gateway, e2e_gateway):
    ApiGateway.objects.filter(pk=e2e_gateway.pk).update(integration_type=IntegrationType.AWS_PROXY)
    e2e_gateway.refresh_from_db()
    return start_gateway(lambda_handler=make_handler(view_path="/ws/"))


def test_connect_message_and_disconnect_through_the_lambda_handler(lambda_thread, browser_login, user):
    cookie, fetch_token = browser_login(user)
    url = f"{lambda_thread.ws_url}?ws_token={fetch_token()}&channel=room-1"
    with connect(url, origin=ORIGIN, additional_headers={"Cookie": cookie}, open_timeout=5) as ws:
        assert wait_for(WebSocketSession.objects.exists)
        session = WebSocketSession.objects.get()
        assert (session.user, session.channel_name, session.connected) == (user, "room-1", True)
        ws.send(json.dumps({"handler": "send_chat", "text": "hello"}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "chat", "text": "hello", "user": "alice"}
    assert wait_for(lambda: not WebSocketSession.objects.get().connected)


def test_two_way_route_answer_reaches_the_client(start_gateway, e2e_gateway, browser_login, user):
    ApiGateway.objects.filter(pk=e2e_gateway.pk).update(integration_type=IntegrationType.AWS_PROXY)
    thread = start_gateway(lambda_handler=make_handler(view_path="/ws/"), default_route_two_way=True)
    cookie, fetch_token = browser_login(user)
    url = f"{thread.ws_url}?ws_token={fetch_token()}"
    with connect(url, origin=ORIGIN, additional_headers={"Cookie": cookie}, open_timeout=5) as ws:
        ws.send(json.dumps({"handler": "whoami"}))
        assert json.loads(ws.recv(timeout=5)) == {"type": "whoami", "user": "alice"}


@pytest.mark.parametrize(
    ("query", "origin", "status"), [("", ORIGIN, 401), ("ws_token=x", "https://evil.example", 403)]
)
def test_refused_handshakes_keep_no_row(lambda_thread, query, origin, status):
    with pytest.raises(InvalidStatus) as info:
        connect(f"{lambda_thread.ws_url}?{query}", origin=origin, open_timeout=5)
    assert info.value.response.status_code == status
    assert not WebSocketSession.objects.exists()


def test_http_record_refuses_the_lambda_events(start_gateway, browser_login, user):
    # The record still integrates over HTTP: the events' trust is not its proof.
    thread = start_gateway(lambda_handler=make_handler(view_path="/ws/"))
    cookie, fetch_token = browser_login(user)
    with pytest.raises(InvalidStatus) as info:
        connect(f"{thread.ws_url}?ws_token={fetch_token()}", origin=ORIGIN, open_timeout=5)
    assert info.value.response.status_code == 403


def test_runwsgateway_lambda_option_serves_through_the_handler(run_gateway):  # noqa: F811
    port, db_path, process = run_gateway(
        "http://127.0.0.1:9/unused/", "--lambda", "tests.lambda_handlers.open_handler", "--two-way"
    )
    assert "AWS_PROXY" in process.banner
    with connect(f"ws://127.0.0.1:{port}/local", open_timeout=10) as ws:
        ws.send(json.dumps({"handler": "echo", "n": 1}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "echo", "body": {"handler": "echo", "n": 1}}
    assert "Local gateway stopped" in interrupt(process)
    with sqlite3.connect(db_path) as db:  # the row the handler's $connect wrote, its $disconnect closed
        rows = db.execute("select connected from django_aws_api_gateway_websockets_websocketsession").fetchall()
    assert rows == [(0,)]


def test_runwsgateway_lambda_option_refuses_a_path_that_does_not_import(run_gateway):  # noqa: F811
    import subprocess

    result = subprocess.run(
        [*run_gateway.manage, "runwsgateway", "127.0.0.1:8765", "--lambda", "tests.nowhere.handler"],
        env=run_gateway.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "cannot import" in result.stderr
