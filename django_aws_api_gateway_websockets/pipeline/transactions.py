"""A transaction that begins at the block's first use of the database: ``transaction.atomic``
entered when the first statement runs (or a ``transaction.on_commit`` callback is added), so
a message handler that touches no database costs no statement, BEGIN and COMMIT included
(Django's atomic begins at once: it turns autocommit off on entry, logged as BEGIN, and
commits on exit). A handler that writes still gets all or nothing."""

from typing import Any

from django.db import connections, transaction


class LazyAtomic:
    """``with LazyAtomic(db) as block:`` runs the body as ``transaction.atomic(using=db)``
    would, the transaction (or savepoint) begun just before the body's first statement on
    ``db``; ``block.started`` says whether it was. Statements on other databases are not
    covered (as ``atomic(using=db)`` would not cover them)."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.atomic: Any = None
        self._wrapper: Any = None
        self._shadowed: Any = None

    @property
    def started(self) -> bool:
        return self.atomic is not None

    def begin(self) -> None:
        if self.atomic is None:
            self.atomic = transaction.atomic(using=self.using)  # set first: its SAVEPOINT passes by
            self.atomic.__enter__()

    def _first_statement(self, execute, sql, params, many, context):
        self.begin()
        return execute(sql, params, many, context)

    def _on_commit(self, func, robust=False):
        # A callback added outside a transaction would run at once, even if the handler then
        # fails: begin the transaction, so it runs after the handler's commit, or never.
        self.begin()
        return type(self._connection).on_commit(self._connection, func, robust=robust)

    def __enter__(self) -> "LazyAtomic":
        connection = self._connection = connections[self.using]
        self._wrapper = connection.execute_wrapper(self._first_statement)
        self._wrapper.__enter__()
        self._shadowed = connection.__dict__.get("on_commit")
        connection.on_commit = self._on_commit  # type: ignore[method-assign]  # this thread's connection, for the block
        return self

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        connection = self._connection
        if self._shadowed is None:
            del connection.on_commit
        else:
            connection.on_commit = self._shadowed  # type: ignore[method-assign]
        self._wrapper.__exit__(None, None, None)
        if self.atomic is not None:
            return self.atomic.__exit__(exc_type, exc, tb)
        return None
