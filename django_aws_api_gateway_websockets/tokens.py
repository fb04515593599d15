"""Single-use connect tokens (SPEC §6).

The browser gets a raw token from ``WebSocketTokenView`` and puts it on the wss URL as
``ws_token``; only its SHA-256 is stored. A token is bound to the user and the Django
session that asked for it (stored as a keyed hash, ``login.hash_session_key``), expires after ``WEBSOCKETS["token_expiry_seconds"]`` and is
consumed by a conditional UPDATE, so of two concurrent uses exactly one wins on any database.
"""

import hashlib
import secrets
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from .conf import get_setting
from .login import hash_session_key
from .models import WebSocketToken

RAW_TOKEN_BYTES = 32


def hash_token(raw):
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def issue_token(user, session_key):
    """Store a new token for ``user``/``session_key``; return the raw value."""
    raw = secrets.token_urlsafe(RAW_TOKEN_BYTES)
    WebSocketToken.objects.create(token=hash_token(raw), user=user, session_key=hash_session_key(session_key))
    return raw


def may_issue_token(user, max_tokens_per_minute=None):
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
    if not isinstance(raw, str) or not 20 <= len(raw) <= 128:
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


def cleanup_tokens(max_age_seconds=300):
    """Delete used tokens and tokens older than ``max_age_seconds``; returns the count."""
    cutoff = timezone.now() - timedelta(seconds=max_age_seconds)
    deleted, _ = WebSocketToken.objects.filter(Q(used=True) | Q(created_at__lt=cutoff)).delete()
    return deleted
