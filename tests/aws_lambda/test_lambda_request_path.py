"""The request path through the Lambda handler (issue #27): API Gateway's proxy events run through
the project's WebSocketView with the same checks, rows and signals as the HTTP integration's
requests; the Lambda trust is never available to a request over HTTP."""

import json
import urllib.error
import urllib.request

import pytest
from django.test import Client

from django_aws_api_gateway_websockets import signals, tokens
from django_aws_api_gateway_websockets.models import (
    ApiGateway,
    ApiGatewayAdditionalRoute,
    ConnectionRateLimit,
    WebSocketSession,
    WebSocketToken,
)
from django_aws_api_gateway_websockets.security import LAMBDA_META_KEY
from django_aws_api_gateway_websockets.testing import ManagementAPICapture, integration_headers, lambda_event
from django_aws_api_gateway_websockets.testing.client import new_connection_id

pytestmark = pytest.mark.django_db

ORIGIN = "https://www.example.com"


def logged_in_token(client, user):
    client.force_login(user)
    return tokens.issue_token(user, client.session.session_key), client.session.session_key


def connect(handler, gateway, *, query=None, headers=None, cid=None, source_ip="203.0.113.9"):
    cid = cid or new_connection_id()
    event = lambda_event(gateway, "$connect", cid, query=query, headers=headers, source_ip=source_ip)
    return cid, handler(event, None)


@pytest.fixture
def connected(handler, lambda_gateway, client, user):
    raw, _ = logged_in_token(client, user)
    cid, result = connect(
        handler, lambda_gateway, query={"ws_token": raw, "channel": "room-1"}, headers={"Origin": ORIGIN}
    )
    assert result["statusCode"] == 200, result
    return cid


def test_connect_with_token_and_origin_opens_the_connection(handler, lambda_gateway, client, user):
    raw, _ = logged_in_token(client, user)
    seen = []

    def receiver(sender, session, **kwargs):
        seen.append(session.connection_id)

    signals.connected.connect(receiver)
    try:
        cid, result = connect(
            handler, lambda_gateway, query={"ws_token": raw, "channel": "room-1"}, headers={"Origin": ORIGIN}
        )
    finally:
        signals.connected.disconnect(receiver)
    assert result["statusCode"] == 200
    session = WebSocketSession.objects.get(connection_id=cid)
    assert (session.user, session.channel_name, session.api_gateway, session.connected) == (
        user,
        "room-1",
        lambda_gateway,
        True,
    )
    assert seen == [cid]
    assert WebSocketToken.objects.get().used is True
    audit = ConnectionRateLimit.objects.get()
    assert (audit.successful, audit.ip_address) == (True, "203.0.113.9")


def test_connect_with_the_login_cookie_takes_the_same_path(handler, lambda_gateway, client, user):
    raw, session_key = logged_in_token(client, user)
    cookie = f"sessionid={session_key}"
    cid, result = connect(
        handler, lambda_gateway, query={"ws_token": raw}, headers={"Origin": ORIGIN, "Cookie": cookie}
    )
    assert result["statusCode"] == 200
    assert WebSocketSession.objects.get(connection_id=cid).user == user


def test_source_ip_is_the_events_identity_not_a_client_header(handler, lambda_gateway, client, user):
    raw, _ = logged_in_token(client, user)
    headers = {"X-Source-Ip": "10.9.9.9", "X-Forwarded-For": "10.8.8.8", "X_Source_Ip": "10.7.7.7"}
    connect(handler, lambda_gateway, query={"ws_token": raw}, headers=headers, source_ip="198.51.100.4")
    assert ConnectionRateLimit.objects.get().ip_address == "198.51.100.4"


def test_message_runs_the_handler_and_its_answer_is_the_body(handler, lambda_gateway, connected, user):
    before = WebSocketSession.objects.get(connection_id=connected).request_count
    result = handler(lambda_event(lambda_gateway, "$default", connected, body={"handler": "whoami"}), None)
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"type": "whoami", "user": user.get_username()}
    assert WebSocketSession.objects.get(connection_id=connected).request_count == before + 1


def test_message_sends_through_the_management_api(handler, lambda_gateway, connected):
    with ManagementAPICapture() as capture:
        result = handler(
            lambda_event(lambda_gateway, "$default", connected, body={"handler": "send_chat", "text": "hi"}), None
        )
    assert result["statusCode"] == 200
    assert capture.sent_to(connected)[-1]["text"] == "hi"


def test_custom_route_runs_through_its_integration_path(handler, lambda_gateway, connected, user):
    ApiGatewayAdditionalRoute.objects.create(
        api_gateway=lambda_gateway, name="ask", route_key="ask", integration_url="https://www.example.com/ws/ask"
    )
    event = lambda_event(lambda_gateway, "ask", connected, body={"action": "ask", "handler": "whoami"})
    result = handler(event, None)
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["type"] == "whoami"


def test_binary_frame_is_decoded_from_base64(handler, lambda_gateway, connected):
    event = lambda_event(lambda_gateway, "$default", connected, body=b"\xff\xfe")
    assert event["isBase64Encoded"] is True
    assert handler(event, None)["statusCode"] == 400  # not JSON: the view's answer


def test_disconnect_marks_the_row(handler, lambda_gateway, connected):
    result = handler(lambda_event(lambda_gateway, "$disconnect", connected), None)
    assert result["statusCode"] == 200
    assert WebSocketSession.objects.get(connection_id=connected).connected is False
    after = handler(lambda_event(lambda_gateway, "$default", connected, body={"handler": "whoami"}), None)
    assert after["statusCode"] == 410


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ({"ws_token": "nope"}, {"Origin": ORIGIN}, 401),
        (None, {"Origin": ORIGIN}, 401),
        ("TOKEN", {"Origin": "https://evil.example.net"}, 403),
        ({"ws_token": "TOKEN", "channel": "bad channel!"}, {"Origin": ORIGIN}, 400),
    ],
)
def test_refused_connects_keep_no_row_and_no_token_spent(handler, lambda_gateway, client, user, query, headers, status):
    raw, _ = logged_in_token(client, user)
    if query == "TOKEN":
        query = {"ws_token": raw}
    elif query and query.get("ws_token") == "TOKEN":
        query = {**query, "ws_token": raw}
    cid, result = connect(handler, lambda_gateway, query=query, headers=headers)
    assert result["statusCode"] == status
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()
    assert WebSocketToken.objects.get().used is False


def test_rate_limit_refuses_past_the_limit(handler, lambda_gateway, settings):
    settings.WEBSOCKETS = {"rate_limit_max_attempts": 2}
    statuses = [connect(handler, lambda_gateway, query={"ws_token": "x"})[1]["statusCode"] for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_forged_event_with_an_unknown_api_id_is_refused(handler, lambda_gateway, client, user):
    raw, _ = logged_in_token(client, user)
    forged = ApiGateway(api_id="unknown0001", stage_name="production", region="eu-west-1")
    cid, result = connect(handler, forged, query={"ws_token": raw}, headers={"Origin": ORIGIN})
    assert result["statusCode"] == 403
    assert not WebSocketSession.objects.exists()
    assert WebSocketToken.objects.get().used is False


def test_event_for_an_http_integration_record_is_refused(handler, gateway, settings, client, user):
    # The record integrates over HTTP: its proof is the secret, which an event never replaces,
    # not even a secret header written into the event.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".amazonaws.com"]
    raw, _ = logged_in_token(client, user)
    headers = {"Origin": ORIGIN, "X-Gateway-Secret": gateway.integration_secret}
    cid, result = connect(handler, gateway, query={"ws_token": raw}, headers=headers)
    assert result["statusCode"] == 403
    assert not WebSocketSession.objects.exists()


def test_message_for_another_apis_connection_is_refused(handler, lambda_gateway, connected, gateway, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".amazonaws.com"]
    result = handler(lambda_event(gateway, "$default", connected, body={"handler": "whoami"}), None)
    assert result["statusCode"] == 403


def test_http_request_with_the_secret_never_reaches_a_lambda_record(lambda_gateway, client, user):
    raw, _ = logged_in_token(client, user)
    headers = integration_headers(lambda_gateway, new_connection_id(), route="connect")
    assert "X-Gateway-Secret" in headers  # the record has a secret: it is not the proof here
    response = client.post(f"/ws/connect?ws_token={raw}", headers=headers)
    assert response.status_code == 403
    assert not WebSocketSession.objects.exists()


def test_http_request_naming_the_marker_gets_no_trust(lambda_gateway, client, user):
    # A header can only become an HTTP_* key with a str value: never the handler's object.
    raw, _ = logged_in_token(client, user)
    headers = integration_headers(lambda_gateway, new_connection_id(), route="connect")
    headers[LAMBDA_META_KEY] = "1"
    response = Client().post(f"/ws/connect?ws_token={raw}", headers=headers, **{LAMBDA_META_KEY: "LambdaInvocation"})
    assert response.status_code == 403


def test_real_http_request_gets_no_lambda_trust(lambda_gateway, live_server, transactional_db):
    cid = new_connection_id()
    headers = integration_headers(lambda_gateway, cid, route="connect")
    headers["django-aws-api-gateway-websockets.lambda-invocation"] = "1"
    request = urllib.request.Request(f"{live_server.url}/open/connect", data=b"", headers=headers, method="POST")
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 403
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        "event",
        {},
        {"requestContext": []},
        {"requestContext": {"routeKey": "$connect"}},
        {"requestContext": {"routeKey": 1, "apiId": "lam123def4", "connectionId": "abc="}},
        {"requestContext": {"routeKey": "$connect", "apiId": "x\x00y", "connectionId": "abc=", "domainName": "h"}},
        {"requestContext": {"routeKey": "$connect", "apiId": "lam123def4", "connectionId": "a b", "domainName": "h"}},
        {"requestContext": {"routeKey": "$connect", "apiId": "lam123def4", "connectionId": "abc=", "domainName": ""}},
        {
            "requestContext": {
                "routeKey": "$connect",
                "apiId": "lam123def4",
                "connectionId": "abc=",
                "domainName": "h",
            },
            "headers": {"a": 1},
        },
        {
            "requestContext": {
                "routeKey": "$connect",
                "apiId": "lam123def4",
                "connectionId": "abc=",
                "domainName": "h",
            },
            "multiValueHeaders": {"a": "b"},
        },
        {
            "requestContext": {
                "routeKey": "$default",
                "apiId": "lam123def4",
                "connectionId": "abc=",
                "domainName": "h",
            },
            "body": "!!!",
            "isBase64Encoded": True,
        },
        {
            "requestContext": {
                "routeKey": "$default",
                "apiId": "lam123def4",
                "connectionId": "abc=",
                "domainName": "h",
            },
            "body": "x",
            "isBase64Encoded": "yes",
        },
        {
            "requestContext": {
                "routeKey": "$default",
                "apiId": "lam123def4",
                "connectionId": "abc=",
                "domainName": "h",
                "identity": "1.2.3.4",
            }
        },
    ],
)
def test_malformed_events_are_answered_400_and_run_nothing(handler, lambda_gateway, event):
    result = handler(event, None)
    assert result["statusCode"] == 400
    assert not WebSocketSession.objects.exists()


def test_oversized_and_deeply_nested_messages_get_the_views_answers(handler, lambda_gateway, connected):
    big = handler(lambda_event(lambda_gateway, "$default", connected, body="x" * (128 * 1024 + 1)), None)
    assert big["statusCode"] == 413
    deep = handler(lambda_event(lambda_gateway, "$default", connected, body="[" * 5000 + "]" * 5000), None)
    assert deep["statusCode"] == 400


def test_event_names_its_own_connection_not_a_header(handler, lambda_gateway, connected, client, user):
    # A client header "connectionId" on $connect never replaces requestContext.connectionId.
    raw, _ = logged_in_token(client, user)
    cid, result = connect(
        handler, lambda_gateway, query={"ws_token": raw}, headers={"Origin": ORIGIN, "connectionId": connected}
    )
    assert result["statusCode"] == 200
    assert WebSocketSession.objects.filter(connection_id=cid).exists()


# --- the view the handler runs events through (check E095) --------------------------------


def test_check_names_a_lambda_view_path_no_websocket_view_serves(settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.WEBSOCKETS = {"lambda_view_path": "/admin/"}
    with pytest.raises(SystemCheckError, match="E095"):
        call_command("check")
    settings.WEBSOCKETS = {"lambda_view_path": "/ws/"}
    call_command("check")


def test_deploy_check_judges_the_default_path_when_a_record_uses_lambda(lambda_gateway, settings):
    from django_aws_api_gateway_websockets.checks.lambda_integration import lambda_record_messages

    assert lambda_record_messages("default") == []
    settings.ROOT_URLCONF = "tests.urls_presence_only"
    assert [m.id for m in lambda_record_messages("default")] == ["aws_websockets.E095"]


def context(route_key="$connect", domain="h"):
    return {"routeKey": route_key, "apiId": "lam123def4", "connectionId": "abc=", "domainName": domain}


@pytest.mark.parametrize(
    "event",
    [
        {"requestContext": context(), "headers": {1: "x"}},
        {"requestContext": context(), "multiValueHeaders": {1: ["x"]}},
        {"requestContext": context(), "multiValueQueryStringParameters": {None: ["x"]}},
        {"requestContext": context(), "queryStringParameters": {"a": ["x"]}},
        {"requestContext": context("$default"), "body": {"not": "a string"}},
        {"requestContext": context("$default"), "body": "\ud800"},
        {"requestContext": context("$default", domain="h/x")},
        {"requestContext": context("$default", domain="h" * 300)},
    ],
)
def test_wrong_typed_event_parts_are_answered_400(handler, lambda_gateway, event):
    assert handler(event, None)["statusCode"] == 400


def test_connect_answer_carries_the_subprotocol_the_view_picks(handler, lambda_gateway, client, user, settings):
    from django.http import JsonResponse

    from tests.views import ChatView

    def connect_hook(self, request, *args, **kwargs):
        response = JsonResponse({})
        response["Sec-WebSocket-Protocol"] = "chat.v1"
        return response

    raw, _ = logged_in_token(client, user)
    ChatView.connect = connect_hook
    try:
        _cid, result = connect(handler, lambda_gateway, query={"ws_token": raw}, headers={"Origin": ORIGIN})
    finally:
        del ChatView.connect
    assert result["statusCode"] == 200
    assert result["headers"] == {"Content-Type": "application/json", "Sec-WebSocket-Protocol": "chat.v1"}
