"""Check ``aws_websockets.I090`` (``check --deploy``): how each routed ``WebSocketView`` connects, in one statement
or on the general path and why (pipeline.connect.plan_for, decided once per view class;
docs/architecture.md#connect)."""

from django.core.checks import CheckMessage, Info, register
from django.urls import URLPattern, URLResolver, get_resolver

NAMESPACE = "aws_websockets"


def _routed(base, resolver=None):
    """``(view class, as_view() keyword arguments)`` of each URL pattern serving a ``base``."""
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _routed(base, entry)
        elif isinstance(entry, URLPattern):
            view_class = getattr(entry.callback, "view_class", None)
            if isinstance(view_class, type) and issubclass(view_class, base):
                yield view_class, getattr(entry.callback, "view_initkwargs", None) or {}


# A deploy check: `check` (run by runserver and migrate) stays quiet; `check --deploy` reports it.
@register(NAMESPACE, deploy=True)
def check_connect_plans(app_configs, **kwargs) -> list[CheckMessage]:
    from .pipeline.connect import PLAN_ATTRIBUTES, plan_for
    from .views import WebSocketView

    messages: list[CheckMessage] = []
    seen = set()
    for view, initkwargs in _routed(WebSocketView):
        overrides = {name: value for name, value in initkwargs.items() if name in PLAN_ATTRIBUTES}
        key = (view, tuple(sorted((name, repr(value)) for name, value in overrides.items())))
        if key in seen:
            continue
        seen.add(key)
        plan = plan_for(view, WebSocketView, overrides) if overrides else view.connect_plan()
        name = f"{view.__module__}.{view.__qualname__}"
        if plan.one_statement:
            messages.append(
                Info(
                    f"{name} connects in one statement (on PostgreSQL, outside ATOMIC_REQUESTS, for a "
                    "token that comes with its login's cookie and a channel that admits everyone).",
                    obj=view,
                    id=f"{NAMESPACE}.I090",
                )
            )
        else:
            messages.append(
                Info(
                    f"{name} takes the general path because {plan.because}.",
                    hint="Nothing to do: the general path gives the same outcomes in a few more statements "
                    "(docs/architecture.md#connect).",
                    obj=view,
                    id=f"{NAMESPACE}.I090",
                )
            )
    return messages
