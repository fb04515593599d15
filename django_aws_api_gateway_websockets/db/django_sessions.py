"""The browser's Django session on ``$connect``, read with one plain ``SELECT``.

A token connect needs four values of the cookie's session (the user id, the auth hash, the
login id, the key) and nothing else of it. With Django's database engine
(``django.contrib.sessions.backends.db``, the default) ``SessionStore.load`` is one query
too, but the ORM compiles it on every call: measured in-process (bench/connect.py's project,
2,000 connects, PostgreSQL) that costs about 0.4 ms more worker CPU a connect than this
statement built once per database alias. Only that exact engine is read here (``cached_db``
reads its cache first, a custom store may load differently); through public API only: the
store's ``session_key``, ``get_model_class()`` and ``decode()``. The store itself is left
untouched: code that reads ``request.session`` afterwards loads it as usual.
"""

from collections.abc import Mapping
from typing import Any

from django.contrib.sessions.backends.db import SessionStore as DbSessionStore
from django.db import connections, router
from django.utils import timezone

from . import statements


class SessionSnapshot(Mapping[str, Any]):
    """A session's data as read, with its key: what ``login`` and the token checks read of a
    session store (``session_key``, ``get``), read-only."""

    def __init__(self, session_key: str | None, data: dict[str, Any]) -> None:
        self.session_key = session_key
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def _select(connection: Any, model: Any) -> str:
    qn = connection.ops.quote_name
    meta = model._meta
    return (
        f"SELECT {qn(meta.get_field('session_data').column)} FROM {qn(meta.db_table)} "
        f"WHERE {qn(meta.pk.column)} = %s AND {qn(meta.get_field('expire_date').column)} > %s"
    )


def snapshot(store: Any) -> Any:
    """``store`` itself, or for Django's database engine a ``SessionSnapshot`` of it: what
    ``SessionStore.load`` would find (no row, or an expired one: no data, no key)."""
    if type(store) is not DbSessionStore or not store.session_key:
        return store
    model = store.get_model_class()
    connection = connections[router.db_for_read(model)]
    sql = statements.statement(connection, ("django_session", model), lambda conn: _select(conn, model))
    with connection.cursor() as cursor:
        cursor.execute(sql, [store.session_key, connection.ops.adapt_datetimefield_value(timezone.now())])
        row = cursor.fetchone()
    if row is None:
        return SessionSnapshot(None, {})
    return SessionSnapshot(store.session_key, store.decode(row[0]))
