"""Refusing a request from a step: ``views.Rejection`` (its public home: views imports this
package, so the class is imported when a step refuses, never at import time)."""

import logging
from typing import Any, NoReturn

#: The request path logs as the view (docs/monitoring.md names this logger).
logger = logging.getLogger("django_aws_api_gateway_websockets.views")


def rejection_class() -> type[Exception]:
    # Not a WebSocketsError, by decision: control flow, not an error to catch (docs/api.md#exceptions).
    from ..views import Rejection

    return Rejection


def refuse(
    status: int, message: str, reason: str = "", data: dict[str, Any] | None = None, detail: str = ""
) -> NoReturn:
    """End the request with a 4xx answer, a log line and (on connect) a signal (dispatch answers)."""
    raise rejection_class()(status, message, reason, data, detail) from None


def is_rejection(exc: BaseException) -> bool:
    return isinstance(exc, rejection_class())
