"""``$connect`` in one statement, on PostgreSQL, when nothing of the project's runs between the
connect's checks and its commit (docs/architecture.md#connect): the attempt counted, the
token spent, the connection's row and the attempt's audit row::

    WITH hit AS (INSERT INTO <counter> … ON CONFLICT … DO UPDATE … RETURNING key, count),
         spent AS (UPDATE <token> SET used = true FROM <user> WHERE … AND <every count
                   within the limit> RETURNING <token_id, …, user_…>),
         conn AS (INSERT INTO <connection> (…) SELECT … FROM spent RETURNING id),
         audit AS (INSERT INTO <attempt> (…) SELECT … FROM spent)
    SELECT <hit_keys, hit_counts>, conn.id AS connection_pk, spent.* FROM …
           LEFT JOIN (spent CROSS JOIN conn) ON TRUE

Built from the same statements as the general path (db.counters, db.tokens) and read by
column name. One statement is one transaction: past the rate limit, or with a token that
does not match, it counts the attempt and changes nothing else; a duplicate connection id
fails the whole statement, so the token stays unspent. The rules (what is counted, which
token matches, what the row holds) are the callers'; this module only writes the SQL.
"""

from typing import Any, NamedTuple

from django.db import connections, router
from django.db.models import signals as model_signals
from django.utils import timezone

from ..models import ConnectionRateCounter, ConnectionRateLimit, WebSocketSession, WebSocketToken
from . import counters, features, statements, tokens
from .rows import column_name, fetch_named

HIT_KEYS, HIT_COUNTS, CONNECTION_PK = "hit_keys", "hit_counts", "connection_pk"


def supported(connection: Any) -> bool:
    """Data-modifying ``WITH`` (db.features), outside any transaction (``ATOMIC_REQUESTS``: a
    failing statement would break the request's transaction), the token, counters and audit
    rows on the connection's database, the one-statement token spend, and no save receiver
    for the connection's row (the statement inserts it without ``save()``)."""
    if not features.writes_in_with(connection) or connection.in_atomic_block:
        return False
    for model in (WebSocketToken, ConnectionRateLimit, ConnectionRateCounter):
        if router.db_for_write(model) != connection.alias:
            return False
    if model_signals.pre_save.has_listeners(WebSocketSession) or model_signals.post_save.has_listeners(
        WebSocketSession
    ):
        return False
    return (
        tokens.one_statement_spend(connection)
        and tokens.spend_statement(connection, True, True).user_columns is not None
    )


def database() -> Any:
    """The connection the statement runs on (the connection row's database)."""
    return connections[router.db_for_write(WebSocketSession)]


def _row_fields():
    return [f for f in WebSocketSession._meta.concrete_fields if not f.primary_key]


def statement(connection: Any, audit: bool, n_keys: int) -> str:
    """The statement: ``n_keys`` rate-limit counters (0: counted elsewhere) counted first, the
    token spent only when every counter is within the limit; ``audit``: the audit row too."""
    return statements.statement(
        connection, ("one_statement_connect", audit, n_keys), lambda c: _build(c, audit, n_keys)
    )


def _build(connection, audit, n_keys):
    qn = connection.ops.quote_name
    count = qn("count")
    within = f"(SELECT COUNT(*) FROM hit WHERE hit.{count} <= %s) = %s" if n_keys else ""
    spend = tokens.spend_statement(connection, True, True, within).sql
    fields = _row_fields()
    pk = qn(column_name(WebSocketSession._meta.pk))
    insert = f"INSERT INTO {qn(WebSocketSession._meta.db_table)} ({', '.join(qn(f.column) for f in fields)})"
    parts = [f"hit AS ({counters.upsert_sql(connection, n_keys)})"] if n_keys else []
    parts += [
        f"spent AS ({spend})",
        f"conn AS ({insert} SELECT {', '.join(['%s'] * len(fields))} FROM spent RETURNING {pk})",
    ]
    if audit:  # the audit row's user: the token's
        parts.append(
            f"audit AS ({counters.audit_insert_sql(connection)} "
            f"SELECT %s, spent.{qn(tokens.TOKEN_USER_ID)}, %s, %s, %s FROM spent)"
        )
    if n_keys:  # both in key order, so the arrays pair up
        keys_sql = f"ARRAY(SELECT hit.{qn('key')} FROM hit ORDER BY 1)"
        counts_sql = f"ARRAY(SELECT hit.{count} FROM hit ORDER BY hit.{qn('key')})"
    else:
        keys_sql = counts_sql = "NULL"
    return (
        f"WITH {', '.join(parts)} SELECT {keys_sql} AS {qn(HIT_KEYS)}, {counts_sql} AS {qn(HIT_COUNTS)}, "
        f"conn.{pk} AS {qn(CONNECTION_PK)}, spent.* FROM (SELECT 1) AS one "
        "LEFT JOIN (spent CROSS JOIN conn) ON TRUE"
    )


class Outcome(NamedTuple):
    counts: dict[str, int]  # {counter key: count after this attempt} (no entry: past the limit)
    session: WebSocketSession | None  # the stored row (pk set), None: the token did not match
    user: Any  # the token's user (None with session)


def run(
    connection: Any,
    *,
    count_params: list[Any] | None,
    n_keys: int,
    max_attempts: int,
    token_hash: str,
    oldest: Any,
    session_key_hash: str,
    user_id: Any,
    row: WebSocketSession,
    audit_ip: str | None,
) -> Outcome:
    """Run the statement: ``count_params`` (``ratelimit.upsert_statement``'s, ``n_keys`` keys;
    ``None``: counted elsewhere), the token's hash, the oldest valid creation time, the session
    key's hash and the user it was issued to, the connection's ``row`` (unsaved; its pk is set
    here) and, when ``audit_ip`` is given, an accepted attempt's audit row. A duplicate
    connection id raises ``IntegrityError``, any failure of the statement its ``DatabaseError``."""
    spend = tokens.spend_statement(connection, True, True)
    params = list(count_params or [])
    params += tokens.spend_params(connection, spend, token_hash, oldest, session_key_hash, user_id)
    if n_keys:
        params += [max_attempts, n_keys]
    params += [f.get_db_prep_save(getattr(row, f.attname), connection) for f in _row_fields()]
    if audit_ip is not None:
        ops = connection.ops
        params += [ops.adapt_ipaddressfield_value(audit_ip), ops.adapt_datetimefield_value(timezone.now()), True, ""]
    with connection.cursor() as cursor:
        cursor.execute(statement(connection, audit_ip is not None, n_keys), params)
        result = fetch_named(cursor, [HIT_KEYS, HIT_COUNTS, CONNECTION_PK, *spend.names])
    assert result is not None  # the LEFT JOIN always yields one row
    counts = dict(zip(result[HIT_KEYS] or (), result[HIT_COUNTS] or (), strict=True))
    if result[CONNECTION_PK] is None:
        return Outcome(counts, None, None)
    assert spend.user_columns is not None  # supported() asked for it
    user = spend.user_columns.instance_from(result, tokens.USER_PREFIX, connection)
    row.pk = result[CONNECTION_PK]
    row._state.adding = False
    return Outcome(counts, row, user)
