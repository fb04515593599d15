"""A transaction that begins at the block's first use of the database: ``transaction.atomic``
entered when the first statement runs (or a ``transaction.on_commit`` callback is added), so
a message handler that touches no database costs no statement, BEGIN and COMMIT included
(Django's atomic begins at once: it turns autocommit off on entry, logged as BEGIN, and
commits on exit). A handler that writes still gets all or nothing."""

import sys
from typing import Any

from django.db import connections, router, transaction

from ..models import WebSocketSession
from .refusal import is_rejection

#: The connection's transaction machinery: a block that calls one of these (``transaction.atomic``
#: asks ``get_autocommit``; ``on_commit``; the rollback flag; a savepoint) begins first, so its
#: own atomic blocks nest inside the block's and its callbacks wait for the block's commit.
#: What ``transaction.atomic()`` runs on entry (``Atomic.__enter__``), told apart when it asks.
_ATOMIC_ENTER = transaction.Atomic.__enter__.__code__

BEGIN_ON = ("get_autocommit", "on_commit", "get_rollback", "set_rollback", "savepoint")


class LazyAtomic:
    """``with LazyAtomic(db) as block:`` runs the body as ``transaction.atomic(using=db)``
    would, the transaction (or savepoint) begun just before the body's first statement on
    ``db``, or its first use of the transaction machinery (``BEGIN_ON``); ``block.started``
    says whether it was. Statements on other databases are not covered (as
    ``atomic(using=db)`` would not cover them)."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.atomic: Any = None
        self._wrapper: Any = None
        self._shadowed: dict[str, Any] = {}

    @property
    def started(self) -> bool:
        return self.atomic is not None

    def begin(self) -> None:
        if self.atomic is None:
            self.atomic = transaction.atomic(using=self.using)  # set first: its own calls pass by
            self.atomic.__enter__()

    def _first_statement(self, execute, sql, params, many, context):
        self.begin()
        return execute(sql, params, many, context)

    def _beginning(self, connection, name):
        # The connection's own method (or what shadowed it before this block), after begin().
        inner = self._shadowed.get(name) or getattr(type(connection), name).__get__(connection)

        def method(*args, **kwargs):
            if name == "get_autocommit" and self.atomic is None:
                caller = sys._getframe(1)
                if caller.f_code is _ATOMIC_ENTER:
                    return self._begin_under(caller.f_locals["self"], inner)
            self.begin()
            return inner(*args, **kwargs)

        return method

    def _begin_under(self, atomic: Any, get_autocommit: Any) -> bool:
        """A ``transaction.atomic()`` of the body, entered before the block began: it found no
        atomic block and asks whether autocommit is on, to choose between beginning the
        transaction and "the outermost block of a manual transaction" (whose exit leaves the
        atomic state, the block's transaction still open). Begin first, then answer as of when
        it looked (on): it then finds the block's transaction and takes a savepoint in it, as
        it would inside ``atomic(using=db)``, where a durable block is refused too."""
        if atomic.durable:
            # Django's own words, raised before the block began: nothing to roll back yet.
            raise RuntimeError("A durable atomic block cannot be nested within another atomic block.")
        autocommit = get_autocommit()
        self.begin()
        return autocommit

    def __enter__(self) -> "LazyAtomic":
        connection = self._connection = connections[self.using]
        self._wrapper = connection.execute_wrapper(self._first_statement)
        self._wrapper.__enter__()
        # Instance attributes of this thread's connection, for the block only.
        for name in BEGIN_ON:
            if name in connection.__dict__:
                self._shadowed[name] = connection.__dict__[name]
            setattr(connection, name, self._beginning(connection, name))
        return self

    def __exit__(self, exc_type, exc, tb) -> bool | None:
        connection = self._connection
        for name in BEGIN_ON:
            if name in self._shadowed:
                setattr(connection, name, self._shadowed[name])
            else:
                delattr(connection, name)
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
