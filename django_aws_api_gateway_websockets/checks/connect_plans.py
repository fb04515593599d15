"""How each routed ``WebSocketView`` connects (I090, ``check --deploy``): in one statement, or on
the general path and why (``pipeline.connect.plan_for``, decided once per view class;
docs/architecture.md#connect)."""

from django.core.checks import CheckMessage, register

from .common import _served_view_kwargs
from .messages import NAMESPACE, Template

I090 = Template(
    "I090",
    {
        "default": "{name} connects in one statement (on PostgreSQL, outside ATOMIC_REQUESTS, for a token that "
        "comes with its login's cookie and a channel that admits everyone).",
        "general": "{name} takes the general path because {because}.",
    },
    hint={
        "default": "Nothing to do.",
        "general": "Nothing to do: the general path gives the same outcomes in a few more statements "
        "(docs/architecture.md#connect).",
    },
)


# A deploy check: `check` (run by runserver and migrate) stays quiet; `check --deploy` reports it.
@register(NAMESPACE, deploy=True)
def check_connect_plans(app_configs, **kwargs) -> list[CheckMessage]:
    from ..pipeline.connect import PLAN_ATTRIBUTES

    messages: list[CheckMessage] = []
    seen = set()
    for view, initkwargs in _served_view_kwargs():
        overrides = {name: value for name, value in initkwargs.items() if name in PLAN_ATTRIBUTES}
        key = (view, tuple(sorted((name, repr(value)) for name, value in overrides.items())))
        if key in seen:
            continue
        seen.add(key)
        # as_view() hands a view whose arguments change the plan its own (views.WebSocketView.as_view)
        plan = initkwargs.get("_connect_plan") or view.connect_plan()
        name = f"{view.__module__}.{view.__qualname__}"
        message = I090(name=name) if plan.one_statement else I090(variant="general", name=name, because=plan.because)
        message.obj = view
        messages.append(message)
    return messages
