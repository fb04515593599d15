"""The transaction of each request step (``$connect``'s checks and row, a message's receivers
and handler, ``$disconnect``'s hook).

A message's handler runs in Django's own ``transaction.atomic()``. When the handler touches no
database that block sends nothing to PostgreSQL: the driver (psycopg 3, as psycopg2) sends BEGIN
before the block's first statement and COMMIT only for a transaction in progress, so such a
message is two statements on the wire, the row's read and the count after the block (Django's
query log still lists the block's BEGIN and COMMIT, which never leave the process;
tests/request_path/test_query_budgets.py counts what reaches the server)."""

from django.db import router, transaction

from ..models import WebSocketSession
from .refusal import is_rejection


def run_in_transaction(view, step, kept_below=400):
    """Run ``step`` (returning a handler result) in a transaction (a savepoint under
    ``ATOMIC_REQUESTS``) and answer with its response. A ``Rejection``, an exception or an
    answer with a status from ``kept_below`` up rolls everything back; a ``Rejection`` is
    re-raised for dispatch, an exception answered by ``view.handle_exception`` (with the
    request the view was set up with)."""
    db = router.db_for_write(WebSocketSession)
    try:
        with transaction.atomic(using=db):
            response = view._as_response(step())
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
        return view.handle_exception(view.request, exc)
    return response
