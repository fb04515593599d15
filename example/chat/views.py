from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.db import transaction
from django.utils import timezone
from django.views.generic import TemplateView

from django_aws_api_gateway_websockets.history import send_to_channel
from django_aws_api_gateway_websockets.models import WebSocketSession
from django_aws_api_gateway_websockets.presence import presence
from django_aws_api_gateway_websockets.views import WebSocketView, handler

ROOMS = ["lobby", "python", "django"]


def who_is_in(room):
    """The users connected to ``room`` (the package's presence: one query on the rows, a socket
    past API Gateway's 2-hour cap no longer counts)."""
    return [user["username"] for user in presence(room)["users"]]


def presence_message(room):
    return {"type": "presence", "room": room, "users": who_is_in(room)}


def announce_presence(room, exclude=None):
    """Tell everyone in ``room`` who is there, once the current transaction has committed
    (a connect or a message runs in one: a rolled-back join announces nothing)."""

    def send():
        sessions = WebSocketSession.objects.in_channel(room)
        if exclude is not None:
            sessions = sessions.exclude(pk=exclude)
        sessions.send_message(presence_message(room))

    transaction.on_commit(send)


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
        # Numbered and kept in the room's history: a browser that was reconnecting gets it on resume.
        send_to_channel(
            self.websocket_session.channel_name,
            {
                "type": "chat",
                "user": request.user.get_username(),
                "text": text,
                "room": self.websocket_session.channel_name,
                "at": timezone.now().isoformat(),  # shown as the message's time
            },
        )

    def default(self, request, *args, **kwargs):
        return {"type": "error", "message": "unknown handler"}

    # --- presence and typing -------------------------------------------------------

    def connect(self, request, *args, **kwargs):
        # API Gateway accepts the socket only after this answer: a frame to the new connection
        # now would be refused (410), so the others hear of it, and the newcomer asks (presence).
        announce_presence(self.websocket_session.channel_name, exclude=self.websocket_session.pk)

    def disconnect(self, request, *args, **kwargs):
        announce_presence(self.websocket_session.channel_name)

    @handler
    def presence(self, request, *args, **kwargs):
        """{"handler": "presence"}: who is in my room (sent by the page once its socket is open)."""
        self.websocket_session.send_message(presence_message(self.websocket_session.channel_name))

    def change_channel(self, request, *args, **kwargs):
        left = self.websocket_session.channel_name
        answer = super().change_channel(request, *args, **kwargs)
        joined = self.websocket_session.channel_name
        if joined != left:
            announce_presence(left)
            announce_presence(joined)
        return answer

    @handler
    def typing(self, request, *args, **kwargs):
        """{"handler": "typing"}: the others in the room see "… is typing" for a few seconds."""
        room = self.websocket_session.channel_name
        WebSocketSession.objects.in_channel(room).exclude(pk=self.websocket_session.pk).send_message(
            {"type": "typing", "user": request.user.get_username(), "room": room}
        )


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
