from django_aws_api_gateway_websockets.models import WebSocketSession


def push_notification(text, user=None):
    """Push a notification to every connected browser (or one user's); returns the SendResult."""
    sessions = WebSocketSession.objects.connected()
    if user is not None:
        sessions = sessions.for_user(user)
    return sessions.send_message({"type": "notification", "text": text})
