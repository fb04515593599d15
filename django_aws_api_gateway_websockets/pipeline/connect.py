"""``$connect``: one ordered pipeline of named steps (docs/architecture.md#connect), each a
small unit reading one parsed ``ConnectRequest``.

The steps run in ``STEPS``' order: the gateway's secret, the rate limit, the origin, the token,
the channel, its rules, the permissions, the view's own checks, then the connection opened (the
row, the receivers, the ``connect`` hook). Steps 3 to 9 run in one transaction that a refusal
or a failure rolls back.

Two strategies execute the same steps:

- the general path: each step's ``run``, in order;
- one statement (PostgreSQL, db.connect): when nothing of the project's runs between the checks
  and the commit, the steps that need no user check in Python (``admits``: the origin, one
  plausible token, a valid channel that admits everyone), and the rate limit, the token and
  the connection's row are one statement (pipeline.one_statement). A step that would refuse
  hands the request to the general path, which refuses in the documented order.

Whether a view may use the statement is decided once per view class (``plan_for``, called at
class creation) from the steps' own declarations (the hooks they call, the attributes they
read), and reported by ``manage.py check`` (checks/connect_plans.py, I090).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.http import HttpRequest, JsonResponse

from .. import channel_access, login, presence, protocol, ratelimit, security, signals, tokens
from ..db import django_sessions
from ..db import sessions as session_sql
from ..gateway_lookup import get_gateway
from ..log_context import log_context
from . import one_statement
from .connection import authenticate_gateway
from .refusal import is_rejection, logger, refuse
from .transactions import run_in_transaction

if TYPE_CHECKING:
    from ..models import ApiGateway


# --- the request, parsed once ---------------------------------------------------------------


@dataclass(frozen=True)
class ConnectRequest:
    """What a ``$connect`` claims, read from the integration request. Each part is read on
    first use, by the step that needs it, so the steps keep their order (the query string,
    for one, is parsed only after the gateway's secret was checked)."""

    http: HttpRequest
    uses_token: bool  # the view's USE_WS_TOKEN

    @cached_property
    def api_id(self) -> str:
        return self.http.headers.get(protocol.HEADER_API_ID, "")

    @cached_property
    def gateway(self) -> "ApiGateway | None":
        """The record the request's API id names, from the process cache; re-read once when the
        secret does not match, so a rotation made by another process is seen at once (a query
        only on that rare path, never on the hot one)."""
        gateway = get_gateway(self.api_id)
        if gateway is not None and not security.integration_trusted(gateway, self.http):
            gateway = get_gateway(self.api_id, fresh=True)
        return gateway

    @cached_property
    def source_ip(self) -> str:
        return security.source_ip(self.http, self.gateway)

    @cached_property
    def origin(self) -> str | None:
        return self.http.headers.get("Origin")

    @cached_property
    def tokens(self) -> list[str]:
        return self.http.GET.getlist(protocol.QUERY_TOKEN)

    @cached_property
    def channels(self) -> list[str]:
        return self.http.GET.getlist(protocol.QUERY_CHANNEL)

    @cached_property
    def cookie_session(self) -> Any:
        """The browser's Django session (its cookie came with the handshake), or ``None``; with
        tokens and Django's database engine, a read-only snapshot read in one plain ``SELECT``
        (db/django_sessions.py: the ORM's load costs more CPU than the rest of the check)."""
        session = getattr(self.http, "session", None)
        return django_sessions.snapshot(session) if self.uses_token and session is not None else session

    @cached_property
    def cookie_user(self) -> Any:
        """With tokens: the user id the cookie's Django session holds (``None``: no cookie, no
        login), the session row only (``SessionStore.load``: Django's one query), never the
        user; the token names the user. Without: the cookie's user."""
        if not self.uses_token:
            return getattr(self.http, "user", None) or AnonymousUser()
        session = self.cookie_session
        if session is None or not session.session_key:
            return None
        user_id = session.get(SESSION_KEY)
        if user_id is None:
            return None
        try:
            return get_user_model()._meta.pk.to_python(user_id)
        except ValidationError:
            return None


@dataclass
class ConnectState:
    """What the steps found: the spent token, the channel, the user who connects."""

    user: Any
    token: Any = None
    channel: str = ""


# --- the steps ------------------------------------------------------------------------------


def single_query_value(values: list[str], name: str, reason: str) -> str:
    """A query parameter's value ("" when absent); given twice, it is ambiguous: 400."""
    if len(values) > 1:
        refuse(400, f"The {name} parameter is given more than once.", reason)
    return values[0] if values else ""


def check_gateway(view, req: ConnectRequest, state: ConnectState) -> None:
    """1. The request comes from a registered API and carries its secret."""
    authenticate_gateway(view, req.http, req.gateway)


def count_attempt(view, req: ConnectRequest, state: ConnectState) -> None:
    """2. The rate limit: one atomic count per IP (and user) decides (ratelimit.hit)."""
    if view.RATE_LIMIT_ENABLED:
        decision = ratelimit.hit(
            req.source_ip, req.cookie_user, view.RATE_LIMIT_MAX_ATTEMPTS, view.RATE_LIMIT_WINDOW_MINUTES
        )
        enforce_rate_limit(view, req, decision)


def enforce_rate_limit(view, req: ConnectRequest, decision: ratelimit.Decision) -> None:
    """Past the limit nothing is written but the first refusal's audit row."""
    if not decision.allowed:
        if decision.first_refusal:
            record_attempt(view, req.source_ip, req.cookie_user, signals.REASON_RATE_LIMIT)
        refuse(429, "Too many connection attempts.", signals.REASON_RATE_LIMIT)


def origin_admitted(view, req: ConnectRequest) -> bool:
    return not (view.CHECK_ORIGIN and req.origin is not None and not security.origin_allowed(req.origin))


def check_origin(view, req: ConnectRequest, state: ConnectState) -> None:
    """3. The ``Origin``, when present, is trusted."""
    if not origin_admitted(view, req):
        # The log names the origin (repr: a header is the client's text), so the fix is plain.
        origin = req.origin or ""
        refuse(403, "Origin not allowed.", signals.REASON_ORIGIN, detail=f"(Origin {origin[:200]!r})")


def one_plausible_token(view, req: ConnectRequest) -> bool:
    return len(req.tokens) == 1 and tokens.is_plausible_token(req.tokens[0])


def spend_token(view, req: ConnectRequest, state: ConnectState) -> None:
    """4. The token is valid, unused, unexpired and the cookie's login's: found and spent by one
    statement (tokens.spend_token); of two concurrent uses only one UPDATE matches."""
    if not view.USE_WS_TOKEN:
        req.http.user = state.user
        return
    session_key = getattr(req.cookie_session, "session_key", None)
    raw = single_query_value(req.tokens, protocol.QUERY_TOKEN, signals.REASON_TOKEN)
    token = tokens.spend_token(raw, session_key)
    cookie_user = req.cookie_user
    if token is None or (cookie_user is not None and str(token.user_id) != str(cookie_user)):
        refuse(401, "Invalid or expired token.", signals.REASON_TOKEN)
    state.token = token
    req.http.user = state.user = view._connect_user = token.user


def channel_plausible(view, req: ConnectRequest) -> bool:
    return len(req.channels) <= 1 and (not req.channels or protocol.is_valid_channel_name(req.channels[0]))


def read_channel(view, req: ConnectRequest, state: ConnectState) -> None:
    """5. ``channel`` is a valid name; empty: the record's default channel."""
    channel = single_query_value(req.channels, protocol.QUERY_CHANNEL, signals.REASON_CHANNEL)
    if channel and not protocol.is_valid_channel_name(channel):
        refuse(400, "Invalid channel name.", signals.REASON_CHANNEL)
    state.channel = channel or view.api_gateway.default_channel_name


def requested_channel(view, req: ConnectRequest) -> str:
    """The channel a plausible request names (``channel_plausible``), else the record's default."""
    return (req.channels[0] if req.channels else "") or view.api_gateway.default_channel_name


def channel_admits_everyone(view, req: ConnectRequest) -> bool:
    channel = requested_channel(view, req)
    return channel_access.admits_everyone(channel, allow_unlisted=view.ALLOW_UNLISTED_CHANNELS)


def check_channel_access(view, req: ConnectRequest, state: ConnectState) -> None:
    """6. ``can_join_channel``: the channel rules."""
    if state.channel and not view.can_join_channel(req.http, state.channel):
        refuse(403, "Channel not allowed.", signals.REASON_CHANNEL)


def check_permissions(view, req: ConnectRequest, state: ConnectState) -> None:
    """7. ``permissions_required`` / ``all_permissions_required``."""
    if not view.has_required_permissions(req.http):
        refuse(403, "Permission denied.", signals.REASON_PERMISSION)


def normalise_check(result: Any) -> tuple[bool, str]:
    if isinstance(result, tuple):
        return bool(result[0]), (result[1] if len(result) > 1 else "")
    return bool(result), ""


def check_additional(view, req: ConnectRequest, state: ConnectState) -> None:
    """8. ``_additional_connection_checks``, the view's own."""
    allowed, message = normalise_check(view._additional_connection_checks(req.http))
    if not allowed:
        refuse(403, message or "Connection refused.", signals.REASON_CHECK)


def open_connection(view, req: ConnectRequest, state: ConnectState, args: tuple, kwargs: dict) -> Any:
    """9. The connection's row (with the login behind it), ``connected`` receivers, presence,
    the ``connect`` hook, and the accepted attempt's audit row (in the transaction)."""
    request, user, token = req.http, req.http.user, state.token
    # The login behind the connection: the Django session the token was issued to (else the
    # one whose cookie came along), and the user's auth hash; the token carries its login's id
    # (a connect without the cookie), else the cookie's.
    cookie_session = req.cookie_session
    session_key_hash = (
        token.session_key if token is not None else login.hash_session_key(getattr(cookie_session, "session_key", None))
    )
    login_hash = getattr(token, "login_hash", "") or login.login_hash_of(cookie_session)
    try:
        view.websocket_session = session_sql.insert_session(
            connection_id=view.connection_id,
            channel_name=state.channel,
            user=user if user.is_authenticated else None,
            api_gateway=view.api_gateway,
            session_key_hash=session_key_hash,
            auth_hash=login.auth_hash(user),
            **(
                {"login_hash": login_hash, **login.session_check_values(cookie_session)}
                if user.is_authenticated
                else {}  # anonymous: no login to end
            ),
        )
    except IntegrityError:
        refuse(409, "Connection id already registered.", signals.REASON_DUPLICATE)
    signals.connected.send(sender=type(view), request=request, session=view.websocket_session)
    if view.BROADCAST_PRESENCE:  # to the others: the new socket cannot be posted to yet
        presence.announce_on_commit(
            state.channel, "join", view.websocket_session, exclude=view.websocket_session.pk, view_class=type(view)
        )
    response = view._as_response(view.connect(request, *args, **kwargs))
    if response.status_code < 300 and view.RATE_LIMIT_ENABLED:
        # The accepted attempt's audit row commits with the connection (no commit of its own);
        # a refused or failed connect is recorded after the rollback.
        ratelimit.audit_attempt(req.source_ip, user, successful=True, own_savepoint=False)
    return response


@dataclass(frozen=True)
class Step:
    """One step: ``run`` on the general path. For the one-statement plan: ``hooks``, the view
    methods it calls (overridden: the project's code must run, so no statement);
    ``unset``/``set``, the view attributes that must be falsy/truthy; ``admits``, its check
    without the user (``False``: the general path decides); ``in_statement``: the statement
    does its work."""

    name: str
    run: Callable[..., Any]
    hooks: tuple[str, ...] = ()
    unset: tuple[str, ...] = ()
    set: tuple[str, ...] = ()
    admits: Callable[..., bool] | None = None
    in_statement: bool = False


#: The nine steps, in their documented order (docs/architecture.md#connect).
STEPS: tuple[Step, ...] = (
    Step("gateway secret", check_gateway),
    Step("rate limit", count_attempt, in_statement=True),
    Step("origin", check_origin, admits=origin_admitted),
    Step("token", spend_token, set=("USE_WS_TOKEN",), admits=one_plausible_token, in_statement=True),
    Step("channel", read_channel, admits=channel_plausible),
    Step("channel rules", check_channel_access, hooks=("can_join_channel",), admits=channel_admits_everyone),
    Step(
        "permissions",
        check_permissions,
        hooks=("has_required_permissions",),
        unset=("permissions_required", "all_permissions_required"),
    ),
    Step("additional checks", check_additional, hooks=("_additional_connection_checks",)),
    Step("open", open_connection, hooks=("connect",), unset=("BROADCAST_PRESENCE",), in_statement=True),
)
GATEWAY, RATE_LIMIT, *CHECKS, OPEN = STEPS
#: The view attributes the plan reads (``as_view(**initkwargs)`` setting one re-plans that view),
#: the hooks included: one given to ``as_view()`` is the instance's, the class's plan never saw it.
PLAN_ATTRIBUTES = frozenset(name for step in STEPS for name in (*step.hooks, *step.unset, *step.set))


# --- the plan, once per view class ----------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How a view class connects: ``one_statement`` where the database and the request allow
    it, else the general path ``because`` of what."""

    one_statement: bool
    because: str = ""
    admits: tuple[Callable[..., bool], ...] = field(default=(), repr=False)


def plan_for(cls: type, base: type, overrides: dict[str, Any] | None = None) -> Plan:
    """The plan of view class ``cls`` (``base``: WebSocketView), from the steps' declarations;
    ``overrides``: attributes ``as_view()`` sets on its instances."""
    overrides = overrides or {}

    def value(name):
        return overrides[name] if name in overrides else getattr(cls, name)

    for step in STEPS:
        for hook in step.hooks:
            if hook in overrides or getattr(cls, hook) is not getattr(base, hook):
                return Plan(False, f"it overrides `{hook}`")
        for name in step.unset:
            if value(name):
                return Plan(False, f"it sets `{name}`")
        for name in step.set:
            if not value(name):
                return Plan(False, f"it sets `{name} = False`")
    return Plan(True, admits=tuple(step.admits for step in STEPS if step.admits is not None))


# --- running it -----------------------------------------------------------------------------


def run_connect(view, request: HttpRequest, args: tuple, kwargs: dict) -> Any:
    """The ``$connect`` of ``view``: its answer, or a ``Rejection`` raised for dispatch."""
    req = ConnectRequest(request, bool(view.USE_WS_TOKEN))
    GATEWAY.run(view, req, ConnectState(None))
    state = ConnectState(req.cookie_user)
    view._connect_user = state.user
    try:
        response = None
        if statement_allowed(view, req):
            response = connect_in_one_statement(view, req, state)
        if response is None:  # the general path
            RATE_LIMIT.run(view, req, state)
            _ = request.GET  # parsed here: a hostile query (SuspiciousOperation) is a 400 from dispatch, not a 500
            # Any answer but a 2xx refuses the connection in API Gateway: keep nothing then.
            response = run_in_transaction(
                view, lambda: checks_then_open(view, req, state, args, kwargs), kept_below=300
            )
    except Exception as exc:
        if is_rejection(exc) and exc.reason != signals.REASON_RATE_LIMIT:  # type: ignore[attr-defined]
            # the limiter keeps its own audit rows
            record_attempt(view, req.source_ip, view._connect_user, exc.reason)  # type: ignore[attr-defined]
        raise
    if response.status_code >= 300:  # refused by the connect hook, or failed: nothing was kept
        reason = signals.REASON_CHECK if response.status_code < 500 else signals.REASON_ERROR
        record_attempt(view, req.source_ip, request.user, reason)
        if reason == signals.REASON_CHECK:  # a failure was logged (and mailed) already
            view._announce_rejection(request, response.status_code, "Refused by the connect hook.", reason)
        return response
    session = view.websocket_session
    logger.info(
        "WebSocket connected",
        extra=log_context(session.connection_id, view.route, user_id=session.user_id, channel=session.channel_name),
    )
    return response


def checks_then_open(view, req: ConnectRequest, state: ConnectState, args: tuple, kwargs: dict) -> Any:
    """Steps 3 to 9, in the connect's transaction."""
    for step in CHECKS:
        step.run(view, req, state)
    return OPEN.run(view, req, state, args, kwargs)


def statement_allowed(view, req: ConnectRequest) -> bool:
    """The view's plan (decided once per class) and what only this request can say: a token
    with the cookie's login, no ``connected`` receiver, the database (PostgreSQL, outside a
    transaction), and every step's check that needs no user."""
    plan = view._connect_plan
    return (
        plan.one_statement
        and req.cookie_user is not None
        and not signals.connected.has_listeners(type(view))
        and one_statement.supported()
        and all(admits(view, req) for admits in plan.admits)
    )


def connect_in_one_statement(view, req: ConnectRequest, state: ConnectState) -> Any:
    """The steps' statement (pipeline.one_statement): the rate limit's count, the token spend,
    the connection's row and the audit row. Refusals are the general path's."""
    session_store = req.cookie_session
    channel = requested_channel(view, req)
    counting = None
    if view.RATE_LIMIT_ENABLED:
        counting = ratelimit.counting(
            req.source_ip, state.user, view.RATE_LIMIT_MAX_ATTEMPTS, view.RATE_LIMIT_WINDOW_MINUTES
        )
    try:
        decision, session, user = one_statement.connect_in_one_statement(
            raw_token=req.tokens[0],
            session_key=session_store.session_key,
            user_id=state.user,
            session_auth_hash=session_store.get(HASH_SESSION_KEY),
            login_hash=login.login_hash_of(session_store),
            session_values=login.session_check_values(session_store),
            audit_ip=req.source_ip if view.RATE_LIMIT_ENABLED else None,
            counting=counting,
            connection_id=view.connection_id,
            channel_name=channel,
            api_gateway=view.api_gateway,
        )
    except IntegrityError:  # the attempt was counted (one_statement.connect_in_one_statement)
        refuse(409, "Connection id already registered.", signals.REASON_DUPLICATE)
    except Exception as exc:
        return view.handle_exception(req.http, exc)
    if decision is not None:
        enforce_rate_limit(view, req, decision)
    if session is None:
        refuse(401, "Invalid or expired token.", signals.REASON_TOKEN)
    view.websocket_session, req.http.user = session, user
    view._connect_user = state.user = user
    return JsonResponse({})


def record_attempt(view, ip: str, user: Any, reason: str) -> None:
    """The attempt's audit row (``ConnectionRateLimit``), written after the decision and outside
    the connect's transaction; it counts nothing (``ratelimit.hit`` did)."""
    if view.RATE_LIMIT_ENABLED:
        ratelimit.audit_attempt(ip, user, successful=False, reason=reason)
