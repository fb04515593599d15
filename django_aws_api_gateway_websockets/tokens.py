"""Single-use connect tokens (docs/security.md).

The browser gets a raw token from ``WebSocketTokenView`` and puts it on the wss URL as
``ws_token``; only its SHA-256 is stored. A token is bound to the user and the Django
session that asked for it (stored as a keyed hash, ``login.hash_session_key``), expires after ``WEBSOCKETS["token_expiry_seconds"]`` and is
consumed by a conditional UPDATE, so of two concurrent uses exactly one wins on any database.

On ``$connect`` the token is found and spent by one statement (``spend_token``): an
``UPDATE … FROM <user table> … RETURNING`` that also brings the user's row, on PostgreSQL and
SQLite ≥ 3.35; elsewhere a ``SELECT`` then the conditional ``UPDATE``. It runs in the
connect's transaction, so a connect refused later rolls the spend back.
"""

import hashlib
import secrets
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Q
from django.utils import timezone

from .conf import get_setting
from .login import hash_login_id, hash_session_key
from .models import WebSocketToken
from .sql_rows import ModelColumns, single_table

if TYPE_CHECKING:
    from django.contrib.auth.models import _User  # the AUTH_USER_MODEL, for django-stubs' plugin

RAW_TOKEN_BYTES = 32


def hash_token(raw):
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def issue_token(user: "_User", session_key: str | None, login_id: str | None = None) -> str:
    """Store a new token for ``user``/``session_key``; return the raw value. ``login_id``: the
    login's id in that session (login.py), carried to the connection's row."""
    return create_token(user, session_key, login_id)[0]


def create_token(user: "_User", session_key: str | None, login_id: str | None = None) -> tuple[str, WebSocketToken]:
    """``issue_token``, also returning the stored row (which holds the token's hash)."""
    raw = secrets.token_urlsafe(RAW_TOKEN_BYTES)
    row = WebSocketToken.objects.create(
        token=hash_token(raw),
        user=user,
        session_key=hash_session_key(session_key),
        login_hash=hash_login_id(login_id),
    )
    return raw, row


def may_issue_token(user: "_User", max_tokens_per_minute: int | None = None) -> bool:
    """False when ``user`` already had the per-minute number of tokens."""
    limit = max_tokens_per_minute or get_setting("token_rate_limit_per_minute")
    since = timezone.now() - timedelta(minutes=1)
    return WebSocketToken.objects.filter(user=user, created_at__gte=since).count() < limit


def find_valid_token(raw, session_key=None, max_age_seconds=None):
    """The unused, unexpired token row for ``raw`` (with its user), or ``None``.

    When the connect request carries a Django session (shared cookie domain), it must be
    the session the token was issued to; without one (the browser talks to the raw
    ``execute-api`` domain), the short-lived single-use token alone identifies the user.
    """
    if not is_plausible_token(raw):
        return None
    max_age = max_age_seconds or get_setting("token_expiry_seconds")
    tokens = WebSocketToken.objects.select_related("user").filter(
        token=hash_token(raw),
        used=False,
        created_at__gte=timezone.now() - timedelta(seconds=max_age),
    )
    if session_key:
        tokens = tokens.filter(session_key=hash_session_key(session_key))
    token = tokens.first()
    if token is None or not token.user.is_active:
        return None
    return token


def mark_used(token):
    """Consume ``token``; False when another request consumed it first."""
    return WebSocketToken.objects.filter(pk=token.pk, used=False).update(used=True) == 1


def consume_token(raw, session_key=None, max_age_seconds=None):
    """Validate and consume in one go; returns the token row or ``None``."""
    token = find_valid_token(raw, session_key, max_age_seconds)
    if token is not None and mark_used(token):
        return token
    return None


def spend_statement(connection, with_session, with_user=False, condition=""):
    """``(sql, the user's ModelColumns or None, needs is_active param)`` of the
    one-statement spend on this connection. PostgreSQL returns the user's row with the token
    (``UPDATE … FROM``); SQLite's RETURNING can only name the token's columns, so there the
    user is read by a second query. The returned columns are named ``c0``, ``c1``, … (the
    token's id, session key, user id and login hash, then the user's fields), so the statement also
    serves as a ``WITH`` clause (request_sql.py). Parameters: used (``True``), the token's
    hash, ``False``, the oldest creation time, then ``True`` when it needs is_active, the
    session key's hash ``with_session``, the user's pk ``with_user``; ``condition``: one more
    SQL condition (with its own parameters after those)."""
    key = (connection.alias, connection.vendor, with_session, with_user, condition)
    cached = _SPEND_SQL.get(key)
    if cached is not None:
        return cached
    User = get_user_model()
    qn = connection.ops.quote_name
    tok, usr = qn(WebSocketToken._meta.db_table), qn(User._meta.db_table)
    user_pk = f"{usr}.{qn(User._meta.pk.column)}"
    fields = list(User._meta.concrete_fields)
    active = next((f for f in fields if f.attname == "is_active"), None)
    where = [f"{tok}.{qn('token')} = %s", f"{tok}.{qn('used')} = %s", f"{tok}.{qn('created_at')} >= %s"]
    returning = [
        f"{tok}.{qn('id')}",
        f"{tok}.{qn('session_key')}",
        f"{tok}.{qn('user_id')}",
        f"{tok}.{qn('login_hash')}",
    ]
    user_columns = ModelColumns(User, connection, usr) if connection.vendor == "postgresql" else None
    if user_columns is not None:
        where.append(f"{user_pk} = {tok}.{qn('user_id')}")
        if active is not None:  # an inactive user's token stays unspent
            where.append(f"{usr}.{qn(active.column)} = %s")
        returning += user_columns.columns
        from_clause = f" FROM {usr}"
    else:
        from_clause = ""
        if active is not None:
            where.append(f"{tok}.{qn('user_id')} IN (SELECT {user_pk} FROM {usr} WHERE {usr}.{qn(active.column)} = %s)")
    if with_session:
        where.append(f"{tok}.{qn('session_key')} = %s")
    if with_user:
        where.append(f"{tok}.{qn('user_id')} = %s")
    if condition:
        where.append(condition)
    columns = ", ".join(f"{column} AS {qn(f'c{i}')}" for i, column in enumerate(returning))
    sql = f"UPDATE {tok} SET {qn('used')} = %s{from_clause} WHERE {' AND '.join(where)} RETURNING {columns}"
    cached = _SPEND_SQL[key] = (sql, user_columns, active is not None)
    return cached


def spend_params(raw, max_age_seconds, connection, active_column, session_key=None, user_id=None):
    """The parameters of ``spend_statement``'s SQL, in order."""
    max_age = max_age_seconds or get_setting("token_expiry_seconds")
    params = [
        True,
        hash_token(raw),
        False,
        connection.ops.adapt_datetimefield_value(timezone.now() - timedelta(seconds=max_age)),
    ]
    if active_column:
        params.append(True)
    if session_key:
        params.append(hash_session_key(session_key))
    if user_id is not None:
        params.append(user_id)
    return params


def is_plausible_token(raw):
    return isinstance(raw, str) and 20 <= len(raw) <= 128


# (alias, vendor, with_session, with_user, condition) -> spend_statement's result
_SPEND_SQL: dict[tuple[str, str, bool, bool, str], tuple[str, ModelColumns | None, bool]] = {}


def one_statement_spend(connection):
    """Whether ``spend_statement`` serves on this connection: PostgreSQL or SQLite >= 3.35, and
    a user model whose columns are all in its table (not a multi-table-inheritance child)."""
    if not single_table(get_user_model()):
        return False
    if connection.vendor == "postgresql":
        return True
    return connection.vendor == "sqlite" and connection.Database.sqlite_version_info >= (3, 35)


def spend_token(raw, session_key=None, max_age_seconds=None):
    """Find and consume ``raw`` in one statement; the spent token (``pk``, ``user_id``,
    ``user``, ``session_key``) or ``None``. Call it in a transaction that a later refusal rolls
    back (the view's connect does). Of two concurrent uses exactly one wins: the other's
    UPDATE waits for the row, then no longer matches ``used = false``."""
    if not is_plausible_token(raw):
        return None
    db = router.db_for_write(WebSocketToken)
    connection = connections[db]
    if not one_statement_spend(connection):
        token = find_valid_token(raw, session_key, max_age_seconds)
        return token if token is not None and mark_used(token) else None
    sql, user_columns, active_column = spend_statement(connection, bool(session_key))
    params = spend_params(raw, max_age_seconds, connection, active_column, session_key)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    if user_columns is None:
        user = get_user_model()._default_manager.using(db).get(pk=row[2])
    else:
        user = user_columns.instance(row[4:], connection)
    if not user.is_active:
        return None  # the caller's transaction must roll the spend back (the view raises)
    return SimpleNamespace(
        pk=row[0], id=row[0], user_id=user.pk, user=user, session_key=row[1], login_hash=row[3], used=True
    )


def cleanup_tokens(max_age_seconds=300):
    """Delete used tokens and tokens older than ``max_age_seconds``; returns the count."""
    return delete_expired_tokens(max_age_seconds)[0]


def delete_expired_tokens(max_age_seconds=300):
    """``cleanup_tokens``, returning ``QuerySet.delete()``'s ``(count, per model)``
    (``WebSocketToken.cleanup_expired``, as 4.x returned it)."""
    cutoff = timezone.now() - timedelta(seconds=max_age_seconds)
    return WebSocketToken.objects.filter(Q(used=True) | Q(created_at__lt=cutoff)).delete()
