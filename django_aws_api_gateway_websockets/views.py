"""The views API Gateway calls (docs/architecture.md, docs/security.md).

``WebSocketView`` answers the integration requests of one WebSocket API: route ``connect``,
``disconnect``, and every message route (``default`` and custom route keys). Subclass it and
add handler methods ``def name(self, request, *args, **kwargs)`` marked with ``@handler``;
the JSON body's ``handler`` key (then ``action``) picks the method (``handlers.py`` says
which methods a message can reach).

Every request either succeeds or changes no row: the connect (token spent, row created,
``connected`` receivers, the ``connect`` hook) runs in one transaction, each message's receivers
and handler in one of their own, that a rejection, an error
or a 4xx/5xx answer rolls back; a handled message is then counted (docs/architecture.md#message).

The steps themselves are the ``pipeline`` package's (connect, message, disconnect); this class
keeps the public surface (hooks, attributes, handlers) and delegates to it.

``WebSocketTokenView`` gives a logged-in browser a single-use token for its next connect.
"""

import hashlib
import json
import logging
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, NoReturn, TypeAlias

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.core.mail import mail_admins
from django.db import router
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseBase,
    HttpResponseForbidden,
    JsonResponse,
    UnreadablePostError,
)
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from . import channel_access, history, login, presence, protocol, security, signals, subscriptions, tokens
from .conf import get_setting
from .handlers import BUILTIN_HANDLERS, allowed_handlers, handler
from .log_context import log_context
from .models import ApiGateway, WebSocketSession
from .pipeline import connect as connect_pipeline
from .pipeline import disconnect as disconnect_pipeline
from .pipeline import message as message_pipeline

__all__ = ["HandlerResult", "Rejection", "WebSocketTokenView", "WebSocketView", "handler"]

#: What a handler or hook may return: ``None`` (200 ``{}``), JSON-able data, or a response.
HandlerResult: TypeAlias = HttpResponseBase | dict[str, Any] | list[Any] | None

logger = logging.getLogger(__name__)


class Rejection(Exception):
    """Ends a request with a 4xx answer, a log line and (on connect) a signal."""

    def __init__(self, status, message, reason="", data=None, detail=""):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.data = data or {}  # more keys for the JSON answer (e.g. a 429's retry_after)
        self.detail = detail  # the log line's only (e.g. the refused origin), never the answer's


def _reject_non_json_constant(name):
    """``NaN``, ``Infinity`` and ``-Infinity``: Python's json takes them, JSON does not."""
    raise ValueError(f"{name} is not JSON")


def _finite_float(text):
    """``1e999`` would become infinity, which no JSON answer can carry."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range")
    return value


#: The 4.x class attributes 5.x keeps without effect, with their 4.1.0 values. A view that
#: sets one to another value (or passes it to ``as_view()``) is named by check W060, with why.
LEGACY_ATTRIBUTE_DEFAULTS: dict[str, Any] = {
    "required_headers": (
        "Host",
        "X-Forwarded-For",
        "X-Forwarded-Proto",
        "Content-Length",
        "Connectionid",
        "User-Agent",
        "X-Amzn-Apigateway-Api-Id",
    ),
    "additional_required_headers": ("X-Amzn-Trace-Id", "X-Forwarded-Port", "X-Real-Ip"),
    "required_connection_headers": (
        "Cookie",
        "Origin",
        "Sec-Websocket-Extensions",
        "Sec-Websocket-Key",
        "Sec-Websocket-Version",
    ),
    "expected_useragent_prefix": "AmazonAPIGateway_",
    "debug": False,
    "debug_log": None,
    "MAX_CHANNEL_NAME_LENGTH": 128,
    "CHANNEL_NAME_PATTERN": re.compile(r"^[a-zA-Z0-9_-]+$"),
    "model": None,
}

_HEADERS_REASON = (
    "5.x authenticates each request by the record's integration secret (X-Gateway-Secret), "
    "not by the headers it carries"
)
#: Why each of them has no effect (the W060 message).
LEGACY_ATTRIBUTE_REASONS: dict[str, str] = {
    "required_headers": _HEADERS_REASON,
    "additional_required_headers": _HEADERS_REASON,
    "required_connection_headers": _HEADERS_REASON + "; the connect checks the token and the Origin",
    "expected_useragent_prefix": _HEADERS_REASON + "; the User-Agent is not checked",
    "debug": "the view logs to the django_aws_api_gateway_websockets.views logger instead (docs/monitoring.md)",
    "debug_log": "the view logs to the django_aws_api_gateway_websockets.views logger instead (docs/monitoring.md)",
    "MAX_CHANNEL_NAME_LENGTH": "channel names follow the package's rule (letters, digits, _ - ., at most 128 "
    "characters); override can_join_channel to refuse more",
    "CHANNEL_NAME_PATTERN": "channel names follow the package's rule (letters, digits, _ - ., at most 128 "
    "characters); override can_join_channel to refuse more",
    "model": "it was never read",
}

#: The 4.x response hooks 5.x never calls, and what answers instead (check W061). The base
#: class keeps each (deprecated) so a subclass's super() call works and so an override is
#: view plumbing, never a handler a message could select.
LEGACY_HOOKS: dict[str, str] = {
    "missing_headers": "headers are not checked; a request without the integration secret is answered 403",
    "invalid_useragent": "the User-Agent is not checked",
    "handler_selection_key_missing": "a message naming no handler reaches default()",
    "route_selection_key_missing": "a message naming no handler reaches default()",
    "session_not_found": "an unknown connection is answered 404, a closed one 410",
    "invalid_gateway_secret": "a request without the integration secret is answered 403",
}

#: The release that removes the 4.x names kept as deprecated (CHANGELOG.md, Deprecated).
LEGACY_REMOVAL_RELEASE = "6.0"


def _legacy_hook(name, response_class, message):
    """A 4.x response hook 5.x never calls: callable through super() (with a warning), it
    answers what 4.x answered (plain text). ``message`` may use the view's attributes."""

    def hook(self, request, *args, **kwargs):
        warnings.warn(
            f"WebSocketView.{name}() is never called by 5.x ({LEGACY_HOOKS[name]}); "
            f"it is removed in {LEGACY_REMOVAL_RELEASE}.",
            DeprecationWarning,
            stacklevel=2,
        )
        return response_class(message.format(view=self))

    hook.__name__, hook.__qualname__ = name, f"WebSocketView.{name}"
    hook.__doc__ = f"Deprecated 4.x hook, never called: {LEGACY_HOOKS[name]} (check W061)."
    return hook


@method_decorator(csrf_exempt, name="dispatch")
class WebSocketView(View):
    """Base view for the routes of an API Gateway WebSocket API."""

    http_method_names = ["post"]

    # Connect checks.
    USE_WS_TOKEN: bool = True
    RATE_LIMIT_ENABLED: bool = True
    RATE_LIMIT_MAX_ATTEMPTS: int | None = None  # None: WEBSOCKETS["rate_limit_max_attempts"] (20)
    RATE_LIMIT_WINDOW_MINUTES: int | None = None  # None: WEBSOCKETS["rate_limit_window_minutes"] (1)
    CHECK_ORIGIN: bool = True
    # Messages per connection (every route but $connect/$disconnect; ratelimit.message_decision):
    # None: WEBSOCKETS["message_rate_limit"] (20 a second; 0 turns it off) and ["message_rate_burst"] (40).
    MESSAGE_RATE_LIMIT: float | None = None
    MESSAGE_RATE_BURST: int | None = None
    # Channels without a ChannelPermission row: joinable (True), or refused (False).
    ALLOW_UNLISTED_CHANNELS: bool = True
    # Announce joins and leaves to the channel ({"type": "presence", ...}; presence.py).
    BROADCAST_PRESENCE: bool = False
    # Permissions, checked on connect and on every message.
    permissions_required: Sequence[str] = ()  # the user needs at least one
    all_permissions_required: Sequence[str] = ()  # the user needs every one
    # Handlers a message may call (see handlers.py): ALLOWED_HANDLERS if set, else the
    # methods marked @handler plus the built-ins, else (4.x style, check W005 warns) the public
    # methods of your subclasses that take ``request``; plus ADDITIONAL_ALLOWED_HANDLERS.
    ALLOWED_HANDLERS: Sequence[str] | None = None
    ADDITIONAL_ALLOWED_HANDLERS: Sequence[str] = ()
    handler_selection_key: str = "handler"
    route_selection_key: str = "action"
    # Only accept requests from this API id (an ApiGateway record must still exist).
    aws_api_gateway_id: str | None = None
    SEND_EXCEPTION_MAIL: bool = True
    MAX_BODY_SIZE: int = protocol.MAX_PAYLOAD_BYTES
    # Deeper bodies are refused (400): far above any real message, far below what would
    # exhaust the stack when a handler sends the body back (json.dumps recurses too).
    MAX_JSON_DEPTH: int = protocol.MAX_JSON_DEPTH

    BUILTIN_HANDLERS = BUILTIN_HANDLERS

    # Set per request, before any hook or handler runs (typed without None for handlers' sake;
    # None only before dispatch has found them).
    api_gateway: ApiGateway = None  # type: ignore[assignment]
    websocket_session: WebSocketSession = None  # type: ignore[assignment]
    connection_id: str = ""
    # self.body's state (the body property): parsed value, the refusal parsing met, and
    # whether _read_body already checked the framing.
    _body: dict[str, Any] | None = None
    _body_error: Rejection | None = None
    _body_read: bool = False

    # 4.x attributes kept so 4.x subclasses and ``as_view(debug=True)`` still load; they have
    # no effect (the gateway secret replaced the header checks, protocol.py validates channel
    # names, the loggers replaced the debug log). Check W060 names a routed view that sets one;
    # deprecated, removed in 6.0 (docs/upgrading.md, Coming from 4.x).
    required_headers: list[str] = list(LEGACY_ATTRIBUTE_DEFAULTS["required_headers"])
    additional_required_headers: list[str] = list(LEGACY_ATTRIBUTE_DEFAULTS["additional_required_headers"])
    required_connection_headers: list[str] = list(LEGACY_ATTRIBUTE_DEFAULTS["required_connection_headers"])
    expected_useragent_prefix: str = LEGACY_ATTRIBUTE_DEFAULTS["expected_useragent_prefix"]
    debug: bool = False
    debug_log: list[str] | None = None
    MAX_CHANNEL_NAME_LENGTH: int = LEGACY_ATTRIBUTE_DEFAULTS["MAX_CHANNEL_NAME_LENGTH"]
    CHANNEL_NAME_PATTERN: "re.Pattern[str]" = LEGACY_ATTRIBUTE_DEFAULTS["CHANNEL_NAME_PATTERN"]
    model: Any = None
    # (names, implicit) of allowed_handlers, set on each class by _handler_names (its own __dict__)
    _handler_names_cache: ClassVar[tuple[frozenset[str], frozenset[str]]]
    # How this class connects (pipeline.connect.plan_for): decided once, when the class is created.
    _connect_plan: connect_pipeline.Plan
    _connect_user: Any = None  # the user a refused connect's audit row names

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._connect_plan = connect_pipeline.plan_for(cls, WebSocketView)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Arguments that change what the class decided: as_view() planned them once (it hands
        # the plan in with them); an instance made directly plans here.
        if "_connect_plan" not in kwargs and kwargs.keys() & connect_pipeline.PLAN_ATTRIBUTES:
            self._connect_plan = connect_pipeline.plan_for(type(self), WebSocketView, kwargs)

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # Planned again when routed (URLconf loading, after AppConfig.ready): a hook assigned to
        # the class since its creation (not overridden in a subclass) is seen too.
        cls._connect_plan = connect_pipeline.plan_for(cls, WebSocketView)
        if initkwargs.keys() & connect_pipeline.PLAN_ATTRIBUTES:
            # as_view() changes what the class decided: this view's own plan, made once here
            # (each request's instance receives it with the other arguments).
            initkwargs = {**initkwargs, "_connect_plan": connect_pipeline.plan_for(cls, WebSocketView, initkwargs)}
        return super().as_view(**initkwargs)

    @classmethod
    def connect_plan(cls) -> "connect_pipeline.Plan":
        """How this view connects: in one statement where the database and the request allow,
        or on the general path, and why (reported by ``manage.py check``)."""
        return cls._connect_plan

    # --- dispatch -------------------------------------------------------------------

    @property
    def body(self) -> dict[str, Any]:
        """The request's JSON object (``{}`` when the body is empty), parsed on first use:
        4.x parsed it in ``setup()``, so ``setup()`` and ``dispatch()`` overrides may read it
        before ``super().dispatch()``; the request path parses it once.

        Malformed input reads as ``{}`` here; the request path then answers it with its 4xx
        (a message: 400; oversized: 413), so reading ``self.body`` early never makes a 500."""
        body = self._body
        if body is None:
            request = getattr(self, "request", None)
            if request is None:  # the view was not set up (a unit test calling a method)
                return {}
            try:
                if not self._body_read:
                    self._read_body(request)
                body = self._parse_body(request)
            except Rejection as rejection:
                body, self._body_error = {}, rejection
            except SuspiciousOperation as exc:  # e.g. RequestDataTooBig: dispatch answers 400 too
                body, self._body_error = {}, Rejection(400, f"Bad request: {type(exc).__name__}.")
            self._body = body
        return body

    @body.setter
    def body(self, value: dict[str, Any]) -> None:
        self._body, self._body_error = value, None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        route = kwargs.get("route") or protocol.DEFAULT
        self.route = route
        self.connection_id = request.headers.get(protocol.HEADER_CONNECTION_ID, "")
        if (request.method or "").lower() not in self.http_method_names:
            return self.http_method_not_allowed(request, *args, **kwargs)
        try:
            if not protocol.is_valid_connection_id(self.connection_id):
                raise Rejection(400, "Missing or invalid connectionId header.")
            self._read_body(request)
            if route == protocol.CONNECT:
                return self._connect(request, *args, **kwargs)
            if route == protocol.DISCONNECT:
                return self._disconnect(request, *args, **kwargs)
            return self._message(request, *args, **kwargs)
        except Rejection as rejection:
            return self._reject(request, rejection, *args, **kwargs)
        except SuspiciousOperation as exc:  # e.g. TooManyFieldsSent from a 2,000-parameter query
            return self._reject(request, Rejection(400, f"Bad request: {type(exc).__name__}."), *args, **kwargs)

    def _reject(self, request, rejection, *args, **kwargs):
        logged = f"{rejection.message} {rejection.detail}" if rejection.detail else rejection.message
        self._announce_rejection(request, rejection.status, logged, rejection.reason)
        if (
            rejection.status == 403
            and rejection.reason in (signals.REASON_PERMISSION, signals.REASON_CHANNEL)
            # overridden in a subclass, or given to as_view() (the instance's own)
            and (
                type(self).permission_denied is not WebSocketView.permission_denied or "permission_denied" in vars(self)
            )
        ):
            return self._permission_denied_answer(request, *args, **kwargs)
        return JsonResponse({"error": rejection.message, **rejection.data}, status=rejection.status)

    def _permission_denied_answer(self, request, *args, **kwargs):
        """The overridden ``permission_denied`` hook's answer to a refusal (after the rollback:
        the row and the token were not kept). It can change the answer, never the outcome:
        anything but a 4xx/5xx response is answered with the package's 403."""
        try:
            response = self.permission_denied(request, *args, **kwargs)
        except Exception as exc:
            return self.handle_exception(request, exc)
        if isinstance(response, HttpResponseBase) and response.status_code >= 400:
            return response
        logger.warning(
            "%s.permission_denied returned %s, not a 4xx/5xx response: the request stays refused (403)",
            type(self).__name__,
            getattr(response, "status_code", type(response).__name__),
            extra=log_context(self.connection_id, self.route, signals.REASON_PERMISSION),
        )
        return JsonResponse({"error": "Permission denied."}, status=403)

    def _announce_rejection(self, request, status, message, reason):
        """The log line for every refused request, and ``connection_rejected`` on connect."""
        user = getattr(request, "user", None)
        logger.warning(
            "WebSocket %s rejected (%s): %s",
            self.route,
            status,
            message,
            extra=log_context(self.connection_id, self.route, reason, getattr(user, "pk", None)),
        )
        if self.route == protocol.CONNECT and reason:
            signals.connection_rejected.send(
                sender=type(self),
                request=request,
                reason=reason,
                connection_id=self.connection_id,
                source_ip=security.source_ip(request, self.api_gateway),
                user=user,
            )

    # --- $connect -------------------------------------------------------------------

    def _connect(self, request, *args, **kwargs):
        return connect_pipeline.run_connect(self, request, args, kwargs)

    def _additional_connection_checks(self, request: HttpRequest, *args: Any, **kwargs: Any) -> bool | tuple[bool, str]:
        """Hook: return ``True``/``False`` or ``(allowed, message)``; runs last on connect."""
        return True, ""

    def connect(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Hook called after a connection was stored (``self.websocket_session``), in the
        connect's transaction.

        Return ``None`` (200 ``{}``), a dict or a response. A 3xx/4xx/5xx response refuses
        the connection and rolls back everything the connect did (the token stays unspent).
        This base returns 200 ``{}``, so a 4.x override ending in
        ``return super().connect(request, *args, **kwargs)`` keeps working.
        """
        return JsonResponse({})

    # --- $disconnect ----------------------------------------------------------------

    def _disconnect(self, request, *args, **kwargs):
        return disconnect_pipeline.run_disconnect(self, request, args, kwargs, WebSocketView.disconnect)

    def disconnect(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Hook called after the session was marked disconnected (it stays marked whatever
        the hook answers; a 4xx/5xx answer rolls back the hook's own writes). This base
        returns 200 ``{}``, for 4.x overrides that return ``super().disconnect(...)``."""
        return JsonResponse({})

    # --- 4.x response hooks -----------------------------------------------------------

    def permission_denied(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        """The answer to a permission or channel refusal (403), on connect and on messages.

        Called only when overridden, after the refusal was logged and rolled back (nothing
        was kept; a connect's token stays unspent). Return a 4xx/5xx response; anything else
        (``None``, a 2xx) is answered with this 403: the request stays refused."""
        return JsonResponse({"error": "Permission denied."}, status=403)

    missing_headers = _legacy_hook("missing_headers", HttpResponseBadRequest, "Invalid request headers")
    invalid_useragent = _legacy_hook("invalid_useragent", HttpResponseBadRequest, "Unexpected Useragent")
    handler_selection_key_missing = _legacy_hook(
        "handler_selection_key_missing", HttpResponseBadRequest, "Invalid request format (1)"
    )
    route_selection_key_missing = _legacy_hook(
        "route_selection_key_missing",
        HttpResponseBadRequest,
        "route_select_key {view.route_selection_key} missing from request body.",
    )
    session_not_found = _legacy_hook("session_not_found", HttpResponseBadRequest, "Invalid connection ID")
    invalid_gateway_secret = _legacy_hook("invalid_gateway_secret", HttpResponseForbidden, "Invalid request")

    # --- messages -------------------------------------------------------------------

    def _message(self, request, *args, **kwargs):
        return message_pipeline.run_message(self, request, args, kwargs)

    def _read_body(self, request):
        """Every route: a ``Content-Length`` that is a non-negative integer within the payload
        limit, and a body of exactly that length (read once, here)."""
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not (isinstance(declared, str) and declared.isdigit()):
            raise Rejection(400, "Invalid Content-Length header.")
        if int(declared) > self.MAX_BODY_SIZE:
            raise Rejection(413, "Message too large.")
        try:
            body = request.body
        except (UnreadablePostError, OSError):
            raise Rejection(400, "The request body could not be read.") from None
        if len(body) != int(declared):
            raise Rejection(400, "The body does not match its Content-Length.")
        self._body_read = True

    def _parse_body(self, request):
        if not request.body:
            return {}
        if request.body.startswith(b"\xef\xbb\xbf"):
            raise Rejection(400, "Message body is not valid JSON.")
        try:
            # Strict UTF-8 first: json.loads(bytes) would also take UTF-16/32 and skip a BOM.
            body = json.loads(
                request.body.decode("utf-8"), parse_constant=_reject_non_json_constant, parse_float=_finite_float
            )
        except (UnicodeDecodeError, ValueError):
            raise Rejection(400, "Message body is not valid JSON.") from None
        except RecursionError:  # thousands of nested brackets: hostile, not a bug of ours
            raise Rejection(400, "Message body is nested too deeply.") from None
        # Depth first: whether the parser itself gave up on deep nesting depends on the Python.
        if protocol.nesting_exceeds(body, self.MAX_JSON_DEPTH):
            raise Rejection(400, "Message body is nested too deeply.")
        if not isinstance(body, dict):
            raise Rejection(400, "Message body must be a JSON object.")
        return body

    @classmethod
    def get_allowed_handlers(cls) -> frozenset[str]:
        """The handler names a message may select (computed once per class)."""
        return cls._handler_names()[0]

    @classmethod
    def implicit_handlers(cls) -> frozenset[str]:
        """The handlers this view exposes only because they are public methods taking
        ``request`` (no ``@handler``, no ``ALLOWED_HANDLERS``): what check W005 reports."""
        return cls._handler_names()[1]

    @classmethod
    def _handler_names(cls):
        cached = cls.__dict__.get("_handler_names_cache")
        if cached is None:
            cached = allowed_handlers(cls, WebSocketView)
            cls._handler_names_cache = cached
        return cached

    def get_handler_name(self) -> str:
        """``body[handler_selection_key]``, then ``body[route_selection_key]``, else ``default``."""
        allowed = self.get_allowed_handlers()
        for key in (self.handler_selection_key, self.route_selection_key):
            name = self.body.get(key)
            if isinstance(name, str) and name in allowed:
                return name
        return "default"

    @staticmethod
    def _as_response(result):
        """A handler's return value as a response: ``None`` is 200 ``{}``, data is JSON."""
        if result is None:
            return JsonResponse({})
        if isinstance(result, HttpResponseBase):
            return result
        return JsonResponse(result, safe=False)

    def handle_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse:
        """A bug in a handler: log it every time, mail the admins at most once per view and
        exception type per ``WEBSOCKETS["exception_mail_interval_seconds"]``, answer 500.
        The request's transaction was rolled back: rows stay as they were."""
        log_extra = log_context(
            self.connection_id, self.route, type(exc).__name__, getattr(getattr(request, "user", None), "pk", None)
        )
        logger.exception("Exception in WebSocket handler", extra=log_extra)
        if self.SEND_EXCEPTION_MAIL and self._first_mail_in_interval(exc):
            try:
                mail_admins(
                    "Unexpected WebSocket exception",
                    f"{type(exc).__name__}: {exc}\nroute={self.route} connection={self.connection_id}",
                )
            except Exception:  # a broken mail setup must not hide the original error
                logger.warning("Could not mail the admins", exc_info=True, extra=log_extra)
        response = JsonResponse({"error": "Internal error."}, status=500)
        # Already logged (and mailed) above: keep django.request from mailing it again.
        response._has_been_logged = True  # type: ignore[attr-defined]  # read by django.utils.log.log_response
        return response

    def _first_mail_in_interval(self, exc):
        """True for the first exception of its type on this view in the interval. A cache
        shared by the processes (Redis, Memcached, database) makes it per site; the default
        local-memory cache, per process."""
        interval = get_setting("exception_mail_interval_seconds")
        if not interval:
            return True
        what = "\0".join((type(self).__module__, type(self).__qualname__, type(exc).__module__, type(exc).__qualname__))
        key = "aws_websockets:mail:" + hashlib.sha256(what.encode()).hexdigest()[:32]
        try:
            return cache.add(key, True, timeout=interval)
        except Exception:  # a cache outage must not silence the admins
            logger.warning("Exception mail throttle unavailable", exc_info=True)
            return True

    # --- permissions ----------------------------------------------------------------

    def has_any_permission(self, request: HttpRequest) -> bool:
        """Whether the user holds any of ``permissions_required``; ``True`` when it is empty
        (as in 4.x: handlers use it as a guard)."""
        if not self.permissions_required:
            return True
        return any(request.user.has_perm(perm) for perm in self.permissions_required)

    def has_all_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perms(self.all_permissions_required)

    def has_required_permissions(self, request: HttpRequest) -> bool:
        """Both lists apply when both are set."""
        if self.permissions_required and not self.has_any_permission(request):
            return False
        return not (self.all_permissions_required and not self.has_all_permission(request))

    def can_join_channel(self, request: HttpRequest, channel_name: str) -> bool:
        """Whether ``request.user`` may join ``channel_name``: on $connect, change_channel and
        resume (a connection already in the channel is asked again: the rules may have changed).

        The channel rules of the admin (``ChannelPermission``, see channel_access.py) and
        ``ALLOW_UNLISTED_CHANNELS``. Override to add your own rule; call super() to keep these.
        """
        return channel_access.may_join(request.user, channel_name, allow_unlisted=self.ALLOW_UNLISTED_CHANNELS)

    def allow_client_events(self, request: HttpRequest, channel_name: str) -> bool:
        """Whether clients may send client events (``whisper``) to ``channel_name``'s other
        subscribers: the channels ``WEBSOCKETS["client_events_channels"]`` names (none by
        default). Override to decide per channel or user (docs/channels.md#client-events-whisper)."""
        return subscriptions.client_events_allowed(channel_name)

    # --- handlers -------------------------------------------------------------------

    @handler
    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Fallback for messages naming no allowed handler. Override it."""
        raise Rejection(400, "Unknown handler.")

    @handler
    def change_channel(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Built-in: ``{"handler": "change_channel", "channel": "<name>"}``: leave every channel,
        join this one (docs/channels.md)."""
        channel = self.body.get("channel")
        if not protocol.is_valid_channel_name(channel):
            raise Rejection(400, "Invalid channel name.", signals.REASON_CHANNEL)
        if not self.can_join_channel(request, channel):
            raise Rejection(403, "Channel not allowed.", signals.REASON_CHANNEL)
        session = self.websocket_session
        was_in = session.channel_name == channel or (self.BROADCAST_PRESENCE and subscriptions.holds(session, channel))
        left = subscriptions.replace(session, channel)
        if self.BROADCAST_PRESENCE:
            for name in left:
                presence.announce_on_commit(name, "leave", session, view_class=type(self))
            if not was_in:
                presence.announce_on_commit(channel, "join", session, view_class=type(self))
        return {"type": "channel_changed", "channel": channel}

    def _refuse_channel(
        self, kind: str, channel: object, status: int, reason: str, error: str, **extra: Any
    ) -> NoReturn:
        """A refused ``subscribe`` / ``unsubscribe`` / ``whisper``: the ``<kind>_error`` frame,
        posted now (the rollback would drop an after-commit post) and answered. What the client
        sent is echoed only when it is a string no longer than a valid one (the frame stays small)."""
        frame = {
            "type": f"{kind}_error",
            "channel": channel
            if isinstance(channel, str) and len(channel) <= protocol.CHANNEL_NAME_MAX_LENGTH
            else None,
            **extra,
            "status": status,
            "reason": reason,
            "error": error,
        }
        subscriptions.post_now(self.websocket_session, frame)
        raise Rejection(status, error, signals.REASON_CHANNEL, data=frame)

    @handler
    def subscribe(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Built-in: ``{"handler": "subscribe", "channel": "<name>", "after": N}`` (``after``
        optional): add a subscription, after ``can_join_channel`` and the channel rules; posts
        ``{"type": "subscribed", "channel", "seq"}`` (with ``after``: the replay first, and
        ``more`` when it stopped at a page) or ``subscribe_error`` (docs/channels.md)."""
        channel, after = self.body.get("channel"), self.body.get("after")
        if not protocol.is_valid_channel_name(channel):
            self._refuse_channel("subscribe", channel, 400, "invalid_channel", "Invalid channel name.")
        if after is not None and (type(after) is not int or after < 0):
            self._refuse_channel("subscribe", channel, 400, "invalid_after", "after must be a non-negative integer.")
        if not self.can_join_channel(request, channel):
            self._refuse_channel("subscribe", channel, 403, "not_allowed", "Channel not allowed.")
        session = self.websocket_session
        done = subscriptions.subscribe(session, channel)
        if not done.ok:
            limit = subscriptions.max_subscriptions()
            self._refuse_channel(
                "subscribe", channel, 409, "too_many", f"This connection holds {limit} channels, the most it may."
            )
        answer: dict[str, Any] = {"type": "subscribed", "channel": channel, "seq": done.seq}
        if after is not None:  # the replay, posted before the answer (resume_page posts its own "resumed")
            page = history.resume_page(session, channel, after, channel_position=True, announce=False)
            answer["seq"] = page.streams.get(channel, done.seq)
            if channel in page.more:
                answer["more"] = page.more[channel]
        subscriptions.post_after_commit(session, answer)
        if done.added and self.BROADCAST_PRESENCE:
            presence.announce_on_commit(channel, "join", session, exclude=session.pk, view_class=type(self))
        return answer

    @handler
    def unsubscribe(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Built-in: ``{"handler": "unsubscribe", "channel": "<name>"}``: posts ``{"type":
        "unsubscribed", "channel"}`` (also for a channel not held: repeating it is harmless)."""
        channel = self.body.get("channel")
        if not protocol.is_valid_channel_name(channel):
            self._refuse_channel("unsubscribe", channel, 400, "invalid_channel", "Invalid channel name.")
        session = self.websocket_session
        held = subscriptions.unsubscribe(session, channel)
        answer = {"type": "unsubscribed", "channel": channel}
        subscriptions.post_after_commit(session, answer)
        if held and self.BROADCAST_PRESENCE:
            presence.announce_on_commit(channel, "leave", session, view_class=type(self))
        return answer

    @handler
    def whisper(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Built-in: ``{"handler": "whisper", "channel", "event", "data"}``: a client event, relayed
        to the channel's other subscribers as ``{"type": "whisper", "channel", "event", "data",
        "user"}``; only where ``allow_client_events`` says so, only on a subscribed channel, never
        stored (docs/channels.md#client-events-whisper)."""
        channel, event = self.body.get("channel"), self.body.get("event")
        named = {
            "event": event if isinstance(event, str) and len(event) <= subscriptions.EVENT_NAME_MAX_LENGTH else None
        }
        if not protocol.is_valid_channel_name(channel):
            self._refuse_channel("whisper", channel, 400, "invalid_channel", "Invalid channel name.", **named)
        if not subscriptions.is_valid_event_name(event):
            self._refuse_channel("whisper", channel, 400, "invalid_event", "Invalid event name.", **named)
        if not self.allow_client_events(request, channel):
            self._refuse_channel(
                "whisper", channel, 403, "not_allowed", "Client events are not allowed on this channel.", **named
            )
        session = self.websocket_session
        user_info = presence.member_info(session.user, type(self)) if session.user_id is not None else None
        frame = subscriptions.whisper_frame(channel, event, self.body.get("data"), user_info)
        if frame is None:
            self._refuse_channel(
                "whisper", channel, 413, "too_large", "The client event does not fit one frame.", **named
            )
        sent = subscriptions.relay(session, channel, frame)
        if sent is None:
            self._refuse_channel(
                "whisper", channel, 409, "not_subscribed", "This connection is not subscribed to the channel.", **named
            )
        return {"type": "whispered", "channel": channel, "event": event, "sent": sent}

    @handler
    def resume(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Built-in: ``{"handler": "resume", "channels": {"<channel>": N or null, ...},
        "user_after": M}``, or the single-channel form ``{"channel", "after"}`` (every part
        optional; ``null``: only where the stream is now): post what the connection missed on
        those channels (each one it holds) and its user's direct stream, in order, or a
        ``resume_gap``, then ``{"type": "resumed", "streams": {...}}``; one page at most
        (``WEBSOCKETS["resume_page_*"]``) for all streams together: ``"more": {stream: last seq
        sent}`` says where the next ``resume`` continues (docs/history.md, docs/channels.md)."""
        body = self.body
        user_after = body.get("user_after")
        cursors = body.get("channels")
        session = self.websocket_session
        if cursors is not None:
            if not isinstance(cursors, dict) or not all(protocol.is_valid_channel_name(name) for name in cursors):
                raise Rejection(400, "channels must map channel names to numbers.", signals.REASON_CHANNEL)
            if len(cursors) > subscriptions.max_subscriptions():
                raise Rejection(400, "channels names more channels than a connection may hold.", signals.REASON_CHANNEL)
            wanted = dict(cursors)
            positions = set(wanted)
        else:
            channel = body.get("channel", session.channel_name)
            if channel != session.channel_name and not protocol.is_valid_channel_name(channel):
                raise Rejection(400, "Invalid channel name.", signals.REASON_CHANNEL)
            if "after" in body and not channel and body.get("after") is not None:
                raise Rejection(400, "This connection has no channel to resume.", signals.REASON_CHANNEL)
            wanted = {channel: body.get("after")} if channel else {}
            positions = {channel} if channel and "after" in body else set()
        for value in (*wanted.values(), user_after):
            if value is not None and (type(value) is not int or value < 0):
                raise Rejection(400, "after and user_after must be non-negative integers.")
        if wanted:
            held = set(subscriptions.channels_of(session))
            if not set(wanted) <= held:
                raise Rejection(
                    409, "resume names a channel this connection is not subscribed to.", signals.REASON_CHANNEL
                )
        # The rules may have changed since the connection joined: no history of a channel it
        # may no longer join (nor of its user stream: the connection should not be there).
        for channel in wanted:
            if not self.can_join_channel(request, channel):
                raise Rejection(403, "Channel not allowed.", signals.REASON_CHANNEL)
        page = history.resume_channels(
            session,
            {name: after for name, after in wanted.items() if after is not None or name in positions},
            user_after,
            user_position="user_after" in body,
        )
        answer: dict[str, Any] = {"type": "resumed", "streams": page.streams}
        if page.more:  # one page at a time: resume again with these numbers as "after"
            answer["more"] = page.more
        return answer

    @handler
    def presence(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Built-in of views with ``BROADCAST_PRESENCE``: ``{"handler": "presence", "channel":
        "<this connection's channel>", "after": <the last page's "next">}`` (both optional):
        posts one page of the channel's members, ``{"type": "presence", "event": "members",
        "channel", "users", "next", "user_count", "anonymous", "connections"}``, within one
        frame; ``next`` is ``null`` on the last page (docs/history.md). Other views: ``default``."""
        if not self.BROADCAST_PRESENCE:
            return self.default(request, *args, **kwargs)
        channel = self.body.get("channel", self.websocket_session.channel_name)
        if channel and (
            not protocol.is_valid_channel_name(channel) or not subscriptions.holds(self.websocket_session, channel)
        ):
            raise Rejection(
                409, "presence names a channel this connection is not subscribed to.", signals.REASON_CHANNEL
            )
        if not channel:
            raise Rejection(400, "This connection has no channel.", signals.REASON_CHANNEL)
        # As resume: the rules may have changed since the connection joined (no member names then).
        if not self.can_join_channel(request, channel):
            raise Rejection(403, "Channel not allowed.", signals.REASON_CHANNEL)
        after = self.body.get("after")
        if after is not None:
            try:
                if type(after) not in (int, str):
                    raise ValidationError("not a cursor")
                after = get_user_model()._meta.pk.to_python(after)
                if isinstance(after, int) and not -(2**63) <= after < 2**63:  # no column holds it: a 500
                    raise ValidationError("out of range")
            except (ValidationError, TypeError, ValueError):
                raise Rejection(400, "after must be the next of a previous page.") from None
        page = {
            "type": "presence",
            "event": "members",
            **presence.presence_page(
                channel, after, gateway_ids=presence.channel_presence_gateway_ids(channel), view_class=type(self)
            ),
        }
        session = self.websocket_session
        history.after_commit(lambda: session.send_message(page), router.db_for_write(WebSocketSession), "A member page")
        return page

    @handler
    def ping(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Built-in heartbeat (keeps API Gateway's 10-minute idle timer from firing)."""
        return {"type": "pong"}


@method_decorator(csrf_exempt, name="dispatch")  # checked in dispatch, after the login check
class WebSocketTokenView(View):
    """POST (CSRF-protected, logged in): ``{"token": "...", "expires_in": seconds}``; an anonymous
    caller gets a JSON 401 ``{"error": "Not logged in."}`` (the browser client's ``unauthorized``)."""

    http_method_names = ["post"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # Not logged in: say so, in JSON, before the CSRF check, whose HTML 403 ("CSRF cookie not
        # set") would hide the cause from the page and the log. Nothing is issued to an anonymous
        # caller, so CSRF protects nothing there. Logged in: the CSRF check runs as for any view.
        if request.method == "POST" and not request.user.is_authenticated:
            return JsonResponse({"error": "Not logged in."}, status=401)
        return csrf_protect(super().dispatch)(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return JsonResponse({"error": "Authentication required."}, status=403)
        if not tokens.may_issue_token(request.user):
            return JsonResponse({"error": "Rate limit exceeded."}, status=429)
        if not request.session.session_key:
            request.session.create()
        # A login from before login ids gets one now: this response saves it.
        login_id = login.ensure_login_id(request.session)
        raw = tokens.issue_token(request.user, login.key_the_response_sets(request.session), login_id=login_id)
        return JsonResponse({"token": raw, "expires_in": get_setting("token_expiry_seconds")})


WebSocketView._connect_plan = connect_pipeline.plan_for(WebSocketView, WebSocketView)
