"""The package's settings: the ``WEBSOCKETS`` dict, read with defaults.

Read at call time (never cached at import) so ``override_settings`` works in tests.

Each setting's type is its default's type (an int setting takes an int, not a bool; a float
setting also takes an int; a str setting takes a non-empty str); ``MINIMUMS`` bounds numbers
and ``choices`` names the allowed values of the few settings that have a fixed set.
``validate_settings`` says everything wrong with a ``WEBSOCKETS`` value (``manage.py check``
reports it as aws_websockets.E042/W043/E044); ``get_setting`` refuses a wrong-typed value
with the same message.
"""

import difflib
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS: dict[str, int | float | str | bool | tuple[str, ...]] = {
    # Tokens (WebSocketTokenView).
    "token_rate_limit_per_minute": 20,
    "token_expiry_seconds": 60,
    # Connect rate limiting (WebSocketView, per source IP and per user).
    "rate_limit_max_attempts": 20,
    "rate_limit_window_minutes": 1,
    # Where the counters live: "" (the database, ConnectionRateCounter) or a CACHES alias of a
    # cache shared by every process with an atomic incr (Redis, Memcached); see ratelimit.py.
    "rate_limit_cache": "",
    # The ConnectionRateLimit audit trail: "all" attempts, only "refusals", or "off".
    "rate_limit_audit": "all",
    # Sending (Management API fan-out; backends/, docs/sending.md).
    "send_backend": "django_aws_api_gateway_websockets.backends.AiohttpBackend",
    "send_transport": "",  # deprecated alias: "native"/"aiohttp" (AiohttpBackend), "threads" (Boto3Backend)
    "send_max_workers": 128,  # requests in flight per endpoint per process
    "send_max_calls_per_second": 10_000,  # the account's limit; 0: no ceiling
    "send_rate_processes": 1,  # processes sending at once: each keeps to the limit / this
    "send_rate_limit_cache": "",  # or a CACHES alias shared by every process: one budget for all
    "send_max_retries": 5,
    "send_retry_base_delay": 0.05,
    "send_timeout_seconds": 10.0,  # a call's answer (after the connection is open)
    "send_connect_timeout_seconds": 3.0,  # opening a connection (TCP, proxy, TLS)
    # How long a process trusts its cached ApiGateway record (secret, api id) on $connect.
    "gateway_cache_seconds": 30,
    # How long the previous integration secret stays valid after a rotation.
    "secret_grace_seconds": 3600,
    # At most one admin e-mail per view and exception type in this many seconds.
    "exception_mail_interval_seconds": 300,
    # The browser client and AppChannelWebSocketMixin.
    "token_url_name": "websocket_token",
    # Channel history (history.py, docs/history.md): send_to_channel/send_to_user keep each
    # stream's last history_max_messages messages, none older than history_max_age_seconds,
    # for the client's resume; False sends without sequence numbers or history.
    "history_enabled": True,
    "history_max_messages": 1000,
    "history_max_age_seconds": 86400,
    # One resume request replays at most this many messages and this many bytes of them (a
    # message larger than the byte budget goes alone); its "resumed" frame says where to
    # continue ("more"), and the browser client asks again until it has caught up.
    "resume_page_messages": 100,
    "resume_page_bytes": 1024 * 1024,
    # Messages a connection may send (every route but $connect/$disconnect): a token bucket
    # refilled at message_rate_limit per second, holding message_rate_burst; past it, 429 and
    # the handler does not run. 0 turns the limit off (docs/rate-limiting.md).
    "message_rate_limit": 20.0,
    "message_rate_burst": 40,
    # clear_websocket_sessions --stale announces the stale connections it closes as presence
    # "leave" events to their channels (for views with BROADCAST_PRESENCE; presence.py).
    "presence_cleanup_broadcast": False,
    # Channels and subscriptions (subscriptions.py, docs/channels.md): how many channels one
    # connection may hold; the member info presence sends ("" : id and username; else the dotted
    # path of a function(user) -> dict; a view's presence_info method wins); the channels where
    # clients may send client events (whisper), as shell-style patterns: none by default.
    "max_subscriptions": 32,
    "presence_info": "",
    "client_events_channels": (),
    # Messages of any size (docs/large-messages.md): the largest message either way; one larger
    # than a post (128 KB) travels as parts. A client's parts are held in the database for at
    # most message_parts_timeout_seconds, at most message_parts_max_pending_bytes a connection.
    "max_message_bytes": 1024 * 1024,
    "message_parts_timeout_seconds": 60,
    "message_parts_max_pending_bytes": 2 * 1024 * 1024,
}

# The largest max_message_bytes accepted: a message is held whole in memory (encoded once,
# stored once in the history, reassembled in one request), so keep it to tens of MB.
MAX_MESSAGE_BYTES_CEILING = 64 * 1024 * 1024

# The smallest value a number setting accepts (numbers not listed: any).
MINIMUMS: dict[str, int | float] = {
    "token_rate_limit_per_minute": 1,
    "token_expiry_seconds": 1,
    "rate_limit_max_attempts": 1,
    "rate_limit_window_minutes": 0,  # 0 counts no attempts: check --deploy warns (W049)
    "send_max_workers": 1,
    "send_max_calls_per_second": 0,
    "send_max_retries": 0,
    "send_retry_base_delay": 0,
    "send_rate_processes": 1,
    "send_timeout_seconds": 0.1,
    "send_connect_timeout_seconds": 0.1,
    "gateway_cache_seconds": 0,
    "secret_grace_seconds": 0,
    "exception_mail_interval_seconds": 0,
    "history_max_messages": 1,
    "history_max_age_seconds": 1,
    "resume_page_messages": 1,
    "resume_page_bytes": 1024,
    "message_rate_limit": 0,
    "message_rate_burst": 1,
    "max_subscriptions": 1,
    "max_message_bytes": 32 * 1024,  # at least one client frame: a message never smaller than one
    "message_parts_timeout_seconds": 1,
    "message_parts_max_pending_bytes": 32 * 1024,
}

# The deprecated WEBSOCKETS["send_transport"] names (5.0 pre-releases) and the send backend each
# means now (backends.backend_path reads it; check W070 names the replacement).
SEND_TRANSPORT_BACKENDS = {
    "native": "django_aws_api_gateway_websockets.backends.AiohttpBackend",
    "aiohttp": "django_aws_api_gateway_websockets.backends.AiohttpBackend",
    "threads": "django_aws_api_gateway_websockets.backends.Boto3Backend",
}
SEND_TRANSPORTS = tuple(SEND_TRANSPORT_BACKENDS)


def choices(name: str) -> tuple[str, ...] | None:
    """The values ``name`` accepts, or ``None`` when it is not limited to a set."""
    if name == "send_transport":
        return SEND_TRANSPORTS
    if name == "rate_limit_audit":
        return ("all", "refusals", "off")
    return None


def _type_problem(name: str, value: object) -> str | None:
    """What is wrong with the type of ``value`` for setting ``name`` (``None``: nothing)."""
    kind = type(DEFAULTS[name])
    if kind is int:
        ok, expected = type(value) is int, "an integer"
    elif kind is float:
        ok, expected = type(value) in (int, float), "a number"
    elif kind is tuple:  # a list of strings (or a tuple)
        ok = isinstance(value, list | tuple) and all(type(item) is str and item for item in value)
        expected = "a list of non-empty strings"
    elif kind is str:
        # "" is a value only where it is the default (rate_limit_cache: the database).
        ok, expected = type(value) is str and (value != "" or DEFAULTS[name] == ""), "a non-empty string"
    else:  # pragma: no cover - every default is one of the above
        ok, expected = isinstance(value, kind), f"a {kind.__name__}"
    if ok:
        return None
    return f'WEBSOCKETS["{name}"] must be {expected}, not {value!r} ({type(value).__name__}).'


def value_problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the known setting ``name`` (``None``: nothing; ``None`` values mean the default)."""
    if value is None or value == DEFAULTS[name] and type(value) is type(DEFAULTS[name]):
        return None
    problem = _type_problem(name, value)
    if problem:
        return problem
    minimum = MINIMUMS.get(name)
    if minimum is not None and value < minimum:
        least = "a positive number" if minimum == 1 else f"at least {minimum}"
        return f'WEBSOCKETS["{name}"] must be {least}, not {value!r}.'
    if name == "max_message_bytes" and value > MAX_MESSAGE_BYTES_CEILING:
        return f'WEBSOCKETS["{name}"] must be at most {MAX_MESSAGE_BYTES_CEILING}, not {value!r}.'
    allowed = choices(name)
    if allowed is not None and value not in allowed:
        return f'WEBSOCKETS["{name}"] must be one of {", ".join(map(repr, allowed))}, not {value!r}.'
    return None


def unknown_key_problem(key: object) -> str:
    """The message for a key ``DEFAULTS`` does not know, with the closest known name."""
    message = f"WEBSOCKETS has an unknown key {key!r}: it is ignored."
    close = difflib.get_close_matches(str(key), DEFAULTS, n=1) if isinstance(key, str) else []
    if close:
        message += f' Did you mean "{close[0]}"?'
    return message


NOT_A_DICT = "settings.WEBSOCKETS must be a dict."


def validate_settings(user: object) -> tuple[list[str], list[str]]:
    """``(errors, unknown)``: messages for bad values and for unknown keys of ``WEBSOCKETS``.

    ``user`` is the ``WEBSOCKETS`` value (``None`` or empty: all defaults).
    """
    if user is None:
        return [], []
    if not isinstance(user, dict):
        return [f"{NOT_A_DICT} It is {type(user).__name__}."], []
    errors: list[str] = []
    unknown: list[str] = []
    for key, value in user.items():
        if key in DEFAULTS:
            problem = value_problem(key, value)
            if problem:
                errors.append(problem)
        else:
            unknown.append(unknown_key_problem(key))
    return errors, unknown


# (name, type, value) of values whose type was found right: get_setting checks each once.
_checked: set[tuple[str, type[object], object]] = set()
_CHECKED_MAX = 1024


def get_setting(name: str) -> Any:
    """Return ``settings.WEBSOCKETS[name]``, falling back to the package default.

    Raises ``ImproperlyConfigured`` when the value has the wrong type (the message
    ``manage.py check`` gives); ranges and choices are left to the check and to the caller.
    """
    if name not in DEFAULTS:
        raise KeyError(f"Unknown WEBSOCKETS setting {name!r}")
    user = getattr(settings, "WEBSOCKETS", None) or {}
    if not isinstance(user, dict):
        raise ImproperlyConfigured(NOT_A_DICT)
    value = user.get(name)
    if value is None:
        return DEFAULTS[name]
    try:
        key = (name, type(value), value)
        if key in _checked:
            return value
    except TypeError:  # unhashable: a list, a dict... never the right type
        key = None
    problem = _type_problem(name, value)
    if problem:
        raise ImproperlyConfigured(problem)
    if key is not None:
        if len(_checked) >= _CHECKED_MAX:
            _checked.clear()
        _checked.add(key)
    return value
