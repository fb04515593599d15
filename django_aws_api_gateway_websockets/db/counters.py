"""The connect rate limit's statements (ratelimit.py, db.connect): the counters' upsert, one
statement for every key of an attempt where the database has ``INSERT … ON CONFLICT …
RETURNING`` (db.features), and the audit row's plain ``INSERT``."""

from typing import Any

from ..models import ConnectionRateCounter, ConnectionRateLimit
from . import features, statements

AUDIT_COLUMNS = ("ip_address", "user_id", "attempt_time", "successful", "reason")


def counted_by_upsert(connection: Any) -> bool:
    return features.returning_upserts(connection)


def upsert_sql(connection: Any, n_keys: int) -> str:
    """Count ``n_keys`` counters in one statement (parameters: each key with its new window's
    end, then now, now, the limit, now); ``RETURNING key, count``, no row for a key already
    past the limit (left unchanged)."""
    return statements.statement(connection, ("rate_counter_upsert", n_keys), lambda conn: _upsert(conn, n_keys))


def _upsert(connection, n_keys):
    qn = connection.ops.quote_name
    table = qn(ConnectionRateCounter._meta.db_table)
    key, count, expires = qn("key"), qn("count"), qn("expires_ms")
    values = ", ".join(["(%s, 1, %s)"] * n_keys)
    return (
        f"INSERT INTO {table} ({key}, {count}, {expires}) VALUES {values} "
        f"ON CONFLICT ({key}) DO UPDATE SET "
        f"{count} = CASE WHEN {table}.{expires} <= %s THEN 1 ELSE {table}.{count} + 1 END, "
        f"{expires} = CASE WHEN {table}.{expires} <= %s THEN EXCLUDED.{expires} ELSE {table}.{expires} END "
        f"WHERE {table}.{count} <= %s OR {table}.{expires} <= %s "
        f"RETURNING {key}, {count}"
    )


def audit_insert_sql(connection: Any) -> str:
    """``INSERT INTO <audit table> (ip_address, user_id, attempt_time, successful, reason)``,
    without its values (one ``VALUES`` row in ratelimit.py; a ``SELECT`` in db.connect)."""
    return statements.statement(connection, "rate_audit_insert", _audit_insert)


def _audit_insert(connection):
    qn = connection.ops.quote_name
    columns = ", ".join(qn(c) for c in AUDIT_COLUMNS)
    return f"INSERT INTO {qn(ConnectionRateLimit._meta.db_table)} ({columns})"
