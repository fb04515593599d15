"""Views of the test project: what a user of the package writes."""

from django_aws_api_gateway_websockets.models import WebSocketSession
from django_aws_api_gateway_websockets.views import WebSocketView


class ChatView(WebSocketView):
    """Token-protected chat: messages are echoed to the sender's channel."""

    def default(self, request, *args, **kwargs):
        return {"type": "default", "user": request.user.get_username()}

    def send_chat(self, request, *args, **kwargs):
        WebSocketSession.objects.in_channel(self.websocket_session.channel_name).send_message(
            {"type": "chat", "text": self.body.get("text", ""), "user": request.user.get_username()}
        )
        return {"type": "sent"}

    def whoami(self, request, *args, **kwargs):
        return {"type": "whoami", "user": request.user.get_username()}

    def explode(self, request, *args, **kwargs):
        raise RuntimeError("handler bug")

    def _private(self, request, *args, **kwargs):  # never callable from a message
        return {"type": "private"}


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
