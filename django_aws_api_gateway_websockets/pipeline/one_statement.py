"""The one-statement strategy of ``$connect`` (db.connect): the rate limit's count, the token
spend, the connection's row and the audit row of the general path's steps, run as one
statement when nothing of the project's runs between them (pipeline.connect decides, once
per view class). The outcomes are the general path's: its count first, then the checks and
the writes; in one round trip instead of six."""

from datetime import timedelta

from django.db import DatabaseError
from django.utils import timezone

from .. import login, ratelimit, tokens
from ..conf import get_setting
from ..db import connect as connect_sql
from ..models import WebSocketSession


def supported():
    """Whether the database can (db.connect.supported), for this request (not in a transaction)."""
    return connect_sql.supported(connect_sql.database())


def connect_in_one_statement(
    *,
    raw_token,
    session_key,
    user_id,
    session_auth_hash,
    audit_ip,
    counting,
    login_hash="",
    session_values=None,
    **values,
):
    """Spend ``raw_token`` (issued to ``user_id`` under the Django session ``session_key``),
    store the connection's row (``values``: its fields, ``user`` and ``session_key_hash``
    excepted) and, when ``audit_ip`` is given, the accepted attempt's audit row: one
    statement. With ``counting`` (``ratelimit.counting``), the attempt is counted by the same
    statement first, and nothing else happens past the limit.

    Returns ``(decision, session, user)``: the rate limit's ``Decision`` (``None`` without
    ``counting``), then ``None, None`` when refused or when the token does not match. A
    duplicate connection id raises ``IntegrityError``, any failure of the statement its
    ``DatabaseError``: nothing of the statement is kept, and the attempt is counted by itself
    (past the limit, the refusal is returned instead).

    ``session_auth_hash`` is the login's hash as the Django session recorded it; when the
    user's current one differs (a password changed meanwhile), the row is corrected at once.
    """
    connection = connect_sql.database()
    decision = None
    if counting and not ratelimit.counted_by_one_statement(connection):
        decision = ratelimit.count_attempt(counting)  # the cache's own atomic operation
        if not decision.allowed:
            return decision, None, None
        counting = None
    count_params = None
    if counting:
        count_params = ratelimit.upsert_statement(
            connection, counting.keys, counting.max_attempts, counting.window_seconds
        )[1]
    now = timezone.now()
    row = WebSocketSession(
        created_on=now,
        updated_on=now,
        **values,
        user_id=user_id,
        session_key_hash=login.hash_session_key(session_key),
        auth_hash=login.hash_auth_value(session_auth_hash),
        login_hash=login_hash,
        **(session_values or {}),
    )
    row._state.db = connection.alias
    try:
        outcome = connect_sql.run(
            connection,
            count_params=count_params,
            n_keys=len(counting.keys) if counting else 0,
            max_attempts=counting.max_attempts if counting else 0,
            token_hash=tokens.hash_token(raw_token),
            oldest=now - timedelta(seconds=get_setting("token_expiry_seconds")),
            session_key_hash=login.hash_session_key(session_key),
            user_id=user_id,
            row=row,
            audit_ip=audit_ip if audit_ip is not None and ratelimit.audit_enabled(True) else None,
        )
    except DatabaseError:
        # The failed statement kept nothing, its count neither: count the attempt by itself, as
        # the general path counts before anything else (past the limit that is the answer).
        if counting:
            decision = ratelimit.count_attempt(counting)
            if not decision.allowed:
                return decision, None, None
        raise
    if counting:
        decision = ratelimit.decide(ratelimit.counts_of(counting.keys, outcome.counts), counting.max_attempts)
    session, user = outcome.session, outcome.user
    if session is None:
        return decision, None, None
    current = login.auth_hash(user)
    if current != session.auth_hash:
        WebSocketSession.objects.using(connection.alias).filter(pk=session.pk).update(auth_hash=current)
        session.auth_hash = current
    session.user = user
    return decision, session, user
