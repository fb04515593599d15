"""The SQL of subscriptions (subscriptions.py): a subscribe is two statements, a read and a
conditional insert, on every database with ``INSERT … ON CONFLICT`` (PostgreSQL, SQLite ≥ 3.24)::

    SELECT (SELECT COUNT(*) FROM <sub> WHERE connection_id = %s),
           (SELECT COUNT(*) FROM <sub> WHERE connection_id = %s AND channel = %s),
           (SELECT last_seq FROM <sequence> WHERE stream = %s)
           [FROM <session> WHERE id = %s FOR UPDATE]
    INSERT INTO <sub> (connection_id, channel, created_on) SELECT %s, %s, %s
           WHERE (SELECT COUNT(*) FROM <sub> WHERE connection_id = %s) < %s
           ON CONFLICT (connection_id, channel) DO NOTHING

On PostgreSQL the read locks the connection's row (``… FROM <session> WHERE id = %s FOR
UPDATE``), so concurrent subscribes of one connection take turns and the limit holds; the insert
checks the limit again itself. Elsewhere the ORM does the same in more statements.
"""

from typing import Any, NamedTuple

from django.db import connections, router
from django.utils import timezone

from ..models import ChannelSequence, Subscription
from . import statements
from .rows import column_name


class Held(NamedTuple):
    held_count: int  # channels the connection holds
    holds: bool  # whether ``channel`` is one of them
    last_seq: int  # the channel's current sequence number (0: none yet)


def database() -> Any:
    return connections[router.db_for_write(Subscription)]


def _upserts(connection: Any) -> bool:
    return bool(connection.features.supports_update_conflicts_with_target)


def _names(connection):
    qn = connection.ops.quote_name
    meta = Subscription._meta
    return (
        qn(meta.db_table),
        qn(column_name(meta.get_field("connection"))),
        qn(column_name(meta.get_field("channel"))),
        qn(column_name(meta.get_field("created_on"))),
    )


def _read_sql(connection):
    """The read; where the database locks rows (PostgreSQL), it locks the connection's row until
    the handler's transaction ends, so concurrent subscribes of one connection take turns and
    the limit holds however many are in flight (SQLite serialises its writers anyway)."""
    table, conn, channel, _ = _names(connection)
    qn = connection.ops.quote_name
    seq_meta = ChannelSequence._meta
    sql = (
        f"SELECT (SELECT COUNT(*) FROM {table} WHERE {conn} = %s), "
        f"(SELECT COUNT(*) FROM {table} WHERE {conn} = %s AND {channel} = %s), "
        f"(SELECT {qn(column_name(seq_meta.get_field('last_seq')))} FROM {qn(seq_meta.db_table)} "
        f"WHERE {qn(column_name(seq_meta.get_field('stream')))} = %s)"
    )
    if connection.features.has_select_for_update:
        from ..models import WebSocketSession

        session = WebSocketSession._meta
        sql += f" FROM {qn(session.db_table)} WHERE {qn(column_name(session.pk))} = %s FOR UPDATE"
    return sql


def _insert_sql(connection):
    table, conn, channel, created = _names(connection)
    return (
        f"INSERT INTO {table} ({conn}, {channel}, {created}) SELECT %s, %s, %s "
        f"WHERE (SELECT COUNT(*) FROM {table} WHERE {conn} = %s) < %s "
        f"ON CONFLICT ({conn}, {channel}) DO NOTHING"
    )


def held(connection_pk: int, channel: str, stream: str) -> Held:
    """One statement: how many channels the connection holds, whether ``channel`` is one, and
    the sequence number of ``stream`` (the channel's history stream)."""
    connection = database()
    sql = statements.statement(connection, "subscription_read", _read_sql)
    params: list[Any] = [connection_pk, connection_pk, channel, stream]
    if connection.features.has_select_for_update:
        params.append(connection_pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:  # the connection's row is gone (deleted meanwhile): it holds nothing
        return Held(0, False, 0)
    count, holds, last_seq = row
    return Held(count, bool(holds), last_seq or 0)


def insert(connection_pk: int, channel: str, limit: int) -> bool:
    """Add the subscription unless the connection holds ``limit`` channels already; returns
    whether a row was added (``False``: the limit, or the row exists)."""
    connection = database()
    if not _upserts(connection):
        if Subscription.objects.using(connection.alias).filter(connection_id=connection_pk).count() >= limit:
            return False
        _, created = Subscription.objects.using(connection.alias).get_or_create(
            connection_id=connection_pk, channel=channel
        )
        return created
    sql = statements.statement(connection, "subscription_insert", _insert_sql)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(sql, [connection_pk, channel, now, connection_pk, limit])
        return cursor.rowcount > 0


def delete(connection_pk: int, channel: str | None = None) -> int:
    """Remove the connection's subscription to ``channel`` (``None``: every one); one statement."""
    rows = Subscription.objects.using(database().alias).filter(connection_id=connection_pk)
    if channel is not None:
        rows = rows.filter(channel=channel)
    return rows._raw_delete(rows.db)  # no cascade, no signals: one DELETE


def copy_channel_names(alias: str) -> int:
    """Give every connection row with a ``channel_name`` and no subscription to it that
    subscription: rows loaded by ``upgrade_from_old_package`` (``loaddata`` saves them raw, not
    through ``WebSocketSession.save``). One INSERT … SELECT; returns the rows added."""
    from ..models import WebSocketSession

    connection = connections[alias]
    table, conn, channel, created = _names(connection)
    qn = connection.ops.quote_name
    sessions = qn(WebSocketSession._meta.db_table)
    pk = qn(column_name(WebSocketSession._meta.pk))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({conn}, {channel}, {created}) "
            f"SELECT s.{pk}, s.{qn('channel_name')}, s.{qn('created_on')} FROM {sessions} s "
            f"WHERE s.{qn('channel_name')} <> '' AND NOT EXISTS "
            f"(SELECT 1 FROM {table} x WHERE x.{conn} = s.{pk} AND x.{channel} = s.{qn('channel_name')})"
        )
        return cursor.rowcount
