import json

import pytest
from django.template import Context, Template, TemplateSyntaxError

from django_aws_api_gateway_websockets.models import ApiGateway, ApiGatewayAdditionalRoute

pytestmark = pytest.mark.django_db


def render(source, **context):
    return Template("{% load websockets %}" + source).render(Context(context))


def config_of(html):
    return json.loads(html.split(">", 1)[1].rsplit("</script>", 1)[0])


def test_config_for_a_deployed_api_with_custom_domain():
    gateway = ApiGateway.objects.create(
        api_name="g",
        api_id="abc",
        api_endpoint="wss://abc.execute-api.eu-west-1.amazonaws.com",
        stage_name="production",
        domain_name="ws.example.com",
    )
    html = render('{% websocket_config gateway channel="room-1" %}', gateway=gateway)
    assert html.startswith('<script id="ws-config" type="application/json">')
    assert config_of(html) == {
        "url": "wss://abc.execute-api.eu-west-1.amazonaws.com/production",  # domain not created yet
        "tokenUrl": "/api/ws-token/",
        "channel": "room-1",
    }
    gateway.custom_domain_created = True
    gateway.save()
    assert config_of(render("{% websocket_config gateway %}", gateway=gateway))["url"] == "wss://ws.example.com"


def test_config_for_the_local_gateway_from_a_route_and_options():
    gateway = ApiGateway.objects.create(api_name="l", management_endpoint_url="http://127.0.0.1:8001/local")
    route = ApiGatewayAdditionalRoute.objects.create(
        api_gateway=gateway, name="c", route_key="chat", integration_url="http://x/ws/chat"
    )
    html = render('{% websocket_config route element_id="chat-ws" heartbeatMs=1000 %}', route=route)
    assert 'id="chat-ws"' in html
    assert config_of(html) == {
        "url": "ws://127.0.0.1:8001/local",
        "tokenUrl": "/api/ws-token/",
        "channel": "",
        "heartbeatMs": 1000,
    }


def test_config_escapes_for_html():
    ApiGateway.objects.create(api_name="l", management_endpoint_url="http://127.0.0.1:8001/local")
    html = render("{% websocket_config channel=name %}", name="</script><script>alert(1)")
    assert "</script><script>" not in html


def test_config_without_any_record_is_a_clear_error():
    with pytest.raises(TemplateSyntaxError, match="no ApiGateway record"):
        render("{% websocket_config %}")


def test_config_carries_a_changed_max_message_bytes_so_the_client_splits_to_the_servers_limit(settings):
    gateway = ApiGateway.objects.create(api_name="m", management_endpoint_url="http://127.0.0.1:8001/local")
    assert "maxMessageBytes" not in config_of(render("{% websocket_config gateway %}", gateway=gateway))
    settings.WEBSOCKETS = {"max_message_bytes": 256 * 1024}
    assert config_of(render("{% websocket_config gateway %}", gateway=gateway))["maxMessageBytes"] == 256 * 1024
    # an option given in the template wins
    html = render("{% websocket_config gateway maxMessageBytes=65536 %}", gateway=gateway)
    assert config_of(html)["maxMessageBytes"] == 65536
