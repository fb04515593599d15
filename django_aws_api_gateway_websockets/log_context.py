"""The attributes the package's log records carry (docs/monitoring.md).

Every record of the ``views``, ``sending`` and ``cleanup`` loggers (and ``login``'s) has
``connection_id``, ``route``, ``reason`` and ``user_id``, an empty string or ``None`` when one
does not apply, so a formatter may name them all; some records add their own (``channel``,
``connection_ids``, ``command``, ``removed``).
"""

from typing import Any


def log_context(
    connection_id: str = "", route: str = "", reason: str = "", user_id: Any = None, **more: Any
) -> dict[str, Any]:
    """The ``extra=`` of a log call: the four stable attributes, then ``more``."""
    return {"connection_id": connection_id, "route": route, "reason": reason, "user_id": user_id, **more}
