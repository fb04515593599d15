"""The stream history's statements (history.py): a stream's next sequence number by one
upsert, and a message stored under it (on PostgreSQL the upsert and the ``INSERT`` are one
statement). ``None`` where the database has no ``INSERT … ON CONFLICT … RETURNING``
(db.features): history.py then locks the counter's row through the ORM."""

from typing import Any

from ..history_models import ChannelMessage, ChannelSequence
from . import features, statements


def next_seq_sql(connection: Any) -> str | None:
    """Bump ``stream``'s counter (created at 1), ``RETURNING last_seq``; parameter: the stream."""
    if not features.returning_upserts(connection):
        return None
    return statements.statement(connection, "sequence_upsert", _upsert)


def _upsert(connection):
    qn = connection.ops.quote_name
    counters = qn(ChannelSequence._meta.db_table)
    return (
        f"INSERT INTO {counters} ({qn('stream')}, {qn('last_seq')}) VALUES (%s, 1) "
        f"ON CONFLICT ({qn('stream')}) DO UPDATE SET {qn('last_seq')} = {counters}.{qn('last_seq')} + 1 "
        f"RETURNING {qn('last_seq')}"
    )


def record_sql(connection: Any) -> list[str] | None:
    """The statements that store a message under the stream's next number:

    * data-modifying ``WITH`` (PostgreSQL): ``[one statement]``, the counter upsert and the
      message INSERT (one round trip, no explicit transaction: the statement is atomic and
      holds the counter's row lock to its end); parameters: stream, stream, the envelope's
      head, created_on; ``RETURNING seq``;
    * the upsert only (SQLite >= 3.35): ``[upsert, insert]``, to run in one transaction;
    * neither: ``None`` (``select_for_update`` through the ORM)."""
    if not features.returning_upserts(connection):
        return None
    return statements.statement(connection, "sequence_record", _record)


def _record(connection):
    qn = connection.ops.quote_name
    messages = qn(ChannelMessage._meta.db_table)
    upsert = _upsert(connection)
    columns = f"{messages} ({qn('stream')}, {qn('seq')}, {qn('payload')}, {qn('created_on')})"
    if features.writes_in_with(connection):
        return [
            f"WITH s AS ({upsert}) INSERT INTO {columns} "
            f"SELECT %s, s.{qn('last_seq')}, %s || s.{qn('last_seq')}::text || '}}', %s FROM s RETURNING {qn('seq')}"
        ]
    return [upsert, f"INSERT INTO {columns} VALUES (%s, %s, %s, %s)"]
