from django_aws_api_gateway_websockets.history import send_to_channel
from django_aws_api_gateway_websockets.models import WebSocketSession
from django_aws_api_gateway_websockets.sending import SendResult

NOTIFICATIONS = "notifications"


def push_notification(text, user=None):
    """Push a notification to every browser (the channel every demo page subscribes to, kept in
    its history: a page that was reconnecting gets it on resume), or to one user's connections;
    returns the SendResult."""
    message = {"type": "notification", "text": text}
    if user is not None:
        return WebSocketSession.objects.connected().for_user(user).send_message(message)
    sent = send_to_channel(NOTIFICATIONS, message)
    # The fan-out waits for the commit inside a transaction: nothing delivered yet to report.
    return sent.result if sent.result is not None else SendResult()
