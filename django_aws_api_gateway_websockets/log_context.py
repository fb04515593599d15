"""The attributes the package's log records carry (docs/monitoring.md).

Every record of the ``views``, ``sending`` and ``cleanup`` loggers (and ``login``'s) has
``connection_id``, ``route``, ``reason`` and ``user_id``, an empty string or ``None`` when one
does not apply, so a formatter may name them all; some records add their own (``channel``,
``connection_ids``, ``command``, ``removed``).
"""

import logging
import re
from typing import Any

from .protocol import QUERY_TOKEN


def log_context(
    connection_id: str = "", route: str = "", reason: str = "", user_id: Any = None, **more: Any
) -> dict[str, Any]:
    """The ``extra=`` of a log call: the four stable attributes, then ``more``."""
    return {"connection_id": connection_id, "route": route, "reason": reason, "user_id": user_id, **more}


# A single-use token in a logged URL ("?ws_token=..." of a $connect): blanked as the local gateway
# blanks it, so a log never holds a token that a reader could race the browser to spend.
# Django decodes a percent-encoded name too (ws%5Ftoken): blanked as well.
_TOKEN_NAME = QUERY_TOKEN.replace("_", "(?:_|%5[Ff])")
_TOKEN_IN_URL = re.compile(rf"([?&]{_TOKEN_NAME}=)[^&#\s\"']+")
#: the loggers that write request URLs: runserver's request lines, the local gateway's integration calls
URL_LOGGERS = ("django.server", "django_aws_api_gateway_websockets.gateway")


def redact_tokens(text: str) -> str:
    """``text`` with every ``ws_token`` value of a URL replaced by ``[redacted]``."""
    return _TOKEN_IN_URL.sub(r"\1[redacted]", text) if "token=" in text else text


class RedactTokens(logging.Filter):
    """Blanks ``ws_token`` values in a record's message and string arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) for a in record.args)
        return True


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_tokens(value)
    if isinstance(value, BaseException) and "token=" in str(value):  # e.g. an invalid-URL error
        return redact_tokens(str(value))
    return value


def install_token_redaction() -> None:
    """On the loggers that write URLs (AppConfig.ready); once, however often it is called."""
    for name in URL_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in log.filters):
            log.addFilter(RedactTokens())
