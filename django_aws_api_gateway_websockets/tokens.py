"""Single-use connect tokens (docs/security.md).

The browser gets a raw token from ``WebSocketTokenView`` and puts it on the wss URL as
``ws_token``; only its SHA-256 is stored. A token is bound to the user and the Django
session that asked for it (stored as a keyed hash, ``login.hash_session_key``), expires after ``WEBSOCKETS["token_expiry_seconds"]`` and is
consumed by a conditional UPDATE, so of two concurrent uses exactly one wins on any database.

On ``$connect`` the token is found and spent by one statement (``spend_token``): an
``UPDATE … RETURNING`` (db.tokens) that on PostgreSQL also brings the user's row, where the
database has it (db.features); elsewhere a ``SELECT`` then the conditional ``UPDATE``. It runs in the
connect's transaction, so a connect refused later rolls the spend back.
"""

import hashlib
import secrets
from datetime import timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Q
from django.utils import timezone

from .conf import get_setting
from .db import tokens as token_sql
from .db.rows import fetch_named
from .login import hash_login_id, hash_session_key
from .models import WebSocketToken

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


def is_plausible_token(raw):
    return isinstance(raw, str) and 20 <= len(raw) <= 128


def spend_token(raw, session_key=None, max_age_seconds=None):
    """Find and consume ``raw`` in one statement; the spent token (``pk``, ``user_id``,
    ``user``, ``session_key``) or ``None``. Call it in a transaction that a later refusal rolls
    back (the view's connect does). Of two concurrent uses exactly one wins: the other's
    UPDATE waits for the row, then no longer matches ``used = false``."""
    if not is_plausible_token(raw):
        return None
    db = router.db_for_write(WebSocketToken)
    connection = connections[db]
    if not token_sql.one_statement_spend(connection):
        token = find_valid_token(raw, session_key, max_age_seconds)
        return token if token is not None and mark_used(token) else None
    spend = token_sql.spend_statement(connection, bool(session_key))
    params = spend_params(connection, spend, raw, max_age_seconds, session_key)
    with connection.cursor() as cursor:
        cursor.execute(spend.sql, params)
        row = fetch_named(cursor, spend.names)
    if row is None:
        return None
    user: Any
    if spend.user_columns is None:
        user = get_user_model()._default_manager.using(db).get(pk=row[token_sql.TOKEN_USER_ID])
    else:
        user = spend.user_columns.instance_from(row, token_sql.USER_PREFIX, connection)
    if not user.is_active:
        return None  # the caller's transaction must roll the spend back (the view raises)
    token_id = row[token_sql.TOKEN_ID]
    return SimpleNamespace(
        pk=token_id,
        id=token_id,
        user_id=user.pk,
        user=user,
        session_key=row[token_sql.TOKEN_SESSION_KEY],
        login_hash=row[token_sql.TOKEN_LOGIN_HASH],
        used=True,
    )


def spend_params(connection, spend, raw, max_age_seconds=None, session_key=None, user_id=None):
    """The parameters of ``spend`` (``db.tokens.spend_statement``) for the raw token."""
    max_age = max_age_seconds or get_setting("token_expiry_seconds")
    return token_sql.spend_params(
        connection,
        spend,
        hash_token(raw),
        timezone.now() - timedelta(seconds=max_age),
        hash_session_key(session_key) if session_key else None,
        user_id,
    )


def cleanup_tokens(max_age_seconds=300):
    """Delete used tokens and tokens older than ``max_age_seconds``; returns the count."""
    return delete_expired_tokens(max_age_seconds)[0]


def delete_expired_tokens(max_age_seconds=300):
    """``cleanup_tokens``, returning ``QuerySet.delete()``'s ``(count, per model)``
    (``WebSocketToken.cleanup_expired``, as 4.x returned it)."""
    cutoff = timezone.now() - timedelta(seconds=max_age_seconds)
    return WebSocketToken.objects.filter(Q(used=True) | Q(created_at__lt=cutoff)).delete()
