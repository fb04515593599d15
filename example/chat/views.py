from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.utils import timezone
from django.views.generic import TemplateView

from django_aws_api_gateway_websockets.history import send_to_channel
from django_aws_api_gateway_websockets.models import Subscription
from django_aws_api_gateway_websockets.views import WebSocketView, handler

ROOMS = ["lobby", "python", "django"]
NOTIFICATIONS = "notifications"  # every page subscribes to it, next to its room (chat.notify)


class ChatWebSocketView(WebSocketView):
    """Token-protected chat rooms on one socket per page: the page subscribes to its room and to
    the notifications channel (docs/channels.md). Rate limiting is on by default.

    Presence (who is in a room) and typing indicators (client events, "whisper") are the
    package's built-ins: BROADCAST_PRESENCE announces joins and leaves per channel, and the
    WEBSOCKETS setting "client_events_channels" lets the rooms' subscribers whisper."""

    RATE_LIMIT_MAX_ATTEMPTS = 60  # the demo reconnects a lot while you play with it
    BROADCAST_PRESENCE = True
    # Who may join the "staff" channel is a rule in the admin (Channel permissions), made by
    # setupDemo: checked on connect, subscribe and change_channel, no code here.

    def presence_info(self, user):
        """What the others see of a member: the package's id and username, and a staff badge."""
        return {"id": user.pk, "username": user.get_username(), "staff": user.is_staff}

    def room_of(self):
        """The room a message is for: {"room": ...}, which this connection must hold."""
        room = self.body.get("room")
        held = Subscription.objects.filter(connection=self.websocket_session, channel=room)
        return room if isinstance(room, str) and held.exists() else None

    @handler
    def send_chat(self, request, *args, **kwargs):
        text = str(self.body.get("text", ""))[:500]
        if not text:
            return {"type": "error", "message": "empty message"}
        room = self.room_of()
        if room is None or room == NOTIFICATIONS:
            return {"type": "error", "message": "not in that room"}
        # Numbered and kept in the room's history: a browser that was reconnecting gets it on resume.
        send_to_channel(
            room,
            {
                "type": "chat",
                "user": request.user.get_username(),
                "text": text,
                "room": room,
                "at": timezone.now().isoformat(),  # shown as the message's time
            },
        )

    def default(self, request, *args, **kwargs):
        return {"type": "error", "message": "unknown handler"}


class StaffWebSocketView(ChatWebSocketView):
    """Messages sent with {"action": "staff"} reach this view (an additional route);
    API Gateway's route and Django's permission check keep non-staff users out."""

    permissions_required = ["chat.use_staff_channel"]

    def room_of(self):
        return "staff" if super().room_of() == "staff" else None


class RoomView(LoginRequiredMixin, TemplateView):
    template_name = "chat/room.html"
    extra_context = {"rooms": ROOMS, "route": ""}


class StaffRoomView(PermissionRequiredMixin, TemplateView):
    permission_required = "chat.use_staff_channel"
    template_name = "chat/room.html"
    extra_context = {"rooms": ["staff"], "route": "staff"}
