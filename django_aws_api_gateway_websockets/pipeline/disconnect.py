"""``$disconnect``: the row, marked disconnected (that write stays whatever happens next), the
presence ``leave``, then the project's receivers and hook in a transaction of their own, only
when there are any (docs/architecture.md#disconnect). Two statements without them."""

from django.http import JsonResponse

from .. import presence, signals
from ..db import sessions as session_sql
from ..log_context import log_context
from .connection import load_connection
from .refusal import logger
from .transactions import run_in_transaction


def run_disconnect(view, request, args, kwargs, base_hook):
    """``base_hook``: WebSocketView.disconnect (overridden: the view's hook runs)."""
    session = load_connection(view, request, session_expiry=False)  # an ended login changes nothing here
    was_connected = session.connected  # else a send found it gone (410) and announced its leave
    session_sql.mark_disconnected(session)
    if view.BROADCAST_PRESENCE and was_connected:
        presence.announce_on_commit(session.channel_name, "leave", session)
    logger.info("WebSocket disconnected", extra=log_context(session.connection_id, view.route, user_id=session.user_id))
    # A hook given to as_view() is the instance's own (vars(view)), not the class's.
    hooked = type(view).disconnect is not base_hook or "disconnect" in vars(view)
    if not hooked and not signals.disconnected.has_listeners(type(view)):
        return JsonResponse({})  # nothing else to run: no transaction (two round trips) either

    # The socket is gone whatever the receivers and the hook do: the row above stays marked;
    # only their own writes roll back when they fail.
    def after_disconnect():
        signals.disconnected.send(sender=type(view), request=request, session=session)
        return view.disconnect(request, *args, **kwargs)

    return run_in_transaction(view, after_disconnect)
