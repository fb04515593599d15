"""What several topics read: a ``WEBSOCKETS`` value, and the views the URLconf serves."""

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from .. import conf

SETTINGS_DOC = "docs/settings.md (The WEBSOCKETS dict)"  # the README has no settings list


def _setting(name):
    """``WEBSOCKETS[name]``, or its default when the value is invalid (E042/E044 report it)."""
    user = getattr(settings, "WEBSOCKETS", None)
    value = user.get(name) if isinstance(user, dict) else None
    if value is None or conf.value_problem(name, value):
        return conf.DEFAULTS[name]
    return value


def _served_views(base_class, resolver=None, prefix=""):
    """``(route string, pattern, view class)`` of every URL pattern serving a ``base_class``."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _served_views(base_class, entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            if isinstance(view_class, type) and issubclass(view_class, base_class):
                yield prefix + str(entry.pattern), entry.pattern, view_class


def _websocket_views():
    from ..views import WebSocketView

    return list(dict.fromkeys(view for _route, _pattern, view in _served_views(WebSocketView)))


def _served_view_kwargs(resolver=None):
    """``(view class, as_view() arguments)`` of every URL pattern serving a ``WebSocketView``."""
    from ..views import WebSocketView

    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _served_view_kwargs(entry)
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            if isinstance(view_class, type) and issubclass(view_class, WebSocketView):
                yield view_class, getattr(entry.callback, "view_initkwargs", None) or {}
