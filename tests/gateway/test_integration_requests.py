"""Unit tests of the local gateway's route selection and parameter mapping (docs/local-gateway.md)."""

import pytest
from django.core.management import CommandError

from django_aws_api_gateway_websockets import protocol
from django_aws_api_gateway_websockets.gateway import GatewayConfig, Route
from django_aws_api_gateway_websockets.gateway.connections import Connection
from django_aws_api_gateway_websockets.gateway.integration import build_headers, request_context
from django_aws_api_gateway_websockets.management.commands.runwsgateway import Command
from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute
from django_aws_api_gateway_websockets.protocol import evaluate_mapping, new_connection_id


@pytest.fixture
def config():
    return GatewayConfig(
        api_id="api1",
        target_base_endpoint="http://127.0.0.1:8000/ws",
        secret="s3cr3t",
        routes={"chat": Route("http://127.0.0.1:8000/chat/in", two_way=True)},
    )


@pytest.fixture
def conn():
    return Connection("abcDEF123=", "203.0.113.5", "Mozilla/5.0")


def test_mapping_evaluates_context_variables_and_static_values():
    mapping = {
        "integration.request.header.connectionId": "context.connectionId",
        "integration.request.header.X-Source-Ip": "context.identity.sourceIp",
        "integration.request.header.X-Gateway-Secret": "'s3cr3t'",
        "integration.request.header.X-Unknown": "context.nothing",
        "integration.request.querystring.q": "'ignored'",
    }
    headers = evaluate_mapping(mapping, {"connectionId": "c1", "identity.sourceIp": "1.2.3.4"})
    assert headers == {"connectionId": "c1", "X-Source-Ip": "1.2.3.4", "X-Gateway-Secret": "s3cr3t"}


def test_integration_urls_and_two_way(config):
    assert config.target_base_endpoint == "http://127.0.0.1:8000/ws/"
    assert config.integration_for("$connect") == ("http://127.0.0.1:8000/ws/connect", False)
    assert config.integration_for("$default") == ("http://127.0.0.1:8000/ws/default", False)
    assert config.integration_for("chat") == ("http://127.0.0.1:8000/chat/in", True)
    config.default_route_two_way = True
    assert config.integration_for("$default")[1] is True
    config.two_way = True
    assert config.integration_for("$disconnect")[1] is True


@pytest.mark.parametrize(
    "frame,route",
    [('{"action": "chat"}', "chat"), ('{"action": "other"}', "$default"), ("plain text", "$default")],
)
def test_route_selection(config, frame, route):
    assert protocol.select_route(frame, config.selection_key, config.routes) == route


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="http"):
        GatewayConfig(api_id="a", target_base_endpoint="127.0.0.1:8000/ws/")
    with pytest.raises(ValueError, match="stage"):
        GatewayConfig(api_id="a", target_base_endpoint="http://x/", stage="a/b")


def test_nested_selection_expression():
    config = GatewayConfig(
        api_id="a", target_base_endpoint="http://x/", route_selection_expression="$request.body.meta.kind"
    )
    assert protocol.select_route('{"meta": {"kind": "chat"}}', config.selection_key, {"chat"}) == "chat"


def test_connect_headers_pass_the_browser_through_but_not_forged_mapped_headers(config, conn):
    browser = {
        "Host": "127.0.0.1:8001",
        "Cookie": "sessionid=x",
        "Origin": "https://www.example.com",
        "User-Agent": "Mozilla/5.0",
        "Sec-WebSocket-Key": "k",
        "X-Gateway-Secret": "forged",
        "X-Source-Ip": "6.6.6.6",
        "X-Forwarded-For": "6.6.6.6",
        "connectionId": "forged",
    }
    headers = build_headers(config, conn, "$connect", "req-1", browser)
    assert headers["Cookie"] == "sessionid=x"
    assert headers["Origin"] == "https://www.example.com"
    assert headers["User-Agent"] == "Mozilla/5.0"
    assert headers["Sec-WebSocket-Key"] == "k"
    assert "Host" not in headers  # the HTTP client sets the target's
    assert headers["X-Gateway-Secret"] == "s3cr3t"
    assert headers["X-Source-Ip"] == "203.0.113.5"
    # API Gateway keeps the client's X-Forwarded-For and appends the address it saw, last.
    assert headers["X-Forwarded-For"] == "6.6.6.6, 203.0.113.5"
    assert headers["connectionId"] == "abcDEF123="
    assert [k for k in headers if k.lower() == "x-gateway-secret"] == ["X-Gateway-Secret"]


def test_message_headers_have_gateway_user_agent_and_no_cookies(config, conn):
    headers = build_headers(config, conn, "$default", "req-1")
    assert headers["User-Agent"] == "AmazonAPIGateway_api1"
    assert "Cookie" not in headers
    assert headers["X-Amzn-Apigateway-Api-Id"] == "api1"
    assert headers["X-Forwarded-Proto"] == "https" and headers["X-Forwarded-Port"] == "443"
    assert headers["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert headers["X-Forwarded-For"] == "203.0.113.5"


def test_the_records_mapping_is_what_the_gateway_applies(config, conn):
    """The same RequestParameters provisioning puts on AWS integrations, evaluated per request."""
    mapping = protocol.request_parameters(config.secret)
    context = request_context(config, conn, "$default", "req-9")
    assert evaluate_mapping(mapping, context) == {
        "connectionId": "abcDEF123=",
        "X-Source-Ip": "203.0.113.5",
        "X-Gateway-Secret": "s3cr3t",
    }
    extra = {
        "integration.request.header.X-Request-Id": "context.requestId",
        "integration.request.header.X-Route": "context.routeKey",
        "integration.request.header.X-Event": "context.eventType",
        "integration.request.header.X-Stage": "context.stage",
    }
    assert evaluate_mapping(extra, context) == {
        "X-Request-Id": "req-9",
        "X-Route": "$default",
        "X-Event": "MESSAGE",
        "X-Stage": "local",
    }
    assert evaluate_mapping(extra, request_context(config, conn, "$connect", "r"))["X-Event"] == "CONNECT"


def test_no_secret_header_when_record_has_none(conn):
    config = GatewayConfig(api_id="a", target_base_endpoint="http://x/")
    assert "X-Gateway-Secret" not in build_headers(config, conn, "$default", "req-1")


def test_connection_ids_look_like_aws_and_pass_validation():
    ids = {new_connection_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(protocol.is_valid_connection_id(i) and len(i) == 16 for i in ids)


@pytest.mark.django_db
def test_config_from_record():
    record = ApiGateway.objects.create(
        api_name="r", api_id="rid", stage_name="dev", target_base_endpoint="http://h/ws/"
    )
    ApiGatewayAdditionalRoute.objects.create(
        api_gateway=record, name="n", route_key="news", integration_url="http://h/n"
    )
    config = GatewayConfig.from_record(record, idle_timeout=5, stage=None)
    assert (config.api_id, config.stage, config.secret, config.idle_timeout) == (
        "rid",
        "dev",
        record.integration_secret,
        5,
    )
    assert config.routes == {"news": Route("http://h/n", False)}


@pytest.mark.django_db
def test_command_resolves_records():
    def resolve(api):
        served, chosen = Command._resolve_record(api)
        assert served == chosen  # local records: played directly
        return served

    created = resolve(None)
    assert created.api_id.startswith("local") and created.stage_name == "local"
    assert resolve(None) == created  # the only record
    other = ApiGateway.objects.create(api_name="prod", api_id="p123")
    with pytest.raises(CommandError, match="--api"):
        resolve(None)
    assert resolve("p123") == other
    assert resolve("prod") == other
    assert resolve(str(other.pk)) == other
    with pytest.raises(CommandError, match="No ApiGateway"):
        resolve("nope")
