"""Why was my WebSocket refused? The answer a browser cannot read by itself.

A browser never sees the HTTP status of a failed WebSocket handshake: a 403 from ``$connect``
looks exactly like a gateway that is down (``error``, then ``close`` 1006). So the server keeps
the answer: when a ``$connect`` that carried a ``ws_token`` is refused, a receiver of
``connection_rejected`` stores ``{status, reason}`` in the default cache for five minutes, keyed
by the token's SHA-256 (the token is never spent by a refused connect). The browser client then
POSTs the same token to ``WebSocketRefusalView`` (option ``refusalUrl``) and learns whether the
server refused it, with which status and why; "not refused" means the handshake failed elsewhere
(the gateway is down or unreachable) and the client simply keeps reconnecting.

Wiring (optional; the receiver is connected when this module is imported, i.e. when the URLconf
names the view)::

    path("api/ws-token/refusal/", WebSocketRefusalView.as_view(), name="websocket_refusal"),

Limits: the default cache must be shared by the processes that answer ``$connect`` and the
refusal URL (runserver: one process, fine; several gunicorn workers with ``LocMemCache``: the
client may hear "not refused" and keeps retrying as before). Refusals of requests that did not
come from the gateway (a wrong ``X-Gateway-Secret``) are not recorded.
"""

import json

from django.core.cache import cache
from django.dispatch import receiver
from django.http import JsonResponse
from django.views import View

from . import protocol, signals, tokens

CACHE_PREFIX = "aws_websockets:refusal:"
CACHE_SECONDS = 300

# reason -> (status, message): what $connect answered (views.py) for each reason.
STATUSES = {
    signals.REASON_RATE_LIMIT: (429, "Too many connection attempts."),
    signals.REASON_ORIGIN: (403, "Origin not allowed."),
    signals.REASON_TOKEN: (401, "Invalid or expired token."),
    signals.REASON_PERMISSION: (403, "Permission denied."),
    signals.REASON_CHANNEL: (403, "Channel not allowed."),
    signals.REASON_CHECK: (403, "Connection refused."),
    signals.REASON_DUPLICATE: (409, "Connection id already registered."),
    signals.REASON_ERROR: (500, "The server failed while accepting the connection."),
}


def _key(raw_token):
    return CACHE_PREFIX + tokens.hash_token(raw_token)


@receiver(signals.connection_rejected, dispatch_uid="aws_websockets_record_refusal")
def record_refusal(sender, request, reason, **kwargs):
    if reason not in STATUSES:  # REASON_SECRET: not the gateway talking, nothing to tell a browser
        return
    raw_token = request.GET.get(protocol.QUERY_TOKEN, "")
    if not raw_token or len(raw_token) > 256:
        return
    status, message = STATUSES[reason]
    if reason == signals.REASON_ORIGIN:
        origin = request.headers.get("Origin", "")[:200]
        message = f'Origin not allowed: add "{origin}" to CSRF_TRUSTED_ORIGINS.'
    try:
        cache.set(_key(raw_token), {"status": status, "reason": message, "code": reason}, CACHE_SECONDS)
    except Exception:  # a cache outage must never turn a refusal into a 500
        pass


class WebSocketRefusalView(View):
    """POST ``{"token": "<the ws_token of the failed connect>"}`` (CSRF-protected, logged in):
    ``{"refused": true, "status": 403, "reason": "...", "code": "origin"}`` or ``{"refused": false}``."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"error": "Authentication required."}, status=403)
        try:
            raw_token = json.loads(request.body or b"{}").get("token", "")
        except (ValueError, AttributeError):
            return JsonResponse({"error": 'Send {"token": "..."}.'}, status=400)
        if not isinstance(raw_token, str) or not 0 < len(raw_token) <= 256:
            return JsonResponse({"error": 'Send {"token": "..."}.'}, status=400)
        entry = cache.get(_key(raw_token))
        if not entry:
            return JsonResponse({"refused": False})
        return JsonResponse({"refused": True, **entry})
