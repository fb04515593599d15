"""``check`` with ``DEBUG``: the local origin trap, a project's own runserver page refused (W080)."""

from django.conf import settings
from django.core.checks import register

from .. import security
from .common import _websocket_views
from .messages import NAMESPACE, Template

LOCAL_ORIGINS = ("http://127.0.0.1:8000", "http://localhost:8000")  # runserver's default address

_REFUSED = 'will have every WebSocket connect refused (403 "Origin not allowed.") by {views}.'
W080 = Template(
    "W080",
    {
        # No local origin listed at all.
        "default": "DEBUG is on and CSRF_TRUSTED_ORIGINS does not list the local origin {origin}: a page served by "
        "runserver " + _REFUSED,
        # One name of the local server listed, not the other.
        "twin": "DEBUG is on and CSRF_TRUSTED_ORIGINS does not list {listed}: a page opened at {origin} (the "
        "same runserver, by its other name) " + _REFUSED,
    },
    hint={
        "default": "Add to your settings: CSRF_TRUSTED_ORIGINS = [{listed}] (keep any origins you already list; "
        "use the port runserver listens on if it is not 8000).",
        "twin": "Add {listed} to CSRF_TRUSTED_ORIGINS: 127.0.0.1 and localhost are two origins to a browser.",
    },
)


def _w080(variant, missing, views):
    listed = ", ".join(f'"{origin}"' for origin in missing)
    return [W080(variant, listed=listed, origin=missing[0], views=", ".join(view.__name__ for view in views))]


@register(NAMESPACE)
def check_local_origin(app_configs, **kwargs):
    """With ``DEBUG``, a page served by ``runserver`` opens its socket with ``Origin:
    http://127.0.0.1:8000``; unless ``CSRF_TRUSTED_ORIGINS`` lists it, every ``$connect`` is
    refused (403 "Origin not allowed.") and nothing else says why. No database access."""
    if not settings.DEBUG:
        return []
    views = [view for view in _websocket_views() if getattr(view, "CHECK_ORIGIN", True)]
    if not views:
        return []
    trusted = getattr(settings, "CSRF_TRUSTED_ORIGINS", None) or []
    if not isinstance(trusted, (list, tuple)):
        return []
    ports = set()
    for value in trusted:  # any loopback http origin listed: the developer has chosen their port
        parsed = security.parse_origin(value) if isinstance(value, str) else None
        if parsed and parsed.scheme == "http" and parsed.host in ("127.0.0.1", "localhost", "[::1]", "::1"):
            ports.add(parsed.port)
    if ports:
        # runserver answers both names, and a browser sends the one typed: two origins.
        twins = [f"http://{host}:{port}" for port in sorted(ports) for host in ("127.0.0.1", "localhost")]
        missing = [origin for origin in twins if not security.origin_allowed(origin)]
        return _w080("twin", missing, views) if missing else []
    missing = [origin for origin in LOCAL_ORIGINS if not security.origin_allowed(origin)]
    return _w080("default", missing, views) if missing else []
