"""``WebSocketTestClient``: API Gateway's side of the conversation, inside a Django test."""

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlencode, urlsplit

from django.test import Client

from .. import protocol, tokens
from ..models import ApiGateway
from ..protocol import new_connection_id  # also imported from here by tests and projects
from .capture import ManagementAPICapture

if TYPE_CHECKING:
    # django-stubs' alias of settings.AUTH_USER_MODEL (the project's own user model).
    from django.contrib.auth.models import _User
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse  # what Client.post returns


def integration_headers(
    gateway: ApiGateway, connection_id: str, *, route: str = protocol.DEFAULT, source_ip: str = "127.0.0.1"
) -> dict[str, str]:
    """The headers API Gateway sends on an integration request (docs/testing.md)."""
    context = {"connectionId": connection_id, "identity.sourceIp": source_ip}
    return protocol.integration_headers(
        gateway.api_id, gateway.integration_secret, context, connect=route == protocol.CONNECT
    )


def find_or_create_gateway() -> ApiGateway:
    """The only ``ApiGateway`` record, or a new one for tests."""
    gateways = list(ApiGateway.objects.all()[:2])
    if len(gateways) == 1:
        return gateways[0]
    suffix = uuid.uuid4().hex[:8]
    return ApiGateway.objects.create(
        api_name=f"test-{suffix}",
        api_id=f"test{suffix}",
        region="us-east-1",
        management_endpoint_url=f"http://test{suffix}.execute-api.localhost/test",
    )


class WebSocketTestClient:
    """One WebSocket connection to a ``WebSocketView`` mounted at ``path`` (``"/ws/"``).

    ::

        with WebSocketTestClient("/ws/", user=alice) as ws:
            ws.connect(channel="room-1")
            ws.send({"handler": "send_chat", "text": "hi"})
            assert ws.messages[-1]["text"] == "hi"

    ``user`` is logged in and, when the view uses tokens, a fresh token is put on the
    connect URL. ``messages`` lists what the code under test posted to this connection.
    """

    def __init__(
        self,
        path: str = "/ws/",
        *,
        user: "_User | None" = None,
        gateway: ApiGateway | None = None,
        client: Client | None = None,
        source_ip: str = "127.0.0.1",
        origin: str | None = None,
    ) -> None:
        self.path = path if path.endswith("/") else path + "/"
        self.user = user
        self.gateway = gateway
        self.client = client or Client()
        self.source_ip = source_ip
        self.origin = origin
        self.connection_id: str | None = None
        self.connected = False
        self.capture: ManagementAPICapture | None = None
        self._own_capture: ManagementAPICapture | None = None
        if user is not None:
            self.client.force_login(user)

    # Context manager: installs a ManagementAPICapture unless one is active already.
    def __enter__(self) -> Self:
        self.capture = ManagementAPICapture.active
        if self.capture is None:
            self._own_capture = self.capture = ManagementAPICapture().__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self.connected:
            self.disconnect()
        if self._own_capture is not None:
            self._own_capture.__exit__(*exc_info)
            self._own_capture = None

    def _gateway(self) -> ApiGateway:
        if self.gateway is None:
            self.gateway = find_or_create_gateway()
        return self.gateway

    def connect(
        self,
        *,
        channel: str | None = None,
        query: Mapping[str, str] | None = None,
        token: bool = True,
        connection_id: str | None = None,
    ) -> "TestResponse":
        """POST ``connect`` as API Gateway does on a handshake; returns the response."""
        gateway = self._gateway()
        params = dict(query or {})
        if channel is not None:
            params[protocol.QUERY_CHANNEL] = channel
        if token and self.user is not None and protocol.QUERY_TOKEN not in params:
            params[protocol.QUERY_TOKEN] = tokens.issue_token(self.user, self.client.session.session_key)
        self.connection_id = connection_id = connection_id or new_connection_id()
        headers = integration_headers(gateway, connection_id, route=protocol.CONNECT, source_ip=self.source_ip)
        if self.origin:
            headers["Origin"] = self.origin
        url = protocol.integration_url(self.path, "$connect")
        if params:
            url += "?" + urlencode(params)
        response = self.client.post(url, headers=headers)
        self.connected = 200 <= response.status_code < 300
        return response

    def send(self, data: object) -> "TestResponse":
        """Send a frame: routed like API Gateway (custom route key, else ``$default``). A message
        over one 32 KB frame goes as parts, as the browser client sends it (docs/large-messages.md):
        the answer is the last part's (the handler's, once the message is whole)."""
        from .parts import client_frames

        self._require_connection()
        text = data if isinstance(data, str) else json.dumps(data)
        response = None
        for frame in client_frames(text):
            response = self.client.post(
                self._message_url(frame), frame, content_type="application/json", headers=self._headers()
            )
        assert response is not None  # client_frames gives at least one frame
        return response

    def subscribe(self, channel: str, after: int | None = None) -> "TestResponse":
        """``{"handler": "subscribe", "channel", "after"}`` (docs/channels.md); the answer is the
        response's JSON (``subscribed``, or ``subscribe_error`` with a 4xx)."""
        message: dict[str, Any] = {"handler": "subscribe", "channel": channel}
        if after is not None:
            message["after"] = after
        return self.send(message)

    def unsubscribe(self, channel: str) -> "TestResponse":
        return self.send({"handler": "unsubscribe", "channel": channel})

    def whisper(self, channel: str, event: str, data: object = None) -> "TestResponse":
        """A client event to ``channel``'s other subscribers (where the channel allows them)."""
        return self.send({"handler": "whisper", "channel": channel, "event": event, "data": data})

    def disconnect(self) -> "TestResponse":
        """The client went away: POST ``disconnect``, and later sends to it are gone (410)."""
        connection_id = self._require_connection()
        response = self.client.post(
            protocol.integration_url(self.path, "$disconnect"), headers=self._headers(protocol.DISCONNECT)
        )
        self.connected = False
        if self.capture is not None:
            self.capture.mark_gone(connection_id)
        return response

    @property
    def messages(self) -> list[Any]:
        """What the code under test posted to this connection, JSON-decoded."""
        if self.capture is None:
            raise RuntimeError("Use WebSocketTestClient as a context manager (or the ws_client fixture).")
        return self.capture.sent_to(self.connection_id) if self.connection_id is not None else []

    def _headers(self, route: str = protocol.DEFAULT) -> dict[str, str]:
        return integration_headers(self._gateway(), self._require_connection(), route=route, source_ip=self.source_ip)

    def _message_url(self, text: str) -> str:
        gateway = self._gateway()
        routes = {r.route_key: r.integration_url for r in gateway.additional_routes.all()}
        key = protocol.select_route(
            text, protocol.selection_key_from_expression(gateway.route_selection_expression), routes
        )
        if key in routes:
            return urlsplit(routes[key]).path
        return protocol.integration_url(self.path, "$default")

    def _require_connection(self) -> str:
        if self.connection_id is None:
            raise RuntimeError("Call connect() first.")
        return self.connection_id
