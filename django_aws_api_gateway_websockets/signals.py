"""Signals sent by the package. Connect receivers for metrics, audit or alerting.

Every signal's ``sender`` is the view class (or the sending/cleanup function) that sent it.
"""

from django.dispatch import Signal

#: A $connect was refused. kwargs: request, reason (one of REJECT_REASONS), connection_id,
#: source_ip, user (may be None or anonymous).
connection_rejected = Signal()
#: A $connect succeeded. kwargs: request, session.
connected = Signal()
#: A $disconnect was recorded. kwargs: request, session.
disconnected = Signal()
#: A message reached a handler. kwargs: request, session, route, handler (the method name).
message_received = Signal()
#: A @connections call failed for reasons other than "gone". kwargs: connection_id, error.
send_failed = Signal()
#: A send finished. kwargs: result (the SendResult: delivered, gone, failed).
send_completed = Signal()
#: Connections found gone (410) while sending; already marked disconnected.
#: kwargs: connection_ids (list).
connection_gone = Signal()
#: A cleanup command ran. kwargs: command, removed (dict of what was removed -> count).
cleanup_run = Signal()

# Reasons carried by connection_rejected (and stored on ConnectionRateLimit.reason).
REASON_SECRET = "secret"
REASON_RATE_LIMIT = "rate_limit"
REASON_ORIGIN = "origin"
REASON_TOKEN = "token"
REASON_PERMISSION = "permission"
REASON_CHANNEL = "channel"
REASON_CHECK = "check"  # _additional_connection_checks said no
REASON_DUPLICATE = "duplicate"  # the connection id already has a row
REASON_ERROR = "error"  # a receiver or the connect hook failed (logged as an exception)
REJECT_REASONS = (
    REASON_SECRET,
    REASON_RATE_LIMIT,
    REASON_ORIGIN,
    REASON_TOKEN,
    REASON_PERMISSION,
    REASON_CHANNEL,
    REASON_CHECK,
    REASON_DUPLICATE,
    REASON_ERROR,
)
