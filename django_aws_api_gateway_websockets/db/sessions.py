"""The connection row on the request path:

- ``load_connection``: a message's or ``$disconnect``'s row with its gateway and user (the
  ``select_related`` query) and, with a database session engine on the same database, the
  ``expire_date`` of the Django session the row keeps the key of (a ``LEFT JOIN``: no query of
  its own; login.session_ended);
- ``count_message`` (with the message rate limiter's state) and ``mark_disconnected``: one
  ``UPDATE`` each;
- ``insert_session``: the connect's row (``objects.create``: one ``INSERT … RETURNING`` where
  the database has it).

The read and the two ``UPDATE``s are one statement each through the ORM too, but they run on
every message and ``$disconnect``, and the ORM compiles them on every call: measured in-process
(2,000 calls, SQLite and PostgreSQL), the ORM's read costs 0.65-0.9 ms more a call than this
statement built once per database alias, each ``UPDATE`` 0.2-0.35 ms more: a message would
cost about 1 ms more worker CPU. So they stay hand-written, read by column name; the connect's
insert (once per connection) is the ORM's.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.utils import timezone

from .. import login
from ..models import ApiGateway, WebSocketSession
from . import statements
from .rows import ModelColumns, column_name, fetch_named, single_table

SESSION, GATEWAY, USER, EXPIRY = "s_", "g_", "u_", "django_session_expiry"


def _load_statement(connection, session_model):
    """The ``SELECT`` and the columns of its three models, each named ``<prefix><attname>``;
    with ``session_model`` (a database session engine's, on this database), the ``expire_date``
    of the Django session the row keeps the key of, as ``django_session_expiry`` (NULL: no such
    session), and its converters."""
    qn = connection.ops.quote_name
    User = get_user_model()
    meta = WebSocketSession._meta
    rows, gateways, users = (qn(m._meta.db_table) for m in (WebSocketSession, ApiGateway, User))
    columns = {
        prefix: ModelColumns(model, connection, table)
        for prefix, model, table in (
            (SESSION, WebSocketSession, rows),
            (GATEWAY, ApiGateway, gateways),
            (USER, User, users),
        )
    }
    select = [name for prefix, model_columns in columns.items() for name in model_columns.named(prefix)]
    names = [key for prefix, model_columns in columns.items() for key in model_columns.keys(prefix)]
    join_session, expiry = "", None
    if session_model is not None:
        django_sessions = qn(session_model._meta.db_table)
        field = session_model._meta.get_field("expire_date")
        select.append(f"{django_sessions}.{qn(field.column)} AS {qn(EXPIRY)}")
        names.append(EXPIRY)
        join_session = (
            f"LEFT OUTER JOIN {django_sessions} ON {django_sessions}.{qn(session_model._meta.pk.column)} "
            f"= {rows}.{qn(meta.get_field('django_session_key').column)} "
        )
        column = field.get_col(session_model._meta.db_table)
        expiry = connection.ops.get_db_converters(column) + field.get_db_converters(connection), column
    sql = (
        f"SELECT {', '.join(select)} FROM {rows} "
        f"LEFT OUTER JOIN {gateways} ON {gateways}.{qn(ApiGateway._meta.pk.column)} = {rows}.{qn(meta.get_field('api_gateway').column)} "
        f"LEFT OUTER JOIN {users} ON {users}.{qn(User._meta.pk.column)} = {rows}.{qn(meta.get_field('user').column)} "
        f"{join_session}"
        f"WHERE {rows}.{qn(meta.get_field('connection_id').column)} = %s"
    )
    # The primary keys' names: NULL there is a LEFT JOIN's miss (no gateway, no user).
    pk_keys = GATEWAY + ApiGateway._meta.pk.attname, USER + User._meta.pk.attname
    return sql, names, columns, expiry, pk_keys


def load_connection(connection_id: str, *, session_expiry: bool = True) -> WebSocketSession | None:
    """The connection's row with its gateway record and user (``select_related``), or ``None``:
    one ``SELECT``. With a database session engine and ``session_expiry`` (a message asks,
    ``$disconnect`` does not: the join costs the database and the worker) it also brings
    whether the Django session behind the connection still exists
    (``session.django_session_joined``, ``session.django_session_expiry``: ``None`` when there
    is no such session)."""
    if not single_table(get_user_model()):  # a multi-table user: the ORM joins its parents
        return (
            WebSocketSession.objects.select_related("api_gateway", "user").filter(connection_id=connection_id).first()
        )
    db = router.db_for_read(WebSocketSession)
    connection = connections[db]
    session_model = login.joinable_session_model(db) if session_expiry else None
    sql, names, columns, expiry, (gateway_pk, user_pk) = statements.statement(
        connection, ("load_connection", session_model), lambda conn: _load_statement(conn, session_model)
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection_id])
        row = fetch_named(cursor, names)
    if row is None:
        return None
    session: Any = columns[SESSION].instance_from(row, SESSION, connection)
    # Assigned through the descriptors, as select_related caches them (None when absent).
    gateway, user = columns[GATEWAY], columns[USER]
    session.api_gateway = gateway.instance_from(row, GATEWAY, connection) if row[gateway_pk] is not None else None
    session.user = user.instance_from(row, USER, connection) if row[user_pk] is not None else None
    if expiry is not None:
        value = row[EXPIRY]
        for func in expiry[0]:
            value = func(value, expiry[1], connection)
        session.django_session_joined, session.django_session_expiry = True, value
    return session


_ASSIGNMENTS = {
    # name: the SET clause (before updated_on) from quote_name
    "count_message": lambda qn: f"{qn('request_count')} = {qn('request_count')} + 1",
    # The limiter's state advanced from the row's value now, not set to the one read before: a
    # concurrent message of the connection (counted first) has spent its place too.
    "count_rated_message": lambda qn: (
        f"{qn('request_count')} = {qn('request_count')} + 1, {qn('message_tat_us')} = "
        f"CASE WHEN {qn('message_tat_us')} > %s THEN {qn('message_tat_us')} ELSE %s END + %s"
    ),
    # A refused or failed message's place (pipeline/message.py): the limiter's state only.
    "charge_message": lambda qn: (
        f"{qn('message_tat_us')} = CASE WHEN {qn('message_tat_us')} > %s THEN {qn('message_tat_us')} ELSE %s END + %s"
    ),
    # The Django session's key is kept only while the connection is open (login.py).
    "mark_disconnected": lambda qn: f"{qn('connected')} = %s, {qn('django_session_key')} = %s",
}


def _update(connection, name, touch=True):
    qn = connection.ops.quote_name
    updated_on = f", {qn('updated_on')} = %s" if touch else ""
    return (
        f"UPDATE {qn(WebSocketSession._meta.db_table)} SET {_ASSIGNMENTS[name](qn)}"
        f"{updated_on} WHERE {qn(column_name(WebSocketSession._meta.pk))} = %s"
    )


def _update_session(session, name, params, touch=True):
    """``UPDATE`` the connection's row by one of ``_ASSIGNMENTS``, with ``updated_on`` now
    (``touch``)."""
    connection = connections[router.db_for_write(WebSocketSession)]
    sql = statements.statement(connection, ("session_update", name), lambda conn: _update(conn, name, touch))
    now = timezone.now()
    updated_on = [connection.ops.adapt_datetimefield_value(now)] if touch else []
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *updated_on, session.pk])
    if touch:
        session.updated_on = now


def count_message(session: WebSocketSession, rated: Any = None) -> None:
    """One more handled message on the connection's row (``request_count``, ``updated_on``),
    with the message rate limiter's new state when it is on (``rated``: the allowing
    ``ratelimit.MessageDecision``): the same statement."""
    if rated is None:
        _update_session(session, "count_message", [])
    else:
        _update_session(session, "count_rated_message", [rated.now_us, rated.now_us, rated.interval_us])
        session.message_tat_us = rated.tat_us  # as read plus this message (the row may hold more)


def charge_message(session: WebSocketSession, rated: Any) -> None:
    """A message that passed the rate limit but was refused or failed after it spends its place
    all the same (the limiter's state, as ``count_message`` advances it; nothing else: not
    counted, ``updated_on`` kept): otherwise invalid messages would be free."""
    _update_session(session, "charge_message", [rated.now_us, rated.now_us, rated.interval_us], touch=False)
    session.message_tat_us = rated.tat_us


def mark_disconnected(session: WebSocketSession) -> None:
    """The connection's row marked disconnected (``connected``, ``updated_on``; the Django
    session's key is no longer needed: login.py keeps it only while connected)."""
    _update_session(session, "mark_disconnected", [False, ""])
    session.connected, session.django_session_key = False, ""


def insert_session(**values: Any) -> WebSocketSession:
    """The connect's ``WebSocketSession`` row (``objects.create``: one statement)."""
    return WebSocketSession.objects.using(router.db_for_write(WebSocketSession)).create(**values)
