"""``{% load websockets %}``: hand the browser client its configuration.

``{% websocket_config api_gateway channel="room-1" %}`` renders
``<script type="application/json" id="ws-config">{"url": ..., "tokenUrl": ..., "channel": ...}</script>``
for ``WebSocketClient.fromElement("ws-config")``. ``api_gateway`` may be an ``ApiGateway``, an
``ApiGatewayAdditionalRoute`` (as the context mixins provide) or omitted (the first record).
With ``DEBUG = True``, a record that exists in AWS gives way to its local companion while
``runwsgateway`` serves it, so the browser connects to the local gateway that plays it.
"""

from django import template
from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils.html import json_script

from ..conf import DEFAULTS, get_setting
from ..models import ApiGateway, ApiGatewayAdditionalRoute

register = template.Library()


@register.simple_tag
def websocket_config(api_gateway=None, channel="", element_id="ws-config", **options):
    if isinstance(api_gateway, ApiGatewayAdditionalRoute):
        api_gateway = api_gateway.api_gateway
    if api_gateway is None:
        api_gateway = ApiGateway.objects.order_by("pk").first()
    if settings.DEBUG and api_gateway is not None:
        from ..gateway.records import served_locally

        api_gateway = served_locally(api_gateway)
    if api_gateway is None or not api_gateway.websocket_url:
        raise template.TemplateSyntaxError(
            "websocket_config: no ApiGateway record with a WebSocket URL (create the API, or run runwsgateway)."
        )
    try:
        token_url = reverse(get_setting("token_url_name"))
    except NoReverseMatch:
        token_url = ""  # views with USE_WS_TOKEN = False need none
    config = {"url": api_gateway.websocket_url, "tokenUrl": token_url, "channel": channel or ""}
    max_message_bytes = get_setting("max_message_bytes")
    if max_message_bytes != DEFAULTS["max_message_bytes"]:  # the client's default is the setting's
        config["maxMessageBytes"] = max_message_bytes
    config.update(options)
    return json_script(config, element_id)
