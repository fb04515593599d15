"""A message (every route but ``$connect`` and ``$disconnect``): ordered steps over the
connection's row (docs/architecture.md#message).

1. the row, its gateway and user (one ``SELECT``), the gateway's secret;
2. the connection is open and its login has not ended (410);
3. the per-connection message rate (429, before any work on the body);
4. a part of a larger message (docs/large-messages.md) is held until the message is whole
   (``message_parts``: ``part_received`` until then); the body (400/413) and the handler it names;
5. the view's permissions (403);
6. the receivers and the handler, in a transaction of their own (nothing on the wire when
   they touch no database);
7. the count and the rate limiter's state, one autocommit ``UPDATE``, for a handled message
   (the limiter's state only for one refused or failed after step 3).

Two statements for a handler that touches no database, BEGIN and COMMIT included.
"""

from django.db import DatabaseError, connections, router, transaction
from django.http import JsonResponse

from .. import login, message_parts, parts, ratelimit, signals
from ..conf import get_setting
from ..db import sessions as session_sql
from ..log_context import log_context
from ..models import WebSocketSession
from .connection import load_connection
from .refusal import logger, refuse
from .transactions import run_in_transaction


def run_message(view, request, args, kwargs):
    session = load_connection(view, request)
    check_open(session)
    rated = message_rate(view, session)
    try:
        response = whole_message(view, request, session)
        if response is None:
            response = handle(view, request, session, args, kwargs)
    except Exception:
        if rated is not None:  # refused after the rate check (400, 403, a handler's Rejection)
            count(view, session, rated, handled=False)
        raise
    if response.status_code < 400:
        count(view, session, rated)
    elif rated is not None:  # the handler failed or answered 4xx/5xx: its work rolled back
        count(view, session, rated, handled=False)
    return response


def whole_message(view, request, session):
    """A part: held, answered ``part_received``; the part that completes its message becomes
    the request's body (``request.body`` and ``view.body`` are the whole message), and the
    handler runs on it. ``None``: the request goes on to the handler."""
    body = request.body
    if not parts.is_part(body):
        return None
    try:
        whole = message_parts.receive(session, body)
    except message_parts.PartRefused as refused:
        refuse(refused.status, str(refused), data=refused.frame)
    if whole is None:
        head = parts.parse(body)
        return JsonResponse({"type": "part_received", "p": head.message_id, "i": head.index})
    request._body = whole  # Django's cached body: what every reader of the request sees
    view._body, view._body_error = None, None  # parsed again, from the whole message
    return None


def handle(view, request, session, args, kwargs):
    """Steps 4 to 6: the body, the permissions, the receivers and the handler."""
    handler_name = read_body(view)
    if not view.has_required_permissions(request):
        refuse(403, "Permission denied.", signals.REASON_PERMISSION)
    logger.debug(
        "WebSocket message for %s",
        handler_name,
        extra=log_context(session.connection_id, view.route, user_id=session.user_id),
    )

    def run():
        signals.message_received.send(
            sender=type(view), request=request, session=session, route=view.route, handler=handler_name
        )
        return getattr(view, handler_name)(request, *args, **kwargs)

    return run_in_transaction(view, run)


def check_open(session) -> None:
    """A connection marked disconnected is gone (410); so is one whose login ended without a
    signal (a queryset update, a Django session that expired or was deleted): closed now."""
    if not session.connected:
        refuse(410, "Connection is closed.")
    if login.connection_outlived_login(session) or login.session_ended(session):
        login.end_connections(WebSocketSession.objects.filter(pk=session.pk), "login ended")
        refuse(410, "Connection is closed: the login that opened it has ended.")


def message_rate(view, session):
    """The per-connection message limit: the decision the counting UPDATE applies (``None``: the
    limit is off), or 429 before the body is parsed and the handler runs.

    The state is the connection's row (``message_tat_us``), read by the message's one SELECT
    and written by the UPDATE that counts it: no statement, and no cache, of its own (a cache
    would add a round trip per message, and the row is already at hand). Messages of one
    connection handled at the same moment read the same state, so each may pass, but each
    spends its place (the UPDATE advances the row's state as it is then): the bucket goes into
    debt and the next ones wait, so the rate holds however many are in flight; only the burst
    may be exceeded by those in flight at once. A message refused or failed after this check
    spends its place too (its own ``UPDATE`` of the state, not counted): the one write of a
    refused request, or invalid messages (each parsed, logged, announced) would be unlimited."""
    rate = view.MESSAGE_RATE_LIMIT if view.MESSAGE_RATE_LIMIT is not None else get_setting("message_rate_limit")
    if not rate:
        return None
    burst = view.MESSAGE_RATE_BURST or get_setting("message_rate_burst")
    decision = ratelimit.message_decision(session.message_tat_us, rate, burst)
    if not decision.allowed:
        refuse(
            429,
            f"Too many messages: this connection may send {rate:g} a second (bursts of {burst}).",
            signals.REASON_RATE_LIMIT,
            {"retry_after": round(decision.retry_after, 3)},
        )
    return decision


def read_body(view) -> str:
    """The body, parsed once (here, or earlier by an override that read ``view.body``), and the
    handler it names."""
    _ = view.body
    if view._body_error is not None:
        raise view._body_error
    return view.get_handler_name()


def count(view, session, rated, handled=True) -> None:
    """``request_count`` and the rate limiter's state, after the handler's commit: one
    ``UPDATE``. The count is a statistic: a crash between the handler's commit and this
    statement loses one increment, and a failure here is logged without changing the
    handler's answer (its work is committed). Not ``handled`` (refused or failed after the
    rate check): the limiter's state only, so a flood of invalid messages meets the limit too."""
    db = router.db_for_write(WebSocketSession)
    write = session_sql.count_message if handled else session_sql.charge_message
    try:
        if connections[db].in_atomic_block:  # ATOMIC_REQUESTS: a failure must not break that transaction
            with transaction.atomic(using=db):
                write(session, rated)
        else:
            write(session, rated)
    except DatabaseError:
        logger.warning(
            "Could not count the message",
            exc_info=True,
            extra=log_context(session.connection_id, view.route, user_id=session.user_id),
        )
