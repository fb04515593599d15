"""The URLconf and the routed views: patterns, the token view, handlers, per-view settings."""

from django.core.checks import Tags, register
from django.urls import NoReverseMatch, reverse
from django.urls.converters import SlugConverter

from .common import _served_views, _setting, _websocket_views
from .messages import NAMESPACE, Template

E001 = Template(
    "E001",
    "The URL pattern '{route}' of {view} does not capture <slug:route>.",
    hint='Use path("ws/<slug:route>", View.as_view()): API Gateway calls .../connect, .../disconnect and .../default.',
)
E002 = Template(
    "E002",
    "{views} require a token (USE_WS_TOKEN) but no URL pattern serves "
    "WebSocketTokenView: no browser could ever connect.",
    hint='Add path("api/ws-token/", WebSocketTokenView.as_view(), name="websocket_token").',
)
W004 = Template(
    "W004",
    "No URL is named '{name}': the websocket_config tag and AppChannelWebSocketMixin cannot find the token view.",
    hint='Name the WebSocketTokenView pattern "websocket_token", or set WEBSOCKETS["token_url_name"].',
)
W002 = Template(
    "W002",
    "{view} requires permissions but USE_WS_TOKEN is False.",
    hint="Without a token only a session cookie shared with the WebSocket domain identifies the "
    "user; set USE_WS_TOKEN = True.",
)
W005 = Template(
    "W005",
    "{view} exposes its public methods to messages implicitly: {methods}.",
    hint="Mark the methods clients may call with @handler (from django_aws_api_gateway_websockets.views), "
    "or list them in ALLOWED_HANDLERS; every other method then stays out of reach.",
)
W003 = Template(
    "W003",
    "Connect rate limiting is disabled on {view}.",
    hint="Keep RATE_LIMIT_ENABLED = True in production; tune RATE_LIMIT_MAX_ATTEMPTS instead.",
)
W047 = Template(
    "W047",
    "{view} does not check the Origin header (CHECK_ORIGIN = False).",
    hint="Any web page a logged-in user visits could open a socket as that user: keep CHECK_ORIGIN = True "
    "and list the pages' origins in CSRF_TRUSTED_ORIGINS.",
)


@register(NAMESPACE, Tags.urls)
def check_url_patterns(app_configs, **kwargs):
    from ..views import WebSocketView

    messages = []
    for route, pattern, view_class in _served_views(WebSocketView):
        converter = getattr(pattern, "converters", {}).get("route")
        if not isinstance(converter, SlugConverter):
            messages.append(E001(route=route, view=view_class.__name__))
    return messages


@register(NAMESPACE, Tags.urls)
def check_token_view(app_configs, **kwargs):
    from ..views import WebSocketTokenView

    token_views = [view.__name__ for view in _websocket_views() if view.USE_WS_TOKEN]
    if not token_views:
        return []
    if not any(_served_views(WebSocketTokenView)):
        return [E002(views=", ".join(token_views))]
    name = _setting("token_url_name")
    try:
        reverse(name)
    except NoReverseMatch:
        return [W004(name=name)]
    return []


@register(NAMESPACE)
def check_views(app_configs, **kwargs):
    return [
        W002(view=view.__name__)
        for view in _websocket_views()
        if not view.USE_WS_TOKEN and (view.permissions_required or view.all_permissions_required)
    ]


@register(NAMESPACE)
def check_handler_exposure(app_configs, **kwargs):
    """Views whose handlers are every public method taking ``request`` (the 4.x rule)."""
    messages = []
    for view in _websocket_views():
        implicit = sorted(view.implicit_handlers())
        if implicit:
            messages.append(W005(view=view.__name__, methods=", ".join(implicit)))
    return messages


@register(NAMESPACE, deploy=True)
def check_deploy_views(app_configs, **kwargs):
    return [W003(view=view.__name__) for view in _websocket_views() if not view.RATE_LIMIT_ENABLED]


@register(NAMESPACE, deploy=True)
def check_deploy_origin(app_configs, **kwargs):
    return [W047(view=view.__name__) for view in _websocket_views() if not view.CHECK_ORIGIN]
