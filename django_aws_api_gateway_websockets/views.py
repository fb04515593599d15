"""The views API Gateway calls (docs/architecture.md, docs/security.md).

``WebSocketView`` answers the integration requests of one WebSocket API: route ``connect``,
``disconnect``, and every message route (``default`` and custom route keys). Subclass it and
add handler methods ``def name(self, request, *args, **kwargs)`` marked with ``@handler``;
the JSON body's ``handler`` key (then ``action``) picks the method (``handlers.py`` says
which methods a message can reach).

Every request either succeeds or changes no row: the connect (token spent, row created,
``connected`` receivers, the ``connect`` hook) and each message (receivers, the handler, the
request counter) run in one transaction that a rejection, an error or a 4xx/5xx answer
rolls back.

``WebSocketTokenView`` gives a logged-in browser a single-use token for its next connect.
"""

import hashlib
import json
import logging
import math
from collections.abc import Sequence
from typing import Any, ClassVar, TypeAlias

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.core.mail import mail_admins
from django.db import IntegrityError, router, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, UnreadablePostError
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from . import channel_access, history, login, presence, protocol, ratelimit, request_sql, security, signals, tokens
from .conf import get_setting
from .gateway_lookup import get_gateway
from .handlers import BUILTIN_HANDLERS, allowed_handlers, handler
from .log_context import log_context
from .models import ApiGateway, WebSocketSession

__all__ = ["HandlerResult", "Rejection", "WebSocketTokenView", "WebSocketView", "handler"]

#: What a handler or hook may return: ``None`` (200 ``{}``), JSON-able data, or a response.
HandlerResult: TypeAlias = HttpResponseBase | dict[str, Any] | list[Any] | None

logger = logging.getLogger(__name__)


class Rejection(Exception):
    """Ends a request with a 4xx answer, a log line and (on connect) a signal."""

    def __init__(self, status, message, reason="", detail=""):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
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
    body: dict[str, Any]  # the message's JSON object ({} on connect and disconnect)
    connection_id: str = ""
    # (names, implicit) of allowed_handlers, set on each class by _handler_names (its own __dict__)
    _handler_names_cache: ClassVar[tuple[frozenset[str], frozenset[str]]]

    # --- dispatch -------------------------------------------------------------------

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        route = kwargs.get("route") or protocol.DEFAULT
        self.route = route
        self.body = {}
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
            return self._reject(request, rejection)
        except SuspiciousOperation as exc:  # e.g. TooManyFieldsSent from a 2,000-parameter query
            return self._reject(request, Rejection(400, f"Bad request: {type(exc).__name__}."))

    def _reject(self, request, rejection):
        logged = f"{rejection.message} {rejection.detail}" if rejection.detail else rejection.message
        self._announce_rejection(request, rejection.status, logged, rejection.reason)
        return JsonResponse({"error": rejection.message}, status=rejection.status)

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

    def _authenticate_gateway(self, request, gateway):
        """The request must come from a registered API and carry its secret (docs/security.md)."""
        api_id = request.headers.get(protocol.HEADER_API_ID, "")
        if gateway is None or not api_id or gateway.api_id != api_id:
            raise Rejection(403, "Unknown API.", signals.REASON_SECRET)
        if self.aws_api_gateway_id and api_id != self.aws_api_gateway_id:
            raise Rejection(403, "Unknown API.", signals.REASON_SECRET)
        if not security.secret_matches(gateway, security.presented_secret(request, gateway)):
            raise Rejection(403, "Invalid gateway secret.", signals.REASON_SECRET)
        self.api_gateway = gateway

    def _connect_gateway(self, request):
        """The record a $connect claims, from the process cache; re-read once when the
        secret does not match, so a rotation made by another process is seen at once (a
        query only on that rare path, never on the hot one)."""
        api_id = request.headers.get(protocol.HEADER_API_ID)
        gateway = get_gateway(api_id)
        if gateway is not None and not security.secret_matches(gateway, security.presented_secret(request, gateway)):
            gateway = get_gateway(api_id, fresh=True)
        return gateway

    def _load_session(self, request):
        """The connection's row with its gateway and user: one query for the whole request."""
        session = request_sql.load_connection(self.connection_id)
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
        self._authenticate_gateway(request, self._connect_gateway(request))
        ip = security.source_ip(request, self.api_gateway)
        if self.USE_WS_TOKEN:
            # The token names the user: the cookie's session gives only its user id (for the
            # per-user limit and the token check), without loading the user.
            cookie_user = self._session_user_id(request)
        else:
            cookie_user = getattr(request, "user", None) or AnonymousUser()
        self._connect_user = cookie_user
        try:
            response = None
            if self._connects_in_one_statement(cookie_user):
                response = self._connect_in_one_statement(request, cookie_user, ip)
            if response is None:  # the general path
                if self.RATE_LIMIT_ENABLED:
                    self._enforce_rate_limit(ip, cookie_user, self._rate_limit_decision(ip, cookie_user))
                response = self._open_connection(request, cookie_user, *args, ip=ip, **kwargs)
        except Rejection as rejection:
            if rejection.reason != signals.REASON_RATE_LIMIT:  # the limiter keeps its own audit rows
                self._record_attempt(ip, self._connect_user, rejection.reason)
            raise
        if response.status_code >= 300:  # refused by the connect hook, or failed: nothing was kept
            reason = signals.REASON_CHECK if response.status_code < 500 else signals.REASON_ERROR
            self._record_attempt(ip, request.user, reason)
            if reason == signals.REASON_CHECK:  # a failure was logged (and mailed) already
                self._announce_rejection(request, response.status_code, "Refused by the connect hook.", reason)
            return response
        session = self.websocket_session
        logger.info(
            "WebSocket connected",
            extra=log_context(session.connection_id, self.route, user_id=session.user_id, channel=session.channel_name),
        )
        return response

    def _rate_limit_decision(self, ip, user):
        return ratelimit.hit(ip, user, self.RATE_LIMIT_MAX_ATTEMPTS, self.RATE_LIMIT_WINDOW_MINUTES)

    def _enforce_rate_limit(self, ip, user, decision):
        """One atomic operation decided (ratelimit.py); past the limit nothing is written but
        the first refusal's audit row."""
        if not decision.allowed:
            if decision.first_refusal:
                self._record_attempt(ip, user, signals.REASON_RATE_LIMIT)
            raise Rejection(429, "Too many connection attempts.", signals.REASON_RATE_LIMIT)

    @staticmethod
    def _session_user_id(request):
        """The user id the request's Django session holds (``None``: no cookie, no login):
        the session row only (Django's one query), not the user."""
        session = getattr(request, "session", None)
        if session is None or not session.session_key:
            return None
        request_sql.load_db_session(session)
        user_id = session.get(SESSION_KEY)
        if user_id is None:
            return None
        try:
            return get_user_model()._meta.pk.to_python(user_id)
        except ValidationError:
            return None

    def _check_connection(self, request, cookie_user):
        """The connect checks after the rate limit, in their documented order. Returns
        ``(token or None, channel)``; sets ``request.user``. Runs in the connect's transaction:
        the token is found and spent by one statement, and a later refusal rolls that back.
        ``cookie_user`` is the session's user id with tokens, else the cookie's user."""
        origin = request.headers.get("Origin")
        if self.CHECK_ORIGIN and origin is not None and not security.origin_allowed(origin):
            # The log names the origin (repr: a header is the client's text), so the fix is plain.
            raise Rejection(403, "Origin not allowed.", signals.REASON_ORIGIN, detail=f"(Origin {origin[:200]!r})")
        token = None
        if self.USE_WS_TOKEN:
            session_key = getattr(getattr(request, "session", None), "session_key", None)
            raw_token = self._single_query_value(request, protocol.QUERY_TOKEN, signals.REASON_TOKEN)
            # Of two concurrent uses of one token only one UPDATE matches (the other waits
            # for the first transaction on PostgreSQL, then finds the token used).
            token = tokens.spend_token(raw_token, session_key)
            if token is None or (cookie_user is not None and str(token.user_id) != str(cookie_user)):
                raise Rejection(401, "Invalid or expired token.", signals.REASON_TOKEN)
            request.user = self._connect_user = token.user
        else:
            request.user = cookie_user
        channel = self._connect_channel(request)
        if channel and not self.can_join_channel(request, channel):
            raise Rejection(403, "Channel not allowed.", signals.REASON_CHANNEL)
        if not self.has_required_permissions(request):
            raise Rejection(403, "Permission denied.", signals.REASON_PERMISSION)
        allowed, message = self._normalise_check(self._additional_connection_checks(request))
        if not allowed:
            raise Rejection(403, message or "Connection refused.", signals.REASON_CHECK)
        return token, channel

    def _open_connection(self, request, cookie_user, *args, ip="0.0.0.0", **kwargs):
        """The checks (spending the token), the row, the receivers, the ``connect`` hook: all
        in one transaction, so a refusal or failure at any step keeps nothing."""

        def open_connection():
            token, channel = self._check_connection(request, cookie_user)
            # The login behind the connection: the Django session the token was issued to
            # (else the one whose cookie came along), and the user's auth hash.
            session_key_hash = (
                token.session_key
                if token is not None
                else login.hash_session_key(getattr(getattr(request, "session", None), "session_key", None))
            )
            try:
                self.websocket_session = request_sql.insert_session(
                    connection_id=self.connection_id,
                    channel_name=channel,
                    user=request.user if request.user.is_authenticated else None,
                    api_gateway=self.api_gateway,
                    session_key_hash=session_key_hash,
                    auth_hash=login.auth_hash(request.user),
                )
            except IntegrityError:
                raise Rejection(409, "Connection id already registered.", signals.REASON_DUPLICATE) from None
            signals.connected.send(sender=type(self), request=request, session=self.websocket_session)
            if self.BROADCAST_PRESENCE:  # to the others: the new socket cannot be posted to yet
                presence.announce_on_commit(channel, "join", self.websocket_session, exclude=self.websocket_session.pk)
            response = self._as_response(self.connect(request, *args, **kwargs))
            if response.status_code < 300 and self.RATE_LIMIT_ENABLED:
                # The accepted attempt's audit row commits with the connection (no commit of
                # its own); a refused or failed connect is recorded after the rollback.
                ratelimit.audit_attempt(ip, request.user, successful=True, own_savepoint=False)
            return response

        _ = request.GET  # parsed here: a hostile query (SuspiciousOperation) is a 400 from dispatch, not a 500
        # Any answer but a 2xx refuses the connection in API Gateway: keep nothing then.
        return self._in_transaction(open_connection, request, kept_below=300)

    def _connects_in_one_statement(self, cookie_user):
        """Whether this connect may run as one statement (request_sql.py): a token with the
        cookie's login, and nothing of the project's to run between the checks and the commit:
        no hook or check overridden, no permission lists, no presence, no ``connected``
        receiver (PostgreSQL, outside a transaction: ``one_statement_connect_supported``)."""
        cls = type(self)
        base = WebSocketView
        return (
            self.USE_WS_TOKEN
            and cookie_user is not None
            and not self.BROADCAST_PRESENCE
            and not self.permissions_required
            and not self.all_permissions_required
            and cls.connect is base.connect
            and cls._additional_connection_checks is base._additional_connection_checks
            and cls.has_required_permissions is base.has_required_permissions
            and cls.can_join_channel is base.can_join_channel
            and cls._check_connection is base._check_connection
            and not signals.connected.has_listeners(cls)
            and request_sql.one_statement_connect_supported()
        )

    def _connect_in_one_statement(self, request, cookie_user, ip):
        """The connect as one statement, when every check before the token's can pass without
        the user: the origin, one token, a valid channel that admits everyone. ``None``: the
        general path decides (and refuses in the documented order)."""
        origin = request.headers.get("Origin")
        if self.CHECK_ORIGIN and origin is not None and not security.origin_allowed(origin):
            return None
        raw_tokens = request.GET.getlist(protocol.QUERY_TOKEN)
        channels = request.GET.getlist(protocol.QUERY_CHANNEL)
        if len(raw_tokens) != 1 or not tokens.is_plausible_token(raw_tokens[0]) or len(channels) > 1:
            return None
        channel = channels[0] if channels else ""
        if channel and not protocol.is_valid_channel_name(channel):
            return None
        channel = channel or self.api_gateway.default_channel_name
        if not channel_access.admits_everyone(channel, allow_unlisted=self.ALLOW_UNLISTED_CHANNELS):
            return None
        counting = None
        if self.RATE_LIMIT_ENABLED:
            counting = ratelimit.counting(ip, cookie_user, self.RATE_LIMIT_MAX_ATTEMPTS, self.RATE_LIMIT_WINDOW_MINUTES)
        try:
            decision, session, user = request_sql.connect_in_one_statement(
                raw_token=raw_tokens[0],
                session_key=request.session.session_key,
                user_id=cookie_user,
                session_auth_hash=request.session.get(HASH_SESSION_KEY),
                audit_ip=ip if self.RATE_LIMIT_ENABLED else None,
                counting=counting,
                connection_id=self.connection_id,
                channel_name=channel,
                api_gateway=self.api_gateway,
            )
        except IntegrityError:  # the attempt was counted (connect_in_one_statement)
            raise Rejection(409, "Connection id already registered.", signals.REASON_DUPLICATE) from None
        except Exception as exc:
            return self.handle_exception(request, exc)
        if decision is not None:
            self._enforce_rate_limit(ip, cookie_user, decision)
        if session is None:
            raise Rejection(401, "Invalid or expired token.", signals.REASON_TOKEN)
        self.websocket_session, request.user = session, user
        self._connect_user = user
        return JsonResponse({})

    def _in_transaction(self, step, request, kept_below=400):
        """Run ``step`` (returning a handler result) in a transaction (a savepoint under
        ``ATOMIC_REQUESTS``) and answer with its response. A ``Rejection``, an exception or
        an answer with a status from ``kept_below`` up rolls everything back; a ``Rejection``
        is re-raised for dispatch."""
        db = router.db_for_write(WebSocketSession)
        try:
            with transaction.atomic(using=db):
                response = self._as_response(step())
                if transaction.get_rollback(using=db):
                    # A receiver or the handler caught its own database error: the work is
                    # lost, so the request must not look as if it succeeded.
                    raise transaction.TransactionManagementError(
                        "A database error inside the request was caught without a savepoint "
                        "(wrap the failing statement in transaction.atomic())."
                    )
                if response.status_code >= kept_below:
                    transaction.set_rollback(True)
        except Rejection:
            raise
        except Exception as exc:
            return self.handle_exception(request, exc)
        return response

    def _connect_channel(self, request):
        channel = self._single_query_value(request, protocol.QUERY_CHANNEL, signals.REASON_CHANNEL)
        if not channel:
            return self.api_gateway.default_channel_name
        if not protocol.is_valid_channel_name(channel):
            raise Rejection(400, "Invalid channel name.", signals.REASON_CHANNEL)
        return channel

    @staticmethod
    def _single_query_value(request, name, reason):
        """The query parameter's value ("" when absent); given twice, it is ambiguous: 400."""
        values = request.GET.getlist(name)
        if len(values) > 1:
            raise Rejection(400, f"The {name} parameter is given more than once.", reason)
        return values[0] if values else ""

    @staticmethod
    def _normalise_check(result):
        if isinstance(result, tuple):
            return bool(result[0]), (result[1] if len(result) > 1 else "")
        return bool(result), ""

    def _record_attempt(self, ip, user, reason, successful=False):
        """The attempt's audit row (``ConnectionRateLimit``), written after the decision and
        outside the connect's transaction; it counts nothing (``ratelimit.hit`` did)."""
        if self.RATE_LIMIT_ENABLED:
            ratelimit.audit_attempt(ip, user, successful=successful, reason=reason)

    def _additional_connection_checks(self, request: HttpRequest, *args: Any, **kwargs: Any) -> bool | tuple[bool, str]:
        """Hook: return ``True``/``False`` or ``(allowed, message)``; runs last on connect."""
        return True, ""

    def connect(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Hook called after a connection was stored (``self.websocket_session``), in the
        connect's transaction.

        Return ``None`` (200 ``{}``), a dict or a response. A 3xx/4xx/5xx response refuses
        the connection and rolls back everything the connect did (the token stays unspent).
        """
        return None

    # --- $disconnect ----------------------------------------------------------------

    def _disconnect(self, request, *args, **kwargs):
        session = self._load_session(request)
        was_connected = session.connected  # else a send found it gone (410) and announced its leave
        request_sql.mark_disconnected(session)
        if self.BROADCAST_PRESENCE and was_connected:
            presence.announce_on_commit(session.channel_name, "leave", session)
        logger.info(
            "WebSocket disconnected",
            extra=log_context(session.connection_id, self.route, user_id=session.user_id),
        )

        if not signals.disconnected.has_listeners(type(self)) and type(self).disconnect is WebSocketView.disconnect:
            return JsonResponse({})  # nothing else to run: no transaction (two round trips) either

        # The socket is gone whatever the receivers and the hook do: the row above stays
        # marked; only their own writes roll back when they fail.
        def after_disconnect():
            signals.disconnected.send(sender=type(self), request=request, session=session)
            return self.disconnect(request, *args, **kwargs)

        return self._in_transaction(after_disconnect, request)

    def disconnect(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Hook called after the session was marked disconnected."""
        return None

    # --- messages -------------------------------------------------------------------

    def _message(self, request, *args, **kwargs):
        session = self._load_session(request)
        if not session.connected:
            raise Rejection(410, "Connection is closed.")
        if login.connection_outlived_login(session):
            # The login ended without a signal (a queryset update): end the connection now.
            login.end_connections(WebSocketSession.objects.filter(pk=session.pk), "login ended")
            raise Rejection(410, "Connection is closed: the login that opened it has ended.")
        self.body = self._parse_body(request)
        handler_name = self.get_handler_name()
        if not self.has_required_permissions(request):
            raise Rejection(403, "Permission denied.", signals.REASON_PERMISSION)
        logger.debug(
            "WebSocket message for %s",
            handler_name,
            extra=log_context(session.connection_id, self.route, user_id=session.user_id),
        )

        def handle_message():
            signals.message_received.send(
                sender=type(self), request=request, session=session, route=self.route, handler=handler_name
            )
            result = getattr(self, handler_name)(request, *args, **kwargs)
            # Counted only for a message that was handled: the transaction rolls it back otherwise.
            request_sql.count_message(session)
            return result

        return self._in_transaction(handle_message, request)

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
        return any(request.user.has_perm(perm) for perm in self.permissions_required)

    def has_all_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perms(self.all_permissions_required)

    def has_required_permissions(self, request: HttpRequest) -> bool:
        """Both lists apply when both are set."""
        if self.permissions_required and not self.has_any_permission(request):
            return False
        return not (self.all_permissions_required and not self.has_all_permission(request))

    def can_join_channel(self, request: HttpRequest, channel_name: str) -> bool:
        """Whether ``request.user`` may join ``channel_name``: on $connect and change_channel.

        The channel rules of the admin (``ChannelPermission``, see channel_access.py) and
        ``ALLOW_UNLISTED_CHANNELS``. Override to add your own rule; call super() to keep these.
        """
        return channel_access.may_join(request.user, channel_name, allow_unlisted=self.ALLOW_UNLISTED_CHANNELS)

    # --- handlers -------------------------------------------------------------------

    @handler
    def default(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Fallback for messages naming no allowed handler. Override it."""
        raise Rejection(400, "Unknown handler.")

    @handler
    def change_channel(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Built-in: ``{"handler": "change_channel", "channel": "<name>"}``."""
        channel = self.body.get("channel")
        if not protocol.is_valid_channel_name(channel):
            raise Rejection(400, "Invalid channel name.", signals.REASON_CHANNEL)
        if not self.can_join_channel(request, channel):
            raise Rejection(403, "Channel not allowed.", signals.REASON_CHANNEL)
        left = self.websocket_session.channel_name
        WebSocketSession.objects.filter(pk=self.websocket_session.pk).update(channel_name=channel)
        self.websocket_session.channel_name = channel
        if self.BROADCAST_PRESENCE and left != channel:
            presence.announce_on_commit(left, "leave", self.websocket_session)
            presence.announce_on_commit(channel, "join", self.websocket_session)
        return {"type": "channel_changed", "channel": channel}

    @handler
    def resume(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HandlerResult:
        """Built-in: ``{"handler": "resume", "channel": "<this connection's channel>", "after": N,
        "user_after": M}`` (either part optional; ``null``: only where the stream is now): post
        what the connection missed on its channel and its user's direct stream, in order, or a
        ``resume_gap``, then ``{"type": "resumed", "streams": {...}}`` (docs/history.md)."""
        after, user_after = self.body.get("after"), self.body.get("user_after")
        for value in (after, user_after):
            if value is not None and (type(value) is not int or value < 0):
                raise Rejection(400, "after and user_after must be non-negative integers.")
        channel = self.websocket_session.channel_name
        if "after" in self.body and self.body.get("channel", channel) != channel:
            raise Rejection(409, "resume names another channel than this connection's.", signals.REASON_CHANNEL)
        if after is not None and not channel:
            raise Rejection(400, "This connection has no channel to resume.", signals.REASON_CHANNEL)
        streams = history.resume_session(
            self.websocket_session,
            channel,
            after,
            user_after,
            channel_position="after" in self.body,
            user_position="user_after" in self.body,
        )
        return {"type": "resumed", "streams": streams}

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
        raw = tokens.issue_token(request.user, request.session.session_key)
        return JsonResponse({"token": raw, "expires_in": get_setting("token_expiry_seconds")})
