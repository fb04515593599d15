"""Views of the test project: what a user of the package writes."""

from django.http import JsonResponse

from django_aws_api_gateway_websockets.models import WebSocketSession
from django_aws_api_gateway_websockets.views import WebSocketView, handler


class ChatView(WebSocketView):
    """Token-protected chat: messages are echoed to the sender's channel."""

    def default(self, request, *args, **kwargs):
        return {"type": "default", "user": request.user.get_username()}

    @handler
    def send_chat(self, request, *args, **kwargs):
        WebSocketSession.objects.in_channel(self.websocket_session.channel_name).send_message(
            {"type": "chat", "text": self.body.get("text", ""), "user": request.user.get_username()}
        )
        return {"type": "sent"}

    @handler
    def whoami(self, request, *args, **kwargs):
        return {"type": "whoami", "user": request.user.get_username()}

    @handler
    def explode(self, request, *args, **kwargs):
        raise RuntimeError("handler bug")

    def _private(self, request, *args, **kwargs):  # never callable from a message
        return {"type": "private"}


class LegacyChatView(WebSocketView):
    """Written for 4.x: no @handler, no ALLOWED_HANDLERS (routed by tests/urls_legacy.py)."""

    def default(self, request, *args, **kwargs):
        return {"type": "default"}

    def whoami(self, request, *args, **kwargs):
        return {"type": "whoami", "user": request.user.get_username()}

    def format_text(self, text):  # a helper, not a handler: its first parameter is not request
        return text.upper()


class OpenView(WebSocketView):
    """No token: anonymous connections allowed (a public ticker, say)."""

    USE_WS_TOKEN = False
    ALLOWED_HANDLERS = ["echo"]

    def echo(self, request, *args, **kwargs):
        return {"type": "echo", "body": self.body}

    def not_listed(self, request, *args, **kwargs):
        return {"type": "not_listed"}


class StaffView(WebSocketView):
    permissions_required = ["auth.view_user", "auth.change_user"]
    all_permissions_required = ["auth.view_group"]

    def default(self, request, *args, **kwargs):
        return {"type": "staff"}


class ExplicitView(WebSocketView):
    """Handlers marked with @handler: nothing else is reachable from a message."""

    USE_WS_TOKEN = False

    @handler
    def shout(self, request, *args, **kwargs):
        return {"type": "shout", "text": self.format_text(str(self.body.get("text", "")))}

    def format_text(self, text):
        return text.upper()

    def helper(self, request, *args, **kwargs):  # public and request-shaped, but not marked
        return {"type": "helper"}

    def connect(self, request, *args, **kwargs):
        # A connect hook may refuse: {"refuse": ...} is not how clients talk, so use the channel.
        if self.websocket_session.channel_name == "refused":
            return JsonResponse({"error": "Refused by the connect hook."}, status=403)
        return None


class HistoryView(WebSocketView):
    """No token, presence announced, and a handler that broadcasts through the channel history."""

    USE_WS_TOKEN = False
    BROADCAST_PRESENCE = True

    @handler
    def broadcast(self, request, *args, **kwargs):
        from django_aws_api_gateway_websockets.history import send_to_channel

        sent = send_to_channel(self.websocket_session.channel_name, {"type": "note", "n": self.body.get("n")})
        return {"type": "broadcast", "seq": sent.seq}


class LargeView(WebSocketView):
    """Messages of any size (docs/large-messages.md): no token; ``upload`` answers with a
    message of ``reply_bytes`` encoded bytes, posted to the sender (split when large)."""

    USE_WS_TOKEN = False

    @handler
    def upload(self, request, *args, **kwargs):
        import json

        blob = self.body.get("blob", "")
        reply = {"type": "echo", "received": len(request.body), "blob": ""}
        size = int(self.body.get("reply_bytes") or 0)
        reply["blob"] = "y" * max(0, size - len(json.dumps(reply, separators=(",", ":"))))
        WebSocketSession.objects.filter(pk=self.websocket_session.pk).send_message(reply)
        return {"type": "uploaded", "bytes": len(blob)}
