"""The hand-written SQL of the request path: the statements every ``$connect``, message and
``$disconnect`` runs, written once per database connection instead of compiled by the ORM on
every request (docs/architecture.md). Each does what the ORM call it replaces would, with the
same database routing; instances are built by ``sql_rows.ModelColumns`` as the ORM builds them.

- ``load_connection``: a message's or ``$disconnect``'s row with its gateway and user (the
  ``select_related`` query); ``count_message`` (with the message rate limiter's state)
  and ``mark_disconnected``: its plain ``UPDATE``s;
- ``load_db_session``: the browser's Django session row (what ``SessionStore.load`` does);
- ``insert_session``: the connection's row, one ``INSERT … RETURNING``;
- ``connect_in_one_statement``: on PostgreSQL, when nothing of the project's runs between the
  connect's checks and its commit (docs/architecture.md#connect), the token spend,
  the connection's row and the attempt's audit row in one statement::

      WITH hit AS (INSERT INTO <counter> … ON CONFLICT … DO UPDATE … RETURNING key, count),
           spent AS (UPDATE <token> SET used = true FROM <user> WHERE … AND <every count
                     within the limit> RETURNING …),
           conn AS (INSERT INTO <connection> (…) SELECT … FROM spent RETURNING id),
           audit AS (INSERT INTO <attempt> (…) SELECT … FROM spent)
      SELECT <the counts>, conn.id, spent.* FROM … LEFT JOIN (spent CROSS JOIN conn) ON TRUE

  One statement is one transaction: past the rate limit, or with a token that does not
  match (used, expired, another user's or session's, an inactive user), it counts the attempt
  and changes nothing else; a duplicate connection id fails the whole statement, so the token
  stays unspent. The outcomes of the general path (the count, then the checks and the writes
  in a transaction), in one round trip instead of six. With the counters in a cache
  (``WEBSOCKETS["rate_limit_cache"]``) the count is that cache's operation, then the statement.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.db import DatabaseError, connections, router
from django.db.models import signals as model_signals
from django.utils import timezone

from . import login, ratelimit, tokens
from .models import ApiGateway, WebSocketSession
from .sql_rows import ModelColumns, column_name, single_table

_INSERT_SQL: dict[tuple[str, str], tuple[str, list]] = {}
_CONNECT_SQL: dict[tuple[str, bool, int], str] = {}
_LOAD_SQL: dict[tuple[str, Any], tuple[str, ModelColumns, ModelColumns, ModelColumns, Any]] = {}
_UPDATE_SQL: dict[tuple[str, str], str] = {}


def _session_insert(connection):
    """``(INSERT INTO <table> (<columns>), fields)`` for the connection's row."""
    key = (connection.alias, connection.vendor)
    cached = _INSERT_SQL.get(key)
    if cached is None:
        qn = connection.ops.quote_name
        fields = [f for f in WebSocketSession._meta.concrete_fields if not f.primary_key]
        columns = ", ".join(qn(f.column) for f in fields)
        cached = _INSERT_SQL[key] = (f"INSERT INTO {qn(WebSocketSession._meta.db_table)} ({columns})", fields)
    return cached


def _new_session(db, values):
    now = timezone.now()
    session = WebSocketSession(created_on=now, updated_on=now, **values)
    session._state.db = db
    return session


def _saved(session, pk):
    session.pk = pk
    session._state.adding = False
    return session


def _plain_insert_supported(connection):
    """A plain ``INSERT … RETURNING`` may stand in for ``objects.create``: the database has
    RETURNING and no ``pre_save``/``post_save`` receiver listens for the model."""
    if model_signals.pre_save.has_listeners(WebSocketSession) or model_signals.post_save.has_listeners(
        WebSocketSession
    ):
        return False
    if connection.vendor == "postgresql":
        return True
    return connection.vendor == "sqlite" and connection.Database.sqlite_version_info >= (3, 35)


def insert_session(**values):
    """The connect's ``WebSocketSession`` row: one plain ``INSERT … RETURNING`` where the
    database has it and no save receiver listens for the model; else ``objects.create``."""
    db = router.db_for_write(WebSocketSession)
    connection = connections[db]
    if not _plain_insert_supported(connection):
        return WebSocketSession.objects.using(db).create(**values)
    session = _new_session(db, values)
    insert, fields = _session_insert(connection)
    qn = connection.ops.quote_name
    sql = f"{insert} VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {qn(column_name(WebSocketSession._meta.pk))}"
    params = [f.get_db_prep_save(getattr(session, f.attname), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return _saved(session, cursor.fetchone()[0])


def _load_statement(connection, session_model):
    """The ``SELECT``, and the columns of its three models; with ``session_model`` (a database
    session engine's, on this database), the ``expire_date`` of the Django session the row
    keeps the key of comes last (NULL: no such session)."""
    key = (connection.alias, session_model)
    cached = _LOAD_SQL.get(key)
    if cached is None:
        qn = connection.ops.quote_name
        User = get_user_model()
        meta = WebSocketSession._meta
        rows, gateways, users = (qn(m._meta.db_table) for m in (WebSocketSession, ApiGateway, User))
        columns = [
            ModelColumns(m, connection, t) for m, t in ((WebSocketSession, rows), (ApiGateway, gateways), (User, users))
        ]
        select = ", ".join(c for model_columns in columns for c in model_columns.columns)
        join_session = ""
        if session_model is not None:
            django_sessions = qn(session_model._meta.db_table)
            select += f", {django_sessions}.{qn(session_model._meta.get_field('expire_date').column)}"
            join_session = (
                f"LEFT OUTER JOIN {django_sessions} ON {django_sessions}.{qn(session_model._meta.pk.column)} "
                f"= {rows}.{qn(meta.get_field('django_session_key').column)} "
            )
        sql = (
            f"SELECT {select} FROM {rows} "
            f"LEFT OUTER JOIN {gateways} ON {gateways}.{qn(ApiGateway._meta.pk.column)} = {rows}.{qn(meta.get_field('api_gateway').column)} "
            f"LEFT OUTER JOIN {users} ON {users}.{qn(User._meta.pk.column)} = {rows}.{qn(meta.get_field('user').column)} "
            f"{join_session}"
            f"WHERE {rows}.{qn(meta.get_field('connection_id').column)} = %s"
        )
        expiry = None
        if session_model is not None:
            field = session_model._meta.get_field("expire_date")
            column = field.get_col(session_model._meta.db_table)
            expiry = connection.ops.get_db_converters(column) + field.get_db_converters(connection), column
        cached = _LOAD_SQL[key] = (sql, columns[0], columns[1], columns[2], expiry)
    return cached


def load_connection(connection_id):
    """The connection's row with its gateway record and user (``select_related``), or
    ``None``: one plain ``SELECT`` per message and ``$disconnect``. With a database session
    engine it also brings whether the Django session behind the connection still exists
    (``session.django_session_joined``, ``session.django_session_expiry``: login.session_ended)."""
    if not single_table(get_user_model()):  # a multi-table user: the ORM joins its parents
        return (
            WebSocketSession.objects.select_related("api_gateway", "user").filter(connection_id=connection_id).first()
        )
    db = router.db_for_read(WebSocketSession)
    connection = connections[db]
    sql, sessions, gateways, users, expiry = _load_statement(connection, login.joinable_session_model(db))
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection_id])
        row = cursor.fetchone()
    if row is None:
        return None
    n, m = len(sessions), len(sessions) + len(gateways)
    session = sessions.instance(row[:n], connection)
    # Assigned through the descriptors, as select_related caches them (None when absent).
    session.api_gateway = gateways.instance(row[n:m], connection) if row[n + gateways.pk_index] is not None else None
    end = m + len(users)
    session.user = users.instance(row[m:end], connection) if row[m + users.pk_index] is not None else None
    if expiry is not None:
        value = row[end]
        for func in expiry[0]:
            value = func(value, expiry[1], connection)
        session.django_session_joined, session.django_session_expiry = True, value
    return session


_ASSIGNMENTS = {
    # name: the SET clause (before updated_on) from quote_name
    "count_message": lambda qn: f"{qn('request_count')} = {qn('request_count')} + 1",
    # The limiter's state advanced from the row's value now, not set to the one read before: a
    # concurrent message of the connection (waited for by the row lock) has spent its place too.
    "count_rated_message": lambda qn: (
        f"{qn('request_count')} = {qn('request_count')} + 1, {qn('message_tat_us')} = "
        f"CASE WHEN {qn('message_tat_us')} > %s THEN {qn('message_tat_us')} ELSE %s END + %s"
    ),
    # The Django session's key is kept only while the connection is open (login.py).
    "mark_disconnected": lambda qn: f"{qn('connected')} = %s, {qn('django_session_key')} = %s",
}


def _update_session(session, name, params):
    """``UPDATE`` the connection's row by one of ``_ASSIGNMENTS``, with ``updated_on`` now."""
    db = router.db_for_write(WebSocketSession)
    connection = connections[db]
    sql = _UPDATE_SQL.get((connection.alias, name))
    if sql is None:
        qn = connection.ops.quote_name
        sql = _UPDATE_SQL[connection.alias, name] = (
            f"UPDATE {qn(WebSocketSession._meta.db_table)} SET {_ASSIGNMENTS[name](qn)}, "
            f"{qn('updated_on')} = %s WHERE {qn(column_name(WebSocketSession._meta.pk))} = %s"
        )
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, connection.ops.adapt_datetimefield_value(now), session.pk])
    session.updated_on = now


def count_message(session, rated=None):
    """One more handled message on the connection's row (``request_count``, ``updated_on``),
    with the message rate limiter's new state when it is on (``rated``: the allowing
    ``ratelimit.MessageDecision``): the same statement."""
    if rated is None:
        _update_session(session, "count_message", [])
    else:
        _update_session(session, "count_rated_message", [rated.now_us, rated.now_us, rated.interval_us])
        session.message_tat_us = rated.tat_us  # as read plus this message (the row may hold more)


def mark_disconnected(session):
    """The connection's row marked disconnected (``connected``, ``updated_on``; the Django
    session's key is no longer needed)."""
    _update_session(session, "mark_disconnected", [False, ""])
    session.connected, session.django_session_key = False, ""


def load_db_session(session):
    """Load a database-backed Django session with one plain ``SELECT`` (what
    ``SessionStore.load`` does, without building the ORM query each time); other session
    engines, or one already loaded, are left to Django."""
    if type(session) is not DbSessionStore or hasattr(session, "_session_cache"):
        return
    model = session.model
    db = router.db_for_read(model)
    connection = connections[db]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {qn('session_data')} FROM {qn(model._meta.db_table)} "
            f"WHERE {qn('session_key')} = %s AND {qn('expire_date')} > %s",
            [session.session_key, connection.ops.adapt_datetimefield_value(timezone.now())],
        )
        row = cursor.fetchone()
    if row is None:  # as SessionStore.load: no (or an expired) session, a new key if saved
        session._session_key = None
        session._session_cache = {}  # type: ignore[attr-defined]  # SessionBase's, undeclared in django-stubs
    else:
        session._session_cache = session.decode(row[0])  # type: ignore[attr-defined]


def one_statement_connect_supported():
    """PostgreSQL (data-modifying ``WITH``), outside any transaction (``ATOMIC_REQUESTS``:
    a failing statement would break the request's transaction), a user model with an
    ``is_active`` column in its own table, and no save receiver for the connection's row."""
    db = router.db_for_write(WebSocketSession)
    connection = connections[db]
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    # One statement writes the token, the counters and the audit row too: one database.
    for model in (tokens.WebSocketToken, ratelimit.ConnectionRateLimit, ratelimit.ConnectionRateCounter):
        if router.db_for_write(model) != db:
            return False
    return (
        _plain_insert_supported(connection)
        and tokens.one_statement_spend(connection)
        and tokens.spend_statement(connection, True, True)[2]
    )


def _connect_statement(connection, audit, n_keys):
    """The statement: ``n_keys`` rate-limit counters (0: counted elsewhere) counted first, the
    token spent only when every counter is within the limit."""
    key = (connection.alias, audit, n_keys)
    sql = _CONNECT_SQL.get(key)
    if sql is None:
        qn = connection.ops.quote_name
        count = qn("count")
        within = f"(SELECT COUNT(*) FROM hit WHERE hit.{count} <= %s) = %s" if n_keys else ""
        spend = tokens.spend_statement(connection, True, True, within)[0]
        insert, fields = _session_insert(connection)
        pk = qn(column_name(WebSocketSession._meta.pk))
        parts = [f"hit AS ({ratelimit.upsert_sql(connection, n_keys)})"] if n_keys else []
        parts += [
            f"spent AS ({spend})",
            f"conn AS ({insert} SELECT {', '.join(['%s'] * len(fields))} FROM spent RETURNING {pk})",
        ]
        if audit:  # spent.c2: the token's user
            parts.append(
                f"audit AS ({ratelimit.audit_insert_sql(connection)} SELECT %s, spent.c2, %s, %s, %s FROM spent)"
            )
        hits = f"ARRAY(SELECT hit.{qn('key')} FROM hit), ARRAY(SELECT hit.{count} FROM hit)" if n_keys else "NULL, NULL"
        sql = _CONNECT_SQL[key] = (
            f"WITH {', '.join(parts)} SELECT {hits}, conn.{pk}, spent.* FROM (SELECT 1) AS one "
            "LEFT JOIN (spent CROSS JOIN conn) ON TRUE"
        )
    return sql


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
    ``login_hash`` and ``session_values`` (``login.session_check_values``): the login's id and
    what later checks that its Django session still exists, from the cookie's session (the
    token's, as the statement checks).
    """
    db = router.db_for_write(WebSocketSession)
    connection = connections[db]
    decision = None
    if counting and not ratelimit.counted_by_one_statement(connection):
        decision = ratelimit.count_attempt(counting)  # the cache's own atomic operation
        if not decision.allowed:
            return decision, None, None
        counting = None
    n_keys = len(counting.keys) if counting else 0
    params = []
    if counting:
        _, count_params = ratelimit.upsert_statement(
            connection, counting.keys, counting.max_attempts, counting.window_seconds
        )
        params += count_params
    audit = audit_ip is not None and ratelimit.audit_enabled(True)
    session = _new_session(
        db,
        {
            **values,
            "user_id": user_id,
            "session_key_hash": login.hash_session_key(session_key),
            "auth_hash": login.hash_auth_value(session_auth_hash),
            "login_hash": login_hash,
            **(session_values or {}),
        },
    )
    _, user_columns, active_column = tokens.spend_statement(connection, True, True)
    _, fields = _session_insert(connection)
    params += tokens.spend_params(raw_token, None, connection, active_column, session_key, user_id)
    if n_keys:
        params += [counting.max_attempts, n_keys]
    params += [f.get_db_prep_save(getattr(session, f.attname), connection) for f in fields]
    if audit:
        ops = connection.ops
        params += [ops.adapt_ipaddressfield_value(audit_ip), ops.adapt_datetimefield_value(timezone.now()), True, ""]
    try:
        with connection.cursor() as cursor:
            cursor.execute(_connect_statement(connection, audit, n_keys), params)
            row = cursor.fetchone()
    except DatabaseError:
        # The failed statement kept nothing, its count neither: count the attempt by itself, as
        # the general path counts before anything else (past the limit that is the answer).
        if counting:
            decision = ratelimit.count_attempt(counting)
            if not decision.allowed:
                return decision, None, None
        raise
    if counting:
        decision = ratelimit.decide(
            ratelimit.counts_of(counting.keys, dict(zip(row[0], row[1], strict=True))), counting.max_attempts
        )
    if row[2] is None:
        return decision, None, None
    user = user_columns.instance(row[7:], connection)  # after the counts, the id, the token's c0-c3
    _saved(session, row[2])
    current = login.auth_hash(user)
    if current != session.auth_hash:
        WebSocketSession.objects.using(db).filter(pk=session.pk).update(auth_hash=current)
        session.auth_hash = current
    session.user = user
    return decision, session, user
