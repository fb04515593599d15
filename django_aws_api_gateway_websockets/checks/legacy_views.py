"""Routed views relying on the 4.x view API that 5.x keeps without effect (W060-W062)."""

from django.core.checks import register

from .common import _served_view_kwargs
from .messages import NAMESPACE, Template

W060 = Template(
    "W060",
    "{view} {where}, which has no effect in 5.x: {reason}.",
    hint="Remove it: the 4.x attribute is deprecated and removed in {release} (docs/upgrading.md, Coming from 4.x).",
)
W061 = Template(
    "W061",
    "{view} overrides {name}(), which 5.x never calls: {instead}.",
    hint="Remove the override (the 4.x hook is deprecated and removed in {release}); refusals go through "
    "permission_denied(), handle_exception() and default() (docs/upgrading.md, Coming from 4.x).",
)
W062 = Template(
    "W062",
    "{view} defines {name}(), a 4.x private method 5.x never calls: {instead}.",
    hint="Its customisation no longer applies: move it to the 5.x hook (docs/api.md), "
    "e.g. can_join_channel() or _additional_connection_checks(), then remove it "
    "(docs/upgrading.md, Coming from 4.x).",
)

#: 4.x's private WebSocketView methods that 5.x has not (check W062): a 4.x subclass
#: overriding one to customise a check (say, refuse some gateways) loads and runs, and its
#: override is silently never called. What does the job now, for the message.
LEGACY_PRIVATE_METHODS = {
    "_allowed_apigateway": "the gateway is the record of the request's API id, authenticated by its "
    "integration secret; aws_api_gateway_id restricts a view to one API",
    "_check_platform_registered_api_gateways": "the gateway is the record of the request's API id",
    "_expected_useragent": "the User-Agent is not checked (the integration secret is)",
    "_expected_headers": "headers are not checked (the integration secret is)",
    "_expected_connection_headers": "headers are not checked (the integration secret is)",
    "_check_allowed_hosts": "the browser's Origin is checked against CSRF_TRUSTED_ORIGINS and ALLOWED_HOSTS",
    "_check_host_is_in_origin": "the browser's Origin is checked against CSRF_TRUSTED_ORIGINS and ALLOWED_HOSTS",
    "_get_channel_name": "the channel comes from ?channel= or the record's default_channel_name; "
    "refuse channels in can_join_channel()",
    "_get_client_ip": "the client address is API Gateway's X-Source-Ip",
    "_validate_connection_id": "connection ids are validated by the package",
    "_add_user_to_request": "request.user is the connection's user",
    "_return_bad_request": "refusals are answered in JSON; shape them in permission_denied()",
    "_debug": "the view logs to the django_aws_api_gateway_websockets.views logger",
    "_get_current_class_methods": "handlers are marked @handler or listed in ALLOWED_HANDLERS",
}


def _is_legacy_default(name, value):
    from ..views import LEGACY_ATTRIBUTE_DEFAULTS

    default = LEGACY_ATTRIBUTE_DEFAULTS[name]
    if isinstance(default, tuple):  # the 4.x lists (a subclass may extend them)
        return isinstance(value, (list, tuple)) and tuple(value) == default
    return value == default and type(value) is type(default)


def _attribute_messages(view, initkwargs, seen):
    """W060: a 4.x class attribute or ``as_view()`` argument set to another value than 4.x's."""
    from ..views import LEGACY_ATTRIBUTE_REASONS, LEGACY_REMOVAL_RELEASE

    messages = []
    for name, reason in LEGACY_ATTRIBUTE_REASONS.items():
        where = None
        if name in initkwargs and not _is_legacy_default(name, initkwargs[name]):
            where = f"is given {name}={initkwargs[name]!r} by as_view()"
        elif not _is_legacy_default(name, getattr(view, name)):
            where = f"sets {name}"
        if where and (view, name, where) not in seen:
            seen.add((view, name, where))
            messages.append(W060(view=view.__name__, where=where, reason=reason, release=LEGACY_REMOVAL_RELEASE))
    return messages


def _hook_messages(view, seen):
    """W061: a 4.x response hook overridden; 5.x never calls it."""
    from ..views import LEGACY_HOOKS, LEGACY_REMOVAL_RELEASE, WebSocketView

    messages = []
    for name, instead in LEGACY_HOOKS.items():
        if getattr(view, name) is not getattr(WebSocketView, name) and (view, name) not in seen:
            seen.add((view, name))
            messages.append(W061(view=view.__name__, name=name, instead=instead, release=LEGACY_REMOVAL_RELEASE))
    return messages


def _private_method_messages(view, seen):
    """W062: a 4.x private method 5.x has not, defined by the view."""
    from ..views import WebSocketView

    messages = []
    for name, instead in LEGACY_PRIVATE_METHODS.items():
        if callable(getattr(view, name, None)) and not hasattr(WebSocketView, name) and (view, name) not in seen:
            seen.add((view, name))
            messages.append(W062(view=view.__name__, name=name, instead=instead))
    return messages


@register(NAMESPACE)
def check_legacy_view_api(app_configs, **kwargs):
    """Routed views relying on the 4.x view API 5.x keeps without effect: a class attribute
    or ``as_view()`` argument (W060), a response hook 5.x never calls (W061), a 4.x private
    method 5.x has not, overridden (W062)."""
    messages = []
    seen: set[tuple[object, ...]] = set()  # a view served by several patterns is named once
    for view, initkwargs in _served_view_kwargs():
        messages += _attribute_messages(view, initkwargs, seen)
        messages += _hook_messages(view, seen)
        messages += _private_method_messages(view, seen)
    return messages
