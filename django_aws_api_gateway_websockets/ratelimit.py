"""Connect rate limiting per source IP and per user (docs/rate-limiting.md).

The decision is one atomic operation on a counter per key (``ip:<address>:<window>`` and, for a
logged-in cookie user, ``user:<pk>:<window>``); a key's window starts at its first attempt and
lasts ``window_minutes``. Every process must see the same counters, so they live in:

- a shared cache, when ``WEBSOCKETS["rate_limit_cache"]`` names one (a ``CACHES`` alias):
  Redis (Django's ``RedisCache`` or django-redis: ``SET NX EX`` + ``INCR`` in one ``MULTI``,
  one round trip) or Memcached (``add``, then ``incr``: both atomic on the server). Check
  W053 warns about a cache that is not shared by the processes (local memory) or whose
  ``incr`` is not atomic (database, file, dummy caches);
- else the database (the default): ``ConnectionRateCounter`` rows changed by one
  ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` statement (db.counters) where the database
  has it (db.features; atomic: the row is locked while it changes), ``SELECT … FOR UPDATE``
  elsewhere.

An attempt over the limit changes nothing once the first refusal was counted: the counter
stops at ``max_attempts + 1``, and only that first refusal per key and window goes into the
audit trail, so a flood costs a read, not a write, per request.

``ConnectionRateLimit`` is the audit trail the admin shows: the view writes one row per
admitted attempt (with its outcome) after the decision and after the connect's transaction,
with one plain ``INSERT`` (``WEBSOCKETS["rate_limit_audit"]``: ``"all"``, ``"refusals"`` or
``"off"``). The counters never read it; the 4.x ``ConnectionRateLimit.check_rate_limit``
(``check_connect_rate``) does.
"""

import logging
import time
from datetime import timedelta
from typing import NamedTuple

from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.db.models import Count, Q
from django.utils import timezone

from .conf import get_setting
from .db import counters as counter_sql
from .models import ConnectionRateCounter, ConnectionRateLimit

logger = logging.getLogger(__name__)

CACHE_KEY_PREFIX = "aws_websockets:rl:"


class Decision(NamedTuple):
    allowed: bool
    attempts: int  # the highest count among the keys (``max_attempts + 1`` once over)
    first_refusal: bool  # the refusal that crossed the limit (the one worth an audit row)


def _now_ms():
    return int(time.time() * 1000)


def _limits(max_attempts, window_minutes):
    """``(max_attempts, window seconds)``; a falsy value means the setting (as in 4.1.0)."""
    max_attempts = max_attempts or get_setting("rate_limit_max_attempts")
    window = window_minutes or get_setting("rate_limit_window_minutes")
    return int(max_attempts), int(round(window * 60))


def _user_id(user):
    """A user's pk; ``user`` may also be the pk itself (the view passes the session's)."""
    if user is None or user == "":
        return None
    if not hasattr(user, "is_authenticated"):
        return user
    return user.pk if user.is_authenticated else None


def counter_keys(ip_address, user, window_seconds):
    keys = [f"ip:{ip_address}:{window_seconds}"]
    user_id = _user_id(user)
    if user_id is not None:
        keys.append(f"user:{user_id}:{window_seconds}")
    return keys


# --- backends -----------------------------------------------------------------------------


def limiter_cache():
    """The cache holding the counters, or ``None`` for the database."""
    alias = get_setting("rate_limit_cache")
    if not alias:
        return None
    from django.core.cache import caches

    return caches[alias]


def _redis_client(cache):
    """``(client, key function)`` for a Redis cache whose raw client we can pipeline, else ``None``."""
    from django.core.cache.backends.redis import RedisCache  # Django >= 4; redis itself is imported on use

    if isinstance(cache, RedisCache):
        return cache._cache.get_client(None, write=True), cache.make_and_validate_key
    client = getattr(cache, "client", None)  # django-redis
    if client is not None and hasattr(client, "get_client") and type(cache).__module__.startswith("django_redis"):
        return client.get_client(write=True), cache.make_key
    return None


def _cache_hit(cache, keys, max_attempts, window_seconds):
    redis = _redis_client(cache)
    if redis is not None:
        client, make_key = redis
        pipe = client.pipeline(transaction=True)
        for key in keys:
            raw = make_key(CACHE_KEY_PREFIX + key)
            pipe.set(raw, 0, ex=window_seconds, nx=True)  # a window starts with its TTL set
            pipe.incr(raw)
        return [int(n) for n in pipe.execute()[1::2]]
    counts = []
    for key in keys:
        key = CACHE_KEY_PREFIX + key
        if cache.add(key, 1, timeout=window_seconds):
            counts.append(1)
            continue
        try:
            counts.append(cache.incr(key))
        except ValueError:  # expired between add and incr: a new window
            cache.add(key, 1, timeout=window_seconds)
            counts.append(1)
    return counts


def _cache_peek(cache, keys):
    found = cache.get_many([CACHE_KEY_PREFIX + key for key in keys])
    return [int(found.get(CACHE_KEY_PREFIX + key) or 0) for key in keys]


def upsert_statement(connection, keys, max_attempts, window_seconds):
    """``(sql, params)`` of the one-statement count (``RETURNING key, count``; no row for a
    key already past the limit)."""
    now = _now_ms()
    expires = now + window_seconds * 1000
    params = []
    for key in keys:
        params += [key, expires]
    params += [now, now, max_attempts, now]
    return counter_sql.upsert_sql(connection, len(keys)), params


def counts_of(keys, returned):
    """The counts ``upsert_statement`` returned (``{key: count}``), in ``keys``' order."""
    return [returned.get(key) for key in keys]


def _database_hit(keys, max_attempts, window_seconds):
    """Counts after this attempt, ``None`` for a key already past the limit (left unchanged)."""
    db = router.db_for_write(ConnectionRateCounter)
    connection = connections[db]
    if counter_sql.counted_by_upsert(connection):
        sql, params = upsert_statement(connection, keys, max_attempts, window_seconds)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return counts_of(keys, dict(cursor.fetchall()))
    now = _now_ms()
    return _locked_hit(db, keys, max_attempts, now, now + window_seconds * 1000)


def _locked_hit(db, keys, max_attempts, now, expires):
    """The same decision where there is no upsert with RETURNING (MySQL, Oracle): each row
    locked with ``SELECT … FOR UPDATE`` in one transaction."""
    counters = ConnectionRateCounter.objects.using(db)
    counts: list[int | None] = []
    with transaction.atomic(using=db):
        for key in keys:
            row = counters.select_for_update().filter(pk=key).first()
            if row is None:
                try:
                    with transaction.atomic(using=db):
                        counters.create(key=key, count=1, expires_ms=expires)
                    counts.append(1)
                    continue
                except IntegrityError:  # created meanwhile by another request: lock it
                    row = counters.select_for_update().get(pk=key)
            if row.expires_ms <= now:
                row.count, row.expires_ms = 1, expires
            elif row.count <= max_attempts:
                row.count += 1
            else:
                counts.append(None)
                continue
            counters.filter(pk=key).update(count=row.count, expires_ms=row.expires_ms)
            counts.append(row.count)
    return counts


def _database_peek(keys):
    db = router.db_for_read(ConnectionRateCounter)
    rows = dict(
        ConnectionRateCounter.objects.using(db)
        .filter(pk__in=keys, expires_ms__gt=_now_ms())
        .values_list("key", "count")
    )
    return [rows.get(key, 0) for key in keys]


# --- the decision ---------------------------------------------------------------------------


class Counting(NamedTuple):
    """What one attempt counts: the keys, the limit, the window."""

    keys: list[str]
    max_attempts: int
    window_seconds: int


def counting(ip_address, user=None, max_attempts=None, window_minutes=None):
    """The keys and limits of one attempt; ``None`` when a window of 0 counts nothing (check
    W049 warns)."""
    max_attempts, window_seconds = _limits(max_attempts, window_minutes)
    if window_seconds <= 0:
        return None
    return Counting(counter_keys(ip_address, user, window_seconds), max_attempts, window_seconds)


def counted_by_one_statement(connection):
    """Whether the counters are database rows that one upsert statement changes (they can
    then be counted inside another statement: db.connect)."""
    return limiter_cache() is None and counter_sql.counted_by_upsert(connection)


def hit(ip_address, user=None, max_attempts=None, window_minutes=None):
    """Count one connect attempt for this IP (and user) and decide: one atomic operation per
    request (two keys in one statement or one pipeline). Returns a ``Decision``."""
    return count_attempt(counting(ip_address, user, max_attempts, window_minutes))


def count_attempt(count):
    """``hit`` for the keys and limits of ``counting`` (``None``: nothing to count)."""
    if count is None:
        return Decision(True, 0, False)
    cache = limiter_cache()
    if cache is not None:
        counts = _cache_hit(cache, count.keys, count.max_attempts, count.window_seconds)
    else:
        counts = _database_hit(count.keys, count.max_attempts, count.window_seconds)
    return decide(counts, count.max_attempts)


def decide(counts, max_attempts):
    """The ``Decision`` from the keys' counts after this attempt (``None``: a key already past
    the limit)."""
    over = max_attempts + 1
    counts = [over + 1 if count is None else count for count in counts]  # None: past the limit already
    attempts = max(counts)
    allowed = attempts <= max_attempts
    return Decision(allowed, min(attempts, over), not allowed and over in counts)


def check_connect_rate(ip_address, user=None, max_attempts=None, window_minutes=None):
    """``(allowed, attempts)`` as 4.1.0 answered it (``ConnectionRateLimit.check_rate_limit``),
    counting nothing: the attempts from the IP within the last ``window_minutes``, or, when
    those are under the limit and ``user`` is a logged-in user (or a pk), the user's attempts
    from any address, if they reach it; ``allowed`` while under ``max_attempts``.

    Attempts are read from both records, the larger count winning: the audit rows
    (``record_connect_attempt`` writes one per call, so any window sees them, as in 4.x) and
    this window's counters (the view's attempts, also those ``rate_limit_audit`` keeps no row
    of). Not on the request path (the view decides with ``hit``): two reads."""
    max_attempts, window_seconds = _limits(max_attempts, window_minutes)
    if window_seconds <= 0:
        return True, 0
    user_id = _user_id(user)
    keys = counter_keys(ip_address, user_id, window_seconds)
    cache = limiter_cache()
    counters = _cache_peek(cache, keys) if cache is not None else _database_peek(keys)
    counters = [min(count, max_attempts + 1) for count in counters]  # a cache counts on past the limit
    rows = _audit_counts(ip_address, user_id, window_seconds)
    ip_attempts, *user_attempts = (max(pair) for pair in zip(rows, counters, strict=True))
    if ip_attempts >= max_attempts:
        return False, ip_attempts
    if user_attempts and user_attempts[0] >= max_attempts:
        return False, user_attempts[0]
    return True, ip_attempts


def _audit_counts(ip_address, user_id, window_seconds):
    """The audit rows of the last ``window_seconds``: ``[from the IP]``, then ``[by the user]``
    when ``user_id`` is given; one query."""
    by_ip = Q(ip_address=ip_address)
    counts = {"ip": Count("pk", filter=by_ip)}
    matching = by_ip
    if user_id is not None:
        by_user = Q(user_id=user_id)
        counts["user"] = Count("pk", filter=by_user)
        matching |= by_user
    since = timezone.now() - timedelta(seconds=window_seconds)
    totals = ConnectionRateLimit.objects.filter(matching, attempt_time__gte=since).aggregate(**counts)
    return [totals["ip"]] + ([totals["user"]] if user_id is not None else [])


# --- the audit trail ---------------------------------------------------------------------------


def record_connect_attempt(ip_address, user=None, successful=False, reason="", max_attempts=None, window_minutes=None):
    """Count an attempt and store its audit row; returns the row
    (``ConnectionRateLimit.record_attempt``, for code that checks and records by itself)."""
    hit(ip_address, user, max_attempts, window_minutes)
    return ConnectionRateLimit.objects.create(
        ip_address=ip_address, user_id=_user_id(user), successful=successful, reason=reason
    )


def audit_enabled(successful):
    """Whether ``WEBSOCKETS["rate_limit_audit"]`` keeps a row for this outcome."""
    mode = get_setting("rate_limit_audit")
    return not (mode == "off" or (mode == "refusals" and successful))


def audit_attempt(ip_address, user=None, successful=False, reason="", own_savepoint=True):
    """Add the audit row of a connect attempt (no counting): one plain ``INSERT``, no model
    instance. ``WEBSOCKETS["rate_limit_audit"]``: ``"all"``, ``"refusals"`` (no row for an
    accepted connect) or ``"off"``. A failure is logged, never raised: the decision is made.
    ``own_savepoint=False`` (the view, inside the connect's transaction, for an accepted
    connect): the row is part of that transaction, and a failure fails it."""
    if not audit_enabled(successful):
        return
    db = router.db_for_write(ConnectionRateLimit)
    connection = connections[db]
    sql = counter_sql.audit_insert_sql(connection) + " VALUES (%s, %s, %s, %s, %s)"
    ops = connection.ops
    params = [
        ops.adapt_ipaddressfield_value(ip_address),
        ConnectionRateLimit._meta.get_field("user").get_db_prep_save(_user_id(user), connection),  # e.g. a UUID pk
        ops.adapt_datetimefield_value(timezone.now()),
        bool(successful),
        reason or "",
    ]
    if not own_savepoint:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return
    try:
        if connection.in_atomic_block:  # e.g. ATOMIC_REQUESTS: a failure must not break the request's transaction
            with transaction.atomic(using=db), connection.cursor() as cursor:
                cursor.execute(sql, params)
        else:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
    except DatabaseError:
        logger.warning("Could not store the connect attempt of %s", ip_address, exc_info=True)


def cleanup_attempts(days=7):
    """Delete attempts older than ``days`` (and counters whose window ended); returns the
    number of attempts deleted."""
    return delete_old_attempts(days)[0]


def delete_old_attempts(days=7):
    """``cleanup_attempts``, returning the attempts' ``QuerySet.delete()`` ``(count, per
    model)`` (``ConnectionRateLimit.cleanup_old_records``, as 4.x returned it)."""
    cutoff = timezone.now() - timedelta(days=days)
    deleted = ConnectionRateLimit.objects.filter(attempt_time__lt=cutoff).delete()
    ConnectionRateCounter.objects.filter(expires_ms__lt=_now_ms()).delete()
    return deleted


# --- per-connection message rate (WEBSOCKETS["message_rate_limit"] / ["message_rate_burst"]) ---


class MessageDecision(NamedTuple):
    allowed: bool
    tat_us: int  # the state to store when the message is taken (unchanged when refused)
    retry_after: float  # seconds until one more message would be taken (0 when allowed)
    # What the counting UPDATE applies to the row as it is then: max(stored, now_us) + interval_us.
    # Not tat_us itself: a message of the same connection handled meanwhile read the same state,
    # and writing tat_us would undo its spend (k messages in flight would get k times the rate).
    now_us: int = 0
    interval_us: int = 0


def message_decision(tat_us, rate, burst, now_us=None):
    """A token bucket of ``burst`` messages refilled at ``rate`` a second, kept as one number:
    GCRA's theoretical arrival time ``tat_us`` (epoch microseconds; 0 for a new connection:
    a full bucket). Decided in Python from the connection's row as the message path read it;
    the view writes the new state with the UPDATE that counts the message."""
    now_us = int(time.time() * 1_000_000) if now_us is None else now_us
    interval = 1_000_000 / rate  # one message's worth of time
    new_tat = max(tat_us or 0, now_us) + interval
    excess = new_tat - now_us - burst * interval
    if excess > 0:
        return MessageDecision(False, tat_us, excess / 1_000_000)
    return MessageDecision(True, int(new_tat), 0.0, now_us, round(interval))
