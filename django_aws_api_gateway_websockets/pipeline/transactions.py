"""A transaction that begins at the block's first use of the database: ``transaction.atomic``
entered when the first statement runs (or a ``transaction.on_commit`` callback is added), so
a message handler that touches no database costs no statement, BEGIN and COMMIT included
(Django's atomic begins at once: it turns autocommit off on entry, logged as BEGIN, and
commits on exit). A handler that writes still gets all or nothing."""

from typing import Any

from django.db import connections, router, transaction

from ..models import WebSocketSession
from .refusal import is_rejection


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


def run_in_transaction(view, request, step, kept_below=400, lazy=False):
    """Run ``step`` (returning a handler result) in a transaction (a savepoint under
    ``ATOMIC_REQUESTS``) and answer with its response. A ``Rejection``, an exception or an
    answer with a status from ``kept_below`` up rolls everything back; a ``Rejection`` is
    re-raised for dispatch, an exception answered by ``view.handle_exception``. ``lazy``: the
    transaction begins at ``step``'s first statement (``LazyAtomic``), none when it runs none."""
    db = router.db_for_write(WebSocketSession)
    try:
        block: Any = LazyAtomic(db) if lazy else transaction.atomic(using=db)
        with block:
            response = view._as_response(step())
            if lazy and not block.started:
                return response  # no statement ran: nothing to keep or roll back
            if transaction.get_rollback(using=db):
                # A receiver or the handler caught its own database error: the work is lost,
                # so the request must not look as if it succeeded.
                raise transaction.TransactionManagementError(
                    "A database error inside the request was caught without a savepoint "
                    "(wrap the failing statement in transaction.atomic())."
                )
            if response.status_code >= kept_below:
                transaction.set_rollback(True)
    except Exception as exc:
        if is_rejection(exc):
            raise
        return view.handle_exception(request, exc)
    return response
