"""The package's settings: the ``WEBSOCKETS`` dict, read with defaults.

Read at call time (never cached at import) so ``override_settings`` works in tests.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS = {
    # Tokens (WebSocketTokenView).
    "token_rate_limit_per_minute": 20,
    "token_expiry_seconds": 60,
    # Connect rate limiting (WebSocketView, per source IP and per user).
    "rate_limit_max_attempts": 20,
    "rate_limit_window_minutes": 1,
    # Sending (Management API fan-out).
    "send_transport": "native",  # "native" (http11.py), "aiohttp" or "threads" (boto3)
    "send_max_workers": 128,
    "send_max_calls_per_second": 10_000,
    "send_max_retries": 5,
    "send_retry_base_delay": 0.05,
    # How long a process trusts its cached ApiGateway record (secret, api id) on $connect.
    "gateway_cache_seconds": 30,
    # The browser client and AppChannelWebSocketMixin.
    "token_url_name": "websocket_token",
}


def get_setting(name):
    """Return ``settings.WEBSOCKETS[name]``, falling back to the package default."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown WEBSOCKETS setting {name!r}")
    user = getattr(settings, "WEBSOCKETS", None) or {}
    if not isinstance(user, dict):
        raise ImproperlyConfigured("settings.WEBSOCKETS must be a dict.")
    value = user.get(name)
    return DEFAULTS[name] if value is None else value
