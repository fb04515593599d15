"""A connection lives no longer than the login that opened it (docs/security.md).

Each login gets a random id kept in its Django session data (``LOGIN_ID_SESSION_KEY``: written
at ``user_logged_in``, or by ``WebSocketTokenView`` for a session older than it), which stays
the same when the session is written or its key cycled, under every session engine (with
signed cookies the key is the signed data itself). Each connection row keeps keyed hashes
(HMAC-SHA256 with ``SECRET_KEY``, never the raw values) of that id, of the Django session key
its token was issued under (rows older than the login id are matched by it), and of the
user's session auth hash (which changes with the password). Then:

- logging out of that login closes exactly its sockets, and spends the tokens issued to it
  that were not used yet;
- changing the password, or deactivating the user, closes all the user's sockets and spends
  all their unused tokens (any save of the user that may touch them: the full save too);

at the moment it happens (signals), through the Management API (DELETE @connections), after
the transaction that made the change commits. Rows are marked disconnected in that
transaction, so a message arriving meanwhile is refused (410). A change made without signals
(``QuerySet.update``) is caught at the connection's next message instead
(``connection_outlived_login``); so is a Django session that expired or was deleted
(``clearsessions``, deleting session rows) without a logout (``session_ended``).

The salts are those of the 4.1.0 release, so hashes an upgraded database carries still verify.
"""

import logging
import secrets
from datetime import UTC, datetime
from functools import cache
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.contrib.sessions.backends.signed_cookies import SessionStore as SignedCookieStore
from django.core import signing
from django.db import router, transaction
from django.db.models import Q
from django.db.models.signals import post_save, pre_delete
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from .log_context import log_context

logger = logging.getLogger(__name__)

SESSION_KEY_SALT = "django_aws_api_gateway_websockets.WebSocketToken.session_key"
AUTH_HASH_SALT = "django_aws_api_gateway_websockets.WebSocketSession.auth_hash"
LOGIN_ID_SALT = "django_aws_api_gateway_websockets.WebSocketSession.login_hash"

#: Where the login's id is kept in the Django session data.
LOGIN_ID_SESSION_KEY = "_aws_websockets_login_id"


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


def hash_login_id(login_id):
    """The keyed hash stored for a login's id ("" for none)."""
    return _keyed_hash(LOGIN_ID_SALT, login_id)


def login_hash_of(django_session):
    """The keyed hash of the login id ``django_session`` holds ("" for none)."""
    if django_session is None:
        return ""
    return hash_login_id(django_session.get(LOGIN_ID_SESSION_KEY))


def ensure_login_id(django_session):
    """The login id of ``django_session``, written there first when it has none (a login from
    before this version): the response saves it with the session."""
    login_id = django_session.get(LOGIN_ID_SESSION_KEY)
    if not login_id:
        login_id = django_session[LOGIN_ID_SESSION_KEY] = secrets.token_urlsafe(18)
    return login_id


def key_the_response_sets(django_session):
    """The session key the browser holds once this response is received, for binding a token.

    Unchanged for engines that keep the session server-side. With signed cookies the key is
    the signed data: when this response saves it (written, e.g. by ``ensure_login_id``, or
    ``SESSION_SAVE_EVERY_REQUEST``), it is signed now, and the middleware's save keeps that
    key as long as the data is the same (signing again in another second would give another
    key, and the connect would not find its token)."""
    if not isinstance(django_session, SignedCookieStore):
        return django_session.session_key
    if not (django_session.modified or settings.SESSION_SAVE_EVERY_REQUEST):
        return django_session.session_key
    django_session.save()
    key, data = django_session.session_key, dict(django_session.items())
    sign = django_session._get_session_key

    def same_data_same_key():
        return key if dict(django_session.items()) == data else sign()

    # This request's session object only (Django's save() asks it for the key).
    django_session._get_session_key = same_data_same_key  # type: ignore[method-assign]
    return key


@cache
def _session_store(engine):
    return import_module(engine).SessionStore


def session_store_class():
    """``SESSION_ENGINE``'s ``SessionStore``."""
    return _session_store(settings.SESSION_ENGINE)


def joinable_session_model(db):
    """The session model of a database engine (db, cached_db) on database ``db``: the
    message's row ``SELECT`` joins it (db.sessions.load_connection). ``None`` otherwise."""
    return _joinable_session_model(settings.SESSION_ENGINE, db)


@cache  # asked at every message and $disconnect
def _joinable_session_model(engine, db):
    store = _session_store(engine)
    if not issubclass(store, DbSessionStore):
        return None
    model = store.get_model_class()
    return model if router.db_for_read(model) == db else None


def session_check_values(django_session):
    """The fields of a new connection's row that let its messages check that the Django
    session still exists (``session_ended``), from the session of a logged-in user's connect
    that came with the session cookie. The key for engines that look sessions up by it; the
    expiry for signed cookies (the cookie's signing time plus ``SESSION_COOKIE_AGE``, as
    Django checks it)."""
    key = getattr(django_session, "session_key", None)
    if not key:
        return {}
    if isinstance(django_session, SignedCookieStore):
        try:  # "<data>:<timestamp>:<signature>", verified when the session was loaded
            signed_at = signing.b62_decode(key.rsplit(":", 2)[1])
        except (IndexError, ValueError):
            return {}
        # Aware, or local time as timezone.now() gives it without USE_TZ.
        expires = datetime.fromtimestamp(
            signed_at + django_session.get_session_cookie_age(), tz=UTC if settings.USE_TZ else None
        )
        return {"session_expires_at": expires}
    if len(key) > 40:  # a custom engine's longer keys: not checked
        return {}
    return {"django_session_key": key}


def session_ended(session):
    """True when the Django session behind the connection expired or no longer exists. No
    query when the row's ``SELECT`` brought that session's ``expire_date``
    (db.sessions.load_connection, database engines); otherwise the session store is asked (a
    cache or file lookup; a query for database sessions on another database)."""
    if session.session_expires_at is not None and session.session_expires_at <= timezone.now():
        return True
    key = session.django_session_key
    if not key or session.user_id is None:
        return False
    now = timezone.now()
    if getattr(session, "django_session_joined", False):
        expiry = session.django_session_expiry  # None: no such session
        return expiry is None or expiry <= now
    store = session_store_class()
    if issubclass(store, DbSessionStore):  # its exists() ignores the expiry
        model = store.get_model_class()
        return not model.objects.filter(session_key=key, expire_date__gt=now).exists()
    return not store().exists(key)


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
    from . import presence
    from .models import WebSocketSession

    db = router.db_for_write(WebSocketSession)
    rows = list(sessions.connected().select_related("api_gateway").using(db))
    if not rows:
        return 0
    pks = [row.pk for row in rows]
    # Their $disconnect will find them closed and announce nothing: the leave is announced here
    # (read before the UPDATE; no query unless a served view has BROADCAST_PRESENCE).
    leaving = presence.leaving(pks)
    WebSocketSession.objects.using(db).filter(pk__in=pks).update(connected=False)
    presence.announce_leaves(leaving)
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


def _on_login(sender, request, user, **kwargs):
    """``user_logged_in``: give the login its id. A session that has one is already this
    user's (``login()`` flushes a session of another user, and logging out flushes): the login
    goes on, and so do its connections."""
    django_session = getattr(request, "session", None)
    if django_session is not None and not django_session.get(LOGIN_ID_SESSION_KEY):
        django_session[LOGIN_ID_SESSION_KEY] = secrets.token_urlsafe(18)


def _on_logout(sender, request, user, **kwargs):
    """``user_logged_out`` (sent before the session is flushed): close the sockets of this
    login; rows older than login ids, those of this Django session key."""
    from .models import WebSocketSession, WebSocketToken

    django_session = getattr(request, "session", None)
    session_key = getattr(django_session, "session_key", None)
    login_hash = login_hash_of(django_session)
    if user is None or not (session_key or login_hash):
        return
    hashed = hash_session_key(session_key)
    tokens = Q(login_hash=login_hash) if login_hash else Q(pk__in=[])
    rows = Q(login_hash=login_hash) if login_hash else Q(pk__in=[])
    if hashed:
        tokens |= Q(session_key=hashed)
        rows |= Q(login_hash="", session_key_hash=hashed)
    WebSocketToken.objects.filter(tokens, user=user, used=False).update(used=True)
    end_connections(WebSocketSession.objects.filter(rows, user=user), "logout")


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


def _on_user_deleted(sender, instance, **kwargs):
    """A deleted user's rows go with it (CASCADE), but API Gateway still holds the sockets:
    close them (read now, closed once the deletion commits)."""
    from .models import WebSocketSession

    end_connections(WebSocketSession.objects.filter(user=instance), "user deleted")


def connect_receivers():
    user_logged_in.connect(_on_login, dispatch_uid="aws_websockets_login")
    user_logged_out.connect(_on_logout, dispatch_uid="aws_websockets_logout")
    post_save.connect(_on_user_saved, sender=get_user_model(), dispatch_uid="aws_websockets_user_saved")
    pre_delete.connect(_on_user_deleted, sender=get_user_model(), dispatch_uid="aws_websockets_user_deleted")
