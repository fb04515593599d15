"""The views API Gateway calls (SPEC §2, §3, §6).

``WebSocketView`` answers the integration requests of one WebSocket API: route ``connect``,
``disconnect``, and every message route (``default`` and custom route keys). Subclass it and
add handler methods ``def name(self, request, *args, **kwargs)``; the JSON body's ``handler``
key (then ``action``) picks the method.

``WebSocketTokenView`` gives a logged-in browser a single-use token for its next connect.
"""

import json
import logging

from django.contrib.auth.models import AnonymousUser
from django.core.mail import mail_admins
from django.db import IntegrityError
from django.db.models import F
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import protocol, ratelimit, security, signals, tokens
from .conf import get_setting
from .gateways import get_gateway
from .models import WebSocketSession

logger = logging.getLogger(__name__)


class Rejection(Exception):
    """Ends a request with a 4xx answer, a log line and (on connect) a signal."""

    def __init__(self, status, message, reason=""):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


@method_decorator(csrf_exempt, name="dispatch")
class WebSocketView(View):
    """Base view for the routes of an API Gateway WebSocket API."""

    http_method_names = ["post"]

    # Connect checks.
    USE_WS_TOKEN = True
    RATE_LIMIT_ENABLED = True
    RATE_LIMIT_MAX_ATTEMPTS = None  # None: WEBSOCKETS["rate_limit_max_attempts"] (20)
    RATE_LIMIT_WINDOW_MINUTES = None  # None: WEBSOCKETS["rate_limit_window_minutes"] (1)
    CHECK_ORIGIN = True
    # Permissions, checked on connect and on every message.
    permissions_required = ()  # the user needs at least one
    all_permissions_required = ()  # the user needs every one
    # Handlers: None means the public methods defined on your subclasses (and mixins),
    # plus the built-ins change_channel and ping, plus ADDITIONAL_ALLOWED_HANDLERS.
    ALLOWED_HANDLERS = None
    ADDITIONAL_ALLOWED_HANDLERS = ()
    handler_selection_key = "handler"
    route_selection_key = "action"
    # Only accept requests from this API id (an ApiGateway record must still exist).
    aws_api_gateway_id = None
    SEND_EXCEPTION_MAIL = True
    MAX_BODY_SIZE = protocol.MAX_PAYLOAD_BYTES

    BUILTIN_HANDLERS = frozenset({"change_channel", "ping"})

    # Set per request.
    api_gateway = None
    websocket_session = None
    body = None
    connection_id = None

    # --- dispatch -------------------------------------------------------------------

    def dispatch(self, request, *args, **kwargs):
        route = kwargs.get("route") or protocol.DEFAULT
        self.route = route
        self.body = {}
        self.connection_id = request.headers.get(protocol.HEADER_CONNECTION_ID, "")
        if request.method.lower() not in self.http_method_names:
            return self.http_method_not_allowed(request, *args, **kwargs)
        try:
            if not protocol.is_valid_connection_id(self.connection_id):
                raise Rejection(400, "Missing or invalid connectionId header.")
            if route == protocol.CONNECT:
                return self._connect(request, *args, **kwargs)
            if route == protocol.DISCONNECT:
                return self._disconnect(request, *args, **kwargs)
            return self._message(request, *args, **kwargs)
        except Rejection as rejection:
            return self._reject(request, rejection)

    def _reject(self, request, rejection):
        user = getattr(request, "user", None)
        logger.warning(
            "WebSocket %s rejected (%s): %s",
            self.route,
            rejection.status,
            rejection.message,
            extra={
                "connection_id": self.connection_id,
                "route": self.route,
                "reason": rejection.reason,
                "user_id": getattr(user, "pk", None),
            },
        )
        if self.route == protocol.CONNECT and rejection.reason:
            signals.connection_rejected.send(
                sender=type(self),
                request=request,
                reason=rejection.reason,
                connection_id=self.connection_id,
                source_ip=security.source_ip(request),
                user=user,
            )
        return JsonResponse({"error": rejection.message}, status=rejection.status)

    def _authenticate_gateway(self, request, gateway):
        """The request must come from a registered API and carry its secret (SPEC §6)."""
        api_id = request.headers.get(protocol.HEADER_API_ID, "")
        if gateway is None or not api_id or gateway.api_id != api_id:
            raise Rejection(403, "Unknown API.", signals.REASON_SECRET)
        if self.aws_api_gateway_id and api_id != self.aws_api_gateway_id:
            raise Rejection(403, "Unknown API.", signals.REASON_SECRET)
        if not security.secret_matches(gateway, request.headers.get(protocol.HEADER_SECRET)):
            raise Rejection(403, "Invalid gateway secret.", signals.REASON_SECRET)
        self.api_gateway = gateway

    def _load_session(self, request):
        """The connection's row with its gateway and user: one query for the whole request."""
        session = (
            WebSocketSession.objects.select_related("api_gateway", "user")
            .filter(connection_id=self.connection_id)
            .first()
        )
        if session is None:
            # Answer a forged request with 403 and a genuine one with 404.
            self._authenticate_gateway(request, get_gateway(request.headers.get(protocol.HEADER_API_ID)))
            raise Rejection(404, "Unknown connection.")
        self._authenticate_gateway(request, session.api_gateway)
        self.websocket_session = session
        request.user = session.user or AnonymousUser()
        return session

    # --- $connect -------------------------------------------------------------------

    def _connect(self, request, *args, **kwargs):
        self._authenticate_gateway(request, get_gateway(request.headers.get(protocol.HEADER_API_ID)))
        ip = security.source_ip(request)
        cookie_user = getattr(request, "user", None) or AnonymousUser()
        if self.RATE_LIMIT_ENABLED:
            allowed, _count = ratelimit.check_connect_rate(
                ip, cookie_user, self.RATE_LIMIT_MAX_ATTEMPTS, self.RATE_LIMIT_WINDOW_MINUTES
            )
            if not allowed:
                self._record_attempt(ip, cookie_user, signals.REASON_RATE_LIMIT)
                raise Rejection(429, "Too many connection attempts.", signals.REASON_RATE_LIMIT)
        try:
            session = self._accept_connection(request, ip, cookie_user)
        except Rejection as rejection:
            self._record_attempt(ip, request.user, rejection.reason)
            raise
        self._record_attempt(ip, request.user, "", successful=True)
        signals.connected.send(sender=type(self), request=request, session=session)
        logger.info(
            "WebSocket connected",
            extra={
                "connection_id": session.connection_id,
                "route": self.route,
                "reason": "",
                "user_id": session.user_id,
                "channel": session.channel_name,
            },
        )
        return self.connect(request, *args, **kwargs) or JsonResponse({})

    def _accept_connection(self, request, ip, cookie_user):
        """The connect checks after the rate limit, in their documented order."""
        origin = request.headers.get("Origin")
        if self.CHECK_ORIGIN and origin is not None and not security.origin_allowed(origin):
            raise Rejection(403, "Origin not allowed.", signals.REASON_ORIGIN)
        token = None
        if self.USE_WS_TOKEN:
            session_key = getattr(getattr(request, "session", None), "session_key", None)
            token = tokens.find_valid_token(request.GET.get(protocol.QUERY_TOKEN), session_key)
            if token is None or (cookie_user.is_authenticated and token.user_id != cookie_user.pk):
                raise Rejection(401, "Invalid or expired token.", signals.REASON_TOKEN)
            request.user = token.user
        else:
            request.user = cookie_user
        channel = self._connect_channel(request)
        if not self.has_required_permissions(request):
            raise Rejection(403, "Permission denied.", signals.REASON_PERMISSION)
        allowed, message = self._normalise_check(self._additional_connection_checks(request))
        if not allowed:
            raise Rejection(403, message or "Connection refused.", signals.REASON_CHECK)
        user = request.user if request.user.is_authenticated else None
        try:
            session = WebSocketSession.objects.create(
                connection_id=self.connection_id,
                channel_name=channel,
                user=user,
                api_gateway=self.api_gateway,
            )
        except IntegrityError:
            raise Rejection(409, "Connection id already registered.", signals.REASON_DUPLICATE)
        # Consumed last, so a refused connect never burns the token; of two concurrent
        # uses of one token only one UPDATE matches.
        if token is not None and not tokens.mark_used(token):
            session.delete()
            raise Rejection(401, "Invalid or expired token.", signals.REASON_TOKEN)
        self.websocket_session = session
        return session

    def _connect_channel(self, request):
        channel = request.GET.get(protocol.QUERY_CHANNEL, "")
        if not channel:
            return self.api_gateway.default_channel_name
        if not protocol.is_valid_channel_name(channel):
            raise Rejection(400, "Invalid channel name.", signals.REASON_CHANNEL)
        return channel

    @staticmethod
    def _normalise_check(result):
        if isinstance(result, tuple):
            return bool(result[0]), (result[1] if len(result) > 1 else "")
        return bool(result), ""

    def _record_attempt(self, ip, user, reason, successful=False):
        if self.RATE_LIMIT_ENABLED:
            ratelimit.record_connect_attempt(ip, user, successful=successful, reason=reason)

    def _additional_connection_checks(self, request, *args, **kwargs):
        """Hook: return ``True``/``False`` or ``(allowed, message)``; runs last on connect."""
        return True, ""

    def connect(self, request, *args, **kwargs):
        """Hook called after a connection was accepted and stored (``self.websocket_session``).

        Return ``None`` (200 ``{}``) or a response; a non-2xx response does not undo the
        connection, so reject in ``_additional_connection_checks`` instead.
        """
        return None

    # --- $disconnect ----------------------------------------------------------------

    def _disconnect(self, request, *args, **kwargs):
        session = self._load_session(request)
        WebSocketSession.objects.filter(pk=session.pk).update(
            connected=False, updated_on=timezone.now()
        )
        session.connected = False
        signals.disconnected.send(sender=type(self), request=request, session=session)
        logger.info(
            "WebSocket disconnected",
            extra={"connection_id": session.connection_id, "route": self.route, "reason": "", "user_id": session.user_id},
        )
        return self._run_handler(self.disconnect, request, *args, **kwargs)

    def disconnect(self, request, *args, **kwargs):
        """Hook called after the session was marked disconnected."""
        return None

    # --- messages -------------------------------------------------------------------

    def _message(self, request, *args, **kwargs):
        if int(request.META.get("CONTENT_LENGTH") or 0) > self.MAX_BODY_SIZE:
            raise Rejection(413, "Message too large.")
        session = self._load_session(request)
        self.body = self._parse_body(request)
        handler_name = self.get_handler_name()
        if not self.has_required_permissions(request):
            raise Rejection(403, "Permission denied.", signals.REASON_PERMISSION)
        WebSocketSession.objects.filter(pk=session.pk).update(
            request_count=F("request_count") + 1, updated_on=timezone.now()
        )
        signals.message_received.send(
            sender=type(self), request=request, session=session, route=self.route, handler=handler_name
        )
        logger.debug(
            "WebSocket message for %s",
            handler_name,
            extra={"connection_id": session.connection_id, "route": self.route, "reason": "", "user_id": session.user_id},
        )
        return self._run_handler(getattr(self, handler_name), request, *args, **kwargs)

    def _parse_body(self, request):
        if len(request.body) > self.MAX_BODY_SIZE:
            raise Rejection(413, "Message too large.")
        if not request.body:
            return {}
        try:
            body = json.loads(request.body)
        except (UnicodeDecodeError, ValueError):
            raise Rejection(400, "Message body is not valid JSON.")
        if not isinstance(body, dict):
            raise Rejection(400, "Message body must be a JSON object.")
        return body

    @classmethod
    def get_allowed_handlers(cls):
        """The handler names a message may select (computed once per class)."""
        cached = cls.__dict__.get("_allowed_handlers_cache")
        if cached is not None:
            return cached
        plumbing = set(dir(WebSocketView)) - cls.BUILTIN_HANDLERS - {"default"}
        plumbing.update(View.http_method_names)
        if cls.ALLOWED_HANDLERS:
            names = set(cls.ALLOWED_HANDLERS)
        else:
            names = {"default"} | cls.BUILTIN_HANDLERS
            for klass in cls.__mro__:
                if klass in WebSocketView.__mro__:
                    continue
                names.update(
                    name for name, value in vars(klass).items() if callable(value) and not isinstance(value, type)
                )
        names.update(cls.ADDITIONAL_ALLOWED_HANDLERS)
        allowed = frozenset(
            name for name in names if not name.startswith("_") and name not in plumbing and callable(getattr(cls, name, None))
        )
        cls._allowed_handlers_cache = allowed
        return allowed

    def get_handler_name(self):
        """``body[handler_selection_key]``, then ``body[route_selection_key]``, else ``default``."""
        allowed = self.get_allowed_handlers()
        for key in (self.handler_selection_key, self.route_selection_key):
            name = self.body.get(key)
            if isinstance(name, str) and name in allowed:
                return name
        return "default"

    def _run_handler(self, handler, request, *args, **kwargs):
        try:
            response = handler(request, *args, **kwargs)
        except Rejection:
            raise
        except Exception as exc:
            return self.handle_exception(request, exc)
        if response is None:
            return JsonResponse({})
        if isinstance(response, HttpResponse):
            return response
        return JsonResponse(response, safe=False)

    def handle_exception(self, request, exc):
        """A bug in a handler: log it, mail the admins if asked, answer 500. Rows stay as they were."""
        log_extra = {
            "connection_id": self.connection_id,
            "route": self.route,
            "reason": type(exc).__name__,
            "user_id": getattr(getattr(request, "user", None), "pk", None),
        }
        logger.exception("Exception in WebSocket handler", extra=log_extra)
        if self.SEND_EXCEPTION_MAIL:
            try:
                mail_admins(
                    "Unexpected WebSocket exception",
                    f"{type(exc).__name__}: {exc}\nroute={self.route} connection={self.connection_id}",
                )
            except Exception:  # a broken mail setup must not hide the original error
                logger.warning("Could not mail the admins", exc_info=True, extra=log_extra)
        response = JsonResponse({"error": "Internal error."}, status=500)
        # Already logged (and mailed) above: keep django.request from mailing it again.
        response._has_been_logged = True
        return response

    # --- permissions ----------------------------------------------------------------

    def has_any_permission(self, request):
        return any(request.user.has_perm(perm) for perm in self.permissions_required)

    def has_all_permission(self, request):
        return request.user.has_perms(self.all_permissions_required)

    def has_required_permissions(self, request):
        """Both lists apply when both are set."""
        if self.permissions_required and not self.has_any_permission(request):
            return False
        if self.all_permissions_required and not self.has_all_permission(request):
            return False
        return True

    # --- handlers -------------------------------------------------------------------

    def default(self, request, *args, **kwargs):
        """Fallback for messages naming no allowed handler. Override it."""
        raise Rejection(400, "Unknown handler.")

    def change_channel(self, request, *args, **kwargs):
        """Built-in: ``{"handler": "change_channel", "channel": "<name>"}``."""
        channel = self.body.get("channel")
        if not protocol.is_valid_channel_name(channel):
            raise Rejection(400, "Invalid channel name.", signals.REASON_CHANNEL)
        WebSocketSession.objects.filter(pk=self.websocket_session.pk).update(channel_name=channel)
        self.websocket_session.channel_name = channel
        return {"type": "channel_changed", "channel": channel}

    def ping(self, request, *args, **kwargs):
        """Built-in heartbeat (keeps API Gateway's 10-minute idle timer from firing)."""
        return {"type": "pong"}


class WebSocketTokenView(View):
    """POST (CSRF-protected, logged in): ``{"token": "...", "expires_in": seconds}``."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"error": "Authentication required."}, status=403)
        if not tokens.may_issue_token(request.user):
            return JsonResponse({"error": "Rate limit exceeded."}, status=429)
        if not request.session.session_key:
            request.session.create()
        raw = tokens.issue_token(request.user, request.session.session_key)
        return JsonResponse({"token": raw, "expires_in": get_setting("token_expiry_seconds")})
