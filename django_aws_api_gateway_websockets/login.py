"""A connection lives no longer than the login that opened it (docs/security.md).

Each connection row keeps two keyed hashes (HMAC-SHA256 with ``SECRET_KEY``, never the raw
values): the Django session key its token was issued under, and the user's session auth hash
(which changes with the password). Then:

- logging out of that Django session closes exactly that session's sockets, and spends the
  tokens issued to it that were not used yet;
- changing the password, or deactivating the user, closes all the user's sockets and spends
  all their unused tokens (any save of the user that may touch them: the full save too);

at the moment it happens (signals), through the Management API (DELETE @connections), after
the transaction that made the change commits. Rows are marked disconnected in that
transaction, so a message arriving meanwhile is refused (410). A change made without signals
(``QuerySet.update``) is caught at the connection's next message instead
(``connection_outlived_login``).

The salts are those of the 4.1.0 release, so hashes an upgraded database carries still verify.
"""

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import router, transaction
from django.db.models.signals import post_save
from django.utils.crypto import constant_time_compare, salted_hmac

from .log_context import log_context

logger = logging.getLogger(__name__)

SESSION_KEY_SALT = "django_aws_api_gateway_websockets.WebSocketToken.session_key"
AUTH_HASH_SALT = "django_aws_api_gateway_websockets.WebSocketSession.auth_hash"


def _keyed_hash(salt, value):
    return salted_hmac(salt, value, algorithm="sha256").hexdigest() if value else ""


def hash_session_key(session_key):
    """The keyed hash stored for a Django session key ("" for none)."""
    return _keyed_hash(SESSION_KEY_SALT, session_key)


def auth_hash(user):
    """The keyed hash of ``user``'s session auth hash ("" for anonymous users and user models
    without one)."""
    get_hash = getattr(user, "get_session_auth_hash", None)
    if user is None or not user.is_authenticated or get_hash is None:
        return ""
    return hash_auth_value(get_hash())


def hash_auth_value(session_auth_hash: str | None) -> str:
    """The keyed hash stored for a session auth hash (``user.get_session_auth_hash()``, or the
    copy Django keeps in the login's session); "" for none."""
    return _keyed_hash(AUTH_HASH_SALT, session_auth_hash)


def connection_outlived_login(session):
    """True when the connection's user was deactivated or changed the password since it
    connected (for changes no signal reported). No query: the view loaded the user."""
    user = session.user
    if user is None:
        return False
    if not user.is_active:
        return True
    return bool(session.auth_hash) and not constant_time_compare(session.auth_hash, auth_hash(user))


def end_connections(sessions, reason, before_close=None):
    """Mark ``sessions`` (a queryset) disconnected now and close their sockets once the
    transaction commits; ``before_close(rows)`` runs first then (e.g. to tell the clients why).
    Returns the number of connections ended."""
    from .models import WebSocketSession

    db = router.db_for_write(WebSocketSession)
    rows = list(sessions.connected().select_related("api_gateway").using(db))
    if not rows:
        return 0
    WebSocketSession.objects.using(db).filter(pk__in=[row.pk for row in rows]).update(connected=False)
    transaction.on_commit(lambda: _close_sockets(rows, reason, before_close), using=db)
    return len(rows)


def _close_sockets(rows, reason, before_close=None):
    from .sending import close_connection

    if before_close is not None:
        try:
            before_close(rows)
        except Exception:  # the sockets are closed all the same
            logger.warning("Could not notify the connections before closing them (%s)", reason, exc_info=True)
    for row in rows:
        log_extra = log_context(row.connection_id, reason=reason, user_id=row.user_id)
        if row.api_gateway is None:
            continue
        try:
            close_connection(row)
        except Exception:  # the row is already disconnected: its messages are refused anyway
            logger.warning("Could not close the connection (%s)", reason, exc_info=True, extra=log_extra)
        else:
            logger.info("Connection closed: %s", reason, extra=log_extra)


def _on_logout(sender, request, user, **kwargs):
    """``user_logged_out``: close the sockets opened under this Django session."""
    from .models import WebSocketSession, WebSocketToken

    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if user is None or not session_key:
        return
    hashed = hash_session_key(session_key)
    WebSocketToken.objects.filter(user=user, session_key=hashed, used=False).update(used=True)
    end_connections(WebSocketSession.objects.filter(user=user, session_key_hash=hashed), "logout")


def _on_user_saved(sender, instance, created, update_fields=None, **kwargs):
    """A saved user whose password changed or who was deactivated loses every socket."""
    from .models import WebSocketSession, WebSocketToken

    if created or (update_fields is not None and not {"password", "is_active"} & set(update_fields)):
        return  # e.g. the last_login update of every login: no query
    # A token fetched before the change must not open a socket after it.
    WebSocketToken.objects.filter(user=instance, used=False).update(used=True)
    current = auth_hash(instance) if instance.is_active else None
    sessions = WebSocketSession.objects.filter(user=instance).connected()
    if current is None:
        end_connections(sessions, "user deactivated")
        return
    # Rows opened before auth hashes were kept ("") cannot be compared: left as they are.
    stale = [pk for pk, stored in sessions.values_list("pk", "auth_hash") if stored and stored != current]
    if stale:
        end_connections(WebSocketSession.objects.filter(pk__in=stale), "password changed")


def connect_receivers():
    user_logged_out.connect(_on_logout, dispatch_uid="aws_websockets_logout")
    post_save.connect(_on_user_saved, sender=get_user_model(), dispatch_uid="aws_websockets_user_saved")
