from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.views.generic import TemplateView

from django_aws_api_gateway_websockets.models import WebSocketSession
from django_aws_api_gateway_websockets.views import WebSocketView, handler

ROOMS = ["lobby", "python", "django"]


class ChatWebSocketView(WebSocketView):
    """Token-protected chat rooms; a room is a channel. Rate limiting is on by default."""

    RATE_LIMIT_MAX_ATTEMPTS = 60  # the demo reconnects a lot while you play with it
    # Who may join the "staff" channel is a rule in the admin (Channel permissions), made by
    # setupDemo: checked on connect and on change_channel, no code here.

    @handler
    def send_chat(self, request, *args, **kwargs):
        text = str(self.body.get("text", ""))[:500]
        if not text:
            return {"type": "error", "message": "empty message"}
        WebSocketSession.objects.in_channel(self.websocket_session.channel_name).send_message(
            {"type": "chat", "user": request.user.get_username(), "text": text, "room": self.websocket_session.channel_name}
        )

    def default(self, request, *args, **kwargs):
        return {"type": "error", "message": "unknown handler"}


class StaffWebSocketView(ChatWebSocketView):
    """Messages sent with {"action": "staff"} reach this view (an additional route);
    API Gateway's route and Django's permission check keep non-staff users out."""

    permissions_required = ["chat.use_staff_channel"]

    @handler
    def send_chat(self, request, *args, **kwargs):
        self.websocket_session.channel_name = "staff"
        return super().send_chat(request, *args, **kwargs)


class RoomView(LoginRequiredMixin, TemplateView):
    template_name = "chat/room.html"
    extra_context = {"rooms": ROOMS, "route": ""}


class StaffRoomView(PermissionRequiredMixin, TemplateView):
    permission_required = "chat.use_staff_channel"
    template_name = "chat/room.html"
    extra_context = {"rooms": ["staff"], "route": "staff"}
