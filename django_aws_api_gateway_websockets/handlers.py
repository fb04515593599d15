"""Which methods of a ``WebSocketView`` a message may call (docs/security.md).

A client names a handler in its message; it must only reach what the developer meant to
expose. Three ways to say it, checked in this order:

1. ``ALLOWED_HANDLERS = ["name", ...]`` on the view: exactly those (plus
   ``ADDITIONAL_ALLOWED_HANDLERS``).
2. ``@handler`` on methods: those, plus ``default`` and the built-ins ``change_channel``,
   ``ping``, ``resume``, ``subscribe``, ``unsubscribe`` and ``whisper`` (and ``presence`` on views with ``BROADCAST_PRESENCE``).
3. Neither (the 4.x way, kept working): every public method defined on the subclasses whose
   first parameter is named ``request`` — the documented handler signature — plus the
   built-ins. ``manage.py check`` warns (``aws_websockets.W005``) about views that rely on it.

Methods of ``WebSocketView`` itself (``dispatch``, ``connect``, ``setup``...) and names
starting with ``_`` are never handlers, whatever the lists say.
"""

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from django.views import View

F = TypeVar("F", bound=Callable[..., Any])

HANDLER_MARK = "websocket_handler"
BUILTIN_HANDLERS = frozenset({"change_channel", "ping", "resume", "subscribe", "unsubscribe", "whisper"})
#: A built-in of views with ``BROADCAST_PRESENCE`` only (the channel's members, by pages): on
#: other views the name stays the project's (or reaches ``default``), as before.
PRESENCE_HANDLER = "presence"


def handler(method: F) -> F:
    """Mark a view method as reachable from messages (``{"handler": "<method name>"}``)."""
    setattr(method, HANDLER_MARK, True)
    return method


def _own_methods(view_class: type, base_class: type) -> dict[str, Callable[..., Any]]:
    """``{name: function}`` defined on ``view_class`` and its bases below ``base_class``
    (mixins included); the most derived definition wins."""
    methods: dict[str, Callable[..., Any]] = {}
    for klass in view_class.__mro__:
        if klass in base_class.__mro__:
            continue
        for name, value in vars(klass).items():
            if name not in methods and inspect.isfunction(value):
                methods[name] = value
    return methods


def _has_handler_signature(function: Callable[..., Any]) -> bool:
    """``def name(self, request, ...)``: the signature every documented handler has."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 and positional[1].name == "request"


def allowed_handlers(view_class: Any, base_class: type) -> tuple[frozenset[str], frozenset[str]]:
    """``(names, implicit)``: the handler names a message may select on ``view_class``, and
    those of them exposed only implicitly (rule 3 above; empty under rules 1 and 2)."""
    own = _own_methods(view_class, base_class)
    marked = {name for name, function in own.items() if getattr(function, HANDLER_MARK, False) is True}
    implicit: set[str] = set()
    names: set[str]
    if view_class.ALLOWED_HANDLERS:
        names = set(view_class.ALLOWED_HANDLERS)  # exactly those, even marked ones inherited
    elif marked:
        names = marked | BUILTIN_HANDLERS | {"default"}
    else:
        implicit = {name for name, function in own.items() if _has_handler_signature(function)}
        names = implicit | BUILTIN_HANDLERS | {"default"}
    if not view_class.ALLOWED_HANDLERS and getattr(view_class, "BROADCAST_PRESENCE", False):
        names.add(PRESENCE_HANDLER)
    names.update(view_class.ADDITIONAL_ALLOWED_HANDLERS)
    plumbing = (set(dir(base_class)) - BUILTIN_HANDLERS - {"default", PRESENCE_HANDLER}) | set(View.http_method_names)
    allowed = frozenset(
        name
        for name in names
        if isinstance(name, str)
        and not name.startswith("_")
        and name not in plumbing
        and callable(getattr(view_class, name, None))
    )
    return allowed, frozenset((implicit & allowed) - BUILTIN_HANDLERS - {"default"})
