"""A project's use of the package's public API, as its own code would write it.

``nox -s typing`` runs ``mypy --strict`` (with django-stubs and ``downstream_settings``) on this
file against the installed wheel: every call here must type-check for a project that checks its
code strictly. It is never run (nothing here touches a database); add to it when the public API grows.

A line marked ``type: ignore[no-untyped-call]`` calls a public function that is not annotated
yet; mypy's ``warn_unused_ignores`` (part of --strict) fails the check once it is, so the marker
is removed then.
"""

from typing import Any

from django.contrib.auth.models import User
from django.dispatch import receiver
from django.http import HttpRequest, JsonResponse

from django_aws_api_gateway_websockets import backends, conf, signals, tokens
from django_aws_api_gateway_websockets.backends import BaseSendBackend, Code, Endpoint, SendOptions
from django_aws_api_gateway_websockets.gateway import GatewayConfig, Route
from django_aws_api_gateway_websockets.gateway_lookup import clear_gateway_cache
from django_aws_api_gateway_websockets.history import ChannelSendResult, send_to_channel, send_to_user
from django_aws_api_gateway_websockets.models import WebSocketSession
from django_aws_api_gateway_websockets.presence import presence
from django_aws_api_gateway_websockets.sending import SendResult, encode_message, send_to_sessions
from django_aws_api_gateway_websockets.testing import InMemoryBackend, ManagementAPICapture, WebSocketTestClient
from django_aws_api_gateway_websockets.testing.client import integration_headers
from django_aws_api_gateway_websockets.views import HandlerResult, WebSocketView, handler

# --- A view: hooks and handlers ----------------------------------------------------------


class ChatView(WebSocketView):
    ALLOWED_HANDLERS = ("send_chat",)
    BROADCAST_PRESENCE = True

    def _additional_connection_checks(self, request: HttpRequest, *args: Any, **kwargs: Any) -> bool | tuple[bool, str]:
        return request.user.is_authenticated

    def connect(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        return {"type": "welcome", "connection": self.connection_id}

    def can_join_channel(self, request: HttpRequest, channel_name: str) -> bool:
        return channel_name.startswith("room-")

    def handle_exception(self, request: HttpRequest, exc: Exception) -> JsonResponse:
        return JsonResponse({"error": str(exc)}, status=500)

    @handler
    def send_chat(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        text: str = str(self.body.get("text", ""))
        channel = self.websocket_session.channel_name
        result: SendResult = send_to_sessions(WebSocketSession.objects.filter(channel_name=channel), {"text": text})
        return {"delivered": len(result.delivered), "ok": result.ok}


# --- Sending ------------------------------------------------------------------------------


def notify(user: User) -> int:
    result = send_to_sessions(WebSocketSession.objects.filter(user=user, connected=True), {"type": "notice"})
    delivered: list[str] = result.delivered
    gone: list[str] = result.gone
    failed: dict[str, str] = result.failed
    uncertain: list[str] = result.uncertain
    retried: int = result.throttled_retries
    return len(delivered) + len(gone) + len(failed) + len(uncertain) + retried + len(result)


def broadcast(user: User) -> SendResult:
    # The queryset and row forms (models.py).
    WebSocketSession.objects.for_user(user).send_message({"progress": 40})
    WebSocketSession.objects.connected().send_message({"x": 1})
    session = WebSocketSession.objects.get(pk=1)
    result: SendResult = session.send_message("plain text")
    return result


def payload() -> bytes:
    return encode_message({"a": [1, 2, 3]})


def with_history(user: User) -> int | None:
    sent: ChannelSendResult = send_to_channel("room-1", {"type": "chat"})
    send_to_channel("room-1", "text", sessions=WebSocketSession.objects.for_user(user))
    WebSocketSession.objects.in_channel("room-1").send_to_channel("room-1", {"type": "chat"})
    send_to_user(user, {"type": "dm"})
    send_to_user(user.pk, {"type": "dm"})
    here: dict[str, Any] = presence("room-1")
    print(here["connections"])
    return sent.seq


def own_token_view(user: User, session_key: str | None) -> str | None:
    # A project's own token endpoint (docs/api.md), and a test that changes ApiGateway rows.
    clear_gateway_cache()
    if not tokens.may_issue_token(user):
        return None
    return tokens.issue_token(user, session_key)


# --- Signals ------------------------------------------------------------------------------


@receiver(signals.send_completed)
def on_send_completed(sender: object, result: SendResult, **kwargs: Any) -> None:
    if not result.ok:
        print(sorted(result.failed.items()))


@receiver(signals.connection_rejected)
def on_rejected(sender: object, reason: str, **kwargs: Any) -> None:
    assert reason in signals.REJECT_REASONS


# --- Settings and backends ----------------------------------------------------------------


def settings_problems() -> list[str]:
    errors, unknown = conf.validate_settings({"send_max_retries": "3"})
    return errors + unknown


class CountingBackend(BaseSendBackend):
    """A project's own send backend (WEBSOCKETS["send_backend"])."""

    def __init__(self) -> None:
        self.calls = 0

    def post_many(self, jobs: Any, payload: bytes, options: SendOptions) -> dict[str, Code]:
        self.calls += len(jobs)
        return {connection_id: None for connection_id, _endpoint in jobs}

    def delete(self, endpoint: Endpoint, connection_id: str, options: SendOptions) -> Code:
        return None


def with_backend() -> int:
    with backends.use_backend(CountingBackend()) as backend:
        send_to_sessions([], {"x": 1})
        return backend.calls


def default_backend() -> BaseSendBackend:
    return backends.get_backend()


# --- The local gateway --------------------------------------------------------------------

config = GatewayConfig(
    api_id="local1", target_base_endpoint="http://127.0.0.1:8000/ws/", routes={"chat": Route("http://x/ws/chat")}
)
url, two_way = config.integration_for("$default")


# --- Test helpers -------------------------------------------------------------------------


def a_test(alice: User) -> None:
    with ManagementAPICapture() as capture, WebSocketTestClient("/ws/", user=alice) as ws:
        response = ws.connect(channel="room-1")
        assert response.status_code == 200
        ws.send({"handler": "send_chat", "text": "hi"})
        assert ws.messages[-1]["text"] == "hi"
        assert ws.connection_id is not None
        assert capture.sent_to(ws.connection_id) == ws.messages
        capture.mark_gone(ws.connection_id)
        capture.fail("other", "LimitExceededException")
        ws.disconnect()
    recorder = InMemoryBackend(capture)
    print(recorder.capture, integration_headers(ws._gateway(), "abc=", source_ip="10.0.0.1"))
