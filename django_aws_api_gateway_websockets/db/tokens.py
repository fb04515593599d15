"""The token spend in one statement (tokens.spend_token, db.connect): find the unused,
unexpired token and mark it used with one ``UPDATE … RETURNING``, which on PostgreSQL also
brings the user's row (``UPDATE … FROM <user table>``), replacing a ``SELECT`` and an
``UPDATE``."""

from typing import Any, NamedTuple

from django.contrib.auth import get_user_model

from ..models import WebSocketToken
from . import features, statements
from .rows import ModelColumns, single_table

#: The returned columns' names: the token's, then the user's fields as ``user_<attname>``.
TOKEN_ID, TOKEN_SESSION_KEY, TOKEN_USER_ID, TOKEN_LOGIN_HASH = (
    "token_id",
    "token_session_key",
    "token_user_id",
    "token_login_hash",
)
USER_PREFIX = "user_"


class SpendStatement(NamedTuple):
    sql: str
    user_columns: ModelColumns | None  # None: the user is not returned (read by a query of its own)
    checks_active: bool  # the user model has is_active: one more parameter
    names: list[str]  # the returned columns' names, in order (read without the driver's description)


def one_statement_spend(connection: Any) -> bool:
    """Whether the spend is one statement here: ``UPDATE … RETURNING`` (db.features), and a
    user model whose columns are all in its table (not a multi-table-inheritance child)."""
    return single_table(get_user_model()) and features.returning_upserts(connection)


def spend_statement(
    connection: Any, with_session: bool, with_user: bool = False, condition: str = ""
) -> SpendStatement:
    """The spend on this connection. Parameters (``spend_params``): used (``True``), the token's
    hash, ``False``, the oldest creation time, then ``True`` when it checks is_active, the
    session key's hash ``with_session``, the user's pk ``with_user``; ``condition``: one more SQL
    condition (with its own parameters after those). The returned columns are named (``TOKEN_*``,
    ``USER_PREFIX``), so the statement also serves as a ``WITH`` clause (db.connect)."""
    return statements.statement(
        connection,
        ("token_spend", with_session, with_user, condition),
        lambda conn: _build(conn, with_session, with_user, condition),
    )


def _build(connection, with_session, with_user, condition):
    User = get_user_model()
    qn = connection.ops.quote_name
    tok, usr = qn(WebSocketToken._meta.db_table), qn(User._meta.db_table)
    user_pk = f"{usr}.{qn(User._meta.pk.column)}"
    fields = list(User._meta.concrete_fields)
    active = next((f for f in fields if f.attname == "is_active"), None)
    where = [f"{tok}.{qn('token')} = %s", f"{tok}.{qn('used')} = %s", f"{tok}.{qn('created_at')} >= %s"]
    returning = [
        f"{tok}.{qn('id')} AS {qn(TOKEN_ID)}",
        f"{tok}.{qn('session_key')} AS {qn(TOKEN_SESSION_KEY)}",
        f"{tok}.{qn('user_id')} AS {qn(TOKEN_USER_ID)}",
        f"{tok}.{qn('login_hash')} AS {qn(TOKEN_LOGIN_HASH)}",
    ]
    # SQLite's RETURNING names only the updated table's columns: the user is read after.
    user_columns = ModelColumns(User, connection, usr) if features.writes_in_with(connection) else None
    if user_columns is not None:
        where.append(f"{user_pk} = {tok}.{qn('user_id')}")
        if active is not None:  # an inactive user's token stays unspent
            where.append(f"{usr}.{qn(active.column)} = %s")
        returning += user_columns.named(USER_PREFIX)
        from_clause = f" FROM {usr}"
    else:
        from_clause = ""
        if active is not None:
            where.append(f"{tok}.{qn('user_id')} IN (SELECT {user_pk} FROM {usr} WHERE {usr}.{qn(active.column)} = %s)")
    if with_session:
        where.append(f"{tok}.{qn('session_key')} = %s")
    if with_user:
        where.append(f"{tok}.{qn('user_id')} = %s")
    if condition:
        where.append(condition)
    sql = (
        f"UPDATE {tok} SET {qn('used')} = %s{from_clause} WHERE {' AND '.join(where)} RETURNING {', '.join(returning)}"
    )
    names = [TOKEN_ID, TOKEN_SESSION_KEY, TOKEN_USER_ID, TOKEN_LOGIN_HASH]
    if user_columns is not None:
        names += user_columns.keys(USER_PREFIX)
    return SpendStatement(sql, user_columns, active is not None, names)


def spend_params(connection, spend, token_hash, oldest, session_key_hash=None, user_id=None):
    """``spend``'s parameters, in order (``oldest``: the earliest creation time still valid)."""
    params = [True, token_hash, False, connection.ops.adapt_datetimefield_value(oldest)]
    if spend.checks_active:
        params.append(True)
    if session_key_hash is not None:
        params.append(session_key_hash)
    if user_id is not None:
        params.append(user_id)
    return params
